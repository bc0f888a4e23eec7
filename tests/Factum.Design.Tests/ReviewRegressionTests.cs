using System.Diagnostics;
using System.Text.Json.Nodes;
using Factum.Design;

namespace Factum.Design.Tests;

/// <summary>Inputs that broke the design tooling in review, kept as tests.</summary>
public sealed class ReviewRegressionTests : IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("factum-review-").FullName;

    public void Dispose() => Directory.Delete(_out, true);

    [Fact]
    public void Site_links_escape_catalog_names()
    {
        var catalog = CatalogLoader.Parse("""
            services: [{id: 'x" onmouseover="alert(1)', publishes: [OrderPlaced]}]
            events: [{name: OrderPlaced, owner: t}]
            """);
        SiteGenerator.Write(catalog, _out);
        var index = File.ReadAllText(Path.Combine(_out, "index.html"));
        Assert.DoesNotContain("\" onmouseover=", index);
        // The link names the page the generator wrote for that id (a slug and a hash), so it still resolves.
        var href = System.Text.RegularExpressions.Regex.Match(index, "href=\"(service/x[^\"]*)\"").Groups[1].Value;
        Assert.StartsWith("service/x__onmouseover__alert_1_~", href);
        Assert.True(File.Exists(Path.Combine(_out, href)));
    }

    [Fact]
    public void Nullable_types_written_as_yaml_null_are_understood()
    {
        var catalog = CatalogLoader.Parse("""
            events:
              - name: OrderPlaced
                owner: t
                versions:
                  - {version: 1, schema: {type: object, additionalProperties: false, required: [a], properties: {a: {type: string}}}}
                  - {version: 2, schema: {type: object, additionalProperties: false, required: [a], properties: {a: {type: [string, null]}}}}
            """);
        var findings = LintRules.Lint(catalog);
        Assert.DoesNotContain(findings, f => f.Rule == "versioning/incompatible"); // widening to nullable is backward compatible
        var full = SchemaCompatibility.Check(catalog.Message("OrderPlaced")!.Versions.Select(v => (v.Version, v.Schema!)).ToList(), CompatibilityMode.Forward);
        Assert.Contains(full.Violations, v => v.Violation.Message.Contains("null"));
        SiteGenerator.Write(catalog, _out);
    }

    [Fact]
    public void A_typed_map_tells_what_a_new_property_holds()
    {
        var v1 = (JsonObject)JsonNode.Parse("""{"type":"object","additionalProperties":{"type":"string"}}""")!;
        var v2 = (JsonObject)JsonNode.Parse("""{"type":"object","additionalProperties":{"type":"string"},"properties":{"a":{"type":"string"}}}""")!;
        Assert.True(SchemaCompatibility.Check([(1, v1), (2, v2)], CompatibilityMode.Backward).Compatible);
        var v3 = (JsonObject)JsonNode.Parse("""{"type":"object","additionalProperties":{"type":"string"},"properties":{"a":{"type":"integer"}}}""")!;
        Assert.False(SchemaCompatibility.Check([(1, v1), (2, v3)], CompatibilityMode.Backward).Compatible);
    }

    [Fact]
    public void Names_that_clean_up_alike_stay_apart_in_asyncapi_and_alerts()
    {
        var catalog = CatalogLoader.Parse("""
            services:
              - {id: a, publishes: ['Order.Placed', Order_Placed, 'Quote"Sent'], consumes: []}
              - {id: b, consumes: ['Order.Placed', Order_Placed, 'Quote"Sent']}
            events:
              - {name: 'Order.Placed', owner: t, rate: 10}
              - {name: Order_Placed, owner: t, rate: 10}
              - {name: 'Quote"Sent', owner: t, rate: 10}
            """);
        TopologyPlanner.Write(catalog, _out);
        var doc = JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "asyncapi.json")))!;
        var messages = doc["components"]!["messages"]!.AsObject().Select(p => p.Key).ToList();
        Assert.Equal(3, messages.Distinct().Count());
        Assert.All(messages, k => Assert.Matches("^[A-Za-z0-9_]+$", k));
        var tool = Repo.NodeTools;
        var psi = new ProcessStartInfo("node", [Path.Combine(tool, "validate.mjs"), Path.Combine(_out, "asyncapi.json")]) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = tool };
        using (var p = Process.Start(psi)!)
        {
            var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, output);
        }

        var rules = AlertPlanner.Rules(catalog);
        Assert.Equal(rules.Count, rules.Select(r => r.Name).Distinct().Count());
        AlertPlanner.Write(catalog, _out);
        var promtool = Environment.GetEnvironmentVariable("PATH")!.Split(':').Select(d => Path.Combine(d, "promtool")).First(File.Exists);
        using var check = Process.Start(new ProcessStartInfo(promtool, ["check", "rules", Path.Combine(_out, "factum-alerts.yaml")]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var text = check.StandardOutput.ReadToEnd() + check.StandardError.ReadToEnd();
        check.WaitForExit();
        Assert.True(check.ExitCode == 0, text);
    }

    [Fact]
    public void Storming_ids_keep_non_ascii_letters()
    {
        var catalog = StormingImport.Import("contexts:\n  - name: Überweisung\n    events: [{name: BetragÜberwiesen}]\n  - name: 受注\n    events: [{name: OrderReceived}]\n", "b.yaml");
        Assert.Contains("überweisung", catalog.Domains.Select(d => d.Id));
        Assert.Contains("受注", catalog.Domains.Select(d => d.Id));
        var back = CatalogLoader.Parse(Discovery.ToYaml(catalog, "x"));
        Assert.Equal(2, back.Domains.Count);
    }

    [Fact]
    public void Settings_split_across_files_are_all_kept()
    {
        var a = CatalogLoader.Parse("events: [{name: OrderPlaced, owner: sales}]\n", "a.yaml");
        var b = CatalogLoader.Parse("events: [{name: OrderPlaced, compatibility: FULL_TRANSITIVE, ordering: per-key, partitionKey: orderId, rate: 5, retention: 3d, replay: true}]\n", "b.yaml");
        var m = CatalogLoader.Merge([a, b]).Message("OrderPlaced")!;
        Assert.Equal((CompatibilityMode.FullTransitive, OrderingRequirement.PerKey, 5.0, TimeSpan.FromDays(3), true, "orderId"), (m.Compatibility, m.Ordering, m.Rate!.Value, m.Retention!.Value, m.Replay, m.PartitionKey));
        Assert.Equal(["sales"], m.Owners);
    }

    [Fact]
    public void An_absurd_retention_is_an_input_error_not_a_crash()
    {
        var ex = Assert.Throws<CatalogFormatException>(() => CatalogLoader.Parse("events: [{name: A, retention: 99999999999d}]\n"));
        Assert.Contains("'retention'", ex.Message);
    }
}
