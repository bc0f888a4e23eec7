using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Factum.Messaging;
using Factum.Sqlite;

namespace Factum.Cli.Tests;

/// <summary>
/// Two real processes on one store file run the same job (a projection, the outbox relay): one owns it, the other stands
/// by. The owner is killed with SIGKILL mid-way; the standby takes over when the lease lapses, and the result is exactly
/// that of one process: every event applied once to the read model, every event published with per-stream order kept.
/// </summary>
public sealed class TakeoverTests : IDisposable
{
    private readonly TempDataDir _dir = new();
    private readonly List<Process> _processes = [];

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            try { if (!p.HasExited) p.Kill(); } catch (InvalidOperationException) { }
            p.Dispose();
        }
        _dir.Dispose();
    }

    private Task<CliResult> F(params string[] args) => FactumCli.Run(_dir.Path, args);

    private static JsonElement Json(string line) => JsonDocument.Parse(line).RootElement.Clone();

    private sealed record Line(string Json);

    private static string Text(IEnumerable<Line> lines) => string.Concat(lines.Select(l => l.Json + "\n"));

    /// <summary>A running factum process whose output lines (stdout and stderr) are collected as they come.</summary>
    private sealed class Running(Process process)
    {
        public Process Process { get; } = process;

        public ConcurrentQueue<string> Lines { get; } = new();

        public async Task<string> WaitForLine(string contains, TimeSpan within)
        {
            var watch = Stopwatch.StartNew();
            while (watch.Elapsed < within)
            {
                if (Lines.FirstOrDefault(l => l.Contains(contains, StringComparison.Ordinal)) is { } line) return line;
                if (Process.HasExited) break;
                await Task.Delay(10);
            }
            throw new TimeoutException($"no line containing '{contains}' within {within} (exited: {Process.HasExited}); got:\n{string.Join('\n', Lines)}");
        }
    }

    private Running Start(params string[] args) => Launch(FactumCli.StartInfo(_dir.Path, args));

    /// <summary>Starts a process with no input, collecting its output lines; it is killed at the end of the test.</summary>
    private Running Launch(ProcessStartInfo psi, bool keepInput = false)
    {
        var p = Process.Start(psi)!;
        _processes.Add(p);
        if (!keepInput) p.StandardInput.Close();
        var running = new Running(p);
        _ = Task.Run(async () => { while (await p.StandardOutput.ReadLineAsync() is { } l) running.Lines.Enqueue(l); });
        _ = Task.Run(async () => { while (await p.StandardError.ReadLineAsync() is { } l) running.Lines.Enqueue(l); });
        return running;
    }

    /// <summary>
    /// Imports <paramref name="lines"/> fed in chunks 20 ms apart, so the jobs under test follow them live and a kill as
    /// soon as the owner has made progress lands while events are still arriving; returns the exit code.
    /// </summary>
    private async Task<int> StreamImport(IEnumerable<string> lines, int chunk)
    {
        var p = Launch(FactumCli.StartInfo(_dir.Path, "import"), keepInput: true).Process;
        var psiInput = p.StandardInput;
        foreach (var part in lines.Chunk(chunk))
        {
            await psiInput.WriteAsync(string.Join('\n', part) + "\n");
            await psiInput.FlushAsync();
            await Task.Delay(20);
        }
        psiInput.Close();
        await p.WaitForExitAsync();
        return p.ExitCode;
    }

    private static async Task Kill(Running r)
    {
        r.Process.Kill(); // SIGKILL: no release of the lease, no last checkpoint
        await r.Process.WaitForExitAsync();
    }

    private long Scalar(string sql)
    {
        using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_dir.Db};Pooling=False;Mode=ReadOnly");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar() is long v ? v : 0;
    }

    private static async Task Until(Func<bool> condition, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(watch.Elapsed < TimeSpan.FromMinutes(1), $"timed out waiting until {what}");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task A_standby_projection_runner_takes_over_from_a_killed_owner_and_the_read_model_counts_every_event_once()
    {
        const int payments = 40_000;
        Line[] Payments(int from, int count) => [.. Enumerable.Range(from, count).Select(i => new Line($$$"""{"stream":"Payment-{{{i % 100}}}","type":"PaymentCaptured","data":{"paymentId":"p{{{i}}}","orderId":"o{{{i}}}","amount":1}}"""))];
        Assert.Equal(0, (await FactumCli.RunWithInput(_dir.Path, Text(Payments(0, 1)), "import")).ExitCode);

        var owner = Start("projections", "run", "revenue-per-day", "--follow", "--lease", "1s");
        await owner.WaitForLine("revenue-per-day: position 1 of 1", TimeSpan.FromMinutes(1));
        var standby = Start("projections", "run", "revenue-per-day", "--follow", "--lease", "1s");
        await standby.WaitForLine("standing by", TimeSpan.FromMinutes(1));

        // The events stream in while both run; the owner is killed part-way, and the standby goes on from the owner's
        // last committed batch.
        var import = StreamImport(Payments(1, payments - 1).Select(l => l.Json), chunk: 1_000);
        long atKill = 0;
        await Until(() => (atKill = Scalar("SELECT position FROM projections WHERE name = 'revenue-per-day'")) > 1, "the owner applied a batch");
        await Kill(owner);
        Assert.Equal(0, await import);
        Assert.True(atKill < payments, $"the owner had caught up ({atKill}) before the kill; the test proves nothing");

        await Until(() => Scalar("SELECT position FROM projections WHERE name = 'revenue-per-day'") == payments, "the standby caught up");
        var lease = Json((await F("projections", "status", "revenue-per-day", "--json")).Lines[0]);
        Assert.Equal(0, lease.GetProperty("lag").GetInt64());
        await Kill(standby);

        var days = (await F("projections", "query", "revenue-per-day", "--json")).Lines.Select(Json).ToList();
        // A running total: a batch applied by both processes, or lost between them, would show here.
        Assert.Equal(payments, days.Sum(d => d.GetProperty("document").GetProperty("payments").GetInt32()));
        Assert.Equal(payments, days.Sum(d => d.GetProperty("document").GetProperty("revenue").GetDecimal()));
        Assert.Equal(0, (await F("verify")).ExitCode);
    }

    [Fact]
    public async Task A_standby_relay_takes_over_from_a_killed_owner_and_every_event_is_published_in_stream_order()
    {
        await using (var t = SqliteMessageTransport.Open(_dir.Db)) await t.SubscribeAsync("TakeoverTested", "audit");
        var owner = Start("relay", "--lease", "1s");
        await owner.WaitForLine("relaying from position", TimeSpan.FromMinutes(1));
        var standby = Start("relay", "--lease", "1s");
        await standby.WaitForLine("standing by", TimeSpan.FromMinutes(1));

        const int events = 6_000;
        var lines = Enumerable.Range(0, events).Select(i => $$$"""{"stream":"T-{{{i % 50}}}","type":"TakeoverTested","data":{"n":{{{i}}}}}""");
        var import = StreamImport(lines, chunk: 100);
        long atKill = 0;
        await Until(() => (atKill = Scalar("SELECT position FROM checkpoints WHERE subscription_id = 'outbox'")) > 0, "the owner relayed a batch");
        await Kill(owner);
        Assert.Equal(0, await import);
        Assert.True(atKill < events, $"the owner had relayed everything ({atKill}) before the kill; the test proves nothing");

        await standby.WaitForLine("relaying from position", TimeSpan.FromMinutes(1));
        await Until(() => Scalar("SELECT position FROM checkpoints WHERE subscription_id = 'outbox'") == events, "the standby relayed everything");
        await Kill(standby);

        var stored = (await F("read-all", "--json", "--type", "TakeoverTested")).Lines.Select(Json)
            .Select(e => (Id: e.GetProperty("eventId").GetString()!, Stream: e.GetProperty("streamId").GetString()!)).ToList();
        Assert.Equal(events, stored.Count);
        await using var check = SqliteMessageTransport.Open(_dir.Db);
        var received = new List<(string Id, string Stream)>();
        while (true)
        {
            var ds = await check.ReceiveAsync(QueueName.ForGroup("TakeoverTested", "audit"), "t", 500, TimeSpan.FromMinutes(5));
            if (ds.Count == 0) break;
            received.AddRange(ds.Select(d => (d.Message.Id.ToString(), d.Message.PartitionKey!)));
            await check.SettleAsync(ds.Select(d => new Settlement { Kind = SettlementKind.Ack, Delivery = d, Source = new MessageSource(MessageSourceKind.Subscription, "TakeoverTested", "audit") }).ToList());
        }
        // Exactly as one relay: every event published (the inbox drops the at most one batch published twice) ...
        var distinct = received.Select(r => r.Id).Distinct().ToList();
        Assert.Equal(stored.Select(s => s.Id).Order(), distinct.Order());
        Assert.True(received.Count - distinct.Count <= 512, $"duplicates are bounded by the batch the owner was killed in ({received.Count - distinct.Count})");
        // ... and each stream's events reach the consumer in the order they were stored.
        foreach (var stream in stored.GroupBy(s => s.Stream))
        {
            var firstSeen = received.Where(r => r.Stream == stream.Key).Select(r => r.Id).Distinct();
            Assert.Equal(stream.Select(s => s.Id), firstSeen);
        }
    }

    private static string TestHostDll
    {
        get
        {
            var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
            var dll = Path.Combine(FactumCli.RepoRoot, "tests", "Factum.TestHost", "bin", configuration, "net10.0", "Factum.TestHost.dll");
            return File.Exists(dll) ? dll : throw new InvalidOperationException($"Build the test host first: {dll} does not exist.");
        }
    }

    private Running StartMember(string name) => StartHost("stream-member", _dir.Db, name);

    private Running StartHost(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(TestHostDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_NOLOGO"] = "1";
        return Launch(psi);
    }

    /// <summary>
    /// The store x transport crash: a Durable consumer (SQLite message store, the SQLite transport used as a plain
    /// transport, so the store commit and the transport ack are two transactions) is killed with SIGKILL after it
    /// committed a message's effects and outgoing event and before it acknowledged the delivery. Its successor gets the
    /// message again, the inbox drops it, and every payment and every ledger entry exists exactly once.
    /// </summary>
    [Fact]
    public async Task A_durable_consumer_killed_between_its_store_commit_and_its_transport_ack_leaves_every_effect_exactly_once()
    {
        const int orders = 200;
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_dir.Db};Pooling=False"))
        {
            await using (var store = new SqliteEventStore(_dir.Db)) { } // Creates the schema first.
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = """
                CREATE TABLE effects(seq INTEGER PRIMARY KEY, order_id TEXT NOT NULL, member TEXT NOT NULL);
                CREATE TABLE ledger(seq INTEGER PRIMARY KEY, order_id TEXT NOT NULL, member TEXT NOT NULL);
                """;
            cmd.ExecuteNonQuery();
        }
        await using (var producer = SqliteMessageTransport.Open(_dir.Db))
        {
            var pays = Enumerable.Range(0, orders).Select(i => new TransportMessage
            {
                Id = MessageId.New(),
                Type = "Pay",
                Timestamp = DateTimeOffset.UtcNow,
                CorrelationId = $"order-{i}",
                Body = System.Text.Encoding.UTF8.GetBytes($$"""{"orderId":"o-{{i}}"}"""),
            }).ToList();
            await producer.SendAsync(QueueName.Parse("Pay"), pays);
        }

        var a = StartHost("durable-consumer", _dir.Db, "a", "50");
        var held = (await a.WaitForLine("committed-not-acked", TimeSpan.FromMinutes(1))).Split(' ')[1];
        await Kill(a);
        var handledByA = Scalar("SELECT COUNT(*) FROM effects WHERE member = 'a'");
        Assert.True(handledByA >= 50 && handledByA < orders, $"a handled {handledByA} orders before the kill");
        // The kill landed in the window: the held message's effects are committed, its delivery is not acknowledged.
        Assert.Equal(1, Scalar($"SELECT COUNT(*) FROM msg_queue WHERE queue = 'Pay' AND message_id = X'{Convert.ToHexString(Guid.Parse(held).ToByteArray())}'"));
        Assert.Equal(1, Scalar($"SELECT COUNT(*) FROM msg_inbox WHERE inbox = 'Pay' AND message_id = X'{Convert.ToHexString(Guid.Parse(held).ToByteArray())}'"));

        var b = StartHost("durable-consumer", _dir.Db, "b");
        await Until(() => Scalar("SELECT COUNT(DISTINCT order_id) FROM ledger") == orders && Scalar("SELECT COUNT(*) FROM msg_queue") == 0 && Scalar("SELECT COUNT(*) FROM msg_outbox") == 0,
            "b handled the rest, redelivered the held message and dispatched every Paid");
        await Task.Delay(500); // A late duplicate would land now.
        await Kill(b);

        // b got the held message again (the lease lapsed with a) and the inbox dropped it: nothing took effect twice.
        Assert.Contains(b.Lines, l => l == $"delivered {held} attempt 2");
        Assert.Equal(orders, Scalar("SELECT COUNT(*) FROM effects"));
        Assert.Equal(orders, Scalar("SELECT COUNT(DISTINCT order_id) FROM effects"));
        Assert.Equal(orders, Scalar("SELECT COUNT(*) FROM ledger"));
        Assert.True(Scalar("SELECT COUNT(*) FROM effects WHERE member = 'b'") > 0, "b went on after a");
    }

    [Fact]
    public async Task A_stream_group_member_killed_mid_stream_has_its_partitions_taken_over_and_every_record_takes_effect_once_in_key_order()
    {
        const int records = 3_000;
        await using (var t = SqliteMessageTransport.Open(_dir.Db)) await t.DeclareTopicAsync("Ticked", new TopicOptions { Partitions = 4 });
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_dir.Db};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "CREATE TABLE effects(seq INTEGER PRIMARY KEY, n INTEGER NOT NULL, key TEXT NOT NULL, member TEXT NOT NULL)";
            cmd.ExecuteNonQuery();
        }
        var a = StartMember("a");
        await a.WaitForLine("member a started", TimeSpan.FromMinutes(1));
        var b = StartMember("b");
        await b.WaitForLine("member b started", TimeSpan.FromMinutes(1));
        await Until(() => Scalar("SELECT COUNT(DISTINCT owner) FROM msg_group_offsets WHERE topic = 'Ticked' AND grp = 'g'") == 2, "both members own partitions");

        // The records stream in while both consume; a is killed part-way, and b takes its partitions after the session timeout.
        var publishing = Task.Run(async () =>
        {
            await using var producer = SqliteMessageTransport.Open(_dir.Db);
            for (var n = 0; n < records; n += 100)
            {
                var batch = Enumerable.Range(n, 100).Select(i => new TransportMessage
                {
                    Id = MessageId.New(),
                    Type = "Ticked",
                    Timestamp = DateTimeOffset.UtcNow,
                    CorrelationId = "takeover",
                    PartitionKey = $"k{i % 40}",
                    Body = System.Text.Encoding.UTF8.GetBytes($$"""{"key":"k{{i % 40}}","n":{{i}}}"""),
                }).ToList();
                await producer.PublishAsync(new TopicName("Ticked"), batch);
                await Task.Delay(20);
            }
        });
        await Until(() => Scalar("SELECT COUNT(*) FROM effects WHERE member = 'a'") > 50 && Scalar("SELECT COUNT(*) FROM effects WHERE member = 'b'") > 50, "both members handled records");
        await Kill(a);
        var atKill = Scalar("SELECT COUNT(*) FROM effects");
        await publishing;
        Assert.True(atKill < records, $"everything was handled before the kill ({atKill}); the test proves nothing");
        await Until(() => Scalar("SELECT COUNT(DISTINCT n) FROM effects") == records, "the survivor handled the rest");
        await Task.Delay(500); // a late duplicate would land now
        await Kill(b);

        // Exactly as one consumer: every record took effect once (an effect commits with its offset, so the killed
        // member's uncommitted batch is redone by b, never applied twice) ...
        Assert.Equal(records, Scalar("SELECT COUNT(*) FROM effects"));
        Assert.True(Scalar("SELECT COUNT(*) FROM effects WHERE member = 'b' AND n > (SELECT MAX(n) FROM effects WHERE member = 'a')") > 0, "b went on after a");
        // ... and each key's records took effect in the order they were published.
        using var check = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_dir.Db};Pooling=False;Mode=ReadOnly");
        check.Open();
        using var q = check.CreateCommand();
        q.CommandText = "SELECT key, n FROM effects ORDER BY seq";
        var byKey = new Dictionary<string, List<long>>();
        using (var r = q.ExecuteReader())
            while (r.Read()) (byKey.TryGetValue(r.GetString(0), out var l) ? l : byKey[r.GetString(0)] = []).Add(r.GetInt64(1));
        Assert.Equal(40, byKey.Count);
        foreach (var (key, ns) in byKey) Assert.True(ns.Order().SequenceEqual(ns), $"{key}: {string.Join(",", ns)}");
    }
}
