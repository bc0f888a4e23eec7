using System.Text.Json.Nodes;
using Factum.Design;

namespace Factum.Design.Tests;

public sealed class TopologyTests : IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("factum-topology-").FullName;

    public void Dispose() => Directory.Delete(_out, true);


    private static EventCatalogModel Sample() => CatalogLoader.Load([Repo.SampleCatalog]);

    [Fact]
    public void The_plan_has_a_topic_per_event_a_group_per_consuming_service_and_a_dlq_per_group()
    {
        var plan = TopologyPlanner.Plan(Sample()).ToDictionary(p => p.Name);
        var placed = plan["OrderPlaced"];
        Assert.Equal(("topic", "orderId"), (placed.Kind, placed.PartitionKey));
        Assert.Equal(["analytics", "billing", "shipping"], placed.Groups.Select(g => g.Group));
        Assert.Equal("OrderPlaced.billing.dlq", placed.Groups.Single(g => g.Group == "billing").DeadLetterQueue);
        Assert.Equal(TimeSpan.FromDays(30), placed.Retention);
        Assert.Contains("ordered per orderId", placed.Ordering);
        Assert.Equal("queue", plan["CapturePayment"].Kind);

        var fast = CatalogLoader.Parse("events:\n  - {name: TickRecorded, owner: t, rate: 3000/s}\n  - {name: PingSent, owner: t}\n");
        var sized = TopologyPlanner.Plan(fast).ToDictionary(p => p.Name);
        Assert.Equal(15, sized["TickRecorded"].Partitions); // ceil(3000 / 200)
        Assert.Equal(1, sized["PingSent"].Partitions);
        Assert.Contains("ceil(3000/s", sized["TickRecorded"].Sizing);
    }

    [Fact]
    public void The_broker_files_describe_the_same_topology()
    {
        var files = TopologyPlanner.Write(Sample(), _out, "Order fulfilment");
        Assert.Equal(8, files.Count);
        var rabbit = JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "rabbitmq", "definitions.json")))!;
        var queues = rabbit["queues"]!.AsArray().Select(q => q!["name"]!.GetValue<string>()).ToList();
        Assert.Contains("OrderPlaced.billing", queues);
        Assert.Contains("OrderPlaced.billing.dlq", queues);
        var billing = rabbit["queues"]!.AsArray().Single(q => q!["name"]!.GetValue<string>() == "OrderPlaced.billing")!;
        Assert.Equal("OrderPlaced.billing.dlq", billing["arguments"]!["x-dead-letter-exchange"]!.GetValue<string>());
        Assert.Contains(rabbit["bindings"]!.AsArray(), b => b!["source"]!.GetValue<string>() == "OrderPlaced" && b["destination"]!.GetValue<string>() == "OrderPlaced.shipping");
        var kafka = File.ReadAllText(Path.Combine(_out, "kafka", "create-topics.sh"));
        Assert.Contains("--topic 'OrderPlaced' --partitions 3 --replication-factor 3 --config retention.ms=2592000000", kafka);
        Assert.Contains("kind: KafkaTopic", File.ReadAllText(Path.Combine(_out, "kafka", "strimzi-topics.yaml")));
        var nats = JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "nats", "consumers.json")))!.AsArray();
        Assert.Contains(nats, c => c!["config"]!["durable_name"]!.GetValue<string>() == "billing" && c["config"]!["max_ack_pending"]!.GetValue<int>() == 1);
        var cfn = JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "aws", "sns-sqs.cloudformation.json")))!;
        Assert.Equal("AWS::SNS::Topic", cfn["Resources"]!["OrderPlacedTopic"]!["Type"]!.GetValue<string>());
        var doc = File.ReadAllText(Path.Combine(_out, "ordering-and-retention.md"));
        Assert.Contains("| `OrderPlaced` | topic | 3 | orderId | 30 days |", doc);
    }

    [Fact]
    public void The_asyncapi_document_is_accepted_by_the_official_parser()
    {
        TopologyPlanner.Write(Sample(), _out, "Order fulfilment");
        var doc = JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "asyncapi.json")))!;
        Assert.Equal("3.0.0", doc["asyncapi"]!.GetValue<string>());
        Assert.Equal("$message.header#/correlationId", doc["components"]!["messages"]!["OrderPlaced"]!["correlationId"]!["location"]!.GetValue<string>());
        Assert.Equal(3, doc["channels"]!["OrderPlaced"]!["bindings"]!["kafka"]!["partitions"]!.GetValue<int>());

        var (exit, output) = Validate(Path.Combine(_out, "asyncapi.json"));
        Assert.True(exit == 0, $"the parser rejected the document:\n{output}");
        var summary = JsonNode.Parse(output.Split('\n').Last(l => l.StartsWith("{\"valid\"", StringComparison.Ordinal)))!;
        Assert.True(summary["valid"]!.GetValue<bool>());
        Assert.Equal(11, summary["messages"]!.GetValue<int>());
        Assert.Equal(24, summary["channels"]!.GetValue<int>()); // 11 channels and 13 dead-letter queues
    }

    private static (int Exit, string Output) Validate(string document)
    {
        var tool = Repo.NodeTools;
        Assert.True(Directory.Exists(Path.Combine(tool, "node_modules", "@asyncapi", "parser")),
            "The AsyncAPI parser is not installed: run ./test.sh (it installs it) or `npm install` in tools/node.");
        return Repo.Run("node", tool, null, Path.Combine(tool, "validate.mjs"), document);
    }

    [Fact]
    public void A_broken_document_is_rejected_by_the_parser_too()
    {
        // Proves the check can fail, and that it is the parser that decides: a minimal valid document is accepted with
        // the parser's summary, and an operation whose channel does not exist is rejected with the parser's diagnostic.
        var valid = Path.Combine(_out, "valid.json");
        File.WriteAllText(valid, """{"asyncapi":"3.0.0","info":{"title":"x","version":"1"}}""");
        var (ok, okOutput) = Validate(valid);
        Assert.True(ok == 0, okOutput);
        Assert.Contains("{\"valid\":true,\"version\":\"3.0.0\"", okOutput);

        var broken = Path.Combine(_out, "broken.json");
        File.WriteAllText(broken, """{"asyncapi":"3.0.0","info":{"title":"x","version":"1"},"operations":{"op":{"action":"send","channel":{"$ref":"#/channels/missing"}}}}""");
        var (exit, output) = Validate(broken);
        Assert.Equal(1, exit);
        Assert.Contains("\"code\":\"invalid-ref\"", output);
        Assert.Contains("'#/channels/missing' does not exist", output);
        Assert.Contains("{\"valid\":false}", output);
    }
}
