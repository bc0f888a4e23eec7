using Factum.Conformance.Messaging;
using Factum.Messaging;

namespace Factum.Tests;

public sealed class InMemoryTransportFactory : ITransportFactory
{
    public IMessageTransport Create(TimeProvider? clock = null) => new InMemoryTransport(clock);

    public ValueTask DestroyAsync(IMessageTransport transport) => transport.DisposeAsync();
}

public sealed class InMemoryTransportConformance : TransportConformance<InMemoryTransportFactory>;

public sealed class InMemoryBusConformance : BusConformance<InMemoryTransportFactory>;
