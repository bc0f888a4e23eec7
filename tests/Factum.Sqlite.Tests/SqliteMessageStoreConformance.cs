using System.Collections.Concurrent;
using Factum.Conformance.Messaging;
using Factum.Coordination;
using Factum.Messaging;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite.Tests;

/// <summary>Each test gets a real SQLite file; the handlers' effects are rows of a table in it.</summary>
public sealed class SqliteMessageStoreFactory : IMessageStoreFactory
{
    private static readonly ConcurrentDictionary<IMessageStore, SqliteEventStore> Stores = new();

    public (IMessageStore Store, ILeaseStore Leases) Create(TimeProvider clock)
    {
        var events = new SqliteEventStore(new SqliteEventStoreOptions(Path.Combine(TempDir.Create(), "factum.db")) { TimeProvider = clock });
        var store = new SqliteMessageStore(events);
        Stores[store] = events;
        return (store, new SqliteLeaseStore(events));
    }

    public MessageWork CountEffect(string key) => Effects.Count(key);

    public Task<int> EffectsAsync(IMessageStore store, string key) => Effects.ReadAsync(Stores[store], key);

    public async ValueTask DestroyAsync(IMessageStore store)
    {
        if (!Stores.TryRemove(store, out var events)) return;
        var dir = Path.GetDirectoryName(events.FilePath)!;
        await events.DisposeAsync();
        TempDir.Delete(dir);
    }
}

/// <summary>A handler's own table in the store's file.</summary>
public static class Effects
{
    public static MessageWork Count(string key) => MessageWork.For<SqliteConnection>((c, _) =>
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            CREATE TABLE IF NOT EXISTS test_effects (key TEXT PRIMARY KEY, n INTEGER NOT NULL);
            INSERT INTO test_effects(key, n) VALUES ($k, 1) ON CONFLICT(key) DO UPDATE SET n = n + 1;
            """;
        cmd.Parameters.AddWithValue("$k", key);
        cmd.ExecuteNonQuery();
        return ValueTask.CompletedTask;
    });

    public static Task<int> ReadAsync(SqliteEventStore store, string key)
    {
        using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = store.FilePath, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT n FROM test_effects WHERE key = $k";
        cmd.Parameters.AddWithValue("$k", key);
        try
        {
            return Task.FromResult(cmd.ExecuteScalar() is long n ? (int)n : 0);
        }
        catch (SqliteException ex) when (ex.Message.Contains("no such table", StringComparison.Ordinal))
        {
            return Task.FromResult(0);
        }
    }
}

public sealed class SqliteMessageStoreConformance : MessageStoreConformance<SqliteMessageStoreFactory>;

/// <summary>The SQLite transport seen as a plain transport.</summary>
public sealed class SqliteDatabaseQueueFactory : IDeliveryTransportFactory
{
    public ITransport Create(TimeProvider clock) =>
        new DatabaseQueueTransport(new SqliteTransportFactory().Create(clock), clock, ownsInner: false);

    public async Task<int> NativeDeadLettersAsync(ITransport transport, QueueName queue) =>
        (await ((DatabaseQueueTransport)transport).Inner.ListDeadLettersAsync(new DeadLetterFilter { Source = queue.Value }).ToListAsync()).Count;

    public ValueTask DestroyAsync(ITransport transport) => new SqliteTransportFactory().DestroyAsync(((DatabaseQueueTransport)transport).Inner);
}

public sealed class SqliteDatabaseQueueConformance : DeliveryTransportConformance<SqliteDatabaseQueueFactory>;

/// <summary>The SQLite message store and the SQLite transport in one file, used as a broker would be: two transactions.</summary>
public sealed class SqliteStoreWithSqliteTransport : IStoreTransportFactory
{
    public StoreAndTransport Create()
    {
        var events = new SqliteEventStore(Path.Combine(TempDir.Create(), "factum.db"));
        var embedded = new SqliteMessageTransport(events, ownsStore: true);
        return new StoreAndTransport(new SqliteMessageStore(events), new SqliteLeaseStore(events), embedded.AsTransport(), embedded);
    }

    public MessageWork CountEffect(string key) => Effects.Count(key);

    public Task<int> EffectsAsync(IMessageStore store, string key) => Effects.ReadAsync(((SqliteMessageStore)store).Store, key);

    public async ValueTask DestroyAsync(StoreAndTransport pair)
    {
        var dir = Path.GetDirectoryName(((SqliteMessageTransport)pair.Embedded).Store.FilePath)!;
        await pair.Embedded.DisposeAsync();
        TempDir.Delete(dir);
    }
}

/// <summary>The SQLite message store beside a bare broker: retries and dead letters go through the store.</summary>
public sealed class SqliteStoreWithBareBroker : IStoreTransportFactory
{
    public StoreAndTransport Create()
    {
        var events = new SqliteEventStore(Path.Combine(TempDir.Create(), "factum.db"));
        return new StoreAndTransport(new SqliteMessageStore(events), new SqliteLeaseStore(events), new InMemoryBroker(), new SqliteMessageTransport(events, ownsStore: true));
    }

    public MessageWork CountEffect(string key) => Effects.Count(key);

    public Task<int> EffectsAsync(IMessageStore store, string key) => Effects.ReadAsync(((SqliteMessageStore)store).Store, key);

    public async ValueTask DestroyAsync(StoreAndTransport pair)
    {
        var dir = Path.GetDirectoryName(((SqliteMessageTransport)pair.Embedded).Store.FilePath)!;
        await pair.Transport.DisposeAsync();
        await pair.Embedded.DisposeAsync();
        TempDir.Delete(dir);
    }
}

public sealed class SqliteStoreSqliteTransportConformance : StoreTransportConformance<SqliteStoreWithSqliteTransport>;

public sealed class SqliteStoreBareBrokerConformance : StoreTransportConformance<SqliteStoreWithBareBroker>;
