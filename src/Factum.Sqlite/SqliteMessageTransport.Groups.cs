using System.Runtime.CompilerServices;
using Factum.Messaging;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

public sealed partial class SqliteMessageTransport
{
    private int StreamPartitions(SqliteConnection c, string topic)
    {
        if (_streamPartitions.TryGetValue(topic, out var n)) return n;
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT partitions FROM msg_topics WHERE topic = $t";
        cmd.Parameters.AddWithValue("$t", topic);
        n = (int)(cmd.ExecuteScalar() as long? ?? 0);
        if (n == 0) throw new InvalidOperationException($"Topic '{topic}' is not a stream; declare it with partitions first.");
        return _streamPartitions[topic] = n;
    }

    /// <inheritdoc />
    public async ValueTask<GroupAssignment> HeartbeatGroupAsync(TopicName topic, GroupName group, string member, IReadOnlyCollection<int> running, TimeSpan sessionTimeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(running);
        return await Write(c =>
        {
            var partitions = StreamPartitions(c, topic.Value);
            var now = NowTicks;
            var t = topic.Value;
            var g = group.Value;
            var up = Cmd(c, "INSERT INTO msg_group_members(topic, grp, member, last_seen) VALUES ($t, $g, $m, $now) ON CONFLICT(topic, grp, member) DO UPDATE SET last_seen = excluded.last_seen");
            P(P(P(P(up, "$t", t), "$g", g), "$m", member), "$now", now).ExecuteNonQuery();
            P(P(P(Cmd(c, "DELETE FROM msg_group_members WHERE topic = $t AND grp = $g AND last_seen < $since"), "$t", t), "$g", g), "$since", now - sessionTimeout.Ticks).ExecuteNonQuery();
            P(P(Cmd(c, "UPDATE msg_group_offsets SET owner = NULL WHERE topic = $t AND grp = $g AND owner IS NOT NULL AND owner NOT IN (SELECT member FROM msg_group_members WHERE topic = $t AND grp = $g)"), "$t", t), "$g", g).ExecuteNonQuery();
            for (var p = 0; p < partitions; p++)
                P(P(P(Cmd(c, "INSERT OR IGNORE INTO msg_group_offsets(topic, grp, partition) VALUES ($t, $g, $p)"), "$t", t), "$g", g), "$p", p).ExecuteNonQuery();

            var members = new List<string>();
            using (var r = P(P(Cmd(c, "SELECT member FROM msg_group_members WHERE topic = $t AND grp = $g"), "$t", t), "$g", g).ExecuteReader())
            {
                while (r.Read()) members.Add(r.GetString(0));
            }
            var rows = new List<GroupCoordinator.PartitionState>();
            using (var r = P(P(Cmd(c, """
                SELECT o.partition, o.committed, o.owner, p.start_offset FROM msg_group_offsets o
                JOIN msg_partitions p ON p.topic = o.topic AND p.partition = o.partition
                WHERE o.topic = $t AND o.grp = $g ORDER BY o.partition
                """), "$t", t), "$g", g).ExecuteReader())
            {
                while (r.Read()) rows.Add(new(r.GetInt32(0), r.IsDBNull(2) ? null : r.GetString(2), Math.Max(r.GetInt64(1), r.GetInt64(3))));
            }
            var decision = GroupCoordinator.Assign(member, members, rows, running);
            foreach (var p in decision.Take) SetOwner(c, t, g, p, member);
            foreach (var p in decision.Release) SetOwner(c, t, g, p, null);
            return decision.Assignment;
        }, cancellationToken).ConfigureAwait(false);
    }

    private void SetOwner(SqliteConnection c, string topic, string group, int partition, string? owner) =>
        P(P(P(P(Cmd(c, "UPDATE msg_group_offsets SET owner = $o WHERE topic = $t AND grp = $g AND partition = $p"), "$o", owner), "$t", topic), "$g", group), "$p", partition).ExecuteNonQuery();

