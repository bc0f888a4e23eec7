namespace Factum.Messaging;

/// <summary>
/// The primitives a message transport provides. The <see cref="MessageBus"/> builds the four patterns (pub/sub, queues,
/// request-reply, event streaming), retries, dead-lettering, the inbox and tracing on top of them, so every transport
/// gives the same guarantees; <c>Factum.Conformance</c>'s transport suite is their definition.
/// </summary>
/// <remarks>
/// Every method that changes state returns only when the change is durable (for durable transports). Addresses
/// (topics, queues, groups) spring into existence on first use, except stream topics which are declared with their
/// partition count.
/// </remarks>
public interface IMessageTransport : IAsyncDisposable
{
    /// <summary>A short name for status output (<c>sqlite</c>, <c>in-memory</c>).</summary>
    string Name { get; }

    /// <summary>True when acknowledged messages survive a crash of the process.</summary>
    bool IsDurable { get; }

    /// <summary>Declares a topic; with <see cref="TopicOptions.Partitions"/> ≥ 1 it keeps a partitioned, replayable log.</summary>
    /// <exception cref="ArgumentException">The topic exists with a different partition count (changing it would move keys between partitions).</exception>
    ValueTask DeclareTopicAsync(TopicName topic, TopicOptions options, CancellationToken cancellationToken = default);

    /// <summary>Binds a pub/sub subscription: from now on every message published to <paramref name="topic"/> is copied to the group's queue.</summary>
    ValueTask SubscribeAsync(TopicName topic, GroupName group, CancellationToken cancellationToken = default);

    /// <summary>Removes a pub/sub subscription and its queue.</summary>
    ValueTask UnsubscribeAsync(TopicName topic, GroupName group, CancellationToken cancellationToken = default);

    /// <summary>
    /// Publishes messages to a topic, atomically: a copy goes to every subscription's queue and, for a stream topic, each
    /// message is appended to the partition its key hashes to. Returns when durable.
    /// </summary>
    ValueTask<PublishReceipt> PublishAsync(TopicName topic, IReadOnlyList<TransportMessage> messages, CancellationToken cancellationToken = default);

