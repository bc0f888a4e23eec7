using System.Text.Json;
using Factum.Projections;
using Factum.Subscriptions;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

/// <summary>
/// Runs one projection version over the SQLite store. Each batch of events and the projection's checkpoint commit in
/// the same transaction (through the store's writer), so every event affects the read model exactly once, even across
/// crashes. A new version builds its own table from the first event while queries keep reading the active version;
/// once it has caught up, it becomes active in one transaction and the older versions' tables are dropped.
/// </summary>
public sealed class SqliteProjectionRunner : IProjectionRun
{
    private readonly SqliteEventStore _store;
    private readonly IProjection _projection;
    private readonly ProjectionOptions _options;
    private readonly string _table;
    private readonly CancellationTokenSource _stop = new();
    private readonly Random _random = new();
    private readonly Microsoft.Extensions.Logging.ILogger _log;
    private Task _loop = Task.CompletedTask;

    /// <summary>Creates a runner; <see cref="StartAsync"/> runs it.</summary>
    public SqliteProjectionRunner(SqliteEventStore store, IProjection projection, ProjectionOptions? options = null)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _projection = projection ?? throw new ArgumentNullException(nameof(projection));
        ProjectionName.Validate(projection.Name);
        _options = options ?? new ProjectionOptions();
        _table = TableName(projection.Name, projection.Version);
        _log = (_options.LoggerFactory ?? store.Options.LoggerFactory).CreateLogger(FactumLog.ProjectionsCategory);
        _leaseLog = (_options.LoggerFactory ?? store.Options.LoggerFactory).CreateLogger(FactumLog.CoordinationCategory);
    }

    private readonly Microsoft.Extensions.Logging.ILogger _leaseLog;

    /// <summary>The key of a projection version's parked events.</summary>
    internal static string ParkedId(string name, int version) => $"projection:{name}:v{version}";

    /// <summary>Completes when the runner stops or faults.</summary>
    public Task Completion => _loop;

    internal static string TableName(string name, int version) => $"\"rm_{name.Replace('-', '_')}_v{version}\"";

    /// <summary>Registers the version (active at once if the projection has no active version yet) and starts it.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        var now = _store.Options.TimeProvider.GetUtcNow().UtcTicks;
        await _store.ExecuteInWriterAsync(c =>
        {
            Exec(c, $"CREATE TABLE IF NOT EXISTS {_table} (key TEXT PRIMARY KEY, doc TEXT NOT NULL)");
            using var cmd = c.CreateCommand();
            cmd.CommandText = """
                INSERT INTO projections(name, version, active, position, state, updated_at)
                VALUES ($n, $v, NOT EXISTS (SELECT 1 FROM projections WHERE name = $n AND active = 1), 0, 'Building', $now)
                ON CONFLICT(name, version) DO UPDATE SET state = CASE WHEN state IN ('Faulted', 'Pending') THEN (CASE WHEN active = 1 THEN 'Live' ELSE 'Building' END) ELSE state END, last_error = NULL, failing_position = NULL
                """;
            cmd.Parameters.AddWithValue("$n", _projection.Name);
            cmd.Parameters.AddWithValue("$v", _projection.Version);
            cmd.Parameters.AddWithValue("$now", now);
            return cmd.ExecuteNonQuery();
        }, cancellationToken).ConfigureAwait(false);
        _loop = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
        _metrics = FactumMetrics.Default.TrackComponent("projection", _projection.Name);
        _metricsTimer = new Timer(_ => _ = RefreshMetricsAsync(), null, TimeSpan.Zero, TimeSpan.FromSeconds(5));
    }

    private FactumMetrics.ComponentStatus? _metrics;
    private Timer? _metricsTimer;

    /// <summary>Keeps the lag and state gauges (factum.projection.*) current from the same record the CLI reads.</summary>
    private async Task RefreshMetricsAsync()
    {
        if (_metrics is not { } m) return;
        try
        {
            var info = (await new SqliteReadModels(_store).ListAsync().ConfigureAwait(false)).FirstOrDefault(p => p.Name == _projection.Name && p.Version == _projection.Version);
            if (info is null) return;
            (m.Lag, m.State) = (info.Lag, info.State);
            m.Up = !_loop.IsCompleted && info.State != "Faulted";
        }
        catch (Exception ex) when (ex is not OutOfMemoryException and not ObjectDisposedException)
        {
            m.Up = !_loop.IsCompleted;
        }
        catch (ObjectDisposedException)
        {
            m.Up = false;
        }
    }

    /// <summary>The lease that makes this runner the only one of its projection version across processes.</summary>
    internal static string LeaseName(string name, int version) => $"projection:{name}:v{version}";

    /// <summary>The lease the batches are committed under while this runner owns the projection version.</summary>
    private volatile Factum.Coordination.Lease? _fence;

    /// <summary>True while this runner holds its projection version's lease (the others stand by).</summary>
    public bool IsOwner => _fence is not null;

    private Task RunAsync(CancellationToken ct) =>
        Factum.Coordination.SingleOwner.RunAsync(new SqliteLeaseStore(_store), LeaseName(_projection.Name, _projection.Version), _options.Lease with { TimeProvider = _store.Options.TimeProvider },
            async (lease, owned) =>
            {
                _fence = lease;
                await RunOwnedAsync(owned).ConfigureAwait(false);
            },
            lease => { if (lease is null) _fence = null; },
            _leaseLog, ct);

    /// <summary>Throws <see cref="Factum.Coordination.LeaseLostException"/> unless this runner still holds its lease; in the writer's transaction.</summary>
    private void CheckFence(SqliteConnection c)
    {
        if (_fence is { } fence) SqliteLeaseStore.CheckFence(c, fence, _store.Options.TimeProvider.GetUtcNow().UtcTicks);
        else throw new InvalidOperationException($"Projection '{_projection.Name}' v{_projection.Version} wrote without holding its lease.");
    }

    private async Task RunOwnedAsync(CancellationToken ct)
    {
        try
        {
            var active = false;
            while (!ct.IsCancellationRequested)
            {
                // A newer version took over and dropped this version's table: this runner's work is done.
                if (await LoadPositionAsync(ct).ConfigureAwait(false) is not { } position) return;
                var head = await _store.GetHeadPositionAsync(ct).ConfigureAwait(false);
                var batch = new List<RecordedEvent>(_options.BatchSize);
                // Only up to the high-water mark: past it, a position may still be committing.
                var filter = _projection.Filter;
                if (head.Value > position)
                {
                    await foreach (var e in _store.ReadAllAsync(new ReadAllOptions { From = position + 1, To = head, MaxCount = _options.BatchSize, Filter = filter }, ct).ConfigureAwait(false))
                        batch.Add(e);
                }
                var caughtUp = batch.Count < _options.BatchSize;
                // Up to the head, nothing else matched: the checkpoint may move there.
                var through = caughtUp ? Math.Max(head.Value, batch.Count > 0 ? batch[^1].Position.Value : position) : batch[^1].Position.Value;
                if (batch.Count > 0 || through > position)
                {
                    if (!await ApplyWithRetriesAsync(batch, through, ct).ConfigureAwait(false)) return;
                }
                if (caughtUp)
                {
                    if (!active)
                    {
                        active = await PromoteIfBehindAsync(ct).ConfigureAwait(false) is true;
                        if (active && _promoted) FactumLog.ProjectionPromoted(_log, _projection.Name, _projection.Version, through);
                    }
                    await _store.WaitForAppendAsync(head, _options.LiveWaitTimeout, ct).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (SupersededException)
        {
            FactumLog.ProjectionSuperseded(_log, _projection.Name, _projection.Version);
        }
    }

    private async Task<long?> LoadPositionAsync(CancellationToken ct)
    {
        using var c = _store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT position FROM projections WHERE name = $n AND version = $v";
        cmd.Parameters.AddWithValue("$n", _projection.Name);
        cmd.Parameters.AddWithValue("$v", _projection.Version);
        return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) as long?;
    }

    /// <summary>Applies a batch; on failure retries it, then isolates the failing event and stops or parks it.</summary>
    private async Task<bool> ApplyWithRetriesAsync(List<RecordedEvent> batch, long through, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await ApplyAsync(batch, through, ct).ConfigureAwait(false);
                return true;
            }
            catch (ProjectionFailedException ex) when (attempt < _options.Retry.MaxAttempts)
            {
                FactumLog.ProjectionRetry(_log, _projection.Name, _projection.Version, attempt, _options.Retry.MaxAttempts, ex.Message);
                await Task.Delay(_options.Retry.DelayBefore(attempt, _random), ct).ConfigureAwait(false);
            }
            catch (ProjectionFailedException)
            {
                break;
            }
        }
        // Event by event, so everything before the failing event is kept and the failing one is named.
        foreach (var e in batch)
        {
            try
            {
                await ApplyAsync([e], e.Position.Value, ct).ConfigureAwait(false);
            }
            catch (ProjectionFailedException ex)
            {
                var cause = ex.InnerException!;
                if (_options.OnFailure == FailureAction.Park)
                {
                    FactumLog.ProjectionEventParked(_log, _projection.Name, _projection.Version, e.Type, e.EventId.ToString(), e.Position.Value, e.StreamId.Value, $"{cause.GetType().Name}: {cause.Message}");
                    await new SqliteSubscriptionStore(_store).ParkAsync(new ParkedEvent(ParkedId(_projection.Name, _projection.Version), e.Position, e.EventId, e.StreamId, e.StreamVersion, e.Type,
                        ex.InnerException!.GetType().FullName!, ex.InnerException.Message, ex.InnerException.StackTrace, _options.Retry.MaxAttempts, _store.Options.TimeProvider.GetUtcNow(), _store.Options.TimeProvider.GetUtcNow()), ct).ConfigureAwait(false);
                    await ApplyAsync([], e.Position.Value, ct).ConfigureAwait(false);
                    continue;
                }
                FactumLog.ProjectionFaulted(_log, cause, _projection.Name, _projection.Version, e.Type, e.EventId.ToString(), e.Position.Value, e.StreamId.Value);
                await RecordFaultAsync(e, ex, ct).ConfigureAwait(false);
                return false;
            }
        }
        await ApplyAsync([], through, ct).ConfigureAwait(false);
        return true;
    }

    /// <summary>One transaction: the documents the events produce and the checkpoint.</summary>
    private Task<object?> ApplyAsync(IReadOnlyList<RecordedEvent> events, long through, CancellationToken ct)
    {
        var now = _store.Options.TimeProvider.GetUtcNow().UtcTicks;
        return _store.ExecuteInWriterAsync(c =>
        {
            // A newer version may have taken over and dropped this version's table since the batch was read; checked in
            // the writer's transaction, where the switch also happens, so it cannot change in between.
            using (var alive = c.CreateCommand())
            {
                alive.CommandText = "SELECT 1 FROM projections WHERE name = $n AND version = $v";
                alive.Parameters.AddWithValue("$n", _projection.Name);
                alive.Parameters.AddWithValue("$v", _projection.Version);
                if (alive.ExecuteScalar() is null) throw new SupersededException();
            }
            CheckFence(c);
            // A savepoint keeps a failing projection's partial writes out of the group transaction.
            Exec(c, "SAVEPOINT projection");
            try
            {
                using (var context = new ProjectionDocuments(c, _table, _options.Json))
                {
                    foreach (var e in events)
                    {
                        try { _projection.Apply(e, context); }
                        catch (Exception ex) when (ex is not OperationCanceledException)
                        {
                            throw new ProjectionFailedException($"Projection '{_projection.Name}' v{_projection.Version} failed on {e.Type} at position {e.Position}: {ex.Message}", ex);
                        }
                    }
                    context.Flush();
                }
                using var cmd = c.CreateCommand();
                cmd.CommandText = "UPDATE projections SET position = max(position, $p), state = CASE WHEN active = 1 THEN 'Live' ELSE 'Building' END, updated_at = $now WHERE name = $n AND version = $v";
                cmd.Parameters.AddWithValue("$p", through);
                cmd.Parameters.AddWithValue("$now", now);
                cmd.Parameters.AddWithValue("$n", _projection.Name);
                cmd.Parameters.AddWithValue("$v", _projection.Version);
                cmd.ExecuteNonQuery();
                Exec(c, "RELEASE projection");
            }
            catch
            {
                Exec(c, "ROLLBACK TO projection");
                Exec(c, "RELEASE projection");
                throw;
            }
            return null;
        }, ct);
    }

    /// <summary>
    /// This version was replaced by a newer one that has caught up: its runner's work is done. A FactumException, so the
    /// writer fails only this request and not the group commit it shares with other writers.
    /// </summary>
    private sealed class SupersededException() : FactumException("This projection version was replaced by a newer one.");

    private Task<object?> RecordFaultAsync(RecordedEvent e, Exception ex, CancellationToken ct) =>
        _store.ExecuteInWriterAsync(c =>
        {
            CheckFence(c);
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE projections SET state = 'Faulted', last_error = $err, failing_position = $p WHERE name = $n AND version = $v";
            cmd.Parameters.AddWithValue("$err", ex.Message);
            cmd.Parameters.AddWithValue("$p", e.Position.Value);
            cmd.Parameters.AddWithValue("$n", _projection.Name);
            cmd.Parameters.AddWithValue("$v", _projection.Version);
            return cmd.ExecuteNonQuery();
        }, ct);

    /// <summary>Blue/green switch: once this version has caught up, it becomes the active one and older versions are dropped.</summary>
    private Task<object?> PromoteIfBehindAsync(CancellationToken ct) =>
        _store.ExecuteInWriterAsync(c =>
        {
            CheckFence(c);
            using var check = c.CreateCommand();
            check.CommandText = "SELECT active FROM projections WHERE name = $n AND version = $v";
            check.Parameters.AddWithValue("$n", _projection.Name);
            check.Parameters.AddWithValue("$v", _projection.Version);
            if (check.ExecuteScalar() is 1L) return true;
            _promoted = true;
            var old = new List<long>();
            using (var list = c.CreateCommand())
            {
                list.CommandText = "SELECT version FROM projections WHERE name = $n AND version <> $v";
                list.Parameters.AddWithValue("$n", _projection.Name);
                list.Parameters.AddWithValue("$v", _projection.Version);
                using var r = list.ExecuteReader();
                while (r.Read()) old.Add(r.GetInt64(0));
            }
            using (var swap = c.CreateCommand())
            {
                swap.CommandText = "UPDATE projections SET active = (version = $v), state = CASE WHEN version = $v THEN 'Live' ELSE state END WHERE name = $n; DELETE FROM projections WHERE name = $n AND version <> $v";
                swap.Parameters.AddWithValue("$n", _projection.Name);
                swap.Parameters.AddWithValue("$v", _projection.Version);
                swap.ExecuteNonQuery();
            }
            foreach (var v in old) Exec(c, $"DROP TABLE IF EXISTS {TableName(_projection.Name, (int)v)}");
            return true;
        }, ct);

    private bool _promoted;

    private static void Exec(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    /// <summary>Stops after the current batch.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try { await _loop.ConfigureAwait(false); } catch (OperationCanceledException) { }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        if (_metricsTimer is not null) await _metricsTimer.DisposeAsync().ConfigureAwait(false);
        if (_metrics is not null) FactumMetrics.Default.Untrack(_metrics);
        _stop.Dispose();
    }

}

