using System.Diagnostics;
using System.Text;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite.Tests;

/// <summary>
/// Issue 9's data-integrity defects on the embedded store: checksums catch bit flips, stored oddities never stop a read,
/// absurd retention stays readable, opening to read never waits on another writer, and expected versions are judged
/// against other instances' writes.
/// </summary>
public sealed class IntegrityTests : IDisposable
{
    private readonly string _dir = TempDir.Create();

    private string Db => Path.Combine(_dir, "factum.db");

    public void Dispose() => TempDir.Delete(_dir);

    private static async Task<List<RecordedEvent>> ReadAll(IEventReader store)
    {
        var list = new List<RecordedEvent>();
        await foreach (var e in store.ReadAllAsync()) list.Add(e);
        return list;
    }

    private static SqliteConnection Raw(string db)
    {
        var c = new SqliteConnection($"Data Source={db};Pooling=False");
        c.Open();
        return c;
    }

    // Fails on the old code: 2 of 10 seeded corruptions went unnoticed by verify, and reads returned altered payloads.
    [Fact]
    public async Task Every_seeded_bit_flip_in_a_payload_is_caught_by_verify_and_by_reads()
    {
        var rng = new Random(20261202);
        for (var round = 0; round < 10; round++)
        {
            var db = Path.Combine(_dir, $"flip-{round}.db");
            var marker = $"MARKER{round:D2}" + new string('x', 40);
            await using (var store = new SqliteEventStore(db))
            {
                for (var i = 0; i < 20; i++)
                    await store.AppendAsync(StreamId.Parse($"Order-{i}"), ExpectedVersion.Any,
                        [EventData.FromJson("OrderPlaced", i == 7 ? $$"""{"note":"{{marker}}"}""" : $$"""{"n":{{i}}}""")]);
            }
            Assert.True(SqliteStoreVerifier.Verify(db).IsHealthy);

            // Flip 5 bits inside the marked payload, in the file itself, as a bad disk would (in every copy of the page:
            // pooled connections may keep the WAL alive after the store is closed).
            SqliteConnection.ClearAllPools();
            // Five distinct bits (a bit flipped twice would cancel out).
            var offsets = new HashSet<(int At, byte Bit)>();
            while (offsets.Count < 5) offsets.Add((rng.Next(marker.Length), (byte)(1 << rng.Next(7))));
            var flipped = 0;
            foreach (var file in new[] { db, db + "-wal" }.Where(File.Exists))
            {
                var bytes = await File.ReadAllBytesAsync(file);
                var needle = Encoding.UTF8.GetBytes(marker);
                for (var at = bytes.AsSpan().IndexOf(needle); at >= 0;)
                {
                    foreach (var (o, bit) in offsets) bytes[at + o] ^= bit;
                    flipped++;
                    var next = bytes.AsSpan(at + 1).IndexOf(needle);
                    at = next < 0 ? -1 : at + 1 + next;
                }
                await File.WriteAllBytesAsync(file, bytes);
            }
            Assert.True(flipped > 0, "the payload was found in the file");
            var report = SqliteStoreVerifier.Verify(db);
            Assert.Contains(report.Problems, p => p.Contains("position 8 is corrupted", StringComparison.Ordinal));
            await using var reopened = new SqliteEventStore(db);
            var ex = await Assert.ThrowsAsync<EventCorruptedException>(() => ReadAll(reopened));
            Assert.Equal(8, ex.Position.Value);
            await Assert.ThrowsAsync<EventCorruptedException>(async () =>
            {
                await foreach (var _ in reopened.ReadStreamAsync(StreamId.Parse("Order-7"))) { }
            });
            // The neighbours are intact and still readable.
            var order6 = new List<RecordedEvent>();
            await foreach (var e in reopened.ReadStreamAsync(StreamId.Parse("Order-6"))) order6.Add(e);
            Assert.Single(order6);
        }
    }

