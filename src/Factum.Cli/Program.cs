using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;
using Factum;
using Factum.Cli;
using Factum.Sqlite;

// The store: `factum --store sqlite:PATH|memory: <command>` (or FACTUM_STORE), or the data directory: `factum --data DIR
// <command>`, or `--data DIR` after any command but append (where --data is the payload), or `--data-dir DIR` anywhere, or
// FACTUM_DATA. Default ./factum-data. The transport: --transport or FACTUM_TRANSPORT, default the store's own.
var rootData = new Option<string?>("--data", "--data-dir") { Description = "The data directory holding factum.db (env FACTUM_DATA; default ./factum-data); the same as --store sqlite:DIR." };
var data = new BackendOptions(rootData);
var json = new Option<bool>("--json") { Description = "Print one JSON object per line instead of tables.", Recursive = true };

// Named "factum" whatever the executable is called (dotnet run, the .NET tool, Factum.Cli.dll), so help says "Usage: factum".
var root = new Command("factum", "factum — the Factum event store from the command line.")
{
    new System.CommandLine.Help.HelpOption(),
    new VersionOption(),
};
root.Options.Add(rootData);
root.Options.Add(data.Store);
root.Options.Add(data.Transport);
root.Options.Add(json);
root.Options.Add(Cli.Verbose);

static Option<bool> AllowNonConventionalNames() => new("--allow-nonconventional-names")
{
    Description = "Accept event types that break the naming rule (PascalCase, past tense: OrderPlaced, not PlaceOrder) — for importing foreign or legacy histories.",
};

Option<string> StreamOption(bool required = true) => new("--stream", "-s") { Description = "The stream id, e.g. Order-42.", Required = required };

// append
{
    var stream = StreamOption();
    var type = new Option<string?>("--type", "-t") { Description = "The event type, e.g. OrderPlaced." };
    var body = new Option<string?>("--data", "--payload") { Description = "The event payload as JSON." };
    var expected = new Option<string>("--expected", "-e") { Description = "any | no-stream | exists | N (default any).", DefaultValueFactory = _ => "any" };
    var eventId = new Option<string?>("--event-id") { Description = "The event id (UUID); re-sending it makes the append idempotent." };
    var correlation = new Option<string?>("--correlation-id") { Description = "The correlation id (default: the first event's id)." };
    var causation = new Option<string?>("--causation-id") { Description = "The causation id." };
    var metadata = new Option<string?>("--metadata") { Description = "Metadata as a JSON object of strings." };
    var file = new Option<FileInfo?>("--file", "-f") { Description = "A JSON array of {type, data, eventId?, metadata?} appended atomically." };
    var anyName = AllowNonConventionalNames();
    var cmd = new Command("append", "Append one event, or a file of events atomically; prints the last event's version and position.")
    {
        stream, type, body, expected, eventId, correlation, causation, metadata, file, anyName,
    };
    data.AddTo(cmd, payloadTakesData: true);
    cmd.SetAction((pr, ct) => Cli.Run(pr, data, json, async (store, output) =>
    {
        var streamId = StreamId.Parse(pr.GetValue(stream)!);
        var exp = ExpectedVersion.Parse(pr.GetValue(expected)!);
        var common = (Corr: pr.GetValue(correlation), Caus: pr.GetValue(causation));
        List<EventData> events;
        if (pr.GetValue(file) is { } f)
        {
            if (pr.GetValue(type) is not null || pr.GetValue(body) is not null) throw new ArgumentException("Use either --file or --type/--data, not both.");
            events = EventFiles.ReadArray(f);
        }
        else
        {
            var t = pr.GetValue(type) ?? throw new ArgumentException("--type is required (or use --file).");
            var d = pr.GetValue(body) ?? throw new ArgumentException("--data is required (or use --file).");
            events = [EventFiles.Build(t, d, pr.GetValue(eventId), pr.GetValue(metadata) is { } m ? MetadataJson.Parse(m, "--metadata") : null)];
        }
        EventFiles.CheckTypeNames(events, pr.GetValue(anyName));
        events = events.Select(e => e with { CorrelationId = common.Corr ?? e.CorrelationId, CausationId = common.Caus ?? e.CausationId }).ToList();
        var r = await store.AppendAsync(streamId, exp, events, ct);
        if (output.Json)
            output.JsonLine(w =>
            {
                w.WriteString("streamId", r.StreamId.Value);
                w.WriteNumber("streamVersion", r.NextExpectedVersion?.Value ?? -1);
                w.WriteNumber("position", r.LastPosition.Value);
                w.WriteBoolean("written", r.Written);
                w.WriteNumber("events", events.Count);
            });
        else
            output.Writer.WriteLine($"{(r.Written ? "appended" : "already stored (idempotent retry)")}: {events.Count} event(s) to {r.StreamId}; stream version {r.NextExpectedVersion?.Value ?? -1}, position {r.LastPosition}");
        return ExitCodes.Success;
    }, create: true));
    root.Subcommands.Add(cmd);
}

