using System.Text.Json.Nodes;
using Factum.Design;

namespace Factum.Design.Tests;

/// <summary>
/// The compatibility table: pairs of schema versions (old, new) with the expected verdict under BACKWARD (the new version
/// reads old data), FORWARD (the old version reads new data) and FULL (both). NONE accepts everything. Open objects have
/// no <c>additionalProperties</c>; closed ones have <c>additionalProperties: false</c>.
/// </summary>
public sealed class CompatibilityTableTests
{
    private const string Closed = "\"additionalProperties\": false, ";

    private static string Obj(string props, string required = "", bool closed = true) =>
        "{\"type\": \"object\", " + (closed ? Closed : "") + "\"required\": [" + required + "], \"properties\": { " + props + " }}";

    public static TheoryData<string, string, string, bool, bool> Pairs() => new()
    {
        // name, old, new, backward, forward
        { "01 identical closed", Obj("\"a\": {\"type\": \"string\"}", "\"a\""), Obj("\"a\": {\"type\": \"string\"}", "\"a\""), true, true },
        { "02 closed: add optional", Obj("\"a\": {\"type\": \"string\"}"), Obj("\"a\": {\"type\": \"string\"}, \"b\": {\"type\": \"string\"}"), true, false },
        { "03 open: add optional", Obj("\"a\": {\"type\": \"string\"}", closed: false), Obj("\"a\": {\"type\": \"string\"}, \"b\": {\"type\": \"string\"}", closed: false), false, true },
        { "04 closed: add required", Obj("\"a\": {\"type\": \"string\"}"), Obj("\"a\": {\"type\": \"string\"}, \"b\": {\"type\": \"string\"}", "\"b\""), false, false },
        { "05 open: add required", Obj("\"a\": {\"type\": \"string\"}", closed: false), Obj("\"a\": {\"type\": \"string\"}, \"b\": {\"type\": \"string\"}", "\"b\"", closed: false), false, true },
        { "06 closed: remove optional", Obj("\"a\": {\"type\": \"string\"}, \"b\": {\"type\": \"string\"}"), Obj("\"a\": {\"type\": \"string\"}"), false, true },
        { "07 open: remove optional", Obj("\"a\": {\"type\": \"string\"}, \"b\": {\"type\": \"string\"}", closed: false), Obj("\"a\": {\"type\": \"string\"}", closed: false), true, false },
        { "08 closed: remove required", Obj("\"a\": {\"type\": \"string\"}, \"b\": {\"type\": \"string\"}", "\"b\""), Obj("\"a\": {\"type\": \"string\"}"), false, false },
        { "09 open: remove required", Obj("\"a\": {\"type\": \"string\"}, \"b\": {\"type\": \"string\"}", "\"b\"", closed: false), Obj("\"a\": {\"type\": \"string\"}", closed: false), true, false },
        { "10 optional becomes required", Obj("\"b\": {\"type\": \"string\"}"), Obj("\"b\": {\"type\": \"string\"}", "\"b\""), false, true },
        { "11 required becomes optional", Obj("\"b\": {\"type\": \"string\"}", "\"b\""), Obj("\"b\": {\"type\": \"string\"}"), true, false },
        { "12 type string to integer", Obj("\"a\": {\"type\": \"string\"}", "\"a\""), Obj("\"a\": {\"type\": \"integer\"}", "\"a\""), false, false },
        { "13 integer widened to number", Obj("\"a\": {\"type\": \"integer\"}", "\"a\""), Obj("\"a\": {\"type\": \"number\"}", "\"a\""), true, false },
        { "14 number narrowed to integer", Obj("\"a\": {\"type\": \"number\"}", "\"a\""), Obj("\"a\": {\"type\": \"integer\"}", "\"a\""), false, true },
        { "15 string made nullable", Obj("\"a\": {\"type\": \"string\"}", "\"a\""), Obj("\"a\": {\"type\": [\"string\", \"null\"]}", "\"a\""), true, false },
        { "16 nullable made non-null", Obj("\"a\": {\"type\": [\"string\", \"null\"]}", "\"a\""), Obj("\"a\": {\"type\": \"string\"}", "\"a\""), false, true },
        { "17 enum value added", Obj("\"s\": {\"type\": \"string\", \"enum\": [\"a\", \"b\"]}", "\"s\""), Obj("\"s\": {\"type\": \"string\", \"enum\": [\"a\", \"b\", \"c\"]}", "\"s\""), true, false },
        { "18 enum value removed", Obj("\"s\": {\"type\": \"string\", \"enum\": [\"a\", \"b\", \"c\"]}", "\"s\""), Obj("\"s\": {\"type\": \"string\", \"enum\": [\"a\", \"b\"]}", "\"s\""), false, true },
        { "19 enum added to a free string", Obj("\"s\": {\"type\": \"string\"}", "\"s\""), Obj("\"s\": {\"type\": \"string\", \"enum\": [\"a\"]}", "\"s\""), false, true },
        { "20 enum removed", Obj("\"s\": {\"type\": \"string\", \"enum\": [\"a\"]}", "\"s\""), Obj("\"s\": {\"type\": \"string\"}", "\"s\""), true, false },
        { "21 closed model opened", Obj("\"a\": {\"type\": \"string\"}"), Obj("\"a\": {\"type\": \"string\"}", closed: false), true, false },
        { "22 open model closed", Obj("\"a\": {\"type\": \"string\"}", closed: false), Obj("\"a\": {\"type\": \"string\"}"), false, true },
        { "23 nested closed: add optional", Obj("\"addr\": " + Obj("\"city\": {\"type\": \"string\"}"), "\"addr\""), Obj("\"addr\": " + Obj("\"city\": {\"type\": \"string\"}, \"zip\": {\"type\": \"string\"}"), "\"addr\""), true, false },
        { "24 nested type change", Obj("\"addr\": " + Obj("\"zip\": {\"type\": \"string\"}", "\"zip\""), "\"addr\""), Obj("\"addr\": " + Obj("\"zip\": {\"type\": \"integer\"}", "\"zip\""), "\"addr\""), false, false },
        { "25 array items type change", Obj("\"xs\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}", "\"xs\""), Obj("\"xs\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}}", "\"xs\""), false, false },
        { "26 array items widened", Obj("\"xs\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}}", "\"xs\""), Obj("\"xs\": {\"type\": \"array\", \"items\": {\"type\": \"number\"}}", "\"xs\""), true, false },
        { "27 array of closed objects: add required", Obj("\"xs\": {\"type\": \"array\", \"items\": " + Obj("\"sku\": {\"type\": \"string\"}", "\"sku\"") + "}", "\"xs\""), Obj("\"xs\": {\"type\": \"array\", \"items\": " + Obj("\"sku\": {\"type\": \"string\"}, \"qty\": {\"type\": \"integer\"}", "\"sku\", \"qty\"") + "}", "\"xs\""), false, false },
        { "28 closed: rename required", Obj("\"a\": {\"type\": \"string\"}", "\"a\""), Obj("\"b\": {\"type\": \"string\"}", "\"b\""), false, false },
        { "29 closed: rename optional", Obj("\"x\": {\"type\": \"string\"}"), Obj("\"y\": {\"type\": \"string\"}"), false, false },
        { "30 open: rename optional", Obj("\"x\": {\"type\": \"string\"}", closed: false), Obj("\"y\": {\"type\": \"string\"}", closed: false), false, false },
        { "31 open: add an unconstrained property", Obj("\"a\": {\"type\": \"string\"}", closed: false), Obj("\"a\": {\"type\": \"string\"}, \"c\": {}", closed: false), true, true },
        { "32 description changed only", Obj("\"a\": {\"type\": \"string\", \"description\": \"old\"}", "\"a\""), Obj("\"a\": {\"type\": \"string\", \"description\": \"new\"}", "\"a\""), true, true },
        { "33 closed to typed additional properties", Obj("\"a\": {\"type\": \"string\"}"), """{"type": "object", "additionalProperties": {"type": "string"}, "properties": {"a": {"type": "string"}}}""", true, false },
        { "34 both open, same properties", Obj("\"a\": {\"type\": \"string\"}", closed: false), Obj("\"a\": {\"type\": \"string\"}", closed: false), true, true },
        { "35 type constraint removed", Obj("\"a\": {\"type\": \"string\"}", "\"a\""), Obj("\"a\": {}", "\"a\""), true, false },
        { "36 type constraint added", Obj("\"a\": {}", "\"a\""), Obj("\"a\": {\"type\": \"string\"}", "\"a\""), false, true },
        { "37 items narrowed number to integer", Obj("\"xs\": {\"type\": \"array\", \"items\": {\"type\": \"number\"}}", "\"xs\""), Obj("\"xs\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}}", "\"xs\""), false, true },
        { "38 closed: add one optional, remove another", Obj("\"a\": {\"type\": \"string\"}, \"old\": {\"type\": \"string\"}"), Obj("\"a\": {\"type\": \"string\"}, \"new\": {\"type\": \"string\"}"), false, false },
        { "39 open: property made nullable", Obj("\"a\": {\"type\": \"string\"}", closed: false), Obj("\"a\": {\"type\": [\"string\", \"null\"]}", closed: false), true, false },
        { "40 array items closed", Obj("\"xs\": {\"type\": \"array\", \"items\": " + Obj("\"sku\": {\"type\": \"string\"}", closed: false) + "}"), Obj("\"xs\": {\"type\": \"array\", \"items\": " + Obj("\"sku\": {\"type\": \"string\"}") + "}"), false, true },
        { "41 integer widened to integer or string", Obj("\"a\": {\"type\": \"integer\"}", "\"a\""), Obj("\"a\": {\"type\": [\"integer\", \"string\"]}", "\"a\""), true, false },
        { "42 top-level type changed from object to array", """{"type": "object"}""", """{"type": "array"}""", false, false },
    };

