using Factum.PostgreSql;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Factum.PostgreSql
{
    /// <summary>
    /// What <c>UseStore("postgres://…")</c> finds by name (the core does not reference this package): the store is
    /// <c>UsePostgres</c> on the connection string. PostgreSQL has no message transport yet.
    /// </summary>
    public sealed class PostgresBackendProvider : IFactumBackendProvider
    {
        /// <inheritdoc />
        public void UseStore(FactumBuilder builder, StoreConnectionString store)
        {
            ArgumentNullException.ThrowIfNull(builder);
            ArgumentNullException.ThrowIfNull(store);
            var options = new PostgresEventStoreOptions(store);
            builder.UsePostgres(options);
        }

        /// <inheritdoc />
        public void UseTransport(FactumBuilder builder, TransportConnectionString transport)
        {
            ArgumentNullException.ThrowIfNull(transport);
            throw new BackendNotAvailableException($"PostgreSQL provides no message transport yet; {transport} is not one of its. Use memory: (or a sqlite: store's own transport).");
        }
    }
}

namespace Microsoft.Extensions.DependencyInjection
{
    /// <summary>Registers the PostgreSQL store.</summary>
    public static class PostgresFactumBuilderExtensions
    {
        /// <summary>
        /// Uses the PostgreSQL store at <paramref name="connectionString"/> (<c>postgres://user:password@host:port/db</c>
        /// or an Npgsql connection string), with its leases and its message store (<see cref="PostgresMessageStore"/>) in the same database.
        /// </summary>
        public static FactumBuilder UsePostgres(this FactumBuilder builder, string connectionString, Func<PostgresEventStoreOptions, PostgresEventStoreOptions>? configure = null)
        {
            ArgumentNullException.ThrowIfNull(builder);
            var options = new PostgresEventStoreOptions(connectionString);
            return builder.UsePostgres(configure is null ? options : configure(options));
        }

        /// <summary>Uses the PostgreSQL store with <paramref name="options"/>.</summary>
        public static FactumBuilder UsePostgres(this FactumBuilder builder, PostgresEventStoreOptions options)
        {
            ArgumentNullException.ThrowIfNull(builder);
            ArgumentNullException.ThrowIfNull(options);
            builder.UseEventStore(sp => new PostgresEventStore(FactumBuilder.WithLogging(options, sp)));
            // Leases in the same database: every node sharing it agrees on one owner per job.
            builder.Services.RemoveAll<Factum.Coordination.ILeaseStore>();
            builder.Services.AddSingleton<Factum.Coordination.ILeaseStore>(sp => new PostgresLeaseStore((PostgresEventStore)sp.GetRequiredService<Factum.IEventStore>()));
            // The message store in the same schema too: a durable endpoint's inbox record, its handler's writes and its
            // outbox commit in one transaction of the store's database.
            builder.Services.RemoveAll<Factum.Messaging.IMessageStore>();
            builder.Services.AddSingleton<Factum.Messaging.IMessageStore>(sp => new PostgresMessageStore((PostgresEventStore)sp.GetRequiredService<Factum.IEventStore>()));
            return builder;
        }
    }
}