    [Fact]
    public async Task A_changed_type_id_or_timestamp_column_is_caught_as_well()
    {
        await using (var store = new SqliteEventStore(Db))
        {
            for (var i = 0; i < 3; i++) await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [EventData.FromJson("OrderPlaced", "{}")]);
        }
        using (var c = Raw(Db))
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE events SET type = 'OrderPlacex' WHERE position = 1; UPDATE events SET created_at = created_at + 1 WHERE position = 2; UPDATE events SET correlation_id = 'forged' WHERE position = 3";
            cmd.ExecuteNonQuery();
        }
        var report = SqliteStoreVerifier.Verify(Db);
        Assert.Equal(3, report.Problems.Count(p => p.Contains("is corrupted", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Events_written_before_checksums_are_read_and_counted_and_a_missing_checksum_after_them_is_damage()
    {
        await using (var store = new SqliteEventStore(Db))
            await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [EventData.FromJson("OrderPlaced", "{}"), EventData.FromJson("OrderPaid", "{}")]);
        void Sql(string sql)
        {
            using var c = Raw(Db);
            using var cmd = c.CreateCommand();
            cmd.CommandText = sql;
            cmd.ExecuteNonQuery();
        }
        // As the v7 migration leaves a store whose first event was written before it.
        Sql("UPDATE events SET checksum = NULL WHERE position = 1; UPDATE factum_meta SET value = '2' WHERE key = 'checksums_from'");
        var report = SqliteStoreVerifier.Verify(Db);
        Assert.True(report.IsHealthy, string.Join("; ", report.Problems));
        Assert.Equal(1, report.EventsWithoutChecksum);
        await using (var reopened = new SqliteEventStore(Db))
            Assert.Equal(2, (await ReadAll(reopened)).Count);

        // Past that position every event has one: clearing it (to skip the check) is caught like any other change.
        SqliteConnection.ClearAllPools();
        Sql("UPDATE events SET checksum = NULL WHERE position = 2");
        Assert.Contains(SqliteStoreVerifier.Verify(Db).Problems, p => p.Contains("position 2 is corrupted: its checksum is missing", StringComparison.Ordinal));
        await using var again = new SqliteEventStore(Db);
        var ex = await Assert.ThrowsAsync<EventCorruptedException>(() => ReadAll(again));
        Assert.Equal(2, ex.Position.Value);
    }

    // Fails on the old code: the lone surrogate was accepted, and then every read of the log failed.
    [Fact]
    public async Task Ids_and_metadata_that_are_not_well_formed_text_are_refused_and_nothing_is_stored()
    {
        await using var store = new SqliteEventStore(Db);
        var s = StreamId.Parse("Order-1");
        Assert.Throws<ArgumentException>(() => EventData.FromJson("OrderPlaced", "{}") with { CorrelationId = "" });
        Assert.Throws<ArgumentException>(() => EventData.FromJson("OrderPlaced", "{}") with { CausationId = "" });
        Assert.Throws<ArgumentException>(() => EventData.FromJson("OrderPlaced", "{}") with { CorrelationId = "a\ud800" });
        Assert.Throws<ArgumentException>(() => EventData.FromJson("OrderPlaced", "{}") with { CorrelationId = new string('c', EventData.MaxIdLength + 1) });
        Assert.Throws<ArgumentException>(() => new EventData("Order\ud800Placed", "{}"u8.ToArray()));
        await Assert.ThrowsAsync<ArgumentException>(() => store.AppendAsync(s, ExpectedVersion.Any,
            [EventData.FromJson("OrderPlaced", "{}") with { Metadata = new Dictionary<string, string> { ["k"] = "\udc00" } }]));
        using (EventContext.Begin("ok\ud800", null))
            await Assert.ThrowsAsync<ArgumentException>(() => store.AppendAsync(s, ExpectedVersion.Any, [EventData.FromJson("OrderPlaced", "{}")]));
        Assert.Equal(StreamState.NotFound, (await store.GetStreamInfoAsync(s)).State);
    }

    // Fails on the old code: "un-representable DateTime" on every read of the stream.
    [Fact]
    public async Task A_stream_whose_stored_max_age_is_absurd_stays_readable()
    {
        var s = StreamId.Parse("Order-1");
        Assert.Throws<ArgumentOutOfRangeException>(() => new StreamMetadata { MaxAge = TimeSpan.FromDays(1_000_000) });
        await using (var store = new SqliteEventStore(Db))
        {
            await store.AppendAsync(s, ExpectedVersion.Any, [EventData.FromJson("OrderPlaced", "{}")]);
            await store.SetStreamMetadataAsync(s, new StreamMetadata { MaxAge = TimeSpan.FromDays(30) });
        }
        // As an older build stored it.
        using (var c = Raw(Db))
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"UPDATE streams SET max_age_ms = {(long)TimeSpan.FromDays(1_000_000).TotalMilliseconds}";
            cmd.ExecuteNonQuery();
        }
        await using var reopened = new SqliteEventStore(Db);
        var events = new List<RecordedEvent>();
        await foreach (var e in reopened.ReadStreamAsync(s)) events.Add(e);
        Assert.Single(events);
        Assert.Equal(StreamMetadata.MaxAgeLimit, (await reopened.GetStreamInfoAsync(s)).Metadata.MaxAge);
    }

    // Fails on the old code: opening the store took the write lock, so a read waited out the whole busy timeout.
    [Fact]
    public async Task Opening_and_reading_a_store_does_not_wait_for_another_writer()
    {
        await using (var store = new SqliteEventStore(Db))
            await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [EventData.FromJson("OrderPlaced", "{}")]);
        using var holder = Raw(Db);
        using (var begin = holder.CreateCommand())
        {
            begin.CommandText = "BEGIN IMMEDIATE";
            begin.ExecuteNonQuery();
        }
        var options = new SqliteEventStoreOptions(Db) { BusyTimeout = TimeSpan.FromSeconds(20) };
        var clock = Stopwatch.StartNew();
        await using var reader = new SqliteEventStore(options);
        var all = await ReadAll(reader);
        Assert.Single(all);
        // Far below the 20 s busy timeout the old code waited out; no timing threshold beyond "did not wait for the lock".
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"opening and reading took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_new_store_file_and_folder_are_private_to_their_owner()
    {
        if (OperatingSystem.IsWindows()) return;
        var db = Path.Combine(_dir, "fresh", "factum.db");
        await using (var store = new SqliteEventStore(db))
            await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [EventData.FromJson("OrderPlaced", "{}")]);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(db));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(db)!));
        var shared = Path.Combine(_dir, "shared.db");
        await using (var store = new SqliteEventStore(new SqliteEventStoreOptions(shared) { CreateFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead }))
            await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [EventData.FromJson("OrderPlaced", "{}")]);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(shared));
    }

    // Mutation (b) of issue 9: a writer that ignored PRAGMA data_version kept a stale cached head and was caught only by
    // accident. Here two store instances on one file take turns; each must judge expected versions by the other's writes.
    [Fact]
    public async Task An_expected_version_append_is_judged_against_another_instances_newer_write()
    {
        var s = StreamId.Parse("Order-1");
        await using var a = new SqliteEventStore(Db);
        await using var b = new SqliteEventStore(Db);
        await a.AppendAsync(s, ExpectedVersion.NoStream, [EventData.FromJson("OrderPlaced", "{}")]);
        // a's writer has now cached the head at version 0.
        await b.AppendAsync(s, ExpectedVersion.Exactly(0), [EventData.FromJson("OrderPaid", "{}")]);
        // Stale on a: version 0 is no longer the last one.
        var ex = await Assert.ThrowsAsync<WrongExpectedVersionException>(() => a.AppendAsync(s, ExpectedVersion.Exactly(0), [EventData.FromJson("OrderShipped", "{}")]));
        Assert.Equal(1, ex.Actual!.Value.Value);
        await a.AppendAsync(s, ExpectedVersion.Exactly(1), [EventData.FromJson("OrderShipped", "{}")]);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => b.AppendAsync(s, ExpectedVersion.NoStream, [EventData.FromJson("OrderPlaced", "{}")]));
        var versions = new List<long>();
        await foreach (var e in b.ReadStreamAsync(s)) versions.Add(e.StreamVersion.Value);
        Assert.Equal([0L, 1L, 2L], versions);
        Assert.True(SqliteStoreVerifier.Verify(Db).IsHealthy);
    }
}

