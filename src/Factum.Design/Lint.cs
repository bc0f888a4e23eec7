using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Factum.Design;

/// <summary>How serious a finding is.</summary>
public enum Severity
{
    /// <summary>Informational.</summary>
    Note,

    /// <summary>Should be fixed.</summary>
    Warning,

    /// <summary>Must be fixed (lint exits non-zero).</summary>
    Error,
}

/// <summary>One lint finding: the entity, the rule, why it matters and how to fix it.</summary>
/// <param name="Rule">The stable rule id.</param>
/// <param name="Severity">Its severity (after configuration).</param>
/// <param name="Entity">The entity, such as <c>event OrderPlaced</c> or <c>service billing</c>.</param>
/// <param name="Message">What is wrong.</param>
/// <param name="Why">Why it matters.</param>
/// <param name="Fix">How to fix it.</param>
/// <param name="Source">Where the entity was declared.</param>
public sealed record Finding(string Rule, Severity Severity, string Entity, string Message, string Why, string Fix, SourceLocation? Source);

/// <summary>A lint rule's description.</summary>
/// <param name="Id">Stable id.</param>
/// <param name="Severity">Default severity.</param>
/// <param name="Title">One line.</param>
/// <param name="Why">Why it matters.</param>
/// <param name="Fix">How to fix findings.</param>
public sealed record LintRule(string Id, Severity Severity, string Title, string Why, string Fix);

