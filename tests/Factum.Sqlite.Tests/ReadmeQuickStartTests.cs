using Microsoft.Extensions.DependencyInjection;

namespace Factum.Sqlite.Tests;

[EventType("OrderPlaced", Owner = "sales")]
public sealed record ReadmeOrderPlaced(string OrderId, decimal Total);

[EventType("CapturePayment", Kind = MessageKind.Command)]
public sealed record ReadmeCapturePayment(string OrderId, decimal Amount);

/// <summary>
/// The API calls of the README's quick start and messaging sections, in process. The README's code blocks themselves are
/// regions of the samples (samples/QuickStart, samples/Messaging), which tests/Factum.Samples.Tests runs as programs and
/// compares with the README.
/// </summary>
public sealed class ReadmeQuickStartTests : IDisposable
{
    private readonly string _dir = TempDir.Create();

    public void Dispose() => TempDir.Delete(_dir);

    [Fact]
    public async Task The_readme_quick_start_works_as_written()
    {
        var registry = new EventTypeRegistry().Register<ReadmeOrderPlaced>();
        await using var store = new SqliteEventStore(Path.Combine(_dir, "data", "factum.db"));
        var order = StreamId.For("Order", "42");
        var result = await store.AppendAsync(order, ExpectedVersion.NoStream, [registry.Encode(new ReadmeOrderPlaced("42", 99.90m))]);
        Assert.Equal(new StreamVersion(0), result.NextExpectedVersion);
        var seen = new List<object?>();
        await foreach (var recorded in store.ReadStreamAsync(order)) seen.Add(registry.Decode(recorded).Event);
        Assert.Equal([new ReadmeOrderPlaced("42", 99.90m)], seen);

        var handled = (await store.ReadStreamAsync(order).ToListAsync())[0];
        using (EventContext.CausedBy(handled))
            await store.AppendAsync(StreamId.For("Shipment", "42"), ExpectedVersion.NoStream, [EventData.FromJson("ShipmentScheduled", "{}")]);
        var shipment = (await store.ReadStreamAsync(StreamId.For("Shipment", "42")).ToListAsync())[0];
        Assert.Equal(handled.EventId.ToString(), shipment.CausationId);
        Assert.Equal(handled.CorrelationId, shipment.CorrelationId);
    }

    [Fact]
    public async Task The_readme_di_registration_works_as_written()
    {
        var services = new ServiceCollection().AddFactum(b => b.UseSqlite(Path.Combine(_dir, "factum.db")).AddEventType<ReadmeOrderPlaced>());
        await using var provider = services.BuildServiceProvider();
        Assert.Same(provider.GetRequiredService<IEventStore>(), provider.GetRequiredService<IEventWriter>());
        Assert.True(provider.GetRequiredService<EventTypeRegistry>().TryGet("OrderPlaced", out _));
    }

    [Fact]
    public async Task The_readme_messaging_snippet_works_as_written()
    {
        var charged = new System.Collections.Concurrent.ConcurrentQueue<ReadmeCapturePayment>();
        Task Charge(ReadmeCapturePayment c)
        {
            charged.Enqueue(c);
            return Task.CompletedTask;
        }
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Services.AddFactum(b => b
            .UseSqlite(Path.Combine(_dir, "data", "factum.db")).UseSqliteTransport()
            .AddEventType<ReadmeOrderPlaced>().AddCommand<ReadmeCapturePayment>()
            .AddHandler<ReadmeOrderPlaced>(async (e, ctx, ct) =>
                await ctx.SendAsync(new ReadmeCapturePayment(e.OrderId, e.Total), cancellationToken: ct), h => h.Group = "billing")
            .AddHandler<ReadmeCapturePayment>((c, ctx, ct) => Charge(c), h => h.Concurrency = 4));
        using var host = builder.Build();
        await host.StartAsync();
        var bus = host.Services.GetRequiredService<Factum.Messaging.IMessageBus>();
        await bus.PublishAsync(new ReadmeOrderPlaced("42", 99.90m));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (charged.IsEmpty && DateTime.UtcNow < deadline) await Task.Delay(10);
        await host.StopAsync();
        Assert.Equal([new ReadmeCapturePayment("42", 99.90m)], charged);
    }
}
