using Factum.Conformance;
using Factum.InMemory;

namespace Factum.Tests;

public sealed class InMemoryFactory : IEventStoreFactory, ISubscriptionStoreFactory, ISnapshotStoreFactory, IProjectionEngineFactory
{
    public Projections.IProjectionEngine CreateProjectionEngine(IEventStore store) => new Projections.InMemoryReadModels((InMemoryEventStore)store);

    public Task RewindCheckpointOnlyAsync(IEventStore store, string projection)
    {
        ((InMemoryEventStore)store).ProjectionStore.RewindCheckpointOnly(projection);
        return Task.CompletedTask;
    }

    public Aggregates.ISnapshotStore CreateSnapshotStore(IEventStore store) => new Aggregates.InMemorySnapshotStore();

    // The store's own: the parked events of its projections are among them.
    public (Subscriptions.ICheckpointStore Checkpoints, Subscriptions.IParkedEventStore Parked) CreateSubscriptionStores(IEventStore store)
    {
        var s = (Subscriptions.InMemorySubscriptionStore)((InMemoryEventStore)store).ProjectionStore.Parked;
        return (s, s);
    }

    public IEventStore Create(EventStoreOptions options) => new InMemoryEventStore(options);

    public ValueTask DestroyAsync(IEventStore store) => ValueTask.CompletedTask;
}

public sealed class InMemoryAppend : AppendConformance<InMemoryFactory>;
public sealed class InMemoryIdempotency : IdempotencyConformance<InMemoryFactory>;
public sealed class InMemoryMultiStream : MultiStreamConformance<InMemoryFactory>;
public sealed class InMemoryReadStream : ReadStreamConformance<InMemoryFactory>;
public sealed class InMemoryReadAll : ReadAllConformance<InMemoryFactory>;
public sealed class InMemoryMetadata : MetadataConformance<InMemoryFactory>;
public sealed class InMemoryDelete : DeleteConformance<InMemoryFactory>;
public sealed class InMemoryStreamInfo : StreamInfoConformance<InMemoryFactory>;
public sealed class InMemoryValidation : ValidationConformance<InMemoryFactory>;
public sealed class InMemoryConcurrency : ConcurrencyConformance<InMemoryFactory>;
public sealed class InMemorySubscriptions : SubscriptionConformance<InMemoryFactory>;
public sealed class InMemoryAggregates : AggregateConformance<InMemoryFactory>;
public sealed class InMemoryTracing : TracingConformance<InMemoryFactory>;
public sealed class InMemoryProjections : ProjectionConformance<InMemoryFactory>;
