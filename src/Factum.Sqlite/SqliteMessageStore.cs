using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using Factum.Coordination;
using Factum.Messaging;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

/// <summary>
/// The message store in the event store's own SQLite file: inboxes (<c>msg_inbox</c>), the outbox with scheduled
/// messages (<c>msg_outbox</c>) and the dead letters of durable endpoints with their holds (<c>msg_store_dead_letters</c>).
/// Every write goes through the store's single writer, so commits share its group commit (one fsync for many), and a
/// handler's work runs on the writer's <see cref="SqliteConnection"/> inside the same transaction as the inbox record
/// and the outgoing messages.
/// </summary>
/// <remarks>
/// Several processes may share the file: the inbox's primary key decides between racing commits, and the outbox
/// dispatcher's completions are fenced by its lease in the same file (<see cref="SqliteLeaseStore"/>).
/// <see cref="WaitForOutboxAsync"/> wakes at once for commits made in this process; other processes' commits are found
/// when it times out (the dispatcher polls).
/// </remarks>
public sealed class SqliteMessageStore : IMessageStore
{
    private const string DeadLetterTable = "msg_store_dead_letters";
    private static readonly string OutboxColumns = $"id, dest_kind, destination, deliver_at, enqueued_at, {SqliteSchema.MessageColumnNames}";
    private static readonly string InsertOutboxSql = $"INSERT INTO msg_outbox(dest_kind, destination, deliver_at, enqueued_at, {SqliteSchema.MessageColumnNames}) VALUES ($kind, $dest, $at, $now, {SqliteMessageRows.MessageParams})";
    private static readonly string InsertDeadLetterSql = SqliteMessageRows.DeadLetterInsert(DeadLetterTable, ", hold_key", ", $hold");

    // The oldest holding dead letter of the key wins, as in InMemoryMessageStore; `grp IS $g` so that sources without a
    // group (queues) match each other.
    private const string FindHoldSql = "SELECT MIN(id) FROM msg_store_dead_letters WHERE hold_key = 1 AND source = $s AND grp IS $g AND partition_key = $k AND source_kind = $sk";

    // Unscheduled entries in id order and due scheduled ones, each through the (deliver_at, id) index, then merged: a
    // plain scan by id would step over every entry scheduled for later on each poll. INDEXED BY because for
    // ORDER BY id LIMIT the planner would otherwise walk the ids, which is that scan when nothing scheduled is due.
    private static readonly string ReadDueSql = $"""
        SELECT {OutboxColumns} FROM (SELECT {OutboxColumns} FROM msg_outbox WHERE deliver_at IS NULL ORDER BY id LIMIT $max)
        UNION ALL
        SELECT {OutboxColumns} FROM (SELECT {OutboxColumns} FROM msg_outbox INDEXED BY ix_msg_outbox_due WHERE deliver_at <= $now ORDER BY id LIMIT $max)
        ORDER BY id LIMIT $max
        """;

    // Message stores over one event store share one signal, so a dispatcher wakes for commits made through any of them.
    private static readonly ConditionalWeakTable<SqliteEventStore, OutboxSignal> Signals = new();

    private readonly SqliteEventStore _store;
    private readonly OutboxSignal _signal;

    // Prepared commands on the writer's connection, reused across commits (only touched on the writer, one request at a time).
    private readonly WriterCommands _commands = new();

