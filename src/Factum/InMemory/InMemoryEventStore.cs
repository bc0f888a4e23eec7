using System.Runtime.CompilerServices;
using Factum.Store;

namespace Factum.InMemory;

/// <summary>
/// An event store held in memory, for users' unit tests. It honours the same contract as the durable backends
/// (it passes the same conformance suite); "durable" here means "visible to every later read of this instance".
/// Thread-safe: appends are serialized by one lock, so positions are strictly increasing with no gaps.
/// </summary>
public sealed class InMemoryEventStore : IEventStore, Subscriptions.IAppendNotifier, Tracing.ICorrelationIndex
{
    private const int PageSize = 512;
    private readonly Lock _lock = new();
    private readonly List<RecordedEvent> _all = [];
    private readonly Dictionary<StreamId, StreamEntry> _streams = [];
    private readonly EventStoreOptions _options;
    private readonly Subscriptions.AppendSignal _signal = new();

    /// <summary>Creates an empty store.</summary>
    public InMemoryEventStore(EventStoreOptions? options = null)
    {
        _options = options ?? new EventStoreOptions();
        _projections = new(() => new Projections.InMemoryProjectionStore(new Coordination.InMemoryLeaseStore(_options.TimeProvider)));
    }

    private readonly Lazy<Projections.InMemoryProjectionStore> _projections;

    /// <summary>The options it was created with.</summary>
    internal EventStoreOptions Options => _options;

    /// <summary>This store's read models, parked projection events and projection leases (<see cref="Projections.InMemoryReadModels"/> uses them).</summary>
    public Projections.InMemoryProjectionStore ProjectionStore => _projections.Value;

    private sealed class StreamEntry : IStreamLookup
    {
        public readonly List<RecordedEvent> Events = [];
        public readonly Dictionary<EventId, long> VersionById = [];
        public StreamState State = StreamState.NotFound;
        public long StartVersion;
        public StreamMetadata Metadata = StreamMetadata.None;
        public DateTimeOffset? CreatedAt;
        public DateTimeOffset? UpdatedAt;

        public long LastVersion => Events.Count - 1;

        public StreamHead Head => new(State, LastVersion, StartVersion);

        public IReadOnlyList<EventId> ReadIds(long fromVersion, int count)
        {
            var result = new List<EventId>(count);
            for (var v = fromVersion; v < Events.Count && result.Count < count; v++) result.Add(Events[(int)v].EventId);
            return result;
        }

        public long? FindVersion(EventId eventId) => VersionById.TryGetValue(eventId, out var v) ? v : null;
    }

