using System.Text.Json;

namespace Factum.Cli.Tests;

/// <summary>
/// Issue 10's day-one defects, through the program as a new user runs it. Each test names what the old code did.
/// </summary>
public sealed class EverydayCliTests : IDisposable
{
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private Task<CliResult> F(params string[] args) => FactumCli.Run(_dir.Path, args);

    // Old code: the CLI appended `PlaceOrder` although the C# registry refuses such names.
    [Fact]
    public async Task The_cli_applies_the_registrys_naming_rule_unless_told_to_import_foreign_names()
    {
        var refused = await F("append", "--stream", "Order-1", "--type", "PlaceOrder", "--data", "{}");
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("'PlaceOrder' reads as a command ('Place …')", refused.Stderr);
        Assert.Contains("e.g. OrderPlaced", refused.Stderr);
        Assert.Contains("--allow-nonconventional-names", refused.Stderr);
        Assert.Equal(4, (await F("read", "--stream", "Order-1")).ExitCode); // nothing was written

        var lines = """
            {"stream":"Order-2","type":"OrderPlaced","data":{}}
            {"stream":"Order-2","type":"order_created","data":{}}
            """;
        var import = await FactumCli.RunWithInput(_dir.Path, lines, "import");
        Assert.NotEqual(0, import.ExitCode);
        var results = import.Lines.Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        Assert.True(results[0].TryGetProperty("position", out _));
        Assert.Equal(2, results[1].GetProperty("code").GetInt32());
        Assert.Contains("'order_created' is not PascalCase", results[1].GetProperty("error").GetString());

        Assert.Equal(0, (await F("append", "--stream", "Legacy-1", "--type", "PlaceOrder", "--data", "{}", "--allow-nonconventional-names")).ExitCode);
        Assert.Equal(0, (await FactumCli.RunWithInput(_dir.Path, """{"stream":"Legacy-1","type":"order_created","data":{}}""", "import", "--allow-nonconventional-names")).ExitCode);
        Assert.Equal(2, (await F("read", "--stream", "Legacy-1", "--json")).Lines.Length);
    }

    // Old code: `factum --help` said "Usage: Factum.Cli".
    [Fact]
    public async Task Help_names_the_command_factum()
    {
        var help = await F("--help");
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("Usage:\n  factum [command] [options]", help.Stdout.Replace("\r", ""));
        Assert.DoesNotContain("Factum.Cli", help.Stdout);
        Assert.Contains("-v, --verbose", help.Stdout);
    }

    // Old code: nothing in src/ logged, and the CLI had no way to show it.
    [Fact]
    public async Task Verbose_shows_what_factum_does_on_stderr_and_keeps_stdout_clean()
    {
        var quiet = await F("demo");
        Assert.Equal(0, quiet.ExitCode);
        Assert.DoesNotContain("info:", quiet.Stderr);
        // The demo's deliberate payment failure is a dead letter: one warning each, with ids, by default.
        Assert.Contains("warn: Factum.Messaging[4003] CapturePayment", quiet.Stderr);

        var verbose = await F("demo", "-v");
        Assert.Equal(0, verbose.ExitCode);
        Assert.Contains("info: Factum.Messaging[4006] Message bus", verbose.Stderr);
        Assert.Contains("dbug: Factum.Messaging[4001]", verbose.Stderr);
        // Logs go to stderr only: stdout holds the demo's own output.
        Assert.DoesNotContain("Factum.Messaging[", verbose.Stdout);
        Assert.Contains("Dead-letter queue", verbose.Stdout);
    }

