using System.Buffers.Binary;

namespace Factum;

/// <summary>
/// Fast UUID version 7 (RFC 9562): a 48-bit Unix millisecond timestamp, then 74 random bits. The random bits come from
/// the runtime's per-thread xoshiro generator (seeded from the OS), not from a system call per id, which makes ids about
/// ten times cheaper than <see cref="Guid.CreateVersion7()"/>; they are unique, not secret.
/// </summary>
internal static class UuidV7
{
    public static Guid New() => New(DateTimeOffset.UtcNow);

    /// <summary>A new id stamped with <paramref name="now"/> (callers that read the clock anyway save a second read).</summary>
    public static Guid New(DateTimeOffset now)
    {
        Span<byte> b = stackalloc byte[16];
        var ms = (ulong)now.ToUnixTimeMilliseconds();
        BinaryPrimitives.WriteUInt64BigEndian(b, ms << 16);
        BinaryPrimitives.WriteUInt64BigEndian(b[8..], (ulong)Random.Shared.NextInt64());
        var rand = (ushort)Random.Shared.Next(0, 1 << 12);
        b[6] = (byte)(0x70 | (rand >> 8)); // version 7 + 4 random bits
        b[7] = (byte)rand;
        b[8] = (byte)(0x80 | (b[8] & 0x3F)); // RFC 9562 variant
        return new Guid(b, bigEndian: true);
    }
}
