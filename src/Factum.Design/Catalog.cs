using System.Text.Json.Nodes;

namespace Factum.Design;

/// <summary>Where an entity was declared, so findings and errors can point at it.</summary>
/// <param name="File">The file (or <c>code:Assembly</c>, <c>store:path</c>).</param>
/// <param name="Line">1-based line, or 0 when unknown.</param>
public sealed record SourceLocation(string File, int Line)
{
    /// <inheritdoc />
    public override string ToString() => Line > 0 ? $"{File}:{Line}" : File;
}

/// <summary>Event, command or query (as in the code-first registry).</summary>
public enum CatalogMessageKind
{
    /// <summary>A fact, published.</summary>
    Event,

    /// <summary>An order to one handler.</summary>
    Command,

    /// <summary>A question answered by request-reply.</summary>
    Query,
}

/// <summary>What order consumers need.</summary>
public enum OrderingRequirement
{
    /// <summary>Any order.</summary>
    None,

    /// <summary>In order per partition key (per aggregate).</summary>
    PerKey,

    /// <summary>One total order.</summary>
    Total,
}

/// <summary>Schema compatibility modes (as in schema registries).</summary>
public enum CompatibilityMode
{
    /// <summary>New readers read old data (upgrade consumers first). The default.</summary>
    Backward,

    /// <summary>Backward against every earlier version.</summary>
    BackwardTransitive,

    /// <summary>Old readers read new data (upgrade producers first).</summary>
    Forward,

    /// <summary>Forward against every earlier version.</summary>
    ForwardTransitive,

    /// <summary>Both directions.</summary>
    Full,

    /// <summary>Both directions against every earlier version.</summary>
    FullTransitive,

    /// <summary>No check.</summary>
    None,
}

/// <summary>One version of a message's schema.</summary>
/// <param name="Version">1, 2, …</param>
/// <param name="Schema">The JSON Schema of the payload, if known.</param>
/// <param name="Changelog">What changed and why.</param>
/// <param name="Source">Where this version was declared (so two files that define it differently can both be named).</param>
public sealed record MessageVersion(int Version, JsonObject? Schema, string? Changelog, SourceLocation? Source = null);

/// <summary>An event, command or query in the catalog.</summary>
public sealed record CatalogMessage
{
    /// <summary>The type name, such as <c>OrderPlaced</c>.</summary>
    public required string Name { get; init; }

    /// <summary>Event, command or query.</summary>
    public CatalogMessageKind Kind { get; init; }

    /// <summary>domain, integration or system (events).</summary>
    public string? Classification { get; init; }

    /// <summary>Owning teams (exactly one is expected).</summary>
    public IReadOnlyList<string> Owners { get; init; } = [];

    /// <summary>What it means.</summary>
    public string? Description { get; init; }

    /// <summary>Producing services declared on the message (services' publishes/sends are added when the catalog is built).</summary>
    public IReadOnlyList<string> Producers { get; init; } = [];

    /// <summary>Consuming services declared on the message.</summary>
    public IReadOnlyList<string> Consumers { get; init; } = [];

    /// <summary>The payload property that orders it (the aggregate id).</summary>
    public string? PartitionKey { get; init; }

    /// <summary>
    /// For a request (or a request-reply pair declared with <see cref="Reply"/>): the payload property that ties a reply
    /// to its request; null means the envelope's correlation id.
    /// </summary>
    public string? CorrelationKey { get; init; }

    /// <summary>The message that answers this request (a request-reply pair), if declared.</summary>
    public string? Reply { get; init; }

    /// <summary>The order consumers need.</summary>
    public OrderingRequirement Ordering { get; init; }

    /// <summary>at-most-once, at-least-once or exactly-once.</summary>
    public string? Delivery { get; init; }

    /// <summary>durable or transient.</summary>
    public string? Durability { get; init; }

    /// <summary>Consumers need to replay history.</summary>
    public bool Replay { get; init; }

    /// <summary>Expected messages per second at peak.</summary>
    public double? Rate { get; init; }

