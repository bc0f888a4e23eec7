using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using Factum.Coordination;
using Factum.Messaging;

namespace Factum.Conformance.Messaging;

/// <summary>How a database backend enrolls in the message-store suite.</summary>
public interface IMessageStoreFactory
{
    /// <summary>A fresh, empty message store and the lease store of the same database, on <paramref name="clock"/>.</summary>
    (IMessageStore Store, ILeaseStore Leases) Create(TimeProvider clock);

    /// <summary>A handler write in the store's own data: adds one to the counter <paramref name="key"/>.</summary>
    MessageWork CountEffect(string key);

    /// <summary>Reads the counter <paramref name="key"/> (0 when never written).</summary>
    Task<int> EffectsAsync(IMessageStore store, string key);

    /// <summary>Disposes the store and removes its files.</summary>
    ValueTask DestroyAsync(IMessageStore store);
}

/// <summary>
/// The message store's contract: atomic message transactions (inbox record, handler writes, outbox, dead letters),
/// exactly one winner among consumers racing on one inbox record, an outbox kept in order by one dispatcher among
/// several, scheduled messages, fenced completion, and dead-letter replay that is never lost or doubled.
/// </summary>
public abstract class MessageStoreConformance<TFactory> : IAsyncLifetime where TFactory : IMessageStoreFactory, new()
{
    private readonly TFactory _factory = new();
    private IMessageStore? _store;
    private ILeaseStore? _leases;

    protected ManualClock Clock { get; } = new() { Now = DateTimeOffset.UtcNow };

    protected IMessageStore Store => _store ?? throw new InvalidOperationException("Created in InitializeAsync.");

    protected ILeaseStore Leases => _leases ?? throw new InvalidOperationException("Created in InitializeAsync.");

    protected TFactory Factory => _factory;

    /// <summary>The store under test; a self-test wraps it in a deliberately wrong one.</summary>
    protected virtual IMessageStore Wrap(IMessageStore store) => store;

    /// <summary>The lease store the dispatchers share; a self-test takes it away.</summary>
    protected virtual ILeaseStore? DispatcherLeases => Leases;

