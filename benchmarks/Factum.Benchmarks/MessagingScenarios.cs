using System.Diagnostics;
using System.Threading.Channels;
using Factum.Messaging;
using Factum.Sqlite;
using Microsoft.Data.Sqlite;

namespace Factum.Benchmarks;

[EventType("BenchOrderPlaced")]
public sealed record BenchEvent(long N, string OrderId);

[EventType("BenchCommand", Kind = MessageKind.Command)]
public sealed record BenchCommand(long N, string OrderId);

[EventType("BenchPing", Kind = MessageKind.Query)]
public sealed record BenchPing(long N);

public sealed record BenchPong(long N);

/// <summary>The messaging scenarios: pub/sub, queue, request-reply and stream, each with its baseline in the same run.</summary>
public static class MessagingScenarios
{
    private const int InFlight = 64;

    private static EventTypeRegistry Registry() => new EventTypeRegistry().RegisterAssembly(typeof(BenchEvent).Assembly);

    private static MessagingOptions Options(string service) => new()
    {
        ServiceName = service,
        PollInterval = TimeSpan.FromMilliseconds(20),
        HeartbeatInterval = TimeSpan.FromMilliseconds(200),
        SessionTimeout = TimeSpan.FromSeconds(5),
    };

    private static IMessageTransport Transport(bool durable, string dir) =>
        durable ? SqliteMessageTransport.Open(Path.Combine(dir, $"bus-{Guid.NewGuid():N}.db")) : new InMemoryTransport();

    /// <summary>Runs <paramref name="produce"/> for N messages with a window of <see cref="InFlight"/> outstanding calls (one pipelined producer).</summary>
    private static async Task Produce(long n, Func<long, Task> produce)
    {
        var window = new Task[InFlight];
        for (long i = 0; i < n; i++)
        {
            var slot = (int)(i % InFlight);
            if (window[slot] is { } previous) await previous;
            window[slot] = produce(i);
        }
        await Task.WhenAll(window.Where(t => t is not null));
    }

    private static async Task WaitFor(Func<bool> done, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (!done())
        {
            if (Stopwatch.GetTimestamp() > deadline) throw new TimeoutException("The benchmark did not finish in time.");
            await Task.Delay(1);
        }
    }

    private static Measurement Throughput(string name, long items, Stopwatch sw, MemorySampler memory) =>
        new(name, items, sw.Elapsed.TotalSeconds, items / sw.Elapsed.TotalSeconds, null, null, null, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);

    // ------------------------------------------------------------------ pub/sub

    public static async Task<ScenarioResult> PubSub(string dir, long messages, bool sqlite = true)
    {
        await PubSubRun(false, dir, Math.Min(messages / 10, 20_000)); // warm-up (JIT)
        var memory = await PubSubRun(false, dir, messages);
        var channel = await ChannelFanOut(messages, 3);
        var durableCount = Math.Min(messages, 100_000);
        var ratios = new Dictionary<string, double> { ["in-memory over Channel<T>"] = memory.EventsPerSecond / channel.EventsPerSecond };
        List<Measurement> baselines = [channel];
        if (sqlite)
        {
            var durable = await PubSubRun(true, dir, durableCount);
            var raw = RawSqliteFanOut(Path.Combine(dir, "raw-pubsub.db"), durableCount, 3);
            baselines.AddRange([durable, raw]);
            ratios["durable over raw SQLite"] = durable.EventsPerSecond / raw.EventsPerSecond;
        }
        return new ScenarioResult("pubsub", Scenarios.Machine, DateTimeOffset.UtcNow,
            new Dictionary<string, object> { ["messages"] = messages, ["durableMessages"] = sqlite ? durableCount : 0, ["groups"] = 3, ["publisherInFlight"] = InFlight },
            memory, baselines, ratios,
            [new Target("in-memory pub/sub ≥ 1,000,000 deliveries/s", memory.EventsPerSecond >= 1_000_000)]);
    }