    /// <summary>How long it must be kept.</summary>
    public TimeSpan? Retention { get; init; }

    /// <summary>The longest acceptable time from publish to handling.</summary>
    public TimeSpan? Latency { get; init; }

    /// <summary>How versions must stay compatible (default BACKWARD).</summary>
    public CompatibilityMode Compatibility { get; init; } = CompatibilityMode.Backward;

    /// <summary>Envelope fields the transport carries for it; null means Factum's envelope (all standard metadata).</summary>
    public IReadOnlyList<string>? Envelope { get; init; }

    /// <summary>Versions, oldest first.</summary>
    public IReadOnlyList<MessageVersion> Versions { get; init; } = [];

    /// <summary>Where it was declared.</summary>
    public SourceLocation? Source { get; init; }

    /// <summary>The latest version, if any.</summary>
    public MessageVersion? Latest => Versions.Count == 0 ? null : Versions[^1];
}

/// <summary>A service: what it publishes, sends, consumes and requests.</summary>
public sealed record CatalogService
{
    /// <summary>Its id.</summary>
    public required string Id { get; init; }

    /// <summary>Its bounded context.</summary>
    public string? Domain { get; init; }

    /// <summary>The owning team.</summary>
    public string? Owner { get; init; }

    /// <summary>What it does.</summary>
    public string? Description { get; init; }

    /// <summary>Events it publishes.</summary>
    public IReadOnlyList<string> Publishes { get; init; } = [];

    /// <summary>Commands it sends.</summary>
    public IReadOnlyList<string> Sends { get; init; } = [];

    /// <summary>Messages it consumes (events it subscribes to, commands and queries it handles).</summary>
    public IReadOnlyList<string> Consumes { get; init; } = [];

    /// <summary>Queries or commands it sends as requests, expecting a reply.</summary>
    public IReadOnlyList<string> Requests { get; init; } = [];

    /// <summary>An external system outside the catalog (a payment provider, a partner): drawn as external, never a consumer group of ours.</summary>
    public bool External { get; init; }

    /// <summary>Stream categories it appends to (the part of a stream id before the first '-'), so a store's streams map to it.</summary>
    public IReadOnlyList<string> Streams { get; init; } = [];

    /// <summary>How many competing consumer instances it runs per subscription (its consumer group's size); null means one.</summary>
    public int? Instances { get; init; }

    /// <summary>Competing consumer instances for particular messages, overriding <see cref="Instances"/>.</summary>
    public IReadOnlyDictionary<string, int> InstancesPerMessage { get; init; } = new Dictionary<string, int>();

    /// <summary>Message → competing consumers, for every message it consumes that has a declared count.</summary>
    public IReadOnlyDictionary<string, int> Consumers =>
        Consumes.Select(m => (m, n: InstancesPerMessage.TryGetValue(m, out var x) ? x : Instances)).Where(t => t.n is not null).ToDictionary(t => t.m, t => t.n!.Value, StringComparer.Ordinal);

    /// <summary>Where it was declared.</summary>
    public SourceLocation? Source { get; init; }
}

/// <summary>A topic or queue on a broker.</summary>
public sealed record CatalogChannel
{
    /// <summary>Its id (the address).</summary>
    public required string Id { get; init; }

    /// <summary>kafka, rabbitmq, nats, sqs, sns, pulsar, factum…</summary>
    public string? Broker { get; init; }

    /// <summary>topic, queue, stream or request-reply.</summary>
    public string Kind { get; init; } = "topic";

    /// <summary>Messages it carries.</summary>
    public IReadOnlyList<string> Messages { get; init; } = [];

    /// <summary>Several consumers compete for its messages.</summary>
    public bool CompetingConsumers { get; init; }

    /// <summary>Where it was declared.</summary>
    public SourceLocation? Source { get; init; }
}

/// <summary>A bounded context.</summary>
/// <param name="Id">Its id.</param>
/// <param name="Name">Its name.</param>
/// <param name="Description">What it covers.</param>
/// <param name="Source">Where it was declared.</param>
public sealed record CatalogDomain(string Id, string? Name, string? Description, SourceLocation? Source);

