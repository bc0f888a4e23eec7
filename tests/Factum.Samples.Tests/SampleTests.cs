using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Factum.Samples.Tests;

/// <summary>Each sample runs as a real process in a fresh working folder and must do what its README section says.</summary>
public sealed class SampleTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task QuickStart_appends_reads_decodes_and_passes_the_causation_on()
    {
        var r = await Processes.RunOkAsync("dotnet", _dir.Path, Timeout, Repo.SampleDll("QuickStart"));

        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var appended = Regex.Match(lines[0], "^appended to Order-([0-9a-f]{8}) at position 1$");
        Assert.True(appended.Success, r.Transcript);
        var orderId = appended.Groups[1].Value;
        var read = Regex.Match(lines[1], $"^0 OrderPlaced ([0-9a-f-]{{36}}) OrderPlaced {{ OrderId = {orderId}, Total = 99.90 }}$");
        Assert.True(read.Success, r.Transcript);
        var orderPlacedId = read.Groups[1].Value;
        // The shipment was appended inside EventContext.CausedBy(OrderPlaced): caused by it, and in its process (whose
        // correlation id is the id of the process's first event).
        Assert.Equal($"ShipmentScheduled caused by {orderPlacedId}, correlation {orderPlacedId}", lines[2]);
        Assert.Equal(3, lines.Length);
        Assert.True(File.Exists(_dir.Combine("data", "factum.db")), "the store is data/factum.db under the working folder");
    }

    [Fact]
    public async Task Messaging_sample_dead_letters_a_failing_payment_replays_it_after_the_fix_and_stops_by_itself()
    {
        var r = await Processes.RunOkAsync("dotnet", _dir.Path, Timeout, Repo.SampleDll("Messaging"));

        var o = r.Stdout;
        Assert.Contains("[billing]  OrderPlaced 42 -> sent CapturePayment 99.90", o);
        Assert.Contains("[billing]  OrderPlaced 43 -> sent CapturePayment 1500.00", o);
        Assert.Contains("[payments] CapturePayment 42: captured 99.90", o);
        // 1 + 1 immediate retry per delivery, 1 + 2 delayed deliveries: six failed runs, then the dead-letter queue.
        Assert.Equal(6, Regex.Count(o, @"\[payments\] CapturePayment 43: delivery [123] failed: amount 1500.00 does not fit"));
        Assert.Contains("[dlq]      CapturePayment from queue CapturePayment after 3 attempts: System.InvalidOperationException: amount 1500.00", o);
        Assert.Contains("[dlq]      replayed 1 message(s) after the fix", o);
        Assert.Contains("[payments] CapturePayment 43: captured 1500.00 (replayed from the dead-letter queue)", o);
        Assert.EndsWith("done: 2 payments captured, 1 replayed from the dead-letter queue, 0 dead letters left", o.TrimEnd());
        // In that order: the dead letter is listed before the replay, and the capture of 43 comes after it.
        Assert.True(o.IndexOf("[dlq]      CapturePayment", StringComparison.Ordinal) < o.IndexOf("captured 1500.00", StringComparison.Ordinal), r.Transcript);
        Assert.True(File.Exists(_dir.Combine("data", "factum.db")));
    }

    [Fact]
    public async Task WebApi_post_runs_the_command_the_projection_serves_the_get_and_the_outbox_publishes()
    {
        var psi = Processes.StartInfo("dotnet", _dir.Path, Repo.SampleDll("WebApi"), "--urls", "http://127.0.0.1:0");
        using var app = Process.Start(psi)!;
        var output = new ProcessOutput(app);
        try
        {
            // Port 0: the system picks a free port, and Kestrel says which.
            var listening = await output.WaitForLineAsync(new Regex(@"Now listening on: (http://127\.0\.0\.1:\d+)"), TimeSpan.FromSeconds(60));
            using var http = new HttpClient { BaseAddress = new Uri(listening.Groups[1].Value), Timeout = TimeSpan.FromSeconds(30) };

            var placed = await http.PostAsJsonAsync("/orders", new { orderId = "42", customer = "ann", total = 99.90m });
            Assert.Equal(HttpStatusCode.Accepted, placed.StatusCode);
            Assert.Equal("/orders/42", placed.Headers.Location?.OriginalString);
            Assert.Equal(0, (await placed.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("version").GetInt64());

            // The read model is eventually consistent: poll the GET until the projection has the order.
            var view = await PollAsync(http, "/orders/42", v => v.GetProperty("status").GetString() == "placed");
            Assert.Equal("ann", view.GetProperty("customer").GetString());
            Assert.Equal(99.90m, view.GetProperty("total").GetDecimal());

            var paid = await http.PostAsync("/orders/42/pay", null);
            Assert.Equal(HttpStatusCode.Accepted, paid.StatusCode);
            await PollAsync(http, "/orders/42", v => v.GetProperty("status").GetString() == "paid");

            // The aggregate decides: a second payment or a second placement is refused.
            Assert.Equal(HttpStatusCode.Conflict, (await http.PostAsync("/orders/42/pay", null)).StatusCode);
            Assert.Equal(HttpStatusCode.Conflict, (await http.PostAsJsonAsync("/orders", new { orderId = "42", customer = "ann", total = 1m })).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/orders/nope")).StatusCode);

            // The outbox relay published both stored events to the bus; the shipping subscriber received them in order.
            var published = await PollAsync(http, "/outbox/published", v => v.GetArrayLength() >= 2);
            Assert.Equal(["OrderPlaced 42", "OrderPaid 42"], published.EnumerateArray().Select(e => e.GetString()!).ToArray());
            await output.WaitForLineAsync(new Regex(@"^outbox published OrderPaid 42 \(stream Order-42\) -> shipping$"), TimeSpan.FromSeconds(10));
        }
        finally
        {
            if (!app.HasExited) app.Kill(entireProcessTree: true);
            await app.WaitForExitAsync();
        }
        Assert.True(File.Exists(_dir.Combine("data", "factum.db")));
    }

    private static async Task<JsonElement> PollAsync(HttpClient http, string path, Func<JsonElement, bool> done)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            using var response = await http.GetAsync(path);
            last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
            if (response.StatusCode == HttpStatusCode.OK)
            {
                var json = await response.Content.ReadFromJsonAsync<JsonElement>();
                if (done(json)) return json;
            }
            await Task.Delay(50);
        }
        throw new TimeoutException($"GET {path} did not show the expected result within 30 s; last response: {last}");
    }
}

/// <summary>Collects a running process's output lines and lets a test wait for one.</summary>
public sealed class ProcessOutput
{
    private readonly List<string> _lines = [];
    private readonly Lock _gate = new();

    public ProcessOutput(Process process)
    {
        process.OutputDataReceived += (_, e) => Add(e.Data);
        process.ErrorDataReceived += (_, e) => Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Text
    {
        get { lock (_gate) return string.Join('\n', _lines); }
    }

    private void Add(string? line)
    {
        if (line is null) return;
        lock (_gate) _lines.Add(line.Trim());
    }

    public async Task<Match> WaitForLineAsync(Regex pattern, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            lock (_gate)
                foreach (var line in _lines)
                    if (pattern.Match(line) is { Success: true } m) return m;
            await Task.Delay(50);
        }
        throw new TimeoutException($"No line matched /{pattern}/ within {timeout}. Output:\n{Text}");
    }
}
