using Microsoft.Extensions.Logging;

namespace Factum;

/// <summary>
/// The stable event ids of everything Factum logs, one range per area, so an operator can filter and alert on them
/// (docs/logging.md lists each with its level and fields). Ids are never reused for another meaning.
/// </summary>
public static class FactumLogEvents
{
    /// <summary>A group commit took longer than the store's slow-commit threshold (a slow disk, or another process holds the write lock).</summary>
    public const int SlowCommit = 1001;

    /// <summary>A group commit failed; every append in it was told and nothing of it was written.</summary>
    public const int CommitFailed = 1002;

    /// <summary>An event failed its checksum on read.</summary>
    public const int EventCorrupted = 1003;

    /// <summary>A subscription's handler failed on an event and will retry it.</summary>
    public const int SubscriptionRetry = 2001;

    /// <summary>A subscription parked an event its handler could not handle and went on.</summary>
    public const int SubscriptionEventParked = 2002;

    /// <summary>A subscription stopped on an event its handler could not handle.</summary>
    public const int SubscriptionFaulted = 2003;

    /// <summary>A subscription stopped on an error outside its handler (reading the store, storing its checkpoint).</summary>
    public const int SubscriptionFailed = 2004;

    /// <summary>A projection's batch failed and will be retried.</summary>
    public const int ProjectionRetry = 3001;

    /// <summary>A projection parked an event it could not apply and went on.</summary>
    public const int ProjectionEventParked = 3002;

    /// <summary>A projection stopped on an event it could not apply.</summary>
    public const int ProjectionFaulted = 3003;

    /// <summary>An operator skipped the event a projection stopped on (it was parked).</summary>
    public const int ProjectionEventSkipped = 3004;

    /// <summary>A rebuilt projection version caught up and became the active one.</summary>
    public const int ProjectionPromoted = 3005;

    /// <summary>A runner found its version replaced by a newer one that has caught up, and stopped.</summary>
    public const int ProjectionSuperseded = 3006;

    /// <summary>A message handler threw; the delivery is retried in process.</summary>
    public const int HandlerFailed = 4001;

    /// <summary>A message's delivery failed and it was scheduled for a delayed retry.</summary>
    public const int MessageRetryScheduled = 4002;

    /// <summary>A message went to the dead-letter queue.</summary>
    public const int MessageDeadLettered = 4003;

    /// <summary>A consumer loop hit an error (transport, settlement) and will try again.</summary>
    public const int ConsumerError = 4004;

    /// <summary>Housekeeping (heartbeats, retention, inbox expiry) failed and will try again.</summary>
    public const int MaintenanceFailed = 4005;

    /// <summary>The message bus started its consumers.</summary>
    public const int BusStarted = 4006;

    /// <summary>The message bus stopped.</summary>
    public const int BusStopped = 4007;

    /// <summary>A group commit's answer was lost (the connection broke after COMMIT was sent) and its outcome was looked up by event id.</summary>
    public const int CommitOutcomeRechecked = 1004;

    /// <summary>The outbox relay is behind the store's head by more than its threshold.</summary>
    public const int RelayBehind = 5001;

    /// <summary>The outbox relay failed to publish and will retry from its checkpoint.</summary>
    public const int RelayFailed = 5002;

    /// <summary>The message store's outbox dispatcher failed to hand messages to the transport and will try again.</summary>
    public const int OutboxDispatchFailed = 5003;

    /// <summary>A buffered consumer dropped a message that failed for good: neither the transport nor a message store keeps dead letters.</summary>
    public const int MessageDropped = 4008;

    /// <summary>This process took a job's lease and runs the job (one owner across processes).</summary>
    public const int LeaseAcquired = 6001;

    /// <summary>This process lost a job's lease (another took over, or it could not renew in time) and stopped the job.</summary>
    public const int LeaseLost = 6002;

    /// <summary>Another process owns a job's lease: this one stands by to take over.</summary>
    public const int LeaseStandingBy = 6003;

    /// <summary>Acquiring, renewing or releasing a lease failed; it is tried again.</summary>
    public const int LeaseError = 6004;
}

/// <summary>The source-generated log messages (allocation-free when a level is off).</summary>
internal static partial class FactumLog
{
    internal const string StoreCategory = "Factum.Store";
    internal const string SubscriptionsCategory = "Factum.Subscriptions";
    internal const string ProjectionsCategory = "Factum.Projections";
    internal const string MessagingCategory = "Factum.Messaging";
    internal const string OutboxCategory = "Factum.Outbox";
    internal const string CoordinationCategory = "Factum.Coordination";

