using Factum;
using Factum.Sqlite;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the SQLite store.</summary>
public static class SqliteFactumBuilderExtensions
{
    /// <summary>Uses the embedded SQLite store at <paramref name="path"/>.</summary>
    public static FactumBuilder UseSqlite(this FactumBuilder builder, string path, Func<SqliteEventStoreOptions, SqliteEventStoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new SqliteEventStoreOptions(path);
        if (configure is not null) options = configure(options);
        builder.UseEventStore(sp => new SqliteEventStore(FactumBuilder.WithLogging(options, sp)));
        // Leases in the same file: every process sharing it agrees on one owner per job.
        builder.Services.RemoveAll<Factum.Coordination.ILeaseStore>();
        builder.Services.AddSingleton<Factum.Coordination.ILeaseStore>(sp => new SqliteLeaseStore((SqliteEventStore)sp.GetRequiredService<IEventStore>()));
        // The message store in the same file too: a durable endpoint's inbox record, its handler's writes and its outbox
        // commit in the store's one transaction.
        builder.Services.RemoveAll<Factum.Messaging.IMessageStore>();
        builder.Services.AddSingleton<Factum.Messaging.IMessageStore>(sp => new SqliteMessageStore((SqliteEventStore)sp.GetRequiredService<IEventStore>()));
        return builder;
    }
}

/// <summary>Registers the embedded SQLite message transport.</summary>
public static class SqliteMessagingBuilderExtensions
{
    /// <summary>
    /// Uses the SQLite message transport in the store's own file (register the store with <c>UseSqlite</c>): queues,
    /// topics, stream logs, consumer groups, the inbox and the dead-letter queue share the store's writer and group commit.
    /// </summary>
    public static FactumBuilder UseSqliteTransport(this FactumBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.UseTransport(sp => sp.GetService(typeof(IEventStore)) is SqliteEventStore store
            ? new SqliteMessageTransport(store)
            : throw new InvalidOperationException("UseSqliteTransport keeps messages in the SQLite store's file; register the store with UseSqlite(path) or UseStore(\"sqlite:<path>\") first."));
    }
}
