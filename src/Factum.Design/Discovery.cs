using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Factum.Design;

/// <summary>What the store actually holds for one event type.</summary>
/// <param name="Type">The type name.</param>
/// <param name="Count">Events stored.</param>
/// <param name="Versions">Schema versions seen, with counts.</param>
/// <param name="Categories">Stream categories it was appended to, with counts.</param>
/// <param name="First">The first one's timestamp.</param>
/// <param name="Last">The last one's timestamp.</param>
/// <param name="Schema">The JSON Schema inferred from the payloads (per version, the latest seen).</param>
public sealed record ObservedType(string Type, long Count, IReadOnlyDictionary<int, long> Versions, IReadOnlyDictionary<string, long> Categories, DateTimeOffset First, DateTimeOffset Last, JsonObject Schema)
{
    /// <summary>Events per second between the first and the last (0 for a single event).</summary>
    public double Rate => Last > First ? Count / (Last - First).TotalSeconds : 0;
}

/// <summary>The observed catalog of a store: types, volumes, categories, inferred schemas and causation flows.</summary>
/// <param name="Types">Per event type.</param>
/// <param name="Causes">(cause type, effect type) → how many times an event of the first caused one of the second.</param>
/// <param name="Events">Events read.</param>
public sealed record Observation(IReadOnlyList<ObservedType> Types, IReadOnlyDictionary<(string Cause, string Effect), long> Causes, long Events);

/// <summary>Discovery: reads a running store and writes what it actually holds as catalog YAML.</summary>
public static class Discovery
{
    /// <summary>Payloads sampled per type and version for schema inference.</summary>
    public const int SamplesPerType = 500;

