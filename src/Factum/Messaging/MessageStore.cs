namespace Factum.Messaging;

/// <summary>
/// The durability half of messaging, kept in the application's database: inboxes (which messages a consumer already
/// handled), the outbox (messages to hand to the transport, in order), the dead-letter store and scheduled messages.
/// A consumer in <see cref="EndpointMode.Durable"/> mode commits one <see cref="MessageTransaction"/> per message —
/// the inbox record, the handler's writes and its outgoing messages together — and only then acknowledges the
/// transport; an <see cref="OutboxDispatcher"/> with one owner across processes hands the outbox to the transport.
/// </summary>
/// <remarks><c>Factum.Conformance</c>'s message-store suite is the definition of this contract.</remarks>
public interface IMessageStore
{
    /// <summary>A short name (<c>sqlite</c>, <c>in-memory</c>); also names the dispatcher's lease, <c>outbox:&lt;name&gt;</c>.</summary>
    string Name { get; }

    /// <summary>The ids among <paramref name="ids"/> that <paramref name="inbox"/> has recorded (a hint: the commit decides).</summary>
    ValueTask<IReadOnlySet<MessageId>> FilterHandledAsync(string inbox, IReadOnlyList<MessageId> ids, CancellationToken cancellationToken = default);

    /// <summary>
    /// Commits <paramref name="transaction"/> atomically: its inbox record, its work, its outgoing messages (into the
    /// outbox) and its dead letters all take effect, or none does. Returns <see cref="MessageCommitResult.Duplicate"/>
    /// and changes nothing when the inbox already holds the message (another consumer, or an earlier delivery, handled
    /// it); of two racing commits of one inbox record exactly one is <see cref="MessageCommitResult.Committed"/>.
    /// Returns only when durable.
    /// </summary>
    /// <exception cref="InvalidOperationException">A work item needs a session type this store does not have.</exception>
    ValueTask<MessageCommitResult> CommitAsync(MessageTransaction transaction, CancellationToken cancellationToken = default);

    /// <summary>Up to <paramref name="max"/> outbox entries that are due now, in commit order (oldest first).</summary>
    ValueTask<IReadOnlyList<OutboxEntry>> ReadDueOutboxAsync(int max, CancellationToken cancellationToken = default);

    /// <summary>
    /// Removes dispatched entries. With <paramref name="fence"/>, only while that lease is still held, so a dispatcher
    /// that lost its lease (paused, then overtaken) cannot remove what the new owner is dispatching.
    /// </summary>
    /// <exception cref="Coordination.LeaseLostException">The lease is no longer held; nothing was removed.</exception>
    ValueTask CompleteOutboxAsync(IReadOnlyList<long> ids, Coordination.Lease? fence = null, CancellationToken cancellationToken = default);

    /// <summary>The number of outbox entries (due or scheduled).</summary>
    ValueTask<long> CountOutboxAsync(CancellationToken cancellationToken = default);

    /// <summary>The dead letter that holds <paramref name="key"/> of <paramref name="source"/>, if one does (later messages of the key go behind it).</summary>
    ValueTask<long?> FindHoldAsync(MessageSource source, string key, CancellationToken cancellationToken = default);

    /// <summary>Dead letters matching <paramref name="filter"/>, oldest first.</summary>
    IAsyncEnumerable<DeadLetter> ListDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default);

    /// <summary>
    /// Moves dead letters matching <paramref name="filter"/> into the outbox, addressed to where they came from
    /// (<see cref="MessageSource.ReplayQueue"/>), with the letters held behind them, in their original order, in one transaction: a replay is never lost or
    /// doubled, and replaying the same filter twice at once replays each message once. Copies carry
    /// <see cref="MessageHeaders.Replayed"/> and keep their message id; holds on their keys are released.
    /// </summary>
    ValueTask<int> ReplayDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default);

    /// <summary>Deletes dead letters matching <paramref name="filter"/>; returns how many.</summary>
    ValueTask<int> DiscardDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default);

    /// <summary>Deletes inbox records older than <paramref name="olderThan"/>; returns how many.</summary>
    ValueTask<long> PurgeInboxAsync(DateTimeOffset olderThan, CancellationToken cancellationToken = default);

    /// <summary>Completes when the outbox may have changed in this process, or after <paramref name="timeout"/>.</summary>
    Task WaitForOutboxAsync(TimeSpan timeout, CancellationToken cancellationToken = default);
}

/// <summary>Whether a <see cref="MessageTransaction"/> took effect.</summary>
public enum MessageCommitResult
{
    /// <summary>Everything in it is durable.</summary>
    Committed,

