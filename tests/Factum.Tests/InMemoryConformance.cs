using Factum.Conformance;
using Factum.InMemory;

namespace Factum.Tests;

public sealed class InMemoryFactory : IEventStoreFactory, ISubscriptionStoreFactory, ISnapshotStoreFactory
{
    public Aggregates.ISnapshotStore CreateSnapshotStore(IEventStore store) => new Aggregates.InMemorySnapshotStore();

    public (Subscriptions.ICheckpointStore Checkpoints, Subscriptions.IParkedEventStore Parked) CreateSubscriptionStores(IEventStore store)
    {
        var s = new Subscriptions.InMemorySubscriptionStore();
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
