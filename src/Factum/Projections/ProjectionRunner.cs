using System.Text.Json;
using Factum.Coordination;
using Factum.Subscriptions;
using Microsoft.Extensions.Logging;

namespace Factum.Projections;

/// <summary>
/// The projection engine over any backend: runs projections (<see cref="ProjectionRunner"/>) over an event store and
/// a backend's <see cref="IProjectionStore"/>, and lists, queries, resets and skips them.
/// </summary>
public class ProjectionEngine : IProjectionEngine
{
    private readonly IEventStore _events;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggers;

    /// <summary>An engine over <paramref name="events"/> whose read models live in <paramref name="store"/>.</summary>
    /// <param name="events">The event store the projections read.</param>
    /// <param name="store">Where the backend keeps the read models, checkpoints, parked events and leases.</param>
    /// <param name="timeProvider">The clock for parked-event times and lease waits (default: the system's).</param>
    /// <param name="loggerFactory">Where runners log, unless <see cref="ProjectionOptions.LoggerFactory"/> says otherwise.</param>
    public ProjectionEngine(IEventStore events, IProjectionStore store, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null)
    {
        _events = events ?? throw new ArgumentNullException(nameof(events));
        Store = store ?? throw new ArgumentNullException(nameof(store));
        _time = timeProvider ?? TimeProvider.System;
        _loggers = loggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
    }

    /// <summary>The backend's projection store.</summary>
    public IProjectionStore Store { get; }

    /// <summary>The key of a projection version's parked events.</summary>
    public static string ParkedId(string name, int version) => $"projection:{name}:v{version}";

    /// <summary>The lease that makes one runner the only one of its projection version across processes.</summary>
    public static string LeaseName(string name, int version) => $"projection:{name}:v{version}";

    /// <summary>A runner of <paramref name="projection"/>, not started yet.</summary>
    public ProjectionRunner CreateRunner(IProjection projection, ProjectionOptions? options = null) =>
        new(_events, Store, projection, options, _time, _loggers);

    /// <inheritdoc />
    public async Task<IProjectionRun> StartAsync(IProjection projection, ProjectionOptions? options = null, CancellationToken cancellationToken = default)
    {
        var runner = CreateRunner(projection, options);
        await runner.StartAsync(cancellationToken).ConfigureAwait(false);
        return runner;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<ProjectionInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        var head = (await _events.GetHeadPositionAsync(cancellationToken).ConfigureAwait(false)).Value;
        return (await Store.ListAsync(cancellationToken).ConfigureAwait(false)).Select(p => p with { Head = head }).ToList();
    }

