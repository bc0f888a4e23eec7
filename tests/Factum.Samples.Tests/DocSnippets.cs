using System.Text;
using System.Text.RegularExpressions;

namespace Factum.Samples.Tests;

/// <summary>
/// A code block in the README or docs/ that shows a region of a sample file. It is marked by an HTML comment on the line
/// before its fence: <c>&lt;!-- sample: samples/QuickStart/Program.cs#quickstart --&gt;</c>. The region is the text between
/// <c>// &lt;quickstart&gt;</c> and <c>// &lt;/quickstart&gt;</c> in the sample, without the marker lines of regions nested
/// in it and without their common indentation.
/// </summary>
public sealed record DocSnippet(string Document, int Line, string SampleFile, string Region, string Code)
{
    private static readonly Regex Marker = new(@"^<!--\s*sample:\s*(?<file>[^#\s]+)#(?<region>[\w-]+)\s*-->\s*$");
    private static readonly Regex RegionMarker = new(@"^\s*//\s*</?[\w-]+>\s*$");

    /// <summary>A short name that identifies the block (a document shows a region once): "README.md: QuickStart#quickstart".</summary>
    public string Name => $"{Document}: {Path.GetFileName(Path.GetDirectoryName(SampleFile))}#{Region}";

    public override string ToString() => $"{Document}:{Line} ({SampleFile}#{Region})";

    /// <summary>The documents whose code blocks come from the samples.</summary>
    public static IEnumerable<string> Documents() =>
        new[] { "README.md" }.Concat(Directory.GetFiles(Path.Combine(Repo.Root, "docs"), "*.md").Select(f => Path.GetRelativePath(Repo.Root, f)).Order(StringComparer.Ordinal));

    public static IReadOnlyList<DocSnippet> All() => Documents().SelectMany(Parse).ToList();

    /// <summary>Finds the marked code blocks of one document (path relative to the repository root).</summary>
    public static IEnumerable<DocSnippet> Parse(string document)
    {
        var lines = Normalize(File.ReadAllText(Path.Combine(Repo.Root, document))).Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var m = Marker.Match(lines[i].Trim());
            if (!m.Success) continue;
            var fence = i + 1;
            if (fence >= lines.Length || !lines[fence].StartsWith("```", StringComparison.Ordinal))
                throw new FormatException($"{document}:{i + 1}: a sample marker must be followed directly by a code fence (```csharp).");
            var end = Array.FindIndex(lines, fence + 1, l => l.StartsWith("```", StringComparison.Ordinal));
            if (end < 0) throw new FormatException($"{document}:{fence + 1}: the code block is not closed.");
            yield return new DocSnippet(document, i + 1, m.Groups["file"].Value, m.Groups["region"].Value, string.Join('\n', lines[(fence + 1)..end]));
        }
    }

    /// <summary>The text of a region of a sample file, as a document must show it.</summary>
    public static string RegionText(string sampleFile, string region)
    {
        var path = Path.Combine(Repo.Root, sampleFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"The sample file {sampleFile} does not exist.", path);
        var lines = Normalize(File.ReadAllText(path)).Split('\n');
        var start = Array.FindIndex(lines, l => l.Trim() == $"// <{region}>");
        var end = Array.FindIndex(lines, l => l.Trim() == $"// </{region}>");
        if (start < 0 || end < 0 || end < start)
            throw new InvalidOperationException($"{sampleFile} has no region '{region}' (a line '// <{region}>' and, after it, a line '// </{region}>').");
        var body = lines[(start + 1)..end].Where(l => !RegionMarker.IsMatch(l)).ToList();
        var indent = body.Where(l => l.Trim().Length > 0).Select(l => l.Length - l.TrimStart().Length).DefaultIfEmpty(0).Min();
        return string.Join('\n', body.Select(l => l.Length >= indent ? l[indent..] : l.TrimStart()));
    }

    private static string Normalize(string text) =>
        string.Join('\n', text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n').Select(l => l.TrimEnd()));

    /// <summary>A line diff (longest common subsequence): "  " same, "- " only in the sample, "+ " only in the document.</summary>
    public static string Diff(string expected, string actual)
    {
        var a = expected.Split('\n');
        var b = actual.Split('\n');
        var lcs = new int[a.Length + 1, b.Length + 1];
        for (var i = a.Length - 1; i >= 0; i--)
            for (var j = b.Length - 1; j >= 0; j--)
                lcs[i, j] = a[i] == b[j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
        var sb = new StringBuilder();
        int x = 0, y = 0;
        while (x < a.Length || y < b.Length)
        {
            if (x < a.Length && y < b.Length && a[x] == b[y]) { sb.Append("  ").AppendLine(a[x]); x++; y++; }
            else if (x < a.Length && (y == b.Length || lcs[x + 1, y] >= lcs[x, y + 1])) { sb.Append("- ").AppendLine(a[x]); x++; }
            else { sb.Append("+ ").AppendLine(b[y]); y++; }
        }
        return sb.ToString();
    }
}