    // Old code: `import-storming … --out catalog/skeleton.yaml`, as docs/catalog.md writes it, crashed with a stack trace
    // when catalog/ did not exist, and the docs' own board then failed `catalog lint` (CapturePayment undefined).
    [Fact]
    public async Task The_catalog_docs_examples_run_as_written_and_their_board_lints_clean()
    {
        var docs = File.ReadAllText(Path.Combine(FactumCli.RepoRoot, "docs", "catalog.md"));
        var work = Path.Combine(_dir.Path, "work");
        Directory.CreateDirectory(Path.Combine(work, "samples"));
        CopyFolder(Path.Combine(FactumCli.RepoRoot, "samples", "catalog"), Path.Combine(work, "samples", "catalog"));
        // The board shown under import-storming, as a reader would save it.
        var start = docs.IndexOf("```yaml", docs.IndexOf("turns a workshop board into a catalog skeleton", StringComparison.Ordinal), StringComparison.Ordinal);
        var body = docs[(docs.IndexOf('\n', start) + 1)..docs.IndexOf("```", start + 7, StringComparison.Ordinal)];
        File.WriteAllText(Path.Combine(work, "board.yaml"), string.Join('\n', body.Split('\n').Select(l => l.StartsWith("  ", StringComparison.Ordinal) ? l[2..] : l)));
        Assert.Equal(0, (await RunIn(work, "demo", "--data", "./factum-data")).ExitCode);

        // Every `factum catalog …` line of the first code block, as written (the alias is `dotnet run --project src/Factum.Cli --`).
        var block = docs[docs.IndexOf("```bash", StringComparison.Ordinal)..];
        block = block[..block.IndexOf("```", 7, StringComparison.Ordinal)];
        var commands = block.Split('\n').Select(l => l.Split('#')[0].Trim()).Where(l => l.StartsWith("factum catalog ", StringComparison.Ordinal)).ToList();
        Assert.True(commands.Count >= 10, $"found {commands.Count} commands");
        foreach (var line in commands)
        {
            var r = await RunIn(work, line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..]);
            Assert.True(r.ExitCode == 0, $"`{line}` exited {r.ExitCode}: {r.Stderr}{r.Stdout}");
        }
        Assert.True(File.Exists(Path.Combine(work, "catalog", "skeleton.yaml")));
        var lint = await RunIn(work, "catalog", "lint", "--catalog", "catalog/skeleton.yaml");
        Assert.Equal(0, lint.ExitCode);
        Assert.Contains("0 error(s), 0 warning(s)", lint.Stdout);
    }

    // The README's CLI quick start must run as written, in order, on a fresh folder (the one placeholder filled in).
    [Fact]
    public async Task The_readme_cli_quick_start_runs_as_written()
    {
        var readme = File.ReadAllText(Path.Combine(FactumCli.RepoRoot, "README.md"));
        var section = readme[readme.IndexOf("## Quick start with the CLI", StringComparison.Ordinal)..];
        var start = section.IndexOf("```bash", StringComparison.Ordinal) + 7;
        var lines = section[start..section.IndexOf("```", start, StringComparison.Ordinal)].Split('\n')
            .Where(l => l.Contains("factum ", StringComparison.Ordinal) && !l.StartsWith("alias ", StringComparison.Ordinal)).ToList();
        Assert.True(lines.Count >= 10, $"found {lines.Count} lines");
        var script = new System.Text.StringBuilder("set -euo pipefail\n");
        script.Append("factum() { dotnet '").Append(FactumCli.DllPath).Append("' \"$@\"; }\n");
        foreach (var line in lines)
        {
            var command = line.Replace("<correlation-id>", "\"$(factum read --stream Order-1 --json | head -n1 | grep -o '\"correlationId\":\"[^\"]*\"' | cut -d'\"' -f4)\"", StringComparison.Ordinal);
            script.Append("echo \"+ ").Append(line.Split('#')[0].Trim().Replace("\"", "\\\"", StringComparison.Ordinal).Replace("$", "\\$", StringComparison.Ordinal)).Append("\"\n");
            script.Append(command).Append('\n');
        }
        var file = Path.Combine(_dir.Path, "quickstart.sh");
        File.WriteAllText(file, script.ToString());
        var r = await FactumCli.RunIn(_dir.Path, "bash", file);
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}");
        Assert.Contains("OrderPaid", r.Stdout);
        Assert.Contains("no problems", r.Stdout);
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyFolder(d, Path.Combine(to, Path.GetFileName(d)));
    }

    private static Task<CliResult> RunIn(string workingDirectory, params string[] args) => FactumCli.RunIn(workingDirectory, null, args);

    // Old code: `metadata --max-age 30d` echoed 30.00:00:00, `catalog alerts` printed `for 00:02:00` while the YAML says 2m.
    [Fact]
    public async Task Durations_are_echoed_the_way_they_are_typed()
    {
        Assert.Equal(0, (await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}")).ExitCode);
        var set = await F("metadata", "--stream", "Order-1", "--max-age", "30d");
        Assert.Contains("maxAge=30d", set.Stdout);
        Assert.DoesNotContain("30.00:00:00", set.Stdout);
        Assert.Contains("maxAge=1h30m", (await F("metadata", "--stream", "Order-1", "--max-age", "90m")).Stdout);
        var alerts = await FactumCli.Run(_dir.Path, "catalog", "alerts", "--catalog", Path.Combine(FactumCli.RepoRoot, "samples", "catalog"), "--out", Path.Combine(_dir.Path, "alerts"));
        Assert.Equal(0, alerts.ExitCode);
        Assert.Contains(" for 2m ", alerts.Stdout);
        Assert.DoesNotContain("00:0", alerts.Stdout);
    }

    // Old code: read/read-all tables were 200–300 characters wide, advise lines ~180.
    [Fact]
    public async Task Tables_and_advice_fit_120_columns_and_json_keeps_every_value()
    {
        var payload = "{\"note\":\"" + new string('x', 300) + "\"}";
        Assert.Equal(0, (await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", payload, "--metadata", """{"source":"a-rather-long-source-name"}""")).ExitCode);
        foreach (var cmd in new[] { new[] { "read", "--stream", "Order-1" }, ["read-all"], ["streams"] })
        {
            var r = await F(cmd);
            Assert.Equal(0, r.ExitCode);
            Assert.All(r.Stdout.Split('\n'), l => Assert.True(l.Length <= 120, $"{string.Join(' ', cmd)}: {l.Length} columns: {l}"));
        }
        Assert.Contains("…", (await F("read", "--stream", "Order-1")).Stdout);
        var json = (await F("read", "--stream", "Order-1", "--json")).Stdout;
        Assert.Contains(new string('x', 300), json);
        // --wide shows every column in full, ids included.
        var id = JsonDocument.Parse(json.Split('\n')[0]).RootElement.GetProperty("eventId").GetString()!;
        var wide = (await F("read", "--stream", "Order-1", "--wide")).Stdout;
        Assert.Contains(id, wide);
        Assert.Contains("source=a-rather-long-source-name", wide);
        Assert.Contains(new string('x', 300), wide);
        var advise = await FactumCli.Run(_dir.Path, "catalog", "advise", "--catalog", Path.Combine(FactumCli.RepoRoot, "samples", "catalog"));
        Assert.Equal(0, advise.ExitCode);
        Assert.All(advise.Stdout.Split('\n'), l => Assert.True(l.Length <= 120, $"advise: {l.Length} columns: {l}"));
    }

    // Old code: the demo threw on a stream someone else had written to (and stopped, exit 1, before its other parts).
    [Fact]
    public async Task The_demo_leaves_streams_it_did_not_write_alone_and_says_so()
    {
        Assert.Equal(0, (await F("append", "--stream", "Order-1002", "--type", "OrderImported", "--data", """{"legacy":true}""")).ExitCode);
        var demo = await F("demo");
        Assert.Equal(0, demo.ExitCode);
        Assert.Contains("order 1002 was not completed: stream Order-1002 holds events the demo did not write", demo.Stdout);
        Assert.Contains("Dead-letter queue", demo.Stdout); // the rest of the demo ran
        var stream = (await F("read", "--stream", "Order-1002", "--json")).Lines;
        Assert.Contains("OrderImported", Assert.Single(stream));
        Assert.Equal(2, (await F("read", "--stream", "Order-1001", "--json")).Lines.Length);
        Assert.Equal(0, (await F("verify")).ExitCode);
    }

    // Old code: the demo relayed under "demo-outbox" and `factum relay --once` silently published everything again.
    [Fact]
    public async Task Relay_says_which_checkpoint_it_uses()
    {
        Assert.Equal(0, (await F("demo")).ExitCode);
        var first = await F("relay", "--once");
        Assert.Equal(0, first.ExitCode);
        Assert.Contains("relay 'outbox' has no checkpoint yet: it publishes the whole log from position 1", first.Stdout);
        var second = await F("relay", "--once");
        Assert.Contains("relay 'outbox' resumes after position", second.Stdout);
        Assert.Contains("relayed 0 event(s)", second.Stdout);
        var demoRelay = await F("relay", "--once", "--name", "demo-outbox");
        Assert.Contains("relay 'demo-outbox' resumes after position", demoRelay.Stdout);
    }
}
