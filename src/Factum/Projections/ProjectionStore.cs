using Factum.Coordination;
using Factum.Subscriptions;

namespace Factum.Projections;

/// <summary>One projection version as a runner registers it: its storage and the fields to index.</summary>
/// <param name="Name">The projection.</param>
/// <param name="Version">Its version.</param>
/// <param name="IndexedFields">Document fields to keep an index on (validated by <see cref="ProjectionQuery.ValidateField"/>).</param>
public sealed record ProjectionRegistration(string Name, int Version, IReadOnlyList<string> IndexedFields);

/// <summary>A change to one document: the new JSON, or null to delete it.</summary>
/// <param name="Key">The document's key.</param>
/// <param name="Json">Its new JSON; null deletes it.</param>
public readonly record struct DocumentChange(string Key, string? Json);

/// <summary>
/// What one batch of a projection version commits, atomically: its document changes and its checkpoint moving from
/// <paramref name="From"/> to <paramref name="Through"/>.
/// </summary>
/// <param name="Name">The projection.</param>
/// <param name="Version">Its version.</param>
/// <param name="From">The checkpoint the batch was computed from; the commit fails if it moved since (a reset or a skip).</param>
/// <param name="Through">The new checkpoint.</param>
/// <param name="Changes">The document changes, at most one per key.</param>
public sealed record ProjectionBatch(string Name, int Version, long From, long Through, IReadOnlyList<DocumentChange> Changes);

/// <summary>
/// Reads the committed documents of one projection version for its runner, which holds it open while it owns the
/// version: each read sees every batch committed before it. Used by one runner at a time (not thread-safe).
/// </summary>
public interface IProjectionDocumentReader : IAsyncDisposable
{
    /// <summary>The committed JSON under <paramref name="key"/>, or null.</summary>
    ValueTask<string?> GetAsync(string key, CancellationToken cancellationToken = default);
}

/// <summary>The projection version was replaced by a newer one that caught up and dropped it: its runner's work is done.</summary>
public sealed class ProjectionSupersededException(string name, int version)
    : FactumException($"Projection '{name}' v{version} was replaced by a newer version.");

/// <summary>
/// A batch was computed from a checkpoint that has moved since (the projection was reset or its failing event skipped
/// while the batch ran); nothing was written, and the runner starts again from the stored checkpoint.
/// </summary>
public sealed class ProjectionCheckpointMovedException(string name, int version, long expected, long actual)
    : FactumException($"Projection '{name}' v{version}: the batch started at checkpoint {expected}, which is now {actual} (reset or skipped meanwhile).");

/// <summary>
/// Where a backend keeps projections: each version's record (checkpoint, state, active flag), its documents, its
/// parked events and the leases of its runners. The run loop (<see cref="ProjectionEngine"/>) is the same for every
/// backend; a backend implements only this contract. Every write under a <see cref="Lease"/> checks it in the same
/// transaction as the write and throws <see cref="LeaseLostException"/> (nothing written) when it is not live.
/// Implementations are thread-safe.
/// </summary>
public interface IProjectionStore
{
    /// <summary>Where runners take the lease of their projection version (the same database, so writes can be fenced).</summary>
    ILeaseStore Leases { get; }

    /// <summary>Where projections park the events they cannot apply (<see cref="ProjectionEngine.ParkedId"/>).</summary>
    IParkedEventStore Parked { get; }

    /// <summary>
    /// Creates the version's storage and indexes if missing, and its record: active at once when the projection has no
    /// active version, at checkpoint 0, Building. A version that was Faulted or Pending becomes Live (if active) or Building
    /// again, its error cleared. Durable on return.
    /// </summary>
    Task RegisterAsync(ProjectionRegistration registration, CancellationToken cancellationToken = default);

    /// <summary>The version's checkpoint, or null when it has no record (a newer version took over and dropped it).</summary>
    Task<long?> LoadCheckpointAsync(string name, int version, CancellationToken cancellationToken = default);

    /// <summary>Opens a reader of the version's committed documents (its runner keeps it while it owns the version).</summary>
    ValueTask<IProjectionDocumentReader> OpenReaderAsync(string name, int version, CancellationToken cancellationToken = default);

    /// <summary>
    /// Commits the batch's document changes and its checkpoint in one transaction, and marks the version Live (if
    /// active) or Building. Durable on return.
    /// </summary>
    /// <exception cref="ProjectionSupersededException">The version has no record any more; nothing was written.</exception>
    /// <exception cref="ProjectionCheckpointMovedException">The checkpoint is not <see cref="ProjectionBatch.From"/>; nothing was written.</exception>
    /// <exception cref="LeaseLostException">The fence is not the live lease; nothing was written.</exception>
    Task CommitAsync(ProjectionBatch batch, Lease fence, CancellationToken cancellationToken = default);

    /// <summary>
    /// Blue/green switch: makes the version the active one and drops the other versions with their documents, in one
    /// transaction. Returns false when it was active already (nothing changes).
    /// </summary>
    /// <exception cref="ProjectionSupersededException">The version has no record any more.</exception>
    /// <exception cref="LeaseLostException">The fence is not the live lease.</exception>
    Task<bool> PromoteAsync(string name, int version, Lease fence, CancellationToken cancellationToken = default);

    /// <summary>Records that the version stopped (Faulted) on the event at <paramref name="position"/>, with the error.</summary>
    /// <exception cref="LeaseLostException">The fence is not the live lease.</exception>
    Task RecordFaultAsync(string name, int version, long position, string error, Lease fence, CancellationToken cancellationToken = default);

    /// <summary>
    /// For a version Faulted on <paramref name="position"/>: moves its checkpoint there and marks it Pending. Returns
    /// false (nothing changes) when it is not Faulted on that position any more.
    /// </summary>
    Task<bool> SkipAsync(string name, int version, long position, CancellationToken cancellationToken = default);

    /// <summary>Empties the active version's documents and rewinds its checkpoint to 0 (Pending).</summary>
    /// <exception cref="ArgumentException">There is no such projection.</exception>
    Task ResetAsync(string projection, CancellationToken cancellationToken = default);

    /// <summary>Every projection version by name and version, with its document count (<see cref="ProjectionInfo.Head"/> left 0).</summary>
    Task<IReadOnlyList<ProjectionInfo>> ListAsync(CancellationToken cancellationToken = default);

    /// <summary>The active version's document under <paramref name="key"/> as JSON, or null.</summary>
    /// <exception cref="ArgumentException">There is no such projection.</exception>
    Task<string?> GetJsonAsync(string projection, string key, CancellationToken cancellationToken = default);

    /// <summary>The active version's documents that <paramref name="query"/> selects, in its order.</summary>
    /// <exception cref="ArgumentException">There is no such projection, or the query is malformed.</exception>
    Task<IReadOnlyList<(string Key, string Json)>> QueryAsync(string projection, ProjectionQuery query, CancellationToken cancellationToken = default);
}
