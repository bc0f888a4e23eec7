using Factum.Store;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Factum.Sqlite;

/// <summary>
/// The hot path of every append: one prepared INSERT bound by parameter index through SQLitePCL.raw on the writer's own
/// connection. Microsoft.Data.Sqlite binds parameters by name on every execution, which costs more than the insert itself
/// at tens of thousands of events per second; here the payload is bound straight from its memory, without a copy.
/// </summary>
internal sealed class EventInsertStatement : IDisposable
{
    private const string Sql = "INSERT INTO events(position, stream_key, stream_version, event_id, type, schema_version, created_at, correlation_id, causation_id, metadata, payload, checksum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _stmt;

    // Type names repeat endlessly: keep their UTF-8 bytes instead of encoding them for every event.
    private readonly Dictionary<string, byte[]> _typeNames = new(StringComparer.Ordinal);

    public EventInsertStatement(SqliteConnection connection)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The writer connection is not open.");
        var rc = raw.sqlite3_prepare_v2(_db, Sql, out _stmt);
        if (rc != raw.SQLITE_OK) throw Error(rc);
    }

    public void Execute(long position, long streamKey, StreamId streamId, long version, PreparedEvent e, long ticks)
    {
        Span<byte> id = stackalloc byte[16];
        e.EventId.Value.TryWriteBytes(id, bigEndian: true, out _);
        raw.sqlite3_bind_int64(_stmt, 1, position);
        raw.sqlite3_bind_int64(_stmt, 2, streamKey);
        raw.sqlite3_bind_int64(_stmt, 3, version);
        raw.sqlite3_bind_blob(_stmt, 4, id);
        if (!_typeNames.TryGetValue(e.Type, out var type))
        {
            if (_typeNames.Count > 10_000) _typeNames.Clear();
            _typeNames[e.Type] = type = System.Text.Encoding.UTF8.GetBytes(e.Type);
        }
        raw.sqlite3_bind_text(_stmt, 5, type);
        raw.sqlite3_bind_int(_stmt, 6, e.SchemaVersion);
        raw.sqlite3_bind_int64(_stmt, 7, ticks);
        // The ids are bound as the very bytes the checksum covers (ids are short: encoded on the stack).
        // Ids are at most EventData.MaxIdLength characters (checked when the append was prepared).
        Span<byte> correlation = stackalloc byte[System.Text.Encoding.UTF8.GetMaxByteCount(e.CorrelationId.Length)];
        correlation = correlation[..System.Text.Encoding.UTF8.GetBytes(e.CorrelationId, correlation)];
        raw.sqlite3_bind_text(_stmt, 8, correlation);
        Span<byte> causation = stackalloc byte[e.CausationId is null ? 0 : System.Text.Encoding.UTF8.GetMaxByteCount(e.CausationId.Length)];
        if (e.CausationId is null) raw.sqlite3_bind_null(_stmt, 9);
        else
        {
            causation = causation[..System.Text.Encoding.UTF8.GetBytes(e.CausationId, causation)];
            raw.sqlite3_bind_text(_stmt, 9, causation);
        }
        if (e.MetadataJson is null) raw.sqlite3_bind_null(_stmt, 10); else raw.sqlite3_bind_blob(_stmt, 10, e.MetadataJson);
        // A zero-length blob must still be a blob, not NULL: the column is NOT NULL.
        if (e.Payload.IsEmpty) raw.sqlite3_bind_zeroblob(_stmt, 11, 0); else raw.sqlite3_bind_blob(_stmt, 11, e.Payload.Span);
        // Stream ids are at most StreamId.MaxLength characters: encoded on the stack.
        Span<byte> stream = stackalloc byte[System.Text.Encoding.UTF8.GetMaxByteCount(streamId.Value.Length)];
        stream = stream[..System.Text.Encoding.UTF8.GetBytes(streamId.Value, stream)];
        raw.sqlite3_bind_int64(_stmt, 12, EventChecksum.Compute(
            position, stream, version, id, type, e.SchemaVersion, ticks, correlation, causation, e.CausationId is not null,
            e.MetadataJson, e.MetadataJson is not null, e.Payload.Span));
        var rc = raw.sqlite3_step(_stmt);
        raw.sqlite3_reset(_stmt);
        if (rc != raw.SQLITE_DONE) throw Error(rc);
    }

    private SqliteException Error(int rc) => new(raw.sqlite3_errmsg(_db).utf8_to_string(), rc, raw.sqlite3_extended_errcode(_db));

    public void Dispose() => _stmt.Dispose();
}
