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
