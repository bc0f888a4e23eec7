using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace Factum.Messaging;

/// <summary>The four messaging patterns, on any <see cref="IMessageTransport"/>.</summary>
public interface IMessageBus
{
    /// <summary>
    /// Pub/sub: publishes an event to its topic (by convention named after its type). Every subscription (consumer group)
    /// receives it; consumers within a group compete. If the topic is a stream, the event is also appended to the
    /// partition of its key. Returns when the transport has it durably. Inside a handler the publish is held back and
    /// committed with the handled message's acknowledgement.
    /// </summary>
    Task PublishAsync<T>(T message, PublishOptions? options = null, CancellationToken cancellationToken = default) where T : notnull;

    /// <summary>
    /// Point-to-point: sends a command to its queue (by convention named after its type); exactly one consumer handles
    /// it (at least once, deduplicated by the consumer's inbox). <see cref="SendOptions.DeliverAt"/> delays it.
    /// </summary>
    Task SendAsync<T>(T command, SendOptions? options = null, CancellationToken cancellationToken = default) where T : notnull;

    /// <summary>
    /// Request-reply: sends a command or query to its queue with a reply address and waits for the correlated reply.
    /// </summary>
    /// <exception cref="InvalidOperationException"><typeparamref name="TRequest"/> is an event (events are facts, not questions: the "event-driven RPC" anti-pattern).</exception>
    /// <exception cref="NoResponderException">No consumer is alive on the request queue.</exception>
    /// <exception cref="RequestTimeoutException">No reply within <paramref name="timeout"/> (default <see cref="MessagingOptions.DefaultRequestTimeout"/>).</exception>
    /// <exception cref="RequestFailedException">The responder failed for good.</exception>
    Task<TResponse> RequestAsync<TRequest, TResponse>(TRequest request, TimeSpan? timeout = null, CancellationToken cancellationToken = default) where TRequest : notnull;
}

/// <summary>
/// The message bus: produces messages with a full envelope (ids, correlation, causation, trace context), and runs the
/// registered handlers as consumers with retries, dead-lettering, an inbox and per-key ordering.
/// </summary>
/// <remarks>Call <see cref="StartAsync"/> to run consumers (the hosted service does it), <see cref="StopAsync"/> to stop them.</remarks>
public sealed partial class MessageBus : IMessageBus, IAsyncDisposable
{
    private static readonly ConcurrentDictionary<string, MessageBus> LocalReplyQueues = new(StringComparer.Ordinal);
    private readonly MessagingBuilder _builder;
    private readonly IServiceProvider _services;
    private readonly Microsoft.Extensions.DependencyInjection.IServiceScopeFactory? _scopes;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Type, Route> _routes = new();
    private readonly ConcurrentDictionary<MessageId, TaskCompletionSource<TransportMessage>> _pending = new();
    private readonly QueueName _replyQueue;
    private readonly List<Endpoint> _endpoints = [];
    private readonly List<Task> _running = [];
    private readonly Lock _startGate = new();
    private CancellationTokenSource? _stopping;
    private Task? _replyListener;
    private int _started;
    private readonly Microsoft.Extensions.Logging.ILogger _log;

