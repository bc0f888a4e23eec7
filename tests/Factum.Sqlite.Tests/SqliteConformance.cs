using Factum.Conformance;

namespace Factum.Sqlite.Tests;

/// <summary>Each test gets its own real SQLite file in a temporary directory.</summary>
public sealed class SqliteFactory : IEventStoreFactory, ISubscriptionStoreFactory, ISnapshotStoreFactory, IProjectionEngineFactory
{
    public Projections.IProjectionEngine CreateProjectionEngine(IEventStore store) => new SqliteReadModels((SqliteEventStore)store);

    public async Task RewindCheckpointOnlyAsync(IEventStore store, string projection)
    {
        using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={((SqliteEventStore)store).FilePath};Pooling=False");
        await c.OpenAsync();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "UPDATE projections SET position = 0 WHERE name = $n";
        cmd.Parameters.AddWithValue("$n", projection);
        await cmd.ExecuteNonQueryAsync();
    }

    public Aggregates.ISnapshotStore CreateSnapshotStore(IEventStore store) => new SqliteSnapshotStore((SqliteEventStore)store);

    public (Subscriptions.ICheckpointStore Checkpoints, Subscriptions.IParkedEventStore Parked) CreateSubscriptionStores(IEventStore store)
    {
        var s = new SqliteSubscriptionStore((SqliteEventStore)store);
        return (s, s);
    }

    public IEventStore Create(EventStoreOptions options)
    {
        var dir = TempDir.Create();
        return new SqliteEventStore(new SqliteEventStoreOptions(Path.Combine(dir, "factum.db"))
        {
            MaxEventSize = options.MaxEventSize,
            MaxEventsPerAppend = options.MaxEventsPerAppend,
            TimeProvider = options.TimeProvider,
            ReadPageSize = 256, // small pages so that paging paths are exercised
        });
    }

    public async ValueTask DestroyAsync(IEventStore store)
    {
        var s = (SqliteEventStore)store;
        await s.DisposeAsync();
        TempDir.Delete(Path.GetDirectoryName(s.FilePath)!);
    }
}

public sealed class SqliteAppend : AppendConformance<SqliteFactory>;
public sealed class SqliteIdempotency : IdempotencyConformance<SqliteFactory>;
public sealed class SqliteMultiStream : MultiStreamConformance<SqliteFactory>;
public sealed class SqliteReadStream : ReadStreamConformance<SqliteFactory>;
public sealed class SqliteReadAll : ReadAllConformance<SqliteFactory>;
public sealed class SqliteMetadata : MetadataConformance<SqliteFactory>;
public sealed class SqliteDelete : DeleteConformance<SqliteFactory>;
public sealed class SqliteStreamInfo : StreamInfoConformance<SqliteFactory>;
public sealed class SqliteValidation : ValidationConformance<SqliteFactory>;
public sealed class SqliteConcurrency : ConcurrencyConformance<SqliteFactory>;
public sealed class SqliteSubscriptions : SubscriptionConformance<SqliteFactory>;
public sealed class SqliteAggregates : AggregateConformance<SqliteFactory>;
public sealed class SqliteTracing : TracingConformance<SqliteFactory>;
public sealed class SqliteProjections : ProjectionConformance<SqliteFactory>;