    /// <summary>Publishes N events to 3 groups; counts deliveries (N × 3) per second, end to end.</summary>
    private static async Task<Measurement> PubSubRun(bool durable, string dir, long n)
    {
        var transport = Transport(durable, dir);
        var handled = 0L;
        var builder = new MessagingBuilder();
        foreach (var g in new[] { "billing", "shipping", "analytics" })
            builder.AddHandler<BenchEvent>((_, _, _) => { Interlocked.Increment(ref handled); return Task.CompletedTask; }, o => { o.Group = g; o.BatchSize = 256; o.Concurrency = 1; o.UseInbox = durable; });
        await using var consumers = new MessageBus(transport, Registry(), builder, Options("consumers"));
        await using var producer = new MessageBus(transport, Registry(), null, Options("producer"));
        await consumers.StartAsync();
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        await Produce(n, i => producer.PublishAsync(new BenchEvent(i, "ord-" + (i % 1000))));
        var published = sw.Elapsed;
        await WaitFor(() => Interlocked.Read(ref handled) >= n * 3, TimeSpan.FromMinutes(5));
        Console.Error.WriteLine($"   (publishing took {published.TotalSeconds:F2} s, gen0/1/2 GCs {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)})");
        sw.Stop();
        await consumers.StopAsync();
        await transport.DisposeAsync();
        return Throughput($"Factum pub/sub {(durable ? "SQLite (durable)" : "in-memory")}: deliveries", n * 3, sw, memory);
    }

    private static async Task<Measurement> ChannelFanOut(long n, int groups)
    {
        var channels = Enumerable.Range(0, groups).Select(_ => Channel.CreateBounded<BenchEvent>(new BoundedChannelOptions(4096) { SingleWriter = true, SingleReader = true })).ToArray();
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        var readers = channels.Select(c => Task.Run(async () =>
        {
            long count = 0;
            await foreach (var _ in c.Reader.ReadAllAsync()) count++;
            return count;
        })).ToArray();
        for (long i = 0; i < n; i++)
        {
            var e = new BenchEvent(i, "ord");
            foreach (var c in channels) await c.Writer.WriteAsync(e);
        }
        foreach (var c in channels) c.Writer.Complete();
        var total = (await Task.WhenAll(readers)).Sum();
        sw.Stop();
        return Throughput($"bare Channel<T> fan-out to {groups} readers", total, sw, memory);
    }

    /// <summary>The durable floor: each message as one row per group, written 64 per transaction, then each group reads and deletes its rows 256 at a time.</summary>
    private static Measurement RawSqliteFanOut(string path, long n, int groups)
    {
        using var c = Open(path);
        Exec(c, "CREATE TABLE q (seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, body BLOB NOT NULL); CREATE INDEX ix_q ON q(queue, seq);");
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        using var insert = Cmd(c, "INSERT INTO q(queue, body) VALUES ($q, $b)");
        var pq = insert.Parameters.Add("$q", SqliteType.Text);
        var pb = insert.Parameters.Add("$b", SqliteType.Blob);
        for (long i = 0; i < n; i += InFlight)
        {
            using var tx = c.BeginTransaction();
            insert.Transaction = tx;
            for (var j = i; j < Math.Min(n, i + InFlight); j++)
            {
                for (var g = 0; g < groups; g++)
                {
                    pq.Value = "g" + g;
                    pb.Value = Body;
                    insert.ExecuteNonQuery();
                }
            }
            tx.Commit();
        }
        long read = 0;
        for (var g = 0; g < groups; g++) read += DrainRaw(c, "g" + g, 256);
        sw.Stop();
        return Throughput($"raw SQLite rows (insert ×{groups}, read+delete)", read, sw, memory);
    }

    private static long DrainRaw(SqliteConnection c, string queue, int batch)
    {
        long read = 0;
        using var select = Cmd(c, "SELECT seq, body FROM q WHERE queue = $q ORDER BY seq LIMIT $n");
        select.Parameters.AddWithValue("$q", queue);
        select.Parameters.AddWithValue("$n", batch);
        using var delete = Cmd(c, "DELETE FROM q WHERE seq = $s");
        var ps = delete.Parameters.Add("$s", SqliteType.Integer);
        while (true)
        {
            var seqs = new List<long>();
            using (var tx = c.BeginTransaction())
            {
                select.Transaction = tx;
                using (var r = select.ExecuteReader()) while (r.Read()) { seqs.Add(r.GetInt64(0)); _ = r.GetFieldValue<byte[]>(1); }
                delete.Transaction = tx;
                foreach (var s in seqs) { ps.Value = s; delete.ExecuteNonQuery(); }
                tx.Commit();
            }
            if (seqs.Count == 0) return read;
            read += seqs.Count;
        }
    }

