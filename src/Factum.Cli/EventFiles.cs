using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Factum.Cli;

/// <summary>Parses the JSON the CLI accepts: single events, event arrays and import lines.</summary>
internal static class EventFiles
{
    public static EventData Build(string type, string json, string? eventId, IReadOnlyDictionary<string, string>? metadata)
    {
        JsonText.ValidateText(json, "--data");
        var bytes = Encoding.UTF8.GetBytes(json);
        JsonText.Validate(bytes, "--data");
        return new EventData(type, bytes)
        {
            EventId = eventId is null ? EventId.New() : EventId.Parse(eventId),
            Metadata = metadata ?? new Dictionary<string, string>(),
        };
    }

    /// <summary>
    /// The registry's naming rule, applied at the CLI's door too: an event type is PascalCase and past tense
    /// (<see cref="EventNamingConvention"/>). <c>--allow-nonconventional-names</c> lets foreign or legacy histories in.
    /// </summary>
    public static void CheckTypeNames(IEnumerable<EventData> events, bool allowNonConventional)
    {
        if (allowNonConventional) return;
        foreach (var e in events)
        {
            if (EventNamingConvention.Check(e.Type) is { } why)
                throw new ArgumentException($"Event type '{e.Type}' was not appended: {why}. Commands and queries are messages (factum send/publish), not events. To import a foreign or legacy history whose names differ, pass --allow-nonconventional-names.");
        }
    }

    /// <summary>Reads a JSON array of {type, data, eventId?, metadata?}.</summary>
    public static List<EventData> ReadArray(FileInfo file)
    {
        if (!file.Exists) throw new ArgumentException($"The file '{file.FullName}' does not exist.");
        JsonDocument doc;
        var bytes = File.ReadAllBytes(file.FullName);
        JsonText.Validate(bytes, $"'{file.Name}'");
        try { doc = JsonDocument.Parse(bytes); }
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
            var expected = Expected(el);
            return (stream, expected, batch.EnumerateArray().Select(e => FromElement(e, requireStream: false).Event).ToList());
        }
        var single = FromElement(el, requireStream: true);
        return (single.Stream, single.Expected, [single.Event]);
    }

    /// <summary>Reads "expectedVersion": a whole number, or one of any, no-stream, stream-exists.</summary>
    private static ExpectedVersion Expected(JsonElement el)
    {
        if (!el.TryGetProperty("expectedVersion", out var ev) || ev.ValueKind == JsonValueKind.Null) return ExpectedVersion.Any;
        const string Rule = "'expectedVersion' must be a version number (0 or more) or one of \"any\", \"no-stream\", \"stream-exists\"";
        return ev.ValueKind switch
        {
            JsonValueKind.Number when ev.TryGetInt64(out var n) && n >= 0 => ExpectedVersion.Exactly(n),
            JsonValueKind.String => ExpectedVersion.Parse(ev.GetString()!),
            _ => throw new ArgumentException($"{Rule}; got {JsonText.Printable(ev.GetRawText())}"),
        };
    }

    /// <summary>
    /// One import line or array entry: {stream?, type, data, eventId?, expectedVersion?, correlationId?, causationId?,
    /// metadata?, schemaVersion?}. The element must come from a document that passed <see cref="JsonText.Check"/>.
    /// </summary>
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
        var expected = Expected(el);
        var metadata = new Dictionary<string, string>();
        if (el.TryGetProperty("metadata", out var md) && md.ValueKind != JsonValueKind.Null)
            metadata = MetadataCodec.ParseUserJson(md.GetRawText());
        var schemaVersion = 1;
        if (el.TryGetProperty("schemaVersion", out var sv) && sv.ValueKind != JsonValueKind.Null)
        {
            if (sv.ValueKind != JsonValueKind.Number || !sv.TryGetInt32(out schemaVersion) || schemaVersion < 1)
                throw new ArgumentException($"'schemaVersion' must be a whole number from 1 to {int.MaxValue}; got {sv.GetRawText()}");
        }
        // No second check of the payload: callers pass elements of a document JsonText has already checked whole.
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
    public static Dictionary<string, string> Parse(string json, string option)
    {
        try { return MetadataCodec.ParseUserJson(json); }
        catch (JsonException ex) { throw new ArgumentException($"{option} is not valid JSON: {ex.Message}", ex); }
    }
}

internal static class Durations
{
    /// <summary>The longest duration any option takes: 1,000 years, as far as the store computes retention and delays.</summary>
    public static TimeSpan Max => StreamMetadata.MaxAgeLimit;

