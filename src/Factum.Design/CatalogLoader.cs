using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Factum.Design;

/// <summary>A catalog file that cannot be read: names the file, the line and what is wrong.</summary>
public sealed class CatalogFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CatalogFormatException(string file, int line, string problem)
        : base(line > 0 ? $"{file}:{line}: {problem}" : $"{file}: {problem}")
    {
        File = file;
        Line = line;
        Problem = problem;
    }

    /// <summary>Creates the exception.</summary>
    public CatalogFormatException() : this("", 0, "invalid catalog") { }

    /// <summary>Creates the exception.</summary>
    public CatalogFormatException(string message) : this("", 0, message) { }

    /// <summary>Creates the exception.</summary>
    public CatalogFormatException(string message, Exception inner) : base(message, inner)
    {
        File = "";
        Problem = message;
    }

    /// <summary>The file.</summary>
    public string File { get; }

    /// <summary>The 1-based line, or 0.</summary>
    public int Line { get; }

    /// <summary>What is wrong.</summary>
    public string Problem { get; }
}

/// <summary>
/// Reads YAML catalog files (one file, or every <c>*.yaml</c>/<c>*.yml</c> below a folder) into one model. The format is
/// documented in <c>docs/catalog.md</c>; every section is optional and files may split the catalog any way.
/// </summary>
public static class CatalogLoader
{
    /// <summary>The largest catalog YAML file read (16 MiB).</summary>
    public const long MaxCatalogFileBytes = 16L << 20;

    /// <summary>The largest schema file read (4 MiB).</summary>
    public const long MaxSchemaFileBytes = 4L << 20;

    /// <summary>The deepest nesting of YAML mappings and sequences accepted.</summary>
    public const int MaxNesting = 64;

    /// <summary>The most YAML nodes a file may hold once its aliases are expanded.</summary>
    public const long MaxNodes = 100_000;

    private static readonly string[] TopLevel = ["domains", "teams", "services", "messages", "events", "commands", "queries", "channels", "lint", "system"];

