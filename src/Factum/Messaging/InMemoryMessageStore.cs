using System.Runtime.CompilerServices;
using Factum.Coordination;

namespace Factum.Messaging;

/// <summary>
/// A message store in process memory: every commit runs under one lock (serializable), so it keeps the whole contract
/// except surviving a restart. For tests, prototypes and the <c>memory:</c> backend.
/// </summary>
public sealed class InMemoryMessageStore : IMessageStore
{
    private readonly Lock _gate = new();
    private readonly TimeProvider _clock;
    private readonly ILeaseStore? _leases;
    private readonly Dictionary<InboxRecord, DateTimeOffset> _inbox = [];
    private readonly SortedDictionary<long, OutboxEntry> _outbox = [];
    private readonly SortedDictionary<long, (DeadLetter Letter, bool HoldKey)> _dead = [];
    private Dictionary<string, object?> _data = new(StringComparer.Ordinal);
    private long _nextOutbox;
    private long _nextDead;
    private TaskCompletionSource _changed = NewSignal();

    /// <summary>Creates an empty store.</summary>
    /// <param name="clock">The time source (due times, inbox expiry); default the system clock.</param>
    /// <param name="leases">The lease store that fences <see cref="CompleteOutboxAsync"/>; required to pass a fence.</param>
    public InMemoryMessageStore(TimeProvider? clock = null, ILeaseStore? leases = null)
    {
        _clock = clock ?? TimeProvider.System;
        _leases = leases;
    }

    /// <inheritdoc />
    public string Name => "in-memory";

    /// <summary>Reads the handlers' key/value table (<see cref="InMemoryMessageSession.Data"/>) as it is now.</summary>
    public IReadOnlyDictionary<string, object?> Data
    {
        get
        {
            lock (_gate) return new Dictionary<string, object?>(_data, StringComparer.Ordinal);
        }
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlySet<MessageId>> FilterHandledAsync(string inbox, IReadOnlyList<MessageId> ids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        lock (_gate) return ValueTask.FromResult<IReadOnlySet<MessageId>>(ids.Where(id => _inbox.ContainsKey(new InboxRecord(inbox, id))).ToHashSet());
    }

    /// <inheritdoc />
    public ValueTask<MessageCommitResult> CommitAsync(MessageTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            var now = _clock.GetUtcNow();
            if (transaction.Inbox is { } seen && _inbox.ContainsKey(seen)) return ValueTask.FromResult(MessageCommitResult.Duplicate);
            // Checked before anything changes: a commit takes effect whole or not at all.
            foreach (var o in transaction.Outgoing) Validate(o);
            if (transaction.Work.Count > 0)
            {
                // The work writes to a copy that replaces the table only if all of it succeeds.
                var staged = new Dictionary<string, object?>(_data, StringComparer.Ordinal);
                var session = new InMemoryMessageSession(staged);
                foreach (var w in transaction.Work) w.RunSynchronously(session);
                _data = staged;
            }
            if (transaction.Inbox is { } record) _inbox[record] = now;
            foreach (var o in transaction.Outgoing)
            {
                var id = ++_nextOutbox;
                _outbox[id] = new OutboxEntry(id, o, now);
            }
            foreach (var d in transaction.DeadLetters) AddDeadLetter(d, now);
            if (transaction.Outgoing.Count > 0) Signal();
        }
        return ValueTask.FromResult(MessageCommitResult.Committed);
    }

    private void AddDeadLetter(DeadLetterRecord d, DateTimeOffset now)
    {
        // One dead letter per message and source: a redelivery after a crash between this commit and the ack fails again
        // and lands here a second time; replay removes the letter, so a replayed copy can be dead-lettered anew.
        if (_dead.Values.Any(v => v.Letter.Message.Id == d.Message.Id && SameSource(v.Letter.Source, d.Source))) return;
        long? behind = null;
        if (d.Message.PartitionKey is { } key) behind = FindHoldLocked(d.Source, key);
        var id = ++_nextDead;
        _dead[id] = (new DeadLetter(id, d.Message, d.Source, d.Failure, now, behind), d.HoldKey && d.Message.PartitionKey is not null);
    }

