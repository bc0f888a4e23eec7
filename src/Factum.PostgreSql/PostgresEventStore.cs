using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Factum.Store;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace Factum.PostgreSql;

/// <summary>
/// The event store in a PostgreSQL database that several application nodes share.
/// </summary>
/// <remarks>
/// <para>
/// <b>A gap-free, commit-ordered global log.</b> Positions are assigned inside the writing transaction while it holds
/// the row lock of the one-row table <c>head</c>, and <c>head</c> is set to the last position in that same transaction.
/// The lock is held until the commit, so the next writer (on this node or another) gets higher positions only after the
/// previous ones are visible: readers always see a prefix of the log, and <c>head</c> is its high-water mark — no reader
/// waits out a gap, and none can pass one. A rolled-back write gives its positions back.
/// </para>
/// <para>
/// <b>Group commit.</b> Each store instance has one writer: appends, metadata changes and deletes queued while the
/// previous commit runs share the next transaction (each in a savepoint of its own, so one failing expectation fails only
/// its caller) and one WAL flush. Every write returns only when committed (<c>synchronous_commit</c> as configured on
/// the server, <c>on</c> by default).
/// </para>
/// <para>
/// <b>Live followers.</b> A commit that appended sends <c>NOTIFY</c>; each instance listens and wakes its waiters at
/// once, and also looks at the head every <see cref="PostgresEventStoreOptions.PollInterval"/> in case a notification was
/// lost.
/// </para>
/// </remarks>
public sealed class PostgresEventStore : IEventStore, Subscriptions.IAppendNotifier, Tracing.ICorrelationIndex, IAsyncDisposable
{
    private const string EventColumns = "position, stream_id, stream_version, event_id, type, schema_version, created_at, correlation_id, causation_id, metadata, payload";
    private readonly PostgresEventStoreOptions _options;
    private readonly NpgsqlDataSource _source;
    private readonly string _s;
    private readonly string _channel;
    private readonly Channel<WriteRequest> _writes = Channel.CreateUnbounded<WriteRequest>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Subscriptions.AppendSignal _signal = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _ready;
    private readonly Task _writer;
    private readonly Task _listener;
    private readonly ILogger _log;
    private int _disposed;

