using Factum.Tracing;

namespace Factum.Tests;

public sealed class CausationTreeTests
{
    private static RecordedEvent E(int position, string type, string? cause, Guid? id = null) =>
        EventTypeRegistryTests.Recorded(type, 1, "{}") with { EventId = new EventId(id ?? Guid.CreateVersion7()), Position = position, CausationId = cause, CorrelationId = "c" };

    [Fact]
    public void Events_caused_by_something_outside_the_process_are_roots_that_name_their_cause()
    {
        var root = E(1, "OrderPlaced", "command-42");
        var child = E(2, "PaymentRequested", root.EventId.ToString());
        var tree = CausationTree.Build("c", [child, root]);
        var r = Assert.Single(tree.Roots);
        Assert.Equal(root, r.Event);
        Assert.Equal(child, Assert.Single(r.Children).Event);
        Assert.Contains("(caused by command-42)", tree.Render());
    }

    [Fact]
    public void Branches_are_ordered_by_position_and_independent_roots_are_kept()
    {
        var a = E(1, "OrderPlaced", null);
        var b = E(3, "StockReserved", a.EventId.ToString());
        var c = E(2, "PaymentRequested", a.EventId.ToString());
        var d = E(4, "AuditNoted", null);
        var tree = CausationTree.Build("c", [d, b, a, c]);
        Assert.Equal(["OrderPlaced", "AuditNoted"], tree.Roots.Select(r => r.Event.Type));
        Assert.Equal(["PaymentRequested", "StockReserved"], tree.Roots[0].Children.Select(n => n.Event.Type));
    }

    [Fact]
    public void A_causation_cycle_written_by_a_buggy_producer_does_not_hang_the_trace()
    {
        Guid ida = Guid.CreateVersion7(), idb = Guid.CreateVersion7();
        var a = E(1, "PingSent", idb.ToString(), ida);
        var b = E(2, "PongSent", ida.ToString(), idb);
        var tree = CausationTree.Build("c", [a, b]);
        Assert.Equal(2, tree.Count);
        Assert.Empty(tree.Roots); // every event has a cause inside the process: no root to start from
    }
}
