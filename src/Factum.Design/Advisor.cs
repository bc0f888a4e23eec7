namespace Factum.Design;

/// <summary>The messaging pattern chosen for a message.</summary>
public enum MessagingPattern
{
    /// <summary>Every subscriber gets every message.</summary>
    PubSub,

    /// <summary>One consumer handles each message.</summary>
    Queue,

    /// <summary>A request with a correlated reply.</summary>
    RequestReply,

    /// <summary>A partitioned, replayable log read by consumer groups.</summary>
    EventStreaming,
}

/// <summary>The pattern for one message, with the sentence that explains it.</summary>
/// <param name="Message">The message.</param>
/// <param name="Pattern">The pattern.</param>
/// <param name="Reason">Why, in one sentence.</param>
public sealed record PatternAdvice(string Message, MessagingPattern Pattern, string Reason);

/// <summary>One broker's score on one criterion (0–5), with the reason.</summary>
/// <param name="Criterion">The criterion.</param>
/// <param name="Score">0 (unfit) to 5 (ideal).</param>
/// <param name="Reason">Why.</param>
public sealed record BrokerScore(string Criterion, int Score, string Reason);

/// <summary>A broker's evaluation against the catalog's requirements.</summary>
/// <param name="Broker">The broker.</param>
/// <param name="Scores">Per criterion.</param>
/// <param name="Total">The weighted total (criteria the catalog needs weigh more).</param>
public sealed record BrokerEvaluation(string Broker, IReadOnlyList<BrokerScore> Scores, double Total);

/// <summary>The advisor's output: a pattern per message, a broker table, and recommendations.</summary>
/// <param name="Patterns">Per message.</param>
/// <param name="Requirements">The requirements read from the catalog, in words.</param>
/// <param name="Brokers">Every broker, best first.</param>
/// <param name="Recommendation">The broker for the system, and why.</param>
/// <param name="PerChannel">A broker per pattern in use (message → broker, why).</param>
public sealed record Advice(IReadOnlyList<PatternAdvice> Patterns, IReadOnlyList<string> Requirements, IReadOnlyList<BrokerEvaluation> Brokers, string Recommendation,
    IReadOnlyList<(string Message, string Broker, string Reason)> PerChannel);

/// <summary>
/// Chooses a pattern per message from its kind and declared needs, and scores brokers against the whole catalog. The
/// scores encode published characteristics (see <c>docs/catalog.md</c>): Kafka's partitioned log and throughput, RabbitMQ's
/// routing and per-message acks, SQS/SNS's managed fan-out, Pulsar's tenancy and tiered storage, NATS JetStream's light
/// operation, and Factum's embedded engine (one file, single node).
/// </summary>
public static class Advisor
{
    /// <summary>The criteria every broker is scored on, in table order.</summary>
    public static IReadOnlyList<string> Criteria { get; } = ["throughput", "ordering", "replay", "retention", "routing", "task queues", "tenancy", "geo", "managed", "ops cost"];

    /// <summary>What a catalog needs most; it weighs double and decides ties.</summary>
    private sealed record Need(string Description, string[] Criteria);

