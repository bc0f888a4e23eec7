using System.Globalization;
using System.Runtime.CompilerServices;

namespace Factum.Messaging;

/// <summary>
/// A transport in process memory, for tests and single-process apps that accept losing messages on a crash. It gives
/// the same guarantees as the durable transports while the process lives (it passes the same conformance suite).
/// </summary>
/// <remarks>One lock guards all state; settlements, publishes and replays are atomic under it.</remarks>
public sealed class InMemoryTransport : IMessageTransport
{
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly Dictionary<string, TopicState> _topics = new(StringComparer.Ordinal);
    private readonly Dictionary<string, QueueState> _queues = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Dictionary<MessageId, DateTimeOffset>> _inbox = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Topic, string Group), GroupState> _groups = [];
    private readonly Dictionary<(string Source, string? Group, string Key), Hold> _holds = [];
    private readonly SortedDictionary<long, DeadLetter> _deadLetters = [];
    private long _nextDeadLetter = 1;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Creates an empty transport.</summary>
    public InMemoryTransport(TimeProvider? timeProvider = null) => _time = timeProvider ?? TimeProvider.System;

    /// <inheritdoc />
    public string Name => "in-memory";

    /// <inheritdoc />
    public bool IsDurable => false;

    private DateTimeOffset Now => _time.GetUtcNow();

    private void Changed() => Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <inheritdoc />
    public async Task WaitForChangeAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        try
        {
            await Volatile.Read(ref _changed).Task.WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A timeout is an ordinary wake-up (delayed messages and expired leases become visible with time).
        }
    }

    /// <inheritdoc />
    public ValueTask DeclareTopicAsync(TopicName topic, TopicOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        lock (_gate)
        {
            if (_topics.TryGetValue(topic.Value, out var existing))
            {
                if (existing.Options.Partitions != options.Partitions && existing.Options.Partitions > 0)
                    throw new ArgumentException($"Topic '{topic}' has {existing.Options.Partitions} partitions; it cannot be redeclared with {options.Partitions} (keys would move between partitions and lose their order).", nameof(options));
                existing.SetOptions(options);
            }
            else _topics[topic.Value] = new TopicState(options);
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask SubscribeAsync(TopicName topic, GroupName group, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            Topic(topic.Value).Subscriptions.Add(group.Value);
            Queue(QueueName.ForGroup(topic, group).Value);
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask UnsubscribeAsync(TopicName topic, GroupName group, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (_topics.TryGetValue(topic.Value, out var t)) t.Subscriptions.Remove(group.Value);
            _queues.Remove(QueueName.ForGroup(topic, group).Value);
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<PublishReceipt> PublishAsync(TopicName topic, IReadOnlyList<TransportMessage> messages, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        cancellationToken.ThrowIfCancellationRequested();
        PublishReceipt receipt;
        lock (_gate) receipt = PublishLocked(topic.Value, messages, Now);
        Changed();
        return ValueTask.FromResult(receipt);
    }

    private PublishReceipt PublishLocked(string topic, IReadOnlyList<TransportMessage> messages, DateTimeOffset now)
    {
        var t = Topic(topic);
        foreach (var group in t.Subscriptions)
        {
            var q = Queue(topic + "@" + group);
            foreach (var m in messages) q.Enqueue(m, now, now);
        }
        if (t.Options.Partitions == 0) return new PublishReceipt(t.Subscriptions.Count, []);
        var offsets = new PartitionOffset[messages.Count];
        for (var i = 0; i < messages.Count; i++)
        {
            var p = KeyPartitioner.For(messages[i].PartitionKey, t.Options.Partitions);
            offsets[i] = new PartitionOffset(p, t.Logs[p].Append(messages[i], now));
        }
        return new PublishReceipt(t.Subscriptions.Count, offsets);
    }

    /// <inheritdoc />
    public ValueTask SendAsync(QueueName queue, IReadOnlyList<TransportMessage> messages, DateTimeOffset? deliverAt = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            var now = Now;
            var q = Queue(queue.Value);
            foreach (var m in messages) q.Enqueue(m, deliverAt ?? now, now);
        }
        Changed();
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<QueueDelivery>> ReceiveAsync(QueueName queue, string consumer, int max, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (!_queues.TryGetValue(queue.Value, out var q)) return ValueTask.FromResult<IReadOnlyList<QueueDelivery>>([]);
            return ValueTask.FromResult<IReadOnlyList<QueueDelivery>>(q.Receive(queue, max, Now, lease));
        }
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<QueueDelivery>> ExtendLeasesAsync(IReadOnlyList<QueueDelivery> deliveries, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(deliveries);
        var held = new List<QueueDelivery>();
        lock (_gate)
        {
            var until = Now + lease;
            foreach (var d in deliveries)
            {
                if (_queues.TryGetValue(d.Queue.Value, out var q) && q.InFlight.TryGetValue(d.Sequence, out var e) && e.LeaseToken == d.LeaseToken)
                {
                    e.VisibleAt = until;
                    held.Add(d with { LeaseExpires = until });
                }
            }
        }
        return ValueTask.FromResult<IReadOnlyList<QueueDelivery>>(held);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<bool>> SettleAsync(IReadOnlyList<Settlement> settlements, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settlements);
        var results = new bool[settlements.Count];
        Exception? error = null;
        lock (_gate)
        {
            var now = Now;
            for (var i = 0; i < settlements.Count; i++)
            {
                try
                {
                    results[i] = SettleLocked(settlements[i], now);
                }
                catch (Exception ex)
                {
                    // This settlement changed nothing (enlisted work runs first); the others still apply.
                    error ??= ex;
                }
            }
        }
        Changed();
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        return ValueTask.FromResult<IReadOnlyList<bool>>(results);
    }

    private bool SettleLocked(Settlement s, DateTimeOffset now)
    {
        TransportMessage message;
        QueueState? q = null;
        QueueEntry? entry = null;
        if (s.Delivery is { } d)
        {
            if (!_queues.TryGetValue(d.Queue.Value, out q) || !q.InFlight.TryGetValue(d.Sequence, out entry) || entry.LeaseToken != d.LeaseToken) return false;
            message = entry.Message;
        }
        else message = (s.Record ?? throw new ArgumentException("A settlement needs a Delivery or a Record.", nameof(s))).Message;

        switch (s.Kind)
        {
            case SettlementKind.Ack:
                // Enlisted work runs first: if it throws, nothing else has changed.
                foreach (var work in s.Enlisted) work(null);
                q?.Remove(entry!);
                if (s.Inbox is not null) Inbox(s.Inbox)[message.Id] = now;
                foreach (var o in s.Outgoing)
                {
                    if (o.Topic is { } t) PublishLocked(t.Value, [o.Message], now);
                    else Queue(o.Queue!.Value.Value).Enqueue(o.Message, o.DeliverAt ?? now, now);
                }
                if (q is not null && message.PartitionKey is { } key) ReleaseReplayHold(s.Source, key, q);
                return true;
            case SettlementKind.Retry:
                if (q is null) throw new ArgumentException("Only queue deliveries can be retried by the transport; stream records are retried in process.", nameof(s));
                q.Delay(entry!, s.RetryAt ?? now, s.Failure?.FirstFailure ?? now);
                return true;
            case SettlementKind.Release:
                q?.Release(entry!);
                return true;
            case SettlementKind.Defer:
                var target = Queue((s.Record is null ? throw new ArgumentException("Only stream records can be deferred.", nameof(s)) : s.Source.ReplayQueue).Value);
                target.Enqueue(message, now, now);
                return true;
            case SettlementKind.DeadLetter:
                q?.Remove(entry!);
                var failure = s.Failure ?? new FailureInfo("Unknown", "dead-lettered without a reason", null, 1, now, now);
                long? behind = null;
                var holdKey = message.PartitionKey is { } k && s.HoldKey ? (s.Source.Name, s.Source.Group, k) : default;
                if (holdKey != default && _holds.TryGetValue(holdKey, out var hold) && hold.Blocker is { } blocker) behind = blocker;
                var id = AddDeadLetter(message, s.Source, failure, now, behind);
                if (holdKey != default && behind is null)
                {
                    _holds[holdKey] = new Hold(id);
                    // Later messages of the key already queued (replays in progress) follow it, in order.
                    if (q is not null)
                    {
                        foreach (var later in q.TakeKey(holdKey.Item3))
                            AddDeadLetter(later.Message, s.Source, failure with { ExceptionType = "Held", Message = $"held behind dead letter {id} (same partition key)", StackTrace = null }, now, id);
                    }
                }
                return true;
            default:
                throw new ArgumentOutOfRangeException(nameof(s), s.Kind, "Unknown settlement kind.");
        }
    }

    private void ReleaseReplayHold(MessageSource source, string key, QueueState q)
    {
        if (source.Kind == MessageSourceKind.Queue) return;
        var hk = (source.Name, source.Group, key);
        if (_holds.TryGetValue(hk, out var h) && h.Blocker is null && !q.HasKey(key)) _holds.Remove(hk);
    }

    private long AddDeadLetter(TransportMessage message, MessageSource source, FailureInfo failure, DateTimeOffset now, long? behind)
    {
        var id = _nextDeadLetter++;
        _deadLetters[id] = new DeadLetter(id, message, source, failure, now, behind);
        return id;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlySet<MessageId>> FilterHandledAsync(string inbox, IReadOnlyList<MessageId> ids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        lock (_gate)
        {
            if (!_inbox.TryGetValue(inbox, out var handled)) return ValueTask.FromResult<IReadOnlySet<MessageId>>(new HashSet<MessageId>());
            return ValueTask.FromResult<IReadOnlySet<MessageId>>(ids.Where(handled.ContainsKey).ToHashSet());
        }
    }

    /// <inheritdoc />
    public ValueTask<long> PurgeInboxAsync(DateTimeOffset olderThan, CancellationToken cancellationToken = default)
    {
        long n = 0;
        lock (_gate)
        {
            foreach (var inbox in _inbox.Values)
            {
                foreach (var old in inbox.Where(kv => kv.Value < olderThan).Select(kv => kv.Key).ToList()) { inbox.Remove(old); n++; }
            }
        }
        return ValueTask.FromResult(n);
    }

    /// <inheritdoc />
    public ValueTask HeartbeatConsumerAsync(QueueName queue, string consumer, CancellationToken cancellationToken = default)
    {
        lock (_gate) Queue(queue.Value).Consumers[consumer] = Now;
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask RemoveConsumerAsync(QueueName queue, string consumer, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (_queues.TryGetValue(queue.Value, out var q)) q.Consumers.Remove(consumer);
            if (queue.Value.StartsWith("$reply.", StringComparison.Ordinal)) _queues.Remove(queue.Value);
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<bool> HasLiveConsumerAsync(QueueName queue, TimeSpan within, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var since = Now - within;
            return ValueTask.FromResult(_queues.TryGetValue(queue.Value, out var q) && q.Consumers.Values.Any(seen => seen >= since));
        }
    }

    /// <inheritdoc />
    public ValueTask<GroupAssignment> HeartbeatGroupAsync(TopicName topic, GroupName group, string member, IReadOnlyCollection<int> running, TimeSpan sessionTimeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(running);
        lock (_gate)
        {
            var t = StreamTopic(topic.Value);
            var g = Group(topic.Value, group.Value, t.Options.Partitions);
            var now = Now;
            g.Members[member] = now;
            foreach (var dead in g.Members.Where(kv => kv.Value < now - sessionTimeout).Select(kv => kv.Key).ToList())
            {
                g.Members.Remove(dead);
                for (var p = 0; p < g.Owners.Length; p++) if (g.Owners[p] == dead) g.Owners[p] = null;
            }
            var members = g.Members.Keys.Order(StringComparer.Ordinal).ToList();
            var me = members.IndexOf(member);
            var owned = new List<PartitionOffset>();
            var revoke = new List<int>();
            for (var p = 0; p < g.Owners.Length; p++)
            {
                var mine = p % members.Count == me;
                if (mine && (g.Owners[p] is null || g.Owners[p] == member))
                {
                    g.Owners[p] = member;
                    owned.Add(new PartitionOffset(p, Math.Max(g.Committed[p], t.Logs[p].Start)));
                }
                else if (!mine && g.Owners[p] == member)
                {
                    if (running.Contains(p)) revoke.Add(p);
                    else g.Owners[p] = null;
                }
            }
            return ValueTask.FromResult(new GroupAssignment(owned, revoke, members.Count));
        }
    }

    /// <inheritdoc />
    public ValueTask LeaveGroupAsync(TopicName topic, GroupName group, string member, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (_groups.TryGetValue((topic.Value, group.Value), out var g))
            {
                g.Members.Remove(member);
                for (var p = 0; p < g.Owners.Length; p++) if (g.Owners[p] == member) g.Owners[p] = null;
            }
        }
        Changed();
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<StreamRecord>> FetchAsync(TopicName topic, GroupName group, int partition, long fromOffset, int max, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var t = StreamTopic(topic.Value);
            if ((uint)partition >= (uint)t.Logs.Length) throw new ArgumentOutOfRangeException(nameof(partition), partition, $"Topic '{topic}' has {t.Logs.Length} partitions.");
            var log = t.Logs[partition];
            var from = Math.Max(fromOffset, log.Start);
            var result = new List<StreamRecord>();
            var groupQueue = _queues.GetValueOrDefault(topic.Value + "@" + group.Value);
            for (var o = from; o < log.End && result.Count < max; o++)
            {
                var r = log.Records[(int)(o - log.Start)];
                var hold = KeyHold.None;
                if (r.Message.PartitionKey is { } key && _holds.TryGetValue((topic.Value, group.Value, key), out var h))
                    hold = h.Blocker is null ? KeyHold.Replaying : KeyHold.DeadLettered;
                else if (r.Message.PartitionKey is { } k2 && groupQueue is not null && groupQueue.HasKey(k2)) hold = KeyHold.Replaying;
                result.Add(new StreamRecord(partition, o, r.Message, r.AppendedAt, hold));
            }
            return ValueTask.FromResult<IReadOnlyList<StreamRecord>>(result);
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> CommitOffsetsAsync(TopicName topic, GroupName group, string member, IReadOnlyList<PartitionOffset> offsets, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(offsets);
        var all = true;
        lock (_gate)
        {
            var t = StreamTopic(topic.Value);
            var g = Group(topic.Value, group.Value, t.Options.Partitions);
            foreach (var o in offsets)
            {
                if (g.Owners[o.Partition] != member) { all = false; continue; }
                g.Committed[o.Partition] = Math.Max(g.Committed[o.Partition], o.Offset);
            }
        }
        return ValueTask.FromResult(all);
    }

    /// <inheritdoc />
    public ValueTask ResetGroupAsync(TopicName topic, GroupName group, GroupReset reset, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reset);
        lock (_gate)
        {
            var t = StreamTopic(topic.Value);
            var g = Group(topic.Value, group.Value, t.Options.Partitions);
            if (g.Members.Count > 0)
                throw new InvalidOperationException($"Group '{group}' on '{topic}' has {g.Members.Count} live member(s) ({string.Join(", ", g.Members.Keys)}); stop them before resetting its offsets.");
            for (var p = 0; p < g.Committed.Length; p++)
            {
                var log = t.Logs[p];
                g.Committed[p] = reset.Kind switch
                {
                    0 => log.Start,
                    1 => log.End,
                    2 => Math.Clamp(reset.Offset, log.Start, log.End),
                    _ => log.Records.FindIndex(r => r.AppendedAt >= reset.At) is var i and >= 0 ? log.Start + i : log.End,
                };
            }
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<long> ApplyRetentionAsync(CancellationToken cancellationToken = default)
    {
        long removed = 0;
        lock (_gate)
        {
            var now = Now;
            foreach (var t in _topics.Values)
            {
                foreach (var log in t.Logs) removed += log.Trim(t.Options, now);
            }
        }
        return ValueTask.FromResult(removed);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<DeadLetter> ListDeadLettersAsync(DeadLetterFilter filter, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        List<DeadLetter> matches;
        lock (_gate) matches = _deadLetters.Values.Where(filter.Matches).Take(filter.Limit ?? int.MaxValue).ToList();
        foreach (var d in matches)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return d;
        }
        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<int> ReplayDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        int n;
        lock (_gate)
        {
            var now = Now;
            var chosen = _deadLetters.Values.Where(filter.Matches).Take(filter.Limit ?? int.MaxValue).ToList();
            var selected = ReplaySelection.Expand(chosen, _deadLetters.Values);
            foreach (var d in selected)
            {
                _deadLetters.Remove(d.Id);
                Queue(d.Source.ReplayQueue.Value).Enqueue(ReplaySelection.MarkReplayed(d.Message), now, now);
                if (d.HeldBehind is null && d.Message.PartitionKey is { } key && _holds.TryGetValue((d.Source.Name, d.Source.Group, key), out var h) && h.Blocker == d.Id)
                    _holds[(d.Source.Name, d.Source.Group, key)] = new Hold(null);
            }
            n = selected.Count;
        }
        if (n > 0) Changed();
        return ValueTask.FromResult(n);
    }

    /// <inheritdoc />
    public ValueTask<int> DiscardDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        lock (_gate)
        {
            var chosen = _deadLetters.Values.Where(filter.Matches).Take(filter.Limit ?? int.MaxValue).ToList();
            foreach (var d in chosen)
            {
                _deadLetters.Remove(d.Id);
                if (d.HeldBehind is not null || d.Message.PartitionKey is not { } key) continue;
                var hk = (d.Source.Name, d.Source.Group, key);
                if (!_holds.TryGetValue(hk, out var h) || h.Blocker != d.Id) continue;
                // The first message held behind the discarded one now holds the key, so the rest keep their order.
                var followers = _deadLetters.Values.Where(x => x.HeldBehind == d.Id).ToList();
                if (followers.Count == 0) { _holds.Remove(hk); continue; }
                var head = followers[0];
                _deadLetters[head.Id] = head with { HeldBehind = null };
                foreach (var f in followers.Skip(1)) _deadLetters[f.Id] = f with { HeldBehind = head.Id };
                _holds[hk] = new Hold(head.Id);
            }
            return ValueTask.FromResult(chosen.Count);
        }
    }

    /// <inheritdoc />
    public ValueTask<TransportStatus> GetStatusAsync(CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var now = Now;
            var topics = _topics.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => new TopicStatus(t.Key, t.Value.Options,
                t.Value.Subscriptions.Order(StringComparer.Ordinal).ToList(),
                t.Value.Logs.Select((l, p) => new PartitionStatus(p, l.Start, l.End)).ToList())).ToList();
            var queues = _queues.OrderBy(q => q.Key, StringComparer.Ordinal).Select(q => q.Value.Status(q.Key, now)).ToList();
            var groups = _groups.OrderBy(g => g.Key.Topic, StringComparer.Ordinal).ThenBy(g => g.Key.Group, StringComparer.Ordinal).Select(g =>
            {
                var logs = _topics[g.Key.Topic].Logs;
                var members = g.Value.Members.OrderBy(m => m.Key, StringComparer.Ordinal)
                    .Select(m => new GroupMemberStatus(m.Key, m.Value, Enumerable.Range(0, g.Value.Owners.Length).Where(p => g.Value.Owners[p] == m.Key).ToList())).ToList();
                var parts = Enumerable.Range(0, g.Value.Owners.Length).Select(p => new GroupPartitionStatus(p, g.Value.Owners[p], Math.Max(g.Value.Committed[p], logs[p].Start), logs[p].End)).ToList();
                return new GroupStatus(g.Key.Topic, g.Key.Group, members, parts);
            }).ToList();
            var dead = _deadLetters.Values.GroupBy(d => (d.Source.Name, d.Source.Group)).OrderBy(g => g.Key.Name, StringComparer.Ordinal)
                .Select(g => new DeadLetterDepth(g.Key.Name, g.Key.Group, g.Count())).ToList();
            return ValueTask.FromResult(new TransportStatus(topics, queues, groups, dead));
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private TopicState Topic(string name)
    {
        if (!_topics.TryGetValue(name, out var t)) _topics[name] = t = new TopicState(new TopicOptions());
        return t;
    }

    private TopicState StreamTopic(string name) =>
        _topics.TryGetValue(name, out var t) && t.Options.Partitions > 0 ? t : throw new InvalidOperationException($"Topic '{name}' is not a stream; declare it with partitions first.");

    private QueueState Queue(string name)
    {
        if (!_queues.TryGetValue(name, out var q)) _queues[name] = q = new QueueState();
        return q;
    }

    private GroupState Group(string topic, string group, int partitions)
    {
        if (!_groups.TryGetValue((topic, group), out var g)) _groups[(topic, group)] = g = new GroupState(partitions);
        return g;
    }

    private Dictionary<MessageId, DateTimeOffset> Inbox(string name)
    {
        if (!_inbox.TryGetValue(name, out var i)) _inbox[name] = i = [];
        return i;
    }

    private sealed record Hold(long? Blocker);

    private sealed class TopicState(TopicOptions options)
    {
        public TopicOptions Options { get; private set; } = options;

        public HashSet<string> Subscriptions { get; } = new(StringComparer.Ordinal);

        public PartitionLog[] Logs { get; private set; } = Enumerable.Range(0, options.Partitions).Select(_ => new PartitionLog()).ToArray();

        public void SetOptions(TopicOptions options)
        {
            if (Logs.Length == 0 && options.Partitions > 0) Logs = Enumerable.Range(0, options.Partitions).Select(_ => new PartitionLog()).ToArray();
            Options = options;
        }
    }

    private sealed class PartitionLog
    {
        public List<(TransportMessage Message, DateTimeOffset AppendedAt)> Records { get; } = [];

        public long Start { get; private set; }

        public long End => Start + Records.Count;

        public long Append(TransportMessage m, DateTimeOffset now)
        {
            Records.Add((m, now));
            return End - 1;
        }

        public long Trim(TopicOptions o, DateTimeOffset now)
        {
            var drop = 0;
            if (o.MaxCount is { } max && Records.Count > max) drop = (int)(Records.Count - max);
            if (o.MaxAge is { } age) while (drop < Records.Count && Records[drop].AppendedAt < now - age) drop++;
            if (o.MaxBytes is { } bytes)
            {
                long total = Records.Skip(drop).Sum(r => (long)r.Message.Body.Length);
                while (drop < Records.Count && total > bytes) total -= Records[drop++].Message.Body.Length;
            }
            Records.RemoveRange(0, drop);
            Start += drop;
            return drop;
        }
    }

    private sealed class GroupState(int partitions)
    {
        public Dictionary<string, DateTimeOffset> Members { get; } = new(StringComparer.Ordinal);

        public string?[] Owners { get; } = new string?[partitions];

        public long[] Committed { get; } = new long[partitions];
    }

    private sealed class QueueEntry(long seq, TransportMessage message, DateTimeOffset visibleAt, DateTimeOffset enqueuedAt)
    {
        public long Seq { get; } = seq;

        public TransportMessage Message { get; } = message;

        public DateTimeOffset VisibleAt { get; set; } = visibleAt;

        public DateTimeOffset EnqueuedAt { get; } = enqueuedAt;

        public int Attempts { get; set; }

        public string? LeaseToken { get; set; }

        public DateTimeOffset? FirstFailure { get; set; }
    }

    private sealed class QueueState
    {
        private readonly LinkedList<QueueEntry> _ready = new();
        private readonly List<QueueEntry> _delayed = [];
        private readonly Dictionary<string, int> _blocked = new(StringComparer.Ordinal);
        private long _nextSeq = 1;

        public Dictionary<long, QueueEntry> InFlight { get; } = [];

        public Dictionary<string, DateTimeOffset> Consumers { get; } = new(StringComparer.Ordinal);

        public void Enqueue(TransportMessage m, DateTimeOffset visibleAt, DateTimeOffset now)
        {
            var e = new QueueEntry(_nextSeq++, m, visibleAt, now);
            if (visibleAt > now) AddDelayed(e);
            else _ready.AddLast(e);
        }

        private void AddDelayed(QueueEntry e)
        {
            _delayed.Add(e);
            if (e.Message.PartitionKey is { } k) _blocked[k] = _blocked.GetValueOrDefault(k) + 1;
        }

        private void Unblock(QueueEntry e)
        {
            if (e.Message.PartitionKey is not { } k) return;
            if (_blocked[k] == 1) _blocked.Remove(k);
            else _blocked[k]--;
        }

        private void InsertReady(QueueEntry e)
        {
            var node = _ready.First;
            while (node is not null && node.Value.Seq < e.Seq) node = node.Next;
            if (node is null) _ready.AddLast(e);
            else _ready.AddBefore(node, e);
        }

        public List<QueueDelivery> Receive(QueueName name, int max, DateTimeOffset now, TimeSpan lease)
        {
            foreach (var expired in InFlight.Values.Where(e => e.VisibleAt <= now).ToList())
            {
                InFlight.Remove(expired.Seq);
                expired.LeaseToken = null;
                Unblock(expired);
                InsertReady(expired);
            }
            for (var i = _delayed.Count - 1; i >= 0; i--)
            {
                var e = _delayed[i];
                if (e.VisibleAt > now) continue;
                _delayed.RemoveAt(i);
                Unblock(e);
                InsertReady(e);
            }
            var result = new List<QueueDelivery>();
            HashSet<string>? seen = null;
            var node = _ready.First;
            while (node is not null && result.Count < max)
            {
                var next = node.Next;
                var e = node.Value;
                var key = e.Message.PartitionKey;
                if (key is null || (!_blocked.ContainsKey(key) && (seen ??= new(StringComparer.Ordinal)).Add(key)))
                {
                    _ready.Remove(node);
                    e.Attempts++;
                    e.LeaseToken = Guid.NewGuid().ToString("N");
                    e.VisibleAt = now + lease;
                    InFlight[e.Seq] = e;
                    if (key is not null) _blocked[key] = _blocked.GetValueOrDefault(key) + 1;
                    result.Add(new QueueDelivery(name, e.Seq, e.Message, e.Attempts, e.LeaseToken, e.VisibleAt, e.FirstFailure));
                }
                node = next;
            }
            return result;
        }

        public void Remove(QueueEntry e)
        {
            InFlight.Remove(e.Seq);
            Unblock(e);
        }

        public void Release(QueueEntry e)
        {
            Remove(e);
            e.Attempts--;
            e.LeaseToken = null;
            InsertReady(e);
        }

        public void Delay(QueueEntry e, DateTimeOffset at, DateTimeOffset firstFailure)
        {
            Remove(e);
            e.LeaseToken = null;
            e.VisibleAt = at;
            e.FirstFailure ??= firstFailure;
            AddDelayed(e);
        }

        public bool HasKey(string key) =>
            _blocked.ContainsKey(key) || _ready.Any(e => e.Message.PartitionKey == key);

        public List<QueueEntry> TakeKey(string key)
        {
            var taken = new List<QueueEntry>();
            var node = _ready.First;
            while (node is not null)
            {
                var next = node.Next;
                if (node.Value.Message.PartitionKey == key) { taken.Add(node.Value); _ready.Remove(node); }
                node = next;
            }
            for (var i = _delayed.Count - 1; i >= 0; i--)
            {
                if (_delayed[i].Message.PartitionKey != key) continue;
                taken.Add(_delayed[i]);
                Unblock(_delayed[i]);
                _delayed.RemoveAt(i);
            }
            return taken.OrderBy(e => e.Seq).ToList();
        }

        public QueueStatus Status(string name, DateTimeOffset now)
        {
            var inflight = InFlight.Values.Count(e => e.VisibleAt > now);
            var ready = _ready.Count + InFlight.Count - inflight + _delayed.Count(e => e.VisibleAt <= now);
            var oldest = _ready.Count > 0 ? _ready.Min(e => e.EnqueuedAt) : (DateTimeOffset?)null;
            return new QueueStatus(name, ready, inflight, _delayed.Count(e => e.VisibleAt > now),
                Consumers.Where(c => c.Value >= now - TimeSpan.FromSeconds(30)).Select(c => c.Key).Order(StringComparer.Ordinal).ToList(), oldest);
        }
    }
}

/// <summary>Rules shared by transports for which dead letters a replay moves, and how a replayed copy is marked.</summary>
public static class ReplaySelection
{
    /// <summary>
    /// Adds to <paramref name="chosen"/> the dead letters held behind a chosen one (they must follow it, in order) and
    /// drops held ones whose blocker was not chosen (replaying them first would overtake it). Ordered by id.
    /// </summary>
    public static List<DeadLetter> Expand(IReadOnlyCollection<DeadLetter> chosen, IEnumerable<DeadLetter> all)
    {
        ArgumentNullException.ThrowIfNull(chosen);
        var blockers = chosen.Where(d => d.HeldBehind is null).Select(d => d.Id).ToHashSet();
        return chosen.Where(d => d.HeldBehind is null || blockers.Contains(d.HeldBehind.Value))
            .Concat(all.Where(d => d.HeldBehind is { } b && blockers.Contains(b)))
            .DistinctBy(d => d.Id).OrderBy(d => d.Id).ToList();
    }

    /// <summary>The copy that goes back to its destination: same id and body, <see cref="MessageHeaders.Replayed"/> incremented.</summary>
    public static TransportMessage MarkReplayed(TransportMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var headers = new Dictionary<string, string>(message.Headers, StringComparer.Ordinal);
        var n = headers.TryGetValue(MessageHeaders.Replayed, out var v) && int.TryParse(v, CultureInfo.InvariantCulture, out var c) ? c : 0;
        headers[MessageHeaders.Replayed] = (n + 1).ToString(CultureInfo.InvariantCulture);
        return message with { Headers = headers };
    }
}