    [Theory]
    [MemberData(nameof(Pairs))]
    public void Verdict_under_each_mode(string name, string oldSchema, string newSchema, bool backward, bool forward)
    {
        var versions = new List<(int, JsonObject)> { (1, (JsonObject)JsonNode.Parse(oldSchema)!), (2, (JsonObject)JsonNode.Parse(newSchema)!) };
        var b = SchemaCompatibility.Check(versions, CompatibilityMode.Backward);
        var f = SchemaCompatibility.Check(versions, CompatibilityMode.Forward);
        var full = SchemaCompatibility.Check(versions, CompatibilityMode.Full);
        Assert.True(backward == b.Compatible, $"{name}: BACKWARD expected {backward}; violations: {string.Join("; ", b.Violations.Select(v => $"{v.Violation.Path} {v.Violation.Rule}"))}");
        Assert.True(forward == f.Compatible, $"{name}: FORWARD expected {forward}; violations: {string.Join("; ", f.Violations.Select(v => $"{v.Violation.Path} {v.Violation.Rule}"))}");
        Assert.Equal(backward && forward, full.Compatible);
        Assert.True(SchemaCompatibility.Check(versions, CompatibilityMode.None).Compatible);
        // With two versions the transitive modes see the same pair.
        Assert.Equal(b.Compatible, SchemaCompatibility.Check(versions, CompatibilityMode.BackwardTransitive).Compatible);
        Assert.Equal(f.Compatible, SchemaCompatibility.Check(versions, CompatibilityMode.ForwardTransitive).Compatible);
        Assert.Equal(full.Compatible, SchemaCompatibility.Check(versions, CompatibilityMode.FullTransitive).Compatible);
        foreach (var v in b.Violations.Concat(f.Violations))
        {
            Assert.StartsWith("$", v.Violation.Path);
            Assert.False(string.IsNullOrEmpty(v.Violation.Rule));
        }
    }

