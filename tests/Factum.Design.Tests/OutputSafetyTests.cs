using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CsCheck;
using Factum.Design;

namespace Factum.Design.Tests;

/// <summary>Catalog ids and store type names become file names: every generator stays inside its output folder.</summary>
public sealed partial class OutputSafetyTests : IDisposable
{
    // out sits three folders deep, so "../../x" from out/service/ (or "../../../x" from out/events/x/) would land in _parent.
    private readonly string _parent = Directory.CreateTempSubdirectory("factum-out-").FullName;
    private readonly string _out;

    public OutputSafetyTests()
    {
        _out = Path.Combine(_parent, "a", "b", "out");
        Directory.CreateDirectory(_out);
    }

    public void Dispose() => Directory.Delete(_parent, true);

    /// <summary>Names that are paths, reserved, empty, control characters or too long for a file name.</summary>
    public static readonly string[] Hostile =
    [
        "../../x", "../../../x", "/etc/x", "a/b", "..", ".", "", "CON", "con.txt", "nul", "x\u0001y\nz", "tab\there", new string('a', 300),
        "..\\..\\x", "~", "_~0123456789abcdef", "-rf", ".hidden", "trailing.", "white space", "ü/../ü", "OrderPlaced",
    ];

    internal static EventCatalogModel HostileCatalog()
    {
        var schema = new JsonObject { ["type"] = "object" };
        return new EventCatalogModel
        {
            Domains = Hostile.Select(n => new CatalogDomain(n, n, n, null)).ToList(),
            Teams = Hostile.Select(n => new CatalogTeam(n, n, null)).ToList(),
            Services = Hostile.Select(n => new CatalogService { Id = n, Domain = n, Owner = n, Description = n, Publishes = [n], Consumes = [n] }).ToList(),
            Messages = Hostile.Select((n, i) => new CatalogMessage
            {
                Name = n,
                Kind = (CatalogMessageKind)(i % 3),
                Owners = [n],
                Description = n,
                Classification = "integration",
                Versions = [new MessageVersion(1, schema, n), new MessageVersion(2, schema, n)],
            }).ToList(),
        };
    }

    private IReadOnlyList<string> WriteEverything(EventCatalogModel catalog) =>
    [
        .. SiteGenerator.Write(catalog, Path.Combine(_out, "docs")),
        .. TopologyPlanner.Write(catalog, Path.Combine(_out, "plan")),
        .. AlertPlanner.Write(catalog, Path.Combine(_out, "alerts")),
        .. EventCatalogExport.Write(catalog, Path.Combine(_out, "ec")),
    ];

