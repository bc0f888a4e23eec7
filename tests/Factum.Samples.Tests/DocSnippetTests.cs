namespace Factum.Samples.Tests;

/// <summary>The README and docs/ show code taken from the compiled and tested samples, character for character.</summary>
public sealed class DocSnippetTests
{
    public static TheoryData<string> Snippets()
    {
        var data = new TheoryData<string>();
        foreach (var s in DocSnippet.All()) data.Add(s.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(Snippets))]
    public void Documented_code_block_is_the_sample_region(string snippet)
    {
        var s = DocSnippet.All().Single(x => x.Name == snippet);
        var expected = DocSnippet.RegionText(s.SampleFile, s.Region);
        Assert.True(expected == s.Code,
            $"The code block at {s.Document}:{s.Line} differs from {s.SampleFile}#{s.Region} (- sample, + document). " +
            $"Copy the region into the document (or change the sample and run its test):\n{DocSnippet.Diff(expected, s.Code)}");
    }

    [Fact]
    public void Each_document_shows_a_region_once()
    {
        var names = DocSnippet.All().Select(s => s.Name).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
    }

    [Fact]
    public void Readme_and_messaging_doc_show_every_sample()
    {
        var shown = DocSnippet.All().Select(s => (s.Document, s.SampleFile, s.Region)).ToHashSet();
        Assert.Contains(("README.md", "samples/QuickStart/Program.cs", "quickstart"), shown);
        Assert.Contains(("README.md", "samples/QuickStart/Program.cs", "caused-by"), shown);
        Assert.Contains(("README.md", "samples/Messaging/Program.cs", "messaging"), shown);
        Assert.Contains(("README.md", "samples/WebApi/Program.cs", "webapi-endpoints"), shown);
        Assert.Contains(("docs/messaging.md", "samples/Messaging/Program.cs", "messaging"), shown);
        Assert.Contains(("docs/messaging.md", "samples/Messaging/Program.cs", "dead-letters"), shown);
        Assert.Contains(("docs/messaging.md", "samples/WebApi/Program.cs", "webapi-services"), shown);
    }

    [Fact]
    public void Readme_quick_start_is_the_whole_sample_program_so_it_compiles_as_shown()
    {
        var quickStart = DocSnippet.All().Single(s => s.Document == "README.md" && s.Region == "quickstart");
        var program = File.ReadAllLines(Path.Combine(Repo.Root, "samples/QuickStart/Program.cs"))
            .Where(l => !System.Text.RegularExpressions.Regex.IsMatch(l, @"^\s*//\s*</?[\w-]+>\s*$"));
        Assert.Equal(string.Join('\n', program.Select(l => l.TrimEnd())).Trim(), quickStart.Code.Trim());
    }

    [Fact]
    public void A_changed_document_fails_with_a_diff()
    {
        var diff = DocSnippet.Diff("a\nb\nc", "a\nB\nc");
        Assert.Equal("  a\n- b\n+ B\n  c\n", diff.Replace("\r\n", "\n", StringComparison.Ordinal));
    }
}
