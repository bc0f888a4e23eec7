using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Factum.Cli;
using Factum.Design;
using Xunit.Abstractions;

namespace Factum.Fuzz.Tests;

[EventType("OrderPlaced")]
public sealed record OrderPlaced(string OrderId, decimal Total, string? Currency);

/// <summary>
/// The fuzz targets of issue 9. Each [Fact] is one target: a short deterministic run in ./test.sh, a long one with
/// scripts/fuzz.sh. A target states what "misbehaving" means for its code: an exception outside the documented set,
/// a crash, or accepted input that breaks an invariant later.
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class Targets(ITestOutputHelper output)
{
    // The CLI's import door: raw bytes of one line → the append it asks for. Only ArgumentException, FormatException
    // and JsonException may come out; whatever is accepted must be storable and read back byte for byte.
    [Fact]
    public void Fuzz_import_line()
    {
        var store = new Factum.InMemory.InMemoryEventStore();
        output.WriteLine(Fuzzer.Run("import-line", input =>
        {
            (StreamId Stream, ExpectedVersion Expected, List<EventData> Events) parsed;
            try { parsed = Import.ParseLine(input); }
            catch (Exception ex) when (ex is ArgumentException or FormatException or JsonException) { return Fuzzer.Rejected(ex); }
            foreach (var e in parsed.Events)
            {
                if (JsonText.Check(e.Payload.Span) is { } bad) throw new InvalidOperationException($"an accepted payload is not storable JSON: {bad}");
            }
            AppendResult result;
            try { result = store.AppendAsync(parsed.Stream, ExpectedVersion.Any, parsed.Events).GetAwaiter().GetResult(); }
            catch (Exception ex) when (ex is ArgumentException or EventTooLargeException or WrongExpectedVersionException or StreamDeletedException) { return "append:" + Fuzzer.Rejected(ex); }
            var back = store.ReadAllAsync(new ReadAllOptions { From = result.FirstPosition, MaxCount = parsed.Events.Count }).ToBlockingEnumerable().ToList();
            for (var i = 0; i < parsed.Events.Count; i++)
            {
                if (!back[i].Payload.Span.SequenceEqual(parsed.Events[i].Payload.Span)) throw new InvalidOperationException("a payload did not read back byte for byte");
            }
            return "accepted";
        }).ToString());
    }

    // The strict JSON check itself, against System.Text.Json: what it accepts must parse, decode every string and
    // round-trip; what it refuses must really be broken (no false rejection of good JSON).
    [Fact]
    public void Fuzz_json_text()
    {
        output.WriteLine(Fuzzer.Run("json-text", input =>
        {
            var verdict = JsonText.Check(input);
            var actuallyGood = FullyReadable(input);
            if (verdict is null && !actuallyGood) throw new InvalidOperationException("JsonText accepted text that System.Text.Json cannot read back");
            if (verdict is not null && actuallyGood) throw new InvalidOperationException($"JsonText refused readable JSON: {verdict}");
            return verdict is null ? "accepted" : "refused:" + string.Join(' ', verdict.Split(' ').Take(3));
        }, iterations: 5000).ToString());

        static bool FullyReadable(byte[] input)
        {
            if (!System.Text.Unicode.Utf8.IsValid(input)) return false;
            try
            {
                using var doc = JsonDocument.Parse(input, new JsonDocumentOptions { MaxDepth = JsonText.MaxDepth });
                var buffer = new System.Buffers.ArrayBufferWriter<byte>();
                using (var w = new Utf8JsonWriter(buffer)) Walk(doc.RootElement, w);
                using var again = JsonDocument.Parse(buffer.WrittenMemory);
                return true;
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or ArgumentException) { return false; }
        }

        static void Walk(JsonElement e, Utf8JsonWriter w)
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.Object:
                    w.WriteStartObject();
                    foreach (var p in e.EnumerateObject()) { w.WritePropertyName(p.Name); Walk(p.Value, w); }
                    w.WriteEndObject();
                    break;
                case JsonValueKind.Array:
                    w.WriteStartArray();
                    foreach (var i in e.EnumerateArray()) Walk(i, w);
                    w.WriteEndArray();
                    break;
                case JsonValueKind.String: w.WriteStringValue(e.GetString()); break;
                default: e.WriteTo(w); break;
            }
        }
    }

    // Stored metadata (a row's metadata column) decoded on every read: only the two exceptions the reader turns into
    // EventCorruptedException may come out.
    [Fact]
    public void Fuzz_stored_metadata()
    {
        output.WriteLine(Fuzzer.Run("stored-metadata", input =>
        {
            try
            {
                var m = MetadataCodec.Decode(input);
                return "decoded:" + Math.Min(m.Count, 3);
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException) { return Fuzzer.Rejected(ex); }
        }, iterations: 5000).ToString());
    }

    // A consumer decoding a message body (with an upcaster chain): a bad body is a poison message with a reason,
    // never an exception that escapes into the handler pipeline.
    [Fact]
    public void Fuzz_message_envelope()
    {
        var registry = new EventTypeRegistry().Register<OrderPlaced>(o => o.Version = 3)
            .AddUpcaster("OrderPlaced", 1, n => { n["total"] = n["amount"]!.GetValue<decimal>(); n.Remove("amount"); return n; })
            .AddUpcaster("OrderPlaced", 2, n => { n["currency"] ??= "EUR"; return n; });
        var versions = new[] { 0, 1, 2, 3, 4 };
        var corpus = Fuzzer.Corpus("message-envelope");
        var i = 0;
        output.WriteLine(Fuzzer.Run("message-envelope", corpus, input =>
        {
            var version = versions[i++ % versions.Length];
            var type = i % 7 == 0 ? "Unknown" : "OrderPlaced";
            var (value, _, problem) = registry.DecodePayload(type, version, input);
            if (value is null == problem is null) throw new InvalidOperationException("a decode returned neither a value nor a problem, or both");
            return problem is null ? $"v{version}:decoded" : $"v{version}:{string.Join(' ', problem.Split(' ').Take(4))}";
        }, iterations: 5000).ToString());
    }

    // The schema compatibility checker over mutated schemas, under every mode: it must give a verdict, never throw.
    [Fact]
    public void Fuzz_schema_compatibility()
    {
        var corpus = Fuzzer.Corpus("schema-compat");
        var parsed = corpus.Select(c => JsonNode.Parse(c)!.AsObject()).ToArray();
        var pick = 0;
        output.WriteLine(Fuzzer.Run("schema-compat", corpus, input =>
        {
            JsonObject writer;
            // As the catalog loader reads a schema file: strictly checked text first (JsonNode decodes strings lazily).
            if (JsonText.Check(input) is not null) return "refused at the door";
            try { writer = JsonNode.Parse(input, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }) as JsonObject ?? throw new JsonException("not an object"); }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or ArgumentException) { return "unparsable"; }
            var reader = parsed[pick++ % parsed.Length];
            var outcomes = new List<string>();
            foreach (var mode in Enum.GetValues<CompatibilityMode>())
            {
                var r = SchemaCompatibility.Check([(1, (JsonObject)reader.DeepClone()), (2, (JsonObject)writer.DeepClone())], mode);
                outcomes.Add(r.Compatible ? "ok" : "x");
            }
            return string.Join(',', outcomes);
        }, iterations: 3000).ToString());
    }
}