// import
{
    var maxLine = new Option<int?>("--max-line-bytes") { Description = "The longest input line accepted, in bytes (default: twice the store's largest event plus 64 KiB); longer lines are rejected without being read into memory." };
    var anyName = AllowNonConventionalNames();
    var cmd = new Command("import", "Append JSON lines {stream, type, data, eventId?, expectedVersion?, correlationId?, causationId?, metadata?} from standard input; prints one result line per input line once it is durable.") { maxLine, anyName };
    data.AddTo(cmd);
    cmd.SetAction((pr, ct) => Cli.RunOn(pr, data, json, Needs.Store, (backend, output) =>
    {
        var limit = pr.GetValue(maxLine) ?? Import.DefaultMaxLineBytes(backend.MaxEventSize);
        if (limit < 1) throw new ArgumentException("--max-line-bytes must be at least 1.");
        return Import.RunAsync(backend.Store, limit, pr.GetValue(anyName), ct);
    }, create: true));
    root.Subcommands.Add(cmd);
}

// read
{
    var stream = StreamOption();
    var from = new Option<long?>("--from") { Description = "The first version to read." };
    var backwards = new Option<bool>("--backwards") { Description = "Read newest first." };
    var max = new Option<long?>("--max-count", "-n") { Description = "The most events to print." };
    var wide = Cli.Wide();
    var cmd = new Command("read", "Print the events of one stream.") { stream, from, backwards, max, wide };
    data.AddTo(cmd);
    cmd.SetAction((pr, ct) => Cli.Run(pr, data, json, async (store, output) =>
    {
        var options = new ReadStreamOptions
        {
            From = pr.GetValue(from) is { } f ? new StreamVersion(f) : null,
            Direction = pr.GetValue(backwards) ? Direction.Backwards : Direction.Forwards,
            MaxCount = pr.GetValue(max) ?? long.MaxValue,
        };
        await Cli.PrintEvents(output, store.ReadStreamAsync(StreamId.Parse(pr.GetValue(stream)!), options, ct), pr.GetValue(wide));
        return ExitCodes.Success;
    }));
    root.Subcommands.Add(cmd);
}