/// <summary>The lint rules for event-driven anti-patterns, and the linter.</summary>
public static partial class LintRules
{
    /// <summary>Every rule.</summary>
    public static IReadOnlyList<LintRule> All { get; } =
    [
        new("naming/event-past-tense", Severity.Error, "Event names are past tense",
            "An event is a fact that already happened; a name like PlaceOrder or OrderCreate reads as an order to do something, and consumers start treating it as a command.",
            "Rename it to the fact, e.g. OrderPlaced (old versions keep their name through an upcaster or a new event)."),
        new("naming/event-specific", Severity.Warning, "Event names are domain specific",
            "Generic names (OrderEvent, DataChanged, EntityUpdated) hide what happened, so every consumer must inspect the payload to decide, and the event ends up carrying state instead of meaning.",
            "Name the business fact: OrderShipped, PriceLowered, AddressCorrected."),
        new("naming/command-imperative", Severity.Warning, "Command names are imperative",
            "A command asks one handler to do something and may be refused; a past-tense or noun name makes it look like a fact others may rely on.",
            "Name the action: PlaceOrder, CapturePayment."),
        new("naming/query-asks", Severity.Warning, "Query names ask",
            "A query returns an answer and changes nothing; a name that does not ask (Get…, Find…, Check…) hides that it is side-effect free.",
            "Start it with Get, Find, List, Check, Count, Is or Has."),
        new("metadata/envelope", Severity.Error, "Events carry the standard metadata",
            "Without event id, type, timestamp, aggregate id, correlation id and causation id, consumers cannot deduplicate, order, trace or audit.",
            "Carry them in the envelope (Factum's does) or add them to the schema; list a custom envelope's fields under 'envelope'."),
        new("versioning/missing-version", Severity.Error, "Every message has a versioned schema",
            "Without a schema version consumers cannot tell old payloads from new ones, so every change becomes a breaking change.",
            "Add versions: [{version: 1, schema: …}], numbered 1, 2, … without gaps."),
        new("versioning/changed-without-new-version", Severity.Error, "A changed schema gets a new version",
            "Data already written under that version no longer matches its declared schema; upcasters and consumers pinned to it break silently.",
            "Keep the old version's schema and add the change as the next version (with an upcaster)."),
        new("versioning/incompatible", Severity.Error, "New versions keep the declared compatibility",
            "A version that breaks the compatibility mode breaks the consumers (BACKWARD) or producers (FORWARD) that upgrade in the order the mode promises.",
            "Make the change compatible (optional fields, defaults, closed models), or publish a new event type (Greg Young: if it is not convertible it is a new event)."),
        new("fat-event/size", Severity.Warning, "Events stay small",
            "Large events couple every consumer to the producer's model and cost bandwidth and storage on every hop.",
            "Carry what happened and the ids to look the rest up; split unrelated facts into separate events."),
        new("fat-event/aggregate-state", Severity.Warning, "Events do not carry the whole aggregate",
            "An event holding the aggregate's full state (event-carried state transfer) turns a fact into a snapshot; consumers depend on every field and every change becomes breaking.",
            "Publish the change itself; if consumers need state, offer a query or a separate snapshot stream."),
        new("rpc/names", Severity.Warning, "Events are not requests or responses",
            "Events named …Requested/…Response are commands and replies in disguise (event-driven RPC): the producer waits for one consumer's answer, with none of request-reply's timeouts or errors.",
            "Send a command (or a request) and publish the fact that results, e.g. PaymentCaptured."),
        new("rpc/correlated-reply", Severity.Warning, "No request-reply over events",
            "An event consumed by exactly one service that answers with an event its producer consumes is a synchronous call spread over two topics.",
            "Use request-reply (a command or query with a reply), or let the second event stand as an independent fact."),
        new("rpc/request-reply-event", Severity.Error, "Request-reply carries commands or queries, not events",
            "Requesting an event means asking one service to answer a fact; Factum's bus refuses it at run time.",
            "Register the request as a command or a query."),
        new("ownership/single-owner", Severity.Error, "Every message has exactly one owner",
            "Without an owner nobody approves schema changes; with several, nobody does.",
            "Set 'owner' to the one team that owns the contract."),
        new("mapping/no-consumers", Severity.Warning, "Messages have consumers",
            "A message nobody consumes is dead weight in the catalog and on the wire, or a consumer is missing from the catalog.",
            "Add the consuming service, or retire the message."),
        new("mapping/consumer-without-producer", Severity.Error, "Consumed messages have a producer",
            "A service waiting for a message nobody produces will never run that path.",
            "Add the producing service to the catalog, or remove the consumption."),
        new("mapping/unknown-reference", Severity.Error, "References resolve",
            "A reference to an undefined message, service, domain or team is a typo or a missing entry; generated docs and topology would be wrong.",
            "Define the referenced entity or correct the name."),
        new("classification/cross-domain", Severity.Error, "Events that cross domains are integration events",
            "An event consumed outside its domain is a public contract; classified as a domain event it will be changed with the aggregate and break other teams.",
            "Classify it 'integration' (and version it strictly), or publish a separate integration event."),
        new("ordering/partition-key", Severity.Error, "Ordered messages have a partition key",
            "Order is only kept per partition key; without one, messages of an aggregate spread over partitions and arrive out of order.",
            "Set 'partitionKey' to the aggregate id property."),
        new("ordering/competing-consumers", Severity.Error, "Ordered messages do not go to competing consumers",
            "Competing consumers on a plain queue handle a key's messages in parallel, so the order is lost.",
            "Use a partitioned stream (one consumer per partition) or a queue with per-key ordering (message groups)."),
        new(BrokerNameRule, Severity.Error, "Names are valid for every broker the topology targets",
            "Message names become Kafka topics, RabbitMQ exchanges and queues and NATS subjects, and consuming services become consumer groups and durable names; a name a broker refuses breaks the generated topology, and characters such as ';', '$' or spaces in scripts are how injection starts.",
            "Rename it to letters, digits, '.', '_' and '-' (Kafka: at most 249 characters; RabbitMQ: at most 255 UTF-8 bytes; NATS: no spaces, '*', '>' or empty tokens; a consumer group no '.' either)."),
    ];

    /// <summary>The id of the rule that checks names against the brokers' rules.</summary>
    public const string BrokerNameRule = "naming/broker-name";

    /// <summary>Longest Kafka topic name.</summary>
    public const int KafkaMaxName = 249;

    /// <summary>Longest RabbitMQ exchange or queue name, in UTF-8 bytes.</summary>
    public const int RabbitMaxBytes = 255;

    /// <summary>Every rule id.</summary>
    public static IReadOnlySet<string> Ids { get; } = All.Select(r => r.Id).ToHashSet(StringComparer.Ordinal);

