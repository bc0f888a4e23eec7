using System.Text.Json.Nodes;

namespace Factum.Design;

/// <summary>One reason two schema versions are incompatible.</summary>
/// <param name="Path">Where, as a JSON path into the payload (<c>$.items[*].sku</c>).</param>
/// <param name="Rule">The rule broken, such as <c>property-became-required</c>.</param>
/// <param name="Message">What happens to data at that path.</param>
/// <param name="Direction">Which check found it: <c>new reads old</c> (backward) or <c>old reads new</c> (forward).</param>
public sealed record CompatibilityViolation(string Path, string Rule, string Message, string Direction);

/// <summary>The verdict for one message under one mode.</summary>
/// <param name="Mode">The mode.</param>
/// <param name="Compatible">Whether every check passed.</param>
/// <param name="Violations">What broke, with the versions compared.</param>
public sealed record CompatibilityResult(CompatibilityMode Mode, bool Compatible, IReadOnlyList<(int Reader, int Writer, CompatibilityViolation Violation)> Violations);

/// <summary>
/// JSON Schema compatibility, as schema registries define it. "Reader R can read writer W" means every document valid
/// under W is valid under R. BACKWARD: the new version reads the previous one (consumers upgrade first); FORWARD: the
/// previous version reads the new one (producers upgrade first); FULL: both; the transitive modes check against every
/// earlier version, not only the last. The content model matters: an open object (<c>additionalProperties</c> absent or
/// true) may already carry any property with any type, so a reader that adds a typed property cannot trust old data; a
/// closed object (<c>additionalProperties: false</c>) rejects properties it does not list.
/// </summary>
public static class SchemaCompatibility
{
    /// <summary>Checks a message's versions (oldest first) under <paramref name="mode"/>.</summary>
    public static CompatibilityResult Check(IReadOnlyList<(int Version, JsonObject Schema)> versions, CompatibilityMode mode)
    {
        ArgumentNullException.ThrowIfNull(versions);
        var violations = new List<(int, int, CompatibilityViolation)>();
        if (mode == CompatibilityMode.None || versions.Count < 2) return new CompatibilityResult(mode, true, violations);
        var transitive = mode is CompatibilityMode.BackwardTransitive or CompatibilityMode.ForwardTransitive or CompatibilityMode.FullTransitive;
        var backward = mode is CompatibilityMode.Backward or CompatibilityMode.BackwardTransitive or CompatibilityMode.Full or CompatibilityMode.FullTransitive;
        var forward = mode is CompatibilityMode.Forward or CompatibilityMode.ForwardTransitive or CompatibilityMode.Full or CompatibilityMode.FullTransitive;
        for (var i = 1; i < versions.Count; i++)
        {
            var (newV, newS) = versions[i];
            for (var j = transitive ? 0 : i - 1; j < i; j++)
            {
                var (oldV, oldS) = versions[j];
                if (backward) violations.AddRange(CanRead(newS, oldS, "new reads old").Select(v => (newV, oldV, v)));
                if (forward) violations.AddRange(CanRead(oldS, newS, "old reads new").Select(v => (oldV, newV, v)));
            }
        }
        return new CompatibilityResult(mode, violations.Count == 0, violations);
    }

    /// <summary>Every reason a document valid under <paramref name="writer"/> may be invalid under <paramref name="reader"/>.</summary>
    public static IReadOnlyList<CompatibilityViolation> CanRead(JsonNode? reader, JsonNode? writer, string direction = "reader reads writer")
    {
        var list = new List<CompatibilityViolation>();
        Compare(reader, writer, "$", direction, list);
        return list;
    }

