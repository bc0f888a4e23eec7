using System.CommandLine;
using Factum.Sqlite;
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
    /// Opens the store, runs the command, maps errors to exit codes with a clear message on stderr. Only commands that
    /// write (<paramref name="create"/>) create a missing store; a command that reads a store that is not there fails
    /// with exit 4 instead of creating an empty one (and its folder) where a typo pointed.
    /// </summary>
    public static async Task<int> Run(ParseResult pr, DataDir data, Option<bool> json, Func<SqliteEventStore, Output, Task<int>> body, bool create = false)
    {
        var output = new Output(Console.Out, pr.GetValue(json));
        using var logging = CreateLogging(pr);
        try
        {
            var db = DbPath(data.Resolve(pr));
            CheckStorePath(db, create);
            await using var store = Open(db, create, logging);
            return await body(store, output);
        }
        catch (Exception ex)
        {
            var (code, message) = ExitCodes.From(ex);
            Output.Error(message);
            if (Environment.GetEnvironmentVariable("FACTUM_DEBUG") == "1") Console.Error.WriteLine(ex);
            return code;
        }
        finally
        {
            await Console.Out.FlushAsync();
        }
    }

    /// <summary>
    /// Opens the store for writing; a command that only reads falls back to a read-only open when the file or its folder
    /// cannot be written (a backup on read-only media, another user's store), so reads and verify still work there.
    /// </summary>
    private static SqliteEventStore Open(string db, bool create, ILoggerFactory logging)
    {
        try
        {
            return new SqliteEventStore(new SqliteEventStoreOptions(db) { LoggerFactory = logging });
        }
        catch (Exception ex) when (!create && ex is UnauthorizedAccessException or Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 8 or 14 })
        {
            return new SqliteEventStore(new SqliteEventStoreOptions(db) { ReadOnly = true, LoggerFactory = logging });
        }
    }

    /// <summary>Refuses a missing store (unless creating one) and a factum.db that is a link to nothing, naming the path.</summary>
    public static void CheckStorePath(string db, bool create)
    {
        var info = new FileInfo(db);
        if (info.LinkTarget is { } target && info.ResolveLinkTarget(returnFinalTarget: true) is not { Exists: true })
            throw new StoreMissingException($"'{db}' is a symbolic link to '{target}', which does not exist.");
        if (!create && !info.Exists)
            throw new StoreMissingException($"no store at '{Path.GetFullPath(db)}' (factum.db not found). Pass --data DIR (or set FACTUM_DATA) to name the folder that holds it; commands that write, such as append or demo, create it.");
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

/// <summary>Resolves the data directory from the command's option, the root option, FACTUM_DATA, or the default.</summary>
internal sealed class DataDir(Option<string?> root)
{
    private readonly Dictionary<Command, Option<string?>> _local = [];

    public void AddTo(Command command, bool payloadTakesData = false)
    {
        // On append, --data is the payload (as documented), so only --data-dir names the directory there.
        var option = payloadTakesData
            ? new Option<string?>("--data-dir") { Description = "The data directory holding factum.db." }
            : new Option<string?>("--data", "--data-dir") { Description = "The data directory holding factum.db (env FACTUM_DATA; default ./factum-data)." };
        command.Options.Add(option);
        _local[command] = option;
    }

    public string Resolve(ParseResult pr)
    {
        if (_local.TryGetValue(pr.CommandResult.Command, out var local) && pr.GetValue(local) is { Length: > 0 } l) return l;
        if (pr.GetValue(root) is { Length: > 0 } r) return r;
        return Environment.GetEnvironmentVariable("FACTUM_DATA") is { Length: > 0 } d ? d : "./factum-data";
    }
}

/// <summary>The data directory holds no store (or a broken link to one): exit 4.</summary>
internal sealed class StoreMissingException(string message) : Exception(message);
