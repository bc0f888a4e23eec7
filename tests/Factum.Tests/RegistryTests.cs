using System.Text;
using System.Text.Json.Nodes;

namespace Factum.Tests;

[EventType("OrderPlaced", Version = 3, Owner = "sales", Classification = EventClassification.Integration, Description = "An order was placed.")]
public sealed record OrderPlacedV3(string OrderId, decimal Total, string Currency, string Channel);

public sealed record OrderPlacedV2(string OrderId, decimal Total, string Currency);

[EventType("CartCheckedOut")]
public sealed record CartCheckedOut(string CartId);

public sealed record PlaceOrder(string Id);

public sealed class NamingConventionTests
{
    [Theory]
    [InlineData("OrderPlaced")]
    [InlineData("PaymentCaptured")]
    [InlineData("ItemsShipped")]
    [InlineData("InvoiceSent")]
    [InlineData("RefundPaid")]
    [InlineData("AccountFrozen")]
    [InlineData("PasswordReset")]
    [InlineData("OrderV2Placed")]
    [InlineData("CartCheckedOut")]
    [InlineData("UserSignedUp")]
    public void Past_tense_pascal_case_names_pass(string name) => Assert.Null(EventNamingConvention.Check(name));

    [Theory]
    [InlineData("PlaceOrder", "command")]
    [InlineData("GetOrder", "command")]
    [InlineData("OrderCreate", "past-tense")]
    [InlineData("OrderEvent", "past-tense")]
    [InlineData("CustomerFeed", "past-tense")]
    [InlineData("orderPlaced", "PascalCase")]
    [InlineData("Order_Placed", "PascalCase")]
    [InlineData("Order-Placed", "PascalCase")]
    public void Other_names_are_rejected_with_the_reason(string name, string reason)
    {
        var why = EventNamingConvention.Check(name);
        Assert.NotNull(why);
        Assert.Contains(reason, why);
    }

    [Fact]
    public void The_reason_suggests_a_past_tense_name()
    {
        Assert.Contains("OrderPlaced", EventNamingConvention.Check("PlaceOrder"));
        Assert.Contains("OrderCreated", EventNamingConvention.Check("OrderCreate"));
    }
}

public sealed class EventTypeRegistryTests
{
    [Fact]
    public void Registration_by_attribute_takes_name_version_classification_and_owner()
    {
        var registry = new EventTypeRegistry().Register<OrderPlacedV3>();
        var info = registry.GetInfo(typeof(OrderPlacedV3))!;
        Assert.Equal("OrderPlaced", info.Name);
        Assert.Equal(3, info.Version);
        Assert.Equal(EventClassification.Integration, info.Classification);
        Assert.Equal("sales", info.Owner);
        Assert.Equal("An order was placed.", info.Description);
    }

    [Fact]
    public void Registration_by_builder_overrides_the_attribute()
    {
        var registry = new EventTypeRegistry().Register<CartCheckedOut>(o => { o.Owner = "checkout"; o.Version = 2; o.Classification = EventClassification.System; });
        Assert.True(registry.TryGet("CartCheckedOut", out var info));
        Assert.Equal("checkout", info.Owner);
        Assert.Equal(2, info.Version);
        Assert.Equal(EventClassification.System, info.Classification);
    }

    [Fact]
    public void A_command_like_name_is_rejected_unless_the_user_opts_out()
    {
        var ex = Assert.Throws<ArgumentException>(() => new EventTypeRegistry().Register<PlaceOrder>());
        Assert.Contains("PlaceOrder", ex.Message);
        Assert.Contains("AllowNonConventionalName", ex.Message);
        var registry = new EventTypeRegistry().Register<PlaceOrder>(o => o.AllowNonConventionalName = true);
        Assert.True(registry.TryGet("PlaceOrder", out _));
    }

    [Fact]
    public void A_name_cannot_be_taken_by_two_clr_types()
    {
        var registry = new EventTypeRegistry().Register<OrderPlacedV3>();
        var ex = Assert.Throws<ArgumentException>(() => registry.Register<CartCheckedOut>(o => o.Name = "OrderPlaced"));
        Assert.Contains("already registered", ex.Message);
    }

    [Fact]
    public void RegisterAssembly_picks_up_attributed_types()
    {
        var registry = new EventTypeRegistry().RegisterAssembly(typeof(EventTypeRegistryTests).Assembly);
        Assert.True(registry.TryGet("CartCheckedOut", out _));
        Assert.True(registry.TryGet("OrderPlaced", out _));
    }

    [Fact]
    public void Encode_then_decode_round_trips_a_typed_event()
    {
        var registry = new EventTypeRegistry().Register<OrderPlacedV3>();
        var data = registry.Encode(new OrderPlacedV3("o-1", 10m, "EUR", "web"));
        Assert.Equal("OrderPlaced", data.Type);
        Assert.Equal(3, data.SchemaVersion);
        var decoded = registry.Decode(Recorded(data.Type, data.SchemaVersion, Encoding.UTF8.GetString(data.Payload.Span)));
        Assert.Equal(new OrderPlacedV3("o-1", 10m, "EUR", "web"), decoded.Event);
    }

