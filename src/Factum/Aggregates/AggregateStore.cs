using System.Text.Json;

namespace Factum.Aggregates;

/// <summary>
/// Loads aggregates (latest snapshot plus the events after it), decides, and appends with the loaded version as the
/// expected version. On a concurrency conflict it reloads and decides again up to the number of retries the caller
/// allows, then lets <see cref="WrongExpectedVersionException"/> through.
/// </summary>
public sealed class AggregateStore
{
    private readonly IEventStore _store;
    private readonly EventTypeRegistry _registry;
    private readonly ISnapshotStore? _snapshots;
    private readonly JsonSerializerOptions _json;
    private readonly TimeProvider _time;

    /// <summary>Creates the store. Without <paramref name="snapshots"/>, aggregates are always rebuilt from their events.</summary>
    public AggregateStore(IEventStore store, EventTypeRegistry registry, ISnapshotStore? snapshots = null, JsonSerializerOptions? snapshotJson = null, TimeProvider? timeProvider = null)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _registry = registry ?? throw new ArgumentNullException(nameof(registry));
        _snapshots = snapshots;
        _json = snapshotJson ?? SystemTextJsonEventSerializer.Default.Options;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Loads the current state: the latest usable snapshot, then every event after it.</summary>
    public Task<LoadedAggregate<TState>> LoadAsync<TState>(AggregateDefinition<TState> definition, string id, CancellationToken cancellationToken = default) =>
        LoadCoreAsync(definition, definition.StreamOf(id), null, null, cancellationToken);

    /// <summary>Time travel: the state as it was right after <paramref name="version"/> (a snapshot is used only if it is not newer).</summary>
    public Task<LoadedAggregate<TState>> LoadAsOfAsync<TState>(AggregateDefinition<TState> definition, string id, StreamVersion version, CancellationToken cancellationToken = default) =>
        LoadCoreAsync(definition, definition.StreamOf(id), version, null, cancellationToken);

    /// <summary>
    /// Time travel: the state as it was at <paramref name="asOf"/> (every event recorded at or before it). Snapshots are not
    /// used: they carry a version, not the time of their last event, so the fold starts from the first event.
    /// </summary>
    public Task<LoadedAggregate<TState>> LoadAsOfAsync<TState>(AggregateDefinition<TState> definition, string id, DateTimeOffset asOf, CancellationToken cancellationToken = default) =>
        LoadCoreAsync(definition, definition.StreamOf(id), null, asOf, cancellationToken);

    private async Task<LoadedAggregate<TState>> LoadCoreAsync<TState>(AggregateDefinition<TState> def, StreamId stream, StreamVersion? upTo, DateTimeOffset? asOf, CancellationToken ct)
    {
        var state = def.Initial();
        StreamVersion? version = null, snapshotVersion = null;
        if (_snapshots is not null && def.SnapshotEvery > 0 && asOf is null
            && await _snapshots.LoadAsync(stream, ct).ConfigureAwait(false) is { } snap
            && snap.SchemaVersion == def.SnapshotVersion
            && (upTo is null || snap.Version <= upTo.Value))
        {
            state = JsonSerializer.Deserialize<TState>(snap.Payload.Span, _json)!;
            version = snapshotVersion = snap.Version;
        }
        var replayed = 0;
        try
        {
            var options = new ReadStreamOptions { From = version?.Next() ?? StreamVersion.Start };
            await foreach (var e in _store.ReadStreamAsync(stream, options, ct).ConfigureAwait(false))
            {
                if (upTo is { } u && e.StreamVersion > u) break;
                if (asOf is { } t && e.Timestamp > t) break;
                state = def.Evolve(state, Decode(e));
                version = e.StreamVersion;
                replayed++;
            }
        }
        catch (StreamNotFoundException)
        {
            // A new aggregate: its initial state.
        }
        return new LoadedAggregate<TState>(stream, state, version, snapshotVersion, replayed);
    }