    private void AssertEverythingInsideOut(IReadOnlyList<string> written)
    {
        var inside = Path.GetFullPath(_out) + Path.DirectorySeparatorChar;
        Assert.All(written, f => Assert.StartsWith(inside, Path.GetFullPath(f), StringComparison.Ordinal));
        // Nothing appeared anywhere else below the parent (files or folders).
        var stray = Directory.EnumerateFileSystemEntries(_parent, "*", SearchOption.AllDirectories)
            .Where(p => !(p + Path.DirectorySeparatorChar).StartsWith(inside, StringComparison.Ordinal) && !inside.StartsWith(p + Path.DirectorySeparatorChar, StringComparison.Ordinal)).ToList();
        Assert.Empty(stray);
        var onDisk = Directory.EnumerateFiles(_out, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(onDisk, written.Select(Path.GetFullPath).Order(StringComparer.Ordinal).ToList());
    }

    [Fact]
    public void Hostile_ids_stay_inside_the_output_folder_for_every_generator()
    {
        var written = WriteEverything(HostileCatalog());
        AssertEverythingInsideOut(written);
        // One page per distinct name (none overwrote another): a name → file map with no collisions.
        Assert.Equal(Hostile.Length, Directory.GetFiles(Path.Combine(_out, "docs", "message")).Length);
        Assert.Equal(Hostile.Length, Directory.GetFiles(Path.Combine(_out, "docs", "service")).Length);
        Assert.Equal(Hostile.Length, Directory.GetFiles(Path.Combine(_out, "docs", "domain")).Length);
        Assert.Equal(Hostile.Length, Directory.GetFiles(Path.Combine(_out, "ec", "teams")).Length);
        Assert.True(File.Exists(Path.Combine(_out, "docs", "message", "OrderPlaced.html")), "plain names keep their file name");
    }

    [Fact]
    public void Links_in_the_generated_site_lead_to_the_pages_written()
    {
        SiteGenerator.Write(HostileCatalog(), _out);
        var pages = Directory.EnumerateFiles(_out, "*.html", SearchOption.AllDirectories).ToList();
        var links = 0;
        foreach (var page in pages)
        {
            foreach (Match m in Href().Matches(File.ReadAllText(page)))
            {
                var target = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(page)!, Uri.UnescapeDataString(System.Net.WebUtility.HtmlDecode(m.Groups[1].Value))));
                Assert.True(File.Exists(target), $"{page} links to {m.Groups[1].Value}, which was not written");
                links++;
            }
        }
        Assert.True(links > Hostile.Length * 3);
        foreach (var md in Directory.EnumerateFiles(Path.Combine(_out, "markdown"), "*.md", SearchOption.AllDirectories))
        {
            foreach (Match m in MdLink().Matches(File.ReadAllText(md)))
                Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(md)!, m.Groups[1].Value)), $"{md} links to {m.Groups[1].Value}, which was not written");
        }
    }

    [Fact]
    public void A_folder_link_planted_inside_out_is_not_written_through()
    {
        var outside = Path.Combine(_parent, "outside");
        Directory.CreateDirectory(outside);
        Directory.CreateSymbolicLink(Path.Combine(_out, "service"), outside);
        var ex = Assert.Throws<CatalogFormatException>(() => SiteGenerator.Write(HostileCatalog(), _out));
        Assert.Contains("symbolic link", ex.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
    }

    [Fact]
    public void A_file_link_planted_inside_out_is_not_written_through()
    {
        var victim = Path.Combine(_parent, "victim.txt");
        File.WriteAllText(victim, "original");
        File.CreateSymbolicLink(Path.Combine(_out, "index.html"), victim);
        Assert.Throws<CatalogFormatException>(() => SiteGenerator.Write(HostileCatalog(), _out));
        Assert.Equal("original", File.ReadAllText(victim));

        // A link to a file inside the folder is replaced by a new file; its target is left alone.
        File.Delete(Path.Combine(_out, "index.html"));
        var inside = Path.Combine(_out, "keep.txt");
        File.WriteAllText(inside, "mine");
        File.CreateSymbolicLink(Path.Combine(_out, "index.html"), inside);
        SiteGenerator.Write(HostileCatalog(), _out);
        Assert.Equal("mine", File.ReadAllText(inside));
        Assert.Null(new FileInfo(Path.Combine(_out, "index.html")).LinkTarget);
    }

    private static readonly Gen<string> Names = Gen.OneOf(Gen.String, Gen.Char["./\\~-_aA0 \u0000\n:CONUL"].Array[0, 80].Select(a => new string(a)), Gen.Int[0, Hostile.Length - 1].Select(i => Hostile[i]));

    [Fact]
    public void Any_name_maps_to_one_file_directly_inside_the_folder_and_distinct_names_to_distinct_files()
    {
        var folder = Path.GetFullPath(Path.Combine(_out, "message"));
        Names.Sample(name =>
        {
            var file = OutputFolder.FileName(name);
            Assert.Equal(folder, Path.GetDirectoryName(Path.GetFullPath(Path.Combine(folder, file + ".html"))));
            Assert.Matches("^[A-Za-z0-9_][A-Za-z0-9._~-]*$", file);
            Assert.True(file.Length <= 64, file);
            Assert.Equal(file, OutputFolder.FileName(name)); // deterministic
        });
        Gen.Select(Names, Names).Sample((a, b) => a == b || OutputFolder.FileName(a) != OutputFolder.FileName(b));
    }

    [GeneratedRegex("href=\"([^\"]+\\.html)\"")]
    private static partial Regex Href();

    [GeneratedRegex("\\]\\(([^)]+\\.md)\\)")]
    private static partial Regex MdLink();
}