    /// <summary>Enqueues messages on a queue, atomically, visible at <paramref name="deliverAt"/> (now when null). Returns when durable.</summary>
    ValueTask SendAsync(QueueName queue, IReadOnlyList<TransportMessage> messages, DateTimeOffset? deliverAt = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Leases up to <paramref name="max"/> visible messages of a queue for <paramref name="lease"/>. Messages with a
    /// partition key are leased one at a time per key, oldest first, so a key's messages are handled in order even by
    /// competing consumers. An unsettled lease expires and the message is delivered again with the next attempt number.
    /// </summary>
    ValueTask<IReadOnlyList<QueueDelivery>> ReceiveAsync(QueueName queue, string consumer, int max, TimeSpan lease, CancellationToken cancellationToken = default);

    /// <summary>Extends leases held by a slow handler; returns those still held (a lease that already expired may belong to someone else).</summary>
    ValueTask<IReadOnlyList<QueueDelivery>> ExtendLeasesAsync(IReadOnlyList<QueueDelivery> deliveries, TimeSpan lease, CancellationToken cancellationToken = default);

    /// <summary>
    /// Applies settlements in one atomic unit per settlement: the ack/retry/dead-letter, the inbox record, the messages the
    /// handler produced and the work it enlisted all commit together or not at all. Returns per settlement whether it
    /// took effect (false when a queue lease was lost — the message was or will be redelivered).
    /// </summary>
    ValueTask<IReadOnlyList<bool>> SettleAsync(IReadOnlyList<Settlement> settlements, CancellationToken cancellationToken = default);

    /// <summary>Returns the ids among <paramref name="ids"/> that the inbox of <paramref name="inbox"/> has already recorded.</summary>
    ValueTask<IReadOnlySet<MessageId>> FilterHandledAsync(string inbox, IReadOnlyList<MessageId> ids, CancellationToken cancellationToken = default);

    /// <summary>Deletes inbox records older than <paramref name="olderThan"/>; returns how many.</summary>
    ValueTask<long> PurgeInboxAsync(DateTimeOffset olderThan, CancellationToken cancellationToken = default);

    /// <summary>
    /// Records that <paramref name="consumer"/> is alive on <paramref name="queue"/> for the next <paramref name="liveFor"/>
    /// (requests fail fast when a queue has no live consumer; status lists a consumer only while its last heartbeat
    /// holds, so one killed without a goodbye drops out within <paramref name="liveFor"/>).
    /// </summary>
    ValueTask HeartbeatConsumerAsync(QueueName queue, string consumer, TimeSpan liveFor, CancellationToken cancellationToken = default);

    /// <summary>Removes a consumer's heartbeat (clean shutdown).</summary>
    ValueTask RemoveConsumerAsync(QueueName queue, string consumer, CancellationToken cancellationToken = default);

    /// <summary>True when a consumer heartbeated on <paramref name="queue"/> within <paramref name="within"/>.</summary>
    ValueTask<bool> HasLiveConsumerAsync(QueueName queue, TimeSpan within, CancellationToken cancellationToken = default);

    /// <summary>
    /// Joins or refreshes a stream consumer group's member and rebalances: members that missed <paramref name="sessionTimeout"/>
    /// are removed, partitions are spread evenly over the live members, and this member claims the free partitions given to it.
    /// Partitions it must give up are listed in <see cref="GroupAssignment.Revoke"/>: stop them, then heartbeat again to release them.
    /// </summary>
    ValueTask<GroupAssignment> HeartbeatGroupAsync(TopicName topic, GroupName group, string member, IReadOnlyCollection<int> running, TimeSpan sessionTimeout, CancellationToken cancellationToken = default);

    /// <summary>Leaves a stream group, releasing its partitions at once.</summary>
    ValueTask LeaveGroupAsync(TopicName topic, GroupName group, string member, CancellationToken cancellationToken = default);

    /// <summary>Reads a stream partition from <paramref name="fromOffset"/> (or its first retained offset, if later).</summary>
    ValueTask<IReadOnlyList<StreamRecord>> FetchAsync(TopicName topic, GroupName group, int partition, long fromOffset, int max, CancellationToken cancellationToken = default);

    /// <summary>Commits the next offset to read per partition, only for partitions <paramref name="member"/> still owns (fencing); returns false if any was refused.</summary>
    ValueTask<bool> CommitOffsetsAsync(TopicName topic, GroupName group, string member, IReadOnlyList<PartitionOffset> offsets, CancellationToken cancellationToken = default);

    /// <summary>Moves a group's committed offsets. Allowed only while the group has no live member.</summary>
    /// <exception cref="InvalidOperationException">The group has live members.</exception>
    ValueTask ResetGroupAsync(TopicName topic, GroupName group, GroupReset reset, CancellationToken cancellationToken = default);

    /// <summary>Deletes stream records beyond each topic's retention (age, bytes, count); returns how many.</summary>
    ValueTask<long> ApplyRetentionAsync(CancellationToken cancellationToken = default);

    /// <summary>Dead letters matching <paramref name="filter"/>, oldest first.</summary>
    IAsyncEnumerable<DeadLetter> ListDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default);

