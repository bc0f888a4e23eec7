using Factum.Conformance;
using Factum.Conformance.Messaging;
using Factum.Coordination;
using Factum.Messaging;

namespace Factum.Tests;

/// <summary>The in-memory message store beside a bare broker (no delay, no dead-letter queue): the store does both.</summary>
public sealed class InMemoryStoreWithBareBroker : IStoreTransportFactory
{
    private readonly InMemoryMessageStoreFactory _store = new();

    public StoreAndTransport Create()
    {
        var leases = new InMemoryLeaseStore();
        return new StoreAndTransport(new InMemoryMessageStore(leases: leases), leases, new InMemoryBroker(), new InMemoryTransport());
    }

    public MessageWork CountEffect(string key) => _store.CountEffect(key);

    public Task<int> EffectsAsync(IMessageStore store, string key) => _store.EffectsAsync(store, key);

    public async ValueTask DestroyAsync(StoreAndTransport pair)
    {
        await pair.Transport.DisposeAsync();
        await pair.Embedded.DisposeAsync();
    }
}

/// <summary>The in-memory message store beside the in-memory embedded transport used as a plain transport (native delay and dead letters).</summary>
public sealed class InMemoryStoreWithDatabaseQueue : IStoreTransportFactory
{
    private readonly InMemoryMessageStoreFactory _store = new();

    public StoreAndTransport Create()
    {
        var leases = new InMemoryLeaseStore();
        var embedded = new InMemoryTransport();
        return new StoreAndTransport(new InMemoryMessageStore(leases: leases), leases, embedded.AsTransport(), embedded);
    }

    public MessageWork CountEffect(string key) => _store.CountEffect(key);

    public Task<int> EffectsAsync(IMessageStore store, string key) => _store.EffectsAsync(store, key);

    public ValueTask DestroyAsync(StoreAndTransport pair) => pair.Embedded.DisposeAsync();
}

public sealed class InMemoryStoreBareBrokerConformance : StoreTransportConformance<InMemoryStoreWithBareBroker>;

public sealed class InMemoryStoreDatabaseQueueConformance : StoreTransportConformance<InMemoryStoreWithDatabaseQueue>;

/// <summary>The store × transport suite must be able to fail: with an inbox that forgets, the crash scenario doubles effects.</summary>
public sealed class StoreTransportSuiteSelfTests
{
    private sealed class OnForgetfulInbox : StoreTransportConformance<InMemoryStoreWithBareBroker>
    {
        protected override IMessageStore Wrap(IMessageStore store) => new ForgetfulInbox(store);
    }

    [Fact]
    public async Task A_store_that_forgets_its_inbox_handles_a_crashed_delivery_twice()
    {
        Assert.IsAssignableFrom<Xunit.Sdk.XunitException>(await SuiteSelfTest.FailureOf(new OnForgetfulInbox(), s => s.A_consumer_that_dies_between_its_store_commit_and_its_broker_ack_has_its_message_handled_once_in_effect()));
    }
}
