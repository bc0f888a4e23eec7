using System.Text.Json;

namespace Factum.Cli.Tests;

public sealed class CatalogCliTests : IDisposable
{
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private Task<CliResult> F(params string[] args) => FactumCli.Run(_dir.Path, args);

    private static string Sample()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Factum.slnx"))) dir = dir.Parent;
        return Path.Combine(dir!.FullName, "samples", "catalog");
    }

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
}
