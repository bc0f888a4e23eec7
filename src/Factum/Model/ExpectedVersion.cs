namespace Factum;

/// <summary>
/// What the writer believes about a stream when it appends: the optimistic concurrency check.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><see cref="Any"/>: no check.</item>
/// <item><see cref="NoStream"/>: the stream must not exist (never written, or soft-deleted).</item>
/// <item><see cref="StreamExists"/>: the stream must exist and not be deleted.</item>
/// <item><see cref="Exactly"/>: the stream's last version must be exactly this.</item>
/// </list>
/// </remarks>
public readonly record struct ExpectedVersion
{
    private const long AnyValue = -2;
    private const long NoStreamValue = -1;
    private const long StreamExistsValue = -4;

    private ExpectedVersion(long value) => Value = value;

    /// <summary>The raw value: -2 any, -1 no stream, -4 stream exists, otherwise the exact version.</summary>
    public long Value { get; }

    /// <summary>No concurrency check.</summary>
    public static ExpectedVersion Any { get; } = new(AnyValue);

    /// <summary>The stream must not exist.</summary>
    public static ExpectedVersion NoStream { get; } = new(NoStreamValue);

    /// <summary>The stream must exist.</summary>
    public static ExpectedVersion StreamExists { get; } = new(StreamExistsValue);

    /// <summary>The stream's last event must be at exactly <paramref name="version"/>.</summary>
    public static ExpectedVersion Exactly(StreamVersion version) => new(version.Value);

    /// <summary>True for <see cref="Exactly"/>.</summary>
    public bool IsExact => Value >= 0;

    /// <summary>True for <see cref="Any"/>; note that <c>default(ExpectedVersion)</c> is version 0, not Any.</summary>
    public bool IsAny => Value == AnyValue;

    /// <summary>True for <see cref="NoStream"/>.</summary>
    public bool IsNoStream => Value == NoStreamValue;

    /// <summary>True for <see cref="StreamExists"/>.</summary>
    public bool IsStreamExists => Value == StreamExistsValue;

    /// <summary>Parses <c>any</c>, <c>no-stream</c>, <c>exists</c> or a version number.</summary>
    /// <exception cref="ArgumentException">The text is none of these.</exception>
    public static ExpectedVersion Parse(string text)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "any": return Any;
            case "no-stream" or "nostream" or "none": return NoStream;
            case "exists" or "stream-exists": return StreamExists;
        }
        if (long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var v))
            return Exactly(v);
        throw new ArgumentException($"'{text}' is not an expected version: use any, no-stream, exists or a version number (0 or more).", nameof(text));
    }

    /// <summary>Converts an exact version.</summary>
    public static implicit operator ExpectedVersion(StreamVersion version) => Exactly(version);

    /// <inheritdoc />
    public override string ToString() => Value switch
    {
        AnyValue => "any",
        NoStreamValue => "no-stream",
        StreamExistsValue => "exists",
        _ => Value.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