/// <summary>Queries read models (always the active version) and manages projections: list, status, reset.</summary>
public sealed class SqliteReadModels(SqliteEventStore store) : IProjectionEngine
{
    /// <inheritdoc />
    public async Task<IProjectionRun> StartAsync(IProjection projection, ProjectionOptions? options = null, CancellationToken cancellationToken = default)
    {
        var runner = new SqliteProjectionRunner(store, projection, options);
        await runner.StartAsync(cancellationToken).ConfigureAwait(false);
        return runner;
    }

    private readonly JsonSerializerOptions _json = SystemTextJsonEventSerializer.Default.Options;

    /// <inheritdoc />
    public async Task<IReadOnlyList<ProjectionInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        var head = (await store.GetHeadPositionAsync(cancellationToken).ConfigureAwait(false)).Value;
        using var c = store.OpenReadConnection();
        var rows = new List<ProjectionInfo>();
        using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "SELECT name, version, active, position, state, last_error, failing_position FROM projections ORDER BY name, version";
            using var r = cmd.ExecuteReader();
            while (r.Read())
                rows.Add(new ProjectionInfo(r.GetString(0), r.GetInt32(1), r.GetInt64(2) == 1, r.GetInt64(3), r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? null : r.GetInt64(6), head, 0));
        }
        for (var i = 0; i < rows.Count; i++)
        {
            using var count = c.CreateCommand();
            count.CommandText = $"SELECT count(*) FROM {SqliteProjectionRunner.TableName(rows[i].Name, rows[i].Version)}";
            rows[i] = rows[i] with { Documents = (long)count.ExecuteScalar()! };
        }
        return rows;
    }

    /// <inheritdoc />
    public async Task<string?> GetJsonAsync(string projection, string key, CancellationToken cancellationToken = default)
    {
        using var c = store.OpenReadConnection();
        var table = ActiveTable(c, projection);
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT doc FROM {table} WHERE key = $k";
        cmd.Parameters.AddWithValue("$k", key);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<(string Key, string Json)>> QueryAsync(string projection, string? jsonPath = null, string? equals = null, CancellationToken cancellationToken = default)
    {
        using var c = store.OpenReadConnection();
        var table = ActiveTable(c, projection);
        using var cmd = c.CreateCommand();
        cmd.CommandText = jsonPath is null ? $"SELECT key, doc FROM {table} ORDER BY key" : $"SELECT key, doc FROM {table} WHERE json_extract(doc, $path) = $value ORDER BY key";
        if (jsonPath is not null)
        {
            cmd.Parameters.AddWithValue("$path", jsonPath.StartsWith('$') ? jsonPath : "$." + jsonPath);
            cmd.Parameters.AddWithValue("$value", (object?)equals ?? DBNull.Value);
        }
        var list = new List<(string, string)>();
        using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (r.Read()) list.Add((r.GetString(0), r.GetString(1)));
        return list;
    }

    /// <inheritdoc />
    public Task ResetAsync(string projection, CancellationToken cancellationToken = default) =>
        store.ExecuteInWriterAsync(c =>
        {
            var table = ActiveTable(c, projection);
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"DELETE FROM {table}; UPDATE projections SET position = 0, state = 'Pending', last_error = NULL, failing_position = NULL WHERE name = $n AND active = 1";
            cmd.Parameters.AddWithValue("$n", projection);
            return cmd.ExecuteNonQuery();
        }, cancellationToken);

    /// <inheritdoc />
    public async Task<IReadOnlyList<ParkedEvent>> SkipFailingEventAsync(string projection, CancellationToken cancellationToken = default)
    {
        var versions = Versions(projection);
        var faulted = versions.Where(p => p.State == "Faulted" && p.FailingPosition is not null).ToList();
        if (faulted.Count == 0)
            throw new InvalidOperationException($"Projection '{projection}' has not stopped on an event ({string.Join(", ", versions.Select(v => $"v{v.Version} is {v.State}"))}); there is nothing to skip.");
        var parked = new List<ParkedEvent>();
        var log = store.Options.LoggerFactory.CreateLogger(FactumLog.ProjectionsCategory);
        foreach (var f in faulted)
        {
            var position = f.FailingPosition!.Value;
            RecordedEvent? e = null;
            await foreach (var r in store.ReadAllAsync(new ReadAllOptions { From = new GlobalPosition(position), MaxCount = 1 }, cancellationToken).ConfigureAwait(false)) e = r;
            if (e is null || e.Position.Value != position) throw new InvalidOperationException($"Projection '{projection}' v{f.Version} stopped on position {position}, which the log does not hold.");
            var now = store.Options.TimeProvider.GetUtcNow();
            var record = new ParkedEvent(SqliteProjectionRunner.ParkedId(projection, f.Version), e.Position, e.EventId, e.StreamId, e.StreamVersion, e.Type,
                "ProjectionFailed", f.LastError ?? "the projection failed on it", null, 1, now, now);
            // Parked first, then skipped: a crash between the two leaves it parked and still faulted, and a second skip completes it.
            await new SqliteSubscriptionStore(store).ParkAsync(record, cancellationToken).ConfigureAwait(false);
            await store.ExecuteInWriterAsync(c =>
            {
                using var cmd = c.CreateCommand();
                cmd.CommandText = "UPDATE projections SET position = max(position, $p), state = 'Pending', last_error = NULL, failing_position = NULL WHERE name = $n AND version = $v AND state = 'Faulted' AND failing_position = $p";
                cmd.Parameters.AddWithValue("$p", position);
                cmd.Parameters.AddWithValue("$n", projection);
                cmd.Parameters.AddWithValue("$v", f.Version);
                return cmd.ExecuteNonQuery();
            }, cancellationToken).ConfigureAwait(false);
            FactumLog.ProjectionEventSkipped(log, projection, f.Version, position);
            parked.Add(record);
        }
        return parked;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<ParkedEvent>> ListParkedAsync(string projection, CancellationToken cancellationToken = default)
    {
        var versions = Versions(projection);
        var parkedStore = new SqliteSubscriptionStore(store);
        var all = new List<ParkedEvent>();
        foreach (var v in versions) all.AddRange(await parkedStore.ListAsync(SqliteProjectionRunner.ParkedId(projection, v.Version), cancellationToken).ConfigureAwait(false));
        return all.OrderBy(p => p.Position.Value).ToList();
    }

    /// <summary>The recorded versions of one projection (without the document counts <see cref="ListAsync"/> adds).</summary>
    /// <exception cref="ArgumentException">There is no such projection.</exception>
    private List<(int Version, string State, long? FailingPosition, string? LastError)> Versions(string projection)
    {
        using var c = store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT version, state, failing_position, last_error FROM projections WHERE name = $n ORDER BY version";
        cmd.Parameters.AddWithValue("$n", projection);
        var rows = new List<(int, string, long?, string?)>();
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read()) rows.Add((r.GetInt32(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetInt64(2), r.IsDBNull(3) ? null : r.GetString(3)));
        }
        return rows.Count > 0 ? rows : throw new ArgumentException($"There is no projection named '{projection}' in this store.", nameof(projection));
    }

    private static string ActiveTable(SqliteConnection c, string projection)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT version FROM projections WHERE name = $n AND active = 1";
        cmd.Parameters.AddWithValue("$n", projection);
        return cmd.ExecuteScalar() is long v
            ? SqliteProjectionRunner.TableName(projection, (int)v)
            : throw new ArgumentException($"There is no projection named '{projection}' in this store.", nameof(projection));
    }
}

