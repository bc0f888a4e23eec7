using Factum;
using Factum.Messaging;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Message bus registration on <see cref="FactumBuilder"/>.</summary>
public static class FactumMessagingExtensions
{
    /// <summary>Registers a command type: an order to one handler, named in the imperative (<c>CapturePayment</c>).</summary>
    public static FactumBuilder AddCommand<T>(this FactumBuilder builder, Action<EventTypeOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Registry.Register<T>(o => { o.Kind = MessageKind.Command; configure?.Invoke(o); });
        return builder;
    }

    /// <summary>Registers a query type: a question answered by request-reply (<c>GetStockLevel</c>).</summary>
    public static FactumBuilder AddQuery<T>(this FactumBuilder builder, Action<EventTypeOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Registry.Register<T>(o => { o.Kind = MessageKind.Query; configure?.Invoke(o); });
        return builder;
    }

    /// <summary>Uses the given transport for the message bus (a singleton).</summary>
    public static FactumBuilder UseTransport(this FactumBuilder builder, Func<IServiceProvider, IMessageTransport> factory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        Messaging(builder);
        builder.Services.RemoveAll<IMessageTransport>();
        builder.Services.AddSingleton(factory);
        return builder;
    }

    /// <summary>
    /// Uses the transport a connection string names: <c>sqlite</c> (the SQLite store's own file; needs the
    /// Factum.Sqlite package and a <c>sqlite:</c> store), <c>memory:</c>, or <c>amqp://…</c> / <c>nats://host:port[,host:port…]</c>
    /// (recognised; refused until those transports exist).
    /// </summary>
    /// <exception cref="FormatException">The string is none of those forms (the message masks its password).</exception>
    /// <exception cref="BackendNotAvailableException">The transport does not exist yet, or its package is not referenced.</exception>
    public static FactumBuilder UseTransport(this FactumBuilder builder, string connectionString) =>
        builder.UseTransport(TransportConnectionString.Parse(connectionString));

    /// <summary>Uses the transport <paramref name="transport"/> names (see <see cref="UseTransport(FactumBuilder, string)"/>).</summary>
    /// <exception cref="BackendNotAvailableException">The transport does not exist yet, or its package is not referenced.</exception>
    public static FactumBuilder UseTransport(this FactumBuilder builder, TransportConnectionString transport)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(transport);
        if (BackendProviders.NotYetAvailable(transport) is { } why) throw new BackendNotAvailableException(why);
        if (transport.Kind == TransportKind.Memory) return builder.UseInMemoryTransport();
        BackendProviders.Find(BackendProviders.Sqlite, "the sqlite transport", "Factum.Sqlite").UseTransport(builder, transport);
        return builder;
    }

    /// <summary>Uses the in-memory transport (tests, or messages that may be lost on a crash).</summary>
    public static FactumBuilder UseInMemoryTransport(this FactumBuilder builder) => builder.UseTransport(_ => new InMemoryTransport());

    /// <summary>Sets the bus options.</summary>
    public static FactumBuilder ConfigureMessaging(this FactumBuilder builder, MessagingOptions options)
    {
        ArgumentNullException.ThrowIfNull(builder);
        Messaging(builder);
        builder.Services.RemoveAll<MessagingOptions>();
        builder.Services.AddSingleton(options);
        return builder;
    }

    /// <summary>Registers a handler class (scoped) for every message and request interface it implements; the hosted service runs it.</summary>
    public static FactumBuilder AddHandler<THandler>(this FactumBuilder builder, Action<HandlerOptions>? configure = null) where THandler : class
    {
        ArgumentNullException.ThrowIfNull(builder);
        Messaging(builder).AddHandler<THandler>(configure);
        builder.Services.TryAddScoped<THandler>();
        return builder;
    }

    /// <summary>Registers a delegate handler for <typeparamref name="T"/>.</summary>
    public static FactumBuilder AddHandler<T>(this FactumBuilder builder, Func<T, MessageContext, CancellationToken, Task> handler, Action<HandlerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        Messaging(builder).AddHandler(handler, configure);
        return builder;
    }

    /// <summary>Registers a delegate that answers requests.</summary>
    public static FactumBuilder AddRequestHandler<TRequest, TResponse>(this FactumBuilder builder, Func<TRequest, MessageContext, CancellationToken, Task<TResponse>> handler, Action<HandlerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        Messaging(builder).AddRequestHandler(handler, configure);
        return builder;
    }

    /// <summary>Makes <typeparamref name="T"/>'s topic a partitioned, replayable stream (see <see cref="MessagingBuilder.AddStream{T}"/>).</summary>
    public static FactumBuilder AddStream<T>(this FactumBuilder builder, int partitions, TimeSpan? maxAge = null, long? maxBytes = null, long? maxCount = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        Messaging(builder).AddStream<T>(partitions, maxAge, maxBytes, maxCount);
        return builder;
    }

    /// <summary>Configures routes and partition keys directly.</summary>
    public static FactumBuilder ConfigureRoutes(this FactumBuilder builder, Action<MessagingBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        configure(Messaging(builder));
        return builder;
    }

    private static MessagingBuilder Messaging(FactumBuilder builder)
    {
        if (builder.Services.FirstOrDefault(d => d.ServiceType == typeof(MessagingBuilder))?.ImplementationInstance is MessagingBuilder existing) return existing;
        var messaging = new MessagingBuilder();
        var services = builder.Services;
        services.AddSingleton(messaging);
        services.TryAddSingleton(sp => new MessageBus(
            sp.GetService<IMessageTransport>() ?? throw new InvalidOperationException("No message transport is registered; call UseInMemoryTransport() or UseSqliteTransport()."),
            sp.GetRequiredService<EventTypeRegistry>(), messaging, sp.GetService<MessagingOptions>(), sp));
        services.TryAddSingleton<IMessageBus>(sp => sp.GetRequiredService<MessageBus>());
        services.AddHostedService<MessagingHostedService>();
        return messaging;
    }
}

/// <summary>Runs the message bus's consumers for the lifetime of the host.</summary>
public sealed class MessagingHostedService(MessageBus bus) : IHostedService
{
    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken) => bus.StartAsync(cancellationToken);

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => bus.StopAsync(cancellationToken);
}
