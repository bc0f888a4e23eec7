using Factum;
using Factum.Coordination;
using Factum.Messaging;
using Factum.Sqlite;
using Factum.TestHost;

// factum test host, for tests that kill a consumer process with SIGKILL.
//
// "stream-member <store.db> <name>": joins consumer group "g" of the 4-partition stream topic "Ticked" and, for each
// record, inserts a row into the "effects" table (which the test creates) on the connection of the transaction that
// commits the record's offset, so an effect counts exactly when the record does. Runs until killed.
//
// "durable-consumer <store.db> <name> [<pause-before-ack-of-nth>]": consumes the "Pay" queue in Durable mode, the
// SQLite transport used as a plain transport (its ack is a transaction of its own) and the SQLite message store in
// the same file: each Pay inserts a row into "effects" and publishes Paid (through the outbox), whose "ledger" group
// inserts a row into "ledger" (tables the test creates, without unique keys, so a double effect shows). Prints
// "delivered <id> attempt <n>" per delivery. With a number n, the n-th ack is held back after the store commit: the
// host prints "committed-not-acked <id>" and waits there to be killed. Runs until killed.
//
// "pg-writer <connection string> <name> <writers> <seconds>": appends to a PostgreSQL store with that many concurrent
// writers, each one event per append to its own stream (W-<name>-<i>, exact expected versions), for that long; then
// prints "acknowledged <n>" (appends that returned) and exits.
switch (args)
{
    case ["pg-writer", var connection, var name, var writers, var seconds]:
        Console.WriteLine($"acknowledged {await PgWriter(connection, name, int.Parse(writers, System.Globalization.CultureInfo.InvariantCulture), int.Parse(seconds, System.Globalization.CultureInfo.InvariantCulture))}");
        return 0;
    case ["stream-member", var db, var name]:
        await StreamMember(db, name);
        return 0;
    case ["durable-consumer", var db, var name, .. var rest] when rest.Length <= 1:
        await DurableConsumer(db, name, rest.Length == 1 ? int.Parse(rest[0], System.Globalization.CultureInfo.InvariantCulture) : 0);
        return 0;
    default:
        Console.Error.WriteLine("usage: Factum.TestHost stream-member <store.db> <name> | durable-consumer <store.db> <name> [<pause-before-ack-of-nth>] | pg-writer <connection> <name> <writers> <seconds>");
        return 2;
}

static async Task StreamMember(string db, string name)
{
    await using var store = new SqliteEventStore(new SqliteEventStoreOptions(db));
    await using var transport = new SqliteMessageTransport(store);
    var registry = new EventTypeRegistry().Register<Ticked>();
    var messaging = new MessagingBuilder()
        .AddStream<Ticked>(4)
        .PartitionBy<Ticked>(t => t.Key)
        .AddHandler<Ticked>((t, context, _) =>
        {
            context.EnlistSqlite(c => Insert(c, "INSERT INTO effects(n, key, member) VALUES ($n, $k, $m)", ("$n", t.N), ("$k", t.Key), ("$m", name)));
            return Task.CompletedTask;
        }, o => { o.FromStream = true; o.Group = "g"; });
    await using var bus = new MessageBus(transport, registry, messaging, new MessagingOptions
    {
        ServiceName = "testhost",
        HeartbeatInterval = TimeSpan.FromMilliseconds(200),
        SessionTimeout = TimeSpan.FromSeconds(2),
        PollInterval = TimeSpan.FromMilliseconds(20),
    });
    await bus.StartAsync();
    Console.WriteLine($"member {name} started as {bus.InstanceId}");
    await Task.Delay(Timeout.Infinite);
}

