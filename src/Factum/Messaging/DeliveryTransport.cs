using System.Runtime.CompilerServices;

namespace Factum.Messaging;

/// <summary>
/// What a transport does natively. The bus reads it to choose how it retries, dead-letters and deduplicates: what the
/// broker cannot do, the message store does (<see cref="IMessageStore"/>), so handlers see the same behaviour on every
/// transport. The transport conformance suite runs each capability's tests where it is declared and checks that the
/// transport refuses the operation clearly where it is not.
/// </summary>
public sealed record TransportCapabilities
{
    /// <summary>Holds a message back until a time (<see cref="ITransport.SendAsync"/> with <c>deliverAt</c>, <see cref="InboundMessage.NackAsync"/> with a delay).</summary>
    public bool NativeDelay { get; init; }

    /// <summary><see cref="InboundMessage.TerminateAsync"/> moves the message into a dead-letter queue the broker keeps (else it only stops its redelivery).</summary>
    public bool NativeDeadLetter { get; init; }

    /// <summary>Keeps a partitioned, ordered log per topic (stream topics).</summary>
    public bool OrderedPartitions { get; init; }

    /// <summary>Can deliver a stream's history again from an offset or a time.</summary>
    public bool Replay { get; init; }

    /// <summary>The broker assigns stream partitions to the members of a consumer group itself (else the core's group coordinator does).</summary>
    public bool BrokerManagedGroups { get; init; }

    /// <summary>The transport lives in the message store's database and settles in its transaction (the <i>database queue</i> mode).</summary>
    public bool SharesStoreTransaction { get; init; }

    /// <summary>Drops a message whose id it has seen recently (broker-side deduplication of re-sent messages).</summary>
    public bool Deduplication { get; init; }
}

/// <summary>
/// A transport and nothing more: it declares topology, takes messages durably (a send or publish returns only when the
/// broker has confirmed it) and delivers them at least once, in the order it declares. Inboxes, outboxes, handler
/// writes, dead-letter bookkeeping and scheduled messages belong to the <see cref="IMessageStore"/>; the bus joins the
/// two per endpoint (<see cref="EndpointMode"/>).
/// </summary>
/// <remarks>
/// Brokers (RabbitMQ, NATS JetStream) implement this directly. The embedded transports (<see cref="IMessageTransport"/>:
/// in-memory and SQLite) implement it through <see cref="DatabaseQueueTransport"/>, and additionally keep their
/// one-transaction path (<see cref="EndpointMode.DatabaseQueue"/>).
/// </remarks>
public interface ITransport : IAsyncDisposable
{
    /// <summary>A short name for status output (<c>sqlite</c>, <c>in-memory-broker</c>, <c>amqp</c>).</summary>
    string Name { get; }

    /// <summary>What it does natively.</summary>
    TransportCapabilities Capabilities { get; }

    /// <summary>Declares a queue (idempotent).</summary>
    ValueTask DeclareQueueAsync(QueueName queue, CancellationToken cancellationToken = default);

    /// <summary>
    /// Declares a subscription (idempotent): from now on every message published to <paramref name="topic"/> is copied to
    /// the group's queue, <see cref="QueueName.ForGroup"/>, which is consumed like any queue.
    /// </summary>
    ValueTask DeclareSubscriptionAsync(TopicName topic, GroupName group, CancellationToken cancellationToken = default);

    /// <summary>Publishes to a topic; returns when the broker has confirmed every message (a copy is in every subscription's queue).</summary>
    ValueTask PublishAsync(TopicName topic, IReadOnlyList<TransportMessage> messages, CancellationToken cancellationToken = default);