    private object Decode(RecordedEvent e)
    {
        var decoded = _registry.Decode(e);
        // Folding past an event the code cannot read would give a wrong state silently; refuse instead.
        return decoded.Event ?? throw new InvalidOperationException($"Cannot fold {e.Type} at {e.StreamId}@{e.StreamVersion}: {decoded.Problem}.");
    }

    /// <summary>
    /// Loads the aggregate, runs <paramref name="decide"/> on its state and appends the events it returns with the loaded
    /// version as the expected version. On a conflict it retries up to <paramref name="retriesOnConflict"/> times (0: fail at once).
    /// Takes a snapshot when <see cref="AggregateDefinition{TState}.SnapshotEvery"/> events have accumulated since the last one.
    /// </summary>
    /// <exception cref="WrongExpectedVersionException">Another writer won every attempt.</exception>
    public async Task<HandleResult<TState>> HandleAsync<TState>(AggregateDefinition<TState> definition, string id, Func<TState, IEnumerable<object>> decide,
        int retriesOnConflict = 3, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(decide);
        for (var attempt = 1; ; attempt++)
        {
            var loaded = await LoadAsync(definition, id, cancellationToken).ConfigureAwait(false);
            var events = decide(loaded.State).ToList();
            if (events.Count == 0) return new HandleResult<TState>(loaded, events, attempt);
            try
            {
                var result = await _store.AppendAsync(loaded.StreamId, loaded.ExpectedVersion, events.Select(e => _registry.Encode(e)).ToList(), cancellationToken).ConfigureAwait(false);
                var state = events.Aggregate(loaded.State, definition.Evolve);
                var after = loaded with { State = state, Version = result.NextExpectedVersion };
                await MaybeSnapshotAsync(definition, after, cancellationToken).ConfigureAwait(false);
                return new HandleResult<TState>(after, events, attempt);
            }
            catch (WrongExpectedVersionException) when (attempt <= retriesOnConflict)
            {
                // Someone else appended first: decide again on the newer state.
            }
        }
    }

    private async Task MaybeSnapshotAsync<TState>(AggregateDefinition<TState> def, LoadedAggregate<TState> aggregate, CancellationToken ct)
    {
        if (_snapshots is null || def.SnapshotEvery <= 0 || aggregate.Version is not { } v) return;
        var since = v.Value - (aggregate.SnapshotVersion?.Value ?? -1);
        if (since < def.SnapshotEvery) return;
        var payload = JsonSerializer.SerializeToUtf8Bytes(aggregate.State, _json);
        await _snapshots.SaveAsync(new Snapshot(aggregate.StreamId, v, def.SnapshotVersion, payload, _time.GetUtcNow()), ct).ConfigureAwait(false);
    }

    /// <summary>Loads an <see cref="AggregateRoot"/> by replaying its stream.</summary>
    public async Task<TAggregate> LoadAsync<TAggregate>(string category, string id, CancellationToken cancellationToken = default) where TAggregate : AggregateRoot, new()
    {
        var aggregate = new TAggregate();
        try
        {
            await foreach (var e in _store.ReadStreamAsync(StreamId.For(category, id), null, cancellationToken).ConfigureAwait(false))
            {
                aggregate.When(Decode(e));
                aggregate.Version = e.StreamVersion;
            }
        }
        catch (StreamNotFoundException)
        {
        }
        return aggregate;
    }

    /// <summary>Appends an <see cref="AggregateRoot"/>'s changes with its loaded version as the expected version.</summary>
    /// <exception cref="WrongExpectedVersionException">The stream moved since it was loaded.</exception>
    public async Task<AppendResult?> SaveAsync(string category, string id, AggregateRoot aggregate, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(aggregate);
        if (aggregate.Changes.Count == 0) return null;
        var expected = aggregate.Version is { } v ? ExpectedVersion.Exactly(v) : ExpectedVersion.NoStream;
        var result = await _store.AppendAsync(StreamId.For(category, id), expected, aggregate.Changes.Select(e => _registry.Encode(e)).ToList(), cancellationToken).ConfigureAwait(false);
        aggregate.Version = result.NextExpectedVersion;
        aggregate.ClearChanges();
        return result;
    }
}