    public Task InitializeAsync()
    {
        var (store, leases) = _factory.Create(Clock);
        _store = Wrap(store);
        _leases = leases;
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_store is not null) await _factory.DestroyAsync(_store is WrappedMessageStore w ? w.Inner : _store);
    }

    protected static TransportMessage Msg(string type = "OrderPlaced", string? key = null, MessageId? id = null) => new()
    {
        Id = id ?? MessageId.New(),
        Type = type,
        SchemaVersion = 1,
        Timestamp = DateTimeOffset.UtcNow,
        CorrelationId = "corr-1",
        PartitionKey = key,
        Body = Encoding.UTF8.GetBytes("""{"orderId":"o-1"}"""),
    };

    private static OutgoingMessage ToQueue(TransportMessage m, string queue = "shipping", DateTimeOffset? at = null) => new(m, null, QueueName.Parse(queue), at);

    private static MessageTransaction Handled(string inbox, TransportMessage m, params MessageWork[] work) => new()
    {
        Inbox = new InboxRecord(inbox, m.Id),
        Work = work,
        Outgoing = [ToQueue(Msg("OrderShipped"))],
    };

    private async Task<List<OutboxEntry>> Outbox() => [.. await Store.ReadDueOutboxAsync(10_000)];

    private static readonly MessageSource OrdersQueue = new(MessageSourceKind.Queue, "orders");

    private static FailureInfo Failure(string type = "System.InvalidOperationException") => new(type, "boom", null, 3, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow);

    [Fact]
    public async Task A_commit_records_the_inbox_the_work_and_the_outbox_together_and_a_second_is_a_duplicate()
    {
        var m = Msg();
        Assert.Equal(MessageCommitResult.Committed, await Store.CommitAsync(Handled("orders", m, _factory.CountEffect("e"))));
        Assert.Contains(m.Id, await Store.FilterHandledAsync("orders", [m.Id, MessageId.New()]));
        Assert.Empty(await Store.FilterHandledAsync("other-inbox", [m.Id]));
        Assert.Equal(1, await _factory.EffectsAsync(Store, "e"));
        var outbox = await Outbox();
        Assert.Equal("OrderShipped", Assert.Single(outbox).Message.Message.Type);

        // The redelivery: nothing of it takes effect.
        Assert.Equal(MessageCommitResult.Duplicate, await Store.CommitAsync(Handled("orders", m, _factory.CountEffect("e"))));
        Assert.Equal(1, await _factory.EffectsAsync(Store, "e"));
        Assert.Single(await Outbox());
        Assert.Equal(1, await Store.CountOutboxAsync());
    }

    [Fact]
    public async Task Two_consumers_racing_on_one_inbox_record_commit_exactly_once()
    {
        const int messages = 40;
        var results = new ConcurrentBag<(MessageId Id, MessageCommitResult Result)>();
        var ids = Enumerable.Range(0, messages).Select(_ => Msg()).ToList();
        using var start = new ManualResetEventSlim();
        var racers = ids.SelectMany(m => new[] { m, m }).Select(m => Task.Run(async () =>
        {
            start.Wait();
            results.Add((m.Id, await Store.CommitAsync(Handled("orders", m, _factory.CountEffect($"race-{m.Id}")))));
        })).ToList();
        start.Set();
        await Task.WhenAll(racers);

        foreach (var m in ids)
        {
            var mine = results.Where(r => r.Id == m.Id).Select(r => r.Result).Order().ToList();
            Assert.Equal([MessageCommitResult.Committed, MessageCommitResult.Duplicate], mine);
            Assert.Equal(1, await _factory.EffectsAsync(Store, $"race-{m.Id}"));
        }
        Assert.Equal(messages, (await Outbox()).Count);
    }

    [Fact]
    public async Task The_outbox_and_the_inbox_record_roll_back_with_a_failing_business_write()
    {
        var m = Msg();
        var failing = MessageWork.For<object>((_, _) => throw new InvalidOperationException("the business write failed"));
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(async () => await Store.CommitAsync(Handled("orders", m, _factory.CountEffect("rolled"), failing)));
        Assert.Equal("the business write failed", ex.Message);
        Assert.Empty(await Store.FilterHandledAsync("orders", [m.Id]));
        Assert.Empty(await Outbox());
        Assert.Equal(0, await _factory.EffectsAsync(Store, "rolled"));

        // The redelivery then commits normally.
        Assert.Equal(MessageCommitResult.Committed, await Store.CommitAsync(Handled("orders", m, _factory.CountEffect("rolled"))));
        Assert.Equal(1, await _factory.EffectsAsync(Store, "rolled"));
        Assert.Single(await Outbox());
    }

    [Fact]
    public async Task Work_for_another_store_session_is_refused_and_nothing_commits()
    {
        var m = Msg();
        var foreign = MessageWork.For<System.IO.StringWriter>((_, _) => ValueTask.CompletedTask);
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(async () => await Store.CommitAsync(Handled("orders", m, foreign)));
        Assert.Contains("StringWriter", ex.Message, StringComparison.Ordinal);
        Assert.Empty(await Store.FilterHandledAsync("orders", [m.Id]));
        Assert.Empty(await Outbox());
    }

    [Fact]
    public async Task Scheduled_messages_stay_in_the_outbox_until_they_are_due()
    {
        var later = Msg("Reminder");
        var now = Msg("Now");
        await Store.CommitAsync(new MessageTransaction { Outgoing = [ToQueue(later, at: Clock.Now.AddMinutes(5)), ToQueue(now)] });
        Assert.Equal(["Now"], (await Outbox()).Select(e => e.Message.Message.Type));
        Assert.Equal(2, await Store.CountOutboxAsync());
        Clock.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(["Reminder", "Now"], (await Outbox()).Select(e => e.Message.Message.Type));
    }

    [Fact]
    public async Task An_outgoing_message_needs_exactly_one_destination()
    {
        var both = new OutgoingMessage(Msg(), new TopicName("orders"), QueueName.Parse("orders"));
        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.CommitAsync(new MessageTransaction { Outgoing = [both] }));
        var scheduledPublish = new OutgoingMessage(Msg(), new TopicName("orders"), null, Clock.Now.AddMinutes(1));
        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.CommitAsync(new MessageTransaction { Outgoing = [scheduledPublish] }));
        Assert.Empty(await Outbox());

        // A bad message fails the whole commit: its inbox record and work are not kept either.
        var m = Msg();
        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.CommitAsync(Handled("orders", m, _factory.CountEffect("invalid")) with { Outgoing = [ToQueue(Msg()), both] }));
        Assert.Empty(await Store.FilterHandledAsync("orders", [m.Id]));
        Assert.Equal(0, await _factory.EffectsAsync(Store, "invalid"));
        Assert.Empty(await Outbox());
    }

    [Fact]
    public async Task Completion_is_fenced_by_the_outbox_lease()
    {
        await Store.CommitAsync(new MessageTransaction { Outgoing = [ToQueue(Msg()), ToQueue(Msg())] });
        var entries = await Outbox();
        var lease = await Leases.TryAcquireAsync($"outbox:{Store.Name}", "paused-owner", TimeSpan.FromSeconds(10));
        Assert.NotNull(lease);
        // The owner pauses past its lease; another process takes the outbox over.
        Clock.Advance(TimeSpan.FromSeconds(11));
        var successor = await Leases.TryAcquireAsync($"outbox:{Store.Name}", "successor", TimeSpan.FromSeconds(10));
        Assert.NotNull(successor);
        await Assert.ThrowsAsync<LeaseLostException>(async () => await Store.CompleteOutboxAsync([entries[0].Id], lease));
        Assert.Equal(2, await Store.CountOutboxAsync());
        await Store.CompleteOutboxAsync([entries[0].Id], successor);
        Assert.Equal(1, await Store.CountOutboxAsync());
    }

    [Fact]
    public async Task Two_dispatchers_hand_the_outbox_over_once_and_in_commit_order()
    {
        // Commits interleave destinations (queue, topic) so order across them is checked too.
        var expected = new List<MessageId>();
        for (var i = 0; i < 60; i++)
        {
            var batch = Enumerable.Range(0, 5).Select(j => (j + i) % 3 == 0 ? new OutgoingMessage(Msg(), new TopicName("orders"), null) : ToQueue(Msg())).ToList();
            expected.AddRange(batch.Select(o => o.Message.Id));
            await Store.CommitAsync(new MessageTransaction { Outgoing = batch });
        }
        var transport = new RecordingTransport();
        using var stop = new CancellationTokenSource();
        var options = new OutboxDispatcherOptions
        {
            Leases = DispatcherLeases,
            Lease = new LeaseOptions { Duration = TimeSpan.FromSeconds(30), AcquireInterval = TimeSpan.FromMilliseconds(20) },
            PollInterval = TimeSpan.FromMilliseconds(10),
            BatchSize = 7,
        };
        var first = new OutboxDispatcher(Store, transport, options);
        var second = new OutboxDispatcher(Store, transport, options);
        var running = new[] { first.RunAsync(stop.Token), second.RunAsync(stop.Token) };
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (await Store.CountOutboxAsync() > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        await Task.Delay(100); // Anything still racing would show up now.
        await stop.CancelAsync();
        await Task.WhenAll(running);

        Assert.Equal(0, await Store.CountOutboxAsync());
        Assert.Equal(expected, transport.Received.Select(r => r.Id));
        Assert.Equal(expected.Count, first.Dispatched + second.Dispatched);
    }

    [Fact]
    public async Task Dead_letters_are_kept_once_per_message_filtered_and_held_by_key()
    {
        var keyed = Msg("OrderPlaced", key: "order-7");
        var behind = Msg("OrderPlaced", key: "order-7");
        var other = Msg("OrderShipped");
        var stream = new MessageSource(MessageSourceKind.Subscription, "orders", "billing");
        await Store.CommitAsync(new MessageTransaction { DeadLetters = [new DeadLetterRecord(keyed, stream, Failure(), HoldKey: true)] });
        // A redelivery that failed again (a crash between the commit and the ack) does not make a second letter.
        await Store.CommitAsync(new MessageTransaction { DeadLetters = [new DeadLetterRecord(keyed, stream, Failure(), HoldKey: true)] });
        await Store.CommitAsync(new MessageTransaction { DeadLetters = [new DeadLetterRecord(behind, stream, Failure("Held"))] });
        await Store.CommitAsync(new MessageTransaction { DeadLetters = [new DeadLetterRecord(other, OrdersQueue, Failure("System.TimeoutException"))] });

        var all = await Store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync();
        Assert.Equal([keyed.Id, behind.Id, other.Id], all.Select(d => d.Message.Id));
        Assert.Null(all[0].HeldBehind);
        Assert.Equal(all[0].Id, all[1].HeldBehind);
        Assert.Equal(all[0].Id, await Store.FindHoldAsync(stream, "order-7"));
        Assert.Null(await Store.FindHoldAsync(stream, "order-8"));
        Assert.Null(await Store.FindHoldAsync(stream with { Group = "shipping" }, "order-7"));

        Assert.Equal([other.Id], (await Store.ListDeadLettersAsync(new DeadLetterFilter { ExceptionType = "TimeoutException" }).ToListAsync()).Select(d => d.Message.Id));
        Assert.Equal([other.Id], (await Store.ListDeadLettersAsync(new DeadLetterFilter { Source = "orders", Group = null, Type = "OrderShipped" }).ToListAsync()).Select(d => d.Message.Id));
        Assert.Equal(2, (await Store.ListDeadLettersAsync(new DeadLetterFilter { Group = "billing" }).ToListAsync()).Count);
        Assert.Single(await Store.ListDeadLettersAsync(new DeadLetterFilter { Limit = 1 }).ToListAsync());
        Assert.Equal(stream, all[0].Source);
        Assert.Equal("boom", all[0].Failure.Message);
    }

    [Fact]
    public async Task Replay_moves_dead_letters_into_the_outbox_once_in_order_keeping_their_ids()
    {
        var stream = new MessageSource(MessageSourceKind.Subscription, "orders", "billing");
        var letters = Enumerable.Range(0, 20).Select(i => Msg(key: "order-1")).ToList();
        await Store.CommitAsync(new MessageTransaction { DeadLetters = [.. letters.Select((m, i) => new DeadLetterRecord(m, stream, Failure(), HoldKey: i == 0))] });
        await Store.CommitAsync(new MessageTransaction { DeadLetters = [new DeadLetterRecord(Msg(), OrdersQueue, Failure())] });

        // Two operators replay the same filter at once: each letter is replayed once.
        var replays = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => Task.Run(async () => await Store.ReplayDeadLettersAsync(new DeadLetterFilter { Group = "billing" }))));
        Assert.Equal(20, replays.Sum());
        var outbox = await Outbox();
        Assert.Equal(letters.Select(m => m.Id), outbox.Select(e => e.Message.Message.Id));
        Assert.All(outbox, e =>
        {
            Assert.Equal(QueueName.ForGroup(new TopicName("orders"), new GroupName("billing")), e.Message.Queue);
            Assert.Null(e.Message.Topic);
            Assert.Equal("1", e.Message.Message.Headers[MessageHeaders.Replayed]);
        });
        Assert.Null(await Store.FindHoldAsync(stream, "order-1"));
        Assert.Single(await Store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync());

        // Failing again after the replay makes a new letter (counted as replayed once).
        var again = outbox[0].Message.Message;
        await Store.CommitAsync(new MessageTransaction { DeadLetters = [new DeadLetterRecord(again, stream, Failure())] });
        var letter = Assert.Single(await Store.ListDeadLettersAsync(new DeadLetterFilter { Group = "billing" }).ToListAsync());
        Assert.Equal(1, letter.ReplayCount);

        Assert.Equal(2, await Store.DiscardDeadLettersAsync(DeadLetterFilter.All));
        Assert.Empty(await Store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync());
    }

    [Fact]
    public async Task Replaying_a_keys_blocker_brings_the_letters_held_behind_it_in_order()
    {
        var stream = new MessageSource(MessageSourceKind.Subscription, "orders", "billing");
        var blocker = Msg(key: "order-9");
        var unrelated = Msg(key: "order-10");
        var follower = Msg(key: "order-9");
        await Store.CommitAsync(new MessageTransaction { DeadLetters = [new DeadLetterRecord(blocker, stream, Failure(), HoldKey: true)] });
        await Store.CommitAsync(new MessageTransaction { DeadLetters = [new DeadLetterRecord(unrelated, stream, Failure())] });
        await Store.CommitAsync(new MessageTransaction { DeadLetters = [new DeadLetterRecord(follower, stream, Failure("Held"))] });
        var blockerId = (await Store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync())[0].Id;

        Assert.Equal(2, await Store.ReplayDeadLettersAsync(new DeadLetterFilter { Ids = [blockerId] }));
        Assert.Equal([blocker.Id, follower.Id], (await Outbox()).Select(e => e.Message.Message.Id));
        Assert.Equal([unrelated.Id], (await Store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync()).Select(d => d.Message.Id));
    }

    [Fact]
    public async Task Inbox_records_expire_after_the_window()
    {
        var old = Msg();
        await Store.CommitAsync(new MessageTransaction { Inbox = new InboxRecord("orders", old.Id) });
        Clock.Advance(TimeSpan.FromDays(8));
        var fresh = Msg();
        await Store.CommitAsync(new MessageTransaction { Inbox = new InboxRecord("orders", fresh.Id) });
        Assert.Equal(1, await Store.PurgeInboxAsync(Clock.Now - TimeSpan.FromDays(7)));
        Assert.Equal([fresh.Id], await Store.FilterHandledAsync("orders", [old.Id, fresh.Id]));
    }

    /// <summary>A transport that records what it was given, in order, and is slow enough for dispatchers to overlap.</summary>
    public sealed class RecordingTransport : ITransport
    {
        private readonly ConcurrentQueue<TransportMessage> _received = new();

        public IReadOnlyList<TransportMessage> Received => [.. _received];

        public string Name => "recording";

        public TransportCapabilities Capabilities { get; } = new();

        public ValueTask DeclareQueueAsync(QueueName queue, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public ValueTask DeclareSubscriptionAsync(TopicName topic, GroupName group, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public async ValueTask PublishAsync(TopicName topic, IReadOnlyList<TransportMessage> messages, CancellationToken cancellationToken = default)
        {
            await Task.Delay(2, CancellationToken.None);
            foreach (var m in messages) _received.Enqueue(m);
        }

        public async ValueTask SendAsync(QueueName queue, IReadOnlyList<TransportMessage> messages, DateTimeOffset? deliverAt = null, CancellationToken cancellationToken = default)
        {
            if (deliverAt is not null) throw new NotSupportedException("no delay");
            await Task.Delay(2, CancellationToken.None);
            foreach (var m in messages) _received.Enqueue(m);
        }

        public async IAsyncEnumerable<InboundMessage> ConsumeAsync(QueueName queue, ConsumeOptions options, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            yield break;
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

/// <summary>Base of deliberately wrong stores in self-tests: forwards everything.</summary>
public class WrappedMessageStore(IMessageStore inner) : IMessageStore
{
    public IMessageStore Inner { get; } = inner;

    public string Name => Inner.Name;

    public virtual ValueTask<IReadOnlySet<MessageId>> FilterHandledAsync(string inbox, IReadOnlyList<MessageId> ids, CancellationToken cancellationToken = default) => Inner.FilterHandledAsync(inbox, ids, cancellationToken);

    public virtual ValueTask<MessageCommitResult> CommitAsync(MessageTransaction transaction, CancellationToken cancellationToken = default) => Inner.CommitAsync(transaction, cancellationToken);

    public ValueTask<IReadOnlyList<OutboxEntry>> ReadDueOutboxAsync(int max, CancellationToken cancellationToken = default) => Inner.ReadDueOutboxAsync(max, cancellationToken);

    public ValueTask CompleteOutboxAsync(IReadOnlyList<long> ids, Lease? fence = null, CancellationToken cancellationToken = default) => Inner.CompleteOutboxAsync(ids, fence, cancellationToken);

    public ValueTask<long> CountOutboxAsync(CancellationToken cancellationToken = default) => Inner.CountOutboxAsync(cancellationToken);

    public ValueTask<long?> FindHoldAsync(MessageSource source, string key, CancellationToken cancellationToken = default) => Inner.FindHoldAsync(source, key, cancellationToken);

    public IAsyncEnumerable<DeadLetter> ListDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default) => Inner.ListDeadLettersAsync(filter, cancellationToken);

    public ValueTask<int> ReplayDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default) => Inner.ReplayDeadLettersAsync(filter, cancellationToken);

    public ValueTask<int> DiscardDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default) => Inner.DiscardDeadLettersAsync(filter, cancellationToken);

    public ValueTask<long> PurgeInboxAsync(DateTimeOffset olderThan, CancellationToken cancellationToken = default) => Inner.PurgeInboxAsync(olderThan, cancellationToken);

    public Task WaitForOutboxAsync(TimeSpan timeout, CancellationToken cancellationToken = default) => Inner.WaitForOutboxAsync(timeout, cancellationToken);
}

/// <summary>
/// A wrong store for self-tests: it checks the inbox, then commits without letting the database decide — the
/// check-then-act race two competing consumers fall into.
/// </summary>
public sealed class CheckThenActInbox(IMessageStore inner) : WrappedMessageStore(inner)
{
    public override async ValueTask<MessageCommitResult> CommitAsync(MessageTransaction transaction, CancellationToken cancellationToken = default)
    {
        if (transaction.Inbox is { } r && (await Inner.FilterHandledAsync(r.Inbox, [r.MessageId], cancellationToken)).Count > 0) return MessageCommitResult.Duplicate;
        await Task.Delay(5, cancellationToken);
        await Inner.CommitAsync(transaction with { Inbox = null }, cancellationToken);
        if (transaction.Inbox is { } record) await Inner.CommitAsync(new MessageTransaction { Inbox = record }, cancellationToken);
        return MessageCommitResult.Committed;
    }
}