    /// <summary>Sends to a queue; returns when the broker has confirmed every message.</summary>
    /// <param name="queue">The queue.</param>
    /// <param name="messages">The messages, in order.</param>
    /// <param name="deliverAt">Deliver no earlier than this; needs <see cref="TransportCapabilities.NativeDelay"/>.</param>
    /// <param name="cancellationToken">Cancels the wait; the messages may still have been taken.</param>
    /// <exception cref="NotSupportedException"><paramref name="deliverAt"/> is set and the transport cannot delay (the message store schedules instead).</exception>
    ValueTask SendAsync(QueueName queue, IReadOnlyList<TransportMessage> messages, DateTimeOffset? deliverAt = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Consumes a queue until <paramref name="cancellationToken"/> is cancelled. Each message is delivered to one
    /// consumer at a time; one that is not settled within <see cref="ConsumeOptions.AckTimeout"/> (or whose consumer goes
    /// away) is delivered again, with the next <see cref="InboundMessage.Attempt"/>.
    /// </summary>
    IAsyncEnumerable<InboundMessage> ConsumeAsync(QueueName queue, ConsumeOptions options, CancellationToken cancellationToken = default);
}

/// <summary>How a consumer takes messages.</summary>
public sealed record ConsumeOptions
{
    /// <summary>The consumer's name (for status output and broker consumer tags).</summary>
    public string Consumer { get; init; } = "consumer";

    /// <summary>Unsettled messages held at once (RabbitMQ's prefetch, JetStream's max ack pending; default 16).</summary>
    public int Prefetch
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "Prefetch is at least 1.");
    } = 16;

    /// <summary>How long a delivery may stay unsettled before it is delivered again (default 30 s; <see cref="InboundMessage.InProgressAsync"/> restarts it).</summary>
    public TimeSpan AckTimeout
    {
        get;
        init => field = value > TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "AckTimeout is positive.");
    } = TimeSpan.FromSeconds(30);
}

/// <summary>One delivery of a message. Settle it exactly once: ack, nack, or terminate.</summary>
public abstract class InboundMessage
{
    private int _settled;

    /// <summary>Creates a delivery.</summary>
    protected InboundMessage(QueueName queue, TransportMessage message, int attempt)
    {
        Queue = queue;
        Message = message ?? throw new ArgumentNullException(nameof(message));
        Attempt = attempt >= 1 ? attempt : throw new ArgumentOutOfRangeException(nameof(attempt), attempt, "Attempts count from 1.");
    }

    /// <summary>The queue it came from.</summary>
    public QueueName Queue { get; }

    /// <summary>The message.</summary>
    public TransportMessage Message { get; }

    /// <summary>The broker's delivery count (1 for the first delivery).</summary>
    public int Attempt { get; }

    /// <summary>True once ack, nack or terminate was called.</summary>
    public bool IsSettled => Volatile.Read(ref _settled) == 1;

    /// <summary>Handled: the broker forgets it. Returns false when the delivery had already lapsed (it was or will be delivered again).</summary>
    public ValueTask<bool> AckAsync(CancellationToken cancellationToken = default) => Settle() ? OnAckAsync(cancellationToken) : throw AlreadySettled();

    /// <summary>Not handled: deliver it again after <paramref name="delay"/> (zero: at once). Returns false when the delivery had already lapsed.</summary>
    /// <exception cref="NotSupportedException">A positive delay on a transport without <see cref="TransportCapabilities.NativeDelay"/>.</exception>
    public ValueTask<bool> NackAsync(TimeSpan delay, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        if (delay > TimeSpan.Zero && !SupportsDelayedNack)
            throw new NotSupportedException($"This transport cannot delay a redelivery (no NativeDelay); nack with TimeSpan.Zero, or schedule a copy in the message store. Message {Message.Id} is still unsettled.");
        return Settle() ? OnNackAsync(delay, cancellationToken) : throw AlreadySettled();
    }

    /// <summary>
    /// Failed for good: never deliver it again. With <see cref="TransportCapabilities.NativeDeadLetter"/> the broker keeps
    /// it in its dead-letter queue with <paramref name="failure"/>; otherwise it is gone (the bus stores it first).
    /// </summary>
    public ValueTask<bool> TerminateAsync(FailureInfo failure, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(failure);
        return Settle() ? OnTerminateAsync(failure, cancellationToken) : throw AlreadySettled();
    }

    /// <summary>Still working on it: restart the ack timeout. Returns false when the delivery already lapsed.</summary>
    public ValueTask<bool> InProgressAsync(CancellationToken cancellationToken = default) =>
        IsSettled ? throw AlreadySettled() : OnInProgressAsync(cancellationToken);

    /// <summary>True when <see cref="NackAsync"/> may take a positive delay (the transport has <see cref="TransportCapabilities.NativeDelay"/>).</summary>
    protected virtual bool SupportsDelayedNack => true;

