using System.Diagnostics;
using System.Globalization;
using System.IO.Hashing;
using System.Text;
using System.Text.Json;
using Factum;
using Factum.Benchmarks;
using Factum.Sqlite;

// dotnet run -c Release --project benchmarks/Factum.Benchmarks -- <scenario> [--events N] [--writers N] [--batch N] [--json] [--store S] [--transport T]
var scenarios = new[] { "append-seq", "append-concurrent", "append-batch", "read-stream", "read-all", "subscription-latency", "aggregate-load", "projection-rebuild", "pubsub", "queue", "request-reply", "stream", "all" };
var usage = $"""
    usage: Factum.Benchmarks <{string.Join('|', scenarios)}> [--events N | --messages N] [--writers N] [--batch N] [--page-size N] [--rate N] [--json] [--dir PATH] [--store STORE] [--transport TRANSPORT]
      --store STORE          the store of the store scenarios, as the CLI takes it: sqlite:DIR (the default, in a temporary
                             folder or --dir: each scenario writes its own files under DIR) or memory: (append-*,
                             subscription-latency and aggregate-load; the others need sqlite:), or postgres://user:password@host:port/db
                             (append-concurrent, subscription-latency and read-all, in a schema of their own, dropped at the end).
      --transport TRANSPORT  the messaging scenarios: sqlite (the default: the SQLite transport measured with the
                             in-memory one) or memory: (the in-memory transport alone, against Channel<T>).
                             amqp:// and nats:// are refused.
    """;
