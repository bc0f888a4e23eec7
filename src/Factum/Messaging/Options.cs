namespace Factum.Messaging;

/// <summary>Settings of a <see cref="MessageBus"/>.</summary>
public sealed record MessagingOptions
{
    /// <summary>
    /// This service's name: the default consumer group of its event handlers, so every instance of the service shares
    /// the work and every other service gets its own copy (default: the entry assembly's name).
    /// </summary>
    public string ServiceName { get; init; } = SanitizeServiceName(System.Reflection.Assembly.GetEntryAssembly()?.GetName().Name);

    /// <summary>How long a request waits for its reply by default (10 s).</summary>
    public TimeSpan DefaultRequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often consumers tell the transport they are alive (1 s); requests fail fast when nobody is.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A stream group member silent for this long is removed and its partitions are reassigned (10 s).</summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long handled message ids stay in an inbox for deduplication (7 days).</summary>
    public TimeSpan InboxWindow { get; init; } = TimeSpan.FromDays(7);

    /// <summary>The longest an idle consumer waits before looking again (100 ms); bounds how late work from other processes and due delayed messages are noticed.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>How often housekeeping runs: stream retention, inbox expiry, status for metrics (30 s).</summary>
    public TimeSpan MaintenanceInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Hand replies to requesters in this process directly once the responder's ack commits (default true). False sends
    /// every reply through the transport's reply queue, as between processes (tests use it to cover that path).
    /// </summary>
    public bool InProcessReplies { get; init; } = true;

    /// <summary>The time source (tests use a manual clock).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// Where handler failures, retries, dead letters and consumer errors are logged (category <c>Factum.Messaging</c>);
    /// default: the application's <c>ILoggerFactory</c> when the bus comes from dependency injection, else none.
    /// </summary>
    public Microsoft.Extensions.Logging.ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>
    /// Where the bus reports its metrics; default: the container's <see cref="FactumMetrics"/> when the bus comes from
    /// dependency injection (<c>AddFactum</c>), else <see cref="FactumMetrics.Default"/>.
    /// </summary>
    public FactumMetrics? Metrics { get; init; }

    /// <summary>
    /// Where the bus takes the lease <c>gauges:&lt;transport&gt;</c> that makes one process, among all those sharing the
    /// transport, report the backend-wide gauges (queue depth, DLQ depth, consumer lag), so that a sum over processes
    /// counts each queue once. Default: the container's <see cref="Coordination.ILeaseStore"/> under <c>AddFactum</c>
    /// (the store's own), else none: every bus reports. The lease lasts three <see cref="MaintenanceInterval"/>s.
    /// </summary>
    public Coordination.ILeaseStore? Leases { get; init; }

    /// <summary>
    /// The message store of <see cref="EndpointMode.Durable"/> endpoints (their inboxes, the outbox of what their handlers
    /// produce, their dead letters and store-scheduled retries). With one, the bus also runs an
    /// <see cref="OutboxDispatcher"/> (one owner across processes when <see cref="Leases"/> is set). Default: the
    /// container's <see cref="IMessageStore"/> (<c>UseSqlite</c> registers the store's own), else none.
    /// </summary>
    public IMessageStore? MessageStore { get; init; }

    /// <summary>
    /// The transport <see cref="EndpointMode.Durable"/> and <see cref="EndpointMode.Buffered"/> endpoints consume from
    /// and the outbox dispatcher hands messages to. Default: the bus's own transport seen as a plain transport
    /// (<see cref="DatabaseQueueTransport"/>).
    /// </summary>
    public ITransport? DeliveryTransport { get; init; }

    /// <summary>How the outbox dispatcher holds the lease <c>outbox:&lt;store&gt;</c> (default 10 s): a standby dispatcher takes over within about this long after the owner dies.</summary>
    public Coordination.LeaseOptions OutboxLease { get; init; } = new();

    internal static string SanitizeServiceName(string? name)
    {
        if (string.IsNullOrEmpty(name)) return "app";
        var chars = name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '-').ToArray();
        return new string(chars);
    }
}

/// <summary>How a failing message is retried before it is dead-lettered.</summary>
/// <remarks>
/// Each delivery runs the handler up to 1 + <see cref="ImmediateRetries"/> times in process. If it still fails, the
/// message is scheduled again after an exponential backoff with jitter (queues and subscriptions: the transport holds it,
/// so a restart does not lose the schedule; streams wait in process, keeping the key's order), up to
/// <see cref="DelayedRetries"/> times; then it goes to the dead-letter queue. Exceptions listed in
/// <see cref="NonTransient"/> (and <see cref="NonTransientException"/>) skip the retries.
/// </remarks>
public sealed record MessageRetryPolicy
{
    /// <summary>No retries: the first failure dead-letters.</summary>
    public static MessageRetryPolicy None { get; } = new() { ImmediateRetries = 0, DelayedRetries = 0 };

