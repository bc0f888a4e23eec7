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
}
