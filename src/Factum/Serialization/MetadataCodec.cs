using System.Buffers;
using System.Text.Json;

namespace Factum;

/// <summary>Encodes event and stream metadata (string headers) as a flat JSON object.</summary>
internal static class MetadataCodec
{
    public static byte[]? Encode(IReadOnlyDictionary<string, string>? metadata)
    {
        if (metadata is null || metadata.Count == 0) return null;
        var buffer = new ArrayBufferWriter<byte>(64);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            foreach (var (k, v) in metadata)
            {
                ArgumentNullException.ThrowIfNull(k, "metadata key");
                if (v is null) throw new ArgumentException($"Metadata value for '{JsonText.Printable(k)}' is null.", nameof(metadata));
                // Utf8JsonWriter would write a lone surrogate as an escape that no reader can decode again.
                JsonText.ValidateText(k, "A metadata key");
                JsonText.ValidateText(v, $"Metadata value '{JsonText.Printable(k)}'");
                w.WriteString(k, v);
            }
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    public static IReadOnlyDictionary<string, string> Decode(ReadOnlySpan<byte> json)
    {
        if (json.IsEmpty) return EmptyMetadata.Instance;
        var reader = new Utf8JsonReader(json);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) throw new JsonException("Metadata is not a JSON object.");
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var key = reader.GetString()!;
            reader.Read();
            result[key] = reader.TokenType == JsonTokenType.String ? reader.GetString()! : System.Text.Encoding.UTF8.GetString(reader.ValueSpan);
        }
        return result;
    }

    /// <summary>Parses user-supplied JSON metadata; values must be strings, numbers or booleans.</summary>
    public static Dictionary<string, string> ParseUserJson(string json)
    {
        if (JsonText.Check(System.Text.Encoding.UTF8.GetBytes(json)) is { } error) throw new JsonException(error);
        using var doc = JsonDocument.Parse(json);
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ArgumentException("Metadata must be a JSON object of string values.");
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            result[p.Name] = p.Value.ValueKind switch
            {
                JsonValueKind.String => p.Value.GetString()!,
                JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => p.Value.GetRawText(),
                _ => throw new ArgumentException($"Metadata value '{p.Name}' must be a string, number or boolean."),
            };
        }
        return result;
    }
}
