using System.Globalization;
using System.Text;

namespace Factum.Design;

/// <summary>One generated alerting rule.</summary>
/// <param name="Name">The alert name.</param>
/// <param name="Expr">The PromQL expression.</param>
/// <param name="For">How long it must hold.</param>
/// <param name="Severity">warning or critical.</param>
/// <param name="Summary">One line.</param>
/// <param name="Threshold">How the threshold was derived.</param>
/// <param name="Runbook">The runbook section's anchor.</param>
public sealed record AlertRule(string Name, string Expr, TimeSpan For, string Severity, string Summary, string Threshold, string Runbook);

/// <summary>
/// Generates Prometheus alerting rules over Factum's own metrics (meter <c>Factum</c> exported by OpenTelemetry's
/// Prometheus exporter: dots become underscores, counters end in <c>_total</c>, the ms histogram in <c>_milliseconds</c>),
/// with thresholds from the catalog's declared rates and latencies, and a runbook section per alert.
/// </summary>
public static class AlertPlanner
{
    /// <summary>The rules for <paramref name="catalog"/>.</summary>
    public static IReadOnlyList<AlertRule> Rules(EventCatalogModel catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var rules = new List<AlertRule>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        string Unique(string name)
        {
            var candidate = name;
            for (var n = 2; !names.Add(candidate); n++) candidate = $"{name}_{n}";
            return candidate;
        }
        foreach (var p in TopologyPlanner.Plan(catalog))
        {
            var m = p.Message;
            var latency = m.Latency ?? TimeSpan.FromMinutes(1);
            var rate = m.Rate ?? 1;
            // A backlog of rate × latency is exactly the latency budget; alert at twice that, held for twice the budget (at least a minute).
            var threshold = Math.Max(10, (long)Math.Ceiling(rate * latency.TotalSeconds * 2));
            var hold = TimeSpan.FromSeconds(Math.Max(60, latency.TotalSeconds * 2));
            var how = $"2 × rate ({rate.ToString("0.#", CultureInfo.InvariantCulture)}/s) × latency budget ({latency.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture)} s), at least 10";
            foreach (var (group, _) in p.Groups)
            {
                if (p.Kind == "topic" && m.Replay)
                {
                    rules.Add(new(Unique($"FactumConsumerLag_{Clean(p.Name)}_{Clean(group)}"),
                        $"sum by (topic, group) (factum_consumer_lag{{topic=\"{Label(p.Name)}\", group=\"{Label(group)}\"}}) > {threshold}",
                        hold, "warning", $"Consumer group {group} is more than {threshold} records behind on {p.Name}", how, "consumer-lag"));
                }
                var queue = p.Kind == "topic" ? $"{p.Name}@{group}" : p.Name;
                rules.Add(new(Unique($"FactumQueueBacklog_{Clean(queue)}"),
                    $"factum_queue_depth{{queue=\"{Label(queue)}\"}} > {threshold}",
                    hold, "warning", $"{queue} holds more than {threshold} ready messages", how, "queue-backlog"));
                if (p.Kind == "queue") break; // one consumer queue per command or query
            }
        }
        rules.Add(new("FactumDeadLetters", "sum by (source, group) (factum_dlq_depth) > 0", TimeSpan.FromMinutes(1), "warning",
            "Messages from {{ $labels.source }} ({{ $labels.group }}) are in the dead-letter queue", "any dead letter", "dead-letters"));
        rules.Add(new("FactumDeadLettersGrowing", "sum by (source, group) (increase(factum_messages_dead_lettered_total[10m])) > 10", TimeSpan.Zero, "critical",
            "More than 10 messages from {{ $labels.source }} were dead-lettered in 10 minutes", "10 in 10 minutes: a systematic failure, not a poison message", "dead-letters"));
        rules.Add(new("FactumHandlerErrorRate",
            "sum by (source, group) (rate(factum_messages_failed_total[5m])) / clamp_min(sum by (source, group) (rate(factum_messages_handled_total[5m])) + sum by (source, group) (rate(factum_messages_failed_total[5m])), 1e-9) > 0.05",
            TimeSpan.FromMinutes(10), "warning", "More than 5% of handler runs fail for {{ $labels.source }} ({{ $labels.group }})", "5% of handler runs over 10 minutes", "handler-errors"));
        rules.Add(new("FactumProjectionLag", "max by (projection) (factum_projection_lag) > 1000", TimeSpan.FromMinutes(5), "warning",
            "Projection {{ $labels.projection }} is more than 1000 events behind", "1000 events for 5 minutes (read models serve stale data)", "projection-lag"));
        rules.Add(new("FactumSubscriptionStopped", "max by (subscription, state) (factum_subscription_up) == 0", TimeSpan.FromMinutes(1), "critical",
            "Subscription {{ $labels.subscription }} is {{ $labels.state }}", "stopped or faulted for a minute", "subscription-stopped"));
        rules.Add(new("FactumProjectionStopped", "max by (projection, state) (factum_projection_up) == 0", TimeSpan.FromMinutes(1), "critical",
            "Projection {{ $labels.projection }} is {{ $labels.state }}", "stopped or faulted for a minute", "subscription-stopped"));
        return rules;
    }