    /// <summary>Advises on <paramref name="catalog"/>.</summary>
    public static Advice Advise(EventCatalogModel catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var rpc = RequestReplyPairs(catalog);
        var patterns = catalog.Messages.OrderBy(m => m.Name, StringComparer.Ordinal).Select(m => Pattern(catalog, m, rpc)).ToList();
        var peak = catalog.Messages.Sum(m => m.Rate ?? 0);
        var ordered = catalog.Messages.Any(m => m.Ordering != OrderingRequirement.None);
        var replay = catalog.Messages.Any(m => m.Replay) || patterns.Any(p => p.Pattern == MessagingPattern.EventStreaming);
        var longRetention = catalog.Messages.Any(m => m.Retention > TimeSpan.FromDays(14));
        var pointToPoint = patterns.Count(p => p.Pattern is MessagingPattern.Queue or MessagingPattern.RequestReply);
        var routing = pointToPoint > 0;
        var tasks = patterns.Any(p => p.Pattern == MessagingPattern.Queue);
        var (tenancy, geo, managed) = (catalog.MultiTenant, catalog.GeoReplication, catalog.Managed);
        var requirements = new List<string>
        {
            $"peak rate {peak:0.#} messages/s (sum of declared rates)",
            ordered ? "ordering per key is required" : "no ordering requirement",
            replay ? "consumers need replay (event streaming)" : "no replay requirement",
            longRetention ? "retention longer than 14 days" : "retention up to 14 days",
            routing ? $"commands and request-reply need point-to-point routing ({pointToPoint} of {patterns.Count} messages)" : "publish/subscribe only",
            tenancy ? "tenants must be isolated" : "single tenant",
            geo ? "messages are replicated across regions" : "one region",
            managed ? "a managed service is wanted (no broker to run)" : "self-hosting is acceptable",
        };
        // The seed's characterisation, as the need that dominates the workload: Pulsar for declared isolation (tenants,
        // regions), Kafka for high-rate ordered streaming with replay, SQS/SNS for managed simplicity, RabbitMQ for
        // routing-heavy task queues. A declared need comes before an inferred one; high rates before preferences.
        var need = tenancy || geo ? new Need(tenancy && geo ? "tenant isolation and geo-replication" : tenancy ? "tenant isolation" : "geo-replication", [.. tenancy ? ["tenancy"] : Array.Empty<string>(), .. geo ? ["geo"] : Array.Empty<string>()])
            : peak > 5_000 && (ordered || replay) ? new Need($"high-rate ordered streaming with replay ({peak:0.#} messages/s)", ["throughput", "ordering", "replay"])
            : managed ? new Need("managed simplicity (system.managed)", ["managed", "ops cost"])
            : pointToPoint * 2 >= patterns.Count && pointToPoint > 0 ? new Need($"routing-heavy task queues ({pointToPoint} of {patterns.Count} messages are commands or requests)", ["routing", "task queues"])
            : new Need("none dominates: the cost of running it", ["ops cost"]);
        requirements.Add($"dominant need: {need.Description}");
        // What the catalog needs weighs 3, what it does not 1 (or less for needs nobody declared); the dominant need 6.
        var weights = new Dictionary<string, double>
        {
            ["throughput"] = peak > 5_000 ? 3 : 1,
            ["ordering"] = ordered ? 3 : 1,
            ["replay"] = replay ? 3 : 1,
            ["retention"] = longRetention ? 3 : 1,
            ["routing"] = routing ? 3 : 1,
            ["task queues"] = tasks ? 3 : 0.5,
            ["tenancy"] = tenancy ? 3 : 0.5,
            ["geo"] = geo ? 3 : 0.5,
            ["managed"] = managed ? 3 : 0,
            // A small system pays for every broker it runs; a large one is judged on capacity first.
            ["ops cost"] = peak < 10_000 ? 3 : 2,
        };
        foreach (var c in need.Criteria) weights[c] = 6;
        double NeedScore(BrokerEvaluation b) => b.Scores.Where(s => need.Criteria.Contains(s.Criterion)).Sum(s => s.Score);
        // Pulsar's strengths cost a BookKeeper ensemble and a metadata store: without a declared isolation need it is
        // ranked after the others, whatever its total.
        bool Eligible(BrokerEvaluation b) => b.Broker != "Apache Pulsar" || tenancy || geo;
        var brokers = Brokers(peak).Select(b => new BrokerEvaluation(b.Name, b.Scores, Math.Round(b.Scores.Sum(s => s.Score * weights[s.Criterion]), 1)))
            .OrderByDescending(Eligible).ThenByDescending(b => b.Total).ThenByDescending(NeedScore).ThenBy(b => b.Broker, StringComparer.Ordinal).ToList();
        var best = brokers[0];
        var next = brokers[1];
        var strengths = best.Scores.Where(s => weights[s.Criterion] >= 3 && s.Score >= 4).Select(s => s.Criterion).ToList();
        var recommendation = $"{best.Broker} (score {best.Total:0.#}, next {next.Broker} {next.Total:0.#}): strongest where this catalog needs it most — {(strengths.Count > 0 ? string.Join(", ", strengths) : "overall balance")}; the dominant need is {need.Description}.";
        if (Math.Abs(best.Total - next.Total) < 0.05)
            recommendation += $" {best.Broker} and {next.Broker} tie on the total; the dominant need decides ({string.Join(", ", need.Criteria)}: {NeedScore(best):0.#} against {NeedScore(next):0.#}){(NeedScore(best) == NeedScore(next) ? ", and after that the name" : "")}.";
        if (!tenancy && !geo && brokers.First(b => b.Broker == "Apache Pulsar") is var pulsar && pulsar.Total > best.Total)
            recommendation += $" Apache Pulsar totals {pulsar.Total:0.#} but is not advised without a declared multi-tenancy or geo-replication need (system.multiTenant, system.geoReplication): those are what its extra machinery pays for.";
        var perChannel = patterns.Select(p => (p.Message, Broker: PerPattern(p.Pattern, peak), Reason: PerPatternReason(p.Pattern, peak))).ToList();
        return new Advice(patterns, requirements, brokers, recommendation, perChannel);
    }

