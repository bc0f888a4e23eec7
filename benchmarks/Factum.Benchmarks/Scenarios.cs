using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Hashing;
using System.Text;
using Factum.Sqlite;
using Factum.Subscriptions;
using HdrHistogram;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Factum.Benchmarks;

public static class Scenarios
{
    private static readonly byte[] Payload = Encoding.UTF8.GetBytes("""{"orderId":"ord-0001234","customerId":"cus-42","amount":123.45,"currency":"EUR","items":3,"channel":"web"}""");

    internal static string Machine => $"{Environment.ProcessorCount} cores, {Math.Round(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 1024.0 / 1024 / 1024)} GiB, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}";

    private static EventData NewEvent() => new("OrderPlaced", Payload);

    // ---------------------------------------------------------------- appends

    public static async Task<ScenarioResult> Append(string scenario, string dir, long events, int writers, int batch, int pageSize, bool inMemory = false)
    {
        var perTransaction = scenario == "append-concurrent" ? writers : batch;
        var factum = await FactumAppend(Path.Combine(dir, "factum.db"), events, writers, batch, pageSize, inMemory);
        // The same rows as Factum writes: spread over as many streams as there are writers.
        var rawSqlite = RawSqliteAppend(Path.Combine(dir, "raw.db"), events, perTransaction, pageSize, streams: writers);
        var rawFile = RawFileAppend(Path.Combine(dir, "raw.log"), events, perTransaction);
        var ratios = new Dictionary<string, double>
        {
            ["vs raw SQLite"] = factum.EventsPerSecond / rawSqlite.EventsPerSecond,
            ["vs raw file + fsync"] = factum.EventsPerSecond / rawFile.EventsPerSecond,
        };
        var targets = scenario switch
        {
            "append-concurrent" => new List<Target>
            {
                new("≥ 50,000 events/s", factum.EventsPerSecond >= 50_000),
                new("≥ 0.8× raw SQLite", ratios["vs raw SQLite"] >= 0.8),
            },
            "append-seq" => [new("≥ 0.6× raw fsync rate", ratios["vs raw file + fsync"] >= 0.6)],
            _ => [],
        };
        return new ScenarioResult(scenario, Machine, DateTimeOffset.UtcNow,
            new Dictionary<string, object> { ["events"] = events, ["writers"] = writers, ["batch"] = batch, ["rowsPerBaselineTransaction"] = perTransaction, ["pageSize"] = pageSize, ["durability"] = inMemory ? "none (memory: store)" : "synchronous=FULL, WAL" },
            factum, [rawSqlite, rawFile], ratios, targets);
    }