    // ------------------------------------------------------------------ queue

    public static async Task<ScenarioResult> Queue(string dir, long messages, bool sqlite = true)
    {
        if (!sqlite)
        {
            // The in-memory transport alone, against Channel<T>.
            await QueueRun(false, dir, Math.Min(messages / 10, 5_000));
            var inMemory = await QueueRun(false, dir, messages);
            var channels = await ChannelQueue(messages, 4);
            return new ScenarioResult("queue", Scenarios.Machine, DateTimeOffset.UtcNow,
                new Dictionary<string, object> { ["messages"] = messages, ["consumers"] = 4, ["producerInFlight"] = InFlight, ["transport"] = "memory:" },
                inMemory, [channels], new Dictionary<string, double> { ["in-memory over Channel<T>"] = inMemory.EventsPerSecond / channels.EventsPerSecond }, []);
        }
        await QueueRun(true, dir, Math.Min(messages / 10, 5_000));
        var durable = await QueueRun(true, dir, messages);
        var memory = await QueueRun(false, dir, messages);
        var durableMode = await QueueRun(true, dir, messages, EndpointMode.Durable);
        var raw = RawSqliteQueue(Path.Combine(dir, "raw-queue.db"), messages);
        var channel = await ChannelQueue(messages, 4);
        return new ScenarioResult("queue", Scenarios.Machine, DateTimeOffset.UtcNow,
            new Dictionary<string, object> { ["messages"] = messages, ["consumers"] = 4, ["producerInFlight"] = InFlight, ["durability"] = "synchronous=FULL, WAL; inbox on" },
            durable, [raw, durableMode, memory, channel],
            new Dictionary<string, double>
            {
                ["durable over raw SQLite"] = durable.EventsPerSecond / raw.EventsPerSecond,
                ["Durable endpoint mode over database queue"] = durableMode.EventsPerSecond / durable.EventsPerSecond,
                ["in-memory over Channel<T>"] = memory.EventsPerSecond / channel.EventsPerSecond,
            },
            [new Target("durable queue ≥ 20,000 messages/s end to end", durable.EventsPerSecond >= 20_000)]);
    }

    /// <summary>Sends N commands with 4 competing consumers (4 bus instances); end to end from the first send to the last ack.</summary>
    private static async Task<Measurement> QueueRun(bool durable, string dir, long n, EndpointMode mode = EndpointMode.DatabaseQueue)
    {
        var transport = Transport(durable, dir);
        var handled = 0L;
        var consumers = new List<MessageBus>();
        for (var c = 0; c < 4; c++)
        {
            var b = new MessagingBuilder().AddHandler<BenchCommand>((_, _, _) => { Interlocked.Increment(ref handled); return Task.CompletedTask; }, o => { o.BatchSize = 128; o.Mode = mode; });
            var options = Options($"worker{c}");
            if (mode == EndpointMode.Durable)
            {
                // The message store in the same file; the transport used as a plain one, so commit and ack are two writes.
                var store = ((SqliteMessageTransport)transport).Store;
                options = options with { MessageStore = new SqliteMessageStore(store), Leases = new SqliteLeaseStore(store) };
            }
            consumers.Add(new MessageBus(transport, Registry(), b, options));
        }
        await using var producer = new MessageBus(transport, Registry(), null, Options("producer"));
        foreach (var c in consumers) await c.StartAsync();
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        await Produce(n, i => producer.SendAsync(new BenchCommand(i, "ord-" + i)));
        await WaitFor(() => Interlocked.Read(ref handled) >= n, TimeSpan.FromMinutes(5));
        sw.Stop();
        foreach (var c in consumers) await c.DisposeAsync();
        await transport.DisposeAsync();
        return Throughput(mode == EndpointMode.Durable
            ? "Factum queue SQLite, Durable endpoint mode: send→handle→store commit→ack"
            : $"Factum queue {(durable ? "SQLite (durable)" : "in-memory")}: send→handle→ack", n, sw, memory);
    }

