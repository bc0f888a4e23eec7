namespace Factum;

/// <summary>How far an event travels.</summary>
public enum EventClassification
{
    /// <summary>Private to one bounded context; its schema may change with the aggregate.</summary>
    Domain,

    /// <summary>Published across bounded contexts; a public contract with strict compatibility.</summary>
    Integration,

    /// <summary>Emitted by the platform itself.</summary>
    System,
}

/// <summary>What a registered message type is: a fact, an order or a question.</summary>
public enum MessageKind
{
    /// <summary>A fact that happened (past tense: <c>OrderPlaced</c>); published to every subscriber.</summary>
    Event,

    /// <summary>An order to do something (imperative: <c>CapturePayment</c>); sent to one queue, handled once.</summary>
    Command,

    /// <summary>A question (<c>GetStockLevel</c>); sent as a request and answered with a reply.</summary>
    Query,
}

/// <summary>Registers a CLR type as an event type (picked up by <see cref="EventTypeRegistry.RegisterAssembly"/> and <see cref="EventTypeRegistry.Register{T}"/>).</summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false)]
public sealed class EventTypeAttribute : Attribute
{
    /// <summary>Names the event type.</summary>
    public EventTypeAttribute(string name) => Name = name;

    /// <summary>The stored type name, such as <c>OrderPlaced</c>.</summary>
    public string Name { get; }

    /// <summary>The schema version this CLR type represents (default 1).</summary>
    public int Version { get; set; } = 1;

    /// <summary>Domain (default), integration or system.</summary>
    public EventClassification Classification { get; set; } = EventClassification.Domain;

    /// <summary>The owning team or service.</summary>
    public string? Owner { get; set; }

    /// <summary>What the fact means.</summary>
    public string? Description { get; set; }

    /// <summary>Opt out of the past-tense naming check for this type (for legacy names you cannot change).</summary>
    public bool AllowNonConventionalName { get; set; }

    /// <summary>Event (default), command or query.</summary>
    public MessageKind Kind { get; set; }
}

/// <summary>A registered event type.</summary>
/// <param name="Name">The stored type name.</param>
/// <param name="Version">The schema version the CLR type represents.</param>
/// <param name="ClrType">The CLR type.</param>
/// <param name="Classification">Domain, integration or system.</param>
/// <param name="Owner">The owning team or service.</param>
/// <param name="Description">What the fact means.</param>
public sealed record EventTypeInfo(string Name, int Version, Type ClrType, EventClassification Classification, string? Owner, string? Description)
{
    /// <summary>Event, command or query.</summary>
    public MessageKind Kind { get; init; }
}
