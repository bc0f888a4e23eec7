using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Factum.Design;

/// <summary>A planned topic (one per event type) or queue (one per command or query).</summary>
/// <param name="Name">The address.</param>
/// <param name="Message">The message it carries.</param>
/// <param name="Kind">topic or queue.</param>
/// <param name="Partitions">Partitions (topics).</param>
/// <param name="PartitionKey">The payload property that keys it.</param>
/// <param name="Retention">How long records are kept.</param>
/// <param name="Producers">Producing services.</param>
/// <param name="Groups">Consumer groups (one per consuming service), each with its dead-letter queue.</param>
/// <param name="Ordering">The ordering guarantee, in words.</param>
/// <param name="Sizing">How the partition count was chosen.</param>
/// <param name="Instances">Declared competing consumers per group (groups without a declared count run one).</param>
public sealed record PlannedChannel(string Name, CatalogMessage Message, string Kind, int Partitions, string? PartitionKey, TimeSpan Retention,
    IReadOnlyList<string> Producers, IReadOnlyList<(string Group, string DeadLetterQueue)> Groups, string Ordering, string Sizing,
    IReadOnlyDictionary<string, int>? Instances = null)
{
    /// <summary>Consumers need order (per key or total): every broker's output must serialise each group's handling.</summary>
    public bool Ordered => Message.Ordering != OrderingRequirement.None;

    /// <summary>The competing consumers <paramref name="group"/> runs (1 when undeclared).</summary>
    public int InstancesOf(string group) => Instances?.GetValueOrDefault(group) is > 0 and var n ? n : 1;
}

/// <summary>
/// Plans the topology from the catalog and writes it for each broker: AsyncAPI 3.0, Kafka (kafka-topics.sh and Strimzi
/// KafkaTopic), RabbitMQ definitions, NATS JetStream stream and consumer configs, SNS/SQS CloudFormation, and a Markdown
/// ordering-and-retention page.
/// </summary>
public static class TopologyPlanner
{
    /// <summary>Messages a second one partition is sized for (one consumer instance keeps up with about this many).</summary>
    public const double RatePerPartition = 200;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Plans every message's channel.</summary>
    public static IReadOnlyList<PlannedChannel> Plan(EventCatalogModel catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return catalog.Messages.OrderBy(m => m.Name, StringComparer.Ordinal).Select(m =>
        {
            var consumers = catalog.ConsumersOf(m);
            var instances = consumers.Select(c => (c, n: catalog.ConsumerCount(c, m.Name))).Where(x => x.n is not null).ToDictionary(x => x.c, x => x.n!.Value, StringComparer.Ordinal);
            var isTopic = m.Kind == CatalogMessageKind.Event;
            var byRate = (int)Math.Ceiling((m.Rate ?? 0) / RatePerPartition);
            var keyed = m.PartitionKey is not null;
            var members = instances.Count == 0 ? 1 : instances.Values.Max();
            // A group member beyond the partition count idles: a topic gets at least as many partitions as its largest group has members.
            var partitions = !isTopic ? 1 : m.Ordering == OrderingRequirement.Total ? 1 : Math.Clamp(Math.Max(Math.Max(byRate, keyed ? 3 : 1), members), 1, 64);
            var sizing = !isTopic
                ? "a queue"
                : m.Ordering == OrderingRequirement.Total
                    ? "1: total order needs a single partition" + (byRate > 1 ? $" (the rate asks for {byRate}; one consumer must keep up with {m.Rate:0.#}/s)" : "")
                    : $"ceil({m.Rate?.ToString("0.#", CultureInfo.InvariantCulture) ?? "0"}/s ÷ {RatePerPartition}/s per partition) = {byRate}" + (keyed ? ", at least 3 so a keyed topic can scale out" : "")
                        + (members > 1 ? $", at least {members} for the largest consumer group's {members} members" : "") + $" → {partitions}";
            var groups = consumers.Select(c => (c, $"{m.Name}.{c}.dlq")).ToList();
            return new PlannedChannel(m.Name, m, isTopic ? "topic" : "queue", partitions, m.PartitionKey, m.Retention ?? TimeSpan.FromDays(7),
                catalog.ProducersOf(m), groups, OrderingText(m, isTopic), sizing, instances);
        }).ToList();
    }

