using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Factum.Cli;

/// <summary>Writes human-readable tables, or one JSON object per line with --json.</summary>
internal sealed class Output(TextWriter writer, bool json)
{
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly JsonSerializerOptions RelaxedJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public bool Json => json;

    public TextWriter Writer => writer;

    /// <summary>Writes one JSON object on one line.</summary>
    public void JsonLine(Action<Utf8JsonWriter> write)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, WriterOptions))
        {
            w.WriteStartObject();
            write(w);
            w.WriteEndObject();
        }
        writer.WriteLine(Encoding.UTF8.GetString(ms.GetBuffer(), 0, (int)ms.Length));
    }

    /// <summary>The widest line a table or wrapped text takes: a terminal of 120 columns shows it without wrapping.</summary>
    public const int MaxWidth = 120;

    /// <summary>
    /// Prints rows as an aligned table with a header, at most <see cref="MaxWidth"/> columns wide: when the cells do not
    /// fit, the widest columns are narrowed and their long values end in "…" (--json prints every value in full).
    /// </summary>
    public void Table(string[] headers, IEnumerable<string[]> rows, bool fit = true)
    {
        // Cells echo stored text (metadata, payloads): control characters are escaped so they cannot drive the terminal.
        var all = rows.Select(r => r.Select(JsonText.Printable).ToArray()).ToList();
        var widths = headers.Select((h, i) => Math.Max(h.Length, all.Count == 0 ? 0 : all.Max(r => r[i].Length))).ToArray();
        if (fit) FitWidths(headers, widths);
        // A dotted name (a type, a namespace) keeps its end, where the specific part is; other text keeps its start.
        static string Cut(string c, int w) => c.Length <= w ? c
            : c.Contains('.', StringComparison.Ordinal) && !c.Contains(' ', StringComparison.Ordinal) ? "…" + c[^Math.Max(0, w - 1)..]
            : c[..Math.Max(0, w - 1)] + "…";
        // The last column is left unpadded so long payloads do not create trailing spaces.
        void Line(string[] cells) => writer.WriteLine(string.Join("  ", cells.Select((c, i) => i == cells.Length - 1 ? Cut(c, widths[i]) : Cut(c, widths[i]).PadRight(widths[i]))).TrimEnd());
        Line(headers);
        Line(widths.Select(w => new string('-', w)).ToArray());
        foreach (var r in all) Line(r);
    }

    /// <summary>
    /// Narrows the table until it fits: first the last column (free text: data, errors, documents) down to 24 characters,
    /// then the widest columns one character at a time (no column below its header or 8), so ids stay whole when they can.
    /// </summary>
    private static void FitWidths(string[] headers, int[] widths)
    {
        var total = widths.Sum() + (2 * (widths.Length - 1));
        var last = widths.Length - 1;
        var lastFloor = Math.Max(headers[last].Length, 24);
        if (total > MaxWidth && widths[last] > lastFloor)
        {
            var cut = Math.Min(total - MaxWidth, widths[last] - lastFloor);
            widths[last] -= cut;
            total -= cut;
        }
        while (total > MaxWidth)
        {
            var widest = -1;
            for (var i = 0; i < widths.Length; i++)
            {
                if (widths[i] > Math.Max(headers[i].Length, 8) && (widest < 0 || widths[i] > widths[widest])) widest = i;
            }
            if (widest < 0) return; // As narrow as the headers allow.
            widths[widest]--;
            total--;
        }
    }

    /// <summary>Writes <paramref name="text"/> wrapped at word boundaries to <see cref="MaxWidth"/> columns; lines after the first are indented by <paramref name="indent"/>.</summary>
    public void Wrapped(string text, int indent = 2)
    {
        var printable = JsonText.Printable(text);
        var body = printable.TrimStart(' ');
        // The first line keeps the text's own indentation; the words after it are split on single spaces.
        var line = new StringBuilder().Append(' ', printable.Length - body.Length);
        var words = 0;
        foreach (var word in body.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (words > 0 && line.Length + 1 + word.Length > MaxWidth)
            {
                writer.WriteLine(line.ToString().TrimEnd());
                line.Clear().Append(' ', indent);
                words = 0;
            }
            if (words > 0) line.Append(' ');
            line.Append(word);
            words++;
        }
        if (line.Length > 0) writer.WriteLine(line.ToString().TrimEnd());
    }

    public static string Iso(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", CultureInfo.InvariantCulture);

    public static string Inv(long v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Writes the payload as JSON when it is well-formed JSON, else as base64 in <c>dataBase64</c> with the reason in
    /// <c>dataInvalid</c>: one undecodable payload (say, a lone surrogate stored by an older build) is shown and
    /// flagged, never allowed to stop the read.
    /// </summary>
    public static void WriteData(Utf8JsonWriter w, ReadOnlyMemory<byte> payload)
    {
        if (TryJson(payload, out var doc, out var invalid))
        {
            using (doc)
            {
                w.WritePropertyName("data");
                doc!.WriteTo(w);
            }
        }
        else
        {
            w.WriteString("dataBase64", Convert.ToBase64String(payload.Span));
            if (invalid is not null) w.WriteString("dataInvalid", invalid);
        }
    }

    public static string DataText(ReadOnlyMemory<byte> payload)
    {
        if (TryJson(payload, out var doc, out var invalid))
        {
            using (doc) return JsonSerializer.Serialize(doc!.RootElement, RelaxedJson);
        }
        return (invalid is null ? "" : "(not valid JSON) ") + "base64:" + Convert.ToBase64String(payload.Span);
    }

    private static bool TryJson(ReadOnlyMemory<byte> payload, out JsonDocument? doc, out string? invalid)
    {
        doc = null;
        invalid = null;
        if (payload.IsEmpty) return false;
        // Binary payloads (custom serializers) are not flagged; text that looks like JSON but is not well-formed is.
        invalid = JsonText.Check(payload.Span);
        if (invalid is not null)
        {
            var first = payload.Span.TrimStart(" \t\r\n"u8);
            if (first.IsEmpty || first[0] is not ((byte)'{' or (byte)'[' or (byte)'"')) invalid = null;
            return false;
        }
        try { doc = JsonDocument.Parse(payload); return true; }
        catch (JsonException ex) { invalid = ex.Message; return false; }
    }

    public void Event(RecordedEvent e)
    {
        JsonLine(w =>
        {
            w.WriteString("eventId", e.EventId.ToString());
            w.WriteString("type", e.Type);
            w.WriteNumber("schemaVersion", e.SchemaVersion);
            w.WriteString("streamId", e.StreamId.Value);
            w.WriteNumber("streamVersion", e.StreamVersion.Value);
            w.WriteNumber("position", e.Position.Value);
            w.WriteString("timestamp", Iso(e.Timestamp));
            w.WriteString("correlationId", e.CorrelationId);
            if (e.CausationId is null) w.WriteNull("causationId"); else w.WriteString("causationId", e.CausationId);
            w.WriteStartObject("metadata");
            foreach (var (k, v) in e.Metadata) w.WriteString(k, v);
            w.WriteEndObject();
            WriteData(w, e.Payload);
        });
    }

    /// <summary>The columns of an event table: what fits 120 columns by default; <c>--wide</c> adds the ids and metadata.</summary>
    public static string[] EventHeaders(bool wide) => wide
        ? ["POSITION", "STREAM", "VERSION", "TYPE", "SCHEMA", "TIMESTAMP", "EVENT ID", "CORRELATION", "CAUSATION", "METADATA", "DATA"]
        : ["POSITION", "STREAM", "VERSION", "TYPE", "SCHEMA", "TIMESTAMP", "DATA"];

    public static string[] EventRow(RecordedEvent e, bool wide) => wide
        ?
        [
            Inv(e.Position.Value), e.StreamId.Value, Inv(e.StreamVersion.Value), e.Type, "v" + Inv(e.SchemaVersion), Iso(e.Timestamp),
            e.EventId.ToString(), e.CorrelationId, e.CausationId ?? "-",
            e.Metadata.Count == 0 ? "-" : string.Join(",", e.Metadata.Select(kv => $"{kv.Key}={kv.Value}")),
            DataText(e.Payload),
        ]
        :
        [
            Inv(e.Position.Value), e.StreamId.Value, Inv(e.StreamVersion.Value), e.Type, "v" + Inv(e.SchemaVersion),
            e.Timestamp.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture), DataText(e.Payload),
        ];

    /// <summary>Prints an error on stderr; control characters from echoed input are escaped so they cannot drive the terminal.</summary>
    public static void Error(string message) => Console.Error.WriteLine($"error: {JsonText.Printable(message)}");
}