// read-all
{
    var from = new Option<long?>("--from") { Description = "The first global position to read." };
    var max = new Option<long?>("--max-count", "-n") { Description = "The most events to print." };
    var types = new Option<string[]>("--type", "-t") { Description = "Only these event types (repeatable).", AllowMultipleArgumentsPerToken = true };
    var categories = new Option<string[]>("--category", "-c") { Description = "Only these stream categories (repeatable).", AllowMultipleArgumentsPerToken = true };
    var prefixes = new Option<string[]>("--stream-prefix") { Description = "Only streams starting with this (repeatable).", AllowMultipleArgumentsPerToken = true };
    var backwards = new Option<bool>("--backwards") { Description = "Read newest first." };
    var wide = Cli.Wide();
    var cmd = new Command("read-all", "Print the global log in position order.") { from, max, types, categories, prefixes, backwards, wide };
    data.AddTo(cmd);
    cmd.SetAction((pr, ct) => Cli.Run(pr, data, json, async (store, output) =>
    {
        var dir = pr.GetValue(backwards) ? Direction.Backwards : Direction.Forwards;
        var options = new ReadAllOptions
        {
            From = pr.GetValue(from) is { } f ? new GlobalPosition(f) : dir == Direction.Forwards ? GlobalPosition.Start : GlobalPosition.End,
            Direction = dir,
            MaxCount = pr.GetValue(max) ?? long.MaxValue,
            Filter = new EventFilter { EventTypes = pr.GetValue(types) ?? [], Categories = pr.GetValue(categories) ?? [], StreamPrefixes = pr.GetValue(prefixes) ?? [] },
        };
        await Cli.PrintEvents(output, store.ReadAllAsync(options, ct), pr.GetValue(wide));
        return ExitCodes.Success;
    }));
    root.Subcommands.Add(cmd);
}

// streams
{
    var category = new Option<string?>("--category", "-c") { Description = "Only streams of this category." };
    var deleted = new Option<bool>("--include-deleted") { Description = "Also list soft-deleted and tombstoned streams." };
    var cmd = new Command("streams", "List streams in id order.") { category, deleted };
    data.AddTo(cmd);
    cmd.SetAction((pr, ct) => Cli.Run(pr, data, json, async (store, output) =>
    {
        var rows = new List<StreamInfo>();
        string? after = null;
        do
        {
            var page = await store.ListStreamsAsync(new ListStreamsOptions { Category = pr.GetValue(category), IncludeDeleted = pr.GetValue(deleted), After = after, PageSize = 1000 }, ct);
            rows.AddRange(page.Streams);
            after = page.ContinuationToken;
        } while (after is not null);
        if (output.Json) foreach (var s in rows) Cli.WriteInfo(output, s);
        else output.Table(["STREAM", "CATEGORY", "STATE", "LAST VERSION", "LAST POSITION", "UPDATED"],
            rows.Select(s => new[] { s.StreamId.Value, s.StreamId.Category, s.State.ToString(), s.LastVersion?.ToString() ?? "-", s.LastPosition?.ToString() ?? "-", s.UpdatedAt is { } u ? Output.Iso(u) : "-" }));
        return ExitCodes.Success;
    }));
    root.Subcommands.Add(cmd);
}

// stream-info
{
    var stream = StreamOption();
    var cmd = new Command("stream-info", "Describe one stream: state, last version and position, times and metadata.") { stream };
    data.AddTo(cmd);
    cmd.SetAction((pr, ct) => Cli.Run(pr, data, json, async (store, output) =>
    {
        var info = await store.GetStreamInfoAsync(StreamId.Parse(pr.GetValue(stream)!), ct);
        if (output.Json) Cli.WriteInfo(output, info);
        else
        {
            var m = info.Metadata;
            output.Table(["FIELD", "VALUE"],
            [
                ["stream", info.StreamId.Value], ["category", info.StreamId.Category], ["state", info.State.ToString()],
                ["last version", info.LastVersion?.ToString() ?? "-"], ["last position", info.LastPosition?.ToString() ?? "-"],
                ["created", info.CreatedAt is { } c ? Output.Iso(c) : "-"], ["updated", info.UpdatedAt is { } u ? Output.Iso(u) : "-"],
                ["max age", m.MaxAge is { } age ? Durations.Format(age) : "-"], ["max count", m.MaxCount?.ToString(CultureInfo.InvariantCulture) ?? "-"],
                ["truncate before", m.TruncateBefore?.ToString() ?? "-"],
                ["custom", m.Custom.Count == 0 ? "-" : string.Join(", ", m.Custom.Select(kv => $"{kv.Key}={kv.Value}"))],
            ]);
        }
        return info.State == StreamState.NotFound ? ExitCodes.StreamNotFound : ExitCodes.Success;
    }));
    root.Subcommands.Add(cmd);
}