    private static readonly string[] GenericNouns = ["Data", "Entity", "Record", "Object", "Item", "Thing", "Info", "Message", "Event", "Payload", "Row", "State"];
    private static readonly string[] GenericVerbs = ["Changed", "Updated", "Modified", "Processed", "Handled", "Saved", "Persisted", "Touched"];
    private static readonly string[] QueryVerbs = ["Get", "Find", "List", "Check", "Count", "Is", "Has", "Search", "Lookup", "Fetch", "Query", "Can", "Should"];

    /// <summary>Runs every enabled rule; <paramref name="baseline"/> (a previous catalog) enables the changed-schema check.</summary>
    public static IReadOnlyList<Finding> Lint(EventCatalogModel catalog, EventCatalogModel? baseline = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var findings = new List<Finding>();
        var rules = All.ToDictionary(r => r.Id);
        void Add(string rule, string entity, string message, SourceLocation? source)
        {
            if (catalog.Lint.Disabled.ContainsKey(rule)) return;
            var r = rules[rule];
            findings.Add(new Finding(rule, catalog.Lint.Severities.GetValueOrDefault(rule, r.Severity), entity, message, r.Why, r.Fix, source));
        }

        var messageNames = catalog.Messages.Select(m => m.Name).ToHashSet(StringComparer.Ordinal);
        var domainIds = catalog.Domains.Select(d => d.Id).ToHashSet(StringComparer.Ordinal);
        var teamIds = catalog.Teams.Select(t => t.Id).ToHashSet(StringComparer.Ordinal);
        var serviceIds = catalog.Services.Select(s => s.Id).ToHashSet(StringComparer.Ordinal);

        foreach (var s in catalog.Services)
        {
            var entity = $"service {s.Id}";
            foreach (var name in s.Publishes.Concat(s.Sends).Concat(s.Consumes).Concat(s.Requests).Distinct().Where(n => !messageNames.Contains(n)))
                Add("mapping/unknown-reference", entity, $"refers to message '{name}', which the catalog does not define", s.Source);
            if (s.Domain is { } d && domainIds.Count > 0 && !domainIds.Contains(d)) Add("mapping/unknown-reference", entity, $"is in domain '{d}', which the catalog does not define", s.Source);
            if (s.Owner is { } o && teamIds.Count > 0 && !teamIds.Contains(o)) Add("mapping/unknown-reference", entity, $"is owned by team '{o}', which the catalog does not define", s.Source);
            // A consumer count for a message the service does not consume sizes nothing: a typo or a stale entry.
            foreach (var name in s.InstancesPerMessage.Keys.Where(n => !s.Consumes.Contains(n)).Order(StringComparer.Ordinal))
                Add("mapping/unknown-reference", entity, $"declares instances for '{name}', which it does not consume", s.Source);
            foreach (var name in s.Requests.Where(messageNames.Contains))
                if (catalog.Message(name)!.Kind == CatalogMessageKind.Event)
                    Add("rpc/request-reply-event", entity, $"sends the event '{name}' as a request", s.Source);
            foreach (var name in s.Consumes.Where(messageNames.Contains))
            {
                var m = catalog.Message(name)!;
                if (catalog.ProducersOf(m).Count == 0) Add("mapping/consumer-without-producer", entity, $"consumes '{name}', which no service produces", s.Source);
            }
        }
        foreach (var s in catalog.Services.Where(s => catalog.Messages.Any(m => catalog.ConsumersOf(m).Contains(s.Id))))
        {
            foreach (var problem in GroupNameProblems(s.Id)) Add(BrokerNameRule, $"service {s.Id}", problem, s.Source);
        }
        foreach (var c in catalog.Channels)
        {
            var entity = $"channel {c.Id}";
            foreach (var name in c.Messages.Where(n => !messageNames.Contains(n))) Add("mapping/unknown-reference", entity, $"carries message '{name}', which the catalog does not define", c.Source);
            if (c.Kind == "request-reply")
            {
                foreach (var m in c.Messages.Select(catalog.Message).Where(m => m?.Kind == CatalogMessageKind.Event))
                    Add("rpc/request-reply-event", entity, $"is a request-reply channel carrying the event '{m!.Name}'", c.Source);
            }
        }

        foreach (var m in catalog.Messages)
        {
            var entity = $"{m.Kind.ToString().ToLowerInvariant()} {m.Name}";
            var producers = catalog.ProducersOf(m);
            var consumers = catalog.ConsumersOf(m);
            foreach (var p in m.Producers.Concat(m.Consumers).Where(p => serviceIds.Count > 0 && !serviceIds.Contains(p)).Distinct())
                Add("mapping/unknown-reference", entity, $"names service '{p}', which the catalog does not define", m.Source);
            foreach (var o in m.Owners.Where(o => teamIds.Count > 0 && !teamIds.Contains(o) && !serviceIds.Contains(o)))
                Add("mapping/unknown-reference", entity, $"is owned by '{o}', which is neither a team nor a service of the catalog", m.Source);
            if (m.Reply is { } reply && !messageNames.Contains(reply))
                Add("mapping/unknown-reference", entity, $"is answered by '{reply}', which the catalog does not define", m.Source);
            // The correlation key must be a field of the request, or replies cannot be matched to it.
            if (m.CorrelationKey is { } key && m.Latest?.Schema?["properties"] is System.Text.Json.Nodes.JsonObject properties && !properties.ContainsKey(key))
                Add("mapping/unknown-reference", entity, $"correlates replies by '{key}', which its schema (v{m.Latest.Version}) does not have", m.Source);

            // Naming.
            var words = SplitWords(m.Name);
            switch (m.Kind)
            {
                case CatalogMessageKind.Event:
                    if (EventNamingConvention.Check(m.Name) is { } why)
                    {
                        // The core says why; the suggestion turns verb + noun into noun + past participle (AssessClaim → ClaimAssessed).
                        var message = EventNames.Suggest(m.Name) is { } s && m.Name.All(char.IsAsciiLetterOrDigit)
                            ? $"'{m.Name}' reads as {s.Reading}; an event names a fact that happened, in the past tense, e.g. {s.Suggestion}"
                            : $"'{m.Name}': {why}";
                        Add("naming/event-past-tense", entity, message, m.Source);
                    }
                    if (words.Count > 0 && (words[^1] is "Event" or "Message" || (words.Count <= 2 && GenericNouns.Contains(words[0]) && (words.Count == 1 || GenericVerbs.Contains(words[^1]))) || (words.Count >= 2 && GenericVerbs.Contains(words[^1]) && GenericNouns.Contains(words[^2]))))
                        Add("naming/event-specific", entity, $"'{m.Name}' does not say which business fact happened", m.Source);
                    else if (words.Count > 0 && GenericVerbs.Contains(words[^1]))
                        Add("naming/event-specific", entity, $"'{m.Name}' says something changed, not what: '{words[^1]}' is a generic verb", m.Source);
                    if (words.Count > 0 && (words[^1] is "Requested" or "Request" or "Response" or "Reply" or "Replied" or "Result" or "Query" or "Command"))
                        Add("rpc/names", entity, $"'{m.Name}' is named like a request or a reply", m.Source);
                    break;
                case CatalogMessageKind.Command:
                    if (EventNamingConvention.Check(m.Name) is null) Add("naming/command-imperative", entity, $"'{m.Name}' reads as a past fact, not an order", m.Source);
                    else if (words.Count > 0 && words[^1] is "Event" or "Command" or "Message") Add("naming/command-imperative", entity, $"'{m.Name}' names the kind, not the action", m.Source);
                    break;
                case CatalogMessageKind.Query:
                    if (words.Count == 0 || !QueryVerbs.Contains(words[0])) Add("naming/query-asks", entity, $"'{m.Name}' does not start with a question verb ({string.Join(", ", QueryVerbs.Take(7))})", m.Source);
                    break;
            }

            // Names the brokers accept: the message's own channels, and those derived from each consuming group.
            foreach (var problem in ChannelNameProblems(m.Name, consumers)) Add(BrokerNameRule, entity, problem, m.Source);

            // Ownership and mapping.
            if (m.Owners.Count != 1) Add("ownership/single-owner", entity, m.Owners.Count == 0 ? "has no owner" : $"has {m.Owners.Count} owners ({string.Join(", ", m.Owners)})", m.Source);
            if (consumers.Count == 0) Add("mapping/no-consumers", entity, "no service consumes it", m.Source);

            // Classification across domains.
            if (m.Kind == CatalogMessageKind.Event && !string.Equals(m.Classification, "integration", StringComparison.Ordinal))
            {
                var producerDomains = producers.Select(p => catalog.Service(p)?.Domain).Where(d => d is not null).ToHashSet(StringComparer.Ordinal);
                var crossing = consumers.Select(c => catalog.Service(c)).Where(c => c?.Domain is not null && producerDomains.Count > 0 && !producerDomains.Contains(c.Domain)).Select(c => $"{c!.Id} ({c.Domain})").ToList();
                if (crossing.Count > 0)
                    Add("classification/cross-domain", entity, $"is classified '{m.Classification ?? "domain"}' but consumed outside its domain by {string.Join(", ", crossing)}", m.Source);
            }

            // RPC: consumed by exactly one service that answers with an event the producer consumes.
            foreach (var (single, r) in CorrelatedReplies(catalog, m))
                Add("rpc/correlated-reply", entity, $"is consumed only by '{single}', which answers with '{r.Name}' consumed by its producer ({string.Join(", ", catalog.ConsumersOf(r).Intersect(producers))})", m.Source);

            // Ordering.
            if (m.Ordering != OrderingRequirement.None)
            {
                if (m.Ordering == OrderingRequirement.PerKey && string.IsNullOrEmpty(m.PartitionKey))
                    Add("ordering/partition-key", entity, "needs ordering per key but declares no partitionKey", m.Source);
                foreach (var ch in catalog.Channels.Where(c => c.Messages.Contains(m.Name) && c.Kind == "queue" && c.CompetingConsumers))
                    Add("ordering/competing-consumers", entity, $"needs ordering but goes to queue '{ch.Id}' with competing consumers", ch.Source ?? m.Source);
            }

            // Versioning.
            if (m.Versions.Count == 0 || m.Versions.All(v => v.Schema is null))
                Add("versioning/missing-version", entity, m.Versions.Count == 0 ? "declares no versions" : "has versions without a schema", m.Source);
            else if (m.Versions.Select((v, i) => v.Version != i + 1).Any(x => x))
                Add("versioning/missing-version", entity, $"versions are {string.Join(", ", m.Versions.Select(v => v.Version))}; they must be 1, 2, … without gaps", m.Source);
            var schemas = m.Versions.Where(v => v.Schema is not null).Select(v => (v.Version, v.Schema!)).ToList();
            if (schemas.Count >= 2)
            {
                var result = SchemaCompatibility.Check(schemas, m.Compatibility);
                foreach (var (reader, writer, v) in result.Violations)
                    Add("versioning/incompatible", entity, $"v{Math.Max(reader, writer)} breaks {ModeName(m.Compatibility)} (v{reader} reading v{writer} data): {v.Path}: {v.Message} [{v.Rule}]", m.Source);
            }
            if (baseline?.Message(m.Name) is { } before)
            {
                foreach (var v in m.Versions)
                {
                    var old = before.Versions.FirstOrDefault(x => x.Version == v.Version);
                    if (old?.Schema is not null && v.Schema is not null && !JsonNode.DeepEquals(old.Schema, v.Schema))
                        Add("versioning/changed-without-new-version", entity, $"the schema of v{v.Version} differs from the baseline's", m.Source);
                }
            }

            // Metadata and fat events (events only).
            if (m.Kind == CatalogMessageKind.Event && m.Latest?.Schema is { } latest)
            {
                var missing = MissingMetadata(m, latest);
                if (missing.Count > 0) Add("metadata/envelope", entity, $"neither its envelope nor its schema carries {string.Join(", ", missing)}", m.Source);
                var props = latest["properties"] as JsonObject;
                var depth = Depth(latest);
                if (props is not null && props.Count > catalog.Lint.MaxFields)
                    Add("fat-event/size", entity, $"has {props.Count} top-level properties (threshold {catalog.Lint.MaxFields})", m.Source);
                if (depth > catalog.Lint.MaxDepth)
                    Add("fat-event/size", entity, $"nests objects {depth} levels deep (threshold {catalog.Lint.MaxDepth})", m.Source);
                if (latest["examples"] is JsonArray { Count: > 0 } ex && ex.Max(e => e?.ToJsonString().Length ?? 0) is var size && size > catalog.Lint.MaxPayloadBytes)
                    Add("fat-event/size", entity, $"its example payload is {size} bytes (threshold {catalog.Lint.MaxPayloadBytes})", m.Source);
                if (props is not null && AggregateProperty(m, props) is { } agg)
                    Add("fat-event/aggregate-state", entity, $"property '{agg}' holds a whole object that looks like the aggregate's state", m.Source);
            }
        }
        return findings.OrderBy(f => f.Severity == Severity.Error ? 0 : f.Severity == Severity.Warning ? 1 : 2).ThenBy(f => f.Entity, StringComparer.Ordinal).ThenBy(f => f.Rule, StringComparer.Ordinal).ToList();
    }

