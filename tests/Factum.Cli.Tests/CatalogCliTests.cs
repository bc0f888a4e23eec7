using System.Text.Json;

namespace Factum.Cli.Tests;

public sealed class CatalogCliTests : IDisposable
{
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private Task<CliResult> F(params string[] args) => FactumCli.Run(_dir.Path, args);

    private static string Sample() => Path.Combine(FactumCli.RepoRoot, "samples", "catalog");

    [Fact]
    public async Task Lint_exits_0_on_the_sample_1_on_errors_and_2_on_a_broken_file()
    {
        var clean = await F("catalog", "lint", "--catalog", Sample());
        Assert.Equal(0, clean.ExitCode);
        Assert.Contains("0 error(s)", clean.Stdout);

        var bad = Path.Combine(_dir.Path, "bad.yaml");
        await File.WriteAllTextAsync(bad, "events:\n  - {name: PlaceOrder, owner: t, versions: [{version: 1, schema: {type: object}}]}\n");
        var errors = await F("catalog", "lint", "--catalog", bad);
        Assert.Equal(1, errors.ExitCode);
        Assert.Contains("error naming/event-past-tense: event PlaceOrder", errors.Stdout);
        var sarif = JsonDocument.Parse((await F("catalog", "lint", "--catalog", bad, "--format", "sarif")).Stdout).RootElement;
        Assert.Equal("2.1.0", sarif.GetProperty("version").GetString());
        Assert.Contains(sarif.GetProperty("runs")[0].GetProperty("results").EnumerateArray(), r => r.GetProperty("ruleId").GetString() == "naming/event-past-tense");
        var json = JsonDocument.Parse((await F("catalog", "lint", "--catalog", bad, "--format", "json")).Stdout).RootElement;
        Assert.True(json.GetProperty("errors").GetInt32() >= 1);

        await File.WriteAllTextAsync(bad, "events:\n  - name: A\n    ordering: sometimes\n");
        var invalid = await F("catalog", "lint", "--catalog", bad);
        Assert.Equal(2, invalid.ExitCode);
        Assert.Contains("bad.yaml:3: 'ordering' is 'sometimes'", invalid.Stderr);
        Assert.Equal(2, (await F("catalog", "lint", "--catalog", Path.Combine(_dir.Path, "missing"))).ExitCode);
        Assert.Equal(2, (await F("catalog", "lint", "--catalog", Sample(), "--format", "xml")).ExitCode);
    }

    [Fact]
    public async Task Compat_reports_violations_with_paths_and_fails_under_a_stricter_mode()
    {
        var ok = await F("catalog", "compat", "--catalog", Sample());
        Assert.Equal(0, ok.ExitCode);
        Assert.Contains("OrderPlaced: BACKWARD over 2 version(s): compatible", ok.Stdout);
        var full = await F("catalog", "compat", "--catalog", Sample(), "--mode", "FULL_TRANSITIVE", "--message", "OrderPlaced");
        Assert.Equal(1, full.ExitCode);
        Assert.Contains("v1 reading v2 data: $.channel [property-rejected-by-closed-model]", full.Stdout);
        var json = JsonDocument.Parse((await F("catalog", "compat", "--catalog", Sample(), "--mode", "FULL", "--format", "json")).Stdout).RootElement;
        Assert.Contains(json.EnumerateArray(), m => m.GetProperty("message").GetString() == "OrderPlaced" && !m.GetProperty("compatible").GetBoolean());
        Assert.Equal(2, (await F("catalog", "compat", "--catalog", Sample(), "--mode", "SIDEWAYS")).ExitCode);
    }

    [Fact]
    public async Task Advise_and_plan_run_on_the_sample()
    {
        var advise = await F("catalog", "advise", "--catalog", Sample());
        Assert.Equal(0, advise.ExitCode);
        Assert.Contains("OrderPlaced         EventStreaming", advise.Stdout);
        Assert.Contains("CheckStock          RequestReply", advise.Stdout);
        Assert.Contains("Recommendation: ", advise.Stdout);
        Assert.Contains("Factum embedded", advise.Stdout);
        var outDir = Path.Combine(_dir.Path, "topology");
        var plan = await F("catalog", "plan", "--catalog", Sample(), "--out", outDir);
        Assert.Equal(0, plan.ExitCode);
        Assert.Contains("topic OrderPlaced: 3 partition(s), key orderId, groups analytics, billing, shipping", plan.Stdout);
        Assert.True(File.Exists(Path.Combine(outDir, "asyncapi.json")));
        Assert.True(File.Exists(Path.Combine(outDir, "rabbitmq", "definitions.json")));
    }

