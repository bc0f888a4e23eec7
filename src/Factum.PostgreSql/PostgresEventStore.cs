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

    /// <summary>The schema version this build of Factum writes.</summary>
    public static int SchemaVersion => PostgresSchema.LatestVersion;

    /// <summary>
    /// The version of the store's schema in the database (0: no store yet) and the SQL that brings it to
    /// <see cref="SchemaVersion"/> (empty when current), without applying anything: for teams whose DBAs apply DDL.
    /// </summary>
    public static Task<(int Current, string Script)> PlanMigrationAsync(PostgresEventStoreOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        return PostgresSchema.PlanAsync(options.ConnectionString, options.Schema, cancellationToken);
    }

    /// <summary>The options it was opened with.</summary>
    public PostgresEventStoreOptions Options => _options;

    /// <summary>Transactions this instance's writer committed (appends, metadata changes, deletes share them).</summary>
    public long CommitCount => Interlocked.Read(ref _commits);

    private long _commits;

    /// <summary>Group commits run again or looked up after a connection failure (the restart tests check the failure was met).</summary>
    internal long Recoveries => Interlocked.Read(ref _recoveries);

    private long _recoveries;

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

    /// <summary>
    /// Writes events recorded by another store exactly as they were — ids, positions, stream versions, times, correlation,
    /// causation and metadata — in one transaction, for copying a store (<c>factum copy</c>). Positions must rise above
    /// this store's head and each event must continue its stream's versions; otherwise nothing is written.
    /// </summary>
    /// <exception cref="ArgumentException">A position or version does not continue this store; nothing was written.</exception>
    public async Task ImportAsync(IReadOnlyList<RecordedEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (events.Count == 0) return;
        await EnqueueAsync(new ImportRequest(events, []), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Sets streams' states (active, soft-deleted, tombstoned) and metadata as another store has them, after their events
    /// were imported (<see cref="ImportAsync"/>): the end of a copy.
    /// </summary>
    public async Task ImportStreamStatesAsync(IReadOnlyList<StreamInfo> streams, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(streams);
        if (streams.Count == 0) return;
        await EnqueueAsync(new ImportRequest([], streams), cancellationToken).ConfigureAwait(false);
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
        var started = TimeProvider.System.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            var outcomes = new object?[batch.Count];
            var appended = false;
            var commitSent = false;
            BatchState? state = null;
            try
            {
                var c = await _source.OpenConnectionAsync(_stop.Token).ConfigureAwait(false);
                await using var cScope = c.ConfigureAwait(false);
                var tx = await c.BeginTransactionAsync(_stop.Token).ConfigureAwait(false);
                await using var txScope = tx.ConfigureAwait(false);
                // The head's row lock orders this commit after every other writer's (on any node): positions taken here
                // become visible only after all lower ones. The lock and the rows the batch decides on come in one round trip.
                state = new BatchState(this, c, tx, Now);
                var head = await state.LoadAsync(batch, _stop.Token).ConfigureAwait(false);
                // Every decision is made in memory against the loaded rows and the batch's earlier writes, so one failing
                // expectation fails only its caller and costs no round trip.
                for (var i = 0; i < batch.Count; i++)
                {
                    try
                    {
                        outcomes[i] = batch[i].Execute(state);
                    }
                    catch (Exception ex) when (ex is FactumException or ArgumentException)
                    {
                        outcomes[i] = ExceptionDispatchInfo.Capture(ex);
                    }
                }
                // The events, the changed stream rows, the new head and its NOTIFY: one round trip.
                appended = await state.WriteAsync(head, _channel, _stop.Token).ConfigureAwait(false);
                if (_options.BeforeCommit is { } hook) await hook(_stop.Token).ConfigureAwait(false);
                commitSent = true;
                await tx.CommitAsync(_stop.Token).ConfigureAwait(false);
                Interlocked.Increment(ref _commits);
                if (_options.LoseCommitAnswer?.Invoke() == true) throw new NpgsqlException("The connection broke before the answer to COMMIT arrived (simulated).", new IOException("simulated"));
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                var retryable = !_stop.IsCancellationRequested && IsConnectionFailure(ex) && TimeProvider.System.GetElapsedTime(started) < _options.RetryFor;
                if (retryable)
                {
                    Interlocked.Increment(ref _recoveries);
                    // Connections in the pool may all be dead (a restarted server): start afresh.
                    _source.Clear();
                    // Not committed for sure: running the batch again is no blind retry (its decisions are made anew under
                    // the lock). Committed or not unknown: ask the database by event id before anything else.
                    var committed = commitSent ? await CommittedAsync(state!, started).ConfigureAwait(false) : false;
                    if (committed == true)
                    {
                        FactumLog.CommitOutcomeRechecked(_log, _s, batch.Count, true);
                        Complete(batch, outcomes, appended);
                        return;
                    }
                    if (committed == false)
                    {
                        if (commitSent) FactumLog.CommitOutcomeRechecked(_log, _s, batch.Count, false);
                        await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 50 * attempt)), CancellationToken.None).ConfigureAwait(false);
                        continue;
                    }
                }
                // The commit failed and is not retried (not a connection failure, shutting down, or past RetryFor): no
                // write of this group is known to be durable; each caller gets the error (an append retried with the same
                // event ids is recognised if it did commit).
                FactumLog.CommitFailed(_log, ex, _s, batch.Count);
                foreach (var r in batch) r.Done.TrySetException(ex);
                return;
            }
            Complete(batch, outcomes, appended);
            return;
        }
    }

    private void Complete(List<WriteRequest> batch, object?[] outcomes, bool appended)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            if (outcomes[i] is ExceptionDispatchInfo failed) batch[i].Done.TrySetException(failed.SourceException);
            else batch[i].Done.TrySetResult(outcomes[i]);
        }
        if (appended) _signal.Notify();
    }

    private static bool IsConnectionFailure(Exception ex) => ex switch
    {
        NpgsqlException { IsTransient: true } => true,
        // The server going down under an open connection (fast or immediate shutdown, a crash).
        PostgresException { SqlState: "57P01" or "57P02" or "57P03" } => true,
        NpgsqlException { InnerException: IOException or System.Net.Sockets.SocketException } => true,
        _ => false,
    };

    /// <summary>
    /// After COMMIT was sent but its answer was lost: whether the batch committed, judged by its first event (its id at
    /// the position the batch gave it), asked again until the server answers or <see cref="PostgresEventStoreOptions.RetryFor"/>
    /// runs out. Null when it cannot be told (a batch that wrote no event, or no answer in time).
    /// </summary>
    private async Task<bool?> CommittedAsync(BatchState state, long started)
    {
        if (state.FirstWritten is not { } first) return null;
        for (var attempt = 1; TimeProvider.System.GetElapsedTime(started) < _options.RetryFor; attempt++)
        {
            try
            {
                var c = await _source.OpenConnectionAsync(_stop.Token).ConfigureAwait(false);
                await using var cScope = c.ConfigureAwait(false);
                using var cmd = new NpgsqlCommand($"SELECT 1 FROM {_s}.events WHERE position = $1 AND event_id = $2", c);
                cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, first.Position);
                cmd.Parameters.AddWithValue(NpgsqlDbType.Uuid, first.EventId);
                return await cmd.ExecuteScalarAsync(_stop.Token).ConfigureAwait(false) is not null;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException && IsConnectionFailure(ex) && !_stop.IsCancellationRequested)
            {
                _source.Clear();
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 50 * attempt)), CancellationToken.None).ConfigureAwait(false);
            }
        }
        return null;
    }

    /// <summary>A stream's row as the batch sees it: loaded from the database, changed by the batch's earlier writes.</summary>
    private sealed class StreamRow(StreamId id)
    {
        public StreamId Id { get; } = id;
        public StreamState State;
        public long StartVersion;
        public long LastVersion = -1;
        public long? LastPosition;
        public DateTimeOffset? CreatedAt;
        public DateTimeOffset UpdatedAt;
        public long? MaxAgeMs;
        public long? MaxCount;
        public long? TruncateBefore;
        public byte[]? Custom;
        public bool Dirty;

        public StreamHead Head => new(State, LastVersion, StartVersion);
    }

    /// <summary>An event the batch writes, with everything its row needs.</summary>
    private readonly record struct PendingEvent(long Position, StreamId Stream, long Version, PreparedEvent Event, DateTimeOffset At);

    /// <summary>
    /// One commit of the writer: the rows of the streams the batch touches and the stored versions of its event ids,
    /// loaded in two queries after the head lock; the batch's decisions against them; its writes (one binary COPY of
    /// the events, one upsert of the changed stream rows).
    /// </summary>
    private sealed class BatchState(PostgresEventStore store, NpgsqlConnection connection, NpgsqlTransaction transaction, DateTimeOffset now)
    {
        private readonly Dictionary<StreamId, StreamRow> _rows = [];
        private readonly Dictionary<(StreamId, Guid), (long Version, long Position)> _stored = [];
        private readonly List<PendingEvent> _pending = [];

        // Streams whose event ids were all preloaded (so a miss in _stored is a definite "not stored").
        private readonly HashSet<StreamId> _loadedIds = [];

        private NpgsqlConnection Connection => connection;

        private NpgsqlTransaction Transaction => transaction;

        public long NextPosition { get; private set; }

        /// <summary>The batch's first event (its position and id), if it writes any: how a lost commit is recognised.</summary>
        public (long Position, Guid EventId)? FirstWritten => _pending.Count > 0 ? (_pending[0].Position, _pending[0].Event.EventId.Value) : null;

        public DateTimeOffset Now { get; } = now;

        private string S => store._s;

        /// <summary>Locks the head and loads the batch's stream rows and the stored versions of its event ids; returns the head.</summary>
        public async Task<long> LoadAsync(List<WriteRequest> batch, CancellationToken ct)
        {
            var streams = batch.SelectMany(r => r.Streams).Distinct().Select(s => s.Value).ToArray();
            // The idempotency rules ask where an event id is stored: answer for every id of the batch at once.
            // An exact expectation that matches needs no lookup (the common case: an aggregate's next events); the others
            // may ask where an id is stored.
            var ids = batch.OfType<AppendRequest>().SelectMany(a => a.Appends).Where(a => !a.Expected.IsExact)
                .SelectMany(a => a.Events.Select(e => (a.StreamId, e.EventId.Value))).ToList();
            using var load = new NpgsqlBatch(connection, transaction);
            load.BatchCommands.Add(new NpgsqlBatchCommand($"SELECT position FROM {S}.head WHERE id = 1 FOR UPDATE"));
            var rows = new NpgsqlBatchCommand($"""
                SELECT stream_id, state, start_version, last_version, last_position, created_at, updated_at, max_age_ms, max_count, truncate_before, custom_metadata
                FROM {S}.streams WHERE stream_id = ANY($1)
                """);
            rows.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, streams);
            foreach (var a in batch.OfType<AppendRequest>().SelectMany(a => a.Appends).Where(a => !a.Expected.IsExact)) _loadedIds.Add(a.StreamId);
            load.BatchCommands.Add(rows);
            var find = new NpgsqlBatchCommand($"""
                SELECT e.stream_id, e.event_id, e.stream_version, e.position
                FROM {S}.events e JOIN unnest($1::text[], $2::uuid[]) AS k(stream_id, event_id) ON e.stream_id = k.stream_id AND e.event_id = k.event_id
                """);
            find.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, ids.Select(i => i.StreamId.Value).ToArray());
            find.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Uuid, ids.Select(i => i.Value).ToArray());
            load.BatchCommands.Add(find);
            var r = await load.ExecuteReaderAsync(ct).ConfigureAwait(false);
            await using var rScope = r.ConfigureAwait(false);
            await r.ReadAsync(ct).ConfigureAwait(false);
            var head = r.GetInt64(0);
            NextPosition = head + 1;
            await r.NextResultAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                var row = new StreamRow(StreamId.FromTrusted(r.GetString(0)))
                {
                    State = (StreamState)r.GetInt16(1),
                    StartVersion = r.GetInt64(2),
                    LastVersion = r.GetInt64(3),
                    LastPosition = r.IsDBNull(4) ? null : r.GetInt64(4),
                    CreatedAt = r.IsDBNull(5) ? null : Utc(r.GetFieldValue<DateTime>(5)),
                    UpdatedAt = Utc(r.GetFieldValue<DateTime>(6)),
                    MaxAgeMs = r.IsDBNull(7) ? null : r.GetInt64(7),
                    MaxCount = r.IsDBNull(8) ? null : r.GetInt64(8),
                    TruncateBefore = r.IsDBNull(9) ? null : r.GetInt64(9),
                    Custom = r.IsDBNull(10) ? null : r.GetFieldValue<byte[]>(10),
                };
                _rows[row.Id] = row;
            }
            await r.NextResultAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
                _stored.TryAdd((StreamId.FromTrusted(r.GetString(0)), r.GetGuid(1)), (r.GetInt64(2), r.GetInt64(3)));
            return head;
        }

        public StreamRow Row(StreamId id)
        {
            if (!_rows.TryGetValue(id, out var row)) _rows[id] = row = new StreamRow(id) { State = StreamState.NotFound };
            return row;
        }

        public StreamHead HeadOf(StreamId id) => _rows.TryGetValue(id, out var row) ? row.Head : StreamHead.None;

        public IStreamLookup Lookup(StreamId id) => new BatchLookup(this, id);

        /// <summary>The positions of versions <paramref name="first"/>..<paramref name="last"/> of a stream (a recognised retry).</summary>
        public (long First, long Last) PositionsOf(StreamId id, long first, long last) => (PositionOf(id, first), PositionOf(id, last));

        private long PositionOf(StreamId id, long version)
        {
            foreach (var p in _pending)
            {
                if (p.Stream == id && p.Version == version) return p.Position;
            }
            using var cmd = new NpgsqlCommand($"SELECT position FROM {S}.events WHERE stream_id = $1 AND stream_version = $2", connection, transaction);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Text, id.Value);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, version);
            return (long)cmd.ExecuteScalar()!;
        }

        /// <summary>Appends events at the stream's next versions; returns the first and last positions.</summary>
        public (long First, long Last) Append(StreamRow row, PreparedEvent[] events)
        {
            // A soft-deleted stream is re-created: its new life starts after its old last version.
            if (row.State == StreamState.SoftDeleted) row.StartVersion = row.LastVersion + 1;
            var first = NextPosition;
            foreach (var e in events)
            {
                var version = ++row.LastVersion;
                _pending.Add(new PendingEvent(NextPosition, row.Id, version, e, Now));
                _stored.TryAdd((row.Id, e.EventId.Value), (version, NextPosition));
                NextPosition++;
            }
            row.State = StreamState.Active;
            row.LastPosition = NextPosition - 1;
            row.CreatedAt ??= Now;
            row.UpdatedAt = Now;
            row.Dirty = true;
            return (first, NextPosition - 1);
        }

        /// <summary>Writes the batch's events, changed stream rows and new head (with its NOTIFY) in one round trip; true when it appended.</summary>
        /// <summary>
        /// Appends events recorded elsewhere, keeping their positions, versions and times (a copy of a store): each must
        /// continue its stream's versions, and positions must rise above the head.
        /// </summary>
        public void Import(IReadOnlyList<RecordedEvent> events)
        {
            // Checked before anything changes, so a refused copy changes nothing.
            var next = NextPosition;
            var versions = new Dictionary<StreamId, long>();
            foreach (var e in events)
            {
                if (e.Position.Value < next) throw new ArgumentException($"Event {e.EventId} has position {e.Position.Value}, but the target is already at {next - 1}: positions must rise above the target's head.", nameof(events));
                next = e.Position.Value + 1;
                var last = versions.TryGetValue(e.StreamId, out var v) ? v : HeadOf(e.StreamId).LastVersion;
                if (e.StreamVersion.Value != last + 1) throw new ArgumentException($"Event {e.EventId} is version {e.StreamVersion.Value} of '{e.StreamId}', but the target's stream is at {last}: a copy continues each stream's versions.", nameof(events));
                if (HeadOf(e.StreamId).State == StreamState.Tombstoned) throw new StreamDeletedException(e.StreamId);
                versions[e.StreamId] = e.StreamVersion.Value;
            }
            foreach (var e in events)
            {
                var row = Row(e.StreamId);
                row.LastVersion = e.StreamVersion.Value;
                var prepared = new PreparedEvent(e.EventId, e.Type, e.SchemaVersion, e.Payload, e.Metadata, MetadataCodec.Encode(e.Metadata), e.CorrelationId, e.CausationId);
                _pending.Add(new PendingEvent(e.Position.Value, e.StreamId, e.StreamVersion.Value, prepared, e.Timestamp.ToUniversalTime()));
                _stored.TryAdd((e.StreamId, e.EventId.Value), (e.StreamVersion.Value, e.Position.Value));
                if (row.State is StreamState.NotFound or StreamState.SoftDeleted) row.State = StreamState.Active;
                row.LastPosition = e.Position.Value;
                row.CreatedAt ??= e.Timestamp.ToUniversalTime();
                row.UpdatedAt = e.Timestamp.ToUniversalTime();
                row.Dirty = true;
            }
            NextPosition = next;
        }

        /// <summary>Sets a stream's state and metadata as another store has them (the end of a copy).</summary>
        public void ImportState(StreamInfo info)
        {
            var row = Row(info.StreamId);
            row.State = info.State;
            if (info.LastVersion is { } v && v.Value > row.LastVersion) throw new ArgumentException($"'{info.StreamId}' is at version {v.Value} in the source but {row.LastVersion} here: copy its events first.", nameof(info));
            row.MaxAgeMs = info.Metadata.MaxAge is { } age ? (long)age.TotalMilliseconds : null;
            row.MaxCount = info.Metadata.MaxCount;
            row.TruncateBefore = info.Metadata.TruncateBefore?.Value;
            row.Custom = MetadataCodec.Encode(info.Metadata.Custom);
            if (info.UpdatedAt is { } at) row.UpdatedAt = at.ToUniversalTime();
            row.Dirty = true;
        }

        public async Task<bool> WriteAsync(long head, string channel, CancellationToken ct)
        {
            using var write = new NpgsqlBatch(connection, transaction);
            if (_pending.Count > 0)
            {
                var insert = new NpgsqlBatchCommand($"""
                    INSERT INTO {S}.events (position, stream_id, category, stream_version, event_id, type, schema_version, created_at, correlation_id, causation_id, metadata, payload)
                    SELECT u.p, u.s, u.c, u.v, u.id, u.t, u.sv, u.at, u.corr, u.cause, u.meta, u.pay
                    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::uuid[], $6::text[], $7::integer[], $8::text[], $9::text[], $10::bytea[], $11::bytea[], $12::timestamptz[])
                        AS u(p, s, c, v, id, t, sv, corr, cause, meta, pay, at)
                    """);
                var ip = insert.Parameters;
                ip.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bigint, _pending.Select(e => e.Position).ToArray());
                ip.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, _pending.Select(e => e.Stream.Value).ToArray());
                ip.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, _pending.Select(e => e.Stream.Category).ToArray());
                ip.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bigint, _pending.Select(e => e.Version).ToArray());
                ip.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Uuid, _pending.Select(e => e.Event.EventId.Value).ToArray());
                ip.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, _pending.Select(e => e.Event.Type).ToArray());
                ip.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Integer, _pending.Select(e => e.Event.SchemaVersion).ToArray());
                ip.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, _pending.Select(e => e.Event.CorrelationId).ToArray());
                ip.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, _pending.Select(e => e.Event.CausationId).ToArray());
                ip.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bytea, _pending.Select(e => e.Event.MetadataJson).ToArray());
                ip.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bytea, _pending.Select(e => e.Event.Payload.ToArray()).ToArray());
                ip.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, _pending.Select(e => e.At).ToArray());
                write.BatchCommands.Add(insert);
            }
            var dirty = _rows.Values.Where(r => r.Dirty).ToList();
            if (dirty.Count > 0)
            {
                var upsert = new NpgsqlBatchCommand($"""
                    INSERT INTO {S}.streams (stream_id, category, state, start_version, last_version, last_position, created_at, updated_at, max_age_ms, max_count, truncate_before, custom_metadata)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::timestamptz[], $8::timestamptz[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bytea[])
                    ON CONFLICT (stream_id) DO UPDATE SET state = EXCLUDED.state, start_version = EXCLUDED.start_version, last_version = EXCLUDED.last_version,
                        last_position = EXCLUDED.last_position, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, max_age_ms = EXCLUDED.max_age_ms,
                        max_count = EXCLUDED.max_count, truncate_before = EXCLUDED.truncate_before, custom_metadata = EXCLUDED.custom_metadata
                    """);
                var p = upsert.Parameters;
                p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, dirty.Select(r => r.Id.Value).ToArray());
                p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, dirty.Select(r => r.Id.Category).ToArray());
                p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Smallint, dirty.Select(r => (short)r.State).ToArray());
                p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bigint, dirty.Select(r => r.StartVersion).ToArray());
                p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bigint, dirty.Select(r => r.LastVersion).ToArray());
                p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bigint, dirty.Select(r => r.LastPosition).ToArray());
                p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, dirty.Select(r => r.CreatedAt).ToArray());
                p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, dirty.Select(r => r.UpdatedAt).ToArray());
                p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bigint, dirty.Select(r => r.MaxAgeMs).ToArray());
                p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bigint, dirty.Select(r => r.MaxCount).ToArray());
                p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bigint, dirty.Select(r => r.TruncateBefore).ToArray());
                p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Bytea, dirty.Select(r => r.Custom).ToArray());
                write.BatchCommands.Add(upsert);
            }
            var appended = NextPosition - 1 > head;
            if (appended)
            {
                write.BatchCommands.Add(new NpgsqlBatchCommand($"UPDATE {S}.head SET position = {NextPosition - 1} WHERE id = 1"));
                write.BatchCommands.Add(new NpgsqlBatchCommand($"NOTIFY {channel}, '{NextPosition - 1}'"));
            }
            if (write.BatchCommands.Count > 0) await write.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            return appended;
        }

        /// <summary>Answers the idempotency rules from the loaded ids and the batch's earlier writes (the database only for a retry's id list).</summary>
        private sealed class BatchLookup(BatchState state, StreamId streamId) : IStreamLookup
        {
            public long? FindVersion(EventId eventId)
            {
                if (state._stored.TryGetValue((streamId, eventId.Value), out var at)) return at.Version;
                if (state._loadedIds.Contains(streamId)) return null;
                // Not preloaded (an exact expectation that did not match): ask the table, inside the batch's transaction.
                using var cmd = new NpgsqlCommand($"SELECT stream_version FROM {state.S}.events WHERE stream_id = $1 AND event_id = $2", state.Connection, state.Transaction);
                cmd.Parameters.AddWithValue(NpgsqlDbType.Text, streamId.Value);
                cmd.Parameters.AddWithValue(NpgsqlDbType.Uuid, eventId.Value);
                return cmd.ExecuteScalar() as long?;
            }

            public IReadOnlyList<EventId> ReadIds(long fromVersion, int count)
            {
                var ids = new List<EventId>(count);
                using (var cmd = new NpgsqlCommand($"SELECT event_id FROM {state.S}.events WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3", state.Connection, state.Transaction))
                {
                    cmd.Parameters.AddWithValue(NpgsqlDbType.Text, streamId.Value);
                    cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, fromVersion);
                    cmd.Parameters.AddWithValue(NpgsqlDbType.Integer, count);
                    using var r = cmd.ExecuteReader();
                    while (r.Read()) ids.Add(new EventId(r.GetGuid(0)));
                }
                // Versions the batch itself wrote are not in the table yet.
                foreach (var p in state._pending.Where(p => p.Stream == streamId && p.Version >= fromVersion + ids.Count).OrderBy(p => p.Version))
                {
                    if (ids.Count == count) break;
                    ids.Add(p.Event.EventId);
                }
                return ids;
            }
        }
    }

    private static DateTimeOffset Utc(DateTime value) => new(value.Ticks, TimeSpan.Zero);

    private abstract class WriteRequest
    {
        public TaskCompletionSource<object?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The streams it touches (loaded before the batch decides).</summary>
        public abstract IEnumerable<StreamId> Streams { get; }

        /// <summary>Decides against the batch's view and records its writes there; throws (having changed nothing) when refused.</summary>
        public abstract object? Execute(BatchState state);
    }

    private sealed class AppendRequest(IReadOnlyList<(StreamId StreamId, ExpectedVersion Expected, PreparedEvent[] Events)> appends) : WriteRequest
    {
        public IReadOnlyList<(StreamId StreamId, ExpectedVersion Expected, PreparedEvent[] Events)> Appends => appends;

        public override IEnumerable<StreamId> Streams => appends.Select(a => a.StreamId);

        public override object? Execute(BatchState state)
        {
            // Check every stream before writing any, so one failing expectation writes nothing.
            var decisions = new AppendDecision[appends.Count];
            for (var i = 0; i < appends.Count; i++)
            {
                var (id, expected, events) = appends[i];
                decisions[i] = AppendRules.Decide(id, state.HeadOf(id), expected, events, state.Lookup(id));
            }
            var results = new AppendResult[appends.Count];
            for (var i = 0; i < appends.Count; i++)
            {
                var (id, _, events) = appends[i];
                var decision = decisions[i];
                var row = state.Row(id);
                if (decision.IsIdempotent)
                {
                    var last = decision.FirstVersion + events.Length - 1;
                    var (first, lastPosition) = state.PositionsOf(id, decision.FirstVersion, last);
                    results[i] = new AppendResult(id, new StreamVersion(last), first, lastPosition, false);
                }
                else if (events.Length == 0)
                {
                    var pos = row.LastPosition ?? 0;
                    results[i] = new AppendResult(id, row.Head.Actual, pos, pos, false);
                }
                else
                {
                    var (first, last) = state.Append(row, events);
                    results[i] = new AppendResult(id, new StreamVersion(row.LastVersion), first, last, true);
                }
            }
            return results;
        }
    }

    private sealed class ImportRequest(IReadOnlyList<RecordedEvent> events, IReadOnlyList<StreamInfo> states) : WriteRequest
    {
        public override IEnumerable<StreamId> Streams => events.Select(e => e.StreamId).Concat(states.Select(s => s.StreamId));

        public override object? Execute(BatchState state)
        {
            state.Import(events);
            foreach (var info in states) state.ImportState(info);
            return null;
        }
    }

    private sealed class MetadataRequest(StreamId streamId, StreamMetadata metadata, byte[]? custom) : WriteRequest
    {
        public override IEnumerable<StreamId> Streams => [streamId];

        public override object? Execute(BatchState state)
        {
            var row = state.Row(streamId);
            if (row.State == StreamState.Tombstoned) throw new StreamDeletedException(streamId);
            row.MaxAgeMs = metadata.MaxAge is { } age ? (long)age.TotalMilliseconds : null;
            row.MaxCount = metadata.MaxCount;
            row.TruncateBefore = metadata.TruncateBefore?.Value;
            row.Custom = custom;
            row.UpdatedAt = state.Now;
            row.Dirty = true;
            return null;
        }
    }

    private sealed class DeleteRequest(StreamId streamId, ExpectedVersion expected, DeleteMode mode) : WriteRequest
    {
        public override IEnumerable<StreamId> Streams => [streamId];

        public override object? Execute(BatchState state)
        {
            AppendRules.CheckDelete(streamId, state.HeadOf(streamId), expected);
            var row = state.Row(streamId);
            if (mode == DeleteMode.Hard) row.State = StreamState.Tombstoned;
            else if (row.State == StreamState.Active)
            {
                // Hidden from reads: the retention bound moves past the last event, and a new append starts a new life.
                row.State = StreamState.SoftDeleted;
                row.TruncateBefore = row.LastVersion + 1;
            }
            else return null;
            row.UpdatedAt = state.Now;
            row.Dirty = true;
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
        var f = options.Filter;
        // Each page asks for a window of positions, not an open range: positions are dense (no gaps), so a window of a
        // page's size holds a page, and the planner walks the primary key whatever it knows of the table (on a table not
        // analyzed yet, an open range makes it read every later row and sort them, on every page).
        // Parameters: $1 and $2 the window (low, high), $3 the page size, then one per filter in use.
        var where = "position >= $1 AND position <= $2";
        var filters = new List<string[]>();
        if (f.EventTypes.Count > 0) { filters.Add([.. f.EventTypes]); where += $" AND type = ANY(${filters.Count + 3})"; }
        if (f.Categories.Count > 0) { filters.Add([.. f.Categories]); where += $" AND category = ANY(${filters.Count + 3})"; }
        if (f.StreamPrefixes.Count > 0) { filters.Add([.. f.StreamPrefixes]); where += $" AND EXISTS (SELECT 1 FROM unnest(${filters.Count + 3}::text[]) p WHERE starts_with(stream_id, p))"; }
        var sql = $"SELECT {EventColumns} FROM {_s}.events WHERE {where} ORDER BY position {(forwards ? "" : "DESC")} LIMIT $3";
        // A filtered read skips positions, so its windows are wider.
        var window = (long)_options.ReadPageSize * (f.IsEmpty ? 1 : 16);
        var head = (await GetHeadPositionAsync(cancellationToken).ConfigureAwait(false)).Value;
        var next = forwards ? Math.Max(1, options.From.Value) : Math.Min(options.From.Value, head);
        var end = forwards ? Math.Min(options.To?.Value ?? long.MaxValue, head) : Math.Max(options.To?.Value ?? 1, 1);
        long returned = 0;
        while (returned < options.MaxCount)
        {
            if (forwards && next > end)
            {
                // Caught up with the head read at the start: go on only if the log has grown since (and To allows).
                head = (await GetHeadPositionAsync(cancellationToken).ConfigureAwait(false)).Value;
                var newEnd = Math.Min(options.To?.Value ?? long.MaxValue, head);
                if (newEnd < next) yield break;
                end = newEnd;
            }
            if (!forwards && next < end) yield break;
            var (low, high) = forwards ? (next, Math.Min(end, next + window - 1)) : (Math.Max(end, next - window + 1), next);
            var limit = (int)Math.Min(_options.ReadPageSize, options.MaxCount - returned);
            var page = await PageAsync(sql, p =>
            {
                p.AddWithValue(low);
                p.AddWithValue(high);
                p.AddWithValue(limit);
                foreach (var values in filters) p.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, values);
            }, cancellationToken).ConfigureAwait(false);
            foreach (var e in page)
            {
                returned++;
                yield return e;
            }
            // A full page ends where its last event is; a short one has seen its whole window.
            next = page.Count == limit ? page[^1].Position.Value + (forwards ? 1 : -1) : (forwards ? high + 1 : low - 1);
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
