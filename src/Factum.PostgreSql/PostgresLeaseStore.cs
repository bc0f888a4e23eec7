using Factum.Coordination;
using Npgsql;
using NpgsqlTypes;

namespace Factum.PostgreSql;

/// <summary>
/// Leases in the store's database, so that every node sharing it agrees on one owner per job. Each change is one
/// statement, atomic under the row's lock. Expiry is judged by the <b>database server's clock</b> (<c>clock_timestamp()</c>),
/// so nodes whose clocks drift apart still agree on who holds a lease; a store opened with a custom
/// <see cref="EventStoreOptions.TimeProvider"/> (tests with a manual clock) uses that clock instead.
/// </summary>
public sealed class PostgresLeaseStore(PostgresEventStore store) : ILeaseStore
{
    private string S => store.Schema;

    /// <summary>SQL for "now": the server's clock, or the store's own clock when it is not the system's (tests).</summary>
    private bool ServerClock => store.Options.TimeProvider == TimeProvider.System;

    private string NowSql(int parameter) => ServerClock ? "clock_timestamp()" : $"${parameter}";

    private void AddNow(NpgsqlCommand cmd)
    {
        if (!ServerClock) cmd.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, store.Options.TimeProvider.GetUtcNow());
    }

    private static DateTimeOffset Utc(DateTime value) => new(value.Ticks, TimeSpan.Zero);

    /// <inheritdoc />
    public async Task<Lease?> TryAcquireAsync(string name, string owner, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(owner);
        var c = await store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        // One statement: take a free, released or lapsed lease with a new token, extend one's own keeping its token;
        // nothing (no row returned) while another owner's lease is live.
        using var cmd = new NpgsqlCommand($"""
            INSERT INTO {S}.leases AS l (name, owner, token, expires_at, acquired_at)
            VALUES ($1, $2, 1, {NowSql(4)} + $3, {NowSql(4)})
            ON CONFLICT (name) DO UPDATE SET
                owner = EXCLUDED.owner,
                token = CASE WHEN l.owner = EXCLUDED.owner THEN l.token ELSE l.token + 1 END,
                expires_at = EXCLUDED.expires_at,
                acquired_at = CASE WHEN l.owner = EXCLUDED.owner THEN l.acquired_at ELSE EXCLUDED.acquired_at END
            WHERE l.owner = EXCLUDED.owner OR l.owner IS NULL OR l.expires_at <= {NowSql(4)}
            RETURNING token, expires_at
            """, c);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, name);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, owner);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Interval, duration);
        AddNow(cmd);
        var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var rScope = r.ConfigureAwait(false);
        if (!await r.ReadAsync(cancellationToken).ConfigureAwait(false)) return null;
        return new Lease(name, owner, r.GetInt64(0), Utc(r.GetFieldValue<DateTime>(1)));
    }

    /// <inheritdoc />
    public async Task<Lease?> RenewAsync(Lease lease, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var c = await store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"UPDATE {S}.leases SET expires_at = {NowSql(5)} + $4 WHERE name = $1 AND owner = $2 AND token = $3 RETURNING expires_at", c);
        Bind(cmd, lease);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Interval, duration);
        AddNow(cmd);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is DateTime expires ? lease with { ExpiresAt = Utc(expires) } : null;
    }

    /// <inheritdoc />
    public async Task ReleaseAsync(Lease lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var c = await store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"UPDATE {S}.leases SET owner = NULL, expires_at = {NowSql(4)} WHERE name = $1 AND owner = $2 AND token = $3", c);
        Bind(cmd, lease);
        AddNow(cmd);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<LeaseInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        var c = await store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"SELECT name, owner, token, expires_at FROM {S}.leases ORDER BY name", c);
        var list = new List<LeaseInfo>();
        var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var rScope = r.ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            list.Add(new LeaseInfo(r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.GetInt64(2), Utc(r.GetFieldValue<DateTime>(3))));
        return list;
    }

    /// <summary>
    /// Locks the lease row and throws <see cref="LeaseLostException"/> unless <paramref name="fence"/> is the live lease;
    /// call it in the transaction of the write it guards (the row lock keeps a successor from taking over until it commits).
    /// </summary>
    internal static async Task CheckFenceAsync(PostgresEventStore store, NpgsqlConnection c, NpgsqlTransaction tx, Lease fence, CancellationToken ct)
    {
        var serverClock = store.Options.TimeProvider == TimeProvider.System;
        using var cmd = new NpgsqlCommand($"SELECT 1 FROM {store.Schema}.leases WHERE name = $1 AND owner = $2 AND token = $3 AND expires_at > {(serverClock ? "clock_timestamp()" : "$4")} FOR UPDATE", c, tx);
        Bind(cmd, fence);
        if (!serverClock) cmd.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, store.Options.TimeProvider.GetUtcNow());
        if (await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is null) throw new LeaseLostException(fence);
    }

    private static void Bind(NpgsqlCommand cmd, Lease lease)
    {
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, lease.Name);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, lease.Owner);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, lease.FencingToken);
    }
}
