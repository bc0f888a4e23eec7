namespace Factum.Messaging;

/// <summary>
/// A message as every transport carries it: the envelope fields plus the serialized body. Transports store and deliver
/// it untouched; redelivered, retried and replayed copies keep the same <see cref="Id"/>.
/// </summary>
public sealed record TransportMessage
{
    /// <summary>The message id (unique; the inbox deduplicates on it).</summary>
    public required MessageId Id { get; init; }

    /// <summary>The registered message type name, such as <c>OrderPlaced</c> or <c>CapturePayment</c>.</summary>
    public required string Type { get; init; }

    /// <summary>The schema version the body was written with; consumers upcast older versions.</summary>
    public int SchemaVersion { get; init; } = 1;

    /// <summary>When the message was created (UTC).</summary>
    public DateTimeOffset Timestamp { get; init; }

    /// <summary>The business process this message belongs to.</summary>
    public required string CorrelationId { get; init; }

    /// <summary>The id of the message or event that caused this one, if any.</summary>
    public string? CausationId { get; init; }

    /// <summary>Where a reply goes (requests only).</summary>
    public string? ReplyTo { get; init; }

    /// <summary>The ordering key: messages with the same key are delivered in order (default: the aggregate/stream id).</summary>
    public string? PartitionKey { get; init; }

    /// <summary>Free-form headers: W3C <c>traceparent</c>/<c>tracestate</c>, <c>factum-replayed</c>, application headers.</summary>
    public IReadOnlyDictionary<string, string> Headers { get; init; } = EmptyHeaders;

    private readonly ReadOnlyMemory<byte> _body;
    private readonly Func<ReadOnlyMemory<byte>>? _bodyFactory;
    private System.Runtime.CompilerServices.StrongBox<ReadOnlyMemory<byte>>? _serialized;

    /// <summary>The serialized body (JSON by default).</summary>
    public ReadOnlyMemory<byte> Body
    {
        get
        {
            if (_bodyFactory is null) return _body;
            // A message created in this process serializes its body on first use: a durable transport reads it at
            // once, while the in-memory transport usually hands the object itself to handlers and never needs it.
            // The box is published atomically, so concurrent readers never see a torn value.
            var box = Volatile.Read(ref _serialized);
            if (box is null)
            {
                box = new System.Runtime.CompilerServices.StrongBox<ReadOnlyMemory<byte>>(_bodyFactory());
                box = Interlocked.CompareExchange(ref _serialized, box, null) ?? box;
            }
            return box.Value;
        }
        init
        {
            _body = value;
            _bodyFactory = null;
            _serialized = null;
        }
    }

    /// <summary>Sets the body to be serialized on first read (the factory must be repeatable and thread-safe).</summary>
    internal Func<ReadOnlyMemory<byte>>? LazyBody
    {
        init => _bodyFactory = value;
    }

    /// <summary>
    /// The object the body was serialized from, kept only by transports in the same process (the in-memory transport)
    /// so that handlers of the same type skip deserialization. Durable transports never carry it.
    /// </summary>
    internal object? LocalValue { get; init; }

    internal static readonly IReadOnlyDictionary<string, string> EmptyHeaders = new Dictionary<string, string>();
}

/// <summary>Header names Factum sets.</summary>
public static class MessageHeaders
{
    /// <summary>W3C trace context of the producer.</summary>
    public const string TraceParent = "traceparent";

    /// <summary>W3C trace state of the producer.</summary>
    public const string TraceState = "tracestate";

    /// <summary>How many times the message was replayed from the dead-letter queue.</summary>
    public const string Replayed = "factum-replayed";

    /// <summary>When a request stops being worth answering (round-trip ISO 8601); responders skip expired requests.</summary>
    public const string ExpiresAt = "factum-expires-at";

    /// <summary>Set on a reply that carries a failure instead of a response: the responder's exception type and message.</summary>
    public const string ReplyError = "factum-reply-error";

    /// <summary>The store position of an event published by the outbox relay.</summary>
    public const string StorePosition = "factum-position";

    /// <summary>The stream (aggregate) an event published by the outbox relay was appended to.</summary>
    public const string StreamId = "factum-stream";

    /// <summary>
    /// On a retry the message store scheduled (for a transport without native delay): the deliveries already made, so
    /// the attempt count and the retry limit carry over to the new copy.
    /// </summary>
    public const string Attempt = "factum-attempt";

    /// <summary>With <see cref="Attempt"/>: when the first delivery failed (round-trip ISO 8601).</summary>
    public const string FirstFailure = "factum-first-failure";
}

/// <summary>What a delivered message is, as a handler sees it: the envelope plus delivery facts.</summary>
/// <param name="Message">The message.</param>
/// <param name="Attempt">This delivery's number, 1 for the first.</param>
/// <param name="Source">Where it was delivered from.</param>
public sealed record DeliveryInfo(TransportMessage Message, int Attempt, MessageSource Source);

/// <summary>The kinds of place a message is consumed from.</summary>
public enum MessageSourceKind
{
    /// <summary>A point-to-point queue.</summary>
    Queue,

    /// <summary>A pub/sub subscription: the group's queue fed by a topic.</summary>
    Subscription,

    /// <summary>A partition of a stream topic read by a consumer group.</summary>
    Stream,
}

/// <summary>Where a message was consumed from; dead letters keep it so that replay can send the message back.</summary>
/// <param name="Kind">Queue, subscription or stream.</param>
/// <param name="Name">The queue or topic name.</param>
/// <param name="Group">The consumer group (subscriptions and streams).</param>
/// <param name="Partition">The stream partition.</param>
/// <param name="Offset">The offset in the partition.</param>
public sealed record MessageSource(MessageSourceKind Kind, string Name, string? Group = null, int? Partition = null, long? Offset = null)
{
    /// <summary>The queue a message from this source goes back to on replay (streams replay into the group's queue).</summary>
    public QueueName ReplayQueue => Kind == MessageSourceKind.Queue ? QueueName.Parse(Name) : QueueName.ForGroup(new TopicName(Name), new GroupName(Group!));

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        MessageSourceKind.Queue => $"queue {Name}",
        MessageSourceKind.Subscription => $"topic {Name} group {Group}",
        _ => $"stream {Name} group {Group} partition {Partition} offset {Offset}",
    };
}
