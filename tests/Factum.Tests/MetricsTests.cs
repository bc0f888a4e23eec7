using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Factum.Conformance.Messaging;
using Factum.Messaging;
using Microsoft.Extensions.DependencyInjection;

namespace Factum.Tests;

/// <summary>Metrics come from the application's <see cref="IMeterFactory"/>, one meter per Factum instance.</summary>
public sealed class MetricsTests
{
    private sealed record Measured(string Instrument, string? Instance, long Value, IReadOnlyDictionary<string, object?> Tags);

    private static MeterListener Listen(ConcurrentQueue<Measured> into, IMeterFactory factory)
    {
        var listener = new MeterListener
        {
            // Only meters this test's factory made: other tests' buses report through their own meters.
            InstrumentPublished = (i, l) => { if (i.Meter.Name == FactumMetrics.MeterName && ReferenceEquals(i.Meter.Scope, factory)) l.EnableMeasurementEvents(i); },
        };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) =>
        {
            var t = new Dictionary<string, object?>();
            foreach (var tag in tags) t[tag.Key] = tag.Value;
            var instance = i.Meter.Tags?.FirstOrDefault(m => m.Key == FactumMetrics.InstanceTag).Value as string;
            into.Enqueue(new Measured(i.Name, instance, v, t));
        });
        listener.Start();
        return listener;
    }

    [Fact]
    public async Task Two_instances_in_one_process_report_separately_through_the_meter_factory()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var factory = services.GetRequiredService<IMeterFactory>();
        var measured = new ConcurrentQueue<Measured>();
        using var listener = Listen(measured, factory);
        var registry = new EventTypeRegistry().Register<CapturePayment>(o => o.Kind = MessageKind.Command);
        using var orders = new FactumMetrics(factory, "orders");
        using var billing = new FactumMetrics(factory, "billing");
        Assert.NotSame(orders.Meter, billing.Meter);
        await using var a = new MessageBus(new InMemoryTransport(), registry, options: new MessagingOptions { Metrics = orders, MaintenanceInterval = TimeSpan.FromMilliseconds(20) });
        await using var b = new MessageBus(new InMemoryTransport(), registry, options: new MessagingOptions { Metrics = billing, MaintenanceInterval = TimeSpan.FromMilliseconds(20) });
        for (var i = 0; i < 2; i++) await a.SendAsync(new CapturePayment($"a{i}", 1));
        for (var i = 0; i < 3; i++) await b.SendAsync(new CapturePayment($"b{i}", 1));

        var published = measured.Where(m => m.Instrument == "factum.messages.published").GroupBy(m => m.Instance).ToDictionary(g => g.Key ?? "", g => g.Sum(m => m.Value));
        Assert.Equal(new Dictionary<string, long> { ["orders"] = 2, ["billing"] = 3 }, published);

        // The gauges of each instance report only its own bus's queues, tagged with the instance.
        await a.StartAsync();
        await b.StartAsync();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            measured.Clear();
            listener.RecordObservableInstruments();
            var depths = measured.Where(m => m.Instrument == "factum.queue.depth").ToList();
            if (depths.Select(d => d.Instance).Distinct().Count() == 2 || DateTime.UtcNow > deadline)
            {
                Assert.All(depths, d => Assert.Equal(d.Instance, d.Tags[FactumMetrics.InstanceTag]));
                Assert.Equal(["billing", "orders"], depths.Select(d => d.Instance).Distinct().Order());
                break;
            }
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task AddFactum_takes_its_meter_from_the_container_s_factory_with_the_instance_name()
    {
        await using var services = new ServiceCollection().AddMetrics()
            .AddFactum(f => f.WithInstanceName("shop").UseInMemory().UseInMemoryTransport().AddCommand<CapturePayment>())
            .BuildServiceProvider();
        var metrics = services.GetRequiredService<FactumMetrics>();
        Assert.Equal("shop", metrics.Instance);
        Assert.Same(services.GetRequiredService<IMeterFactory>(), metrics.Meter.Scope);
        Assert.Same(metrics, services.GetRequiredService<MessageBus>().Metrics);
    }

    [Fact]
    public async Task One_process_reports_the_backend_wide_gauges_and_another_takes_over_when_it_stops()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var factory = services.GetRequiredService<IMeterFactory>();
        var measured = new ConcurrentQueue<Measured>();
        using var listener = Listen(measured, factory);
        var registry = new EventTypeRegistry().Register<CapturePayment>(o => o.Kind = MessageKind.Command);
        var transport = new InMemoryTransport(); // one transport shared by two "processes"
        var leases = new Coordination.InMemoryLeaseStore();
        using var first = new FactumMetrics(factory, "first");
        using var second = new FactumMetrics(factory, "second");
        MessagingOptions Options(FactumMetrics m) => new() { Metrics = m, Leases = leases, MaintenanceInterval = TimeSpan.FromMilliseconds(200), HeartbeatInterval = TimeSpan.FromMilliseconds(10) };
        var builder = new MessagingBuilder().AddHandler<CapturePayment>((_, _, _) => Task.CompletedTask);
        await using var a = new MessageBus(transport, registry, builder, Options(first));
        await using var b = new MessageBus(transport, registry, builder, Options(second));
        await a.StartAsync();
        await b.StartAsync();

        async Task<List<string?>> ReportersAsync(Func<List<string?>, bool> until)
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (true)
            {
                measured.Clear();
                listener.RecordObservableInstruments();
                var reporters = measured.Where(m => m.Instrument == "factum.queue.depth").Select(m => m.Instance).Distinct().ToList();
                if (until(reporters) || DateTime.UtcNow > deadline) return reporters;
                await Task.Delay(20);
            }
        }
        // Both buses see the same queue; only the lease holder reports it.
        var reporters = await ReportersAsync(r => r.Count > 0);
        var owner = Assert.Single(reporters);
        await Task.Delay(700); // several housekeeping rounds of both
        Assert.Equal([owner], await ReportersAsync(_ => true));

        await (owner == "first" ? a : b).StopAsync();
        var other = owner == "first" ? "second" : "first";
        Assert.Equal([other], await ReportersAsync(r => r.SequenceEqual([other])));
    }
}
