using System.Diagnostics;
using System.Text;
using Factum.PostgreSql;
using Factum.Subscriptions;
using Npgsql;
using NpgsqlTypes;

namespace Factum.Benchmarks;

/// <summary>The store scenarios on PostgreSQL (<c>--store postgres://…</c>), each beside a raw Npgsql baseline in the same run.</summary>
public static class PostgresScenarios
{
    private static readonly byte[] Payload = Encoding.UTF8.GetBytes("""{"orderId":"ord-0001234","customerId":"cus-42","amount":123.45,"currency":"EUR","items":3,"channel":"web"}""");

    /// <summary>
    /// <paramref name="writers"/> concurrent writers, one event per append, each to its own stream with exact expected
    /// versions — against the raw baseline: the same rows written by one connection, <paramref name="writers"/> rows per
    /// transaction in one multi-row INSERT (what a hand-written batching writer does, with no Factum code).
    /// </summary>
    public static async Task<ScenarioResult> AppendConcurrent(StoreConnectionString store, long events, int writers)
    {
        var schema = $"bench_{Guid.NewGuid().ToString("N")[..8]}";
        var options = new PostgresEventStoreOptions(store) { Schema = schema };
        Measurement factum, raw, marten;
        try
        {
            factum = await FactumAppend(options, events, writers);
            raw = await RawBatched(options.ConnectionString, schema + "_raw", events, writers);
            marten = await MartenQuickAppend(options.ConnectionString, schema + "_marten", events, writers);
        }
        finally
        {
            await DropSchemasAsync(options.ConnectionString, schema, schema + "_raw", schema + "_marten");
        }
        var ratios = new Dictionary<string, double>
        {
            ["vs raw Npgsql batched"] = factum.EventsPerSecond / raw.EventsPerSecond,
            ["vs Marten QuickAppend"] = factum.EventsPerSecond / marten.EventsPerSecond,
        };
        return new ScenarioResult("append-concurrent", Scenarios.Machine, DateTimeOffset.UtcNow,
            new Dictionary<string, object> { ["events"] = events, ["writers"] = writers, ["store"] = store.ToString(), ["rowsPerBaselineTransaction"] = writers, ["durability"] = "synchronous_commit as the server has it (on by default)" },
            factum, [raw, marten], ratios,
            [new Target("≥ 0.8× raw Npgsql batched", ratios["vs raw Npgsql batched"] >= 0.8), new Target("≥ 6× Marten QuickAppend", ratios["vs Marten QuickAppend"] >= 6)]);
    }

    /// <summary>Each scenario works in schemas of its own and drops them at the end, whatever happened.</summary>
    private static async Task DropSchemasAsync(string connectionString, params string[] schemas)
    {
        await using var c = new NpgsqlConnection(connectionString);
        await c.OpenAsync();
        using var drop = new NpgsqlCommand(string.Concat(schemas.Select(s => $"DROP SCHEMA IF EXISTS {s} CASCADE;")), c);
        await drop.ExecuteNonQueryAsync();
    }

