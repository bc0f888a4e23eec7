namespace Factum.Messaging;

/// <summary>Handles messages of type <typeparamref name="T"/> (events from a topic, or commands from a queue).</summary>
public interface IMessageHandler<in T>
{
    /// <summary>Handles one message. Throw to fail it (it is retried, then dead-lettered).</summary>
    Task HandleAsync(T message, MessageContext context, CancellationToken cancellationToken);
}

/// <summary>Answers requests of type <typeparamref name="TRequest"/> (commands or queries, never events).</summary>
public interface IRequestHandler<in TRequest, TResponse>
{
    /// <summary>Handles one request; the result is sent back to the requester.</summary>
    Task<TResponse> HandleAsync(TRequest request, MessageContext context, CancellationToken cancellationToken);
}

/// <summary>Handler registrations, routes and stream topics; turned into consumers when the bus starts.</summary>
public sealed class MessagingBuilder
{
    private readonly List<HandlerRegistration> _handlers = [];
    private readonly Dictionary<Type, RouteOverride> _routes = [];
    private readonly Dictionary<Type, TopicOptions> _streams = [];

    internal IReadOnlyList<HandlerRegistration> Handlers => _handlers;

    internal IReadOnlyDictionary<Type, TopicOptions> Streams => _streams;

    /// <summary>
    /// Registers a handler class for every <see cref="IMessageHandler{T}"/> and <see cref="IRequestHandler{TRequest,TResponse}"/>
    /// it implements. It is created per message from the service provider (scoped), or with its public constructor's
    /// services when the bus runs without one.
    /// </summary>
    public MessagingBuilder AddHandler<THandler>(Action<HandlerOptions>? configure = null) where THandler : class => AddHandler(typeof(THandler), configure);