// delete
{
    var stream = StreamOption();
    var hard = new Option<bool>("--hard") { Description = "Tombstone the stream forever (default: soft delete, which may be re-created)." };
    var expected = new Option<string>("--expected", "-e") { Description = "any | no-stream | exists | N (default any).", DefaultValueFactory = _ => "any" };
    var cmd = new Command("delete", "Delete a stream (soft by default, --hard for a tombstone).") { stream, hard, expected };
    data.AddTo(cmd);
    cmd.SetAction((pr, ct) => Cli.Run(pr, data, json, async (store, output) =>
    {
        var id = StreamId.Parse(pr.GetValue(stream)!);
        var mode = pr.GetValue(hard) ? DeleteMode.Hard : DeleteMode.Soft;
        var info = await store.GetStreamInfoAsync(id, ct);
        if (info.State == StreamState.NotFound && mode == DeleteMode.Soft) throw new StreamNotFoundException(id);
        await store.DeleteStreamAsync(id, ExpectedVersion.Parse(pr.GetValue(expected)!), mode, ct);
        if (output.Json) output.JsonLine(w => { w.WriteString("streamId", id.Value); w.WriteString("deleted", mode == DeleteMode.Hard ? "hard" : "soft"); });
        else output.Writer.WriteLine(mode == DeleteMode.Hard ? $"tombstoned {id}: it can never be read or written again" : $"soft-deleted {id}: appending again re-creates it");
        return ExitCodes.Success;
    }));
    root.Subcommands.Add(cmd);
}

// metadata
{
    var stream = StreamOption();
    var maxAge = new Option<string?>("--max-age") { Description = "Hide events older than this: 30d, 12h, 15m, 45s or d.hh:mm:ss; 'none' to clear." };
    var maxCount = new Option<string?>("--max-count") { Description = "Keep only the newest N events visible; 'none' to clear." };
    var truncate = new Option<string?>("--truncate-before") { Description = "Hide versions below N; 'none' to clear." };
    var custom = new Option<string?>("--custom") { Description = "Custom metadata as a JSON object of strings (replaces the previous custom values)." };
    var cmd = new Command("metadata", "Show or change a stream's metadata (retention and custom values); unspecified fields keep their value.") { stream, maxAge, maxCount, truncate, custom };
    data.AddTo(cmd);
    cmd.SetAction((pr, ct) => Cli.Run(pr, data, json, async (store, output) =>
    {
        var id = StreamId.Parse(pr.GetValue(stream)!);
        var info = await store.GetStreamInfoAsync(id, ct);
        if (info.State == StreamState.Tombstoned) throw new StreamDeletedException(id);
        var m = info.Metadata;
        if (pr.GetValue(maxAge) is { } a) m = m with { MaxAge = IsNone(a) ? null : Durations.Parse(a, "--max-age") };
        if (pr.GetValue(maxCount) is { } c) m = m with { MaxCount = IsNone(c) ? null : ParseLong(c, "--max-count") };
        if (pr.GetValue(truncate) is { } t) m = m with { TruncateBefore = IsNone(t) ? null : new StreamVersion(ParseLong(t, "--truncate-before")) };
        if (pr.GetValue(custom) is { } j) m = m with { Custom = MetadataJson.Parse(j, "--custom") };
        if (m != info.Metadata) await store.SetStreamMetadataAsync(id, m, ct);
        Cli.WriteInfo(output, await store.GetStreamInfoAsync(id, ct), metadataOnly: !output.Json);
        return ExitCodes.Success;
    }));
    root.Subcommands.Add(cmd);

    static bool IsNone(string s) => s.Equals("none", StringComparison.OrdinalIgnoreCase);
    static long ParseLong(string s, string name) =>
        long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : throw new ArgumentException($"{name} must be a whole number or 'none'; got '{s}'.");
}