    private static void Compare(JsonNode? reader, JsonNode? writer, string path, string dir, List<CompatibilityViolation> list)
    {
        if (IsAnything(reader)) return;
        if (reader is JsonValue rv && rv.TryGetValue<bool>(out var rb) && !rb)
        {
            if (!(writer is JsonValue wv && wv.TryGetValue<bool>(out var wb) && !wb)) list.Add(new(path, "value-rejected", "the reader accepts nothing here, the writer can write something", dir));
            return;
        }
        if (reader is not JsonObject r) return;
        if (IsAnything(writer))
        {
            list.Add(new(path, "writer-unconstrained", "the writer may write any value here; the reader constrains it", dir));
            return;
        }
        if (writer is not JsonObject w) return;

        // Types: every type the writer may produce must be accepted by the reader (integer fits in number).
        var rTypes = Types(r);
        var wTypes = Types(w);
        if (rTypes is not null)
        {
            if (wTypes is null) list.Add(new(path, "type-widened", $"the writer does not restrict the type; the reader accepts only {string.Join("|", rTypes)}", dir));
            else
            {
                var rejected = wTypes.Where(t => !rTypes.Contains(t) && !(t == "integer" && rTypes.Contains("number"))).ToList();
                if (rejected.Count > 0) list.Add(new(path, "type-changed", $"the writer may write {string.Join("|", rejected)}; the reader accepts {string.Join("|", rTypes)}", dir));
            }
        }

        // Enumerations: the writer's values must all be accepted.
        if (r["enum"] is JsonArray rEnum)
        {
            var allowed = rEnum.Select(e => e?.ToJsonString()).ToHashSet(StringComparer.Ordinal);
            if (w["enum"] is JsonArray wEnum)
            {
                var extra = wEnum.Select(e => e?.ToJsonString()).Where(e => !allowed.Contains(e)).ToList();
                if (extra.Count > 0) list.Add(new(path, "enum-value-unknown", $"the writer may write {string.Join(", ", extra)}, which the reader's enum does not list", dir));
            }
            else if (w["const"] is { } wConst)
            {
                if (!allowed.Contains(wConst.ToJsonString())) list.Add(new(path, "enum-value-unknown", $"the writer writes {wConst.ToJsonString()}, which the reader's enum does not list", dir));
            }
            else list.Add(new(path, "enum-added", "the reader restricts the value to an enum; the writer does not", dir));
        }

        // Objects.
        var isObject = (rTypes?.Contains("object") ?? false) || r["properties"] is not null || r["required"] is not null;
        if (isObject)
        {
            var rProps = r["properties"] as JsonObject ?? [];
            var wProps = w["properties"] as JsonObject ?? [];
            var rRequired = Strings(r["required"]);
            var wRequired = Strings(w["required"]);
            var wClosed = IsClosed(w);
            var rClosed = IsClosed(r);
            foreach (var name in rRequired)
            {
                if (!wRequired.Contains(name))
                    list.Add(new($"{path}.{name}", wProps.ContainsKey(name) ? "property-became-required" : "required-property-added",
                        wProps.ContainsKey(name) ? $"'{name}' is optional for the writer but required by the reader" : $"the reader requires '{name}', which the writer never writes", dir));
            }
            foreach (var (name, rSchema) in rProps)
            {
                if (wProps.TryGetPropertyValue(name, out var wSchema)) Compare(rSchema, wSchema, $"{path}.{name}", dir, list);
                // A typed map (additionalProperties: {schema}) says what any other property of the writer holds.
                else if (w["additionalProperties"] is JsonObject wAdditional) Compare(rSchema, wAdditional, $"{path}.{name}", dir, list);
                else if (!wClosed && !IsAnything(rSchema))
                    list.Add(new($"{path}.{name}", "open-content-model", $"the writer's object is open, so old data may hold '{name}' with any type; the reader expects a typed '{name}' (close the writer with additionalProperties: false, or accept any value)", dir));
            }
            foreach (var (name, wSchema) in wProps)
            {
                if (rProps.ContainsKey(name)) continue;
                if (rClosed) list.Add(new($"{path}.{name}", "property-rejected-by-closed-model", $"the writer writes '{name}', which the reader's closed object rejects", dir));
                else if (r["additionalProperties"] is JsonObject rAdditional) Compare(rAdditional, wSchema, $"{path}.{name}", dir, list);
            }
            if (rClosed && !wClosed) list.Add(new(path, "open-writer-closed-reader", "the writer's object is open (may carry extra properties); the reader's is closed", dir));
        }

        // Arrays.
        if ((rTypes?.Contains("array") ?? false) || r["items"] is not null)
        {
            if (r["items"] is { } rItems) Compare(rItems, w["items"], $"{path}[*]", dir, list);
        }
    }

    private static bool IsAnything(JsonNode? s) =>
        s is null || (s is JsonValue v && v.TryGetValue<bool>(out var b) && b) || (s is JsonObject o && o.Count == 0);

    private static bool IsClosed(JsonObject o) => o["additionalProperties"] is JsonValue v && v.TryGetValue<bool>(out var b) && !b;

    // A YAML `null` in a type list arrives as a JSON null: it means the type "null".
    private static HashSet<string>? Types(JsonObject o) => o["type"] switch
    {
        JsonValue v when v.TryGetValue<string>(out var t) => [t],
        JsonArray a => a.Select(x => x is JsonValue v && v.TryGetValue<string>(out var t) ? t : "null").ToHashSet(StringComparer.Ordinal),
        _ => null,
    };

    private static HashSet<string> Strings(JsonNode? n) =>
        n is JsonArray a ? a.OfType<JsonValue>().Select(x => x.TryGetValue<string>(out var t) ? t : x.ToJsonString()).ToHashSet(StringComparer.Ordinal) : [];
}
