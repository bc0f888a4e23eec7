using Factum.Tracing;

namespace Factum.Conformance;

/// <summary>The correlation index and the causation tree built from it.</summary>
public abstract class TracingConformance<TFactory> : StoreTestBase<TFactory> where TFactory : IEventStoreFactory, new()
{
    private ICorrelationIndex Index => (ICorrelationIndex)Store;

    [Fact]
    public async Task The_correlation_index_returns_exactly_the_events_of_one_process_in_order()
    {
        await Append(NewStream(), ExpectedVersion.Any, Ev() with { CorrelationId = "p-1" }, Ev() with { CorrelationId = "p-2" });
        await Append(NewStream(), ExpectedVersion.Any, Ev() with { CorrelationId = "p-1" });
        await Append(NewStream(), ExpectedVersion.Any, Evs(1200).Select(e => e with { CorrelationId = "p-1" }).ToArray());
        var found = new List<RecordedEvent>();
        await foreach (var e in Index.ReadCorrelatedAsync("p-1")) found.Add(e);
        Assert.Equal(1202, found.Count);
        Assert.All(found, e => Assert.Equal("p-1", e.CorrelationId));
        Assert.Equal(found.Select(e => e.Position).Order(), found.Select(e => e.Position));
        await foreach (var _ in Index.ReadCorrelatedAsync("nobody")) Assert.Fail("no event has this correlation id");
    }

    [Fact]
    public async Task A_causation_tree_follows_causes_across_streams()
    {
        var order = NewStream("Order");
        await Append(order, ExpectedVersion.NoStream, Ev("OrderPlaced") with { CorrelationId = "flow-7" });
        var placed = (await Read(order))[0];
        using (EventContext.CausedBy(placed))
        {
            await Append(NewStream("Payment"), ExpectedVersion.NoStream, Ev("PaymentRequested"));
            await Append(NewStream("Stock"), ExpectedVersion.NoStream, Ev("StockReserved"));
        }
        var tree = await CausationTree.BuildAsync(Index, "flow-7");
        Assert.Equal(3, tree.Count);
        var root = Assert.Single(tree.Roots);
        Assert.Equal("OrderPlaced", root.Event.Type);
        Assert.Equal(["PaymentRequested", "StockReserved"], root.Children.Select(c => c.Event.Type));
        Assert.Contains("└─", tree.Render());
    }
}