    /// <summary>A request and its reply carried as events, found once per catalog (request name → responder and reply; reply name → request).</summary>
    private sealed record RpcPairs(Dictionary<string, (string Responder, string Reply)> Requests, Dictionary<string, string> Replies);

    /// <summary>
    /// The pairs lint flags as event-driven RPC (rpc/correlated-reply). Two services answering each other match both
    /// ways: the request is the one named like one (…Requested), else the first by name.
    /// </summary>
    private static RpcPairs RequestReplyPairs(EventCatalogModel catalog)
    {
        var edges = catalog.Messages.SelectMany(m => LintRules.CorrelatedReplies(catalog, m).Select(x => (Request: m.Name, x.Responder, Reply: x.Reply.Name))).ToList();
        var both = edges.Select(e => (e.Request, e.Reply)).ToHashSet();
        static bool NamedLikeRequest(string name) => name.EndsWith("Requested", StringComparison.Ordinal) || name.EndsWith("Request", StringComparison.Ordinal);
        bool IsRequest((string Request, string Responder, string Reply) e) =>
            !both.Contains((e.Reply, e.Request))
            || (NamedLikeRequest(e.Request) && !NamedLikeRequest(e.Reply))
            || (NamedLikeRequest(e.Request) == NamedLikeRequest(e.Reply) && string.CompareOrdinal(e.Request, e.Reply) < 0);
        var pairs = new RpcPairs(new(StringComparer.Ordinal), new(StringComparer.Ordinal));
        foreach (var e in edges.Where(IsRequest))
        {
            pairs.Requests.TryAdd(e.Request, (e.Responder, e.Reply));
            pairs.Replies.TryAdd(e.Reply, e.Request);
        }
        return pairs;
    }

