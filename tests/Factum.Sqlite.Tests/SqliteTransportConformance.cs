using Factum.Conformance.Messaging;
using Factum.Messaging;

namespace Factum.Sqlite.Tests;

/// <summary>Each test gets a real SQLite file; the transport owns its store.</summary>
public sealed class SqliteTransportFactory : ITransportFactory
{
    public IMessageTransport Create(TimeProvider? clock = null) =>
        new SqliteMessageTransport(new SqliteEventStore(new SqliteEventStoreOptions(Path.Combine(TempDir.Create(), "factum.db")) { TimeProvider = clock ?? TimeProvider.System }), ownsStore: true);

    public async ValueTask DestroyAsync(IMessageTransport transport)
    {
        var path = ((SqliteMessageTransport)transport).Store.FilePath;
        await transport.DisposeAsync();
        TempDir.Delete(Path.GetDirectoryName(path)!);
    }
}

public sealed class SqliteTransportConformance : TransportConformance<SqliteTransportFactory>;

public sealed class SqliteBusConformance : BusConformance<SqliteTransportFactory>;