// verify
{
    var digest = new Option<bool>("--digest") { Description = "Also print the number of events and a SHA-256 digest of all of them (what factum copy compares); always on for PostgreSQL." };
    var cmd = new Command("verify", "Check the store: for SQLite its file's integrity plus Factum's invariants (contiguous versions, increasing positions, decodable rows); for PostgreSQL the invariants, the head and a digest of every event.") { digest };
    data.AddTo(cmd);
    cmd.SetAction(async (pr, ct) =>
    {
        var output = new Output(Console.Out, pr.GetValue(json));
        string path;
        try
        {
            // verify reads the file itself (it must work on a file the store would refuse to open), so it only checks the choice.
            var choice = data.Resolve(pr);
            if (choice.Store.Kind == StoreKind.PostgreSql) return await VerifyPostgres(choice.Store, output, ct);
            choice.Check(Needs.StoreFile, Cli.CommandName(pr));
            path = choice.Store.DatabaseFile!;
            Cli.CheckStorePath(path, create: false);
        }
        catch (Exception ex)
        {
            return Cli.Fail(ex);
        }
        var report = SqliteStoreVerifier.Verify(path);
        (long Count, string Digest)? sum = null;
        if (pr.GetValue(digest) && report.IsHealthy)
        {
            await using var readOnly = new SqliteEventStore(new SqliteEventStoreOptions(path) { ReadOnly = true });
            sum = await CopyCommand.DigestAsync(readOnly, (await readOnly.GetHeadPositionAsync(ct)).Value, ct);
        }
        if (output.Json)
        {
            output.JsonLine(w =>
            {
                w.WriteString("file", path);
                w.WriteBoolean("healthy", report.IsHealthy);
                w.WriteNumber("streams", report.Streams);
                w.WriteNumber("events", report.Events);
                w.WriteNumber("eventsWithoutChecksum", report.EventsWithoutChecksum);
                if (sum is { } d) w.WriteString("digest", d.Digest);
                w.WriteStartArray("problems");
                foreach (var p in report.Problems) w.WriteStringValue(p);
                w.WriteEndArray();
            });
        }
        else
        {
            output.Writer.WriteLine(report.IsHealthy
                ? $"ok: {path} — {report.Streams} streams, {report.Events} events, no problems"
                  + (report.EventsWithoutChecksum > 0 ? $" ({report.EventsWithoutChecksum} events written before checksums existed could not be checked byte for byte)" : "")
                : $"PROBLEMS in {path}:");
            foreach (var p in report.Problems) output.Writer.WriteLine($"  - {p}");
            if (sum is { } d) output.Writer.WriteLine($"digest: {d.Count} events, {d.Digest}");
        }
        return report.IsHealthy ? ExitCodes.Success : ExitCodes.Failure;
    });

    static async Task<int> VerifyPostgres(StoreConnectionString store, Output output, CancellationToken ct)
    {
        await using var pg = new Factum.PostgreSql.PostgresEventStore(new Factum.PostgreSql.PostgresEventStoreOptions(store) { MigrateOnStart = false });
        var report = await Factum.PostgreSql.PostgresStoreVerifier.VerifyAsync(pg, ct);
        var (count, sum) = await CopyCommand.DigestAsync(pg, (await pg.GetHeadPositionAsync(ct)).Value, ct);
        if (output.Json)
        {
            output.JsonLine(w =>
            {
                w.WriteString("store", store.ToString());
                w.WriteBoolean("healthy", report.IsHealthy);
                w.WriteNumber("streams", report.Streams);
                w.WriteNumber("events", report.Events);
                w.WriteString("digest", sum);
                w.WriteStartArray("problems");
                foreach (var p in report.Problems) w.WriteStringValue(p);
                w.WriteEndArray();
            });
        }
        else
        {
            output.Writer.WriteLine(report.IsHealthy ? $"ok: {store} — {report.Streams} streams, {report.Events} events, no problems" : $"PROBLEMS in {store}:");
            foreach (var p in report.Problems) output.Writer.WriteLine($"  - {p}");
            output.Writer.WriteLine($"digest: {count} events, {sum}");
        }
        return report.IsHealthy ? ExitCodes.Success : ExitCodes.Failure;
    }
    root.Subcommands.Add(cmd);
}

