namespace Factum.Design.Tests;

/// <summary>
/// Issue 10: catalogs dominated by one need each get the broker the seed's characterisation names — Kafka for high-rate
/// ordered streaming and replay, RabbitMQ for routing-heavy task queues, SQS/SNS for managed simplicity, Pulsar only when
/// multi-tenancy or geo-replication is declared — and the advice says why.
/// </summary>
public sealed class AdvisorNeedsTests
{
    private static Advice Advise(string yaml) => Advisor.Advise(CatalogLoader.Parse(yaml));

    private static string Table(Advice a) => string.Join("; ", a.Brokers.Select(b => $"{b.Broker} {b.Total}"));

    private const string Streaming = """
        services:
          - {id: tracking, publishes: [ParcelScanned, ParcelLocated]}
          - {id: analytics, consumes: [ParcelScanned, ParcelLocated]}
          - {id: billing, consumes: [ParcelScanned]}
        events:
          - {name: ParcelScanned, owner: tracking, ordering: per-key, partitionKey: parcelId, replay: true, retention: 30d, rate: 60000}
          - {name: ParcelLocated, owner: tracking, ordering: per-key, partitionKey: parcelId, replay: true, rate: 40000}
        """;

    [Fact]
    public void High_rate_ordered_streaming_with_replay_is_Kafka()
    {
        var a = Advise(Streaming);
        Assert.Equal("Kafka", a.Brokers[0].Broker);
        Assert.Contains("dominant need: high-rate ordered streaming with replay", a.Requirements[^1]);
        Assert.Contains("the dominant need is high-rate ordered streaming", a.Recommendation);
        Assert.DoesNotContain(a.Brokers.Take(1), b => b.Broker == "Apache Pulsar");
    }

    [Fact]
    public void Routing_heavy_task_queues_are_RabbitMQ()
    {
        var a = Advise("""
            services:
              - {id: web, sends: [ResizeImage, SendInvoice, ChargeCard, ExportReport], requests: [GetQuote], publishes: [UserRegistered]}
              - {id: workers, consumes: [ResizeImage, SendInvoice, ExportReport]}
              - {id: payments, consumes: [ChargeCard]}
              - {id: pricing, consumes: [GetQuote]}
              - {id: mail, consumes: [UserRegistered]}
            events:
              - {name: UserRegistered, owner: web, rate: 5}
            commands:
              - {name: ResizeImage, owner: workers, rate: 200}
              - {name: SendInvoice, owner: workers, rate: 20}
              - {name: ChargeCard, owner: payments, rate: 20}
              - {name: ExportReport, owner: workers, rate: 1}
            queries:
              - {name: GetQuote, owner: pricing, rate: 50}
            """);
        Assert.True(a.Brokers[0].Broker == "RabbitMQ", Table(a));
        Assert.Contains("routing-heavy task queues (5 of 6 messages", a.Recommendation);
    }

    [Fact]
    public void Managed_simplicity_is_SQS_SNS()
    {
        var a = Advise("""
            system: {managed: true}
            services:
              - {id: shop, publishes: [OrderPlaced], sends: [ShipOrder]}
              - {id: warehouse, consumes: [OrderPlaced, ShipOrder]}
              - {id: crm, consumes: [OrderPlaced]}
            events:
              - {name: OrderPlaced, owner: shop, rate: 30}
            commands:
              - {name: ShipOrder, owner: warehouse, rate: 30}
            """);
        Assert.True(a.Brokers[0].Broker == "Amazon SQS/SNS", Table(a));
        Assert.Contains("managed simplicity", a.Recommendation);
        Assert.Equal(0, a.Brokers.Single(b => b.Broker == "Factum embedded").Scores.Single(s => s.Criterion == "managed").Score);
    }

    [Theory]
    [InlineData("multiTenant: true", "tenant isolation")]
    [InlineData("geoReplication: true", "geo-replication")]
    public void Pulsar_wins_only_with_a_declared_isolation_need(string declared, string need)
    {
        var a = Advise("system: {" + declared + "}\n" + Streaming);
        Assert.True(a.Brokers[0].Broker == "Apache Pulsar", Table(a));
        Assert.Contains($"the dominant need is {need}", a.Recommendation);

        var without = Advise(Streaming);
        Assert.NotEqual("Apache Pulsar", without.Brokers[0].Broker);
    }

    [Fact]
    public void A_request_and_its_reply_carried_as_events_are_advised_request_reply_as_lint_flags_them()
    {
        var catalog = CatalogLoader.Parse("""
            services:
              - {id: orders, publishes: [CreditCheckRequested], consumes: [CreditChecked]}
              - {id: credit, consumes: [CreditCheckRequested], publishes: [CreditChecked]}
            events:
              - {name: CreditCheckRequested, owner: orders}
              - {name: CreditChecked, owner: credit}
            """);
        Assert.Contains(LintRules.Lint(catalog), f => f.Rule == "rpc/correlated-reply" && f.Entity.Contains("CreditCheckRequested", StringComparison.Ordinal));
        var p = Advisor.Advise(catalog).Patterns.ToDictionary(x => x.Message);
        Assert.Equal(MessagingPattern.RequestReply, p["CreditCheckRequested"].Pattern);
        Assert.Contains("answers with CreditChecked", p["CreditCheckRequested"].Reason);
        Assert.Equal(MessagingPattern.RequestReply, p["CreditChecked"].Pattern);
        Assert.Contains("reply to CreditCheckRequested", p["CreditChecked"].Reason);
    }

    [Fact]
    public void A_tie_on_the_total_is_decided_by_the_dominant_need_and_says_so()
    {
        // Request-heavy and replayed: RabbitMQ and NATS JetStream total the same; routing and task queues decide.
        var a = Advise("""
            services:
              - {id: web, requests: [GetPrice, GetStock], consumes: [PriceChanged]}
              - {id: pricing, consumes: [GetPrice], publishes: [PriceChanged]}
              - {id: stock, consumes: [GetStock]}
            events:
              - {name: PriceChanged, owner: pricing, replay: true, retention: 30d, rate: 4}
            queries:
              - {name: GetPrice, owner: pricing, rate: 3}
              - {name: GetStock, owner: stock, rate: 3}
            """);
        Assert.True((a.Brokers[0].Broker, a.Brokers[1].Broker) == ("RabbitMQ", "NATS JetStream"), Table(a));
        Assert.Equal(a.Brokers[0].Total, a.Brokers[1].Total);
        Assert.Contains("RabbitMQ and NATS JetStream tie on the total; the dominant need decides (routing, task queues: 10 against 7).", a.Recommendation);

        var clear = Advise(Streaming);
        Assert.Contains("the dominant need is", clear.Recommendation);
        Assert.DoesNotContain("tie on the total", clear.Recommendation);
    }
}
