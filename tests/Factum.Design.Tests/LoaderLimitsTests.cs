using Factum.Design;

namespace Factum.Design.Tests;

/// <summary>Catalog files that would exhaust the machine or read files outside the catalog are refused with file:line errors.</summary>
public sealed class LoaderLimitsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("factum-limits-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>Ten levels of ten aliases each: 10^9 values once expanded, a few hundred bytes of text.</summary>
    public static string AliasBomb()
    {
        var lines = new List<string> { "events:", "  - name: A", "    versions:", "      - version: 1", "        schema:", "          l0: &l0 [x, x, x, x, x, x, x, x, x, x]" };
        for (var i = 1; i < 10; i++) lines.Add($"          l{i}: &l{i} [{string.Join(", ", Enumerable.Repeat($"*l{i - 1}", 10))}]");
        return string.Join("\n", lines) + "\n";
    }

    public static string DeepNesting() => "events:\n  - name: A\n    versions: " + new string('[', 50_000) + "\n";

    public static string SchemaFileCatalog(string schemaFile) => $"events:\n  - name: A\n    versions:\n      - version: 1\n        schemaFile: {schemaFile}\n";

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static CatalogFormatException Refused(string path) => Assert.Throws<CatalogFormatException>(() => CatalogLoader.Load([path]));

    // Found by the hour-long fuzz run (catalog-yaml): an alias inside the node it names made the schema a cycle, and
    // converting it overflowed the stack, killing the process.
    [Theory]
    [InlineData("schema: &s {type: object, properties: {x: *s}}")]
    [InlineData("schema: &s [a, [b, *s]]")]
    public void An_alias_to_the_node_it_is_inside_is_refused_not_walked_forever(string schema)
    {
        var ex = Refused(Write("cycle.yaml", "events:\n  - name: OrderPlaced\n    versions:\n      - version: 1\n        " + schema + "\n"));
        Assert.Contains("cycle.yaml:5:", ex.Message);
        Assert.Contains("the alias *s refers to the node it is inside", ex.Message);
    }

    [Fact]
    public void An_alias_bomb_is_refused_before_it_expands()
    {
        var ex = Refused(Write("bomb.yaml", AliasBomb()));
        Assert.Contains("bomb.yaml:", ex.Message);
        Assert.True(ex.Line is > 5 and <= 15, ex.Message);
        Assert.Contains($"more than {CatalogLoader.MaxNodes} values once its aliases", ex.Message);
        // Aliases within the bound still work.
        var small = CatalogLoader.Parse("events:\n  - name: A\n    versions:\n      - version: 1\n        schema: {type: object, properties: {a: &s {type: string}, b: *s}}\n");
        Assert.Equal("string", small.Message("A")!.Latest!.Schema!["properties"]!["b"]!["type"]!.GetValue<string>());
    }

    [Fact]
    public void Deep_nesting_is_refused_without_overflowing_the_stack()
    {
        var ex = Refused(Write("deep.yaml", DeepNesting()));
        Assert.Equal(3, ex.Line);
        Assert.Contains($"deeper than {CatalogLoader.MaxNesting} levels", ex.Message);
        // Up to the limit is fine: mapping, list, message, versions, version, schema and 58 nested lists make 64 levels.
        var schema = "{type: object, examples: " + new string('[', 58) + new string(']', 58) + "}";
        Assert.NotNull(CatalogLoader.Parse($"events:\n  - name: A\n    versions:\n      - {{version: 1, schema: {schema}}}\n").Message("A"));
    }

    [Fact]
    public void A_device_as_schema_file_is_refused_without_reading_it()
    {
        var ex = Refused(Write("zero.yaml", SchemaFileCatalog("/dev/zero")));
        Assert.Equal(5, ex.Line);
        Assert.Contains("lies outside the catalog folder", ex.Message);
        // The same device reached through a link inside the catalog folder.
        File.CreateSymbolicLink(Path.Combine(_dir, "zero.json"), "/dev/zero");
        ex = Refused(Write("zero.yaml", SchemaFileCatalog("zero.json")));
        Assert.Contains("zero.yaml:5: schema file 'zero.json' lies outside the catalog folder", ex.Message);
    }

    [Fact]
    public void A_pipe_inside_the_catalog_folder_is_refused_without_opening_it()
    {
        Assert.Equal(0, Repo.Run("mkfifo", _dir, null, Path.Combine(_dir, "pipe.json")).Exit);
        var ex = Refused(Write("pipe.yaml", SchemaFileCatalog("pipe.json")));
        Assert.Contains("pipe.yaml:5: schema file 'pipe.json' is empty or not a regular file", ex.Message);
    }

    [Fact]
    public void A_schema_file_outside_the_catalog_folder_is_refused_and_never_quoted()
    {
        var ex = Refused(Write("passwd.yaml", SchemaFileCatalog("../../../../../../../../etc/passwd")));
        Assert.Contains("passwd.yaml:5: schema file '../../../../../../../../etc/passwd' lies outside the catalog folder", ex.Message);
        Assert.DoesNotContain("root", ex.Message.Replace(Path.GetTempPath(), "", StringComparison.Ordinal));
        Assert.DoesNotContain("'r'", ex.Message);
        // Inside the folder, a file that is not JSON is reported by position, not by what it holds.
        Write("secret.json", "root:x:0:0:root:/root:/bin/bash\n");
        ex = Refused(Write("secret.yaml", SchemaFileCatalog("secret.json")));
        Assert.Contains("secret.json:1: not valid JSON", ex.Message);
        Assert.DoesNotContain("'r'", ex.Message);
        Assert.DoesNotContain("root", ex.Message.Replace(Path.GetTempPath(), "", StringComparison.Ordinal));
    }

    [Fact]
    public void Files_past_the_size_limits_are_refused()
    {
        var big = Path.Combine(_dir, "big.json");
        using (var f = File.Create(big)) f.SetLength(CatalogLoader.MaxSchemaFileBytes + 1);
        var ex = Refused(Write("big.yaml", SchemaFileCatalog("big.json")));
        Assert.Contains("big.yaml:5: schema file 'big.json' is 4194305 bytes; the limit is 4 MiB", ex.Message);

        var catalog = Path.Combine(_dir, "huge.yaml");
        using (var f = File.Create(catalog)) f.SetLength(CatalogLoader.MaxCatalogFileBytes + 1);
        ex = Refused(catalog);
        Assert.Contains("huge.yaml: the catalog file is 16777217 bytes; the limit is 16 MiB", ex.Message);
    }

    // Issue 9: `rate: 1e400/s` parsed as infinity and overflowed later computations.
    [Theory]
    [InlineData("1e400/s")]
    [InlineData("1e300")]
    [InlineData("Infinity")]
    [InlineData("NaN/s")]
    public void Rates_that_no_computation_can_use_are_refused(string rate)
    {
        var ex = Refused(Write("rate.yaml", $"events:\n  - name: OrderPlaced\n    rate: {rate}\n    versions: [{{ version: 1 }}]\n"));
        Assert.Contains("rate.yaml:3: 'rate' is", ex.Message);
        var ok = CatalogLoader.Load([Write("ok.yaml", "events:\n  - name: OrderPlaced\n    rate: 1e6/min\n    versions: [{ version: 1 }]\n")]);
        Assert.Equal(1e6 / 60, ok.Messages[0].Rate!.Value, 6);
    }

    // Found while fuzzing the compatibility checker: JsonNode decodes strings lazily, so an escaped lone surrogate in a
    // schema file parsed and then crashed `catalog compat`.
    [Fact]
    public void A_schema_file_with_a_lone_surrogate_escape_is_refused_at_load()
    {
        Write("s.json", """{"type":"object","properties":{"\ud800":{"type":"string"}}}""");
        var ex = Refused(Write("s.yaml", SchemaFileCatalog("s.json")));
        Assert.Contains("s.yaml:5: schema file 's.json' holds an escape that is not valid Unicode", ex.Message);
    }

    // Found by the schema-compat fuzz target: a duplicate key parsed, then crashed `catalog compat` mid-check.
    [Fact]
    public void A_schema_file_with_a_duplicate_property_name_is_refused_at_load()
    {
        Write("d.json", """{"type":"object","required":["a"],"required":["b"]}""");
        var ex = Refused(Write("d.yaml", SchemaFileCatalog("d.json")));
        Assert.Contains("d.json:", ex.Message);
        Assert.Contains("not valid JSON", ex.Message);
    }
}
