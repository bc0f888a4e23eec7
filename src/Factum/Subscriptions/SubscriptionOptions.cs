namespace Factum.Subscriptions;

/// <summary>Where a subscription without a checkpoint starts.</summary>
public readonly record struct SubscriptionStart
{
    private SubscriptionStart(int kind, long position)
    {
        Kind = kind;
        Position = position;
    }

    private int Kind { get; }

    /// <summary>For <see cref="After"/>: the last position (global position, or stream version) not to deliver.</summary>
    public long Position { get; }

    /// <summary>From the first event.</summary>
    public static SubscriptionStart Beginning => new(0, -1);

    /// <summary>Only events appended after the subscription starts.</summary>
    public static SubscriptionStart End => new(1, -1);

    /// <summary>After a known position: for <c>$all</c> a global position, for a stream a version.</summary>
    public static SubscriptionStart After(long position) => new(2, position);

    /// <summary>True for <see cref="End"/>.</summary>
    public bool IsEnd => Kind == 1;
}

/// <summary>What to do with an event whose handler still fails after every retry.</summary>
public enum FailureAction
{
    /// <summary>Stop the subscription (the default): the status names the failing event and the error; nothing after it is handled.</summary>
    Stop,

    /// <summary>Park the event in the subscription's dead-letter set and go on.</summary>
    Park,
}

/// <summary>Retries of a failing handler: exponential backoff with jitter.</summary>
public sealed record RetryPolicy
{
    /// <summary>Attempts in all, the first included (default 5). 1 means no retry.</summary>
    public int MaxAttempts
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxAttempts is at least 1.");
    } = 5;

    /// <summary>Delay before the first retry (default 100 ms); doubles each time.</summary>
    public TimeSpan InitialDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest delay (default 10 s).</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Random spread of each delay, as a fraction (default 0.2 = ±20%), so that many failing consumers do not retry in step.</summary>
    public double Jitter { get; init; } = 0.2;

    /// <summary>The delay before retry number <paramref name="retry"/> (1-based).</summary>
    public TimeSpan DelayBefore(int retry, Random random) => Backoff.Delay(retry, InitialDelay, MaxDelay, Jitter, random);
}

/// <summary>Options of an <see cref="EventSubscription"/>.</summary>
public sealed record SubscriptionOptions
{
    /// <summary>Creates options for the subscription named <paramref name="id"/> (the key of its checkpoint and dead-letter set).</summary>
    public SubscriptionOptions(string id)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(id);
        Id = id;
    }

    /// <summary>The subscription's name.</summary>
    public string Id { get; }

    /// <summary>One stream to follow (positions are its versions), or null for the global log <c>$all</c> (the default).</summary>
    public StreamId? Stream { get; init; }

    /// <summary>Where to start when there is no checkpoint (default: the beginning).</summary>
    public SubscriptionStart Start { get; init; } = SubscriptionStart.Beginning;

    /// <summary>Which events of <c>$all</c> to deliver (default all). The checkpoint still advances past events that do not match.</summary>
    public EventFilter Filter { get; init; } = EventFilter.None;

    /// <summary>Store the checkpoint after this many handled events (default 100)…</summary>
    public int CheckpointEvery { get; init; } = 100;

    /// <summary>…or after this long (default 1 s), whichever comes first. The checkpoint is also stored on a graceful stop.</summary>
    public TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Events read ahead of the handler (default 1,024): a slow handler slows reading instead of growing memory.</summary>
    public int BufferSize
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "BufferSize is at least 1.");
    } = 1024;

    /// <summary>Events per read (default 512).</summary>
    public int PageSize
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "PageSize is at least 1.");
    } = 512;

    /// <summary>Longest wait for a wake-up while live, bounding how late appends of other processes are seen (default 1 s).</summary>
    public TimeSpan LiveWaitTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Retries of a failing handler.</summary>
    public RetryPolicy Retry { get; init; } = new();

    /// <summary>What to do after the last attempt (default <see cref="FailureAction.Stop"/>).</summary>
    public FailureAction OnFailure { get; init; } = FailureAction.Stop;

    /// <summary>Where retries, parked events and a stop are logged (category <c>Factum.Subscriptions</c>); default none.</summary>
    public Microsoft.Extensions.Logging.ILoggerFactory LoggerFactory { get; init; } = Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;

    /// <summary>Where the lag and state gauges (<c>factum.subscription.*</c>) are reported; default <see cref="FactumMetrics.Default"/>.</summary>
    public FactumMetrics? Metrics { get; init; }
}

/// <summary>The state of a subscription.</summary>
public enum SubscriptionState
{
    /// <summary>Created, not started.</summary>
    NotStarted,

    /// <summary>Reading history.</summary>
    CatchingUp,

    /// <summary>At the head, waiting for new events.</summary>
    Live,

    /// <summary>Stopped on request.</summary>
    Stopped,

    /// <summary>Stopped by a handler failure (see <see cref="SubscriptionStatus.FailingEvent"/>).</summary>
    Faulted,
}

/// <summary>One view of a subscription's progress: the same record the CLI, the server and the metrics read.</summary>
/// <param name="Id">The subscription.</param>
/// <param name="State">Its state.</param>
/// <param name="Checkpoint">The last stored checkpoint, or null.</param>
/// <param name="LastHandled">The last position handled (or skipped by the filter), or null.</param>
/// <param name="Head">The newest position of what it follows.</param>
/// <param name="Lag">Events behind the head (<c>Head - LastHandled</c>; for <c>$all</c> with a filter, positions behind).</param>
/// <param name="Handled">Events handled since start.</param>
/// <param name="Parked">Events parked since start.</param>
/// <param name="EventsPerSecond">Handling rate over the last few seconds.</param>
/// <param name="LastError">The last handler error, or null.</param>
/// <param name="FailingEvent">The event that stopped the subscription, or null.</param>
public sealed record SubscriptionStatus(
    string Id, SubscriptionState State, long? Checkpoint, long? LastHandled, long Head, long Lag, long Handled, long Parked,
    double EventsPerSecond, string? LastError, RecordedEvent? FailingEvent);