/// <summary>The catalog loader and what runs on a loaded catalog, over mutated catalog YAML.</summary>
[Trait("Category", "Fuzz")]
public sealed class CatalogTargets(ITestOutputHelper output)
{
    // Anything but a file:line CatalogFormatException is a defect; so is a crash (a stack overflow or out-of-memory would
    // end the test host, which is why nesting and alias expansion are bounded before the YAML is built).
    [Fact]
    public void Fuzz_catalog_yaml()
    {
        var dir = Directory.CreateTempSubdirectory("factum-fuzz-catalog-").FullName;
        try
        {
            output.WriteLine(Fuzzer.Run("catalog-yaml", input =>
            {
                EventCatalogModel model;
                try { model = CatalogLoader.Parse(Encoding.UTF8.GetString(input), "fuzz.yaml", dir); }
                catch (CatalogFormatException ex) { return Fuzzer.Rejected(ex); }
                var findings = LintRules.Lint(model);
                foreach (var m in model.Messages.Where(m => m.Versions.Count > 1 && m.Versions.All(v => v.Schema is not null)))
                    SchemaCompatibility.Check(m.Versions.Select(v => (v.Version, v.Schema!)).ToList(), m.Compatibility);
                Advisor.Advise(model);
                TopologyPlanner.Plan(model);
                return $"loaded:{model.Messages.Count > 0}:{findings.Count > 0}";
            }, iterations: 1500).ToString());
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