static async Task DurableConsumer(string db, string name, int pauseAt)
{
    await using var store = new SqliteEventStore(new SqliteEventStoreOptions(db));
    await using var transport = new SqliteMessageTransport(store);
    var registry = new EventTypeRegistry().Register<Pay>(o => o.Kind = MessageKind.Command).Register<Paid>();
    void Durable(HandlerOptions o)
    {
        o.Mode = EndpointMode.Durable;
        o.Lease = TimeSpan.FromSeconds(2);
    }
    var messaging = new MessagingBuilder()
        .AddHandler<Pay>(async (p, context, ct) =>
        {
            context.EnlistSqlite(c => Insert(c, "INSERT INTO effects(order_id, member) VALUES ($o, $m)", ("$o", p.OrderId), ("$m", name)));
            await context.PublishAsync(new Paid(p.OrderId), cancellationToken: ct);
        }, Durable)
        .AddHandler<Paid>((p, context, _) =>
        {
            context.EnlistSqlite(c => Insert(c, "INSERT INTO ledger(order_id, member) VALUES ($o, $m)", ("$o", p.OrderId), ("$m", name)));
            return Task.CompletedTask;
        }, o => { Durable(o); o.Group = "ledger"; });
    await using var bus = new MessageBus(transport, registry, messaging, new MessagingOptions
    {
        ServiceName = "testhost",
        HeartbeatInterval = TimeSpan.FromMilliseconds(200),
        PollInterval = TimeSpan.FromMilliseconds(20),
        MessageStore = new SqliteMessageStore(store),
        Leases = new SqliteLeaseStore(store),
        OutboxLease = new LeaseOptions { Duration = TimeSpan.FromSeconds(2) },
        DeliveryTransport = new PauseBeforeAck(transport.AsTransport(), pauseAt),
    });
    await bus.StartAsync();
    Console.WriteLine($"consumer {name} started as {bus.InstanceId}");
    await Task.Delay(Timeout.Infinite);
}

static async Task<long> PgWriter(string connection, string name, int writers, int seconds)
{
    await using var store = await Factum.PostgreSql.PostgresEventStore.OpenAsync(new Factum.PostgreSql.PostgresEventStoreOptions(connection));
    Console.WriteLine($"writer {name} started");
    var until = DateTime.UtcNow.AddSeconds(seconds);
    var acknowledged = 0L;
    await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
    {
        var stream = StreamId.Parse($"W-{name}-{w}");
        for (long v = 0; DateTime.UtcNow < until; v++)
        {
            await store.AppendAsync(stream, v == 0 ? ExpectedVersion.NoStream : ExpectedVersion.Exactly(v - 1), [EventData.FromJson("Ticked", $$"""{"writer":"{{name}}-{{w}}","n":{{v}}}""")]);
            Interlocked.Increment(ref acknowledged);
        }
    })));
    return acknowledged;
}

static void Insert(Microsoft.Data.Sqlite.SqliteConnection c, string sql, params (string Name, object Value)[] parameters)
{
    using var cmd = c.CreateCommand();
    cmd.CommandText = sql;
    foreach (var (n, v) in parameters) cmd.Parameters.AddWithValue(n, v);
    cmd.ExecuteNonQuery();
}

namespace Factum.TestHost
{
    /// <summary>One stream record: the n-th tick of a key.</summary>
    public sealed record Ticked(string Key, int N);

    /// <summary>A command to take a payment.</summary>
    public sealed record Pay(string OrderId);

    /// <summary>A payment was taken.</summary>
    public sealed record Paid(string OrderId);

    /// <summary>Reports every delivery and holds the n-th ack back forever (the process is killed there).</summary>
    internal sealed class PauseBeforeAck(ITransport inner, int pauseAt) : Factum.Conformance.Messaging.ForwardingTransport(inner)
    {
        private readonly int _pauseAt = pauseAt;
        private int _acks;

        protected override InboundMessage Wrap(QueueName queue, InboundMessage delivery)
        {
            Console.WriteLine($"delivered {delivery.Message.Id} attempt {delivery.Attempt}");
            return queue.Value == "Pay" ? new Held(this, delivery) : delivery;
        }

        private sealed class Held(PauseBeforeAck owner, InboundMessage inner) : Factum.Conformance.Messaging.ForwardingInbound(inner)
        {
            protected override async ValueTask<bool> OnAckAsync(CancellationToken cancellationToken)
            {
                if (Interlocked.Increment(ref owner._acks) == owner._pauseAt)
                {
                    Console.WriteLine($"committed-not-acked {Message.Id}");
                    await Task.Delay(Timeout.Infinite, CancellationToken.None);
                }
                return await base.OnAckAsync(cancellationToken);
            }
        }
    }
}