    /// <summary>Keeps messages in <paramref name="store"/>'s file and writes through its writer.</summary>
    /// <param name="store">The store (its clock, <see cref="EventStoreOptions.TimeProvider"/>, decides due times and inbox ages).</param>
    public SqliteMessageStore(SqliteEventStore store)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _signal = Signals.GetValue(store, static _ => new OutboxSignal());
    }

    /// <inheritdoc />
    public string Name => "sqlite";

    /// <summary>The event store whose file holds the messages (and the handlers' own tables).</summary>
    public SqliteEventStore Store => _store;

    private long NowTicks => _store.Options.TimeProvider.GetUtcNow().UtcTicks;

    private SqliteCommand Cmd(SqliteConnection c, string sql) => _commands.Get(c, sql);

    private static SqliteCommand P(SqliteCommand cmd, string name, object? value) => WriterCommands.P(cmd, name, value);

    /// <inheritdoc />
    public ValueTask<IReadOnlySet<MessageId>> FilterHandledAsync(string inbox, IReadOnlyList<MessageId> ids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var handled = new HashSet<MessageId>();
        if (ids.Count == 0) return ValueTask.FromResult<IReadOnlySet<MessageId>>(handled);
        using var c = _store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT 1 FROM msg_inbox WHERE inbox = $i AND message_id = $id";
        cmd.Parameters.AddWithValue("$i", inbox);
        var id = cmd.Parameters.Add("$id", SqliteType.Blob);
        foreach (var m in ids)
        {
            id.Value = m.Value.ToByteArray();
            if (cmd.ExecuteScalar() is not null) handled.Add(m);
        }
        return ValueTask.FromResult<IReadOnlySet<MessageId>>(handled);
    }

    /// <inheritdoc />
    public async ValueTask<MessageCommitResult> CommitAsync(MessageTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        cancellationToken.ThrowIfCancellationRequested();
        var outcome = await _store.ExecuteInWriterAsync(c => CommitIn(c, transaction), cancellationToken).ConfigureAwait(false);
        if (outcome is ExceptionDispatchInfo failed) failed.Throw();
        var result = (MessageCommitResult)outcome!;
        if (result == MessageCommitResult.Committed && transaction.Outgoing.Count > 0) _signal.Set();
        return result;
    }

    /// <summary>
    /// One commit, in a savepoint of the writer's group transaction: a failure of this commit's own (a handler's work
    /// throwing, an invalid outgoing message) undoes this commit alone and is handed back rather than thrown, so that
    /// the other commits of the group are kept. Returns the result or the failure.
    /// </summary>
    private object CommitIn(SqliteConnection c, MessageTransaction t)
    {
        var now = NowTicks;
        Cmd(c, "SAVEPOINT message_commit").ExecuteNonQuery();
        try
        {
            if (t.Inbox is { } record)
            {
                // The primary key decides: of two racing commits (in this process or another) one inserts, the other
                // sees the row and changes nothing.
                var inbox = Cmd(c, "INSERT OR IGNORE INTO msg_inbox(inbox, message_id, handled_at) VALUES ($i, $id, $now)");
                P(P(P(inbox, "$i", record.Inbox), "$id", record.MessageId.Value.ToByteArray()), "$now", now);
                if (inbox.ExecuteNonQuery() == 0)
                {
                    Undo(c);
                    return MessageCommitResult.Duplicate;
                }
            }
            // The session is the writer's connection with the transaction open (BEGIN, no SqliteTransaction object):
            // the work's commands join it as they are.
            foreach (var o in t.Outgoing) InMemoryMessageStore.Validate(o);
            foreach (var w in t.Work) w.RunSynchronously(c);
            foreach (var o in t.Outgoing) InsertOutbox(c, o, now);
            foreach (var d in t.DeadLetters) InsertDeadLetter(c, d, now);
            Cmd(c, "RELEASE message_commit").ExecuteNonQuery();
            return MessageCommitResult.Committed;
        }
        catch (Exception ex) when (ex is not SqliteException { SqliteErrorCode: 13 or 10 })
        {
            // A full disk or an I/O error (13, 10) is not this commit's own: it fails the whole group, which the writer
            // retries request by request.
            Undo(c);
            return ExceptionDispatchInfo.Capture(ex);
        }
    }

    private void Undo(SqliteConnection c)
    {
        Cmd(c, "ROLLBACK TO message_commit").ExecuteNonQuery();
        Cmd(c, "RELEASE message_commit").ExecuteNonQuery();
    }

    private void InsertOutbox(SqliteConnection c, OutgoingMessage o, long now)
    {
        var ins = Cmd(c, InsertOutboxSql);
        P(ins, "$kind", o.Topic is null ? "queue" : "topic");
        P(ins, "$dest", o.Topic is { } topic ? topic.Value : o.Queue!.Value.Value);
        P(ins, "$at", o.DeliverAt?.UtcTicks);
        P(ins, "$now", now);
        SqliteMessageRows.BindMessage(ins, o.Message);
        ins.ExecuteNonQuery();
    }

    private void InsertDeadLetter(SqliteConnection c, DeadLetterRecord d, long now)
    {
        // One letter per message and source: a redelivery that failed again after a crash between this commit and the
        // broker ack lands here a second time. Replay deletes the letter, so a replayed copy can be dead-lettered anew.
        var exists = Cmd(c, "SELECT 1 FROM msg_store_dead_letters WHERE message_id = $id AND source_kind = $sk AND source = $s AND grp IS $g");
        P(P(P(P(exists, "$id", d.Message.Id.Value.ToByteArray()), "$sk", d.Source.Kind.ToString()), "$s", d.Source.Name), "$g", d.Source.Group);
        if (exists.ExecuteScalar() is not null) return;
        // Behind the letter that holds its key (if any) whether or not it holds the key itself, as in memory; it
        // holds the key only when it has one.
        long? behind = d.Message.PartitionKey is { } key ? FindHold(Cmd(c, FindHoldSql), d.Source, key) : null;
        var ins = Cmd(c, InsertDeadLetterSql);
        SqliteMessageRows.BindDeadLetter(ins, d.Message, d.Source, d.Failure, now, behind);
        P(ins, "$hold", d.HoldKey && d.Message.PartitionKey is not null ? 1 : 0);
        ins.ExecuteNonQuery();
    }

    private static long? FindHold(SqliteCommand cmd, MessageSource source, string key)
    {
        P(cmd, "$s", source.Name);
        P(cmd, "$g", source.Group);
        P(cmd, "$k", key);
        P(cmd, "$sk", source.Kind.ToString());
        return cmd.ExecuteScalar() as long?;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<OutboxEntry>> ReadDueOutboxAsync(int max, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        using var c = _store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = ReadDueSql;
        cmd.Parameters.AddWithValue("$max", max);
        cmd.Parameters.AddWithValue("$now", NowTicks);
        var entries = new List<OutboxEntry>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var destination = r.GetString(2);
            var toTopic = r.GetString(1) == "topic";
            var message = new OutgoingMessage(
                SqliteMessageRows.ReadMessage(r, 5),
                toTopic ? new TopicName(destination) : default(TopicName?),
                toTopic ? default(QueueName?) : QueueName.Parse(destination),
                r.IsDBNull(3) ? null : SqliteMessageRows.FromTicks(r.GetInt64(3)));
            entries.Add(new OutboxEntry(r.GetInt64(0), message, SqliteMessageRows.FromTicks(r.GetInt64(4))));
        }
        return ValueTask.FromResult<IReadOnlyList<OutboxEntry>>(entries);
    }

    /// <inheritdoc />
    public async ValueTask CompleteOutboxAsync(IReadOnlyList<long> ids, Lease? fence = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.Count == 0 && fence is null) return;
        await _store.ExecuteInWriterAsync(c =>
        {
            // In the transaction of the delete, so the lease cannot change hands between the check and the delete.
            if (fence is not null) SqliteLeaseStore.CheckFence(c, fence, NowTicks);
            var delete = Cmd(c, "DELETE FROM msg_outbox WHERE id = $id");
            var id = delete.Parameters.Add("$id", SqliteType.Integer);
            foreach (var i in ids)
            {
                id.Value = i;
                delete.ExecuteNonQuery();
            }
            return null;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<long> CountOutboxAsync(CancellationToken cancellationToken = default)
    {
        using var c = _store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM msg_outbox";
        return ValueTask.FromResult((long)cmd.ExecuteScalar()!);
    }

    /// <inheritdoc />
    public ValueTask<long?> FindHoldAsync(MessageSource source, string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(key);
        using var c = _store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = FindHoldSql;
        return ValueTask.FromResult(FindHold(cmd, source, key));
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<DeadLetter> ListDeadLettersAsync(DeadLetterFilter filter, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        List<DeadLetter> found;
        using (var c = _store.OpenReadConnection()) found = SqliteMessageRows.QueryDeadLetters(c, DeadLetterTable, filter);
        foreach (var d in found)
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
        var count = (int)(await _store.ExecuteInWriterAsync(c =>
        {
            // Selected inside the write: a concurrent replay of the same filter runs after this one and finds them gone.
            var now = NowTicks;
            var chosen = SqliteMessageRows.QueryDeadLetters(c, DeadLetterTable, filter);
            // The letters held behind a chosen one come along, in order: left behind, they would overtake it later.
            if (chosen.Count > 0)
            {
                var ids = chosen.Select(d => d.Id).ToHashSet();
                using var behind = c.CreateCommand();
                behind.CommandText = $"SELECT id FROM {DeadLetterTable} WHERE held_behind IN ({string.Join(",", ids)})";
                var followers = new List<long>();
                using (var r = behind.ExecuteReader())
                {
                    while (r.Read()) followers.Add(r.GetInt64(0));
                }
                followers.RemoveAll(ids.Contains);
                if (followers.Count > 0)
                    chosen = [.. chosen.Concat(SqliteMessageRows.QueryDeadLetters(c, DeadLetterTable, new DeadLetterFilter { Ids = followers })).OrderBy(d => d.Id)];
            }
            // Every copy is made before anything is written, so a letter that cannot be addressed fails the replay
            // before it changed anything (the writer keeps the group's other work on such a failure).
            var copies = chosen.Select(d => new OutgoingMessage(InMemoryMessageStore.Replayed(d), null, d.Source.ReplayQueue)).ToList();
            var delete = Cmd(c, $"DELETE FROM {DeadLetterTable} WHERE id = $id");
            var id = delete.Parameters.Add("$id", SqliteType.Integer);
            foreach (var d in chosen)
            {
                id.Value = d.Id;
                delete.ExecuteNonQuery();
            }
            foreach (var copy in copies) InsertOutbox(c, copy, now);
            return chosen.Count;
        }, cancellationToken).ConfigureAwait(false))!;
        if (count > 0) _signal.Set();
        return count;
    }

    /// <inheritdoc />
    public async ValueTask<int> DiscardDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        return (int)(await _store.ExecuteInWriterAsync(c =>
        {
            using var cmd = c.CreateCommand();
            SqliteMessageRows.SelectDeadLetters(cmd, DeadLetterTable, filter, "id");
            cmd.CommandText = $"DELETE FROM {DeadLetterTable} WHERE id IN ({cmd.CommandText})";
            return cmd.ExecuteNonQuery();
        }, cancellationToken).ConfigureAwait(false))!;
    }

    /// <inheritdoc />
    public async ValueTask<long> PurgeInboxAsync(DateTimeOffset olderThan, CancellationToken cancellationToken = default) =>
        (long)(await _store.ExecuteInWriterAsync(c => (long)P(Cmd(c, "DELETE FROM msg_inbox WHERE handled_at < $t"), "$t", olderThan.UtcTicks).ExecuteNonQuery(), cancellationToken).ConfigureAwait(false))!;

    /// <inheritdoc />
    public async Task WaitForOutboxAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        try
        {
            await _signal.Current.WaitAsync(timeout, _store.Options.TimeProvider, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Time to look anyway: scheduled messages fall due, and other processes commit, without a signal here.
        }
    }

    /// <summary>Completes its current task on <see cref="Set"/> and starts a new one.</summary>
    private sealed class OutboxSignal
    {
        private TaskCompletionSource _changed = New();

        public Task Current => Volatile.Read(ref _changed).Task;

        public void Set() => Interlocked.Exchange(ref _changed, New()).TrySetResult();

        private static TaskCompletionSource New() => new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