    /// <summary>The registry spelling of a mode (BACKWARD_TRANSITIVE).</summary>
    public static string ModeName(CompatibilityMode mode) => mode switch
    {
        CompatibilityMode.BackwardTransitive => "BACKWARD_TRANSITIVE",
        CompatibilityMode.ForwardTransitive => "FORWARD_TRANSITIVE",
        CompatibilityMode.FullTransitive => "FULL_TRANSITIVE",
        _ => mode.ToString().ToUpperInvariant(),
    };

    private static readonly (string Name, string[] Aliases)[] Metadata =
    [
        ("event id", ["eventId", "id", "messageId"]),
        ("type", ["type", "eventType"]),
        ("timestamp", ["timestamp", "occurredAt", "time", "createdAt"]),
        ("aggregate id", ["aggregateId", "streamId", "partitionKey"]),
        ("correlation id", ["correlationId"]),
        ("causation id", ["causationId"]),
    ];

    private static List<string> MissingMetadata(CatalogMessage m, JsonObject schema)
    {
        if (m.Envelope is null) return []; // Factum's envelope carries all of them
        var available = m.Envelope.Concat((schema["properties"] as JsonObject)?.Select(p => p.Key) ?? []).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var missing = new List<string>();
        foreach (var (name, aliases) in Metadata)
        {
            var ok = aliases.Any(available.Contains) || (name == "aggregate id" && m.PartitionKey is { } key && available.Contains(key));
            if (!ok) missing.Add(name);
        }
        return missing;
    }