    /// <summary>Registers a handler class (see <see cref="AddHandler{THandler}(Action{HandlerOptions})"/>).</summary>
    public MessagingBuilder AddHandler(Type handlerType, Action<HandlerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(handlerType);
        var found = false;
        foreach (var i in handlerType.GetInterfaces().Where(i => i.IsGenericType))
        {
            var def = i.GetGenericTypeDefinition();
            if (def == typeof(IMessageHandler<>))
            {
                var invoke = (Func<IServiceProvider, object, MessageContext, CancellationToken, Task<object?>>)typeof(MessagingBuilder)
                    .GetMethod(nameof(MessageInvoker), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
                    .MakeGenericMethod(i.GenericTypeArguments[0]).Invoke(null, [handlerType])!;
                Add(i.GenericTypeArguments[0], null, handlerType.Name, configure, invoke);
                found = true;
            }
            else if (def == typeof(IRequestHandler<,>))
            {
                var invoke = (Func<IServiceProvider, object, MessageContext, CancellationToken, Task<object?>>)typeof(MessagingBuilder)
                    .GetMethod(nameof(RequestInvoker), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
                    .MakeGenericMethod(i.GenericTypeArguments).Invoke(null, [handlerType])!;
                Add(i.GenericTypeArguments[0], i.GenericTypeArguments[1], handlerType.Name, configure, invoke);
                found = true;
            }
        }
        if (!found) throw new ArgumentException($"{handlerType.Name} implements neither IMessageHandler<T> nor IRequestHandler<TRequest, TResponse>.", nameof(handlerType));
        return this;
    }

    /// <summary>Registers a delegate handler for <typeparamref name="T"/>.</summary>
    public MessagingBuilder AddHandler<T>(Func<T, MessageContext, CancellationToken, Task> handler, Action<HandlerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        Add(typeof(T), null, $"delegate for {typeof(T).Name}", configure, async (_, m, ctx, ct) =>
        {
            await handler((T)m, ctx, ct).ConfigureAwait(false);
            return null;
        });
        return this;
    }

    /// <summary>Registers a delegate that answers requests of type <typeparamref name="TRequest"/>.</summary>
    public MessagingBuilder AddRequestHandler<TRequest, TResponse>(Func<TRequest, MessageContext, CancellationToken, Task<TResponse>> handler, Action<HandlerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        Add(typeof(TRequest), typeof(TResponse), $"delegate for {typeof(TRequest).Name}", configure, async (_, m, ctx, ct) => await handler((TRequest)m, ctx, ct).ConfigureAwait(false));
        return this;
    }

    /// <summary>Publishes <typeparamref name="T"/> to <paramref name="topic"/> instead of the topic named after its type.</summary>
    public MessagingBuilder RouteToTopic<T>(TopicName topic, Func<T, string?>? partitionKey = null)
    {
        _routes[typeof(T)] = new RouteOverride(topic, null, partitionKey is null ? null : o => partitionKey((T)o));
        return this;
    }

    /// <summary>Sends <typeparamref name="T"/> to <paramref name="queue"/> instead of the queue named after its type.</summary>
    public MessagingBuilder RouteToQueue<T>(QueueName queue, Func<T, string?>? partitionKey = null)
    {
        _routes[typeof(T)] = new RouteOverride(null, queue, partitionKey is null ? null : o => partitionKey((T)o));
        return this;
    }

    /// <summary>Keys <typeparamref name="T"/> by <paramref name="partitionKey"/> (for example the aggregate id), keeping the default route.</summary>
    public MessagingBuilder PartitionBy<T>(Func<T, string?> partitionKey)
    {
        ArgumentNullException.ThrowIfNull(partitionKey);
        var existing = _routes.GetValueOrDefault(typeof(T));
        _routes[typeof(T)] = new RouteOverride(existing?.Topic, existing?.Queue, o => partitionKey((T)o));
        return this;
    }

    /// <summary>
    /// Makes the topic of <typeparamref name="T"/> an event stream: a durable, ordered, replayable log with
    /// <paramref name="partitions"/> partitions (order holds per partition key) and the given retention.
    /// </summary>
    public MessagingBuilder AddStream<T>(int partitions, TimeSpan? maxAge = null, long? maxBytes = null, long? maxCount = null)
    {
        _streams[typeof(T)] = new TopicOptions { Partitions = partitions >= 1 ? partitions : throw new ArgumentOutOfRangeException(nameof(partitions), partitions, "A stream has at least one partition."), MaxAge = maxAge, MaxBytes = maxBytes, MaxCount = maxCount };
        return this;
    }

    internal RouteOverride? GetRoute(Type type) => _routes.GetValueOrDefault(type);

    private void Add(Type message, Type? response, string description, Action<HandlerOptions>? configure, Func<IServiceProvider, object, MessageContext, CancellationToken, Task<object?>> invoke)
    {
        var options = new HandlerOptions();
        configure?.Invoke(options);
        _handlers.Add(new HandlerRegistration(message, response, options, description, invoke));
    }

    private static Func<IServiceProvider, object, MessageContext, CancellationToken, Task<object?>> MessageInvoker<T>(Type handlerType) =>
        async (sp, m, ctx, ct) =>
        {
            await ((IMessageHandler<T>)Resolve(sp, handlerType)).HandleAsync((T)m, ctx, ct).ConfigureAwait(false);
            return null;
        };

    private static Func<IServiceProvider, object, MessageContext, CancellationToken, Task<object?>> RequestInvoker<TRequest, TResponse>(Type handlerType) =>
        async (sp, m, ctx, ct) => await ((IRequestHandler<TRequest, TResponse>)Resolve(sp, handlerType)).HandleAsync((TRequest)m, ctx, ct).ConfigureAwait(false);

    private static object Resolve(IServiceProvider services, Type type)
    {
        if (services.GetService(type) is { } registered) return registered;
        var ctor = type.GetConstructors().OrderByDescending(c => c.GetParameters().Length).FirstOrDefault()
            ?? throw new InvalidOperationException($"Handler {type.Name} has no public constructor.");
        var args = ctor.GetParameters().Select(p => services.GetService(p.ParameterType)
            ?? throw new InvalidOperationException($"Handler {type.Name} needs a {p.ParameterType.Name}, which is not registered.")).ToArray();
        return ctor.Invoke(args);
    }
}

internal sealed record RouteOverride(TopicName? Topic, QueueName? Queue, Func<object, string?>? PartitionKey);

internal sealed record HandlerRegistration(Type MessageType, Type? ResponseType, HandlerOptions Options, string Description,
    Func<IServiceProvider, object, MessageContext, CancellationToken, Task<object?>> Invoke);

/// <summary>
/// Names the service an assembly implements, for the design tooling's code-first catalog (<c>factum catalog --assembly</c>):
/// the message handlers found in the assembly become what this service consumes.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly)]
public sealed class FactumServiceAttribute(string name) : Attribute
{
    /// <summary>The service id.</summary>
    public string Name { get; } = name;

    /// <summary>Its bounded context.</summary>
    public string? Domain { get; set; }

    /// <summary>The owning team.</summary>
    public string? Owner { get; set; }

    /// <summary>Event types it publishes (handlers say what it consumes; publishing happens in code, so it is declared here).</summary>
    public Type[] Publishes { get; set; } = [];

    /// <summary>Command types it sends.</summary>
    public Type[] Sends { get; set; } = [];
}