    /// <summary>Acknowledges on the broker.</summary>
    protected abstract ValueTask<bool> OnAckAsync(CancellationToken cancellationToken);

    /// <summary>Negatively acknowledges on the broker.</summary>
    protected abstract ValueTask<bool> OnNackAsync(TimeSpan delay, CancellationToken cancellationToken);

    /// <summary>Terminates on the broker.</summary>
    protected abstract ValueTask<bool> OnTerminateAsync(FailureInfo failure, CancellationToken cancellationToken);

    /// <summary>Extends the ack deadline on the broker.</summary>
    protected abstract ValueTask<bool> OnInProgressAsync(CancellationToken cancellationToken);

    private bool Settle() => Interlocked.Exchange(ref _settled, 1) == 0;

    private InvalidOperationException AlreadySettled() =>
        new($"Message {Message.Id} from '{Queue}' is already settled; ack, nack or terminate a delivery once.");
}

/// <summary>
/// An embedded <see cref="IMessageTransport"/> seen as a plain <see cref="ITransport"/>: consume is a lease loop, ack
/// a settlement, nack a retry at a time, terminate a move to its dead-letter queue, in-progress a lease extension.
/// </summary>
public sealed class DatabaseQueueTransport : ITransport
{
    private readonly IMessageTransport _inner;
    private readonly TimeProvider _clock;
    private readonly bool _owns;

    /// <summary>Wraps <paramref name="inner"/>.</summary>
    /// <param name="inner">The embedded transport.</param>
    /// <param name="clock">Its clock (for retry times); default the system clock.</param>
    /// <param name="ownsInner">Dispose <paramref name="inner"/> with this.</param>
    public DatabaseQueueTransport(IMessageTransport inner, TimeProvider? clock = null, bool ownsInner = false)
    {
        _inner = inner ?? throw new ArgumentNullException(nameof(inner));
        _clock = clock ?? TimeProvider.System;
        _owns = ownsInner;
    }

    /// <summary>The embedded transport.</summary>
    public IMessageTransport Inner => _inner;

    /// <inheritdoc />
    public string Name => _inner.Name;

    /// <inheritdoc />
    public TransportCapabilities Capabilities { get; } = new()
    {
        NativeDelay = true,
        NativeDeadLetter = true,
        OrderedPartitions = true,
        Replay = true,
        SharesStoreTransaction = true,
    };

    /// <inheritdoc />
    public ValueTask DeclareQueueAsync(QueueName queue, CancellationToken cancellationToken = default) => ValueTask.CompletedTask; // Queues exist on first use.

    /// <inheritdoc />
    public ValueTask DeclareSubscriptionAsync(TopicName topic, GroupName group, CancellationToken cancellationToken = default) =>
        _inner.SubscribeAsync(topic, group, cancellationToken);