    private static int Depth(JsonNode? schema)
    {
        if (schema is not JsonObject o) return 0;
        var children = new List<JsonNode?>();
        if (o["properties"] is JsonObject props) children.AddRange(props.Select(p => p.Value));
        if (o["items"] is { } items) children.Add(items);
        var isObject = o["properties"] is not null;
        return (isObject ? 1 : 0) + (children.Count == 0 ? 0 : children.Max(Depth));
    }

    private static string? AggregateProperty(CatalogMessage m, JsonObject props)
    {
        var words = SplitWords(m.Name);
        var aggregate = words.Count > 1 ? string.Concat(words.Take(words.Count - 1)) : null;
        foreach (var (name, schema) in props)
        {
            if (schema is not JsonObject s || s["properties"] is not JsonObject inner || inner.Count < 5) continue;
            var lower = name.ToLowerInvariant();
            if (lower is "state" or "snapshot" or "entity" or "aggregate" or "document" || (aggregate is not null && string.Equals(name, aggregate, StringComparison.OrdinalIgnoreCase)))
                return name;
        }
        return null;
    }

    /// <summary>
    /// Event-driven RPC: an event consumed by exactly one service that answers with an event (on the same subject) which
    /// the first event's producer consumes. The lint flags it (rpc/correlated-reply); the advisor advises request-reply.
    /// </summary>
    internal static IEnumerable<(string Responder, CatalogMessage Reply)> CorrelatedReplies(EventCatalogModel catalog, CatalogMessage m)
    {
        if (m.Kind != CatalogMessageKind.Event) yield break;
        var consumers = catalog.ConsumersOf(m);
        if (consumers.Count != 1 || catalog.Service(consumers[0]) is not { } single) yield break;
        var producers = catalog.ProducersOf(m);
        foreach (var r in single.Publishes.Select(catalog.Message))
        {
            if (r is not null && r.Kind == CatalogMessageKind.Event && r.Name != m.Name && catalog.ConsumersOf(r).Intersect(producers).Any() && SharesSubject(m.Name, r.Name))
                yield return (single.Id, r);
        }
    }