    /// <summary>
    /// Parses 30d, 12h, 15m, 45s, 500ms or d.hh:mm:ss for <paramref name="option"/>. A bare number is refused (it used to
    /// mean days silently), as are zero, negative, NaN, infinite and longer-than-<see cref="Max"/> values.
    /// </summary>
    public static TimeSpan Parse(string text, string option)
    {
        var t = text.Trim();
        var usage = $"{option} '{JsonText.Printable(text)}' is not a duration: use a number with a unit (30d, 12h, 15m, 45s, 500ms) or d.hh:mm:ss";
        (string Suffix, double TicksPerUnit)[] units =
            [("ms", TimeSpan.TicksPerMillisecond), ("d", TimeSpan.TicksPerDay), ("h", TimeSpan.TicksPerHour), ("m", TimeSpan.TicksPerMinute), ("s", TimeSpan.TicksPerSecond)];
        foreach (var (suffix, ticksPerUnit) in units)
        {
            if (!t.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)) continue;
            if (!double.TryParse(t[..^suffix.Length], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n) || !double.IsFinite(n)) break;
            var ticks = n * ticksPerUnit;
            if (ticks < 1) throw new ArgumentException($"{option} must be longer than zero; got '{JsonText.Printable(text)}'.");
            if (ticks > Max.Ticks) throw new ArgumentException($"{option} '{JsonText.Printable(text)}' is longer than the 1,000 years the store computes with.");
            return TimeSpan.FromTicks((long)ticks);
        }
        // d.hh:mm:ss needs its colons: "5" alone would be read by TimeSpan as five days.
        if (t.Contains(':', StringComparison.Ordinal) && TimeSpan.TryParse(t, CultureInfo.InvariantCulture, out var ts))
        {
            if (ts <= TimeSpan.Zero) throw new ArgumentException($"{option} must be longer than zero; got '{JsonText.Printable(text)}'.");
            if (ts > Max) throw new ArgumentException($"{option} '{JsonText.Printable(text)}' is longer than the 1,000 years the store computes with.");
            return ts;
        }
        throw new ArgumentException(usage + ".");
    }

    /// <summary><c>--lease</c>: a duration (as <see cref="Parse"/> takes it) from 100 ms to one day, the range a lease accepts.</summary>
    public static TimeSpan ParseLease(string text)
    {
        var d = Parse(text, "--lease");
        return d >= TimeSpan.FromMilliseconds(100) && d <= TimeSpan.FromDays(1) ? d : throw new ArgumentException($"--lease '{JsonText.Printable(text)}' is outside 100ms to 1d.");
    }

    /// <summary>
    /// Writes a duration the way the options take it (30d, 1h30m, 45s, 500ms), so what is echoed can be typed back; a
    /// duration with sub-millisecond ticks falls back to d.hh:mm:ss.fffffff.
    /// </summary>
    public static string Format(TimeSpan d)
    {
        if (d <= TimeSpan.Zero || d.Ticks % TimeSpan.TicksPerMillisecond != 0) return d.ToString("c", CultureInfo.InvariantCulture);
        var parts = new StringBuilder();
        void Part(long n, string unit) { if (n > 0) parts.Append(CultureInfo.InvariantCulture, $"{n}{unit}"); }
        Part((long)d.TotalDays, "d");
        Part(d.Hours, "h");
        Part(d.Minutes, "m");
        Part(d.Seconds, "s");
        Part(d.Milliseconds, "ms");
        return parts.ToString();
    }

    /// <summary>Parses an ISO 8601 time for <paramref name="option"/> (UTC unless it says otherwise), within 1,000 years of now.</summary>
    public static DateTimeOffset ParseTime(string text, string option)
    {
        if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t))
            throw new ArgumentException($"{option} '{JsonText.Printable(text)}' is not a time: use ISO 8601, e.g. 2026-12-24T18:00:00Z.");
        var now = DateTimeOffset.UtcNow;
        if (t > After(now, Max) || t < Before(now, Max))
            throw new ArgumentException($"{option} '{JsonText.Printable(text)}' is more than 1,000 years away.");
        return t;
    }

    /// <summary><paramref name="t"/> plus <paramref name="d"/>, clamped to the calendar instead of overflowing.</summary>
    public static DateTimeOffset After(DateTimeOffset t, TimeSpan d) =>
        d.Ticks > DateTimeOffset.MaxValue.UtcTicks - t.UtcTicks ? DateTimeOffset.MaxValue : t + d;

    /// <summary><paramref name="t"/> minus <paramref name="d"/>, clamped to the calendar instead of overflowing.</summary>
    public static DateTimeOffset Before(DateTimeOffset t, TimeSpan d) =>
        d.Ticks > t.UtcTicks - DateTimeOffset.MinValue.UtcTicks ? DateTimeOffset.MinValue : t - d;
}