    /// <summary>The durable floor for a queue: insert 64 rows per transaction, then lease (update) and ack (delete) 128 at a time.</summary>
    private static Measurement RawSqliteQueue(string path, long n)
    {
        using var c = Open(path);
        Exec(c, "CREATE TABLE q (seq INTEGER PRIMARY KEY, visible_at INTEGER NOT NULL, lease TEXT, body BLOB NOT NULL); CREATE INDEX ix_q ON q(visible_at, seq);");
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        using var insert = Cmd(c, "INSERT INTO q(visible_at, body) VALUES (0, $b)");
        var pb = insert.Parameters.Add("$b", SqliteType.Blob);
        for (long i = 0; i < n; i += InFlight)
        {
            using var tx = c.BeginTransaction();
            insert.Transaction = tx;
            for (var j = i; j < Math.Min(n, i + InFlight); j++) { pb.Value = Body; insert.ExecuteNonQuery(); }
            tx.Commit();
        }
        long done = 0;
        using var select = Cmd(c, "SELECT seq, body FROM q WHERE visible_at <= 1 ORDER BY visible_at, seq LIMIT 128");
        using var lease = Cmd(c, "UPDATE q SET visible_at = 2, lease = 'x' WHERE seq = $s");
        var ls = lease.Parameters.Add("$s", SqliteType.Integer);
        using var delete = Cmd(c, "DELETE FROM q WHERE seq = $s");
        var ds = delete.Parameters.Add("$s", SqliteType.Integer);
        while (true)
        {
            var seqs = new List<long>();
            using (var tx = c.BeginTransaction())
            {
                select.Transaction = tx;
                lease.Transaction = tx;
                using (var r = select.ExecuteReader()) while (r.Read()) { seqs.Add(r.GetInt64(0)); _ = r.GetFieldValue<byte[]>(1); }
                foreach (var s in seqs) { ls.Value = s; lease.ExecuteNonQuery(); }
                tx.Commit();
            }
            if (seqs.Count == 0) break;
            using (var tx = c.BeginTransaction())
            {
                delete.Transaction = tx;
                foreach (var s in seqs) { ds.Value = s; delete.ExecuteNonQuery(); }
                tx.Commit();
            }
            done += seqs.Count;
        }
        sw.Stop();
        return Throughput("raw SQLite rows (insert, lease, delete)", done, sw, memory);
    }

    private static async Task<Measurement> ChannelQueue(long n, int consumers)
    {
        var channel = Channel.CreateBounded<BenchCommand>(new BoundedChannelOptions(4096) { SingleWriter = true });
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        var readers = Enumerable.Range(0, consumers).Select(_ => Task.Run(async () =>
        {
            long count = 0;
            await foreach (var _ in channel.Reader.ReadAllAsync()) count++;
            return count;
        })).ToArray();
        for (long i = 0; i < n; i++) await channel.Writer.WriteAsync(new BenchCommand(i, "ord"));
        channel.Writer.Complete();
        var total = (await Task.WhenAll(readers)).Sum();
        sw.Stop();
        return Throughput($"bare Channel<T>, {consumers} competing readers", total, sw, memory);
    }

    // ------------------------------------------------------------------ request-reply

    public static async Task<ScenarioResult> RequestReply(string dir, long requests, bool sqlite = true)
    {
        await RequestReplyRun(false, dir, Math.Min(requests / 5, 2_000));
        var memory = await RequestReplyRun(false, dir, requests);
        List<Measurement> baselines = sqlite ? [await RequestReplyRun(true, dir, Math.Min(requests, 2_000))] : [];
        var channel = await ChannelPingPong(requests);
        baselines.Add(channel);
        return new ScenarioResult("request-reply", Scenarios.Machine, DateTimeOffset.UtcNow,
            new Dictionary<string, object> { ["requests"] = requests, ["durableRequests"] = sqlite ? Math.Min(requests, 2_000) : 0, ["concurrency"] = 1 },
            memory, baselines,
            new Dictionary<string, double> { ["in-memory p99 over Channel<T> p99"] = memory.P99Ms!.Value / channel.P99Ms!.Value },
            [new Target("request-reply p99 < 5 ms in process", memory.P99Ms < 5)]);
    }

