using Factum.Subscriptions;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;

namespace Factum.Sqlite.Tests;

public sealed class SqliteStoreTests : IDisposable
{
    private readonly string _dir = TempDir.Create();

    private string Db => Path.Combine(_dir, "factum.db");

    public void Dispose() => TempDir.Delete(_dir);

    private static EventData Ev(string type = "OrderPlaced") => EventData.FromJson(type, """{"n":1}""");

    private static async Task<List<RecordedEvent>> ReadAll(IEventReader store)
    {
        var list = new List<RecordedEvent>();
        await foreach (var e in store.ReadAllAsync()) list.Add(e);
        return list;
    }

    /// <summary>Holds the file's write lock from another connection, as another process would.</summary>
    private SqliteConnection HoldWriteLock()
    {
        var c = new SqliteConnection($"Data Source={Db};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "BEGIN IMMEDIATE";
        cmd.ExecuteNonQuery();
        return c;
    }

    [Fact]
    public async Task Events_survive_closing_and_reopening_the_file()
    {
        var s = StreamId.Parse("Order-1");
        await using (var store = new SqliteEventStore(Db))
        {
            await store.AppendAsync(s, ExpectedVersion.NoStream, [Ev(), Ev("OrderPaid")]);
            await store.SetStreamMetadataAsync(s, new StreamMetadata { MaxCount = 10, Custom = new Dictionary<string, string> { ["a"] = "b" } });
        }
        await using (var store = new SqliteEventStore(Db))
        {
            var all = await ReadAll(store);
            Assert.Equal(["OrderPlaced", "OrderPaid"], all.Select(e => e.Type));
            Assert.Equal("b", (await store.GetStreamInfoAsync(s)).Metadata.Custom["a"]);
            var r = await store.AppendAsync(s, ExpectedVersion.Exactly(1), [Ev()]);
            Assert.Equal(3, r.LastPosition.Value);
        }
    }

    [Fact]
    public async Task The_file_is_in_wal_mode_and_commits_with_synchronous_full()
    {
        await using var store = new SqliteEventStore(Db);
        await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [Ev()]);
        using var c = new SqliteConnection($"Data Source={Db};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", cmd.ExecuteScalar());
        Assert.Equal(SqliteDurability.Full, store.Options.Durability);
        Assert.True(File.Exists(Db + "-wal"));
    }

    [Fact]
    public async Task Concurrent_appends_share_one_transaction_and_one_fsync()
    {
        await using var store = new SqliteEventStore(Db);
        await store.AppendAsync(StreamId.Parse("Warm-1"), ExpectedVersion.Any, [Ev()]);
        var before = store.CommitCount;
        Task<AppendResult>[] appends;
        using (HoldWriteLock())
        {
            appends = Enumerable.Range(0, 50).Select(i => store.AppendAsync(StreamId.Parse($"Order-{i}"), ExpectedVersion.NoStream, [Ev()])).ToArray();
            await Task.Delay(200); // the writer takes its first batch and waits on the lock; the rest queue behind it
        }
        await Task.WhenAll(appends);
        Assert.InRange(store.CommitCount - before, 1, 2);
        Assert.Equal(51, (await ReadAll(store)).Count);
    }

