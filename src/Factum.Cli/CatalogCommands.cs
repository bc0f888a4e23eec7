using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Factum.Design;

namespace Factum.Cli;

/// <summary>`factum catalog lint|compat|advise`: the design tooling over YAML catalogs and code-first registries.</summary>
internal static class CatalogCommands
{
    public static void Add(Command root)
    {
        var catalog = new Command("catalog", "The event catalog: lint it, check schema compatibility, get pattern and broker advice.");
        var paths = new Option<string[]>("--catalog", "-c") { Description = "A catalog YAML file or folder (repeatable; default ./catalog).", AllowMultipleArgumentsPerToken = false };
        var assemblies = new Option<string[]>("--assembly") { Description = "A built .NET assembly whose [EventType] registrations, handlers and [assembly: FactumService] join the catalog (repeatable). It is loaded into a collectible context that is unloaded afterwards, but this loads and runs the assembly's code (module initialisers, static constructors): only use assemblies you trust." };
        var format = new Option<string>("--format", "-f") { Description = "text (default), json or sarif.", DefaultValueFactory = _ => "text" };
        format.AcceptOnlyFromAmong("text", "json", "sarif");
        var store = new Option<string?>("--data") { Description = "A data directory holding factum.db: event types the store holds but the catalog does not list join it (with their inferred schemas)." };

        EventCatalogModel Load(ParseResult pr)
        {
            var files = pr.GetValue(paths) is { Length: > 0 } p ? p : ["./catalog"];
            var parts = new List<EventCatalogModel> { CatalogLoader.Load(files) };
            foreach (var dll in pr.GetValue(assemblies) ?? []) parts.Add(CodeCatalog.FromAssembly(dll));
            if (pr.CommandResult.Command.Options.Contains(store) && pr.GetValue(store) is { } dir)
            {
                // Only messages: the store's stream categories are not the catalog's services.
                var (observation, db) = ObserveStoreAsync(dir, CancellationToken.None).GetAwaiter().GetResult();
                parts.Add(Discovery.ToCatalog(observation, "store:" + db) with { Services = [] });
            }
            return CatalogLoader.Merge(parts);
        }

        // Every catalog command that reads a data directory opens it here: a missing factum.db is bad input, never an empty catalog.
        static async Task<(Observation Observation, string Db)> ObserveStoreAsync(string dir, CancellationToken ct)
        {
            var db = Cli.DbPath(dir);
            if (!File.Exists(db)) throw new CatalogFormatException(db, 0, "no store here (factum.db not found)");
            await using var store = new Factum.Sqlite.SqliteEventStore(db);
            return (await Discovery.ObserveAsync(store, ct), db);
        }

        int Run(Func<int> body)
        {
            try
            {
                return body();
            }
            catch (Exception ex) when (IsReported(ex))
            {
                return Report(ex);
            }
        }

        // Bad catalogs are exit 2 with file:line; a file the generators cannot write (permissions, a full disk, a file
        // where a folder should be) is exit 1 with the path — never a stack trace.
        static bool IsReported(Exception ex) => ex is CatalogFormatException or IOException or UnauthorizedAccessException;

        static int Report(Exception ex)
        {
            Output.Error(ex is CatalogFormatException ? ex.Message : $"cannot read or write a file: {ex.Message}");
            return ex is CatalogFormatException ? ExitCodes.InvalidInput : ExitCodes.Failure;
        }

        // lint
        {
            var baseline = new Option<string?>("--baseline") { Description = "A previous catalog (file or folder) to detect schemas changed without a new version." };
            var cmd = new Command("lint", "Check the catalog against the event-driven design rules; exit 1 when a rule at error level fails.") { paths, assemblies, format, baseline, store };
            cmd.SetAction(pr => Run(() =>
            {
                var model = Load(pr);
                var before = pr.GetValue(baseline) is { } b ? CatalogLoader.Load([b]) : null;
                var findings = LintRules.Lint(model, before);
                Console.Out.Write(pr.GetValue(format) switch
                {
                    "json" => FindingsReport.Json(findings) + Environment.NewLine,
                    "sarif" => FindingsReport.Sarif(findings) + Environment.NewLine,
                    _ => FindingsReport.Text(findings),
                });
                return findings.Any(f => f.Severity == Severity.Error) ? ExitCodes.Failure : ExitCodes.Success;
            }));
            catalog.Subcommands.Add(cmd);
        }

        // compat
        {
            var mode = new Option<string?>("--mode") { Description = "Check every message under this mode instead of its declared one: BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, NONE." };
            var message = new Option<string?>("--message", "-m") { Description = "Only this message." };
            var cmd = new Command("compat", "Check each message's schema versions under its compatibility mode (or --mode); every violation with its JSON path and rule.") { paths, assemblies, format, mode, message, store };
            cmd.SetAction(pr => Run(() =>
            {
                var model = Load(pr);
                CompatibilityMode? forced = pr.GetValue(mode) is { } m
                    ? Enum.TryParse<CompatibilityMode>(m.Replace("_", "", StringComparison.Ordinal), ignoreCase: true, out var parsed) ? parsed : throw new CatalogFormatException("--mode", 0, $"'{m}' is not a compatibility mode")
                    : null;
                var selected = model.Messages.Where(x => pr.GetValue(message) is not { } only || x.Name == only).OrderBy(x => x.Name, StringComparer.Ordinal).ToList();
                if (pr.GetValue(message) is { } name && selected.Count == 0) throw new CatalogFormatException("--message", 0, $"the catalog has no message '{name}'");
                var results = selected.Select(x => (Message: x, Result: SchemaCompatibility.Check(x.Versions.Where(v => v.Schema is not null).Select(v => (v.Version, v.Schema!)).ToList(), forced ?? x.Compatibility))).ToList();
                if (pr.GetValue(format) == "text")
                {
                    foreach (var (x, r) in results)
                    {
                        var versions = x.Versions.Count(v => v.Schema is not null);
                        Console.WriteLine($"{x.Name}: {LintRules.ModeName(r.Mode)} over {versions} version(s): {(r.Compatible ? "compatible" : $"INCOMPATIBLE ({r.Violations.Count} violation(s))")}");
                        foreach (var (reader, writer, v) in r.Violations) Console.WriteLine($"  v{reader} reading v{writer} data: {v.Path} [{v.Rule}] {v.Message}");
                    }
                }
                else
                {
                    var doc = new JsonArray(results.Select(t => (JsonNode)new JsonObject
                    {
                        ["message"] = t.Message.Name,
                        ["mode"] = LintRules.ModeName(t.Result.Mode),
                        ["compatible"] = t.Result.Compatible,
                        ["violations"] = new JsonArray(t.Result.Violations.Select(v => (JsonNode)new JsonObject
                        {
                            ["readerVersion"] = v.Reader,
                            ["writerVersion"] = v.Writer,
                            ["path"] = v.Violation.Path,
                            ["rule"] = v.Violation.Rule,
                            ["message"] = v.Violation.Message,
                        }).ToArray()),
                    }).ToArray());
                    Console.WriteLine(doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                }
                return results.All(t => t.Result.Compatible) ? ExitCodes.Success : ExitCodes.Failure;
            }));
            catalog.Subcommands.Add(cmd);
        }

        // advise
        {
            var cmd = new Command("advise", "Choose a messaging pattern per message and score brokers (Kafka, RabbitMQ, SQS/SNS, Pulsar, NATS JetStream, Factum) against the catalog's requirements.") { paths, assemblies, format, store };
            cmd.SetAction(pr => Run(() =>
            {
                var advice = Advisor.Advise(Load(pr));
                if (pr.GetValue(format) != "text")
                {
                    var doc = new JsonObject
                    {
                        ["patterns"] = new JsonArray(advice.Patterns.Select(p => (JsonNode)new JsonObject { ["message"] = p.Message, ["pattern"] = p.Pattern.ToString(), ["reason"] = p.Reason }).ToArray()),
                        ["requirements"] = new JsonArray(advice.Requirements.Select(r => (JsonNode)JsonValue.Create(r)!).ToArray()),
                        ["brokers"] = new JsonArray(advice.Brokers.Select(b => (JsonNode)new JsonObject
                        {
                            ["broker"] = b.Broker,
                            ["total"] = b.Total,
                            ["scores"] = new JsonArray(b.Scores.Select(s => (JsonNode)new JsonObject { ["criterion"] = s.Criterion, ["score"] = s.Score, ["reason"] = s.Reason }).ToArray()),
                        }).ToArray()),
                        ["recommendation"] = advice.Recommendation,
                        ["perMessage"] = new JsonArray(advice.PerChannel.Select(c => (JsonNode)new JsonObject { ["message"] = c.Message, ["broker"] = c.Broker, ["reason"] = c.Reason }).ToArray()),
                    };
                    Console.WriteLine(doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                    return ExitCodes.Success;
                }
                var output = new Output(Console.Out, false);
                Console.WriteLine("Patterns:");
                output.Table(["MESSAGE", "PATTERN", "WHY"], advice.Patterns.Select(p => new[] { p.Message, p.Pattern.ToString(), p.Reason }));
                Console.WriteLine();
                output.Wrapped("Requirements: " + string.Join("; ", advice.Requirements) + ".");
                Console.WriteLine();
                var criteria = advice.Brokers[0].Scores.Select(s => s.Criterion).ToList();
                output.Table(["BROKER", .. criteria.Select(c => c.ToUpperInvariant()), "TOTAL"],
                    advice.Brokers.Select(b => new[] { b.Broker }.Concat(b.Scores.Select(s => Output.Inv(s.Score))).Append(b.Total.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture)).ToArray()));
                Console.WriteLine();
                Console.WriteLine("Why each score:");
                foreach (var b in advice.Brokers)
                {
                    Console.WriteLine($"  {b.Broker}");
                    foreach (var s in b.Scores) output.Wrapped($"    {s.Criterion} {s.Score}: {s.Reason}", indent: 6);
                }
                Console.WriteLine();
                output.Wrapped("Recommendation: " + advice.Recommendation);
                Console.WriteLine("Per message:");
                foreach (var c in advice.PerChannel) output.Wrapped($"  {c.Message} → {c.Broker} ({c.Reason})", indent: 4);
                return ExitCodes.Success;
            }));
            catalog.Subcommands.Add(cmd);
        }

        // plan
        {
            var output = new Option<string>("--out", "-o") { Description = "The folder to write the topology files to (default ./topology).", DefaultValueFactory = _ => "./topology" };
            var title = new Option<string>("--title") { Description = "The AsyncAPI document's title.", DefaultValueFactory = _ => "Factum catalog" };
            var replicas = new Option<int>("--replicas") { Description = $"The cluster size to replicate over (1-5): Kafka's replication factor, NATS JetStream's num_replicas, RabbitMQ's quorum group size. Default {TopologyPlanner.DefaultReplicas}; use 1 for a single node (a single nats-server refuses more).", DefaultValueFactory = _ => TopologyPlanner.DefaultReplicas };
            replicas.Validators.Add(r => { if (r.GetValue(replicas) is < 1 or > 5) r.AddError("--replicas must be between 1 and 5"); });
            var cmd = new Command("plan", "Generate the topology: AsyncAPI 3.0, Kafka topics (script and Strimzi), RabbitMQ definitions, NATS JetStream configs (with dead-letter streams), SNS/SQS CloudFormation, and the ordering-and-retention page; ordered messages get single active consumers, one unacknowledged message per NATS consumer and FIFO queues.") { paths, assemblies, output, title, replicas, store };
            cmd.SetAction(pr => Run(() =>
            {
                var model = Load(pr);
                // Names a broker would refuse (or a script would misread) stop the plan before anything is written.
                var invalid = LintRules.Lint(model).Where(f => f.Rule == LintRules.BrokerNameRule && f.Severity == Severity.Error).ToList();
                if (invalid.Count > 0)
                {
                    foreach (var f in invalid) Output.Error($"{(f.Source is { } src ? src + ": " : "")}{f.Entity}: {f.Message}");
                    Output.Error($"refusing to generate the topology: {invalid.Count} name(s) the brokers do not accept (lint rule {LintRules.BrokerNameRule})");
                    return ExitCodes.InvalidInput;
                }
                var files = TopologyPlanner.Write(model, pr.GetValue(output)!, pr.GetValue(title)!, pr.GetValue(replicas));
                foreach (var p in TopologyPlanner.Plan(model))
                    Console.WriteLine($"{p.Kind} {p.Name}: {(p.Kind == "topic" ? $"{p.Partitions} partition(s), " : "")}key {p.PartitionKey ?? "-"}, groups {string.Join(", ", p.Groups.Select(g => g.Group))}");
                Console.WriteLine($"wrote {files.Count} file(s) to {pr.GetValue(output)}: {string.Join(", ", files.Select(f => Path.GetRelativePath(pr.GetValue(output)!, f)))}");
                return ExitCodes.Success;
            }));
            catalog.Subcommands.Add(cmd);
        }

        // docs
        {
            var output = new Option<string>("--out", "-o") { Description = "The folder to write the site to (default ./catalog-site): HTML at the root, Markdown under markdown/.", DefaultValueFactory = _ => "./catalog-site" };
            var mermaid = new Option<string?>("--mermaid") { Description = $"Where the pages get Mermaid: 'bundled' (the default: Mermaid {SiteGenerator.BundledMermaidVersion}, shipped inside factum, is written next to the pages, so the site works offline), 'cdn' (load it from {SiteGenerator.MermaidCdn}), or the path of a local mermaid.min.js to copy in." };
            var mermaidJs = new Option<string?>("--mermaid-js") { Description = "The path of a local mermaid.min.js to copy into the site (the same as --mermaid PATH)." };
            var title = new Option<string>("--title") { Description = "The site title.", DefaultValueFactory = _ => "Event catalog" };
            var cmd = new Command("docs", "Generate the catalog's documentation: a static HTML site that works offline (navigation, search, zoomable Mermaid flow diagrams per domain, schema field tables, version changelogs, lint findings) and the same pages in Markdown.") { paths, assemblies, output, mermaid, mermaidJs, title, store };
            cmd.SetAction(pr => Run(() =>
            {
                if (pr.GetValue(mermaid) is not null && pr.GetValue(mermaidJs) is not null) throw new CatalogFormatException("--mermaid-js", 0, "give --mermaid or --mermaid-js, not both");
                var files = SiteGenerator.Write(Load(pr), pr.GetValue(output)!, pr.GetValue(mermaid) ?? pr.GetValue(mermaidJs), pr.GetValue(title)!);
                Console.WriteLine($"wrote {files.Count} file(s) to {pr.GetValue(output)}; open {Path.Combine(pr.GetValue(output)!, "index.html")}");
                return ExitCodes.Success;
            }));
            catalog.Subcommands.Add(cmd);
        }

        // alerts
        {
            var output = new Option<string>("--out", "-o") { Description = "The folder to write factum-alerts.yaml and runbook.md to (default ./alerts).", DefaultValueFactory = _ => "./alerts" };
            var cmd = new Command("alerts", "Generate Prometheus alerting rules (consumer lag, queue backlog, dead letters, handler error rate, projection lag, stopped subscriptions) with thresholds from the catalog, and a runbook.") { paths, assemblies, output, store };
            cmd.SetAction(pr => Run(() =>
            {
                var model = Load(pr);
                var files = AlertPlanner.Write(model, pr.GetValue(output)!);
                foreach (var r in AlertPlanner.Rules(model)) Console.WriteLine($"{r.Severity,-8} {r.Name}: {r.Expr} for {AlertPlanner.Duration(r.For)} ({r.Threshold})");
                Console.WriteLine($"wrote {string.Join(", ", files)}");
                return ExitCodes.Success;
            }));
            catalog.Subcommands.Add(cmd);
        }

        var dataOpt = new Option<string?>("--data") { Description = "A data directory holding factum.db: its events join the comparison (diff) or are discovered." };

        // discover
        {
            var output = new Option<string?>("--out", "-o") { Description = "Write the discovered catalog YAML to this file (default: standard output)." };
            var cmd = new Command("discover", "Read a running store and write what it holds as catalog YAML: event types and versions, counts and rates, stream categories, payload schemas inferred from the stored JSON, and which types cause which.") { dataOpt, output };
            cmd.SetAction(async (pr, ct) =>
            {
                try
                {
                    var dir = pr.GetValue(dataOpt) ?? Environment.GetEnvironmentVariable("FACTUM_DATA") ?? "./factum-data";
                    var (observation, db) = await ObserveStoreAsync(dir, ct);
                    var yaml = Discovery.ToYaml(Discovery.ToCatalog(observation, "store"), $"Discovered by `factum catalog discover` from {db} on {DateTimeOffset.UtcNow:yyyy-MM-dd}: {observation.Events} events, {observation.Types.Count} types.\nObserved causation flows: {(observation.Causes.Count == 0 ? "none" : string.Join("; ", observation.Causes.OrderByDescending(c => c.Value).Select(c => $"{c.Key.Cause} -> {c.Key.Effect} ({c.Value})")))}.\nServices are the stream categories: each publishes what is appended to its streams and consumes what caused it.");
                    if (pr.GetValue(output) is { } file) { await File.WriteAllTextAsync(file, yaml, ct); Console.WriteLine($"wrote {file}: {observation.Types.Count} event type(s) from {observation.Events} event(s)"); }
                    else Console.Write(yaml);
                    return ExitCodes.Success;
                }
                catch (Exception ex) when (IsReported(ex))
                {
                    return Report(ex);
                }
            });
            catalog.Subcommands.Add(cmd);
        }

        // diff
        {
            var against = new Option<string?>("--against") { Description = "A second YAML catalog (file or folder) to compare with --catalog." };
            var cmd = new Command("diff", "Report where the catalog's sources disagree: the YAML catalog (--catalog) against a second catalog (--against), the code-first registry (--assembly) or what a store holds (--data). Exit 1 when they differ.") { paths, assemblies, against, dataOpt, format };
            cmd.SetAction(async (pr, ct) =>
            {
                try
                {
                    var files = pr.GetValue(paths) is { Length: > 0 } p ? p : ["./catalog"];
                    var sources = new List<(string Name, EventCatalogModel Model)> { ("yaml", CatalogLoader.Load(files)) };
                    if (pr.GetValue(against) is { } other) sources.Add(("against", CatalogLoader.Load([other])));
                    foreach (var dll in pr.GetValue(assemblies) ?? []) sources.Add(("code", CodeCatalog.FromAssembly(dll)));
                    if (pr.GetValue(dataOpt) is { } dir)
                    {
                        var (observation, db) = await ObserveStoreAsync(dir, ct);
                        // The store's stream categories and handlers expressed as the catalog's services (streams: lists, publishers).
                        sources.Add(("store", Discovery.ToCatalog(observation, "store:" + db, sources[0].Model)));
                    }
                    if (sources.Count < 2) throw new CatalogFormatException("diff", 0, "give a second source: --against, --assembly or --data");
                    var all = new List<(string Left, string Right, CatalogDifference D)>();
                    for (var i = 1; i < sources.Count; i++)
                        all.AddRange(CatalogDiff.Compare(sources[0].Model, sources[i].Model).Select(d => (sources[0].Name, sources[i].Name, d)));
                    if (pr.GetValue(format) == "text")
                    {
                        // An empty side says so, rather than printing "store " with nothing after it.
                        static string Side(string? v) => string.IsNullOrEmpty(v) ? "(none)" : v;
                        foreach (var (l, r, d) in all) Console.WriteLine($"{d.Entity}: {d.Aspect}: {l} {Side(d.Left)} | {r} {Side(d.Right)}");
                        Console.WriteLine($"{all.Count} difference(s)");
                    }
                    else
                    {
                        Console.WriteLine(new JsonArray(all.Select(x => (JsonNode)new JsonObject { ["entity"] = x.D.Entity, ["aspect"] = x.D.Aspect, ["left"] = x.Left, ["leftValue"] = x.D.Left, ["right"] = x.Right, ["rightValue"] = x.D.Right }).ToArray()).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                    }
                    return all.Count == 0 ? ExitCodes.Success : ExitCodes.Failure;
                }
                catch (Exception ex) when (IsReported(ex))
                {
                    return Report(ex);
                }
            });
            catalog.Subcommands.Add(cmd);
        }

        // import-storming
        {
            var board = new Argument<string>("board") { Description = "The Event Storming / Event Modeling board (YAML or JSON; see docs/catalog.md)." };
            var output = new Option<string?>("--out", "-o") { Description = "Write the catalog skeleton YAML to this file (default: standard output)." };
            var cmd = new Command("import-storming", "Turn an Event Storming or Event Modeling board (contexts, actors, commands, events, policies, read models, external systems) into a catalog skeleton.") { board, output };
            cmd.SetAction(pr => Run(() =>
            {
                var path = pr.GetValue(board)!;
                var model = StormingImport.Import(CatalogLoader.ReadBounded(path, CatalogLoader.MaxCatalogFileBytes, "board"), path);
                var yaml = Discovery.ToYaml(model, $"Imported by `factum catalog import-storming` from {Path.GetFileName(path)}. Fill in owners, schemas, partition keys, rates.");
                if (pr.GetValue(output) is { } file)
                {
                    // The folder the docs name (catalog/skeleton.yaml) may not exist yet: create it rather than crash.
                    if (Path.GetDirectoryName(Path.GetFullPath(file)) is { } folder) Directory.CreateDirectory(folder);
                    File.WriteAllText(file, yaml);
                    Console.WriteLine($"wrote {file}: {model.Domains.Count} domain(s), {model.Services.Count} service(s), {model.Messages.Count} message(s)");
                }
                else Console.Write(yaml);
                return ExitCodes.Success;
            }));
            catalog.Subcommands.Add(cmd);
        }

        // export-eventcatalog
        {
            var output = new Option<string>("--out", "-o") { Description = "The EventCatalog project folder to write into (default ./eventcatalog).", DefaultValueFactory = _ => "./eventcatalog" };
            var title = new Option<string>("--title") { Description = "The catalog's title in eventcatalog.config.js.", DefaultValueFactory = _ => "Event catalog" };
            var cmd = new Command("export-eventcatalog", $"Export a complete EventCatalog project: package.json (@eventcatalog/core {EventCatalogExport.CoreVersionRange}), eventcatalog.config.js, and index.mdx with frontmatter per domain, service, event, command, query and team (older versions under versioned/). Build it with npm install && npm run build.") { paths, assemblies, output, title };
            cmd.SetAction(pr => Run(() =>
            {
                var files = EventCatalogExport.Write(Load(pr), pr.GetValue(output)!, pr.GetValue(title)!);
                Console.WriteLine($"wrote {files.Count} file(s) to {pr.GetValue(output)}; build the site with: cd {pr.GetValue(output)} && npm install && npm run build (Node.js 20 or later)");
                return ExitCodes.Success;
            }));
            catalog.Subcommands.Add(cmd);
        }

        root.Subcommands.Add(catalog);
    }
}
