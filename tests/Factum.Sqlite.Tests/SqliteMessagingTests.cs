using System.Collections.Concurrent;
using Factum.Messaging;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Factum.Sqlite.Tests;

public sealed record Pay(string OrderId, decimal Amount);

public sealed record PaymentTaken(string OrderId);

public sealed class Ledger
{
    public ConcurrentQueue<string> Entries { get; } = new();
}

/// <summary>A handler class resolved from DI per message, with a dependency.</summary>
public sealed class PayHandler(Ledger ledger) : IMessageHandler<Pay>
{
    public async Task HandleAsync(Pay message, MessageContext context, CancellationToken cancellationToken)
    {
        ledger.Entries.Enqueue(message.OrderId);
        await context.PublishAsync(new PaymentTaken(message.OrderId), cancellationToken: cancellationToken);
    }
}

public sealed class SqliteMessagingTests : IDisposable
{
    private readonly string _dir = TempDir.Create();

    private string Db => Path.Combine(_dir, "factum.db");

    public void Dispose() => TempDir.Delete(_dir);

    private static async Task Eventually(Func<bool> condition, int timeoutMs = 10_000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail("timed out");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task The_hosted_service_runs_DI_handlers_on_the_sqlite_transport()
    {
        var taken = new ConcurrentQueue<string>();
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton<Ledger>();
        builder.Services.AddFactum(b => b
            .UseSqlite(Db)
            .UseSqliteTransport()
            .ConfigureMessaging(new MessagingOptions { ServiceName = "billing", PollInterval = TimeSpan.FromMilliseconds(20) })
            .AddCommand<Pay>()
            .AddEventType<PaymentTaken>()
            .AddHandler<PayHandler>(o => o.Concurrency = 4)
            .AddHandler<PaymentTaken>((e, _, _) => { taken.Enqueue(e.OrderId); return Task.CompletedTask; }, o => o.Group = "audit"));
        using var host = builder.Build();
        await host.StartAsync();
        var bus = host.Services.GetRequiredService<IMessageBus>();
        for (var i = 0; i < 20; i++) await bus.SendAsync(new Pay($"o-{i}", i));
        await Eventually(() => taken.Count == 20);
        Assert.Equal(20, host.Services.GetRequiredService<Ledger>().Entries.Distinct().Count());
        var status = await host.Services.GetRequiredService<MessageBus>().GetStatusAsync();
        Assert.Equal("sqlite", status.Transport);
        Assert.Contains(status.State.Topics, t => t.Name == "PaymentTaken" && t.Subscriptions.Contains("audit"));
        await host.StopAsync();
        Assert.All(status.Endpoints, e => Assert.Null(e.LastError));
    }

    [Fact]
    public async Task A_handlers_enlisted_writes_commit_with_the_inbox_so_redeliveries_apply_them_once()
    {
        await using var transport = SqliteMessageTransport.Open(Db);
        await transport.Store.ExecuteInWriterAsync(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "CREATE TABLE ledger (order_id TEXT PRIMARY KEY, amount REAL NOT NULL)";
            return cmd.ExecuteNonQuery();
        });
        var registry = new EventTypeRegistry().Register<Pay>(o => o.Kind = MessageKind.Command);
        var calls = 0;
        var builder = new MessagingBuilder().AddHandler<Pay>((p, ctx, _) =>
        {
            Interlocked.Increment(ref calls);
            ctx.EnlistSqlite(c =>
            {
                using var cmd = c.CreateCommand();
                cmd.CommandText = "INSERT INTO ledger(order_id, amount) VALUES ($o, $a)";
                cmd.Parameters.AddWithValue("$o", p.OrderId);
                cmd.Parameters.AddWithValue("$a", p.Amount);
                cmd.ExecuteNonQuery(); // a second insert for the same order would fail the whole settlement
            });
            return Task.CompletedTask;
        }, o => o.Concurrency = 4);
        await using var bus = new MessageBus(transport, registry, builder, new MessagingOptions { PollInterval = TimeSpan.FromMilliseconds(20) });
        await bus.StartAsync();
        var ids = Enumerable.Range(0, 50).Select(_ => MessageId.New()).ToList();
        for (var i = 0; i < 50; i++) await bus.SendAsync(new Pay($"o-{i}", i), new SendOptions { MessageId = ids[i] });
        await Eventually(() => Count("SELECT COUNT(*) FROM msg_inbox") == 50);
        // The same messages again (a producer retry): the inbox drops them, the ledger is untouched.
        for (var i = 0; i < 10; i++) await bus.SendAsync(new Pay($"o-{i}", i), new SendOptions { MessageId = ids[i] });
        await Eventually(() => Count("SELECT COUNT(*) FROM msg_queue") == 0);
        Assert.Equal(50, Count("SELECT COUNT(*) FROM ledger"));
        Assert.Equal(50, calls);
        Assert.Equal(0, Count("SELECT COUNT(*) FROM msg_dead_letters"));
    }

    [Fact]
    public async Task UseSqliteTransport_without_the_sqlite_store_is_a_clear_error()
    {
        var services = new ServiceCollection();
        services.AddFactum(b => b.UseInMemory().UseSqliteTransport());
        using var sp = services.BuildServiceProvider();
        var ex = Assert.Throws<InvalidOperationException>(() => sp.GetRequiredService<IMessageTransport>());
        Assert.Contains("UseSqlite", ex.Message);
    }

    private long Count(string sql)
    {
        using var c = new SqliteConnection($"Data Source={Db};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return (long)cmd.ExecuteScalar()!;
    }
}

/// <summary>Issue 11's review: the message columns were written out three times in the schema; now one list defines them.</summary>
public sealed class MessageColumnsTests
{
    [Fact]
    public void Every_message_table_has_the_one_list_of_message_columns_in_order()
    {
        var path = Path.Combine(Path.GetTempPath(), "factum-cols-" + Guid.NewGuid().ToString("N") + ".db");
        try
        {
            using (var store = new SqliteEventStore(path)) { }
            using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False");
            c.Open();
            var expected = SqliteSchema.MessageColumnNames.Split(", ");
            Assert.Equal(10, expected.Length);
            foreach (var table in new[] { "msg_log", "msg_queue", "msg_dead_letters", "msg_outbox", "msg_store_dead_letters" })
            {
                using var cmd = c.CreateCommand();
                cmd.CommandText = $"SELECT name FROM pragma_table_info('{table}')";
                var columns = new List<string>();
                using (var r = cmd.ExecuteReader()) while (r.Read()) columns.Add(r.GetString(0));
                var at = columns.IndexOf("message_id");
                Assert.True(at >= 0, table);
                Assert.Equal(expected, columns.Skip(at).Take(expected.Length));
            }
        }
        finally
        {
            foreach (var f in new[] { path, path + "-wal", path + "-shm" }) File.Delete(f);
        }
    }
}
