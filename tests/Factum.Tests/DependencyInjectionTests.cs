using Factum.InMemory;
using Microsoft.Extensions.DependencyInjection;

namespace Factum.Tests;

public sealed class DependencyInjectionTests
{
    [Fact]
    public async Task AddFactum_registers_one_store_behind_every_interface_and_the_registry()
    {
        var services = new ServiceCollection().AddFactum(b => b.UseInMemory().AddEventType<CartCheckedOut>()).BuildServiceProvider();
        var store = services.GetRequiredService<IEventStore>();
        Assert.IsType<InMemoryEventStore>(store);
        Assert.Same(store, services.GetRequiredService<IEventWriter>());
        Assert.Same(store, services.GetRequiredService<IEventReader>());
        Assert.Same(store, services.GetRequiredService<IStreamManager>());
        var registry = services.GetRequiredService<EventTypeRegistry>();
        Assert.True(registry.TryGet("CartCheckedOut", out _));
        await store.AppendAsync(StreamId.Parse("Cart-1"), ExpectedVersion.NoStream, [registry.Encode(new CartCheckedOut("1"))]);
        Assert.Equal(new GlobalPosition(1), await services.GetRequiredService<IEventReader>().GetHeadPositionAsync());
    }

    [Fact]
    public void AddFactum_without_a_store_defaults_to_in_memory()
    {
        var services = new ServiceCollection().AddFactum(_ => { }).BuildServiceProvider();
        Assert.IsType<InMemoryEventStore>(services.GetRequiredService<IEventStore>());
    }

    [Fact]
    public void AddFactum_rejects_a_badly_named_event_type_at_startup()
    {
        Assert.Throws<ArgumentException>(() => new ServiceCollection().AddFactum(b => b.AddEventType<PlaceOrder>()));
    }
}
