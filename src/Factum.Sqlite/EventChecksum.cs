using System.Buffers.Binary;
using System.IO.Hashing;

namespace Factum.Sqlite;

/// <summary>
/// The checksum stored with every event (schema v7): XXH3 (64-bit) over the row's stored bytes — position, stream key,
/// version, event id, type, schema version, timestamp, correlation and causation ids, metadata and payload — each
/// length-prefixed so that bytes cannot shift from one field to the next unnoticed. Computed in the write path from the
/// exact bytes bound to the INSERT and checked on every read and by <c>verify</c>: a bit flip in the file (bad disk,
/// bad RAM, a tool that edited the file) becomes an error naming the position instead of altered data.
/// </summary>
/// <remarks>
/// XXH3 rather than CRC32C: System.IO.Hashing (already a dependency) ships it vectorized, it is faster than any CRC the
/// BCL offers on short and long inputs alike, and 64 bits make an undetected random corruption practically impossible.
/// Rows written before v7 have no checksum (NULL): they are read as before and counted by <c>verify</c>.
/// </remarks>
internal sealed class EventChecksum
{
    private readonly XxHash3 _hash = new();

    public long Compute(
        long position, long streamKey, long version, ReadOnlySpan<byte> eventId, ReadOnlySpan<byte> type, int schemaVersion, long ticks,
        ReadOnlySpan<byte> correlation, ReadOnlySpan<byte> causation, bool hasCausation, ReadOnlySpan<byte> metadata, bool hasMetadata,
        ReadOnlySpan<byte> payload)
    {
        Span<byte> header = stackalloc byte[8 * 4 + 4 + 4 * 6];
        BinaryPrimitives.WriteInt64LittleEndian(header, position);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], streamKey);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], version);
        BinaryPrimitives.WriteInt64LittleEndian(header[24..], ticks);
        BinaryPrimitives.WriteInt32LittleEndian(header[32..], schemaVersion);
        BinaryPrimitives.WriteInt32LittleEndian(header[36..], eventId.Length);
        BinaryPrimitives.WriteInt32LittleEndian(header[40..], type.Length);
        BinaryPrimitives.WriteInt32LittleEndian(header[44..], correlation.Length);
        BinaryPrimitives.WriteInt32LittleEndian(header[48..], hasCausation ? causation.Length : -1);
        BinaryPrimitives.WriteInt32LittleEndian(header[52..], hasMetadata ? metadata.Length : -1);
        BinaryPrimitives.WriteInt32LittleEndian(header[56..], payload.Length);
        _hash.Reset();
        _hash.Append(header);
        _hash.Append(eventId);
        _hash.Append(type);
        _hash.Append(correlation);
        _hash.Append(causation);
        _hash.Append(metadata);
        _hash.Append(payload);
        return unchecked((long)_hash.GetCurrentHashAsUInt64());
    }
}
