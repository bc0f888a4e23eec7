namespace Factum.Conformance;

/// <summary>Stream metadata and retention.</summary>
public abstract class MetadataConformance<TFactory> : StoreTestBase<TFactory> where TFactory : IEventStoreFactory, new()
{
    [Fact]
    public async Task Max_count_hides_all_but_the_newest_events()
    {
        var s = await StreamWith(10);
        await Store.SetStreamMetadataAsync(s, new StreamMetadata { MaxCount = 3 });
        Assert.Equal(new long[] { 7, 8, 9 }, Versions(await Read(s)));
    }

    [Fact]
    public async Task Max_count_applies_when_reading_backwards()
    {
        var s = await StreamWith(10);
        await Store.SetStreamMetadataAsync(s, new StreamMetadata { MaxCount = 3 });
        Assert.Equal(new long[] { 9, 8, 7 }, Versions(await Read(s, new ReadStreamOptions { Direction = Direction.Backwards })));
    }

    [Fact]
    public async Task Max_count_follows_new_appends()
    {
        var s = await StreamWith(5);
        await Store.SetStreamMetadataAsync(s, new StreamMetadata { MaxCount = 2 });
        await Append(s, ExpectedVersion.Exactly(4), Evs(1));
        Assert.Equal(new long[] { 4, 5 }, Versions(await Read(s)));
    }

    [Fact]
    public async Task Truncate_before_hides_earlier_versions()
    {
        var s = await StreamWith(6);
        await Store.SetStreamMetadataAsync(s, new StreamMetadata { TruncateBefore = 4 });
        Assert.Equal(new long[] { 4, 5 }, Versions(await Read(s)));
        Assert.Equal(new long[] { 5, 4 }, Versions(await Read(s, new ReadStreamOptions { Direction = Direction.Backwards })));
    }

    [Fact]
    public async Task Max_age_hides_events_older_than_it()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.NoStream, Evs(2));
        Clock.Advance(TimeSpan.FromHours(2));
        await Append(s, ExpectedVersion.Any, Evs(1));
        await Store.SetStreamMetadataAsync(s, new StreamMetadata { MaxAge = TimeSpan.FromHours(1) });
        Assert.Equal(new long[] { 2 }, Versions(await Read(s)));
        Clock.Advance(TimeSpan.FromHours(2));
        Assert.Empty(await Read(s));
    }

    [Fact]
    public async Task The_strictest_retention_rule_wins()
    {
        var s = await StreamWith(10);
        await Store.SetStreamMetadataAsync(s, new StreamMetadata { MaxCount = 5, TruncateBefore = 8 });
        Assert.Equal(new long[] { 8, 9 }, Versions(await Read(s)));
    }

    [Fact]
    public async Task Retention_is_not_destructive_and_can_be_lifted()
    {
        var s = await StreamWith(5);
        await Store.SetStreamMetadataAsync(s, new StreamMetadata { MaxCount = 1 });
        await Store.SetStreamMetadataAsync(s, StreamMetadata.None);
        Assert.Equal(5, (await Read(s)).Count);
    }

    [Fact]
    public async Task Retention_does_not_change_the_versions_of_later_appends()
    {
        var s = await StreamWith(3);
        await Store.SetStreamMetadataAsync(s, new StreamMetadata { TruncateBefore = 3 });
        var r = await Append(s, ExpectedVersion.Exactly(2), Evs(1));
        Assert.Equal(new StreamVersion(3), r.NextExpectedVersion);
    }

    [Fact]
    public async Task Custom_metadata_round_trips_through_stream_info()
    {
        var s = await StreamWith(1);
        var metadata = new StreamMetadata
        {
            MaxAge = TimeSpan.FromDays(30),
            MaxCount = 100,
            TruncateBefore = 0,
            Custom = new Dictionary<string, string> { ["owner"] = "sales", ["pii"] = "true" },
        };
        await Store.SetStreamMetadataAsync(s, metadata);
        var info = await Store.GetStreamInfoAsync(s);
        Assert.Equal(TimeSpan.FromDays(30), info.Metadata.MaxAge);
        Assert.Equal(100, info.Metadata.MaxCount);
        Assert.Equal(new StreamVersion(0), info.Metadata.TruncateBefore);
        Assert.Equal("sales", info.Metadata.Custom["owner"]);
        Assert.Equal("true", info.Metadata.Custom["pii"]);
    }

    [Fact]
    public async Task Metadata_can_be_set_before_the_stream_exists_and_applies_once_it_does()
    {
        var s = NewStream();
        await Store.SetStreamMetadataAsync(s, new StreamMetadata { MaxCount = 2 });
        Assert.Equal(StreamState.NotFound, (await Store.GetStreamInfoAsync(s)).State);
        await Append(s, ExpectedVersion.NoStream, Evs(4));
        Assert.Equal(new long[] { 2, 3 }, Versions(await Read(s)));
    }

    [Fact]
    public async Task Setting_metadata_on_a_tombstoned_stream_fails()
    {
        var s = await StreamWith(1);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Hard);
        await Assert.ThrowsAsync<StreamDeletedException>(() => Store.SetStreamMetadataAsync(s, new StreamMetadata { MaxCount = 1 }));
    }

    [Fact]
    public void Invalid_retention_values_are_rejected_with_a_clear_message()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new StreamMetadata { MaxCount = 0 });
        Assert.Contains("maxCount", ex.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new StreamMetadata { MaxAge = TimeSpan.FromMilliseconds(10) });
    }
}

