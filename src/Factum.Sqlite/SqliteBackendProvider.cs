using Factum;
using Microsoft.Extensions.DependencyInjection;

namespace Factum.Sqlite;

/// <summary>
/// What <c>UseStore("sqlite:…")</c> and <c>UseTransport("sqlite")</c> find by name (the core does not reference this
/// package): the store is <c>UseSqlite</c> on the connection string's database file, the transport <c>UseSqliteTransport</c>.
/// </summary>
public sealed class SqliteBackendProvider : IFactumBackendProvider
{
    /// <inheritdoc />
    public void UseStore(FactumBuilder builder, StoreConnectionString store)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(store);
        if (store.Kind != StoreKind.Sqlite || store.DatabaseFile is not { } file)
            throw new ArgumentException($"The SQLite backend opens sqlite: stores, not {store}.", nameof(store));
        builder.UseSqlite(file);
    }

    /// <inheritdoc />
    public void UseTransport(FactumBuilder builder, TransportConnectionString transport)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(transport);
        if (transport.Kind != TransportKind.Sqlite)
            throw new ArgumentException($"The SQLite backend provides the sqlite transport, not {transport}.", nameof(transport));
        builder.UseSqliteTransport();
    }
}
