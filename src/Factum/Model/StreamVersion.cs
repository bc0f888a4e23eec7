namespace Factum;

/// <summary>The position of an event inside its stream: 0 for the first event, then contiguous.</summary>
public readonly record struct StreamVersion : IComparable<StreamVersion>
{
    /// <summary>The first event of every stream.</summary>
    public static readonly StreamVersion Start = new(0);

    /// <summary>Creates a version; it must not be negative.</summary>
    public StreamVersion(long value)
    {
        if (value < 0) throw new ArgumentOutOfRangeException(nameof(value), value, "A stream version is 0 or more.");
        Value = value;
    }

    /// <summary>The version as a number.</summary>
    public long Value { get; }

    /// <summary>The version after this one.</summary>
    public StreamVersion Next() => new(Value + 1);

    /// <inheritdoc />
    public int CompareTo(StreamVersion other) => Value.CompareTo(other.Value);

    /// <inheritdoc />
    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Converts a number.</summary>
    public static implicit operator StreamVersion(long value) => new(value);

    /// <summary>Compares versions.</summary>
    public static bool operator <(StreamVersion left, StreamVersion right) => left.Value < right.Value;
    /// <summary>Compares versions.</summary>
    public static bool operator >(StreamVersion left, StreamVersion right) => left.Value > right.Value;
    /// <summary>Compares versions.</summary>
    public static bool operator <=(StreamVersion left, StreamVersion right) => left.Value <= right.Value;
    /// <summary>Compares versions.</summary>
    public static bool operator >=(StreamVersion left, StreamVersion right) => left.Value >= right.Value;
}
