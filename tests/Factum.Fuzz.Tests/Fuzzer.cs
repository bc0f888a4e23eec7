using System.Diagnostics;
using System.Text;
using CsCheck;

namespace Factum.Fuzz.Tests;

/// <summary>What one fuzz run did.</summary>
/// <param name="Target">The target's name.</param>
/// <param name="Executions">Inputs checked (seeds included).</param>
/// <param name="Elapsed">Wall-clock time.</param>
/// <param name="Outcomes">Distinct outcomes seen (accepted, or each distinct rejection reason's shape): a coverage proxy.</param>
public sealed record FuzzReport(string Target, long Executions, TimeSpan Elapsed, int Outcomes)
{
    public double PerSecond => Executions / Math.Max(Elapsed.TotalSeconds, 1e-9);

    public override string ToString() =>
        $"{Target}: {Executions:N0} executions in {Elapsed.TotalSeconds:N1} s ({PerSecond:N0}/s), {Outcomes} distinct outcomes, no failure";
}

/// <summary>
/// A mutation fuzzer over seed corpora, in-process, replayable. Each input is a seed from <c>corpus/&lt;target&gt;/</c> put
/// through 1–8 byte-level mutations (bit flips, interesting bytes and tokens — lone surrogate escapes, deep nesting,
/// invalid UTF-8, huge numbers, YAML aliases — deletions, duplications, splices with another seed, truncation).
/// </summary>
/// <remarks>
/// Without <c>FACTUM_FUZZ_SECONDS</c> every target runs a fixed number of inputs from fixed seeds: deterministic, a
/// second or two, part of ./test.sh. With it (scripts/fuzz.sh), each target runs that long from a random seed, and a
/// failing input is written to <c>artifacts/fuzz/&lt;target&gt;/</c> with the PCG seed that replays it
/// (<c>FACTUM_FUZZ_REPLAY</c>). Why not SharpFuzz with libFuzzer/AFL: coverage guidance needs the instrumented
/// assemblies and a libFuzzer driver that neither Debian nor NuGet ships ready here, and the inputs that matter are
/// structured (JSON lines, rows, YAML) where corpus-seeded mutation finds the crashes quickly; the trade-off is no
/// coverage feedback, stated in docs/reliability.md.
/// </remarks>
public static class Fuzzer
{
    private static readonly byte[][] Tokens =
    [
        "\\ud800"u8.ToArray(), "\\udc00"u8.ToArray(), "\\u0000"u8.ToArray(), "\""u8.ToArray(), "\\"u8.ToArray(), "{"u8.ToArray(), "}"u8.ToArray(),
        "["u8.ToArray(), "]"u8.ToArray(), ","u8.ToArray(), ":"u8.ToArray(), "null"u8.ToArray(), "true"u8.ToArray(), "1e400"u8.ToArray(),
        "-0"u8.ToArray(), "9223372036854775808"u8.ToArray(), "\"\""u8.ToArray(), "\n"u8.ToArray(), "\r"u8.ToArray(), "\t"u8.ToArray(),
        [0xFF], [0xC3, 0x28], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x00], [0x1B],
        "&a"u8.ToArray(), "*a"u8.ToArray(), "<<: *a"u8.ToArray(), "!!binary"u8.ToArray(), "- "u8.ToArray(), ": "u8.ToArray(), "../../"u8.ToArray(),
        "/dev/zero"u8.ToArray(), "\"expectedVersion\":"u8.ToArray(), "\"correlationId\":\"\""u8.ToArray(), "\"schemaVersion\":"u8.ToArray(),
    ];

    /// <summary>Seconds per target from FACTUM_FUZZ_SECONDS; 0 for the short deterministic run.</summary>
    public static int Seconds => int.TryParse(Environment.GetEnvironmentVariable("FACTUM_FUZZ_SECONDS"), out var s) && s > 0 ? s : 0;

    /// <summary>The seed files of a target.</summary>
    public static byte[][] Corpus(string target)
    {
        var dir = Path.Combine(AppContext.BaseDirectory, "corpus", target);
        var files = Directory.Exists(dir) ? Directory.GetFiles(dir).Order(StringComparer.Ordinal).ToArray() : [];
        if (files.Length == 0) throw new InvalidOperationException($"The fuzz target '{target}' has no seed corpus in {dir}.");
        return files.Select(File.ReadAllBytes).ToArray();
    }

    /// <summary>One mutated input, derived only from <paramref name="rng"/> (so a seed replays it).</summary>
    public static byte[] Mutate(byte[][] corpus, PCG rng)
    {
        var data = new List<byte>(corpus[(int)rng.Next((uint)corpus.Length)]);
        var n = 1 + (int)rng.Next(8);
        for (var i = 0; i < n; i++)
        {
            var at = data.Count == 0 ? 0 : (int)rng.Next((uint)data.Count + 1);
            switch (rng.Next(9))
            {
                case 0 when data.Count > 0:
                    var p = Math.Min(at, data.Count - 1);
                    data[p] ^= (byte)(1 << (int)rng.Next(8));
                    break;
                case 1 when data.Count > 0:
                    data[Math.Min(at, data.Count - 1)] = (byte)rng.Next(256);
                    break;
                case 2:
                case 3:
                    data.InsertRange(at, Tokens[rng.Next((uint)Tokens.Length)]);
                    break;
                case 4 when data.Count > 0:
                    var len = (int)rng.Next((uint)Math.Min(16, data.Count - Math.Min(at, data.Count - 1)) + 1);
                    data.RemoveRange(Math.Min(at, data.Count - 1), Math.Min(len, data.Count - Math.Min(at, data.Count - 1)));
                    break;
                case 5 when data.Count > 0:
                    var start = (int)rng.Next((uint)data.Count);
                    var count = (int)rng.Next((uint)Math.Min(64, data.Count - start)) + 1;
                    data.InsertRange(at, data.GetRange(start, count));
                    break;
                case 6:
                    var other = corpus[(int)rng.Next((uint)corpus.Length)];
                    if (other.Length > 0)
                    {
                        var from = (int)rng.Next((uint)other.Length);
                        data.InsertRange(at, other.AsSpan(from, (int)rng.Next((uint)(other.Length - from)) + 1).ToArray());
                    }
                    break;
                case 7 when data.Count > 0:
                    data.RemoveRange(at == data.Count ? data.Count - 1 : at, data.Count - (at == data.Count ? data.Count - 1 : at));
                    break;
                default:
                    // Deep nesting: a parser that recurses per level must refuse it, not overflow the stack.
                    var open = rng.Next(2) == 0 ? (byte)'[' : (byte)'{';
                    data.InsertRange(at, Enumerable.Repeat(open, 1 + (int)rng.Next(rng.Next(4) == 0 ? 5000u : 80u)));
                    break;
            }
        }
        return [.. data];
    }

    /// <summary>
    /// Runs <paramref name="check"/> over every seed and then over mutated inputs. <paramref name="check"/> returns a
    /// short outcome label (for the coverage proxy) and throws when the target misbehaves.
    /// </summary>
    public static FuzzReport Run(string target, Func<byte[], string> check, int iterations = 3000) =>
        Run(target, Corpus(target), check, iterations);

    /// <summary>As <see cref="Run(string, Func{byte[], string}, int)"/> with an explicit corpus.</summary>
    public static FuzzReport Run(string target, byte[][] corpus, Func<byte[], string> check, int iterations)
    {
        var outcomes = new HashSet<string>(StringComparer.Ordinal);
        var clock = Stopwatch.StartNew();
        long executions = 0;
        foreach (var seed in corpus)
        {
            Execute(target, seed, check, outcomes, "seed");
            executions++;
        }
        var seconds = Seconds;
        var replay = Environment.GetEnvironmentVariable("FACTUM_FUZZ_REPLAY");
        var stream = (uint)target.Aggregate(17, (h, c) => (h * 31) + c);
        ulong baseSeed = seconds > 0 ? (ulong)Environment.TickCount64 * 7919UL : 20261202UL;
        for (ulong i = 0; ; i++)
        {
            if (seconds > 0 ? clock.Elapsed.TotalSeconds >= seconds : (long)i >= iterations) break;
            var rng = replay is not null ? PCG.Parse(replay) : new PCG(stream, baseSeed + i);
            var replayText = rng.ToString();
            Execute(target, Mutate(corpus, rng), check, outcomes, replayText);
            executions++;
            if (replay is not null) break;
        }
        var report = new FuzzReport(target, executions, clock.Elapsed, outcomes.Count);
        WriteReport(report);
        return report;
    }

    private static void Execute(string target, byte[] input, Func<byte[], string> check, HashSet<string> outcomes, string replay)
    {
        try
        {
            outcomes.Add(check(input));
        }
        catch (Exception ex)
        {
            var dir = Path.Combine(ArtifactsDir, target);
            Directory.CreateDirectory(dir);
            var file = Path.Combine(dir, $"crash-{Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(input))[..16]}.bin");
            File.WriteAllBytes(file, input);
            throw new FuzzFailureException(
                $"Fuzz target '{target}' failed on an input saved as {file} (replay: FACTUM_FUZZ_REPLAY={replay}); " +
                $"input starts: {Preview(input)}", ex);
        }
    }

    private static string ArtifactsDir
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Factum.slnx"))) dir = dir.Parent;
            return Path.Combine(dir?.FullName ?? Path.GetTempPath(), "artifacts", "fuzz");
        }
    }

    private static void WriteReport(FuzzReport report)
    {
        Directory.CreateDirectory(ArtifactsDir);
        File.AppendAllText(Path.Combine(ArtifactsDir, "reports.jsonl"),
            System.Text.Json.JsonSerializer.Serialize(new { report.Target, report.Executions, Seconds = report.Elapsed.TotalSeconds, report.Outcomes, At = DateTimeOffset.UtcNow }) + "\n");
    }

    private static string Preview(byte[] input)
    {
        var text = Encoding.UTF8.GetString(input.AsSpan(0, Math.Min(input.Length, 160)));
        return JsonText.Printable(text) + (input.Length > 160 ? $"… ({input.Length:N0} bytes)" : "");
    }

    /// <summary>The outcome label of an expected rejection: its exception type and the message's first words.</summary>
    public static string Rejected(Exception ex)
    {
        var words = ex.Message.Split(' ', 5);
        return ex.GetType().Name + ":" + string.Join(' ', words.Take(4));
    }
}

/// <summary>A fuzz target misbehaved on an input; the message says where the input is saved and how to replay it.</summary>
public sealed class FuzzFailureException(string message, Exception inner) : Exception(message, inner);
