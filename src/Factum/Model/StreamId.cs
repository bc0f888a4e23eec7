namespace Factum;

/// <summary>
/// Names one stream: the ordered history of one aggregate instance, such as <c>Order-42</c>.
/// </summary>
/// <remarks>
/// A stream id is non-empty, at most <see cref="MaxLength"/> characters and has no control characters.
/// The part before the first <c>-</c> is the stream's <see cref="Category"/> (<c>Order</c> for <c>Order-42</c>).
/// Names starting with <c>$</c> are reserved for Factum itself; <see cref="Parse"/> rejects them and
/// only <see cref="ForSystem"/> creates them.
/// </remarks>
public readonly record struct StreamId : IComparable<StreamId>
{
    /// <summary>The longest stream id accepted, in UTF-16 characters.</summary>
    public const int MaxLength = 1000;

    private readonly string? _value;

    private StreamId(string value) => _value = value;

    /// <summary>The stream id as text.</summary>
    public string Value => _value ?? throw new InvalidOperationException("This StreamId is default(StreamId) and names no stream.");

    /// <summary>The part before the first <c>-</c>, or the whole id when it has none.</summary>
    public string Category
    {
        get
        {
            var v = Value;
            var dash = v.IndexOf('-', StringComparison.Ordinal);
            return dash <= 0 ? v : v[..dash];
        }
    }

    /// <summary>True for names reserved to the system (starting with <c>$</c>).</summary>
    public bool IsSystem => Value.StartsWith('$');

    /// <summary>Validates <paramref name="value"/> as a user stream id.</summary>
    /// <exception cref="ArgumentException">The id is empty, too long, has control characters or starts with <c>$</c>.</exception>
    public static StreamId Parse(string value)
    {
        if (!TryValidate(value, allowSystem: false, out var error)) throw new ArgumentException(error, nameof(value));
        return new StreamId(value);
    }

    /// <summary>Validates without throwing.</summary>
    public static bool TryParse(string? value, out StreamId streamId, out string? error)
    {
        if (TryValidate(value, allowSystem: false, out error))
        {
            streamId = new StreamId(value!);
            return true;
        }
        streamId = default;
        return false;
    }

    /// <summary>Creates a reserved system stream id (it must start with <c>$</c>).</summary>
    public static StreamId ForSystem(string value)
    {
        if (!TryValidate(value, allowSystem: true, out var error)) throw new ArgumentException(error, nameof(value));
        if (!value.StartsWith('$')) throw new ArgumentException($"System stream ids start with '$'; '{value}' does not.", nameof(value));
        return new StreamId(value);
    }

    /// <summary>Wraps an id already validated when it was stored (the read path of backends).</summary>
    internal static StreamId FromTrusted(string value) => new(value);

    /// <summary>Builds <c>{category}-{id}</c>.</summary>
    public static StreamId For(string category, string id) => Parse($"{category}-{id}");

    private static bool TryValidate(string? value, bool allowSystem, out string? error)
    {
        if (string.IsNullOrEmpty(value)) { error = "A stream id must not be empty."; return false; }
        if (value.Length > MaxLength) { error = $"A stream id is at most {MaxLength} characters; this one has {value.Length}."; return false; }
        if (string.IsNullOrWhiteSpace(value)) { error = "A stream id must not be empty or only whitespace."; return false; }
        for (var i = 0; i < value.Length; i++)
        {
            if (char.IsControl(value[i]))
            {
                error = $"A stream id must not contain control characters; found U+{(int)value[i]:X4} at index {i}.";
                return false;
            }
        }
        if (!allowSystem && value[0] == '$')
        {
            error = $"Stream ids starting with '$' are reserved for the system: '{value}'.";
            return false;
        }
        error = null;
        return true;
    }

    /// <inheritdoc />
    public int CompareTo(StreamId other) => string.CompareOrdinal(_value, other._value);

    /// <inheritdoc />
    public override string ToString() => _value ?? "";

    /// <summary>Allows <c>StreamId id = "Order-1";</c>; validates like <see cref="Parse"/>.</summary>
    public static implicit operator StreamId(string value) => Parse(value);

    /// <summary>Ordinal comparison.</summary>
    public static bool operator <(StreamId left, StreamId right) => left.CompareTo(right) < 0;
    /// <summary>Ordinal comparison.</summary>
    public static bool operator >(StreamId left, StreamId right) => left.CompareTo(right) > 0;
    /// <summary>Ordinal comparison.</summary>
    public static bool operator <=(StreamId left, StreamId right) => left.CompareTo(right) <= 0;
    /// <summary>Ordinal comparison.</summary>
    public static bool operator >=(StreamId left, StreamId right) => left.CompareTo(right) >= 0;
}