/// <summary>
/// The documents of one batch: read once, kept in memory while the batch runs, written back once at its end — all in
/// the batch's transaction. A projection that touches the same document for many events costs one read and one write.
/// </summary>
internal sealed class ProjectionDocuments(SqliteConnection c, string table, JsonSerializerOptions json) : IProjectionContext, IDisposable
{
    private readonly Dictionary<string, Entry> _docs = new(StringComparer.Ordinal);
    private SqliteCommand? _select, _upsert, _delete;

    private sealed class Entry
    {
        public object? Value;
        public bool Dirty;
    }

    public T? Get<T>(string key)
    {
        if (_docs.TryGetValue(key, out var entry))
        {
            return entry.Value switch
            {
                null => default,
                T typed => typed,
                var other => JsonSerializer.Deserialize<T>(JsonSerializer.Serialize(other, other.GetType(), json), json),
            };
        }
        _select ??= Command($"SELECT doc FROM {table} WHERE key = $k", "$k");
        _select.Parameters[0].Value = key;
        var value = _select.ExecuteScalar() is string doc ? JsonSerializer.Deserialize<T>(doc, json) : default;
        _docs[key] = new Entry { Value = value };
        return value;
    }

    public void Put<T>(string key, T document) => _docs[key] = new Entry { Value = document, Dirty = true };

    public void Delete(string key) => _docs[key] = new Entry { Value = null, Dirty = true };

    /// <summary>Writes the changed documents (still inside the batch's transaction).</summary>
    public void Flush()
    {
        foreach (var (key, entry) in _docs)
        {
            if (!entry.Dirty) continue;
            if (entry.Value is null)
            {
                _delete ??= Command($"DELETE FROM {table} WHERE key = $k", "$k");
                _delete.Parameters[0].Value = key;
                _delete.ExecuteNonQuery();
            }
            else
            {
                _upsert ??= Command($"INSERT OR REPLACE INTO {table}(key, doc) VALUES ($k, $d)", "$k", "$d");
                _upsert.Parameters[0].Value = key;
                _upsert.Parameters[1].Value = JsonSerializer.Serialize(entry.Value, entry.Value.GetType(), json);
                _upsert.ExecuteNonQuery();
            }
        }
        _docs.Clear();
    }

    private SqliteCommand Command(string sql, params string[] parameters)
    {
        var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        foreach (var p in parameters) cmd.Parameters.Add(new SqliteParameter { ParameterName = p });
        return cmd;
    }

    public void Dispose()
    {
        _select?.Dispose();
        _upsert?.Dispose();
        _delete?.Dispose();
    }
}