// The writer process of the PostgreSQL subscription-latency scenario (this program, started by itself).
if (args is ["pg-latency-writer", var writerConnection, var writerSchema, var writerEvents, var writerRate])
{
    await PostgresScenarios.LatencyWriter(writerConnection, writerSchema, long.Parse(writerEvents, CultureInfo.InvariantCulture), int.Parse(writerRate, CultureInfo.InvariantCulture));
    return 0;
}
if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(usage);
    return 0;
}
if (args.Length == 0 || !scenarios.Contains(args[0]))
{
    Console.Error.WriteLine(usage);
    return 2;
}
var scenario = args[0];
string? Text(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
// No --store: SQLite files in a temporary folder (or --dir), as always. The messaging scenarios open their own buses.
StoreConnectionString? store;
TransportConnectionString transport;
try
{
    store = Text("--store") is { } s ? StoreConnectionString.Parse(s) : null;
    transport = Text("--transport") is { } t ? TransportConnectionString.Parse(t) : TransportConnectionString.Sqlite;
    if (store is not null && BackendProviders.NotYetAvailable(store) is { } noStore) throw new BackendNotAvailableException(noStore);
    if (BackendProviders.NotYetAvailable(transport) is { } noTransport) throw new BackendNotAvailableException(noTransport);
    if (store?.Kind == StoreKind.Sqlite && store.DatabaseFile != Path.Combine(store.Path!, StoreConnectionString.DatabaseFileName))
        throw new ArgumentException($"--store {store}: the benchmarks need a directory (each scenario writes its own files in it), not a database file.");
}
catch (Exception ex) when (ex is FormatException or ArgumentException or BackendNotAvailableException)
{
    Console.Error.WriteLine("error: " + ex.Message);
    return 2;
}
var inMemory = store?.Kind == StoreKind.Memory;
if (store?.Kind == StoreKind.PostgreSql)
{
    // PostgreSQL: the scenarios that exist for it so far; each drops its schemas at the end.
    if (scenario is not ("append-concurrent" or "subscription-latency" or "read-all"))
    {
        Console.Error.WriteLine($"error: the {scenario} scenario does not run on PostgreSQL yet; append-concurrent, subscription-latency and read-all do.");
        return 2;
    }
    var pg = scenario switch
    {
        "append-concurrent" => await PostgresScenarios.AppendConcurrent(store, Arg("--events") ?? 100_000, (int)(Arg("--writers") ?? 64)),
        "read-all" => await PostgresScenarios.ReadAll(store, Arg("--events") ?? 500_000),
        _ => await PostgresScenarios.SubscriptionLatency(store, Arg("--events") ?? 5_000, (int)(Arg("--rate") ?? 1000)),
    };
    Report.Print(pg);
    if (args.Contains("--json")) Console.WriteLine(JsonSerializer.Serialize(pg, ReportJson.Options));
    return 0;
}
var sqliteTransport = transport.Kind == TransportKind.Sqlite;
string[] memoryScenarios = ["append-seq", "append-concurrent", "append-batch", "subscription-latency", "aggregate-load"];
if (inMemory && scenario != "all" && !memoryScenarios.Contains(scenario) && !MessagingScenario(scenario))
{
    Console.Error.WriteLine($"error: the {scenario} scenario is not supported by the memory: store: it measures the SQLite file. It runs on sqlite: (the default); on memory: run {string.Join(", ", memoryScenarios)}.");
    return 2;
}

static bool MessagingScenario(string s) => s is "pubsub" or "queue" or "request-reply" or "stream";
long? Arg(string name)
{
    // --messages is the messaging scenarios' name for --events.
    if (name == "--events" && Array.IndexOf(args, "--messages") is var m and >= 0 && m + 1 < args.Length) return long.Parse(args[m + 1], CultureInfo.InvariantCulture);
    return Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? long.Parse(args[i + 1], CultureInfo.InvariantCulture) : null;
}
var json = args.Contains("--json");
var dirArg = Array.IndexOf(args, "--dir") is var d and >= 0 ? args[d + 1] : store?.Kind == StoreKind.Sqlite ? store.Path : null;
var root = dirArg ?? Path.Combine(Path.GetTempPath(), "factum-bench-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(root);

var results = new List<ScenarioResult>();
try
{
    foreach (var s in scenario == "all" ? scenarios[..^1] : [scenario])
    {
        if (inMemory && !memoryScenarios.Contains(s) && !MessagingScenario(s))
        {
            Console.Error.WriteLine($"{s}: skipped, it measures the SQLite file and --store is memory:");
            continue;
        }
        var (events, writers, batch) = s switch
        {
            "append-seq" => (Arg("--events") ?? 3_000, 1L, 1L),
            "append-concurrent" => (Arg("--events") ?? 200_000, Arg("--writers") ?? 64, 1L),
            "append-batch" => (Arg("--events") ?? 500_000, 1L, Arg("--batch") ?? 100),
            "read-stream" => (Arg("--events") ?? 200_000, 1L, 1L),
            "subscription-latency" => (Arg("--events") ?? 5_000, 1L, 1L),
            "aggregate-load" => (Arg("--events") ?? 10_000, 1L, 1L),
            "projection-rebuild" => (Arg("--events") ?? 1_000_000, 1L, 1L),
            "pubsub" => (Arg("--events") ?? 1_000_000, 1L, 1L),
            "queue" => (Arg("--events") ?? 100_000, 1L, 1L),
            "request-reply" => (Arg("--events") ?? 20_000, 1L, 1L),
            "stream" => (Arg("--events") ?? 100_000, 1L, 1L),
            _ => (Arg("--events") ?? 1_000_000, 1L, 1L),
        };
        var dir = Path.Combine(root, s);
        Directory.CreateDirectory(dir);
        var result = s switch
        {
            "subscription-latency" => await Scenarios.SubscriptionLatency(dir, events, (int)(Arg("--rate") ?? 1000), inMemory),
            "aggregate-load" => await Scenarios.AggregateLoad(dir, events, inMemory),
            "projection-rebuild" => await Scenarios.ProjectionRebuild(dir, events),
            "pubsub" => await MessagingScenarios.PubSub(dir, events, sqliteTransport),
            "queue" => await MessagingScenarios.Queue(dir, events, sqliteTransport),
            "request-reply" => await MessagingScenarios.RequestReply(dir, events, sqliteTransport),
            "stream" => await MessagingScenarios.Stream(dir, events, sqliteTransport),
            _ when s.StartsWith("append", StringComparison.Ordinal) => await Scenarios.Append(s, dir, events, (int)writers, (int)batch, (int)(Arg("--page-size") ?? 2048), inMemory),
            _ => await Scenarios.Read(s, dir, events),
        };
        results.Add(result);
        Report.Print(result);
        if (json) Console.WriteLine(JsonSerializer.Serialize(result, ReportJson.Options));
    }
}
finally
{
    if (dirArg is null) Directory.Delete(root, recursive: true);
}
return 0;
