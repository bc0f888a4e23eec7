using System.Text.Json.Nodes;
using Factum.Design;

namespace Factum.Design.Tests;

public sealed class LintTests
{
    private static string SampleDir() => Repo.SampleCatalog;

    /// <summary>A small valid catalog; each test breaks one thing.</summary>
    internal const string Base = """
        domains: [{id: sales}, {id: billing}]
        teams: [{id: checkout}, {id: payments}]
        services:
          - {id: orders, domain: sales, owner: checkout, publishes: [OrderPlaced]}
          - {id: billing, domain: billing, owner: payments, consumes: [OrderPlaced]}
        events:
          - name: OrderPlaced
            classification: integration
            owner: checkout
            versions:
              - version: 1
                schema: {type: object, additionalProperties: false, properties: {orderId: {type: string}}}
        """;

    private static IReadOnlyList<Finding> Lint(string yaml) => LintRules.Lint(CatalogLoader.Parse(yaml));

    private static string Extra(string section, string yaml) => Base + "\n" + section + ":\n" + string.Join("\n", yaml.Split('\n').Select(l => "  " + l));

    [Fact]
    public void The_sample_catalog_is_clean()
    {
        var catalog = CatalogLoader.Load([SampleDir()]);
        // The sample mirrors what `factum demo` writes; the demo's PaymentRequested is named like a request, and lint says so.
        var finding = Assert.Single(LintRules.Lint(catalog));
        Assert.Equal(("rpc/names", Severity.Warning, "event PaymentRequested"), (finding.Rule, finding.Severity, finding.Entity));
        Assert.Equal(11, catalog.Messages.Count);
        Assert.Equal(2, catalog.Message("OrderPlaced")!.Versions.Count);
        Assert.Equal(["analytics", "billing", "shipping"], catalog.ConsumersOf(catalog.Message("OrderPlaced")!));
    }

    [Fact]
    public void The_base_catalog_is_clean() => Assert.Empty(Lint(Base));

    [Theory]
    [InlineData("PlaceOrder", "naming/event-past-tense")]
    [InlineData("OrderCreate", "naming/event-past-tense")]
    [InlineData("UpdateOrder", "naming/event-past-tense")]
    [InlineData("OrderEvent", "naming/event-past-tense")]
    [InlineData("DataChanged", "naming/event-specific")]
    [InlineData("EntityUpdated", "naming/event-specific")]
    [InlineData("OrderUpdated", "naming/event-specific")]
    [InlineData("PaymentRequested", "rpc/names")]
    public void Event_names_are_past_tense_and_specific(string name, string rule)
    {
        var findings = Lint(Base.Replace("OrderPlaced", name, StringComparison.Ordinal));
        var f = Assert.Single(findings, x => x.Rule == rule);
        Assert.Equal($"event {name}", f.Entity);
        Assert.False(string.IsNullOrEmpty(f.Why));
        Assert.False(string.IsNullOrEmpty(f.Fix));
        Assert.Equal("catalog.yaml", f.Source!.File);
        Assert.True(f.Source.Line > 0);
    }

    [Fact]
    public void Commands_are_imperative_and_queries_ask()
    {
        var findings = Lint(Base + """

            commands:
              - {name: PaymentCaptured, owner: payments, versions: [{version: 1, schema: {type: object}}]}
            queries:
              - {name: StockLevel, owner: payments, versions: [{version: 1, schema: {type: object}}]}
            """);
        Assert.Contains(findings, f => f.Rule == "naming/command-imperative" && f.Entity == "command PaymentCaptured");
        Assert.Contains(findings, f => f.Rule == "naming/query-asks" && f.Entity == "query StockLevel");
    }

    [Fact]
    public void A_custom_envelope_must_carry_the_standard_metadata()
    {
        var yaml = Base.Replace("    owner: checkout\n", "    owner: checkout\n    envelope: [eventId, type, timestamp]\n", StringComparison.Ordinal);
        var f = Assert.Single(Lint(yaml), x => x.Rule == "metadata/envelope");
        Assert.Contains("aggregate id, correlation id, causation id", f.Message);
        var fixedYaml = Base.Replace("    owner: checkout\n", "    owner: checkout\n    partitionKey: orderId\n    envelope: [eventId, type, timestamp, correlationId, causationId]\n", StringComparison.Ordinal);
        Assert.DoesNotContain(Lint(fixedYaml), x => x.Rule == "metadata/envelope");
    }

