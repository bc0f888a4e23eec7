namespace Factum.Conformance;

/// <summary>Multi-stream appends: every stream's expectation holds and all events are written, or none are.</summary>
public abstract class MultiStreamConformance<TFactory> : StoreTestBase<TFactory> where TFactory : IEventStoreFactory, new()
{
    [Fact]
    public async Task A_multi_stream_append_writes_every_stream()
    {
        StreamId a = NewStream(), b = NewStream("Payment");
        var results = await Store.AppendMultipleAsync([new(a, ExpectedVersion.NoStream, Evs(2)), new(b, ExpectedVersion.NoStream, Evs(1, "PaymentRequested"))]);
        Assert.Equal(new StreamVersion(1), results[0].NextExpectedVersion);
        Assert.Equal(new StreamVersion(0), results[1].NextExpectedVersion);
        Assert.Equal(2, (await Read(a)).Count);
        Assert.Single(await Read(b));
    }

    [Fact]
    public async Task One_failing_expectation_writes_nothing_to_any_stream()
    {
        StreamId a = NewStream(), b = NewStream();
        await Append(b, ExpectedVersion.NoStream, Evs(1));
        var head = await Store.GetHeadPositionAsync();
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() =>
            Store.AppendMultipleAsync([new(a, ExpectedVersion.NoStream, Evs(2)), new(b, ExpectedVersion.NoStream, Evs(1))]));
        Assert.Equal(StreamState.NotFound, (await Store.GetStreamInfoAsync(a)).State);
        Assert.Single(await Read(b));
        Assert.Equal(head, await Store.GetHeadPositionAsync());
    }

    [Fact]
    public async Task A_tombstoned_stream_in_a_multi_stream_append_writes_nothing()
    {
        StreamId a = NewStream(), b = NewStream();
        await Append(b, ExpectedVersion.NoStream, Evs(1));
        await Store.DeleteStreamAsync(b, ExpectedVersion.Any, DeleteMode.Hard);
        await Assert.ThrowsAsync<StreamDeletedException>(() =>
            Store.AppendMultipleAsync([new(a, ExpectedVersion.Any, Evs(1)), new(b, ExpectedVersion.Any, Evs(1))]));
        Assert.Equal(StreamState.NotFound, (await Store.GetStreamInfoAsync(a)).State);
    }

    [Fact]
    public async Task A_multi_stream_append_takes_contiguous_positions_in_the_order_given()
    {
        StreamId a = NewStream(), b = NewStream();
        var results = await Store.AppendMultipleAsync([new(a, ExpectedVersion.Any, Evs(2)), new(b, ExpectedVersion.Any, Evs(2))]);
        Assert.Equal(results[0].LastPosition.Value + 1, results[1].FirstPosition.Value);
        var all = await ReadAll(new ReadAllOptions { From = results[0].FirstPosition });
        Assert.Equal([a, a, b, b], all.Select(e => e.StreamId));
    }

    [Fact]
    public async Task A_multi_stream_append_shares_one_correlation_id()
    {
        StreamId a = NewStream(), b = NewStream();
        var first = Ev();
        await Store.AppendMultipleAsync([new(a, ExpectedVersion.Any, [first]), new(b, ExpectedVersion.Any, Evs(2))]);
        var all = (await Read(a)).Concat(await Read(b));
        Assert.All(all, e => Assert.Equal(first.EventId.ToString(), e.CorrelationId));
    }

    [Fact]
    public async Task The_same_stream_twice_in_a_multi_stream_append_is_rejected()
    {
        var a = NewStream();
        var ex = await Assert.ThrowsAnyAsync<ArgumentException>(() =>
            Store.AppendMultipleAsync([new(a, ExpectedVersion.Any, Evs(1)), new(a, ExpectedVersion.Any, Evs(1))]));
        Assert.Contains(a.Value, ex.Message);
    }

    [Fact]
    public async Task An_empty_multi_stream_append_is_rejected()
    {
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.AppendMultipleAsync([]));
    }

    [Fact]
    public async Task A_too_large_event_in_a_multi_stream_append_writes_nothing()
    {
        StreamId a = NewStream(), b = NewStream();
        var big = new EventData("OrderPlaced", new byte[Options.MaxEventSize + 1]);
        await Assert.ThrowsAsync<EventTooLargeException>(() =>
            Store.AppendMultipleAsync([new(a, ExpectedVersion.Any, Evs(1)), new(b, ExpectedVersion.Any, [big])]));
        Assert.Equal(StreamState.NotFound, (await Store.GetStreamInfoAsync(a)).State);
    }

    [Fact]
    public async Task A_multi_stream_retry_is_idempotent_per_stream()
    {
        StreamId a = NewStream(), b = NewStream();
        var ea = Evs(2);
        var eb = Evs(1);
        await Store.AppendMultipleAsync([new(a, ExpectedVersion.NoStream, ea), new(b, ExpectedVersion.NoStream, eb)]);
        var again = await Store.AppendMultipleAsync([new(a, ExpectedVersion.NoStream, ea), new(b, ExpectedVersion.NoStream, eb)]);
        Assert.All(again, r => Assert.False(r.Written));
        Assert.Equal(3, (await ReadAll()).Count);
    }
}
