using System.Collections.Concurrent;
using System.Diagnostics;
using Xunit.Abstractions;

namespace Factum.PostgreSql.Tests;

/// <summary>
/// Several application nodes on one database: real processes appending at once while a follower reads the global log.
/// The log must come out gap-free and in commit order, each event seen exactly once, with nothing acknowledged missing.
/// </summary>
public sealed class MultiNodeTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _schema = TestServer.NewSchema();
    private readonly List<Process> _processes = [];
    private PostgresEventStore? _store;

    private string Connection => $"{TestServer.ConnectionString}?schema={_schema}";

    private PostgresEventStore Store => _store ?? throw new InvalidOperationException("Created in InitializeAsync.");

    public async Task InitializeAsync() => _store = await PostgresEventStore.OpenAsync(new PostgresEventStoreOptions(Connection));

    public async Task DisposeAsync()
    {
        foreach (var p in _processes)
        {
            try { if (!p.HasExited) p.Kill(); } catch (InvalidOperationException) { }
            p.Dispose();
        }
        if (_store is not null)
        {
            await _store.DropSchemaAsync();
            await _store.DisposeAsync();
        }
    }

    private static string TestHostDll
    {
        get
        {
            var bin = new DirectoryInfo(AppContext.BaseDirectory); // tests/Factum.PostgreSql.Tests/bin/<configuration>/net10.0/
            var dll = Path.Combine(bin.Parent!.Parent!.Parent!.Parent!.FullName, "Factum.TestHost", "bin", bin.Parent!.Name, "net10.0", "Factum.TestHost.dll");
            return File.Exists(dll) ? dll : throw new InvalidOperationException($"Build the test host first: {dll} does not exist.");
        }
    }

    private (Process Process, ConcurrentQueue<string> Lines) Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(TestHostDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_NOLOGO"] = "1";
        var p = Process.Start(psi)!;
        _processes.Add(p);
        var lines = new ConcurrentQueue<string>();
        _ = Task.Run(async () => { while (await p.StandardOutput.ReadLineAsync() is { } l) lines.Enqueue(l); });
        _ = Task.Run(async () => { while (await p.StandardError.ReadLineAsync() is { } l) lines.Enqueue("stderr: " + l); });
        return (p, lines);
    }

    [Fact]
    public async Task Four_nodes_of_16_writers_append_for_30_seconds_and_a_follower_sees_every_event_once_in_order_without_gaps()
    {
        const int nodes = 4, writers = 16, seconds = 30;
        var followed = new List<RecordedEvent>();
        using var stop = new CancellationTokenSource();
        // The follower reads only up to the high-water mark, then waits for it to move (NOTIFY, or its poll).
        var follower = Task.Run(async () =>
        {
            var next = GlobalPosition.Start;
            while (true)
            {
                var head = await Store.GetHeadPositionAsync();
                await foreach (var e in Store.ReadAllAsync(new ReadAllOptions { From = next.Value + 1, To = head }))
                {
                    followed.Add(e);
                    next = e.Position;
                }
                if (stop.IsCancellationRequested && next >= await Store.GetHeadPositionAsync()) return;
                await Store.WaitForAppendAsync(next, TimeSpan.FromMilliseconds(200));
            }
        });

        var started = Enumerable.Range(0, nodes).Select(n => Start("pg-writer", Connection, $"n{n}", writers.ToString(System.Globalization.CultureInfo.InvariantCulture), seconds.ToString(System.Globalization.CultureInfo.InvariantCulture))).ToList();
        foreach (var (p, _) in started) Assert.True(await Task.Run(() => p.WaitForExit(TimeSpan.FromSeconds(seconds + 60))), "a writer process did not finish");
        foreach (var (p, lines) in started) Assert.True(p.ExitCode == 0, string.Join('\n', lines));
        var acknowledged = started.Sum(s => long.Parse(s.Lines.Single(l => l.StartsWith("acknowledged ", StringComparison.Ordinal))["acknowledged ".Length..], System.Globalization.CultureInfo.InvariantCulture));
        await stop.CancelAsync();
        await follower.WaitAsync(TimeSpan.FromSeconds(60));

        var all = new List<RecordedEvent>();
        await foreach (var e in Store.ReadAllAsync()) all.Add(e);
        Assert.True(acknowledged > nodes * writers, $"only {acknowledged} appends in {seconds} s");
        // Every acknowledged append is there (nothing else was written: each append is one event).
        Assert.Equal(acknowledged, all.Count);
        // Gap-free and in order: positions 1..N.
        Assert.Equal(Enumerable.Range(1, all.Count).Select(i => (long)i), all.Select(e => e.Position.Value));
        // The follower saw exactly the final log: every event once, in position order, none skipped.
        Assert.Equal(all.Select(e => e.EventId), followed.Select(e => e.EventId));
        // Each writer's stream is complete and in version order.
        foreach (var stream in all.GroupBy(e => e.StreamId))
            Assert.Equal(Enumerable.Range(0, stream.Count()).Select(i => (long)i), stream.Select(e => e.StreamVersion.Value));
        Assert.Equal(nodes * writers, all.Select(e => e.StreamId).Distinct().Count());
        output.WriteLine($"{acknowledged} appends by {nodes} processes × {writers} writers in {seconds} s ({acknowledged / seconds} events/s), followed live without a gap");
    }
}