    /// <summary>The inbox already held the message: nothing changed (acknowledge the delivery and move on).</summary>
    Duplicate,
}

/// <summary>A message recorded as handled by a consumer.</summary>
/// <param name="Inbox">The consumer's inbox (its queue name).</param>
/// <param name="MessageId">The message.</param>
public readonly record struct InboxRecord(string Inbox, MessageId MessageId);

/// <summary>A message to keep in the dead-letter store.</summary>
/// <param name="Message">The message, untouched.</param>
/// <param name="Source">Where it was consumed from.</param>
/// <param name="Failure">Why it failed.</param>
/// <param name="HoldKey">Hold its partition key: later messages of the key go behind it (ordered consumers).</param>
public sealed record DeadLetterRecord(TransportMessage Message, MessageSource Source, FailureInfo Failure, bool HoldKey = false);

/// <summary>What one handled message changes, committed as one unit by <see cref="IMessageStore.CommitAsync"/>.</summary>
public sealed record MessageTransaction
{
    /// <summary>Record this message as handled (null: no inbox).</summary>
    public InboxRecord? Inbox { get; init; }

    /// <summary>Messages to hand to the transport once committed (into the outbox; <see cref="OutgoingMessage.DeliverAt"/> schedules them).</summary>
    public IReadOnlyList<OutgoingMessage> Outgoing { get; init; } = [];

    /// <summary>Messages that failed for good. The store keeps one dead letter per message id and source: a second is ignored (a redelivery that failed again).</summary>
    public IReadOnlyList<DeadLetterRecord> DeadLetters { get; init; } = [];

    /// <summary>The handler's own writes, run inside the store's transaction before anything else.</summary>
    public IReadOnlyList<MessageWork> Work { get; init; } = [];
}

/// <summary>A message waiting in the outbox.</summary>
/// <param name="Id">Its position in the outbox (commit order).</param>
/// <param name="Message">The message and where it goes.</param>
/// <param name="EnqueuedAt">When it was committed.</param>
public sealed record OutboxEntry(long Id, OutgoingMessage Message, DateTimeOffset EnqueuedAt);

/// <summary>
/// A handler's write that runs inside a store's transaction, on that store's session type: <c>SqliteConnection</c> for
/// SQLite (inside its open transaction), <see cref="InMemoryMessageSession"/> in memory, the connection type of any
/// other backend. A store refuses work for a session type it does not have, naming both.
/// </summary>
public abstract class MessageWork
{
    private protected MessageWork() { }

    /// <summary>The session type the work needs (<see cref="object"/>: any).</summary>
    public abstract Type SessionType { get; }

    /// <summary>Work on <typeparamref name="TSession"/>.</summary>
    public static MessageWork For<TSession>(Func<TSession, CancellationToken, ValueTask> work) where TSession : class =>
        new Typed<TSession>(work ?? throw new ArgumentNullException(nameof(work)));

    /// <summary>Runs the work on <paramref name="session"/>.</summary>
    /// <exception cref="InvalidOperationException">The session is not a <see cref="SessionType"/>.</exception>
    public abstract ValueTask RunAsync(object session, CancellationToken cancellationToken = default);

    /// <summary>
    /// Runs the work on a store whose API is synchronous (SQLite's writer thread): work on such a session completes
    /// synchronously, and if it did not, this waits for it there.
    /// </summary>
    public void RunSynchronously(object session)
    {
        var pending = RunAsync(session, CancellationToken.None);
        if (pending.IsCompletedSuccessfully) return;
        pending.AsTask().GetAwaiter().GetResult();
    }

    private sealed class Typed<TSession>(Func<TSession, CancellationToken, ValueTask> work) : MessageWork where TSession : class
    {
        public override Type SessionType => typeof(TSession);

        public override ValueTask RunAsync(object session, CancellationToken cancellationToken = default) => session is TSession s
            ? work(s, cancellationToken)
            : throw new InvalidOperationException($"This handler enlisted work on {typeof(TSession).Name}, but the message store's session is {session?.GetType().Name ?? "null"}; enlist work for the store the bus runs on.");
    }
}

/// <summary>
/// The session of <see cref="InMemoryMessageStore"/> (and of the in-memory transport's one-transaction path): a
/// key/value table the handler's writes go to, changed atomically with the inbox record, for tests and prototypes.
/// </summary>
public sealed class InMemoryMessageSession
{
    internal InMemoryMessageSession(Dictionary<string, object?> data) => Data = data;

    /// <summary>The store's table (only ever touched under the store's lock).</summary>
    public IDictionary<string, object?> Data { get; }
}
