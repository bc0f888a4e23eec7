using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Factum.Conformance.Messaging;
using Factum.Messaging;

namespace Factum.Tests;

public sealed class MessagingUnitTests
{
    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("a@b")]
    [InlineData("$reply.x")]
    [InlineData("é")]
    public void Address_names_reject_bad_characters_with_a_clear_message(string name)
    {
        var ex = Assert.Throws<ArgumentException>(() => new QueueName(name));
        Assert.Contains("queue name", ex.Message);
        Assert.Throws<ArgumentException>(() => new TopicName(name));
        Assert.Throws<ArgumentException>(() => new GroupName(name));
    }

    [Fact]
    public void Group_and_reply_queues_are_system_names_that_parse_back()
    {
        var q = QueueName.ForGroup("OrderPlaced", "billing");
        Assert.Equal("OrderPlaced@billing", q.Value);
        Assert.True(q.IsSystem);
        Assert.Equal(q, QueueName.Parse("OrderPlaced@billing"));
        Assert.True(q.TryGetGroup(out var t, out var g));
        Assert.Equal(("OrderPlaced", "billing"), (t!.Value.Value, g!.Value.Value));
        Assert.True(QueueName.Parse("$reply.abc").IsSystem);
        Assert.False(new QueueName("payments").IsSystem);
    }

    [Fact]
    public void The_partitioner_is_stable_and_spreads_keys()
    {
        Assert.Equal(0, KeyPartitioner.For(null, 8));
        var counts = Enumerable.Range(0, 8000).GroupBy(i => KeyPartitioner.For($"Order-{i}", 8)).Select(g => g.Count()).ToList();
        Assert.Equal(8, counts.Count);
        Assert.All(counts, c => Assert.InRange(c, 800, 1200));
        // Documented values: the same on every transport and platform.
        Assert.Equal((int)(unchecked((2166136261u ^ 'a') * 16777619u) % 7u), KeyPartitioner.For("a", 7));
    }

    // Issue 11's review: the delay rule existed twice (bus and subscriptions); now one Backoff serves both.
    [Fact]
    public void Bus_and_subscription_retries_share_one_backoff_rule_that_cannot_overflow()
    {
        var bus = new MessageRetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(3), Jitter = 0.2 };
        var sub = new Factum.Subscriptions.RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(3), Jitter = 0.2 };
        Assert.Equal(Enumerable.Range(1, 8).Select(i => bus.DelayBefore(i, new Random(i))), Enumerable.Range(1, 8).Select(i => sub.DelayBefore(i, new Random(i))));
        var extreme = new Factum.Subscriptions.RetryPolicy { InitialDelay = TimeSpan.FromDays(1), MaxDelay = TimeSpan.MaxValue, Jitter = 0.5 };
        // A spread above 1 on a delay capped at TimeSpan.MaxValue overflowed before; some of these seeds draw one.
        for (var seed = 0; seed < 20; seed++) Assert.True(extreme.DelayBefore(10_000, new Random(seed)) > TimeSpan.Zero);
        Assert.Equal(TimeSpan.Zero, new Factum.Subscriptions.RetryPolicy { InitialDelay = TimeSpan.Zero }.DelayBefore(3, new Random(1)));
    }

    [Fact]
    public void Retry_backoff_doubles_up_to_the_cap()
    {
        var p = new MessageRetryPolicy { InitialDelay = TimeSpan.FromSeconds(1), MaxDelay = TimeSpan.FromSeconds(5), Jitter = 0 };
        Assert.Equal([1.0, 2, 4, 5, 5], Enumerable.Range(1, 5).Select(i => p.DelayBefore(i, Random.Shared).TotalSeconds));
        Assert.True(new MessageRetryPolicy { NonTransient = [typeof(ArgumentException)] }.IsNonTransient(new ArgumentNullException("x")));
        Assert.True(new MessageRetryPolicy().IsNonTransient(new NonTransientException("no")));
        Assert.False(new MessageRetryPolicy().IsNonTransient(new TimeoutException()));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MessageRetryPolicy { MaxDeliveries = 0 });
    }

    [Fact]
    public async Task The_bus_reports_messaging_metrics_on_the_Factum_meter()
    {
        var measurements = new ConcurrentQueue<(string Name, double Value)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == FactumDiagnostics.Name) l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((i, v, _, _) => measurements.Enqueue((i.Name, v)));
        listener.SetMeasurementEventCallback<double>((i, v, _, _) => measurements.Enqueue((i.Name, v)));
        listener.Start();
        var registry = new EventTypeRegistry().Register<CapturePayment>(o => o.Kind = MessageKind.Command);
        var transport = new InMemoryTransport();
        var builder = new MessagingBuilder().AddHandler<CapturePayment>((c, _, _) => c.Amount < 0 ? throw new NonTransientException("negative") : Task.CompletedTask);
        await using var bus = new MessageBus(transport, registry, builder, new MessagingOptions { PollInterval = TimeSpan.FromMilliseconds(10), MaintenanceInterval = TimeSpan.FromMilliseconds(50), HeartbeatInterval = TimeSpan.FromMilliseconds(50) });
        await bus.StartAsync();
        await bus.SendAsync(new CapturePayment("ok", 1));
        await bus.SendAsync(new CapturePayment("bad", -1));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!measurements.Any(m => m.Name == "factum.messages.dead_lettered") || !measurements.Any(m => m.Name == "factum.messages.handled"))
        {
            Assert.True(DateTime.UtcNow < deadline, "metrics not recorded");
            await Task.Delay(10);
        }
        Assert.Contains(measurements, m => m.Name == "factum.messages.published");
        Assert.Contains(measurements, m => m.Name == "factum.messages.failed");
        Assert.Contains(measurements, m => m.Name == "factum.handler.duration");
        // The gauges read the status the housekeeping refreshes.
        await Task.Delay(200);
        listener.RecordObservableInstruments();
        Assert.Contains(measurements, m => m.Name == "factum.dlq.depth" && m.Value == 1);
        Assert.Contains(measurements, m => m.Name == "factum.queue.depth");
    }
}