    /// <summary>Creates a bus.</summary>
    /// <param name="transport">The transport.</param>
    /// <param name="registry">Message types (events, commands, queries) and their upcasters.</param>
    /// <param name="builder">Handlers, routes and streams (none: a producer-only bus).</param>
    /// <param name="options">Settings.</param>
    /// <param name="services">Resolves handler classes and their dependencies (scoped per message when it is a DI container).</param>
    public MessageBus(IMessageTransport transport, EventTypeRegistry registry, MessagingBuilder? builder = null, MessagingOptions? options = null, IServiceProvider? services = null)
    {
        Transport = transport ?? throw new ArgumentNullException(nameof(transport));
        Registry = registry ?? throw new ArgumentNullException(nameof(registry));
        _builder = builder ?? new MessagingBuilder();
        Options = options ?? new MessagingOptions();
        _services = services ?? EmptyServices.Instance;
        _scopes = _services.GetService(typeof(Microsoft.Extensions.DependencyInjection.IServiceScopeFactory)) as Microsoft.Extensions.DependencyInjection.IServiceScopeFactory;
        _log = (Options.LoggerFactory ?? _services.GetService(typeof(Microsoft.Extensions.Logging.ILoggerFactory)) as Microsoft.Extensions.Logging.ILoggerFactory
            ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger(FactumLog.MessagingCategory);
        InstanceId = $"{Options.ServiceName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";
        _replyQueue = QueueName.ForReplies(InstanceId);
        LocalReplyQueues[_replyQueue.Value] = this;
        Metrics = Options.Metrics ?? _services.GetService(typeof(FactumMetrics)) as FactumMetrics ?? FactumMetrics.Default;
        _leases = Options.Leases ?? _services.GetService(typeof(Coordination.ILeaseStore)) as Coordination.ILeaseStore;
        _messageStore = Options.MessageStore ?? _services.GetService(typeof(IMessageStore)) as IMessageStore;
        Metrics.Track(this);
    }

    /// <summary>The transport.</summary>
    public IMessageTransport Transport { get; }

    /// <summary>The message type registry.</summary>
    public EventTypeRegistry Registry { get; }

    /// <summary>The settings.</summary>
    public MessagingOptions Options { get; }

    /// <summary>Where this bus reports its metrics.</summary>
    public FactumMetrics Metrics { get; }

    /// <summary>This bus instance's id (consumer and group member id).</summary>
    public string InstanceId { get; }

    internal TransportStatus? LastStatus { get; private set; }

    /// <summary>The status the backend-wide gauges report: none while another process holds the gauges' lease.</summary>
    /// <remarks>With a lease store, a bus reports them only while it holds their lease.</remarks>
    internal TransportStatus? GaugeStatus => _leases is null || _gaugeLease is not null ? LastStatus : null;

    private volatile Coordination.Lease? _gaugeLease;
    private readonly Coordination.ILeaseStore? _leases;

    private DateTimeOffset Now => Options.TimeProvider.GetUtcNow();

    /// <inheritdoc />
    public async Task PublishAsync<T>(T message, PublishOptions? options = null, CancellationToken cancellationToken = default) where T : notnull
    {
        if (MessageContext.Current is { } context)
        {
            await context.PublishAsync(message, options, cancellationToken).ConfigureAwait(false);
            return;
        }
        using var activity = FactumDiagnostics.ActivitySource.HasListeners() ? FactumDiagnostics.ActivitySource.StartActivity($"{options?.Topic ?? RouteTopic(message.GetType())} publish", ActivityKind.Producer) : null;
        var (topic, m) = PreparePublish(message, options);
        activity?.SetTag("messaging.destination.name", topic.Value);
        activity?.SetTag("messaging.message.id", m.Id.ToString());
        if (Options.DeliveryTransport is { } delivery) await delivery.PublishAsync(topic, [m], cancellationToken).ConfigureAwait(false);
        else await Transport.PublishAsync(topic, [m], cancellationToken).ConfigureAwait(false);
        if (Metrics.Published.Enabled) Metrics.Published.Add(1, new("type", m.Type), new("destination", topic.Value));
    }

    /// <inheritdoc />
    public async Task SendAsync<T>(T command, SendOptions? options = null, CancellationToken cancellationToken = default) where T : notnull
    {
        if (MessageContext.Current is { } context)
        {
            await context.SendAsync(command, options, cancellationToken).ConfigureAwait(false);
            return;
        }
        using var activity = FactumDiagnostics.ActivitySource.HasListeners() ? FactumDiagnostics.ActivitySource.StartActivity($"{options?.Queue ?? RouteQueue(command.GetType())} send", ActivityKind.Producer) : null;
        var (queue, m) = PrepareSend(command, options);
        activity?.SetTag("messaging.destination.name", queue.Value);
        activity?.SetTag("messaging.message.id", m.Id.ToString());
        if (Options.DeliveryTransport is { } delivery) await SendThroughAsync(delivery, queue, m, options?.DeliverAt, cancellationToken).ConfigureAwait(false);
        else await Transport.SendAsync(queue, [m], options?.DeliverAt, cancellationToken).ConfigureAwait(false);
        if (Metrics.Published.Enabled) Metrics.Published.Add(1, new("type", m.Type), new("destination", queue.Value));
    }

    /// <inheritdoc />
    public async Task<TResponse> RequestAsync<TRequest, TResponse>(TRequest request, TimeSpan? timeout = null, CancellationToken cancellationToken = default) where TRequest : notnull
    {
        var info = Info(typeof(TRequest));
        if (info.Kind == MessageKind.Event)
            throw new InvalidOperationException($"'{info.Name}' is an event, and events cannot be requests: an event states a fact to whoever listens, it does not ask one service for an answer (the \"event-driven RPC\" anti-pattern). Register the request as a command or a query (AddCommand/AddQuery).");
        var queue = RouteQueue(typeof(TRequest));
        var wait = timeout ?? Options.DefaultRequestTimeout;
        if (!await Transport.HasLiveConsumerAsync(queue, LivenessWindow, cancellationToken).ConfigureAwait(false))
            throw new NoResponderException($"No responder for '{info.Name}': no consumer is alive on queue '{queue}' (none heartbeated within {LivenessWindow.TotalSeconds:0.#} s). Start a service that handles it, or send it as a command if nobody needs to answer now.");
        EnsureReplyListener();
        using var activity = FactumDiagnostics.ActivitySource.HasListeners() ? FactumDiagnostics.ActivitySource.StartActivity($"{queue} request", ActivityKind.Producer) : null;
        var expires = Now + wait;
        var headers = new Dictionary<string, string>(StringComparer.Ordinal) { [MessageHeaders.ExpiresAt] = expires.ToString("O", CultureInfo.InvariantCulture) };
        var m = Create(request, RouteOf(typeof(TRequest)), null, headers, null, _replyQueue.Value);
        var tcs = new TaskCompletionSource<TransportMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[m.Id] = tcs;
        TransportMessage reply;
        try
        {
            await Transport.SendAsync(queue, [m], null, cancellationToken).ConfigureAwait(false);
            Metrics.Published.Add(1, new("type", m.Type), new("destination", queue.Value));
            reply = await tcs.Task.WaitAsync(wait, Options.TimeProvider, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new RequestTimeoutException($"No reply to '{info.Name}' (message {m.Id}) from queue '{queue}' within {wait.TotalMilliseconds:0} ms.");
        }
        finally
        {
            _pending.TryRemove(m.Id, out _);
        }
        if (reply.Headers.TryGetValue(MessageHeaders.ReplyError, out var error))
            throw new RequestFailedException($"The responder to '{info.Name}' (message {m.Id}) failed: {error}");
        return (TResponse)DecodeReply(reply, typeof(TResponse));
    }

    private TimeSpan LivenessWindow => Options.HeartbeatInterval * 3 + TimeSpan.FromSeconds(1);

    private object DecodeReply(TransportMessage reply, Type type)
    {
        if (Registry.GetInfo(type) is not null)
        {
            var (value, _, problem) = Registry.DecodePayload(reply.Type, reply.SchemaVersion, reply.Body);
            return value ?? throw new RequestFailedException($"The reply could not be read: {problem}.");
        }
        return Registry.Serializer.Deserialize(reply.Body.Span, type) ?? throw new RequestFailedException($"The reply of type '{reply.Type}' was JSON null.");
    }

    internal (TopicName Topic, TransportMessage Message) PreparePublish<T>(T message, PublishOptions? options) where T : notnull
    {
        var route = RouteOf(message.GetType());
        var info = route.Info;
        if (info.Kind != MessageKind.Event)
            throw new InvalidOperationException($"'{info.Name}' is a {info.Kind.ToString().ToLowerInvariant()}, not an event; send commands to one queue with SendAsync (publishing makes every subscriber act on it).");
        var topic = options?.Topic ?? route.Topic;
        return (topic, Create(message, route, options?.PartitionKey, options?.Headers, options?.MessageId, null));
    }

    internal (QueueName Queue, TransportMessage Message) PrepareSend<T>(T command, SendOptions? options) where T : notnull
    {
        var route = RouteOf(command.GetType());
        var info = route.Info;
        if (info.Kind == MessageKind.Event)
            throw new InvalidOperationException($"'{info.Name}' is an event; publish it (PublishAsync) so every interested service hears it. Queues carry commands.");
        var queue = options?.Queue ?? route.Queue;
        return (queue, Create(command, route, options?.PartitionKey, options?.Headers, options?.MessageId, null));
    }

    private EventTypeInfo Info(Type type) => Registry.GetInfo(type)
        ?? throw new InvalidOperationException($"{type.Name} is not a registered message type; register it with AddEventType<{type.Name}>() (events), AddCommand<{type.Name}>() or AddQuery<{type.Name}>().");

    /// <summary>A message type's registration and addresses, resolved once (registrations are made at start-up).</summary>
    private Route RouteOf(Type type)
    {
        if (_routes.TryGetValue(type, out var route)) return route;
        var info = Info(type);
        var custom = _builder.GetRoute(type);
        route = new Route(info, custom?.Topic ?? new TopicName(info.Name), custom?.Queue ?? new QueueName(info.Name), custom?.PartitionKey);
        return _routes[type] = route;
    }

    private sealed record Route(EventTypeInfo Info, TopicName Topic, QueueName Queue, Func<object, string?>? PartitionKey);

    /// <summary>The topic of a message type: its route override, else the registered type name.</summary>
    public TopicName RouteTopic(Type type) => RouteOf(type).Topic;

    /// <summary>The queue of a command or request type: its route override, else the registered type name.</summary>
    public QueueName RouteQueue(Type type) => RouteOf(type).Queue;

    private TransportMessage Create(object message, Route route, string? partitionKey, IReadOnlyDictionary<string, string>? extraHeaders, MessageId? id, string? replyTo)
    {
        var now = Now;
        var messageId = id ?? new MessageId(UuidV7.New(now));
        var context = MessageContext.Current;
        IReadOnlyDictionary<string, string> headers = extraHeaders ?? TransportMessage.EmptyHeaders;
        if (Activity.Current is { } activity)
        {
            var withTrace = new Dictionary<string, string>(headers, StringComparer.Ordinal) { [MessageHeaders.TraceParent] = activity.Id! };
            if (activity.TraceStateString is { } state) withTrace[MessageHeaders.TraceState] = state;
            headers = withTrace;
        }
        return new TransportMessage
        {
            Id = messageId,
            Type = route.Info.Name,
            SchemaVersion = route.Info.Version,
            Timestamp = now,
            CorrelationId = context?.CorrelationId ?? EventContext.CorrelationId ?? messageId.ToString(),
            CausationId = context?.MessageId.ToString() ?? EventContext.CausationId,
            ReplyTo = replyTo,
            PartitionKey = partitionKey ?? route.PartitionKey?.Invoke(message),
            Headers = headers,
            LazyBody = () => Registry.Serializer.Serialize(message, message.GetType()),
            LocalValue = message,
        };
    }

    private TransportMessage CreateReply(object? response, Type responseType, TransportMessage request, string? error)
    {
        var info = Registry.GetInfo(responseType);
        var headers = new Dictionary<string, string>(StringComparer.Ordinal);
        if (error is not null) headers[MessageHeaders.ReplyError] = error;
        if (Activity.Current is { } activity) headers[MessageHeaders.TraceParent] = activity.Id!;
        return new TransportMessage
        {
            Id = MessageId.New(),
            Type = info?.Name ?? responseType.Name,
            SchemaVersion = info?.Version ?? 1,
            Timestamp = Now,
            CorrelationId = request.CorrelationId,
            CausationId = request.Id.ToString(),
            Headers = headers,
            Body = response is null ? "{}"u8.ToArray() : Registry.Serializer.Serialize(response, responseType),
        };
    }

    private void EnsureReplyListener()
    {
        if (_replyListener is not null) return;
        lock (_startGate)
        {
            _stopping ??= new CancellationTokenSource();
            var token = _stopping.Token;
            using (ExecutionContext.SuppressFlow()) _replyListener ??= Task.Run(() => ReplyLoopAsync(token));
        }
    }

    /// <summary>Receives replies that come through the transport (from responders in other processes).</summary>
    private async Task ReplyLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var replies = await Transport.ReceiveAsync(_replyQueue, InstanceId, 256, TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
                if (replies.Count == 0)
                {
                    await Transport.WaitForQueueAsync(_replyQueue, Options.PollInterval, ct).ConfigureAwait(false);
                    continue;
                }
                foreach (var r in replies) CompleteReply(r.Message);
                await Transport.SettleAsync(replies.Select(r => new Settlement { Kind = SettlementKind.Ack, Delivery = r, Source = new MessageSource(MessageSourceKind.Queue, _replyQueue.Value) }).ToList(), ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                FactumLog.ConsumerError(_log, ex, _replyQueue.Value);
                await DelayQuietly(Options.PollInterval, ct).ConfigureAwait(false);
            }
        }
    }

    private void CompleteReply(TransportMessage reply)
    {
        if (reply.CausationId is { } cause && Guid.TryParse(cause, out var id) && _pending.TryGetValue(new MessageId(id), out var tcs)) tcs.TrySetResult(reply);
    }

    private async Task DelayQuietly(TimeSpan delay, CancellationToken ct)
    {
        try
        {
            await Task.Delay(delay, Options.TimeProvider, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <summary>What the bus is running and what the transport holds.</summary>
    public async Task<MessagingStatus> GetStatusAsync(CancellationToken cancellationToken = default)
    {
        var transport = await Transport.GetStatusAsync(cancellationToken).ConfigureAwait(false);
        LastStatus = transport;
        return new MessagingStatus(Transport.Name, InstanceId, transport, _endpoints.Select(e => e.Status()).ToList());
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        LocalReplyQueues.TryRemove(_replyQueue.Value, out _);
        foreach (var p in _pending.Values) p.TrySetCanceled();
    }

    private sealed class EmptyServices : IServiceProvider
    {
        public static readonly EmptyServices Instance = new();

        public object? GetService(Type serviceType) => null;
    }
}

/// <summary>A bus's consumers and its transport's state.</summary>
/// <param name="Transport">The transport's name.</param>
/// <param name="Instance">The bus instance id.</param>
/// <param name="State">Topics, queues, groups, dead letters.</param>
/// <param name="Endpoints">The consumers this bus runs.</param>
public sealed record MessagingStatus(string Transport, string Instance, TransportStatus State, IReadOnlyList<EndpointStatus> Endpoints);

/// <summary>One consumer of a bus.</summary>
/// <param name="Source">What it consumes.</param>
/// <param name="MessageTypes">The types it handles.</param>
/// <param name="Running">Whether it runs.</param>
/// <param name="Handled">Messages handled.</param>
/// <param name="Failed">Handler failures.</param>
/// <param name="DeadLettered">Messages it dead-lettered.</param>
/// <param name="LastError">Its last error, if any.</param>
public sealed record EndpointStatus(string Source, IReadOnlyList<string> MessageTypes, bool Running, long Handled, long Failed, long DeadLettered, string? LastError);
