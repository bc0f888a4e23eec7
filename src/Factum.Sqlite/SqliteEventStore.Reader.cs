using System.Runtime.CompilerServices;
using System.Text;
using Factum.Store;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

public sealed partial class SqliteEventStore
{
    // The checksum rides in the schema version's column ((checksum << 32) | schema_version, checksum 0 = none): every column
    // fetched is a P/Invoke through a SafeHandle that costs more than the CRC itself, so the check adds no column.
    private const string EventColumns = "e.position, e.stream_version, e.event_id, e.type, (COALESCE(e.checksum, 0) << 32) | (e.schema_version & 4294967295), e.created_at, e.correlation_id, e.causation_id, e.metadata, e.payload";

    /// <inheritdoc />
    public async IAsyncEnumerable<RecordedEvent> ReadStreamAsync(StreamId streamId, ReadStreamOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        options ??= ReadStreamOptions.Default;
        using var c = OpenReadConnection();
        var row = LoadStream(c, streamId);
        if (row is null || row.Value.Head.State is StreamState.NotFound or StreamState.SoftDeleted) throw new StreamNotFoundException(streamId);
        if (row.Value.Head.State == StreamState.Tombstoned) throw new StreamDeletedException(streamId);
        var (key, head, _, metadata) = row.Value;
        var (minVersion, minTicks) = Retention.Window(metadata, head.LastVersion, _options.TimeProvider.GetUtcNow());
        var forwards = options.Direction == Direction.Forwards;
        var next = forwards ? Math.Max(options.From?.Value ?? 0, minVersion) : Math.Min(options.From?.Value ?? head.LastVersion, head.LastVersion);
        var remaining = options.MaxCount;
        using var query = new EventPageQuery(c, ReadChecksumsFrom, forwards
            ? $"SELECT {EventColumns} FROM events e WHERE e.stream_key = ?1 AND e.stream_version >= ?2 AND e.created_at >= ?3 ORDER BY e.stream_version LIMIT ?4"
            : $"SELECT {EventColumns} FROM events e WHERE e.stream_key = ?1 AND e.stream_version <= ?2 AND e.created_at >= ?3 AND e.stream_version >= ?5 ORDER BY e.stream_version DESC LIMIT ?4");
        query.Bind(1, key);
        query.Bind(3, minTicks);
        if (!forwards) query.Bind(5, minVersion);
        while (remaining > 0 && (forwards || next >= minVersion))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var limit = (int)Math.Min(remaining, _options.ReadPageSize);
            query.Bind(2, next);
            query.Bind(4, limit);
            var page = ReadLogged(query, streamId, limit);
            if (page.Count == 0) yield break;
            foreach (var e in page) yield return e;
            remaining -= page.Count;
            next = forwards ? page[^1].StreamVersion.Value + 1 : page[^1].StreamVersion.Value - 1;
            if (page.Count < limit) yield break;
            await Task.Yield();
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<RecordedEvent> ReadAllAsync(ReadAllOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        options ??= ReadAllOptions.Default;
        var forwards = options.Direction == Direction.Forwards;
        using var c = OpenReadConnection();
        var sql = new StringBuilder($"SELECT {EventColumns}, s.stream_id FROM events e CROSS JOIN streams s ON s.stream_key = e.stream_key WHERE ");
        // ?3 is the other end of the range (ReadAllOptions.To): followers read up to the high-water mark only.
        sql.Append(forwards ? "e.position >= ?1 AND e.position <= ?3" : "e.position <= ?1 AND e.position >= ?3");
        var f = options.Filter;
        var texts = new List<string>();
        AppendIn(sql, texts, "e.type", f.EventTypes);
        AppendIn(sql, texts, "s.category", f.Categories);
        if (f.StreamPrefixes.Count > 0)
        {
            sql.Append(" AND (");
            for (var i = 0; i < f.StreamPrefixes.Count; i++)
            {
                if (i > 0) sql.Append(" OR ");
                texts.Add(f.StreamPrefixes[i]);
                var n = texts.Count + 3;
                sql.Append(System.Globalization.CultureInfo.InvariantCulture, $"substr(s.stream_id, 1, length(?{n})) = ?{n}");
            }
            sql.Append(')');
        }
        sql.Append(forwards ? " ORDER BY e.position LIMIT ?2" : " ORDER BY e.position DESC LIMIT ?2");
        using var query = new EventPageQuery(c, ReadChecksumsFrom, sql.ToString());
        for (var i = 0; i < texts.Count; i++) query.Bind(i + 4, texts[i]);
        query.Bind(3, options.To?.Value ?? (forwards ? long.MaxValue : 0));
        var next = options.From.Value;
        var remaining = options.MaxCount;
        while (remaining > 0 && next >= 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var limit = (int)Math.Min(remaining, _options.ReadPageSize);
            query.Bind(1, next);
            query.Bind(2, limit);
            var page = ReadLogged(query, null, limit);
            if (page.Count == 0) yield break;
            foreach (var e in page) yield return e;
            remaining -= page.Count;
            next = forwards ? page[^1].Position.Value + 1 : page[^1].Position.Value - 1;
            if (page.Count < limit) yield break;
            await Task.Yield();
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<RecordedEvent> ReadCorrelatedAsync(string correlationId, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        ArgumentException.ThrowIfNullOrWhiteSpace(correlationId);
        using var c = OpenReadConnection();
        using var query = new EventPageQuery(c, ReadChecksumsFrom, $"SELECT {EventColumns}, s.stream_id FROM events e CROSS JOIN streams s ON s.stream_key = e.stream_key WHERE e.correlation_id = ?1 AND e.position >= ?2 ORDER BY e.position LIMIT ?3");
        query.Bind(1, correlationId);
        long next = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            query.Bind(2, next);
            query.Bind(3, _options.ReadPageSize);
            var page = ReadLogged(query, null, _options.ReadPageSize);
            foreach (var e in page) yield return e;
            if (page.Count < _options.ReadPageSize) yield break;
            next = page[^1].Position.Value + 1;
            await Task.Yield();
        }
    }

    private static void AppendIn(StringBuilder sql, List<string> texts, string column, IReadOnlyList<string> values)
    {
        if (values.Count == 0) return;
        sql.Append(" AND ").Append(column).Append(" IN (");
        for (var i = 0; i < values.Count; i++)
        {
            if (i > 0) sql.Append(", ");
            texts.Add(values[i]);
            sql.Append('?').Append(texts.Count + 3);
        }
        sql.Append(')');
    }

    /// <summary>A stream's row plus its head (last version and position, derived from the events index). Parameter: $id.</summary>
    private const string StreamRowSql = """
        SELECT s.stream_key, s.state, s.start_version, s.max_age_ms, s.max_count, s.truncate_before, s.custom_metadata,
               (SELECT e.stream_version FROM events e WHERE e.stream_key = s.stream_key ORDER BY e.stream_version DESC LIMIT 1),
               (SELECT e.position FROM events e WHERE e.stream_key = s.stream_key ORDER BY e.stream_version DESC LIMIT 1)
        FROM streams s WHERE s.stream_id = $id
        """;

    /// <summary>Runs <see cref="StreamRowSql"/> (its $id already bound) and maps the row, or null when the stream has none.</summary>
    private static StreamRow? ReadStreamRow(SqliteCommand cmd)
    {
        using var r = cmd.ExecuteReader();
        if (!r.Read()) return null;
        var lastVersion = r.IsDBNull(7) ? -1 : r.GetInt64(7);
        return new StreamRow(r.GetInt64(0), new StreamHead((StreamState)r.GetInt32(1), lastVersion, r.GetInt64(2)), r.IsDBNull(8) ? null : r.GetInt64(8), ReadMetadata(r, 3));
    }

    private static StreamRow? LoadStream(SqliteConnection c, StreamId streamId)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = StreamRowSql;
        cmd.Parameters.AddWithValue("$id", streamId.Value);
        return ReadStreamRow(cmd);
    }

    /// <summary>A page of events; a corrupted event is logged for the operator before the reader hears of it.</summary>
    private List<RecordedEvent> ReadLogged(EventPageQuery query, StreamId? stream, int capacity)
    {
        try
        {
            return query.ReadPage(stream, capacity);
        }
        catch (EventCorruptedException ex)
        {
            FactumLog.EventCorrupted(_log, FilePath, ex.Position.Value, ex.Message);
            throw;
        }
    }

    /// <inheritdoc />
    public async Task<GlobalPosition> GetHeadPositionAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        using var c = OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT MAX(position) FROM events";
        return (await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false)) as long? ?? 0;
    }

    // Last version, last position and creation time are derived from the events index (see the schema).
    private const string StreamInfoColumns = """
        s.stream_id, s.state,
        (SELECT e.stream_version FROM events e WHERE e.stream_key = s.stream_key ORDER BY e.stream_version DESC LIMIT 1),
        (SELECT e.position FROM events e WHERE e.stream_key = s.stream_key ORDER BY e.stream_version DESC LIMIT 1),
        (SELECT e.created_at FROM events e WHERE e.stream_key = s.stream_key ORDER BY e.stream_version LIMIT 1),
        max(s.changed_at, COALESCE((SELECT e.created_at FROM events e WHERE e.stream_key = s.stream_key ORDER BY e.stream_version DESC LIMIT 1), 0)),
        s.max_age_ms, s.max_count, s.truncate_before, s.custom_metadata
        """;

    private static StreamInfo ReadStreamInfo(SqliteDataReader r) => new()
    {
        StreamId = StreamId.FromTrusted(r.GetString(0)),
        State = (StreamState)r.GetInt32(1),
        LastVersion = r.IsDBNull(2) ? null : new StreamVersion(r.GetInt64(2)),
        LastPosition = r.IsDBNull(3) ? null : new GlobalPosition(r.GetInt64(3)),
        CreatedAt = r.IsDBNull(4) ? null : new DateTimeOffset(r.GetInt64(4), TimeSpan.Zero),
        UpdatedAt = r.IsDBNull(5) ? null : new DateTimeOffset(r.GetInt64(5), TimeSpan.Zero),
        Metadata = ReadMetadata(r, 6),
    };

    /// <inheritdoc />
    public async Task<StreamInfo> GetStreamInfoAsync(StreamId streamId, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        using var c = OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT {StreamInfoColumns} FROM streams s WHERE s.stream_id = $id";
        cmd.Parameters.AddWithValue("$id", streamId.Value);
        using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return r.Read() ? ReadStreamInfo(r) with { StreamId = streamId } : new StreamInfo { StreamId = streamId, State = StreamState.NotFound };
    }

    /// <inheritdoc />
    public async Task<StreamPage> ListStreamsAsync(ListStreamsOptions? options = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        options ??= new ListStreamsOptions();
        using var c = OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"""
            SELECT {StreamInfoColumns} FROM streams s
            WHERE {(options.IncludeDeleted ? "s.state <> 0" : "s.state = 1")}
              AND ($cat IS NULL OR s.category = $cat) AND ($after IS NULL OR s.stream_id > $after)
            ORDER BY s.stream_id LIMIT $n
            """;
        cmd.Parameters.AddWithValue("$cat", (object?)options.Category ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$after", (object?)options.After ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$n", options.PageSize + 1);
        var items = new List<StreamInfo>();
        using (var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (r.Read()) items.Add(ReadStreamInfo(r));
        }
        string? token = null;
        if (items.Count > options.PageSize)
        {
            items.RemoveAt(items.Count - 1);
            token = items[^1].StreamId.Value;
        }
        return new StreamPage(items, token);
    }
}