// trace
{
    var correlation = new Argument<string>("correlation-id") { Description = "The correlation id of the business process (see the correlationId of any of its events)." };
    var cmd = new Command("trace", "Print the causation tree of one business process: which event caused which, across streams, with timestamps.") { correlation };
    data.AddTo(cmd);
    cmd.SetAction((pr, ct) => Cli.Run(pr, data, json, async (store, output) =>
    {
        var id = pr.GetValue(correlation)!;
        if (string.IsNullOrWhiteSpace(id)) throw new ArgumentException("The correlation id must not be empty.");
        var tree = await Cli.TraceAsync(store, id, ct);
        if (tree.Count == 0)
        {
            Output.Error($"no events carry correlation id '{id}'.");
            return ExitCodes.StreamNotFound;
        }
        if (output.Json) output.JsonLine(w => TraceJson.Write(w, tree));
        else output.Writer.Write(tree.Render());
        return ExitCodes.Success;
    }));
    root.Subcommands.Add(cmd);
}

// projections
{
    var projections = new Command("projections", "Read models: list, status, query, reset, rebuild, run, skip, parked.");
    var listCmd = new Command("list", "Every projection version: active, state, checkpoint, lag, documents, last error.");
    data.AddTo(listCmd);
    listCmd.SetAction((pr, ct) => Cli.RunOn(pr, data, json, Needs.Projections, async (backend, output) =>
    {
        var rows = await backend.Projections!.ListAsync(ct);
        ProjectionOutput.Print(output, rows);
        return ExitCodes.Success;
    }));
    var name = new Argument<string>("name") { Description = "The projection's name." };
    var statusCmd = new Command("status", "One projection: state, checkpoint, head, lag, failing event and error.") { name };
    data.AddTo(statusCmd);
    statusCmd.SetAction((pr, ct) => Cli.RunOn(pr, data, json, Needs.Projections, async (backend, output) =>
    {
        var rows = (await backend.Projections!.ListAsync(ct)).Where(p => p.Name == pr.GetValue(name)).ToList();
        if (rows.Count == 0) throw new ArgumentException($"There is no projection named '{pr.GetValue(name)}' in this store.");
        ProjectionOutput.Print(output, rows);
        return rows.Any(r => r.State == "Faulted") ? ExitCodes.Failure : ExitCodes.Success;
    }));
    var key = new Option<string?>("--key", "-k") { Description = "One document by key." };
    var where = new Option<string?>("--where") { Description = "PATH=VALUE: documents whose JSON value at PATH equals VALUE (e.g. view.customerId=c-ann)." };
    var queryCmd = new Command("query", "Print documents of a projection's active version.") { name, key, where };
    data.AddTo(queryCmd);
    queryCmd.SetAction((pr, ct) => Cli.RunOn(pr, data, json, Needs.Projections, async (backend, output) =>
    {
        var models = backend.Projections!;
        var n = pr.GetValue(name)!;
        IReadOnlyList<(string Key, string Json)> docs;
        if (pr.GetValue(key) is { } k)
        {
            var doc = await models.GetJsonAsync(n, k, ct);
            if (doc is null) { Output.Error($"projection '{n}' has no document '{k}'."); return ExitCodes.StreamNotFound; }
            docs = [(k, doc)];
        }
        else if (pr.GetValue(where) is { } w)
        {
            var eq = w.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0) throw new ArgumentException($"--where takes PATH=VALUE; got '{w}'.");
            docs = await models.QueryAsync(n, ProjectionOutput.WhereQuery(w[..eq], w[(eq + 1)..]), ct);
        }
        else docs = await models.QueryAsync(n, null, ct);
        if (output.Json)
            foreach (var (dk, dj) in docs)
                output.JsonLine(wr => { wr.WriteString("key", dk); wr.WritePropertyName("document"); using var d = System.Text.Json.JsonDocument.Parse(dj); d.WriteTo(wr); });
        else output.Table(["KEY", "DOCUMENT"], docs.Select(d => new[] { d.Key, d.Json }));
        return ExitCodes.Success;
    }));
    var resetCmd = new Command("reset", "Rebuild in place (development): empty the active version and rewind its checkpoint; the running application rebuilds it.") { name };
    data.AddTo(resetCmd);
    resetCmd.SetAction((pr, ct) => Cli.RunOn(pr, data, json, Needs.Projections, async (backend, output) =>
    {
        await backend.Projections!.ResetAsync(pr.GetValue(name)!, ct);
        output.Writer.WriteLine($"reset {pr.GetValue(name)}: documents emptied, checkpoint at 0");
        return ExitCodes.Success;
    }));
    Option<string> OnFailure() => new("--on-failure")
    {
        Description = "stop (default): stop on an event the projection cannot apply and say which; park: park it with its error and go on.",
        DefaultValueFactory = _ => "stop",
    };
    static Factum.Subscriptions.FailureAction ParseOnFailure(string value) => value switch
    {
        "stop" => Factum.Subscriptions.FailureAction.Stop,
        "park" => Factum.Subscriptions.FailureAction.Park,
        _ => throw new ArgumentException($"--on-failure takes stop or park; got '{value}'."),
    };
    Option<string> Lease() => new("--lease")
    {
        Description = "How long the runner's lease lasts without renewal (default 10s): one runner of a projection version runs across all processes sharing the store; another stands by and takes over within about this long after the owner dies.",
        DefaultValueFactory = _ => "10s",
    };
    var rebuildFailure = OnFailure();
    var rebuildLease = Lease();
    var rebuildCmd = new Command("rebuild", "Rebuild a projection this program knows (the demo's) from the first event, showing progress.") { name, rebuildFailure, rebuildLease };
    data.AddTo(rebuildCmd);
    rebuildCmd.SetAction((pr, ct) => Cli.RunOn(pr, data, json, Needs.Projections, (backend, output) => DemoProjections.RunFromCliAsync(backend.Projections!, backend.Leases, output, pr.GetValue(name)!,
        fromScratch: true, ParseOnFailure(pr.GetValue(rebuildFailure)!), Durations.ParseLease(pr.GetValue(rebuildLease)!), follow: false, ct)));
    var runFailure = OnFailure();
    var runLease = Lease();
    var follow = new Option<bool>("--follow") { Description = "Keep the projection live after it has caught up, until stopped (Ctrl+C)." };
    var runCmd = new Command("run", "Bring a projection this program knows (the demo's) up to date from its checkpoint, showing progress; with --follow, keep it live.") { name, runFailure, runLease, follow };
    data.AddTo(runCmd);
    runCmd.SetAction((pr, ct) => Cli.RunOn(pr, data, json, Needs.Projections, (backend, output) => DemoProjections.RunFromCliAsync(backend.Projections!, backend.Leases, output, pr.GetValue(name)!,
        fromScratch: false, ParseOnFailure(pr.GetValue(runFailure)!), Durations.ParseLease(pr.GetValue(runLease)!), pr.GetValue(follow), ct)));
    var skipCmd = new Command("skip", "For a projection stopped on an event it cannot apply: park that event with its error and move the checkpoint past it, so its next run goes on. The event stays in the log.") { name };
    data.AddTo(skipCmd);
    skipCmd.SetAction((pr, ct) => Cli.RunOn(pr, data, json, Needs.Projections, async (backend, output) =>
    {
        var n = pr.GetValue(name)!;
        foreach (var p in await backend.Projections!.SkipFailingEventAsync(n, ct))
        {
            if (output.Json) output.JsonLine(w => ProjectionOutput.WriteParked(w, p));
            else output.Writer.WriteLine($"{n}: parked {p.Type} at position {p.Position} ({p.StreamId} version {p.StreamVersion}); its next run starts after it. 'factum projections parked {n}' lists what it skipped.");
        }
        return ExitCodes.Success;
    }));
    var parkedCmd = new Command("parked", "The events a projection parked (its park policy, or a skip) with their errors: what its read model does not reflect.") { name };
    data.AddTo(parkedCmd);
    parkedCmd.SetAction((pr, ct) => Cli.RunOn(pr, data, json, Needs.Projections, async (backend, output) =>
    {
        ProjectionOutput.PrintParked(output, await backend.Projections!.ListParkedAsync(pr.GetValue(name)!, ct));
        return ExitCodes.Success;
    }));
    projections.Subcommands.Add(skipCmd);
    projections.Subcommands.Add(parkedCmd);
    projections.Subcommands.Add(runCmd);
    projections.Subcommands.Add(listCmd);
    projections.Subcommands.Add(statusCmd);
    projections.Subcommands.Add(queryCmd);
    projections.Subcommands.Add(resetCmd);
    projections.Subcommands.Add(rebuildCmd);
    root.Subcommands.Add(projections);
}

