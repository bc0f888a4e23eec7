using Factum.Design;

namespace Factum.Design.Tests;

/// <summary>
/// Every lint rule, both ways: a catalog that triggers it and a near-identical one where it must stay quiet. The quiet
/// catalog keeps everything the rule looks at except its key condition, so a rule whose key condition is removed fires
/// on it and fails here. A rule without an entry fails too.
/// </summary>
public sealed class LintRuleTableTests
{
    /// <summary>A clean catalog: an integration event from sales consumed by billing.</summary>
    private const string Base = LintTests.Base;

    private const string Owner = "    owner: checkout\n";

    private static string Edit(string yaml, params (string From, string To)[] edits)
    {
        foreach (var (from, to) in edits)
        {
            Assert.Contains(from, yaml);
            yaml = yaml.Replace(from, to, StringComparison.Ordinal);
        }
        return yaml;
    }

    private static string Rename(string name) => Edit(Base, ("OrderPlaced", name));

    private static string Props(string props) => Edit(Base, ("properties: {orderId: {type: string}}", "properties: {" + props + "}"));

    private static string WithVersion2(string schema) => Base + "\n      - version: 2\n        schema: " + schema + "\n";

    private static readonly string Wide = string.Join(", ", Enumerable.Range(0, 30).Select(i => $"f{i}: {{type: string}}"));

    /// <summary>warehouse answers orders' StockCheckStarted with StockChecked, consumed by <paramref name="replyConsumer"/>.</summary>
    private static string Rpc(string replyConsumer) => $$$"""
        domains: [{id: sales}]
        teams: [{id: t}]
        services:
          - {id: orders, domain: sales, owner: t, publishes: [StockCheckStarted]}
          - {id: warehouse, domain: sales, owner: t, consumes: [StockCheckStarted], publishes: [StockChecked]}
          - {id: {{{replyConsumer}}}, domain: sales, owner: t, consumes: [StockChecked]}
        events:
          - {name: StockCheckStarted, owner: t, versions: [{version: 1, schema: {type: object}}]}
          - {name: StockChecked, owner: t, versions: [{version: 1, schema: {type: object}}]}
        """;

    private static string Request(string kind) => Base + "\nmessages:\n  - {name: CheckCredit, kind: " + kind + ", owner: payments, versions: [{version: 1, schema: {type: object}}]}\n"
        + "channels:\n  - {id: rr, kind: request-reply, messages: [CheckCredit]}\n";

    private static string Ordered(string extra, string channel = "") => Edit(Base, (Owner, Owner + "    ordering: per-key\n" + extra)) + "\n" + channel;

