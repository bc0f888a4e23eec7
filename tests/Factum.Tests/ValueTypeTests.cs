namespace Factum.Tests;

public sealed class StreamIdTests
{
    [Fact]
    public void The_category_is_the_part_before_the_first_dash()
    {
        Assert.Equal("Order", StreamId.Parse("Order-42").Category);
        Assert.Equal("Order", StreamId.Parse("Order-42-line-3").Category);
        Assert.Equal("Singleton", StreamId.Parse("Singleton").Category);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public void Empty_ids_are_rejected(string value)
    {
        var ex = Assert.Throws<ArgumentException>(() => StreamId.Parse(value));
        Assert.Contains("empty", ex.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void An_id_of_exactly_1000_characters_is_accepted_and_1001_rejected()
    {
        Assert.Equal(1000, StreamId.Parse(new string('a', 1000)).Value.Length);
        var ex = Assert.Throws<ArgumentException>(() => StreamId.Parse(new string('a', 1001)));
        Assert.Contains("1001", ex.Message);
    }

    [Theory]
    [InlineData("Order\n1")]
    [InlineData("Order\u00001")]
    [InlineData("Order\t1")]
    public void Control_characters_are_rejected_with_their_position(string value)
    {
        var ex = Assert.Throws<ArgumentException>(() => StreamId.Parse(value));
        Assert.Contains("index 5", ex.Message);
    }

    [Fact]
    public void Dollar_names_are_reserved_for_the_system()
    {
        var ex = Assert.Throws<ArgumentException>(() => StreamId.Parse("$all"));
        Assert.Contains("reserved", ex.Message);
        Assert.True(StreamId.ForSystem("$checkpoints").IsSystem);
        Assert.Throws<ArgumentException>(() => StreamId.ForSystem("checkpoints"));
    }

    [Fact]
    public void TryParse_reports_the_error_without_throwing()
    {
        Assert.False(StreamId.TryParse("", out _, out var error));
        Assert.NotNull(error);
        Assert.True(StreamId.TryParse("Cart-1", out var id, out _));
        Assert.Equal("Cart-1", id.Value);
    }

    [Fact]
    public void Equal_ids_are_equal_and_ordered_ordinally()
    {
        Assert.Equal(StreamId.Parse("A-1"), StreamId.Parse("A-1"));
        Assert.True(StreamId.Parse("A-1") < StreamId.Parse("B-1"));
        Assert.Equal(StreamId.Parse("Order-7"), StreamId.For("Order", "7"));
    }

    [Fact]
    public void Default_stream_id_refuses_to_give_a_value()
    {
        Assert.Throws<InvalidOperationException>(() => default(StreamId).Value);
    }
}

public sealed class ExpectedVersionTests
{
    [Theory]
    [InlineData("any", -2)]
    [InlineData("ANY", -2)]
    [InlineData("no-stream", -1)]
    [InlineData("exists", -4)]
    [InlineData("0", 0)]
    [InlineData("42", 42)]
    public void Parse_accepts_every_documented_form(string text, long value) => Assert.Equal(value, ExpectedVersion.Parse(text).Value);

    [Theory]
    [InlineData("-1")]
    [InlineData("sometimes")]
    [InlineData("1.5")]
    public void Parse_rejects_anything_else_with_the_allowed_forms_named(string text)
    {
        var ex = Assert.Throws<ArgumentException>(() => ExpectedVersion.Parse(text));
        Assert.Contains("no-stream", ex.Message);
    }

    [Fact]
    public void The_kinds_are_distinguishable()
    {
        Assert.True(ExpectedVersion.Any.IsAny);
        Assert.True(ExpectedVersion.NoStream.IsNoStream);
        Assert.True(ExpectedVersion.StreamExists.IsStreamExists);
        Assert.True(ExpectedVersion.Exactly(3).IsExact);
        Assert.Equal("3", ExpectedVersion.Exactly(3).ToString());
        Assert.Equal("no-stream", ExpectedVersion.NoStream.ToString());
    }
}

public sealed class PositionAndVersionTests
{
    [Fact]
    public void Negative_versions_and_positions_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new StreamVersion(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new GlobalPosition(-1));
    }

    [Fact]
    public void Versions_and_positions_compare_by_value()
    {
        Assert.True(new StreamVersion(1) < new StreamVersion(2));
        Assert.Equal(new StreamVersion(3), new StreamVersion(2).Next());
        Assert.True(GlobalPosition.Start < new GlobalPosition(1));
    }

    [Fact]
    public void New_event_ids_are_uuid_v7_and_distinct()
    {
        var a = EventId.New();
        var b = EventId.New();
        Assert.NotEqual(a, b);
        Assert.Equal(7, a.Value.Version);
    }

    [Fact]
    public void Event_ids_reject_empty_and_malformed_values()
    {
        Assert.Throws<ArgumentException>(() => new EventId(Guid.Empty));
        var ex = Assert.Throws<ArgumentException>(() => EventId.Parse("not-a-guid"));
        Assert.Contains("not-a-guid", ex.Message);
    }

    [Fact]
    public void Schema_versions_below_one_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => EventData.FromJson("OrderPlaced", "{}") with { SchemaVersion = 0 });
    }
}

public sealed class EventContextTests
{
    [Fact]
    public void A_scope_sets_and_restores_the_ambient_ids()
    {
        Assert.Null(EventContext.CorrelationId);
        using (EventContext.Begin("c1", "x1"))
        {
            Assert.Equal("c1", EventContext.CorrelationId);
            using (EventContext.Begin("c2", null))
            {
                Assert.Equal("c2", EventContext.CorrelationId);
                Assert.Null(EventContext.CausationId);
            }
            Assert.Equal("x1", EventContext.CausationId);
        }
        Assert.Null(EventContext.CorrelationId);
    }

    [Fact]
    public async Task The_context_flows_into_awaited_calls_but_not_into_unrelated_flows()
    {
        string? seenInside = null;
        using (EventContext.Begin("flow", null))
        {
            await Task.Run(() => seenInside = EventContext.CorrelationId);
        }
        Assert.Equal("flow", seenInside);
        Assert.Null(await Task.Run(() => EventContext.CorrelationId));
    }

    [Fact]
    public void A_blank_correlation_id_is_rejected()
    {
        Assert.ThrowsAny<ArgumentException>(() => EventContext.Begin(" ", null));
    }
}