    private static bool SharesSubject(string a, string b)
    {
        var wa = SplitWords(a);
        var wb = SplitWords(b);
        return wa.Count > 1 && wb.Count > 1 && wa[0] == wb[0];
    }

    /// <summary>Why a message name cannot name its channels: Kafka topic (and its groups' dead-letter topics), RabbitMQ exchange and queues, NATS subject.</summary>
    internal static IEnumerable<string> ChannelNameProblems(string name, IReadOnlyList<string> groups)
    {
        if (KafkaProblem(name) is { } kafka) yield return $"'{Show(name)}' is not a valid Kafka topic name: {kafka}";
        foreach (var dlq in groups.Select(g => $"{name}.{g}.dlq").Where(d => d.Length > KafkaMaxName && KafkaProblem(name) is null))
            yield return $"the dead-letter topic '{Show(dlq)}' is {dlq.Length} characters long; Kafka allows at most {KafkaMaxName}";
        foreach (var queue in new[] { name, $"{name}.dlq" }.Concat(groups.SelectMany(g => new[] { $"{name}.{g}", $"{name}.{g}.dlq" })))
        {
            var bytes = System.Text.Encoding.UTF8.GetByteCount(queue);
            if (bytes > RabbitMaxBytes)
            {
                yield return $"the RabbitMQ name '{Show(queue)}' is {bytes} UTF-8 bytes long; RabbitMQ allows at most {RabbitMaxBytes}";
                break;
            }
        }
        if (NatsProblem(name, allowDots: true) is { } nats) yield return $"'{Show(name)}' is not a valid NATS subject prefix: {nats}";
    }

