using Factum.Conformance.Messaging;
using Factum.Coordination;
using Factum.Messaging;
using Npgsql;
using NpgsqlTypes;

namespace Factum.PostgreSql.Tests;

/// <summary>
/// A handler's own table beside the store's (<c>test_effects</c> in the test's schema), written through
/// <see cref="PostgresMessageSession"/>. One per factory: the suites make a factory per test and create its store once,
/// so the factory knows the schema its work writes to.
/// </summary>
public sealed class PostgresEffects
{
    private string? _schema;

    private string Schema => _schema ?? throw new InvalidOperationException("Create the store first.");

    /// <summary>A fresh store in a new schema of the test database, with the effects table (created up front: CREATE TABLE IF NOT EXISTS is not safe between racing transactions).</summary>
    public PostgresEventStore CreateStore(TimeProvider clock)
    {
        var events = new PostgresEventStore(new PostgresEventStoreOptions(TestServer.ConnectionString) { Schema = TestServer.NewSchema(), TimeProvider = clock });
        _schema = events.Schema;
        Task.Run(async () =>
        {
            await using var c = await events.OpenConnectionAsync(CancellationToken.None);
            await using var cmd = new NpgsqlCommand($"CREATE TABLE {_schema}.test_effects (key text PRIMARY KEY, n integer NOT NULL)", c);
            await cmd.ExecuteNonQueryAsync();
        }).GetAwaiter().GetResult();
        return events;
    }

    /// <summary>Adds one to the counter <paramref name="key"/> in the commit's transaction.</summary>
    public MessageWork Count(string key)
    {
        var schema = Schema;
        return MessageWork.For<PostgresMessageSession>(async (session, ct) =>
        {
            await using var cmd = session.CreateCommand($"INSERT INTO {schema}.test_effects(key, n) VALUES ($1, 1) ON CONFLICT (key) DO UPDATE SET n = test_effects.n + 1");
            cmd.Parameters.AddWithValue(NpgsqlDbType.Text, key);
            await cmd.ExecuteNonQueryAsync(ct);
        });
    }

    /// <summary>The counter <paramref name="key"/> as committed (0 when never written).</summary>
    public async Task<int> ReadAsync(PostgresEventStore store, string key)
    {
        await using var c = await store.OpenConnectionAsync(CancellationToken.None);
        await using var cmd = new NpgsqlCommand($"SELECT n FROM {store.Schema}.test_effects WHERE key = $1", c);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, key);
        return await cmd.ExecuteScalarAsync() is int n ? n : 0;
    }

    /// <summary>Stops the message store's listener, drops the schema and closes the event store.</summary>
    public static async ValueTask DestroyAsync(IMessageStore store)
    {
        var s = (PostgresMessageStore)store;
        await s.DisposeAsync();
        try
        {
            await s.Store.DropSchemaAsync();
        }
        finally
        {
            await s.Store.DisposeAsync();
        }
    }
}

/// <summary>Each test gets a store in a fresh schema of the test database; the handlers' effects are rows of a table in it.</summary>
public sealed class PostgresMessageStoreFactory : IMessageStoreFactory
{
    private readonly PostgresEffects _effects = new();

    public (IMessageStore Store, ILeaseStore Leases) Create(TimeProvider clock)
    {
        var events = _effects.CreateStore(clock);
        return (new PostgresMessageStore(events), new PostgresLeaseStore(events));
    }

    public MessageWork CountEffect(string key) => _effects.Count(key);

    public Task<int> EffectsAsync(IMessageStore store, string key) => _effects.ReadAsync(((PostgresMessageStore)store).Store, key);

    public ValueTask DestroyAsync(IMessageStore store) => PostgresEffects.DestroyAsync(store);
}

public sealed class PostgresMessageStoreConformance : MessageStoreConformance<PostgresMessageStoreFactory>;

/// <summary>The PostgreSQL message store beside a bare broker (no delay, no dead-letter queue): the store does both.</summary>
public sealed class PostgresStoreWithBareBroker : IStoreTransportFactory
{
    private readonly PostgresEffects _effects = new();

    public StoreAndTransport Create()
    {
        var events = _effects.CreateStore(TimeProvider.System);
        return new StoreAndTransport(new PostgresMessageStore(events), new PostgresLeaseStore(events), new InMemoryBroker(), new InMemoryTransport());
    }

    public MessageWork CountEffect(string key) => _effects.Count(key);

    public Task<int> EffectsAsync(IMessageStore store, string key) => _effects.ReadAsync(((PostgresMessageStore)store).Store, key);

    public async ValueTask DestroyAsync(StoreAndTransport pair)
    {
        await pair.Transport.DisposeAsync();
        await pair.Embedded.DisposeAsync();
        await PostgresEffects.DestroyAsync(pair.Store);
    }
}

/// <summary>The PostgreSQL message store beside the in-memory embedded transport used as a plain transport (native delay and dead letters).</summary>
public sealed class PostgresStoreWithDatabaseQueue : IStoreTransportFactory
{
    private readonly PostgresEffects _effects = new();

    public StoreAndTransport Create()
    {
        var events = _effects.CreateStore(TimeProvider.System);
        var embedded = new InMemoryTransport();
        return new StoreAndTransport(new PostgresMessageStore(events), new PostgresLeaseStore(events), embedded.AsTransport(), embedded);
    }

    public MessageWork CountEffect(string key) => _effects.Count(key);

    public Task<int> EffectsAsync(IMessageStore store, string key) => _effects.ReadAsync(((PostgresMessageStore)store).Store, key);

    public async ValueTask DestroyAsync(StoreAndTransport pair)
    {
        await pair.Embedded.DisposeAsync();
        await PostgresEffects.DestroyAsync(pair.Store);
    }
}

public sealed class PostgresStoreBareBrokerConformance : StoreTransportConformance<PostgresStoreWithBareBroker>;

public sealed class PostgresStoreDatabaseQueueConformance : StoreTransportConformance<PostgresStoreWithDatabaseQueue>;