    /// <summary>Loads and merges <paramref name="paths"/> (files or folders).</summary>
    /// <exception cref="CatalogFormatException">A file does not parse or holds a wrong value; nothing is partially loaded.</exception>
    public static EventCatalogModel Load(IEnumerable<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var parts = new List<EventCatalogModel>();
        foreach (var path in paths)
        {
            if (Directory.Exists(path))
            {
                var files = Directory.EnumerateFiles(path, "*.*", SearchOption.AllDirectories)
                    .Where(f => f.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".yml", StringComparison.OrdinalIgnoreCase))
                    .Order(StringComparer.Ordinal).ToList();
                if (files.Count == 0) throw new CatalogFormatException(path, 0, "the folder holds no .yaml or .yml catalog file");
                var root = Path.GetFullPath(path);
                parts.AddRange(files.Select(f => LoadFile(f, root)));
            }
            else if (File.Exists(path)) parts.Add(LoadFile(path, Path.GetDirectoryName(Path.GetFullPath(path))!));
            else throw new CatalogFormatException(path, 0, "no such file or folder");
        }
        return Merge(parts, strict: true);
    }

    /// <summary>
    /// Loads one YAML text (for tests and tools); <paramref name="file"/> names it in errors. Schema files are read
    /// relative to <paramref name="baseDirectory"/> and only from below it.
    /// </summary>
    public static EventCatalogModel Parse(string yaml, string file = "catalog.yaml", string? baseDirectory = null) => Parse(yaml, file, baseDirectory ?? ".", baseDirectory ?? ".");

    private static EventCatalogModel Parse(string yaml, string file, string baseDirectory, string root)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        var stream = LoadYaml(yaml, file, "YAML");
        var parts = stream.Documents.Select(d => d.RootNode is YamlMappingNode top ? Read(top, file, baseDirectory, root) : throw Error(file, d.RootNode, "the top level must be a mapping (domains:, services:, messages:, …)")).ToList();
        return Merge(parts, strict: true);
    }

    private static EventCatalogModel LoadFile(string path, string root) =>
        Parse(ReadBounded(path, MaxCatalogFileBytes, "catalog file"), path, Path.GetDirectoryName(Path.GetFullPath(path))!, root);

    /// <summary>
    /// Parses YAML after checking, on the parser's events, that it nests at most <see cref="MaxNesting"/> levels and
    /// expands (aliases included) to at most <see cref="MaxNodes"/> nodes: neither the parser's nor the converters'
    /// recursion can overflow the stack, and no alias bomb is expanded.
    /// </summary>
    /// <exception cref="CatalogFormatException">The text is not valid YAML or breaks a limit (file and line named).</exception>
    internal static YamlStream LoadYaml(string text, string file, string what)
    {
        try
        {
            CheckShape(text, file);
            var stream = new YamlStream();
            stream.Load(new StringReader(text));
            return stream;
        }
        catch (YamlException ex)
        {
            throw new CatalogFormatException(file, (int)ex.Start.Line, $"not valid {what}: {ex.InnerException?.Message ?? ex.Message}");
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet's parser gives up on some malformed input with these instead of a YamlException (found by fuzzing).
            throw new CatalogFormatException(file, 0, $"not valid {what}: the YAML parser could not read it ({ex.Message})");
        }
    }

    private static void CheckShape(string text, string file)
    {
        var parser = new Parser(new StringReader(text));
        var open = new List<(long Nodes, AnchorName Anchor)>();
        var anchors = new Dictionary<string, long>(StringComparer.Ordinal);
        long total = 0;
        while (parser.MoveNext())
        {
            var e = parser.Current!;
            switch (e)
            {
                case Scalar scalar:
                    Add(1, scalar.Anchor, e);
                    break;
                case AnchorAlias alias:
                    // An alias to a node it is inside makes the document a cycle: every walk over it would never end
                    // (found by the long catalog-yaml fuzz run: a stack overflow converting a schema).
                    if (open.Any(o => !o.Anchor.IsEmpty && o.Anchor.Value == alias.Value.Value))
                        throw new CatalogFormatException(file, (int)e.Start.Line, $"the alias *{alias.Value.Value} refers to the node it is inside, so the YAML would be infinite");
                    Add(anchors.GetValueOrDefault(alias.Value.Value, 1), AnchorName.Empty, e);
                    break;
                case NodeEvent start and (SequenceStart or MappingStart):
                    if (open.Count == MaxNesting) throw new CatalogFormatException(file, (int)e.Start.Line, $"nests mappings and lists deeper than {MaxNesting} levels");
                    open.Add((1, start.Anchor));
                    break;
                case SequenceEnd or MappingEnd:
                    var (nodes, anchor) = open[^1];
                    open.RemoveAt(open.Count - 1);
                    Add(nodes, anchor, e);
                    break;
            }
        }

        void Add(long nodes, AnchorName anchor, ParsingEvent at)
        {
            if (!anchor.IsEmpty) anchors[anchor.Value] = nodes;
            var sum = open.Count > 0 ? open[^1].Nodes + nodes : total + nodes;
            if (sum > MaxNodes) throw new CatalogFormatException(file, (int)at.Start.Line, $"holds more than {MaxNodes} values once its aliases (*name) are expanded");
            if (open.Count > 0) open[^1] = (sum, open[^1].Anchor);
            else total = sum;
        }
    }

    /// <summary>
    /// Reads a text file of at most <paramref name="limit"/> bytes through a bounded stream. A file that reports no
    /// length (empty, or a device, a pipe or a /proc file) is not opened and reads as empty.
    /// </summary>
    /// <exception cref="CatalogFormatException">The file does not exist or is larger than the limit.</exception>
    public static string ReadBounded(string path, long limit, string what)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new CatalogFormatException(path, 0, "no such file");
        if (info.Length > limit) throw new CatalogFormatException(path, 0, $"the {what} is {info.Length} bytes; the limit is {limit >> 20} MiB");
        if (info.Length == 0) return "";
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        var buffer = new byte[(int)Math.Min(limit + 1, info.Length + 1)];
        var read = 0;
        int n;
        while (read < buffer.Length && (n = stream.Read(buffer, read, buffer.Length - read)) > 0) read += n;
        if (read > info.Length || read > limit) throw new CatalogFormatException(path, 0, $"the {what} grew while it was read, past its size or the {limit >> 20} MiB limit");
        return new System.Text.UTF8Encoding(false, false).GetString(buffer, 0, read).TrimStart('\uFEFF');
    }

    /// <summary>
    /// Merges catalogs: entities with the same id are combined (later lists extend earlier ones); a message's versions are
    /// united by number, and where two parts define the same version the first part's schema is kept. Use this to join
    /// sources that describe the same version in different words (YAML, code, a store's inferred schemas).
    /// </summary>
    public static EventCatalogModel Merge(IEnumerable<EventCatalogModel> parts) => Merge(parts, strict: false);

    /// <summary>
    /// Merges catalog files. With <paramref name="strict"/>, the same version of a message defined in two places with
    /// different schemas is an error naming both places: a catalog file is the source of truth, so two truths for one
    /// version are a mistake to fix, not a choice to make silently.
    /// </summary>
    /// <exception cref="CatalogFormatException">With <paramref name="strict"/>: a version is defined twice with different schemas.</exception>
    internal static EventCatalogModel Merge(IEnumerable<EventCatalogModel> parts, bool strict)
    {
        ArgumentNullException.ThrowIfNull(parts);
        var list = parts.ToList();
        var messages = new Dictionary<string, CatalogMessage>(StringComparer.Ordinal);
        foreach (var m in list.SelectMany(p => p.Messages))
        {
            if (!messages.TryGetValue(m.Name, out var existing)) { messages[m.Name] = m; continue; }
            // A field set in any file counts (the first file that sets it wins); lists are united.
            messages[m.Name] = existing with
            {
                Kind = existing.Kind != CatalogMessageKind.Event ? existing.Kind : m.Kind,
                Ordering = existing.Ordering != OrderingRequirement.None ? existing.Ordering : m.Ordering,
                Compatibility = existing.Compatibility != CompatibilityMode.Backward ? existing.Compatibility : m.Compatibility,
                Replay = existing.Replay || m.Replay,
                Rate = existing.Rate ?? m.Rate,
                Retention = existing.Retention ?? m.Retention,
                Latency = existing.Latency ?? m.Latency,
                Delivery = existing.Delivery ?? m.Delivery,
                Durability = existing.Durability ?? m.Durability,
                Envelope = existing.Envelope ?? m.Envelope,
                Owners = existing.Owners.Union(m.Owners, StringComparer.Ordinal).ToList(),
                Producers = existing.Producers.Union(m.Producers, StringComparer.Ordinal).ToList(),
                Consumers = existing.Consumers.Union(m.Consumers, StringComparer.Ordinal).ToList(),
                Versions = MergeVersions(existing, m, strict),
                Description = existing.Description ?? m.Description,
                Classification = existing.Classification ?? m.Classification,
                PartitionKey = existing.PartitionKey ?? m.PartitionKey,
                CorrelationKey = existing.CorrelationKey ?? m.CorrelationKey,
                Reply = existing.Reply ?? m.Reply,
            };
        }
        var services = new Dictionary<string, CatalogService>(StringComparer.Ordinal);
        foreach (var s in list.SelectMany(p => p.Services))
        {
            if (!services.TryGetValue(s.Id, out var e)) { services[s.Id] = s; continue; }
            services[s.Id] = e with
            {
                Domain = e.Domain ?? s.Domain,
                Owner = e.Owner ?? s.Owner,
                Publishes = e.Publishes.Union(s.Publishes, StringComparer.Ordinal).ToList(),
                Sends = e.Sends.Union(s.Sends, StringComparer.Ordinal).ToList(),
                Consumes = e.Consumes.Union(s.Consumes, StringComparer.Ordinal).ToList(),
                Requests = e.Requests.Union(s.Requests, StringComparer.Ordinal).ToList(),
                External = e.External || s.External,
                Streams = e.Streams.Union(s.Streams, StringComparer.Ordinal).ToList(),
                Instances = e.Instances ?? s.Instances,
                InstancesPerMessage = s.InstancesPerMessage.Concat(e.InstancesPerMessage).GroupBy(kv => kv.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Last().Value, StringComparer.Ordinal),
            };
        }
        var lint = list.Select(p => p.Lint).Aggregate(new LintSettings(), (a, b) => new LintSettings
        {
            Disabled = a.Disabled.Concat(b.Disabled).GroupBy(kv => kv.Key).ToDictionary(g => g.Key, g => g.Last().Value),
            Severities = a.Severities.Concat(b.Severities).GroupBy(kv => kv.Key).ToDictionary(g => g.Key, g => g.Last().Value),
            MaxFields = b.MaxFields != new LintSettings().MaxFields ? b.MaxFields : a.MaxFields,
            MaxDepth = b.MaxDepth != new LintSettings().MaxDepth ? b.MaxDepth : a.MaxDepth,
            MaxPayloadBytes = b.MaxPayloadBytes != new LintSettings().MaxPayloadBytes ? b.MaxPayloadBytes : a.MaxPayloadBytes,
        });
        return new EventCatalogModel
        {
            Domains = list.SelectMany(p => p.Domains).DistinctBy(d => d.Id).ToList(),
            Teams = list.SelectMany(p => p.Teams).DistinctBy(t => t.Id).ToList(),
            Services = services.Values.ToList(),
            Messages = messages.Values.ToList(),
            Channels = list.SelectMany(p => p.Channels).DistinctBy(c => c.Id).ToList(),
            Lint = lint,
            MultiTenant = list.Any(p => p.MultiTenant),
            GeoReplication = list.Any(p => p.GeoReplication),
            Managed = list.Any(p => p.Managed),
        };
    }

    private static List<MessageVersion> MergeVersions(CatalogMessage first, CatalogMessage second, bool strict)
    {
        var versions = first.Versions.ToDictionary(v => v.Version);
        foreach (var v in second.Versions)
        {
            if (!versions.TryGetValue(v.Version, out var kept)) { versions[v.Version] = v; continue; }
            if (kept.Schema is null) { versions[v.Version] = v with { Changelog = kept.Changelog ?? v.Changelog }; continue; }
            if (strict && v.Schema is not null && !JsonNode.DeepEquals(kept.Schema, v.Schema))
            {
                var here = v.Source ?? second.Source;
                var there = kept.Source ?? first.Source;
                throw new CatalogFormatException(here?.File ?? "", here?.Line ?? 0,
                    $"message '{second.Name}' v{v.Version} is defined twice with different schemas: at {there?.ToString() ?? "an earlier file"} and here; keep one definition (a changed schema is a new version)");
            }
        }
        return versions.Values.OrderBy(v => v.Version).ToList();
    }

    private static EventCatalogModel Read(YamlMappingNode root, string file, string baseDir, string catalogRoot)
    {
        foreach (var key in root.Children.Keys)
        {
            var k = Key(file, key);
            if (!TopLevel.Contains(k)) throw Error(file, key, $"unknown section '{k}'; expected one of {string.Join(", ", TopLevel)}");
        }
        var messages = new List<CatalogMessage>();
        foreach (var (section, kind) in new[] { ("messages", (CatalogMessageKind?)null), ("events", CatalogMessageKind.Event), ("commands", CatalogMessageKind.Command), ("queries", CatalogMessageKind.Query) })
        {
            foreach (var m in Items(root, section, file)) messages.Add(ReadMessage(m, file, baseDir, catalogRoot, kind));
        }
        var system = Get(root, "system") as YamlMappingNode;
        if (system is not null) KnownKeys(system, file, "system", SystemKeys);
        return new EventCatalogModel
        {
            Domains = Items(root, "domains", file).Select(d => new CatalogDomain(Req(d, "id", file), Str(d, "name", file), Str(d, "description", file), Loc(file, d))).ToList(),
            Teams = Items(root, "teams", file).Select(t => new CatalogTeam(Req(t, "id", file), Str(t, "name", file), Loc(file, t))).ToList(),
            Services = Items(root, "services", file).Select(s => Checked(s, file, $"service '{Str(s, "id", file) ?? "?"}'", ServiceKeys)).Select(s => new CatalogService
            {
                Id = Req(s, "id", file),
                Domain = Str(s, "domain", file),
                Owner = Str(s, "owner", file),
                Description = Str(s, "description", file),
                Publishes = List(s, "publishes", file),
                Sends = List(s, "sends", file),
                Consumes = List(s, "consumes", file),
                Requests = List(s, "requests", file),
                External = Bool(s, "external", file) ?? false,
                Streams = List(s, "streams", file),
                Instances = Positive(s, "instances", file),
                InstancesPerMessage = PerMessage(s, "instancesPerMessage", file),
                Source = Loc(file, s),
            }).ToList(),
            Messages = messages,
            Channels = Items(root, "channels", file).Select(c => Checked(c, file, $"channel '{Str(c, "id", file) ?? "?"}'", ChannelKeys)).Select(c => new CatalogChannel
            {
                Id = Req(c, "id", file),
                Broker = Str(c, "broker", file),
                Kind = OneOf(c, "kind", file, ["topic", "queue", "stream", "request-reply"]) ?? "topic",
                Messages = List(c, "messages", file),
                CompetingConsumers = Bool(c, "competingConsumers", file) ?? false,
                Source = Loc(file, c),
            }).ToList(),
            Lint = Get(root, "lint") is YamlMappingNode lint ? ReadLint(lint, file) : new LintSettings(),
            MultiTenant = system is not null && (Bool(system, "multiTenant", file) ?? false),
            GeoReplication = system is not null && (Bool(system, "geoReplication", file) ?? false),
            Managed = system is not null && (Bool(system, "managed", file) ?? false),
        };
    }

    private static readonly string[] MessageKeys = ["name", "kind", "classification", "owner", "description", "producers", "consumers", "partitionKey", "correlationKey",
        "reply", "ordering", "delivery", "durability", "replay", "rate", "retention", "latency", "compatibility", "envelope", "versions"];

    private static readonly string[] VersionKeys = ["version", "schema", "schemaFile", "changelog"];

    private static readonly string[] ServiceKeys = ["id", "name", "domain", "owner", "description", "publishes", "sends", "consumes", "requests", "external", "streams", "instances", "instancesPerMessage"];

    private static readonly string[] ChannelKeys = ["id", "broker", "kind", "messages", "competingConsumers"];

    private static readonly string[] SystemKeys = ["multiTenant", "geoReplication", "managed"];

    /// <summary>
    /// Refuses a key the format does not know, naming it and the ones it does: a misspelt or misplaced key (a schema put
    /// on the message instead of under versions:) would otherwise be dropped without a word.
    /// </summary>
    private static void KnownKeys(YamlMappingNode node, string file, string what, string[] allowed, string? hint = null)
    {
        foreach (var key in node.Children.Keys)
        {
            var k = Key(file, key);
            if (!allowed.Contains(k, StringComparer.Ordinal))
                throw Error(file, key, $"unknown key '{k}' in {what}; expected one of {string.Join(", ", allowed)}{hint}");
        }
    }

    private static YamlMappingNode Checked(YamlMappingNode node, string file, string what, string[] allowed)
    {
        KnownKeys(node, file, what, allowed);
        return node;
    }

    private static CatalogMessage ReadMessage(YamlMappingNode m, string file, string baseDir, string catalogRoot, CatalogMessageKind? sectionKind)
    {
        KnownKeys(m, file, $"message '{Str(m, "name", file) ?? "?"}'", MessageKeys,
            Get(m, "schema") is not null || Get(m, "schemaFile") is not null ? " (a schema belongs to a version: versions: [{version: 1, schema: …}])" : null);
        var kindText = OneOf(m, "kind", file, ["event", "command", "query"]);
        var kind = kindText is null ? sectionKind ?? CatalogMessageKind.Event : Enum.Parse<CatalogMessageKind>(kindText, ignoreCase: true);
        var versions = new List<MessageVersion>();
        foreach (var v in Items(m, "versions", file))
        {
            KnownKeys(v, file, "a version", VersionKeys);
            var number = Int(v, "version", file) ?? throw Error(file, v, "a version needs 'version: N'");
            JsonObject? schema = null;
            if (Get(v, "schema") is { } inline) schema = ToJson(inline, file) as JsonObject ?? throw Error(file, inline, "'schema' must be a JSON Schema object");
            else if (Str(v, "schemaFile", file) is { } schemaFile) schema = ReadSchemaFile(schemaFile, Get(v, "schemaFile")!, file, baseDir, catalogRoot);
            versions.Add(new MessageVersion(number, schema, Str(v, "changelog", file), Loc(file, v)));
        }
        if (versions.Select(v => v.Version).Distinct().Count() != versions.Count) throw Error(file, m, $"message '{Req(m, "name", file)}' lists a version twice");
        var owner = Get(m, "owner");
        return new CatalogMessage
        {
            Name = Req(m, "name", file),
            Kind = kind,
            Classification = OneOf(m, "classification", file, ["domain", "integration", "system"]),
            Owners = owner is YamlSequenceNode ? List(m, "owner", file) : Str(m, "owner", file) is { } o ? [o] : [],
            Description = Str(m, "description", file),
            Producers = List(m, "producers", file),
            Consumers = List(m, "consumers", file),
            PartitionKey = Str(m, "partitionKey", file),
            CorrelationKey = Str(m, "correlationKey", file),
            Reply = Str(m, "reply", file),
            Ordering = OneOf(m, "ordering", file, ["none", "per-key", "total"]) switch { "per-key" => OrderingRequirement.PerKey, "total" => OrderingRequirement.Total, _ => OrderingRequirement.None },
            Delivery = OneOf(m, "delivery", file, ["at-most-once", "at-least-once", "exactly-once"]),
            Durability = OneOf(m, "durability", file, ["durable", "transient"]),
            Replay = Bool(m, "replay", file) ?? false,
            Rate = Rate(m, file),
            Retention = Duration(m, "retention", file),
            Latency = Duration(m, "latency", file),
            Compatibility = OneOf(m, "compatibility", file, ["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"]) is { } c
                ? Enum.Parse<CompatibilityMode>(c.Replace("_", "", StringComparison.Ordinal), ignoreCase: true)
                : CompatibilityMode.Backward,
            Envelope = Get(m, "envelope") is null ? null : List(m, "envelope", file),
            Versions = versions.OrderBy(v => v.Version).ToList(),
            Source = Loc(file, m),
        };
    }

    /// <summary>
    /// Reads a schema file: a regular file below the catalog's root folder (after resolving links), at most
    /// <see cref="MaxSchemaFileBytes"/>, holding a JSON object. Errors never quote the file's content.
    /// </summary>
    private static JsonObject ReadSchemaFile(string schemaFile, YamlNode node, string file, string baseDir, string catalogRoot)
    {
        var full = Path.GetFullPath(Path.Combine(baseDir, schemaFile));
        var real = SafePaths.RealPath(full);
        if (!SafePaths.IsInside(real, SafePaths.RealPath(catalogRoot)))
            throw Error(file, node, $"schema file '{schemaFile}' lies outside the catalog folder {Path.GetFullPath(catalogRoot)}; schema files are read only from below it");
        var info = new FileInfo(real);
        if (!info.Exists) throw Error(file, node, $"schema file '{schemaFile}' not found (looked in {baseDir})");
        if (info.Length == 0) throw Error(file, node, $"schema file '{schemaFile}' is empty or not a regular file");
        if (info.Length > MaxSchemaFileBytes) throw Error(file, node, $"schema file '{schemaFile}' is {info.Length} bytes; the limit is {MaxSchemaFileBytes >> 20} MiB");
        var text = ReadBounded(real, MaxSchemaFileBytes, "schema file");
        // JsonNode decodes lazily: an escaped lone surrogate or a duplicate property name would parse here and crash the
        // compatibility check later (both found by fuzzing). Checked strictly now, as the store checks payloads; no
        // message quotes the file's content.
        const string BadEscape = "holds an escape that is not valid Unicode (such as a lone surrogate)";
        try
        {
            var schema = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }) as JsonObject
                ?? throw Error(file, node, $"'{schemaFile}' is not a JSON object");
            if (JsonText.Check(System.Text.Encoding.UTF8.GetBytes(text)) is not null) throw Error(file, node, $"schema file '{schemaFile}' {BadEscape}");
            return schema;
        }
        catch (InvalidOperationException)
        {
            throw Error(file, node, $"schema file '{schemaFile}' {BadEscape}");
        }
        catch (JsonException ex)
        {
            // The parser's message can quote the content (its first character); say only where it failed.
            throw new CatalogFormatException(full, (int)(ex.LineNumber ?? -1) + 1, $"not valid JSON (at byte {(ex.BytePositionInLine ?? 0) + 1} of the line, or nested deeper than 64 levels)");
        }
    }

    private static LintSettings ReadLint(YamlMappingNode lint, string file)
    {
        var disabled = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var d in Items(lint, "disable", file))
        {
            var rule = Req(d, "rule", file);
            if (!LintRules.Ids.Contains(rule)) throw Error(file, d, $"unknown lint rule '{rule}'; rules are {string.Join(", ", LintRules.Ids)}");
            disabled[rule] = Str(d, "reason", file) ?? throw Error(file, d, $"disabling '{rule}' needs a 'reason'");
        }
        var severities = new Dictionary<string, Severity>(StringComparer.Ordinal);
        if (Get(lint, "severity") is YamlMappingNode sev)
        {
            foreach (var (k, v) in sev.Children)
            {
                var rule = Key(file, k);
                if (!LintRules.Ids.Contains(rule)) throw Error(file, k, $"unknown lint rule '{rule}'");
                var text = (v as YamlScalarNode)?.Value;
                severities[rule] = text?.ToLowerInvariant() switch
                {
                    "error" => Severity.Error,
                    "warning" => Severity.Warning,
                    "note" or "info" => Severity.Note,
                    _ => throw Error(file, v, $"severity of '{rule}' must be error, warning or note, not '{text}'"),
                };
            }
        }
        var defaults = new LintSettings();
        return new LintSettings
        {
            Disabled = disabled,
            Severities = severities,
            MaxFields = Int(lint, "maxFields", file) ?? defaults.MaxFields,
            MaxDepth = Int(lint, "maxDepth", file) ?? defaults.MaxDepth,
            MaxPayloadBytes = Int(lint, "maxPayloadBytes", file) ?? defaults.MaxPayloadBytes,
        };
    }

    // ---------------------------------------------------------------- YAML helpers

    private static CatalogFormatException Error(string file, YamlNode node, string problem) => new(file, (int)node.Start.Line, problem);

    private static SourceLocation Loc(string file, YamlNode node) => new(file, (int)node.Start.Line);

    private static string Key(string file, YamlNode key) => (key as YamlScalarNode)?.Value ?? throw Error(file, key, "keys must be plain names");

    private static YamlNode? Get(YamlMappingNode map, string key) =>
        map.Children.FirstOrDefault(kv => kv.Key is YamlScalarNode s && s.Value == key).Value;

    private static IEnumerable<YamlMappingNode> Items(YamlMappingNode map, string key, string file)
    {
        var node = Get(map, key);
        if (node is null || node is YamlScalarNode { Value: null or "" or "~" or "null" }) return [];
        if (node is not YamlSequenceNode seq) throw Error(file, node, $"'{key}' must be a list");
        return seq.Children.Select(c => c as YamlMappingNode ?? throw Error(file, c, $"each entry of '{key}' must be a mapping (key: value lines)"));
    }

    private static string? Str(YamlMappingNode map, string key, string file)
    {
        var node = Get(map, key);
        if (node is null) return null;
        if (node is not YamlScalarNode s) throw Error(file, node, $"'{key}' must be a single value");
        return string.IsNullOrWhiteSpace(s.Value) || s.Value == "~" ? null : s.Value;
    }

    private static string Req(YamlMappingNode map, string key, string file) =>
        Str(map, key, file) ?? throw Error(file, map, $"'{key}' is required here");

    private static string? OneOf(YamlMappingNode map, string key, string file, string[] allowed)
    {
        var value = Str(map, key, file);
        if (value is null) return null;
        var match = allowed.FirstOrDefault(a => string.Equals(a, value, StringComparison.OrdinalIgnoreCase));
        return match ?? throw Error(file, Get(map, key)!, $"'{key}' is '{value}'; expected one of {string.Join(", ", allowed)}");
    }

    private static List<string> List(YamlMappingNode map, string key, string file)
    {
        var node = Get(map, key);
        return node switch
        {
            null => [],
            YamlScalarNode { Value: null or "" or "~" } => [],
            YamlScalarNode s => [s.Value!],
            YamlSequenceNode seq => seq.Children.Select(c => (c as YamlScalarNode)?.Value ?? throw Error(file, c, $"'{key}' must list plain names")).ToList(),
            _ => throw Error(file, node, $"'{key}' must be a name or a list of names"),
        };
    }

    private static bool? Bool(YamlMappingNode map, string key, string file)
    {
        var value = Str(map, key, file);
        if (value is null) return null;
        return value.ToLowerInvariant() switch
        {
            "true" or "yes" or "on" => true,
            "false" or "no" or "off" => false,
            _ => throw Error(file, Get(map, key)!, $"'{key}' must be true or false, not '{value}'"),
        };
    }

    private static int? Int(YamlMappingNode map, string key, string file)
    {
        var value = Str(map, key, file);
        if (value is null) return null;
        return int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= 0
            ? n
            : throw Error(file, Get(map, key)!, $"'{key}' must be a whole number, not '{value}'");
    }

    /// <summary>A whole number of at least 1 (a count of instances).</summary>
    private static int? Positive(YamlMappingNode map, string key, string file) =>
        Int(map, key, file) is { } n ? n >= 1 && n <= 10_000 ? n : throw Error(file, Get(map, key)!, $"'{key}' must be between 1 and 10000, not {n}") : null;

    /// <summary>A mapping of message names to counts: <c>{CapturePayment: 4}</c>.</summary>
    private static Dictionary<string, int> PerMessage(YamlMappingNode map, string key, string file)
    {
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        var node = Get(map, key);
        if (node is null || node is YamlScalarNode { Value: null or "" or "~" }) return result;
        if (node is not YamlMappingNode counts) throw Error(file, node, $"'{key}' must map message names to counts, such as {{CapturePayment: 4}}");
        foreach (var (k, _) in counts.Children) result[Key(file, k)] = Positive(counts, Key(file, k), file)!.Value;
        return result;
    }

    /// <summary>The highest rate accepted, per second: far beyond any broker, and finite for every computation with it.</summary>
    public const double MaxRatePerSecond = 1e9;

    /// <summary>A rate: a number (per second) or N/s, N/min, N/h, N/day.</summary>
    private static double? Rate(YamlMappingNode map, string file)
    {
        var value = Str(map, "rate", file);
        if (value is null) return null;
        var parts = value.Replace(" ", "", StringComparison.Ordinal).Split('/');
        var per = parts.Length == 1 ? 1.0 : parts[1].ToLowerInvariant() switch { "s" or "sec" or "second" => 1, "min" or "m" or "minute" => 60, "h" or "hour" => 3600, "d" or "day" => 86400, _ => double.NaN };
        if (parts.Length > 2 || !double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var n) || !double.IsFinite(n) || n < 0 || double.IsNaN(per))
            throw Error(file, Get(map, "rate")!, $"'rate' is '{value}'; write a number per second or N/s, N/min, N/h, N/day");
        // 1e400 parses as infinity and 1e300/s overflows every threshold computed from it: refuse both here.
        if (n / per > MaxRatePerSecond)
            throw Error(file, Get(map, "rate")!, $"'rate' is '{value}', more than {MaxRatePerSecond:0e0} messages per second");
        return n / per;
    }

    /// <summary>A duration: 500ms, 45s, 15m, 12h, 7d.</summary>
    private static TimeSpan? Duration(YamlMappingNode map, string key, string file)
    {
        var value = Str(map, key, file);
        if (value is null) return null;
        var units = new (string Suffix, double Seconds)[] { ("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604800) };
        foreach (var (suffix, seconds) in units)
        {
            if (value.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) && double.TryParse(value[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= 0)
                return n * seconds < TimeSpan.MaxValue.TotalSeconds / 2 ? TimeSpan.FromSeconds(n * seconds) : throw Error(file, Get(map, key)!, $"'{key}' is '{value}', longer than any store keeps anything");
        }
        throw Error(file, Get(map, key)!, $"'{key}' is '{value}'; write a duration such as 500ms, 45s, 15m, 12h or 7d");
    }

    /// <summary>
    /// Converts a YAML subtree (an inline JSON Schema) to JSON, keeping numbers and booleans typed. Depth is bounded as
    /// well (a second line of defence behind the parser-event checks of <see cref="LoadYaml"/>).
    /// </summary>
    internal static JsonNode? ToJson(YamlNode node, string file, int depth = 0) => depth > MaxNesting
        ? throw Error(file, node, $"nests deeper than {MaxNesting} levels")
        : node switch
        {
            YamlMappingNode map => new JsonObject(map.Children.Select(kv => KeyValuePair.Create(Key(file, kv.Key), ToJson(kv.Value, file, depth + 1)))),
            YamlSequenceNode seq => new JsonArray(seq.Children.Select(c => ToJson(c, file, depth + 1)).ToArray()),
            YamlScalarNode s when s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted => JsonValue.Create(s.Value),
            YamlScalarNode { Value: null or "~" or "null" } => null,
            YamlScalarNode { Value: "true" } => JsonValue.Create(true),
            YamlScalarNode { Value: "false" } => JsonValue.Create(false),
            YamlScalarNode s when long.TryParse(s.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) => JsonValue.Create(l),
            YamlScalarNode s when double.TryParse(s.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => JsonValue.Create(d),
            YamlScalarNode s => JsonValue.Create(s.Value),
            _ => throw Error(file, node, "unsupported YAML node"),
        };
}
