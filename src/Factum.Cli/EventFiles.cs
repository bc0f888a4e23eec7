using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Factum.Cli;

/// <summary>Parses the JSON the CLI accepts: single events, event arrays and import lines.</summary>
internal static class EventFiles
{
    public static EventData Build(string type, string json, string? eventId, IReadOnlyDictionary<string, string>? metadata)
    {
        try { using var _ = JsonDocument.Parse(json); }
        catch (JsonException ex) { throw new ArgumentException($"--data is not valid JSON: {ex.Message}", ex); }
        return new EventData(type, Encoding.UTF8.GetBytes(json))
        {
            EventId = eventId is null ? EventId.New() : EventId.Parse(eventId),
            Metadata = metadata ?? new Dictionary<string, string>(),
        };
    }

    /// <summary>Reads a JSON array of {type, data, eventId?, metadata?}.</summary>
    public static List<EventData> ReadArray(FileInfo file)
    {
        if (!file.Exists) throw new ArgumentException($"The file '{file.FullName}' does not exist.");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(file.FullName)); }
        catch (JsonException ex) { throw new ArgumentException($"'{file.Name}' is not valid JSON: {ex.Message}", ex); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Array) throw new ArgumentException($"'{file.Name}' must hold a JSON array of events.");
            var list = new List<EventData>();
            var i = 0;
            foreach (var el in doc.RootElement.EnumerateArray())
            {
                try { list.Add(FromElement(el, requireStream: false).Event); }
                catch (ArgumentException ex) { throw new ArgumentException($"'{file.Name}' event {i}: {ex.Message}", ex); }
                i++;
            }
            if (list.Count == 0) throw new ArgumentException($"'{file.Name}' holds no events.");
            return list;
        }
    }

    /// <summary>
    /// One import line: a single event {stream, type, data, ...}, or an atomic batch {stream, expectedVersion?, events: [{type, data, ...}]}.
    /// </summary>
    public static (StreamId Stream, ExpectedVersion Expected, List<EventData> Events) FromImportLine(JsonElement el)
    {
        if (el.ValueKind == JsonValueKind.Object && el.TryGetProperty("events", out var batch))
        {
            if (batch.ValueKind != JsonValueKind.Array || batch.GetArrayLength() == 0) throw new ArgumentException("'events' must be a non-empty array");
            var stream = el.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.String ? StreamId.Parse(s.GetString()!) : throw new ArgumentException("'stream' is required");
            var expected = ExpectedVersion.Any;
            if (el.TryGetProperty("expectedVersion", out var ev) && ev.ValueKind != JsonValueKind.Null)
                expected = ev.ValueKind == JsonValueKind.Number ? ExpectedVersion.Exactly(ev.GetInt64()) : ExpectedVersion.Parse(ev.GetString() ?? "any");
            return (stream, expected, batch.EnumerateArray().Select(e => FromElement(e, requireStream: false).Event).ToList());
        }
        var single = FromElement(el, requireStream: true);
        return (single.Stream, single.Expected, [single.Event]);
    }

    /// <summary>One import line or array entry: {stream?, type, data, eventId?, expectedVersion?, correlationId?, causationId?, metadata?, schemaVersion?}.</summary>
    public static (StreamId Stream, ExpectedVersion Expected, EventData Event) FromElement(JsonElement el, bool requireStream)
    {
        if (el.ValueKind != JsonValueKind.Object) throw new ArgumentException("each event must be a JSON object");
        string? Str(string name) => el.TryGetProperty(name, out var p) && p.ValueKind != JsonValueKind.Null
            ? p.ValueKind == JsonValueKind.String ? p.GetString() : throw new ArgumentException($"'{name}' must be a string")
            : null;
        var type = Str("type") ?? throw new ArgumentException("'type' is required");
        if (!el.TryGetProperty("data", out var data)) throw new ArgumentException("'data' is required");
        StreamId stream = default;
        if (requireStream) stream = StreamId.Parse(Str("stream") ?? throw new ArgumentException("'stream' is required"));
        var expected = ExpectedVersion.Any;
        if (el.TryGetProperty("expectedVersion", out var ev) && ev.ValueKind != JsonValueKind.Null)
            expected = ev.ValueKind == JsonValueKind.Number ? ExpectedVersion.Exactly(ev.GetInt64()) : ExpectedVersion.Parse(ev.GetString() ?? "any");
        var metadata = new Dictionary<string, string>();
        if (el.TryGetProperty("metadata", out var md) && md.ValueKind != JsonValueKind.Null)
            metadata = MetadataCodec.ParseUserJson(md.GetRawText());
        var schemaVersion = el.TryGetProperty("schemaVersion", out var sv) && sv.ValueKind == JsonValueKind.Number ? sv.GetInt32() : 1;
        var e = new EventData(type, Encoding.UTF8.GetBytes(data.GetRawText()))
        {
            EventId = Str("eventId") is { } id ? EventId.Parse(id) : EventId.New(),
            SchemaVersion = schemaVersion,
            Metadata = metadata,
            CorrelationId = Str("correlationId"),
            CausationId = Str("causationId"),
        };
        return (stream, expected, e);
    }
}

internal static class MetadataJson
{
    public static Dictionary<string, string> Parse(string json)
    {
        try { return MetadataCodec.ParseUserJson(json); }
        catch (JsonException ex) { throw new ArgumentException($"--metadata is not valid JSON: {ex.Message}", ex); }
    }
}

internal static class Durations
{
    /// <summary>Parses 30d, 12h, 15m, 45s, 500ms or a TimeSpan (d.hh:mm:ss).</summary>
    public static TimeSpan Parse(string text)
    {
        var t = text.Trim();
        (string Suffix, Func<double, TimeSpan> Make)[] units =
            [("ms", TimeSpan.FromMilliseconds), ("d", TimeSpan.FromDays), ("h", TimeSpan.FromHours), ("m", TimeSpan.FromMinutes), ("s", TimeSpan.FromSeconds)];
        foreach (var (suffix, make) in units)
        {
            if (t.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)
                && double.TryParse(t[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n > 0)
                return make(n);
        }
        if (TimeSpan.TryParse(t, CultureInfo.InvariantCulture, out var ts) && ts > TimeSpan.Zero) return ts;
        throw new ArgumentException($"'{text}' is not a duration: use 30d, 12h, 15m, 45s or d.hh:mm:ss.");
    }
}