    /// <inheritdoc />
    public async ValueTask PublishAsync(TopicName topic, IReadOnlyList<TransportMessage> messages, CancellationToken cancellationToken = default) =>
        await _inner.PublishAsync(topic, messages, cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public ValueTask SendAsync(QueueName queue, IReadOnlyList<TransportMessage> messages, DateTimeOffset? deliverAt = null, CancellationToken cancellationToken = default) =>
        _inner.SendAsync(queue, messages, deliverAt, cancellationToken);

    /// <inheritdoc />
    public async IAsyncEnumerable<InboundMessage> ConsumeAsync(QueueName queue, ConsumeOptions options, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        // Prefetch bounds the unsettled deliveries. One that is neither settled nor renewed stops counting when its lease
        // lapses (the transport redelivers it), so a handler that never settles cannot stall the consumer.
        var outstanding = new List<Delivery>();
        var settled = new SemaphoreSlim(0);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var now = _clock.GetUtcNow();
                outstanding.RemoveAll(d => d.IsSettled || d.LeaseExpires <= now);
                var free = options.Prefetch - outstanding.Count;
                if (free == 0)
                {
                    await settled.WaitAsync(TimeSpan.FromMilliseconds(100), cancellationToken).ConfigureAwait(false);
                    continue;
                }
                var batch = await _inner.ReceiveAsync(queue, options.Consumer, free, options.AckTimeout, cancellationToken).ConfigureAwait(false);
                if (batch.Count == 0)
                {
                    await _inner.WaitForQueueAsync(queue, TimeSpan.FromMilliseconds(100), cancellationToken).ConfigureAwait(false);
                    continue;
                }
                foreach (var d in batch)
                {
                    var delivery = new Delivery(this, d, options.AckTimeout, settled);
                    outstanding.Add(delivery);
                    yield return delivery;
                }
            }
        }
        finally
        {
            // A consumer that stops gives back what it holds at once, as a closed broker channel does; a handler still
            // finishing one finds its ack refused (the lease token changed) and the message is delivered again.
            var held = outstanding.Where(d => !d.IsSettled).Select(d => d.Release()).ToList();
            if (held.Count > 0)
            {
                try { await _inner.SettleAsync(held, CancellationToken.None).ConfigureAwait(false); }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // Nothing is lost: the leases lapse on their own and the messages are delivered again.
                }
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_owns) await _inner.DisposeAsync().ConfigureAwait(false);
    }

    private sealed class Delivery(DatabaseQueueTransport owner, QueueDelivery delivery, TimeSpan ackTimeout, SemaphoreSlim settled)
        : InboundMessage(delivery.Queue, delivery.Message, delivery.Attempt)
    {
        private QueueDelivery _delivery = delivery;

        public DateTimeOffset LeaseExpires => Volatile.Read(ref _delivery).LeaseExpires;

        /// <summary>Gives the delivery back for redelivery at once, counted as a delivery (as a broker counts a message its consumer went away with).</summary>
        public Settlement Release()
        {
            var now = owner._clock.GetUtcNow();
            var d = Volatile.Read(ref _delivery);
            return new Settlement
            {
                Kind = SettlementKind.Retry,
                Delivery = d,
                Source = Source,
                RetryAt = now,
                Failure = new FailureInfo("ConsumerStopped", "the consumer stopped before settling it", null, Attempt, d.FirstFailure ?? now, now),
            };
        }

        private MessageSource Source => new(MessageSourceKind.Queue, Queue.Value);

        protected override ValueTask<bool> OnAckAsync(CancellationToken cancellationToken) =>
            SettleAsync(new Settlement { Kind = SettlementKind.Ack, Delivery = _delivery, Source = Source }, cancellationToken);

        protected override ValueTask<bool> OnNackAsync(TimeSpan delay, CancellationToken cancellationToken) =>
            SettleAsync(new Settlement
            {
                Kind = SettlementKind.Retry,
                Delivery = _delivery,
                Source = Source,
                RetryAt = owner._clock.GetUtcNow() + delay,
                Failure = new FailureInfo("Nack", "negatively acknowledged by the consumer", null, Attempt, _delivery.FirstFailure ?? owner._clock.GetUtcNow(), owner._clock.GetUtcNow()),
            }, cancellationToken);

        protected override ValueTask<bool> OnTerminateAsync(FailureInfo failure, CancellationToken cancellationToken) =>
            SettleAsync(new Settlement { Kind = SettlementKind.DeadLetter, Delivery = _delivery, Source = Source, Failure = failure }, cancellationToken);

        protected override async ValueTask<bool> OnInProgressAsync(CancellationToken cancellationToken)
        {
            var held = await owner._inner.ExtendLeasesAsync([_delivery], ackTimeout, cancellationToken).ConfigureAwait(false);
            if (held.Count == 0) return false;
            Volatile.Write(ref _delivery, held[0]);
            return true;
        }

        private async ValueTask<bool> SettleAsync(Settlement settlement, CancellationToken cancellationToken)
        {
            try
            {
                var results = await owner._inner.SettleAsync([settlement], cancellationToken).ConfigureAwait(false);
                return results[0];
            }
            finally
            {
                settled.Release();
            }
        }
    }
}

/// <summary>Turns an embedded transport into a plain <see cref="ITransport"/>.</summary>
public static class TransportExtensions
{
    /// <summary>This transport as a plain transport (see <see cref="DatabaseQueueTransport"/>).</summary>
    public static ITransport AsTransport(this IMessageTransport transport, TimeProvider? clock = null) => new DatabaseQueueTransport(transport, clock);
}
