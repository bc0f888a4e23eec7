using System.Text;
using System.Text.Json;

namespace Factum.Tests;

/// <summary>The door checks of issue 9, at unit level (mutation testing showed them covered only from other projects).</summary>
public sealed class JsonTextTests
{
    [Theory]
    [InlineData("""{"a":[1,2.5,-3e10,true,false,null],"b":{"c":"d\u00e9\ud83d\ude00"}}""")]
    [InlineData("\"text\"")]
    [InlineData("[]")]
    [InlineData("""{"\u00e9":"\ud83d\ude00"}""")]
    public void Well_formed_json_is_accepted(string json) => Assert.Null(JsonText.Check(Encoding.UTF8.GetBytes(json)));

    [Theory]
    [InlineData("""{"s":"\ud800"}""", "surrogate")]
    [InlineData("""{"s":"\udc00x"}""", "surrogate")]
    [InlineData("""{"\ud800":1}""", "surrogate")]
    [InlineData("""{"s":"\ud83d\ud83d"}""", "surrogate")]
    [InlineData("", "")]
    [InlineData("{", "")]
    [InlineData("1 2", "")]
    public void Broken_json_is_refused_with_a_reason(string json, string reason)
    {
        var error = JsonText.Check(Encoding.UTF8.GetBytes(json));
        Assert.NotNull(error);
        Assert.Contains(reason, error, StringComparison.OrdinalIgnoreCase);
        var ex = Assert.Throws<ArgumentException>(() => JsonText.Validate(Encoding.UTF8.GetBytes(json), "--data"));
        Assert.StartsWith("--data is not valid JSON: ", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_utf8_is_refused_with_the_offset_of_the_first_bad_byte()
    {
        byte[] bytes = [.. "{\"a\":\"é"u8, 0xFF, .. "\"}"u8];
        Assert.Equal("it is not valid UTF-8 (first bad byte at offset 8)", JsonText.Check(bytes));
        Assert.Contains("offset 2", JsonText.Check([(byte)'"', (byte)'a', 0xC3, 0x28, (byte)'"']));
    }

    [Fact]
    public void Nesting_deeper_than_the_limit_is_refused_and_at_the_limit_accepted()
    {
        var ok = new string('[', JsonText.MaxDepth) + new string(']', JsonText.MaxDepth);
        var deep = new string('[', JsonText.MaxDepth + 1) + new string(']', JsonText.MaxDepth + 1);
        Assert.Null(JsonText.Check(Encoding.UTF8.GetBytes(ok)));
        Assert.NotNull(JsonText.Check(Encoding.UTF8.GetBytes(deep)));
    }

    // Not a [Theory]: xUnit's serialization of theory data would replace the lone surrogates with U+FFFD.
    [Fact]
    public void Well_formed_text_means_every_surrogate_is_half_of_a_pair()
    {
        (string Text, bool WellFormed)[] cases =
        [
            ("plain", true), ("pair \ud83d\ude00 ok", true), ("", true),
            ("lone \ud800", false), ("\udc00 first", false), ("reversed \ude00\ud83d", false), ("high at end \ud83d", false),
        ];
        foreach (var (text, wellFormed) in cases)
        {
            Assert.Equal(wellFormed, JsonText.IsWellFormed(text));
            if (wellFormed) JsonText.ValidateText(text, "x");
            else Assert.Contains("x holds a lone UTF-16 surrogate", Assert.Throws<ArgumentException>(() => JsonText.ValidateText(text, "x")).Message);
        }
        Assert.Throws<ArgumentNullException>(() => JsonText.IsWellFormed(null!));
    }

    [Fact]
    public void Printable_escapes_control_characters_only()
    {
        Assert.Equal("Bad\\u001B[31mName\\u0000", JsonText.Printable("Bad\u001b[31mName\0"));
        var plain = "café \ud83d\ude00";
        Assert.Same(plain, JsonText.Printable(plain));
        Assert.Throws<ArgumentNullException>(() => JsonText.Printable(null!));
    }
}

public sealed class DoorCheckTests
{
    [Fact]
    public void Correlation_and_causation_ids_are_null_or_1_to_256_characters_of_well_formed_text()
    {
        var e = EventData.FromJson("OrderPlaced", "{}");
        Assert.Null((e with { CorrelationId = null }).CorrelationId);
        Assert.Equal(new string('c', EventData.MaxIdLength), (e with { CorrelationId = new string('c', EventData.MaxIdLength) }).CorrelationId);
        Assert.Contains("correlation id must not be empty", Assert.Throws<ArgumentException>(() => e with { CorrelationId = "" }).Message);
        Assert.Contains("causation id must not be empty", Assert.Throws<ArgumentException>(() => e with { CausationId = "" }).Message);
        Assert.Contains($"is {EventData.MaxIdLength + 1} characters; the maximum is {EventData.MaxIdLength}",
            Assert.Throws<ArgumentException>(() => e with { CausationId = new string('c', EventData.MaxIdLength + 1) }).Message);
        Assert.Contains("lone UTF-16 surrogate", Assert.Throws<ArgumentException>(() => e with { CorrelationId = "a\ud800" }).Message);
        Assert.Contains("'a\\u0007b' contains a control character", Assert.Throws<ArgumentException>(() => e with { CorrelationId = "a\u0007b" }).Message);
        Assert.Contains("schema version is 1 or more", Assert.Throws<ArgumentOutOfRangeException>(() => e with { SchemaVersion = 0 }).Message);
    }

    [Fact]
    public void Type_names_are_checked_with_printable_messages()
    {
        Assert.True(EventTypeName.TryValidate(new string('T', EventTypeName.MaxLength), out _));
        Assert.False(EventTypeName.TryValidate(new string('T', EventTypeName.MaxLength + 1), out var tooLong));
        Assert.Contains($"at most {EventTypeName.MaxLength} characters", tooLong);
        Assert.False(EventTypeName.TryValidate("", out var empty));
        Assert.Contains("must not be empty", empty);
        Assert.False(EventTypeName.TryValidate("Bad\u001bName", out var control));
        Assert.Contains("'Bad\\u001BName'", control);
        Assert.False(EventTypeName.TryValidate("Order\ud800Placed", out var lone));
        Assert.Contains("well-formed Unicode", lone);
    }

    [Fact]
    public void Metadata_with_lone_surrogates_or_null_values_is_refused_and_stored_metadata_decodes_strictly()
    {
        Assert.Null(MetadataCodec.Encode(new Dictionary<string, string>()));
        Assert.Contains("lone UTF-16 surrogate", Assert.Throws<ArgumentException>(() => MetadataCodec.Encode(new Dictionary<string, string> { ["k"] = "\ud800" })).Message);
        Assert.Contains("A metadata key holds", Assert.Throws<ArgumentException>(() => MetadataCodec.Encode(new Dictionary<string, string> { ["\udc00"] = "v" })).Message);
        Assert.Contains("is null", Assert.Throws<ArgumentException>(() => MetadataCodec.Encode(new Dictionary<string, string> { ["k"] = null! })).Message);
        var encoded = MetadataCodec.Encode(new Dictionary<string, string> { ["user"] = "ann", ["é"] = "\ud83d\ude00" })!;
        var decoded = MetadataCodec.Decode(encoded);
        Assert.Equal("ann", decoded["user"]);
        Assert.Equal("\ud83d\ude00", decoded["é"]);
        // Numbers and booleans stored by older builds read as their JSON text.
        Assert.Equal("3", MetadataCodec.Decode("""{"n":3,"b":true}"""u8)["n"]);
        Assert.Equal("true", MetadataCodec.Decode("""{"n":3,"b":true}"""u8)["b"]);
        Assert.ThrowsAny<JsonException>(() => MetadataCodec.Decode("[1]"u8));
        Assert.ThrowsAny<JsonException>(() => MetadataCodec.Decode("   "u8));
        Assert.Empty(MetadataCodec.Decode([]));
        Assert.ThrowsAny<Exception>(() => MetadataCodec.Decode("""{"k":"\ud800"}"""u8));
        Assert.ThrowsAny<JsonException>(() => MetadataCodec.ParseUserJson("""{"k":"\ud800"}"""));
        Assert.Contains("must be a JSON object", Assert.Throws<ArgumentException>(() => MetadataCodec.ParseUserJson("[1]")).Message);
        Assert.Contains("must be a string, number or boolean", Assert.Throws<ArgumentException>(() => MetadataCodec.ParseUserJson("""{"k":[1]}""")).Message);
        Assert.Equal("false", MetadataCodec.ParseUserJson("""{"k":false,"n":1.5}""")["k"]);
    }
}

/// <summary>Append-rule boundaries that mutation testing showed untested (Stryker survivors in AppendRules).</summary>
public sealed class AppendRuleBoundaryTests
{
    private static EventData Ev(string type = "OrderPlaced") => EventData.FromJson(type, "{}");

    [Fact]
    public async Task Re_sending_the_only_event_of_a_stream_with_any_is_an_idempotent_retry()
    {
        var store = new Factum.InMemory.InMemoryEventStore();
        var s = StreamId.Parse("Order-1");
        var e = Ev();
        Assert.True((await store.AppendAsync(s, ExpectedVersion.Any, [e])).Written);
        Assert.False((await store.AppendAsync(s, ExpectedVersion.Any, [e])).Written);
        Assert.Single(await store.ReadStreamAsync(s).ToListAsync());
    }

    [Fact]
    public async Task The_event_limit_per_append_is_inclusive_and_counts_every_stream_of_a_multi_stream_append()
    {
        var store = new Factum.InMemory.InMemoryEventStore(new EventStoreOptions { MaxEventsPerAppend = 3 });
        await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.Any, [Ev(), Ev(), Ev()]);
        await Assert.ThrowsAsync<ArgumentException>(() => store.AppendAsync(StreamId.Parse("Order-2"), ExpectedVersion.Any, [Ev(), Ev(), Ev(), Ev()]));
        await store.AppendMultipleAsync([new(StreamId.Parse("Order-3"), ExpectedVersion.Any, [Ev(), Ev()]), new(StreamId.Parse("Order-4"), ExpectedVersion.Any, [Ev()])]);
        var ex = await Assert.ThrowsAsync<ArgumentException>(() => store.AppendMultipleAsync(
            [new(StreamId.Parse("Order-5"), ExpectedVersion.Any, [Ev(), Ev()]), new(StreamId.Parse("Order-6"), ExpectedVersion.Any, [Ev(), Ev()])]));
        Assert.Contains("this one has 4", ex.Message);
        Assert.Equal(StreamState.NotFound, (await store.GetStreamInfoAsync(StreamId.Parse("Order-5"))).State);
    }

    [Fact]
    public async Task The_ambient_causation_applies_only_to_events_that_take_the_ambient_correlation()
    {
        var store = new Factum.InMemory.InMemoryEventStore();
        var s = StreamId.Parse("Order-1");
        using (EventContext.Begin("process-1", "cause-1"))
            await store.AppendAsync(s, ExpectedVersion.Any, [Ev(), Ev() with { CorrelationId = "own-process" }, Ev() with { CausationId = "own-cause" }]);
        var events = await store.ReadStreamAsync(s).ToListAsync();
        Assert.Equal(("process-1", "cause-1"), (events[0].CorrelationId, events[0].CausationId));
        Assert.Equal(("own-process", (string?)null), (events[1].CorrelationId, events[1].CausationId));
        Assert.Equal(("process-1", "own-cause"), (events[2].CorrelationId, events[2].CausationId));
        // An ambient id that could not be stored is refused at the append, with nothing written.
        using (EventContext.Begin("ok", "bad\ud800"))
            await Assert.ThrowsAsync<ArgumentException>(() => store.AppendAsync(StreamId.Parse("Order-2"), ExpectedVersion.Any, [Ev()]));
        Assert.Equal(StreamState.NotFound, (await store.GetStreamInfoAsync(StreamId.Parse("Order-2"))).State);
    }
}
