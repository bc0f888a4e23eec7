using Npgsql;

namespace Factum.Cli.Tests;

/// <summary>
/// The CLI on a real PostgreSQL (the private cluster test.sh starts): the demo, writes and reads, and the commands the
/// PostgreSQL backend cannot do yet refused with a message naming the backend that can. Each test has its own schema.
/// </summary>
public sealed class PostgresCliTests : IAsyncLifetime
{
    private readonly TempDataDir _dir = new();
    private readonly string _schema = $"cli_{Guid.NewGuid():N}"[..20];

    private static string Server => Environment.GetEnvironmentVariable("FACTUM_TEST_POSTGRES") is { Length: > 0 } s
        ? s
        : throw new InvalidOperationException("FACTUM_TEST_POSTGRES is not set: run ./test.sh (it starts a private PostgreSQL 15).");

    private string Store => $"{Server}?schema={_schema}";

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        _dir.Dispose();
        await using var c = new NpgsqlConnection(ConnectionString());
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE", c);
        await cmd.ExecuteNonQueryAsync();
    }

    private Task<CliResult> F(params string[] args) => FactumCli.RunWithEnvironment(_dir.Path, new Dictionary<string, string>(), null, ["--store", Store, .. args]);

    [Fact]
    public async Task The_demo_runs_on_postgres_and_its_events_are_read_back_by_the_next_command()
    {
        var demo = await F("demo");
        Assert.True(demo.ExitCode == 0, demo.Stderr + demo.Stdout);
        Assert.Contains("Wrote 16 events for 3 orders into the store.", demo.Stdout);
        Assert.Contains("The causation tree of Order-1001", demo.Stdout);
        Assert.Contains("dead letters left: 0", demo.Stdout);
        // The read models are built in PostgreSQL, and the next commands query them.
        Assert.Contains("Projection orders-by-customer:", demo.Stdout);
        Assert.DoesNotContain("What the demo did not do", demo.Stdout);
        var list = await F("projections", "list");
        Assert.True(list.ExitCode == 0, list.Stderr);
        Assert.Contains("orders-by-customer", list.Stdout);
        Assert.Equal(0, (await F("projections", "query", "orders-by-customer")).ExitCode);
        Assert.Empty(Directory.GetFileSystemEntries(_dir.Path));

        var read = await F("read", "--stream", "Order-1001", "--json");
        Assert.Equal(0, read.ExitCode);
        Assert.Equal(2, read.Lines.Length);
        Assert.Contains("\"type\":\"OrderPlaced\"", read.Lines[0]);
        Assert.InRange((await F("read-all", "--json")).Lines.Length, 16, 100); // the orders, and what the messaging part appended
        Assert.Contains("Payment-P1003", (await F("read-all", "--category", "Payment")).Stdout);
        Assert.Contains("OrderCompleted", (await F("trace", (await F("read", "--stream", "Order-1001", "--json")).Lines[0].Split("\"correlationId\":\"")[1].Split('"')[0])).Stdout);
    }

    [Fact]
    public async Task Appends_check_the_expected_version_and_reads_of_a_missing_schema_create_nothing()
    {
        var missing = await F("read-all");
        Assert.Equal(4, missing.ExitCode);
        Assert.Contains($"There is no Factum store in the schema '{_schema}'", missing.Stderr);

        Assert.Equal(0, (await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", """{"n":1}""", "--expected", "no-stream")).ExitCode);
        var conflict = await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", """{"n":2}""", "--expected", "no-stream");
        Assert.Equal(3, conflict.ExitCode);
        Assert.Contains("Order-1", conflict.Stderr);
        var bad = await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{not json");
        Assert.Equal(2, bad.ExitCode);
        var read = await F("read", "--stream", "Order-1", "--json");
        Assert.Single(read.Lines);
    }

    [Fact]
    public async Task Migrate_prints_the_sql_a_dba_applies_and_then_reports_the_schema_up_to_date()
    {
        var plan = await F("migrate", "--print");
        Assert.Equal(0, plan.ExitCode);
        Assert.Contains($"CREATE TABLE {_schema}.events", plan.Stdout);
        // Printing applied nothing: a read still finds no store.
        Assert.Equal(4, (await F("read-all")).ExitCode);

        // The DBA applies the script; the store then opens without migrating and works.
        await using (var c = new NpgsqlConnection(ConnectionString()))
        {
            await c.OpenAsync();
            await using var apply = new NpgsqlCommand(plan.Stdout, c);
            await apply.ExecuteNonQueryAsync();
        }
        Assert.Contains("up to date", (await F("migrate")).Stdout);
        Assert.Contains("up to date", (await F("migrate", "--print")).Stdout);
        Assert.Equal(0, (await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}")).ExitCode);
        Assert.Single((await F("read-all", "--json")).Lines);
    }

    [Fact]
    public async Task Copy_moves_a_sqlite_store_to_postgres_resumes_where_it_stopped_and_verifies_every_event()
    {
        Task<CliResult> Local(params string[] args) => FactumCli.RunWithEnvironment(_dir.Path, new Dictionary<string, string>(), null, ["--data", _dir.Path, .. args]);
        Assert.Equal(0, (await Local("demo")).ExitCode);
        Assert.Equal(0, (await Local("delete", "--stream", "Order-1003", "--hard")).ExitCode);
        Assert.Equal(0, (await Local("metadata", "--stream", "Order-1001", "--max-count", "1")).ExitCode);

        var first = await FactumCli.RunWithEnvironment(_dir.Path, new Dictionary<string, string>(), null, "copy", "--from", $"sqlite:{_dir.Path}", "--to", Store, "--json");
        Assert.True(first.ExitCode == 0, first.Stderr + first.Stdout);
        var report = System.Text.Json.JsonDocument.Parse(first.Lines[^1]).RootElement;
        Assert.True(report.GetProperty("verified").GetBoolean());
        Assert.Equal(report.GetProperty("sourceDigest").GetString(), report.GetProperty("targetDigest").GetString());
        var copied = report.GetProperty("copied").GetInt64();
        Assert.True(copied >= 16);

        // The copy keeps deletes and metadata: the tombstone and the retention hold on PostgreSQL too.
        Assert.Equal(4, (await F("read", "--stream", "Order-1003")).ExitCode);
        Assert.Single((await F("read", "--stream", "Order-1001", "--json")).Lines);

        // More history on the source: the next copy goes on from the target's head and verifies the whole log again.
        Assert.Equal(0, (await Local("append", "--stream", "Order-2000", "--type", "OrderPlaced", "--data", "{}")).ExitCode);
        var second = await FactumCli.RunWithEnvironment(_dir.Path, new Dictionary<string, string>(), null, "copy", "--from", $"sqlite:{_dir.Path}", "--to", Store);
        Assert.True(second.ExitCode == 0, second.Stderr + second.Stdout);
        Assert.Contains($"resuming after position {copied}", second.Stderr);
        Assert.Contains("copied 1 events", second.Stdout);
        Assert.Contains("verified: both sides hold the same events", second.Stdout);
        Assert.Equal(copied + 1, (await F("read-all", "--json")).Lines.Length);

        // verify on both sides: healthy, and the same count and digest.
        var pg = await F("verify", "--json");
        Assert.True(pg.ExitCode == 0, pg.Stderr + pg.Stdout);
        var sqlite = await Local("verify", "--digest", "--json");
        Assert.True(sqlite.ExitCode == 0, sqlite.Stderr + sqlite.Stdout);
        var pgReport = System.Text.Json.JsonDocument.Parse(pg.Lines[0]).RootElement;
        var sqliteReport = System.Text.Json.JsonDocument.Parse(sqlite.Lines[0]).RootElement;
        Assert.True(pgReport.GetProperty("healthy").GetBoolean());
        Assert.Equal(sqliteReport.GetProperty("events").GetInt64(), pgReport.GetProperty("events").GetInt64());
        Assert.Equal(sqliteReport.GetProperty("digest").GetString(), pgReport.GetProperty("digest").GetString());

        // Damage the copy behind Factum's back: verify names it and exits 1.
        await using (var c = new NpgsqlConnection(ConnectionString()))
        {
            await c.OpenAsync();
            await using var damage = new NpgsqlCommand($"UPDATE {_schema}.streams SET last_version = 41 WHERE stream_id = 'Order-2000'; UPDATE {_schema}.head SET position = position + 5", c);
            await damage.ExecuteNonQueryAsync();
        }
        var broken = await F("verify");
        Assert.Equal(1, broken.ExitCode);
        Assert.Contains("stream Order-2000: its row says last version 41, its events end at 0", broken.Stdout);
        Assert.Contains("the head (high-water mark) is", broken.Stdout);
    }

    [Fact]
    public async Task Copy_onto_a_store_that_holds_other_events_reports_the_mismatch_and_exits_1()
    {
        Task<CliResult> Local(params string[] args) => FactumCli.RunWithEnvironment(_dir.Path, new Dictionary<string, string>(), null, ["--data", _dir.Path, .. args]);
        Assert.Equal(0, (await Local("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", "{}")).ExitCode);
        Assert.Equal(0, (await Local("append", "--stream", "Order-2", "--type", "OrderPlaced", "--data", "{}")).ExitCode);
        Assert.Equal(0, (await F("append", "--stream", "Other-1", "--type", "SomethingHappened", "--data", "{}")).ExitCode);
        var r = await FactumCli.RunWithEnvironment(_dir.Path, new Dictionary<string, string>(), null, "copy", "--from", $"sqlite:{_dir.Path}", "--to", Store);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("MISMATCH", r.Stderr);
        Assert.Contains("nothing was copied", r.Stderr);
        Assert.Single((await F("read-all", "--json")).Lines);
        var bad = await FactumCli.RunWithEnvironment(_dir.Path, new Dictionary<string, string>(), null, "copy", "--from", $"sqlite:{_dir.Path}", "--to", $"sqlite:{_dir.Path}");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("copies to a PostgreSQL store", bad.Stderr);
    }

    [Fact]
    public async Task Dlq_with_message_store_works_on_the_dead_letters_kept_in_postgres()
    {
        Assert.Equal(0, (await F("migrate")).ExitCode);
        await using (var store = await PostgreSql.PostgresEventStore.OpenAsync(new PostgreSql.PostgresEventStoreOptions(Store)))
        {
            await using var messages = new PostgreSql.PostgresMessageStore(store);
            var m = new Factum.Messaging.TransportMessage { Id = Factum.Messaging.MessageId.New(), Type = "CapturePayment", Timestamp = DateTimeOffset.UtcNow, CorrelationId = "c-1", Body = "{}"u8.ToArray() };
            await messages.CommitAsync(new Factum.Messaging.MessageTransaction
            {
                DeadLetters = [new Factum.Messaging.DeadLetterRecord(m, new Factum.Messaging.MessageSource(Factum.Messaging.MessageSourceKind.Queue, "payments"), new Factum.Messaging.FailureInfo("Acme.CardDeclinedException", "declined", null, 4, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow))],
            });
        }
        var list = await F("dlq", "list", "--message-store", "--json");
        Assert.True(list.ExitCode == 0, list.Stderr);
        Assert.Equal("payments", System.Text.Json.JsonDocument.Parse(Assert.Single(list.Lines)).RootElement.GetProperty("source").GetString());
        Assert.Contains("replayed 1", (await F("dlq", "replay", "--all", "--message-store")).Stdout);
        Assert.Empty((await F("dlq", "list", "--message-store", "--json")).Lines);
        // Without --message-store the transport's queue is meant, which PostgreSQL does not have yet.
        Assert.Equal(2, (await F("dlq", "list")).ExitCode);
    }

    private static string ConnectionString()
    {
        var u = new Uri(Server);
        return new NpgsqlConnectionStringBuilder { Host = u.Host, Port = u.Port, Database = u.AbsolutePath.Trim('/'), Username = u.UserInfo.Split(':')[0], Password = u.UserInfo.Split(':')[1] }.ConnectionString;
    }

    [Theory]
    [InlineData("queues")]
    [InlineData("topics")]
    public async Task Commands_the_postgres_backend_cannot_do_yet_exit_2_naming_the_backend_that_can(params string[] command)
    {
        var r = await F(command);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("It works on", r.Stderr);
        Assert.DoesNotContain("factum:factum@", r.Stderr);
    }
}