    /// <summary>
    /// Sends dead letters matching <paramref name="filter"/> back to where they came from, in their original order, and
    /// removes them from the dead-letter queue in the same transaction (so a replay is never lost or doubled). Replayed
    /// copies carry <see cref="MessageHeaders.Replayed"/>; stream holds on the replayed keys are released.
    /// </summary>
    ValueTask<int> ReplayDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default);

    /// <summary>Deletes dead letters matching <paramref name="filter"/>; returns how many.</summary>
    ValueTask<int> DiscardDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default);

    /// <summary>Topics, queues, groups and dead-letter depth as they are now.</summary>
    ValueTask<TransportStatus> GetStatusAsync(CancellationToken cancellationToken = default);

    /// <summary>Completes when something may have changed (a send, publish or settlement here, or at the latest after <paramref name="timeout"/>).</summary>
    Task WaitForChangeAsync(TimeSpan timeout, CancellationToken cancellationToken = default);

    /// <summary>
    /// Completes when <paramref name="queue"/> may have a visible message, or after <paramref name="timeout"/>. A transport
    /// that can tell queues apart wakes only that queue's consumers; the default waits for any change.
    /// </summary>
    Task WaitForQueueAsync(QueueName queue, TimeSpan timeout, CancellationToken cancellationToken = default) => WaitForChangeAsync(timeout, cancellationToken);
}

/// <summary>Topic settings.</summary>
public sealed record TopicOptions
{
    /// <summary>Partitions of the stream log; 0 (default) keeps no log (pub/sub only).</summary>
    public int Partitions
    {
        get;
        init => field = value is >= 0 and <= 1024 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "Partitions are between 0 and 1024.");
    }

    /// <summary>Delete log records older than this (null: keep).</summary>
    public TimeSpan? MaxAge { get; init; }

    /// <summary>Keep at most this many bytes of bodies per partition (null: no limit).</summary>
    public long? MaxBytes { get; init; }

    /// <summary>Keep at most this many records per partition (null: no limit).</summary>
    public long? MaxCount { get; init; }
}

/// <summary>What a publish did.</summary>
/// <param name="Subscriptions">How many subscription queues received a copy of each message.</param>
/// <param name="Offsets">For a stream topic, where each message was appended (same order as the input); empty otherwise.</param>
public sealed record PublishReceipt(int Subscriptions, IReadOnlyList<PartitionOffset> Offsets);

/// <summary>A position in a stream partition.</summary>
/// <param name="Partition">The partition.</param>
/// <param name="Offset">The offset (for commits: the next offset to read).</param>
public readonly record struct PartitionOffset(int Partition, long Offset);

/// <summary>A leased queue message.</summary>
/// <param name="Queue">The queue.</param>
/// <param name="Sequence">Its position in the queue.</param>
/// <param name="Message">The message.</param>
/// <param name="Attempt">The delivery number (1 for the first).</param>
/// <param name="LeaseToken">Proof of the lease; settlements quote it.</param>
/// <param name="LeaseExpires">When the lease lapses.</param>
/// <param name="FirstFailure">When an earlier attempt first failed, if one did.</param>
public sealed record QueueDelivery(QueueName Queue, long Sequence, TransportMessage Message, int Attempt, string LeaseToken, DateTimeOffset LeaseExpires, DateTimeOffset? FirstFailure);

/// <summary>A record of a stream partition.</summary>
/// <param name="Partition">The partition.</param>
/// <param name="Offset">Its offset.</param>
/// <param name="Message">The message.</param>
/// <param name="AppendedAt">When it was appended.</param>
/// <param name="Hold">Whether the group holds this record's key behind an earlier message that failed.</param>
public sealed record StreamRecord(int Partition, long Offset, TransportMessage Message, DateTimeOffset AppendedAt, KeyHold Hold);

/// <summary>
/// Whether a stream group holds a key. When a keyed stream message is dead-lettered, later messages of its key must not
/// overtake it: they follow it into the dead-letter queue while it is there, and queue up behind it while it is replayed.
/// </summary>
public enum KeyHold
{
    /// <summary>Not held: handle it.</summary>
    None,

    /// <summary>An earlier message of the key is in the dead-letter queue: dead-letter this one behind it (<see cref="SettlementKind.DeadLetter"/> with <see cref="Settlement.HoldKey"/>).</summary>
    DeadLettered,

    /// <summary>Earlier messages of the key are being replayed through the group's queue: queue this one behind them (<see cref="SettlementKind.Defer"/>).</summary>
    Replaying,
}

