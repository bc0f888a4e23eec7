using System.CommandLine;
using System.CommandLine.Parsing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Factum.Cli;

internal static class Cli
{
    public static string DbPath(string dataDir) => Path.Combine(dataDir, "factum.db");

    /// <summary><c>-v/--verbose</c> on every command: log at debug level instead of warnings and errors only.</summary>
    public static Option<bool> Verbose { get; } = new("--verbose", "-v")
    {
        Description = "Log what Factum does (retries, dead letters, parked events, slow commits) at debug level on stderr; without it only warnings and errors are logged.",
        Recursive = true,
    };

    /// <summary>
    /// The command's logging: one line per entry on stderr (stdout stays clean for tables and --json), warnings and up
    /// unless --verbose. Disposing it flushes what is queued.
    /// </summary>
    public static ILoggerFactory CreateLogging(ParseResult pr) =>
        LoggerFactory.Create(b => b
            .SetMinimumLevel(pr.GetValue(Verbose) ? LogLevel.Debug : LogLevel.Warning)
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace)
            .AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
                o.ColorBehavior = LoggerColorBehavior.Disabled;
            }));

    /// <summary>
    /// Runs a command that needs only an event store, on whichever backend was chosen (see <see cref="RunOn"/>).
    /// </summary>
    public static Task<int> Run(ParseResult pr, BackendOptions backend, Option<bool> json, Func<IEventStore, Output, Task<int>> body, bool create = false) =>
        RunOn(pr, backend, json, Needs.Store, (b, output) => body(b.Store, output), create);

    /// <summary>
    /// Chooses the backend, refuses it when it cannot do what the command <paramref name="needs"/>, opens it, runs the
    /// command, maps errors to exit codes with a clear message on stderr. Only commands that write
    /// (<paramref name="create"/>) create a missing store; a command that reads a store that is not there fails with
    /// exit 4 instead of creating an empty one (and its folder) where a typo pointed.
    /// </summary>
    public static async Task<int> RunOn(ParseResult pr, BackendOptions backend, Option<bool> json, Needs needs, Func<Backend, Output, Task<int>> body, bool create = false)
    {
        var output = new Output(Console.Out, pr.GetValue(json));
        using var logging = CreateLogging(pr);
        try
        {
            var choice = backend.Resolve(pr);
            choice.Check(needs, CommandName(pr));
            await using var opened = Backend.Open(choice, create, logging);
            return await body(opened, output);
        }
        catch (Exception ex)
        {
            return Fail(ex);
        }
        finally
        {
            await Console.Out.FlushAsync();
        }
    }

    /// <summary>Prints the error's one-line message (the stack trace too with FACTUM_DEBUG=1) and returns its exit code.</summary>
    public static int Fail(Exception ex)
    {
        var (code, message) = ExitCodes.From(ex);
        Output.Error(message);
        if (Environment.GetEnvironmentVariable("FACTUM_DEBUG") == "1") Console.Error.WriteLine(ex);
        return code;
    }

    /// <summary>The causation tree of one process, from the store's correlation index (every backend keeps one).</summary>
    public static Task<Factum.Tracing.CausationTree> TraceAsync(IEventStore store, string correlationId, CancellationToken ct) =>
        Factum.Tracing.CausationTree.BuildAsync(store as Factum.Tracing.ICorrelationIndex
            ?? throw new CommandNotSupportedException("this store keeps no correlation index, which trace reads."), correlationId, ct);

    /// <summary>The command as typed after <c>factum</c>: <c>projections list</c>.</summary>
    public static string CommandName(ParseResult pr)
    {
        var names = new List<string>();
        for (var r = pr.CommandResult; r.Parent is CommandResult parent; r = parent) names.Insert(0, r.Command.Name);
        return string.Join(' ', names);
    }

    /// <summary>Refuses a missing store (unless creating one) and a factum.db that is a link to nothing, naming the path.</summary>
    public static void CheckStorePath(string db, bool create)
    {
        var info = new FileInfo(db);
        if (info.LinkTarget is { } target && info.ResolveLinkTarget(returnFinalTarget: true) is not { Exists: true })
            throw new StoreMissingException($"'{db}' is a symbolic link to '{target}', which does not exist.");
        if (!create && !info.Exists)
            throw new StoreMissingException($"no store at '{Path.GetFullPath(db)}' (factum.db not found). Pass --data DIR or --store sqlite:DIR (or set FACTUM_DATA or FACTUM_STORE) to name the folder that holds it; commands that write, such as append or demo, create it.");
    }

    /// <summary><c>--wide</c> on read and read-all: every column (ids, correlation, causation, metadata), not fitted to 120 columns.</summary>
    public static Option<bool> Wide() => new("--wide", "-w") { Description = "Show every column (event id, correlation, causation, metadata), however wide; --json has every field." };

    public static async Task PrintEvents(Output output, IAsyncEnumerable<RecordedEvent> events, bool wide = false)
    {
        if (output.Json)
        {
            await foreach (var e in events) output.Event(e);
            return;
        }
        var rows = new List<string[]>();
        var printed = false;
        await foreach (var e in events)
        {
            rows.Add(Output.EventRow(e, wide));
            if (rows.Count == 10_000)
            {
                // Large reads stream out in chunks rather than buffering everything.
                output.Table(Output.EventHeaders(wide), rows, fit: !wide);
                rows.Clear();
                printed = true;
            }
        }
        // An empty result still prints its header; a result that ended on a full chunk prints nothing more.
        if (rows.Count > 0 || !printed) output.Table(Output.EventHeaders(wide), rows, fit: !wide);
    }

    public static void WriteInfo(Output output, StreamInfo s, bool metadataOnly = false)
    {
        var m = s.Metadata;
        if (metadataOnly)
        {
            output.Writer.WriteLine($"{s.StreamId}: maxAge={(m.MaxAge is { } age ? Durations.Format(age) : "none")} maxCount={m.MaxCount?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"} truncateBefore={m.TruncateBefore?.ToString() ?? "none"}"
                + (m.Custom.Count > 0 ? " custom=" + string.Join(",", m.Custom.Select(kv => $"{kv.Key}={kv.Value}")) : ""));
            return;
        }
        output.JsonLine(w =>
        {
            w.WriteString("streamId", s.StreamId.Value);
            w.WriteString("category", s.StreamId.Category);
            w.WriteString("state", s.State.ToString());
            if (s.LastVersion is { } v) w.WriteNumber("lastVersion", v.Value); else w.WriteNull("lastVersion");
            if (s.LastPosition is { } p) w.WriteNumber("lastPosition", p.Value); else w.WriteNull("lastPosition");
            if (s.CreatedAt is { } c) w.WriteString("createdAt", Output.Iso(c)); else w.WriteNull("createdAt");
            if (s.UpdatedAt is { } u) w.WriteString("updatedAt", Output.Iso(u)); else w.WriteNull("updatedAt");
            w.WriteStartObject("metadata");
            if (m.MaxAge is { } a) w.WriteNumber("maxAgeSeconds", (long)a.TotalSeconds);
            if (m.MaxCount is { } mc) w.WriteNumber("maxCount", mc);
            if (m.TruncateBefore is { } tb) w.WriteNumber("truncateBefore", tb.Value);
            w.WriteStartObject("custom");
            foreach (var (k, val) in m.Custom) w.WriteString(k, val);
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }
}

/// <summary>The data directory holds no store (or a broken link to one): exit 4.</summary>
internal sealed class StoreMissingException(string message) : Exception(message);