    private static PatternAdvice Pattern(EventCatalogModel catalog, CatalogMessage m, RpcPairs rpc)
    {
        var consumers = catalog.ConsumersOf(m).Count;
        var requested = catalog.Services.Any(s => s.Requests.Contains(m.Name));
        if (m.Kind == CatalogMessageKind.Query || (requested && m.Kind == CatalogMessageKind.Command))
            return new(m.Name, MessagingPattern.RequestReply, $"{m.Name} is a {(m.Kind == CatalogMessageKind.Query ? "query" : "command sent as a request")}: the sender needs an answer, so it goes to one responder with a reply address and a timeout.");
        if (m.Kind == CatalogMessageKind.Command)
            return new(m.Name, MessagingPattern.Queue, $"{m.Name} is a command: exactly one handler must act on it, so it goes to a queue where consumers compete{(m.Ordering != OrderingRequirement.None ? ", with per-key ordering (message groups)" : "")}.");
        // An event that is really a request (answered by its only consumer with an event its producer waits for), or the
        // answer to one: the same pairs lint flags as event-driven RPC.
        if (rpc.Requests.TryGetValue(m.Name, out var pair))
            return new(m.Name, MessagingPattern.RequestReply, $"{m.Name} is a request carried as an event: its only consumer, {pair.Responder}, answers with {pair.Reply}, which its producer consumes (lint rpc/correlated-reply); send it as a command or query with a reply address and a timeout.");
        if (rpc.Replies.TryGetValue(m.Name, out var request))
            return new(m.Name, MessagingPattern.RequestReply, $"{m.Name} is the reply to {request} carried as an event (lint rpc/correlated-reply): it belongs on the requester's reply address, correlated with the request.");
        if (m.Replay || (m.Retention > TimeSpan.FromDays(1)) || (m.Ordering != OrderingRequirement.None && (m.Rate ?? 0) >= 100))
        {
            var why = new List<string>();
            if (m.Replay) why.Add("consumers replay it");
            if (m.Retention > TimeSpan.FromDays(1)) why.Add($"it is kept {m.Retention!.Value.TotalDays:0.#} days");
            if (m.Ordering != OrderingRequirement.None) why.Add($"order per {m.PartitionKey ?? "key"} matters at {m.Rate:0.#}/s");
            return new(m.Name, MessagingPattern.EventStreaming, $"{m.Name} goes to a partitioned stream because {string.Join(" and ", why)}; consumer groups read it at their own pace.");
        }
        return new(m.Name, MessagingPattern.PubSub, $"{m.Name} is an event with {consumers} consumer{(consumers == 1 ? "" : "s")} and no replay need, so it is published to a topic where each consuming service has its own subscription.");
    }

    private static string PerPattern(MessagingPattern p, double peak) => p switch
    {
        MessagingPattern.EventStreaming => peak > 50_000 ? "Kafka" : "NATS JetStream",
        MessagingPattern.Queue => "RabbitMQ",
        MessagingPattern.RequestReply => "NATS JetStream",
        _ => peak > 50_000 ? "Kafka" : "RabbitMQ",
    };

    private static string PerPatternReason(MessagingPattern p, double peak) => p switch
    {
        MessagingPattern.EventStreaming => peak > 50_000 ? "a partitioned log at this rate is Kafka's home ground" : "a replayable stream with consumer groups, light to run",
        MessagingPattern.Queue => "per-message acks, dead-letter exchanges and competing consumers",
        MessagingPattern.RequestReply => "request-reply with no-responder detection is built into NATS",
        _ => peak > 50_000 ? "fan-out at this rate needs a log's throughput" : "exchange-to-queue fan-out with per-subscriber queues",
    };

    private sealed record BrokerProfile(string Name, IReadOnlyList<BrokerScore> Scores);