    private static async Task<Measurement> FactumAppend(string path, long events, int writers, int batch, int pageSize, bool inMemory)
    {
        await using var sqlite = inMemory ? null : new SqliteEventStore(new SqliteEventStoreOptions(path) { PageSize = pageSize });
        IEventStore store = sqlite ?? (IEventStore)new Factum.InMemory.InMemoryEventStore();
        // Warm up the JIT and the file.
        for (var i = 0; i < 20; i++) await store.AppendAsync(StreamId.Parse($"Warmup-{i}"), ExpectedVersion.Any, [NewEvent()]);
        var perWriter = events / writers / batch;
        var histograms = Enumerable.Range(0, writers).Select(_ => Latency.NewHistogram()).ToArray();
        using var memory = new MemorySampler();
        var commitsBefore = sqlite?.CommitCount ?? 0;
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var stream = StreamId.Parse($"Bench-{w}");
            var h = histograms[w];
            var batchEvents = new EventData[batch];
            for (long i = 0; i < perWriter; i++)
            {
                for (var j = 0; j < batch; j++) batchEvents[j] = NewEvent();
                var expected = i == 0 ? ExpectedVersion.NoStream : ExpectedVersion.Exactly(i * batch - 1);
                var start = Stopwatch.GetTimestamp();
                await store.AppendAsync(stream, expected, batchEvents);
                h.RecordValue(Stopwatch.GetTimestamp() - start);
            }
        })));
        sw.Stop();
        memory.Dispose();
        var written = perWriter * writers * batch;
        var (p50, p99, max) = Latency.Summarize(histograms);
        if (sqlite is not null)
            Console.Error.WriteLine($"  factum: {sqlite.CommitCount - commitsBefore:N0} commits for {written:N0} events ({(double)written / Math.Max(1, sqlite.CommitCount - commitsBefore):F1} events per fsync)");
        return new Measurement(inMemory ? "Factum (memory: backend)" : "Factum (SQLite backend)", written, sw.Elapsed.TotalSeconds, written / sw.Elapsed.TotalSeconds, p50, p99, max, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);
    }

    /// <summary>
    /// The engine's limit: the same event rows and indexes, the same page size and durability, ideal batching, bound by
    /// index through SQLitePCL.raw (the fastest way into SQLite), no Factum code at all.
    /// </summary>
    private static Measurement RawSqliteAppend(string path, long events, int perTransaction, int pageSize, int streams)
    {
        using var c = new SqliteConnection($"Data Source={path};Pooling=False");
        c.Open();
        Exec(c, $"PRAGMA page_size={pageSize}; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
        Exec(c, """
            CREATE TABLE events (position INTEGER PRIMARY KEY, stream_key INTEGER NOT NULL, stream_version INTEGER NOT NULL, event_id BLOB NOT NULL,
                type TEXT NOT NULL, schema_version INTEGER NOT NULL, created_at INTEGER NOT NULL, correlation_id TEXT NOT NULL, causation_id TEXT, metadata BLOB, payload BLOB NOT NULL);
            CREATE UNIQUE INDEX ix_events_stream ON events(stream_key, stream_version);
            CREATE INDEX ix_events_event_id ON events(event_id);
            CREATE INDEX ix_events_correlation ON events(correlation_id);
            """);
        var db = c.Handle!;
        raw.sqlite3_prepare_v2(db, "INSERT INTO events VALUES (?1, ?2, ?3, ?4, 'OrderPlaced', 1, ?5, ?6, NULL, NULL, ?7)", out var insert);
        raw.sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", out var begin);
        raw.sqlite3_prepare_v2(db, "COMMIT", out var commit);
        var h = Latency.NewHistogram();
        var transactions = events / perTransaction;
        var versions = new long[streams];
        Span<byte> id = stackalloc byte[16];
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        long position = 0;
        for (long t = 0; t < transactions; t++)
        {
            var start = Stopwatch.GetTimestamp();
            Step(begin);
            for (var i = 0; i < perTransaction; i++)
            {
                var g = Guid.CreateVersion7();
                g.TryWriteBytes(id, bigEndian: true, out _);
                var key = position % streams;
                raw.sqlite3_bind_int64(insert, 1, ++position);
                raw.sqlite3_bind_int64(insert, 2, key);
                raw.sqlite3_bind_int64(insert, 3, versions[key]++);
                raw.sqlite3_bind_blob(insert, 4, id);
                raw.sqlite3_bind_int64(insert, 5, DateTime.UtcNow.Ticks);
                raw.sqlite3_bind_text(insert, 6, g.ToString());
                raw.sqlite3_bind_blob(insert, 7, Payload);
                Step(insert);
            }
            Step(commit);
            h.RecordValue(Stopwatch.GetTimestamp() - start);
        }
        sw.Stop();
        memory.Dispose();
        insert.Dispose();
        begin.Dispose();
        commit.Dispose();
        var (p50, p99, max) = Latency.Summarize([h]);
        return new Measurement($"raw SQLite ({perTransaction} rows/tx, {streams} stream{(streams == 1 ? "" : "s")})", position, sw.Elapsed.TotalSeconds, position / sw.Elapsed.TotalSeconds, p50, p99, max, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);

        static void Step(sqlite3_stmt stmt)
        {
            var rc = raw.sqlite3_step(stmt);
            raw.sqlite3_reset(stmt);
            if (rc != raw.SQLITE_DONE) throw new InvalidOperationException($"SQLite step failed: {rc}");
        }
    }

    /// <summary>The disk's limit: length-prefixed records with a CRC, appended to one file, fsync per batch.</summary>
    private static Measurement RawFileAppend(string path, long events, int perBatch)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.None);
        var record = BuildRecord();
        var h = Latency.NewHistogram();
        var batches = events / perBatch;
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        for (long b = 0; b < batches; b++)
        {
            var start = Stopwatch.GetTimestamp();
            for (var i = 0; i < perBatch; i++) file.Write(record);
            file.Flush(flushToDisk: true);
            h.RecordValue(Stopwatch.GetTimestamp() - start);
        }
        sw.Stop();
        memory.Dispose();
        var written = batches * perBatch;
        var (p50, p99, max) = Latency.Summarize([h]);
        return new Measurement($"raw file + CRC + fsync ({perBatch} records/fsync)", written, sw.Elapsed.TotalSeconds, written / sw.Elapsed.TotalSeconds, p50, p99, max, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);
    }

    /// <summary>A record the size of a stored event: header (ids, version, timestamp, type) plus payload, length and CRC32.</summary>
    private static byte[] BuildRecord()
    {
        var body = new byte[16 + 8 + 8 + 8 + 11 + Payload.Length];
        Guid.CreateVersion7().TryWriteBytes(body);
        Payload.CopyTo(body, body.Length - Payload.Length);
        var record = new byte[8 + body.Length];
        BitConverter.TryWriteBytes(record.AsSpan(0, 4), body.Length);
        BitConverter.TryWriteBytes(record.AsSpan(4, 4), Crc32.HashToUInt32(body));
        body.CopyTo(record, 8);
        return record;
    }

    // ---------------------------------------------------------------- reads

    public static async Task<ScenarioResult> Read(string scenario, string dir, long events)
    {
        var path = Path.Combine(dir, "factum.db");
        var streams = scenario == "read-stream" ? 1 : 1000;
        await Seed(path, events, streams);
        var rawFilePath = Path.Combine(dir, "raw.log");
        SeedRawFile(rawFilePath, events);

        // Factum with and without checking each event's checksum on read (issue 9: the checksum's cost, target ≤ 5%),
        // alternating four times and keeping each one's best run, so that the machine's drift hits both alike.
        Measurement? factum = null, unchecked_ = null;
        var liveHeap = new List<long>();
        for (var round = 0; round < 4; round++)
        {
            foreach (var check in new[] { true, false })
            {
                var heap = new List<long>();
                var m = await MeasureRead(check, heap);
                if (check && (factum is null || m.EventsPerSecond > factum.EventsPerSecond)) (factum, liveHeap) = (m, heap);
                if (!check && (unchecked_ is null || m.EventsPerSecond > unchecked_.EventsPerSecond)) unchecked_ = m;
            }
        }

        async Task<Measurement> MeasureRead(bool check, List<long> heap)
        {
            await using var store = new SqliteEventStore(new SqliteEventStoreOptions(path) { VerifyChecksumsOnRead = check });
            // Warm up.
            await foreach (var _ in store.ReadAllAsync(new ReadAllOptions { MaxCount = 5000 })) { }
            using var memory = new MemorySampler();
            var sw = Stopwatch.StartNew();
            long count = 0, bytes = 0;
            heap.Add(GC.GetTotalMemory(forceFullCollection: true));
            var source = scenario == "read-stream" ? store.ReadStreamAsync(StreamId.Parse("Bench-0")) : store.ReadAllAsync();
            // Live heap (after a full collection) at each quarter of the read: flat means nothing accumulates.
            var quarter = Math.Max(1, events / 4);
            await foreach (var e in source)
            {
                count++;
                bytes += e.Payload.Length;
                if (count % quarter == 0) heap.Add(GC.GetTotalMemory(forceFullCollection: true));
            }
            sw.Stop();
            memory.Dispose();
            if (count != events) throw new InvalidOperationException($"read {count} events, expected {events}");
            return new Measurement(check ? "Factum (SQLite backend)" : "Factum, checksums not checked on read", count, sw.Elapsed.TotalSeconds, count / sw.Elapsed.TotalSeconds, null, null, null, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);
        }
        var rawSqlite = RawSqliteRead(path, scenario == "read-stream");
        var rawFile = RawFileRead(rawFilePath, events);
        var ratios = new Dictionary<string, double>
        {
            ["vs raw SQLite"] = factum!.EventsPerSecond / rawSqlite.EventsPerSecond,
            ["vs raw file read"] = factum.EventsPerSecond / rawFile.EventsPerSecond,
            ["vs checksums not checked"] = factum.EventsPerSecond / unchecked_!.EventsPerSecond,
        };
        var growth = liveHeap.Max() - liveHeap[0];
        var liveText = string.Join(" → ", liveHeap.Select(b => $"{b / 1048576.0:F1}"));
        Console.Error.WriteLine($"  live heap at 0/25/50/75/100% of the read (MiB): {liveText}");
        var targets = scenario == "read-all"
            ? new List<Target>
            {
                new("≥ 500,000 events/s", factum.EventsPerSecond >= 500_000),
                new($"memory flat while reading {events:N0} events (live heap {liveText} MiB; growth < 8 MiB)", growth < 8L * 1024 * 1024),
                new("checksum checks cost ≤ 5% of read throughput", factum.EventsPerSecond >= 0.95 * unchecked_.EventsPerSecond),
            }
            : [new("checksum checks cost ≤ 5% of read throughput", factum.EventsPerSecond >= 0.95 * unchecked_.EventsPerSecond)];
        return new ScenarioResult(scenario, Machine, DateTimeOffset.UtcNow,
            new Dictionary<string, object> { ["events"] = events, ["streams"] = streams, ["readPageSize"] = 1024 },
            factum, [rawSqlite, rawFile, unchecked_], ratios, targets);
    }

    private static async Task Seed(string path, long events, int streams)
    {
        await using var store = new SqliteEventStore(new SqliteEventStoreOptions(path) { Durability = SqliteDurability.Normal });
        var versions = new long[streams];
        const int batch = 1000;
        var pending = new List<Task>();
        for (long i = 0; i < events; i += batch)
        {
            var n = (int)Math.Min(batch, events - i);
            var s = (int)(i / batch % streams);
            var evs = Enumerable.Range(0, n).Select(_ => NewEvent()).ToArray();
            pending.Add(store.AppendAsync(StreamId.Parse($"Bench-{s}"), ExpectedVersion.Any, evs));
            versions[s] += n;
            if (pending.Count >= 64)
            {
                await Task.WhenAll(pending);
                pending.Clear();
            }
        }
        await Task.WhenAll(pending);
    }

    /// <summary>The engine's limit for reads: one query over the same columns, stepped through SQLitePCL.raw, each value materialized.</summary>
    private static Measurement RawSqliteRead(string path, bool oneStream)
    {
        using var c = new SqliteConnection($"Data Source={path};Mode=ReadOnly;Pooling=False");
        c.Open();
        raw.sqlite3_prepare_v2(c.Handle!, oneStream
            ? "SELECT position, stream_version, event_id, type, schema_version, created_at, correlation_id, causation_id, metadata, payload FROM events WHERE stream_key = (SELECT stream_key FROM streams WHERE stream_id = 'Bench-0') ORDER BY stream_version"
            : "SELECT e.position, e.stream_version, e.event_id, e.type, e.schema_version, e.created_at, e.correlation_id, e.causation_id, e.metadata, e.payload, s.stream_id FROM events e CROSS JOIN streams s ON s.stream_key = e.stream_key WHERE e.position > 0 ORDER BY e.position", out var stmt);
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        long count = 0, check = 0;
        while (raw.sqlite3_step(stmt) == raw.SQLITE_ROW)
        {
            var id = new Guid(raw.sqlite3_column_blob(stmt, 2), bigEndian: true);
            var type = Encoding.UTF8.GetString(raw.sqlite3_column_blob(stmt, 3));
            var corr = Encoding.UTF8.GetString(raw.sqlite3_column_blob(stmt, 6));
            var payload = raw.sqlite3_column_blob(stmt, 9).ToArray();
            check += raw.sqlite3_column_int64(stmt, 0) + payload.Length + type.Length + corr.Length + id.GetHashCode();
            count++;
        }
        sw.Stop();
        memory.Dispose();
        stmt.Dispose();
        GC.KeepAlive(check);
        return new Measurement("raw SQLite (one query, same columns)", count, sw.Elapsed.TotalSeconds, count / sw.Elapsed.TotalSeconds, null, null, null, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);
    }

    private static void SeedRawFile(string path, long events)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        var record = BuildRecord();
        for (long i = 0; i < events; i++) file.Write(record);
        file.Flush(flushToDisk: true);
    }

    private static Measurement RawFileRead(string path, long events)
    {
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        long count = 0;
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan))
        {
            Span<byte> header = stackalloc byte[8];
            var body = new byte[4096];
            while (file.Read(header) == 8)
            {
                var len = BitConverter.ToInt32(header[..4]);
                var crc = BitConverter.ToUInt32(header[4..]);
                file.ReadExactly(body, 0, len);
                if (Crc32.HashToUInt32(body.AsSpan(0, len)) != crc) throw new InvalidDataException("CRC mismatch");
                count++;
            }
        }
        sw.Stop();
        memory.Dispose();
        if (count != events) throw new InvalidOperationException($"raw file held {count} records, expected {events}");
        return new Measurement("raw file read + CRC check", count, sw.Elapsed.TotalSeconds, count / sw.Elapsed.TotalSeconds, null, null, null, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);
    }

    // ---------------------------------------------------------------- subscriptions

    /// <summary>
    /// Appends at a steady rate while a live subscriber records append→handler latency. The baseline is the append's own
    /// latency (the handler cannot see an event before it is durable): the difference is what the subscription adds.
    /// </summary>
    public static async Task<ScenarioResult> SubscriptionLatency(string dir, long events, int ratePerSecond, bool inMemory = false)
    {
        await using var sqlite = inMemory ? null : new SqliteEventStore(Path.Combine(dir, "factum.db"));
        IEventStore store = sqlite ?? (IEventStore)new Factum.InMemory.InMemoryEventStore();
        var started = new ConcurrentDictionary<EventId, long>();
        var handlerLatency = Latency.NewHistogram();
        var appendLatency = Latency.NewHistogram();
        var handled = 0L;
        var allHandled = new TaskCompletionSource();
        await using var sub = new EventSubscription(store, new InMemorySubscriptionStore(), new SubscriptionOptions("latency") { Start = SubscriptionStart.End },
            (e, _) =>
            {
                var now = Stopwatch.GetTimestamp();
                if (started.TryRemove(e.EventId, out var t0))
                {
                    lock (handlerLatency) handlerLatency.RecordValue(now - t0);
                    if (Interlocked.Increment(ref handled) == events) allHandled.TrySetResult();
                }
                return ValueTask.CompletedTask;
            });
        await sub.StartAsync();
        while ((await sub.GetStatusAsync()).State != SubscriptionState.Live) await Task.Delay(10);
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        var interval = Stopwatch.Frequency / ratePerSecond;
        var next = Stopwatch.GetTimestamp();
        var stream = StreamId.Parse("Latency-1");
        for (long i = 0; i < events; i++)
        {
            while (Stopwatch.GetTimestamp() < next) await Task.Yield();
            next += interval;
            var e = NewEvent();
            var t0 = Stopwatch.GetTimestamp();
            started[e.EventId] = t0;
            await store.AppendAsync(stream, ExpectedVersion.Any, [e]);
            appendLatency.RecordValue(Stopwatch.GetTimestamp() - t0);
        }
        await allHandled.Task.WaitAsync(TimeSpan.FromMinutes(2));
        sw.Stop();
        memory.Dispose();
        var (p50, p99, max) = Latency.Summarize([handlerLatency]);
        var (ap50, ap99, amax) = Latency.Summarize([appendLatency]);
        var factum = new Measurement("append → live handler", events, sw.Elapsed.TotalSeconds, events / sw.Elapsed.TotalSeconds, p50, p99, max, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);
        var append = new Measurement(inMemory ? "append alone (memory: store)" : "append alone (durable commit)", events, sw.Elapsed.TotalSeconds, events / sw.Elapsed.TotalSeconds, ap50, ap99, amax, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);
        return new ScenarioResult("subscription-latency", Machine, DateTimeOffset.UtcNow,
            new Dictionary<string, object> { ["events"] = events, ["rate"] = ratePerSecond },
            factum, [append], new Dictionary<string, double> { ["p99 over append p99"] = p99 / ap99 },
            [new Target("p99 append→handler < 10 ms", p99 < 10)]);
    }

    // ---------------------------------------------------------------- aggregates

    private sealed record Counter(long Count, decimal Sum);

    /// <summary>Loads one aggregate of N events from scratch and from its latest snapshot; the scratch load is the baseline.</summary>
    public static async Task<ScenarioResult> AggregateLoad(string dir, long events, bool inMemory = false)
    {
        var path = Path.Combine(dir, "factum.db");
        await using var sqlite = inMemory ? null : new SqliteEventStore(path);
        IEventStore store = sqlite ?? (IEventStore)new Factum.InMemory.InMemoryEventStore();
        var registry = new EventTypeRegistry().Register<Factum.Benchmarks.ItemCounted>();
        var plain = new Factum.Aggregates.AggregateDefinition<Counter>("Counter", () => new Counter(0, 0), (c, e) => e is ItemCounted i ? new Counter(c.Count + 1, c.Sum + i.Amount) : c);
        var withSnapshots = plain with { SnapshotEvery = 1000 };
        Factum.Aggregates.ISnapshotStore snapshots = sqlite is null ? new Factum.Aggregates.InMemorySnapshotStore() : new SqliteSnapshotStore(sqlite);
        var aggregates = new Factum.Aggregates.AggregateStore(store, registry, snapshots);
        // Build the aggregate through the aggregate store so snapshots are taken as in production (every 1,000 events).
        const int perCommand = 100;
        for (long i = 0; i < events; i += perCommand)
            await aggregates.HandleAsync(withSnapshots, "big", _ => Enumerable.Range(0, perCommand).Select(n => (object)new ItemCounted(1.5m)));

        async Task<(Measurement M, Factum.Aggregates.LoadedAggregate<Counter> L)> Time(string name, Factum.Aggregates.AggregateDefinition<Counter> def, int runs)
        {
            await aggregates.LoadAsync(def, "big"); // warm-up
            var h = Latency.NewHistogram();
            using var memory = new MemorySampler();
            var sw = Stopwatch.StartNew();
            Factum.Aggregates.LoadedAggregate<Counter>? last = null;
            for (var r = 0; r < runs; r++)
            {
                var t0 = Stopwatch.GetTimestamp();
                last = await aggregates.LoadAsync(def, "big");
                h.RecordValue(Stopwatch.GetTimestamp() - t0);
            }
            sw.Stop();
            memory.Dispose();
            var (p50, p99, max) = Latency.Summarize([h]);
            return (new Measurement(name, last!.EventsReplayed, sw.Elapsed.TotalSeconds, runs / sw.Elapsed.TotalSeconds, p50, p99, max, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged), last);
        }

        var (snap, snapLoaded) = await Time("load with snapshot (loads/s)", withSnapshots, 200);
        var (scratch, scratchLoaded) = await Time("load from events only (loads/s)", plain, 20);
        if (snapLoaded.State != scratchLoaded.State) throw new InvalidOperationException("snapshot and replay disagree");
        Console.Error.WriteLine($"  with snapshot: snapshot at version {snapLoaded.SnapshotVersion}, {snapLoaded.EventsReplayed} events folded after it; from scratch: {scratchLoaded.EventsReplayed} events");
        return new ScenarioResult("aggregate-load", Machine, DateTimeOffset.UtcNow,
            new Dictionary<string, object> { ["events"] = events, ["snapshotEvery"] = 1000 },
            snap, [scratch], new Dictionary<string, double> { ["speed-up from snapshots (p50)"] = scratch.P50Ms!.Value / snap.P50Ms!.Value }, []);
    }

    // ---------------------------------------------------------------- projections

    private sealed record CountDoc(long Count);

    /// <summary>A simple counting projection (one document per event type).</summary>
    private sealed class CountingProjection : Factum.Projections.IProjection
    {
        private readonly Dictionary<string, long> _pending = [];

        public string Name => "bench-counts";

        public int Version => 1;

        public EventFilter Filter => EventFilter.None;

        public async ValueTask ApplyAsync(RecordedEvent e, Factum.Projections.IProjectionContext context, CancellationToken cancellationToken) =>
            context.Put(e.Type, new CountDoc(((await context.GetAsync<CountDoc>(e.Type, cancellationToken))?.Count ?? 0) + 1));
    }

    /// <summary>Rebuilds a counting projection over N events; the baselines are a plain read of the same events.</summary>
    public static async Task<ScenarioResult> ProjectionRebuild(string dir, long events)
    {
        var path = Path.Combine(dir, "factum.db");
        await Seed(path, events, 1000);
        Measurement rebuild;
        await using (var store = new SqliteEventStore(path))
        {
            var models = new SqliteReadModels(store);
            using var memory = new MemorySampler();
            var sw = Stopwatch.StartNew();
            await using (var runner = new SqliteProjectionRunner(store, new CountingProjection(), new Factum.Projections.ProjectionOptions { LiveWaitTimeout = TimeSpan.FromMilliseconds(20) }))
            {
                await runner.StartAsync();
                while ((await models.ListAsync()).Single().Lag > 0) await Task.Delay(5);
            }
            sw.Stop();
            memory.Dispose();
            var doc = await models.GetJsonAsync("bench-counts", "OrderPlaced");
            if (doc != $"{{\"count\":{events}}}") throw new InvalidOperationException($"projection counted {doc}, expected {events}");
            rebuild = new Measurement("projection rebuild (count per type)", events, sw.Elapsed.TotalSeconds, events / sw.Elapsed.TotalSeconds, null, null, null, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);

            using var readMemory = new MemorySampler();
            var rsw = Stopwatch.StartNew();
            long n = 0;
            await foreach (var _ in store.ReadAllAsync()) n++;
            rsw.Stop();
            readMemory.Dispose();
            var read = new Measurement("Factum read of the same events", n, rsw.Elapsed.TotalSeconds, n / rsw.Elapsed.TotalSeconds, null, null, null, readMemory.PeakManaged, readMemory.PeakWorkingSet, readMemory.StartManaged);
            return new ScenarioResult("projection-rebuild", Machine, DateTimeOffset.UtcNow,
                new Dictionary<string, object> { ["events"] = events, ["batch"] = 500 },
                rebuild, [read], new Dictionary<string, double> { ["rebuild over read"] = rebuild.EventsPerSecond / read.EventsPerSecond },
                [new Target("≥ 100,000 events/s", rebuild.EventsPerSecond >= 100_000)]);
        }
    }

    private static void Exec(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
