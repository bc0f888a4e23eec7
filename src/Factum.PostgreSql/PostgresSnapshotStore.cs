using Factum.Aggregates;
using Npgsql;
using NpgsqlTypes;

namespace Factum.PostgreSql;

/// <summary>The latest snapshot per stream, in the store's database (kept apart from the events: a snapshot is a cache, not a fact).</summary>
public sealed class PostgresSnapshotStore(PostgresEventStore store) : ISnapshotStore
{
    /// <inheritdoc />
    public async Task<Snapshot?> LoadAsync(StreamId streamId, CancellationToken cancellationToken = default)
    {
        var c = await store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"SELECT version, schema_version, payload, taken_at FROM {store.Schema}.snapshots WHERE stream_id = $1", c);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, streamId.Value);
        var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var rScope = r.ConfigureAwait(false);
        if (!await r.ReadAsync(cancellationToken).ConfigureAwait(false)) return null;
        return new Snapshot(streamId, r.GetInt64(0), r.GetInt32(1), r.GetFieldValue<byte[]>(2), new DateTimeOffset(r.GetFieldValue<DateTime>(3).Ticks, TimeSpan.Zero));
    }

    /// <inheritdoc />
    public async Task SaveAsync(Snapshot snapshot, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var c = await store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"""
            INSERT INTO {store.Schema}.snapshots(stream_id, version, schema_version, payload, taken_at) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, schema_version = EXCLUDED.schema_version,
                payload = EXCLUDED.payload, taken_at = EXCLUDED.taken_at
            """, c);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, snapshot.StreamId.Value);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, snapshot.Version.Value);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Integer, snapshot.SchemaVersion);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Bytea, snapshot.Payload.ToArray());
        cmd.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, snapshot.TakenAt.ToUniversalTime());
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