    private static List<BrokerProfile> Brokers(double peak)
    {
        BrokerScore S(string c, int s, string r) => new(c, s, r);
        var embeddedThroughput = peak <= 5_000 ? 4 : peak <= 20_000 ? 2 : 0;
        return
        [
            new("Kafka", [
                S("throughput", 5, "partitioned append-only log; ~800k records/s per producer in LinkedIn's benchmark"),
                S("ordering", 5, "total order per partition; keys hash to partitions"),
                S("replay", 5, "consumers reset offsets to any position or time"),
                S("retention", 5, "by time, size or compaction; tiered storage"),
                S("routing", 2, "topics only: no per-message routing, queues or request-reply without extra code"),
                S("task queues", 1, "offsets per partition, not acks per message: no per-message retry, delay or dead-lettering without extra code"),
                S("tenancy", 3, "ACLs and quotas, but no namespaces"),
                S("geo", 3, "MirrorMaker 2 or cluster linking between clusters"),
                S("managed", 4, "Confluent Cloud, Amazon MSK, Aiven"),
                S("ops cost", 2, "a cluster to size and operate (KRaft), or a managed service"),
            ]),
            new("RabbitMQ", [
                S("throughput", 3, "tens of thousands of messages/s per queue; streams go higher"),
                S("ordering", 3, "FIFO per queue; per-key order needs single-active consumers or consistent hashing"),
                S("replay", 2, "only stream queues (3.9+) replay; classic and quorum queues delete on ack"),
                S("retention", 2, "queues are buffers; streams keep by age or size"),
                S("routing", 5, "exchanges (direct, topic, headers), DLX, per-message acks, direct reply-to"),
                S("task queues", 5, "competing consumers with prefetch, per-message acks, dead-letter exchanges, delivery limits, priorities"),
                S("tenancy", 4, "virtual hosts isolate tenants"),
                S("geo", 2, "federation and shovels, asynchronous and per queue or exchange"),
                S("managed", 3, "Amazon MQ, CloudAMQP"),
                S("ops cost", 3, "one or three nodes; quorum queues need care"),
            ]),
            new("Amazon SQS/SNS", [
                S("throughput", 4, "near-unlimited standard queues; FIFO limited per message group"),
                S("ordering", 3, "FIFO queues order per message group"),
                S("replay", 1, "no replay once a message is deleted"),
                S("retention", 1, "at most 14 days"),
                S("routing", 4, "SNS fan-out with filter policies, SQS redrive to DLQs"),
                S("task queues", 4, "visibility timeouts, redrive to dead-letter queues, delay queues; no priorities"),
                S("tenancy", 4, "accounts and IAM policies"),
                S("geo", 2, "regional services: cross-region delivery is SNS to SQS across regions, built by hand"),
                S("managed", 5, "serverless: nothing to size, patch or run"),
                S("ops cost", 5, "fully managed; pay per request"),
            ]),
            new("Apache Pulsar", [
                S("throughput", 5, "segmented storage (BookKeeper) scales writes and reads separately"),
                S("ordering", 5, "per partition or per key (key_shared subscriptions)"),
                S("replay", 5, "subscriptions seek by message id or time"),
                S("retention", 5, "tiered storage to object stores"),
                S("routing", 3, "shared, failover and key_shared subscriptions; no exchanges"),
                S("task queues", 3, "shared subscriptions with negative acks, redelivery delay and a dead-letter topic policy"),
                S("tenancy", 5, "tenants and namespaces are first-class"),
                S("geo", 5, "geo-replication between clusters is built in, per namespace"),
                S("managed", 3, "StreamNative Cloud"),
                S("ops cost", 1, "brokers, BookKeeper and ZooKeeper/metadata store to run"),
            ]),
            new("NATS JetStream", [
                S("throughput", 4, "hundreds of thousands of acked messages/s on one node"),
                S("ordering", 4, "per subject; per-key order via subject-per-key or partitioning"),
                S("replay", 4, "consumers start by sequence or time"),
                S("retention", 4, "limits by age, size, count; work-queue and interest policies"),
                S("routing", 4, "subject hierarchies and wildcards, request-reply with no-responder detection"),
                S("task queues", 3, "work-queue streams with per-message acks and max deliveries; dead-lettering through advisories, not built in"),
                S("tenancy", 4, "accounts isolate tenants"),
                S("geo", 4, "superclusters with gateways, stream mirrors and sources"),
                S("managed", 3, "Synadia Cloud"),
                S("ops cost", 4, "a single binary; Raft clustering built in"),
            ]),
            new("Factum embedded", [
                S("throughput", embeddedThroughput, $"one SQLite file on one node: ~25k durable queue messages/s on 2 cores (docs/benchmarks.md); the catalog needs {peak:0.#}/s"),
                S("ordering", 4, "per key in queues and streams, with held keys behind dead letters"),
                S("replay", 4, "streams reset to start, offset or time"),
                S("retention", 3, "by age, size or count per topic; bounded by one disk"),
                S("routing", 3, "topics, queues, request-reply; no content-based routing"),
                S("task queues", 4, "competing consumers, per-message retries with backoff, a dead-letter queue with replay"),
                S("tenancy", 1, "one file per tenant is the only isolation"),
                S("geo", 0, "one file on one node"),
                S("managed", 0, "runs inside the application: there is no service to rent"),
                S("ops cost", 5, "nothing to install; the store and the bus share one file"),
            ]),
        ];
    }
}
