using System.Runtime.CompilerServices;
using Factum.Coordination;
using Factum.Messaging;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;
using static Factum.PostgreSql.PostgresMessageRows;

namespace Factum.PostgreSql;

/// <summary>
/// The message store in the event store's PostgreSQL schema: inboxes (<c>msg_inbox</c>), the outbox with scheduled
/// messages (<c>msg_outbox</c>) and the dead letters of durable endpoints with their holds (<c>msg_store_dead_letters</c>).
/// Each commit is one database transaction on its own pooled connection; a handler's work runs in it through
/// <see cref="PostgresMessageSession"/>, with the inbox record, the outgoing messages and the dead letters.
/// </summary>
/// <remarks>
/// <para>
/// Several nodes may share the schema: the inbox's primary key decides between racing commits (the second waits for the
/// first's uncommitted row, then sees the conflict), and the outbox dispatcher's completions are fenced by its lease in
/// the same database (<see cref="PostgresLeaseStore"/>).
/// </para>
/// <para>
/// <b>Commit order.</b> Outbox ids are taken while the transaction holds a transaction-scoped advisory lock (the last
/// lock any commit takes, held to COMMIT), so ids grow in commit order and a dispatcher never reads a later entry
/// before an earlier one becomes visible. Commits that add outgoing messages are serialized for that short tail; the
/// handlers' work and the inbox check still run in parallel.
/// </para>
/// <para>
/// <b>Waking the dispatcher.</b> A commit that adds outbox entries sends <c>NOTIFY</c>; while someone waits in
/// <see cref="WaitForOutboxAsync"/>, this instance keeps a <c>LISTEN</c> on a connection of its own (closed again
/// after 30 s without waiters, and on <see cref="DisposeAsync"/>), so a dispatcher on any node wakes at once. Commits in
/// this process also wake it directly; a lost notification is made up for by the wait's timeout (the dispatcher polls).
/// </para>
/// </remarks>
public sealed class PostgresMessageStore : IMessageStore, IAsyncDisposable
{
    // Message stores over one event store share one signal, so a dispatcher wakes for commits made through any of them.
    private static readonly ConditionalWeakTable<PostgresEventStore, OutboxSignal> Signals = new();

    // The listener wakes this often to see whether anyone still waits; it stops after this long without waiters.
    private static readonly TimeSpan ListenerTick = TimeSpan.FromSeconds(1);
    private const long ListenerIdleMilliseconds = 30_000;

    private readonly PostgresEventStore _store;
    private readonly string _s;
    private readonly string _channel;
    private readonly string _outboxLock;
    private readonly string _deadLetterLock;
    private readonly OutboxSignal _signal;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _listenGate = new();
    private Task? _listener;
    private int _waiters;
    private long _lastWait;
    private bool _disposed;

