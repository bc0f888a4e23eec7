using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Factum.Sqlite;

/// <summary>
/// Reads pages of events through SQLitePCL.raw on a reader connection. Reads are the other hot path: a catch-up over
/// the whole log materializes every row, so this binds by index, copies only the payload, and reuses the strings that
/// repeat from row to row (type names, stream ids, the correlation id of a multi-event append).
/// </summary>
/// <remarks>Columns, in order: position, stream_version, event_id, type, schema_version, created_at, correlation_id,
/// causation_id, metadata, payload and, for global reads, stream_id — with the checksum packed into the schema version's
/// column (<c>(checksum &lt;&lt; 32) | schema_version</c>; 0 for rows written before v7). Every row's checksum is checked
/// before it is decoded (see <see cref="EventChecksum"/>): a mismatch throws <see cref="EventCorruptedException"/>.</remarks>
internal sealed class EventPageQuery : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _stmt;
    private readonly Utf8Interner _interner = new();
    private byte[] _lastCorrelationBytes = [];
    private string _lastCorrelation = "";

    private readonly long _checksumsFrom;

    private readonly bool _checkChecksums;

    /// <param name="connection">The connection to read on.</param>
    /// <param name="checksumsFrom">The first position written with a checksum, or <see cref="long.MaxValue"/> to check none.</param>
    /// <param name="sql">The query, selecting the columns listed in the remarks.</param>
    public EventPageQuery(SqliteConnection connection, long checksumsFrom, string sql)
    {
        _checksumsFrom = checksumsFrom;
        _checkChecksums = checksumsFrom != long.MaxValue;
        _db = connection.Handle ?? throw new InvalidOperationException("The reader connection is not open.");
        var rc = raw.sqlite3_prepare_v2(_db, sql, out _stmt);
        if (rc != raw.SQLITE_OK) throw Error(rc);
    }

    public void Bind(int index, long value) => raw.sqlite3_bind_int64(_stmt, index, value);

    public void Bind(int index, string value) => raw.sqlite3_bind_text(_stmt, index, value);

    /// <summary>Runs the query to completion (no read transaction stays open while the caller handles events).</summary>
    public List<RecordedEvent> ReadPage(StreamId? stream, int capacity)
    {
        var page = new List<RecordedEvent>(capacity);
        // A stream read knows its stream id: encoded once per page for the checksum.
        var knownStream = stream is { } known ? Encoding.UTF8.GetBytes(known.Value) : null;
        try
        {
            int rc;
            while ((rc = raw.sqlite3_step(_stmt)) == raw.SQLITE_ROW)
            {
                var s = _stmt;
                var position = raw.sqlite3_column_int64(s, 0);
                var version = raw.sqlite3_column_int64(s, 1);
                var id = raw.sqlite3_column_blob(s, 2);
                var type = raw.sqlite3_column_blob(s, 3);
                var packed = raw.sqlite3_column_int64(s, 4);
                var checksum = packed >> 32;
                var storedSchemaVersion = (long)(uint)packed;
                var schemaVersion = unchecked((int)storedSchemaVersion);
                var ticks = raw.sqlite3_column_int64(s, 5);
                var correlation = raw.sqlite3_column_blob(s, 6);
                // Each column call is a P/Invoke: NULL-able columns are asked for their type first (NULL is the common case).
                var hasCausation = raw.sqlite3_column_type(s, 7) != raw.SQLITE_NULL;
                var causation = hasCausation ? raw.sqlite3_column_blob(s, 7) : default;
                var hasMetadata = raw.sqlite3_column_type(s, 8) != raw.SQLITE_NULL;
                var metadata = hasMetadata ? raw.sqlite3_column_blob(s, 8) : default;
                var payload = raw.sqlite3_column_blob(s, 9);
                var streamId = knownStream ?? raw.sqlite3_column_blob(s, 10);
                if (!_checkChecksums)
                {
                    // Not checked on read (SqliteEventStoreOptions.VerifyChecksumsOnRead = false).
                }
                else if (checksum != 0)
                {
                    var actual = EventChecksum.Compute(position, streamId, version, id, type, schemaVersion, ticks,
                        correlation, causation, hasCausation, metadata, hasMetadata, payload);
                    if (actual != checksum) throw new EventCorruptedException(position, "its stored bytes do not match the checksum written with it");
                }
                else if (position >= _checksumsFrom)
                {
                    // Every event from there on was written with one: a missing checksum is damage, not an old row.
                    throw new EventCorruptedException(position, $"its checksum is missing (every event from position {_checksumsFrom} on has one)");
                }
                if (id.Length != 16) throw new EventCorruptedException(position, $"its event id is {id.Length} bytes, not 16");
                if (storedSchemaVersion is < 1 or > int.MaxValue) throw new EventCorruptedException(position, $"its schema version {storedSchemaVersion} is out of range");
                if (ticks < DateTimeOffset.MinValue.UtcTicks || ticks > DateTimeOffset.MaxValue.UtcTicks) throw new EventCorruptedException(position, $"its timestamp {ticks} is out of range");
                IReadOnlyDictionary<string, string> decodedMetadata;
                try { decodedMetadata = hasMetadata ? MetadataCodec.Decode(metadata) : EmptyMetadata.Instance; }
                catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException)
                {
                    throw new EventCorruptedException(position, $"its metadata cannot be decoded: {ex.Message}");
                }
                page.Add(new RecordedEvent
                {
                    Position = position,
                    StreamVersion = version,
                    EventId = new EventId(new Guid(id, bigEndian: true)),
                    Type = _interner.Get(type),
                    SchemaVersion = schemaVersion,
                    Timestamp = new DateTimeOffset(ticks, TimeSpan.Zero),
                    CorrelationId = Correlation(correlation),
                    CausationId = hasCausation ? Encoding.UTF8.GetString(causation) : null,
                    Metadata = decodedMetadata,
                    Payload = payload.ToArray(),
                    StreamId = stream ?? StreamId.FromTrusted(_interner.Get(streamId)),
                });
            }
            if (rc != raw.SQLITE_DONE) throw Error(rc);
        }
        finally
        {
            raw.sqlite3_reset(_stmt);
        }
        return page;
    }

    private string Correlation(ReadOnlySpan<byte> utf8)
    {
        // Events of one append share a correlation id; reuse the string rather than decode it again.
        if (utf8.SequenceEqual(_lastCorrelationBytes)) return _lastCorrelation;
        _lastCorrelationBytes = utf8.ToArray();
        return _lastCorrelation = Encoding.UTF8.GetString(utf8);
    }

    private SqliteException Error(int rc) => new(raw.sqlite3_errmsg(_db).utf8_to_string(), rc, raw.sqlite3_extended_errcode(_db));

    public void Dispose() => _stmt.Dispose();
}

/// <summary>Turns UTF-8 bytes into strings, returning the same instance for text seen before (bounded).</summary>
internal sealed class Utf8Interner
{
    private const int MaxEntries = 4096;
    private readonly Dictionary<string, string> _strings = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    public Utf8Interner() => _lookup = _strings.GetAlternateLookup<ReadOnlySpan<char>>();

    public string Get(ReadOnlySpan<byte> utf8)
    {
        if (utf8.Length > 1024) return Encoding.UTF8.GetString(utf8);
        Span<char> chars = stackalloc char[utf8.Length];
        var n = Encoding.UTF8.GetChars(utf8, chars);
        if (_lookup.TryGetValue(chars[..n], out var existing)) return existing;
        var s = new string(chars[..n]);
        if (_strings.Count >= MaxEntries) _strings.Clear();
        _strings[s] = s;
        return s;
    }
}