    /// <summary>Rule → (triggering catalog, near-identical quiet catalog, baseline for both or null).</summary>
    private static readonly Dictionary<string, (string Fires, string Quiet, string? Baseline)> Cases = new(StringComparer.Ordinal)
    {
        ["naming/event-past-tense"] = (Rename("PlaceOrder"), Rename("OrderPlaced"), null),
        ["naming/event-specific"] = (Rename("OrderUpdated"), Rename("OrderRepriced"), null),
        ["naming/command-imperative"] = (Edit(Base, ("events:", "commands:"), ("OrderPlaced", "PaymentCaptured"), ("    classification: integration\n", "")),
                                         Edit(Base, ("events:", "commands:"), ("OrderPlaced", "CapturePayment"), ("    classification: integration\n", "")), null),
        ["naming/query-asks"] = (Edit(Base, ("events:", "queries:"), ("OrderPlaced", "StockLevel"), ("    classification: integration\n", "")),
                                 Edit(Base, ("events:", "queries:"), ("OrderPlaced", "GetStockLevel"), ("    classification: integration\n", "")), null),
        ["metadata/envelope"] = (Edit(Base, (Owner, Owner + "    partitionKey: orderId\n    envelope: [eventId, type, timestamp, correlationId]\n")),
                                 Edit(Base, (Owner, Owner + "    partitionKey: orderId\n    envelope: [eventId, type, timestamp, correlationId, causationId]\n")), null),
        ["versioning/missing-version"] = (Edit(Base, ("- version: 1", "- version: 2")), Base, null),
        ["versioning/changed-without-new-version"] = (Edit(Base, ("orderId: {type: string}", "orderId: {type: integer}")), Base, Base),
        ["versioning/incompatible"] = (WithVersion2("{type: object, additionalProperties: false, required: [total], properties: {orderId: {type: string}, total: {type: number}}}"),
                                       WithVersion2("{type: object, additionalProperties: false, properties: {orderId: {type: string}, total: {type: number}}}"), null),
        ["fat-event/size"] = (Props(Wide), Props(Wide) + "\nlint:\n  maxFields: 30\n", null),
        ["fat-event/aggregate-state"] = (Props("orderId: {type: string}, order: {type: object, properties: {id: {type: string}, customer: {type: string}, lines: {type: array}, total: {type: number}, status: {type: string}}}"),
                                         Props("orderId: {type: string}, order: {type: object, properties: {id: {type: string}, customer: {type: string}, lines: {type: array}, total: {type: number}}}"), null),
        ["rpc/names"] = (Rename("PaymentRequested"), Rename("PaymentRequestedAt"), null),
        ["rpc/correlated-reply"] = (Rpc("orders"), Rpc("analytics"), null),
        ["rpc/request-reply-event"] = (Request("event"), Request("command"), null),
        ["ownership/single-owner"] = (Edit(Base, (Owner, "    owner: [checkout, payments]\n")), Edit(Base, (Owner, "    owner: [checkout]\n")), null),
        ["mapping/no-consumers"] = (Edit(Base, (", consumes: [OrderPlaced]", "")), Base, null),
        ["mapping/consumer-without-producer"] = (Edit(Base, (", publishes: [OrderPlaced]", "")), Base, null),
        ["mapping/unknown-reference"] = (Edit(Base, ("consumes: [OrderPlaced]", "consumes: [OrderPlaced, OrderShipped]")), Base, null),
        ["classification/cross-domain"] = (Edit(Base, ("classification: integration", "classification: domain")),
                                           Edit(Base, ("classification: integration", "classification: domain"), ("{id: billing, domain: billing", "{id: billing, domain: sales")), null),
        ["ordering/partition-key"] = (Ordered(""), Ordered("    partitionKey: orderId\n"), null),
        ["ordering/competing-consumers"] = (Ordered("    partitionKey: orderId\n", "channels:\n  - {id: q, kind: queue, competingConsumers: true, messages: [OrderPlaced]}\n"),
                                            Ordered("    partitionKey: orderId\n", "channels:\n  - {id: q, kind: queue, competingConsumers: false, messages: [OrderPlaced]}\n"), null),
        [LintRules.BrokerNameRule] = (Rename("Order Placed"), Rename("Order_Placed"), null),
    };

    public static TheoryData<string> RuleIds() => new(LintRules.Ids.Order(StringComparer.Ordinal));

    private static IReadOnlyList<Finding> Lint(string yaml, string? baseline) =>
        LintRules.Lint(CatalogLoader.Parse(yaml), baseline is null ? null : CatalogLoader.Parse(baseline));

    [Theory]
    [MemberData(nameof(RuleIds))]
    public void Each_rule_fires_on_its_case_and_stays_quiet_on_the_near_miss(string rule)
    {
        Assert.True(Cases.TryGetValue(rule, out var c), $"lint rule {rule} has no entry in {nameof(LintRuleTableTests)}: add a catalog that triggers it and a near-identical one where it must stay quiet");
        Assert.Contains(Lint(c.Fires, c.Baseline), f => f.Rule == rule);
        var quiet = Lint(c.Quiet, c.Baseline).Where(f => f.Rule == rule).ToList();
        Assert.True(quiet.Count == 0, $"{rule} fired on its near miss: {string.Join("; ", quiet.Select(f => f.Entity + " " + f.Message))}");
    }

    [Fact]
    public void The_table_names_only_existing_rules() => Assert.Empty(Cases.Keys.Except(LintRules.Ids));
}
