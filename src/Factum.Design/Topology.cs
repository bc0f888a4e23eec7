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
public sealed record PlannedChannel(string Name, CatalogMessage Message, string Kind, int Partitions, string? PartitionKey, TimeSpan Retention,
    IReadOnlyList<string> Producers, IReadOnlyList<(string Group, string DeadLetterQueue)> Groups, string Ordering, string Sizing);

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
            var isTopic = m.Kind == CatalogMessageKind.Event;
            var byRate = (int)Math.Ceiling((m.Rate ?? 0) / RatePerPartition);
            var keyed = m.PartitionKey is not null;
            var partitions = isTopic ? Math.Clamp(Math.Max(byRate, keyed ? 3 : 1), 1, 64) : 1;
            var sizing = isTopic
                ? $"ceil({m.Rate?.ToString("0.#", CultureInfo.InvariantCulture) ?? "0"}/s ÷ {RatePerPartition}/s per partition) = {byRate}" + (keyed ? ", at least 3 so a keyed topic can scale out" : "") + $" → {partitions}"
                : "a queue";
            var ordering = m.Ordering switch
            {
                OrderingRequirement.PerKey => $"ordered per {m.PartitionKey ?? "key"}: records of one key go to one partition, read by one group member at a time; no order across keys",
                OrderingRequirement.Total => partitions == 1 ? "total order: a single partition" : "total order was asked for, but the topic has several partitions: only per-key order holds",
                _ => isTopic ? $"no order required; per-partition order by {(keyed ? m.PartitionKey : "publish order")}" : "FIFO per queue; competing consumers handle messages in parallel",
            };
            return new PlannedChannel(m.Name, m, isTopic ? "topic" : "queue", partitions, m.PartitionKey, m.Retention ?? TimeSpan.FromDays(7),
                catalog.ProducersOf(m), consumers.Select(c => (c, $"{m.Name}.{c}.dlq")).ToList(), ordering, sizing);
        }).ToList();
    }

    /// <summary>Writes every artifact to <paramref name="outDir"/>; returns the files written.</summary>
    public static IReadOnlyList<string> Write(EventCatalogModel catalog, string outDir, string title = "Factum catalog")
    {
        ArgumentNullException.ThrowIfNull(catalog);
        Directory.CreateDirectory(outDir);
        var plan = Plan(catalog);
        var files = new List<(string Name, string Content)>
        {
            ("asyncapi.json", AsyncApi(catalog, plan, title).ToJsonString(Indented)),
            ("kafka/create-topics.sh", KafkaScript(plan)),
            ("kafka/strimzi-topics.yaml", Strimzi(plan)),
            ("rabbitmq/definitions.json", RabbitDefinitions(plan).ToJsonString(Indented)),
            ("nats/streams.json", NatsStreams(plan).ToJsonString(Indented)),
            ("nats/consumers.json", NatsConsumers(plan).ToJsonString(Indented)),
            ("aws/sns-sqs.cloudformation.json", CloudFormation(plan).ToJsonString(Indented)),
            ("ordering-and-retention.md", OrderingDoc(plan)),
        };
        var output = new OutputFolder(outDir);
        foreach (var (name, content) in files) output.Save(name, content);
        return output.Files;
    }

    private static JsonObject Ref(string pointer) => new() { ["$ref"] = pointer };

    /// <summary>An AsyncAPI component key: only letters, digits and '_' (other characters become '_').</summary>
    private static string Id(string s) => new(s.Select(c => char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '_').ToArray());

    /// <summary>The AsyncAPI 3.0.0 document: a channel per topic, queue and dead-letter queue, operations per producer and consumer, messages with payload schemas, envelope headers and the correlation id.</summary>
    public static JsonObject AsyncApi(EventCatalogModel catalog, IReadOnlyList<PlannedChannel> plan, string title)
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
                ["correlationId"] = new JsonObject { ["description"] = "The business process this message belongs to.", ["location"] = "$message.header#/correlationId" },
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
                        ["replicas"] = 3,
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
                    ["summary"] = $"{producer} {(m.Kind == CatalogMessageKind.Event ? "publishes" : "sends")} {m.Name}",
                    ["messages"] = new JsonArray(Ref($"#/channels/{chId}/messages/{msgId}")),
                };
            }
            foreach (var (group, dlq) in p.Groups)
            {
                operations[Unique(operations, Id($"{group}_receives_{m.Name}"))] = new JsonObject
                {
                    ["action"] = "receive",
                    ["channel"] = Ref($"#/channels/{chId}"),
                    ["summary"] = $"{group} consumes {m.Name} (consumer group {group}; failures go to {dlq})",
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

    private static string Days(TimeSpan t) => t.TotalDays >= 1 ? $"{t.TotalDays:0.#} days" : $"{t.TotalHours:0.#} hours";

    private static string KafkaScript(IReadOnlyList<PlannedChannel> plan)
    {
        var sb = new StringBuilder("#!/bin/sh\n# Generated by factum catalog plan. BOOTSTRAP defaults to localhost:9092.\nset -e\nBOOTSTRAP=${BOOTSTRAP:-localhost:9092}\n");
        foreach (var p in plan.Where(p => p.Kind == "topic"))
        {
            sb.Append(CultureInfo.InvariantCulture, $"kafka-topics.sh --bootstrap-server \"$BOOTSTRAP\" --create --if-not-exists --topic {Escape.Shell(p.Name)} --partitions {p.Partitions} --replication-factor 3 --config retention.ms={(long)p.Retention.TotalMilliseconds} --config cleanup.policy=delete\n");
            foreach (var (_, dlq) in p.Groups)
                sb.Append(CultureInfo.InvariantCulture, $"kafka-topics.sh --bootstrap-server \"$BOOTSTRAP\" --create --if-not-exists --topic {Escape.Shell(dlq)} --partitions 1 --replication-factor 3 --config retention.ms={(long)TimeSpan.FromDays(14).TotalMilliseconds}\n");
        }
        return sb.ToString();
    }

    private static string Strimzi(IReadOnlyList<PlannedChannel> plan)
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
                  replicas: 3
                  config:
                    retention.ms: {(long)retention.TotalMilliseconds}
                    cleanup.policy: delete

                """);
            Topic(p.Name, p.Partitions, p.Retention);
            foreach (var (_, dlq) in p.Groups) Topic(dlq, 1, TimeSpan.FromDays(14));
        }
        return sb.ToString();
    }

    /// <summary>RabbitMQ definitions (rabbitmqctl import_definitions): a fanout exchange per topic, a quorum queue per consumer group bound to it, a dead-letter exchange and queue per group; a quorum queue per command or query.</summary>
    private static JsonObject RabbitDefinitions(IReadOnlyList<PlannedChannel> plan)
    {
        var exchanges = new JsonArray();
        var queues = new JsonArray();
        var bindings = new JsonArray();
        JsonObject Queue(string name, string? dlx) => new()
        {
            ["name"] = name,
            ["vhost"] = "/",
            ["durable"] = true,
            ["auto_delete"] = false,
            ["arguments"] = dlx is null
                ? new JsonObject { ["x-queue-type"] = "quorum" }
                : new JsonObject { ["x-queue-type"] = "quorum", ["x-dead-letter-exchange"] = dlx, ["x-dead-letter-strategy"] = "at-least-once", ["x-overflow"] = "reject-publish", ["x-delivery-limit"] = 10 },
        };
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
                    queues.Add(Queue(queue, dlq));
                    queues.Add(Queue(dlq, null));
                    bindings.Add(Binding(p.Name, queue));
                    bindings.Add(Binding(dlq, dlq));
                }
            }
            else
            {
                var dlq = $"{p.Name}.dlq";
                exchanges.Add(Exchange(dlq, "fanout"));
                queues.Add(Queue(p.Name, dlq));
                queues.Add(Queue(dlq, null));
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

    private static JsonArray NatsStreams(IReadOnlyList<PlannedChannel> plan) => new(plan.Select(p => (JsonNode)new JsonObject
    {
        ["name"] = Id(p.Name).ToUpperInvariant(),
        ["subjects"] = new JsonArray($"{p.Name}.>"),
        ["retention"] = p.Kind == "topic" ? "limits" : "workqueue",
        ["storage"] = "file",
        ["num_replicas"] = 3,
        ["max_age"] = (long)p.Retention.TotalMilliseconds * 1_000_000,
        ["discard"] = "old",
        ["duplicate_window"] = 120_000_000_000L,
        ["description"] = $"{p.Message.Name}: {p.Ordering}. Publish to {p.Name}.<{p.PartitionKey ?? "id"}> so each key keeps its order.",
    }).ToArray());

    private static JsonArray NatsConsumers(IReadOnlyList<PlannedChannel> plan) => new(plan.SelectMany(p => p.Groups.Select(g => (JsonNode)new JsonObject
    {
        ["stream_name"] = Id(p.Name).ToUpperInvariant(),
        ["config"] = new JsonObject
        {
            ["durable_name"] = g.Group,
            ["ack_policy"] = "explicit",
            ["ack_wait"] = 30_000_000_000L,
            ["max_deliver"] = 10,
            ["max_ack_pending"] = p.Message.Ordering == OrderingRequirement.None ? 1000 : 1,
            ["deliver_policy"] = "all",
            ["filter_subject"] = $"{p.Name}.>",
            ["description"] = $"{g.Group} consumes {p.Message.Name}; after max_deliver the message is copied to {g.DeadLetterQueue}",
        },
    })).ToArray());

    private static JsonObject CloudFormation(IReadOnlyList<PlannedChannel> plan)
    {
        var resources = new JsonObject();
        foreach (var p in plan)
        {
            var id = new string(Id(p.Name).Where(char.IsAsciiLetterOrDigit).ToArray());
            if (p.Kind == "topic")
            {
                resources[$"{id}Topic"] = new JsonObject { ["Type"] = "AWS::SNS::Topic", ["Properties"] = new JsonObject { ["TopicName"] = p.Name } };
                foreach (var (group, dlq) in p.Groups)
                {
                    var g = new string(Id(group).Where(char.IsAsciiLetterOrDigit).ToArray());
                    resources[$"{id}{g}Dlq"] = new JsonObject { ["Type"] = "AWS::SQS::Queue", ["Properties"] = new JsonObject { ["QueueName"] = dlq, ["MessageRetentionPeriod"] = 1_209_600 } };
                    resources[$"{id}{g}Queue"] = new JsonObject
                    {
                        ["Type"] = "AWS::SQS::Queue",
                        ["Properties"] = new JsonObject
                        {
                            ["QueueName"] = $"{p.Name}-{group}",
                            ["MessageRetentionPeriod"] = (int)Math.Min(1_209_600, p.Retention.TotalSeconds),
                            ["RedrivePolicy"] = new JsonObject { ["deadLetterTargetArn"] = new JsonObject { ["Fn::GetAtt"] = new JsonArray($"{id}{g}Dlq", "Arn") }, ["maxReceiveCount"] = 10 },
                        },
                    };
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
                resources[$"{id}Dlq"] = new JsonObject { ["Type"] = "AWS::SQS::Queue", ["Properties"] = new JsonObject { ["QueueName"] = $"{p.Name}-dlq" } };
                resources[$"{id}Queue"] = new JsonObject
                {
                    ["Type"] = "AWS::SQS::Queue",
                    ["Properties"] = new JsonObject
                    {
                        ["QueueName"] = p.Name,
                        ["RedrivePolicy"] = new JsonObject { ["deadLetterTargetArn"] = new JsonObject { ["Fn::GetAtt"] = new JsonArray($"{id}Dlq", "Arn") }, ["maxReceiveCount"] = 10 },
                    },
                };
            }
        }
        return new JsonObject
        {
            ["AWSTemplateFormatVersion"] = "2010-09-09",
            ["Description"] = "Generated by factum catalog plan: an SNS topic per event with an SQS queue and dead-letter queue per consumer group; an SQS queue per command or query. SQS keeps messages at most 14 days and does not replay.",
            ["Resources"] = resources,
        };
    }

    /// <summary>A name as Markdown code when it is plain (no backtick, pipe or line break), else as escaped text.</summary>
    private static string Code(string name) => name.All(c => !char.IsControl(c) && c is not ('`' or '|' or '\\')) && name.Length > 0 ? $"`{name}`" : Escape.Markdown(name);

    private static string OrderingDoc(IReadOnlyList<PlannedChannel> plan)
    {
        var sb = new StringBuilder("# Ordering and retention\n\nGenerated by `factum catalog plan`. One topic per event type, one queue per command or query; a consumer group per consuming service, each with its dead-letter queue.\n\n");
        sb.AppendLine("| channel | kind | partitions | partition key | retention | producers | consumer groups (dead-letter queue) | ordering guarantee |");
        sb.AppendLine("|---|---|---:|---|---|---|---|---|");
        foreach (var p in plan)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| {Code(p.Name)} | {p.Kind} | {p.Partitions} | {Escape.Markdown(p.PartitionKey ?? "-")} | {Days(p.Retention)} | {string.Join(", ", p.Producers.Select(Escape.Markdown))} | {string.Join(", ", p.Groups.Select(g => $"{Escape.Markdown(g.Group)} ({Code(g.DeadLetterQueue)})"))} | {Escape.Markdown(p.Ordering)} |\n");
        }
        sb.AppendLine();
        sb.AppendLine("## Sizing");
        sb.AppendLine();
        foreach (var p in plan.Where(p => p.Kind == "topic")) sb.AppendLine(CultureInfo.InvariantCulture, $"- {Code(p.Name)}: {Escape.Markdown(p.Sizing)}.");
        return sb.ToString();
    }
}
