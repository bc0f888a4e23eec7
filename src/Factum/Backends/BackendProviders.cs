using Microsoft.Extensions.DependencyInjection;

namespace Factum;

/// <summary>
/// Implemented by a backend package so that connection strings can name it without the core referencing it:
/// <c>UseStore("sqlite:…")</c> finds the SQLite package's provider by a well-known type name. A backend registers its
/// store and transport with the builder's ordinary <c>Use…</c> methods.
/// </summary>
/// <remarks>An implementation needs a public parameterless constructor; it is created once per <c>UseStore</c>/<c>UseTransport</c> call.</remarks>
public interface IFactumBackendProvider
{
    /// <summary>Registers the store <paramref name="store"/> names (its <see cref="StoreConnectionString.Kind"/> is this backend's).</summary>
    void UseStore(FactumBuilder builder, StoreConnectionString store);

    /// <summary>Registers the transport <paramref name="transport"/> names (its <see cref="TransportConnectionString.Kind"/> is this backend's).</summary>
    void UseTransport(FactumBuilder builder, TransportConnectionString transport);
}

/// <summary>
/// A connection string names a backend this application cannot use: it does not exist yet (RabbitMQ, NATS),
/// or its package is not referenced. The message names the backend and what to do instead.
/// </summary>
public sealed class BackendNotAvailableException(string message) : FactumException(message);

/// <summary>Finds a backend's <see cref="IFactumBackendProvider"/> by its well-known type name.</summary>
internal static class BackendProviders
{
    /// <summary>The SQLite package's provider: store and transport.</summary>
    public const string Sqlite = "Factum.Sqlite.SqliteBackendProvider, Factum.Sqlite";

    /// <summary>The PostgreSQL package's provider: the store.</summary>
    public const string PostgreSql = "Factum.PostgreSql.PostgresBackendProvider, Factum.PostgreSql";

    /// <summary>
    /// Loads the provider named <paramref name="typeName"/> (assembly-qualified). A missing assembly is the usual case —
    /// the application did not reference the package — and gets a message naming the package; anything else that stops
    /// the load is reported with its cause.
    /// </summary>
    public static IFactumBackendProvider Find(string typeName, string what, string package)
    {
        Type? type;
        try
        {
            type = Type.GetType(typeName, throwOnError: false);
        }
        catch (Exception ex) when (ex is FileLoadException or BadImageFormatException)
        {
            throw new BackendNotAvailableException($"{what} needs the {package} package, but its assembly could not be loaded: {ex.Message}");
        }
        if (type is null)
            throw new BackendNotAvailableException($"{what} needs the {package} package (dotnet add package {package}); this application does not reference it.");
        if (!typeof(IFactumBackendProvider).IsAssignableFrom(type))
            throw new BackendNotAvailableException($"{what} needs the {package} package, but its {type.FullName} is not an {nameof(IFactumBackendProvider)}: the {package} and Factum versions do not match.");
        return (IFactumBackendProvider)Activator.CreateInstance(type)!;
    }

    /// <summary>Why there is no backend for <paramref name="store"/> yet, or null when there is one.</summary>
    public static string? NotYetAvailable(StoreConnectionString store)
    {
        ArgumentNullException.ThrowIfNull(store);
        return null;
    }

    /// <summary>Why there is no transport for <paramref name="transport"/> yet, or null when there is one.</summary>
    public static string? NotYetAvailable(TransportConnectionString transport) => transport.Kind switch
    {
        TransportKind.Amqp => $"the RabbitMQ transport {transport} is not available yet: this version of Factum has no AMQP transport. Use sqlite (the store's own file) or memory:.",
        TransportKind.Nats => $"the NATS transport {transport} is not available yet: this version of Factum has no NATS transport. Use sqlite (the store's own file) or memory:.",
        _ => null,
    };
}