    /// <inheritdoc />
    public Task<AppendResult> AppendAsync(StreamId streamId, ExpectedVersion expectedVersion, IReadOnlyList<EventData> events, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var prepared = AppendPreparation.Prepare(streamId, events, _options, null);
        lock (_lock)
        {
            var entry = GetOrAdd(streamId);
            var decision = AppendRules.Decide(streamId, entry.Head, expectedVersion, prepared, entry);
            var result = Apply(streamId, entry, decision, prepared);
            if (result.Written) _signal.Notify();
            return Task.FromResult(result);
        }
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<AppendResult>> AppendMultipleAsync(IReadOnlyList<StreamAppend> appends, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var prepared = AppendPreparation.PrepareMany(appends, _options);
        lock (_lock)
        {
            // Check every stream before writing any, so one failing expectation writes nothing.
            var decisions = new AppendDecision[prepared.Length];
            for (var i = 0; i < prepared.Length; i++)
            {
                var (a, evs) = prepared[i];
                var entry = _streams.GetValueOrDefault(a.StreamId);
                decisions[i] = AppendRules.Decide(a.StreamId, entry?.Head ?? StreamHead.None, a.ExpectedVersion, evs, entry ?? new StreamEntry());
            }
            var results = new AppendResult[prepared.Length];
            for (var i = 0; i < prepared.Length; i++)
                results[i] = Apply(prepared[i].Append.StreamId, GetOrAdd(prepared[i].Append.StreamId), decisions[i], prepared[i].Events);
            if (results.Any(r => r.Written)) _signal.Notify();
            return Task.FromResult<IReadOnlyList<AppendResult>>(results);
        }
    }

    private StreamEntry GetOrAdd(StreamId streamId)
    {
        if (!_streams.TryGetValue(streamId, out var entry)) _streams[streamId] = entry = new StreamEntry();
        return entry;
    }

    private AppendResult Apply(StreamId streamId, StreamEntry entry, AppendDecision decision, PreparedEvent[] events)
    {
        if (decision.IsIdempotent)
        {
            var first = entry.Events[(int)decision.FirstVersion];
            var last = entry.Events[(int)decision.FirstVersion + events.Length - 1];
            return new AppendResult(streamId, last.StreamVersion, first.Position, last.Position, false);
        }
        if (events.Length == 0)
        {
            var pos = entry.Events.Count > 0 ? entry.Events[^1].Position : GlobalPosition.Start;
            return new AppendResult(streamId, entry.Head.Actual, pos, pos, false);
        }
        var now = _options.TimeProvider.GetUtcNow();
        if (entry.State == StreamState.SoftDeleted) entry.StartVersion = entry.LastVersion + 1;
        entry.State = StreamState.Active;
        entry.CreatedAt ??= now;
        entry.UpdatedAt = now;
        GlobalPosition firstPos = default;
        foreach (var e in events)
        {
            var recorded = new RecordedEvent
            {
                EventId = e.EventId,
                Type = e.Type,
                SchemaVersion = e.SchemaVersion,
                Timestamp = now,
                StreamId = streamId,
                StreamVersion = entry.Events.Count,
                Position = _all.Count + 1,
                CorrelationId = e.CorrelationId,
                CausationId = e.CausationId,
                Metadata = e.Metadata.Count == 0 ? EmptyMetadata.Instance : new Dictionary<string, string>(e.Metadata),
                Payload = e.Payload.ToArray(),
            };
            if (firstPos == default) firstPos = recorded.Position;
            entry.VersionById.TryAdd(e.EventId, entry.Events.Count);
            entry.Events.Add(recorded);
            _all.Add(recorded);
        }
        return new AppendResult(streamId, entry.LastVersion, firstPos, _all[^1].Position, true);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<RecordedEvent> ReadStreamAsync(StreamId streamId, ReadStreamOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options ??= ReadStreamOptions.Default;
        long minVersion, minTicks, next, returned = 0;
        lock (_lock)
        {
            if (!_streams.TryGetValue(streamId, out var entry) || entry.State is StreamState.NotFound or StreamState.SoftDeleted)
                throw new StreamNotFoundException(streamId);
            if (entry.State == StreamState.Tombstoned) throw new StreamDeletedException(streamId);
            (minVersion, minTicks) = Retention.Window(entry.Metadata, entry.LastVersion, _options.TimeProvider.GetUtcNow());
            next = options.From?.Value ?? (options.Direction == Direction.Forwards ? 0 : entry.LastVersion);
        }
        var forwards = options.Direction == Direction.Forwards;
        while (returned < options.MaxCount)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var page = new List<RecordedEvent>(PageSize);
            lock (_lock)
            {
                var events = _streams[streamId].Events;
                if (!forwards && next >= events.Count) next = events.Count - 1;
                while (page.Count < PageSize && next >= minVersion && next < events.Count && returned + page.Count < options.MaxCount)
                {
                    var e = events[(int)next];
                    if (e.Timestamp.UtcTicks >= minTicks) page.Add(e);
                    next += forwards ? 1 : -1;
                }
                if (forwards && next < minVersion) { next = minVersion; continue; }
            }
            if (page.Count == 0) yield break;
            foreach (var e in page) { returned++; yield return e; }
            await Task.Yield();
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<RecordedEvent> ReadAllAsync(ReadAllOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options ??= ReadAllOptions.Default;
        var forwards = options.Direction == Direction.Forwards;
        // Positions are index + 1.
        long next = forwards ? Math.Max(1, options.From.Value) : options.From.Value;
        var bound = options.To?.Value ?? (forwards ? long.MaxValue : 0);
        long returned = 0;
        while (returned < options.MaxCount)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var page = new List<RecordedEvent>(PageSize);
            var scanned = 0;
            lock (_lock)
            {
                if (!forwards && next > _all.Count) next = _all.Count;
                while (scanned < PageSize * 8 && page.Count < PageSize && next >= 1 && next <= _all.Count && (forwards ? next <= bound : next >= bound) && returned + page.Count < options.MaxCount)
                {
                    var e = _all[(int)next - 1];
                    if (options.Filter.Matches(e)) page.Add(e);
                    next += forwards ? 1 : -1;
                    scanned++;
                }
            }
            if (scanned == 0) yield break;
            foreach (var e in page) { returned++; yield return e; }
            await Task.Yield();
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<RecordedEvent> ReadCorrelatedAsync(string correlationId, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        List<RecordedEvent> matches;
        lock (_lock) matches = _all.Where(e => e.CorrelationId == correlationId).ToList();
        foreach (var e in matches)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return e;
        }
        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public Task WaitForAppendAsync(GlobalPosition after, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        _signal.WaitAsync(async ct => await GetHeadPositionAsync(ct).ConfigureAwait(false) > after, timeout, cancellationToken);

    /// <inheritdoc />
    public Task<GlobalPosition> GetHeadPositionAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock) return Task.FromResult(new GlobalPosition(_all.Count));
    }

    /// <inheritdoc />
    public Task<StreamInfo> GetStreamInfoAsync(StreamId streamId, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            return Task.FromResult(_streams.TryGetValue(streamId, out var entry) ? ToInfo(streamId, entry) : new StreamInfo { StreamId = streamId, State = StreamState.NotFound });
        }
    }

    private static StreamInfo ToInfo(StreamId id, StreamEntry entry) => new()
    {
        StreamId = id,
        State = entry.State,
        LastVersion = entry.Head.Actual,
        LastPosition = entry.Events.Count > 0 ? entry.Events[^1].Position : null,
        CreatedAt = entry.CreatedAt,
        UpdatedAt = entry.UpdatedAt,
        Metadata = entry.Metadata,
    };

    /// <inheritdoc />
    public Task<StreamPage> ListStreamsAsync(ListStreamsOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ListStreamsOptions();
        lock (_lock)
        {
            var items = _streams
                .Where(kv => options.IncludeDeleted ? kv.Value.State != StreamState.NotFound || kv.Value.Events.Count > 0 : kv.Value.State == StreamState.Active)
                .Where(kv => options.Category is null || kv.Key.Category == options.Category)
                .Where(kv => options.After is null || string.CompareOrdinal(kv.Key.Value, options.After) > 0)
                .OrderBy(kv => kv.Key.Value, StringComparer.Ordinal)
                .Take(options.PageSize + 1)
                .Select(kv => ToInfo(kv.Key, kv.Value))
                .ToList();
            string? token = null;
            if (items.Count > options.PageSize)
            {
                items.RemoveAt(items.Count - 1);
                token = items[^1].StreamId.Value;
            }
            return Task.FromResult(new StreamPage(items, token));
        }
    }

    /// <inheritdoc />
    public Task SetStreamMetadataAsync(StreamId streamId, StreamMetadata metadata, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        lock (_lock)
        {
            var entry = GetOrAdd(streamId);
            if (entry.State == StreamState.Tombstoned) throw new StreamDeletedException(streamId);
            entry.Metadata = metadata;
            entry.UpdatedAt = _options.TimeProvider.GetUtcNow();
        }
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task DeleteStreamAsync(StreamId streamId, ExpectedVersion expectedVersion, DeleteMode mode, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            var entry = GetOrAdd(streamId);
            AppendRules.CheckDelete(streamId, entry.Head, expectedVersion);
            entry.UpdatedAt = _options.TimeProvider.GetUtcNow();
            if (mode == DeleteMode.Hard)
            {
                entry.State = StreamState.Tombstoned;
            }
            else if (entry.State == StreamState.Active)
            {
                entry.State = StreamState.SoftDeleted;
                entry.Metadata = entry.Metadata with { TruncateBefore = entry.LastVersion + 1 };
            }
        }
        return Task.CompletedTask;
    }
}