    private static async Task<Measurement> RequestReplyRun(bool durable, string dir, long n)
    {
        var transport = Transport(durable, dir);
        var responder = new MessagingBuilder().AddRequestHandler<BenchPing, BenchPong>((p, _, _) => Task.FromResult(new BenchPong(p.N)));
        await using var server = new MessageBus(transport, Registry(), responder, Options("server"));
        await using var client = new MessageBus(transport, Registry(), null, Options("client"));
        await server.StartAsync();
        var h = Latency.NewHistogram();
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        for (long i = 0; i < n; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            var pong = await client.RequestAsync<BenchPing, BenchPong>(new BenchPing(i));
            h.RecordValue(Stopwatch.GetTimestamp() - t0);
            if (pong.N != i) throw new InvalidOperationException("A reply did not match its request.");
        }
        sw.Stop();
        await server.StopAsync();
        await transport.DisposeAsync();
        var (p50, p99, max) = Latency.Summarize([h]);
        return new Measurement($"Factum request-reply {(durable ? "SQLite (durable request)" : "in-memory")}", n, sw.Elapsed.TotalSeconds, n / sw.Elapsed.TotalSeconds, p50, p99, max, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);
    }

    private static async Task<Measurement> ChannelPingPong(long n)
    {
        var requests = Channel.CreateUnbounded<(long N, TaskCompletionSource<long> Reply)>();
        var server = Task.Run(async () =>
        {
            await foreach (var (v, reply) in requests.Reader.ReadAllAsync()) reply.SetResult(v);
        });
        var h = Latency.NewHistogram();
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        for (long i = 0; i < n; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            var tcs = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            await requests.Writer.WriteAsync((i, tcs));
            await tcs.Task;
            h.RecordValue(Stopwatch.GetTimestamp() - t0);
        }
        sw.Stop();
        requests.Writer.Complete();
        await server;
        var (p50, p99, max) = Latency.Summarize([h]);
        return new Measurement("bare Channel<T> + TaskCompletionSource round trip", n, sw.Elapsed.TotalSeconds, n / sw.Elapsed.TotalSeconds, p50, p99, max, memory.PeakManaged, memory.PeakWorkingSet, memory.StartManaged);
    }

    // ------------------------------------------------------------------ stream

    public static async Task<ScenarioResult> Stream(string dir, long messages, bool sqlite = true)
    {
        if (!sqlite)
        {
            // The in-memory transport alone: there is no in-process baseline for a partitioned log with a group.
            await StreamRun(false, dir, Math.Min(messages / 10, 5_000));
            var inMemory = await StreamRun(false, dir, messages);
            return new ScenarioResult("stream", Scenarios.Machine, DateTimeOffset.UtcNow,
                new Dictionary<string, object> { ["messages"] = messages, ["partitions"] = 8, ["groupMembers"] = 4, ["keys"] = 1000, ["producerInFlight"] = InFlight, ["transport"] = "memory:" },
                inMemory, [], new Dictionary<string, double>(), []);
        }
        await StreamRun(true, dir, Math.Min(messages / 10, 5_000));
        var durable = await StreamRun(true, dir, messages);
        var memory = await StreamRun(false, dir, messages);
        var raw = RawSqliteLog(Path.Combine(dir, "raw-log.db"), messages, 8);
        return new ScenarioResult("stream", Scenarios.Machine, DateTimeOffset.UtcNow,
            new Dictionary<string, object> { ["messages"] = messages, ["partitions"] = 8, ["groupMembers"] = 4, ["keys"] = 1000, ["producerInFlight"] = InFlight },
            durable, [raw, memory],
            new Dictionary<string, double> { ["durable over raw SQLite"] = durable.EventsPerSecond / raw.EventsPerSecond },
            []);
    }

