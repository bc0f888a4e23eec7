using Factum.Coordination;
using Factum.Subscriptions;
using Npgsql;
using NpgsqlTypes;

namespace Factum.PostgreSql;

/// <summary>Subscription checkpoints (optionally fenced by a lease) and parked events, in the store's database.</summary>
public sealed class PostgresSubscriptionStore(PostgresEventStore store) : IFencedCheckpointStore, IParkedEventStore
{
    private string S => store.Schema;

    private DateTimeOffset Now => store.Options.TimeProvider.GetUtcNow();

    /// <inheritdoc />
    public async Task<long?> LoadAsync(string subscriptionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(subscriptionId);
        var c = await store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"SELECT position FROM {S}.checkpoints WHERE subscription_id = $1", c);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, subscriptionId);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as long?;
    }

    /// <inheritdoc />
    public Task StoreAsync(string subscriptionId, long position, CancellationToken cancellationToken = default) => WriteAsync(subscriptionId, position, null, cancellationToken);

    /// <inheritdoc />
    public Task StoreAsync(string subscriptionId, long position, Lease fence, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fence);
        return WriteAsync(subscriptionId, position, fence, cancellationToken);
    }

    private async Task WriteAsync(string subscriptionId, long position, Lease? fence, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(subscriptionId);
        var c = await store.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        // The fence and the write in one transaction: the lease row stays locked until the checkpoint commits.
        if (fence is not null) await PostgresLeaseStore.CheckFenceAsync(store, c, tx, fence, ct).ConfigureAwait(false);
        using (var cmd = new NpgsqlCommand($"""
            INSERT INTO {S}.checkpoints(subscription_id, position, updated_at) VALUES ($1, $2, $3)
            ON CONFLICT (subscription_id) DO UPDATE SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at
            """, c, tx))
        {
            cmd.Parameters.AddWithValue(NpgsqlDbType.Text, subscriptionId);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, position);
            cmd.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, Now);
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task ParkAsync(ParkedEvent parked, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(parked);
        var c = await store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"""
            INSERT INTO {S}.parked_events(subscription_id, position, event_id, stream_id, stream_version, type, error_type, error_message, error_detail, attempts, first_failure_at, last_failure_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (subscription_id, position) DO UPDATE SET event_id = EXCLUDED.event_id, stream_id = EXCLUDED.stream_id,
                stream_version = EXCLUDED.stream_version, type = EXCLUDED.type, error_type = EXCLUDED.error_type,
                error_message = EXCLUDED.error_message, error_detail = EXCLUDED.error_detail, attempts = EXCLUDED.attempts,
                first_failure_at = EXCLUDED.first_failure_at, last_failure_at = EXCLUDED.last_failure_at
            """, c);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, parked.SubscriptionId);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, parked.Position.Value);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Uuid, parked.EventId.Value);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, parked.StreamId.Value);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, parked.StreamVersion.Value);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, parked.Type);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, parked.ErrorType);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, parked.ErrorMessage);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, (object?)parked.ErrorDetail ?? DBNull.Value);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Integer, parked.Attempts);
        cmd.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, parked.FirstFailureAt.ToUniversalTime());
        cmd.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, parked.LastFailureAt.ToUniversalTime());
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<ParkedEvent>> ListAsync(string subscriptionId, CancellationToken cancellationToken = default)
    {
        var c = await store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"""
            SELECT position, event_id, stream_id, stream_version, type, error_type, error_message, error_detail, attempts, first_failure_at, last_failure_at
            FROM {S}.parked_events WHERE subscription_id = $1 ORDER BY position
            """, c);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, subscriptionId);
        var list = new List<ParkedEvent>();
        var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var rScope = r.ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(new ParkedEvent(subscriptionId, r.GetInt64(0), new EventId(r.GetGuid(1)), StreamId.FromTrusted(r.GetString(2)), r.GetInt64(3), r.GetString(4),
                r.GetString(5), r.GetString(6), r.IsDBNull(7) ? null : r.GetString(7), r.GetInt32(8),
                new DateTimeOffset(r.GetFieldValue<DateTime>(9).Ticks, TimeSpan.Zero), new DateTimeOffset(r.GetFieldValue<DateTime>(10).Ticks, TimeSpan.Zero)));
        }
        return list;
    }

    /// <inheritdoc />
    public async Task RemoveAsync(string subscriptionId, GlobalPosition position, CancellationToken cancellationToken = default)
    {
        var c = await store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"DELETE FROM {S}.parked_events WHERE subscription_id = $1 AND position = $2", c);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, subscriptionId);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, position.Value);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