    [Fact]
    public void Versions_are_required_contiguous_and_compatible()
    {
        Assert.Contains(Lint(Base.Replace("    versions:\n      - version: 1\n        schema: {type: object, additionalProperties: false, properties: {orderId: {type: string}}}", "", StringComparison.Ordinal)), f => f.Rule == "versioning/missing-version");
        var gap = Base.Replace("      - version: 1", "      - version: 2", StringComparison.Ordinal);
        Assert.Contains(Lint(gap), f => f.Rule == "versioning/missing-version" && f.Message.Contains("without gaps"));
        var breaking = Base + "\n" + """
                  - version: 2
                    schema: {type: object, additionalProperties: false, required: [orderId, total], properties: {orderId: {type: string}, total: {type: number}}}
            """.Replace("            ", "      ", StringComparison.Ordinal);
        var f = Assert.Single(Lint(breaking), x => x.Rule == "versioning/incompatible" && x.Message.Contains("$.total"));
        Assert.Contains("v2 breaks BACKWARD (v2 reading v1 data)", f.Message);
        Assert.Contains("[required-property-added]", f.Message);
    }

    [Fact]
    public void A_schema_changed_without_a_new_version_is_caught_against_a_baseline()
    {
        var baseline = CatalogLoader.Parse(Base);
        var changed = CatalogLoader.Parse(Base.Replace("orderId: {type: string}", "orderId: {type: integer}", StringComparison.Ordinal));
        var f = Assert.Single(LintRules.Lint(changed, baseline), x => x.Rule == "versioning/changed-without-new-version");
        Assert.Contains("v1", f.Message);
        Assert.Empty(LintRules.Lint(baseline, baseline));
    }

    [Fact]
    public void Fat_events_are_flagged_by_size_and_by_aggregate_state()
    {
        var props = string.Join(", ", Enumerable.Range(0, 30).Select(i => $"f{i}: {{type: string}}"));
        var wide = Base.Replace("properties: {orderId: {type: string}}", "properties: {" + props + "}", StringComparison.Ordinal);
        Assert.Contains(Lint(wide), f => f.Rule == "fat-event/size" && f.Message.Contains("30 top-level properties"));
        var state = Base.Replace("properties: {orderId: {type: string}}",
            "properties: {orderId: {type: string}, order: {type: object, properties: {id: {type: string}, customer: {type: string}, lines: {type: array}, total: {type: number}, status: {type: string}, address: {type: string}}}}", StringComparison.Ordinal);
        Assert.Contains(Lint(state), f => f.Rule == "fat-event/aggregate-state" && f.Message.Contains("'order'"));
        var thresholds = wide + "\nlint:\n  maxFields: 40\n";
        Assert.DoesNotContain(Lint(thresholds), f => f.Rule == "fat-event/size");
    }

    [Fact]
    public void Event_driven_rpc_is_flagged()
    {
        var yaml = """
            domains: [{id: sales}]
            teams: [{id: t}]
            services:
              - {id: orders, domain: sales, owner: t, publishes: [StockCheckStarted], consumes: [StockChecked]}
              - {id: warehouse, domain: sales, owner: t, consumes: [StockCheckStarted], publishes: [StockChecked], requests: [OrderPlaced]}
            events:
              - {name: StockCheckStarted, owner: t, versions: [{version: 1, schema: {type: object}}]}
              - {name: StockChecked, owner: t, versions: [{version: 1, schema: {type: object}}]}
              - {name: OrderPlaced, owner: t, versions: [{version: 1, schema: {type: object}}]}
            channels:
              - {id: rr, kind: request-reply, messages: [OrderPlaced]}
            """;
        var findings = Lint(yaml);
        Assert.Contains(findings, f => f.Rule == "rpc/correlated-reply" && f.Entity == "event StockCheckStarted" && f.Message.Contains("StockChecked"));
        Assert.Contains(findings, f => f.Rule == "rpc/request-reply-event" && f.Entity == "service warehouse");
        Assert.Contains(findings, f => f.Rule == "rpc/request-reply-event" && f.Entity == "channel rr");
    }

