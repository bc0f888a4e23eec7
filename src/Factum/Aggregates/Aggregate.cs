namespace Factum.Aggregates;

/// <summary>
/// A functional aggregate: an initial state and <c>evolve(state, event) → state</c>. Commands are decided by a function
/// <c>decide(state) → events</c> passed to <see cref="AggregateStore.HandleAsync{TState}"/>.
/// </summary>
/// <typeparam name="TState">The state; it must serialize with System.Text.Json when snapshots are on.</typeparam>
public sealed record AggregateDefinition<TState>
{
    /// <summary>Defines an aggregate whose streams are <c>{category}-{id}</c>.</summary>
    public AggregateDefinition(string category, Func<TState> initial, Func<TState, object, TState> evolve)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(category);
        ArgumentNullException.ThrowIfNull(initial);
        ArgumentNullException.ThrowIfNull(evolve);
        Category = category;
        Initial = initial;
        Evolve = evolve;
    }

    /// <summary>The stream category.</summary>
    public string Category { get; }

    /// <summary>The state before any event.</summary>
    public Func<TState> Initial { get; }

    /// <summary>Folds one (decoded, latest-version) event into the state.</summary>
    public Func<TState, object, TState> Evolve { get; }

    /// <summary>Take a snapshot when this many events have been appended since the last one; 0 (default) means never.</summary>
    public int SnapshotEvery
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "SnapshotEvery is 0 (off) or more.");
    }

    /// <summary>The schema version of the snapshot payload; bump it when <typeparamref name="TState"/> changes shape (default 1).</summary>
    public int SnapshotVersion
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "SnapshotVersion is 1 or more.");
    } = 1;

    /// <summary>The stream of the aggregate <paramref name="id"/>.</summary>
    public StreamId StreamOf(string id) => StreamId.For(Category, id);
}

/// <summary>An aggregate's state as loaded.</summary>
/// <param name="StreamId">Its stream.</param>
/// <param name="State">The folded state.</param>
/// <param name="Version">The version of the last event folded, or null for a new aggregate.</param>
/// <param name="SnapshotVersion">The version of the snapshot used, or null when it was rebuilt from events only.</param>
/// <param name="EventsReplayed">How many events were folded on top of the snapshot (or from the start).</param>
public sealed record LoadedAggregate<TState>(StreamId StreamId, TState State, StreamVersion? Version, StreamVersion? SnapshotVersion, int EventsReplayed)
{
    /// <summary>The expected version to append with.</summary>
    public ExpectedVersion ExpectedVersion => Version is { } v ? ExpectedVersion.Exactly(v) : ExpectedVersion.NoStream;
}

/// <summary>The outcome of handling a command.</summary>
/// <param name="Aggregate">The state after the new events.</param>
/// <param name="NewEvents">The events the decision produced (empty if it decided nothing).</param>
/// <param name="Attempts">How many times it loaded and decided (more than 1 after concurrency conflicts).</param>
public sealed record HandleResult<TState>(LoadedAggregate<TState> Aggregate, IReadOnlyList<object> NewEvents, int Attempts);

/// <summary>
/// The object-oriented alternative: an aggregate that records the events it raises and applies them to itself.
/// </summary>
public abstract class AggregateRoot
{
    private readonly List<object> _changes = [];

    /// <summary>The version of the last event applied from the store, or null for a new aggregate.</summary>
    public StreamVersion? Version { get; internal set; }

    /// <summary>Events raised since loading, not yet saved.</summary>
    public IReadOnlyList<object> Changes => _changes;

    /// <summary>Records a new event and applies it.</summary>
    protected void Raise(object @event)
    {
        ArgumentNullException.ThrowIfNull(@event);
        When(@event);
        _changes.Add(@event);
    }

    /// <summary>Applies one event to the aggregate's fields (no decisions, no side effects).</summary>
    protected internal abstract void When(object @event);

    internal void ClearChanges() => _changes.Clear();
}
