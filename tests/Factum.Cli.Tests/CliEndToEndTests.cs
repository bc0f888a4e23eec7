using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace Factum.Cli.Tests;

public sealed class CliEndToEndTests : IDisposable
{
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private Task<CliResult> F(params string[] args) => FactumCli.Run(_dir.Path, args);

    private static JsonElement Json(string line) => JsonDocument.Parse(line).RootElement.Clone();

    [Fact]
    public async Task Demo_writes_the_order_domain_and_a_second_run_is_an_idempotent_retry()
    {
        var first = await F("demo");
        Assert.Equal(0, first.ExitCode);
        Assert.Contains("Wrote 16 events for 3 orders", first.Stdout);
        Assert.Contains("PaymentDeclined", first.Stdout);
        var second = await F("demo");
        Assert.Equal(0, second.ExitCode);
        Assert.Contains("16 of 16 recognised as retries", second.Stdout);
        var all = await F("read-all", "--json", "--category", "Order", "--category", "Payment", "--category", "Shipment");
        Assert.Equal(16, all.Lines.Length);
        Assert.Equal(4, (await F("read", "--stream", "Warehouse-main", "--json")).Lines.Length); // the snapshotted aggregate, also not written twice
        Assert.Equal(0, (await F("verify")).ExitCode);
    }

    [Fact]
    public async Task Demo_events_are_correlated_per_order_and_caused_by_the_previous_step()
    {
        await F("demo");
        var events = (await F("read-all", "--json", "--category", "Order", "--category", "Payment", "--category", "Shipment")).Lines.Select(Json).ToList();
        var byId = events.ToDictionary(e => e.GetProperty("eventId").GetString()!);
        foreach (var e in events.Where(e => e.GetProperty("causationId").ValueKind != JsonValueKind.Null))
        {
            var cause = byId[e.GetProperty("causationId").GetString()!];
            Assert.Equal(cause.GetProperty("correlationId").GetString(), e.GetProperty("correlationId").GetString());
        }
        Assert.Equal(3, events.Select(e => e.GetProperty("correlationId").GetString()).Distinct().Count());
    }

