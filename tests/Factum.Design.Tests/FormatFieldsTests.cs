using System.Text.Json.Nodes;

namespace Factum.Design.Tests;

/// <summary>
/// Issue 10's format gaps: competing consumer counts, the correlation key of a request/reply pair, and producers that are
/// external systems. Each is read, checked by lint when it names something, and shows up where it matters.
/// </summary>
public sealed class FormatFieldsTests
{
    private static EventCatalogModel Catalog(string correlationKey = "orderId", string reply = "StockLevelReported", string instancesFor = "CheckStock") => CatalogLoader.Parse($$"""
        services:
          - {id: shop, requests: [CheckStock], consumes: [StockLevelReported]}
          - id: warehouse
            consumes: [CheckStock]
            publishes: [StockLevelReported]
            instances: 2
            instancesPerMessage:
              {{instancesFor}}: 4
          - {id: psp, external: true, publishes: [PaymentSettled]}
          - {id: billing, consumes: [PaymentSettled]}
        queries:
          - name: CheckStock
            owner: warehouse
            correlationKey: {{correlationKey}}
            reply: {{reply}}
            versions:
              - version: 1
                schema:
                  type: object
                  properties:
                    orderId: {type: string}
                    items: {type: array}
        events:
          - name: StockLevelReported
            owner: warehouse
            versions:
              - version: 1
                schema:
                  type: object
                  properties:
                    orderId: {type: string}
          - {name: PaymentSettled, owner: psp}
        """);

    // Old code: a key the format does not know was dropped without a word — a schema written on the message instead of
    // under versions: vanished, and lint then judged a message with no schema.
    [Theory]
    [InlineData("events:\n  - name: OrderPlaced\n    schema: {type: object}\n", "t.yaml:3: unknown key 'schema' in message 'OrderPlaced'", "a schema belongs to a version")]
    [InlineData("events:\n  - name: OrderPlaced\n    versions:\n      - {version: 1, shema: {type: object}}\n", "t.yaml:4: unknown key 'shema' in a version", "schemaFile")]
    [InlineData("services:\n  - {id: shop, publish: [OrderPlaced]}\n", "t.yaml:2: unknown key 'publish' in service 'shop'", "publishes")]
    [InlineData("system: {multitenant: true}\n", "t.yaml:1: unknown key 'multitenant' in system", "multiTenant")]
    public void A_key_the_format_does_not_know_is_an_error_naming_it(string yaml, string error, string expected)
    {
        var ex = Assert.Throws<CatalogFormatException>(() => CatalogLoader.Parse(yaml, "t.yaml"));
        Assert.Contains(error, ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void Consumer_counts_correlation_keys_and_external_producers_are_read()
    {
        var c = Catalog();
        Assert.Equal(4, c.ConsumerCount("warehouse", "CheckStock"));
        Assert.Equal(2, c.Service("warehouse")!.Instances);
        Assert.Equal(("orderId", "StockLevelReported"), (c.Message("CheckStock")!.CorrelationKey, c.Message("CheckStock")!.Reply));
        Assert.True(c.Service("psp")!.External);
        Assert.DoesNotContain(LintRules.Lint(c), f => f.Rule == "mapping/unknown-reference");
    }

    [Fact]
    public void Lint_flags_a_reply_a_correlation_key_or_a_consumer_count_that_names_nothing()
    {
        var findings = LintRules.Lint(Catalog(correlationKey: "orderNumber", reply: "StockLevel", instancesFor: "ChekStock"))
            .Where(f => f.Rule == "mapping/unknown-reference").Select(f => f.Message).ToList();
        Assert.Contains(findings, m => m.Contains("answered by 'StockLevel', which the catalog does not define", StringComparison.Ordinal));
        Assert.Contains(findings, m => m.Contains("correlates replies by 'orderNumber', which its schema (v1) does not have", StringComparison.Ordinal));
        Assert.Contains(findings, m => m.Contains("declares instances for 'ChekStock', which it does not consume", StringComparison.Ordinal));
    }

    [Fact]
    public void AsyncApi_locates_the_correlation_id_of_a_request_and_its_reply_in_the_payload()
    {
        var c = Catalog();
        var doc = TopologyPlanner.AsyncApi(c, TopologyPlanner.Plan(c), "t");
        var messages = doc["components"]!["messages"]!.AsObject();
        string Location(string name) => messages[name]!["correlationId"]!["location"]!.GetValue<string>();
        Assert.Equal("$message.payload#/orderId", Location("CheckStock"));
        Assert.Equal("$message.payload#/orderId", Location("StockLevelReported")); // the reply carries the request's key
        Assert.Equal("$message.header#/correlationId", Location("PaymentSettled"));
    }

    [Fact]
    public void External_producers_are_drawn_dashed_and_marked_in_the_flow()
    {
        var c = Catalog();
        var flow = SiteGenerator.Flow(c, c.Messages);
        Assert.Contains("s_psp[/\"psp (external)\"/]", flow);
        Assert.Contains("class s_psp external", flow);
        Assert.Contains("s_billing[[\"billing\"]]", flow);
        Assert.DoesNotContain("s_billing[/", flow);
    }
}
