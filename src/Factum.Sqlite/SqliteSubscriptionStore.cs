using Factum.Subscriptions;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

/// <summary>
/// Subscription checkpoints and dead-letter sets in the store's own file. Writes go through the store's writer, so they
/// share its group commit and its single-writer ordering.
/// </summary>
public sealed class SqliteSubscriptionStore(SqliteEventStore store) : Factum.Coordination.IFencedCheckpointStore, IParkedEventStore
{
    /// <inheritdoc />
    public Task StoreAsync(string subscriptionId, long position, Factum.Coordination.Lease fence, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(subscriptionId);
        ArgumentNullException.ThrowIfNull(fence);
        var now = store.Options.TimeProvider.GetUtcNow().UtcTicks;
        return store.ExecuteInWriterAsync(c =>
        {
            SqliteLeaseStore.CheckFence(c, fence, now);
            return WriteCheckpoint(c, subscriptionId, position, now);
        }, cancellationToken);
    }

    private static int WriteCheckpoint(SqliteConnection c, string subscriptionId, long position, long now)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "INSERT INTO checkpoints(subscription_id, position, updated_at) VALUES ($id, $p, $now) ON CONFLICT(subscription_id) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at";
        cmd.Parameters.AddWithValue("$id", subscriptionId);
        cmd.Parameters.AddWithValue("$p", position);
        cmd.Parameters.AddWithValue("$now", now);
        return cmd.ExecuteNonQuery();
    }

    /// <inheritdoc />
    public async Task<long?> LoadAsync(string subscriptionId, CancellationToken cancellationToken = default)
    {
        using var c = store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT position FROM checkpoints WHERE subscription_id = $id";
        cmd.Parameters.AddWithValue("$id", subscriptionId);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as long?;
    }

    /// <inheritdoc />
    public Task StoreAsync(string subscriptionId, long position, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(subscriptionId);
        var now = store.Options.TimeProvider.GetUtcNow().UtcTicks;
        return store.ExecuteInWriterAsync(c => WriteCheckpoint(c, subscriptionId, position, now), cancellationToken);
    }

    /// <inheritdoc />
    public Task ParkAsync(ParkedEvent parked, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(parked);
        return store.ExecuteInWriterAsync(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = """
                INSERT OR REPLACE INTO parked_events(subscription_id, position, event_id, stream_id, stream_version, type, error_type, error_message, error_detail, attempts, first_failure_at, last_failure_at)
                VALUES ($s, $p, $id, $stream, $v, $t, $et, $em, $ed, $a, $first, $last)
                """;
            cmd.Parameters.AddWithValue("$s", parked.SubscriptionId);
            cmd.Parameters.AddWithValue("$p", parked.Position.Value);
            cmd.Parameters.AddWithValue("$id", parked.EventId.Value.ToByteArray(bigEndian: true));
            cmd.Parameters.AddWithValue("$stream", parked.StreamId.Value);
            cmd.Parameters.AddWithValue("$v", parked.StreamVersion.Value);
            cmd.Parameters.AddWithValue("$t", parked.Type);
            cmd.Parameters.AddWithValue("$et", parked.ErrorType);
            cmd.Parameters.AddWithValue("$em", parked.ErrorMessage);
            cmd.Parameters.AddWithValue("$ed", (object?)parked.ErrorDetail ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$a", parked.Attempts);
            cmd.Parameters.AddWithValue("$first", parked.FirstFailureAt.UtcTicks);
            cmd.Parameters.AddWithValue("$last", parked.LastFailureAt.UtcTicks);
            return cmd.ExecuteNonQuery();
        }, cancellationToken);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<ParkedEvent>> ListAsync(string subscriptionId, CancellationToken cancellationToken = default)
    {
        using var c = store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT position, event_id, stream_id, stream_version, type, error_type, error_message, error_detail, attempts, first_failure_at, last_failure_at FROM parked_events WHERE subscription_id = $s ORDER BY position";
        cmd.Parameters.AddWithValue("$s", subscriptionId);
        var list = new List<ParkedEvent>();
        using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (r.Read())
        {
            list.Add(new ParkedEvent(subscriptionId, r.GetInt64(0), new EventId(new Guid(r.GetFieldValue<byte[]>(1), bigEndian: true)),
                StreamId.FromTrusted(r.GetString(2)), r.GetInt64(3), r.GetString(4), r.GetString(5), r.GetString(6), r.IsDBNull(7) ? null : r.GetString(7),
                r.GetInt32(8), new DateTimeOffset(r.GetInt64(9), TimeSpan.Zero), new DateTimeOffset(r.GetInt64(10), TimeSpan.Zero)));
        }
        return list;
    }

    /// <inheritdoc />
    public Task RemoveAsync(string subscriptionId, GlobalPosition position, CancellationToken cancellationToken = default) =>
        store.ExecuteInWriterAsync(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DELETE FROM parked_events WHERE subscription_id = $s AND position = $p";
            cmd.Parameters.AddWithValue("$s", subscriptionId);
            cmd.Parameters.AddWithValue("$p", position.Value);
            return cmd.ExecuteNonQuery();
        }, cancellationToken);
}