    /// <summary>
    /// The ordering guarantee in words, naming how each broker's generated configuration enforces it; the topology tests
    /// check every generated file against these words.
    /// </summary>
    private static string OrderingText(CatalogMessage m, bool isTopic)
    {
        var key = m.PartitionKey ?? "key";
        var enforced = $"RabbitMQ: each queue has a single active consumer (x-single-active-consumer), the other instances stand by; NATS: each durable consumer keeps one unacknowledged message (max_ack_pending 1); SQS/SNS: FIFO {(isTopic ? "topic and queues" : "queue")} with MessageGroupId = {(m.Ordering == OrderingRequirement.Total ? "one constant group" : key)}";
        return m.Ordering switch
        {
            OrderingRequirement.PerKey => isTopic
                ? $"ordered per {key}: Kafka: records are keyed by {key}, so one key's records share a partition, read by one group member at a time; {enforced}; no order across keys"
                : $"ordered per {key}: {enforced}",
            OrderingRequirement.Total => isTopic
                ? $"total order: Kafka: a single partition, read by one group member at a time; {enforced}"
                : $"total order: {enforced}",
            _ => isTopic ? $"no order required; per-partition order by {m.PartitionKey ?? "publish order"}" : "FIFO per queue; competing consumers handle messages in parallel",
        };
    }

    /// <summary>The replication factor written when none is given: a three-node cluster.</summary>
    public const int DefaultReplicas = 3;

    /// <summary>Writes every artifact to <paramref name="outDir"/>; returns the files written.</summary>
    /// <param name="catalog">The catalog.</param>
    /// <param name="outDir">Where to write.</param>
    /// <param name="title">The AsyncAPI document's title.</param>
    /// <param name="replicas">
    /// The cluster size the files replicate over: Kafka's replication factor, NATS JetStream's <c>num_replicas</c> and
    /// RabbitMQ's quorum queue group size. 1 for a single node (a single NATS server refuses more), 3 by default.
    /// </param>
    public static IReadOnlyList<string> Write(EventCatalogModel catalog, string outDir, string title = "Factum catalog", int replicas = DefaultReplicas)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentOutOfRangeException.ThrowIfLessThan(replicas, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(replicas, 5); // JetStream's limit; no broker here gains from more
        Directory.CreateDirectory(outDir);
        var plan = Plan(catalog);
        var files = new List<(string Name, string Content)>
        {
            ("asyncapi.json", AsyncApi(catalog, plan, title, replicas).ToJsonString(Indented)),
            ("kafka/create-topics.sh", KafkaScript(plan, replicas)),
            ("kafka/strimzi-topics.yaml", Strimzi(plan, replicas)),
            ("rabbitmq/definitions.json", RabbitDefinitions(plan, replicas).ToJsonString(Indented)),
            ("nats/streams.json", NatsStreams(plan, replicas).ToJsonString(Indented)),
            ("nats/consumers.json", NatsConsumers(plan).ToJsonString(Indented)),
            ("aws/sns-sqs.cloudformation.json", CloudFormation(plan).ToJsonString(Indented)),
            ("ordering-and-retention.md", OrderingDoc(plan, replicas)),
        };
        var output = new OutputFolder(outDir);
        foreach (var (name, content) in files) output.Save(name, content);
        return output.Files;
    }

    private static JsonObject Ref(string pointer) => new() { ["$ref"] = pointer };

    /// <summary>An AsyncAPI component key: only letters, digits and '_' (other characters become '_').</summary>
    private static string Id(string s) => new(s.Select(c => char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '_').ToArray());