    /// <summary>Why a consuming service's id cannot name its consumer group: Kafka (inside the dead-letter topic's name) and a NATS durable consumer.</summary>
    internal static IEnumerable<string> GroupNameProblems(string group)
    {
        if (KafkaProblem(group) is { } kafka) yield return $"'{Show(group)}' cannot be part of its Kafka dead-letter topics' names: {kafka}";
        if (NatsProblem(group, allowDots: false) is { } nats) yield return $"'{Show(group)}' is not a valid NATS durable consumer name: {nats}";
    }

    private static string? KafkaProblem(string name)
    {
        if (name.Length == 0) return "it is empty";
        if (name is "." or "..") return "'.' and '..' are reserved";
        if (name.Length > KafkaMaxName) return $"it is {name.Length} characters long (at most {KafkaMaxName})";
        var bad = name.Where(c => !(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')).Distinct().ToList();
        return bad.Count == 0 ? null : $"it contains {string.Join(", ", bad.Select(ShowChar))} (allowed: letters a-z and A-Z, digits, '.', '_', '-')";
    }

    private static string? NatsProblem(string name, bool allowDots)
    {
        if (name.Length == 0) return "it is empty";
        var bad = name.Where(c => char.IsWhiteSpace(c) || char.IsControl(c) || c is '*' or '>' || (!allowDots && c is '.' or '/' or '\\')).Distinct().ToList();
        if (bad.Count > 0) return $"it contains {string.Join(", ", bad.Select(ShowChar))} (NATS forbids whitespace, '*' and '>'{(allowDots ? "" : ", and in names '.', '/' and '\\'")})";
        if (allowDots && name.Split('.').Any(t => t.Length == 0)) return "it has an empty token (a leading, trailing or doubled '.')";
        return null;
    }

    private static string ShowChar(char c) => char.IsControl(c) || char.IsWhiteSpace(c) ? $"U+{(int)c:X4}" : $"'{c}'";

    /// <summary>A name for a message: control characters shown as U+XXXX, long names shortened.</summary>
    private static string Show(string name)
    {
        var shown = string.Concat(name.Select(c => char.IsControl(c) ? $"U+{(int)c:X4}" : c.ToString()));
        return shown.Length > 80 ? shown[..60] + "…" + shown[^10..] : shown;
    }

    internal static List<string> SplitWords(string name) => WordRegex().Matches(name).Select(x => x.Value).ToList();

    [GeneratedRegex("[A-Z][a-z0-9]*|[a-z0-9]+")]
    private static partial Regex WordRegex();
}