    /// <summary>Publishes N keyed events to an 8-partition stream consumed by a group of 4 members; end to end, order per key checked.</summary>
    private static async Task<Measurement> StreamRun(bool durable, string dir, long n)
    {
        var transport = Transport(durable, dir);
        var handled = 0L;
        var last = new long[1000];
        Array.Fill(last, -1);
        var outOfOrder = 0L;
        var members = new List<MessageBus>();
        for (var m = 0; m < 4; m++)
        {
            var b = new MessagingBuilder().AddStream<BenchEvent>(8).PartitionBy<BenchEvent>(e => e.OrderId)
                .AddHandler<BenchEvent>((e, _, _) =>
                {
                    var k = (int)(e.N % 1000);
                    if (Interlocked.Exchange(ref last[k], e.N) > e.N) Interlocked.Increment(ref outOfOrder);
                    Interlocked.Increment(ref handled);
                    return Task.CompletedTask;
                }, o => { o.FromStream = true; o.Group = "analytics"; o.BatchSize = 256; o.Concurrency = 2; o.UseInbox = durable; });
            members.Add(new MessageBus(transport, Registry(), b, Options($"member{m}")));
        }
        await using var producer = new MessageBus(transport, Registry(), new MessagingBuilder().AddStream<BenchEvent>(8).PartitionBy<BenchEvent>(e => e.OrderId), Options("producer"));
        await producer.StartAsync();
        foreach (var m in members) await m.StartAsync();
        // Let the group settle so that all four members own partitions before measuring.
        var settle = Stopwatch.StartNew();
        while (settle.Elapsed < TimeSpan.FromSeconds(10) && (await transport.GetStatusAsync()).Groups.SingleOrDefault()?.Members.Count(x => x.Partitions.Count > 0) != 4) await Task.Delay(50);
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        await Produce(n, i => producer.PublishAsync(new BenchEvent(i, "ord-" + (i % 1000))));
        await WaitFor(() => Interlocked.Read(ref handled) >= n, TimeSpan.FromMinutes(5));
        sw.Stop();
        foreach (var m in members) await m.DisposeAsync();
        await transport.DisposeAsync();
        if (outOfOrder > 0) throw new InvalidOperationException($"{outOfOrder} records were handled out of key order.");
        return Throughput($"Factum stream {(durable ? "SQLite (durable)" : "in-memory")}: 8 partitions, group of 4", n, sw, memory);
    }

    /// <summary>The durable floor for a partitioned log: append 64 rows per transaction, then read each partition in order.</summary>
    private static Measurement RawSqliteLog(string path, long n, int partitions)
    {
        using var c = Open(path);
        Exec(c, "CREATE TABLE log (partition INTEGER NOT NULL, offset INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (partition, offset)) WITHOUT ROWID;");
        using var memory = new MemorySampler();
        var sw = Stopwatch.StartNew();
        using var insert = Cmd(c, "INSERT INTO log VALUES ($p, $o, $b)");
        var pp = insert.Parameters.Add("$p", SqliteType.Integer);
        var po = insert.Parameters.Add("$o", SqliteType.Integer);
        var pb = insert.Parameters.Add("$b", SqliteType.Blob);
        var offsets = new long[partitions];
        for (long i = 0; i < n; i += InFlight)
        {
            using var tx = c.BeginTransaction();
            insert.Transaction = tx;
            for (var j = i; j < Math.Min(n, i + InFlight); j++)
            {
                var p = KeyPartitioner.For("ord-" + (j % 1000), partitions);
                pp.Value = p;
                po.Value = offsets[p]++;
                pb.Value = Body;
                insert.ExecuteNonQuery();
            }
            tx.Commit();
        }
        long read = 0;
        using var select = Cmd(c, "SELECT offset, body FROM log WHERE partition = $p ORDER BY offset");
        var sp = select.Parameters.Add("$p", SqliteType.Integer);
        for (var p = 0; p < partitions; p++)
        {
            sp.Value = p;
            using var r = select.ExecuteReader();
            while (r.Read()) { _ = r.GetFieldValue<byte[]>(1); read++; }
        }
        sw.Stop();
        return Throughput("raw SQLite rows (append 64/tx, read per partition)", read, sw, memory);
    }

    // ------------------------------------------------------------------ helpers

    private static readonly byte[] Body = System.Text.Encoding.UTF8.GetBytes("""{"n":123456,"orderId":"ord-123"}""");

    private static SqliteConnection Open(string path)
    {
        var c = new SqliteConnection($"Data Source={path};Pooling=False");
        c.Open();
        Exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
        return c;
    }

    private static void Exec(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static SqliteCommand Cmd(SqliteConnection c, string sql)
    {
        var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return cmd;
    }
}