/// <summary>Partitions a stream group member owns.</summary>
/// <param name="Owned">Partitions to consume, with the group's committed offset of each.</param>
/// <param name="Revoke">Partitions to stop (another member is due to take them).</param>
/// <param name="Members">Live members of the group.</param>
public sealed record GroupAssignment(IReadOnlyList<PartitionOffset> Owned, IReadOnlyList<int> Revoke, int Members);

/// <summary>Where to move a group's offsets.</summary>
public sealed record GroupReset
{
    private GroupReset(int kind, long offset, DateTimeOffset at) { Kind = kind; Offset = offset; At = at; }

    internal int Kind { get; }

    /// <summary>The offset (for <see cref="ToOffset"/>).</summary>
    public long Offset { get; }

    /// <summary>The time (for <see cref="ToTime"/>).</summary>
    public DateTimeOffset At { get; }

    /// <summary>Replay from the first retained record.</summary>
    public static GroupReset ToStart { get; } = new(0, 0, default);

    /// <summary>Skip to the end (only new records).</summary>
    public static GroupReset ToEnd { get; } = new(1, 0, default);

    /// <summary>Every partition to this offset.</summary>
    public static GroupReset ToOffset(long offset) => new(2, offset >= 0 ? offset : throw new ArgumentOutOfRangeException(nameof(offset)), default);

    /// <summary>Each partition to its first record appended at or after <paramref name="at"/>.</summary>
    public static GroupReset ToTime(DateTimeOffset at) => new(3, 0, at);

    /// <inheritdoc />
    public override string ToString() => Kind switch { 0 => "start", 1 => "end", 2 => $"offset {Offset}", _ => $"time {At:O}" };
}

/// <summary>What to do with a delivered message.</summary>
public enum SettlementKind
{
    /// <summary>Handled: remove it (queue) or let the offset move past it (stream).</summary>
    Ack,

    /// <summary>Failed: deliver again at <see cref="Settlement.RetryAt"/> (queues).</summary>
    Retry,

    /// <summary>Failed for good: move it to the dead-letter queue.</summary>
    DeadLetter,

    /// <summary>Give the lease back without counting an attempt (shutdown).</summary>
    Release,

    /// <summary>Stream records only: move the record to the group's queue, behind the replayed messages of its key.</summary>
    Defer,
}

/// <summary>
/// The outcome of handling one delivery, committed atomically with everything the handler produced.
/// Either <see cref="Delivery"/> (queues and subscriptions) or <see cref="Record"/> (streams) is set.
/// </summary>
public sealed record Settlement
{
    /// <summary>What to do.</summary>
    public required SettlementKind Kind { get; init; }

    /// <summary>The queue delivery being settled.</summary>
    public QueueDelivery? Delivery { get; init; }

    /// <summary>The stream record being settled (its offset is committed separately, with <see cref="IMessageTransport.CommitOffsetsAsync"/>).</summary>
    public StreamRecord? Record { get; init; }

    /// <summary>Where the message came from (dead letters keep it).</summary>
    public required MessageSource Source { get; init; }

    /// <summary>For <see cref="SettlementKind.Retry"/>: when to deliver again.</summary>
    public DateTimeOffset? RetryAt { get; init; }

    /// <summary>For <see cref="SettlementKind.DeadLetter"/> and <see cref="SettlementKind.Retry"/>: why.</summary>
    public FailureInfo? Failure { get; init; }

    /// <summary>
    /// For dead letters of keyed messages: hold the key, so later messages of the key follow it into the dead-letter
    /// queue instead of overtaking it (ordered streams).
    /// </summary>
    public bool HoldKey { get; init; }

    /// <summary>The inbox to record the message id in on <see cref="SettlementKind.Ack"/> (null: no inbox).</summary>
    public string? Inbox { get; init; }

    /// <summary>Messages the handler published or sent; committed with the ack, never without it.</summary>
    public IReadOnlyList<OutgoingMessage> Outgoing { get; init; } = [];

