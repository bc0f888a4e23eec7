namespace Factum.Cli.Tests;

/// <summary>
/// Issue 11 §5: the backend is a choice by connection string (--store/FACTUM_STORE, --transport/FACTUM_TRANSPORT);
/// --data keeps its meaning; a command a backend cannot do says which backend can.
/// </summary>
public sealed class BackendSelectionCliTests : IDisposable
{
    private static readonly Dictionary<string, string> NoEnvironment = [];

    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private Task<CliResult> In(params string[] args) => FactumCli.RunWithEnvironment(_dir.Path, NoEnvironment, null, args);

    private Task<CliResult> WithEnv(Dictionary<string, string> env, params string[] args) => FactumCli.RunWithEnvironment(_dir.Path, env, null, args);

    [Fact]
    public async Task The_demo_runs_end_to_end_on_memory_in_one_process_and_writes_no_file()
    {
        var demo = await In("--store", "memory:", "demo");
        Assert.True(demo.ExitCode == 0, demo.Stderr + demo.Stdout);
        Assert.Contains("Wrote 16 events for 3 orders into the store.", demo.Stdout);
        Assert.Contains("Aggregate Warehouse-main: 4 reservations for 3 orders", demo.Stdout);
        Assert.Contains("Messaging, on the in-memory transport", demo.Stdout);
        Assert.Contains("replayed 2 payment(s)", demo.Stdout);
        Assert.Contains("dead letters left: 0", demo.Stdout);
        Assert.Contains("The causation tree of Order-1001", demo.Stdout);
        // The in-memory store builds the read models too: nothing is left undone.
        Assert.Contains("Projection orders-by-customer:", demo.Stdout);
        Assert.Contains("Projection revenue-per-day:", demo.Stdout);
        Assert.DoesNotContain("What the demo did not do", demo.Stdout);
        Assert.Empty(Directory.GetFileSystemEntries(_dir.Path));

        // A second run is a fresh store: nothing is remembered.
        Assert.Contains("Wrote 16 events", (await In("--store", "memory:", "demo")).Stdout);
    }

    [Fact]
    public async Task A_read_command_on_sqlite_path_prints_the_same_as_with_data()
    {
        Assert.Equal(0, (await FactumCli.Run(_dir.Path, "demo")).ExitCode);
        var withData = await FactumCli.Run(_dir.Path, "read-all", "--json");
        Assert.Equal(0, withData.ExitCode);
        Assert.True(withData.Lines.Length >= 20);
        foreach (var store in new[] { "sqlite:" + _dir.Path, "sqlite:" + _dir.Db })
        {
            var withStore = await In("--store", store, "read-all", "--json");
            Assert.Equal(0, withStore.ExitCode);
            Assert.Equal(withData.Stdout, withStore.Stdout);
            // After the command too, as --data may be written.
            Assert.Equal(withData.Stdout, (await In("read-all", "--json", "--store", store)).Stdout);
        }
        Assert.Equal((await FactumCli.Run(_dir.Path, "projections", "list")).Stdout, (await In("--store", "sqlite:" + _dir.Path, "projections", "list")).Stdout);
    }

    [Fact]
    public async Task FACTUM_STORE_is_honoured_and_the_command_line_wins_over_it()
    {
        Assert.Equal(0, (await FactumCli.Run(_dir.Path, "append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}")).ExitCode);
        var elsewhere = Path.Combine(_dir.Path, "cwd");
        Directory.CreateDirectory(elsewhere);

        var fromEnv = await FactumCli.RunWithEnvironment(elsewhere, new Dictionary<string, string> { ["FACTUM_STORE"] = "sqlite:" + _dir.Path }, null, "read", "--stream", "Order-1", "--json");
        Assert.Equal(0, fromEnv.ExitCode);
        Assert.Single(fromEnv.Lines);

        // FACTUM_STORE wins over FACTUM_DATA; --data and --store win over both.
        var memory = new Dictionary<string, string> { ["FACTUM_STORE"] = "memory:", ["FACTUM_DATA"] = _dir.Path };
        Assert.Equal(4, (await FactumCli.RunWithEnvironment(elsewhere, memory, null, "read", "--stream", "Order-1")).ExitCode);
        Assert.Equal(0, (await FactumCli.RunWithEnvironment(elsewhere, memory, null, "--data", _dir.Path, "read", "--stream", "Order-1")).ExitCode);
        Assert.Equal(0, (await FactumCli.RunWithEnvironment(elsewhere, memory, null, "--store", "sqlite:" + _dir.Db, "read", "--stream", "Order-1")).ExitCode);

        // FACTUM_TRANSPORT likewise.
        var transport = await WithEnv(new() { ["FACTUM_TRANSPORT"] = "memory:" }, "--store", "sqlite:" + _dir.Path, "queues");
        Assert.Equal(2, transport.ExitCode);
        Assert.Contains("not supported by the memory: transport", transport.Stderr);
        Assert.Equal(0, (await WithEnv(new() { ["FACTUM_TRANSPORT"] = "memory:" }, "--store", "sqlite:" + _dir.Path, "--transport", "sqlite", "queues")).ExitCode);
        Assert.Empty(Directory.GetFileSystemEntries(elsewhere));
    }

