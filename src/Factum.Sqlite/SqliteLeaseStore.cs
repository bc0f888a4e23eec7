using Factum.Coordination;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

/// <summary>
/// Leases in the store's own file, so that processes sharing it agree on one owner per job. Every change goes through
/// the store's writer (one transaction under SQLite's write lock), and times come from the store's clock.
/// </summary>
public sealed class SqliteLeaseStore(SqliteEventStore store) : ILeaseStore
{
    private long Now => store.Options.TimeProvider.GetUtcNow().UtcTicks;

    /// <inheritdoc />
    public async Task<Lease?> TryAcquireAsync(string name, string owner, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(owner);
        var now = Now;
        var expires = now + duration.Ticks;
        return (Lease?)await store.ExecuteInWriterAsync(c =>
        {
            long token;
            using (var read = c.CreateCommand())
            {
                read.CommandText = "SELECT owner, token, expires_at FROM leases WHERE name = $n";
                read.Parameters.AddWithValue("$n", name);
                using var r = read.ExecuteReader();
                if (!r.Read()) token = 1;
                else if (!r.IsDBNull(0) && r.GetString(0) == owner) token = r.GetInt64(1);
                else if (r.IsDBNull(0) || r.GetInt64(2) <= now) token = r.GetInt64(1) + 1;
                else return null;
            }
            using var write = c.CreateCommand();
            write.CommandText = """
                INSERT INTO leases(name, owner, token, expires_at, acquired_at) VALUES ($n, $o, $t, $e, $now)
                ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,
                    acquired_at = CASE WHEN token = excluded.token THEN acquired_at ELSE excluded.acquired_at END, token = excluded.token
                """;
            write.Parameters.AddWithValue("$n", name);
            write.Parameters.AddWithValue("$o", owner);
            write.Parameters.AddWithValue("$t", token);
            write.Parameters.AddWithValue("$e", expires);
            write.Parameters.AddWithValue("$now", now);
            write.ExecuteNonQuery();
            return new Lease(name, owner, token, new DateTimeOffset(expires, TimeSpan.Zero));
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<Lease?> RenewAsync(Lease lease, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var expires = Now + duration.Ticks;
        var changed = (int)(await store.ExecuteInWriterAsync(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE leases SET expires_at = $e WHERE name = $n AND owner = $o AND token = $t";
            cmd.Parameters.AddWithValue("$e", expires);
            Bind(cmd, lease);
            return cmd.ExecuteNonQuery();
        }, cancellationToken).ConfigureAwait(false))!;
        return changed == 1 ? lease with { ExpiresAt = new DateTimeOffset(expires, TimeSpan.Zero) } : null;
    }

    /// <inheritdoc />
    public Task ReleaseAsync(Lease lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var now = Now;
        return store.ExecuteInWriterAsync(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE leases SET owner = NULL, expires_at = $now WHERE name = $n AND owner = $o AND token = $t";
            cmd.Parameters.AddWithValue("$now", now);
            Bind(cmd, lease);
            return cmd.ExecuteNonQuery();
        }, cancellationToken);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<LeaseInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        using var c = store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT name, owner, token, expires_at FROM leases ORDER BY name";
        var list = new List<LeaseInfo>();
        using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (r.Read()) list.Add(new LeaseInfo(r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.GetInt64(2), new DateTimeOffset(r.GetInt64(3), TimeSpan.Zero)));
        return list;
    }

    /// <summary>
    /// Throws <see cref="LeaseLostException"/> unless <paramref name="fence"/> is the live lease; call it on the writer's
    /// connection, in the transaction of the write it guards.
    /// </summary>
    internal static void CheckFence(SqliteConnection c, Lease fence, long nowTicks)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT 1 FROM leases WHERE name = $n AND owner = $o AND token = $t AND expires_at > $now";
        Bind(cmd, fence);
        cmd.Parameters.AddWithValue("$now", nowTicks);
        if (cmd.ExecuteScalar() is null) throw new LeaseLostException(fence);
    }

    private static void Bind(SqliteCommand cmd, Lease lease)
    {
        cmd.Parameters.AddWithValue("$n", lease.Name);
        cmd.Parameters.AddWithValue("$o", lease.Owner);
        cmd.Parameters.AddWithValue("$t", lease.FencingToken);
    }
}