/// <summary>Found by the stored-row fuzz target (issue 9): values of impossible range in a row.</summary>
public sealed class CorruptRowTests : IDisposable
{
    private readonly string _dir = TempDir.Create();

    public void Dispose() => TempDir.Delete(_dir);

    [Theory]
    [InlineData("schema_version", "4294967298")]
    [InlineData("created_at", "-5")]
    [InlineData("stream_version", "'text'")]
    [InlineData("checksum", "NULL")]
    public async Task Verify_and_reads_report_a_row_with_impossible_values_instead_of_throwing(string column, string value)
    {
        var db = Path.Combine(_dir, "factum.db");
        await using (var store = new SqliteEventStore(db))
            await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [EventData.FromJson("OrderPlaced", "{}"), EventData.FromJson("OrderPaid", "{}")]);
        using (var c = new SqliteConnection($"Data Source={db};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            // Clearing the checksum too shows the range checks work on rows written before checksums existed.
            cmd.CommandText = $"UPDATE events SET {column} = {value}{(column == "checksum" ? ", schema_version = 0" : "")} WHERE position = 2";
            cmd.ExecuteNonQuery();
        }
        var report = SqliteStoreVerifier.Verify(db);
        Assert.Contains(report.Problems, p => p.Contains("position 2", StringComparison.Ordinal));
        await using var reopened = new SqliteEventStore(db);
        var ex = await Assert.ThrowsAsync<EventCorruptedException>(async () => { await foreach (var _ in reopened.ReadAllAsync()) { } });
        Assert.Equal(2, ex.Position.Value);
    }
}

