using System.Text;
using Factum.Messaging;

namespace Factum.Conformance.Messaging;

/// <summary>How a transport enrolls in the plain-transport suite.</summary>
public interface IDeliveryTransportFactory
{
    /// <summary>A fresh transport whose ack deadlines and delays follow <paramref name="clock"/>.</summary>
    ITransport Create(TimeProvider clock);

    /// <summary>Messages the transport's own dead-letter queue holds for <paramref name="queue"/> (only asked when it declares <see cref="TransportCapabilities.NativeDeadLetter"/>).</summary>
    Task<int> NativeDeadLettersAsync(ITransport transport, QueueName queue);

    /// <summary>Disposes it and removes its files.</summary>
    ValueTask DestroyAsync(ITransport transport);
}

/// <summary>
/// What every transport promises — confirmed sends, at-least-once delivery in order with an ack deadline, ack, nack,
/// terminate, in-progress, fan-out to subscriptions — and, per declared capability, what it does natively. Where a
/// capability is not declared the test checks that the transport refuses the operation clearly instead: no test is
/// skipped. Time moves by hand.
/// </summary>
public abstract class DeliveryTransportConformance<TFactory> : IAsyncLifetime where TFactory : IDeliveryTransportFactory, new()
{
    private static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(30);
    private readonly TFactory _factory = new();
    private ITransport? _transport;
    private static int s_queue;

    protected ManualClock Clock { get; } = new() { Now = DateTimeOffset.UtcNow };

    protected ITransport Transport => _transport ?? throw new InvalidOperationException("Created in InitializeAsync.");

    /// <summary>The transport under test; a self-test wraps it in a deliberately wrong one.</summary>
    protected virtual ITransport Wrap(ITransport transport) => transport;