    /// <summary>
    /// Work the handler enlisted in the same transaction, on the transport's session: the <c>SqliteConnection</c> of the
    /// transaction for the embedded transport, an <see cref="InMemoryMessageSession"/> in memory.
    /// </summary>
    public IReadOnlyList<MessageWork> Enlisted { get; init; } = [];
}

/// <summary>A message a handler produced, addressed to a topic or a queue.</summary>
/// <param name="Message">The message.</param>
/// <param name="Topic">The topic to publish to, or null.</param>
/// <param name="Queue">The queue to send to, or null.</param>
/// <param name="DeliverAt">For queues: delayed delivery.</param>
public sealed record OutgoingMessage(TransportMessage Message, TopicName? Topic, QueueName? Queue, DateTimeOffset? DeliverAt = null);

/// <summary>Why a message failed.</summary>
/// <param name="ExceptionType">The exception's full type name, or a reason code such as <c>Poison</c> or <c>Held</c>.</param>
/// <param name="Message">The exception message.</param>
/// <param name="StackTrace">The stack trace, if any.</param>
/// <param name="Attempts">Delivery attempts made.</param>
/// <param name="FirstFailure">When it first failed.</param>
/// <param name="LastFailure">When it last failed.</param>
public sealed record FailureInfo(string ExceptionType, string Message, string? StackTrace, int Attempts, DateTimeOffset FirstFailure, DateTimeOffset LastFailure)
{
    /// <summary>Describes <paramref name="exception"/>.</summary>
    public static FailureInfo From(Exception exception, int attempts, DateTimeOffset firstFailure, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return new FailureInfo(exception.GetType().FullName ?? exception.GetType().Name, exception.Message, exception.StackTrace, attempts, firstFailure, now);
    }
}

/// <summary>A message in the dead-letter queue: the original, untouched, plus where it came from and why it failed.</summary>
/// <param name="Id">The dead letter's id in the queue.</param>
/// <param name="Message">The original message.</param>
/// <param name="Source">Where it was consumed from.</param>
/// <param name="Failure">Why it failed.</param>
/// <param name="DeadLetteredAt">When it was moved here.</param>
/// <param name="HeldBehind">For a held stream key: the dead letter this one waits behind.</param>
public sealed record DeadLetter(long Id, TransportMessage Message, MessageSource Source, FailureInfo Failure, DateTimeOffset DeadLetteredAt, long? HeldBehind)
{
    /// <summary>How many times this message was replayed before.</summary>
    public int ReplayCount => Message.Headers.TryGetValue(MessageHeaders.Replayed, out var v) && int.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : 0;
}

/// <summary>Selects dead letters; every set field must match.</summary>
public sealed record DeadLetterFilter
{
    /// <summary>Everything.</summary>
    public static DeadLetterFilter All { get; } = new();

    /// <summary>Only these ids.</summary>
    public IReadOnlyCollection<long>? Ids { get; init; }

    /// <summary>Source queue or topic name.</summary>
    public string? Source { get; init; }

    /// <summary>Consumer group.</summary>
    public string? Group { get; init; }

    /// <summary>Message type.</summary>
    public string? Type { get; init; }

    /// <summary>Exception type (full name, or its simple name).</summary>
    public string? ExceptionType { get; init; }

    /// <summary>Dead-lettered at or after.</summary>
    public DateTimeOffset? From { get; init; }

    /// <summary>Dead-lettered before.</summary>
    public DateTimeOffset? To { get; init; }

    /// <summary>At most this many (oldest first).</summary>
    public int? Limit { get; init; }

    /// <summary>True when <paramref name="d"/> matches (used by in-memory transports and tests).</summary>
    public bool Matches(DeadLetter d)
    {
        ArgumentNullException.ThrowIfNull(d);
        return (Ids is null || Ids.Contains(d.Id))
            && (Source is null || d.Source.Name == Source)
            && (Group is null || d.Source.Group == Group)
            && (Type is null || d.Message.Type == Type)
            && (ExceptionType is null || d.Failure.ExceptionType == ExceptionType || d.Failure.ExceptionType.EndsWith("." + ExceptionType, StringComparison.Ordinal))
            && (From is null || d.DeadLetteredAt >= From)
            && (To is null || d.DeadLetteredAt < To);
    }
}

