using System.Collections.Concurrent;
using Factum.Coordination;
using Factum.Messaging;

namespace Factum.Conformance.Messaging;

/// <summary>One message store and one transport, as a backend pairs them.</summary>
/// <param name="Store">The message store.</param>
/// <param name="Leases">The lease store of the store's database.</param>
/// <param name="Transport">The transport the durable endpoints consume from.</param>
/// <param name="Embedded">The embedded transport a bus is built on (requests, heartbeats).</param>
public sealed record StoreAndTransport(IMessageStore Store, ILeaseStore Leases, ITransport Transport, IMessageTransport Embedded);

/// <summary>How a store × transport pair enrolls.</summary>
public interface IStoreTransportFactory
{
    /// <summary>A fresh pair.</summary>
    StoreAndTransport Create();

    /// <summary>A handler write in the store's own data: adds one to the counter <paramref name="key"/>.</summary>
    MessageWork CountEffect(string key);

    /// <summary>Reads the counter <paramref name="key"/>.</summary>
    Task<int> EffectsAsync(IMessageStore store, string key);

    /// <summary>Disposes the pair and removes its files.</summary>
    ValueTask DestroyAsync(StoreAndTransport pair);
}

/// <summary>
/// The bus modes over a message store and a transport that share no transaction: a consumer that dies after its
/// store commit and before its broker ack gets the message again and the inbox drops it (exactly once in effect, for
/// its writes and for what it sent on); buffered endpoints are at-least-once; retries and dead letters go through the
/// store where the broker cannot delay or dead-letter; a replayed dead letter is handled once. (Process-kill versions
/// of the first scenario run on SQLite in the CLI tests.)
/// </summary>
public abstract class StoreTransportConformance<TFactory> : IAsyncLifetime where TFactory : IStoreTransportFactory, new()
{
    private static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(1);
    private readonly TFactory _factory = new();
    private readonly List<MessageBus> _buses = [];
    private StoreAndTransport? _pair;

    protected StoreAndTransport Pair => _pair ?? throw new InvalidOperationException("Created in InitializeAsync.");

    protected IMessageStore Store { get; private set; } = null!;

    /// <summary>The store under test; a self-test wraps it in a deliberately wrong one.</summary>
    protected virtual IMessageStore Wrap(IMessageStore store) => store;