    private static string Clean(string s) => new(s.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_').ToArray());

    /// <summary>A PromQL string literal's content.</summary>
    private static string Label(string s) => Escape.PromQl(s);

    /// <summary>A rule's duration as Prometheus writes it (2m, 30s), the same in the rules file and on the console.</summary>
    public static string Duration(TimeSpan t) => t == TimeSpan.Zero ? "0s" : t.TotalMinutes >= 1 && t.TotalSeconds % 60 == 0 ? $"{(long)t.TotalMinutes}m" : $"{(long)Math.Ceiling(t.TotalSeconds)}s";

    /// <summary>Writes <c>factum-alerts.yaml</c> (load it with <c>rule_files</c>) and <c>runbook.md</c>; returns the paths.</summary>
    public static IReadOnlyList<string> Write(EventCatalogModel catalog, string outDir)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var output = new OutputFolder(outDir);
        var rules = Rules(catalog);
        var yaml = new StringBuilder("# Generated by factum catalog alerts. Validate with: promtool check rules factum-alerts.yaml\ngroups:\n");
        foreach (var (group, members) in new[] { ("factum-messaging", rules.Where(r => r.Runbook is "consumer-lag" or "queue-backlog" or "dead-letters" or "handler-errors")), ("factum-projections", rules.Where(r => r.Runbook is "projection-lag" or "subscription-stopped")) })
        {
            yaml.Append(CultureInfo.InvariantCulture, $"  - name: {group}\n    rules:\n");
            foreach (var r in members)
            {
                yaml.Append(CultureInfo.InvariantCulture, $"      - alert: {r.Name}\n        expr: {Quote(r.Expr)}\n        for: {Duration(r.For)}\n        labels:\n          severity: {r.Severity}\n        annotations:\n          summary: {Quote(r.Summary)}\n          threshold: {Quote(r.Threshold)}\n          runbook: {Quote("runbook.md#" + r.Runbook)}\n");
            }
        }
        output.Save("factum-alerts.yaml", yaml.ToString());
        output.Save("runbook.md", Runbook(rules));
        return output.Files;
    }

    private static string Quote(string s) => Escape.Yaml(s);

    private static string Runbook(IReadOnlyList<AlertRule> rules)
    {
        var sb = new StringBuilder("# Runbook\n\nGenerated by `factum catalog alerts`. Every alert of `factum-alerts.yaml` points at one section.\n\n");
        sb.AppendLine("| alert | severity | threshold |");
        sb.AppendLine("|---|---|---|");
        foreach (var r in rules) sb.AppendLine(CultureInfo.InvariantCulture, $"| {Escape.Markdown(r.Name)} | {r.Severity} | {Escape.Markdown(r.Threshold)} |");
        sb.Append("""

            ## consumer-lag

            **What it means.** A stream consumer group has fallen behind its topic by more than twice what its latency budget allows: consumers are slow, stuck, or too few for the partitions.

            **Check.** `factum groups list` (lag and owner per partition; a partition without an owner means no live member), the consumers' logs and `factum.handler.duration`. A member that keeps failing one record holds its partition (see `dead-letters`).

            **Act.** Add members (up to one per partition), fix the slow handler, or raise the partition count in a new topic version. To skip ahead deliberately: stop the group and `factum groups reset TOPIC GROUP --to time:…`.

            ## queue-backlog

            **What it means.** A queue (a command queue, or a pub/sub group's `topic@group` queue) holds more ready messages than its consumers clear within the latency budget.

            **Check.** `factum queues`: ready, in flight, delayed and live consumers. No live consumer: the service is down. Many delayed: handlers are failing and retrying.

            **Act.** Start or scale the consumers, raise `HandlerOptions.Concurrency`, or fix the failing dependency.

            ## dead-letters

            **What it means.** Messages failed every retry (or were unreadable) and wait in the dead-letter queue. Nothing is lost; nothing is processed either. For ordered streams, later messages of the same key are held behind the failed one.

            **Reprocessing procedure.**
            1. `factum dlq list --source SOURCE` — what failed, how often, since when; `--exception` and `--type` narrow it.
            2. `factum dlq show ID` — the original message, its headers and body, the exception and the stack trace.
            3. Fix the cause (deploy the handler fix, restore the dependency, or correct the data upstream).
            4. `factum dlq replay ID…` (or a filter such as `--source payments --exception TimeoutException`, or `--all`): messages go back to where they came from, in order, marked `factum-replayed`; one that fails again returns to the dead-letter queue.
            5. `factum dlq discard ID…` only for messages that must never be processed (record why in your incident notes).
            6. Watch `factum_dlq_depth` return to 0.

            ## handler-errors

            **What it means.** More than 5% of handler runs fail (retries included) for a source and group: a dependency is failing or a deployment broke a handler.

            **Check.** The consumers' logs and traces (`Factum` activity source), `factum dlq list` for the exception types, recent deployments.

            **Act.** Roll back or fix; retries and the dead-letter queue keep the messages meanwhile.

            ## projection-lag

            **What it means.** A read model is more than 1000 events behind the store: queries serve stale data.

            **Check.** `factum projections status NAME` (state, checkpoint, head, last error).

            **Act.** A rebuild in progress catches up by itself; otherwise restart the projection's host, or fix the failing event named in the status.

            ## subscription-stopped

            **What it means.** A subscription or projection stopped or faulted: it no longer follows the log.

            **Check.** The status (`factum projections status NAME`, or the application's subscription status) names the failing event and the error.

            **Act.** Fix the handler and restart it; it resumes from its checkpoint. Events parked by a subscription are replayed with `ReplayParkedAsync`.

            """);
        return sb.ToString();
    }
}
