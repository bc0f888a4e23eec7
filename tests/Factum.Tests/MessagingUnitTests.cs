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
        Assert.Equal(KeyPartitioner.For("Order-42", 8), KeyPartitioner.For("Order-42", 8));
        Assert.Equal(0, KeyPartitioner.For(null, 8));
        var counts = Enumerable.Range(0, 8000).GroupBy(i => KeyPartitioner.For($"Order-{i}", 8)).Select(g => g.Count()).ToList();
        Assert.Equal(8, counts.Count);
        Assert.All(counts, c => Assert.InRange(c, 800, 1200));
        // Documented values: the same on every transport and platform.
        Assert.Equal(KeyPartitioner.For("a", 1000), KeyPartitioner.For("a", 1000));
        Assert.Equal((int)(unchecked((2166136261u ^ 'a') * 16777619u) % 7u), KeyPartitioner.For("a", 7));
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
