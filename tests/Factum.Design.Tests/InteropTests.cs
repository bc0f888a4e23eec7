using System.Text.Json.Nodes;
using Factum.Design;
using Factum.InMemory;

namespace Factum.Design.Tests;

public sealed class InteropTests : IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("factum-interop-").FullName;

    public void Dispose() => Directory.Delete(_out, true);

    private static EventData Ev(string type, string json, int version = 1) => EventData.FromJson(type, json) with { SchemaVersion = version };

    [Fact]
    public async Task Discovery_reports_types_versions_categories_schemas_and_causation_flows()
    {
        var store = new InMemoryEventStore();
        var placed = Ev("OrderPlaced", """{"orderId":"1","total":5,"items":["a"]}""");
        await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.NoStream, [placed]);
        await store.AppendAsync(StreamId.Parse("Order-2"), ExpectedVersion.NoStream, [Ev("OrderPlaced", """{"orderId":"2","total":7.5,"items":[],"note":"gift"}""")]);
        using (EventContext.Begin("c-1", placed.EventId.ToString()))
            await store.AppendAsync(StreamId.Parse("Payment-1"), ExpectedVersion.NoStream, [Ev("PaymentCaptured", """{"orderId":"1"}""", 2)]);

        var o = await Discovery.ObserveAsync(store);
        Assert.Equal(3, o.Events);
        var orders = o.Types.Single(t => t.Type == "OrderPlaced");
        Assert.Equal(2, orders.Count);
        Assert.Equal(2, orders.Categories["Order"]);
        var props = (JsonObject)orders.Schema["properties"]!;
        Assert.Equal("number", props["total"]!["type"]!.GetValue<string>());     // 5 and 7.5 merge to number
        Assert.Equal(["orderId", "total", "items"], orders.Schema["required"]!.AsArray().Select(x => x!.GetValue<string>()));   // note is optional
        Assert.Equal("string", props["note"]!["type"]!.GetValue<string>());
        Assert.Equal(2, o.Types.Single(t => t.Type == "PaymentCaptured").Versions.Keys.Single());
        Assert.Equal(1, o.Causes[("OrderPlaced", "PaymentCaptured")]);

        var catalog = Discovery.ToCatalog(o, "store");
        var payment = catalog.Service("payment")!;
        Assert.Equal(["PaymentCaptured"], payment.Publishes);
        Assert.Equal(["OrderPlaced"], payment.Consumes);
        // The YAML it writes reads back as the same catalog.
        var back = CatalogLoader.Parse(Discovery.ToYaml(catalog, "test"));
        Assert.Empty(CatalogDiff.Compare(catalog, back));
    }

    [Fact]
    public void Diff_reports_disagreements_between_sources()
    {
        var yaml = CatalogLoader.Parse("""
            services: [{id: orders, publishes: [OrderPlaced]}, {id: billing, consumes: [OrderPlaced]}]
            events:
              - {name: OrderPlaced, owner: sales, versions: [{version: 1, schema: {type: object, properties: {orderId: {type: string}, total: {type: number}}}}]}
              - {name: OrderShipped, owner: sales}
            """);
        var other = CatalogLoader.Parse("""
            services: [{id: orders, publishes: [OrderPlaced]}]
            events:
              - {name: OrderPlaced, owner: checkout, versions: [{version: 1, schema: {type: object, properties: {orderId: {type: integer}, currency: {type: string}}}}]}
            commands:
              - {name: ShipOrder}
            """);
        var d = CatalogDiff.Compare(yaml, other);
        Assert.Contains(d, x => x.Entity == "OrderShipped" && x.Aspect == "presence" && x.Right == "missing");
        Assert.Contains(d, x => x.Entity == "ShipOrder" && x.Left == "missing");
        Assert.Contains(d, x => x.Entity == "OrderPlaced" && x.Aspect == "owner");
        Assert.Contains(d, x => x.Aspect == "schema v1 type of orderId" && x.Left == "\"string\"" && x.Right == "\"integer\"");
        Assert.Contains(d, x => x.Aspect == "schema v1 property" && x.Left == "total");
        Assert.Contains(d, x => x.Aspect == "schema v1 property" && x.Right == "currency");
        Assert.Contains(d, x => x.Aspect == "consumers" && x.Left == "billing" && x.Right == "");
        Assert.Empty(CatalogDiff.Compare(yaml, yaml));
    }

    [Fact]
    public void An_event_storming_board_becomes_a_catalog_skeleton()
    {
        var board = """
            contexts:
              - name: Ordering
                actors: [Customer]
                commands:
                  - {name: PlaceOrder, actor: Customer, aggregate: Order, emits: [OrderPlaced]}
                events:
                  - {name: OrderPlaced, aggregate: Order}
                readModels:
                  - {name: OrderHistory, from: [OrderPlaced, PaymentCaptured]}
              - name: Billing
                events:
                  - {name: PaymentCaptured, aggregate: Payment}
                commands:
                  - {name: CapturePayment, aggregate: Payment, emits: [PaymentCaptured]}
                policies:
                  - {name: ChargeWhenOrdered, when: OrderPlaced, then: CapturePayment}
                externalSystems:
                  - {name: PaymentProvider, consumes: [CapturePayment]}
            """;
        var catalog = StormingImport.Import(board, "board.yaml");
        Assert.Equal(["billing", "ordering"], catalog.Domains.Select(d => d.Id).Order());
        Assert.Equal(CatalogMessageKind.Command, catalog.Message("PlaceOrder")!.Kind);
        Assert.Equal(["OrderPlaced"], catalog.Service("order")!.Publishes);
        Assert.Equal(["PlaceOrder"], catalog.Service("order")!.Consumes);
        var policy = catalog.Service("charge-when-ordered")!;
        Assert.Equal(["OrderPlaced"], policy.Consumes);
        Assert.Equal(["CapturePayment"], policy.Sends);
        Assert.Equal(["OrderPlaced", "PaymentCaptured"], catalog.Service("order-history")!.Consumes);
        // The skeleton is a catalog the linter can read: only the gaps the workshop leaves are reported.
        var findings = LintRules.Lint(CatalogLoader.Parse(Discovery.ToYaml(catalog, "x")));
        Assert.DoesNotContain(findings, f => f.Rule is "mapping/unknown-reference" or "mapping/consumer-without-producer" or "naming/event-past-tense" or "classification/cross-domain");
        Assert.Equal("integration", catalog.Message("OrderPlaced")!.Classification);      // consumed by billing's policy
        Assert.Equal(["PlaceOrder"], catalog.Service("customer")!.Sends);                 // the actor sends the command
        Assert.Contains("'name' is required", Assert.Throws<CatalogFormatException>(() => StormingImport.Import("contexts:\n  - events: []\n", "b.yaml")).Message);
    }

    [Fact]
    public void The_eventcatalog_export_writes_index_mdx_with_frontmatter_and_versioned_folders()
    {
        var catalog = CatalogLoader.Load([Repo.SampleCatalog]);
        var files = EventCatalogExport.Write(catalog, _out);
        var placed = File.ReadAllText(Path.Combine(_out, "events", "OrderPlaced", "index.mdx"));
        Assert.StartsWith("---\nid: \"OrderPlaced\"\nname: \"OrderPlaced\"\nversion: 2.0.0\n", placed);
        Assert.Contains("schemaPath: schema.json", placed);
        Assert.True(File.Exists(Path.Combine(_out, "events", "OrderPlaced", "versioned", "1.0.0", "index.mdx")));
        Assert.True(File.Exists(Path.Combine(_out, "commands", "CapturePayment", "index.mdx")));
        Assert.True(File.Exists(Path.Combine(_out, "queries", "CheckStock", "index.mdx")));
        var billing = File.ReadAllText(Path.Combine(_out, "services", "billing", "index.mdx"));
        Assert.Contains("sends:\n  - id: \"PaymentRequested\"\n    version: 1.0.0\n  - id: \"CapturePayment\"\n    version: 1.0.0", billing);
        Assert.Contains("receives:\n  - id: \"OrderPlaced\"\n    version: 2.0.0", billing);
        Assert.Contains("services:\n  - id: \"billing\"", File.ReadAllText(Path.Combine(_out, "domains", "billing", "index.mdx")));
        Assert.True(files.Count > 20);
    }

    [Fact]
    public void The_eventcatalog_export_is_a_complete_project_with_package_json_and_a_config_node_can_load()
    {
        var title = "Order fulfilment ' \" </script> ` ${x}";
        EventCatalogExport.Write(CatalogLoader.Load([Repo.SampleCatalog]), _out, title);
        foreach (var folder in new[] { "domains", "services", "events", "commands", "queries", "teams" })
            Assert.True(Directory.Exists(Path.Combine(_out, folder)), $"{folder}/ is missing");
        var package = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "package.json")))!;
        Assert.Equal("2.64.x", package["dependencies"]!["@eventcatalog/core"]!.GetValue<string>());
        Assert.Equal("eventcatalog build", package["scripts"]!["build"]!.GetValue<string>());
        Assert.Equal("module", package["type"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(_out, "eventcatalog.styles.css")));

        var config = Path.Combine(_out, "eventcatalog.config.js");
        var (check, checkOutput) = Repo.Run("node", _out, null, "--check", config);
        Assert.True(check == 0, $"node --check rejected eventcatalog.config.js:\n{checkOutput}");
        // Evaluated, the config holds the fields EventCatalog reads, with the title intact.
        var (exit, json) = Repo.Run("node", _out, null, "--input-type=module", "-e",
            $"import c from {System.Text.Json.JsonSerializer.Serialize(new Uri(config).AbsoluteUri)}; console.log(JSON.stringify(c));");
        Assert.True(exit == 0, json);
        var loaded = System.Text.Json.Nodes.JsonNode.Parse(json)!;
        Assert.Equal(title, loaded["title"]!.GetValue<string>());
        Assert.Equal(title, loaded["organizationName"]!.GetValue<string>());
        Assert.True(Guid.TryParse(loaded["cId"]!.GetValue<string>(), out _));
    }
}