    /// <summary>Keeps messages in <paramref name="store"/>'s schema (the store's migrations create the tables when it opens).</summary>
    /// <param name="store">The store (its clock, <see cref="EventStoreOptions.TimeProvider"/>, decides due times and inbox ages).</param>
    public PostgresMessageStore(PostgresEventStore store)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _s = store.Schema;
        // Quoted: the ':' keeps it apart from the event store's channel (factum_<schema>) of any other schema.
        _channel = $"\"factum:outbox:{_s}\"";
        _outboxLock = $"factum-outbox:{_s}";
        _deadLetterLock = $"factum-dead-letters:{_s}";
        _signal = Signals.GetValue(store, static _ => new OutboxSignal());
        _log = store.Options.LoggerFactory.CreateLogger("Factum.PostgreSql");
    }

    /// <inheritdoc />
    public string Name => "postgres";

    /// <summary>The event store whose schema holds the messages.</summary>
    public PostgresEventStore Store => _store;

    private DateTimeOffset Now => _store.Options.TimeProvider.GetUtcNow();

    /// <inheritdoc />
    public async ValueTask<IReadOnlySet<MessageId>> FilterHandledAsync(string inbox, IReadOnlyList<MessageId> ids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var handled = new HashSet<MessageId>();
        if (ids.Count == 0) return handled;
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"SELECT message_id FROM {_s}.msg_inbox WHERE inbox = $1 AND message_id = ANY($2)", c);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, inbox);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Uuid, ids.Select(i => i.Value).ToArray());
        var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var rScope = r.ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) handled.Add(new MessageId(r.GetGuid(0)));
        return handled;
    }

    /// <inheritdoc />
    /// <remarks>
    /// The work runs after the inbox record is inserted (so a duplicate never runs it) and before the dead letters and
    /// the outbox entries; it gets a <see cref="PostgresMessageSession"/> on the commit's transaction.
    /// </remarks>
    public async ValueTask<MessageCommitResult> CommitAsync(MessageTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        cancellationToken.ThrowIfCancellationRequested();
        // Checked before anything is written: a commit takes effect whole or not at all.
        foreach (var o in transaction.Outgoing) InMemoryMessageStore.Validate(o);
        var now = Now;
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        // Any failure below leaves the transaction uncommitted, and disposing it rolls everything back (the work's
        // writes too) before the exception reaches the caller.
        var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        if (transaction.Inbox is { } record)
        {
            // The primary key decides: of two racing commits (on this node or another) one inserts; the other waits
            // for the first's row, then inserts nothing (or inserts, if the first rolled back).
            using var inbox = new NpgsqlCommand($"INSERT INTO {_s}.msg_inbox(inbox, message_id, handled_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", c, tx);
            inbox.Parameters.AddWithValue(NpgsqlDbType.Text, record.Inbox);
            inbox.Parameters.AddWithValue(NpgsqlDbType.Uuid, record.MessageId.Value);
            inbox.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, now);
            if (await inbox.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            {
                await tx.RollbackAsync(cancellationToken).ConfigureAwait(false);
                return MessageCommitResult.Duplicate;
            }
        }
        if (transaction.Work.Count > 0)
        {
            var session = new PostgresMessageSession(c, tx);
            // MessageWork refuses a session of another type with the InvalidOperationException naming both.
            foreach (var w in transaction.Work) await w.RunAsync(session, cancellationToken).ConfigureAwait(false);
        }
        // Dead letters before the outbox: the outbox lock must be the last lock a commit takes (a holder then waits
        // for nothing but its COMMIT), and a dead letter may wait for the row of the letter that holds its key.
        if (transaction.DeadLetters.Count > 0)
        {
            using var letters = new NpgsqlBatch(c, tx);
            foreach (var d in transaction.DeadLetters) letters.BatchCommands.Add(InsertDeadLetter(d, now));
            await letters.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        if (transaction.Outgoing.Count > 0)
        {
            using var outbox = new NpgsqlBatch(c, tx);
            AddOutbox(outbox, transaction.Outgoing, now);
            await outbox.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        if (transaction.Outgoing.Count > 0) _signal.Set();
        return MessageCommitResult.Committed;
    }

    /// <summary>
    /// One dead letter, unless the store already has one of its message and source (the unique index; a redelivery that
    /// failed again after a crash between the commit and the broker ack). Replay deletes the letter, so a replayed copy
    /// can be dead-lettered anew.
    /// </summary>
    private NpgsqlBatchCommand InsertDeadLetter(DeadLetterRecord d, DateTimeOffset now)
    {
        var cmd = new NpgsqlBatchCommand();
        var p = cmd.Parameters;
        var (m, source, f) = (d.Message, d.Source, d.Failure);
        var kind = Param(p, NpgsqlDbType.Text, source.Kind.ToString());
        var name = Param(p, NpgsqlDbType.Text, source.Name);
        var group = Param(p, NpgsqlDbType.Text, source.Group);
        var values = string.Join(", ",
            kind, name, group,
            Param(p, NpgsqlDbType.Integer, source.Partition),
            Param(p, NpgsqlDbType.Bigint, source.Offset),
            Param(p, NpgsqlDbType.Text, f.ExceptionType),
            Param(p, NpgsqlDbType.Text, f.Message),
            Param(p, NpgsqlDbType.Text, f.StackTrace),
            Param(p, NpgsqlDbType.Integer, f.Attempts),
            Param(p, NpgsqlDbType.TimestampTz, Utc(f.FirstFailure)),
            Param(p, NpgsqlDbType.TimestampTz, Utc(f.LastFailure)),
            Param(p, NpgsqlDbType.TimestampTz, now));
        // Behind the letter that holds its key (if any) whether or not it holds the key itself, as in memory; it holds
        // the key only when it has one. FOR SHARE keeps a replay or discard from removing that letter until this commits,
        // so the replay, which locks its letters first, then finds this one behind it and takes it along.
        var behind = m.PartitionKey is { } key
            ? $"(SELECT id FROM {_s}.msg_store_dead_letters WHERE hold_key AND source_kind = {kind} AND source = {name} AND {(source.Group is null ? "grp IS NULL" : $"grp = {group}")} AND partition_key = {Param(p, NpgsqlDbType.Text, key)} ORDER BY id LIMIT 1 FOR SHARE)"
            : "NULL";
        var hold = Param(p, NpgsqlDbType.Boolean, d.HoldKey && m.PartitionKey is not null);
        var message = BindMessage(p, m);
        cmd.CommandText = $"""
            INSERT INTO {_s}.msg_store_dead_letters(source_kind, source, grp, source_partition, source_offset, exception_type, error, stack_trace, attempts, first_failure, last_failure, dead_lettered_at, held_behind, hold_key, {MessageColumnNames})
            VALUES ({values}, {behind}, {hold}, {message})
            ON CONFLICT DO NOTHING
            """;
        return cmd;
    }

    /// <summary>
    /// Adds to <paramref name="batch"/> the outbox lock, one insert per message (ids in list order) and the
    /// notification, which PostgreSQL delivers only if the transaction commits.
    /// </summary>
    private void AddOutbox(NpgsqlBatch batch, IEnumerable<OutgoingMessage> messages, DateTimeOffset now)
    {
        // Held until COMMIT: the next transaction takes its ids only once these are visible, so id order is commit order.
        var locking = new NpgsqlBatchCommand("SELECT pg_advisory_xact_lock(hashtext($1))");
        locking.Parameters.AddWithValue(NpgsqlDbType.Text, _outboxLock);
        batch.BatchCommands.Add(locking);
        foreach (var o in messages)
        {
            var cmd = new NpgsqlBatchCommand();
            var p = cmd.Parameters;
            var values = string.Join(", ",
                Param(p, NpgsqlDbType.Text, o.Topic is null ? "queue" : "topic"),
                Param(p, NpgsqlDbType.Text, o.Topic is { } topic ? topic.Value : o.Queue!.Value.Value),
                Param(p, NpgsqlDbType.TimestampTz, o.DeliverAt is { } at ? Utc(at) : null),
                Param(p, NpgsqlDbType.TimestampTz, now),
                BindMessage(p, o.Message));
            cmd.CommandText = $"INSERT INTO {_s}.msg_outbox(dest_kind, destination, deliver_at, enqueued_at, {MessageColumnNames}) VALUES ({values})";
            batch.BatchCommands.Add(cmd);
        }
        batch.BatchCommands.Add(new NpgsqlBatchCommand($"NOTIFY {_channel}"));
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<OutboxEntry>> ReadDueOutboxAsync(int max, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        // Unscheduled entries in id order and due scheduled ones, each through the (deliver_at, id) index, then merged:
        // one scan by id would step over every entry scheduled for later on each poll.
        var columns = "id, dest_kind, destination, deliver_at, enqueued_at, " + MessageColumnNames;
        using var cmd = new NpgsqlCommand($"""
            SELECT {columns} FROM (
                (SELECT {columns} FROM {_s}.msg_outbox WHERE deliver_at IS NULL ORDER BY id LIMIT $1)
                UNION ALL
                (SELECT {columns} FROM {_s}.msg_outbox WHERE deliver_at <= $2 ORDER BY id LIMIT $1)
            ) due ORDER BY id LIMIT $1
            """, c);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Integer, max);
        cmd.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, Now);
        var entries = new List<OutboxEntry>();
        var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var rScope = r.ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var destination = r.GetString(2);
            var toTopic = r.GetString(1) == "topic";
            var message = new OutgoingMessage(
                ReadMessage(r, 5),
                toTopic ? new TopicName(destination) : default(TopicName?),
                toTopic ? default(QueueName?) : QueueName.Parse(destination),
                r.IsDBNull(3) ? null : r.GetFieldValue<DateTimeOffset>(3));
            entries.Add(new OutboxEntry(r.GetInt64(0), message, r.GetFieldValue<DateTimeOffset>(4)));
        }
        return entries;
    }

    /// <inheritdoc />
    public async ValueTask CompleteOutboxAsync(IReadOnlyList<long> ids, Lease? fence = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.Count == 0 && fence is null) return;
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        // In the transaction of the delete: the lease row stays locked until it commits, so the lease cannot change
        // hands between the check and the delete.
        if (fence is not null) await PostgresLeaseStore.CheckFenceAsync(_store, c, tx, fence, cancellationToken).ConfigureAwait(false);
        if (ids.Count > 0)
        {
            using var delete = new NpgsqlCommand($"DELETE FROM {_s}.msg_outbox WHERE id = ANY($1)", c, tx);
            delete.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bigint, ids.ToArray());
            await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<long> CountOutboxAsync(CancellationToken cancellationToken = default)
    {
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"SELECT count(*) FROM {_s}.msg_outbox", c);
        return (long)(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <inheritdoc />
    public async ValueTask<long?> FindHoldAsync(MessageSource source, string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(key);
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        // The oldest holding letter of the key wins, as in memory; a source without a group matches only one without
        // (grp IS NULL rather than IS NOT DISTINCT FROM, which no index serves).
        using var cmd = new NpgsqlCommand($"SELECT id FROM {_s}.msg_store_dead_letters WHERE hold_key AND source_kind = $1 AND source = $2 AND partition_key = $3 AND {(source.Group is null ? "grp IS NULL" : "grp = $4")} ORDER BY id LIMIT 1", c);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, source.Kind.ToString());
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, source.Name);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, key);
        if (source.Group is not null) cmd.Parameters.AddWithValue(NpgsqlDbType.Text, source.Group);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as long?;
    }

    /// <inheritdoc />
    /// <remarks>Read in pages by id, each on a connection of its own, so a long listing holds no connection while the caller works.</remarks>
    public async IAsyncEnumerable<DeadLetter> ListDeadLettersAsync(DeadLetterFilter filter, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        const int PageSize = 256;
        var remaining = filter.Limit is { } limit ? Math.Max(0, limit) : int.MaxValue;
        var after = long.MinValue;
        while (remaining > 0)
        {
            var page = new List<DeadLetter>(Math.Min(PageSize, remaining));
            var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using (c.ConfigureAwait(false))
            {
                using var cmd = new NpgsqlCommand { Connection = c };
                var p = cmd.Parameters;
                cmd.CommandText = $"SELECT {DeadLetterColumns} FROM {_s}.msg_store_dead_letters WHERE {Where(p, filter)} AND id > {Param(p, NpgsqlDbType.Bigint, after)} ORDER BY id LIMIT {Param(p, NpgsqlDbType.Integer, Math.Min(PageSize, remaining))}";
                var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (r.ConfigureAwait(false))
                {
                    while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) page.Add(ReadDeadLetter(r));
                }
            }
            foreach (var d in page)
            {
                cancellationToken.ThrowIfCancellationRequested();
                yield return d;
            }
            if (page.Count < Math.Min(PageSize, remaining)) yield break;
            remaining -= page.Count;
            after = page[^1].Id;
        }
    }

    /// <inheritdoc />
    public async ValueTask<int> ReplayDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        var now = Now;
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        await LockDeadLettersAsync(c, tx, cancellationToken).ConfigureAwait(false);

        // The chosen letters are locked first, in a statement of their own: a commit that is adding a letter behind one
        // of them holds that row FOR SHARE, so this waits for it, and the next statement (read committed: a fresh
        // snapshot) finds the new letter among the followers.
        var chosen = new List<long>();
        using (var select = new NpgsqlCommand { Connection = c, Transaction = tx })
        {
            select.CommandText = $"SELECT id FROM {_s}.msg_store_dead_letters WHERE {Where(select.Parameters, filter)} ORDER BY id{Limit(filter)} FOR UPDATE";
            var r = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (r.ConfigureAwait(false))
            {
                while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) chosen.Add(r.GetInt64(0));
            }
        }
        if (chosen.Count == 0) return 0;

        // The letters held behind a chosen one (and behind those) come along, in order: left behind, they would
        // overtake it later.
        var letters = new List<DeadLetter>();
        using (var held = new NpgsqlCommand($"""
            WITH RECURSIVE held(id) AS (
                SELECT unnest($1::bigint[])
                UNION
                SELECT d.id FROM {_s}.msg_store_dead_letters d JOIN held h ON d.held_behind = h.id
            )
            SELECT {DeadLetterColumns} FROM {_s}.msg_store_dead_letters WHERE id IN (SELECT id FROM held) ORDER BY id FOR UPDATE
            """, c, tx))
        {
            held.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bigint, chosen.ToArray());
            var r = await held.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (r.ConfigureAwait(false))
            {
                while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) letters.Add(ReadDeadLetter(r));
            }
        }

        // Every copy is made before anything is written, so a letter that cannot be addressed fails the replay first.
        var copies = letters.Select(d => new OutgoingMessage(InMemoryMessageStore.Replayed(d), null, d.Source.ReplayQueue)).ToList();
        using (var write = new NpgsqlBatch(c, tx))
        {
            var delete = new NpgsqlBatchCommand($"DELETE FROM {_s}.msg_store_dead_letters WHERE id = ANY($1)");
            delete.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bigint, letters.Select(d => d.Id).ToArray());
            write.BatchCommands.Add(delete);
            AddOutbox(write, copies, now);
            await write.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        _signal.Set();
        return letters.Count;
    }

    /// <summary>
    /// Replays and discards run one at a time per schema (operators' actions, rare): a second replay of the same filter
    /// waits, then its statements see the first one's deletions, and two of them cannot deadlock on each other's rows.
    /// </summary>
    private async Task LockDeadLettersAsync(NpgsqlConnection c, NpgsqlTransaction tx, CancellationToken ct)
    {
        using var cmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext($1))", c, tx);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, _deadLetterLock);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<int> DiscardDeadLettersAsync(DeadLetterFilter filter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        await LockDeadLettersAsync(c, tx, cancellationToken).ConfigureAwait(false);
        int deleted;
        using (var cmd = new NpgsqlCommand { Connection = c, Transaction = tx })
        {
            cmd.CommandText = $"DELETE FROM {_s}.msg_store_dead_letters WHERE id IN (SELECT id FROM {_s}.msg_store_dead_letters WHERE {Where(cmd.Parameters, filter)} ORDER BY id{Limit(filter)} FOR UPDATE)";
            deleted = await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return deleted;
    }

    /// <inheritdoc />
    public async ValueTask<long> PurgeInboxAsync(DateTimeOffset olderThan, CancellationToken cancellationToken = default)
    {
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"DELETE FROM {_s}.msg_inbox WHERE handled_at < $1", c);
        cmd.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, Utc(olderThan));
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Wakes for commits through any message store over the same event store in this process at once, and for other
    /// nodes' commits through <c>LISTEN</c> (started by the first wait). The timeout runs on the store's clock, as
    /// the other stores' do.
    /// </remarks>
    public async Task WaitForOutboxAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        // Taken before anything else, so a commit from here on completes it.
        var signal = _signal.Current;
        lock (_listenGate)
        {
            _waiters++;
            _lastWait = Environment.TickCount64;
            // The listener outlives this wait (it serves the next ones): not cancelled with it.
            if (_listener is null && !_disposed) _listener = Task.Run(ListenAsync, CancellationToken.None);
        }
        try
        {
            await signal.WaitAsync(timeout, _store.Options.TimeProvider, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Time to look anyway: scheduled messages fall due without a signal, and a notification may have been lost.
        }
        finally
        {
            lock (_listenGate)
            {
                _waiters--;
                _lastWait = Environment.TickCount64;
            }
        }
    }

    private async Task ListenAsync()
    {
        while (true)
        {
            try
            {
                var c = await _store.OpenConnectionAsync(_stop.Token).ConfigureAwait(false);
                await using var cScope = c.ConfigureAwait(false);
                c.Notification += (_, _) => _signal.Set();
                using (var listen = new NpgsqlCommand($"LISTEN {_channel}", c)) await listen.ExecuteNonQueryAsync(_stop.Token).ConfigureAwait(false);
                // Commits made while nobody listened (before the first wait, or while reconnecting): let the waiters look.
                _signal.Set();
                while (true)
                {
                    // Wakes now and then (real time, not the store's clock: this is about a connection) to give the
                    // connection back once nobody has waited for a while: the bus stopped, or the event store is gone.
                    if (!await c.WaitAsync(ListenerTick, _stop.Token).ConfigureAwait(false) && StopListeningIfIdle()) return;
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                // The event store was disposed: waits go on with the in-process signal and their timeout.
                lock (_listenGate) _listener = null;
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                _log.LogWarning(ex, "The listener for outbox commits in {Schema} lost its connection; the outbox dispatcher polls until it reconnects", _s);
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), _stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                if (StopListeningIfIdle()) return;
            }
        }
    }

    /// <summary>True (and the listener forgotten, so the next wait starts another) when nobody waited for a while.</summary>
    private bool StopListeningIfIdle()
    {
        lock (_listenGate)
        {
            if (_waiters > 0 || Environment.TickCount64 - _lastWait < ListenerIdleMilliseconds) return false;
            _listener = null;
            return true;
        }
    }

    /// <summary>Stops listening for other nodes' outbox commits; the event store stays open (it is not this store's).</summary>
    public async ValueTask DisposeAsync()
    {
        Task? listener;
        lock (_listenGate)
        {
            if (_disposed) return;
            _disposed = true;
            listener = _listener;
        }
        await _stop.CancelAsync().ConfigureAwait(false);
        if (listener is not null)
        {
            try
            {
                await listener.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // The listener ends by cancellation; anything else was logged.
            }
        }
        _stop.Dispose();
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

/// <summary>
/// The session a handler's work gets on the PostgreSQL message store (<c>ctx.Enlist&lt;PostgresMessageSession&gt;(…)</c>):
/// the connection and transaction of the commit that records the message in the inbox and writes its outgoing
/// messages, so the handler's own writes take effect exactly when the message counts as handled.
/// </summary>
/// <remarks>Valid only while the work runs; do not commit, roll back or keep the transaction or the connection.</remarks>
public sealed class PostgresMessageSession
{
    internal PostgresMessageSession(NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        Connection = connection;
        Transaction = transaction;
    }

    /// <summary>The commit's connection.</summary>
    public NpgsqlConnection Connection { get; }

    /// <summary>The commit's open transaction: commands of the work run in it.</summary>
    public NpgsqlTransaction Transaction { get; }

    /// <summary>A command on <see cref="Connection"/> in <see cref="Transaction"/> (dispose it).</summary>
    public NpgsqlCommand CreateCommand(string sql) => new(sql, Connection, Transaction);
}