    /// <inheritdoc />
    public async ValueTask LeaveGroupAsync(TopicName topic, GroupName group, string member, CancellationToken cancellationToken = default)
    {
        await Write(c =>
        {
            P(P(P(Cmd(c, "DELETE FROM msg_group_members WHERE topic = $t AND grp = $g AND member = $m"), "$t", topic.Value), "$g", group.Value), "$m", member).ExecuteNonQuery();
            return P(P(P(Cmd(c, "UPDATE msg_group_offsets SET owner = NULL WHERE topic = $t AND grp = $g AND owner = $m"), "$t", topic.Value), "$g", group.Value), "$m", member).ExecuteNonQuery();
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<StreamRecord>> FetchAsync(TopicName topic, GroupName group, int partition, long fromOffset, int max, CancellationToken cancellationToken = default)
    {
        using var c = _store.OpenReadConnection();
        var partitions = StreamPartitions(c, topic.Value);
        if ((uint)partition >= (uint)partitions) throw new ArgumentOutOfRangeException(nameof(partition), partition, $"Topic '{topic}' has {partitions} partitions.");
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"""
            SELECT l.offset, l.appended_at, {string.Join(", ", MsgCols.Split(", ").Select(x => "l." + x))},
              CASE WHEN l.partition_key IS NULL THEN 0
                   ELSE COALESCE((SELECT CASE WHEN h.blocker IS NULL THEN 2 ELSE 1 END FROM msg_holds h WHERE h.source = $t AND h.grp = $g AND h.key = l.partition_key),
                                 (SELECT 2 FROM msg_queue q WHERE q.queue = $gq AND q.partition_key = l.partition_key LIMIT 1), 0) END
            FROM msg_log l WHERE l.topic = $t AND l.partition = $p AND l.offset >= $from ORDER BY l.offset LIMIT $max
            """;
        cmd.Parameters.AddWithValue("$t", topic.Value);
        cmd.Parameters.AddWithValue("$g", group.Value);
        cmd.Parameters.AddWithValue("$gq", QueueName.ForGroup(topic, group).Value);
        cmd.Parameters.AddWithValue("$p", partition);
        cmd.Parameters.AddWithValue("$from", fromOffset);
        cmd.Parameters.AddWithValue("$max", max);
        var result = new List<StreamRecord>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) result.Add(new StreamRecord(partition, r.GetInt64(0), SqliteMessageRows.ReadMessage(r, 2), FromTicks(r.GetInt64(1)), (KeyHold)r.GetInt32(12)));
        return ValueTask.FromResult<IReadOnlyList<StreamRecord>>(result);
    }

    /// <inheritdoc />
    public async ValueTask<bool> CommitOffsetsAsync(TopicName topic, GroupName group, string member, IReadOnlyList<PartitionOffset> offsets, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(offsets);
        return await Write(c =>
        {
            var all = true;
            foreach (var o in offsets)
            {
                var up = Cmd(c, "UPDATE msg_group_offsets SET committed = MAX(committed, $o) WHERE topic = $t AND grp = $g AND partition = $p AND owner = $m");
                all &= P(P(P(P(P(up, "$o", o.Offset), "$t", topic.Value), "$g", group.Value), "$p", o.Partition), "$m", member).ExecuteNonQuery() == 1;
            }
            return all;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask ResetGroupAsync(TopicName topic, GroupName group, GroupReset reset, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reset);
        await Write(c =>
        {
            var partitions = StreamPartitions(c, topic.Value);
            var t = topic.Value;
            var g = group.Value;
            var live = new List<string>();
            using (var r = P(P(P(Cmd(c, "SELECT member FROM msg_group_members WHERE topic = $t AND grp = $g AND last_seen >= $since"), "$t", t), "$g", g), "$since", NowTicks - MemberLivenessForReset.Ticks).ExecuteReader())
            {
                while (r.Read()) live.Add(r.GetString(0));
            }
            if (live.Count > 0)
                throw new InvalidOperationException($"Group '{group}' on '{topic}' has {live.Count} live member(s) ({string.Join(", ", live)}); stop them before resetting its offsets.");
            for (var p = 0; p < partitions; p++)
            {
                long start = 0, end = 0;
                using (var r = P(P(Cmd(c, "SELECT start_offset, next_offset FROM msg_partitions WHERE topic = $t AND partition = $p"), "$t", t), "$p", p).ExecuteReader())
                {
                    if (r.Read()) { start = r.GetInt64(0); end = r.GetInt64(1); }
                }
                var target = reset.Kind switch
                {
                    0 => start,
                    1 => end,
                    2 => Math.Clamp(reset.Offset, start, end),
                    _ => P(P(P(Cmd(c, "SELECT MIN(offset) FROM msg_log WHERE topic = $t AND partition = $p AND appended_at >= $at"), "$t", t), "$p", p), "$at", reset.At.UtcTicks).ExecuteScalar() as long? ?? end,
                };
                var up = Cmd(c, "INSERT INTO msg_group_offsets(topic, grp, partition, committed) VALUES ($t, $g, $p, $o) ON CONFLICT(topic, grp, partition) DO UPDATE SET committed = excluded.committed, owner = NULL");
                P(P(P(P(up, "$t", t), "$g", g), "$p", p), "$o", target).ExecuteNonQuery();
            }
            return 0;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<long> ApplyRetentionAsync(CancellationToken cancellationToken = default)
    {
        return await Write(c =>
        {
            var now = NowTicks;
            var topics = new List<(string Topic, int Partitions, long? AgeMs, long? Bytes, long? Count)>();
            using (var r = Cmd(c, "SELECT topic, partitions, max_age_ms, max_bytes, max_count FROM msg_topics WHERE partitions > 0 AND (max_age_ms IS NOT NULL OR max_bytes IS NOT NULL OR max_count IS NOT NULL)").ExecuteReader())
            {
                while (r.Read())
                    topics.Add((r.GetString(0), r.GetInt32(1), r.IsDBNull(2) ? null : r.GetInt64(2), r.IsDBNull(3) ? null : r.GetInt64(3), r.IsDBNull(4) ? null : r.GetInt64(4)));
            }
            long removed = 0;
            foreach (var (t, partitions, age, bytes, count) in topics)
            {
                for (var p = 0; p < partitions; p++)
                {
                    var cut = 0L;
                    var end = (long)P(P(Cmd(c, "SELECT next_offset FROM msg_partitions WHERE topic = $t AND partition = $p"), "$t", t), "$p", p).ExecuteScalar()!;
                    if (count is { } n) cut = Math.Max(cut, end - n);
                    if (age is { } ms)
                    {
                        var firstKept = P(P(P(Cmd(c, "SELECT MIN(offset) FROM msg_log WHERE topic = $t AND partition = $p AND appended_at >= $since"), "$t", t), "$p", p), "$since", now - ms * TimeSpan.TicksPerMillisecond).ExecuteScalar() as long?;
                        cut = Math.Max(cut, firstKept ?? end);
                    }
                    if (bytes is { } limit)
                    {
                        long total = 0;
                        using var r = P(P(Cmd(c, "SELECT offset, length(body) FROM msg_log WHERE topic = $t AND partition = $p ORDER BY offset DESC"), "$t", t), "$p", p).ExecuteReader();
                        while (r.Read())
                        {
                            total += r.GetInt64(1);
                            if (total > limit) { cut = Math.Max(cut, r.GetInt64(0) + 1); break; }
                        }
                    }
                    if (cut == 0) continue;
                    removed += P(P(P(Cmd(c, "DELETE FROM msg_log WHERE topic = $t AND partition = $p AND offset < $cut"), "$t", t), "$p", p), "$cut", cut).ExecuteNonQuery();
                    P(P(P(Cmd(c, "UPDATE msg_partitions SET start_offset = MAX(start_offset, $cut) WHERE topic = $t AND partition = $p"), "$t", t), "$p", p), "$cut", cut).ExecuteNonQuery();
                }
            }
            return removed;
        }, cancellationToken).ConfigureAwait(false);
    }

    private static List<DeadLetter> Query(SqliteConnection c, DeadLetterFilter filter) => SqliteMessageRows.QueryDeadLetters(c, "msg_dead_letters", filter);

    /// <inheritdoc />
    public async IAsyncEnumerable<DeadLetter> ListDeadLettersAsync(DeadLetterFilter filter, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        List<DeadLetter> page;
        using (var c = _store.OpenReadConnection()) page = Query(c, filter);
        foreach (var d in page)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return d;
        }
        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<int> ReplayDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        return await Write(c =>
        {
            var now = NowTicks;
            var chosen = Query(c, filter);
            var blockers = chosen.Where(d => d.HeldBehind is null).Select(d => d.Id).ToList();
            var followers = blockers.Count == 0 ? [] : Query(c, new DeadLetterFilter { Ids = null }).Where(d => d.HeldBehind is { } b && blockers.Contains(b)).ToList();
            var selected = ReplaySelection.Expand(chosen, followers);
            foreach (var d in selected)
            {
                EnqueueIn(c, d.Source.ReplayQueue.Value, ReplaySelection.MarkReplayed(d.Message), now, now);
                P(Cmd(c, "DELETE FROM msg_dead_letters WHERE id = $id"), "$id", d.Id).ExecuteNonQuery();
                if (d.HeldBehind is null && d.Message.PartitionKey is { } key)
                {
                    // The key stays held while its replays go through the group's queue; the last ack releases it.
                    var up = Cmd(c, "UPDATE msg_holds SET blocker = NULL WHERE source = $s AND grp = $g AND key = $k AND blocker = $id");
                    P(P(P(P(up, "$s", d.Source.Name), "$g", d.Source.Group ?? ""), "$k", key), "$id", d.Id).ExecuteNonQuery();
                }
            }
            return selected.Count;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<int> DiscardDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        return await Write(c =>
        {
            var chosen = Query(c, filter);
            foreach (var d in chosen) P(Cmd(c, "DELETE FROM msg_dead_letters WHERE id = $id"), "$id", d.Id).ExecuteNonQuery();
            foreach (var d in chosen)
            {
                if (d.HeldBehind is not null || d.Message.PartitionKey is not { } key) continue;
                var group = d.Source.Group ?? "";
                var holds = P(P(P(P(Cmd(c, "SELECT 1 FROM msg_holds WHERE source = $s AND grp = $g AND key = $k AND blocker = $id"), "$s", d.Source.Name), "$g", group), "$k", key), "$id", d.Id).ExecuteScalar();
                if (holds is null) continue;
                // The first surviving message held behind the discarded one now holds the key, so the rest keep their
                // order; if the discard took them all, the key is free again. (Discarded followers are gone already.)
                var next = P(Cmd(c, "SELECT MIN(id) FROM msg_dead_letters WHERE held_behind = $id"), "$id", d.Id).ExecuteScalar() as long?;
                if (next is null)
                {
                    P(P(P(Cmd(c, "DELETE FROM msg_holds WHERE source = $s AND grp = $g AND key = $k"), "$s", d.Source.Name), "$g", group), "$k", key).ExecuteNonQuery();
                    continue;
                }
                P(Cmd(c, "UPDATE msg_dead_letters SET held_behind = NULL WHERE id = $n"), "$n", next.Value).ExecuteNonQuery();
                P(P(Cmd(c, "UPDATE msg_dead_letters SET held_behind = $n WHERE held_behind = $id"), "$n", next.Value), "$id", d.Id).ExecuteNonQuery();
                P(P(P(P(Cmd(c, "UPDATE msg_holds SET blocker = $n WHERE source = $s AND grp = $g AND key = $k"), "$n", next.Value), "$s", d.Source.Name), "$g", group), "$k", key).ExecuteNonQuery();
            }
            return chosen.Count;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<TransportStatus> GetStatusAsync(CancellationToken cancellationToken = default)
    {
        using var c = _store.OpenReadConnection();
        var now = NowTicks;
        SqliteDataReader Read(string sql, params (string Name, object Value)[] args)
        {
            var cmd = c.CreateCommand();
            cmd.CommandText = sql;
            foreach (var (n, v) in args) cmd.Parameters.AddWithValue(n, v);
            return cmd.ExecuteReader(System.Data.CommandBehavior.Default);
        }

        var subs = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        using (var r = Read("SELECT topic, grp FROM msg_subscriptions ORDER BY topic, grp"))
            while (r.Read()) (subs.TryGetValue(r.GetString(0), out var l) ? l : subs[r.GetString(0)] = []).Add(r.GetString(1));
        var parts = new Dictionary<string, List<PartitionStatus>>(StringComparer.Ordinal);
        using (var r = Read("SELECT topic, partition, start_offset, next_offset FROM msg_partitions ORDER BY topic, partition"))
            while (r.Read()) (parts.TryGetValue(r.GetString(0), out var l) ? l : parts[r.GetString(0)] = []).Add(new PartitionStatus(r.GetInt32(1), r.GetInt64(2), r.GetInt64(3)));
        var topics = new List<TopicStatus>();
        using (var r = Read("SELECT topic, partitions, max_age_ms, max_bytes, max_count FROM msg_topics ORDER BY topic"))
        {
            while (r.Read())
            {
                var name = r.GetString(0);
                var options = new TopicOptions
                {
                    Partitions = r.GetInt32(1),
                    MaxAge = r.IsDBNull(2) ? null : TimeSpan.FromMilliseconds(r.GetInt64(2)),
                    MaxBytes = r.IsDBNull(3) ? null : r.GetInt64(3),
                    MaxCount = r.IsDBNull(4) ? null : r.GetInt64(4),
                };
                topics.Add(new TopicStatus(name, options, subs.GetValueOrDefault(name) ?? [], parts.GetValueOrDefault(name) ?? []));
            }
        }
        var consumers = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        // Live while the last heartbeat's promise holds; rows from before v7 (no live_until) get the bus's default 4 s.
        using (var r = Read("SELECT queue, consumer FROM msg_consumers WHERE COALESCE(live_until, last_seen + $default) >= $now ORDER BY queue, consumer", ("$default", TimeSpan.FromSeconds(4).Ticks), ("$now", now)))
            while (r.Read()) (consumers.TryGetValue(r.GetString(0), out var l) ? l : consumers[r.GetString(0)] = []).Add(r.GetString(1));
        var queues = new List<QueueStatus>();
        using (var r = Read("""
            SELECT n.queue,
                   COALESCE(SUM(m.visible_at <= $now), 0),
                   COALESCE(SUM(m.visible_at > $now AND m.lease_token IS NOT NULL), 0),
                   COALESCE(SUM(m.visible_at > $now AND m.lease_token IS NULL), 0),
                   MIN(CASE WHEN m.visible_at <= $now THEN m.enqueued_at END)
            FROM msg_queues n LEFT JOIN msg_queue m ON m.queue = n.queue GROUP BY n.queue ORDER BY n.queue
            """, ("$now", now)))
        {
            while (r.Read())
            {
                var name = r.GetString(0);
                queues.Add(new QueueStatus(name, r.GetInt64(1), r.GetInt64(2), r.GetInt64(3), consumers.GetValueOrDefault(name) ?? [], r.IsDBNull(4) ? null : FromTicks(r.GetInt64(4))));
            }
        }

        var members = new Dictionary<(string, string), List<(string Member, long Seen)>>();
        using (var r = Read("SELECT topic, grp, member, last_seen FROM msg_group_members ORDER BY member"))
            while (r.Read()) (members.TryGetValue((r.GetString(0), r.GetString(1)), out var l) ? l : members[(r.GetString(0), r.GetString(1))] = []).Add((r.GetString(2), r.GetInt64(3)));
        var offsets = new Dictionary<(string, string), List<GroupPartitionStatus>>();
        using (var r = Read("""
            SELECT o.topic, o.grp, o.partition, o.owner, MAX(o.committed, p.start_offset), p.next_offset FROM msg_group_offsets o
            JOIN msg_partitions p ON p.topic = o.topic AND p.partition = o.partition ORDER BY o.topic, o.grp, o.partition
            """))
            while (r.Read()) (offsets.TryGetValue((r.GetString(0), r.GetString(1)), out var l) ? l : offsets[(r.GetString(0), r.GetString(1))] = []).Add(new GroupPartitionStatus(r.GetInt32(2), r.IsDBNull(3) ? null : r.GetString(3), r.GetInt64(4), r.GetInt64(5)));
        var groups = offsets.OrderBy(kv => kv.Key.Item1, StringComparer.Ordinal).ThenBy(kv => kv.Key.Item2, StringComparer.Ordinal).Select(kv =>
        {
            var ms = (members.GetValueOrDefault(kv.Key) ?? []).Select(m => new GroupMemberStatus(m.Member, FromTicks(m.Seen), kv.Value.Where(p => p.Owner == m.Member).Select(p => p.Partition).ToList())).ToList();
            return new GroupStatus(kv.Key.Item1, kv.Key.Item2, ms, kv.Value);
        }).ToList();
        var dead = new List<DeadLetterDepth>();
        using (var r = Read("SELECT source, grp, COUNT(*) FROM msg_dead_letters GROUP BY source, grp ORDER BY source, grp"))
            while (r.Read()) dead.Add(new DeadLetterDepth(r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.GetInt64(2)));
        return ValueTask.FromResult(new TransportStatus(topics, queues, groups, dead));
    }
}