    [Fact]
    public void Ownership_mapping_and_references_are_checked()
    {
        var yaml = Base.Replace("    owner: checkout\n", "    owner: [checkout, payments]\n", StringComparison.Ordinal) + """

            commands:
              - {name: ShipOrder, versions: [{version: 1, schema: {type: object}}]}
            """;
        yaml = yaml.Replace("consumes: [OrderPlaced]}", "consumes: [OrderPlaced, RefundIssued, OrderShipped]}", StringComparison.Ordinal);
        yaml += "\n---\nevents:\n  - {name: OrderShipped, owner: checkout, versions: [{version: 1, schema: {type: object}}]}\n";
        var findings = Lint(yaml);
        Assert.Contains(findings, f => f.Rule == "ownership/single-owner" && f.Message.Contains("2 owners"));
        Assert.Contains(findings, f => f.Rule == "ownership/single-owner" && f.Entity == "command ShipOrder" && f.Message == "has no owner");
        Assert.Contains(findings, f => f.Rule == "mapping/no-consumers" && f.Entity == "command ShipOrder");
        Assert.Contains(findings, f => f.Rule == "mapping/unknown-reference" && f.Message.Contains("RefundIssued"));
        Assert.Contains(findings, f => f.Rule == "mapping/consumer-without-producer" && f.Message.Contains("OrderShipped"));
        Assert.Equal(Severity.Error, findings.First(f => f.Rule == "mapping/consumer-without-producer").Severity);
        Assert.Equal(Severity.Warning, findings.First(f => f.Rule == "mapping/no-consumers").Severity);
    }

    [Fact]
    public void Events_crossing_a_domain_must_be_integration_events()
    {
        var f = Assert.Single(Lint(Base.Replace("classification: integration", "classification: domain", StringComparison.Ordinal)), x => x.Rule == "classification/cross-domain");
        Assert.Contains("billing (billing)", f.Message);
    }

    [Fact]
    public void Ordering_needs_a_key_and_no_competing_consumers()
    {
        var yaml = Base.Replace("    owner: checkout\n", "    owner: checkout\n    ordering: per-key\n", StringComparison.Ordinal)
            + "\nchannels:\n  - {id: orders-q, kind: queue, competingConsumers: true, messages: [OrderPlaced]}\n";
        var findings = Lint(yaml);
        Assert.Contains(findings, f => f.Rule == "ordering/partition-key");
        Assert.Contains(findings, f => f.Rule == "ordering/competing-consumers" && f.Message.Contains("orders-q"));
    }

    [Fact]
    public void Rules_can_be_disabled_with_a_reason_and_their_severity_changed()
    {
        var yaml = Base.Replace("OrderPlaced", "PlaceOrder", StringComparison.Ordinal) + """

            lint:
              disable:
                - {rule: naming/event-past-tense, reason: legacy name kept for the mainframe bridge}
              severity:
                mapping/no-consumers: error
            """;
        var catalog = CatalogLoader.Parse(yaml);
        Assert.DoesNotContain(LintRules.Lint(catalog), f => f.Rule == "naming/event-past-tense");
        var noReason = Base + "\nlint:\n  disable:\n    - {rule: naming/event-past-tense}\n";
        var ex = Assert.Throws<CatalogFormatException>(() => CatalogLoader.Parse(noReason));
        Assert.Contains("needs a 'reason'", ex.Message);
        var unknown = Base + "\nlint:\n  severity:\n    naming/whatever: error\n";
        Assert.Contains("unknown lint rule 'naming/whatever'", Assert.Throws<CatalogFormatException>(() => CatalogLoader.Parse(unknown)).Message);
        var severity = CatalogLoader.Parse(Base + "\ncommands:\n  - {name: ShipOrder, owner: checkout, versions: [{version: 1, schema: {type: object}}]}\nlint:\n  severity:\n    mapping/no-consumers: error\n");
        Assert.Equal(Severity.Error, LintRules.Lint(severity).Single(f => f.Rule == "mapping/no-consumers").Severity);
    }

    [Fact]
    public void Reports_render_as_text_json_and_sarif()
    {
        var findings = Lint(Base.Replace("OrderPlaced", "PlaceOrder", StringComparison.Ordinal));
        var text = FindingsReport.Text(findings);
        Assert.Contains("error naming/event-past-tense: event PlaceOrder", text);
        Assert.Contains("why: ", text);
        Assert.Contains("1 error(s)", text);
        var json = JsonNode.Parse(FindingsReport.Json(findings))!;
        Assert.Equal(1, json["errors"]!.GetValue<int>());
        Assert.Equal("naming/event-past-tense", json["findings"]![0]!["rule"]!.GetValue<string>());
        var sarif = JsonNode.Parse(FindingsReport.Sarif(findings))!;
        Assert.Equal("2.1.0", sarif["version"]!.GetValue<string>());
        var run = sarif["runs"]![0]!;
        Assert.Equal(LintRules.All.Count, run["tool"]!["driver"]!["rules"]!.AsArray().Count);
        var result = run["results"]![0]!;
        Assert.Equal("error", result["level"]!.GetValue<string>());
        Assert.Equal("catalog.yaml", result["locations"]![0]!["physicalLocation"]!["artifactLocation"]!["uri"]!.GetValue<string>());
        Assert.True(result["locations"]![0]!["physicalLocation"]!["region"]!["startLine"]!.GetValue<int>() > 0);
    }
}
