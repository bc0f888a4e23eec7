using System.Globalization;
using System.Runtime.CompilerServices;

namespace Factum.Messaging;

/// <summary>
/// A transport in process memory, for tests and single-process apps that accept losing messages on a crash. It gives
/// the same guarantees as the durable transports while the process lives (it passes the same conformance suite).
/// </summary>
/// <remarks>
/// Each queue has its own lock, so producers and the consumers of different queues do not contend; topics, groups,
/// holds and dead letters share one lock. Locks are taken in the order global → topic → queue. In process, handlers
/// of the published type receive the published object itself (no deserialization): treat messages as immutable.
/// </remarks>
public sealed class InMemoryTransport : IMessageTransport
{
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, TopicState> _topics = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, QueueState> _queues = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, System.Collections.Concurrent.ConcurrentDictionary<MessageId, DateTimeOffset>> _inbox = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Topic, string Group), GroupState> _groups = [];
    private readonly Dictionary<(string Source, string? Group, string Key), Hold> _holds = [];
    private readonly SortedDictionary<long, DeadLetter> _deadLetters = [];
    private readonly Lock _dataGate = new();
    private Dictionary<string, object?> _data = new(StringComparer.Ordinal);
    private long _nextDeadLetter = 1;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private readonly int _capacity;

    /// <summary>The handlers' key/value table (<see cref="InMemoryMessageSession.Data"/>) as it is now.</summary>
    public IReadOnlyDictionary<string, object?> Data
    {
        get
        {
            lock (_dataGate) return new Dictionary<string, object?>(_data, StringComparer.Ordinal);
        }
    }

    /// <summary>Runs a settlement's enlisted work on a copy of the table that replaces it only if all of it succeeds.</summary>
    private void RunWork(IReadOnlyList<MessageWork> work)
    {
        lock (_dataGate)
        {
            var staged = new Dictionary<string, object?>(_data, StringComparer.Ordinal);
            var session = new InMemoryMessageSession(staged);
            foreach (var w in work) w.RunSynchronously(session);
            _data = staged;
        }
    }

    /// <summary>Creates an empty transport.</summary>
    /// <param name="timeProvider">The clock (tests use a manual one).</param>
    /// <param name="queueCapacity">
    /// Messages a queue holds before <see cref="PublishAsync"/> and <see cref="SendAsync"/> wait for its consumers to
    /// catch up (default 1,024). Memory is the only place these messages live, so a producer faster than its consumers
    /// is slowed down instead of filling the heap. Messages produced by handlers and replays are never held back.
    /// </param>
    public InMemoryTransport(TimeProvider? timeProvider = null, int queueCapacity = 1_024)
    {
        _time = timeProvider ?? TimeProvider.System;
        _capacity = queueCapacity >= 1 ? queueCapacity : throw new ArgumentOutOfRangeException(nameof(queueCapacity), queueCapacity, "The queue capacity is at least 1.");
    }

    /// <inheritdoc />
    public string Name => "in-memory";

    /// <inheritdoc />
    public bool IsDurable => false;

    private DateTimeOffset Now => _time.GetUtcNow();

    private void Changed() => Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <inheritdoc />
    public async Task WaitForChangeAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        try
        {
            await Volatile.Read(ref _changed).Task.WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A timeout is an ordinary wake-up (delayed messages and expired leases become visible with time).
        }
    }

    /// <inheritdoc />
    public async Task WaitForQueueAsync(QueueName queue, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var q = Queue(queue.Value);
        Task wait;
        TimeSpan? due;
        // Checked and armed under the queue's lock, so an enqueue between the consumer's empty receive and this wait
        // is never missed.
        lock (q.Gate)
        {
            var now = Now;
            if (q.Arm(now) is not { } armed) return;
            wait = armed;
            due = q.NextDue(now);
        }
        try
        {
            // Nothing in this process can change the queue without waking the waiter, so only a delayed message or a
            // lease that will expire needs a timer; an idle queue parks on the signal alone (no timer per wait).
            if (due is { } d) await wait.WaitAsync(d < timeout ? d : timeout, _time, cancellationToken).ConfigureAwait(false);
            else await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Delayed messages and expired leases become visible with time.
        }
    }

    /// <inheritdoc />
    public ValueTask DeclareTopicAsync(TopicName topic, TopicOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        lock (_gate)
        {
            if (_topics.TryGetValue(topic.Value, out var existing))
            {
                lock (existing.Gate)
                {
                    if (existing.Options.Partitions != options.Partitions && existing.Options.Partitions > 0)
                        throw new ArgumentException($"Topic '{topic}' has {existing.Options.Partitions} partitions; it cannot be redeclared with {options.Partitions} (keys would move between partitions and lose their order).", nameof(options));
                    existing.SetOptions(options);
                }
            }
            else _topics[topic.Value] = new TopicState(options);
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask SubscribeAsync(TopicName topic, GroupName group, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var t = Topic(topic.Value);
            if (t.Subscriptions.Add(group.Value)) t.SubscriptionQueues = [.. t.SubscriptionQueues, Queue(QueueName.ForGroup(topic, group).Value)];
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask UnsubscribeAsync(TopicName topic, GroupName group, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var name = QueueName.ForGroup(topic, group).Value;
            if (_topics.TryGetValue(topic.Value, out var t) && t.Subscriptions.Remove(group.Value) && _queues.TryGetValue(name, out var q))
                t.SubscriptionQueues = t.SubscriptionQueues.Where(x => x != q).ToArray();
            _queues.TryRemove(name, out _);
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<PublishReceipt> PublishAsync(TopicName topic, IReadOnlyList<TransportMessage> messages, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        cancellationToken.ThrowIfCancellationRequested();
        var receipt = PublishCore(topic.Value, messages, null);
        if (receipt.Offsets.Count > 0) Changed();
        if (_topics.TryGetValue(topic.Value, out var t))
        {
            foreach (var q in t.SubscriptionQueues)
                if (q.Length > _capacity) return WaitForRoomAsync(t.SubscriptionQueues, receipt, cancellationToken);
        }
        return ValueTask.FromResult(receipt);
    }

    private async ValueTask<PublishReceipt> WaitForRoomAsync(QueueState[] queues, PublishReceipt receipt, CancellationToken ct)
    {
        foreach (var q in queues) await q.WaitForRoomAsync(_time, ct).ConfigureAwait(false);
        return receipt;
    }

    private static readonly PublishReceipt[] NoStreamReceipts = Enumerable.Range(0, 16).Select(n => new PublishReceipt(n, [])).ToArray();

    /// <summary>Fans out and appends; <paramref name="now"/> is read only when a stream needs it (the clock is not free).</summary>
    private PublishReceipt PublishCore(string topic, IReadOnlyList<TransportMessage> messages, DateTimeOffset? now)
    {
        if (!_topics.TryGetValue(topic, out var t))
        {
            lock (_gate) t = Topic(topic);
        }
        var queues = t.SubscriptionQueues;
        foreach (var q in queues)
        {
            foreach (var m in messages) q.Enqueue(m);
        }
        if (t.Options.Partitions == 0) return queues.Length < NoStreamReceipts.Length ? NoStreamReceipts[queues.Length] : new PublishReceipt(queues.Length, []);
        var offsets = new PartitionOffset[messages.Count];
        var appendedAt = now ?? Now;
        lock (t.Gate)
        {
            for (var i = 0; i < messages.Count; i++)
            {
                var p = KeyPartitioner.For(messages[i].PartitionKey, t.Options.Partitions);
                offsets[i] = new PartitionOffset(p, t.Logs[p].Append(messages[i], appendedAt));
            }
        }
        return new PublishReceipt(queues.Length, offsets);
    }

    /// <inheritdoc />
    public ValueTask SendAsync(QueueName queue, IReadOnlyList<TransportMessage> messages, DateTimeOffset? deliverAt = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        cancellationToken.ThrowIfCancellationRequested();
        var q = Queue(queue.Value);
        if (deliverAt is { } at)
        {
            var now = Now;
            foreach (var m in messages) q.Enqueue(m, at, now);
        }
        else
        {
            foreach (var m in messages) q.Enqueue(m);
        }
        return q.Length > _capacity ? q.WaitForRoomAsync(_time, cancellationToken) : ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<QueueDelivery>> ReceiveAsync(QueueName queue, string consumer, int max, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        cancellationToken.ThrowIfCancellationRequested();
        // Receiving creates the queue: a consumer polling an empty queue is what makes producers wait for it.
        var q = Queue(queue.Value);
        lock (q.Gate) return ValueTask.FromResult<IReadOnlyList<QueueDelivery>>(q.Receive(queue, max, Now, lease));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<QueueDelivery>> ExtendLeasesAsync(IReadOnlyList<QueueDelivery> deliveries, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(deliveries);
        var held = new List<QueueDelivery>();
        var until = Now + lease;
        foreach (var d in deliveries)
        {
            if (!_queues.TryGetValue(d.Queue.Value, out var q)) continue;
            lock (q.Gate)
            {
                if (q.InFlight.TryGetValue(d.Sequence, out var e) && e.LeaseToken == d.LeaseToken)
                {
                    e.VisibleAt = until;
                    held.Add(d with { LeaseExpires = until });
                }
            }
        }
        return ValueTask.FromResult<IReadOnlyList<QueueDelivery>>(held);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<bool>> SettleAsync(IReadOnlyList<Settlement> settlements, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settlements);
        var results = new bool[settlements.Count];
        Exception? error = null;
        var now = Now;
        var streamChange = false;
        for (var i = 0; i < settlements.Count;)
        {
            // A run of plain queue settlements on one queue (the usual batch of acks) is applied under one acquisition
            // of the queue's lock; their consequences (inbox, outgoing messages) follow after it is released.
            if (IsPlain(settlements[i]) && _queues.TryGetValue(settlements[i].Delivery!.Queue.Value, out var q))
            {
                var end = i + 1;
                while (end < settlements.Count && IsPlain(settlements[end]) && settlements[end].Delivery!.Queue.Value == settlements[i].Delivery!.Queue.Value) end++;
                var followUps = new (TransportMessage Message, bool FollowUp)[end - i];
                lock (q.Gate)
                {
                    for (var k = i; k < end; k++)
                    {
                        var d = settlements[k].Delivery!;
                        if (!q.InFlight.TryGetValue(d.Sequence, out var entry) || entry.LeaseToken != d.LeaseToken) continue;
                        try
                        {
                            followUps[k - i] = (entry.Message, SettleEntry(settlements[k], q, entry, entry.Message, now));
                            results[k] = true;
                        }
                        catch (Exception ex)
                        {
                            // This settlement changed nothing (enlisted work runs first); the others still apply.
                            error ??= ex;
                        }
                    }
                }
                for (var k = i; k < end; k++)
                {
                    if (results[k] && followUps[k - i].FollowUp) FollowUp(settlements[k], q, followUps[k - i].Message, now, ref streamChange, global: false);
                }
                i = end;
                continue;
            }
            try
            {
                results[i] = Settle(settlements[i], now, ref streamChange);
            }
            catch (Exception ex)
            {
                // This settlement changed nothing (enlisted work runs first); the others still apply.
                error ??= ex;
            }
            i++;
        }
        if (streamChange || settlements.Any(x => x.Kind == SettlementKind.DeadLetter)) Changed();
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        return ValueTask.FromResult<IReadOnlyList<bool>>(results);
    }

    /// <summary>A queue settlement that needs only its queue's lock.</summary>
    private static bool IsPlain(Settlement s) => s.Delivery is not null && !NeedsGlobal(s);

    // Dead letters and holds live under the global lock; everything else needs only the queue's.
    private static bool NeedsGlobal(Settlement s) =>
        s.Kind is SettlementKind.DeadLetter or SettlementKind.Defer || (s.Kind == SettlementKind.Ack && s.Delivery is not null && s.Source.Kind != MessageSourceKind.Queue && s.Delivery.Message.PartitionKey is not null);

    private bool Settle(Settlement s, DateTimeOffset now, ref bool streamChange)
    {
        if (NeedsGlobal(s))
        {
            lock (_gate) return SettleQueueOrRecord(s, now, ref streamChange, global: true);
        }
        return SettleQueueOrRecord(s, now, ref streamChange, global: false);
    }

    private bool SettleQueueOrRecord(Settlement s, DateTimeOffset now, ref bool streamChange, bool global)
    {
        QueueState? q = null;
        TransportMessage message;
        if (s.Delivery is { } d)
        {
            if (!_queues.TryGetValue(d.Queue.Value, out q)) return false;
            lock (q.Gate)
            {
                if (!q.InFlight.TryGetValue(d.Sequence, out var entry) || entry.LeaseToken != d.LeaseToken) return false;
                message = entry.Message;
                if (!SettleEntry(s, q, entry, message, now)) return true;
            }
        }
        else
        {
            message = (s.Record ?? throw new ArgumentException("A settlement needs a Delivery or a Record.", nameof(s))).Message;
            if (!SettleEntry(s, null, null, message, now)) return true;
        }
        FollowUp(s, q, message, now, ref streamChange, global);
        return true;
    }

    /// <summary>
    /// An ack's consequences, after the queue's lock is released: taking another queue's lock while holding this one
    /// could deadlock with a consumer of that queue doing the same the other way round.
    /// </summary>
    private void FollowUp(Settlement s, QueueState? q, TransportMessage message, DateTimeOffset now, ref bool streamChange, bool global)
    {
        if (s.Inbox is not null) _inbox.GetOrAdd(s.Inbox, _ => new())[message.Id] = now;
        foreach (var o in s.Outgoing)
        {
            if (o.Topic is { } t) streamChange |= PublishCore(t.Value, [o.Message], now).Offsets.Count > 0;
            else
            {
                var tq = Queue(o.Queue!.Value.Value);
                tq.Enqueue(o.Message, o.DeliverAt ?? now, now);
            }
        }
        if (global && q is not null && message.PartitionKey is { } key)
        {
            lock (q.Gate) ReleaseReplayHold(s.Source, key, q);
        }
    }

    /// <summary>Applies the settlement to the queue entry (under its lock) or the stream record; true when it is an ack whose consequences must follow.</summary>
    private bool SettleEntry(Settlement s, QueueState? q, QueueEntry? entry, TransportMessage message, DateTimeOffset now)
    {
        switch (s.Kind)
        {
            case SettlementKind.Ack:
                // Enlisted work runs first: if it throws, nothing has changed.
                if (s.Enlisted.Count > 0) RunWork(s.Enlisted);
                q?.Remove(entry!);
                return true;
            case SettlementKind.Retry:
                if (q is null) throw new ArgumentException("Only queue deliveries can be retried by the transport; stream records are retried in process.", nameof(s));
                q.Delay(entry!, s.RetryAt ?? now, s.Failure?.FirstFailure ?? now);
                return false;
            case SettlementKind.Release:
                q?.Release(entry!);
                return false;
            case SettlementKind.Defer:
                var target = Queue((s.Record is null ? throw new ArgumentException("Only stream records can be deferred.", nameof(s)) : s.Source.ReplayQueue).Value);
                // Called under the global lock: if the replay it was to follow failed again, follow the new dead letter.
                if (message.PartitionKey is { } deferKey && _holds.TryGetValue((s.Source.Name, s.Source.Group, deferKey), out var deferHold) && deferHold.Blocker is { } b)
                {
                    AddDeadLetter(message, s.Source, new FailureInfo("Held", $"held behind dead letter {b} (same partition key)", null, 0, now, now), now, b);
                    return false;
                }
                target.Enqueue(message, now, now);
                return false;
            case SettlementKind.DeadLetter:
                // Called under the global lock (dead letters and holds), then the queue's.
                q?.Remove(entry!);
                var failure = s.Failure ?? new FailureInfo("Unknown", "dead-lettered without a reason", null, 1, now, now);
                long? behind = null;
                var holdKey = message.PartitionKey is { } k && s.HoldKey ? (s.Source.Name, s.Source.Group, k) : default;
                if (holdKey != default && _holds.TryGetValue(holdKey, out var hold) && hold.Blocker is { } blocker) behind = blocker;
                var id = AddDeadLetter(message, s.Source, failure, now, behind);
                if (holdKey != default && behind is null)
                {
                    _holds[holdKey] = new Hold(id);
                    // Later messages of the key already queued (replays in progress) follow it, in order.
                    if (q is not null)
                    {
                        foreach (var later in q.TakeKey(holdKey.Item3))
                            AddDeadLetter(later.Message, s.Source, failure with { ExceptionType = "Held", Message = $"held behind dead letter {id} (same partition key)", StackTrace = null }, now, id);
                    }
                }
                return false;
            default:
                throw new ArgumentOutOfRangeException(nameof(s), s.Kind, "Unknown settlement kind.");
        }
    }

    private void ReleaseReplayHold(MessageSource source, string key, QueueState q)
    {
        if (source.Kind == MessageSourceKind.Queue) return;
        var hk = (source.Name, source.Group, key);
        if (_holds.TryGetValue(hk, out var h) && h.Blocker is null && !q.HasKey(key)) _holds.Remove(hk);
    }

    private long AddDeadLetter(TransportMessage message, MessageSource source, FailureInfo failure, DateTimeOffset now, long? behind)
    {
        var id = _nextDeadLetter++;
        _deadLetters[id] = new DeadLetter(id, message, source, failure, now, behind);
        return id;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlySet<MessageId>> FilterHandledAsync(string inbox, IReadOnlyList<MessageId> ids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (!_inbox.TryGetValue(inbox, out var handled)) return ValueTask.FromResult<IReadOnlySet<MessageId>>(new HashSet<MessageId>());
        return ValueTask.FromResult<IReadOnlySet<MessageId>>(ids.Where(handled.ContainsKey).ToHashSet());
    }

    /// <inheritdoc />
    public ValueTask<long> PurgeInboxAsync(DateTimeOffset olderThan, CancellationToken cancellationToken = default)
    {
        long n = 0;
        foreach (var inbox in _inbox.Values)
        {
            foreach (var old in inbox.Where(kv => kv.Value < olderThan).Select(kv => kv.Key).ToList())
            {
                if (inbox.TryRemove(old, out _)) n++;
            }
        }
        return ValueTask.FromResult(n);
    }

    /// <inheritdoc />
    public ValueTask HeartbeatConsumerAsync(QueueName queue, string consumer, TimeSpan liveFor, CancellationToken cancellationToken = default)
    {
        var q = Queue(queue.Value);
        var now = Now;
        lock (q.Gate) q.Consumers[consumer] = (now, now + liveFor);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask RemoveConsumerAsync(QueueName queue, string consumer, CancellationToken cancellationToken = default)
    {
        if (_queues.TryGetValue(queue.Value, out var q))
        {
            lock (q.Gate) q.Consumers.Remove(consumer);
        }
        if (queue.Value.StartsWith("$reply.", StringComparison.Ordinal)) _queues.TryRemove(queue.Value, out _);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<bool> HasLiveConsumerAsync(QueueName queue, TimeSpan within, CancellationToken cancellationToken = default)
    {
        if (!_queues.TryGetValue(queue.Value, out var q)) return ValueTask.FromResult(false);
        var since = Now - within;
        lock (q.Gate) return ValueTask.FromResult(q.Consumers.Values.Any(c => c.Seen >= since));
    }

    /// <inheritdoc />
    public ValueTask<GroupAssignment> HeartbeatGroupAsync(TopicName topic, GroupName group, string member, IReadOnlyCollection<int> running, TimeSpan sessionTimeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(running);
        lock (_gate)
        {
            var t = StreamTopic(topic.Value);
            var g = Group(topic.Value, group.Value, t.Options.Partitions);
            var now = Now;
            g.Members[member] = now;
            foreach (var dead in g.Members.Where(kv => kv.Value < now - sessionTimeout).Select(kv => kv.Key).ToList())
            {
                g.Members.Remove(dead);
                for (var p = 0; p < g.Owners.Length; p++) if (g.Owners[p] == dead) g.Owners[p] = null;
            }
            lock (t.Gate)
            {
                var partitions = Enumerable.Range(0, g.Owners.Length).Select(p => new GroupCoordinator.PartitionState(p, g.Owners[p], Math.Max(g.Committed[p], t.Logs[p].Start))).ToList();
                var decision = GroupCoordinator.Assign(member, g.Members.Keys, partitions, running);
                foreach (var p in decision.Take) g.Owners[p] = member;
                foreach (var p in decision.Release) g.Owners[p] = null;
                return ValueTask.FromResult(decision.Assignment);
            }
        }
    }

    /// <inheritdoc />
    public ValueTask LeaveGroupAsync(TopicName topic, GroupName group, string member, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (_groups.TryGetValue((topic.Value, group.Value), out var g))
            {
                g.Members.Remove(member);
                for (var p = 0; p < g.Owners.Length; p++) if (g.Owners[p] == member) g.Owners[p] = null;
            }
        }
        Changed();
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<StreamRecord>> FetchAsync(TopicName topic, GroupName group, int partition, long fromOffset, int max, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var t = StreamTopic(topic.Value);
            if ((uint)partition >= (uint)t.Logs.Length) throw new ArgumentOutOfRangeException(nameof(partition), partition, $"Topic '{topic}' has {t.Logs.Length} partitions.");
            var groupQueue = _queues.GetValueOrDefault(topic.Value + "@" + group.Value);
            var result = new List<StreamRecord>();
            lock (t.Gate)
            {
                var log = t.Logs[partition];
                var from = Math.Max(fromOffset, log.Start);
                for (var o = from; o < log.End && result.Count < max; o++)
                {
                    var r = log.Records[(int)(o - log.Start)];
                    var hold = KeyHold.None;
                    if (r.Message.PartitionKey is { } key && (_holds.Count > 0 || groupQueue is not null))
                    {
                        if (_holds.TryGetValue((topic.Value, group.Value, key), out var h)) hold = h.Blocker is null ? KeyHold.Replaying : KeyHold.DeadLettered;
                        else if (groupQueue is not null)
                        {
                            lock (groupQueue.Gate) hold = groupQueue.HasKey(key) ? KeyHold.Replaying : KeyHold.None;
                        }
                    }
                    result.Add(new StreamRecord(partition, o, r.Message, r.AppendedAt, hold));
                }
            }
            return ValueTask.FromResult<IReadOnlyList<StreamRecord>>(result);
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> CommitOffsetsAsync(TopicName topic, GroupName group, string member, IReadOnlyList<PartitionOffset> offsets, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(offsets);
        var all = true;
        lock (_gate)
        {
            var t = StreamTopic(topic.Value);
            var g = Group(topic.Value, group.Value, t.Options.Partitions);
            foreach (var o in offsets)
            {
                if (g.Owners[o.Partition] != member) { all = false; continue; }
                g.Committed[o.Partition] = Math.Max(g.Committed[o.Partition], o.Offset);
            }
        }
        return ValueTask.FromResult(all);
    }

    /// <inheritdoc />
    public ValueTask ResetGroupAsync(TopicName topic, GroupName group, GroupReset reset, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reset);
        lock (_gate)
        {
            var t = StreamTopic(topic.Value);
            var g = Group(topic.Value, group.Value, t.Options.Partitions);
            var live = g.Members.Where(m => m.Value >= Now - TimeSpan.FromSeconds(30)).Select(m => m.Key).ToList();
            if (live.Count > 0)
                throw new InvalidOperationException($"Group '{group}' on '{topic}' has {live.Count} live member(s) ({string.Join(", ", live)}); stop them before resetting its offsets.");
            lock (t.Gate)
            {
                for (var p = 0; p < g.Committed.Length; p++)
                {
                    var log = t.Logs[p];
                    g.Committed[p] = reset.Kind switch
                    {
                        0 => log.Start,
                        1 => log.End,
                        2 => Math.Clamp(reset.Offset, log.Start, log.End),
                        _ => log.Records.FindIndex(r => r.AppendedAt >= reset.At) is var i and >= 0 ? log.Start + i : log.End,
                    };
                    g.Owners[p] = null;
                }
            }
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<long> ApplyRetentionAsync(CancellationToken cancellationToken = default)
    {
        long removed = 0;
        var now = Now;
        foreach (var t in _topics.Values)
        {
            lock (t.Gate)
            {
                foreach (var log in t.Logs) removed += log.Trim(t.Options, now);
            }
        }
        return ValueTask.FromResult(removed);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<DeadLetter> ListDeadLettersAsync(DeadLetterFilter filter, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        List<DeadLetter> matches;
        lock (_gate) matches = _deadLetters.Values.Where(filter.Matches).Take(filter.Limit ?? int.MaxValue).ToList();
        foreach (var d in matches)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return d;
        }
        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<int> ReplayDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        int n;
        lock (_gate)
        {
            var now = Now;
            var chosen = _deadLetters.Values.Where(filter.Matches).Take(filter.Limit ?? int.MaxValue).ToList();
            var selected = ReplaySelection.Expand(chosen, _deadLetters.Values);
            foreach (var d in selected)
            {
                _deadLetters.Remove(d.Id);
                var q = Queue(d.Source.ReplayQueue.Value);
                q.Enqueue(ReplaySelection.MarkReplayed(d.Message), now, now);
                if (d.HeldBehind is null && d.Message.PartitionKey is { } key && _holds.TryGetValue((d.Source.Name, d.Source.Group, key), out var h) && h.Blocker == d.Id)
                    _holds[(d.Source.Name, d.Source.Group, key)] = new Hold(null);
            }
            n = selected.Count;
        }
        if (n > 0) Changed();
        return ValueTask.FromResult(n);
    }

    /// <inheritdoc />
    public ValueTask<int> DiscardDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        lock (_gate)
        {
            var chosen = _deadLetters.Values.Where(filter.Matches).Take(filter.Limit ?? int.MaxValue).ToList();
            foreach (var d in chosen) _deadLetters.Remove(d.Id);
            foreach (var d in chosen)
            {
                if (d.HeldBehind is not null || d.Message.PartitionKey is not { } key) continue;
                var hk = (d.Source.Name, d.Source.Group, key);
                if (!_holds.TryGetValue(hk, out var h) || h.Blocker != d.Id) continue;
                // The first surviving message held behind the discarded one now holds the key, so the rest keep their
                // order; if the discard took them all, the key is free again.
                var followers = _deadLetters.Values.Where(x => x.HeldBehind == d.Id).ToList();
                if (followers.Count == 0) { _holds.Remove(hk); continue; }
                var head = followers[0];
                _deadLetters[head.Id] = head with { HeldBehind = null };
                foreach (var f in followers.Skip(1)) _deadLetters[f.Id] = f with { HeldBehind = head.Id };
                _holds[hk] = new Hold(head.Id);
            }
            return ValueTask.FromResult(chosen.Count);
        }
    }

    /// <inheritdoc />
    public ValueTask<TransportStatus> GetStatusAsync(CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var now = Now;
            var topics = _topics.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t =>
            {
                lock (t.Value.Gate)
                {
                    return new TopicStatus(t.Key, t.Value.Options, t.Value.Subscriptions.Order(StringComparer.Ordinal).ToList(),
                        t.Value.Logs.Select((l, p) => new PartitionStatus(p, l.Start, l.End)).ToList());
                }
            }).ToList();
            var queues = _queues.OrderBy(q => q.Key, StringComparer.Ordinal).Select(q =>
            {
                lock (q.Value.Gate) return q.Value.Status(q.Key, now);
            }).ToList();
            var groups = _groups.OrderBy(g => g.Key.Topic, StringComparer.Ordinal).ThenBy(g => g.Key.Group, StringComparer.Ordinal).Select(g =>
            {
                var t = _topics[g.Key.Topic];
                lock (t.Gate)
                {
                    var members = g.Value.Members.OrderBy(m => m.Key, StringComparer.Ordinal)
                        .Select(m => new GroupMemberStatus(m.Key, m.Value, Enumerable.Range(0, g.Value.Owners.Length).Where(p => g.Value.Owners[p] == m.Key).ToList())).ToList();
                    var parts = Enumerable.Range(0, g.Value.Owners.Length).Select(p => new GroupPartitionStatus(p, g.Value.Owners[p], Math.Max(g.Value.Committed[p], t.Logs[p].Start), t.Logs[p].End)).ToList();
                    return new GroupStatus(g.Key.Topic, g.Key.Group, members, parts);
                }
            }).ToList();
            var dead = _deadLetters.Values.GroupBy(d => (d.Source.Name, d.Source.Group)).OrderBy(g => g.Key.Name, StringComparer.Ordinal)
                .Select(g => new DeadLetterDepth(g.Key.Name, g.Key.Group, g.Count())).ToList();
            return ValueTask.FromResult(new TransportStatus(topics, queues, groups, dead));
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>Gets or creates a topic; call under the global lock when it may be created.</summary>
    private TopicState Topic(string name) => _topics.GetOrAdd(name, static _ => new TopicState(new TopicOptions()));

    private TopicState StreamTopic(string name) =>
        _topics.TryGetValue(name, out var t) && t.Options.Partitions > 0 ? t : throw new InvalidOperationException($"Topic '{name}' is not a stream; declare it with partitions first.");

    private QueueState Queue(string name) => _queues.GetOrAdd(name, static (_, capacity) => new QueueState { Capacity = capacity }, _capacity);

    private GroupState Group(string topic, string group, int partitions)
    {
        if (!_groups.TryGetValue((topic, group), out var g)) _groups[(topic, group)] = g = new GroupState(partitions);
        return g;
    }

    private sealed record Hold(long? Blocker);

    private sealed class TopicState(TopicOptions options)
    {
        public Lock Gate { get; } = new();

        public TopicOptions Options { get; private set; } = options;

        public HashSet<string> Subscriptions { get; } = new(StringComparer.Ordinal);

        /// <summary>Copy-on-write under the global lock, so publishers read it without locking.</summary>
        public QueueState[] SubscriptionQueues { get; set; } = [];

        public PartitionLog[] Logs { get; private set; } = Enumerable.Range(0, options.Partitions).Select(_ => new PartitionLog()).ToArray();

        public void SetOptions(TopicOptions options)
        {
            if (Logs.Length == 0 && options.Partitions > 0) Logs = Enumerable.Range(0, options.Partitions).Select(_ => new PartitionLog()).ToArray();
            Options = options;
        }
    }
    private sealed class PartitionLog
    {
        public List<(TransportMessage Message, DateTimeOffset AppendedAt)> Records { get; } = [];

        public long Start { get; private set; }

        public long End => Start + Records.Count;

        public long Append(TransportMessage m, DateTimeOffset now)
        {
            Records.Add((m, now));
            return End - 1;
        }

        public long Trim(TopicOptions o, DateTimeOffset now)
        {
            var drop = 0;
            if (o.MaxCount is { } max && Records.Count > max) drop = (int)(Records.Count - max);
            if (o.MaxAge is { } age) while (drop < Records.Count && Records[drop].AppendedAt < now - age) drop++;
            if (o.MaxBytes is { } bytes)
            {
                long total = Records.Skip(drop).Sum(r => (long)r.Message.Body.Length);
                while (drop < Records.Count && total > bytes) total -= Records[drop++].Message.Body.Length;
            }
            Records.RemoveRange(0, drop);
            Start += drop;
            return drop;
        }
    }

    private sealed class GroupState(int partitions)
    {
        public Dictionary<string, DateTimeOffset> Members { get; } = new(StringComparer.Ordinal);

        public string?[] Owners { get; } = new string?[partitions];

        public long[] Committed { get; } = new long[partitions];
    }

    private sealed class QueueEntry(TransportMessage message, DateTimeOffset visibleAt, DateTimeOffset enqueuedAt)
    {
        /// <summary>The position in the queue, given when the entry moves from the incoming buffer into the queue.</summary>
        public long Seq { get; set; }

        public TransportMessage Message { get; } = message;

        // Times are kept as UTC ticks: an entry exists per message and subscriber, so its size matters.
        private long _visibleAt = visibleAt.UtcTicks;
        private readonly long _enqueuedAt = enqueuedAt.UtcTicks;
        private long _firstFailure;

        public DateTimeOffset VisibleAt
        {
            get => new(_visibleAt, TimeSpan.Zero);
            set => _visibleAt = value.UtcTicks;
        }

        public DateTimeOffset EnqueuedAt => new(_enqueuedAt, TimeSpan.Zero);

        public int Attempts { get; set; }

        public string? LeaseToken { get; set; }

        public DateTimeOffset? FirstFailure
        {
            get => _firstFailure == 0 ? null : new DateTimeOffset(_firstFailure, TimeSpan.Zero);
            set => _firstFailure = value?.UtcTicks ?? 0;
        }

        // Links of the ready list (intrusive, so an enqueue allocates one object, not two).
        public QueueEntry? Prev;
        public QueueEntry? Next;
    }

    /// <summary>The ready messages in sequence order: a doubly linked list threaded through the entries.</summary>
    private sealed class ReadyList
    {
        public QueueEntry? First;
        public QueueEntry? Last;
        public int Count;

        public void AddLast(QueueEntry e)
        {
            e.Prev = Last;
            e.Next = null;
            if (Last is null) First = e; else Last.Next = e;
            Last = e;
            Count++;
        }

        public void AddBefore(QueueEntry at, QueueEntry e)
        {
            e.Next = at;
            e.Prev = at.Prev;
            if (at.Prev is null) First = e; else at.Prev.Next = e;
            at.Prev = e;
            Count++;
        }

        public void Remove(QueueEntry e)
        {
            if (e.Prev is null) First = e.Next; else e.Prev.Next = e.Next;
            if (e.Next is null) Last = e.Prev; else e.Next.Prev = e.Prev;
            e.Prev = e.Next = null;
            Count--;
        }

        public IEnumerable<QueueEntry> Items()
        {
            for (var e = First; e is not null; e = e.Next) yield return e;
        }
    }

    private sealed class QueueState
    {
        public object Gate { get; } = new();

        /// <summary>A consumer parked on this queue, woken by the next message that becomes visible.</summary>
        public TaskCompletionSource? Waiter;

        private readonly ReadyList _ready = new();
        private readonly List<QueueEntry> _delayed = [];
        // Per partition key, the sequence numbers of its messages that are in flight or delayed: a ready message of the
        // key waits only behind an older one (oldest first, as in the SQLite transport).
        private readonly Dictionary<string, SortedSet<long>> _blocked = new(StringComparer.Ordinal);

        private bool IsBlocked(string key, long seq) => _blocked.TryGetValue(key, out var set) && set.Min < seq;

        private void Block(QueueEntry e)
        {
            if (e.Message.PartitionKey is not { } k) return;
            if (!_blocked.TryGetValue(k, out var set)) _blocked[k] = set = [];
            set.Add(e.Seq);
        }
        private long _nextSeq = 1;

        public Dictionary<long, QueueEntry> InFlight { get; } = [];

        public Dictionary<string, (DateTimeOffset Seen, DateTimeOffset Until)> Consumers { get; } = new(StringComparer.Ordinal);

        // Producers never take the queue's lock: they append to this buffer, and whoever holds the lock next moves the
        // entries into the queue in arrival order (that is when they get their sequence number).
        private readonly System.Collections.Concurrent.ConcurrentQueue<QueueEntry> _incoming = new();

        private int _length;
        private TaskCompletionSource? _roomWaiter;

        /// <summary>Messages in the queue (incoming, ready, delayed and in flight).</summary>
        public int Length => Volatile.Read(ref _length);

        /// <summary>When a consumer last received from the queue (UTC ticks).</summary>
        public long LastReceiveTicks;

        /// <summary>
        /// Waits until the queue is at most half full. Only a queue that is being consumed holds producers back: when no
        /// consumer has received for a second (none is running), messages just accumulate.
        /// </summary>
        public async ValueTask WaitForRoomAsync(TimeProvider time, CancellationToken ct)
        {
            var capacity = Capacity;
            while (Length > capacity / 2)
            {
                if (time.GetUtcNow().UtcTicks - Volatile.Read(ref LastReceiveTicks) > TimeSpan.TicksPerSecond) return;
                var w = Volatile.Read(ref _roomWaiter);
                if (w is null)
                {
                    w = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    Interlocked.CompareExchange(ref _roomWaiter, w, null);
                    w = Volatile.Read(ref _roomWaiter)!;
                }
                if (Length <= capacity / 2) return;
                try
                {
                    await w.Task.WaitAsync(TimeSpan.FromMilliseconds(100), time, ct).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    // Look again.
                }
            }
        }

        /// <summary>Producers wait when the queue holds more than this.</summary>
        public int Capacity { get; init; } = int.MaxValue;

        private void Removed()
        {
            if (Interlocked.Decrement(ref _length) <= Capacity / 2 && Volatile.Read(ref _roomWaiter) is not null)
                Interlocked.Exchange(ref _roomWaiter, null)?.TrySetResult();
        }

        /// <summary>Adds a message visible at once, stamped with its creation time (no clock read).</summary>
        public void Enqueue(TransportMessage m) => Enqueue(m, DateTimeOffset.MinValue, m.Timestamp);

        /// <summary>Adds a message without taking the lock; wakes a parked consumer.</summary>
        public void Enqueue(TransportMessage m, DateTimeOffset visibleAt, DateTimeOffset now)
        {
            Interlocked.Increment(ref _length);
            _incoming.Enqueue(new QueueEntry(m, visibleAt, now));
            // Dekker with Arm: the consumer publishes its waiter before it checks the buffer, the producer appends to the
            // buffer before it reads the waiter, so one of them always sees the other.
            if (Volatile.Read(ref Waiter) is not null) Wake();
        }

        /// <summary>Moves the incoming buffer into the queue (under the lock).</summary>
        private void Drain()
        {
            while (_incoming.TryDequeue(out var e))
            {
                e.Seq = _nextSeq++;
                if (e.VisibleAt > e.EnqueuedAt) AddDelayed(e);
                else _ready.AddLast(e);
            }
        }

        private void Wake() => Interlocked.Exchange(ref Waiter, null)?.TrySetResult();

        /// <summary>How long until a delayed message or an in-flight lease becomes visible, or null when none will.</summary>
        public TimeSpan? NextDue(DateTimeOffset now)
        {
            DateTimeOffset? next = null;
            foreach (var e in InFlight.Values) if (next is null || e.VisibleAt < next) next = e.VisibleAt;
            foreach (var e in _delayed) if (next is null || e.VisibleAt < next) next = e.VisibleAt;
            return next is { } n ? (n > now ? n - now : TimeSpan.Zero) : null;
        }

        /// <summary>Parks a consumer (under the lock): returns null when a message is visible already.</summary>
        public Task? Arm(DateTimeOffset now)
        {
            var w = Volatile.Read(ref Waiter);
            if (w is null)
            {
                w = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                Interlocked.Exchange(ref Waiter, w);
            }
            Drain();
            return Deliverable() || InFlight.Values.Any(e => e.VisibleAt <= now) || _delayed.Any(e => e.VisibleAt <= now) ? null : w.Task;
        }

        /// <summary>True when a ready message can be leased now (not waiting behind an older message of its key).</summary>
        private bool Deliverable()
        {
            for (var e = _ready.First; e is not null; e = e.Next)
            {
                if (e.Message.PartitionKey is not { } key || !IsBlocked(key, e.Seq)) return true;
            }
            return false;
        }

        private void AddDelayed(QueueEntry e)
        {
            _delayed.Add(e);
            Block(e);
        }

        private void Unblock(QueueEntry e)
        {
            if (e.Message.PartitionKey is not { } k) return;
            var set = _blocked[k];
            set.Remove(e.Seq);
            if (set.Count == 0) _blocked.Remove(k);
        }

        private void InsertReady(QueueEntry e)
        {
            var node = _ready.First;
            while (node is not null && node.Seq < e.Seq) node = node.Next;
            if (node is null) _ready.AddLast(e);
            else _ready.AddBefore(node, e);
            Wake();
        }

        public List<QueueDelivery> Receive(QueueName name, int max, DateTimeOffset now, TimeSpan lease)
        {
            Volatile.Write(ref LastReceiveTicks, now.UtcTicks);
            Drain();
            foreach (var expired in InFlight.Values.Where(e => e.VisibleAt <= now).ToList())
            {
                InFlight.Remove(expired.Seq);
                expired.LeaseToken = null;
                Unblock(expired);
                InsertReady(expired);
            }
            for (var i = _delayed.Count - 1; i >= 0; i--)
            {
                var e = _delayed[i];
                if (e.VisibleAt > now) continue;
                _delayed.RemoveAt(i);
                Unblock(e);
                InsertReady(e);
            }
            var result = new List<QueueDelivery>();
            HashSet<string>? seen = null;
            string? token = null;
            var node = _ready.First;
            while (node is not null && result.Count < max)
            {
                var next = node.Next;
                var e = node;
                var key = e.Message.PartitionKey;
                if (key is null || (!IsBlocked(key, e.Seq) && (seen ??= new(StringComparer.Ordinal)).Add(key)))
                {
                    _ready.Remove(node);
                    e.Attempts++;
                    e.LeaseToken = token ??= Guid.NewGuid().ToString("N");
                    e.VisibleAt = now + lease;
                    InFlight[e.Seq] = e;
                    Block(e);
                    result.Add(new QueueDelivery(name, e.Seq, e.Message, e.Attempts, e.LeaseToken, e.VisibleAt, e.FirstFailure));
                }
                node = next;
            }
            return result;
        }

        /// <summary>The entry leaves the queue for good (acked or dead-lettered).</summary>
        public void Remove(QueueEntry e)
        {
            Detach(e);
            Removed();
        }

        /// <summary>The entry stops being in flight (it stays in the queue: released or delayed).</summary>
        private void Detach(QueueEntry e)
        {
            InFlight.Remove(e.Seq);
            Unblock(e);
        }

        public void Release(QueueEntry e)
        {
            Detach(e);
            e.Attempts--;
            e.LeaseToken = null;
            InsertReady(e);
        }

        public void Delay(QueueEntry e, DateTimeOffset at, DateTimeOffset firstFailure)
        {
            Detach(e);
            e.LeaseToken = null;
            e.VisibleAt = at;
            e.FirstFailure ??= firstFailure;
            AddDelayed(e);
        }

        public bool HasKey(string key)
        {
            Drain();
            return _blocked.ContainsKey(key) || _ready.Items().Any(e => e.Message.PartitionKey == key);
        }

        public List<QueueEntry> TakeKey(string key)
        {
            Drain();
            var taken = new List<QueueEntry>();
            var node = _ready.First;
            while (node is not null)
            {
                var next = node.Next;
                if (node.Message.PartitionKey == key) { taken.Add(node); _ready.Remove(node); Removed(); }
                node = next;
            }
            for (var i = _delayed.Count - 1; i >= 0; i--)
            {
                if (_delayed[i].Message.PartitionKey != key) continue;
                taken.Add(_delayed[i]);
                Removed();
                Unblock(_delayed[i]);
                _delayed.RemoveAt(i);
            }
            return taken.OrderBy(e => e.Seq).ToList();
        }

        public QueueStatus Status(string name, DateTimeOffset now)
        {
            Drain();
            var inflight = InFlight.Values.Count(e => e.VisibleAt > now);
            var ready = _ready.Count + InFlight.Count - inflight + _delayed.Count(e => e.VisibleAt <= now);
            var oldest = _ready.Count > 0 ? _ready.Items().Min(e => e.EnqueuedAt) : (DateTimeOffset?)null;
            return new QueueStatus(name, ready, inflight, _delayed.Count(e => e.VisibleAt > now),
                Consumers.Where(c => c.Value.Until >= now).Select(c => c.Key).Order(StringComparer.Ordinal).ToList(), oldest);
        }
    }
}

/// <summary>Rules shared by transports for which dead letters a replay moves, and how a replayed copy is marked.</summary>
public static class ReplaySelection
{
    /// <summary>
    /// Adds to <paramref name="chosen"/> the dead letters held behind a chosen one (they must follow it, in order) and
    /// drops held ones whose blocker was not chosen (replaying them first would overtake it). Ordered by id.
    /// </summary>
    public static List<DeadLetter> Expand(IReadOnlyCollection<DeadLetter> chosen, IEnumerable<DeadLetter> all)
    {
        ArgumentNullException.ThrowIfNull(chosen);
        var blockers = chosen.Where(d => d.HeldBehind is null).Select(d => d.Id).ToHashSet();
        return chosen.Where(d => d.HeldBehind is null || blockers.Contains(d.HeldBehind.Value))
            .Concat(all.Where(d => d.HeldBehind is { } b && blockers.Contains(b)))
            .DistinctBy(d => d.Id).OrderBy(d => d.Id).ToList();
    }

    /// <summary>The copy that goes back to its destination: same id and body, <see cref="MessageHeaders.Replayed"/> incremented.</summary>
    public static TransportMessage MarkReplayed(TransportMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var headers = new Dictionary<string, string>(message.Headers, StringComparer.Ordinal);
        var n = headers.TryGetValue(MessageHeaders.Replayed, out var v) && int.TryParse(v, CultureInfo.InvariantCulture, out var c) ? c : 0;
        headers[MessageHeaders.Replayed] = (n + 1).ToString(CultureInfo.InvariantCulture);
        return message with { Headers = headers };
    }
}
