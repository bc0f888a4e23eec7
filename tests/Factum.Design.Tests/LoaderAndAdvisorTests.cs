using Factum.Design;

namespace Factum.Design.Tests;

[EventType("InvoiceIssued", Owner = "billing", Classification = EventClassification.Integration)]
public sealed record InvoiceIssued(string InvoiceId, decimal Amount, string[] Lines);

public sealed class LoaderAndAdvisorTests
{
    [Theory]
    [InlineData("events:\n  - name: A\n    ordering: sometimes\n", 3, "'ordering' is 'sometimes'; expected one of none, per-key, total")]
    [InlineData("events:\n  - name: A\n    rate: fast\n", 3, "'rate' is 'fast'")]
    [InlineData("events:\n  - name: A\n    retention: forever\n", 3, "'retention' is 'forever'")]
    [InlineData("topics: []\n", 1, "unknown section 'topics'")]
    [InlineData("events:\n  - name: A\n  - [x]\n", 3, "must be a mapping")]
    [InlineData("events: {name: A}\n", 1, "'events' must be a list")]
    [InlineData("events:\n  - name: A\n    versions:\n      - schema: {}\n", 4, "a version needs 'version: N'")]
    [InlineData("events:\n  - name: A\n    versions:\n      - version: 1\n        schemaFile: nope.json\n", 5, "schema file 'nope.json' not found")]
    [InlineData("events:\n  - name: A\n  description: [unclosed\n", 3, "not valid YAML")]
    [InlineData("services:\n  - domain: x\n", 2, "'id' is required")]
    public void Bad_catalogs_name_the_file_the_line_and_the_problem(string yaml, int line, string problem)
    {
        var ex = Assert.Throws<CatalogFormatException>(() => CatalogLoader.Parse(yaml, "bad.yaml"));
        Assert.Equal("bad.yaml", ex.File);
        Assert.Equal(line, ex.Line);
        Assert.Contains(problem, ex.Message);
        Assert.StartsWith($"bad.yaml:{line}: ", ex.Message);
    }

