using System.Text.Json;
using Factum.Coordination;
using Factum.InMemory;
using Factum.Subscriptions;

namespace Factum.Projections;

/// <summary>The projection engine of an <see cref="InMemoryEventStore"/>: its read models live as long as the store.</summary>
/// <remarks>Every engine created on one store shares that store's read models, parked events and leases.</remarks>
public sealed class InMemoryReadModels(InMemoryEventStore store)
    : ProjectionEngine(store, store.ProjectionStore, store.Options.TimeProvider, store.Options.LoggerFactory);

/// <summary>
/// Projections in memory, for tests and single-process use: each version's record and documents, its parked events
/// and its runners' leases. A batch's documents and checkpoint change under one lock, checked against the lease in
/// the same step. Thread-safe. Queries scan the documents (there is nothing to gain from an index in memory).
/// </summary>
public sealed class InMemoryProjectionStore : IProjectionStore
{
    private readonly Lock _lock = new();
    private readonly InMemoryLeaseStore _leases;
    private readonly Dictionary<(string Name, int Version), VersionState> _versions = [];

    /// <summary>A store whose runners take their leases in <paramref name="leases"/> (default: a store of its own on the system clock).</summary>
    public InMemoryProjectionStore(InMemoryLeaseStore? leases = null) => _leases = leases ?? new InMemoryLeaseStore();

    private sealed class VersionState
    {
        public bool Active;
        public long Position;
        public string State = "Building";
        public string? LastError;
        public long? FailingPosition;
        public readonly SortedDictionary<string, string> Documents = new(StringComparer.Ordinal);
    }

    /// <inheritdoc />
    public ILeaseStore Leases => _leases;

    /// <inheritdoc />
    public IParkedEventStore Parked { get; } = new InMemorySubscriptionStore();

