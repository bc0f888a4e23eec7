using System.Collections.Concurrent;

namespace Factum.Aggregates;

/// <summary>An aggregate's state as of a version, stored apart from its stream.</summary>
/// <param name="StreamId">The aggregate's stream.</param>
/// <param name="Version">The last event folded into the state.</param>
/// <param name="SchemaVersion">The snapshot's own schema version: a snapshot of another version is ignored and replaced, never misread.</param>
/// <param name="Payload">The serialized state (JSON by default).</param>
/// <param name="TakenAt">When it was taken.</param>
public sealed record Snapshot(StreamId StreamId, StreamVersion Version, int SchemaVersion, ReadOnlyMemory<byte> Payload, DateTimeOffset TakenAt);

/// <summary>Keeps the latest snapshot per stream.</summary>
public interface ISnapshotStore
{
    /// <summary>The latest snapshot of <paramref name="streamId"/>, or null.</summary>
    Task<Snapshot?> LoadAsync(StreamId streamId, CancellationToken cancellationToken = default);

    /// <summary>Replaces the stream's snapshot; durable on return.</summary>
    Task SaveAsync(Snapshot snapshot, CancellationToken cancellationToken = default);
}

/// <summary>Snapshots in memory, for tests.</summary>
public sealed class InMemorySnapshotStore : ISnapshotStore
{
    private readonly ConcurrentDictionary<StreamId, Snapshot> _snapshots = new();

    /// <inheritdoc />
    public Task<Snapshot?> LoadAsync(StreamId streamId, CancellationToken cancellationToken = default) => Task.FromResult(_snapshots.GetValueOrDefault(streamId));

    /// <inheritdoc />
    public Task SaveAsync(Snapshot snapshot, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        _snapshots[snapshot.StreamId] = snapshot;
        return Task.CompletedTask;
    }
}
