using System.Text;

namespace Factum.Messaging;

/// <summary>
/// Maps a partition key to a partition. Every transport uses this function, so a key lands in the same partition on
/// every backend and across restarts (FNV-1a over the key's UTF-8 bytes, modulo the partition count). Messages without a
/// key go to partition 0.
/// </summary>
public static class KeyPartitioner
{
    /// <summary>The partition of <paramref name="key"/> among <paramref name="partitions"/>.</summary>
    public static int For(string? key, int partitions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        if (key is null || partitions == 1) return 0;
        Span<byte> buffer = stackalloc byte[256];
        var bytes = Encoding.UTF8.GetMaxByteCount(key.Length) <= buffer.Length ? buffer[..Encoding.UTF8.GetBytes(key, buffer)] : Encoding.UTF8.GetBytes(key);
        var hash = 2166136261u;
        foreach (var b in bytes) hash = (hash ^ b) * 16777619u;
        return (int)(hash % (uint)partitions);
    }
}