// migrate
{
    var print = new Option<bool>("--print") { Description = "Print the SQL that brings the store's schema up to date, without applying it (for DBAs who apply DDL themselves)." };
    var cmd = new Command("migrate", "Bring the store's schema up to date (PostgreSQL), or print the SQL that would; the embedded store migrates itself when it opens.") { print };
    data.AddTo(cmd);
    cmd.SetAction(async (pr, ct) =>
    {
        var output = new Output(Console.Out, pr.GetValue(json));
        try
        {
            var choice = data.Resolve(pr);
            if (choice.Store.Kind != StoreKind.PostgreSql)
            {
                output.Writer.WriteLine($"{choice.Store}: the store applies its migrations itself when it opens; nothing to do.");
                return ExitCodes.Success;
            }
            var options = new Factum.PostgreSql.PostgresEventStoreOptions(choice.Store);
            var (current, script) = await Factum.PostgreSql.PostgresEventStore.PlanMigrationAsync(options, ct);
            var latest = Factum.PostgreSql.PostgresEventStore.SchemaVersion;
            if (pr.GetValue(print))
            {
                output.Writer.WriteLine(script.Length == 0 ? $"-- schema {options.Schema} is at version {current}: up to date" : $"-- schema {options.Schema}: version {current} -> {latest}\n{script}");
                return ExitCodes.Success;
            }
            if (current < latest) await (await Factum.PostgreSql.PostgresEventStore.OpenAsync(options, ct)).DisposeAsync();
            output.Writer.WriteLine(current < latest ? $"schema {options.Schema}: migrated from version {current} to {latest}" : $"schema {options.Schema}: version {current}, up to date");
            return ExitCodes.Success;
        }
        catch (Exception ex)
        {
            return Cli.Fail(ex);
        }
    });
    root.Subcommands.Add(cmd);
}

// demo
{
    var cmd = new Command("demo", "Write a small order-fulfilment domain (orders, payments, shipments with correlated events) and print it.");
    data.AddTo(cmd);
    cmd.SetAction((pr, ct) => Cli.RunOn(pr, data, json, Needs.Transport, (backend, output) => Demo.RunAsync(backend, output, ct), create: true));
    root.Subcommands.Add(cmd);
}

MessagingCommands.Add(root, data, json);
CopyCommand.Add(root, json);
CatalogCommands.Add(root);

// Response files are off: a value such as `--stream @admin` is a value, never the name of a file to read arguments from.
var parse = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
if (parse.Errors.Count > 0 && parse.Action is not System.CommandLine.Help.HelpAction)
{
    foreach (var e in parse.Errors) Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.WriteLine("Run 'factum --help' for usage.");
    return ExitCodes.InvalidInput;
}
return await parse.InvokeAsync();