    [Fact]
    public void Encoding_an_unregistered_type_fails_with_advice()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => new EventTypeRegistry().Encode(new CartCheckedOut("c")));
        Assert.Contains("Register<CartCheckedOut>", ex.Message);
    }

    [Fact]
    public void Unknown_types_come_back_raw_and_are_never_dropped()
    {
        var decoded = new EventTypeRegistry().Decode(Recorded("SomethingElseHappened", 1, """{"x":1}"""));
        Assert.False(decoded.IsKnown);
        Assert.Contains("not registered", decoded.Problem);
        Assert.Equal("""{"x":1}""", decoded.Record.PayloadAsString());
    }

    [Fact]
    public void A_three_step_upcaster_chain_turns_v1_into_v3()
    {
        var registry = new EventTypeRegistry().Register<OrderPlacedV3>()
            // v1 → v2: JSON-level, 'amount' was renamed to 'total' and a currency added.
            .AddUpcaster("OrderPlaced", 1, json => new JsonObject { ["orderId"] = json["orderId"]?.DeepClone(), ["total"] = json["amount"]?.DeepClone(), ["currency"] = "EUR" })
            // v2 → v3: typed.
            .AddUpcaster<OrderPlacedV2, OrderPlacedV3>(2, v2 => new OrderPlacedV3(v2.OrderId, v2.Total, v2.Currency, "unknown"));
        var fromV1 = registry.Decode(Recorded("OrderPlaced", 1, """{"orderId":"o-1","amount":12.5}"""));
        Assert.Equal(new OrderPlacedV3("o-1", 12.5m, "EUR", "unknown"), fromV1.Event);
        var fromV2 = registry.Decode(Recorded("OrderPlaced", 2, """{"orderId":"o-2","total":3,"currency":"USD"}"""));
        Assert.Equal(new OrderPlacedV3("o-2", 3m, "USD", "unknown"), fromV2.Event);
        var v3 = registry.Decode(Recorded("OrderPlaced", 3, """{"orderId":"o-3","total":1,"currency":"GBP","channel":"app"}"""));
        Assert.Equal(new OrderPlacedV3("o-3", 1m, "GBP", "app"), v3.Event);
    }

    [Fact]
    public void A_missing_step_in_the_chain_is_reported_not_guessed()
    {
        var registry = new EventTypeRegistry().Register<OrderPlacedV3>()
            .AddUpcaster<OrderPlacedV2, OrderPlacedV3>(2, v2 => new OrderPlacedV3(v2.OrderId, v2.Total, v2.Currency, "?"));
        var decoded = registry.Decode(Recorded("OrderPlaced", 1, """{"orderId":"o"}"""));
        Assert.False(decoded.IsKnown);
        Assert.Contains("no upcaster from 'OrderPlaced' v1", decoded.Problem);
    }

    [Fact]
    public void A_version_newer_than_the_code_knows_comes_back_raw()
    {
        var decoded = new EventTypeRegistry().Register<OrderPlacedV3>().Decode(Recorded("OrderPlaced", 4, "{}"));
        Assert.False(decoded.IsKnown);
        Assert.Contains("newer", decoded.Problem);
    }

    [Fact]
    public void An_undecodable_payload_comes_back_raw_with_the_reason()
    {
        var decoded = new EventTypeRegistry().Register<CartCheckedOut>().Decode(Recorded("CartCheckedOut", 1, "not json"));
        Assert.False(decoded.IsKnown);
        Assert.Contains("could not be decoded", decoded.Problem);
    }

    [Fact]
    public void Registering_the_same_upcaster_step_twice_is_rejected()
    {
        var registry = new EventTypeRegistry().AddUpcaster("OrderPlaced", 1, j => j);
        Assert.Throws<ArgumentException>(() => registry.AddUpcaster("OrderPlaced", 1, j => j));
    }

    internal static RecordedEvent Recorded(string type, int version, string json) => new()
    {
        EventId = EventId.New(),
        Type = type,
        SchemaVersion = version,
        Timestamp = DateTimeOffset.UtcNow,
        StreamId = StreamId.Parse("Order-1"),
        StreamVersion = 0,
        Position = 1,
        CorrelationId = "c",
        Payload = Encoding.UTF8.GetBytes(json),
    };
}

public sealed class CloudEventTests
{
    private static RecordedEvent Sample(string payload = """{"orderId":"o-1","total":5}""") => EventTypeRegistryTests.Recorded("OrderPlaced", 2, payload) with
    {
        CorrelationId = "corr-9",
        CausationId = "cause-3",
        StreamVersion = 12,
        Position = 12345678901,
        Metadata = new Dictionary<string, string> { ["tenant"] = "acme" },
    };

