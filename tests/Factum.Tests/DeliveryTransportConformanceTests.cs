using Factum.Conformance;
using Factum.Conformance.Messaging;
using Factum.Messaging;

namespace Factum.Tests;

/// <summary>A bare broker: no delay, no dead-letter queue, no deduplication (the store does all three).</summary>
public sealed class BareBrokerFactory : IDeliveryTransportFactory
{
    public ITransport Create(TimeProvider clock) => new InMemoryBroker(clock: clock);

    public Task<int> NativeDeadLettersAsync(ITransport transport, QueueName queue) => throw new NotSupportedException("no native dead-lettering");

    public ValueTask DestroyAsync(ITransport transport) => transport.DisposeAsync();
}

/// <summary>A broker with every capability the in-memory broker simulates.</summary>
public sealed class CapableBrokerFactory : IDeliveryTransportFactory
{
    public ITransport Create(TimeProvider clock) =>
        new InMemoryBroker(new TransportCapabilities { NativeDelay = true, NativeDeadLetter = true, Deduplication = true }, clock);

    public Task<int> NativeDeadLettersAsync(ITransport transport, QueueName queue) =>
        Task.FromResult(((InMemoryBroker)transport).DeadLetters.Count(d => d.Queue == queue));

    public ValueTask DestroyAsync(ITransport transport) => transport.DisposeAsync();
}

/// <summary>The embedded in-memory transport seen as a plain transport.</summary>
public sealed class InMemoryDatabaseQueueFactory : IDeliveryTransportFactory
{
    public ITransport Create(TimeProvider clock) => new DatabaseQueueTransport(new InMemoryTransport(clock), clock, ownsInner: true);

    public async Task<int> NativeDeadLettersAsync(ITransport transport, QueueName queue) =>
        (await ((DatabaseQueueTransport)transport).Inner.ListDeadLettersAsync(new DeadLetterFilter { Source = queue.Value }).ToListAsync()).Count;

    public ValueTask DestroyAsync(ITransport transport) => transport.DisposeAsync();
}

public sealed class BareBrokerConformance : DeliveryTransportConformance<BareBrokerFactory>;

public sealed class CapableBrokerConformance : DeliveryTransportConformance<CapableBrokerFactory>;

public sealed class InMemoryDatabaseQueueConformance : DeliveryTransportConformance<InMemoryDatabaseQueueFactory>;

/// <summary>The transport suite must be able to fail: on a transport whose ack does not reach the broker, it does.</summary>
public sealed class DeliveryTransportSuiteSelfTests
{
    private sealed class OnUnconfirmedAck : DeliveryTransportConformance<BareBrokerFactory>
    {
        protected override ITransport Wrap(ITransport transport) => new UnconfirmedAck(transport);
    }

    [Fact]
    public async Task An_ack_that_never_reaches_the_broker_fails_the_suite()
    {
        Assert.IsAssignableFrom<Xunit.Sdk.XunitException>(await SuiteSelfTest.FailureOf(new OnUnconfirmedAck(), s => s.A_sent_message_is_delivered_once_in_order_with_its_envelope_and_an_ack_removes_it()));
        Assert.Null(await SuiteSelfTest.FailureOf(new BareBrokerConformance(), s => s.A_sent_message_is_delivered_once_in_order_with_its_envelope_and_an_ack_removes_it()));
    }
}