/// <summary>A team.</summary>
/// <param name="Id">Its id.</param>
/// <param name="Name">Its name.</param>
/// <param name="Source">Where it was declared.</param>
public sealed record CatalogTeam(string Id, string? Name, SourceLocation? Source);

/// <summary>How lint is configured: disabled rules (each with a reason), severity overrides and thresholds.</summary>
public sealed record LintSettings
{
    /// <summary>Rule id → why it is off.</summary>
    public IReadOnlyDictionary<string, string> Disabled { get; init; } = new Dictionary<string, string>();

    /// <summary>Rule id → severity.</summary>
    public IReadOnlyDictionary<string, Severity> Severities { get; init; } = new Dictionary<string, Severity>();

    /// <summary>Top-level payload properties above which an event is fat (default 25).</summary>
    public int MaxFields { get; init; } = 25;

    /// <summary>Object nesting depth above which an event is fat (default 4).</summary>
    public int MaxDepth { get; init; } = 4;

    /// <summary>Example payload size above which an event is fat (default 64 KiB).</summary>
    public int MaxPayloadBytes { get; init; } = 65_536;
}

/// <summary>The merged catalog: every source's entities, with producers and consumers derived from the services.</summary>
public sealed record EventCatalogModel
{
    /// <summary>Domains.</summary>
    public IReadOnlyList<CatalogDomain> Domains { get; init; } = [];

    /// <summary>Teams.</summary>
    public IReadOnlyList<CatalogTeam> Teams { get; init; } = [];

    /// <summary>Services.</summary>
    public IReadOnlyList<CatalogService> Services { get; init; } = [];

    /// <summary>Events, commands and queries.</summary>
    public IReadOnlyList<CatalogMessage> Messages { get; init; } = [];

    /// <summary>Channels.</summary>
    public IReadOnlyList<CatalogChannel> Channels { get; init; } = [];

    /// <summary>Lint configuration.</summary>
    public LintSettings Lint { get; init; } = new();

    /// <summary>The system needs tenant isolation on the broker.</summary>
    public bool MultiTenant { get; init; }

    /// <summary>The system runs in several regions and its messages must be replicated between them (<c>system.geoReplication</c>).</summary>
    public bool GeoReplication { get; init; }

    /// <summary>The team wants a managed service, with no broker of its own to run (<c>system.managed</c>).</summary>
    public bool Managed { get; init; }

    /// <summary>
    /// Built from what a store holds (discovery), not declared: it sees only events, its history may lag the catalog's
    /// newest version, and it sees a consumer only when that consumer appends in response. <see cref="CatalogDiff"/>
    /// compares it accordingly.
    /// </summary>
    public bool IsObservation { get; init; }

    /// <summary>A message by name, or null.</summary>
    public CatalogMessage? Message(string name) => Messages.FirstOrDefault(m => m.Name == name);

    /// <summary>Services that publish or send <paramref name="message"/> (declared on the service or on the message).</summary>
    public IReadOnlyList<string> ProducersOf(CatalogMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return Services.Where(s => s.Publishes.Contains(message.Name) || s.Sends.Contains(message.Name) || s.Requests.Contains(message.Name)).Select(s => s.Id)
            .Concat(message.Producers).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>Services that consume <paramref name="message"/>.</summary>
    public IReadOnlyList<string> ConsumersOf(CatalogMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return Services.Where(s => s.Consumes.Contains(message.Name)).Select(s => s.Id)
            .Concat(message.Consumers).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>A service by id, or null.</summary>
    public CatalogService? Service(string id) => Services.FirstOrDefault(s => s.Id == id);

    /// <summary>How many competing consumers <paramref name="service"/> runs for <paramref name="message"/>: its declared count, or null when undeclared (one).</summary>
    public int? ConsumerCount(string service, string message) =>
        Service(service) is { } s ? (s.InstancesPerMessage.TryGetValue(message, out var n) ? n : s.Instances) : null;
}
