using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

/// <summary>The outcome of <see cref="SqliteStoreVerifier.Verify"/>.</summary>
/// <param name="Problems">What is wrong; empty when the file is healthy.</param>
/// <param name="Streams">Streams checked.</param>
/// <param name="Events">Events checked.</param>
public sealed record VerificationReport(IReadOnlyList<string> Problems, long Streams, long Events)
{
    /// <summary>Events written before checksums existed (schema v7): their bytes cannot be checked.</summary>
    public long EventsWithoutChecksum { get; init; }

    /// <summary>True when nothing is wrong.</summary>
    public bool IsHealthy => Problems.Count == 0;
}

/// <summary>
/// Checks a store file: SQLite's own integrity check, then Factum's invariants — versions contiguous per stream and
/// matching the stream table, positions increasing, every row's checksum matching its bytes, every row decodable (ids,
/// types, metadata, stream ids).
/// </summary>
public static class SqliteStoreVerifier
{
    /// <summary>Verifies the file at <paramref name="path"/> without modifying it. At most <paramref name="maxProblems"/> problems are listed.</summary>
    public static VerificationReport Verify(string path, int maxProblems = 100)
    {
        var problems = new List<string>();
        if (!File.Exists(path)) return new VerificationReport([$"'{path}' does not exist."], 0, 0);
        try
        {
            // Read-only, and able to read a store in a folder this process cannot write to (see SqliteEventStore).
            string connectionString;
            try { connectionString = SqliteEventStore.ReadOnlyConnectionString(Path.GetFullPath(path), requireCurrentSchema: false); }
            catch (StoreFormatException ex) { return new VerificationReport([ex.Message], 0, 0); }
            using var c = new SqliteConnection(new SqliteConnectionStringBuilder(connectionString) { Pooling = false }.ToString());
            c.Open();
            using (var cmd = c.CreateCommand())
            {
                cmd.CommandText = "PRAGMA integrity_check(100)";
                using var r = cmd.ExecuteReader();
                while (r.Read())
                {
                    var line = r.GetString(0);
                    if (line != "ok") problems.Add($"SQLite integrity: {line}");
                }
            }
            if (Scalar(c, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='factum_meta'") is not 1L)
                return new VerificationReport([.. problems, "The file is a SQLite database but not a Factum store (no factum_meta table)."], 0, 0);
            var version = Scalar(c, "SELECT value FROM factum_meta WHERE key='schema_version'") as string;
            if (version != SqliteSchema.LatestVersion.ToString(System.Globalization.CultureInfo.InvariantCulture))
                problems.Add($"Schema version is '{version}', expected {SqliteSchema.LatestVersion} (open the store once with this Factum to migrate it).");

            long streams = 0, events = 0;
            // Per stream: the events must be versions 0..last with no hole.
            using (var cmd = c.CreateCommand())
            {
                cmd.CommandText = """
                    SELECT s.stream_id, s.state, s.start_version,
                           (SELECT count(*) FROM events e WHERE e.stream_key = s.stream_key),
                           (SELECT min(stream_version) FROM events e WHERE e.stream_key = s.stream_key),
                           (SELECT max(stream_version) FROM events e WHERE e.stream_key = s.stream_key)
                    FROM streams s
                    """;
                using var r = cmd.ExecuteReader();
                while (r.Read() && problems.Count < maxProblems)
                {
                    streams++;
                    var id = r.GetString(0);
                    if (!StreamId.TryParse(id, out _, out var err) && !id.StartsWith('$')) problems.Add($"Stream id '{id}' is invalid: {err}");
                    var state = r.GetInt32(1);
                    var count = r.GetInt64(3);
                    if (state is < 0 or > 3) problems.Add($"Stream '{id}' has an unknown state {state}.");
                    if (count == 0)
                    {
                        if (state is 1 or 2) problems.Add($"Stream '{id}' is marked as written (state {state}) but has no events.");
                        continue;
                    }
                    if (state == 0) problems.Add($"Stream '{id}' has {count} events but is marked as never written.");
                    long min = r.GetInt64(4), max = r.GetInt64(5);
                    if (min != 0 || max != count - 1) problems.Add($"Stream '{id}' versions are not contiguous: {count} events span versions {min}..{max}.");
                    if (r.GetInt64(2) > max + 1) problems.Add($"Stream '{id}' starts its current life at version {r.GetInt64(2)}, beyond its last event {max}.");
                }
            }
            if (Scalar(c, "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM streams s WHERE s.stream_key = e.stream_key)") is long orphans and > 0)
                problems.Add($"{orphans} events belong to no stream.");

            // Every row intact and decodable; positions strictly increasing in rowid order by construction, but check they are positive.
            long unchecked_ = 0;
            var checksumsFrom = version == SqliteSchema.LatestVersion.ToString(System.Globalization.CultureInfo.InvariantCulture) ? SqliteSchema.ChecksumsFrom(c) : long.MaxValue;
            using (var cmd = c.CreateCommand())
            {
                // A store not yet migrated to v7 has no checksum column (its version is reported above).
                var checksumColumn = checksumsFrom == long.MaxValue ? "NULL" : "checksum";
                cmd.CommandText = $"""
                    SELECT position, event_id, type, schema_version, created_at, correlation_id, metadata,
                           (SELECT CAST(s.stream_id AS BLOB) FROM streams s WHERE s.stream_key = events.stream_key), stream_version,
                           CAST(type AS BLOB), CAST(correlation_id AS BLOB), CAST(causation_id AS BLOB), payload, {checksumColumn}
                    FROM events ORDER BY position
                    """;
                using var r = cmd.ExecuteReader();
                long previous = 0;
                while (r.Read() && problems.Count < maxProblems)
                {
                    events++;
                    var pos = r.GetInt64(0);
                    if (pos <= previous) problems.Add($"Position {pos} does not increase after {previous}.");
                    previous = pos;
                    try
                    {
                        var id = r.GetValue(1) as byte[];
                        if (id is not { Length: 16 }) problems.Add($"Event at position {pos} has a malformed event id.");
                        if (r.IsDBNull(13) || r.GetInt64(13) == 0)
                        {
                            if (pos >= checksumsFrom)
                            {
                                problems.Add($"Event at position {pos} is corrupted: its checksum is missing (every event from position {checksumsFrom} on has one).");
                                continue;
                            }
                            unchecked_++;
                        }
                        else
                        {
                            static byte[] Bytes(SqliteDataReader r, int i) => r.IsDBNull(i) ? [] : r.GetFieldValue<byte[]>(i);
                            var actual = EventChecksum.Compute(pos, Bytes(r, 7), r.GetInt64(8), id ?? [], Bytes(r, 9), SchemaVersion(r.GetInt64(3)), r.GetInt64(4),
                                Bytes(r, 10), Bytes(r, 11), !r.IsDBNull(11), Bytes(r, 6), !r.IsDBNull(6), Bytes(r, 12));
                            if (actual != r.GetInt64(13))
                            {
                                problems.Add($"Event at position {pos} is corrupted: its stored bytes do not match the checksum written with it.");
                                continue;
                            }
                        }
                        if (!EventTypeName.TryValidate(r.IsDBNull(2) ? null : r.GetString(2), out var typeError)) problems.Add($"Event at position {pos}: {typeError}");
                        if (r.GetInt64(3) < 1) problems.Add($"Event at position {pos} has schema version {r.GetInt64(3)}.");
                        var ticks = r.GetInt64(4);
                        if (ticks < DateTime.MinValue.Ticks || ticks > DateTime.MaxValue.Ticks) problems.Add($"Event at position {pos} has an impossible timestamp.");
                        if (r.IsDBNull(5) || r.GetString(5).Length == 0) problems.Add($"Event at position {pos} has no correlation id.");
                        if (!r.IsDBNull(6))
                        {
                            try { MetadataCodec.Decode(r.GetFieldValue<byte[]>(6)); }
                            catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException) { problems.Add($"Event at position {pos} has undecodable metadata: {ex.Message}"); }
                        }
                    }
                    catch (Exception ex) when (ex is InvalidCastException or FormatException or OverflowException or ArgumentException)
                    {
                        // A value of the wrong storage class or range: the row was not written like this.
                        problems.Add($"Event at position {pos} cannot be read: {ex.Message}");
                    }
                }
            }
            return new VerificationReport(problems, streams, events) { EventsWithoutChecksum = unchecked_ };
        }
        catch (SqliteException ex)
        {
            problems.Add($"The file cannot be read as a SQLite database: {ex.Message}");
            return new VerificationReport(problems, 0, 0);
        }
    }

    private static int SchemaVersion(long stored) =>
        stored is >= 1 and <= int.MaxValue ? (int)stored : throw new OverflowException($"schema version {stored} is out of range");

    private static object? Scalar(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }
}