    private static async Task<Measurement> FactumAppend(PostgresEventStoreOptions options, long events, int writers)
    {
        await using var store = await PostgresEventStore.OpenAsync(options);
        for (var i = 0; i < 20; i++) await store.AppendAsync(StreamId.Parse($"Warmup-{i}"), ExpectedVersion.Any, [new EventData("OrderPlaced", Payload)]);
        var perWriter = events / writers;
        var histograms = Enumerable.Range(0, writers).Select(_ => Latency.NewHistogram()).ToArray();
        using var memory = new MemorySampler();
        var commitsBefore = store.CommitCount;
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var stream = StreamId.Parse($"Bench-{w}");
            var h = histograms[w];
            for (long i = 0; i < perWriter; i++)
            {
                var start = Stopwatch.GetTimestamp();
                await store.AppendAsync(stream, i == 0 ? ExpectedVersion.NoStream : ExpectedVersion.Exactly(i - 1), [new EventData("OrderPlaced", Payload)]);
                h.RecordValue(Stopwatch.GetTimestamp() - start);
            }
        })));
        sw.Stop();
        memory.Dispose();
        var written = perWriter * writers;
        var commits = store.CommitCount - commitsBefore;
        Console.Error.WriteLine($"  factum: {commits:N0} commits for {written:N0} events ({(double)written / Math.Max(1, commits):F1} events per commit)");
        var (p50, p99, max) = Latency.Summarize(histograms);
        return new Measurement("Factum (PostgreSQL backend)", written, sw.Elapsed.TotalSeconds, written / sw.Elapsed.TotalSeconds, p50, p99, max, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);
    }

    /// <summary>
    /// The peer: Marten 9.58 with <c>EventAppendMode.Quick</c> and string stream ids, each writer appending one event per
    /// session to its own stream (what an application does per command), in a schema of its own on the same server.
    /// </summary>
    private static async Task<Measurement> MartenQuickAppend(string connectionString, string schema, long events, int writers)
    {
        using var store = Marten.DocumentStore.For(o =>
        {
            o.Connection(connectionString);
            o.DatabaseSchemaName = schema;
            o.Events.AppendMode = JasperFx.Events.EventAppendMode.Quick;
            o.Events.StreamIdentity = JasperFx.Events.StreamIdentity.AsString;
        });
        await store.Storage.ApplyAllConfiguredChangesToDatabaseAsync();
        for (var i = 0; i < 20; i++)
        {
            await using var warm = store.LightweightSession();
            warm.Events.Append($"Warmup-{i}", new MartenOrderPlaced("warmup", 1m));
            await warm.SaveChangesAsync();
        }
        var perWriter = events / writers;
        var histograms = Enumerable.Range(0, writers).Select(_ => Latency.NewHistogram()).ToArray();
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var h = histograms[w];
            for (long i = 0; i < perWriter; i++)
            {
                var start = Stopwatch.GetTimestamp();
                await using var session = store.LightweightSession();
                session.Events.Append($"Bench-{w}", new MartenOrderPlaced("ord-0001234", 123.45m));
                await session.SaveChangesAsync();
                h.RecordValue(Stopwatch.GetTimestamp() - start);
            }
        })));
        sw.Stop();
        memory.Dispose();
        var written = perWriter * writers;
        var (p50, p99, max) = Latency.Summarize(histograms);
        return new Measurement("Marten 9.58 QuickAppend (one event per session, own stream per writer)", written, sw.Elapsed.TotalSeconds, written / sw.Elapsed.TotalSeconds, p50, p99, max, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);
    }

    private static async Task<Measurement> RawBatched(string connectionString, string schema, long events, int perTransaction)
    {
        await using var c = new NpgsqlConnection(connectionString);
        await c.OpenAsync();
        using (var create = new NpgsqlCommand($"""
            CREATE SCHEMA {schema};
            CREATE TABLE {schema}.events (position bigserial PRIMARY KEY, stream_id text NOT NULL, version bigint NOT NULL, event_id uuid NOT NULL,
                type text NOT NULL, created_at timestamptz NOT NULL, payload bytea NOT NULL, UNIQUE (stream_id, version));
            """, c)) await create.ExecuteNonQueryAsync();
        var versions = new long[perTransaction];
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        long written = 0;
        while (written < events)
        {
            var n = (int)Math.Min(perTransaction, events - written);
            await using var tx = await c.BeginTransactionAsync();
            using var insert = new NpgsqlCommand($"""
                INSERT INTO {schema}.events (stream_id, version, event_id, type, created_at, payload)
                SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::timestamptz[], $6::bytea[])
                """, c, tx);
            var now = DateTimeOffset.UtcNow;
            insert.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, Enumerable.Range(0, n).Select(i => $"Bench-{i}").ToArray());
            insert.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bigint, Enumerable.Range(0, n).Select(i => versions[i]++).ToArray());
            insert.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Uuid, Enumerable.Range(0, n).Select(_ => Guid.CreateVersion7()).ToArray());
            insert.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, Enumerable.Repeat("OrderPlaced", n).ToArray());
            insert.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, Enumerable.Repeat(now, n).ToArray());
            insert.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bytea, Enumerable.Repeat(Payload, n).ToArray());
            await insert.ExecuteNonQueryAsync();
            await tx.CommitAsync();
            written += n;
        }
        sw.Stop();
        memory.Dispose();
        return new Measurement($"raw Npgsql: {perTransaction} rows per transaction (multi-row INSERT, one connection)", written, sw.Elapsed.TotalSeconds, written / sw.Elapsed.TotalSeconds, null, null, null, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);
    }

    /// <summary>
    /// Reading the global log: N events (imported in large transactions) read back with <c>ReadAllAsync</c> in pages,
    /// against the raw baseline — one Npgsql reader streaming the same rows with no paging and no Factum code.
    /// </summary>
    public static async Task<ScenarioResult> ReadAll(StoreConnectionString store, long events)
    {
        var schema = $"bench_{Guid.NewGuid().ToString("N")[..8]}";
        var options = new PostgresEventStoreOptions(store) { Schema = schema, ReadPageSize = 4096 };
        try
        {
            await using var pg = await PostgresEventStore.OpenAsync(options);
            var at = DateTimeOffset.UtcNow;
            for (long p = 1; p <= events; p += 10_000)
            {
                var chunk = new List<RecordedEvent>();
                for (var i = p; i < Math.Min(events + 1, p + 10_000); i++)
                {
                    chunk.Add(new RecordedEvent
                    {
                        EventId = EventId.New(),
                        Type = "OrderPlaced",
                        SchemaVersion = 1,
                        Timestamp = at,
                        StreamId = StreamId.Parse($"Order-{i % 1000}"),
                        StreamVersion = (i - 1) / 1000,
                        Position = i,
                        CorrelationId = "bench",
                        Payload = Payload,
                    });
                }
                await pg.ImportAsync(chunk);
            }
            // Warm the cache and the JIT with one pass, then measure.
            await foreach (var _ in pg.ReadAllAsync()) { }
            using var memory = new MemorySampler();
            var sw = Stopwatch.StartNew();
            long read = 0;
            await foreach (var _ in pg.ReadAllAsync()) read++;
            sw.Stop();
            memory.Dispose();
            var factum = new Measurement($"Factum (PostgreSQL): ReadAllAsync, pages of {options.ReadPageSize}", read, sw.Elapsed.TotalSeconds, read / sw.Elapsed.TotalSeconds, null, null, null, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);

            await using var c = new NpgsqlConnection(options.ConnectionString);
            await c.OpenAsync();
            using var rawMemory = new MemorySampler();
            var rawSw = Stopwatch.StartNew();
            long rawRead = 0;
            using (var cmd = new NpgsqlCommand($"SELECT position, stream_id, stream_version, event_id, type, created_at, payload FROM {schema}.events ORDER BY position", c))
            await using (var r = await cmd.ExecuteReaderAsync())
            {
                while (await r.ReadAsync())
                {
                    _ = r.GetInt64(0); _ = r.GetString(1); _ = r.GetInt64(2); _ = r.GetGuid(3); _ = r.GetString(4); _ = r.GetFieldValue<DateTime>(5); _ = r.GetFieldValue<byte[]>(6);
                    rawRead++;
                }
            }
            rawSw.Stop();
            rawMemory.Dispose();
            var raw = new Measurement("raw Npgsql: one reader streaming the rows (no paging, no Factum code)", rawRead, rawSw.Elapsed.TotalSeconds, rawRead / rawSw.Elapsed.TotalSeconds, null, null, null, rawMemory.PeakManaged, rawMemory.PeakWorkingSet, rawMemory.StartManaged);
            var ratios = new Dictionary<string, double> { ["vs raw Npgsql"] = factum.EventsPerSecond / raw.EventsPerSecond };
            return new ScenarioResult("read-all", Scenarios.Machine, DateTimeOffset.UtcNow,
                new Dictionary<string, object> { ["events"] = events, ["pageSize"] = options.ReadPageSize, ["store"] = store.ToString() },
                factum, [raw], ratios, [new Target("≥ 300,000 events/s", factum.EventsPerSecond >= 300_000)]);
        }
        finally
        {
            await DropSchemasAsync(options.ConnectionString, schema);
        }
    }

    /// <summary>
    /// Live-subscription latency across processes: a second process (this program again, as <c>pg-latency-writer</c>)
    /// appends at a steady rate; a subscription here follows <c>$all</c> (woken by NOTIFY) and measures from each event's
    /// timestamp (taken when its commit began) to its handler. Both processes read the same machine clock.
    /// </summary>
    public static async Task<ScenarioResult> SubscriptionLatency(StoreConnectionString store, long events, int ratePerSecond)
    {
        var schema = $"bench_{Guid.NewGuid().ToString("N")[..8]}";
        var options = new PostgresEventStoreOptions(store) { Schema = schema };
        try
        {
            await using var reader = await PostgresEventStore.OpenAsync(options);
            var latency = Latency.NewHistogram();
            var handled = 0L;
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            // The first events warm up both processes (JIT, pools, the listener); they are not measured.
            const int warmup = 500;
            await using var sub = new EventSubscription(reader, new InMemorySubscriptionStore(), new SubscriptionOptions("latency") { Start = SubscriptionStart.End }, (e, _) =>
            {
                var micros = (DateTimeOffset.UtcNow.UtcTicks - e.Timestamp.UtcTicks) / 10;
                var n = Interlocked.Increment(ref handled);
                if (n > warmup) latency.RecordValue(Math.Max(0, micros * Stopwatch.Frequency / 1_000_000));
                if (n == events + warmup) done.TrySetResult();
                return ValueTask.CompletedTask;
            });
            await sub.StartAsync();
            using var memory = new MemorySampler();
            var sw = Stopwatch.StartNew();
            var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true };
            psi.ArgumentList.Add(typeof(PostgresScenarios).Assembly.Location);
            foreach (var a in new[] { "pg-latency-writer", options.ConnectionString, schema, (events + warmup).ToString(System.Globalization.CultureInfo.InvariantCulture), ratePerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture) })
                psi.ArgumentList.Add(a);
            using var writer = Process.Start(psi)!;
            var stderr = writer.StandardError.ReadToEndAsync();
            await writer.WaitForExitAsync();
            if (writer.ExitCode != 0) throw new InvalidOperationException($"the writer process failed: {await stderr}");
            await done.Task.WaitAsync(TimeSpan.FromMinutes(2));
            sw.Stop();
            memory.Dispose();
            var (p50, p99, max) = Latency.Summarize([latency]);
            var m = new Measurement("Factum (PostgreSQL): append in another process → subscription handler here", events, sw.Elapsed.TotalSeconds, events / sw.Elapsed.TotalSeconds, p50, p99, max, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);
            return new ScenarioResult("subscription-latency", Scenarios.Machine, DateTimeOffset.UtcNow,
                new Dictionary<string, object> { ["events"] = events, ["ratePerSecond"] = ratePerSecond, ["store"] = store.ToString(), ["processes"] = 2 },
                m, [], new Dictionary<string, double>(), [new Target("p99 < 10 ms across processes", p99 < 10)]);
        }
        finally
        {
            await DropSchemasAsync(options.ConnectionString, schema);
        }
    }

    /// <summary>The writer process of <see cref="SubscriptionLatency"/>: appends one event at a time at a steady rate.</summary>
    public static async Task LatencyWriter(string connectionString, string schema, long events, int ratePerSecond)
    {
        await using var store = await PostgresEventStore.OpenAsync(new PostgresEventStoreOptions(connectionString) { Schema = schema });
        var stream = StreamId.Parse("Latency-1");
        var interval = TimeSpan.FromSeconds(1.0 / ratePerSecond);
        var start = Stopwatch.GetTimestamp();
        for (long i = 0; i < events; i++)
        {
            var due = start + (long)(i * interval.TotalSeconds * Stopwatch.Frequency);
            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
            if (wait > TimeSpan.Zero) await Task.Delay(wait);
            await store.AppendAsync(stream, ExpectedVersion.Any, [new EventData("OrderPlaced", Payload)]);
        }
    }
}

/// <summary>The event the Marten baseline appends.</summary>
public sealed record MartenOrderPlaced(string OrderId, decimal Amount);