    [LoggerMessage(FactumLogEvents.SlowCommit, LogLevel.Warning,
        "A group commit of {Writes} writes ({Events} events) took {ElapsedMs} ms in {Store}: the disk is slow or another process holds the write lock")]
    internal static partial void SlowCommit(ILogger logger, string store, int writes, int events, long elapsedMs);

    [LoggerMessage(FactumLogEvents.CommitFailed, LogLevel.Error, "A group commit of {Writes} writes failed in {Store}; each caller got the error and nothing of it was written")]
    internal static partial void CommitFailed(ILogger logger, Exception exception, string store, int writes);

    [LoggerMessage(FactumLogEvents.EventCorrupted, LogLevel.Error, "The event at position {Position} in {Store} failed its checksum: {Problem}")]
    internal static partial void EventCorrupted(ILogger logger, string store, long position, string problem);

    [LoggerMessage(FactumLogEvents.SubscriptionRetry, LogLevel.Information,
        "Subscription {Subscription} failed on {EventType} at position {Position} (attempt {Attempt} of {MaxAttempts}); retrying")]
    internal static partial void SubscriptionRetry(ILogger logger, Exception exception, string subscription, string eventType, long position, int attempt, int maxAttempts);

    [LoggerMessage(FactumLogEvents.SubscriptionEventParked, LogLevel.Warning,
        "Subscription {Subscription} parked {EventType} {EventId} at position {Position} in {Stream} after {Attempts} attempts: {Error}")]
    internal static partial void SubscriptionEventParked(ILogger logger, string subscription, string eventType, string eventId, long position, string stream, int attempts, string error);

    [LoggerMessage(FactumLogEvents.SubscriptionFaulted, LogLevel.Error,
        "Subscription {Subscription} stopped on {EventType} {EventId} at position {Position} in {Stream} after {Attempts} attempts")]
    internal static partial void SubscriptionFaulted(ILogger logger, Exception exception, string subscription, string eventType, string eventId, long position, string stream, int attempts);

    [LoggerMessage(FactumLogEvents.SubscriptionFailed, LogLevel.Error, "Subscription {Subscription} stopped at position {Position}")]
    internal static partial void SubscriptionFailed(ILogger logger, Exception exception, string subscription, long position);

    [LoggerMessage(FactumLogEvents.ProjectionRetry, LogLevel.Information,
        "Projection {Projection} v{Version} failed on a batch (attempt {Attempt} of {MaxAttempts}): {Error}; retrying")]
    internal static partial void ProjectionRetry(ILogger logger, string projection, int version, int attempt, int maxAttempts, string error);

    [LoggerMessage(FactumLogEvents.ProjectionEventParked, LogLevel.Warning,
        "Projection {Projection} v{Version} parked {EventType} {EventId} at position {Position} in {Stream} and went on: {Error}")]
    internal static partial void ProjectionEventParked(ILogger logger, string projection, int version, string eventType, string eventId, long position, string stream, string error);

    [LoggerMessage(FactumLogEvents.ProjectionFaulted, LogLevel.Error,
        "Projection {Projection} v{Version} stopped on {EventType} {EventId} at position {Position} in {Stream}; fix the projection and restart it, or park the event and go on with: factum projections skip {Projection}")]
    internal static partial void ProjectionFaulted(ILogger logger, Exception exception, string projection, int version, string eventType, string eventId, long position, string stream);

    [LoggerMessage(FactumLogEvents.ProjectionEventSkipped, LogLevel.Warning,
        "Projection {Projection} v{Version}: the event at position {Position} it stopped on was parked and skipped")]
    internal static partial void ProjectionEventSkipped(ILogger logger, string projection, int version, long position);

    [LoggerMessage(FactumLogEvents.ProjectionPromoted, LogLevel.Information, "Projection {Projection} v{Version} caught up at position {Position} and is now the active version")]
    internal static partial void ProjectionPromoted(ILogger logger, string projection, int version, long position);

    [LoggerMessage(FactumLogEvents.ProjectionSuperseded, LogLevel.Information, "Projection {Projection} v{Version} was replaced by a newer version; its runner stopped")]
    internal static partial void ProjectionSuperseded(ILogger logger, string projection, int version);

    [LoggerMessage(FactumLogEvents.HandlerFailed, LogLevel.Debug,
        "The handler of {MessageType} {MessageId} on {Source} failed (delivery {Attempt}, run {Run}); correlation {CorrelationId}")]
    internal static partial void HandlerFailed(ILogger logger, Exception exception, string messageType, string messageId, string source, int attempt, int run, string? correlationId);

