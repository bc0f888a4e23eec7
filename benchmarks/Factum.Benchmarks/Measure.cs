using System.Diagnostics;
using HdrHistogram;

namespace Factum.Benchmarks;

/// <summary>One measured run: throughput, latency percentiles and peak memory.</summary>
public sealed record Measurement(string Name, long Events, double Seconds, double EventsPerSecond, double? P50Ms, double? P99Ms, double? MaxMs, long PeakManagedBytes, long PeakWorkingSetBytes, long StartManagedBytes);

public sealed record ScenarioResult(string Scenario, string Machine, DateTimeOffset Date, IReadOnlyDictionary<string, object> Parameters, Measurement Factum, IReadOnlyList<Measurement> Baselines, IReadOnlyDictionary<string, double> Ratios, IReadOnlyList<Target> Targets);

public sealed record Target(string Description, bool Met);

/// <summary>Samples memory while a measurement runs, so "flat while reading" can be shown, not assumed.</summary>
public sealed class MemorySampler : IDisposable
{
    private readonly Timer _timer;
    public long PeakManaged;
    public long PeakWorkingSet;
    public long StartManaged;

    public MemorySampler()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        StartManaged = GC.GetTotalMemory(false);
        Sample();
        _timer = new Timer(_ => Sample(), null, 0, 20);
    }

    private void Sample()
    {
        var managed = GC.GetTotalMemory(false);
        var ws = Environment.WorkingSet;
        InterlockedMax(ref PeakManaged, managed);
        InterlockedMax(ref PeakWorkingSet, ws);
    }

    private static void InterlockedMax(ref long target, long value)
    {
        long current;
        while (value > (current = Interlocked.Read(ref target)) && Interlocked.CompareExchange(ref target, value, current) != current) { }
    }

    public void Dispose()
    {
        _timer.Dispose();
        Sample();
    }
}

public static class Latency
{
    public static LongHistogram NewHistogram() => new(TimeStamp.Minutes(10), 3);

    public static (double P50, double P99, double Max) Summarize(IEnumerable<LongHistogram> parts)
    {
        var all = NewHistogram();
        foreach (var p in parts) all.Add(p);
        double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
        return (Ms(all.GetValueAtPercentile(50)), Ms(all.GetValueAtPercentile(99)), Ms(all.GetMaxValue()));
    }
}

[EventType("ItemCounted")]
public sealed record ItemCounted(decimal Amount);
