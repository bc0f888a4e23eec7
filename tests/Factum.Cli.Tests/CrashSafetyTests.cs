using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Factum.Sqlite;

namespace Factum.Cli.Tests;

/// <summary>
/// Kills `factum import` with SIGKILL at a random moment while it ingests, then checks that every acknowledged event
/// survived with its version and position, that no batch is half-written, and that the file verifies and accepts more
/// appends at the right versions. FACTUM_CRASH_KILLS sets the number of kills (scripts/crash-soak.sh runs hundreds).
/// </summary>
public sealed class CrashSafetyTests : IDisposable
{
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private sealed record Sent(long Line, string Stream, Guid[] Ids);

    private sealed record Ack(long Line, string Stream, long Version, long Position);

    [Fact]
    public async Task Every_acknowledged_import_survives_sigkill_and_no_batch_is_half_written()
    {
        var kills = int.TryParse(Environment.GetEnvironmentVariable("FACTUM_CRASH_KILLS"), out var k) ? k : 5;
        var random = new Random(Environment.GetEnvironmentVariable("FACTUM_CRASH_SEED") is { } s ? int.Parse(s) : Environment.TickCount);
        var totalAcks = 0;
        for (var round = 0; round < kills; round++)
        {
            var (sent, acks) = await RunAndKill(round, random.Next(100, 700));
            totalAcks += acks.Count;
            // Each round writes to its own streams, so checking them is enough; the whole file is verified every
            // 25 rounds and after the last in a long soak (after every round in a short run), which keeps a soak of
            // hundreds of kills linear in time.
            await CheckStore(sent, acks, fullVerify: kills <= 10 || round % 25 == 24 || round == kills - 1);
        }
        Assert.True(totalAcks > 0);
    }

    private async Task<(List<Sent> Sent, List<Ack> Acks)> RunAndKill(int round, int killAfterMs)
    {
        var sent = new ConcurrentDictionary<long, Sent>();
        var acks = new ConcurrentBag<Ack>();
        using var p = Process.Start(FactumCli.StartInfo(_dir.Path, "import"))!;
        var firstAck = new TaskCompletionSource();
        var reader = Task.Run(async () =>
        {
            string? torn = null;
            while (await p.StandardOutput.ReadLineAsync() is { } line)
            {
                // Only a complete line is an acknowledgement: the kill may cut the last one short.
                Assert.True(torn is null, $"a malformed line was followed by more output: {torn}");
                JsonDocument doc;
                try { doc = JsonDocument.Parse(line); }
                catch (JsonException) { torn = line; continue; }
                using var _ = doc;
                var r = doc.RootElement;
                Assert.False(r.TryGetProperty("error", out var err), $"import reported an error: {err}");
                acks.Add(new Ack(r.GetProperty("line").GetInt64(), r.GetProperty("streamId").GetString()!, r.GetProperty("streamVersion").GetInt64(), r.GetProperty("position").GetInt64()));
                firstAck.TrySetResult();
            }
        });
        var feeder = Task.Run(async () =>
        {
            try
            {
                for (long line = 1; ; line++)
                {
                    var stream = $"Crash-{round}-{line % 7}";
                    string text;
                    if (line % 5 == 0)
                    {
                        var ids = new[] { Guid.CreateVersion7(), Guid.CreateVersion7(), Guid.CreateVersion7() };
                        sent[line] = new Sent(line, stream, ids);
                        text = $$"""{"stream":"{{stream}}","events":[{{string.Join(",", ids.Select(id => $$"""{"type":"BatchPartWritten","data":{"line":{{line}}},"eventId":"{{id}}"}"""))}}]}""";
                    }
                    else
                    {
                        var id = Guid.CreateVersion7();
                        sent[line] = new Sent(line, stream, [id]);
                        text = $$"""{"stream":"{{stream}}","type":"ThingHappened","data":{"line":{{line}}},"eventId":"{{id}}"}""";
                    }
                    await p.StandardInput.WriteLineAsync(text);
                    if (line % 64 == 0) await p.StandardInput.FlushAsync();
                }
            }
            catch (IOException) { /* the child is gone */ }
        });
        await firstAck.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await Task.Delay(killAfterMs);
        p.Kill(); // SIGKILL on Unix: no chance to flush or clean up.
        await p.WaitForExitAsync();
        await feeder;
        await reader;
        return (sent.Values.OrderBy(x => x.Line).ToList(), acks.OrderBy(a => a.Line).ToList());
    }