    [LoggerMessage(FactumLogEvents.MessageRetryScheduled, LogLevel.Information,
        "{MessageType} {MessageId} on {Source} failed delivery {Attempt} ({Error}); retrying at {RetryAt:O}; correlation {CorrelationId}")]
    internal static partial void MessageRetryScheduled(ILogger logger, string messageType, string messageId, string source, int attempt, string error, DateTimeOffset retryAt, string? correlationId);

    [LoggerMessage(FactumLogEvents.MessageDeadLettered, LogLevel.Warning,
        "{MessageType} {MessageId} on {Source} was dead-lettered after {Attempt} deliveries: {ErrorType}: {Error}; correlation {CorrelationId}; factum dlq list shows it")]
    internal static partial void MessageDeadLettered(ILogger logger, string messageType, string messageId, string source, int attempt, string errorType, string error, string? correlationId);

    [LoggerMessage(FactumLogEvents.ConsumerError, LogLevel.Error, "The consumer of {Source} hit an error and will try again")]
    internal static partial void ConsumerError(ILogger logger, Exception exception, string source);

    [LoggerMessage(FactumLogEvents.MaintenanceFailed, LogLevel.Warning, "Message bus housekeeping failed and will run again")]
    internal static partial void MaintenanceFailed(ILogger logger, Exception exception);

    [LoggerMessage(FactumLogEvents.BusStarted, LogLevel.Information, "Message bus {Instance} started {Endpoints} consumers on {Transport}")]
    internal static partial void BusStarted(ILogger logger, string instance, int endpoints, string transport);

    [LoggerMessage(FactumLogEvents.BusStopped, LogLevel.Information, "Message bus {Instance} stopped")]
    internal static partial void BusStopped(ILogger logger, string instance);

    [LoggerMessage(FactumLogEvents.RelayBehind, LogLevel.Warning, "Outbox relay {Relay} is {Lag} events behind the head (position {Position} of {Head})")]
    internal static partial void RelayBehind(ILogger logger, string relay, long lag, long position, long head);

    [LoggerMessage(FactumLogEvents.RelayFailed, LogLevel.Warning, "Outbox relay {Relay} failed to publish from position {Position}; it retries from its checkpoint")]
    internal static partial void RelayFailed(ILogger logger, Exception exception, string relay, long position);

    [LoggerMessage(FactumLogEvents.CommitOutcomeRechecked, LogLevel.Warning,
        "The answer to a group commit of {Writes} writes in {Store} was lost (the connection broke after COMMIT); looked up by event id, it had committed: {Committed} (committed: the callers get their results; not: the writes run again)")]
    internal static partial void CommitOutcomeRechecked(ILogger logger, string store, int writes, bool committed);

    [LoggerMessage(FactumLogEvents.OutboxDispatchFailed, LogLevel.Warning, "The outbox of {Store} failed to hand entry {EntryId} and those after it to {Transport}; it tries again, in order")]
    internal static partial void OutboxDispatchFailed(ILogger logger, Exception exception, string store, long entryId, string transport);

    [LoggerMessage(FactumLogEvents.MessageDropped, LogLevel.Error,
        "Message {MessageType} {MessageId} from {Source} failed for good ({ErrorType}: {Error}) and was dropped: the transport keeps no dead letters and the buffered endpoint has no message store (correlation {CorrelationId})")]
    internal static partial void MessageDropped(ILogger logger, string messageType, string messageId, string source, string errorType, string error, string correlationId);

    [LoggerMessage(FactumLogEvents.LeaseAcquired, LogLevel.Information, "Lease {Lease} acquired by {Owner} (fencing token {Token}): this process runs the job")]
    internal static partial void LeaseAcquired(ILogger logger, string lease, string owner, long token);

    [LoggerMessage(FactumLogEvents.LeaseLost, LogLevel.Warning, "Lease {Lease} lost by {Owner} (fencing token {Token}): the job stopped and this process stands by")]
    internal static partial void LeaseLost(ILogger logger, string lease, string owner, long token);

    [LoggerMessage(FactumLogEvents.LeaseStandingBy, LogLevel.Information, "Lease {Lease} is held by another process: {Owner} stands by to take over")]
    internal static partial void LeaseStandingBy(ILogger logger, string lease, string owner);

    [LoggerMessage(FactumLogEvents.LeaseError, LogLevel.Warning, "Lease {Lease}: acquiring, renewing or releasing failed for {Owner}; trying again")]
    internal static partial void LeaseError(ILogger logger, Exception exception, string lease, string owner);
}
