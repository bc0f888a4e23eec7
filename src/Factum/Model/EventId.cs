namespace Factum;

/// <summary>
/// Identifies one event. New ids are UUID v7 (time-ordered), which keeps index inserts local.
/// The id is what makes appends idempotent: re-sending the same ids does not write twice.
/// </summary>
public readonly record struct EventId
{
    /// <summary>Wraps an existing id; it must not be <see cref="Guid.Empty"/>.</summary>
    public EventId(Guid value)
    {
        if (value == Guid.Empty) throw new ArgumentException("An event id must not be the empty GUID.", nameof(value));
        Value = value;
    }

    /// <summary>The id as a GUID.</summary>
    public Guid Value { get; }

    /// <summary>A new time-ordered (UUID v7) id.</summary>
    public static EventId New() => new(UuidV7.New());

    /// <summary>Parses a GUID in any standard format.</summary>
    /// <exception cref="ArgumentException">The text is not a GUID.</exception>
    public static EventId Parse(string value)
    {
        if (!Guid.TryParse(value, out var g)) throw new ArgumentException($"'{value}' is not a valid event id (a UUID such as 0196f7a2-5c1e-7d3a-9b8e-1f2a3b4c5d6e).", nameof(value));
        return new EventId(g);
    }

    /// <inheritdoc />
    public override string ToString() => Value.ToString("D");
}
