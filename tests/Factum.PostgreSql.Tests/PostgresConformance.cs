using Factum.Conformance;

namespace Factum.PostgreSql.Tests;

/// <summary>The PostgreSQL server test.sh starts for the run (a private cluster on loopback).</summary>
public static class TestServer
{
    /// <summary>The connection string of the test database.</summary>
    /// <exception cref="InvalidOperationException">No server: run ./test.sh, or set FACTUM_TEST_POSTGRES to a database the tests may use.</exception>
    public static string ConnectionString => Environment.GetEnvironmentVariable("FACTUM_TEST_POSTGRES") is { Length: > 0 } s
        ? s
        : throw new InvalidOperationException("FACTUM_TEST_POSTGRES is not set: run ./test.sh (it starts a private PostgreSQL 15), or point it at a database the tests may create schemas in (postgres://user:password@127.0.0.1:5432/db).");

    private static int s_schema;

    /// <summary>A schema name of its own for one test's store.</summary>
    public static string NewSchema() => $"t{Environment.ProcessId}_{Interlocked.Increment(ref s_schema)}_{Guid.NewGuid().ToString("N")[..6]}";
}

/// <summary>Each test gets a store in a fresh schema of the test database; the schema is dropped after the test.</summary>
public sealed class PostgresFactory : IEventStoreFactory, ISubscriptionStoreFactory, ISnapshotStoreFactory, IProjectionEngineFactory
{
    public Projections.IProjectionEngine CreateProjectionEngine(IEventStore store) => new PostgresReadModels((PostgresEventStore)store);

    public async Task RewindCheckpointOnlyAsync(IEventStore store, string projection)
    {
        var s = (PostgresEventStore)store;
        await using var c = await s.OpenConnectionAsync(CancellationToken.None);
        await using var cmd = new Npgsql.NpgsqlCommand($"UPDATE {s.Schema}.projections SET position = 0 WHERE name = $1", c);
        cmd.Parameters.AddWithValue(projection);
        await cmd.ExecuteNonQueryAsync();
    }

    public (Subscriptions.ICheckpointStore Checkpoints, Subscriptions.IParkedEventStore Parked) CreateSubscriptionStores(IEventStore store)
    {
        var s = new PostgresSubscriptionStore((PostgresEventStore)store);
        return (s, s);
    }

    public Aggregates.ISnapshotStore CreateSnapshotStore(IEventStore store) => new PostgresSnapshotStore((PostgresEventStore)store);

    public IEventStore Create(EventStoreOptions options) => new PostgresEventStore(new PostgresEventStoreOptions(TestServer.ConnectionString)
    {
        Schema = TestServer.NewSchema(),
        MaxEventSize = options.MaxEventSize,
        MaxEventsPerAppend = options.MaxEventsPerAppend,
        TimeProvider = options.TimeProvider,
        ReadPageSize = 64, // small pages so that paging paths are exercised
    });

    public async ValueTask DestroyAsync(IEventStore store)
    {
        var s = (PostgresEventStore)store;
        try
        {
            await s.DropSchemaAsync();
        }
        finally
        {
            await s.DisposeAsync();
        }
    }
}

public sealed class PostgresAppend : AppendConformance<PostgresFactory>;
public sealed class PostgresIdempotency : IdempotencyConformance<PostgresFactory>;
public sealed class PostgresMultiStream : MultiStreamConformance<PostgresFactory>;
public sealed class PostgresReadStream : ReadStreamConformance<PostgresFactory>;
public sealed class PostgresReadAll : ReadAllConformance<PostgresFactory>;
public sealed class PostgresMetadata : MetadataConformance<PostgresFactory>;
public sealed class PostgresDelete : DeleteConformance<PostgresFactory>;
public sealed class PostgresStreamInfo : StreamInfoConformance<PostgresFactory>;
public sealed class PostgresValidation : ValidationConformance<PostgresFactory>;
public sealed class PostgresConcurrency : ConcurrencyConformance<PostgresFactory>;
public sealed class PostgresTracing : TracingConformance<PostgresFactory>;
public sealed class PostgresSubscriptions : SubscriptionConformance<PostgresFactory>;
public sealed class PostgresAggregates : AggregateConformance<PostgresFactory>;
public sealed class PostgresProjections : ProjectionConformance<PostgresFactory>;

public sealed class PostgresLeaseFactory : ILeaseStoreFactory
{
    public LeaseBackend Create(TimeProvider clock)
    {
        var store = new PostgresEventStore(new PostgresEventStoreOptions(TestServer.ConnectionString) { Schema = TestServer.NewSchema(), TimeProvider = clock });
        return new LeaseBackend(new PostgresLeaseStore(store), new PostgresSubscriptionStore(store), async () =>
        {
            await store.DropSchemaAsync();
            await store.DisposeAsync();
        });
    }
}

public sealed class PostgresLeases : LeaseConformance<PostgresLeaseFactory>;
