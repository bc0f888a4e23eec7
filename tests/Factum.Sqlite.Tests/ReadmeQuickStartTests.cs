using Microsoft.Extensions.DependencyInjection;

namespace Factum.Sqlite.Tests;

[EventType("OrderPlaced", Owner = "sales")]
public sealed record ReadmeOrderPlaced(string OrderId, decimal Total);

/// <summary>The README's C# quick start, kept compiling and true.</summary>
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
}