/// <summary>Soft and hard deletes.</summary>
public abstract class DeleteConformance<TFactory> : StoreTestBase<TFactory> where TFactory : IEventStoreFactory, new()
{
    [Fact]
    public async Task A_soft_delete_hides_the_stream()
    {
        var s = await StreamWith(3);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Exactly(2), DeleteMode.Soft);
        var info = await Store.GetStreamInfoAsync(s);
        Assert.Equal(StreamState.SoftDeleted, info.State);
        Assert.Equal(new StreamVersion(2), info.LastVersion);
    }

    [Fact]
    public async Task A_soft_delete_with_a_wrong_expected_version_fails_and_keeps_the_stream()
    {
        var s = await StreamWith(3);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Store.DeleteStreamAsync(s, ExpectedVersion.Exactly(0), DeleteMode.Soft));
        Assert.Equal(3, (await Read(s)).Count);
    }

    [Fact]
    public async Task A_hard_delete_with_a_wrong_expected_version_fails_and_keeps_the_stream()
    {
        var s = await StreamWith(3);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Store.DeleteStreamAsync(s, ExpectedVersion.NoStream, DeleteMode.Hard));
        Assert.Equal(StreamState.Active, (await Store.GetStreamInfoAsync(s)).State);
    }

    [Fact]
    public async Task A_hard_delete_tombstones_the_stream_forever()
    {
        var s = await StreamWith(2);
        await Store.DeleteStreamAsync(s, ExpectedVersion.StreamExists, DeleteMode.Hard);
        Assert.Equal(StreamState.Tombstoned, (await Store.GetStreamInfoAsync(s)).State);
        await Assert.ThrowsAsync<StreamDeletedException>(() => Read(s));
        await Assert.ThrowsAsync<StreamDeletedException>(() => Append(s, ExpectedVersion.Any, Evs(1)));
    }

    [Fact]
    public async Task A_hard_delete_after_a_soft_delete_tombstones_the_stream()
    {
        var s = await StreamWith(2);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Soft);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Hard);
        await Assert.ThrowsAsync<StreamDeletedException>(() => Append(s, ExpectedVersion.NoStream, Evs(1)));
    }

    [Theory]
    [InlineData(DeleteMode.Soft)]
    [InlineData(DeleteMode.Hard)]
    public async Task Deleting_a_tombstoned_stream_again_fails_with_stream_deleted(DeleteMode mode)
    {
        var s = await StreamWith(1);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Hard);
        await Assert.ThrowsAsync<StreamDeletedException>(() => Store.DeleteStreamAsync(s, ExpectedVersion.Any, mode));
    }

    [Fact]
    public async Task Soft_deleting_twice_is_harmless()
    {
        var s = await StreamWith(2);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Soft);
        await Store.DeleteStreamAsync(s, ExpectedVersion.NoStream, DeleteMode.Soft);
        Assert.Equal(StreamState.SoftDeleted, (await Store.GetStreamInfoAsync(s)).State);
    }

    [Fact]
    public async Task Hard_deleting_a_never_written_stream_reserves_its_name_forever()
    {
        var s = NewStream();
        await Store.DeleteStreamAsync(s, ExpectedVersion.NoStream, DeleteMode.Hard);
        await Assert.ThrowsAsync<StreamDeletedException>(() => Append(s, ExpectedVersion.NoStream, Evs(1)));
    }

    [Fact]
    public async Task A_soft_deleted_stream_is_left_out_of_listings_unless_asked()
    {
        var cat = "Del" + Guid.NewGuid().ToString("N")[..8];
        var s = NewStream(cat);
        await Append(s, ExpectedVersion.NoStream, Evs(1));
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Soft);
        Assert.Empty((await Store.ListStreamsAsync(new ListStreamsOptions { Category = cat })).Streams);
        var listed = Assert.Single((await Store.ListStreamsAsync(new ListStreamsOptions { Category = cat, IncludeDeleted = true })).Streams);
        Assert.Equal(StreamState.SoftDeleted, listed.State);
    }

    [Fact]
    public async Task Other_streams_are_untouched_by_a_delete()
    {
        StreamId a = await StreamWith(2), b = await StreamWith(3);
        await Store.DeleteStreamAsync(a, ExpectedVersion.Any, DeleteMode.Hard);
        Assert.Equal(3, (await Read(b)).Count);
    }
}