    /// <summary>Reads the whole global log once.</summary>
    public static async Task<Observation> ObserveAsync(IEventReader store, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        var types = new Dictionary<string, Acc>(StringComparer.Ordinal);
        var typeOfEvent = new Dictionary<string, string>(StringComparer.Ordinal);
        var causes = new Dictionary<(string, string), long>();
        var pending = new List<(string CausationId, string Type)>();
        long n = 0;
        await foreach (var e in store.ReadAllAsync(ReadAllOptions.Default, cancellationToken).ConfigureAwait(false))
        {
            n++;
            if (!types.TryGetValue(e.Type, out var acc)) types[e.Type] = acc = new Acc(e.Timestamp);
            acc.Count++;
            acc.Last = e.Timestamp;
            acc.Versions[e.SchemaVersion] = acc.Versions.GetValueOrDefault(e.SchemaVersion) + 1;
            acc.Categories[e.StreamId.Category] = acc.Categories.GetValueOrDefault(e.StreamId.Category) + 1;
            if (e.SchemaVersion >= acc.LatestVersion)
            {
                if (e.SchemaVersion > acc.LatestVersion) { acc.LatestVersion = e.SchemaVersion; acc.Samples = 0; acc.Schema = null; }
                if (acc.Samples++ < SamplesPerType)
                {
                    try
                    {
                        acc.Schema = Merge(acc.Schema, Infer(JsonNode.Parse(e.Payload.Span)));
                    }
                    catch (JsonException)
                    {
                        // Not JSON: nothing to infer from this payload.
                    }
                }
            }
            typeOfEvent[e.EventId.ToString()] = e.Type;
            if (e.CausationId is { } cause) pending.Add((cause, e.Type));
        }
        foreach (var (cause, type) in pending)
        {
            if (typeOfEvent.TryGetValue(cause, out var causeType)) causes[(causeType, type)] = causes.GetValueOrDefault((causeType, type)) + 1;
        }
        var observed = types.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => new ObservedType(t.Key, t.Value.Count, t.Value.Versions, t.Value.Categories, t.Value.First, t.Value.Last,
            t.Value.Schema as JsonObject ?? new JsonObject())).ToList();
        return new Observation(observed, causes, n);
    }

    private sealed class Acc(DateTimeOffset first)
    {
        public long Count;
        public DateTimeOffset First = first;
        public DateTimeOffset Last = first;
        public int LatestVersion;
        public int Samples;
        public JsonNode? Schema;
        public Dictionary<int, long> Versions { get; } = [];
        public Dictionary<string, long> Categories { get; } = new(StringComparer.Ordinal);
    }

    /// <summary>The schema of one JSON value: types, object properties (all required), array items.</summary>
    public static JsonNode Infer(JsonNode? value) => value switch
    {
        null => new JsonObject { ["type"] = "null" },
        JsonObject o => new JsonObject
        {
            ["type"] = "object",
            ["properties"] = new JsonObject(o.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)Infer(p.Value)))),
            ["required"] = new JsonArray(o.Select(p => (JsonNode)JsonValue.Create(p.Key)!).ToArray()),
        },
        JsonArray a => new JsonObject { ["type"] = "array", ["items"] = a.Aggregate<JsonNode?, JsonNode?>(null, (s, x) => Merge(s, Infer(x))) ?? new JsonObject() },
        JsonValue v => new JsonObject
        {
            ["type"] = v.GetValueKind() switch
            {
                JsonValueKind.String => "string",
                JsonValueKind.True or JsonValueKind.False => "boolean",
                JsonValueKind.Number => v.TryGetValue<long>(out _) ? "integer" : "number",
                _ => "null",
            },
        },
        _ => new JsonObject(),
    };

    /// <summary>A schema both inputs satisfy: types united, properties merged, required only where both require.</summary>
    public static JsonNode? Merge(JsonNode? a, JsonNode? b)
    {
        if (a is null) return b?.DeepClone();
        if (b is null) return a;
        if (a is not JsonObject x || b is not JsonObject y) return a;
        var types = TypesOf(x).Union(TypesOf(y)).ToList();
        if (types.Contains("number")) types.Remove("integer");
        var result = new JsonObject();
        if (types.Count > 0) result["type"] = types.Count == 1 ? types[0] : new JsonArray(types.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray());
        if (x["properties"] is not null || y["properties"] is not null)
        {
            var xp = x["properties"] as JsonObject ?? [];
            var yp = y["properties"] as JsonObject ?? [];
            var props = new JsonObject();
            foreach (var name in xp.Select(p => p.Key).Union(yp.Select(p => p.Key)))
                props[name] = Merge(xp[name]?.DeepClone(), yp[name]?.DeepClone());
            result["properties"] = props;
            var required = Strings(x["required"]).Intersect(Strings(y["required"])).ToList();
            result["required"] = new JsonArray(required.Select(r => (JsonNode)JsonValue.Create(r)!).ToArray());
        }
        if (x["items"] is not null || y["items"] is not null) result["items"] = Merge(x["items"]?.DeepClone(), y["items"]?.DeepClone());
        return result;
    }

    private static IEnumerable<string> TypesOf(JsonObject o) => o["type"] switch
    {
        JsonValue v => [v.GetValue<string>()],
        JsonArray a => a.Select(t => t!.GetValue<string>()),
        _ => [],
    };

    private static IEnumerable<string> Strings(JsonNode? n) => n is JsonArray a ? a.Select(x => x!.GetValue<string>()) : [];

    /// <summary>
    /// The observation as a catalog: each stream category becomes a service that publishes the types appended to it, and
    /// consumes the types that caused them (the observed flow).
    /// </summary>
    /// <param name="observation">What the store holds.</param>
    /// <param name="source">Names the store in locations.</param>
    /// <param name="catalog">
    /// The declared catalog to express the observation in: an event appended to category C is attributed to the catalog
    /// service that lists C under <c>streams:</c> and publishes the event (or the only one listing C); without such a
    /// mapping, to the service that publishes the event; otherwise the category keeps its own name. Handlers are mapped the
    /// same way: the service an effect is attributed to consumed its cause.
    /// </param>
    public static EventCatalogModel ToCatalog(Observation observation, string source, EventCatalogModel? catalog = null)
    {
        ArgumentNullException.ThrowIfNull(observation);
        string Owner(string category, string type)
        {
            if (catalog is null) return ServiceId(category);
            var declared = catalog.Services.Where(s => s.Streams.Contains(category, StringComparer.Ordinal)).ToList();
            var publishers = catalog.Services.Where(s => s.Publishes.Contains(type) || s.Sends.Contains(type)).ToList();
            var both = declared.Where(publishers.Contains).ToList();
            if (both.Count == 1) return both[0].Id;
            if (declared.Count == 1) return declared[0].Id;
            if (declared.Count == 0 && publishers.Count == 1) return publishers[0].Id;
            return ServiceId(category);
        }
        var appended = observation.Types.SelectMany(t => t.Categories.Keys.Select(c => (Service: Owner(c, t.Type), Category: c, t.Type))).ToList();
        var services = appended
            .GroupBy(x => x.Service, StringComparer.Ordinal)
            .Select(g => new CatalogService
            {
                Id = g.Key,
                Description = $"observed: appends to {string.Join(", ", g.Select(x => x.Category).Distinct(StringComparer.Ordinal).Select(c => c + "-*"))} streams",
                Publishes = g.Select(x => x.Type).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList(),
                Consumes = observation.Causes.Where(c => g.Any(x => x.Type == c.Key.Effect) && c.Key.Cause != c.Key.Effect).Select(c => c.Key.Cause).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList(),
                Streams = g.Select(x => x.Category).Distinct(StringComparer.Ordinal).ToList(),
                Source = new SourceLocation(source, 0),
            }).ToList();
        var messages = observation.Types.Select(t => new CatalogMessage
        {
            Name = t.Type,
            Kind = CatalogMessageKind.Event,
            Description = $"observed: {t.Count} event(s) in {string.Join(", ", t.Categories.Select(c => $"{c.Key} ({c.Value})"))}; versions {string.Join(", ", t.Versions.OrderBy(v => v.Key).Select(v => $"v{v.Key} ({v.Value})"))}; {t.First:O} – {t.Last:O}",
            Rate = t.Rate > 0 ? Math.Round(t.Rate, 3) : null,
            Versions = [new MessageVersion(t.Versions.Keys.Max(), t.Schema, "inferred from stored payloads")],
            Source = new SourceLocation(source, 0),
        }).ToList();
        return new EventCatalogModel { Services = services, Messages = messages, IsObservation = true };
    }

    private static string ServiceId(string category) => new(category.ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '-').ToArray());

    /// <summary>Writes a catalog as YAML in the documented format (schemas as JSON flow mappings, which YAML reads).</summary>
    public static string ToYaml(EventCatalogModel catalog, string header)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        static string Q(string s) => Escape.Yaml(s); // double-quoted: every character, line breaks and control characters included, reads back as it was
        static string L(IEnumerable<string> items) => "[" + string.Join(", ", items.Select(Q)) + "]";
        var sb = new StringBuilder();
        foreach (var line in header.Split('\n')) sb.Append("# ").AppendLine(Escape.CommentLine(line));
        if (catalog.Domains.Count > 0)
        {
            sb.AppendLine("domains:");
            foreach (var d in catalog.Domains) sb.AppendLine(CultureInfo.InvariantCulture, $"  - {{id: {Q(d.Id)}, name: {Q(d.Name ?? d.Id)}{(d.Description is null ? "" : ", description: " + Q(d.Description))}}}");
        }
        if (catalog.Teams.Count > 0)
        {
            sb.AppendLine("teams:");
            foreach (var t in catalog.Teams) sb.AppendLine(CultureInfo.InvariantCulture, $"  - {{id: {Q(t.Id)}, name: {Q(t.Name ?? t.Id)}}}");
        }
        if (catalog.Services.Count > 0)
        {
            sb.AppendLine("services:");
            foreach (var s in catalog.Services)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  - id: {Q(s.Id)}");
                if (s.Domain is not null) sb.AppendLine(CultureInfo.InvariantCulture, $"    domain: {Q(s.Domain)}");
                if (s.Owner is not null) sb.AppendLine(CultureInfo.InvariantCulture, $"    owner: {Q(s.Owner)}");
                if (s.Description is not null) sb.AppendLine(CultureInfo.InvariantCulture, $"    description: {Q(s.Description)}");
                if (s.Publishes.Count > 0) sb.AppendLine(CultureInfo.InvariantCulture, $"    publishes: {L(s.Publishes)}");
                if (s.Sends.Count > 0) sb.AppendLine(CultureInfo.InvariantCulture, $"    sends: {L(s.Sends)}");
                if (s.Requests.Count > 0) sb.AppendLine(CultureInfo.InvariantCulture, $"    requests: {L(s.Requests)}");
                if (s.Consumes.Count > 0) sb.AppendLine(CultureInfo.InvariantCulture, $"    consumes: {L(s.Consumes)}");
                if (s.Streams.Count > 0) sb.AppendLine(CultureInfo.InvariantCulture, $"    streams: {L(s.Streams)}");
            }
        }
        if (catalog.Messages.Count > 0)
        {
            sb.AppendLine("messages:");
            foreach (var m in catalog.Messages)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  - name: {Q(m.Name)}");
                sb.AppendLine(CultureInfo.InvariantCulture, $"    kind: {m.Kind.ToString().ToLowerInvariant()}");
                if (m.Classification is not null) sb.AppendLine(CultureInfo.InvariantCulture, $"    classification: {Q(m.Classification)}");
                if (m.Owners.Count == 1) sb.AppendLine(CultureInfo.InvariantCulture, $"    owner: {Q(m.Owners[0])}");
                if (m.Description is not null) sb.AppendLine(CultureInfo.InvariantCulture, $"    description: {Q(m.Description)}");
                if (m.Rate is { } r) sb.AppendLine(CultureInfo.InvariantCulture, $"    rate: {r.ToString("0.###", CultureInfo.InvariantCulture)}/s");
                if (m.Versions.Count > 0)
                {
                    sb.AppendLine("    versions:");
                    foreach (var v in m.Versions)
                    {
                        sb.AppendLine(CultureInfo.InvariantCulture, $"      - version: {v.Version}");
                        if (v.Changelog is not null) sb.AppendLine(CultureInfo.InvariantCulture, $"        changelog: {Q(v.Changelog)}");
                        if (v.Schema is not null) sb.AppendLine(CultureInfo.InvariantCulture, $"        schema: {v.Schema.ToJsonString()}");
                    }
                }
            }
        }
        return sb.ToString();
    }
}
