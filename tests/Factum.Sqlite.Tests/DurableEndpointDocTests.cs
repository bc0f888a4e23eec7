using System.Collections.Concurrent;
using Factum.Messaging;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite.Tests;

/// <summary>The durable endpoint shown in docs/messaging.md, run as written.</summary>
public sealed class DurableEndpointDocTests : IAsyncLifetime
{
    private readonly string _dir = TempDir.Create();

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        TempDir.Delete(_dir);
        return Task.CompletedTask;
    }

    public sealed record CapturePayment(string OrderId, decimal Amount);

    public sealed record PaymentCaptured(string OrderId);

    private static class Payments
    {
        public static void Insert(SqliteConnection db, CapturePayment c)
        {
            using var cmd = db.CreateCommand();
            cmd.CommandText = "CREATE TABLE IF NOT EXISTS payments(order_id TEXT NOT NULL, amount TEXT NOT NULL); INSERT INTO payments VALUES ($o, $a)";
            cmd.Parameters.AddWithValue("$o", c.OrderId);
            cmd.Parameters.AddWithValue("$a", c.Amount.ToString(System.Globalization.CultureInfo.InvariantCulture));
            cmd.ExecuteNonQuery();
        }
    }

    [Fact]
    public async Task The_documented_durable_endpoint_commits_its_write_and_its_event_once()
    {
        await using var store = new SqliteEventStore(Path.Combine(_dir, "factum.db"));
        await using var embedded = new SqliteMessageTransport(store);
        var registry = new EventTypeRegistry().Register<CapturePayment>(o => o.Kind = MessageKind.Command).Register<PaymentCaptured>();
        var broker = embedded.AsTransport();                                 // stands in for a broker here
        var shipped = new ConcurrentQueue<string>();

        // <durable-endpoint>
        var bus = new MessageBus(embedded, registry, new MessagingBuilder()
            .AddHandler<CapturePayment>(async (c, ctx, ct) =>
            {
                ctx.EnlistSqlite(db => Payments.Insert(db, c));              // commits with the inbox record
                await ctx.PublishAsync(new PaymentCaptured(c.OrderId), cancellationToken: ct);   // into the outbox
            }, h => h.Mode = EndpointMode.Durable)
            .AddHandler<PaymentCaptured>((e, _, _) =>
            {
                shipped.Enqueue(e.OrderId);
                return Task.CompletedTask;
            }, h => { h.Mode = EndpointMode.Durable; h.Group = "shipping"; }),
            new MessagingOptions
            {
                MessageStore = new SqliteMessageStore(store),                // in the same file as the events
                Leases = new SqliteLeaseStore(store),                        // one outbox dispatcher across processes
                DeliveryTransport = broker,                                  // any ITransport (default: the embedded one)
            });
        await bus.StartAsync();
        await bus.SendAsync(new CapturePayment("42", 99.90m));
        // </durable-endpoint>

        var until = DateTime.UtcNow.AddSeconds(20);
        while (shipped.IsEmpty && DateTime.UtcNow < until) await Task.Delay(20);
        await bus.DisposeAsync();
        Assert.Equal(["42"], shipped);
        using var c = new SqliteConnection($"Data Source={store.FilePath};Mode=ReadOnly;Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM payments WHERE order_id = '42'";
        Assert.Equal(1L, cmd.ExecuteScalar());
    }
}
