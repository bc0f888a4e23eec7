using System.Runtime.CompilerServices;

namespace Factum.Messaging;

/// <summary>
/// A broker in process memory that behaves like a bare AMQP broker: queues and topic fan-out, at-least-once delivery
/// with an ack deadline, redelivery when a consumer goes away, and only the capabilities it is told to have
/// (<see cref="TransportCapabilities.NativeDelay"/>, <see cref="TransportCapabilities.NativeDeadLetter"/>,
/// <see cref="TransportCapabilities.Deduplication"/>). It shares no transaction with any store, so it exercises the
/// <see cref="EndpointMode.Durable"/> and <see cref="EndpointMode.Buffered"/> paths the way a real broker does, in tests
/// and prototypes.
/// </summary>
public sealed class InMemoryBroker : ITransport
{
    private static readonly TimeSpan DeduplicationWindow = TimeSpan.FromMinutes(2);
    private readonly Lock _gate = new();
    private readonly TimeProvider _clock;
    private readonly Dictionary<string, BrokerQueue> _queues = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> _bindings = new(StringComparer.Ordinal);
    private readonly Dictionary<MessageId, DateTimeOffset> _seen = [];
    private readonly List<(QueueName Queue, TransportMessage Message, FailureInfo Failure)> _deadLetters = [];
    private TaskCompletionSource _changed = NewSignal();
    private long _nextSequence;
    private bool _disposed;

    /// <summary>Creates an empty broker.</summary>
    /// <param name="capabilities">What it does natively; only delay, dead-lettering and deduplication can be simulated (default: none of them).</param>
    /// <param name="clock">The clock of ack deadlines and delays (tests use a manual clock).</param>
    /// <exception cref="ArgumentException">A capability it cannot simulate.</exception>
    public InMemoryBroker(TransportCapabilities? capabilities = null, TimeProvider? clock = null)
    {
        Capabilities = capabilities ?? new TransportCapabilities();
        if (Capabilities.OrderedPartitions || Capabilities.Replay || Capabilities.BrokerManagedGroups || Capabilities.SharesStoreTransaction)
            throw new ArgumentException("The in-memory broker simulates only NativeDelay, NativeDeadLetter and Deduplication.", nameof(capabilities));
        _clock = clock ?? TimeProvider.System;
    }

    /// <inheritdoc />
    public string Name => "in-memory-broker";

    /// <inheritdoc />
    public TransportCapabilities Capabilities { get; }

    /// <summary>Messages terminated with the broker's dead-lettering (<see cref="TransportCapabilities.NativeDeadLetter"/>), oldest first.</summary>
    public IReadOnlyList<(QueueName Queue, TransportMessage Message, FailureInfo Failure)> DeadLetters
    {
        get
        {
            lock (_gate) return _deadLetters.ToList();
        }
    }

