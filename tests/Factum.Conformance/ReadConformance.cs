namespace Factum.Conformance;

/// <summary>Reading one stream forwards and backwards.</summary>
public abstract class ReadStreamConformance<TFactory> : StoreTestBase<TFactory> where TFactory : IEventStoreFactory, new()
{
    [Fact]
    public async Task Reading_forwards_returns_every_event_in_version_order()
    {
        var s = await StreamWith(5);
        Assert.Equal(new long[] { 0, 1, 2, 3, 4 }, Versions(await Read(s)));
    }

    [Fact]
    public async Task Reading_backwards_returns_the_newest_first()
    {
        var s = await StreamWith(5);
        Assert.Equal(new long[] { 4, 3, 2, 1, 0 }, Versions(await Read(s, new ReadStreamOptions { Direction = Direction.Backwards })));
    }

    [Fact]
    public async Task Reading_forwards_from_a_version_starts_there()
    {
        var s = await StreamWith(5);
        Assert.Equal(new long[] { 2, 3, 4 }, Versions(await Read(s, new ReadStreamOptions { From = 2 })));
    }

    [Fact]
    public async Task Reading_backwards_from_a_version_starts_there()
    {
        var s = await StreamWith(5);
        Assert.Equal(new long[] { 2, 1, 0 }, Versions(await Read(s, new ReadStreamOptions { From = 2, Direction = Direction.Backwards })));
    }

    [Fact]
    public async Task Reading_forwards_stops_at_max_count()
    {
        var s = await StreamWith(5);
        Assert.Equal(new long[] { 1, 2 }, Versions(await Read(s, new ReadStreamOptions { From = 1, MaxCount = 2 })));
    }

    [Fact]
    public async Task Reading_backwards_stops_at_max_count()
    {
        var s = await StreamWith(5);
        Assert.Equal(new long[] { 4, 3 }, Versions(await Read(s, new ReadStreamOptions { Direction = Direction.Backwards, MaxCount = 2 })));
    }

    [Fact]
    public async Task Reading_with_max_count_zero_returns_nothing()
    {
        var s = await StreamWith(3);
        Assert.Empty(await Read(s, new ReadStreamOptions { MaxCount = 0 }));
    }

    [Fact]
    public async Task Reading_from_beyond_the_end_returns_nothing()
    {
        var s = await StreamWith(3);
        Assert.Empty(await Read(s, new ReadStreamOptions { From = 10 }));
    }

    [Fact]
    public async Task Reading_backwards_from_beyond_the_end_starts_at_the_last_event()
    {
        var s = await StreamWith(3);
        Assert.Equal(new long[] { 2, 1, 0 }, Versions(await Read(s, new ReadStreamOptions { From = 100, Direction = Direction.Backwards })));
    }

    [Fact]
    public async Task Reading_a_missing_stream_fails_with_stream_not_found()
    {
        var s = NewStream();
        var ex = await Assert.ThrowsAsync<StreamNotFoundException>(() => Read(s));
        Assert.Equal(s, ex.StreamId);
    }

    [Fact]
    public async Task Reading_a_soft_deleted_stream_fails_with_stream_not_found()
    {
        var s = await StreamWith(2);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Soft);
        await Assert.ThrowsAsync<StreamNotFoundException>(() => Read(s));
    }

    [Fact]
    public async Task Reading_a_tombstoned_stream_fails_with_stream_deleted()
    {
        var s = await StreamWith(2);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Hard);
        await Assert.ThrowsAsync<StreamDeletedException>(() => Read(s));
        await Assert.ThrowsAsync<StreamDeletedException>(() => Read(s, new ReadStreamOptions { Direction = Direction.Backwards }));
    }

    [Fact]
    public async Task Reading_a_long_stream_crosses_pages_without_loss()
    {
        var s = NewStream();
        for (var i = 0; i < 5; i++) await Append(s, ExpectedVersion.Any, Evs(700));
        Assert.Equal(Enumerable.Range(0, 3500).Select(i => (long)i), Versions(await Read(s)));
        Assert.Equal(Enumerable.Range(0, 3500).Reverse().Select(i => (long)i), Versions(await Read(s, new ReadStreamOptions { Direction = Direction.Backwards })));
    }

    [Fact]
    public async Task Reading_a_stream_returns_only_its_own_events()
    {
        StreamId a = NewStream(), b = NewStream();
        await Append(a, ExpectedVersion.Any, Evs(2));
        await Append(b, ExpectedVersion.Any, Evs(3));
        await Append(a, ExpectedVersion.Any, Evs(1));
        Assert.All(await Read(a), e => Assert.Equal(a, e.StreamId));
        Assert.Equal(3, (await Read(a)).Count);
    }

    [Fact]
    public async Task A_read_can_be_cancelled()
    {
        var s = await StreamWith(3);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in Store.ReadStreamAsync(s, null, cts.Token)) { }
        });
    }
}