    [Fact]
    public async Task A_bad_scheme_exits_2_with_a_message_naming_it()
    {
        var bad = await In("--store", "mysql://root@db/orders", "streams");
        Assert.Equal(2, bad.ExitCode);
        Assert.Equal("error: 'mysql://root@db/orders' is not a store connection string Factum accepts: the scheme 'mysql:' is not one Factum knows. Use sqlite:<path> (a data directory holding factum.db, or a .db file), memory:, or postgres://user:password@host:port/db.", bad.Stderr.Trim());
        Assert.Empty(bad.Stdout);

        var noScheme = await WithEnv(new() { ["FACTUM_STORE"] = "./factum-data" }, "streams");
        Assert.Equal(2, noScheme.ExitCode);
        Assert.StartsWith("error: FACTUM_STORE: './factum-data' is not a store connection string", noScheme.Stderr);

        var transport = await In("--transport", "kafka://broker:9092", "demo");
        Assert.Equal(2, transport.ExitCode);
        Assert.Contains("'kafka://broker:9092' is not a transport connection string Factum accepts: the scheme 'kafka:'", transport.Stderr);
        Assert.Contains("nats://host:port[,host:port…]", transport.Stderr);

        var both = await In("--store", "memory:", "--data", _dir.Path, "streams");
        Assert.Equal(2, both.ExitCode);
        Assert.Contains("Use either --store or --data, not both", both.Stderr);
        Assert.Empty(Directory.GetFileSystemEntries(_dir.Path));
    }

    [Fact]
    public async Task An_unreachable_postgres_and_brokers_that_do_not_exist_yet_are_errors_with_the_password_masked()
    {
        // Nothing listens on port 1: the connection is refused at once.
        var pg = await In("--store", "postgres://app:hunter2@127.0.0.1:1/orders", "streams");
        Assert.Equal(1, pg.ExitCode);
        Assert.StartsWith("error: PostgreSQL: Failed to connect to 127.0.0.1:1", pg.Stderr.Trim(), StringComparison.Ordinal);
        var pgEnv = await WithEnv(new() { ["FACTUM_STORE"] = "postgresql://app:hunter2@127.0.0.1:1/orders" }, "demo");
        Assert.Equal(1, pgEnv.ExitCode);
        Assert.DoesNotContain("hunter2", pgEnv.Stderr + pg.Stderr);
        var badPg = await In("--store", "postgres://app:hunter2@db.internal:port/orders", "streams");
        Assert.Equal(2, badPg.ExitCode);
        Assert.Contains("'postgres://app:***@db.internal:port/orders'", badPg.Stderr);
        Assert.DoesNotContain("hunter2", badPg.Stderr);

        var amqp = await In("--store", "memory:", "--transport", "amqp://guest:hunter2@rabbit", "demo");
        Assert.Equal(2, amqp.ExitCode);
        Assert.Contains("the RabbitMQ transport amqp://guest:***@rabbit:5672 is not available yet", amqp.Stderr);
        var nats = await In("--store", "memory:", "--transport", "nats://n1:4222,n2:4222", "demo");
        Assert.Equal(2, nats.ExitCode);
        Assert.Contains("the NATS transport nats://n1:4222,n2:4222 is not available yet", nats.Stderr);
        Assert.DoesNotContain("hunter2", amqp.Stderr + nats.Stderr);
    }

    [Theory]
    [InlineData("verify", "it checks a SQLite file")]
    [InlineData("projections list", "it has no read-model store for projections")]
    [InlineData("projections rebuild orders-by-customer", "it has no read-model store for projections")]
    [InlineData("queues", "not supported by the memory: transport")]
    [InlineData("dlq list", "not supported by the memory: transport")]
    [InlineData("relay --once", "not supported by the memory: transport")]
    [InlineData("send --type CapturePayment --body {}", "not supported by the memory: transport")]
    public async Task A_command_memory_cannot_do_exits_2_with_one_line_naming_the_backend_that_can(string command, string why)
    {
        var r = await In(["--store", "memory:", .. command.Split(' ')]);
        Assert.Equal(2, r.ExitCode);
        var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var name = string.Join(' ', command.Split(' ').TakeWhile(w => !w.StartsWith('-') && w != "orders-by-customer"));
        Assert.StartsWith($"error: 'factum {name}' is not supported by the memory:", line);
        Assert.Contains(why, line);
        Assert.Contains("sqlite", line[line.IndexOf(why, StringComparison.Ordinal)..]);
    }

    [Fact]
    public async Task Store_commands_work_on_memory_and_import_there_is_a_dry_run()
    {
        Assert.Equal(0, (await In("--store", "memory:", "append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}")).ExitCode);
        Assert.Equal(0, (await In("--store", "memory:", "streams")).ExitCode);
        var lines = """
            {"stream":"Order-2","type":"OrderPlaced","data":{}}
            {"stream":"Order-2","type":"OrderShipped","data":{},"expectedVersion":0}
            {"stream":"Order-2","type":"PlaceOrder","data":{}}
            """;
        var import = await FactumCli.RunWithEnvironment(_dir.Path, NoEnvironment, lines, "--store", "memory:", "import");
        Assert.NotEqual(0, import.ExitCode);
        Assert.Equal(3, import.Lines.Length);
        Assert.Contains("'PlaceOrder' reads as a command", import.Lines[2]);
        Assert.Empty(Directory.GetFileSystemEntries(_dir.Path));
    }
}
