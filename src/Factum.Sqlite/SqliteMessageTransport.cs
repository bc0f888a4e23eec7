using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Factum.Messaging;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

/// <summary>
/// The embedded, durable message transport: topics, stream logs, queues with leases, consumer groups, the inbox and the
/// dead-letter queue live in the store's own SQLite file, and every change goes through the store's single writer, so
/// it shares the group commit (one fsync for many sends, leases and acks) and a handler's enlisted writes commit
/// atomically with its ack.
/// </summary>
/// <remarks>
/// Several processes may use the same file: leases, offsets and group membership are rows updated in write
/// transactions. Work done by other processes is noticed within the bus's poll interval.
/// </remarks>
public sealed partial class SqliteMessageTransport : IMessageTransport
{
    private static readonly string MsgCols = SqliteSchema.MessageColumnNames;
    private const string MsgParams = SqliteMessageRows.MessageParams;
    private static readonly TimeSpan MemberLivenessForReset = TimeSpan.FromSeconds(30);
    private readonly SqliteEventStore _store;
    private readonly bool _ownsStore;
    private readonly ConcurrentDictionary<string, int> _streamPartitions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _idle = new(StringComparer.Ordinal);
    private readonly WriterCommands _commands = new();

    // Queues this instance has registered in msg_queues (writer thread only), to skip the insert on every send.
    private readonly ConcurrentDictionary<string, byte> _knownQueues = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _knownTopics = new(StringComparer.Ordinal);

    // Names registered by the write in progress (writer thread only); they join the caches above only once that write
    // has committed, so a rolled-back insert is never remembered as done.
    private readonly List<string> _pendingQueues = [];
    private readonly List<string> _pendingTopics = [];