    [Fact]
    public async Task Append_prints_the_version_and_position_of_the_last_event()
    {
        var r = await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", """{"total":5}""", "--expected", "no-stream");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("stream version 0, position 1", r.Stdout);
        var j = Json((await F("append", "--json", "--stream", "Order-1", "--type", "OrderPaid", "--data", "{}", "--expected", "0")).Lines[0]);
        Assert.Equal(1, j.GetProperty("streamVersion").GetInt64());
        Assert.Equal(2, j.GetProperty("position").GetInt64());
    }

    [Fact]
    public async Task Read_json_prints_every_field_of_the_model()
    {
        var id = Guid.CreateVersion7().ToString();
        await F("append", "--stream", "Order-9", "--type", "OrderPlaced", "--data", """{"total":5}""", "--event-id", id,
            "--correlation-id", "corr-1", "--causation-id", "cmd-1", "--metadata", """{"tenant":"acme"}""");
        var e = Json(Assert.Single((await F("read", "--stream", "Order-9", "--json")).Lines));
        Assert.Equal(id, e.GetProperty("eventId").GetString());
        Assert.Equal("OrderPlaced", e.GetProperty("type").GetString());
        Assert.Equal(1, e.GetProperty("schemaVersion").GetInt32());
        Assert.Equal("Order-9", e.GetProperty("streamId").GetString());
        Assert.Equal(0, e.GetProperty("streamVersion").GetInt64());
        Assert.Equal(1, e.GetProperty("position").GetInt64());
        Assert.EndsWith("Z", e.GetProperty("timestamp").GetString());
        Assert.True(DateTimeOffset.TryParse(e.GetProperty("timestamp").GetString(), out _));
        Assert.Equal("corr-1", e.GetProperty("correlationId").GetString());
        Assert.Equal("cmd-1", e.GetProperty("causationId").GetString());
        Assert.Equal("acme", e.GetProperty("metadata").GetProperty("tenant").GetString());
        Assert.Equal(5, e.GetProperty("data").GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task Read_supports_from_backwards_and_max_count()
    {
        for (var i = 0; i < 5; i++) await F("append", "--stream", "Cart-1", "--type", "ItemAdded", "--data", $$"""{"i":{{i}}}""");
        var r = await F("read", "--stream", "Cart-1", "--json", "--backwards", "--from", "3", "--max-count", "2");
        Assert.Equal([3L, 2L], r.Lines.Select(l => Json(l).GetProperty("streamVersion").GetInt64()));
        var table = await F("read", "--stream", "Cart-1");
        Assert.Contains("POSITION", table.Stdout);
        Assert.Contains("ItemAdded", table.Stdout);
    }

    [Fact]
    public async Task Read_all_filters_by_type_and_category()
    {
        await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}");
        await F("append", "--stream", "Payment-1", "--type", "PaymentCaptured", "--data", "{}");
        await F("append", "--stream", "Order-2", "--type", "OrderPlaced", "--data", "{}");
        Assert.Single((await F("read-all", "--json", "--category", "Payment")).Lines);
        Assert.Equal(2, (await F("read-all", "--json", "--type", "OrderPlaced")).Lines.Length);
        Assert.Equal([2L, 3L], (await F("read-all", "--json", "--from", "2")).Lines.Select(l => Json(l).GetProperty("position").GetInt64()));
    }

    [Fact]
    public async Task A_wrong_expected_version_exits_3_and_writes_nothing()
    {
        await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}");
        var r = await F("append", "--stream", "Order-1", "--type", "OrderPaid", "--data", "{}", "--expected", "7");
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("expected version 7", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.Single((await F("read", "--stream", "Order-1", "--json")).Lines);
    }

    [Fact]
    public async Task Reading_a_missing_or_deleted_stream_exits_4()
    {
        Assert.Equal(4, (await F("read", "--stream", "Nope-1")).ExitCode);
        await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}");
        Assert.Equal(0, (await F("delete", "--stream", "Order-1", "--hard")).ExitCode);
        var r = await F("read", "--stream", "Order-1");
        Assert.Equal(4, r.ExitCode);
        Assert.Contains("hard-deleted", r.Stderr);
        Assert.Equal(4, (await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}")).ExitCode);
    }

    [Theory]
    [InlineData("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{not json")]
    [InlineData("append", "--stream", "", "--type", "OrderPlaced", "--data", "{}")]
    [InlineData("append", "--stream", "$system", "--type", "OrderPlaced", "--data", "{}")]
    [InlineData("append", "--stream", "Order-1", "--type", "Order Placed", "--data", "{}")]
    [InlineData("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}", "--expected", "maybe")]
    [InlineData("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}", "--event-id", "nope")]
    [InlineData("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}", "--metadata", "[1]")]
    [InlineData("read", "--stream", "Order-1", "--max-count", "lots")]
    [InlineData("metadata", "--stream", "Order-1", "--max-age", "forever")]
    [InlineData("frobnicate")]
    public async Task Invalid_input_exits_2_with_a_message_and_changes_nothing(params string[] args)
    {
        await F("append", "--stream", "Keep-1", "--type", "ThingKept", "--data", "{}");
        var r = await F(args);
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("error:", r.Stderr.TrimStart());
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.Single((await F("read-all", "--json")).Lines);
        Assert.Equal(0, (await F("verify")).ExitCode);
    }

    [Fact]
    public async Task An_event_over_one_mebibyte_is_rejected_with_exit_2()
    {
        var big = "{\"x\":\"" + new string('a', 1024 * 1024) + "\"}";
        var file = Path.Combine(_dir.Path, "big.json");
        await File.WriteAllTextAsync(file, $$"""[{"type":"BlobUploaded","data":{{big}}}]""");
        var r = await F("append", "--stream", "Blob-1", "--file", file);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("maximum is 1,048,576 bytes", r.Stderr);
    }

    [Fact]
    public async Task Append_file_writes_all_events_atomically()
    {
        var file = Path.Combine(_dir.Path, "events.json");
        await File.WriteAllTextAsync(file, """[{"type":"OrderPlaced","data":{"n":1}},{"type":"OrderPaid","data":{"n":2},"metadata":{"k":"v"}},{"type":"OrderShipped","data":{"n":3}}]""");
        var r = await F("append", "--stream", "Order-5", "--file", file, "--expected", "no-stream", "--json");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(2, Json(r.Lines[0]).GetProperty("streamVersion").GetInt64());
        var events = (await F("read", "--stream", "Order-5", "--json")).Lines.Select(Json).ToList();
        Assert.Equal(["OrderPlaced", "OrderPaid", "OrderShipped"], events.Select(e => e.GetProperty("type").GetString()));
        Assert.Single(events.Select(e => e.GetProperty("correlationId").GetString()).Distinct());
    }

    [Fact]
    public async Task Append_file_with_one_bad_entry_writes_nothing()
    {
        var file = Path.Combine(_dir.Path, "events.json");
        await File.WriteAllTextAsync(file, """[{"type":"OrderPlaced","data":{}},{"data":{}}]""");
        var r = await F("append", "--stream", "Order-5", "--file", file);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("event 1", r.Stderr);
        Assert.Equal(4, (await F("read", "--stream", "Order-5")).ExitCode);
    }

    [Fact]
    public async Task Import_acknowledges_each_line_in_order_with_errors_in_place()
    {
        var input = string.Join('\n',
            """{"stream":"Imp-1","type":"ThingHappened","data":{"n":1},"expectedVersion":"no-stream"}""",
            """not json""",
            """{"stream":"Imp-1","type":"ThingHappened","data":{"n":2},"expectedVersion":5}""",
            """{"stream":"Imp-1","type":"ThingHappened","data":{"n":3},"expectedVersion":0,"correlationId":"c-1","metadata":{"k":"v"}}""",
            """{"stream":"Imp-2","expectedVersion":"no-stream","events":[{"type":"ThingHappened","data":{}},{"type":"ThingHappened","data":{}}]}""") + "\n";
        var r = await FactumCli.RunWithInput(_dir.Path, input, "import");
        var lines = r.Lines.Select(Json).ToList();
        Assert.Equal([1L, 2, 3, 4, 5], lines.Select(l => l.GetProperty("line").GetInt64()));
        Assert.Equal(0, lines[0].GetProperty("streamVersion").GetInt64());
        Assert.Equal(2, lines[1].GetProperty("code").GetInt32());
        Assert.Equal(3, lines[2].GetProperty("code").GetInt32());
        Assert.Equal(1, lines[3].GetProperty("streamVersion").GetInt64());
        Assert.Equal(1, lines[4].GetProperty("streamVersion").GetInt64());
        Assert.Equal(2, r.ExitCode); // the first failing line's code
        Assert.Equal(2, (await F("read", "--stream", "Imp-1", "--json")).Lines.Length);
    }

    [Fact]
    public async Task Import_of_many_lines_acknowledges_every_one_with_increasing_positions()
    {
        var input = string.Concat(Enumerable.Range(0, 5000).Select(i => $$$"""{"stream":"Bulk-{{{i % 50}}}","type":"ThingHappened","data":{"i":{{{i}}}}}""" + "\n"));
        var r = await FactumCli.RunWithInput(_dir.Path, input, "import");
        Assert.Equal(0, r.ExitCode);
        var positions = r.Lines.Select(l => Json(l).GetProperty("position").GetInt64()).ToArray();
        Assert.Equal(Enumerable.Range(1, 5000).Select(i => (long)i), positions);
        Assert.Equal(0, (await F("verify")).ExitCode);
    }

    [Fact]
    public async Task Streams_stream_info_delete_and_metadata_work_together()
    {
        await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}");
        await F("append", "--stream", "Order-2", "--type", "OrderPlaced", "--data", "{}");
        for (var i = 0; i < 4; i++) await F("append", "--stream", "Order-2", "--type", "OrderNoted", "--data", "{}");
        await F("append", "--stream", "Payment-1", "--type", "PaymentCaptured", "--data", "{}");
        var streams = (await F("streams", "--category", "Order", "--json")).Lines.Select(Json).ToList();
        Assert.Equal(["Order-1", "Order-2"], streams.Select(s => s.GetProperty("streamId").GetString()));

        var info = Json((await F("stream-info", "--stream", "Order-2", "--json")).Lines[0]);
        Assert.Equal(4, info.GetProperty("lastVersion").GetInt64());
        Assert.Equal("Active", info.GetProperty("state").GetString());

        var md = await F("metadata", "--stream", "Order-2", "--max-count", "2", "--max-age", "30d", "--custom", """{"owner":"sales"}""");
        Assert.Equal(0, md.ExitCode);
        Assert.Contains("maxCount=2", md.Stdout);
        Assert.Equal([3L, 4L], (await F("read", "--stream", "Order-2", "--json")).Lines.Select(l => Json(l).GetProperty("streamVersion").GetInt64()));
        var mdJson = Json((await F("stream-info", "--stream", "Order-2", "--json")).Lines[0]).GetProperty("metadata");
        Assert.Equal(2592000, mdJson.GetProperty("maxAgeSeconds").GetInt64());
        Assert.Equal("sales", mdJson.GetProperty("custom").GetProperty("owner").GetString());
        await F("metadata", "--stream", "Order-2", "--max-count", "none");
        Assert.Equal(5, (await F("read", "--stream", "Order-2", "--json")).Lines.Length);

        Assert.Equal(0, (await F("delete", "--stream", "Order-1")).ExitCode);
        Assert.Equal(4, (await F("read", "--stream", "Order-1")).ExitCode);
        Assert.Equal(["Order-2"], (await F("streams", "--category", "Order", "--json")).Lines.Select(l => Json(l).GetProperty("streamId").GetString()));
        Assert.Equal(4, (await F("stream-info", "--stream", "Nope-1")).ExitCode);
        Assert.Equal(3, (await F("delete", "--stream", "Order-2", "--expected", "0")).ExitCode);
    }

    [Fact]
    public async Task The_data_directory_can_come_from_FACTUM_DATA()
    {
        var psi = FactumCli.StartInfo(_dir.Path, "append", "--stream", "Env-1", "--type", "ThingHappened", "--data", "{}");
        // Drop the explicit --data so the environment variable is used.
        psi.ArgumentList.RemoveAt(1);
        psi.ArgumentList.RemoveAt(1);
        psi.Environment["FACTUM_DATA"] = _dir.Path;
        using var p = System.Diagnostics.Process.Start(psi)!;
        p.StandardInput.Close();
        await p.WaitForExitAsync();
        Assert.Equal(0, p.ExitCode);
        Assert.True(File.Exists(_dir.Db));
        Assert.Single((await F("read", "--stream", "Env-1", "--json")).Lines);
    }

    [Fact]
    public async Task Verify_reports_broken_invariants_and_exits_1()
    {
        for (var i = 0; i < 3; i++) await F("append", "--stream", "Order-1", "--type", "OrderNoted", "--data", "{}");
        Assert.Equal(0, (await F("verify")).ExitCode);
        using (var c = new SqliteConnection($"Data Source={_dir.Db};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DELETE FROM events WHERE stream_version = 1";
            cmd.ExecuteNonQuery();
        }
        var r = await F("verify");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("not contiguous", r.Stdout);
        var json = Json((await F("verify", "--json")).Lines[0]);
        Assert.False(json.GetProperty("healthy").GetBoolean());
    }

    [Fact]
    public async Task A_file_that_is_not_a_database_gets_a_clear_error_and_is_left_untouched()
    {
        var garbage = new byte[8192];
        new Random(42).NextBytes(garbage);
        await File.WriteAllBytesAsync(_dir.Db, garbage);
        var r = await F("read-all");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("not a SQLite database", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.Equal(garbage, await File.ReadAllBytesAsync(_dir.Db));
        Assert.Equal(1, (await F("verify")).ExitCode);
    }

    [Fact]
    public async Task A_foreign_sqlite_database_is_refused_and_left_untouched()
    {
        using (var c = new SqliteConnection($"Data Source={_dir.Db};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers(name) VALUES ('ann');";
            cmd.ExecuteNonQuery();
        }
        var r = await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("not a Factum store", r.Stderr);
        using (var c = new SqliteConnection($"Data Source={_dir.Db};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT count(*) FROM sqlite_master WHERE type='table'";
            Assert.Equal(1L, cmd.ExecuteScalar());
        }
    }

    [Fact]
    public async Task Trace_prints_the_causation_tree_of_a_demo_order()
    {
        await F("demo");
        var order = Json((await F("read", "--stream", "Order-1001", "--json")).Lines[0]);
        var correlation = order.GetProperty("correlationId").GetString()!;
        var text = await F("trace", correlation);
        Assert.Equal(0, text.ExitCode);
        Assert.Contains("6 event(s)", text.Stdout);
        Assert.Contains("└─", text.Stdout);
        var tree = Json((await F("trace", correlation, "--json")).Lines[0]);
        var root = tree.GetProperty("roots")[0];
        Assert.Equal("OrderPlaced", root.GetProperty("type").GetString());
        Assert.Equal("PaymentRequested", root.GetProperty("caused")[0].GetProperty("type").GetString());
        Assert.Equal(4, (await F("trace", "no-such-process")).ExitCode);
    }

    [Fact]
    public async Task Help_lists_every_command()
    {
        var r = await F("--help");
        Assert.Equal(0, r.ExitCode);
        foreach (var c in new[] { "append", "import", "read", "read-all", "streams", "stream-info", "delete", "metadata", "verify", "trace", "demo" })
            Assert.Contains(c, r.Stdout);
    }
}
