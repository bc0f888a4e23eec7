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
    public async Task The_readme_quick_start_after_the_demo_never_breaks_the_store()
    {
        // The README's sequence: demo, the quick start's append (an OrderPlaced the demo's projection cannot read), demo again.
        Assert.Equal(0, (await F("demo")).ExitCode);
        Assert.Equal(0, (await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", """{"total":5}""", "--expected", "no-stream")).ExitCode);
        // Someone else's event in a stream the demo writes to.
        Assert.Equal(0, (await F("append", "--stream", "Order-1003", "--type", "OrderAudited", "--data", "{}", "--expected", "any")).ExitCode);
        var again = await F("demo");
        Assert.Equal(0, again.ExitCode);
        Assert.Contains("What the demo did not do, and why", again.Stdout);
        Assert.Contains("projection orders-by-customer left out 1 event(s) it cannot apply, e.g. OrderPlaced at position", again.Stdout);
        Assert.Contains("did not publish 2 event(s) the demo did not write", again.Stdout);
        // The parked event is logged as a warning naming the projection, the event and its position.
        Assert.Contains("warn: Factum.Projections[3002] Projection orders-by-customer v1 parked OrderPlaced", again.Stderr);
        var parked = Json(Assert.Single((await F("projections", "parked", "orders-by-customer", "--json")).Lines));
        Assert.Equal(("Order-1", "OrderPlaced"), (parked.GetProperty("streamId").GetString(), parked.GetProperty("type").GetString()));
        Assert.Contains("got no key for OrderPlaced", parked.GetProperty("error").GetString());

        // A rebuild that stops on it names the projection, the position, the type and the error, and the command that parks it.
        var rebuild = await F("projections", "rebuild", "orders-by-customer");
        Assert.Equal(1, rebuild.ExitCode);
        var position = parked.GetProperty("position").GetInt64();
        Assert.Contains($"orders-by-customer v1 stopped at position {position}", rebuild.Stdout);
        Assert.Contains("factum projections skip orders-by-customer", rebuild.Stdout);
        Assert.Contains("failed on OrderPlaced at position " + position, rebuild.Stdout);
        Assert.Contains("fail: Factum.Projections[3003]", rebuild.Stderr);
        Assert.Equal(1, (await F("projections", "status", "orders-by-customer")).ExitCode);

        // Skipping parks it; the next run goes on and the store is whole again, without deleting anything.
        var skip = await F("projections", "skip", "orders-by-customer");
        Assert.Equal(0, skip.ExitCode);
        Assert.Contains($"parked OrderPlaced at position {position}", skip.Stdout);
        Assert.Equal(1, (await F("projections", "skip", "orders-by-customer")).ExitCode); // nothing left to skip: said, exit 1
        Assert.Equal(0, (await F("projections", "run", "orders-by-customer")).ExitCode);
        var list = (await F("projections", "list", "--json")).Lines.Select(Json).ToList();
        Assert.All(list, p => Assert.Equal(("Live", 0L), (p.GetProperty("state").GetString(), p.GetProperty("lag").GetInt64())));
        Assert.Equal(0, (await F("projections", "rebuild", "orders-by-customer", "--on-failure", "park")).ExitCode);
        Assert.Equal(0, (await F("verify")).ExitCode);
        Assert.Equal(0, (await F("demo")).ExitCode);
    }

    [Fact]
    public async Task A_reset_projection_says_it_is_pending_and_who_runs_it()
    {
        Assert.Equal(0, (await F("demo")).ExitCode);
        Assert.Equal(0, (await F("projections", "reset", "revenue-per-day")).ExitCode);
        var status = await F("projections", "status", "revenue-per-day");
        Assert.Contains("Pending", status.Stdout);
        Assert.DoesNotContain("Building", status.Stdout);
        Assert.Contains("revenue-per-day v1 is pending", status.Stdout);
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
            using var p = Process.Start(FactumCli.StartInfo(_dir.Path, "projections", "run", "revenue-per-day", "--lease", "1s"))!;
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
        Assert.Equal(0, (await F("projections", "run", "revenue-per-day", "--lease", "1s")).ExitCode);
        var days = (await F("projections", "query", "revenue-per-day", "--json")).Lines.Select(Json).ToList();
        // The projection adds to a running total: a batch applied twice or lost would show here.
        Assert.Equal(payments, days.Sum(d => d.GetProperty("document").GetProperty("payments").GetInt32()));
        Assert.Equal(payments, days.Sum(d => d.GetProperty("document").GetProperty("revenue").GetDecimal()));
        Assert.Equal(0, (await F("verify")).ExitCode);
    }
}
