using System.Text.Json;
using System.Text.Unicode;

namespace Factum;

/// <summary>
/// Strict checks for JSON and text that enter the store from outside (the CLI, imports, the HTTP API): well-formed UTF-8,
/// one JSON value, bounded nesting, and no escaped string that decodes to invalid UTF-16 such as a lone surrogate
/// (<c>"\ud800"</c>). System.Text.Json parses such text without complaint but fails later when the string is read, so
/// one accepted event could otherwise break every read of the log that touches it.
/// </summary>
public static class JsonText
{
    /// <summary>The deepest nesting accepted (System.Text.Json's default reader limit).</summary>
    public const int MaxDepth = 64;

    /// <summary>Checks <paramref name="utf8"/> is one well-formed JSON value; the reason it is not, or null.</summary>
    public static string? Check(ReadOnlySpan<byte> utf8)
    {
        if (!Utf8.IsValid(utf8)) return $"it is not valid UTF-8 (first bad byte at offset {FirstInvalidUtf8(utf8)})";
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { MaxDepth = MaxDepth });
        try
        {
            if (!reader.Read()) return "it is empty";
            do
            {
                if (reader.TokenType is JsonTokenType.String or JsonTokenType.PropertyName && reader.ValueIsEscaped) reader.GetString();
            }
            while (reader.Read());
            return null;
        }
        catch (JsonException ex)
        {
            return ex.Message;
        }
        catch (InvalidOperationException ex)
        {
            // GetString on an escape that is not well-formed UTF-16 (a lone or reversed surrogate).
            return $"{ex.Message} (at byte {reader.TokenStartIndex})";
        }
    }

    /// <summary>Throws an <see cref="ArgumentException"/> naming <paramref name="what"/> unless <paramref name="utf8"/> is one well-formed JSON value.</summary>
    /// <exception cref="ArgumentException">The text is not well-formed JSON.</exception>
    public static void Validate(ReadOnlySpan<byte> utf8, string what)
    {
        if (Check(utf8) is { } error) throw new ArgumentException($"{what} is not valid JSON: {error}");
    }

    /// <summary>True when <paramref name="text"/> is well-formed UTF-16: every surrogate is half of a pair.</summary>
    public static bool IsWellFormed(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var span = text.AsSpan();
        for (var i = 0; i < span.Length; i++)
        {
            var c = span[i];
            if (!char.IsSurrogate(c)) continue;
            if (char.IsHighSurrogate(c) && i + 1 < span.Length && char.IsLowSurrogate(span[i + 1]))
            {
                i++;
                continue;
            }
            return false;
        }
        return true;
    }

    /// <summary>Throws unless <paramref name="text"/> is well-formed UTF-16 (see <see cref="IsWellFormed"/>).</summary>
    /// <exception cref="ArgumentException">The text holds a lone surrogate.</exception>
    public static void ValidateText(string text, string what)
    {
        if (!IsWellFormed(text)) throw new ArgumentException($"{what} holds a lone UTF-16 surrogate (text that cannot be stored as UTF-8).");
    }

    /// <summary>The text with control characters shown as <c>\u001B</c> escapes, so echoing input cannot drive a terminal.</summary>
    public static string Printable(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!text.Any(char.IsControl)) return text;
        var sb = new System.Text.StringBuilder(text.Length + 16);
        foreach (var c in text)
        {
            if (char.IsControl(c)) sb.Append("\\u").Append(((int)c).ToString("X4", System.Globalization.CultureInfo.InvariantCulture));
            else sb.Append(c);
        }
        return sb.ToString();
    }

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> utf8)
    {
        var offset = 0;
        while (offset < utf8.Length)
        {
            var status = System.Text.Rune.DecodeFromUtf8(utf8[offset..], out _, out var consumed);
            if (status != System.Buffers.OperationStatus.Done) return offset;
            offset += consumed;
        }
        return offset;
    }
}