    [Fact]
    public void Folders_merge_files_and_services_extend_across_them()
    {
        var dir = Directory.CreateTempSubdirectory("factum-catalog-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "a.yaml"), "services:\n  - {id: orders, publishes: [OrderPlaced]}\n");
            Directory.CreateDirectory(Path.Combine(dir, "events"));
            File.WriteAllText(Path.Combine(dir, "events", "b.yml"), "events:\n  - {name: OrderPlaced, owner: t}\nservices:\n  - {id: orders, consumes: [OrderPlaced]}\n");
            var catalog = CatalogLoader.Load([dir]);
            var orders = Assert.Single(catalog.Services);
            Assert.Equal(["OrderPlaced"], orders.Publishes);
            Assert.Equal(["OrderPlaced"], orders.Consumes);
            Assert.Throws<CatalogFormatException>(() => CatalogLoader.Load([Path.Combine(dir, "missing")]));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void The_code_first_registry_becomes_catalog_messages_with_generated_schemas()
    {
        var registry = new EventTypeRegistry().Register<InvoiceIssued>();
        var catalog = CodeCatalog.FromRegistry(registry);
        var m = Assert.Single(catalog.Messages);
        Assert.Equal(("InvoiceIssued", "integration", "billing"), (m.Name, m.Classification, m.Owners[0]));
        var schema = m.Latest!.Schema!;
        Assert.Equal("object", schema["type"]!.ToString());
        Assert.NotNull(schema["properties"]!["invoiceId"]);
        Assert.Equal("array", schema["properties"]!["lines"]!["type"]!.ToString());
    }

    private static EventCatalogModel Catalog(double rate, bool tenants = false) => CatalogLoader.Parse($$"""
        system: {multiTenant: {{(tenants ? "true" : "false")}}}
        services:
          - {id: a, publishes: [OrderPlaced], sends: [ShipOrder], requests: [GetStock]}
          - {id: b, consumes: [OrderPlaced, ShipOrder, GetStock, PriceChanged]}
          - {id: c, publishes: [PriceChanged]}
        events:
          - {name: OrderPlaced, owner: a, ordering: per-key, partitionKey: orderId, replay: true, retention: 30d, rate: {{rate}}}
          - {name: PriceChanged, owner: c, rate: 1}
        commands:
          - {name: ShipOrder, owner: b}
        queries:
          - {name: GetStock, owner: b}
        """);

    [Fact]
    public void The_advisor_picks_a_pattern_per_message_and_explains_it()
    {
        var advice = Advisor.Advise(Catalog(50));
        var p = advice.Patterns.ToDictionary(x => x.Message);
        Assert.Equal(MessagingPattern.EventStreaming, p["OrderPlaced"].Pattern);
        Assert.Contains("replay", p["OrderPlaced"].Reason);
        Assert.Equal(MessagingPattern.PubSub, p["PriceChanged"].Pattern);
        Assert.Equal(MessagingPattern.Queue, p["ShipOrder"].Pattern);
        Assert.Equal(MessagingPattern.RequestReply, p["GetStock"].Pattern);
        Assert.All(advice.Patterns, x => Assert.EndsWith(".", x.Reason));
    }

    [Fact]
    public void The_broker_table_scores_every_broker_with_reasons_and_follows_the_requirements()
    {
        var small = Advisor.Advise(Catalog(50));
        Assert.Equal(6, small.Brokers.Count);
        Assert.Equal(["Amazon SQS/SNS", "Apache Pulsar", "Factum embedded", "Kafka", "NATS JetStream", "RabbitMQ"], small.Brokers.Select(b => b.Broker).Order());
        Assert.All(small.Brokers, b => Assert.Equal(Advisor.Criteria, b.Scores.Select(s => s.Criterion)));
        Assert.All(small.Brokers.SelectMany(b => b.Scores), s => { Assert.InRange(s.Score, 0, 5); Assert.False(string.IsNullOrEmpty(s.Reason)); });
        Assert.NotEqual("Apache Pulsar", small.Brokers[0].Broker); // heavy to run for 51 messages/s
        Assert.Contains(small.Brokers[0].Broker, small.Recommendation);

        var big = Advisor.Advise(Catalog(200_000));
        Assert.Equal("Kafka", big.Brokers[0].Broker); // Pulsar needs a declared isolation need to be advised
        Assert.Equal(0, big.Brokers.Single(b => b.Broker == "Factum embedded").Scores.Single(s => s.Criterion == "throughput").Score);
        var tenants = Advisor.Advise(Catalog(200_000, tenants: true));
        Assert.Equal("Apache Pulsar", tenants.Brokers[0].Broker);
        Assert.Contains(tenants.Requirements, r => r.Contains("tenants"));
    }
}

[EventType("RefundRequestedByCustomer", Kind = MessageKind.Command, AllowNonConventionalName = true)]
public sealed record IssueRefund(string OrderId);

public sealed class RefundHandler : Factum.Messaging.IMessageHandler<IssueRefund>
{
    public Task HandleAsync(IssueRefund message, Factum.Messaging.MessageContext context, CancellationToken cancellationToken) => Task.CompletedTask;
}

public sealed class CodeFirstServiceTests
{
    [Fact]
    public void Handlers_in_an_assembly_become_what_its_service_consumes()
    {
        var registry = new EventTypeRegistry().RegisterAssembly(typeof(CodeFirstServiceTests).Assembly);
        var service = Assert.Single(CodeCatalog.ServicesOf(typeof(CodeFirstServiceTests).Assembly, registry));
        Assert.Equal("Factum.Design.Tests", service.Id);
        Assert.Contains("RefundRequestedByCustomer", service.Consumes);
        var catalog = CodeCatalog.FromAssembly(typeof(CodeFirstServiceTests).Assembly.Location);
        Assert.Contains(catalog.Messages, m => m.Name == "InvoiceIssued");
        Assert.Contains(catalog.Services, s => s.Consumes.Contains("RefundRequestedByCustomer"));
    }
}
