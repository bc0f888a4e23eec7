using Factum;
using Factum.Messaging;
using Factum.Sqlite;
using Factum.TestHost;

// factum test host. "stream-member <store.db> <name>": joins consumer group "g" of the 4-partition stream topic
// "Ticked" and, for each record, inserts a row into the "effects" table (which the test creates) on the connection of
// the transaction that commits the record's offset, so an effect counts exactly when the record does. Runs until killed.
if (args is not ["stream-member", var db, var name])
{
    Console.Error.WriteLine("usage: Factum.TestHost stream-member <store.db> <name>");
    return 2;
}

await using var store = new SqliteEventStore(new SqliteEventStoreOptions(db));
await using var transport = new SqliteMessageTransport(store);
var registry = new EventTypeRegistry().Register<Ticked>();
var messaging = new MessagingBuilder()
    .AddStream<Ticked>(4)
    .PartitionBy<Ticked>(t => t.Key)
    .AddHandler<Ticked>((t, context, _) =>
    {
        context.EnlistSqlite(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "INSERT INTO effects(n, key, member) VALUES ($n, $k, $m)";
            cmd.Parameters.AddWithValue("$n", t.N);
            cmd.Parameters.AddWithValue("$k", t.Key);
            cmd.Parameters.AddWithValue("$m", name);
            cmd.ExecuteNonQuery();
        });
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
return 0;

namespace Factum.TestHost
{
    /// <summary>One stream record: the n-th tick of a key.</summary>
    public sealed record Ticked(string Key, int N);
}
