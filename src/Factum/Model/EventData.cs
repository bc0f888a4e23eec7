namespace Factum;

/// <summary>
/// An event to append: the fact as the writer states it, before the store gives it a version and position.
/// </summary>
/// <remarks>
/// The payload stays bytes (JSON by default) so that other serializers can plug in; use
/// <c>EventTypeRegistry.Encode</c> to build one from a typed event.
/// When <see cref="CorrelationId"/> is null the store fills it from <see cref="EventContext"/> or, failing that,
/// with the id of the first event of the append; <see cref="CausationId"/> then stays empty.
/// </remarks>
public sealed record EventData
{
    /// <summary>Creates an event to append.</summary>
    public EventData(string type, ReadOnlyMemory<byte> payload)
    {
        EventTypeName.Validate(type);
        Type = type;
        Payload = payload;
    }

    /// <summary>The event's id; a new UUID v7 unless given. Re-sending the same id makes the append idempotent.</summary>
    public EventId EventId { get; init; } = EventId.New();

    /// <summary>The event type name, such as <c>OrderPlaced</c>.</summary>
    public string Type { get; }

    /// <summary>The schema version of the payload; 1 unless given.</summary>
    public int SchemaVersion
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "A schema version is 1 or more.");
    } = 1;

    /// <summary>The payload bytes (UTF-8 JSON unless a custom serializer is used).</summary>
    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary>Free-form string headers.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = EmptyMetadata.Instance;

    /// <summary>The business process this event belongs to; null lets the store choose (see remarks). Never empty.</summary>
    /// <exception cref="ArgumentException">The id is empty, longer than <see cref="MaxIdLength"/> or not well-formed Unicode.</exception>
    public string? CorrelationId
    {
        get;
        init => field = ValidateId(value, "correlation id");
    }

    /// <summary>The id of the message that caused this event; null lets the store choose (see remarks). Never empty.</summary>
    /// <exception cref="ArgumentException">The id is empty, longer than <see cref="MaxIdLength"/> or not well-formed Unicode.</exception>
    public string? CausationId
    {
        get;
        init => field = ValidateId(value, "causation id");
    }

    /// <summary>The longest correlation or causation id accepted.</summary>
    public const int MaxIdLength = 256;

    /// <summary>
    /// Checks a correlation or causation id: null (let the store choose) or 1 to <see cref="MaxIdLength"/> characters of
    /// well-formed text. An empty id would make a process untraceable, so it is refused rather than stored.
    /// </summary>
    /// <exception cref="ArgumentException">The id is empty, too long or not well-formed Unicode.</exception>
    public static string? ValidateId(string? id, string what)
    {
        if (id is null) return null;
        if (id.Length == 0) throw new ArgumentException($"The {what} must not be empty; leave it out to let the store choose one.");
        if (id.Length > MaxIdLength) throw new ArgumentException($"The {what} is {id.Length} characters; the maximum is {MaxIdLength}.");
        JsonText.ValidateText(id, $"The {what}");
        foreach (var c in id)
        {
            if (char.IsControl(c)) throw new ArgumentException($"The {what} '{JsonText.Printable(id)}' contains a control character.");
        }
        return id;
    }

    /// <summary>Creates an event whose payload is the UTF-8 encoding of <paramref name="json"/>.</summary>
    public static EventData FromJson(string type, string json) => new(type, System.Text.Encoding.UTF8.GetBytes(json));
}

internal static class EmptyMetadata
{
    public static readonly IReadOnlyDictionary<string, string> Instance = new Dictionary<string, string>(0);
}
