using Factum.Store;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

public sealed partial class SqliteEventStore
{
    private readonly Writer? _writer;

    /// <summary>How many group transactions this instance's writer has committed; each is one fsync. Appends divided by this is the group-commit factor.</summary>
    public long CommitCount => _writer is null ? 0 : Interlocked.Read(ref _writer.CommitCount);

    /// <inheritdoc />
    public async Task<AppendResult> AppendAsync(StreamId streamId, ExpectedVersion expectedVersion, IReadOnlyList<EventData> events, CancellationToken cancellationToken = default)
    {
        var prepared = AppendPreparation.Prepare(streamId, events, _options, null);
        var results = await Enqueue(new AppendRequest([(new StreamAppend(streamId, expectedVersion, events), prepared)], cancellationToken)).ConfigureAwait(false);
        return ((AppendResult[])results!)[0];
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<AppendResult>> AppendMultipleAsync(IReadOnlyList<StreamAppend> appends, CancellationToken cancellationToken = default)
    {
        var prepared = AppendPreparation.PrepareMany(appends, _options);
        return (AppendResult[])(await Enqueue(new AppendRequest(prepared, cancellationToken)).ConfigureAwait(false))!;
    }

    /// <inheritdoc />
    public Task SetStreamMetadataAsync(StreamId streamId, StreamMetadata metadata, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        if (streamId == default) throw new ArgumentException("The stream id is default(StreamId).", nameof(streamId));
        return Enqueue(new MetadataRequest(streamId, metadata, MetadataCodec.Encode(metadata.Custom), cancellationToken));
    }

    /// <inheritdoc />
    public Task DeleteStreamAsync(StreamId streamId, ExpectedVersion expectedVersion, DeleteMode mode, CancellationToken cancellationToken = default)
    {
        if (streamId == default) throw new ArgumentException("The stream id is default(StreamId).", nameof(streamId));
        return Enqueue(new DeleteRequest(streamId, expectedVersion, mode, cancellationToken));
    }

    private Task<object?> Enqueue(WriteRequest request)
    {
        ThrowIfDisposed();
        if (_options.ReadOnly) throw new StoreReadOnlyException(FilePath);
        request.Cancellation.ThrowIfCancellationRequested();
        Interlocked.Increment(ref _queued);
        if (!_queue.Writer.TryWrite(request))
        {
            Interlocked.Decrement(ref _queued);
            ObjectDisposedException.ThrowIf(true, this);
        }
        return request.Task;
    }

    private int _queued;

    private async Task WriteLoopAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<WriteRequest>();
        var previousBatch = 0;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            try
            {
                if (previousBatch > 1) AwaitReturningWriters(previousBatch);
                var events = 0;
                while (events < _options.MaxEventsPerCommit && reader.TryRead(out var request))
                {
                    Interlocked.Decrement(ref _queued);
                    if (request.Cancellation.IsCancellationRequested)
                    {
                        // Not yet written: the caller gave up before the writer took it, so it is safe to drop.
                        request.Fail(new OperationCanceledException(request.Cancellation));
                        continue;
                    }
                    batch.Add(request);
                    events += Math.Max(1, request.EventCount);
                }
                if (batch.Count > 0)
                {
                    var started = System.Diagnostics.Stopwatch.GetTimestamp();
                    _writer!.Commit(batch);
                    var elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(started);
                    if (elapsed >= _options.SlowCommitThreshold) FactumLog.SlowCommit(_log, FilePath, batch.Count, events, (long)elapsed.TotalMilliseconds);
                }
                previousBatch = batch.Count;
            }
            catch (Exception ex)
            {
                // Never let the writer die silently: every caller of this group hears about the failure, and the loop goes on.
                foreach (var r in batch) r.Fail(ex);
                if (batch.Count > 0) FactumLog.CommitFailed(_log, ex, FilePath, batch.Count);
                previousBatch = 0;
            }
        }
    }

    /// <summary>
    /// Group-commit gathering: the callers released by the last commit need a moment to send their next append. Without
    /// waiting, the writer would start on whatever arrived meanwhile and concurrent writers would split into two half-size
    /// groups, each paying a full fsync. So after a group of N, wait briefly (at most <see cref="SqliteEventStoreOptions.GroupCommitWindow"/>)
    /// until N requests are queued again. A lone sequential writer (N = 1) never waits.
    /// </summary>
    private void AwaitReturningWriters(int previousBatch)
    {
        var window = _options.GroupCommitWindow;
        if (window <= TimeSpan.Zero) return;
        var deadline = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(window.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        while (Volatile.Read(ref _queued) < previousBatch && System.Diagnostics.Stopwatch.GetTimestamp() < deadline) Thread.Yield();
    }

    /// <summary>A unit of work for the writer: it checks, then writes, inside the group transaction.</summary>
    private abstract class WriteRequest(CancellationToken cancellation)
    {
        private readonly TaskCompletionSource<object?> _tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public CancellationToken Cancellation { get; } = cancellation;

        public Task<object?> Task => _tcs.Task;

        public virtual int EventCount => 0;

        /// <summary>Checks everything before writing anything, so a rule violation leaves the transaction untouched.</summary>
        public abstract object? Execute(Writer writer);

        public void Complete(object? result) => _tcs.TrySetResult(result);

        public void Fail(Exception ex) => _tcs.TrySetException(ex);
    }

    private sealed class AppendRequest((StreamAppend Append, PreparedEvent[] Events)[] appends, CancellationToken cancellation) : WriteRequest(cancellation)
    {
        public override int EventCount { get; } = appends.Sum(a => a.Events.Length);

        public override object? Execute(Writer writer)
        {
            var rows = new StreamRow?[appends.Length];
            var decisions = new AppendDecision[appends.Length];
            for (var i = 0; i < appends.Length; i++)
            {
                var (append, events) = appends[i];
                rows[i] = writer.LoadStream(append.StreamId);
                var lookup = new Lookup(writer, rows[i]?.Key ?? -1);
                decisions[i] = AppendRules.Decide(append.StreamId, rows[i]?.Head ?? StreamHead.None, append.ExpectedVersion, events, lookup);
            }
            var results = new AppendResult[appends.Length];
            for (var i = 0; i < appends.Length; i++)
                results[i] = writer.Write(appends[i].Append.StreamId, rows[i], decisions[i], appends[i].Events);
            return results;
        }
    }

    private sealed class WorkRequest(Func<SqliteConnection, object?> work, CancellationToken cancellation) : WriteRequest(cancellation)
    {
        public override object? Execute(Writer writer) => work(writer.Connection);
    }

    private sealed class MetadataRequest(StreamId streamId, StreamMetadata metadata, byte[]? customJson, CancellationToken cancellation) : WriteRequest(cancellation)
    {
        public override object? Execute(Writer writer)
        {
            var row = writer.LoadStream(streamId);
            if (row?.Head.State == StreamState.Tombstoned) throw new StreamDeletedException(streamId);
            writer.SaveMetadata(streamId, row, metadata, customJson);
            return null;
        }
    }

    private sealed class DeleteRequest(StreamId streamId, ExpectedVersion expected, DeleteMode mode, CancellationToken cancellation) : WriteRequest(cancellation)
    {
        public override object? Execute(Writer writer)
        {
            var row = writer.LoadStream(streamId);
            AppendRules.CheckDelete(streamId, row?.Head ?? StreamHead.None, expected);
            writer.Delete(streamId, row, mode);
            return null;
        }
    }

    private readonly record struct StreamRow(long Key, StreamHead Head, long? LastPosition, StreamMetadata Metadata);

    private sealed class Lookup(Writer writer, long streamKey) : IStreamLookup
    {
        public IReadOnlyList<EventId> ReadIds(long fromVersion, int count) => streamKey < 0 ? [] : writer.ReadIds(streamKey, fromVersion, count);

        public long? FindVersion(EventId eventId) => streamKey < 0 ? null : writer.FindVersion(streamKey, eventId);
    }

    /// <summary>
    /// The single writer: owns the write connection, its prepared statements, and a cache of stream heads and of the next
    /// global position. The cache is trusted only while <c>PRAGMA data_version</c> shows that no other connection (another
    /// process, another store instance) has committed since our last transaction; otherwise it is dropped and reloaded.
    /// </summary>
    private sealed class Writer : IDisposable
    {
        private const int MaxCachedStreams = 100_000;
        private readonly SqliteConnection _c;
        private readonly SqliteEventStoreOptions _options;
        private readonly SqliteCommand _begin, _commit, _rollback, _dataVersionCmd, _selectStream, _insertStream, _setStreamState,
            _findVersion, _readIds, _positionOf, _maxPosition, _saveMetadata;
        private readonly Dictionary<string, StreamRow> _cache = new(StringComparer.Ordinal);
        private readonly EventInsertStatement _insertEvent;
        private long _dataVersion = -1;
        private long _dataVersionSeen = -1;
        private readonly SqliteCommand _savepoint, _release, _rollbackToSavepoint;
        private long _nextPosition = -1;
        private long _nowTicks;

        /// <summary>Transactions committed so far.</summary>
        public long CommitCount;

        private readonly Factum.Subscriptions.AppendSignal _signal;
        private readonly Factum.Projections.IProjection[] _inline;
        private readonly long[] _inlinePositions;
        private readonly SqliteCommand _setInlinePosition, _loadInlinePosition;

        public SqliteConnection Connection => _c;

        private readonly long _checksumsFrom;

        public Writer(SqliteConnection connection, SqliteEventStoreOptions options, Factum.Subscriptions.AppendSignal signal, long checksumsFrom)
        {
            _checksumsFrom = checksumsFrom;
            _signal = signal;
            _c = connection;
            _inline = [.. options.InlineProjections];
            _inlinePositions = new long[_inline.Length];
            Array.Fill(_inlinePositions, -1);
            _options = options;
            // BEGIN/COMMIT as prepared statements: the writer owns the connection, so it manages the transaction itself.
            _begin = Cmd("BEGIN IMMEDIATE");
            _savepoint = Cmd("SAVEPOINT request");
            _release = Cmd("RELEASE request");
            _rollbackToSavepoint = Cmd("ROLLBACK TO request");
            _commit = Cmd("COMMIT");
            _rollback = Cmd("ROLLBACK");
            _dataVersionCmd = Cmd("PRAGMA data_version");
            _selectStream = Cmd(StreamRowSql, "$id");
            _insertStream = Cmd("INSERT INTO streams(stream_id, category, state, start_version, changed_at) VALUES ($id, $cat, $s, 0, $now) RETURNING stream_key", "$id", "$cat", "$s", "$now");
            _setStreamState = Cmd("UPDATE streams SET state = $s, start_version = $sv, truncate_before = $tb, changed_at = $now WHERE stream_key = $k", "$s", "$sv", "$tb", "$now", "$k");
            _insertEvent = new EventInsertStatement(connection);
            _findVersion = Cmd("SELECT stream_version FROM events WHERE event_id = $id AND stream_key = $k LIMIT 1", "$id", "$k");
            _readIds = Cmd("SELECT event_id FROM events WHERE stream_key = $k AND stream_version >= $v ORDER BY stream_version LIMIT $n", "$k", "$v", "$n");
            _positionOf = Cmd("SELECT position FROM events WHERE stream_key = $k AND stream_version = $v", "$k", "$v");
            _maxPosition = Cmd("SELECT MAX(position) FROM events");
            _setInlinePosition = Cmd("UPDATE projections SET position = $p, state = 'Inline', updated_at = $now WHERE name = $n AND version = $v", "$p", "$now", "$n", "$v");
            _loadInlinePosition = Cmd("SELECT position FROM projections WHERE name = $n AND version = $v", "$n", "$v");
            RegisterInlineProjections();
            _saveMetadata = Cmd("UPDATE streams SET max_age_ms = $age, max_count = $mc, truncate_before = $tb, custom_metadata = $cm, changed_at = $now WHERE stream_key = $k", "$age", "$mc", "$tb", "$cm", "$now", "$k");
        }

        private SqliteCommand Cmd(string sql, params string[] parameters)
        {
            var cmd = _c.CreateCommand();
            cmd.CommandText = sql;
            foreach (var p in parameters) cmd.Parameters.Add(new SqliteParameter { ParameterName = p });
            return cmd;
        }

        private static SqliteCommand Bind(SqliteCommand cmd, params object?[] values)
        {
            for (var i = 0; i < values.Length; i++) cmd.Parameters[i].Value = values[i] ?? DBNull.Value;
            return cmd;
        }

        /// <summary>Runs a group of requests in one transaction with one fsync; isolates each request's rule errors.</summary>
        public void Commit(List<WriteRequest> batch)
        {
            var results = new object?[batch.Count];
            var errors = new Exception?[batch.Count];
            var open = false;
            try
            {
                _begin.ExecuteNonQuery();
                open = true;
                var dataVersion = (long)_dataVersionCmd.ExecuteScalar()!;
                if (dataVersion != _dataVersion || _nextPosition < 0)
                {
                    // Another connection committed since our last transaction: nothing cached can be trusted.
                    _cache.Clear();
                    _dataVersion = dataVersion;
                    _nextPosition = (_maxPosition.ExecuteScalar() as long? ?? 0) + 1;
                }
                if (_cache.Count > MaxCachedStreams) _cache.Clear();
                _nowTicks = _options.TimeProvider.GetUtcNow().UtcTicks;
                if (_inline.Length > 0) CatchUpInlineProjections(dataVersionChanged: dataVersion != _dataVersionSeen);
                _dataVersionSeen = dataVersion;
                for (var i = 0; i < batch.Count; i++)
                {
                    var isolate = _inline.Length > 0 && batch[i] is AppendRequest;
                    var positionBefore = _nextPosition;
                    if (isolate) _savepoint.ExecuteNonQuery();
                    try
                    {
                        results[i] = batch[i].Execute(this);
                        if (isolate) _release.ExecuteNonQuery();
                    }
                    catch (Exception ex) when (ex is FactumException or ArgumentException)
                    {
                        errors[i] = ex;
                        if (isolate)
                        {
                            // An inline projection may have failed after the events were inserted: undo this request only.
                            _rollbackToSavepoint.ExecuteNonQuery();
                            _release.ExecuteNonQuery();
                            _nextPosition = positionBefore;
                            _cache.Clear();
                        }
                    }
                }
                if (_inline.Length > 0) SaveInlinePositions();
                _options.BeforeCommit?.Invoke();
                _commit.ExecuteNonQuery();
                open = false;
                CommitCount++;
            }
            catch (Exception ex)
            {
                if (open)
                {
                    try { _rollback.ExecuteNonQuery(); } catch (SqliteException) { /* the transaction is already gone */ }
                }
                // What the cache and the position counters saw was rolled back.
                _cache.Clear();
                _nextPosition = -1;
                Array.Fill(_inlinePositions, -1);
                if (batch.Count > 1)
                {
                    // Something failed below the rules (I/O, lock timeout): retry each request alone so one cannot sink the others.
                    foreach (var r in batch) Commit([r]);
                    return;
                }
                batch[0].Fail(ex is SqliteException { SqliteErrorCode: 11 or 26 } ? new StoreFormatException($"The store file is damaged: {ex.Message}", ex) : ex);
                return;
            }
            for (var i = 0; i < batch.Count; i++)
            {
                if (errors[i] is { } e) batch[i].Fail(e);
                else batch[i].Complete(results[i]);
            }
            _signal.Notify();
        }

        public StreamRow? LoadStream(StreamId streamId)
        {
            if (_cache.TryGetValue(streamId.Value, out var cached)) return cached;
            Bind(_selectStream, streamId.Value);
            if (ReadStreamRow(_selectStream) is not { } row) return null;
            _cache[streamId.Value] = row;
            return row;
        }

        public List<EventId> ReadIds(long streamKey, long fromVersion, int count)
        {
            var ids = new List<EventId>(count);
            using var r = Bind(_readIds, streamKey, fromVersion, count).ExecuteReader();
            while (r.Read()) ids.Add(new EventId(new Guid(r.GetFieldValue<byte[]>(0), bigEndian: true)));
            return ids;
        }

        public long? FindVersion(long streamKey, EventId eventId)
        {
            var v = Bind(_findVersion, eventId.Value.ToByteArray(bigEndian: true), streamKey).ExecuteScalar();
            return v is long l ? l : null;
        }

        /// <summary>Makes sure the stream has a row in <paramref name="state"/> (creating it if needed) and returns its key.</summary>
        private long EnsureRow(StreamId streamId, StreamRow? row, StreamState state) =>
            row?.Key ?? (long)Bind(_insertStream, streamId.Value, streamId.Category, (int)state, _nowTicks).ExecuteScalar()!;

        public AppendResult Write(StreamId streamId, StreamRow? row, AppendDecision decision, PreparedEvent[] events)
        {
            var head = row?.Head ?? StreamHead.None;
            if (decision.IsIdempotent)
            {
                var first = (long)Bind(_positionOf, row!.Value.Key, decision.FirstVersion).ExecuteScalar()!;
                var last = (long)Bind(_positionOf, row.Value.Key, decision.FirstVersion + events.Length - 1).ExecuteScalar()!;
                return new AppendResult(streamId, decision.FirstVersion + events.Length - 1, first, last, false);
            }
            if (events.Length == 0)
            {
                var pos = row?.LastPosition ?? 0;
                return new AppendResult(streamId, head.Actual, pos, pos, false);
            }
            var key = EnsureRow(streamId, row, StreamState.Active);
            var startVersion = head.StartVersion;
            if (row is not null && head.State != StreamState.Active)
            {
                // Metadata-only or soft-deleted stream comes (back) to life; after a soft delete, versions continue.
                if (head.State == StreamState.SoftDeleted) startVersion = head.LastVersion + 1;
                Bind(_setStreamState, (int)StreamState.Active, startVersion, row.Value.Metadata.TruncateBefore?.Value, _nowTicks, key).ExecuteNonQuery();
            }
            var version = decision.FirstVersion;
            var firstPosition = _nextPosition;
            List<RecordedEvent>? recorded = _inline.Length > 0 ? new(events.Length) : null;
            foreach (var e in events)
            {
                _insertEvent.Execute(_nextPosition, key, streamId, version, e, _nowTicks);
                recorded?.Add(new RecordedEvent
                {
                    EventId = e.EventId,
                    Type = e.Type,
                    SchemaVersion = e.SchemaVersion,
                    Timestamp = new DateTimeOffset(_nowTicks, TimeSpan.Zero),
                    StreamId = streamId,
                    StreamVersion = version,
                    Position = _nextPosition,
                    CorrelationId = e.CorrelationId,
                    CausationId = e.CausationId,
                    Metadata = e.Metadata,
                    Payload = e.Payload,
                });
                _nextPosition++;
                version++;
            }
            if (recorded is not null) ApplyInline(recorded);
            _cache[streamId.Value] = new StreamRow(key, new StreamHead(StreamState.Active, version - 1, startVersion), _nextPosition - 1, row?.Metadata ?? StreamMetadata.None);
            return new AppendResult(streamId, version - 1, firstPosition, _nextPosition - 1, true);
        }

        public void SaveMetadata(StreamId streamId, StreamRow? row, StreamMetadata m, byte[]? customJson)
        {
            var key = EnsureRow(streamId, row, StreamState.NotFound);
            Bind(_saveMetadata, m.MaxAge is { } age ? (long)age.TotalMilliseconds : null, m.MaxCount, m.TruncateBefore?.Value, customJson, _nowTicks, key).ExecuteNonQuery();
            _cache.Remove(streamId.Value);
        }

        public void Delete(StreamId streamId, StreamRow? row, DeleteMode mode)
        {
            var key = EnsureRow(streamId, row, StreamState.NotFound);
            var head = row?.Head ?? StreamHead.None;
            if (mode == DeleteMode.Hard)
                Bind(_setStreamState, (int)StreamState.Tombstoned, head.StartVersion, row?.Metadata.TruncateBefore?.Value, _nowTicks, key).ExecuteNonQuery();
            else if (head.State == StreamState.Active)
                Bind(_setStreamState, (int)StreamState.SoftDeleted, head.StartVersion, head.LastVersion + 1, _nowTicks, key).ExecuteNonQuery();
            _cache.Remove(streamId.Value);
        }

        private void RegisterInlineProjections()
        {
            if (_inline.Length == 0) return;
            var now = _options.TimeProvider.GetUtcNow().UtcTicks;
            using var tx = _c.BeginTransaction();
            foreach (var p in _inline)
            {
                Factum.Projections.ProjectionName.Validate(p.Name);
                using var cmd = _c.CreateCommand();
                cmd.Transaction = tx;
                // An inline projection has one version: older versions' tables go, and a new version starts from 0 at the next commit.
                var old = new List<long>();
                cmd.CommandText = "SELECT version FROM projections WHERE name = $n AND version <> $v";
                cmd.Parameters.AddWithValue("$n", p.Name);
                cmd.Parameters.AddWithValue("$v", p.Version);
                using (var r = cmd.ExecuteReader()) while (r.Read()) old.Add(r.GetInt64(0));
                foreach (var v in old)
                {
                    using var drop = _c.CreateCommand();
                    drop.Transaction = tx;
                    drop.CommandText = $"DROP TABLE IF EXISTS {SqliteProjectionRunner.TableName(p.Name, (int)v)}; DELETE FROM projections WHERE name = $n AND version = {v}";
                    drop.Parameters.AddWithValue("$n", p.Name);
                    drop.ExecuteNonQuery();
                }
                SqliteProjectionStore.CreateStorage(_c, tx, p.Name, p.Version, [.. p.IndexedFields]);
                cmd.CommandText = $"INSERT INTO projections(name, version, active, position, state, updated_at) VALUES ($n, $v, 1, 0, 'Inline', $now) ON CONFLICT(name, version) DO UPDATE SET active = 1";
                cmd.Parameters.AddWithValue("$now", now);
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
        }

        /// <summary>Applies events appended elsewhere (other processes, or before the projection existed) so inline projections never skip one.</summary>
        private void CatchUpInlineProjections(bool dataVersionChanged)
        {
            var head = _nextPosition - 1;
            for (var i = 0; i < _inline.Length; i++)
            {
                if (_inlinePositions[i] < 0 || dataVersionChanged)
                    _inlinePositions[i] = Bind(_loadInlinePosition, _inline[i].Name, _inline[i].Version).ExecuteScalar() as long? ?? 0;
                if (_inlinePositions[i] >= head) continue;
                using var query = new EventPageQuery(_c, _checksumsFrom, $"SELECT {EventColumns}, s.stream_id FROM events e CROSS JOIN streams s ON s.stream_key = e.stream_key WHERE e.position > ?1 ORDER BY e.position LIMIT 1000");
                while (_inlinePositions[i] < head)
                {
                    query.Bind(1, _inlinePositions[i]);
                    var page = query.ReadPage(null, 1000);
                    if (page.Count == 0) break;
                    ApplyInline(page, only: i);
                    _inlinePositions[i] = page[^1].Position.Value;
                }
                _inlinePositions[i] = head;
            }
        }

        private void ApplyInline(List<RecordedEvent> events, int only = -1)
        {
            for (var i = 0; i < _inline.Length; i++)
            {
                if (only >= 0 && i != only) continue;
                var p = _inline[i];
                var table = SqliteProjectionRunner.TableName(p.Name, p.Version);
                using var select = _c.CreateCommand();
                select.CommandText = $"SELECT doc FROM {table} WHERE key = $k";
                var key = select.Parameters.Add(new SqliteParameter { ParameterName = "$k" });
                // Reads see this transaction's own writes; they are synchronous, so a projection that awaits only its
                // context completes synchronously here, inside the append's transaction.
                var docs = new Factum.Projections.ProjectionBatchContext((k, _) =>
                {
                    key.Value = k;
                    return ValueTask.FromResult(select.ExecuteScalar() as string);
                }, SystemTextJsonEventSerializer.Default.Options);
                foreach (var e in events)
                {
                    if (!p.Filter.Matches(e)) continue;
                    try
                    {
                        var applied = p.ApplyAsync(e, docs, CancellationToken.None);
                        if (!applied.IsCompleted)
                            throw new InvalidOperationException("an inline projection runs inside the append's transaction and must complete synchronously: await only its context, and do no other I/O");
                        applied.GetAwaiter().GetResult();
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        throw new Factum.Projections.ProjectionFailedException($"Inline projection '{p.Name}' v{p.Version} failed on {e.Type} at {e.StreamId}@{e.StreamVersion}: {ex.Message}. The append was not written.", ex);
                    }
                }
                SqliteProjectionStore.WriteChanges(_c, table, docs.Changes());
            }
        }

        private void SaveInlinePositions()
        {
            for (var i = 0; i < _inline.Length; i++)
            {
                _inlinePositions[i] = _nextPosition - 1;
                Bind(_setInlinePosition, _inlinePositions[i], _nowTicks, _inline[i].Name, _inline[i].Version).ExecuteNonQuery();
            }
        }

        public void Dispose()
        {
            _insertEvent.Dispose();
            foreach (var c in new[] { _savepoint, _release, _rollbackToSavepoint, _setInlinePosition, _loadInlinePosition })
                c.Dispose();
            foreach (var c in new[] { _begin, _commit, _rollback, _dataVersionCmd, _selectStream, _insertStream, _setStreamState, _findVersion, _readIds, _positionOf, _maxPosition, _saveMetadata })
                c.Dispose();
        }
    }

    /// <summary>Reads the retention columns (max_age_ms, max_count, truncate_before, custom_metadata) starting at <paramref name="first"/>.</summary>
    private static StreamMetadata ReadMetadata(SqliteDataReader r, int first) => new()
    {
        // Older builds accepted any age; one beyond today's limit reads as the limit, so such a stream stays readable.
        MaxAge = r.IsDBNull(first) ? null : TimeSpan.FromMilliseconds(Math.Clamp(r.GetInt64(first), 1000, (long)StreamMetadata.MaxAgeLimit.TotalMilliseconds)),
        MaxCount = r.IsDBNull(first + 1) ? null : r.GetInt64(first + 1),
        TruncateBefore = r.IsDBNull(first + 2) ? null : new StreamVersion(r.GetInt64(first + 2)),
        Custom = r.IsDBNull(first + 3) ? EmptyMetadata.Instance : MetadataCodec.Decode(r.GetFieldValue<byte[]>(first + 3)),
    };
}
