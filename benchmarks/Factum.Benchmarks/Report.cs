using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Factum.Benchmarks;

public static class ReportJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web) { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };
}

public static class Report
{
    public static void Print(ScenarioResult r)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine();
        Console.WriteLine($"== {r.Scenario} ==  ({string.Join(", ", r.Parameters.Select(p => $"{p.Key}={p.Value}"))})");
        Console.WriteLine($"   machine: {r.Machine}");
        Console.WriteLine($"   {"measurement",-48} {"events",12} {"events/s",12} {"p50 ms",9} {"p99 ms",9} {"max ms",9} {"peak heap",10} {"peak RSS",10}");
        foreach (var m in new[] { r.Factum }.Concat(r.Baselines))
        {
            static string Ms(double? v) => v is { } x ? x.ToString("F3", CultureInfo.InvariantCulture) : "-";
            Console.WriteLine(string.Create(inv, $"   {m.Name,-48} {m.Events,12:N0} {m.EventsPerSecond,12:N0} {Ms(m.P50Ms),9} {Ms(m.P99Ms),9} {Ms(m.MaxMs),9} {m.PeakManagedBytes / 1048576.0,8:F1}Mi {m.PeakWorkingSetBytes / 1048576.0,8:F1}Mi"));
        }
        foreach (var (k, v) in r.Ratios) Console.WriteLine(string.Create(inv, $"   ratio {k}: {v:F2}x"));
        foreach (var t in r.Targets) Console.WriteLine($"   target {t.Description}: {(t.Met ? "MET" : "NOT MET")}");
    }
}