    /// <inheritdoc />
    public Task<string?> GetJsonAsync(string projection, string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(projection);
        ArgumentNullException.ThrowIfNull(key);
        return Store.GetJsonAsync(projection, key, cancellationToken);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<(string Key, string Json)>> QueryAsync(string projection, ProjectionQuery? query = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(projection);
        query ??= ProjectionQuery.All;
        query.Validate();
        return Store.QueryAsync(projection, query, cancellationToken);
    }

    /// <inheritdoc />
    public Task ResetAsync(string projection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(projection);
        return Store.ResetAsync(projection, cancellationToken);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<ParkedEvent>> SkipFailingEventAsync(string projection, CancellationToken cancellationToken = default)
    {
        var versions = await VersionsAsync(projection, cancellationToken).ConfigureAwait(false);
        var faulted = versions.Where(p => p.State == "Faulted" && p.FailingPosition is not null).ToList();
        if (faulted.Count == 0)
            throw new InvalidOperationException($"Projection '{projection}' has not stopped on an event ({string.Join(", ", versions.Select(v => $"v{v.Version} is {v.State}"))}); there is nothing to skip.");
        var parked = new List<ParkedEvent>();
        var log = _loggers.CreateLogger(FactumLog.ProjectionsCategory);
        foreach (var f in faulted)
        {
            var position = f.FailingPosition!.Value;
            RecordedEvent? e = null;
            await foreach (var r in _events.ReadAllAsync(new ReadAllOptions { From = new GlobalPosition(position), MaxCount = 1 }, cancellationToken).ConfigureAwait(false)) e = r;
            if (e is null || e.Position.Value != position) throw new InvalidOperationException($"Projection '{projection}' v{f.Version} stopped on position {position}, which the log does not hold.");
            var now = _time.GetUtcNow();
            var record = new ParkedEvent(ParkedId(projection, f.Version), e.Position, e.EventId, e.StreamId, e.StreamVersion, e.Type,
                "ProjectionFailed", f.LastError ?? "the projection failed on it", null, 1, now, now);
            // Parked first, then skipped: a crash between the two leaves it parked and still faulted, and a second skip completes it.
            await Store.Parked.ParkAsync(record, cancellationToken).ConfigureAwait(false);
            await Store.SkipAsync(projection, f.Version, position, cancellationToken).ConfigureAwait(false);
            FactumLog.ProjectionEventSkipped(log, projection, f.Version, position);
            parked.Add(record);
        }
        return parked;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<ParkedEvent>> ListParkedAsync(string projection, CancellationToken cancellationToken = default)
    {
        var all = new List<ParkedEvent>();
        foreach (var v in await VersionsAsync(projection, cancellationToken).ConfigureAwait(false))
            all.AddRange(await Store.Parked.ListAsync(ParkedId(projection, v.Version), cancellationToken).ConfigureAwait(false));
        return all.OrderBy(p => p.Position.Value).ToList();
    }

    /// <exception cref="ArgumentException">There is no such projection.</exception>
    private async Task<List<ProjectionInfo>> VersionsAsync(string projection, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(projection);
        var rows = (await Store.ListAsync(ct).ConfigureAwait(false)).Where(p => p.Name == projection).OrderBy(p => p.Version).ToList();
        return rows.Count > 0 ? rows : throw new ArgumentException($"There is no projection named '{projection}' in this store.", nameof(projection));
    }
}

/// <summary>
/// Runs one projection version over any backend's <see cref="IProjectionStore"/>. It reads events in batches up to
/// the store's high-water mark, applies them through an async document context, and commits each batch's documents
/// with the checkpoint in one transaction of the projection store, so every event affects the read model exactly
/// once, even across crashes. A new version builds its own documents from the first event while queries keep reading
/// the active version; once caught up it becomes active and the older versions are dropped, and a runner whose version
/// was dropped ends quietly. One runner per projection version runs across processes (a lease); the others stand by,
/// and a runner that lost its lease cannot commit.
/// </summary>
public sealed class ProjectionRunner : IProjectionRun
{
    private readonly IEventStore _events;
    private readonly IProjectionStore _store;
    private readonly IProjection _projection;
    private readonly ProjectionOptions _options;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stop = new();
    private readonly Random _random = new();
    private readonly ILogger _log;
    private readonly ILogger _leaseLog;
    private Task _loop = Task.CompletedTask;
    private FactumMetrics.ComponentStatus? _metrics;
    private Timer? _metricsTimer;
    private volatile Lease? _fence;

    /// <summary>Creates a runner; <see cref="StartAsync"/> runs it.</summary>
    /// <param name="events">The event store it reads.</param>
    /// <param name="store">Where its documents, checkpoint and lease live.</param>
    /// <param name="projection">The projection version.</param>
    /// <param name="options">Batching, retries, failure policy, lease.</param>
    /// <param name="timeProvider">The clock of parked-event times and lease waits.</param>
    /// <param name="loggerFactory">Where it logs unless <see cref="ProjectionOptions.LoggerFactory"/> is set.</param>
    public ProjectionRunner(IEventStore events, IProjectionStore store, IProjection projection, ProjectionOptions? options = null, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null)
    {
        _events = events ?? throw new ArgumentNullException(nameof(events));
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _projection = projection ?? throw new ArgumentNullException(nameof(projection));
        ProjectionName.Validate(projection.Name);
        foreach (var field in projection.IndexedFields) ProjectionQuery.ValidateField(field);
        _options = options ?? new ProjectionOptions();
        _time = timeProvider ?? TimeProvider.System;
        var loggers = _options.LoggerFactory ?? loggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
        _log = loggers.CreateLogger(FactumLog.ProjectionsCategory);
        _leaseLog = loggers.CreateLogger(FactumLog.CoordinationCategory);
    }

    /// <summary>Completes when the runner stops, faults or is superseded.</summary>
    public Task Completion => _loop;

    /// <summary>True while this runner holds its projection version's lease (the others stand by).</summary>
    public bool IsOwner => _fence is not null;

    private string Name => _projection.Name;

    private int Version => _projection.Version;

    /// <summary>Registers the version (active at once if the projection has no active version yet) and starts it.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await _store.RegisterAsync(new ProjectionRegistration(Name, Version, [.. _projection.IndexedFields]), cancellationToken).ConfigureAwait(false);
        _loop = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
        _metrics = (_options.Metrics ?? FactumMetrics.Default).TrackComponent("projection", Name);
        _metricsTimer = new Timer(_ => _ = RefreshMetricsAsync(), null, TimeSpan.Zero, TimeSpan.FromSeconds(5));
    }

    /// <summary>Keeps the lag and state gauges (factum.projection.*) current from the same record the CLI reads.</summary>
    private async Task RefreshMetricsAsync()
    {
        if (_metrics is not { } m) return;
        try
        {
            var info = (await _store.ListAsync().ConfigureAwait(false)).FirstOrDefault(p => p.Name == Name && p.Version == Version);
            if (info is null) return;
            var head = (await _events.GetHeadPositionAsync().ConfigureAwait(false)).Value;
            (m.Lag, m.State) = ((info with { Head = head }).Lag, info.State);
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

    private Task RunAsync(CancellationToken ct) =>
        SingleOwner.RunAsync(_store.Leases, ProjectionEngine.LeaseName(Name, Version), _options.Lease with { TimeProvider = _time },
            async (lease, owned) =>
            {
                _fence = lease;
                await RunOwnedAsync(lease, owned).ConfigureAwait(false);
            },
            lease => { if (lease is null) _fence = null; },
            _leaseLog, ct);

    private async Task RunOwnedAsync(Lease fence, CancellationToken ct)
    {
        var reader = await _store.OpenReaderAsync(Name, Version, ct).ConfigureAwait(false);
        // While catching up, the next batch is read while this one commits (the commit's fsync is the slow part).
        Prefetch? next = null;
        try
        {
            var active = false;
            // Known while catching up (each commit checks it has not moved); loaded again whenever the runner has
            // caught up, so a reset, a skip or a newer version taking over is seen without a read per batch.
            long? known = null;
            while (!ct.IsCancellationRequested)
            {
                // A newer version took over and dropped this version: this runner's work is done.
                var position = known ?? await _store.LoadCheckpointAsync(Name, Version, ct).ConfigureAwait(false) ?? throw new ProjectionSupersededException(Name, Version);
                known = null;
                GlobalPosition head;
                List<RecordedEvent>? batch = null;
                EventFilter filter;
                if (next is { } n && n.From == position && await n.Events.ConfigureAwait(false) is { } prefetched) (head, filter, batch) = (n.Head, n.Filter, prefetched);
                else
                {
                    head = await _events.GetHeadPositionAsync(ct).ConfigureAwait(false);
                    filter = _projection.Filter;
                }
                if (next is { } stale && stale.From != position) await stale.Events.ConfigureAwait(false); // observed, then dropped
                next = null;
                batch ??= await ReadBatchAsync(position, head, filter, ct).ConfigureAwait(false);
                var caughtUp = batch.Count < _options.BatchSize;
                // Up to the head, nothing else matched: the checkpoint may move there.
                var through = caughtUp ? Math.Max(head.Value, batch.Count > 0 ? batch[^1].Position.Value : position) : batch[^1].Position.Value;
                if (!caughtUp) next = new Prefetch(through, head, filter, PrefetchAsync(through, head, filter, ct));
                if (batch.Count > 0 || through > position)
                {
                    try
                    {
                        if (!await ApplyWithRetriesAsync(reader, batch, position, through, fence, ct).ConfigureAwait(false)) return;
                        known = through;
                    }
                    catch (ProjectionCheckpointMovedException)
                    {
                        continue; // reset or skipped meanwhile: start again from the stored checkpoint
                    }
                }
                if (caughtUp)
                {
                    known = null;
                    if (!active)
                    {
                        if (await _store.PromoteAsync(Name, Version, fence, ct).ConfigureAwait(false)) FactumLog.ProjectionPromoted(_log, Name, Version, through);
                        active = true;
                    }
                    if (_events is IAppendNotifier notifier) await notifier.WaitForAppendAsync(head, _options.LiveWaitTimeout, ct).ConfigureAwait(false);
                    else await Task.Delay(_options.LiveWaitTimeout, ct).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (ProjectionSupersededException)
        {
            FactumLog.ProjectionSuperseded(_log, Name, Version);
        }
        finally
        {
            if (next is { } pending) await pending.Events.ConfigureAwait(false);
            await reader.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The next batch, being read from <paramref name="From"/> (exclusive) up to <paramref name="Head"/>.</summary>
    private sealed record Prefetch(long From, GlobalPosition Head, EventFilter Filter, Task<List<RecordedEvent>?> Events);

    /// <summary>Up to a batch of events after <paramref name="position"/>, only up to the high-water mark <paramref name="head"/>: past it, a position may still be committing.</summary>
    private async Task<List<RecordedEvent>> ReadBatchAsync(long position, GlobalPosition head, EventFilter filter, CancellationToken ct)
    {
        var batch = new List<RecordedEvent>(_options.BatchSize);
        if (head.Value <= position) return batch;
        await foreach (var e in _events.ReadAllAsync(new ReadAllOptions { From = new GlobalPosition(position + 1), To = head, MaxCount = _options.BatchSize, Filter = filter }, ct).ConfigureAwait(false))
            batch.Add(e);
        return batch;
    }

    /// <summary>Reads ahead; null when that fails (the loop then reads again, and reports what goes wrong).</summary>
    private async Task<List<RecordedEvent>?> PrefetchAsync(long position, GlobalPosition head, EventFilter filter, CancellationToken ct)
    {
        try { return await ReadBatchAsync(position, head, filter, ct).ConfigureAwait(false); }
        catch (Exception ex) when (ex is not OutOfMemoryException) { return null; }
    }

    /// <summary>Applies a batch; on failure retries it, then isolates the failing event and stops (false) or parks it.</summary>
    private async Task<bool> ApplyWithRetriesAsync(IProjectionDocumentReader reader, List<RecordedEvent> batch, long from, long through, Lease fence, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await ApplyAsync(reader, batch, from, through, fence, ct).ConfigureAwait(false);
                return true;
            }
            catch (ProjectionFailedException ex) when (attempt < _options.Retry.MaxAttempts)
            {
                FactumLog.ProjectionRetry(_log, Name, Version, attempt, _options.Retry.MaxAttempts, ex.Message);
                await Task.Delay(_options.Retry.DelayBefore(attempt, _random), ct).ConfigureAwait(false);
            }
            catch (ProjectionFailedException)
            {
                break;
            }
        }
        // Event by event, so everything before the failing event is kept and the failing one is named.
        var at = from;
        foreach (var e in batch)
        {
            try
            {
                await ApplyAsync(reader, [e], at, e.Position.Value, fence, ct).ConfigureAwait(false);
            }
            catch (ProjectionFailedException ex)
            {
                var cause = ex.InnerException!;
                if (_options.OnFailure == FailureAction.Park)
                {
                    FactumLog.ProjectionEventParked(_log, Name, Version, e.Type, e.EventId.ToString(), e.Position.Value, e.StreamId.Value, $"{cause.GetType().Name}: {cause.Message}");
                    var now = _time.GetUtcNow();
                    await _store.Parked.ParkAsync(new ParkedEvent(ProjectionEngine.ParkedId(Name, Version), e.Position, e.EventId, e.StreamId, e.StreamVersion, e.Type,
                        cause.GetType().FullName!, cause.Message, cause.StackTrace, _options.Retry.MaxAttempts, now, now), ct).ConfigureAwait(false);
                    await ApplyAsync(reader, [], at, e.Position.Value, fence, ct).ConfigureAwait(false);
                    at = e.Position.Value;
                    continue;
                }
                FactumLog.ProjectionFaulted(_log, cause, Name, Version, e.Type, e.EventId.ToString(), e.Position.Value, e.StreamId.Value);
                await _store.RecordFaultAsync(Name, Version, e.Position.Value, ex.Message, fence, ct).ConfigureAwait(false);
                return false;
            }
            at = e.Position.Value;
        }
        if (through > at) await ApplyAsync(reader, [], at, through, fence, ct).ConfigureAwait(false);
        return true;
    }

    /// <summary>Runs the events through the projection (no I/O but its document reads), then commits documents and checkpoint together.</summary>
    private async Task ApplyAsync(IProjectionDocumentReader reader, List<RecordedEvent> events, long from, long through, Lease fence, CancellationToken ct)
    {
        IReadOnlyList<DocumentChange> changes = [];
        if (events.Count > 0)
        {
            var context = new ProjectionBatchContext(reader.GetAsync, _options.Json);
            foreach (var e in events)
            {
                try { await _projection.ApplyAsync(e, context, ct).ConfigureAwait(false); }
                catch (Exception ex) when (ex is not OperationCanceledException and not ProjectionSupersededException and not LeaseLostException)
                {
                    throw new ProjectionFailedException($"Projection '{Name}' v{Version} failed on {e.Type} at position {e.Position}: {ex.Message}", ex);
                }
            }
            changes = context.Changes();
        }
        await _store.CommitAsync(new ProjectionBatch(Name, Version, from, through, changes), fence, ct).ConfigureAwait(false);
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
        if (_metrics is not null) (_options.Metrics ?? FactumMetrics.Default).Untrack(_metrics);
        _stop.Dispose();
    }
}

/// <summary>
/// The documents of one batch: each read once (through the backend's reader), kept in memory while the batch runs,
/// and handed back as changes to commit with the checkpoint. A projection that touches the same document for many
/// events costs one read and one write.
/// </summary>
internal sealed class ProjectionBatchContext(Func<string, CancellationToken, ValueTask<string?>> read, JsonSerializerOptions json) : IProjectionContext
{
    private readonly Dictionary<string, Entry> _docs = new(StringComparer.Ordinal);

    private sealed class Entry
    {
        public object? Value;
        public bool Dirty;
    }

    public ValueTask<T?> GetAsync<T>(string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (_docs.TryGetValue(key, out var entry))
        {
            return ValueTask.FromResult(entry.Value switch
            {
                null => default,
                T typed => typed,
                var other => JsonSerializer.Deserialize<T>(JsonSerializer.Serialize(other, other.GetType(), json), json),
            });
        }
        var pending = read(key, cancellationToken);
        return pending.IsCompletedSuccessfully ? ValueTask.FromResult(Cache<T>(key, pending.Result)) : ReadAsync<T>(key, pending);
    }

    private async ValueTask<T?> ReadAsync<T>(string key, ValueTask<string?> pending) => Cache<T>(key, await pending.ConfigureAwait(false));

    private T? Cache<T>(string key, string? doc)
    {
        var value = doc is null ? default : JsonSerializer.Deserialize<T>(doc, json);
        _docs[key] = new Entry { Value = value };
        return value;
    }

    public void Put<T>(string key, T document)
    {
        ArgumentNullException.ThrowIfNull(key);
        _docs[key] = new Entry { Value = document, Dirty = true };
    }

    public void Delete(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        _docs[key] = new Entry { Value = null, Dirty = true };
    }

    /// <summary>The changed documents, serialized; the context starts empty again.</summary>
    public List<DocumentChange> Changes()
    {
        var changes = new List<DocumentChange>();
        foreach (var (key, entry) in _docs)
        {
            if (entry.Dirty) changes.Add(new DocumentChange(key, entry.Value is null ? null : JsonSerializer.Serialize(entry.Value, entry.Value.GetType(), json)));
        }
        _docs.Clear();
        return changes;
    }
}