    public Task InitializeAsync()
    {
        _transport = Wrap(_factory.Create(Clock));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_transport is not null) await _factory.DestroyAsync(_transport is ForwardingTransport w ? w.Inner : _transport);
    }

    private TransportCapabilities Can => Transport.Capabilities;

    private static QueueName NewQueue() => QueueName.Parse($"work-{Interlocked.Increment(ref s_queue)}");

    protected static TransportMessage Msg(string type = "OrderPlaced", MessageId? id = null) => new()
    {
        Id = id ?? MessageId.New(),
        Type = type,
        SchemaVersion = 1,
        Timestamp = DateTimeOffset.UtcNow,
        CorrelationId = "corr-1",
        Body = Encoding.UTF8.GetBytes("""{"orderId":"o-1"}"""),
        Headers = new Dictionary<string, string> { ["x-test"] = "kept" },
    };

    private static ConsumeOptions Options(int prefetch = 16, string consumer = "c1") => new() { Consumer = consumer, Prefetch = prefetch, AckTimeout = AckTimeout };

    /// <summary>A consumer as a test sees it: take deliveries one by one, stop when disposed.</summary>
    protected sealed class Consumer : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly IAsyncEnumerator<InboundMessage> _enumerator;

        public Consumer(ITransport transport, QueueName queue, ConsumeOptions options) =>
            _enumerator = transport.ConsumeAsync(queue, options, _stop.Token).GetAsyncEnumerator(_stop.Token);

        /// <summary>The next delivery, or null when none comes within <paramref name="within"/> (real time).</summary>
        public async Task<InboundMessage?> NextAsync(TimeSpan? within = null)
        {
            if (_pending is not null) return await PendingAsync(within ?? TimeSpan.FromSeconds(10));
            var next = _enumerator.MoveNextAsync().AsTask();
            var done = await Task.WhenAny(next, Task.Delay(within ?? TimeSpan.FromSeconds(10)));
            if (done != next)
            {
                _pending = next;
                return null;
            }
            _pending = null;
            return await next ? _enumerator.Current : null;
        }

        private Task<bool>? _pending;

        /// <summary>Waits for the delivery a timed-out <see cref="NextAsync"/> left pending.</summary>
        public async Task<InboundMessage?> PendingAsync(TimeSpan within)
        {
            if (_pending is not { } p) return await NextAsync(within);
            var done = await Task.WhenAny(p, Task.Delay(within));
            if (done != p) return null;
            _pending = null;
            return await p ? _enumerator.Current : null;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            try { if (_pending is not null) await _pending; }
            catch (OperationCanceledException) { }
            try { await _enumerator.DisposeAsync(); }
            catch (OperationCanceledException) { }
            _stop.Dispose();
        }
    }

    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(400);

    [Fact]
    public async Task A_sent_message_is_delivered_once_in_order_with_its_envelope_and_an_ack_removes_it()
    {
        var q = NewQueue();
        await Transport.DeclareQueueAsync(q);
        var sent = Enumerable.Range(0, 5).Select(_ => Msg()).ToList();
        await Transport.SendAsync(q, sent);
        await using var consumer = new Consumer(Transport, q, Options());
        var got = new List<InboundMessage>();
        for (var i = 0; i < 5; i++) got.Add((await consumer.NextAsync())!);
        Assert.Equal(sent.Select(m => m.Id), got.Select(d => d.Message.Id));
        Assert.All(got, d => Assert.Equal(1, d.Attempt));
        Assert.Equal("kept", got[0].Message.Headers["x-test"]);
        Assert.Equal("corr-1", got[0].Message.CorrelationId);
        Assert.Equal(q, got[0].Queue);
        foreach (var d in got) Assert.True(await d.AckAsync());

        // Acknowledged means gone: not even a lapsed deadline brings them back.
        Clock.Advance(AckTimeout * 2);
        await using var other = new Consumer(Transport, q, Options(consumer: "c2"));
        Assert.Null(await other.NextAsync(Quiet));
    }

    [Fact]
    public async Task An_unsettled_delivery_comes_back_after_the_ack_deadline_with_the_next_attempt_and_a_late_ack_is_refused()
    {
        var q = NewQueue();
        var m = Msg();
        await Transport.SendAsync(q, [m]);
        await using var first = new Consumer(Transport, q, Options(consumer: "slow"));
        var d1 = (await first.NextAsync())!;
        await using var second = new Consumer(Transport, q, Options(consumer: "other"));
        Assert.Null(await second.NextAsync(Quiet));
        Clock.Advance(AckTimeout + TimeSpan.FromSeconds(1));
        var d2 = (await second.PendingAsync(TimeSpan.FromSeconds(10)))!;
        Assert.NotNull(d2);
        Assert.Equal(m.Id, d2.Message.Id);
        Assert.Equal(2, d2.Attempt);
        Assert.False(await d1.AckAsync());
        Assert.True(await d2.AckAsync());
    }

    [Fact]
    public async Task In_progress_restarts_the_ack_deadline()
    {
        var q = NewQueue();
        await Transport.SendAsync(q, [Msg()]);
        await using var first = new Consumer(Transport, q, Options());
        var d = (await first.NextAsync())!;
        Clock.Advance(AckTimeout - TimeSpan.FromSeconds(5));
        Assert.True(await d.InProgressAsync());
        Clock.Advance(TimeSpan.FromSeconds(10));
        await using var second = new Consumer(Transport, q, Options(consumer: "other"));
        Assert.Null(await second.NextAsync(Quiet));
        Assert.True(await d.AckAsync());
    }

    [Fact]
    public async Task A_nack_without_delay_delivers_again_at_once()
    {
        var q = NewQueue();
        var m = Msg();
        await Transport.SendAsync(q, [m]);
        await using var consumer = new Consumer(Transport, q, Options());
        var d1 = (await consumer.NextAsync())!;
        Assert.True(await d1.NackAsync(TimeSpan.Zero));
        var d2 = (await consumer.NextAsync())!;
        Assert.Equal(m.Id, d2.Message.Id);
        Assert.Equal(2, d2.Attempt);
        await d2.AckAsync();
    }

    [Fact]
    public async Task A_delivery_is_settled_once()
    {
        var q = NewQueue();
        await Transport.SendAsync(q, [Msg()]);
        await using var consumer = new Consumer(Transport, q, Options());
        var d = (await consumer.NextAsync())!;
        Assert.True(await d.AckAsync());
        Assert.True(d.IsSettled);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await d.AckAsync());
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await d.NackAsync(TimeSpan.Zero));
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await d.InProgressAsync());
    }

    [Fact]
    public async Task A_nack_with_a_delay_waits_where_the_transport_can_delay_and_is_refused_clearly_where_it_cannot()
    {
        var q = NewQueue();
        var m = Msg();
        await Transport.SendAsync(q, [m]);
        await using var consumer = new Consumer(Transport, q, Options());
        var d1 = (await consumer.NextAsync())!;
        if (!Can.NativeDelay)
        {
            var ex = await Assert.ThrowsAsync<NotSupportedException>(async () => await d1.NackAsync(TimeSpan.FromMinutes(1)));
            Assert.Contains("NativeDelay", ex.Message, StringComparison.Ordinal);
            // Still unsettled: the consumer can settle it another way.
            Assert.False(d1.IsSettled);
            Assert.True(await d1.AckAsync());
            return;
        }
        Assert.True(await d1.NackAsync(TimeSpan.FromMinutes(1)));
        Assert.Null(await consumer.NextAsync(Quiet));
        Clock.Advance(TimeSpan.FromMinutes(1));
        var d2 = (await consumer.PendingAsync(TimeSpan.FromSeconds(10)))!;
        Assert.Equal(m.Id, d2.Message.Id);
        Assert.Equal(2, d2.Attempt);
        await d2.AckAsync();
    }

    [Fact]
    public async Task A_send_for_later_waits_where_the_transport_can_delay_and_is_refused_clearly_where_it_cannot()
    {
        var q = NewQueue();
        var later = Msg("Reminder");
        if (!Can.NativeDelay)
        {
            var ex = await Assert.ThrowsAsync<NotSupportedException>(async () => await Transport.SendAsync(q, [later], Clock.Now.AddMinutes(5)));
            Assert.Contains("message store", ex.Message, StringComparison.Ordinal);
            await using var none = new Consumer(Transport, q, Options());
            Assert.Null(await none.NextAsync(Quiet));
            return;
        }
        await Transport.SendAsync(q, [later], Clock.Now.AddMinutes(5));
        await using var consumer = new Consumer(Transport, q, Options());
        Assert.Null(await consumer.NextAsync(Quiet));
        Clock.Advance(TimeSpan.FromMinutes(5));
        var d = (await consumer.PendingAsync(TimeSpan.FromSeconds(10)))!;
        Assert.Equal(later.Id, d.Message.Id);
        await d.AckAsync();
    }

    [Fact]
    public async Task A_terminated_message_is_never_delivered_again_and_stays_in_the_brokers_dead_letter_queue_if_it_has_one()
    {
        var q = NewQueue();
        await Transport.SendAsync(q, [Msg()]);
        await using var consumer = new Consumer(Transport, q, Options());
        var d = (await consumer.NextAsync())!;
        Assert.True(await d.TerminateAsync(new FailureInfo("Poison", "unreadable", null, 1, Clock.Now, Clock.Now)));
        Clock.Advance(AckTimeout * 2);
        Assert.Null(await consumer.NextAsync(Quiet));
        if (Can.NativeDeadLetter) Assert.Equal(1, await _factory.NativeDeadLettersAsync(Transport, q));
    }

    [Fact]
    public async Task A_publish_reaches_every_subscription_once_and_members_of_one_group_compete()
    {
        var topic = new TopicName($"orders-{Interlocked.Increment(ref s_queue)}");
        await Transport.DeclareSubscriptionAsync(topic, new GroupName("billing"));
        await Transport.DeclareSubscriptionAsync(topic, new GroupName("shipping"));
        await Transport.DeclareSubscriptionAsync(topic, new GroupName("shipping")); // Idempotent.
        var sent = Enumerable.Range(0, 4).Select(_ => Msg()).ToList();
        await Transport.PublishAsync(topic, sent);

        await using var billing = new Consumer(Transport, QueueName.ForGroup(topic, new GroupName("billing")), Options());
        var b = new List<MessageId>();
        for (var i = 0; i < 4; i++)
        {
            var d = (await billing.NextAsync())!;
            b.Add(d.Message.Id);
            await d.AckAsync();
        }
        Assert.Equal(sent.Select(m => m.Id), b);

        var shippingQueue = QueueName.ForGroup(topic, new GroupName("shipping"));
        await using var s1 = new Consumer(Transport, shippingQueue, Options(prefetch: 2, consumer: "s1"));
        await using var s2 = new Consumer(Transport, shippingQueue, Options(prefetch: 2, consumer: "s2"));
        var taken = new List<InboundMessage>();
        for (var i = 0; i < 2; i++) taken.Add((await s1.NextAsync())!);
        for (var i = 0; i < 2; i++) taken.Add((await s2.NextAsync())!);
        Assert.Equal(sent.Select(m => m.Id).Order(), taken.Select(d => d.Message.Id).Order());
        foreach (var d in taken) await d.AckAsync();
    }

    [Fact]
    public async Task Prefetch_bounds_the_unsettled_deliveries_of_a_consumer()
    {
        var q = NewQueue();
        await Transport.SendAsync(q, [.. Enumerable.Range(0, 5).Select(_ => Msg())]);
        await using var consumer = new Consumer(Transport, q, Options(prefetch: 2));
        var d1 = (await consumer.NextAsync())!;
        var d2 = (await consumer.NextAsync())!;
        Assert.Null(await consumer.NextAsync(Quiet));
        await d1.AckAsync();
        var d3 = (await consumer.PendingAsync(TimeSpan.FromSeconds(10)))!;
        Assert.NotNull(d3);
        await d2.AckAsync();
        await d3.AckAsync();
    }

    [Fact]
    public async Task A_consumer_that_goes_away_leaves_its_unsettled_deliveries_to_the_others()
    {
        var q = NewQueue();
        var m = Msg();
        await Transport.SendAsync(q, [m]);
        var gone = new Consumer(Transport, q, Options(consumer: "gone"));
        Assert.NotNull(await gone.NextAsync());
        await gone.DisposeAsync();
        // Some brokers give it back when the channel closes, others when the deadline lapses: both are delivery again.
        Clock.Advance(AckTimeout + TimeSpan.FromSeconds(1));
        await using var successor = new Consumer(Transport, q, Options(consumer: "successor"));
        var d = (await successor.NextAsync())!;
        Assert.Equal(m.Id, d.Message.Id);
        Assert.Equal(2, d.Attempt);
        await d.AckAsync();
    }

    [Fact]
    public async Task A_resent_message_id_is_dropped_where_the_broker_deduplicates_and_delivered_twice_where_it_does_not()
    {
        var q = NewQueue();
        var m = Msg();
        await Transport.SendAsync(q, [m]);
        await Transport.SendAsync(q, [m]);
        await using var consumer = new Consumer(Transport, q, Options());
        var d = (await consumer.NextAsync())!;
        await d.AckAsync();
        var again = await consumer.NextAsync(Quiet);
        if (Can.Deduplication) Assert.Null(again);
        else
        {
            Assert.NotNull(again);
            Assert.Equal(m.Id, again.Message.Id);
            await again.AckAsync();
        }
    }

    /// <summary>
    /// A wrong transport for self-tests: it says a delivery is acknowledged without telling the broker (an ack sent on a
    /// channel that is already gone, unchecked), so the message comes back.
    /// </summary>
    public sealed class UnconfirmedAck(ITransport inner) : ForwardingTransport(inner)
    {
        protected override InboundMessage Wrap(QueueName queue, InboundMessage delivery) => new Lying(delivery);

        private sealed class Lying(InboundMessage inner) : ForwardingInbound(inner)
        {
            protected override ValueTask<bool> OnAckAsync(CancellationToken cancellationToken) => ValueTask.FromResult(true);
        }
    }
}
