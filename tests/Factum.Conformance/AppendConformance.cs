namespace Factum.Conformance;

/// <summary>Expected-version rules on new, existing, soft-deleted and tombstoned streams.</summary>
public abstract class AppendConformance<TFactory> : StoreTestBase<TFactory> where TFactory : IEventStoreFactory, new()
{
    [Fact]
    public async Task Append_with_no_stream_to_a_new_stream_writes_from_version_0()
    {
        var s = NewStream();
        var r = await Append(s, ExpectedVersion.NoStream, Evs(2));
        Assert.Equal(new StreamVersion(1), r.NextExpectedVersion);
        Assert.True(r.Written);
        Assert.Equal(new long[] { 0, 1 }, Versions(await Read(s)));
    }

    [Fact]
    public async Task Append_with_any_to_a_new_stream_writes_from_version_0()
    {
        var s = NewStream();
        var r = await Append(s, ExpectedVersion.Any, Evs(1));
        Assert.Equal(new StreamVersion(0), r.NextExpectedVersion);
    }

    [Fact]
    public async Task Append_with_stream_exists_to_a_new_stream_fails()
    {
        var s = NewStream();
        var ex = await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.StreamExists, Evs(1)));
        Assert.Null(ex.Actual);
        Assert.Equal(StreamState.NotFound, (await Store.GetStreamInfoAsync(s)).State);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    public async Task Append_with_an_exact_version_to_a_new_stream_fails(long version)
    {
        var s = NewStream();
        var ex = await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.Exactly(version), Evs(1)));
        Assert.Equal(ExpectedVersion.Exactly(version), ex.Expected);
        Assert.Null(ex.Actual);
        Assert.Equal(s, ex.StreamId);
    }

    [Fact]
    public async Task Append_with_the_current_version_writes_the_next_versions()
    {
        var s = await StreamWith(3);
        var r = await Append(s, ExpectedVersion.Exactly(2), Evs(2));
        Assert.Equal(new StreamVersion(4), r.NextExpectedVersion);
        Assert.Equal(new long[] { 0, 1, 2, 3, 4 }, Versions(await Read(s)));
    }

    [Fact]
    public async Task Append_with_a_stale_version_fails_and_writes_nothing()
    {
        var s = await StreamWith(3);
        var ex = await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.Exactly(1), Evs(1)));
        Assert.Equal(new StreamVersion(2), ex.Actual);
        Assert.Equal(3, (await Read(s)).Count);
    }

    [Fact]
    public async Task Append_with_a_future_version_fails_and_writes_nothing()
    {
        var s = await StreamWith(3);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.Exactly(7), Evs(1)));
        Assert.Equal(3, (await Read(s)).Count);
    }

    [Fact]
    public async Task Append_with_no_stream_to_an_existing_stream_fails()
    {
        var s = await StreamWith(1);
        var ex = await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.NoStream, Evs(1)));
        Assert.Equal(new StreamVersion(0), ex.Actual);
    }

    [Fact]
    public async Task Append_with_any_to_an_existing_stream_appends_at_the_end()
    {
        var s = await StreamWith(2);
        var r = await Append(s, ExpectedVersion.Any, Evs(1));
        Assert.Equal(new StreamVersion(2), r.NextExpectedVersion);
    }

    [Fact]
    public async Task Append_with_stream_exists_to_an_existing_stream_appends()
    {
        var s = await StreamWith(2);
        var r = await Append(s, ExpectedVersion.StreamExists, Evs(1));
        Assert.Equal(new StreamVersion(2), r.NextExpectedVersion);
    }

    [Fact]
    public async Task Wrong_expected_version_message_names_the_stream_and_both_versions()
    {
        var s = await StreamWith(2);
        var ex = await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.Exactly(0), Evs(1)));
        Assert.Contains(s.Value, ex.Message);
        Assert.Contains("expected version 0", ex.Message);
        Assert.Contains("last version is 1", ex.Message);
    }

    [Fact]
    public async Task Append_with_no_stream_to_a_soft_deleted_stream_recreates_it_and_versions_continue()
    {
        var s = await StreamWith(3);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Soft);
        var r = await Append(s, ExpectedVersion.NoStream, Evs(1));
        Assert.Equal(new StreamVersion(3), r.NextExpectedVersion);
        Assert.Equal(new long[] { 3 }, Versions(await Read(s)));
    }

    [Fact]
    public async Task Append_with_any_to_a_soft_deleted_stream_recreates_it()
    {
        var s = await StreamWith(2);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Soft);
        await Append(s, ExpectedVersion.Any, Evs(2));
        Assert.Equal(new long[] { 2, 3 }, Versions(await Read(s)));
        Assert.Equal(StreamState.Active, (await Store.GetStreamInfoAsync(s)).State);
    }

    [Fact]
    public async Task Append_with_stream_exists_to_a_soft_deleted_stream_fails()
    {
        var s = await StreamWith(2);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Soft);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.StreamExists, Evs(1)));
        Assert.Equal(StreamState.SoftDeleted, (await Store.GetStreamInfoAsync(s)).State);
    }

    [Fact]
    public async Task Append_with_the_last_version_to_a_soft_deleted_stream_recreates_it()
    {
        var s = await StreamWith(2);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Soft);
        var r = await Append(s, ExpectedVersion.Exactly(1), Evs(1));
        Assert.Equal(new StreamVersion(2), r.NextExpectedVersion);
    }

    [Fact]
    public async Task A_recreated_stream_does_not_show_events_from_before_the_soft_delete()
    {
        var s = await StreamWith(5);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Exactly(4), DeleteMode.Soft);
        await Append(s, ExpectedVersion.NoStream, Ev("OrderReopened"));
        var events = await Read(s);
        Assert.Single(events);
        Assert.Equal("OrderReopened", events[0].Type);
    }

