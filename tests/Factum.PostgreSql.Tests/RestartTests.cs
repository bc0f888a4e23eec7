using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Xunit.Abstractions;

namespace Factum.PostgreSql.Tests;

/// <summary>A PostgreSQL 15 cluster of one test's own (a temporary folder, loopback, a free port), so it can be restarted.</summary>
public sealed class PrivateCluster : IAsyncDisposable
{
    private const string Bin = "/usr/lib/postgresql/15/bin";
    private readonly string _dir;
    private readonly int _port;

    private PrivateCluster(string dir, int port)
    {
        _dir = dir;
        _port = port;
    }

    public string ConnectionString => $"postgres://factum:factum@127.0.0.1:{_port}/factum_test";

    private static bool IsRoot => Environment.UserName == "root";

    public static async Task<PrivateCluster> StartAsync()
    {
        var dir = Directory.CreateTempSubdirectory("factum-pg-restart-").FullName;
        // initdb refuses to run as root: as root the cluster belongs to the postgres account the package created.
        if (IsRoot) await Run("chown", "postgres", dir);
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var cluster = new PrivateCluster(dir, port);
        await cluster.AsPostgres($"{Bin}/initdb", "-D", $"{dir}/data", "-U", "factum", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8");
        await cluster.CtlAsync("start", "-l", $"{dir}/server.log", "-o", $"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={dir}");
        await cluster.AsPostgres($"{Bin}/createdb", "-h", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", "factum", "factum_test");
        return cluster;
    }

    /// <summary><c>pg_ctl restart -m <paramref name="mode"/></c>: fast (clients are disconnected) or immediate (a crash, recovery on start).</summary>
    public Task RestartAsync(string mode) => CtlAsync("restart", "-m", mode, "-l", $"{_dir}/server.log");

    private Task CtlAsync(string action, params string[] args) => AsPostgres($"{Bin}/pg_ctl", ["-D", $"{_dir}/data", "-w", "-t", "60", action, .. args]);

    private Task AsPostgres(string program, params string[] args) => IsRoot ? Run("runuser", ["-u", "postgres", "--", program, .. args]) : Run(program, args);

    private static async Task Run(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{program} {string.Join(' ', args)} exited {p.ExitCode}: {await output}{await error}");
    }

    public async ValueTask DisposeAsync()
    {
        try { await CtlAsync("stop", "-m", "immediate"); }
        catch (InvalidOperationException) { }
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>
/// The database restarts (a fast shutdown, then a crash) while writers append: every append that returned is stored
/// exactly once, nothing is written twice (a commit whose answer was lost is looked up, not repeated), and writing
/// goes on after the restart.
/// </summary>
public sealed class RestartTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Every_acknowledged_append_survives_a_fast_and_an_immediate_restart_exactly_once()
    {
        await using var cluster = await PrivateCluster.StartAsync();
        await using var store = await PostgresEventStore.OpenAsync(new PostgresEventStoreOptions(cluster.ConnectionString) { RetryFor = TimeSpan.FromSeconds(60) });
        var acknowledged = new ConcurrentDictionary<EventId, long>();
        var errors = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 16).Select(w => Task.Run(async () =>
        {
            var stream = StreamId.Parse($"Order-{w}");
            for (long v = 0; !stop.IsCancellationRequested; v++)
            {
                var e = EventData.FromJson("OrderPlaced", $$"""{"w":{{w}},"v":{{v}}}""");
                // A careful client: on an error it sends the same event again (same id, same expectation), which the
                // store recognises if the first attempt did commit.
                while (true)
                {
                    try
                    {
                        var r = await store.AppendAsync(stream, v == 0 ? ExpectedVersion.NoStream : ExpectedVersion.Exactly(v - 1), [e]);
                        acknowledged[e.EventId] = r.FirstPosition.Value;
                        break;
                    }
                    catch (Exception ex) when (ex is not WrongExpectedVersionException)
                    {
                        errors.Enqueue($"{ex.GetType().Name}: {ex.Message}");
                        await Task.Delay(100);
                    }
                }
            }
        })).ToList();

        await Until(() => acknowledged.Count > 500);
        await cluster.RestartAsync("fast");
        var afterFast = acknowledged.Count;
        await Until(() => acknowledged.Count > afterFast + 500);
        await cluster.RestartAsync("immediate");
        var afterCrash = acknowledged.Count;
        await Until(() => acknowledged.Count > afterCrash + 500);
        await stop.CancelAsync();
        await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(90));

        var all = new List<RecordedEvent>();
        await foreach (var e in store.ReadAllAsync()) all.Add(e);
        output.WriteLine($"{acknowledged.Count} appends acknowledged across a fast and an immediate restart; the writer recovered {store.Recoveries} times; {errors.Count} errors seen by callers");
        // The restarts did hit the writer (it is not a test that passes because nothing happened).
        Assert.True(store.Recoveries >= 2, $"the writer met {store.Recoveries} connection failures");
        // Nothing twice, nothing acknowledged missing, positions gap-free, every stream contiguous.
        Assert.Equal(all.Count, all.Select(e => e.EventId).Distinct().Count());
        var stored = all.ToDictionary(e => e.EventId, e => e.Position.Value);
        foreach (var (id, position) in acknowledged)
        {
            Assert.True(stored.TryGetValue(id, out var at), $"acknowledged event {id} is missing");
            Assert.Equal(position, at);
        }
        Assert.Equal(Enumerable.Range(1, all.Count).Select(i => (long)i), all.Select(e => e.Position.Value));
        foreach (var stream in all.GroupBy(e => e.StreamId))
            Assert.Equal(Enumerable.Range(0, stream.Count()).Select(i => (long)i), stream.Select(e => e.StreamVersion.Value));
    }

    [Fact]
    public async Task A_commit_whose_answer_was_lost_is_looked_up_by_event_id_and_not_written_again()
    {
        var lose = 0;
        var schema = TestServer.NewSchema();
        using var logs = new Conformance.CapturingLoggerProvider();
        await using var store = await PostgresEventStore.OpenAsync(new PostgresEventStoreOptions(TestServer.ConnectionString)
        {
            Schema = schema,
            LoggerFactory = logs,
            LoseCommitAnswer = () => Interlocked.Exchange(ref lose, 0) == 1,
        });
        try
        {
            var stream = StreamId.Parse("Order-1");
            await store.AppendAsync(stream, ExpectedVersion.NoStream, [EventData.FromJson("OrderPlaced", "{}")]);
            Volatile.Write(ref lose, 1);
            var e = EventData.FromJson("OrderPaid", "{}");
            var r = await store.AppendAsync(stream, ExpectedVersion.Exactly(0), [e]);
            // The caller gets its result, and the event is stored once.
            Assert.True(r.Written);
            Assert.Equal(1, r.NextExpectedVersion!.Value.Value);
            var events = new List<RecordedEvent>();
            await foreach (var x in store.ReadStreamAsync(stream)) events.Add(x);
            Assert.Equal(2, events.Count);
            Assert.Equal(e.EventId, events[1].EventId);
            Assert.Equal(r.FirstPosition, events[1].Position);
            Assert.Equal(1, store.Recoveries);
            Assert.Contains(logs.Entries, l => l.EventId.Id == 1004 && l.Message.Contains("had committed: True", StringComparison.Ordinal));
        }
        finally
        {
            await store.DropSchemaAsync();
        }
    }

    private static async Task Until(Func<bool> condition)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(90), "the writers made no progress");
            await Task.Delay(20);
        }
    }
}