    [Fact]
    public async Task Discover_reads_the_demo_store_and_diff_compares_it_with_the_yaml_catalog()
    {
        Assert.Equal(0, (await F("demo")).ExitCode);
        var file = Path.Combine(_dir.Path, "discovered.yaml");
        var discover = await FactumCli.Run(_dir.Path, "catalog", "discover", "--data", _dir.Path, "--out", file);
        Assert.Equal(0, discover.ExitCode);
        var yaml = await File.ReadAllTextAsync(file);
        Assert.Contains("OrderPlaced -> PaymentRequested (3)", yaml);
        Assert.Contains("name: \"OrderPlaced\"", yaml);
        // The sample catalog is the demo's domain: no drift (commands are not stored events, so their absence is none).
        var diff = await F("catalog", "diff", "--catalog", Sample(), "--data", _dir.Path);
        Assert.True(diff.ExitCode == 0, diff.Stdout + diff.Stderr);
        Assert.Contains("0 difference(s)", diff.Stdout);
        Assert.Equal(0, (await F("catalog", "diff", "--catalog", Sample(), "--against", Sample())).ExitCode);
        // With --data, the store's types join the lint; the sample lists them all, so it stays free of errors.
        var lint = await F("catalog", "lint", "--catalog", Sample(), "--data", _dir.Path);
        Assert.Equal(0, lint.ExitCode);
        Assert.Equal(2, (await F("catalog", "diff", "--catalog", Sample())).ExitCode);
        Assert.Equal(2, (await F("catalog", "discover", "--data", Path.Combine(_dir.Path, "nowhere"))).ExitCode);
    }

    [Fact]
    public async Task Docs_alerts_storming_import_and_eventcatalog_export_write_their_files()
    {
        var site = Path.Combine(_dir.Path, "site");
        Assert.Equal(0, (await F("catalog", "docs", "--catalog", Sample(), "--out", site)).ExitCode);
        Assert.True(File.Exists(Path.Combine(site, "index.html")));
        Assert.True(File.Exists(Path.Combine(site, "markdown", "message", "OrderPlaced.md")));
        var alerts = Path.Combine(_dir.Path, "alerts");
        var a = await F("catalog", "alerts", "--catalog", Sample(), "--out", alerts);
        Assert.Equal(0, a.ExitCode);
        Assert.Contains("FactumDeadLetters", a.Stdout);
        Assert.True(File.Exists(Path.Combine(alerts, "runbook.md")));
        var board = Path.Combine(_dir.Path, "board.yaml");
        await File.WriteAllTextAsync(board, "contexts:\n  - name: Ordering\n    commands: [{name: PlaceOrder, actor: Customer, aggregate: Order, emits: [OrderPlaced]}]\n");
        var skeleton = Path.Combine(_dir.Path, "skeleton.yaml");
        Assert.Equal(0, (await F("catalog", "import-storming", board, "--out", skeleton)).ExitCode);
        var lint = await F("catalog", "lint", "--catalog", skeleton);
        Assert.Equal(0, lint.ExitCode); // a sound skeleton: only warnings for what the workshop left open
        Assert.Contains("warning mapping/no-consumers: event OrderPlaced", lint.Stdout);
        Assert.Equal(2, (await F("catalog", "import-storming", Path.Combine(_dir.Path, "none.yaml"))).ExitCode);
        var ec = Path.Combine(_dir.Path, "ec");
        Assert.Equal(0, (await F("catalog", "export-eventcatalog", "--catalog", Sample(), "--out", ec)).ExitCode);
        Assert.True(File.Exists(Path.Combine(ec, "events", "OrderPlaced", "index.mdx")));
    }

    [Fact]
    public async Task Store_type_names_neither_write_outside_out_nor_reach_the_kafka_script()
    {
        // Anyone who can append to the store chooses these names; docs and plan read them through --data.
        Assert.Equal(0, (await F("append", "--stream", "Order-1", "--type", "../../../x", "--data", "{}", "--allow-nonconventional-names")).ExitCode);
        Assert.Equal(0, (await F("append", "--stream", "Order-1", "--type", "OrderPlaced;touch${IFS}pwned;#", "--data", "{}", "--allow-nonconventional-names")).ExitCode);
        var site = Path.Combine(_dir.Path, "a", "b", "site");
        var docs = await F("catalog", "docs", "--catalog", Sample(), "--data", _dir.Path, "--out", site);
        Assert.Equal(0, docs.ExitCode);
        var inside = site + Path.DirectorySeparatorChar;
        Assert.All(Directory.EnumerateFiles(_dir.Path, "*", SearchOption.AllDirectories).Where(f => !f.StartsWith(inside, StringComparison.Ordinal)),
            f => Assert.StartsWith(Path.Combine(_dir.Path, "factum.db"), f, StringComparison.Ordinal));
        Assert.Contains(Directory.EnumerateFiles(Path.Combine(site, "message")), f => Path.GetFileName(f).StartsWith("_.._.._x~", StringComparison.Ordinal));

        var plan = await F("catalog", "plan", "--catalog", Sample(), "--data", _dir.Path, "--out", Path.Combine(_dir.Path, "plan"));
        Assert.Equal(2, plan.ExitCode);
        Assert.Contains("'OrderPlaced;touch${IFS}pwned;#' is not a valid Kafka topic name: it contains ';'", plan.Stderr);
        Assert.Contains("refusing to generate the topology", plan.Stderr);
        Assert.False(Directory.Exists(Path.Combine(_dir.Path, "plan")));
        Assert.False(File.Exists(Path.Combine(_dir.Path, "pwned")));
    }