    /// <inheritdoc />
    public Task RegisterAsync(ProjectionRegistration registration, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(registration);
        ProjectionName.Validate(registration.Name);
        foreach (var field in registration.IndexedFields) ProjectionQuery.ValidateField(field);
        lock (_lock)
        {
            if (_versions.TryGetValue((registration.Name, registration.Version), out var v))
            {
                if (v.State is "Faulted" or "Pending") v.State = v.Active ? "Live" : "Building";
                (v.LastError, v.FailingPosition) = (null, null);
            }
            else
            {
                _versions[(registration.Name, registration.Version)] = new VersionState { Active = !_versions.Any(x => x.Key.Name == registration.Name && x.Value.Active) };
            }
        }
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<long?> LoadCheckpointAsync(string name, int version, CancellationToken cancellationToken = default)
    {
        lock (_lock) return Task.FromResult(_versions.TryGetValue((name, version), out var v) ? v.Position : (long?)null);
    }

    /// <inheritdoc />
    public ValueTask<IProjectionDocumentReader> OpenReaderAsync(string name, int version, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<IProjectionDocumentReader>(new Reader(this, name, version));

    private sealed class Reader(InMemoryProjectionStore owner, string name, int version) : IProjectionDocumentReader
    {
        public ValueTask<string?> GetAsync(string key, CancellationToken cancellationToken = default)
        {
            lock (owner._lock)
            {
                if (!owner._versions.TryGetValue((name, version), out var v)) throw new ProjectionSupersededException(name, version);
                return ValueTask.FromResult(v.Documents.GetValueOrDefault(key));
            }
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public Task CommitAsync(ProjectionBatch batch, Lease fence, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(fence);
        _leases.WriteFenced(fence, () =>
        {
            lock (_lock)
            {
                var v = Version(batch.Name, batch.Version);
                if (v.Position != batch.From) throw new ProjectionCheckpointMovedException(batch.Name, batch.Version, batch.From, v.Position);
                foreach (var change in batch.Changes)
                {
                    if (change.Json is null) v.Documents.Remove(change.Key);
                    else v.Documents[change.Key] = change.Json;
                }
                v.Position = batch.Through;
                v.State = v.Active ? "Live" : "Building";
            }
        });
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<bool> PromoteAsync(string name, int version, Lease fence, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fence);
        var promoted = false;
        _leases.WriteFenced(fence, () =>
        {
            lock (_lock)
            {
                var v = Version(name, version);
                if (v.Active) return;
                (v.Active, v.State, promoted) = (true, "Live", true);
                foreach (var other in _versions.Keys.Where(k => k.Name == name && k.Version != version).ToList()) _versions.Remove(other);
            }
        });
        return Task.FromResult(promoted);
    }

    /// <inheritdoc />
    public Task RecordFaultAsync(string name, int version, long position, string error, Lease fence, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fence);
        _leases.WriteFenced(fence, () =>
        {
            lock (_lock)
            {
                if (_versions.TryGetValue((name, version), out var v)) (v.State, v.LastError, v.FailingPosition) = ("Faulted", error, position);
            }
        });
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<bool> SkipAsync(string name, int version, long position, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (!_versions.TryGetValue((name, version), out var v) || v.State != "Faulted" || v.FailingPosition != position) return Task.FromResult(false);
            (v.Position, v.State, v.LastError, v.FailingPosition) = (Math.Max(v.Position, position), "Pending", null, null);
            return Task.FromResult(true);
        }
    }

    /// <inheritdoc />
    public Task ResetAsync(string projection, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            var v = ActiveVersion(projection);
            v.Documents.Clear();
            (v.Position, v.State, v.LastError, v.FailingPosition) = (0, "Pending", null, null);
        }
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<ProjectionInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<ProjectionInfo>>(_versions
                .OrderBy(x => x.Key.Name, StringComparer.Ordinal).ThenBy(x => x.Key.Version)
                .Select(x => new ProjectionInfo(x.Key.Name, x.Key.Version, x.Value.Active, x.Value.Position, x.Value.State, x.Value.LastError, x.Value.FailingPosition, 0, x.Value.Documents.Count))
                .ToList());
        }
    }

    /// <inheritdoc />
    public Task<string?> GetJsonAsync(string projection, string key, CancellationToken cancellationToken = default)
    {
        lock (_lock) return Task.FromResult(ActiveVersion(projection).Documents.GetValueOrDefault(key));
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<(string Key, string Json)>> QueryAsync(string projection, ProjectionQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        query.Validate();
        List<KeyValuePair<string, string>> documents;
        lock (_lock) documents = [.. ActiveVersion(projection).Documents];
        return Task.FromResult(DocumentQueryEvaluator.Run(documents, query));
    }

    /// <summary>Rewinds every version's checkpoint of <paramref name="projection"/> to 0 without touching its documents (tests: a crash between the two).</summary>
    internal void RewindCheckpointOnly(string projection)
    {
        lock (_lock)
        {
            foreach (var (key, v) in _versions)
                if (key.Name == projection) v.Position = 0;
        }
    }

    private VersionState Version(string name, int version) =>
        _versions.TryGetValue((name, version), out var v) ? v : throw new ProjectionSupersededException(name, version);

    private VersionState ActiveVersion(string projection)
    {
        ArgumentNullException.ThrowIfNull(projection);
        return _versions.FirstOrDefault(x => x.Key.Name == projection && x.Value.Active).Value
            ?? throw new ArgumentException($"There is no projection named '{projection}' in this store.", nameof(projection));
    }
}

/// <summary>Runs a <see cref="ProjectionQuery"/> over JSON documents in memory, with the semantics the query documents.</summary>
internal static class DocumentQueryEvaluator
{
    public static IReadOnlyList<(string Key, string Json)> Run(IEnumerable<KeyValuePair<string, string>> documents, ProjectionQuery query)
    {
        var rows = new List<(string Key, string Json, SortValue Order)>();
        foreach (var (key, json) in documents)
        {
            using var doc = JsonDocument.Parse(json);
            if (!query.Conditions.All(c => Matches(Field(doc.RootElement, c.Field), c))) continue;
            rows.Add((key, json, query.OrderBy is { } f ? SortValue.Of(Field(doc.RootElement, f)) : default));
        }
        Comparison<(string Key, string Json, SortValue Order)> compare = query.OrderBy is null
            ? (a, b) => string.CompareOrdinal(a.Key, b.Key)
            : (a, b) => a.Order.CompareTo(b.Order) is var c && c != 0 ? c : string.CompareOrdinal(a.Key, b.Key);
        rows.Sort(query.Descending ? (a, b) => compare(b, a) : compare);
        return rows.Skip(query.Skip).Take(query.Take ?? int.MaxValue).Select(r => (r.Key, r.Json)).ToList();
    }

    private static JsonElement? Field(JsonElement root, string field)
    {
        var e = root;
        foreach (var name in field.Split('.'))
        {
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(name, out e)) return null;
        }
        return e;
    }

    private static bool Matches(JsonElement? field, FieldCondition c)
    {
        if (field is not { } e) return false;
        int order;
        switch (c.Value)
        {
            case string s when e.ValueKind == JsonValueKind.String:
                order = string.CompareOrdinal(e.GetString(), s);
                break;
            case bool b when e.ValueKind is JsonValueKind.True or JsonValueKind.False:
                order = (e.ValueKind == JsonValueKind.True).CompareTo(b);
                break;
            case long or double when e.ValueKind == JsonValueKind.Number:
                order = e.GetDouble().CompareTo(Convert.ToDouble(c.Value, System.Globalization.CultureInfo.InvariantCulture));
                break;
            default:
                return false;
        }
        return c.Operator switch
        {
            QueryOperator.Equal => order == 0,
            QueryOperator.LessThan => order < 0,
            QueryOperator.LessThanOrEqual => order <= 0,
            QueryOperator.GreaterThan => order > 0,
            _ => order >= 0,
        };
    }

    /// <summary>A field's place in an order: missing or null first, then numbers (and bools as 0/1), then text.</summary>
    private readonly record struct SortValue(int Kind, double Number, string? Text) : IComparable<SortValue>
    {
        public static SortValue Of(JsonElement? field) => field switch
        {
            null => default,
            { ValueKind: JsonValueKind.Null or JsonValueKind.Undefined } => default,
            { ValueKind: JsonValueKind.Number } e => new SortValue(1, e.GetDouble(), null),
            { ValueKind: JsonValueKind.True } => new SortValue(1, 1, null),
            { ValueKind: JsonValueKind.False } => new SortValue(1, 0, null),
            { ValueKind: JsonValueKind.String } e => new SortValue(2, 0, e.GetString()),
            { } e => new SortValue(2, 0, e.GetRawText()),
        };

        public int CompareTo(SortValue other) =>
            Kind != other.Kind ? Kind.CompareTo(other.Kind) : Kind == 1 ? Number.CompareTo(other.Number) : string.CompareOrdinal(Text, other.Text);
    }
}