    /// <summary>Opens the store: connects, applies pending migrations (<see cref="PostgresEventStoreOptions.MigrateOnStart"/>) and starts its writer.</summary>
    /// <remarks>Connection and schema problems surface on the first call; <see cref="OpenAsync(PostgresEventStoreOptions, CancellationToken)"/> surfaces them at once.</remarks>
    public PostgresEventStore(PostgresEventStoreOptions options)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _s = options.Schema;
        _channel = $"factum_{options.Schema}";
        _source = NpgsqlDataSource.Create(options.ConnectionString);
        _log = options.LoggerFactory.CreateLogger("Factum.PostgreSql");
        _ready = PostgresSchema.EnsureAsync(_source, _s, options.MigrateOnStart, _stop.Token);
        _writer = Task.Run(WriterLoopAsync);
        _listener = Task.Run(ListenLoopAsync);
    }

    /// <summary>Opens the store and waits until it is ready (connected, schema current).</summary>
    public static async Task<PostgresEventStore> OpenAsync(PostgresEventStoreOptions options, CancellationToken cancellationToken = default)
    {
        var store = new PostgresEventStore(options);
        try
        {
            await store._ready.WaitAsync(cancellationToken).ConfigureAwait(false);
            return store;
        }
        catch
        {
            await store.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The options it was opened with.</summary>
    public PostgresEventStoreOptions Options => _options;

    /// <summary>The schema its tables live in.</summary>
    public string Schema => _s;

    /// <summary>The pooled data source it connects through (for stores that keep their tables beside the events).</summary>
    internal NpgsqlDataSource DataSource => _source;

    private DateTimeOffset Now
    {
        get
        {
            // PostgreSQL keeps microseconds: round here, so what an append returns is what a read returns.
            var now = _options.TimeProvider.GetUtcNow();
            return new DateTimeOffset(now.UtcTicks - (now.UtcTicks % 10), TimeSpan.Zero);
        }
    }

    /// <summary>A pooled connection, once the store is ready (the stores beside the events use it).</summary>
    internal async Task<NpgsqlConnection> OpenConnectionAsync(CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this);
        await _ready.WaitAsync(ct).ConfigureAwait(false);
        return await _source.OpenConnectionAsync(ct).ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ writes

    /// <inheritdoc />
    public async Task<AppendResult> AppendAsync(StreamId streamId, ExpectedVersion expectedVersion, IReadOnlyList<EventData> events, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var prepared = AppendPreparation.Prepare(streamId, events, _options, null);
        var results = (IReadOnlyList<AppendResult>)(await EnqueueAsync(new AppendRequest([(streamId, expectedVersion, prepared)]), cancellationToken).ConfigureAwait(false))!;
        return results[0];
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<AppendResult>> AppendMultipleAsync(IReadOnlyList<StreamAppend> appends, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var prepared = AppendPreparation.PrepareMany(appends, _options);
        return (IReadOnlyList<AppendResult>)(await EnqueueAsync(new AppendRequest([.. prepared.Select(p => (p.Append.StreamId, p.Append.ExpectedVersion, p.Events))]), cancellationToken).ConfigureAwait(false))!;
    }

    /// <inheritdoc />
    public async Task SetStreamMetadataAsync(StreamId streamId, StreamMetadata metadata, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        if (streamId == default) throw new ArgumentException("The stream id is default(StreamId); pass a real stream id.", nameof(streamId));
        await EnqueueAsync(new MetadataRequest(streamId, metadata, MetadataCodec.Encode(metadata.Custom)), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task DeleteStreamAsync(StreamId streamId, ExpectedVersion expectedVersion, DeleteMode mode, CancellationToken cancellationToken = default)
    {
        if (streamId == default) throw new ArgumentException("The stream id is default(StreamId); pass a real stream id.", nameof(streamId));
        await EnqueueAsync(new DeleteRequest(streamId, expectedVersion, mode), cancellationToken).ConfigureAwait(false);
    }

    private async Task<object?> EnqueueAsync(WriteRequest request, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this);
        await _ready.WaitAsync(ct).ConfigureAwait(false);
        ObjectDisposedException.ThrowIf(!_writes.Writer.TryWrite(request), this);
        // Cancelling the wait does not withdraw a write the writer may already be committing: the caller learns nothing
        // of its outcome, as with any cancelled call, and a retry with the same event ids is recognised.
        return await request.Done.Task.WaitAsync(ct).ConfigureAwait(false);
    }

    private async Task WriterLoopAsync()
    {
        var batch = new List<WriteRequest>();
        try
        {
            await _ready.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Every write fails with the reason the store could not open.
            await foreach (var r in _writes.Reader.ReadAllAsync().ConfigureAwait(false)) r.Done.TrySetException(ex);
            return;
        }
        try
        {
            while (await _writes.Reader.WaitToReadAsync(_stop.Token).ConfigureAwait(false))
            {
                batch.Clear();
                while (batch.Count < _options.MaxWritesPerCommit && _writes.Reader.TryRead(out var r)) batch.Add(r);
                await CommitAsync(batch).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        while (_writes.Reader.TryRead(out var left)) left.Done.TrySetException(new ObjectDisposedException(nameof(PostgresEventStore)));
    }

    private async Task CommitAsync(List<WriteRequest> batch)
    {
        var outcomes = new object?[batch.Count];
        var appended = false;
        try
        {
            var c = await _source.OpenConnectionAsync(_stop.Token).ConfigureAwait(false);
            await using var cScope = c.ConfigureAwait(false);
            var tx = await c.BeginTransactionAsync(_stop.Token).ConfigureAwait(false);
            await using var txScope = tx.ConfigureAwait(false);
            long head;
            using (var lockHead = new NpgsqlCommand($"SELECT position FROM {_s}.head WHERE id = 1 FOR UPDATE", c, tx))
                head = (long)(await lockHead.ExecuteScalarAsync(_stop.Token).ConfigureAwait(false))!;
            var ctx = new WriteContext(this, c, tx, head + 1, Now);
            for (var i = 0; i < batch.Count; i++)
            {
                var mark = ctx.NextPosition;
                await ctx.ExecAsync("SAVEPOINT w").ConfigureAwait(false);
                try
                {
                    outcomes[i] = await batch[i].ExecuteAsync(ctx).ConfigureAwait(false);
                    await ctx.ExecAsync("RELEASE SAVEPOINT w").ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException && c.State == System.Data.ConnectionState.Open && ex is not NpgsqlException { IsTransient: true })
                {
                    // This write's own failure (an expectation, a tombstone): undo it alone, keep the others.
                    await ctx.ExecAsync("ROLLBACK TO SAVEPOINT w").ConfigureAwait(false);
                    ctx.NextPosition = mark;
                    outcomes[i] = ExceptionDispatchInfo.Capture(ex);
                }
            }
            if (ctx.NextPosition - 1 > head)
            {
                appended = true;
                await ctx.ExecAsync($"UPDATE {_s}.head SET position = {ctx.NextPosition - 1} WHERE id = 1").ConfigureAwait(false);
                await ctx.ExecAsync($"NOTIFY {_channel}, '{ctx.NextPosition - 1}'").ConfigureAwait(false);
            }
            if (_options.BeforeCommit is { } hook) await hook(_stop.Token).ConfigureAwait(false);
            await tx.CommitAsync(_stop.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The commit itself failed (connection lost, server down, shutting down): no write of this group is known to
            // be durable; each caller gets the error (an append retried with the same event ids is recognised if it did commit).
            FactumLog.CommitFailed(_log, ex, _s, batch.Count);
            foreach (var r in batch) r.Done.TrySetException(ex);
            return;
        }
        for (var i = 0; i < batch.Count; i++)
        {
            if (outcomes[i] is ExceptionDispatchInfo failed) batch[i].Done.TrySetException(failed.SourceException);
            else batch[i].Done.TrySetResult(outcomes[i]);
        }
        if (appended) _signal.Notify();
    }

    /// <summary>The writer's transaction: the connection, the next position, the commit's timestamp.</summary>
    private sealed class WriteContext(PostgresEventStore store, NpgsqlConnection connection, NpgsqlTransaction transaction, long nextPosition, DateTimeOffset now)
    {
        public NpgsqlConnection Connection { get; } = connection;

        public NpgsqlTransaction Transaction { get; } = transaction;

        public long NextPosition { get; set; } = nextPosition;

        public DateTimeOffset Now { get; } = now;

        public string S => store._s;

        public NpgsqlCommand Command(string sql) => new(sql, Connection, Transaction);

        public async Task ExecAsync(string sql)
        {
            using var cmd = Command(sql);
            await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
        }

        /// <summary>The stream's head and metadata row, as this transaction sees it (writers are serialized by the head lock).</summary>
        public async Task<StreamHead> LoadHeadAsync(StreamId streamId)
        {
            using var cmd = Command($"SELECT state, last_version, start_version FROM {S}.streams WHERE stream_id = $1");
            cmd.Parameters.AddWithValue(streamId.Value);
            var r = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
            await using var rScope = r.ConfigureAwait(false);
            return await r.ReadAsync().ConfigureAwait(false) ? new StreamHead((StreamState)r.GetInt16(0), r.GetInt64(1), r.GetInt64(2)) : StreamHead.None;
        }
    }

    private abstract class WriteRequest
    {
        public TaskCompletionSource<object?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public abstract Task<object?> ExecuteAsync(WriteContext ctx);
    }

    /// <summary>Answers the idempotency rules' questions inside the writer's transaction.</summary>
    private sealed class Lookup(WriteContext ctx, StreamId streamId) : IStreamLookup
    {
        public IReadOnlyList<EventId> ReadIds(long fromVersion, int count)
        {
            using var cmd = ctx.Command($"SELECT event_id FROM {ctx.S}.events WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3");
            cmd.Parameters.AddWithValue(streamId.Value);
            cmd.Parameters.AddWithValue(fromVersion);
            cmd.Parameters.AddWithValue(count);
            var ids = new List<EventId>(count);
            using var r = cmd.ExecuteReader();
            while (r.Read()) ids.Add(new EventId(r.GetGuid(0)));
            return ids;
        }

        public long? FindVersion(EventId eventId)
        {
            using var cmd = ctx.Command($"SELECT stream_version FROM {ctx.S}.events WHERE stream_id = $1 AND event_id = $2 ORDER BY stream_version LIMIT 1");
            cmd.Parameters.AddWithValue(streamId.Value);
            cmd.Parameters.AddWithValue(eventId.Value);
            return cmd.ExecuteScalar() as long?;
        }
    }

    private sealed class AppendRequest(IReadOnlyList<(StreamId StreamId, ExpectedVersion Expected, PreparedEvent[] Events)> appends) : WriteRequest
    {
        public override async Task<object?> ExecuteAsync(WriteContext ctx)
        {
            // Check every stream before writing any, so one failing expectation writes nothing.
            var heads = new StreamHead[appends.Count];
            var decisions = new AppendDecision[appends.Count];
            for (var i = 0; i < appends.Count; i++)
            {
                var (id, expected, events) = appends[i];
                heads[i] = await ctx.LoadHeadAsync(id).ConfigureAwait(false);
                decisions[i] = AppendRules.Decide(id, heads[i], expected, events, new Lookup(ctx, id));
            }
            var results = new AppendResult[appends.Count];
            for (var i = 0; i < appends.Count; i++) results[i] = await ApplyAsync(ctx, appends[i].StreamId, heads[i], decisions[i], appends[i].Events).ConfigureAwait(false);
            return results;
        }

        private static async Task<AppendResult> ApplyAsync(WriteContext ctx, StreamId streamId, StreamHead head, AppendDecision decision, PreparedEvent[] events)
        {
            if (decision.IsIdempotent)
            {
                using var cmd = ctx.Command($"SELECT min(position), max(position) FROM {ctx.S}.events WHERE stream_id = $1 AND stream_version BETWEEN $2 AND $3");
                cmd.Parameters.AddWithValue(streamId.Value);
                cmd.Parameters.AddWithValue(decision.FirstVersion);
                cmd.Parameters.AddWithValue(decision.FirstVersion + events.Length - 1);
                var r = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
                await using var rScope = r.ConfigureAwait(false);
                await r.ReadAsync().ConfigureAwait(false);
                return new AppendResult(streamId, new StreamVersion(decision.FirstVersion + events.Length - 1), r.GetInt64(0), r.GetInt64(1), false);
            }
            if (events.Length == 0)
            {
                using var cmd = ctx.Command($"SELECT last_position FROM {ctx.S}.streams WHERE stream_id = $1");
                cmd.Parameters.AddWithValue(streamId.Value);
                var pos = await cmd.ExecuteScalarAsync().ConfigureAwait(false) as long? ?? 0;
                return new AppendResult(streamId, head.Actual, pos, pos, false);
            }
            var first = ctx.NextPosition;
            var version = head.LastVersion + 1;
            var category = streamId.Category;
            using (var batch = new NpgsqlBatch(ctx.Connection, ctx.Transaction))
            {
                foreach (var e in events)
                {
                    var insert = new NpgsqlBatchCommand($"INSERT INTO {ctx.S}.events ({EventColumns}, category) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)");
                    insert.Parameters.AddWithValue(NpgsqlDbType.Bigint, ctx.NextPosition++);
                    insert.Parameters.AddWithValue(NpgsqlDbType.Text, streamId.Value);
                    insert.Parameters.AddWithValue(NpgsqlDbType.Bigint, version++);
                    insert.Parameters.AddWithValue(NpgsqlDbType.Uuid, e.EventId.Value);
                    insert.Parameters.AddWithValue(NpgsqlDbType.Text, e.Type);
                    insert.Parameters.AddWithValue(NpgsqlDbType.Integer, e.SchemaVersion);
                    insert.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, ctx.Now);
                    insert.Parameters.AddWithValue(NpgsqlDbType.Text, e.CorrelationId);
                    insert.Parameters.AddWithValue(NpgsqlDbType.Text, (object?)e.CausationId ?? DBNull.Value);
                    insert.Parameters.AddWithValue(NpgsqlDbType.Bytea, (object?)e.MetadataJson ?? DBNull.Value);
                    insert.Parameters.AddWithValue(NpgsqlDbType.Bytea, e.Payload.ToArray());
                    insert.Parameters.AddWithValue(NpgsqlDbType.Text, category);
                    batch.BatchCommands.Add(insert);
                }
                // A soft-deleted stream is re-created: its new life starts after its old last version.
                var upsert = new NpgsqlBatchCommand($"""
                    INSERT INTO {ctx.S}.streams AS s (stream_id, category, state, start_version, last_version, last_position, created_at, updated_at)
                    VALUES ($1, $2, 1, 0, $3, $4, $5, $5)
                    ON CONFLICT (stream_id) DO UPDATE SET
                        state = 1,
                        start_version = CASE WHEN s.state = 2 THEN s.last_version + 1 ELSE s.start_version END,
                        last_version = EXCLUDED.last_version,
                        last_position = EXCLUDED.last_position,
                        created_at = COALESCE(s.created_at, EXCLUDED.created_at),
                        updated_at = EXCLUDED.updated_at
                    """);
                upsert.Parameters.AddWithValue(NpgsqlDbType.Text, streamId.Value);
                upsert.Parameters.AddWithValue(NpgsqlDbType.Text, category);
                upsert.Parameters.AddWithValue(NpgsqlDbType.Bigint, version - 1);
                upsert.Parameters.AddWithValue(NpgsqlDbType.Bigint, ctx.NextPosition - 1);
                upsert.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, ctx.Now);
                batch.BatchCommands.Add(upsert);
                await batch.ExecuteNonQueryAsync().ConfigureAwait(false);
            }
            return new AppendResult(streamId, new StreamVersion(version - 1), first, ctx.NextPosition - 1, true);
        }
    }

    private sealed class MetadataRequest(StreamId streamId, StreamMetadata metadata, byte[]? custom) : WriteRequest
    {
        public override async Task<object?> ExecuteAsync(WriteContext ctx)
        {
            var head = await ctx.LoadHeadAsync(streamId).ConfigureAwait(false);
            if (head.State == StreamState.Tombstoned) throw new StreamDeletedException(streamId);
            using var cmd = ctx.Command($"""
                INSERT INTO {ctx.S}.streams AS s (stream_id, category, state, updated_at, max_age_ms, max_count, truncate_before, custom_metadata)
                VALUES ($1, $2, 0, $3, $4, $5, $6, $7)
                ON CONFLICT (stream_id) DO UPDATE SET updated_at = EXCLUDED.updated_at, max_age_ms = EXCLUDED.max_age_ms,
                    max_count = EXCLUDED.max_count, truncate_before = EXCLUDED.truncate_before, custom_metadata = EXCLUDED.custom_metadata
                """);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Text, streamId.Value);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Text, streamId.Category);
            cmd.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, ctx.Now);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, metadata.MaxAge is { } age ? (long)age.TotalMilliseconds : DBNull.Value);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, (object?)metadata.MaxCount ?? DBNull.Value);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, metadata.TruncateBefore is { } tb ? tb.Value : DBNull.Value);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Bytea, (object?)custom ?? DBNull.Value);
            await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
            return null;
        }
    }

    private sealed class DeleteRequest(StreamId streamId, ExpectedVersion expected, DeleteMode mode) : WriteRequest
    {
        public override async Task<object?> ExecuteAsync(WriteContext ctx)
        {
            var head = await ctx.LoadHeadAsync(streamId).ConfigureAwait(false);
            AppendRules.CheckDelete(streamId, head, expected);
            string sql;
            if (mode == DeleteMode.Hard)
            {
                sql = $"""
                    INSERT INTO {ctx.S}.streams AS s (stream_id, category, state, updated_at) VALUES ($1, $2, 3, $3)
                    ON CONFLICT (stream_id) DO UPDATE SET state = 3, updated_at = EXCLUDED.updated_at
                    """;
            }
            else if (head.State == StreamState.Active)
            {
                // Hidden from reads: the retention bound moves past the last event, and a new append starts a new life.
                sql = $"UPDATE {ctx.S}.streams SET state = 2, truncate_before = last_version + 1, updated_at = $3 WHERE stream_id = $1 AND category = $2";
            }
            else return null;
            using var cmd = ctx.Command(sql);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Text, streamId.Value);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Text, streamId.Category);
            cmd.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, ctx.Now);
            await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
            return null;
        }
    }

    // ------------------------------------------------------------------ reads

    private static RecordedEvent ReadEvent(NpgsqlDataReader r) => new()
    {
        Position = r.GetInt64(0),
        StreamId = StreamId.FromTrusted(r.GetString(1)),
        StreamVersion = r.GetInt64(2),
        EventId = new EventId(r.GetGuid(3)),
        Type = r.GetString(4),
        SchemaVersion = r.GetInt32(5),
        Timestamp = new DateTimeOffset(r.GetFieldValue<DateTime>(6).Ticks, TimeSpan.Zero),
        CorrelationId = r.GetString(7),
        CausationId = r.IsDBNull(8) ? null : r.GetString(8),
        Metadata = r.IsDBNull(9) ? EmptyMetadata.Instance : MetadataCodec.Decode(r.GetFieldValue<byte[]>(9)),
        Payload = r.GetFieldValue<byte[]>(10),
    };

    private async Task<List<RecordedEvent>> PageAsync(string sql, Action<NpgsqlParameterCollection> bind, CancellationToken ct)
    {
        var c = await OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand(sql, c);
        bind(cmd.Parameters);
        var page = new List<RecordedEvent>();
        var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        await using var rScope = r.ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false)) page.Add(ReadEvent(r));
        return page;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<RecordedEvent> ReadStreamAsync(StreamId streamId, ReadStreamOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options ??= ReadStreamOptions.Default;
        var info = await GetStreamInfoAsync(streamId, cancellationToken).ConfigureAwait(false);
        if (info.State is StreamState.NotFound or StreamState.SoftDeleted) throw new StreamNotFoundException(streamId);
        if (info.State == StreamState.Tombstoned) throw new StreamDeletedException(streamId);
        var lastVersion = info.LastVersion?.Value ?? -1;
        var (minVersion, minTicks) = Retention.Window(info.Metadata, lastVersion, _options.TimeProvider.GetUtcNow());
        var minTime = new DateTime(Math.Max(minTicks, DateTime.UnixEpoch.Ticks), DateTimeKind.Utc);
        var forwards = options.Direction == Direction.Forwards;
        var next = options.From?.Value ?? (forwards ? 0 : lastVersion);
        long returned = 0;
        var sql = forwards
            ? $"SELECT {EventColumns} FROM {_s}.events WHERE stream_id = $1 AND stream_version >= $2 AND stream_version >= $3 AND created_at >= $4 ORDER BY stream_version LIMIT $5"
            : $"SELECT {EventColumns} FROM {_s}.events WHERE stream_id = $1 AND stream_version <= $2 AND stream_version >= $3 AND created_at >= $4 ORDER BY stream_version DESC LIMIT $5";
        while (returned < options.MaxCount)
        {
            if (!forwards && next < minVersion) yield break;
            var limit = (int)Math.Min(_options.ReadPageSize, options.MaxCount - returned);
            var page = await PageAsync(sql, p =>
            {
                p.AddWithValue(streamId.Value);
                p.AddWithValue(next);
                p.AddWithValue(minVersion);
                p.AddWithValue(NpgsqlDbType.TimestampTz, minTime);
                p.AddWithValue(limit);
            }, cancellationToken).ConfigureAwait(false);
            if (page.Count == 0) yield break;
            foreach (var e in page)
            {
                returned++;
                yield return e;
            }
            next = page[^1].StreamVersion.Value + (forwards ? 1 : -1);
            if (page.Count < limit) yield break;
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<RecordedEvent> ReadAllAsync(ReadAllOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options ??= ReadAllOptions.Default;
        var forwards = options.Direction == Direction.Forwards;
        var next = forwards ? Math.Max(1, options.From.Value) : options.From.Value;
        var bound = options.To?.Value ?? (forwards ? long.MaxValue : 0);
        var f = options.Filter;
        // Parameters: $1 the next position, $2 the bound, $3 the page size, then one per filter in use.
        var where = forwards ? "position >= $1 AND position <= $2" : "position <= $1 AND position >= $2";
        var filters = new List<string[]>();
        if (f.EventTypes.Count > 0) { filters.Add([.. f.EventTypes]); where += $" AND type = ANY(${filters.Count + 3})"; }
        if (f.Categories.Count > 0) { filters.Add([.. f.Categories]); where += $" AND category = ANY(${filters.Count + 3})"; }
        if (f.StreamPrefixes.Count > 0) { filters.Add([.. f.StreamPrefixes]); where += $" AND EXISTS (SELECT 1 FROM unnest(${filters.Count + 3}::text[]) p WHERE starts_with(stream_id, p))"; }
        var sql = $"SELECT {EventColumns} FROM {_s}.events WHERE {where} ORDER BY position {(forwards ? "" : "DESC")} LIMIT $3";
        long returned = 0;
        while (returned < options.MaxCount && (forwards ? next <= bound : next >= Math.Max(bound, 1)))
        {
            var limit = (int)Math.Min(_options.ReadPageSize, options.MaxCount - returned);
            var page = await PageAsync(sql, p =>
            {
                p.AddWithValue(next);
                p.AddWithValue(bound);
                p.AddWithValue(limit);
                foreach (var values in filters) p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, values);
            }, cancellationToken).ConfigureAwait(false);
            foreach (var e in page)
            {
                returned++;
                yield return e;
            }
            if (page.Count < limit) yield break;
            next = page[^1].Position.Value + (forwards ? 1 : -1);
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<RecordedEvent> ReadCorrelatedAsync(string correlationId, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(correlationId);
        long after = 0;
        while (true)
        {
            var page = await PageAsync($"SELECT {EventColumns} FROM {_s}.events WHERE correlation_id = $1 AND position > $2 ORDER BY position LIMIT $3", p =>
            {
                p.AddWithValue(correlationId);
                p.AddWithValue(after);
                p.AddWithValue(_options.ReadPageSize);
            }, cancellationToken).ConfigureAwait(false);
            foreach (var e in page) yield return e;
            if (page.Count < _options.ReadPageSize) yield break;
            after = page[^1].Position.Value;
        }
    }

    /// <inheritdoc />
    public async Task<GlobalPosition> GetHeadPositionAsync(CancellationToken cancellationToken = default)
    {
        var c = await OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"SELECT position FROM {_s}.head WHERE id = 1", c);
        return (long)(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <inheritdoc />
    public async Task WaitForAppendAsync(GlobalPosition after, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        // Notifications (from this instance's commits and, through LISTEN, other nodes') wake at once; the poll
        // interval bounds how late a lost notification is made up for.
        var started = TimeProvider.System.GetTimestamp();
        while (true)
        {
            var remaining = timeout - TimeProvider.System.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero) return;
            var slice = remaining < _options.PollInterval ? remaining : _options.PollInterval;
            var moved = false;
            await _signal.WaitAsync(async ct => moved = await GetHeadPositionAsync(ct).ConfigureAwait(false) > after, slice, cancellationToken).ConfigureAwait(false);
            if (moved || await GetHeadPositionAsync(cancellationToken).ConfigureAwait(false) > after) return;
        }
    }

    private async Task ListenLoopAsync()
    {
        try
        {
            await _ready.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return; // Reported by every call.
        }
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var c = await _source.OpenConnectionAsync(_stop.Token).ConfigureAwait(false);
                await using var cScope = c.ConfigureAwait(false);
                c.Notification += (_, _) => _signal.Notify();
                using (var listen = new NpgsqlCommand($"LISTEN {_channel}", c)) await listen.ExecuteNonQueryAsync(_stop.Token).ConfigureAwait(false);
                // Anything appended while this listener was not connected: wake the waiters to look.
                _signal.Notify();
                while (!_stop.IsCancellationRequested) await c.WaitAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Followers still poll the head; listen again shortly.
                _log.LogWarning(ex, "The listener for appends to {Schema} lost its connection; followers poll the head until it reconnects", _s);
                try { await Task.Delay(TimeSpan.FromSeconds(1), _stop.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    // ------------------------------------------------------------------ streams

    private const string StreamInfoColumns = "stream_id, state, last_version, last_position, created_at, updated_at, max_age_ms, max_count, truncate_before, custom_metadata";

    private static StreamInfo ReadStreamInfo(NpgsqlDataReader r) => new()
    {
        StreamId = StreamId.FromTrusted(r.GetString(0)),
        State = (StreamState)r.GetInt16(1),
        LastVersion = r.GetInt64(2) >= 0 ? new StreamVersion(r.GetInt64(2)) : null,
        LastPosition = r.IsDBNull(3) ? null : new GlobalPosition(r.GetInt64(3)),
        CreatedAt = r.IsDBNull(4) ? null : new DateTimeOffset(r.GetFieldValue<DateTime>(4).Ticks, TimeSpan.Zero),
        UpdatedAt = new DateTimeOffset(r.GetFieldValue<DateTime>(5).Ticks, TimeSpan.Zero),
        Metadata = new StreamMetadata
        {
            MaxAge = r.IsDBNull(6) ? null : TimeSpan.FromMilliseconds(Math.Clamp(r.GetInt64(6), 1000, (long)StreamMetadata.MaxAgeLimit.TotalMilliseconds)),
            MaxCount = r.IsDBNull(7) ? null : r.GetInt64(7),
            TruncateBefore = r.IsDBNull(8) ? null : new StreamVersion(r.GetInt64(8)),
            Custom = r.IsDBNull(9) ? EmptyMetadata.Instance : MetadataCodec.Decode(r.GetFieldValue<byte[]>(9)),
        },
    };

    /// <inheritdoc />
    public async Task<StreamInfo> GetStreamInfoAsync(StreamId streamId, CancellationToken cancellationToken = default)
    {
        var c = await OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"SELECT {StreamInfoColumns} FROM {_s}.streams WHERE stream_id = $1", c);
        cmd.Parameters.AddWithValue(streamId.Value);
        var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var rScope = r.ConfigureAwait(false);
        return await r.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? ReadStreamInfo(r) with { StreamId = streamId }
            : new StreamInfo { StreamId = streamId, State = StreamState.NotFound };
    }

    /// <inheritdoc />
    public async Task<StreamPage> ListStreamsAsync(ListStreamsOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ListStreamsOptions();
        var c = await OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"""
            SELECT {StreamInfoColumns} FROM {_s}.streams
            WHERE {(options.IncludeDeleted ? "state <> 0" : "state = 1")}
              AND ($1::text IS NULL OR category = $1) AND ($2::text IS NULL OR stream_id > $2)
            ORDER BY stream_id LIMIT $3
            """, c);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, (object?)options.Category ?? DBNull.Value);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, (object?)options.After ?? DBNull.Value);
        cmd.Parameters.AddWithValue(options.PageSize + 1);
        var items = new List<StreamInfo>();
        var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (r.ConfigureAwait(false))
        {
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) items.Add(ReadStreamInfo(r));
        }
        string? token = null;
        if (items.Count > options.PageSize)
        {
            items.RemoveAt(items.Count - 1);
            token = items[^1].StreamId.Value;
        }
        return new StreamPage(items, token);
    }

    /// <summary>Drops the store's schema and everything in it (tests, and <c>factum</c> commands that reset a store on purpose).</summary>
    internal async Task DropSchemaAsync(CancellationToken cancellationToken = default)
    {
        var c = await _source.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"DROP SCHEMA IF EXISTS {_s} CASCADE", c);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the writer (queued writes fail with <see cref="ObjectDisposedException"/>) and the listener, and closes the pool.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _writes.Writer.TryComplete();
        // Let the writer commit what is queued, then stop the listener.
        try { await _writer.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false); }
        catch (TimeoutException) { }
        await _stop.CancelAsync().ConfigureAwait(false);
        try { await Task.WhenAll(_writer, _listener).ConfigureAwait(false); }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The writer and listener end by cancellation; anything else already reached its callers or the log.
        }
        await _source.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }
}