    [Fact]
    public void Violations_name_the_json_path_and_the_rule()
    {
        var v1 = (JsonObject)JsonNode.Parse(Obj("\"addr\": " + Obj("\"zip\": {\"type\": \"string\"}", "\"zip\""), "\"addr\""))!;
        var v2 = (JsonObject)JsonNode.Parse(Obj("\"addr\": " + Obj("\"zip\": {\"type\": \"integer\"}", "\"zip\""), "\"addr\""))!;
        var r = SchemaCompatibility.Check([(1, v1), (2, v2)], CompatibilityMode.Backward);
        var (reader, writer, violation) = Assert.Single(r.Violations);
        Assert.Equal((2, 1), (reader, writer));
        Assert.Equal("$.addr.zip", violation.Path);
        Assert.Equal("type-changed", violation.Rule);
        Assert.Contains("integer", violation.Message);
    }

    [Fact]
    public void Transitive_modes_check_every_earlier_version()
    {
        // v1 → v2 breaks (a string became an integer); v3 only adds an optional field to the closed v2.
        var v1 = (JsonObject)JsonNode.Parse(Obj("\"a\": {\"type\": \"string\"}", "\"a\""))!;
        var v2 = (JsonObject)JsonNode.Parse(Obj("\"a\": {\"type\": \"integer\"}", "\"a\""))!;
        var v3 = (JsonObject)JsonNode.Parse(Obj("\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"string\"}", "\"a\""))!;
        var plain = SchemaCompatibility.Check([(1, v1), (2, v2), (3, v3)], CompatibilityMode.Backward);
        var transitive = SchemaCompatibility.Check([(1, v1), (2, v2), (3, v3)], CompatibilityMode.BackwardTransitive);
        Assert.Equal([(2, 1)], plain.Violations.Select(v => (v.Reader, v.Writer)).Distinct());
        Assert.Equal([(2, 1), (3, 1)], transitive.Violations.Select(v => (v.Reader, v.Writer)).Distinct().Order());
        // Only the new pair is compatible: v3 reading v2 data.
        Assert.True(SchemaCompatibility.Check([(2, v2), (3, v3)], CompatibilityMode.Backward).Compatible);
        Assert.False(SchemaCompatibility.Check([(2, v2), (3, v3)], CompatibilityMode.FullTransitive).Compatible);
    }
}
