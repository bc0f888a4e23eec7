using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Factum.Design;

/// <summary>Quoting of catalog values for each language the generators write: one place, so no generator forgets one.</summary>
internal static class Escape
{
    private static readonly JsonSerializerOptions Relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>A POSIX shell word: single quotes, an embedded quote as <c>'\''</c>. Nothing inside is expanded.</summary>
    public static string Shell(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>A YAML (and JSON) double-quoted scalar: JSON's string escaping, which YAML reads the same way.</summary>
    public static string Yaml(string? s) => JsonSerializer.Serialize(s ?? "", Relaxed);

    /// <summary>The content of a PromQL double-quoted string: backslash, quote and control characters escaped.</summary>
    public static string PromQl(string s) => Map(s, c => c switch
    {
        '\\' => "\\\\",
        '"' => "\\\"",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        _ when char.IsControl(c) => "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture),
        _ => null,
    });

    /// <summary>Markdown (and MDX) inline text: one line, with every character that starts markup escaped by a backslash.</summary>
    public static string Markdown(string? s) => Map(s ?? "", c => c switch
    {
        '\\' or '`' or '*' or '_' or '[' or ']' or '(' or ')' or '<' or '>' or '#' or '|' or '{' or '}' or '!' or '~' or '&' => "\\" + c,
        _ when IsLineBreakOrControl(c) => " ",
        _ => null,
    });

    /// <summary>A Mermaid label's text, for inside <c>"…"</c>: quotes and markup as Mermaid entity codes, one line.</summary>
    public static string Mermaid(string s) => Map(s, c => c switch
    {
        '"' => "#quot;",
        '#' => "#35;",
        '<' => "#lt;",
        '>' => "#gt;",
        '&' => "#amp;",
        '`' => "#96;",
        _ when IsLineBreakOrControl(c) => " ",
        _ => null,
    });

    /// <summary>A YAML comment line's text: line breaks of any kind become spaces, so the text cannot leave the comment.</summary>
    public static string CommentLine(string s) => Map(s, c => IsLineBreakOrControl(c) ? " " : null);

    private static bool IsLineBreakOrControl(char c) => char.IsControl(c) || c is '\u2028' or '\u2029' or '\u0085';

    /// <summary>Each character replaced by what <paramref name="replace"/> gives, or kept when it gives null.</summary>
    private static string Map(string s, Func<char, string?> replace)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var c in s) sb.Append(replace(c) ?? c.ToString());
        return sb.ToString();
    }
}