/// <summary>Reading the global log: ordering, positions and filters.</summary>
public abstract class ReadAllConformance<TFactory> : StoreTestBase<TFactory> where TFactory : IEventStoreFactory, new()
{
    [Fact]
    public async Task Reading_all_returns_events_in_commit_order_across_streams()
    {
        StreamId a = NewStream(), b = NewStream();
        await Append(a, ExpectedVersion.Any, Ev("OrderPlaced"));
        await Append(b, ExpectedVersion.Any, Ev("OrderShipped"));
        await Append(a, ExpectedVersion.Any, Ev("OrderPaid"));
        Assert.Equal(["OrderPlaced", "OrderShipped", "OrderPaid"], (await ReadAll()).Select(e => e.Type));
    }

    [Fact]
    public async Task Positions_start_at_one_and_increase_without_gaps()
    {
        for (var i = 0; i < 10; i++) await Append(NewStream(), ExpectedVersion.Any, Evs(i % 3 + 1));
        var all = await ReadAll();
        Assert.Equal(1, all[0].Position.Value);
        for (var i = 1; i < all.Count; i++) Assert.Equal(all[i - 1].Position.Value + 1, all[i].Position.Value);
    }

    [Fact]
    public async Task Reading_all_from_a_position_includes_that_position()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(5));
        var all = await ReadAll(new ReadAllOptions { From = 3 });
        Assert.Equal([3L, 4, 5], all.Select(e => e.Position.Value));
    }

    [Fact]
    public async Task Reading_all_up_to_a_position_stops_there_in_both_directions_and_with_filters()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.Any, Evs(600));
        // Across the SQLite suite's 256-row pages, so the bound holds on every page.
        Assert.Equal(Enumerable.Range(2, 299).Select(i => (long)i), (await ReadAll(new ReadAllOptions { From = 2, To = 300 })).Select(e => e.Position.Value));
        Assert.Equal([10L, 9, 8], (await ReadAll(new ReadAllOptions { From = 10, To = 8, Direction = Direction.Backwards })).Select(e => e.Position.Value));
        Assert.Equal([5L], (await ReadAll(new ReadAllOptions { From = 5, To = 5, Filter = EventFilter.ForEventTypes("OrderPlaced") })).Select(e => e.Position.Value));
        Assert.Empty(await ReadAll(new ReadAllOptions { From = 5, To = 4 }));
        Assert.Empty(await ReadAll(new ReadAllOptions { To = 300, Filter = EventFilter.ForEventTypes("OrderShipped") }));
    }

    [Fact]
    public async Task The_head_is_a_high_water_mark_every_event_at_or_below_it_is_readable()
    {
        Assert.Equal(GlobalPosition.Start, await Store.GetHeadPositionAsync());
        for (var i = 0; i < 5; i++) await Append(NewStream(), ExpectedVersion.Any, Evs(i + 1));
        var head = await Store.GetHeadPositionAsync();
        Assert.Equal(Enumerable.Range(1, (int)head.Value).Select(i => (long)i), (await ReadAll(new ReadAllOptions { To = head })).Select(e => e.Position.Value));
        Assert.Equal(15, head.Value);
    }

    [Fact]
    public async Task Reading_all_stops_at_max_count()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(5));
        Assert.Equal(2, (await ReadAll(new ReadAllOptions { MaxCount = 2 })).Count);
    }

    [Fact]
    public async Task Reading_all_backwards_returns_the_newest_first()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(4));
        var all = await ReadAll(new ReadAllOptions { Direction = Direction.Backwards, From = GlobalPosition.End });
        Assert.Equal([4L, 3, 2, 1], all.Select(e => e.Position.Value));
    }

    [Fact]
    public async Task Reading_all_backwards_from_a_position_includes_it()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(4));
        var all = await ReadAll(new ReadAllOptions { Direction = Direction.Backwards, From = 2 });
        Assert.Equal([2L, 1], all.Select(e => e.Position.Value));
    }

    [Fact]
    public async Task Filtering_by_event_type_keeps_only_that_type()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.Any, Ev("OrderPlaced"), Ev("OrderPaid"), Ev("OrderPlaced"));
        var all = await ReadAll(new ReadAllOptions { Filter = EventFilter.ForEventTypes("OrderPlaced") });
        Assert.Equal(2, all.Count);
        Assert.All(all, e => Assert.Equal("OrderPlaced", e.Type));
    }

    [Fact]
    public async Task Filtering_by_several_event_types_keeps_any_of_them()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.Any, Ev("OrderPlaced"), Ev("OrderPaid"), Ev("OrderShipped"));
        var all = await ReadAll(new ReadAllOptions { Filter = EventFilter.ForEventTypes("OrderPlaced", "OrderShipped") });
        Assert.Equal(["OrderPlaced", "OrderShipped"], all.Select(e => e.Type));
    }

    [Fact]
    public async Task Filtering_by_category_keeps_only_streams_of_that_category()
    {
        await Append(NewStream("Order"), ExpectedVersion.Any, Evs(2));
        await Append(NewStream("Payment"), ExpectedVersion.Any, Evs(3, "PaymentReceived"));
        var all = await ReadAll(new ReadAllOptions { Filter = EventFilter.ForCategories("Payment") });
        Assert.Equal(3, all.Count);
        Assert.All(all, e => Assert.Equal("Payment", e.StreamId.Category));
    }

    [Fact]
    public async Task Filtering_by_stream_prefix_keeps_matching_streams()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        await Append(StreamId.Parse($"Cart-{tag}-1"), ExpectedVersion.Any, Evs(1));
        await Append(StreamId.Parse($"Cart-{tag}-2"), ExpectedVersion.Any, Evs(1));
        await Append(StreamId.Parse($"Cart-other-{tag}"), ExpectedVersion.Any, Evs(1));
        var all = await ReadAll(new ReadAllOptions { Filter = EventFilter.ForStreamPrefixes($"Cart-{tag}") });
        Assert.Equal(2, all.Count);
    }

    [Fact]
    public async Task Filters_combine_as_and_between_criteria()
    {
        await Append(NewStream("Order"), ExpectedVersion.Any, Ev("ItemAdded"), Ev("OrderPlaced"));
        await Append(NewStream("Cart"), ExpectedVersion.Any, Ev("ItemAdded"));
        var all = await ReadAll(new ReadAllOptions { Filter = new EventFilter { EventTypes = ["ItemAdded"], Categories = ["Cart"] } });
        var e = Assert.Single(all);
        Assert.Equal("Cart", e.StreamId.Category);
    }

    [Fact]
    public async Task A_filter_that_matches_nothing_returns_nothing()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(3));
        Assert.Empty(await ReadAll(new ReadAllOptions { Filter = EventFilter.ForEventTypes("NothingHappened") }));
    }

    [Fact]
    public async Task A_sparse_filter_finds_matches_across_many_pages()
    {
        var s = NewStream();
        for (var round = 0; round < 6; round++)
        {
            var batch = Evs(500);
            batch[250] = Ev("RareThingHappened");
            await Append(s, ExpectedVersion.Any, batch);
        }
        var all = await ReadAll(new ReadAllOptions { Filter = EventFilter.ForEventTypes("RareThingHappened") });
        Assert.Equal(6, all.Count);
        Assert.Equal([250L, 750, 1250, 1750, 2250, 2750], all.Select(e => e.StreamVersion.Value));
    }

    [Fact]
    public async Task Reading_all_of_an_empty_store_returns_nothing()
    {
        Assert.Empty(await ReadAll());
        Assert.Equal(GlobalPosition.Start, await Store.GetHeadPositionAsync());
    }

    [Fact]
    public async Task The_head_position_is_the_position_of_the_last_event()
    {
        var r = await Append(NewStream(), ExpectedVersion.Any, Evs(7));
        Assert.Equal(r.LastPosition, await Store.GetHeadPositionAsync());
    }

    [Fact]
    public async Task Reading_all_still_returns_facts_of_deleted_streams()
    {
        StreamId soft = NewStream(), hard = NewStream();
        await Append(soft, ExpectedVersion.Any, Evs(2));
        await Append(hard, ExpectedVersion.Any, Evs(3));
        await Store.DeleteStreamAsync(soft, ExpectedVersion.Any, DeleteMode.Soft);
        await Store.DeleteStreamAsync(hard, ExpectedVersion.Any, DeleteMode.Hard);
        Assert.Equal(5, (await ReadAll()).Count);
    }

    [Fact]
    public async Task Events_read_from_all_carry_their_stream_and_version()
    {
        StreamId a = NewStream(), b = NewStream();
        await Append(a, ExpectedVersion.Any, Evs(2));
        await Append(b, ExpectedVersion.Any, Evs(1));
        var all = await ReadAll();
        Assert.Equal([(a, 0L), (a, 1L), (b, 0L)], all.Select(e => (e.StreamId, e.StreamVersion.Value)));
    }

    [Fact]
    public async Task Reading_all_across_pages_returns_every_event_once()
    {
        for (var i = 0; i < 5; i++) await Append(NewStream(), ExpectedVersion.Any, Evs(600));
        var all = await ReadAll();
        Assert.Equal(3000, all.Count);
        Assert.Equal(3000, all.Select(e => e.EventId).Distinct().Count());
        Assert.Equal(3000, (await ReadAll(new ReadAllOptions { Direction = Direction.Backwards, From = GlobalPosition.End })).Count);
    }
}
