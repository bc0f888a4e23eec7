using Factum;
using Factum.InMemory;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Configures Factum in a service collection; backends add <c>Use…</c> extension methods.</summary>
public sealed class FactumBuilder
{
    internal FactumBuilder(IServiceCollection services, EventTypeRegistry registry)
    {
        Services = services;
        Registry = registry;
    }

    /// <summary>The service collection being configured.</summary>
    public IServiceCollection Services { get; }

    /// <summary>
    /// The value of the <c>factum.instance</c> tag on this registration's metrics (default <c>default</c>); give each
    /// store in a process its own, so they report separately.
    /// </summary>
    public string InstanceName { get; private set; } = "default";

    /// <summary>Names this Factum instance in its metrics (<c>factum.instance</c>).</summary>
    public FactumBuilder WithInstanceName(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        InstanceName = name;
        return this;
    }

    /// <summary>The event type registry shared by the application.</summary>
    public EventTypeRegistry Registry { get; }

    /// <summary>Registers an event type (see <see cref="EventTypeRegistry.Register{T}"/>).</summary>
    public FactumBuilder AddEventType<T>(Action<EventTypeOptions>? configure = null)
    {
        Registry.Register<T>(configure);
        return this;
    }

    /// <summary>Uses the in-memory store (for tests).</summary>
    public FactumBuilder UseInMemory(EventStoreOptions? options = null) =>
        UseEventStore(sp => new InMemoryEventStore(WithLogging(options ?? new EventStoreOptions(), sp)));

    /// <summary>
    /// Uses the store a connection string names: <c>sqlite:&lt;path&gt;</c> (a data directory holding factum.db, or a
    /// .db file; needs the Factum.Sqlite package), <c>memory:</c>, or <c>postgres://user:password@host:port/db</c>
    /// (recognised; refused until a PostgreSQL backend exists).
    /// </summary>
    /// <exception cref="FormatException">The string is none of those forms (the message masks its password).</exception>
    /// <exception cref="BackendNotAvailableException">The backend does not exist yet, or its package is not referenced.</exception>
    public FactumBuilder UseStore(string connectionString) => UseStore(StoreConnectionString.Parse(connectionString));

    /// <summary>Uses the store <paramref name="store"/> names (see <see cref="UseStore(string)"/>).</summary>
    /// <exception cref="BackendNotAvailableException">The backend does not exist yet, or its package is not referenced.</exception>
    public FactumBuilder UseStore(StoreConnectionString store)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (BackendProviders.NotYetAvailable(store) is { } why) throw new BackendNotAvailableException(why);
        if (store.Kind == StoreKind.Memory) return UseInMemory();
        if (store.Kind == StoreKind.PostgreSql) BackendProviders.Find(BackendProviders.PostgreSql, "the postgres:// store", "Factum.PostgreSql").UseStore(this, store);
        else BackendProviders.Find(BackendProviders.Sqlite, "the sqlite: store", "Factum.Sqlite").UseStore(this, store);
        return this;
    }

    /// <summary>The options with the application's logger factory, unless they name one already.</summary>
    public static T WithLogging<T>(T options, IServiceProvider services) where T : EventStoreOptions
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(services);
        return options.LoggerFactory is Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory
            && services.GetService(typeof(Microsoft.Extensions.Logging.ILoggerFactory)) is Microsoft.Extensions.Logging.ILoggerFactory factory
            ? options with { LoggerFactory = factory }
            : options;
    }

    /// <summary>Uses the given store factory; the store is a singleton exposed through every store interface.</summary>
    public FactumBuilder UseEventStore(Func<IServiceProvider, IEventStore> factory)
    {
        Services.RemoveAll<IEventStore>();
        Services.AddSingleton(factory);
        Services.TryAddSingleton<IEventReader>(sp => sp.GetRequiredService<IEventStore>());
        Services.TryAddSingleton<IEventWriter>(sp => sp.GetRequiredService<IEventStore>());
        Services.TryAddSingleton<IStreamManager>(sp => sp.GetRequiredService<IEventStore>());
        return this;
    }
}

/// <summary>Registers Factum.</summary>
public static class FactumServiceCollectionExtensions
{
    /// <summary>Adds Factum; configure the store and event types with <paramref name="configure"/>.</summary>
    public static IServiceCollection AddFactum(this IServiceCollection services, Action<FactumBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var registry = new EventTypeRegistry();
        services.TryAddSingleton(registry);
        var builder = new FactumBuilder(services, registry);
        configure(builder);
        // The metrics come from the application's meter factory (AddMetrics, or any host), tagged with the instance.
        services.TryAddSingleton(sp => new FactumMetrics(sp.GetService<System.Diagnostics.Metrics.IMeterFactory>(), builder.InstanceName));
        if (!services.Any(d => d.ServiceType == typeof(IEventStore))) builder.UseInMemory();
        if (services.Any(d => d.ServiceType == typeof(Factum.Messaging.MessagingBuilder)) && !services.Any(d => d.ServiceType == typeof(Factum.Messaging.IMessageTransport)))
            builder.UseInMemoryTransport();
        return services;
    }
}
