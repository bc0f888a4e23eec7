using Factum.Design;

namespace Factum.Design.Tests;

public sealed class AlertsTests : IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("factum-alerts-").FullName;

    public void Dispose() => Directory.Delete(_out, true);

    private static EventCatalogModel Sample() => CatalogLoader.Load([Repo.SampleCatalog]);

    private static (int Exit, string Output) Promtool(string workingDirectory, params string[] args)
    {
        var path = Environment.GetEnvironmentVariable("PATH")!.Split(':').Select(d => Path.Combine(d, "promtool")).FirstOrDefault(File.Exists);
        Assert.True(path is not null, "promtool is not installed: run ./test.sh (it installs Debian's prometheus package) or apt-get install prometheus.");
        return Repo.Run(path, workingDirectory, null, args);
    }

    [Fact]
    public void Thresholds_come_from_the_declared_rates_and_latencies()
    {
        var rules = AlertPlanner.Rules(Sample()).ToDictionary(r => r.Name);
        // OrderPlaced: 50/s, latency 5 s → 2 × 50 × 5 = 500, held 60 s (twice the budget, at least a minute).
        var lag = rules["FactumConsumerLag_OrderPlaced_billing"];
        Assert.Contains("> 500", lag.Expr);
        Assert.Equal(TimeSpan.FromMinutes(1), lag.For);
        Assert.Contains("factum_consumer_lag{topic=\"OrderPlaced\", group=\"billing\"}", lag.Expr);
        // CapturePayment: 50/s, no latency declared (1 minute) → 6000.
        Assert.Contains("factum_queue_depth{queue=\"CapturePayment\"} > 6000", rules["FactumQueueBacklog_CapturePayment"].Expr);
        Assert.Contains("factum_queue_depth{queue=\"OrderPlaced@shipping\"}", rules["FactumQueueBacklog_OrderPlaced_shipping"].Expr);
        Assert.Contains(rules.Values, r => r.Expr.Contains("factum_dlq_depth"));
        Assert.Contains(rules.Values, r => r.Expr.Contains("factum_messages_failed_total"));
        Assert.Contains(rules.Values, r => r.Expr.Contains("factum_projection_lag"));
        Assert.Contains(rules.Values, r => r.Expr.Contains("factum_subscription_up"));
    }

    [Fact]
    public void The_rules_pass_promtool_and_fire_on_synthetic_series()
    {
        var files = AlertPlanner.Write(Sample(), _out);
        var (exit, output) = Promtool(_out, "check", "rules", "factum-alerts.yaml");
        Assert.True(exit == 0, output);
        Assert.Contains("SUCCESS", output);
        var runbook = File.ReadAllText(files[1]);
        Assert.Contains("## dead-letters", runbook);
        Assert.Contains("factum dlq replay", runbook);

        File.WriteAllText(Path.Combine(_out, "tests.yaml"), """
            rule_files: [factum-alerts.yaml]
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:
                  - series: 'factum_dlq_depth{source="payments", group="billing"}'
                    values: '0 0 1 1 1 1'
                  - series: 'factum_queue_depth{queue="CapturePayment"}'
                    values: '7000x10'
                alert_rule_test:
                  - eval_time: 1m
                    alertname: FactumDeadLetters
                    exp_alerts: []
                  - eval_time: 5m
                    alertname: FactumDeadLetters
                    exp_alerts:
                      - exp_labels: {severity: warning, source: payments, group: billing}
                        exp_annotations:
                          summary: 'Messages from payments (billing) are in the dead-letter queue'
                          threshold: 'any dead letter'
                          runbook: 'runbook.md#dead-letters'
                  - eval_time: 5m
                    alertname: FactumQueueBacklog_CapturePayment
                    exp_alerts:
                      - exp_labels: {severity: warning, queue: CapturePayment}
                        exp_annotations:
                          summary: 'CapturePayment holds more than 6000 ready messages'
                          threshold: '2 × rate (50/s) × latency budget (60 s), at least 10'
                          runbook: 'runbook.md#queue-backlog'
            """);
        (exit, output) = Promtool(_out, "test", "rules", "tests.yaml");
        Assert.True(exit == 0, output);
    }

    /// <summary>Series that make each fixed (not per-message) alert fire after five quiet minutes, and the labels it fires with.</summary>
    private static readonly Dictionary<string, (string[] Series, Dictionary<string, string> Labels)> FixedAlerts = new(StringComparer.Ordinal)
    {
        ["FactumDeadLetters"] = (["factum_dlq_depth{source=\"payments\", group=\"billing\"}|0x4 3x40"], new() { ["source"] = "payments", ["group"] = "billing" }),
        ["FactumDeadLettersGrowing"] = (["factum_messages_dead_lettered_total{source=\"orders\", group=\"shipping\"}|0x4 0+5x40"], new() { ["source"] = "orders", ["group"] = "shipping" }),
        ["FactumHandlerErrorRate"] = (["factum_messages_failed_total{source=\"stock\", group=\"warehouse\"}|0x4 0+10x40", "factum_messages_handled_total{source=\"stock\", group=\"warehouse\"}|0x4 0+10x40"], new() { ["source"] = "stock", ["group"] = "warehouse" }),
        ["FactumProjectionLag"] = (["factum_projection_lag{projection=\"orders-view\"}|0x4 5000x40"], new() { ["projection"] = "orders-view" }),
        ["FactumSubscriptionStopped"] = (["factum_subscription_up{subscription=\"mailer\", state=\"faulted\"}|1x4 0x40"], new() { ["subscription"] = "mailer", ["state"] = "faulted" }),
        ["FactumProjectionStopped"] = (["factum_projection_up{projection=\"totals\", state=\"stopped\"}|1x4 0x40"], new() { ["projection"] = "totals", ["state"] = "stopped" }),
    };

    [Fact]
    public void Every_generated_alert_fires_on_a_synthetic_series_and_stays_quiet_before_it()
    {
        var rules = AlertPlanner.Rules(Sample());
        AlertPlanner.Write(Sample(), _out);
        var series = new List<string>();
        var tests = new List<string>();
        foreach (var rule in rules)
        {
            Dictionary<string, string> labels;
            if (FixedAlerts.TryGetValue(rule.Name, out var fixedAlert))
            {
                series.AddRange(fixedAlert.Series);
                labels = fixedAlert.Labels;
            }
            else
            {
                // Per-message rules: metric{labels} > threshold (lag summed by its labels): a series one above the threshold.
                var match = System.Text.RegularExpressions.Regex.Match(rule.Expr, "(factum_[a-z_]+)\\{([^}]*)\\}\\)? > ([0-9]+)$");
                Assert.True(match.Success, $"{rule.Name}: an expression this test does not know how to feed: {rule.Expr}");
                labels = System.Text.RegularExpressions.Regex.Matches(match.Groups[2].Value, "([a-z_]+)=\"((?:[^\"\\\\]|\\\\.)*)\"").ToDictionary(l => l.Groups[1].Value, l => l.Groups[2].Value);
                series.Add($"{match.Groups[1].Value}{{{match.Groups[2].Value}}}|0x4 {long.Parse(match.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture) + 1}x40");
            }
            string Expand(string text) => System.Text.RegularExpressions.Regex.Replace(text, "\\{\\{ \\$labels\\.([a-z_]+) \\}\\}", m => labels[m.Groups[1].Value]);
            var expected = string.Join(", ", labels.Append(KeyValuePair.Create("severity", rule.Severity)).Select(l => $"{l.Key}: {Escape.Yaml(l.Value)}"));
            tests.Add($"      - {{eval_time: 3m, alertname: {rule.Name}, exp_alerts: []}}");
            tests.Add($"      - eval_time: 40m\n        alertname: {rule.Name}\n        exp_alerts:\n          - exp_labels: {{{expected}}}\n            exp_annotations: {{summary: {Escape.Yaml(Expand(rule.Summary))}, threshold: {Escape.Yaml(rule.Threshold)}, runbook: {Escape.Yaml("runbook.md#" + rule.Runbook)}}}");
        }
        Assert.Equal(rules.Count, rules.Select(r => r.Name).Distinct().Count());
        Assert.All(FixedAlerts.Keys, name => Assert.Contains(rules, r => r.Name == name));
        var input = string.Join("\n", series.Select(x => x.Split('|')).Select(x => $"      - series: {Escape.Yaml(x[0])}\n        values: {Escape.Yaml(x[1])}"));
        File.WriteAllText(Path.Combine(_out, "all-alerts.yaml"), $"rule_files: [factum-alerts.yaml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{input}\n    alert_rule_test:\n{string.Join("\n", tests)}\n");
        var (exit, output) = Promtool(_out, "test", "rules", "all-alerts.yaml");
        Assert.True(exit == 0, output);
        Assert.True(rules.Count >= 19, $"the sample generates {rules.Count} alerts");
    }
}