    public static TheoryData<string, string, int, string> HostileCatalogs()
    {
        var bomb = new List<string> { "events:", "  - name: A", "    versions:", "      - version: 1", "        schema:", "          l0: &l0 [x, x, x, x, x, x, x, x, x, x]" };
        for (var i = 1; i < 10; i++) bomb.Add($"          l{i}: &l{i} [{string.Join(", ", Enumerable.Repeat($"*l{i - 1}", 10))}]");
        static string SchemaFile(string f) => $"events:\n  - name: A\n    versions:\n      - version: 1\n        schemaFile: {f}\n";
        return new()
        {
            { "bomb", string.Join("\n", bomb) + "\n", 0, "values once its aliases (*name) are expanded" },
            { "deep", "events:\n  - name: A\n    versions: " + new string('[', 50_000) + "\n", 3, "deeper than 64 levels" },
            { "zero", SchemaFile("/dev/zero"), 5, "schema file '/dev/zero' lies outside the catalog folder" },
            { "passwd", SchemaFile("../../../../../../../../etc/passwd"), 5, "lies outside the catalog folder" },
        };
    }

    [Theory]
    [MemberData(nameof(HostileCatalogs))]
    public async Task Hostile_catalogs_exit_2_with_file_and_line(string name, string yaml, int line, string problem)
    {
        var file = Path.Combine(_dir.Path, name + ".yaml");
        await File.WriteAllTextAsync(file, yaml);
        var r = await F("catalog", "lint", "--catalog", file);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(problem, r.Stderr);
        Assert.Matches(line > 0 ? $"{name}\\.yaml:{line}: " : $"{name}\\.yaml:[0-9]+: ", r.Stderr);
        Assert.DoesNotContain("root:", r.Stderr);
        Assert.DoesNotContain("Unhandled exception", r.Stderr);
    }

    [Fact]
    public async Task The_assembly_option_says_it_runs_the_assembly_code()
    {
        var help = await F("catalog", "lint", "--help");
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("loads and runs the assembly's code (module initialisers, static constructors): only use assemblies you trust",
            System.Text.RegularExpressions.Regex.Replace(help.Stdout, "\\s+", " "));
    }

    [Fact]
    public async Task Diff_of_the_sample_catalog_against_the_demo_store_finds_no_drift_and_exits_1_on_drift()
    {
        // The real demo, run through the CLI into a temp store, then the drift check CI would run.
        Assert.Equal(0, (await F("demo", "--data", _dir.Path)).ExitCode);
        var clean = await F("catalog", "diff", "--catalog", Sample(), "--data", _dir.Path);
        Assert.True(clean.ExitCode == 0, $"drift between samples/catalog and the demo:\n{clean.Stdout}{clean.Stderr}");
        Assert.Equal("0 difference(s)", clean.Lines.Last());
        var json = JsonDocument.Parse((await F("catalog", "diff", "--catalog", Sample(), "--data", _dir.Path, "--format", "json")).Stdout).RootElement;
        Assert.Equal(0, json.GetArrayLength());

        // Drift: a catalog that forgot an event, maps a stream category to the wrong service and misses a consumer.
        var drifted = Path.Combine(_dir.Path, "drifted");
        Directory.CreateDirectory(drifted);
        CopyDirectory(Sample(), drifted);
        var yaml = await File.ReadAllTextAsync(Path.Combine(drifted, "catalog.yaml"));
        yaml = yaml.Replace("    consumes: [OrderPlaced, PaymentCaptured, ShipmentScheduled]", "    consumes: [OrderPlaced, PaymentCaptured]", StringComparison.Ordinal)
            .Replace("    streams: [Order]\n", "", StringComparison.Ordinal)
            .Replace("    streams: [Warehouse]\n", "    streams: [Stock]\n", StringComparison.Ordinal);
        yaml = yaml.Replace(yaml[yaml.IndexOf("  - name: StockReserved", StringComparison.Ordinal)..yaml.IndexOf("  - name: ShipmentDispatched", StringComparison.Ordinal)], "", StringComparison.Ordinal)
            .Replace("publishes: [StockReserved]", "publishes: []", StringComparison.Ordinal).Replace(", StockReserved]", "]", StringComparison.Ordinal);
        await File.WriteAllTextAsync(Path.Combine(drifted, "catalog.yaml"), yaml);
        var drift = await F("catalog", "diff", "--catalog", drifted, "--data", _dir.Path);
        Assert.Equal(1, drift.ExitCode);
        Assert.Contains("StockReserved: presence: yaml missing | store defined", drift.Stdout);
        Assert.Contains("ShipmentScheduled: consumers (observed, not declared): yaml (none) | store shipping", drift.Stdout);
        // Order has no streams: entry any more; its events still map to orders, the service that publishes them.
        Assert.DoesNotContain("OrderPlaced: producers", drift.Stdout);
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(dir.Replace(from, to, StringComparison.Ordinal));
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories)) File.Copy(file, file.Replace(from, to, StringComparison.Ordinal));
    }
}