/// <summary>Everything a transport holds, for the CLI, the server and the metrics.</summary>
/// <param name="Topics">Topics.</param>
/// <param name="Queues">Queues (subscription queues included).</param>
/// <param name="Groups">Stream consumer groups.</param>
/// <param name="DeadLetters">Dead-letter depth per source.</param>
public sealed record TransportStatus(IReadOnlyList<TopicStatus> Topics, IReadOnlyList<QueueStatus> Queues, IReadOnlyList<GroupStatus> Groups, IReadOnlyList<DeadLetterDepth> DeadLetters)
{
    /// <summary>All dead letters.</summary>
    public long DeadLetterTotal => DeadLetters.Sum(d => d.Count);
}

/// <summary>A topic.</summary>
/// <param name="Name">Its name.</param>
/// <param name="Options">Partitions and retention.</param>
/// <param name="Subscriptions">Pub/sub groups bound to it.</param>
/// <param name="Partitions">Per partition: first retained offset, next offset, record count.</param>
public sealed record TopicStatus(string Name, TopicOptions Options, IReadOnlyList<string> Subscriptions, IReadOnlyList<PartitionStatus> Partitions);

/// <summary>A stream partition's extent.</summary>
/// <param name="Partition">The partition.</param>
/// <param name="StartOffset">First retained offset.</param>
/// <param name="EndOffset">Next offset to be written.</param>
public sealed record PartitionStatus(int Partition, long StartOffset, long EndOffset);

/// <summary>A queue.</summary>
/// <param name="Name">Its name.</param>
/// <param name="Ready">Visible and waiting.</param>
/// <param name="InFlight">Leased to a consumer.</param>
/// <param name="Delayed">Scheduled later (delayed delivery or retry backoff).</param>
/// <param name="Consumers">Consumers that heartbeated recently.</param>
/// <param name="OldestReady">When the oldest ready message was enqueued.</param>
public sealed record QueueStatus(string Name, long Ready, long InFlight, long Delayed, IReadOnlyList<string> Consumers, DateTimeOffset? OldestReady);

/// <summary>A stream consumer group.</summary>
/// <param name="Topic">The topic.</param>
/// <param name="Group">The group.</param>
/// <param name="Members">Live members and the partitions each owns.</param>
/// <param name="Partitions">Per partition: owner, committed offset, end offset and lag.</param>
public sealed record GroupStatus(string Topic, string Group, IReadOnlyList<GroupMemberStatus> Members, IReadOnlyList<GroupPartitionStatus> Partitions)
{
    /// <summary>Records not yet processed by the group, summed over partitions.</summary>
    public long Lag => Partitions.Sum(p => p.Lag);
}

/// <summary>A stream group member.</summary>
/// <param name="Member">Its id.</param>
/// <param name="LastSeen">Its last heartbeat.</param>
/// <param name="Partitions">Partitions it owns.</param>
public sealed record GroupMemberStatus(string Member, DateTimeOffset LastSeen, IReadOnlyList<int> Partitions);

/// <summary>A group's position in one partition.</summary>
/// <param name="Partition">The partition.</param>
/// <param name="Owner">The member consuming it, if any.</param>
/// <param name="Committed">Next offset the group will read.</param>
/// <param name="End">Next offset to be written.</param>
public sealed record GroupPartitionStatus(int Partition, string? Owner, long Committed, long End)
{
    /// <summary>Records behind.</summary>
    public long Lag => Math.Max(0, End - Committed);
}

/// <summary>Dead letters from one source.</summary>
/// <param name="Source">Queue or topic.</param>
/// <param name="Group">Group, if any.</param>
/// <param name="Count">How many.</param>
public sealed record DeadLetterDepth(string Source, string? Group, long Count);