    /// <summary>In-process retries per delivery (default 2).</summary>
    public int ImmediateRetries
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "ImmediateRetries is 0 or more.");
    } = 2;

    /// <summary>Delayed redeliveries (default 3).</summary>
    public int DelayedRetries
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "DelayedRetries is 0 or more.");
    } = 3;

    /// <summary>First delayed retry after this (default 1 s); doubles each time.</summary>
    public TimeSpan InitialDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest backoff (default 5 min).</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Random spread of each delay as a fraction (default 0.2 = ±20%), so failing consumers do not retry in step.</summary>
    public double Jitter { get; init; } = 0.2;

    /// <summary>
    /// Deliveries after which a message is dead-lettered without running the handler (default 10). It catches messages
    /// whose handler crashes the process, which never get to report a failure.
    /// </summary>
    public int MaxDeliveries
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxDeliveries is at least 1.");
    } = 10;

    /// <summary>Exception types (and their subclasses) that go straight to the dead-letter queue.</summary>
    public IReadOnlyList<Type> NonTransient { get; init; } = [];

    /// <summary>The backoff before delayed retry <paramref name="retry"/> (1-based).</summary>
    public TimeSpan DelayBefore(int retry, Random random) => Factum.Subscriptions.Backoff.Delay(retry, InitialDelay, MaxDelay, Jitter, random);

    /// <summary>True when <paramref name="exception"/> should not be retried.</summary>
    public bool IsNonTransient(Exception exception) =>
        exception is NonTransientException || NonTransient.Any(t => t.IsInstanceOfType(exception));
}

/// <summary>Throw (or derive from) this in a handler for failures no retry can fix: the message goes straight to the dead-letter queue.</summary>
public class NonTransientException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NonTransientException() { }

    /// <summary>Creates the exception.</summary>
    public NonTransientException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public NonTransientException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>How one handler registration consumes.</summary>
public sealed class HandlerOptions
{
    /// <summary>The consumer group (events; default: <see cref="MessagingOptions.ServiceName"/>).</summary>
    public string? Group { get; set; }

    /// <summary>Consume an event from its topic's partitioned stream log (consumer group with offsets) instead of a pub/sub subscription.</summary>
    public bool FromStream { get; set; }

    /// <summary>The queue to consume (commands and requests; default: the message type's route).</summary>
    public string? Queue { get; set; }

    /// <summary>Messages handled at once by this process (default 1). Ordering per partition key holds at any value.</summary>
    public int Concurrency
    {
        get;
        set => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "Concurrency is at least 1.");
    } = 1;

    /// <summary>Messages fetched per round trip (default 64).</summary>
    public int BatchSize
    {
        get;
        set => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "BatchSize is at least 1.");
    } = 64;

    /// <summary>How long a queue delivery is leased before it is redelivered to someone else (default 30 s; renewed while the handler runs).</summary>
    public TimeSpan Lease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Retries and dead-lettering.</summary>
    public MessageRetryPolicy Retry { get; set; } = new();

    /// <summary>Skip messages this group already handled (default true).</summary>
    public bool UseInbox { get; set; } = true;

    /// <summary>
    /// Streams: when a keyed message is dead-lettered, later messages of its key follow it into the dead-letter queue
    /// rather than overtake it (default true). Set false to let the key move on.
    /// </summary>
    public bool HoldKeyOnDeadLetter { get; set; } = true;

    /// <summary>How this endpoint joins the transport and the store (default <see cref="EndpointMode.DatabaseQueue"/>); see docs/messaging.md.</summary>
    public EndpointMode Mode { get; set; } = EndpointMode.DatabaseQueue;
}

/// <summary>How an endpoint's deliveries, inbox, handler writes and outgoing messages are committed.</summary>
public enum EndpointMode
{
    /// <summary>
    /// The transport lives in the database (SQLite, in memory): the ack, the inbox record, the handler's enlisted writes
    /// and its outgoing messages commit in one transaction. Exactly-once effects, the embedded default's speed.
    /// </summary>
    DatabaseQueue,

    /// <summary>
    /// Inbox record, handler writes and outgoing messages (into the outbox) commit in the message store, then the
    /// transport is acknowledged; a redelivery after a crash between the two is dropped by the inbox. Exactly-once
    /// effects on any transport; needs <see cref="MessagingOptions.MessageStore"/>.
    /// </summary>
    Durable,

    /// <summary>
    /// The handler runs, its outgoing messages are sent, then the transport is acknowledged; no inbox. At-least-once: a
    /// crash before the ack runs the handler again.
    /// </summary>
    Buffered,
}

/// <summary>Where a message type goes: its topic (events) or its queue (commands, requests).</summary>
/// <param name="Topic">The topic, for events.</param>
/// <param name="Queue">The queue, for commands and requests.</param>
public sealed record MessageRoute(TopicName? Topic, QueueName? Queue);
