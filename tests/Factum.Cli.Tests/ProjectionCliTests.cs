using System.Diagnostics;
using System.Text.Json;

namespace Factum.Cli.Tests;

public sealed class ProjectionCliTests : IDisposable
{
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private Task<CliResult> F(params string[] args) => FactumCli.Run(_dir.Path, args);

    private static JsonElement Json(string line) => JsonDocument.Parse(line).RootElement.Clone();

    [Fact]
    public async Task The_demo_builds_its_read_models_and_the_cli_lists_queries_resets_and_rebuilds_them()
    {
        var demo = await F("demo");
        Assert.Contains("Projection orders-by-customer", demo.Stdout);
        Assert.Contains("Aggregate Warehouse-main", demo.Stdout);
        var list = (await F("projections", "list", "--json")).Lines.Select(Json).ToList();
        Assert.Equal(["orders-by-customer", "revenue-per-day"], list.Select(p => p.GetProperty("name").GetString()));
        Assert.All(list, p => Assert.Equal(0, p.GetProperty("lag").GetInt64()));

        var ann = Json((await F("projections", "query", "orders-by-customer", "--key", "c-ann", "--json")).Lines[0]);
        Assert.Equal(59.90m, ann.GetProperty("document").GetProperty("view").GetProperty("total").GetDecimal());
        Assert.Single((await F("projections", "query", "orders-by-customer", "--where", "view.customerId=c-bob", "--json")).Lines);
        Assert.Equal(4, (await F("projections", "query", "orders-by-customer", "--key", "nobody")).ExitCode);

        Assert.Equal(0, (await F("projections", "reset", "revenue-per-day")).ExitCode);
        Assert.Empty((await F("projections", "query", "revenue-per-day", "--json")).Lines);
        var rebuilt = await F("projections", "rebuild", "revenue-per-day");
        Assert.Equal(0, rebuilt.ExitCode);
        Assert.Contains("position", rebuilt.Stderr);
        var day = Json(Assert.Single((await F("projections", "query", "revenue-per-day", "--json")).Lines));
        Assert.Equal(1259.90m, day.GetProperty("document").GetProperty("revenue").GetDecimal());

        Assert.Equal(2, (await F("projections", "status", "nope")).ExitCode);
        Assert.Equal(2, (await F("projections", "rebuild", "nope")).ExitCode);
    }

    [Fact]
    public async Task A_projection_killed_mid_rebuild_resumes_and_counts_every_event_exactly_once()
    {
        const int payments = 60_000;
        var input = string.Concat(Enumerable.Range(0, payments).Select(i => $$$"""{"stream":"Payment-{{{i % 100}}}","type":"PaymentCaptured","data":{"paymentId":"p{{{i}}}","orderId":"o{{{i}}}","amount":1}}""" + "\n"));
        Assert.Equal(0, (await FactumCli.RunWithInput(_dir.Path, input, "import")).ExitCode);
        var random = new Random();
        var interrupted = 0;
        for (var kill = 0; kill < 4; kill++)
        {
            using var p = Process.Start(FactumCli.StartInfo(_dir.Path, "projections", "run", "revenue-per-day"))!;
            p.StandardInput.Close();
            // Wait for the first progress line, so the kill lands while batches are being applied.
            var started = p.StandardError.ReadLineAsync();
            await Task.WhenAny(started, Task.Delay(TimeSpan.FromSeconds(20)));
            await Task.Delay(random.Next(0, 300));
            p.Kill(); // SIGKILL, possibly in the middle of a batch
            await p.WaitForExitAsync();
            var status = Json((await F("projections", "status", "revenue-per-day", "--json")).Lines[0]);
            if (status.GetProperty("lag").GetInt64() > 0) interrupted++;
        }
        Assert.True(interrupted > 0, "no kill landed before the projection caught up; the test proved nothing");
        Assert.Equal(0, (await F("projections", "run", "revenue-per-day")).ExitCode);
        var days = (await F("projections", "query", "revenue-per-day", "--json")).Lines.Select(Json).ToList();
        // The projection adds to a running total: a batch applied twice or lost would show here.
        Assert.Equal(payments, days.Sum(d => d.GetProperty("document").GetProperty("payments").GetInt32()));
        Assert.Equal(payments, days.Sum(d => d.GetProperty("document").GetProperty("revenue").GetDecimal()));
        Assert.Equal(0, (await F("verify")).ExitCode);
    }
}
