namespace Factum.Messaging;

/// <summary>Options of a publish.</summary>
public sealed record PublishOptions
{
    /// <summary>The topic (default: the message type's route).</summary>
    public TopicName? Topic { get; init; }

    /// <summary>The ordering key (default: the route's key selector, if any).</summary>
    public string? PartitionKey { get; init; }

    /// <summary>The message id (default: a new one). Re-publishing with the same id lets inboxes drop the duplicate.</summary>
    public MessageId? MessageId { get; init; }

    /// <summary>Extra headers.</summary>
    public IReadOnlyDictionary<string, string>? Headers { get; init; }
}

/// <summary>Options of a send.</summary>
public sealed record SendOptions
{
    /// <summary>The queue (default: the message type's route).</summary>
    public QueueName? Queue { get; init; }

    /// <summary>Deliver no earlier than this (delayed delivery).</summary>
    public DateTimeOffset? DeliverAt { get; init; }

    /// <summary>The ordering key: queue messages with the same key are handled one at a time, in order.</summary>
    public string? PartitionKey { get; init; }

    /// <summary>The message id (default: a new one).</summary>
    public MessageId? MessageId { get; init; }

    /// <summary>Extra headers.</summary>
    public IReadOnlyDictionary<string, string>? Headers { get; init; }
}

/// <summary>
/// What a handler knows about the message it handles, and how it produces more. Messages it publishes or sends — through
/// this context or through <see cref="IMessageBus"/> while the handler runs — are held back and committed atomically with
/// the message's acknowledgement (a consumer outbox), and inherit its correlation id, with its id as their causation id.
/// </summary>
public sealed class MessageContext
{
    private static readonly AsyncLocal<MessageContext?> Ambient = new();
    private readonly MessageBus _bus;
    private List<OutgoingMessage>? _outgoing;
    private List<MessageWork>? _enlisted;

    private readonly MessageSource _source;
    private DeliveryInfo? _delivery;

    internal MessageContext(MessageBus bus, TransportMessage message, int attempt, MessageSource source, IServiceProvider services)
    {
        _bus = bus;
        Message = message;
        Attempt = attempt;
        _source = source;
        Services = services;
    }

    /// <summary>The context of the handler running on this async flow, if any.</summary>
    public static MessageContext? Current => Ambient.Value;

    internal static MessageContext? Enter(MessageContext? context)
    {
        var previous = Ambient.Value;
        Ambient.Value = context;
        return previous;
    }

    /// <summary>The delivery: the message, its attempt number and where it came from.</summary>
    public DeliveryInfo Delivery => _delivery ??= new DeliveryInfo(Message, Attempt, _source);

    /// <summary>The message envelope.</summary>
    public TransportMessage Message { get; }

    /// <summary>The message id.</summary>
    public MessageId MessageId => Message.Id;

    /// <summary>The business process the message belongs to.</summary>
    public string CorrelationId => Message.CorrelationId;

    /// <summary>What caused the message.</summary>
    public string? CausationId => Message.CausationId;

    /// <summary>This delivery's number (1 for the first).</summary>
    public int Attempt { get; }

    /// <summary>The headers.</summary>
    public IReadOnlyDictionary<string, string> Headers => Message.Headers;

    /// <summary>The handler's scoped services.</summary>
    public IServiceProvider Services { get; }

    internal IReadOnlyList<OutgoingMessage> Outgoing => (IReadOnlyList<OutgoingMessage>?)_outgoing ?? [];

    internal IReadOnlyList<MessageWork> Enlisted => (IReadOnlyList<MessageWork>?)_enlisted ?? [];

    /// <summary>Publishes an event when this message is acknowledged (atomically with it).</summary>
    public Task PublishAsync<T>(T message, PublishOptions? options = null, CancellationToken cancellationToken = default) where T : notnull
    {
        var (topic, m) = _bus.PreparePublish(message, options);
        (_outgoing ??= []).Add(new OutgoingMessage(m, topic, null));
        return Task.CompletedTask;
    }

    /// <summary>Sends a command when this message is acknowledged (atomically with it).</summary>
    public Task SendAsync<T>(T command, SendOptions? options = null, CancellationToken cancellationToken = default) where T : notnull
    {
        var (queue, m) = _bus.PrepareSend(command, options);
        (_outgoing ??= []).Add(new OutgoingMessage(m, null, queue, options?.DeliverAt));
        return Task.CompletedTask;
    }

    /// <summary>
    /// Runs <paramref name="work"/> inside the transaction that records this message as handled — the embedded
    /// transport's settlement (<see cref="EndpointMode.DatabaseQueue"/>) or the message store's commit
    /// (<see cref="EndpointMode.Durable"/>) — on that store's session: the <c>SqliteConnection</c> of the transaction for
    /// SQLite, an <see cref="InMemoryMessageSession"/> in memory (<see cref="object"/> accepts either). The handler's
    /// writes, the inbox record and its outgoing messages commit together: exactly-once effects.
    /// </summary>
    /// <remarks>A store refuses work for a session type it does not have, and the message is retried (then dead-lettered) with that error.</remarks>
    public void Enlist<TSession>(Func<TSession, CancellationToken, ValueTask> work) where TSession : class => (_enlisted ??= []).Add(MessageWork.For(work));

    /// <summary>Enlists work built elsewhere (see <see cref="Enlist{TSession}(Func{TSession, CancellationToken, ValueTask})"/>).</summary>
    public void Enlist(MessageWork work) => (_enlisted ??= []).Add(work ?? throw new ArgumentNullException(nameof(work)));

    /// <summary>Synchronous work (see <see cref="Enlist{TSession}(Func{TSession, CancellationToken, ValueTask})"/>).</summary>
    public void Enlist<TSession>(Action<TSession> work) where TSession : class
    {
        ArgumentNullException.ThrowIfNull(work);
        Enlist<TSession>((session, _) =>
        {
            work(session);
            return ValueTask.CompletedTask;
        });
    }

    internal void Add(OutgoingMessage message) => (_outgoing ??= []).Add(message);
}
