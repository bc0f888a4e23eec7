namespace Factum;

/// <summary>
/// The position of an event in the store's global log (<c>$all</c>). Positions strictly increase in commit order,
/// the first event is at 1, and a reader that has seen position P has seen every committed event below P.
/// </summary>
public readonly record struct GlobalPosition : IComparable<GlobalPosition>
{
    /// <summary>Before the first event: reading from here reads everything.</summary>
    public static readonly GlobalPosition Start = new(0);

    /// <summary>After every event: reading backwards from here starts at the newest event.</summary>
    public static readonly GlobalPosition End = new(long.MaxValue);

    /// <summary>Creates a position; it must not be negative.</summary>
    public GlobalPosition(long value)
    {
        if (value < 0) throw new ArgumentOutOfRangeException(nameof(value), value, "A global position is 0 or more.");
        Value = value;
    }

    /// <summary>The position as a number.</summary>
    public long Value { get; }

    /// <inheritdoc />
    public int CompareTo(GlobalPosition other) => Value.CompareTo(other.Value);

    /// <inheritdoc />
    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Converts a number.</summary>
    public static implicit operator GlobalPosition(long value) => new(value);

    /// <summary>Compares positions.</summary>
    public static bool operator <(GlobalPosition left, GlobalPosition right) => left.Value < right.Value;
    /// <summary>Compares positions.</summary>
    public static bool operator >(GlobalPosition left, GlobalPosition right) => left.Value > right.Value;
    /// <summary>Compares positions.</summary>
    public static bool operator <=(GlobalPosition left, GlobalPosition right) => left.Value <= right.Value;
    /// <summary>Compares positions.</summary>
    public static bool operator >=(GlobalPosition left, GlobalPosition right) => left.Value >= right.Value;
}
