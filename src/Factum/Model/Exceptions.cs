namespace Factum;

/// <summary>The base of every error Factum raises on purpose.</summary>
public class FactumException : Exception
{
    /// <summary>Creates the exception.</summary>
    public FactumException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public FactumException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>
/// The append's expected version did not match the stream, or re-sent event ids only partly matched what is stored.
/// Nothing was written.
/// </summary>
public sealed class WrongExpectedVersionException : FactumException
{
    /// <summary>Creates the exception.</summary>
    public WrongExpectedVersionException(StreamId streamId, ExpectedVersion expected, StreamVersion? actual, string? reason = null)
        : base(BuildMessage(streamId, expected, actual, reason))
    {
        StreamId = streamId;
        Expected = expected;
        Actual = actual;
    }

    /// <summary>The stream.</summary>
    public StreamId StreamId { get; }

    /// <summary>What the writer expected.</summary>
    public ExpectedVersion Expected { get; }

    /// <summary>The stream's last version when the check ran, or null if the stream did not exist.</summary>
    public StreamVersion? Actual { get; }

    private static string BuildMessage(StreamId streamId, ExpectedVersion expected, StreamVersion? actual, string? reason)
    {
        var actualText = actual is { } a ? $"its last version is {a}" : "it does not exist";
        return $"Append to stream '{streamId}' expected version {expected}, but {actualText}{(reason is null ? "" : $": {reason}")}. Nothing was written.";
    }
}

/// <summary>The stream was hard-deleted (tombstoned): it can never be read or written again.</summary>
public sealed class StreamDeletedException : FactumException
{
    /// <summary>Creates the exception.</summary>
    public StreamDeletedException(StreamId streamId)
        : base($"Stream '{streamId}' was hard-deleted (tombstoned); it can never be read or written again.") => StreamId = streamId;

    /// <summary>The stream.</summary>
    public StreamId StreamId { get; }
}

/// <summary>The stream does not exist or was soft-deleted.</summary>
public sealed class StreamNotFoundException : FactumException
{
    /// <summary>Creates the exception.</summary>
    public StreamNotFoundException(StreamId streamId)
        : base($"Stream '{streamId}' was not found (it was never written or was soft-deleted).") => StreamId = streamId;

    /// <summary>The stream.</summary>
    public StreamId StreamId { get; }
}

/// <summary>An event is larger than the store's configured maximum; nothing was written.</summary>
public sealed class EventTooLargeException : FactumException
{
    /// <summary>Creates the exception.</summary>
    public EventTooLargeException(EventId eventId, string type, long size, long maxSize)
        : base($"Event {eventId} of type '{type}' is {size:N0} bytes (payload plus metadata); the maximum is {maxSize:N0} bytes. Nothing was written.")
    {
        EventId = eventId;
        Size = size;
        MaxSize = maxSize;
    }

    /// <summary>The event.</summary>
    public EventId EventId { get; }

    /// <summary>Its size in bytes.</summary>
    public long Size { get; }

    /// <summary>The configured maximum.</summary>
    public long MaxSize { get; }
}

/// <summary>The storage file is not a Factum store, is damaged, or was written by a newer version.</summary>
public sealed class StoreFormatException : FactumException
{
    /// <summary>Creates the exception.</summary>
    public StoreFormatException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public StoreFormatException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>
/// A stored event failed its integrity check (its checksum, or a field that cannot be decoded): the file was altered
/// after the event was written. The event is never returned altered; restore the file from a backup and run
/// <c>factum verify</c>.
/// </summary>
public sealed class EventCorruptedException : FactumException
{
    /// <summary>Creates the exception.</summary>
    public EventCorruptedException(GlobalPosition position, string reason)
        : base($"The event at position {position} is corrupted: {reason}. It was not returned; restore the store from a backup and run 'factum verify'.")
    {
        Position = position;
    }

    /// <summary>The global position of the damaged event.</summary>
    public GlobalPosition Position { get; }
}

/// <summary>The store was opened read-only; nothing was written.</summary>
public sealed class StoreReadOnlyException : FactumException
{
    /// <summary>Creates the exception.</summary>
    public StoreReadOnlyException(string path)
        : base($"The store '{path}' was opened read-only; nothing was written. Open it with write access to change it.") { }
}