    /// <summary>Uses <paramref name="store"/>'s file and writer.</summary>
    /// <param name="store">The store.</param>
    /// <param name="ownsStore">Dispose the store with the transport.</param>
    public SqliteMessageTransport(SqliteEventStore store, bool ownsStore = false)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _ownsStore = ownsStore;
    }

    /// <summary>Opens (or creates) the store file at <paramref name="path"/> and uses it; the transport owns it.</summary>
    public static SqliteMessageTransport Open(string path) => new(new SqliteEventStore(path), ownsStore: true);

    /// <summary>The store this transport writes to.</summary>
    public SqliteEventStore Store => _store;

    /// <inheritdoc />
    public string Name => "sqlite";

    /// <inheritdoc />
    public bool IsDurable => true;

    private long NowTicks => _store.Options.TimeProvider.GetUtcNow().UtcTicks;

    private static DateTimeOffset FromTicks(long ticks) => new(ticks, TimeSpan.Zero);

    private async Task<T> Write<T>(Func<SqliteConnection, T> work, CancellationToken ct)
    {
        var (result, queues, topics) = ((T, string[], string[]))(await _store.ExecuteInWriterAsync(c =>
        {
            // The writer may run this again alone if its group failed: start from a clean slate each time.
            _pendingQueues.Clear();
            _pendingTopics.Clear();
            var r = work(c);
            return (r, _pendingQueues.ToArray(), _pendingTopics.ToArray());
        }, ct).ConfigureAwait(false))!;
        foreach (var q in queues) _knownQueues[q] = 0;
        foreach (var t in topics) _knownTopics[t] = 0;
        return result;
    }

    private SqliteCommand Cmd(SqliteConnection c, string sql) => _commands.Get(c, sql);

    private static SqliteCommand P(SqliteCommand cmd, string name, object? value) => WriterCommands.P(cmd, name, value);

    /// <inheritdoc />
    public Task WaitForChangeAsync(TimeSpan timeout, CancellationToken cancellationToken = default) => _store.WaitForCommitAsync(timeout, cancellationToken);

    /// <inheritdoc />
    public async ValueTask DeclareTopicAsync(TopicName topic, TopicOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        await Write(c =>
        {
            var existing = Cmd(c, "SELECT partitions FROM msg_topics WHERE topic = $t");
            P(existing, "$t", topic.Value);
            var partitions = existing.ExecuteScalar() as long?;
            if (partitions is > 0 && partitions != options.Partitions)
                throw new ArgumentException($"Topic '{topic}' has {partitions} partitions; it cannot be redeclared with {options.Partitions} (keys would move between partitions and lose their order).", nameof(options));
            var up = Cmd(c, """
                INSERT INTO msg_topics(topic, partitions, max_age_ms, max_bytes, max_count) VALUES ($t, $p, $age, $bytes, $count)
                ON CONFLICT(topic) DO UPDATE SET partitions = excluded.partitions, max_age_ms = excluded.max_age_ms, max_bytes = excluded.max_bytes, max_count = excluded.max_count
                """);
            P(up, "$t", topic.Value);
            P(up, "$p", options.Partitions);
            P(up, "$age", options.MaxAge is { } a ? (long)a.TotalMilliseconds : null);
            P(up, "$bytes", options.MaxBytes);
            P(up, "$count", options.MaxCount);
            up.ExecuteNonQuery();
            for (var p = 0; p < options.Partitions; p++)
            {
                var part = Cmd(c, "INSERT OR IGNORE INTO msg_partitions(topic, partition) VALUES ($t, $p)");
                P(part, "$t", topic.Value);
                P(part, "$p", p);
                part.ExecuteNonQuery();
            }
            return 0;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask SubscribeAsync(TopicName topic, GroupName group, CancellationToken cancellationToken = default)
    {
        await Write(c =>
        {
            P(Cmd(c, "INSERT OR IGNORE INTO msg_topics(topic) VALUES ($t)"), "$t", topic.Value).ExecuteNonQuery();
            var sub = Cmd(c, "INSERT OR IGNORE INTO msg_subscriptions(topic, grp) VALUES ($t, $g)");
            P(sub, "$t", topic.Value);
            P(sub, "$g", group.Value);
            sub.ExecuteNonQuery();
            return P(P(Cmd(c, "INSERT OR IGNORE INTO msg_queues(queue, created_at) VALUES ($q, $now)"), "$q", QueueName.ForGroup(topic, group).Value), "$now", NowTicks).ExecuteNonQuery();
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask UnsubscribeAsync(TopicName topic, GroupName group, CancellationToken cancellationToken = default)
    {
        await Write(c =>
        {
            var sub = Cmd(c, "DELETE FROM msg_subscriptions WHERE topic = $t AND grp = $g");
            P(sub, "$t", topic.Value);
            P(sub, "$g", group.Value);
            sub.ExecuteNonQuery();
            var queue = QueueName.ForGroup(topic, group).Value;
            P(Cmd(c, "DELETE FROM msg_queue WHERE queue = $q"), "$q", queue).ExecuteNonQuery();
            P(Cmd(c, "DELETE FROM msg_queues WHERE queue = $q"), "$q", queue).ExecuteNonQuery();
            _knownQueues.TryRemove(queue, out _);
            return 0;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<PublishReceipt> PublishAsync(TopicName topic, IReadOnlyList<TransportMessage> messages, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return await Write(c => PublishIn(c, topic.Value, messages, NowTicks), cancellationToken).ConfigureAwait(false);
    }

    private PublishReceipt PublishIn(SqliteConnection c, string topic, IReadOnlyList<TransportMessage> messages, long now)
    {
        if (!_knownTopics.ContainsKey(topic) && !_pendingTopics.Contains(topic))
        {
            // A topic exists once something is published to it, even with no subscriber yet (it shows in `factum topics`).
            P(Cmd(c, "INSERT OR IGNORE INTO msg_topics(topic) VALUES ($t)"), "$t", topic).ExecuteNonQuery();
            _pendingTopics.Add(topic);
        }
        var groups = new List<string>();
        var subs = Cmd(c, "SELECT grp FROM msg_subscriptions WHERE topic = $t");
        P(subs, "$t", topic);
        using (var r = subs.ExecuteReader())
        {
            while (r.Read()) groups.Add(r.GetString(0));
        }
        foreach (var g in groups)
        {
            var queue = topic + "@" + g;
            foreach (var m in messages) EnqueueIn(c, queue, m, now, now);
        }
        var partitionsCmd = Cmd(c, "SELECT partitions FROM msg_topics WHERE topic = $t");
        P(partitionsCmd, "$t", topic);
        var partitions = (int)(partitionsCmd.ExecuteScalar() as long? ?? 0);
        if (partitions == 0) return new PublishReceipt(groups.Count, []);
        var offsets = new PartitionOffset[messages.Count];
        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            var p = KeyPartitioner.For(m.PartitionKey, partitions);
            var next = Cmd(c, "UPDATE msg_partitions SET next_offset = next_offset + 1 WHERE topic = $t AND partition = $p RETURNING next_offset - 1");
            P(next, "$t", topic);
            P(next, "$p", p);
            var offset = (long)next.ExecuteScalar()!;
            var ins = Cmd(c, $"INSERT INTO msg_log(topic, partition, offset, appended_at, {MsgCols}) VALUES ($t, $p, $o, $now, {MsgParams})");
            P(ins, "$t", topic);
            P(ins, "$p", p);
            P(ins, "$o", offset);
            P(ins, "$now", now);
            SqliteMessageRows.BindMessage(ins, m);
            ins.ExecuteNonQuery();
            offsets[i] = new PartitionOffset(p, offset);
        }
        return new PublishReceipt(groups.Count, offsets);
    }

    private void EnqueueIn(SqliteConnection c, string queue, TransportMessage m, long visibleAt, long now)
    {
        if (!_knownQueues.ContainsKey(queue) && !_pendingQueues.Contains(queue))
        {
            P(P(Cmd(c, "INSERT OR IGNORE INTO msg_queues(queue, created_at) VALUES ($q, $now)"), "$q", queue), "$now", now).ExecuteNonQuery();
            _pendingQueues.Add(queue);
        }
        var ins = Cmd(c, $"INSERT INTO msg_queue(queue, visible_at, enqueued_at, {MsgCols}) VALUES ($q, $v, $now, {MsgParams})");
        P(ins, "$q", queue);
        P(ins, "$v", visibleAt);
        P(ins, "$now", now);
        SqliteMessageRows.BindMessage(ins, m);
        ins.ExecuteNonQuery();
    }

    /// <inheritdoc />
    public async ValueTask SendAsync(QueueName queue, IReadOnlyList<TransportMessage> messages, DateTimeOffset? deliverAt = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        await Write(c =>
        {
            var now = NowTicks;
            foreach (var m in messages) EnqueueIn(c, queue.Value, m, deliverAt?.UtcTicks ?? now, now);
            return 0;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<QueueDelivery>> ReceiveAsync(QueueName queue, string consumer, int max, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        // Skip the writer when nothing is visible: idle consumers poll with a cheap read instead of a write transaction.
        // A queue that just delivered is likely busy, so it goes straight to the writer.
        if (_idle.GetValueOrDefault(queue.Value, true) && !HasVisible(queue.Value)) return [];
        return await Write<IReadOnlyList<QueueDelivery>>(c =>
        {
            var now = NowTicks;
            var until = now + lease.Ticks;
            var token = Guid.NewGuid().ToString("N");
            // The oldest message of each key only: a key's next message waits until the one before it is settled.
            var select = Cmd(c, $"""
                SELECT seq, attempts, first_failure, {MsgCols} FROM msg_queue m
                WHERE queue = $q AND visible_at <= $now
                  AND (partition_key IS NULL OR NOT EXISTS (SELECT 1 FROM msg_queue p WHERE p.queue = $q AND p.partition_key = m.partition_key AND p.seq < m.seq))
                ORDER BY visible_at, seq LIMIT $max
                """);
            P(select, "$q", queue.Value);
            P(select, "$now", now);
            P(select, "$max", max);
            var result = new List<QueueDelivery>();
            using (var r = select.ExecuteReader())
            {
                while (r.Read())
                {
                    var first = r.IsDBNull(2) ? (DateTimeOffset?)null : FromTicks(r.GetInt64(2));
                    result.Add(new QueueDelivery(queue, r.GetInt64(0), SqliteMessageRows.ReadMessage(r, 3), r.GetInt32(1) + 1, token, FromTicks(until), first));
                }
            }
            if (result.Count == 0)
            {
                _idle[queue.Value] = true;
                return result;
            }
            var up = Cmd(c, "UPDATE msg_queue SET visible_at = $until, lease_token = $tok, lease_owner = $owner, attempts = attempts + 1 WHERE seq IN (SELECT value FROM json_each($seqs))");
            P(up, "$until", until);
            P(up, "$tok", token);
            P(up, "$owner", consumer);
            P(up, "$seqs", "[" + string.Join(',', result.Select(d => d.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture))) + "]");
            up.ExecuteNonQuery();
            _idle[queue.Value] = false;
            return result;
        }, cancellationToken).ConfigureAwait(false);
    }

    private bool HasVisible(string queue)
    {
        using var c = _store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT EXISTS (SELECT 1 FROM msg_queue WHERE queue = $q AND visible_at <= $now)";
        cmd.Parameters.AddWithValue("$q", queue);
        cmd.Parameters.AddWithValue("$now", NowTicks);
        return (long)cmd.ExecuteScalar()! == 1;
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<QueueDelivery>> ExtendLeasesAsync(IReadOnlyList<QueueDelivery> deliveries, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(deliveries);
        return await Write<IReadOnlyList<QueueDelivery>>(c =>
        {
            var until = NowTicks + lease.Ticks;
            var held = new List<QueueDelivery>();
            foreach (var d in deliveries)
            {
                var up = Cmd(c, "UPDATE msg_queue SET visible_at = $until WHERE seq = $seq AND lease_token = $tok");
                P(up, "$until", until);
                P(up, "$seq", d.Sequence);
                P(up, "$tok", d.LeaseToken);
                if (up.ExecuteNonQuery() == 1) held.Add(d with { LeaseExpires = FromTicks(until) });
            }
            return held;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<bool>> SettleAsync(IReadOnlyList<Settlement> settlements, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settlements);
        var (results, error) = await Write(c =>
        {
            var now = NowTicks;
            var ok = new bool[settlements.Count];
            Exception? first = null;
            for (var i = 0; i < settlements.Count; i++)
            {
                var s = settlements[i];
                // Only work that can fail for its own reasons (a handler's enlisted writes, its outgoing messages) needs
                // a savepoint; a plain ack is a delete and an inbox insert, and an I/O error there fails the whole group.
                var isolate = s.Enlisted.Count > 0 || s.Outgoing.Count > 0 || s.Kind == SettlementKind.DeadLetter;
                if (!isolate)
                {
                    ok[i] = SettleIn(c, s, now);
                    continue;
                }
                Cmd(c, "SAVEPOINT settle").ExecuteNonQuery();
                var (queuesBefore, topicsBefore) = (_pendingQueues.Count, _pendingTopics.Count);
                try
                {
                    ok[i] = SettleIn(c, s, now);
                    Cmd(c, "RELEASE settle").ExecuteNonQuery();
                }
                catch (Exception ex) when (ex is not SqliteException { SqliteErrorCode: 13 or 10 })
                {
                    // This settlement (say, a handler's enlisted write) failed: undo it alone, keep the others.
                    Cmd(c, "ROLLBACK TO settle").ExecuteNonQuery();
                    Cmd(c, "RELEASE settle").ExecuteNonQuery();
                    _pendingQueues.RemoveRange(queuesBefore, _pendingQueues.Count - queuesBefore);
                    _pendingTopics.RemoveRange(topicsBefore, _pendingTopics.Count - topicsBefore);
                    first ??= ex;
                }
            }
            return (ok, first);
        }, cancellationToken).ConfigureAwait(false);
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        return results;
    }

    private bool SettleIn(SqliteConnection c, Settlement s, long now)
    {
        TransportMessage message;
        if (s.Kind == SettlementKind.Ack && s.Delivery is { } acked)
        {
            // The delete is the lease check: if someone else holds the message now, nothing happens.
            var delete = Cmd(c, "DELETE FROM msg_queue WHERE seq = $seq AND lease_token = $tok");
            P(delete, "$seq", acked.Sequence);
            P(delete, "$tok", acked.LeaseToken);
            if (delete.ExecuteNonQuery() == 0) return false;
            message = acked.Message;
        }
        else if (s.Delivery is { } d)
        {
            var check = Cmd(c, "SELECT 1 FROM msg_queue WHERE seq = $seq AND lease_token = $tok");
            P(check, "$seq", d.Sequence);
            P(check, "$tok", d.LeaseToken);
            if (check.ExecuteScalar() is null) return false;
            message = d.Message;
        }
        else message = (s.Record ?? throw new ArgumentException("A settlement needs a Delivery or a Record.", nameof(s))).Message;
        var group = s.Source.Group ?? "";
        switch (s.Kind)
        {
            case SettlementKind.Ack:
                foreach (var work in s.Enlisted) work.RunSynchronously(c);
                if (s.Inbox is not null)
                {
                    var inbox = Cmd(c, "INSERT OR IGNORE INTO msg_inbox(inbox, message_id, handled_at) VALUES ($i, $id, $now)");
                    P(inbox, "$i", s.Inbox);
                    P(inbox, "$id", message.Id.Value.ToByteArray());
                    P(inbox, "$now", now);
                    inbox.ExecuteNonQuery();
                }
                foreach (var o in s.Outgoing)
                {
                    if (o.Topic is { } t) PublishIn(c, t.Value, [o.Message], now);
                    else EnqueueIn(c, o.Queue!.Value.Value, o.Message, o.DeliverAt?.UtcTicks ?? now, now);
                }
                if (s.Delivery is not null && s.Source.Kind != MessageSourceKind.Queue && message.PartitionKey is { } key)
                {
                    // The last replayed message of a held key lets the key flow from the stream again.
                    var release = Cmd(c, "DELETE FROM msg_holds WHERE source = $s AND grp = $g AND key = $k AND blocker IS NULL AND NOT EXISTS (SELECT 1 FROM msg_queue WHERE queue = $q AND partition_key = $k)");
                    P(release, "$s", s.Source.Name);
                    P(release, "$g", group);
                    P(release, "$k", key);
                    P(release, "$q", s.Delivery.Queue.Value);
                    release.ExecuteNonQuery();
                }
                return true;
            case SettlementKind.Retry:
                if (s.Delivery is null) throw new ArgumentException("Only queue deliveries can be retried by the transport; stream records are retried in process.", nameof(s));
                var retry = Cmd(c, "UPDATE msg_queue SET visible_at = $at, lease_token = NULL, lease_owner = NULL, first_failure = COALESCE(first_failure, $ff) WHERE seq = $seq");
                P(retry, "$at", (s.RetryAt?.UtcTicks) ?? now);
                P(retry, "$ff", (s.Failure?.FirstFailure.UtcTicks) ?? now);
                P(retry, "$seq", s.Delivery.Sequence);
                retry.ExecuteNonQuery();
                return true;
            case SettlementKind.Release:
                if (s.Delivery is null) return true;
                var rel = Cmd(c, "UPDATE msg_queue SET visible_at = $now, lease_token = NULL, lease_owner = NULL, attempts = attempts - 1 WHERE seq = $seq");
                P(rel, "$now", now);
                P(rel, "$seq", s.Delivery.Sequence);
                rel.ExecuteNonQuery();
                return true;
            case SettlementKind.Defer:
                if (s.Record is null) throw new ArgumentException("Only stream records can be deferred.", nameof(s));
                if (message.PartitionKey is { } deferKey)
                {
                    // The replay this record was to follow may have failed again since it was fetched: then it follows
                    // the new dead letter instead of overtaking it.
                    var blocker = P(P(P(Cmd(c, "SELECT blocker FROM msg_holds WHERE source = $s AND grp = $g AND key = $k"), "$s", s.Source.Name), "$g", group), "$k", deferKey).ExecuteScalar() as long?;
                    if (blocker is { } b)
                    {
                        InsertDeadLetter(c, message, s.Source, new FailureInfo("Held", $"held behind dead letter {b} (same partition key)", null, 0, FromTicks(now), FromTicks(now)), now, b);
                        return true;
                    }
                }
                EnqueueIn(c, s.Source.ReplayQueue.Value, message, now, now);
                return true;
            case SettlementKind.DeadLetter:
                if (s.Delivery is { } dead) DeleteQueued(c, dead.Sequence);
                var failure = s.Failure ?? new FailureInfo("Unknown", "dead-lettered without a reason", null, 1, FromTicks(now), FromTicks(now));
                var holdKey = s.HoldKey ? message.PartitionKey : null;
                long? behind = null;
                if (holdKey is not null)
                {
                    var hold = Cmd(c, "SELECT blocker FROM msg_holds WHERE source = $s AND grp = $g AND key = $k");
                    P(hold, "$s", s.Source.Name);
                    P(hold, "$g", group);
                    P(hold, "$k", holdKey);
                    behind = hold.ExecuteScalar() as long?;
                }
                var id = InsertDeadLetter(c, message, s.Source, failure, now, behind);
                if (holdKey is not null && behind is null)
                {
                    var hold = Cmd(c, "INSERT OR REPLACE INTO msg_holds(source, grp, key, blocker) VALUES ($s, $g, $k, $id)");
                    P(hold, "$s", s.Source.Name);
                    P(hold, "$g", group);
                    P(hold, "$k", holdKey);
                    P(hold, "$id", id);
                    hold.ExecuteNonQuery();
                    if (s.Delivery is { } from)
                    {
                        // Later messages of the key already queued (replays in progress) follow it, in order.
                        var held = failure with { ExceptionType = "Held", Message = $"held behind dead letter {id} (same partition key)", StackTrace = null };
                        var later = Cmd(c, $"SELECT seq, {MsgCols} FROM msg_queue WHERE queue = $q AND partition_key = $k ORDER BY seq");
                        P(later, "$q", from.Queue.Value);
                        P(later, "$k", holdKey);
                        var rows = new List<(long Seq, TransportMessage Message)>();
                        using (var r = later.ExecuteReader())
                        {
                            while (r.Read()) rows.Add((r.GetInt64(0), SqliteMessageRows.ReadMessage(r, 1)));
                        }
                        foreach (var (seq, m) in rows)
                        {
                            InsertDeadLetter(c, m, s.Source, held, now, id);
                            DeleteQueued(c, seq);
                        }
                    }
                }
                return true;
            default:
                throw new ArgumentOutOfRangeException(nameof(s), s.Kind, "Unknown settlement kind.");
        }
    }

    private void DeleteQueued(SqliteConnection c, long seq) => P(Cmd(c, "DELETE FROM msg_queue WHERE seq = $seq"), "$seq", seq).ExecuteNonQuery();

    private static readonly string InsertDeadLetterSql = SqliteMessageRows.DeadLetterInsert("msg_dead_letters");

    private long InsertDeadLetter(SqliteConnection c, TransportMessage m, MessageSource source, FailureInfo f, long now, long? behind)
    {
        var ins = Cmd(c, InsertDeadLetterSql);
        SqliteMessageRows.BindDeadLetter(ins, m, source, f, now, behind);
        return (long)ins.ExecuteScalar()!;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlySet<MessageId>> FilterHandledAsync(string inbox, IReadOnlyList<MessageId> ids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var handled = new HashSet<MessageId>();
        using var c = _store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT 1 FROM msg_inbox WHERE inbox = $i AND message_id = $id";
        var pi = cmd.Parameters.AddWithValue("$i", inbox);
        var pid = cmd.Parameters.Add("$id", SqliteType.Blob);
        foreach (var id in ids)
        {
            pid.Value = id.Value.ToByteArray();
            if (cmd.ExecuteScalar() is not null) handled.Add(id);
        }
        _ = pi;
        return ValueTask.FromResult<IReadOnlySet<MessageId>>(handled);
    }

    /// <inheritdoc />
    public async ValueTask<long> PurgeInboxAsync(DateTimeOffset olderThan, CancellationToken cancellationToken = default) =>
        await Write(c => (long)P(Cmd(c, "DELETE FROM msg_inbox WHERE handled_at < $t"), "$t", olderThan.UtcTicks).ExecuteNonQuery(), cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public async ValueTask HeartbeatConsumerAsync(QueueName queue, string consumer, TimeSpan liveFor, CancellationToken cancellationToken = default)
    {
        await Write(c =>
        {
            P(P(Cmd(c, "INSERT OR IGNORE INTO msg_queues(queue, created_at) VALUES ($q, $now)"), "$q", queue.Value), "$now", NowTicks).ExecuteNonQuery();
            var up = Cmd(c, "INSERT INTO msg_consumers(queue, consumer, last_seen, live_until) VALUES ($q, $c, $now, $until) ON CONFLICT(queue, consumer) DO UPDATE SET last_seen = excluded.last_seen, live_until = excluded.live_until");
            P(up, "$q", queue.Value);
            P(up, "$c", consumer);
            P(up, "$now", NowTicks);
            P(up, "$until", NowTicks + Math.Clamp(liveFor.Ticks, 0, TimeSpan.FromDays(1).Ticks));
            return up.ExecuteNonQuery();
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask RemoveConsumerAsync(QueueName queue, string consumer, CancellationToken cancellationToken = default)
    {
        await Write(c =>
        {
            var del = Cmd(c, "DELETE FROM msg_consumers WHERE queue = $q AND consumer = $c");
            P(del, "$q", queue.Value);
            P(del, "$c", consumer);
            del.ExecuteNonQuery();
            // A reply queue dies with its requester: late replies have nobody to go to.
            if (queue.Value.StartsWith("$reply.", StringComparison.Ordinal))
            {
                P(Cmd(c, "DELETE FROM msg_queue WHERE queue = $q"), "$q", queue.Value).ExecuteNonQuery();
                P(Cmd(c, "DELETE FROM msg_queues WHERE queue = $q"), "$q", queue.Value).ExecuteNonQuery();
                _knownQueues.TryRemove(queue.Value, out _);
            }
            return 0;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<bool> HasLiveConsumerAsync(QueueName queue, TimeSpan within, CancellationToken cancellationToken = default)
    {
        using var c = _store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT EXISTS (SELECT 1 FROM msg_consumers WHERE queue = $q AND last_seen >= $since)";
        cmd.Parameters.AddWithValue("$q", queue.Value);
        cmd.Parameters.AddWithValue("$since", NowTicks - within.Ticks);
        return ValueTask.FromResult((long)cmd.ExecuteScalar()! == 1);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_ownsStore) await _store.DisposeAsync().ConfigureAwait(false);
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyDictionary<string, string>))]
[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class HeadersJson : System.Text.Json.Serialization.JsonSerializerContext;