    private async Task CheckStore(List<Sent> sent, List<Ack> acks, bool fullVerify)
    {
        if (fullVerify)
        {
            var report = SqliteStoreVerifier.Verify(_dir.Db);
            Assert.True(report.IsHealthy, string.Join("; ", report.Problems));
        }
        await using var store = new SqliteEventStore(_dir.Db);
        var byId = new Dictionary<Guid, RecordedEvent>();
        foreach (var stream in sent.Select(s => s.Stream).Distinct())
        {
            try
            {
                await foreach (var e in store.ReadStreamAsync(StreamId.Parse(stream))) byId[e.EventId.Value] = e;
            }
            catch (StreamNotFoundException) { /* nothing of this stream was written before the kill */ }
        }

        var sentByKey = sent.ToDictionary(s => (s.Stream, s.Line));
        foreach (var ack in acks)
        {
            var s = sentByKey[(ack.Stream, ack.Line)];
            var last = byId.GetValueOrDefault(s.Ids[^1]);
            Assert.True(last is not null, $"acknowledged line {ack.Line} ({ack.Stream}) is missing after the crash");
            Assert.Equal(ack.Version, last!.StreamVersion.Value);
            Assert.Equal(ack.Position, last.Position.Value);
        }
        foreach (var s in sent.Where(s => s.Ids.Length > 1))
        {
            var present = s.Ids.Count(byId.ContainsKey);
            Assert.True(present == 0 || present == s.Ids.Length, $"batch on line {s.Line} is half-written: {present} of {s.Ids.Length} events");
            if (present == s.Ids.Length)
            {
                var versions = s.Ids.Select(id => byId[id].StreamVersion.Value).ToArray();
                Assert.Equal(versions[0] + 2, versions[2]);
            }
        }
        // Appends continue from the right versions.
        foreach (var stream in sent.Select(s => s.Stream).Distinct())
        {
            var info = await store.GetStreamInfoAsync(StreamId.Parse(stream));
            if (info.LastVersion is not { } v) continue;
            var r = await store.AppendAsync(info.StreamId, ExpectedVersion.Exactly(v), [EventData.FromJson("RecoveryChecked", "{}")]);
            Assert.Equal(v.Value + 1, r.NextExpectedVersion!.Value.Value);
        }
    }
}

/// <summary>Several processes opening the same file: SQLite's lock serializes them and the rules still hold.</summary>
public sealed class MultiProcessTests : IDisposable
{
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Two_processes_appending_with_the_same_expected_version_never_both_win()
    {
        const int rounds = 10;
        for (var v = 0; v < rounds; v++)
        {
            var expected = v == 0 ? "no-stream" : (v - 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
            var a = FactumCli.Run(_dir.Path, "append", "--stream", "Race-1", "--type", "RaceWon", "--data", """{"by":"a"}""", "--expected", expected);
            var b = FactumCli.Run(_dir.Path, "append", "--stream", "Race-1", "--type", "RaceWon", "--data", """{"by":"b"}""", "--expected", expected);
            var results = await Task.WhenAll(a, b);
            Assert.Equal([0, 3], results.Select(r => r.ExitCode).Order());
        }
        var read = await FactumCli.Run(_dir.Path, "read", "--stream", "Race-1", "--json");
        Assert.Equal(rounds, read.Lines.Length);
    }

    [Fact]
    public async Task Two_processes_importing_into_the_same_streams_keep_versions_and_positions_contiguous()
    {
        static string Lines(string who) => string.Concat(Enumerable.Range(0, 2000).Select(i => $$$"""{"stream":"Shared-{{{i % 10}}}","type":"ThingHappened","data":{"who":"{{{who}}}","i":{{{i}}}}}""" + "\n"));
        var results = await Task.WhenAll(FactumCli.RunWithInput(_dir.Path, Lines("a"), "import"), FactumCli.RunWithInput(_dir.Path, Lines("b"), "import"));
        Assert.All(results, r => Assert.Equal(0, r.ExitCode));
        Assert.True(SqliteStoreVerifier.Verify(_dir.Db).IsHealthy);
        await using var store = new SqliteEventStore(_dir.Db);
        var all = new List<RecordedEvent>();
        await foreach (var e in store.ReadAllAsync()) all.Add(e);
        Assert.Equal(4000, all.Count);
        Assert.Equal(Enumerable.Range(1, 4000).Select(i => (long)i), all.Select(e => e.Position.Value));
        foreach (var g in all.GroupBy(e => e.StreamId))
            Assert.Equal(Enumerable.Range(0, 400).Select(i => (long)i), g.Select(e => e.StreamVersion.Value));
        // Each process's acknowledgements match what is stored.
        foreach (var r in results)
        {
            foreach (var line in r.Lines)
            {
                using var doc = JsonDocument.Parse(line);
                var pos = doc.RootElement.GetProperty("position").GetInt64();
                Assert.Equal(doc.RootElement.GetProperty("eventId").GetString(), all[(int)pos - 1].EventId.ToString());
            }
        }
    }
}
