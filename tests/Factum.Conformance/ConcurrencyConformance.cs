using CsCheck;

namespace Factum.Conformance;

/// <summary>Many writers racing: one winner per version, positions strictly increasing with no gap or duplicate.</summary>
public abstract class ConcurrencyConformance<TFactory> : StoreTestBase<TFactory> where TFactory : IEventStoreFactory, new()
{
    [Fact]
    public async Task Writers_racing_for_the_same_version_of_one_stream_have_exactly_one_winner_per_version()
    {
        var s = NewStream();
        const int racers = 16, rounds = 20;
        for (var v = 0; v < rounds; v++)
        {
            var expected = v == 0 ? ExpectedVersion.NoStream : ExpectedVersion.Exactly(v - 1);
            using var start = new ManualResetEventSlim();
            var tasks = Enumerable.Range(0, racers).Select(_ => Task.Run(async () =>
            {
                start.Wait();
                try { await Append(s, expected, Ev()); return true; }
                catch (WrongExpectedVersionException) { return false; }
            })).ToArray();
            start.Set();
            var outcomes = await Task.WhenAll(tasks);
            Assert.Equal(1, outcomes.Count(w => w));
        }
        Assert.Equal(Enumerable.Range(0, rounds).Select(i => (long)i), Versions(await Read(s)));
    }

    [Fact]
    public async Task Writers_racing_to_create_a_stream_have_exactly_one_winner()
    {
        var s = NewStream();
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(async () =>
        {
            try { await Append(s, ExpectedVersion.NoStream, Evs(2)); return true; }
            catch (WrongExpectedVersionException) { return false; }
        })));
        Assert.Equal(1, outcomes.Count(w => w));
        Assert.Equal(new long[] { 0, 1 }, Versions(await Read(s)));
    }

    [Fact]
    public async Task Concurrent_appends_with_any_to_one_stream_get_contiguous_versions()
    {
        var s = NewStream();
        await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => Task.Run(() => Append(s, ExpectedVersion.Any, Evs(3)))));
        var events = await Read(s);
        Assert.Equal(Enumerable.Range(0, 120).Select(i => (long)i), Versions(events));
        // Each append stays whole: its three events are adjacent.
        foreach (var group in events.GroupBy(e => e.CorrelationId))
        {
            var versions = group.Select(e => e.StreamVersion.Value).Order().ToArray();
            Assert.Equal(3, versions.Length);
            Assert.Equal(versions[0] + 2, versions[2]);
        }
    }

    [Fact]
    public async Task Readers_never_see_half_of_an_append()
    {
        var s = NewStream();
        using var cts = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            for (var i = 0; i < 60; i++)
            {
                await Append(s, ExpectedVersion.Any, Evs(5));
                await Task.Yield();
            }
            await cts.CancelAsync();
        });
        // Read until the writer is done, and once more after; every snapshot must hold whole appends only.
        bool done;
        do
        {
            done = cts.IsCancellationRequested;
            try { Assert.Equal(0, (await Read(s)).Count % 5); }
            catch (StreamNotFoundException) { }
        } while (!done);
        await writer;
        Assert.Equal(300, (await Read(s)).Count);
    }

    [Fact]
    public async Task Parallel_writers_on_many_streams_leave_positions_strictly_increasing_without_gaps_or_duplicates()
    {
        // Property: whatever the number of writers, appends and batch sizes, the global log is a gap-free sequence
        // and every stream's versions are contiguous.
        var gen = Gen.Select(Gen.Int[2, 12], Gen.Int[1, 12], Gen.Int[1, 4]);
        await gen.SampleAsync(async t =>
        {
            var (writers, appends, batch) = t;
            var before = await Store.GetHeadPositionAsync();
            var streams = Enumerable.Range(0, writers).Select(_ => NewStream()).ToArray();
            await Task.WhenAll(streams.Select(s => Task.Run(async () =>
            {
                for (var i = 0; i < appends; i++)
                    await Append(s, i == 0 ? ExpectedVersion.NoStream : ExpectedVersion.Exactly((long)i * batch - 1), Evs(batch));
            })));
            var written = await ReadAll(new ReadAllOptions { From = before.Value + 1 });
            Assert.Equal(writers * appends * batch, written.Count);
            for (var i = 0; i < written.Count; i++) Assert.Equal(before.Value + 1 + i, written[i].Position.Value);
            Assert.Equal(written.Count, written.Select(e => e.EventId).Distinct().Count());
            foreach (var g in written.GroupBy(e => e.StreamId))
                Assert.Equal(Enumerable.Range(0, appends * batch).Select(i => (long)i), g.Select(e => e.StreamVersion.Value));
        }, iter: 15, threads: 1);
    }

    [Fact]
    public async Task A_multi_stream_append_racing_single_appends_stays_all_or_nothing()
    {
        StreamId a = NewStream(), b = NewStream();
        await Append(a, ExpectedVersion.NoStream, Ev());
        await Append(b, ExpectedVersion.NoStream, Ev());
        var results = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => Task.Run(async () =>
        {
            try
            {
                if (i % 2 == 0) await Store.AppendMultipleAsync([new(a, ExpectedVersion.Exactly(0), [Ev()]), new(b, ExpectedVersion.Exactly(0), [Ev()])]);
                else await Append(b, ExpectedVersion.Exactly(0), Ev());
                return true;
            }
            catch (WrongExpectedVersionException) { return false; }
        })));
        Assert.Equal(1, results.Count(r => r));
        var aCount = (await Read(a)).Count;
        var bCount = (await Read(b)).Count;
        Assert.Equal(2, bCount);
        Assert.True(aCount is 1 or 2);
    }
}