public sealed class ReadOnlyStoreTests : IDisposable
{
    private readonly string _dir = TempDir.Create();

    public void Dispose() => TempDir.Delete(_dir);

    [Fact]
    public async Task A_store_opened_read_only_reads_everything_and_refuses_every_write()
    {
        var db = Path.Combine(_dir, "factum.db");
        var s = StreamId.Parse("Order-1");
        await using (var store = new SqliteEventStore(db))
            await store.AppendAsync(s, ExpectedVersion.Any, [EventData.FromJson("OrderPlaced", "{}")]);
        SqliteConnection.ClearAllPools();
        var before = await File.ReadAllBytesAsync(db);
        await using (var ro = new SqliteEventStore(new SqliteEventStoreOptions(db) { ReadOnly = true }))
        {
            Assert.True(ro.IsReadOnly);
            var events = new List<RecordedEvent>();
            await foreach (var e in ro.ReadAllAsync()) events.Add(e);
            Assert.Single(events);
            Assert.Equal(StreamState.Active, (await ro.GetStreamInfoAsync(s)).State);
            await Assert.ThrowsAsync<StoreReadOnlyException>(() => ro.AppendAsync(s, ExpectedVersion.Any, [EventData.FromJson("OrderPaid", "{}")]));
            await Assert.ThrowsAsync<StoreReadOnlyException>(() => ro.SetStreamMetadataAsync(s, new StreamMetadata { MaxCount = 1 }));
            await Assert.ThrowsAsync<StoreReadOnlyException>(() => ro.DeleteStreamAsync(s, ExpectedVersion.Any, DeleteMode.Hard));
        }
        SqliteConnection.ClearAllPools();
        Assert.Equal(before, await File.ReadAllBytesAsync(db));
        Assert.Throws<StoreFormatException>(() => new SqliteEventStore(new SqliteEventStoreOptions(Path.Combine(_dir, "missing.db")) { ReadOnly = true }));
        Assert.False(File.Exists(Path.Combine(_dir, "missing.db")));
    }
}