    /// <summary>The AsyncAPI 3.0.0 document: a channel per topic, queue and dead-letter queue, operations per producer and consumer, messages with payload schemas, envelope headers and the correlation id.</summary>
    public static JsonObject AsyncApi(EventCatalogModel catalog, IReadOnlyList<PlannedChannel> plan, string title, int replicas = DefaultReplicas)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(plan);
        var channels = new JsonObject();
        var operations = new JsonObject();
        var messages = new JsonObject();
        // Different names can clean up to the same key (Order.Placed, Order_Placed): number the later ones, per map.
        var usedKeys = new Dictionary<JsonObject, HashSet<string>>();
        string Unique(JsonObject map, string key)
        {
            if (!usedKeys.TryGetValue(map, out var used)) usedKeys[map] = used = new HashSet<string>(StringComparer.Ordinal);
            var candidate = key;
            for (var n = 2; !used.Add(candidate); n++) candidate = $"{key}_{n}";
            return candidate;
        }
        foreach (var p in plan)
        {
            var m = p.Message;
            var msgId = Unique(messages, Id(m.Name));
            messages[msgId] = new JsonObject
            {
                ["name"] = m.Name,
                ["title"] = m.Name,
                ["summary"] = m.Description ?? $"{m.Kind} {m.Name}",
                ["contentType"] = "application/json",
                ["headers"] = new JsonObject
                {
                    ["type"] = "object",
                    ["properties"] = new JsonObject
                    {
                        ["messageId"] = new JsonObject { ["type"] = "string", ["format"] = "uuid" },
                        ["type"] = new JsonObject { ["type"] = "string", ["const"] = m.Name },
                        ["schemaVersion"] = new JsonObject { ["type"] = "integer", ["const"] = m.Latest?.Version ?? 1 },
                        ["timestamp"] = new JsonObject { ["type"] = "string", ["format"] = "date-time" },
                        ["correlationId"] = new JsonObject { ["type"] = "string" },
                        ["causationId"] = new JsonObject { ["type"] = "string" },
                        ["partitionKey"] = new JsonObject { ["type"] = "string" },
                        ["traceparent"] = new JsonObject { ["type"] = "string" },
                    },
                    ["required"] = new JsonArray("messageId", "type", "schemaVersion", "timestamp", "correlationId"),
                },
                ["payload"] = m.Latest?.Schema?.DeepClone() ?? new JsonObject { ["type"] = "object" },
                ["correlationId"] = CorrelationKeyOf(catalog, m) is { } ck
                    ? new JsonObject { ["description"] = $"Ties a reply to its request: the payload's {ck}.", ["location"] = $"$message.payload#/{JsonPointer(ck)}" }
                    : new JsonObject { ["description"] = "The business process this message belongs to.", ["location"] = "$message.header#/correlationId" },
                ["bindings"] = new JsonObject
                {
                    ["kafka"] = new JsonObject { ["key"] = new JsonObject { ["type"] = "string", ["description"] = p.PartitionKey is { } k ? $"the payload's {k}" : "none" }, ["bindingVersion"] = "0.5.0" },
                },
            };
            var chId = Unique(channels, Id(p.Name));
            var channelBindings = p.Kind == "topic"
                ? new JsonObject
                {
                    ["kafka"] = new JsonObject
                    {
                        ["topic"] = p.Name,
                        ["partitions"] = p.Partitions,
                        ["replicas"] = replicas,
                        ["topicConfiguration"] = new JsonObject { ["cleanup.policy"] = new JsonArray("delete"), ["retention.ms"] = (long)p.Retention.TotalMilliseconds },
                        ["bindingVersion"] = "0.5.0",
                    },
                    ["amqp"] = new JsonObject { ["is"] = "routingKey", ["exchange"] = new JsonObject { ["name"] = p.Name, ["type"] = "fanout", ["durable"] = true, ["autoDelete"] = false, ["vhost"] = "/" }, ["bindingVersion"] = "0.3.0" },
                }
                : new JsonObject
                {
                    ["amqp"] = new JsonObject { ["is"] = "queue", ["queue"] = new JsonObject { ["name"] = p.Name, ["durable"] = true, ["exclusive"] = false, ["autoDelete"] = false, ["vhost"] = "/" }, ["bindingVersion"] = "0.3.0" },
                };
            channels[chId] = new JsonObject
            {
                ["address"] = p.Name,
                ["title"] = p.Name,
                ["description"] = $"{p.Kind} for {m.Name}; {p.Ordering}; retention {Days(p.Retention)}.",
                ["messages"] = new JsonObject { [msgId] = Ref($"#/components/messages/{msgId}") },
                ["bindings"] = channelBindings,
            };
            foreach (var producer in p.Producers)
            {
                operations[Unique(operations, Id($"{producer}_sends_{m.Name}"))] = new JsonObject
                {
                    ["action"] = "send",
                    ["channel"] = Ref($"#/channels/{chId}"),
                    ["summary"] = $"{producer}{(catalog.Service(producer)?.External == true ? " (an external system)" : "")} {(m.Kind == CatalogMessageKind.Event ? "publishes" : "sends")} {m.Name}",
                    ["messages"] = new JsonArray(Ref($"#/channels/{chId}/messages/{msgId}")),
                };
            }
            foreach (var (group, dlq) in p.Groups)
            {
                operations[Unique(operations, Id($"{group}_receives_{m.Name}"))] = new JsonObject
                {
                    ["action"] = "receive",
                    ["channel"] = Ref($"#/channels/{chId}"),
                    ["summary"] = $"{group} consumes {m.Name} (consumer group {group}{(p.InstancesOf(group) > 1 ? $" of {p.InstancesOf(group)} competing consumers" : "")}; failures go to {dlq})",
                    ["messages"] = new JsonArray(Ref($"#/channels/{chId}/messages/{msgId}")),
                    ["bindings"] = new JsonObject { ["kafka"] = new JsonObject { ["groupId"] = new JsonObject { ["type"] = "string", ["enum"] = new JsonArray(group) }, ["bindingVersion"] = "0.5.0" } },
                };
                var dlqId = Unique(channels, Id(dlq));
                channels[dlqId] = new JsonObject
                {
                    ["address"] = dlq,
                    ["title"] = dlq,
                    ["description"] = $"Dead letters of {group} for {m.Name}: the original message plus the failure (see docs/messaging.md).",
                    ["messages"] = new JsonObject { [msgId] = Ref($"#/components/messages/{msgId}") },
                };
            }
        }
        return new JsonObject
        {
            ["asyncapi"] = "3.0.0",
            ["info"] = new JsonObject
            {
                ["title"] = title,
                ["version"] = "1.0.0",
                ["description"] = $"Generated by `factum catalog plan` from {catalog.Messages.Count} messages and {catalog.Services.Count} services.",
            },
            ["defaultContentType"] = "application/json",
            ["servers"] = new JsonObject
            {
                ["kafka"] = new JsonObject { ["host"] = "kafka.example.internal:9092", ["protocol"] = "kafka", ["description"] = "Replace with the cluster's bootstrap servers." },
                ["rabbitmq"] = new JsonObject { ["host"] = "rabbitmq.example.internal:5672", ["protocol"] = "amqp", ["protocolVersion"] = "0.9.1" },
                ["nats"] = new JsonObject { ["host"] = "nats.example.internal:4222", ["protocol"] = "nats" },
            },
            ["channels"] = channels,
            ["operations"] = operations,
            ["components"] = new JsonObject { ["messages"] = messages },
        };
    }

    /// <summary>The correlation key of a request or of the reply to one: declared on the message, or on the request it answers.</summary>
    private static string? CorrelationKeyOf(EventCatalogModel catalog, CatalogMessage m) =>
        m.CorrelationKey ?? catalog.Messages.FirstOrDefault(r => r.Reply == m.Name && r.CorrelationKey is not null)?.CorrelationKey;

    /// <summary>A property name as a JSON Pointer token ('~' → '~0', '/' → '~1').</summary>
    private static string JsonPointer(string property) => property.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    private static string Days(TimeSpan t) => t.TotalDays >= 1 ? $"{t.TotalDays:0.#} days" : $"{t.TotalHours:0.#} hours";

    private static string KafkaScript(IReadOnlyList<PlannedChannel> plan, int replicas)
    {
        var sb = new StringBuilder("#!/bin/sh\n# Generated by factum catalog plan. BOOTSTRAP defaults to localhost:9092.\nset -e\nBOOTSTRAP=${BOOTSTRAP:-localhost:9092}\n");
        foreach (var p in plan.Where(p => p.Kind == "topic"))
        {
            sb.Append(CultureInfo.InvariantCulture, $"kafka-topics.sh --bootstrap-server \"$BOOTSTRAP\" --create --if-not-exists --topic {Escape.Shell(p.Name)} --partitions {p.Partitions} --replication-factor {replicas} --config retention.ms={(long)p.Retention.TotalMilliseconds} --config cleanup.policy=delete\n");
            foreach (var (_, dlq) in p.Groups)
                sb.Append(CultureInfo.InvariantCulture, $"kafka-topics.sh --bootstrap-server \"$BOOTSTRAP\" --create --if-not-exists --topic {Escape.Shell(dlq)} --partitions 1 --replication-factor {replicas} --config retention.ms={(long)TimeSpan.FromDays(14).TotalMilliseconds}\n");
        }
        return sb.ToString();
    }

    private static string Strimzi(IReadOnlyList<PlannedChannel> plan, int replicas)
    {
        var sb = new StringBuilder("# Generated by factum catalog plan: Strimzi KafkaTopic resources.\n");
        foreach (var p in plan.Where(p => p.Kind == "topic"))
        {
            void Topic(string name, int partitions, TimeSpan retention) => sb.Append(CultureInfo.InvariantCulture, $"""
                ---
                apiVersion: kafka.strimzi.io/v1beta2
                kind: KafkaTopic
                metadata:
                  name: {Escape.Yaml(name.ToLowerInvariant().Replace('_', '-'))}
                  labels:
                    strimzi.io/cluster: my-cluster
                spec:
                  topicName: {Escape.Yaml(name)}
                  partitions: {partitions}
                  replicas: {replicas}
                  config:
                    retention.ms: {(long)retention.TotalMilliseconds}
                    cleanup.policy: delete

                """);
            Topic(p.Name, p.Partitions, p.Retention);
            foreach (var (_, dlq) in p.Groups) Topic(dlq, 1, TimeSpan.FromDays(14));
        }
        return sb.ToString();
    }

    /// <summary>
    /// RabbitMQ definitions (rabbitmqctl import_definitions): a fanout exchange per topic, a quorum queue per consumer
    /// group bound to it, a dead-letter exchange and queue per group; a quorum queue per command or query. Queues of
    /// ordered messages get a single active consumer, so a group's competing instances never handle two at once.
    /// </summary>
    private static JsonObject RabbitDefinitions(IReadOnlyList<PlannedChannel> plan, int replicas)
    {
        var exchanges = new JsonArray();
        var queues = new JsonArray();
        var bindings = new JsonArray();
        JsonObject Queue(string name, string? dlx, bool ordered)
        {
            var arguments = new JsonObject { ["x-queue-type"] = "quorum", ["x-quorum-initial-group-size"] = replicas };
            if (dlx is not null)
            {
                arguments["x-dead-letter-exchange"] = dlx;
                arguments["x-dead-letter-strategy"] = "at-least-once";
                arguments["x-overflow"] = "reject-publish";
                arguments["x-delivery-limit"] = 10;
            }
            if (ordered) arguments["x-single-active-consumer"] = true;
            return new() { ["name"] = name, ["vhost"] = "/", ["durable"] = true, ["auto_delete"] = false, ["arguments"] = arguments };
        }
        JsonObject Exchange(string name, string type) => new() { ["name"] = name, ["vhost"] = "/", ["type"] = type, ["durable"] = true, ["auto_delete"] = false, ["internal"] = false, ["arguments"] = new JsonObject() };
        JsonObject Binding(string source, string destination) => new() { ["source"] = source, ["vhost"] = "/", ["destination"] = destination, ["destination_type"] = "queue", ["routing_key"] = "", ["arguments"] = new JsonObject() };
        foreach (var p in plan)
        {
            if (p.Kind == "topic")
            {
                exchanges.Add(Exchange(p.Name, "fanout"));
                foreach (var (group, dlq) in p.Groups)
                {
                    var queue = $"{p.Name}.{group}";
                    exchanges.Add(Exchange(dlq, "fanout"));
                    queues.Add(Queue(queue, dlq, p.Ordered));
                    queues.Add(Queue(dlq, null, false));
                    bindings.Add(Binding(p.Name, queue));
                    bindings.Add(Binding(dlq, dlq));
                }
            }
            else
            {
                var dlq = $"{p.Name}.dlq";
                exchanges.Add(Exchange(dlq, "fanout"));
                queues.Add(Queue(p.Name, dlq, p.Ordered));
                queues.Add(Queue(dlq, null, false));
                bindings.Add(Binding(dlq, dlq));
            }
        }
        return new JsonObject
        {
            ["rabbit_version"] = "3.13.0",
            ["vhosts"] = new JsonArray(new JsonObject { ["name"] = "/" }),
            ["exchanges"] = exchanges,
            ["queues"] = queues,
            ["bindings"] = bindings,
        };
    }

    /// <summary>The JetStream names of a plan: a stream per channel and a dead-letter stream per group, unique after cleaning.</summary>
    private sealed class NatsNames
    {
        private readonly HashSet<string> _used = new(StringComparer.Ordinal);
        private readonly Dictionary<string, string> _names = new(StringComparer.Ordinal);

        public NatsNames(IReadOnlyList<PlannedChannel> plan)
        {
            foreach (var p in plan)
            {
                _names["s:" + p.Name] = Take(Id(p.Name).ToUpperInvariant());
                foreach (var (group, _) in DeadLetters(p)) _names[$"d:{p.Name}:{group}"] = Take("DLQ_" + Id(p.Name).ToUpperInvariant() + (group.Length == 0 ? "" : "_" + Id(group).ToUpperInvariant()));
            }
        }

        // Stream names may not hold '.', '*', '>' or whitespace; names that clean up alike are numbered.
        private string Take(string name)
        {
            var candidate = name;
            for (var n = 2; !_used.Add(candidate); n++) candidate = $"{name}_{n}";
            return candidate;
        }

        public string Stream(PlannedChannel p) => _names["s:" + p.Name];

        public string DeadLetterStream(PlannedChannel p, string group) => _names[$"d:{p.Name}:{group}"];

        /// <summary>
        /// A dead-letter subject outside the channel's own <c>name.&gt;</c> subjects (JetStream refuses streams whose
        /// subjects overlap): <c>dlq.OrderPlaced.billing</c> for the dead letters of <c>OrderPlaced.billing.dlq</c>.
        /// </summary>
        public static string DeadLetterSubject(PlannedChannel p, string group) => group.Length == 0 ? $"dlq.{p.Name}" : $"dlq.{p.Name}.{group}";

        /// <summary>A topic's dead letters per group; a queue has one dead-letter queue (group "").</summary>
        public static IEnumerable<(string Group, string DeadLetterQueue)> DeadLetters(PlannedChannel p) =>
            p.Kind == "topic" ? p.Groups : [("", $"{p.Name}.dlq")];
    }

    private static JsonArray NatsStreams(IReadOnlyList<PlannedChannel> plan, int replicas)
    {
        var names = new NatsNames(plan);
        var streams = new JsonArray();
        foreach (var p in plan)
        {
            var maxAge = (long)p.Retention.TotalMilliseconds * 1_000_000;
            streams.Add(new JsonObject
            {
                ["name"] = names.Stream(p),
                ["subjects"] = new JsonArray($"{p.Name}.>"),
                // A work queue allows one consumer per subject; a queue consumed by several services keeps messages until each has them.
                ["retention"] = p.Kind == "topic" ? "limits" : p.Groups.Count <= 1 ? "workqueue" : "interest",
                ["storage"] = "file",
                ["num_replicas"] = replicas,
                ["max_age"] = maxAge,
                ["discard"] = "old",
                ["duplicate_window"] = Math.Min(120_000_000_000L, maxAge),
                ["description"] = $"{p.Message.Name}: {p.Ordering}. Publish to {p.Name}.<{p.PartitionKey ?? "id"}>{(p.Ordered ? " so each key keeps its order" : "")}.",
            });
            foreach (var (group, dlq) in NatsNames.DeadLetters(p))
            {
                streams.Add(new JsonObject
                {
                    ["name"] = names.DeadLetterStream(p, group),
                    ["subjects"] = new JsonArray(NatsNames.DeadLetterSubject(p, group)),
                    ["retention"] = "limits",
                    ["storage"] = "file",
                    ["num_replicas"] = replicas,
                    ["max_age"] = (long)TimeSpan.FromDays(14).TotalMilliseconds * 1_000_000,
                    ["discard"] = "old",
                    ["description"] = $"Dead letters of {(group.Length == 0 ? "the consumers" : group)} for {p.Message.Name} ({dlq}): the original message plus the failure, kept 14 days.",
                });
            }
        }
        return streams;
    }

    private static JsonArray NatsConsumers(IReadOnlyList<PlannedChannel> plan)
    {
        var names = new NatsNames(plan);
        return new(plan.SelectMany(p => p.Groups.Select(g =>
        {
            var dlqGroup = p.Kind == "topic" ? g.Group : "";
            return (JsonNode)new JsonObject
            {
                ["stream_name"] = names.Stream(p),
                ["config"] = new JsonObject
                {
                    ["durable_name"] = g.Group,
                    ["ack_policy"] = "explicit",
                    ["ack_wait"] = 30_000_000_000L,
                    ["max_deliver"] = 10,
                    // One unacknowledged message at a time keeps the order however many instances pull; otherwise room for all of them.
                    ["max_ack_pending"] = p.Ordered ? 1 : Math.Max(1000, 100 * p.InstancesOf(g.Group)),
                    ["deliver_policy"] = "all",
                    ["filter_subject"] = $"{p.Name}.>",
                    ["description"] = $"{g.Group} consumes {p.Message.Name}{(p.InstancesOf(g.Group) > 1 ? $" with {p.InstancesOf(g.Group)} instances pulling" : "")}; after max_deliver the message is copied to stream {names.DeadLetterStream(p, dlqGroup)} (subject {NatsNames.DeadLetterSubject(p, dlqGroup)})",
                },
            };
        })).ToArray());
    }

    /// <summary>An SQS queue or SNS topic name: letters, digits, '-' and '_' (dots are not allowed), at most 80 characters with a FIFO's ".fifo".</summary>
    private static string AwsName(string name, bool fifo)
    {
        var clean = new string(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '-').ToArray());
        var room = fifo ? 75 : 80;
        if (clean.Length > room) clean = clean[..(room - 17)] + "-" + OutputFolder.Hash(name);
        return fifo ? clean + ".fifo" : clean;
    }

    private static JsonObject CloudFormation(IReadOnlyList<PlannedChannel> plan)
    {
        var resources = new JsonObject();
        JsonObject Queue(string name, bool fifo, JsonObject? properties = null)
        {
            var props = properties ?? new JsonObject();
            props["QueueName"] = AwsName(name, fifo);
            if (fifo)
            {
                props["FifoQueue"] = true;
                props["ContentBasedDeduplication"] = true;
            }
            return new JsonObject { ["Type"] = "AWS::SQS::Queue", ["Properties"] = props };
        }
        // FIFO order holds per message group: the publisher sets MessageGroupId; stated where the resource is.
        JsonObject Group(PlannedChannel p) => new() { ["Factum"] = new JsonObject { ["MessageGroupId"] = p.Message.Ordering == OrderingRequirement.Total ? "one constant value (total order)" : $"the payload's {p.PartitionKey ?? "key"}" } };
        foreach (var p in plan)
        {
            var id = new string(Id(p.Name).Where(char.IsAsciiLetterOrDigit).ToArray());
            var fifo = p.Ordered;
            if (p.Kind == "topic")
            {
                var topic = new JsonObject { ["Type"] = "AWS::SNS::Topic", ["Properties"] = new JsonObject { ["TopicName"] = AwsName(p.Name, fifo) } };
                if (fifo)
                {
                    topic["Properties"]!["FifoTopic"] = true;
                    topic["Properties"]!["ContentBasedDeduplication"] = true;
                    topic["Metadata"] = Group(p);
                }
                resources[$"{id}Topic"] = topic;
                foreach (var (group, dlq) in p.Groups)
                {
                    var g = new string(Id(group).Where(char.IsAsciiLetterOrDigit).ToArray());
                    resources[$"{id}{g}Dlq"] = Queue(dlq, fifo, new JsonObject { ["MessageRetentionPeriod"] = 1_209_600 });
                    var queue = Queue($"{p.Name}-{group}", fifo, new JsonObject
                    {
                        ["MessageRetentionPeriod"] = (int)Math.Clamp(p.Retention.TotalSeconds, 60, 1_209_600),
                        ["RedrivePolicy"] = new JsonObject { ["deadLetterTargetArn"] = new JsonObject { ["Fn::GetAtt"] = new JsonArray($"{id}{g}Dlq", "Arn") }, ["maxReceiveCount"] = 10 },
                    });
                    if (fifo) queue["Metadata"] = Group(p);
                    resources[$"{id}{g}Queue"] = queue;
                    resources[$"{id}{g}Subscription"] = new JsonObject
                    {
                        ["Type"] = "AWS::SNS::Subscription",
                        ["Properties"] = new JsonObject
                        {
                            ["TopicArn"] = new JsonObject { ["Ref"] = $"{id}Topic" },
                            ["Protocol"] = "sqs",
                            ["Endpoint"] = new JsonObject { ["Fn::GetAtt"] = new JsonArray($"{id}{g}Queue", "Arn") },
                            ["RawMessageDelivery"] = true,
                        },
                    };
                }
            }
            else
            {
                resources[$"{id}Dlq"] = Queue($"{p.Name}-dlq", fifo);
                var queue = Queue(p.Name, fifo, new JsonObject
                {
                    ["RedrivePolicy"] = new JsonObject { ["deadLetterTargetArn"] = new JsonObject { ["Fn::GetAtt"] = new JsonArray($"{id}Dlq", "Arn") }, ["maxReceiveCount"] = 10 },
                });
                if (fifo) queue["Metadata"] = Group(p);
                resources[$"{id}Queue"] = queue;
            }
        }
        return new JsonObject
        {
            ["AWSTemplateFormatVersion"] = "2010-09-09",
            ["Description"] = "Generated by factum catalog plan: an SNS topic per event with an SQS queue and dead-letter queue per consumer group; an SQS queue per command or query; FIFO topics and queues for ordered messages (publishers set MessageGroupId as each resource's Metadata says). SQS keeps messages at most 14 days and does not replay.",
            ["Resources"] = resources,
        };
    }

    /// <summary>A name as Markdown code when it is plain (no backtick, pipe or line break), else as escaped text.</summary>
    private static string Code(string name) => name.All(c => !char.IsControl(c) && c is not ('`' or '|' or '\\')) && name.Length > 0 ? $"`{name}`" : Escape.Markdown(name);

    private static string OrderingDoc(IReadOnlyList<PlannedChannel> plan, int replicas)
    {
        var sb = new StringBuilder($"# Ordering and retention\n\nGenerated by `factum catalog plan`. One topic per event type, one queue per command or query; a consumer group per consuming service, each with its dead-letter queue. Replicated over {replicas} node(s).\n\n");
        sb.AppendLine("| channel | kind | partitions | partition key | retention | producers | consumer groups (dead-letter queue) | ordering guarantee |");
        sb.AppendLine("|---|---|---:|---|---|---|---|---|");
        foreach (var p in plan)
        {
            string GroupText((string Group, string DeadLetterQueue) g) => $"{Escape.Markdown(g.Group)}{(p.InstancesOf(g.Group) > 1 ? $" ×{p.InstancesOf(g.Group)}" : "")} ({Code(g.DeadLetterQueue)})";
            sb.Append(CultureInfo.InvariantCulture, $"| {Code(p.Name)} | {p.Kind} | {p.Partitions} | {Escape.Markdown(p.PartitionKey ?? "-")} | {Days(p.Retention)} | {string.Join(", ", p.Producers.Select(Escape.Markdown))} | {string.Join(", ", p.Groups.Select(GroupText))} | {Escape.Markdown(p.Ordering)} |\n");
        }
        sb.AppendLine();
        sb.AppendLine("## Sizing");
        sb.AppendLine();
        foreach (var p in plan.Where(p => p.Kind == "topic")) sb.AppendLine(CultureInfo.InvariantCulture, $"- {Code(p.Name)}: {Escape.Markdown(p.Sizing)}.");
        var scaled = plan.SelectMany(p => p.Groups.Where(g => p.InstancesOf(g.Group) > 1).Select(g => (p, g.Group))).ToList();
        if (scaled.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("## Competing consumers");
            sb.AppendLine();
            foreach (var (p, group) in scaled)
            {
                var n = p.InstancesOf(group);
                var how = p.Ordered
                    ? "ordered, so one is active at a time (RabbitMQ single active consumer, NATS max_ack_pending 1) and the others take over when it stops; on Kafka each takes its share of the partitions, one member per partition."
                    : string.Create(CultureInfo.InvariantCulture, $"RabbitMQ: start {n} consumers on the queue with a prefetch of 10 each; NATS: {n} clients pulling from the durable; Kafka: {n} group members share the {p.Partitions} partition(s).");
                sb.AppendLine(CultureInfo.InvariantCulture, $"- {Escape.Markdown(group)} runs {n} instances for {Code(p.Name)}: {how}");
            }
        }
        return sb.ToString();
    }
}