public sealed class InMemoryBackpressureTests
{
    private static TransportMessage Msg() => new() { Id = MessageId.New(), Type = "CapturePayment", CorrelationId = "c", Timestamp = DateTimeOffset.UtcNow, Body = "{}"u8.ToArray() };

    [Fact]
    public async Task A_queue_nobody_consumes_never_blocks_its_producer()
    {
        var t = new InMemoryTransport(queueCapacity: 10);
        await t.SubscribeAsync("T", "idle");
        var publish = Task.Run(async () => { for (var i = 0; i < 500; i++) await t.PublishAsync("T", [Msg()]); });
        Assert.Same(publish, await Task.WhenAny(publish, Task.Delay(5000)));
        Assert.Equal(500, (await t.GetStatusAsync()).Queues.Single().Ready);
    }

    /// <summary>
    /// A clock that stands still until the test moves it (timers still run in real time): whether a consumer counts as
    /// active — it received within the last second — then depends on the test, not on how loaded the machine is.
    /// </summary>
    private sealed class StoppedClock : TimeProvider
    {
        private long _ticks = DateTimeOffset.UtcNow.UtcTicks;
        public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);
        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
    }

    [Fact]
    public async Task A_producer_waits_for_an_active_consumer_that_falls_behind()
    {
        var t = new InMemoryTransport(new StoppedClock(), queueCapacity: 10);
        Assert.Empty(await t.ReceiveAsync("work", "c", 1, TimeSpan.FromSeconds(30))); // a consumer is polling
        var sent = 0;
        var produce = Task.Run(async () =>
        {
            for (var i = 0; i < 40; i++)
            {
                await t.SendAsync("work", [Msg()]);
                Interlocked.Increment(ref sent);
            }
        });
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Volatile.Read(ref sent) < 10 && DateTime.UtcNow < deadline) await Task.Delay(5);
        var leased = new List<QueueDelivery>();
        for (var i = 0; i < 3; i++)
        {
            // The consumer keeps polling (leasing without acking), so it counts as active and the producer keeps waiting.
            leased.Add(Assert.Single(await t.ReceiveAsync("work", "c", 1, TimeSpan.FromSeconds(30))));
            await Task.Delay(100);
            Assert.False(produce.IsCompleted);
            Assert.Equal(10, Volatile.Read(ref sent)); // the 11th send went over the capacity and waits
        }
        await t.SettleAsync(leased.Select(d => new Settlement { Kind = SettlementKind.Ack, Delivery = d, Source = new MessageSource(MessageSourceKind.Queue, "work") }).ToList());
        var received = leased.Count;
        while (received < 40)
        {
            var ds = await t.ReceiveAsync("work", "c", 5, TimeSpan.FromSeconds(30));
            received += ds.Count;
            await t.SettleAsync(ds.Select(d => new Settlement { Kind = SettlementKind.Ack, Delivery = d, Source = new MessageSource(MessageSourceKind.Queue, "work") }).ToList());
            if (ds.Count == 0) await Task.Delay(5);
        }
        await produce.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_producer_held_back_goes_on_once_the_consumer_has_been_silent_for_a_second()
    {
        var clock = new StoppedClock();
        var t = new InMemoryTransport(clock, queueCapacity: 10);
        Assert.Empty(await t.ReceiveAsync("work", "c", 1, TimeSpan.FromSeconds(30)));
        var produce = Task.Run(async () => { for (var i = 0; i < 40; i++) await t.SendAsync("work", [Msg()]); });
        await Task.Delay(300);
        Assert.False(produce.IsCompleted); // over capacity with a consumer that just received: held back
        clock.Advance(TimeSpan.FromSeconds(1.5)); // the consumer has gone quiet: nothing drains the queue any more
        await produce.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(40, (await t.GetStatusAsync()).Queues.Single().Ready);
    }
}
