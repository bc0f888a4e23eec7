using System.Diagnostics;
using System.Globalization;
using System.IO.Hashing;
using System.Text;
using System.Text.Json;
using Factum;
using Factum.Benchmarks;
using Factum.Sqlite;

// dotnet run -c Release --project benchmarks/Factum.Benchmarks -- <scenario> [--events N] [--writers N] [--batch N] [--json]
var scenarios = new[] { "append-seq", "append-concurrent", "append-batch", "read-stream", "read-all", "subscription-latency", "aggregate-load", "projection-rebuild", "pubsub", "queue", "request-reply", "stream", "all" };
if (args.Length == 0 || !scenarios.Contains(args[0]))
{
    Console.Error.WriteLine($"usage: Factum.Benchmarks <{string.Join('|', scenarios)}> [--events N | --messages N] [--writers N] [--batch N] [--page-size N] [--rate N] [--json] [--dir PATH]");
    return 2;
}
var scenario = args[0];
long? Arg(string name)
{
    // --messages is the messaging scenarios' name for --events.
    if (name == "--events" && Array.IndexOf(args, "--messages") is var m and >= 0 && m + 1 < args.Length) return long.Parse(args[m + 1], CultureInfo.InvariantCulture);
    return Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? long.Parse(args[i + 1], CultureInfo.InvariantCulture) : null;
}
var json = args.Contains("--json");
var dirArg = Array.IndexOf(args, "--dir") is var d and >= 0 ? args[d + 1] : null;
var root = dirArg ?? Path.Combine(Path.GetTempPath(), "factum-bench-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(root);

var results = new List<ScenarioResult>();
try
{
    foreach (var s in scenario == "all" ? scenarios[..^1] : [scenario])
    {
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
            "subscription-latency" => await Scenarios.SubscriptionLatency(dir, events, (int)(Arg("--rate") ?? 1000)),
            "aggregate-load" => await Scenarios.AggregateLoad(dir, events),
            "projection-rebuild" => await Scenarios.ProjectionRebuild(dir, events),
            "pubsub" => await MessagingScenarios.PubSub(dir, events),
            "queue" => await MessagingScenarios.Queue(dir, events),
            "request-reply" => await MessagingScenarios.RequestReply(dir, events),
            "stream" => await MessagingScenarios.Stream(dir, events),
            _ when s.StartsWith("append", StringComparison.Ordinal) => await Scenarios.Append(s, dir, events, (int)writers, (int)batch, (int)(Arg("--page-size") ?? 2048)),
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