/// <summary>Stream info and listing.</summary>
public abstract class StreamInfoConformance<TFactory> : StoreTestBase<TFactory> where TFactory : IEventStoreFactory, new()
{
    [Fact]
    public async Task The_info_of_a_missing_stream_says_not_found()
    {
        var info = await Store.GetStreamInfoAsync(NewStream());
        Assert.Equal(StreamState.NotFound, info.State);
        Assert.Null(info.LastVersion);
    }

    [Fact]
    public async Task The_info_of_a_stream_gives_its_last_version_position_and_times()
    {
        var s = NewStream();
        var created = Clock.Now;
        await Append(s, ExpectedVersion.NoStream, Evs(2));
        Clock.Advance(TimeSpan.FromMinutes(5));
        var r = await Append(s, ExpectedVersion.Any, Evs(1));
        var info = await Store.GetStreamInfoAsync(s);
        Assert.Equal(StreamState.Active, info.State);
        Assert.Equal(new StreamVersion(2), info.LastVersion);
        Assert.Equal(r.LastPosition, info.LastPosition);
        Assert.Equal(created, info.CreatedAt);
        Assert.Equal(Clock.Now, info.UpdatedAt);
    }

    [Fact]
    public async Task Streams_are_listed_in_id_order()
    {
        var cat = "List" + Guid.NewGuid().ToString("N")[..8];
        foreach (var n in new[] { "c", "a", "b" }) await Append(StreamId.Parse($"{cat}-{n}"), ExpectedVersion.Any, Evs(1));
        var page = await Store.ListStreamsAsync(new ListStreamsOptions { Category = cat });
        Assert.Equal([$"{cat}-a", $"{cat}-b", $"{cat}-c"], page.Streams.Select(x => x.StreamId.Value));
        Assert.Null(page.ContinuationToken);
    }

    [Fact]
    public async Task Listing_by_category_leaves_other_categories_out()
    {
        var cat = "Cat" + Guid.NewGuid().ToString("N")[..8];
        await Append(NewStream(cat), ExpectedVersion.Any, Evs(1));
        await Append(NewStream(cat + "x"), ExpectedVersion.Any, Evs(1));
        var page = await Store.ListStreamsAsync(new ListStreamsOptions { Category = cat });
        Assert.All(page.Streams, x => Assert.Equal(cat, x.StreamId.Category));
        Assert.Single(page.Streams);
    }

    [Fact]
    public async Task Listing_pages_through_every_stream_with_a_continuation_token()
    {
        var cat = "Page" + Guid.NewGuid().ToString("N")[..8];
        var expected = new List<string>();
        for (var i = 0; i < 25; i++)
        {
            var s = StreamId.Parse($"{cat}-{i:D3}");
            expected.Add(s.Value);
            await Append(s, ExpectedVersion.Any, Evs(1));
        }
        var seen = new List<string>();
        string? after = null;
        var pages = 0;
        do
        {
            var page = await Store.ListStreamsAsync(new ListStreamsOptions { Category = cat, PageSize = 10, After = after });
            seen.AddRange(page.Streams.Select(x => x.StreamId.Value));
            after = page.ContinuationToken;
            pages++;
        } while (after is not null);
        Assert.Equal(expected, seen);
        Assert.Equal(3, pages);
    }