/// <summary>Importing a history recorded elsewhere (what <c>factum copy</c> does): kept as it was, or refused whole.</summary>
public sealed class ImportTests : IAsyncLifetime
{
    private PostgresEventStore? _store;

    private PostgresEventStore Store => _store!;

    public async Task InitializeAsync() => _store = await PostgresEventStore.OpenAsync(new PostgresEventStoreOptions(TestServer.ConnectionString) { Schema = TestServer.NewSchema() });

    public async Task DisposeAsync()
    {
        await Store.DropSchemaAsync();
        await Store.DisposeAsync();
    }

    private static RecordedEvent Recorded(long position, string stream, long version, DateTimeOffset at) => new()
    {
        EventId = EventId.New(),
        Type = "OrderPlaced",
        SchemaVersion = 2,
        Timestamp = at,
        StreamId = StreamId.Parse(stream),
        StreamVersion = version,
        Position = position,
        CorrelationId = "corr-7",
        CausationId = "cause-7",
        Metadata = new Dictionary<string, string> { ["tenant"] = "acme" },
        Payload = "{\"n\":1}"u8.ToArray(),
    };

    [Fact]
    public async Task Imported_events_keep_ids_positions_versions_times_and_metadata_and_bad_ones_change_nothing()
    {
        var at = new DateTimeOffset(2025, 3, 4, 5, 6, 7, 123, TimeSpan.Zero);
        var history = new[] { Recorded(3, "Order-1", 0, at), Recorded(7, "Order-2", 0, at.AddSeconds(1)), Recorded(8, "Order-1", 1, at.AddSeconds(2)) };
        await Store.ImportAsync(history);
        var all = new List<RecordedEvent>();
        await foreach (var e in Store.ReadAllAsync()) all.Add(e);
        Assert.Equal(history.Select(e => (e.EventId, e.Position, e.StreamVersion, e.Timestamp)), all.Select(e => (e.EventId, e.Position, e.StreamVersion, e.Timestamp)));
        Assert.All(all, e => Assert.Equal(("corr-7", "cause-7", "acme", 2), (e.CorrelationId, e.CausationId, e.Metadata["tenant"], e.SchemaVersion)));
        Assert.Equal(8, (await Store.GetHeadPositionAsync()).Value);

        // Below the head, or skipping a version: refused, and nothing of the import is written.
        await Assert.ThrowsAsync<ArgumentException>(() => Store.ImportAsync([Recorded(9, "Order-3", 0, at), Recorded(5, "Order-3", 1, at)]));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.ImportAsync([Recorded(9, "Order-1", 3, at)]));
        Assert.Equal(8, (await Store.GetHeadPositionAsync()).Value);
        Assert.Equal(StreamState.NotFound, (await Store.GetStreamInfoAsync(StreamId.Parse("Order-3"))).State);

        // New appends go on after the imported head.
        var r = await Store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Exactly(1), [EventData.FromJson("OrderPaid", "{}")]);
        Assert.Equal(9, r.FirstPosition.Value);
    }
}
