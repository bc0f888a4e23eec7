using System.Text.Json.Nodes;
using Factum.Design;

namespace Factum.Design.Tests;

/// <summary>Every generated topology enforces what the ordering document promises, broker by broker.</summary>
public sealed class TopologyOrderingTests : IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("factum-ordering-").FullName;

    public void Dispose() => Directory.Delete(_out, true);

    /// <summary>Per-key and total order on topics and on a queue with competing consumers, next to unordered messages.</summary>
    internal const string Ordered = """
        services:
          - {id: orders, publishes: [OrderPlaced, TickRecorded, PageViewed]}
          - {id: billing, consumes: [OrderPlaced, TickRecorded], sends: [CapturePayment], instances: 3}
          - {id: payments, consumes: [CapturePayment], instancesPerMessage: {CapturePayment: 4}}
          - {id: stats, consumes: [PageViewed, OrderPlaced]}
        events:
          - {name: OrderPlaced, owner: t, partitionKey: orderId, ordering: per-key, rate: 100/s}
          - {name: TickRecorded, owner: t, ordering: total, rate: 1000/s}
          - {name: PageViewed, owner: t, rate: 2000/s}
        commands:
          - {name: CapturePayment, owner: t, partitionKey: orderId, ordering: per-key}
        channels:
          - {id: payments, kind: queue, competingConsumers: true, messages: [CapturePayment]}
        """;

    [Fact]
    public void Each_broker_enforces_the_ordering_the_document_states()
    {
        var catalog = CatalogLoader.Parse(Ordered);
        TopologyPlanner.Write(catalog, _out);
        var plan = TopologyPlanner.Plan(catalog);
        var doc = File.ReadAllLines(Path.Combine(_out, "ordering-and-retention.md"));
        // The rows as read: Markdown's backslash escapes removed.
        string Row(string channel) => System.Text.RegularExpressions.Regex.Replace(doc.Single(l => l.StartsWith($"| `{channel}` |", StringComparison.Ordinal)), @"\\(.)", "$1");

        var rabbit = JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "rabbitmq", "definitions.json")))!["queues"]!.AsArray();
        bool Sac(string queue) => rabbit.Single(q => q!["name"]!.GetValue<string>() == queue)!["arguments"]!["x-single-active-consumer"]?.GetValue<bool>() == true;
        var nats = JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "nats", "consumers.json")))!.AsArray();
        var cfn = JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "aws", "sns-sqs.cloudformation.json")))!["Resources"]!.AsObject();
        var kafka = File.ReadAllText(Path.Combine(_out, "kafka", "create-topics.sh"));
        var asyncApi = JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "asyncapi.json")))!;

        foreach (var p in plan)
        {
            var row = Row(p.Name);
            var queues = p.Kind == "topic" ? p.Groups.Select(g => $"{p.Name}.{g.Group}").ToList() : [p.Name];
            var natsConsumers = nats.Where(c => c!["config"]!["filter_subject"]!.GetValue<string>() == $"{p.Name}.>").ToList();
            var sqsQueues = cfn.Where(r => r.Value!["Type"]!.GetValue<string>() == "AWS::SQS::Queue" && r.Value["Properties"]!["QueueName"]!.GetValue<string>().StartsWith(p.Name, StringComparison.Ordinal)).ToList();
            Assert.NotEmpty(sqsQueues);
            if (!p.Ordered)
            {
                Assert.DoesNotContain("single active consumer", row);
                Assert.All(queues, q => Assert.False(Sac(q), $"{q} needs no single active consumer"));
                Assert.All(natsConsumers, c => Assert.True(c!["config"]!["max_ack_pending"]!.GetValue<int>() > 1));
                Assert.All(sqsQueues, q => Assert.Null(q.Value!["Properties"]!["FifoQueue"]));
                continue;
            }
            // The document states each broker's mechanism...
            Assert.Contains("RabbitMQ: each queue has a single active consumer (x-single-active-consumer)", row);
            Assert.Contains("NATS: each durable consumer keeps one unacknowledged message (max_ack_pending 1)", row);
            Assert.Contains("SQS/SNS: FIFO", row);
            // ...and every broker's file does it. RabbitMQ: one active consumer per queue however many instances run.
            Assert.All(queues, q => Assert.True(Sac(q), $"RabbitMQ queue {q} of ordered {p.Name} has no single active consumer"));
            // NATS: one message in flight per durable consumer.
            Assert.Equal(p.Groups.Count, natsConsumers.Count);
            Assert.All(natsConsumers, c => Assert.Equal(1, c!["config"]!["max_ack_pending"]!.GetValue<int>()));
            // SQS/SNS: FIFO queues (and their dead-letter queues, which must be FIFO too) with the message group stated.
            Assert.All(sqsQueues, q =>
            {
                Assert.True(q.Value!["Properties"]!["FifoQueue"]!.GetValue<bool>(), $"{q.Key} is not FIFO");
                Assert.EndsWith(".fifo", q.Value["Properties"]!["QueueName"]!.GetValue<string>(), StringComparison.Ordinal);
            });
            var group = p.Message.Ordering == OrderingRequirement.PerKey ? $"MessageGroupId = {p.PartitionKey}" : "MessageGroupId = one constant group";
            Assert.Contains(group, row);
            Assert.All(sqsQueues.Where(q => !q.Key.EndsWith("Dlq", StringComparison.Ordinal)), q => Assert.Contains(p.Message.Ordering == OrderingRequirement.PerKey ? p.PartitionKey! : "constant", q.Value!["Metadata"]!["Factum"]!["MessageGroupId"]!.GetValue<string>()));
            if (p.Kind == "topic")
            {
                var topic = cfn.Single(r => r.Value!["Type"]!.GetValue<string>() == "AWS::SNS::Topic" && r.Value["Properties"]!["TopicName"]!.GetValue<string>() == p.Name + ".fifo");
                Assert.True(topic.Value!["Properties"]!["FifoTopic"]!.GetValue<bool>());
                // Kafka: per key, records keyed by the partition key; total, a single partition.
                Assert.Contains($"--topic '{p.Name}' --partitions {p.Partitions} ", kafka);
                if (p.Message.Ordering == OrderingRequirement.Total)
                {
                    Assert.Equal(1, p.Partitions);
                    Assert.Contains("Kafka: a single partition", row);
                }
                else
                {
                    Assert.Contains($"Kafka: records are keyed by {p.PartitionKey}", row);
                    Assert.Equal($"the payload's {p.PartitionKey}", asyncApi["components"]!["messages"]![p.Name]!["bindings"]!["kafka"]!["key"]!["description"]!.GetValue<string>());
                }
            }
        }
        // The queue the competing consumers share is the case that broke: per-key order on a queue with 4 instances.
        Assert.True(Sac("CapturePayment"));
        Assert.Contains("payments ×4", Row("CapturePayment"));
    }

    [Fact]
    public void Competing_consumer_counts_size_topics_and_are_stated()
    {
        var catalog = CatalogLoader.Parse(Ordered.Replace("rate: 2000/s", "rate: 1/s", StringComparison.Ordinal).Replace("{id: stats, consumes: [PageViewed, OrderPlaced]}", "{id: stats, consumes: [PageViewed, OrderPlaced], instances: 12}", StringComparison.Ordinal));
        var plan = TopologyPlanner.Plan(catalog).ToDictionary(p => p.Name);
        Assert.Equal(12, plan["PageViewed"].Partitions); // 1/s needs one partition; twelve members need twelve
        Assert.Contains("at least 12 for the largest consumer group's 12 members", plan["PageViewed"].Sizing);
        Assert.Equal(1, plan["TickRecorded"].Partitions); // total order: one partition whatever the members
        TopologyPlanner.Write(catalog, _out);
        var doc = File.ReadAllText(Path.Combine(_out, "ordering-and-retention.md"));
        Assert.Contains("- stats runs 12 instances for `PageViewed`: RabbitMQ: start 12 consumers", doc);
        Assert.Contains("- billing runs 3 instances for `OrderPlaced`: ordered, so one is active at a time", doc);
        var asyncApi = File.ReadAllText(Path.Combine(_out, "asyncapi.json"));
        Assert.Contains("consumer group payments of 4 competing consumers", asyncApi);
    }
}