    [Fact]
    public async Task In_a_group_commit_each_caller_gets_its_own_result_or_error()
    {
        await using var store = new SqliteEventStore(Db);
        await store.AppendAsync(StreamId.Parse("Warm-1"), ExpectedVersion.Any, [Ev()]);
        Task<AppendResult> a, b, c, d;
        using (HoldWriteLock())
        {
            _ = store.AppendAsync(StreamId.Parse("Warm-1"), ExpectedVersion.Any, [Ev()]); // occupies the first batch
            await Task.Delay(100);
            a = store.AppendAsync(StreamId.Parse("X-1"), ExpectedVersion.NoStream, [Ev()]);
            b = store.AppendAsync(StreamId.Parse("Y-1"), ExpectedVersion.Exactly(5), [Ev()]);
            c = store.AppendAsync(StreamId.Parse("X-1"), ExpectedVersion.Exactly(0), [Ev()]); // sees a's write in the same transaction
            d = store.AppendAsync(StreamId.Parse("X-1"), ExpectedVersion.NoStream, [Ev()]);
            await Task.Delay(100);
        }
        Assert.Equal(new StreamVersion(0), (await a).NextExpectedVersion);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => b);
        Assert.Equal(new StreamVersion(1), (await c).NextExpectedVersion);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => d);
        Assert.Equal(StreamState.NotFound, (await store.GetStreamInfoAsync(StreamId.Parse("Y-1"))).State);
    }

    [Fact]
    public async Task Disposing_completes_queued_appends_and_later_calls_fail_clearly()
    {
        var store = new SqliteEventStore(Db);
        var pending = Enumerable.Range(0, 100).Select(i => store.AppendAsync(StreamId.Parse($"Order-{i}"), ExpectedVersion.Any, [Ev()])).ToArray();
        await store.DisposeAsync();
        await Task.WhenAll(pending);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => store.AppendAsync(StreamId.Parse("Order-x"), ExpectedVersion.Any, [Ev()]));
        await using var reopened = new SqliteEventStore(Db);
        Assert.Equal(100, (await ReadAll(reopened)).Count);
    }

    [Fact]
    public async Task A_cancelled_append_that_was_not_yet_written_is_not_written()
    {
        await using var store = new SqliteEventStore(Db);
        using var cts = new CancellationTokenSource();
        Task<AppendResult> cancelled;
        using (HoldWriteLock())
        {
            _ = store.AppendAsync(StreamId.Parse("Warm-1"), ExpectedVersion.Any, [Ev()]);
            await Task.Delay(100);
            cancelled = store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [Ev()], cts.Token);
            await cts.CancelAsync();
        }
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.Equal(StreamState.NotFound, (await store.GetStreamInfoAsync(StreamId.Parse("Order-1"))).State);
    }

    [Fact]
    public void A_file_of_random_bytes_is_refused_with_a_clear_error_and_left_untouched()
    {
        var garbage = new byte[4096];
        new Random(1).NextBytes(garbage);
        File.WriteAllBytes(Db, garbage);
        var ex = Assert.Throws<StoreFormatException>(() => new SqliteEventStore(Db));
        Assert.Contains("not a SQLite database", ex.Message);
        Assert.Equal(garbage, File.ReadAllBytes(Db));
    }

    [Fact]
    public void A_sqlite_file_of_another_application_is_refused()
    {
        using (var c = new SqliteConnection($"Data Source={Db};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "CREATE TABLE invoices(id INTEGER PRIMARY KEY)";
            cmd.ExecuteNonQuery();
        }
        var ex = Assert.Throws<StoreFormatException>(() => new SqliteEventStore(Db));
        Assert.Contains("not a Factum store", ex.Message);
        Assert.Contains("invoices", ex.Message);
    }

    [Fact]
    public async Task A_file_from_a_newer_factum_is_refused_without_being_changed()
    {
        await using (var store = new SqliteEventStore(Db)) await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [Ev()]);
        SqliteConnection.ClearAllPools();
        using (var c = new SqliteConnection($"Data Source={Db};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE factum_meta SET value = '99' WHERE key = 'schema_version'";
            cmd.ExecuteNonQuery();
        }
        var ex = Assert.Throws<StoreFormatException>(() => new SqliteEventStore(Db));
        Assert.Contains("newer Factum", ex.Message);
        Assert.Contains("v99", ex.Message);
    }

    [Fact]
    public async Task A_damaged_page_is_reported_by_verify()
    {
        await using (var store = new SqliteEventStore(Db))
        {
            for (var i = 0; i < 20; i++) await store.AppendAsync(StreamId.Parse($"Order-{i}"), ExpectedVersion.Any, Enumerable.Range(0, 50).Select(_ => EventData.FromJson("OrderNoted", $$"""{"pad":"{{new string('x', 200)}}"}""")).ToArray());
        }
        SqliteConnection.ClearAllPools();
        using (var c = new SqliteConnection($"Data Source={Db};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
            cmd.ExecuteNonQuery();
        }
        SqliteConnection.ClearAllPools();
        var bytes = File.ReadAllBytes(Db);
        Assert.True(bytes.Length > 8 * 4096);
        // Scribble over the headers of a few b-tree pages (page numbers start at 1; page 1 holds the file header).
        for (var page = 3; page <= 6; page++)
            for (var i = 0; i < 64; i++) bytes[(page - 1) * 4096 + i] = 0xEE;
        File.WriteAllBytes(Db, bytes);
        var report = SqliteStoreVerifier.Verify(Db);
        Assert.False(report.IsHealthy);
    }

    [Fact]
    public async Task Verify_passes_on_a_healthy_store_and_counts_its_content()
    {
        await using (var store = new SqliteEventStore(Db))
        {
            await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [Ev(), Ev()]);
            await store.AppendAsync(StreamId.Parse("Order-2"), ExpectedVersion.Any, [Ev()]);
            await store.DeleteStreamAsync(StreamId.Parse("Order-2"), ExpectedVersion.Any, DeleteMode.Soft);
            await store.AppendAsync(StreamId.Parse("Order-2"), ExpectedVersion.NoStream, [Ev()]);
        }
        var report = SqliteStoreVerifier.Verify(Db);
        Assert.True(report.IsHealthy, string.Join("; ", report.Problems));
        Assert.Equal(2, report.Streams);
        Assert.Equal(4, report.Events);
    }

    [Fact]
    public async Task Two_store_instances_on_one_file_see_each_others_writes_and_keep_the_rules()
    {
        await using var a = new SqliteEventStore(Db);
        await using var b = new SqliteEventStore(Db);
        var s = StreamId.Parse("Order-1");
        await a.AppendAsync(s, ExpectedVersion.NoStream, [Ev()]);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => b.AppendAsync(s, ExpectedVersion.NoStream, [Ev()]));
        await b.AppendAsync(s, ExpectedVersion.Exactly(0), [Ev()]);
        var results = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => (i % 2 == 0 ? a : b).AppendAsync(StreamId.Parse($"P-{i % 4}"), ExpectedVersion.Any, [Ev()])));
        var all = await ReadAll(a);
        Assert.Equal(Enumerable.Range(1, 42).Select(i => (long)i), all.Select(e => e.Position.Value));
        Assert.Equal(results.Select(r => r.LastPosition.Value).Order(), all.Skip(2).Select(e => e.Position.Value));
    }

    [Fact]
    public async Task The_di_builder_wires_the_sqlite_store()
    {
        await using var provider = new ServiceCollection().AddFactum(b => b.UseSqlite(Db, o => o with { Durability = SqliteDurability.Normal })).BuildServiceProvider();
        var store = (SqliteEventStore)provider.GetRequiredService<IEventStore>();
        Assert.Equal(SqliteDurability.Normal, store.Options.Durability);
        await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [Ev()]);
        Assert.True(File.Exists(Db));
    }

    [Fact]
    public async Task A_live_subscriber_sees_appends_made_by_another_store_on_the_same_file()
    {
        await using var mine = new SqliteEventStore(Db);
        await using var other = new SqliteEventStore(Db);
        var subscriptions = new SqliteSubscriptionStore(mine);
        var seen = new TaskCompletionSource<RecordedEvent>();
        await using var sub = new EventSubscription(mine, subscriptions, new SubscriptionOptions("cross") { LiveWaitTimeout = TimeSpan.FromMinutes(10) },
            (e, _) => { seen.TrySetResult(e); return ValueTask.CompletedTask; });
        await sub.StartAsync();
        await Task.Delay(100);
        await other.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [Ev()]);
        // Only the external-change poll (50 ms by default) can notice this append; the live timeout is ten minutes.
        var e = await seen.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("Order-1", e.StreamId.Value);
    }

    [Fact]
    public async Task Checkpoints_and_parked_events_survive_reopening_the_file()
    {
        var when = new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);
        await using (var store = new SqliteEventStore(Db))
        {
            var r = await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [Ev()]);
            var subs = new SqliteSubscriptionStore(store);
            await subs.StoreAsync("billing", 42);
            await subs.StoreAsync("billing", 43);
            await subs.ParkAsync(new ParkedEvent("billing", r.FirstPosition, EventId.New(), StreamId.Parse("Order-1"), 0, "OrderPlaced", "System.FormatException", "bad", "stack", 5, when, when.AddSeconds(3)));
        }
        await using (var store = new SqliteEventStore(Db))
        {
            var subs = new SqliteSubscriptionStore(store);
            Assert.Equal(43, await subs.LoadAsync("billing"));
            Assert.Null(await subs.LoadAsync("shipping"));
            var parked = Assert.Single(await subs.ListAsync("billing"));
            Assert.Equal(5, parked.Attempts);
            Assert.Equal(when.AddSeconds(3), parked.LastFailureAt);
            await subs.RemoveAsync("billing", parked.Position);
            Assert.Empty(await subs.ListAsync("billing"));
        }
        Assert.True(SqliteStoreVerifier.Verify(Db).IsHealthy);
    }
}