    public Task InitializeAsync()
    {
        _pair = _factory.Create();
        Store = Wrap(_pair.Store);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var b in _buses) await b.DisposeAsync();
        if (_pair is not null) await _factory.DestroyAsync(_pair);
    }

    private static EventTypeRegistry Registry()
    {
        var r = new EventTypeRegistry();
        r.Register<OrderShipped>();
        r.Register<CapturePayment>(o => o.Kind = MessageKind.Command);
        return r;
    }

    private async Task<MessageBus> StartBus(ITransport transport, Action<MessagingBuilder> configure)
    {
        var builder = new MessagingBuilder();
        configure(builder);
        var bus = new MessageBus(Pair.Embedded, Registry(), builder, new MessagingOptions
        {
            ServiceName = "svc",
            PollInterval = TimeSpan.FromMilliseconds(20),
            HeartbeatInterval = TimeSpan.FromMilliseconds(200),
            MessageStore = Store,
            Leases = Pair.Leases,
            DeliveryTransport = transport,
        });
        _buses.Add(bus);
        await bus.StartAsync();
        return bus;
    }

    private static Action<HandlerOptions> Mode(EndpointMode mode, MessageRetryPolicy? retry = null) => o =>
    {
        o.Mode = mode;
        o.Lease = AckTimeout;
        o.Retry = retry ?? new MessageRetryPolicy { ImmediateRetries = 0, DelayedRetries = 3, InitialDelay = TimeSpan.FromMilliseconds(30), MaxDelay = TimeSpan.FromMilliseconds(60) };
    };

    private static async Task Eventually(Func<Task<bool>> condition, string what, int seconds = 20)
    {
        var until = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > until) Assert.Fail($"Timed out waiting for: {what}");
            await Task.Delay(25);
        }
    }

    [Fact]
    public async Task A_consumer_that_dies_between_its_store_commit_and_its_broker_ack_has_its_message_handled_once_in_effect()
    {
        var crashing = new AckLostOnce(Pair.Transport, m => m.Type == "CapturePayment" && m.Headers.ContainsKey("crash"));
        var handlerRuns = new ConcurrentDictionary<string, int>();
        var bus = await StartBus(crashing, m => m
            .AddHandler<CapturePayment>(async (c, ctx, ct) =>
            {
                handlerRuns.AddOrUpdate(c.OrderId, 1, (_, n) => n + 1);
                ctx.Enlist(_factory.CountEffect($"paid-{c.OrderId}"));
                await ctx.PublishAsync(new OrderShipped(c.OrderId), cancellationToken: ct);
            }, Mode(EndpointMode.Durable))
            .AddHandler<OrderShipped>((e, ctx, _) =>
            {
                ctx.Enlist(_factory.CountEffect($"shipped-{e.OrderId}"));
                return Task.CompletedTask;
            }, o => { Mode(EndpointMode.Durable)(o); o.Group = "shipping"; }));

        var orders = Enumerable.Range(0, 20).Select(i => $"o-{i}").ToList();
        foreach (var (order, i) in orders.Select((o, i) => (o, i)))
        {
            var headers = i % 5 == 2 ? new Dictionary<string, string> { ["crash"] = "after-commit" } : null;
            await bus.SendAsync(new CapturePayment(order, 10m), new SendOptions { Headers = headers });
        }

        await Eventually(async () =>
        {
            foreach (var o in orders)
            {
                if (await _factory.EffectsAsync(Pair.Store, $"shipped-{o}") < 1) return false;
            }
            return crashing.Crashed.Count == 4 && crashing.Crashed.All(id => crashing.Deliveries(id) >= 2);
        }, "every order paid and shipped, and the four crashed deliveries delivered again");
        await Task.Delay(AckTimeout * 1.5); // Room for any wrong extra delivery to land.

        foreach (var o in orders)
        {
            Assert.Equal(1, await _factory.EffectsAsync(Pair.Store, $"paid-{o}"));
            Assert.Equal(1, await _factory.EffectsAsync(Pair.Store, $"shipped-{o}"));
        }
        // The handler ran once per order: the redelivery was dropped by the inbox before the handler.
        Assert.All(orders, o => Assert.Equal(1, handlerRuns[o]));
        Assert.Equal(0, await Store.CountOutboxAsync());
    }

    [Fact]
    public async Task A_buffered_endpoint_is_at_least_once_a_lost_ack_runs_the_handler_again()
    {
        var crashing = new AckLostOnce(Pair.Transport, m => m.Headers.ContainsKey("crash"));
        var runs = new ConcurrentDictionary<string, int>();
        var bus = await StartBus(crashing, m => m.AddHandler<CapturePayment>((c, _, _) =>
        {
            runs.AddOrUpdate(c.OrderId, 1, (_, n) => n + 1);
            return Task.CompletedTask;
        }, Mode(EndpointMode.Buffered)));
        await bus.SendAsync(new CapturePayment("lost-ack", 1m), new SendOptions { Headers = new Dictionary<string, string> { ["crash"] = "1" } });
        await bus.SendAsync(new CapturePayment("fine", 1m));
        await Eventually(() => Task.FromResult(runs.GetValueOrDefault("lost-ack") == 2 && runs.GetValueOrDefault("fine") == 1), "the lost ack's message handled twice");
    }

    [Fact]
    public async Task The_same_message_sent_twice_is_handled_once()
    {
        var bus = await StartBus(Pair.Transport, m => m.AddHandler<CapturePayment>((c, ctx, _) =>
        {
            ctx.Enlist(_factory.CountEffect($"twice-{c.OrderId}"));
            return Task.CompletedTask;
        }, Mode(EndpointMode.Durable)));
        var id = MessageId.New();
        await bus.SendAsync(new CapturePayment("o-twice", 1m), new SendOptions { MessageId = id });
        await bus.SendAsync(new CapturePayment("o-twice", 1m), new SendOptions { MessageId = id });
        await bus.SendAsync(new CapturePayment("o-after", 1m));
        await Eventually(async () => await _factory.EffectsAsync(Pair.Store, "twice-o-after") == 1, "the message after the duplicate handled");
        await Task.Delay(200);
        Assert.Equal(1, await _factory.EffectsAsync(Pair.Store, "twice-o-twice"));
    }

    [Fact]
    public async Task Retries_carry_their_attempt_then_the_message_is_dead_lettered_in_the_store_and_a_replay_is_handled_once()
    {
        var attempts = new ConcurrentQueue<int>();
        var broken = true;
        var bus = await StartBus(Pair.Transport, m => m.AddHandler<CapturePayment>((c, ctx, _) =>
        {
            attempts.Enqueue(ctx.Attempt);
            if (Volatile.Read(ref broken)) throw new InvalidOperationException("payment provider down");
            ctx.Enlist(_factory.CountEffect($"replayed-{c.OrderId}"));
            return Task.CompletedTask;
        }, Mode(EndpointMode.Durable)));
        await bus.SendAsync(new CapturePayment("o-dead", 5m));

        await Eventually(async () => (await Store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync()).Count == 1, "the message dead-lettered in the store");
        Assert.Equal([1, 2, 3, 4], attempts.ToArray());
        var letter = Assert.Single(await Store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync());
        Assert.Equal("System.InvalidOperationException", letter.Failure.ExceptionType);
        Assert.Equal(MessageSourceKind.Queue, letter.Source.Kind);

        Volatile.Write(ref broken, false);
        Assert.Equal(1, await Store.ReplayDeadLettersAsync(DeadLetterFilter.All));
        await Eventually(async () => await _factory.EffectsAsync(Pair.Store, "replayed-o-dead") == 1, "the replayed message handled");
        await Task.Delay(200);
        Assert.Equal(1, await _factory.EffectsAsync(Pair.Store, "replayed-o-dead"));
        Assert.Empty(await Store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync());
    }

    [Fact]
    public async Task A_handler_write_that_fails_at_commit_is_retried_and_dead_lettered_with_its_own_error()
    {
        var runs = 0;
        var bus = await StartBus(Pair.Transport, m => m.AddHandler<CapturePayment>((_, ctx, _) =>
        {
            Interlocked.Increment(ref runs);
            ctx.Enlist<object>(_ => throw new InvalidOperationException("constraint violated: payments.order_id"));
            return Task.CompletedTask;
        }, Mode(EndpointMode.Durable)));
        await bus.SendAsync(new CapturePayment("o-bad-write", 1m));
        await Eventually(async () => (await Store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync()).Count == 1, "the message dead-lettered");
        var letter = Assert.Single(await Store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync());
        Assert.Equal("System.InvalidOperationException", letter.Failure.ExceptionType);
        Assert.Contains("constraint violated", letter.Failure.Message, StringComparison.Ordinal);
        Assert.Equal(4, Volatile.Read(ref runs));
        Assert.Empty(await Store.FilterHandledAsync(QueueName.Parse("CapturePayment").Value, [letter.Message.Id]));
    }

    [Fact]
    public async Task A_durable_endpoint_without_a_message_store_and_an_embedded_endpoint_on_a_broker_bus_are_refused_at_start()
    {
        var builder = new MessagingBuilder().AddHandler<CapturePayment>((_, _, _) => Task.CompletedTask, o => o.Mode = EndpointMode.Durable);
        await using var noStore = new MessageBus(Pair.Embedded, Registry(), builder, new MessagingOptions { DeliveryTransport = Pair.Transport });
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => noStore.StartAsync());
        Assert.Contains("MessagingOptions.MessageStore", ex.Message, StringComparison.Ordinal);

        var embedded = new MessagingBuilder().AddHandler<CapturePayment>((_, _, _) => Task.CompletedTask);
        await using var mixed = new MessageBus(Pair.Embedded, Registry(), embedded, new MessagingOptions { DeliveryTransport = Pair.Transport, MessageStore = Store });
        ex = await Assert.ThrowsAsync<InvalidOperationException>(() => mixed.StartAsync());
        Assert.Contains("DatabaseQueue", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Simulates a consumer process that dies after its store commit: the first ack of each chosen message never reaches
    /// the broker (the bus believes it did), so the broker delivers the message again after the ack deadline.
    /// </summary>
    public sealed class AckLostOnce(ITransport inner, Func<TransportMessage, bool> crashOn) : ForwardingTransport(inner)
    {
        private readonly ConcurrentDictionary<MessageId, int> _deliveries = new();
        private readonly ConcurrentDictionary<MessageId, bool> _crashed = new();

        public IReadOnlyCollection<MessageId> Crashed => [.. _crashed.Keys];

        public int Deliveries(MessageId id) => _deliveries.GetValueOrDefault(id);

        protected override InboundMessage Wrap(QueueName queue, InboundMessage delivery)
        {
            _deliveries.AddOrUpdate(delivery.Message.Id, 1, (_, n) => n + 1);
            return crashOn(delivery.Message) && _crashed.TryAdd(delivery.Message.Id, true) ? new LostAck(delivery) : delivery;
        }

        // The process is gone: nothing it would settle reaches the broker; only its in-progress calls before the crash did.
        private sealed class LostAck(InboundMessage inner) : ForwardingInbound(inner)
        {
            protected override ValueTask<bool> OnAckAsync(CancellationToken cancellationToken) => ValueTask.FromResult(true);

            protected override ValueTask<bool> OnNackAsync(TimeSpan delay, CancellationToken cancellationToken) => ValueTask.FromResult(true);

            protected override ValueTask<bool> OnTerminateAsync(FailureInfo failure, CancellationToken cancellationToken) => ValueTask.FromResult(true);
        }
    }
}

/// <summary>A wrong store for self-tests: it forgets inbox records, so nothing tells a redelivery from a new message.</summary>
public sealed class ForgetfulInbox(IMessageStore inner) : WrappedMessageStore(inner)
{
    public override ValueTask<IReadOnlySet<MessageId>> FilterHandledAsync(string inbox, IReadOnlyList<MessageId> ids, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<IReadOnlySet<MessageId>>(new HashSet<MessageId>());

    public override ValueTask<MessageCommitResult> CommitAsync(MessageTransaction transaction, CancellationToken cancellationToken = default) =>
        Inner.CommitAsync(transaction with { Inbox = null }, cancellationToken);
}