#pragma warning disable CA1000
    public static TheoryData<string> AllExpectations => new() { "any", "no-stream", "exists", "0", "3" };
#pragma warning restore CA1000

    [Theory]
    [MemberData(nameof(AllExpectations))]
    public async Task Append_to_a_tombstoned_stream_fails_with_stream_deleted_whatever_the_expectation(string expected)
    {
        var s = await StreamWith(4);
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Hard);
        var ex = await Assert.ThrowsAsync<StreamDeletedException>(() => Append(s, ExpectedVersion.Parse(expected), Evs(1)));
        Assert.Equal(s, ex.StreamId);
    }

    [Fact]
    public async Task Append_result_gives_the_positions_of_the_first_and_last_event()
    {
        var s = NewStream();
        var r = await Append(s, ExpectedVersion.NoStream, Evs(3));
        var events = await Read(s);
        Assert.Equal(events[0].Position, r.FirstPosition);
        Assert.Equal(events[2].Position, r.LastPosition);
    }

    [Fact]
    public async Task A_multi_event_append_gets_contiguous_versions_and_positions()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.NoStream, Evs(50));
        var events = await Read(s);
        Assert.Equal(Enumerable.Range(0, 50).Select(i => (long)i), Versions(events));
        for (var i = 1; i < events.Count; i++) Assert.Equal(events[i - 1].Position.Value + 1, events[i].Position.Value);
    }

    [Fact]
    public async Task An_empty_append_with_no_stream_succeeds_and_creates_nothing()
    {
        var s = NewStream();
        var r = await Append(s, ExpectedVersion.NoStream);
        Assert.False(r.Written);
        Assert.Null(r.NextExpectedVersion);
        Assert.Equal(StreamState.NotFound, (await Store.GetStreamInfoAsync(s)).State);
    }

    [Fact]
    public async Task An_empty_append_still_checks_the_expected_version()
    {
        var s = await StreamWith(2);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.Exactly(0)));
        var ok = await Append(s, ExpectedVersion.Exactly(1));
        Assert.Equal(new StreamVersion(1), ok.NextExpectedVersion);
    }

    [Fact]
    public async Task An_append_after_a_failed_append_uses_the_right_version()
    {
        var s = await StreamWith(1);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.Exactly(5), Evs(3)));
        var r = await Append(s, ExpectedVersion.Exactly(0), Evs(1));
        Assert.Equal(new StreamVersion(1), r.NextExpectedVersion);
        Assert.Equal(2, (await ReadAll()).Count(e => e.StreamId == s));
    }

    [Fact]
    public async Task A_recorded_event_carries_every_field_of_the_model()
    {
        var s = NewStream();
        var id = EventId.New();
        var data = EventData.FromJson("OrderPlaced", """{"orderId":"o-1","total":42.5}""") with
        {
            EventId = id,
            SchemaVersion = 3,
            Metadata = new Dictionary<string, string> { ["tenant"] = "acme", ["user"] = "ann" },
            CorrelationId = "corr-1",
            CausationId = "cmd-9",
        };
        var r = await Append(s, ExpectedVersion.NoStream, data);
        var e = Assert.Single(await Read(s));
        Assert.Equal(id, e.EventId);
        Assert.Equal("OrderPlaced", e.Type);
        Assert.Equal(3, e.SchemaVersion);
        Assert.Equal(s, e.StreamId);
        Assert.Equal(StreamVersion.Start, e.StreamVersion);
        Assert.Equal(r.FirstPosition, e.Position);
        Assert.Equal("corr-1", e.CorrelationId);
        Assert.Equal("cmd-9", e.CausationId);
        Assert.Equal("acme", e.Metadata["tenant"]);
        Assert.Equal("ann", e.Metadata["user"]);
        Assert.Equal("""{"orderId":"o-1","total":42.5}""", Text(e));
        Assert.Equal(Clock.Now, e.Timestamp);
        Assert.Equal(TimeSpan.Zero, e.Timestamp.Offset);
    }

    [Fact]
    public async Task Correlation_defaults_to_the_first_event_id_and_causation_stays_empty()
    {
        var s = NewStream();
        var events = Evs(3);
        await Append(s, ExpectedVersion.NoStream, events);
        foreach (var e in await Read(s))
        {
            Assert.Equal(events[0].EventId.ToString(), e.CorrelationId);
            Assert.Null(e.CausationId);
        }
    }

    [Fact]
    public async Task The_ambient_context_gives_new_events_the_handled_event_as_cause()
    {
        var source = NewStream();
        await Append(source, ExpectedVersion.NoStream, Ev() with { CorrelationId = "process-7" });
        var handled = Assert.Single(await Read(source));
        var target = NewStream("Shipment");
        using (EventContext.CausedBy(handled))
        {
            await Append(target, ExpectedVersion.NoStream, Ev("ShipmentRequested"), Ev("ShipmentScheduled"));
        }
        foreach (var e in await Read(target))
        {
            Assert.Equal("process-7", e.CorrelationId);
            Assert.Equal(handled.EventId.ToString(), e.CausationId);
        }
    }

    [Fact]
    public async Task Explicit_correlation_and_causation_win_over_the_ambient_context()
    {
        var s = NewStream();
        using (EventContext.Begin("ambient", "ambient-cause"))
        {
            await Append(s, ExpectedVersion.NoStream, Ev() with { CorrelationId = "mine", CausationId = "my-cause" });
        }
        var e = Assert.Single(await Read(s));
        Assert.Equal("mine", e.CorrelationId);
        Assert.Equal("my-cause", e.CausationId);
    }

    [Fact]
    public async Task Payload_bytes_round_trip_exactly_even_when_not_json()
    {
        var s = NewStream();
        var bytes = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        await Append(s, ExpectedVersion.NoStream, new EventData("BlobUploaded", bytes));
        Assert.Equal(bytes, Assert.Single(await Read(s)).Payload.ToArray());
    }

    [Fact]
    public async Task An_empty_payload_is_stored_as_empty()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.NoStream, new EventData("OrderPinged", ReadOnlyMemory<byte>.Empty));
        Assert.Equal(0, Assert.Single(await Read(s)).Payload.Length);
    }

    [Fact]
    public async Task Unicode_stream_ids_types_and_metadata_round_trip()
    {
        var s = StreamId.Parse($"Bestellung-Ü{Guid.NewGuid():N}-日本");
        await Append(s, ExpectedVersion.NoStream, Ev("BestellungAufgegebenÜ") with { Metadata = new Dictionary<string, string> { ["Grüße"] = "héllo ✓" }, CorrelationId = "prozeß-✓-日本", CausationId = "ursache-é" });
        var e = Assert.Single(await Read(s));
        Assert.Equal(s, e.StreamId);
        Assert.Equal("BestellungAufgegebenÜ", e.Type);
        Assert.Equal("prozeß-✓-日本", e.CorrelationId);
        Assert.Equal("ursache-é", e.CausationId);
        Assert.Equal("héllo ✓", e.Metadata["Grüße"]);
        Assert.Equal("Bestellung", s.Category);
    }
}
