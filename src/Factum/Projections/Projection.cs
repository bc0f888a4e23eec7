namespace Factum.Projections;

/// <summary>Where a projection writes: documents (JSON) by key in the projection's own table.</summary>
/// <remarks>
/// A batch's changes are buffered and committed together with the projection's checkpoint, so effects happen exactly
/// once. <see cref="GetAsync{T}"/> is the only call that may reach the backend; it sees the batch's own earlier writes.
/// Not thread-safe: a projection applies one event at a time.
/// </remarks>
public interface IProjectionContext
{
    /// <summary>The document stored under <paramref name="key"/> (including this batch's own writes), or default.</summary>
    ValueTask<T?> GetAsync<T>(string key, CancellationToken cancellationToken = default);

    /// <summary>Stores <paramref name="document"/> under <paramref name="key"/> (insert or replace) when the batch commits.</summary>
    void Put<T>(string key, T document);

    /// <summary>Deletes the document under <paramref name="key"/>, if any, when the batch commits.</summary>
    void Delete(string key);
}

/// <summary>
/// A projection: a named, versioned function from events to documents. Bumping <see cref="Version"/> makes the runner
/// build the new version's tables from the first event in the background while queries keep reading the old version,
/// then switch atomically when it has caught up.
/// </summary>
public interface IProjection
{
    /// <summary>The projection's name (letters, digits, '-' and '_').</summary>
    string Name { get; }

    /// <summary>Its version; bump it to rebuild.</summary>
    int Version { get; }

    /// <summary>The events it needs; everything else is skipped (and still advances its checkpoint).</summary>
    EventFilter Filter { get; }

    /// <summary>
    /// Document fields (see <see cref="ProjectionQuery"/> for the field syntax) that queries filter or order on often:
    /// the backend keeps a real index on each (SQLite: an expression index). Default: none.
    /// </summary>
    IReadOnlyList<string> IndexedFields => [];

    /// <summary>
    /// Applies one event. It must only write through <paramref name="context"/> (no side effects), since a rebuild
    /// replays it. Inline projections (run inside an append) must complete synchronously: await only the context.
    /// </summary>
    ValueTask ApplyAsync(RecordedEvent @event, IProjectionContext context, CancellationToken cancellationToken);
}

/// <summary>
/// A declarative projection of one view type: <c>On&lt;OrderPlaced&gt;((view, e) =&gt; view with { … })</c>, keyed by the
/// event's stream by default or by any key — one event may update several views (one-to-many) and many events one view
/// (many-to-one). Each view remembers the position of the last event applied to it, so a redelivered event is ignored.
/// The stored document is <c>{"view": …, "position": …}</c>, so query fields of the view start with <c>view.</c>.
/// </summary>
public sealed class DocumentProjection<TView> : IProjection where TView : class
{
    private readonly Dictionary<Type, List<Func<RecordedEvent, object, IProjectionContext, CancellationToken, ValueTask>>> _handlers = [];
    private readonly List<string> _indexed = [];
    private readonly EventTypeRegistry _registry;
    private readonly Func<string, TView> _create;

    /// <summary>Creates a projection named <paramref name="name"/> at <paramref name="version"/>; <paramref name="create"/> makes a new view for a key.</summary>
    public DocumentProjection(string name, int version, EventTypeRegistry registry, Func<string, TView> create)
    {
        ProjectionName.Validate(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(version, 1);
        Name = name;
        Version = version;
        _registry = registry ?? throw new ArgumentNullException(nameof(registry));
        _create = create ?? throw new ArgumentNullException(nameof(create));
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public int Version { get; }

    /// <inheritdoc />
    public EventFilter Filter => EventFilter.ForEventTypes(_handlers.Keys.Select(t => _registry.GetInfo(t)!.Name).ToArray());

    /// <inheritdoc />
    public IReadOnlyList<string> IndexedFields => _indexed;

    /// <summary>
    /// Keeps an index on a document field, e.g. <c>Index("view.customerId")</c> (JSON names, as the view is stored), so
    /// queries on it do not scan every document.
    /// </summary>
    public DocumentProjection<TView> Index(string field)
    {
        ProjectionQuery.ValidateField(field);
        if (!_indexed.Contains(field, StringComparer.Ordinal)) _indexed.Add(field);
        return this;
    }

    /// <summary>Updates the view of the event's stream.</summary>
    public DocumentProjection<TView> On<TEvent>(Func<TView, TEvent, TView> apply) => On<TEvent>((_, r) => [r.StreamId.Value], (v, e, _) => apply(v, e));

    /// <summary>Updates the view under the key <paramref name="key"/> picks (many-to-one).</summary>
    public DocumentProjection<TView> On<TEvent>(Func<TEvent, string> key, Func<TView, TEvent, TView> apply) =>
        On<TEvent>((e, r) => [key(e)], (v, e, _) => apply(v, e));

    /// <summary>
    /// The general form: the keys of every view the event touches (one-to-many) and how to update each; the recorded
    /// event (stream, time, ids) is passed too. Returning null from <paramref name="apply"/> deletes the view.
    /// </summary>
    public DocumentProjection<TView> On<TEvent>(Func<TEvent, RecordedEvent, IEnumerable<string>> keys, Func<TView, TEvent, RecordedEvent, TView?> apply)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(apply);
        if (_registry.GetInfo(typeof(TEvent)) is null) throw new ArgumentException($"Register {typeof(TEvent).Name} in the EventTypeRegistry before projecting it.", nameof(keys));
        if (!_handlers.TryGetValue(typeof(TEvent), out var list)) _handlers[typeof(TEvent)] = list = [];
        list.Add(async (recorded, decoded, ctx, ct) =>
        {
            var e = (TEvent)decoded;
            foreach (var key in keys(e, recorded))
            {
                if (key is null)
                    throw new InvalidOperationException($"Projection '{Name}' got no key for {recorded.Type} at position {recorded.Position} in {recorded.StreamId}: its key function returned null (is a field missing from the event's payload?).");
                var doc = await ctx.GetAsync<Versioned>(key, ct).ConfigureAwait(false);
                // Idempotency: a view already holds this event (a redelivery after a crash before the checkpoint).
                if (doc is not null && doc.Position >= recorded.Position.Value) continue;
                var view = doc is null ? _create(key) : doc.View;
                var next = apply(view, e, recorded);
                if (next is null) ctx.Delete(key);
                else ctx.Put(key, new Versioned(next, recorded.Position.Value));
            }
        });
        return this;
    }

    /// <inheritdoc />
    public async ValueTask ApplyAsync(RecordedEvent @event, IProjectionContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(@event);
        ArgumentNullException.ThrowIfNull(context);
        var decoded = _registry.Decode(@event);
        if (decoded.Event is null) throw new InvalidOperationException($"Projection '{Name}' cannot read {@event.Type} at position {@event.Position}: {decoded.Problem}.");
        if (!_handlers.TryGetValue(decoded.Event.GetType(), out var list)) return;
        foreach (var h in list) await h(@event, decoded.Event, context, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The stored form: the view plus the position of the last event applied to it.</summary>
    public sealed record Versioned(TView View, long Position);
}

/// <summary>Projection names become table names, so they are restricted.</summary>
public static class ProjectionName
{
    /// <summary>Throws unless the name is 1–64 letters, digits, '-' or '_'.</summary>
    public static void Validate(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            throw new ArgumentException($"Projection name '{name}' must be 1 to 64 letters, digits, '-' or '_'.", nameof(name));
    }
}
