using System.Globalization;
using System.Net.Mime;
using System.Text.Json;
using CloudNative.CloudEvents;
using CloudNative.CloudEvents.SystemTextJson;

namespace Factum;

/// <summary>
/// Converts recorded events to and from CloudEvents 1.0 in structured mode (JSON), using the CNCF SDK.
/// Factum fields without a standard attribute travel as extension attributes: <c>correlationid</c>, <c>causationid</c>,
/// <c>schemaversion</c>, <c>streamversion</c>, <c>position</c> and <c>factummetadata</c> (the headers as a JSON string).
/// The stream id is the CloudEvent <c>subject</c>.
/// </summary>
public static class CloudEventConverter
{
    /// <summary>The <c>correlationid</c> extension.</summary>
    public static readonly CloudEventAttribute CorrelationId = CloudEventAttribute.CreateExtension("correlationid", CloudEventAttributeType.String);

    /// <summary>The <c>causationid</c> extension.</summary>
    public static readonly CloudEventAttribute CausationId = CloudEventAttribute.CreateExtension("causationid", CloudEventAttributeType.String);

    /// <summary>The <c>schemaversion</c> extension.</summary>
    public static readonly CloudEventAttribute SchemaVersion = CloudEventAttribute.CreateExtension("schemaversion", CloudEventAttributeType.Integer);

    /// <summary>The <c>streamversion</c> extension (a decimal string: CloudEvents integers are 32-bit).</summary>
    public static readonly CloudEventAttribute StreamVersion = CloudEventAttribute.CreateExtension("streamversion", CloudEventAttributeType.String);

    /// <summary>The <c>position</c> extension (a decimal string).</summary>
    public static readonly CloudEventAttribute Position = CloudEventAttribute.CreateExtension("position", CloudEventAttributeType.String);

    /// <summary>The <c>factummetadata</c> extension: the event's headers as a JSON object in a string.</summary>
    public static readonly CloudEventAttribute Metadata = CloudEventAttribute.CreateExtension("factummetadata", CloudEventAttributeType.String);

    private static readonly CloudEventAttribute[] Extensions = [CorrelationId, CausationId, SchemaVersion, StreamVersion, Position, Metadata];
    private static readonly JsonEventFormatter Formatter = new();

    /// <summary>Builds a CloudEvent from a recorded event. JSON payloads become JSON <c>data</c>; others are carried as bytes.</summary>
    public static CloudEvent ToCloudEvent(RecordedEvent e, Uri source, string contentType = "application/json")
    {
        ArgumentNullException.ThrowIfNull(e);
        var ce = new CloudEvent(CloudEventsSpecVersion.V1_0, Extensions)
        {
            Id = e.EventId.ToString(),
            Source = source,
            Type = e.Type,
            Time = e.Timestamp,
            Subject = e.StreamId.Value,
            DataContentType = contentType,
            Data = contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) && !e.Payload.IsEmpty
                ? JsonDocument.Parse(e.Payload).RootElement.Clone()
                : e.Payload.ToArray(),
        };
        ce[CorrelationId] = e.CorrelationId;
        if (e.CausationId is not null) ce[CausationId] = e.CausationId;
        ce[SchemaVersion] = e.SchemaVersion;
        ce[StreamVersion] = e.StreamVersion.Value.ToString(CultureInfo.InvariantCulture);
        ce[Position] = e.Position.Value.ToString(CultureInfo.InvariantCulture);
        if (e.Metadata.Count > 0) ce[Metadata] = System.Text.Encoding.UTF8.GetString(MetadataCodec.Encode(e.Metadata)!);
        return ce;
    }

    /// <summary>Encodes a recorded event as a structured-mode CloudEvent JSON document.</summary>
    public static byte[] ToStructuredJson(RecordedEvent e, Uri source) =>
        Formatter.EncodeStructuredModeMessage(ToCloudEvent(e, source), out _).ToArray();

    /// <summary>Parses a structured-mode CloudEvent JSON document (with Factum's extensions recognised).</summary>
    /// <exception cref="ArgumentException">The document is not a valid CloudEvent.</exception>
    public static CloudEvent ParseStructuredJson(ReadOnlyMemory<byte> json)
    {
        try
        {
            return Formatter.DecodeStructuredModeMessage(json, new ContentType("application/cloudevents+json"), Extensions);
        }
        catch (Exception ex) when (ex is ArgumentException or JsonException or InvalidOperationException)
        {
            throw new ArgumentException($"Not a valid structured-mode CloudEvent: {ex.Message}", nameof(json), ex);
        }
    }

    /// <summary>Rebuilds the recorded event a CloudEvent was made from (it must carry Factum's extensions).</summary>
    public static RecordedEvent ToRecordedEvent(CloudEvent ce)
    {
        ArgumentNullException.ThrowIfNull(ce);
        string Required(CloudEventAttribute a) => ce[a] as string ?? throw new ArgumentException($"The CloudEvent lacks the '{a.Name}' extension attribute.", nameof(ce));
        return new RecordedEvent
        {
            EventId = EventId.Parse(ce.Id ?? throw new ArgumentException("The CloudEvent has no id.", nameof(ce))),
            Type = ce.Type ?? throw new ArgumentException("The CloudEvent has no type.", nameof(ce)),
            SchemaVersion = ce[SchemaVersion] as int? ?? 1,
            Timestamp = ce.Time ?? throw new ArgumentException("The CloudEvent has no time.", nameof(ce)),
            StreamId = StreamId.Parse(ce.Subject ?? throw new ArgumentException("The CloudEvent has no subject (the stream id).", nameof(ce))),
            StreamVersion = long.Parse(Required(StreamVersion), CultureInfo.InvariantCulture),
            Position = long.Parse(Required(Position), CultureInfo.InvariantCulture),
            CorrelationId = Required(CorrelationId),
            CausationId = ce[CausationId] as string,
            Metadata = ce[Metadata] is string m ? MetadataCodec.Decode(System.Text.Encoding.UTF8.GetBytes(m)) : EmptyMetadata.Instance,
            Payload = DataBytes(ce),
        };
    }

    /// <summary>Turns a CloudEvent into an event to append (for events arriving from other systems).</summary>
    public static EventData ToEventData(CloudEvent ce)
    {
        ArgumentNullException.ThrowIfNull(ce);
        return new EventData(ce.Type ?? throw new ArgumentException("The CloudEvent has no type.", nameof(ce)), DataBytes(ce))
        {
            EventId = ce.Id is { } id && Guid.TryParse(id, out var g) ? new EventId(g) : EventId.New(),
            SchemaVersion = ce[SchemaVersion] as int? ?? 1,
            CorrelationId = ce[CorrelationId] as string,
            CausationId = ce[CausationId] as string,
            Metadata = ce[Metadata] is string m ? MetadataCodec.Decode(System.Text.Encoding.UTF8.GetBytes(m)) : EmptyMetadata.Instance,
        };
    }

    private static byte[] DataBytes(CloudEvent ce) => ce.Data switch
    {
        null => [],
        JsonElement el => JsonSerializer.SerializeToUtf8Bytes(el),
        byte[] b => b,
        string s => System.Text.Encoding.UTF8.GetBytes(s),
        var other => throw new ArgumentException($"Unsupported CloudEvent data of type {other.GetType().Name}.", nameof(ce)),
    };
}
