namespace Factum;

/// <summary>
/// An event as the store recorded it: immutable, versioned in its stream and positioned in the global log.
/// </summary>
public sealed record RecordedEvent
{
    /// <summary>The event's id.</summary>
    public required EventId EventId { get; init; }

    /// <summary>The event type name, such as <c>OrderPlaced</c>.</summary>
    public required string Type { get; init; }

    /// <summary>The schema version the payload was written with.</summary>
    public required int SchemaVersion { get; init; }

    /// <summary>When the store recorded the event (UTC).</summary>
    public required DateTimeOffset Timestamp { get; init; }

    /// <summary>The stream (aggregate) the event belongs to.</summary>
    public required StreamId StreamId { get; init; }

    /// <summary>The event's version in its stream.</summary>
    public required StreamVersion StreamVersion { get; init; }

    /// <summary>The event's position in the global log.</summary>
    public required GlobalPosition Position { get; init; }

    /// <summary>The business process the event belongs to. Never empty: it defaults to the first event id of the append.</summary>
    public required string CorrelationId { get; init; }

    /// <summary>The id of the message that caused this event, or null for an event that started a process.</summary>
    public string? CausationId { get; init; }

    /// <summary>Free-form string headers.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = EmptyMetadata.Instance;

    /// <summary>The payload bytes.</summary>
    public required ReadOnlyMemory<byte> Payload { get; init; }

    /// <summary>The payload as UTF-8 text.</summary>
    public string PayloadAsString() => System.Text.Encoding.UTF8.GetString(Payload.Span);
}