    /// <inheritdoc />
    public ValueTask DeclareQueueAsync(QueueName queue, CancellationToken cancellationToken = default)
    {
        lock (_gate) Queue(queue.Value);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask DeclareSubscriptionAsync(TopicName topic, GroupName group, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var queue = QueueName.ForGroup(topic, group).Value;
            Queue(queue);
            if (!_bindings.TryGetValue(topic.Value, out var bound)) _bindings[topic.Value] = bound = new HashSet<string>(StringComparer.Ordinal);
            bound.Add(queue);
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask PublishAsync(TopicName topic, IReadOnlyList<TransportMessage> messages, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var now = _clock.GetUtcNow();
            // Like a topic exchange: a message nobody is bound to is dropped, and each binding gets its own copy.
            var bound = _bindings.TryGetValue(topic.Value, out var b) ? b.ToList() : [];
            foreach (var m in messages)
            {
                if (Duplicate(m, now)) continue;
                foreach (var q in bound) Enqueue(Queue(q), m, now);
            }
            Signal();
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask SendAsync(QueueName queue, IReadOnlyList<TransportMessage> messages, DateTimeOffset? deliverAt = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (deliverAt is not null && !Capabilities.NativeDelay)
            throw new NotSupportedException($"The {Name} transport cannot delay a message (no NativeDelay); schedule it in the message store instead.");
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var now = _clock.GetUtcNow();
            var q = Queue(queue.Value);
            foreach (var m in messages)
            {
                if (!Duplicate(m, now)) Enqueue(q, m, deliverAt is { } at && at > now ? at : now);
            }
            Signal();
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<InboundMessage> ConsumeAsync(QueueName queue, ConsumeOptions options, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var mine = new HashSet<Entry>();
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Task changed;
                List<Delivery> taken = [];
                lock (_gate)
                {
                    ObjectDisposedException.ThrowIf(_disposed, this);
                    var now = _clock.GetUtcNow();
                    var q = Queue(queue.Value);
                    mine.RemoveWhere(e => !q.Entries.Contains(e) || e.Holder != mine || e.Deadline <= now);
                    foreach (var e in q.Entries)
                    {
                        if (mine.Count >= options.Prefetch) break;
                        var lapsed = e.Holder is not null && e.Deadline <= now;
                        if (e.VisibleAt > now || (e.Holder is not null && !lapsed)) continue;
                        e.Holder = mine;
                        e.Token++;
                        e.Deliveries++;
                        e.Deadline = now + options.AckTimeout;
                        mine.Add(e);
                        taken.Add(new Delivery(this, queue, e, e.Token, options.AckTimeout));
                    }
                    changed = _changed.Task;
                }
                foreach (var d in taken) yield return d;
                if (taken.Count > 0) continue;
                // Wake on a change, or when the clock moves on (a delay falls due, a deadline lapses).
                await Task.WhenAny(changed, Task.Delay(TimeSpan.FromMilliseconds(50), _clock, cancellationToken)).ConfigureAwait(false);
            }
        }
        finally
        {
            // A consumer that goes away (a closed channel, a dead process) gives its unsettled deliveries back at once.
            lock (_gate)
            {
                foreach (var e in mine.Where(e => e.Holder == mine))
                {
                    e.Holder = null;
                    e.Token++;
                }
                if (mine.Count > 0) Signal();
            }
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _disposed = true;
            Signal();
        }
        return ValueTask.CompletedTask;
    }

    private BrokerQueue Queue(string name)
    {
        if (!_queues.TryGetValue(name, out var q)) _queues[name] = q = new BrokerQueue();
        return q;
    }

    private bool Duplicate(TransportMessage m, DateTimeOffset now)
    {
        if (!Capabilities.Deduplication) return false;
        foreach (var old in _seen.Where(kv => kv.Value < now - DeduplicationWindow).Select(kv => kv.Key).ToList()) _seen.Remove(old);
        return !_seen.TryAdd(m.Id, now);
    }

    private void Enqueue(BrokerQueue q, TransportMessage m, DateTimeOffset visibleAt) =>
        q.Entries.Add(new Entry(++_nextSequence, m) { VisibleAt = visibleAt });

    private void Signal()
    {
        var old = _changed;
        _changed = NewSignal();
        old.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Applies a settlement if the delivery still holds the entry; false when its deadline lapsed or it changed hands.</summary>
    private bool Settle(QueueName queue, Entry e, long token, Action<BrokerQueue, DateTimeOffset> apply)
    {
        lock (_gate)
        {
            var now = _clock.GetUtcNow();
            var q = Queue(queue.Value);
            if (e.Token != token || e.Holder is null || e.Deadline <= now || !q.Entries.Contains(e)) return false;
            apply(q, now);
            Signal();
            return true;
        }
    }

    private sealed class BrokerQueue
    {
        // Sorted by sequence: the order messages were taken in, which is the order they are delivered in.
        public SortedSet<Entry> Entries { get; } = new(Comparer<Entry>.Create((a, b) => a.Sequence.CompareTo(b.Sequence)));
    }

    private sealed class Entry(long sequence, TransportMessage message)
    {
        public long Sequence { get; } = sequence;

        public TransportMessage Message { get; } = message;

        public DateTimeOffset VisibleAt { get; set; }

        public object? Holder { get; set; }

        public long Token { get; set; }

        public int Deliveries { get; set; }

        public DateTimeOffset Deadline { get; set; }
    }

    private sealed class Delivery(InMemoryBroker broker, QueueName queue, Entry entry, long token, TimeSpan ackTimeout)
        : InboundMessage(queue, entry.Message, entry.Deliveries)
    {
        protected override bool SupportsDelayedNack => broker.Capabilities.NativeDelay;

        protected override ValueTask<bool> OnAckAsync(CancellationToken cancellationToken) =>
            ValueTask.FromResult(broker.Settle(Queue, entry, token, (q, _) => q.Entries.Remove(entry)));

        protected override ValueTask<bool> OnNackAsync(TimeSpan delay, CancellationToken cancellationToken) =>
            ValueTask.FromResult(broker.Settle(Queue, entry, token, (_, now) =>
            {
                entry.Holder = null;
                entry.Token++;
                entry.VisibleAt = now + delay;
            }));

        protected override ValueTask<bool> OnTerminateAsync(FailureInfo failure, CancellationToken cancellationToken) =>
            ValueTask.FromResult(broker.Settle(Queue, entry, token, (q, _) =>
            {
                q.Entries.Remove(entry);
                if (broker.Capabilities.NativeDeadLetter) broker._deadLetters.Add((Queue, entry.Message, failure));
            }));

        protected override ValueTask<bool> OnInProgressAsync(CancellationToken cancellationToken) =>
            ValueTask.FromResult(broker.Settle(Queue, entry, token, (_, now) => entry.Deadline = now + ackTimeout));
    }
}