    internal static void Validate(OutgoingMessage o)
    {
        if ((o.Topic is null) == (o.Queue is null)) throw new ArgumentException($"Outgoing message {o.Message.Id} needs exactly one destination: a topic or a queue.", nameof(o));
        if (o.Topic is not null && o.DeliverAt is not null) throw new ArgumentException($"Outgoing message {o.Message.Id}: only sends to a queue can be scheduled, not publishes to topic '{o.Topic}'.", nameof(o));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<OutboxEntry>> ReadDueOutboxAsync(int max, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        var now = _clock.GetUtcNow();
        lock (_gate) return ValueTask.FromResult<IReadOnlyList<OutboxEntry>>(_outbox.Values.Where(e => e.Message.DeliverAt is not { } at || at <= now).Take(max).ToList());
    }

    /// <inheritdoc />
    public async ValueTask CompleteOutboxAsync(IReadOnlyList<long> ids, Lease? fence = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (fence is not null)
        {
            // Checked before removing, under no lock of ours: the lease store is the authority, and an owner that is
            // still current when checked completes what it dispatched; the dispatch itself was at-least-once anyway.
            var leases = _leases ?? throw new InvalidOperationException("A fenced completion needs the lease store: pass it to the InMemoryMessageStore constructor.");
            var current = (await leases.ListAsync(cancellationToken).ConfigureAwait(false)).FirstOrDefault(l => l.Name == fence.Name);
            if (current is null || current.Owner != fence.Owner || current.FencingToken != fence.FencingToken || current.ExpiresAt <= _clock.GetUtcNow())
                throw new LeaseLostException(fence);
        }
        lock (_gate)
        {
            foreach (var id in ids) _outbox.Remove(id);
        }
    }

    /// <inheritdoc />
    public ValueTask<long> CountOutboxAsync(CancellationToken cancellationToken = default)
    {
        lock (_gate) return ValueTask.FromResult((long)_outbox.Count);
    }

    /// <inheritdoc />
    public ValueTask<long?> FindHoldAsync(MessageSource source, string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        lock (_gate) return ValueTask.FromResult(FindHoldLocked(source, key));
    }

    private long? FindHoldLocked(MessageSource source, string key)
    {
        foreach (var (id, (letter, hold)) in _dead)
        {
            if (hold && letter.Message.PartitionKey == key && SameSource(letter.Source, source)) return id;
        }
        return null;
    }

    internal static bool SameSource(MessageSource a, MessageSource b) => a.Kind == b.Kind && a.Name == b.Name && a.Group == b.Group;

    /// <inheritdoc />
    public async IAsyncEnumerable<DeadLetter> ListDeadLettersAsync(DeadLetterFilter filter, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        List<DeadLetter> found;
        lock (_gate) found = Select(filter).ToList();
        foreach (var d in found)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return d;
        }
        await Task.CompletedTask.ConfigureAwait(false);
    }

    private IEnumerable<DeadLetter> Select(DeadLetterFilter filter)
    {
        var matching = _dead.Values.Select(v => v.Letter).Where(filter.Matches);
        return filter.Limit is { } limit ? matching.Take(limit) : matching;
    }

    /// <inheritdoc />
    public ValueTask<int> ReplayDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        lock (_gate)
        {
            var now = _clock.GetUtcNow();
            var chosen = WithFollowers(Select(filter).ToList());
            foreach (var d in chosen)
            {
                _dead.Remove(d.Id);
                var id = ++_nextOutbox;
                _outbox[id] = new OutboxEntry(id, new OutgoingMessage(Replayed(d), null, d.Source.ReplayQueue), now);
            }
            if (chosen.Count > 0) Signal();
            return ValueTask.FromResult(chosen.Count);
        }
    }

    /// <summary>
    /// The chosen letters plus every letter held behind one of them, in dead-letter order: replaying a key's blocker
    /// without the messages that queued up behind it would let them overtake it later.
    /// </summary>
    private List<DeadLetter> WithFollowers(List<DeadLetter> chosen)
    {
        var ids = chosen.Select(d => d.Id).ToHashSet();
        foreach (var (letter, _) in _dead.Values)
        {
            if (letter.HeldBehind is { } blocker && ids.Contains(blocker)) ids.Add(letter.Id);
        }
        return [.. _dead.Values.Select(v => v.Letter).Where(d => ids.Contains(d.Id))];
    }

    /// <summary>The copy a replay sends: the same message (same id, so inboxes still drop it if it was handled), counted as replayed once more.</summary>
    internal static TransportMessage Replayed(DeadLetter d)
    {
        var headers = new Dictionary<string, string>(d.Message.Headers, StringComparer.Ordinal)
        {
            [MessageHeaders.Replayed] = (d.ReplayCount + 1).ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        headers.Remove(MessageHeaders.Attempt);
        headers.Remove(MessageHeaders.FirstFailure);
        return d.Message with { Headers = headers };
    }

    /// <inheritdoc />
    public ValueTask<int> DiscardDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        lock (_gate)
        {
            var chosen = Select(filter).ToList();
            foreach (var d in chosen) _dead.Remove(d.Id);
            return ValueTask.FromResult(chosen.Count);
        }
    }

    /// <inheritdoc />
    public ValueTask<long> PurgeInboxAsync(DateTimeOffset olderThan, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var old = _inbox.Where(kv => kv.Value < olderThan).Select(kv => kv.Key).ToList();
            foreach (var k in old) _inbox.Remove(k);
            return ValueTask.FromResult((long)old.Count);
        }
    }

    /// <inheritdoc />
    public async Task WaitForOutboxAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Task signal;
        lock (_gate) signal = _changed.Task;
        try
        {
            await signal.WaitAsync(timeout, _clock, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Time to look anyway (scheduled messages fall due without a signal).
        }
    }

    private void Signal()
    {
        var old = _changed;
        _changed = NewSignal();
        old.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
