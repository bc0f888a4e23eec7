namespace Factum.Conformance;

/// <summary>EventStoreDB's idempotency rules: re-sent event ids are recognised, partial matches fail.</summary>
public abstract class IdempotencyConformance<TFactory> : StoreTestBase<TFactory> where TFactory : IEventStoreFactory, new()
{
    private async Task<int> CountAll() => (await ReadAll()).Count;

    [Fact]
    public async Task Resending_the_same_ids_with_no_stream_is_idempotent()
    {
        var s = NewStream();
        var batch = Evs(3);
        var first = await Append(s, ExpectedVersion.NoStream, batch);
        var again = await Append(s, ExpectedVersion.NoStream, batch);
        Assert.False(again.Written);
        Assert.Equal(first.NextExpectedVersion, again.NextExpectedVersion);
        Assert.Equal(3, (await Read(s)).Count);
    }

    [Fact]
    public async Task Resending_the_same_ids_with_the_same_exact_version_is_idempotent()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.NoStream, Evs(2));
        var batch = Evs(2);
        await Append(s, ExpectedVersion.Exactly(1), batch);
        var again = await Append(s, ExpectedVersion.Exactly(1), batch);
        Assert.False(again.Written);
        Assert.Equal(new StreamVersion(3), again.NextExpectedVersion);
        Assert.Equal(4, (await Read(s)).Count);
    }

    [Fact]
    public async Task Resending_the_same_ids_with_any_is_idempotent()
    {
        var s = NewStream();
        var batch = Evs(2);
        await Append(s, ExpectedVersion.Any, batch);
        var again = await Append(s, ExpectedVersion.Any, batch);
        Assert.False(again.Written);
        Assert.Equal(2, (await Read(s)).Count);
    }

    [Fact]
    public async Task Resending_the_same_ids_with_stream_exists_is_idempotent()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.NoStream, Evs(1));
        var batch = Evs(2);
        await Append(s, ExpectedVersion.StreamExists, batch);
        var again = await Append(s, ExpectedVersion.StreamExists, batch);
        Assert.False(again.Written);
        Assert.Equal(3, (await Read(s)).Count);
    }

    [Fact]
    public async Task An_idempotent_retry_returns_the_original_positions()
    {
        var s = NewStream();
        var batch = Evs(3);
        var first = await Append(s, ExpectedVersion.NoStream, batch);
        await Append(NewStream(), ExpectedVersion.NoStream, Evs(5));
        var again = await Append(s, ExpectedVersion.NoStream, batch);
        Assert.Equal(first.FirstPosition, again.FirstPosition);
        Assert.Equal(first.LastPosition, again.LastPosition);
    }

    [Fact]
    public async Task Resending_a_prefix_of_the_first_append_with_no_stream_is_idempotent()
    {
        var s = NewStream();
        var batch = Evs(3);
        await Append(s, ExpectedVersion.NoStream, batch);
        var again = await Append(s, ExpectedVersion.NoStream, batch[0], batch[1]);
        Assert.False(again.Written);
        Assert.Equal(new StreamVersion(1), again.NextExpectedVersion);
    }

    [Fact]
    public async Task Resending_more_events_than_were_stored_fails()
    {
        var s = NewStream();
        var batch = Evs(2);
        await Append(s, ExpectedVersion.NoStream, batch);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.NoStream, batch[0], batch[1], Ev()));
        Assert.Equal(2, (await Read(s)).Count);
    }

    [Fact]
    public async Task New_ids_with_a_stale_expected_version_fail()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.NoStream, Evs(2));
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.NoStream, Evs(2)));
    }

    [Fact]
    public async Task A_partial_match_with_an_exact_version_fails()
    {
        var s = NewStream();
        var batch = Evs(2);
        await Append(s, ExpectedVersion.NoStream, batch);
        var ex = await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.NoStream, batch[0], Ev()));
        Assert.Contains("Nothing was written", ex.Message);
        Assert.Equal(2, (await Read(s)).Count);
    }

    [Fact]
    public async Task Out_of_order_ids_with_an_exact_version_fail()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.NoStream, Evs(1));
        var batch = Evs(2);
        await Append(s, ExpectedVersion.Exactly(0), batch);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.Exactly(0), batch[1], batch[0]));
    }

    [Fact]
    public async Task Any_with_only_some_ids_already_stored_fails()
    {
        var s = NewStream();
        var batch = Evs(2);
        await Append(s, ExpectedVersion.Any, batch);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.Any, batch[0], Ev()));
        Assert.Equal(2, (await Read(s)).Count);
    }

    [Fact]
    public async Task Any_with_a_later_id_already_stored_fails()
    {
        var s = NewStream();
        var batch = Evs(2);
        await Append(s, ExpectedVersion.Any, batch);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.Any, Ev(), batch[1]));
    }

    [Fact]
    public async Task Any_with_stored_ids_out_of_order_fails()
    {
        var s = NewStream();
        var batch = Evs(3);
        await Append(s, ExpectedVersion.Any, batch);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Append(s, ExpectedVersion.Any, batch[1], batch[0]));
    }

    [Fact]
    public async Task Any_retry_is_recognised_after_other_events_were_appended()
    {
        var s = NewStream();
        var batch = Evs(2);
        await Append(s, ExpectedVersion.Any, batch);
        await Append(s, ExpectedVersion.Any, Evs(3));
        var again = await Append(s, ExpectedVersion.Any, batch);
        Assert.False(again.Written);
        Assert.Equal(new StreamVersion(1), again.NextExpectedVersion);
        Assert.Equal(5, (await Read(s)).Count);
    }

    [Fact]
    public async Task Exact_version_retry_is_recognised_after_other_events_were_appended()
    {
        var s = NewStream();
        var a = Ev();
        await Append(s, ExpectedVersion.NoStream, a);
        await Append(s, ExpectedVersion.Exactly(0), Evs(2));
        var again = await Append(s, ExpectedVersion.NoStream, a);
        Assert.False(again.Written);
        Assert.Equal(3, (await Read(s)).Count);
    }

    [Fact]
    public async Task Duplicate_ids_inside_one_append_are_rejected()
    {
        var s = NewStream();
        var e = Ev();
        var ex = await Assert.ThrowsAnyAsync<ArgumentException>(() => Append(s, ExpectedVersion.NoStream, e, e));
        Assert.Contains(e.EventId.ToString(), ex.Message);
        Assert.Equal(StreamState.NotFound, (await Store.GetStreamInfoAsync(s)).State);
    }

    [Fact]
    public async Task The_same_event_id_in_another_stream_is_another_event()
    {
        var e = Ev();
        await Append(NewStream(), ExpectedVersion.NoStream, e);
        var r = await Append(NewStream(), ExpectedVersion.NoStream, e);
        Assert.True(r.Written);
    }

    [Fact]
    public async Task An_idempotent_retry_of_a_large_append_adds_nothing_to_the_global_log()
    {
        var s = NewStream();
        var batch = Evs(100);
        await Append(s, ExpectedVersion.NoStream, batch);
        var before = await CountAll();
        await Append(s, ExpectedVersion.NoStream, batch);
        await Append(s, ExpectedVersion.Any, batch);
        Assert.Equal(before, await CountAll());
    }

    [Fact]
    public async Task Concurrent_identical_retries_write_once()
    {
        var s = NewStream();
        var batch = Evs(3);
        var results = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(() => Append(s, ExpectedVersion.NoStream, batch))));
        Assert.Single(results, r => r.Written);
        Assert.Equal(3, (await Read(s)).Count);
    }

    [Fact]
    public async Task A_retry_of_a_recreating_append_after_soft_delete_is_idempotent()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.NoStream, Evs(2));
        await Store.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Soft);
        var batch = Evs(2);
        await Append(s, ExpectedVersion.NoStream, batch);
        var again = await Append(s, ExpectedVersion.NoStream, batch);
        Assert.False(again.Written);
        Assert.Equal(new long[] { 2, 3 }, Versions(await Read(s)));
    }
}