    [Fact]
    public async Task Listing_an_empty_store_returns_an_empty_last_page()
    {
        var page = await Store.ListStreamsAsync();
        Assert.Empty(page.Streams);
        Assert.Null(page.ContinuationToken);
    }

    [Fact]
    public async Task Metadata_only_streams_are_not_listed_as_active()
    {
        var cat = "Meta" + Guid.NewGuid().ToString("N")[..8];
        await Store.SetStreamMetadataAsync(NewStream(cat), new StreamMetadata { MaxCount = 5 });
        Assert.Empty((await Store.ListStreamsAsync(new ListStreamsOptions { Category = cat })).Streams);
    }
}

/// <summary>Limits: event size, batch size, ids.</summary>
public abstract class ValidationConformance<TFactory> : StoreTestBase<TFactory> where TFactory : IEventStoreFactory, new()
{
    protected override EventStoreOptions Options => new() { TimeProvider = Clock, MaxEventSize = 1000, MaxEventsPerAppend = 50 };

    [Fact]
    public async Task An_event_larger_than_the_maximum_is_rejected_and_nothing_is_written()
    {
        var s = NewStream();
        var big = new EventData("OrderPlaced", new byte[1001]);
        var ex = await Assert.ThrowsAsync<EventTooLargeException>(() => Append(s, ExpectedVersion.Any, Ev(), big));
        Assert.Equal(1001, ex.Size);
        Assert.Equal(1000, ex.MaxSize);
        Assert.Contains("1,001 bytes", ex.Message);
        Assert.Equal(StreamState.NotFound, (await Store.GetStreamInfoAsync(s)).State);
    }

    [Fact]
    public async Task An_event_of_exactly_the_maximum_size_is_accepted()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.Any, new EventData("OrderPlaced", new byte[1000]));
        Assert.Single(await Read(s));
    }

    [Fact]
    public async Task Metadata_counts_towards_the_event_size()
    {
        var s = NewStream();
        var e = new EventData("OrderPlaced", new byte[900]) { Metadata = new Dictionary<string, string> { ["note"] = new string('x', 200) } };
        await Assert.ThrowsAsync<EventTooLargeException>(() => Append(s, ExpectedVersion.Any, e));
    }

    [Fact]
    public async Task Too_many_events_in_one_append_are_rejected()
    {
        var ex = await Assert.ThrowsAnyAsync<ArgumentException>(() => Append(NewStream(), ExpectedVersion.Any, Evs(51)));
        Assert.Contains("at most 50", ex.Message);
    }

    [Fact]
    public async Task A_default_stream_id_is_rejected()
    {
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.AppendAsync(default, ExpectedVersion.Any, Evs(1)));
    }

    [Fact]
    public async Task A_null_event_in_the_list_is_rejected()
    {
        var ex = await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.AppendAsync(NewStream(), ExpectedVersion.Any, [Ev(), null!]));
        Assert.Contains("Event 1", ex.Message);
    }

    [Fact]
    public async Task A_rejected_append_leaves_the_store_as_it_was()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.NoStream, Evs(2));
        var head = await Store.GetHeadPositionAsync();
        await Assert.ThrowsAsync<EventTooLargeException>(() => Append(s, ExpectedVersion.Exactly(1), Ev(), new EventData("OrderPlaced", new byte[5000])));
        Assert.Equal(head, await Store.GetHeadPositionAsync());
        Assert.Equal(2, (await Read(s)).Count);
    }

    [Fact]
    public void Invalid_type_names_are_rejected_when_building_events()
    {
        Assert.Throws<ArgumentException>(() => EventData.FromJson("", "{}"));
        Assert.Throws<ArgumentException>(() => EventData.FromJson("Order Placed", "{}"));
        Assert.Throws<ArgumentException>(() => EventData.FromJson(new string('A', 300), "{}"));
    }
}
