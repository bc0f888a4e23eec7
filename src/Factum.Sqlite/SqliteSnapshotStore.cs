using Factum.Aggregates;

namespace Factum.Sqlite;

/// <summary>Aggregate snapshots in the store's own file (one row per stream, replaced on each save).</summary>
public sealed class SqliteSnapshotStore(SqliteEventStore store) : ISnapshotStore
{
    /// <inheritdoc />
    public async Task<Snapshot?> LoadAsync(StreamId streamId, CancellationToken cancellationToken = default)
    {
        using var c = store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT version, schema_version, payload, taken_at FROM snapshots WHERE stream_id = $id";
        cmd.Parameters.AddWithValue("$id", streamId.Value);
        using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!r.Read()) return null;
        return new Snapshot(streamId, r.GetInt64(0), r.GetInt32(1), r.GetFieldValue<byte[]>(2), new DateTimeOffset(r.GetInt64(3), TimeSpan.Zero));
    }

    /// <inheritdoc />
    public Task SaveAsync(Snapshot snapshot, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var payload = snapshot.Payload.ToArray();
        return store.ExecuteInWriterAsync(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "INSERT OR REPLACE INTO snapshots(stream_id, version, schema_version, payload, taken_at) VALUES ($id, $v, $sv, $p, $t)";
            cmd.Parameters.AddWithValue("$id", snapshot.StreamId.Value);
            cmd.Parameters.AddWithValue("$v", snapshot.Version.Value);
            cmd.Parameters.AddWithValue("$sv", snapshot.SchemaVersion);
            cmd.Parameters.AddWithValue("$p", payload);
            cmd.Parameters.AddWithValue("$t", snapshot.TakenAt.UtcTicks);
            return cmd.ExecuteNonQuery();
        }, cancellationToken);
    }
}
