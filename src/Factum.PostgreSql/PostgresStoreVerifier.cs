using Npgsql;

namespace Factum.PostgreSql;

/// <summary>What <see cref="PostgresStoreVerifier.VerifyAsync"/> found.</summary>
/// <param name="Streams">Streams in the store.</param>
/// <param name="Events">Events in the global log.</param>
/// <param name="Problems">Broken invariants, each named with where it is.</param>
public sealed record PostgresVerifyReport(long Streams, long Events, IReadOnlyList<string> Problems)
{
    /// <summary>True when no invariant is broken.</summary>
    public bool IsHealthy => Problems.Count == 0;
}

/// <summary>
/// Checks a PostgreSQL store's invariants in the database: the head (high-water mark) is the last position, every
/// stream's versions run 0..n without a gap and in position order, and each stream row agrees with its events.
/// </summary>
public static class PostgresStoreVerifier
{
    private const int MaxProblemsPerCheck = 20;

    /// <summary>Runs every check in one snapshot (REPEATABLE READ), so appends running meanwhile cannot look like damage.</summary>
    public static async Task<PostgresVerifyReport> VerifyAsync(PostgresEventStore store, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        var s = store.Schema;
        var c = await store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var tx = await c.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        var problems = new List<string>();

        async Task<List<string>> Rows(string sql)
        {
            using var cmd = new NpgsqlCommand(sql, c, tx);
            var found = new List<string>();
            var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var rScope = r.ConfigureAwait(false);
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) found.Add(r.GetString(0));
            return found;
        }

        async Task<long> Scalar(string sql)
        {
            using var cmd = new NpgsqlCommand(sql, c, tx);
            return Convert.ToInt64(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
        }

        var events = await Scalar($"SELECT count(*) FROM {s}.events").ConfigureAwait(false);
        var streams = await Scalar($"SELECT count(*) FROM {s}.streams WHERE state <> 0").ConfigureAwait(false);
        var head = await Scalar($"SELECT position FROM {s}.head WHERE id = 1").ConfigureAwait(false);
        var last = await Scalar($"SELECT coalesce(max(position), 0) FROM {s}.events").ConfigureAwait(false);
        if (head != last) problems.Add($"the head (high-water mark) is {head} but the last event is at position {last}");
        problems.AddRange(await Rows($"""
            SELECT format('stream %s: versions are not 0..%s without a gap (%s events, from version %s)', stream_id, max(stream_version), count(*), min(stream_version))
            FROM {s}.events GROUP BY stream_id HAVING min(stream_version) <> 0 OR count(*) <> max(stream_version) + 1 ORDER BY stream_id LIMIT {MaxProblemsPerCheck}
            """).ConfigureAwait(false));
        problems.AddRange(await Rows($"""
            SELECT format('stream %s: version %s is at position %s, before the previous version''s position %s', stream_id, stream_version, position, previous)
            FROM (SELECT stream_id, stream_version, position, lag(position) OVER (PARTITION BY stream_id ORDER BY stream_version) AS previous FROM {s}.events) v
            WHERE previous >= position ORDER BY stream_id LIMIT {MaxProblemsPerCheck}
            """).ConfigureAwait(false));
        problems.AddRange(await Rows($"""
            SELECT format('stream %s: its row says last version %s, its events end at %s', s.stream_id, s.last_version, e.last)
            FROM {s}.streams s JOIN (SELECT stream_id, max(stream_version) AS last FROM {s}.events GROUP BY stream_id) e ON e.stream_id = s.stream_id
            WHERE s.last_version <> e.last ORDER BY s.stream_id LIMIT {MaxProblemsPerCheck}
            """).ConfigureAwait(false));
        problems.AddRange(await Rows($"""
            SELECT format('stream %s: it has events but no stream row', e.stream_id)
            FROM (SELECT DISTINCT stream_id FROM {s}.events) e LEFT JOIN {s}.streams s ON s.stream_id = e.stream_id
            WHERE s.stream_id IS NULL ORDER BY e.stream_id LIMIT {MaxProblemsPerCheck}
            """).ConfigureAwait(false));
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new PostgresVerifyReport(streams, events, problems);
    }
}