    [Fact]
    public void A_recorded_event_becomes_a_structured_cloud_event_with_factum_extensions()
    {
        var json = Encoding.UTF8.GetString(CloudEventConverter.ToStructuredJson(Sample(), new Uri("urn:factum:test")));
        var doc = JsonNode.Parse(json)!;
        Assert.Equal("1.0", (string?)doc["specversion"]);
        Assert.Equal("OrderPlaced", (string?)doc["type"]);
        Assert.Equal("Order-1", (string?)doc["subject"]);
        Assert.Equal("corr-9", (string?)doc["correlationid"]);
        Assert.Equal("cause-3", (string?)doc["causationid"]);
        Assert.Equal("o-1", (string?)doc["data"]!["orderId"]);
        Assert.Equal("application/json", (string?)doc["datacontenttype"]);
    }

    [Fact]
    public void A_structured_cloud_event_round_trips_to_the_same_recorded_event()
    {
        var original = Sample();
        var back = CloudEventConverter.ToRecordedEvent(CloudEventConverter.ParseStructuredJson(CloudEventConverter.ToStructuredJson(original, new Uri("urn:factum:test"))));
        Assert.Equal(original.EventId, back.EventId);
        Assert.Equal(original.Type, back.Type);
        Assert.Equal(original.SchemaVersion, back.SchemaVersion);
        Assert.Equal(original.StreamId, back.StreamId);
        Assert.Equal(original.StreamVersion, back.StreamVersion);
        Assert.Equal(original.Position, back.Position);
        Assert.Equal(original.Timestamp, back.Timestamp);
        Assert.Equal(original.CorrelationId, back.CorrelationId);
        Assert.Equal(original.CausationId, back.CausationId);
        Assert.Equal("acme", back.Metadata["tenant"]);
        Assert.Equal(JsonNode.Parse(original.PayloadAsString())!.ToJsonString(), JsonNode.Parse(back.PayloadAsString())!.ToJsonString());
    }

    [Fact]
    public void A_cloud_event_from_elsewhere_becomes_an_event_to_append()
    {
        var json = """{"specversion":"1.0","id":"0196f7a2-5c1e-7d3a-9b8e-1f2a3b4c5d6e","source":"urn:x","type":"InvoiceIssued","datacontenttype":"application/json","data":{"n":1},"correlationid":"flow-1"}""";
        var data = CloudEventConverter.ToEventData(CloudEventConverter.ParseStructuredJson(Encoding.UTF8.GetBytes(json)));
        Assert.Equal("InvoiceIssued", data.Type);
        Assert.Equal("flow-1", data.CorrelationId);
        Assert.Equal(EventId.Parse("0196f7a2-5c1e-7d3a-9b8e-1f2a3b4c5d6e"), data.EventId);
        Assert.Equal("""{"n":1}""", Encoding.UTF8.GetString(data.Payload.Span));
    }

    [Fact]
    public void An_invalid_cloud_event_is_rejected_clearly()
    {
        var ex = Assert.Throws<ArgumentException>(() => CloudEventConverter.ParseStructuredJson(Encoding.UTF8.GetBytes("""{"specversion":"1.0"}""")));
        Assert.Contains("CloudEvent", ex.Message);
    }

    [Fact]
    public void Binary_payloads_travel_as_bytes()
    {
        var e = Sample() with { Payload = new byte[] { 1, 2, 3 } };
        var ce = CloudEventConverter.ToCloudEvent(e, new Uri("urn:x"), "application/octet-stream");
        Assert.Equal(new byte[] { 1, 2, 3 }, CloudEventConverter.ToRecordedEvent(ce).Payload.ToArray());
    }
}

/// <summary>Found by the message-envelope fuzz target (issue 9): an upcaster that meets an unexpected shape.</summary>
public sealed class DecodeRobustnessTests
{
    [Theory]
    [InlineData("""{"orderId":"42","total":1}""")]   // v2 data labelled v1: the upcaster's n["amount"]! is null
    [InlineData("""{"orderId":"42","amount":"x"}""")] // a string where the upcaster reads a number
    [InlineData("""[1,2]""")]                          // not an object at all
    public void A_payload_an_upcaster_cannot_handle_is_a_problem_not_an_exception(string json)
    {
        var registry = new EventTypeRegistry().Register<OrderPlacedV2>(o => { o.Name = "OrderPlaced"; o.Version = 2; })
            .AddUpcaster("OrderPlaced", 1, n => { n["total"] = n["amount"]!.GetValue<decimal>(); n.Remove("amount"); n["currency"] = "EUR"; return n; });
        var (value, info, problem) = registry.DecodePayload("OrderPlaced", 1, Encoding.UTF8.GetBytes(json));
        Assert.Null(value);
        Assert.NotNull(info);
        Assert.Contains("OrderPlaced", problem);
    }
}
