using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Factum.Design;

/// <summary>
/// Generates the catalog's documentation: a static HTML site (open <c>index.html</c>, no server and no network needed)
/// and the same pages in Markdown, with Mermaid flow diagrams (producers → messages → consumers) that zoom and pan,
/// navigation across domains, services and messages, an offline search over names, schema field tables and the lint
/// findings.
/// </summary>
public static class SiteGenerator
{
    /// <summary>Where pages load Mermaid from when asked for the CDN (<c>--mermaid cdn</c>).</summary>
    public const string MermaidCdn = "https://cdn.jsdelivr.net/npm/mermaid@12.3.0/dist/mermaid.min.js";

    /// <summary>The Mermaid version embedded in this assembly and written next to the site by default.</summary>
    public const string BundledMermaidVersion = "12.3.0";

    /// <summary>The <c>mermaid</c> argument that loads Mermaid from <see cref="MermaidCdn"/> instead of the bundled copy.</summary>
    public const string MermaidFromCdn = "cdn";

    /// <summary>The <c>mermaid</c> argument (also the default) that writes the bundled copy next to the pages.</summary>
    public const string MermaidBundled = "bundled";

    private static readonly JsonSerializerOptions Pretty = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes the site to <paramref name="outDir"/> (HTML at the root, Markdown under <c>markdown/</c>); returns the files.</summary>
    /// <param name="catalog">The catalog.</param>
    /// <param name="outDir">Where to write.</param>
    /// <param name="mermaid">
    /// Where pages get Mermaid: null or <see cref="MermaidBundled"/> writes the copy embedded in this assembly to
    /// <c>assets/mermaid.min.js</c> (the site works offline); <see cref="MermaidFromCdn"/> loads it from
    /// <see cref="MermaidCdn"/>; anything else is the path of a local <c>mermaid.min.js</c> to copy in.
    /// </param>
    /// <param name="title">The site title.</param>
    /// <exception cref="CatalogFormatException">The local Mermaid script does not exist.</exception>
    public static IReadOnlyList<string> Write(EventCatalogModel catalog, string outDir, string? mermaid = null, string title = "Event catalog")
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var output = new OutputFolder(outDir);
        var save = output.Save;
        string script;
        if (mermaid == MermaidFromCdn) script = MermaidCdn;
        else
        {
            if (mermaid is null or MermaidBundled)
            {
                save("assets/mermaid.min.js", BundledMermaid());
                save("assets/mermaid.LICENSE.txt", Resource("mermaid.LICENSE.txt"));
            }
            else
            {
                if (!File.Exists(mermaid)) throw new CatalogFormatException(mermaid, 0, "the Mermaid script does not exist");
                output.Copy(mermaid, Path.Combine("assets", "mermaid.min.js"));
            }
            script = "assets/mermaid.min.js";
        }
        save("assets/site.css", SiteAssets.Css);
        save("assets/site.js", SiteAssets.Js);
        var searchIndex = SearchIndex(catalog).ToJsonString(new JsonSerializerOptions { Encoder = JavaScriptEncoder.Default });
        save("assets/search-index.json", searchIndex);
        // Browsers do not let a page opened from a file fetch another file, so the index also comes as a script.
        save("assets/search-index.js", "window.FACTUM_SEARCH = " + searchIndex + ";\n");

        var findings = LintRules.Lint(catalog);
        var advice = Advisor.Advise(catalog).Patterns.ToDictionary(p => p.Message);
        var plan = TopologyPlanner.Plan(catalog).ToDictionary(p => p.Message.Name);
        var nav = new Navigation(catalog, title);

        // index
        var index = new Page(title, script, nav, "index");
        index.P($"{catalog.Domains.Count} domain(s), {catalog.Services.Count} service(s), {catalog.Messages.Count} message(s). Lint: {findings.Count(f => f.Severity == Severity.Error)} error(s), {findings.Count(f => f.Severity == Severity.Warning)} warning(s).");
        index.H2("Flow");
        // One graph per domain: a single graph of dozens of services is scaled down until its labels are unreadable.
        var domainIds = catalog.Domains.Select(d => d.Id).ToHashSet(StringComparer.Ordinal);
        foreach (var d in catalog.Domains)
        {
            var produced = DomainMessages(catalog, d.Id);
            if (produced.Count == 0) continue;
            index.H3(d.Name ?? d.Id);
            index.Mermaid(Flow(catalog, produced));
        }
        var elsewhere = catalog.Messages.Where(m => !catalog.ProducersOf(m).Any(p => catalog.Service(p)?.Domain is { } dom && domainIds.Contains(dom))).ToList();
        if (elsewhere.Count > 0)
        {
            if (catalog.Domains.Count > 0) index.H3("Outside any domain");
            index.Mermaid(Flow(catalog, elsewhere));
        }
        index.H2("Domains");
        index.Table(["Domain", "Services", "Description"], catalog.Domains.Select(d => new[] { Link("domain", d.Id, d.Name ?? d.Id), string.Join(", ", catalog.Services.Where(s => s.Domain == d.Id).Select(s => Link("service", s.Id, s.Id))), Enc(d.Description) }), raw: true);
        index.H2("Services");
        index.Table(["Service", "Domain", "Owner", "Publishes / sends", "Consumes"], catalog.Services.OrderBy(s => s.Id, StringComparer.Ordinal).Select(s => new[]
        {
            Link("service", s.Id, s.Id) + (s.External ? " <span class=\"badge external\">external</span>" : ""), Enc(s.Domain), Enc(s.Owner), string.Join(", ", s.Publishes.Concat(s.Sends).Concat(s.Requests).Select(m => Link("message", m, m))), string.Join(", ", s.Consumes.Select(m => Link("message", m, m))),
        }), raw: true);
        index.H2("Messages");
        index.Table(["Message", "Kind", "Owner", "Latest version", "Pattern", "Channel"], catalog.Messages.OrderBy(m => m.Name, StringComparer.Ordinal).Select(m => new[]
        {
            Link("message", m.Name, m.Name), Badge(m.Kind), Enc(string.Join(", ", m.Owners)), m.Latest is { } v ? $"v{v.Version}" : "-",
            advice.TryGetValue(m.Name, out var a) ? Enc(a.Pattern.ToString()) : "-", plan.TryGetValue(m.Name, out var p) ? Enc($"{p.Kind} {p.Name}") : "-",
        }), raw: true);
        index.H2("Lint findings");
        if (findings.Count == 0) index.P("None: the catalog follows every rule.");
        else index.Table(["Severity", "Rule", "Entity", "Finding", "Fix"], findings.Select(f => new[] { f.Severity.ToString().ToLowerInvariant(), f.Rule, f.Entity, f.Message, f.Fix }));
        save("index.html", index.Html(""));
        save("markdown/index.md", index.Markdown());

        foreach (var d in catalog.Domains)
        {
            var page = new Page($"Domain {d.Name ?? d.Id}", script, nav, "domain:" + d.Id);
            page.P(d.Description ?? "");
            var services = catalog.Services.Where(s => s.Domain == d.Id).ToList();
            page.H2("Flow");
            page.Mermaid(Flow(catalog, DomainMessages(catalog, d.Id)));
            page.H2("Services");
            page.Table(["Service", "Owner", "Description"], services.Select(s => new[] { Link("../service", s.Id, s.Id), Enc(s.Owner), Enc(s.Description) }), raw: true);
            save($"domain/{OutputFolder.FileName(d.Id)}.html", page.Html("../"));
            save($"markdown/domain/{OutputFolder.FileName(d.Id)}.md", page.Markdown());
        }

        foreach (var s in catalog.Services)
        {
            var page = new Page($"Service {s.Id}", script, nav, "service:" + s.Id);
            page.P($"{(s.External ? "An external system, outside this catalog's ownership. " : "")}{s.Description} Domain: {s.Domain ?? "-"}. Owner: {s.Owner ?? "-"}.");
            var related = catalog.Messages.Where(m => s.Publishes.Concat(s.Sends).Concat(s.Consumes).Concat(s.Requests).Contains(m.Name)).ToList();
            page.H2("Flow");
            page.Mermaid(Flow(catalog, related));
            page.H2("Messages");
            page.Table(["Role", "Messages"], [
                ["publishes", string.Join(", ", s.Publishes.Select(m => Link("../message", m, m)))],
                ["sends", string.Join(", ", s.Sends.Select(m => Link("../message", m, m)))],
                ["requests", string.Join(", ", s.Requests.Select(m => Link("../message", m, m)))],
                ["consumes", string.Join(", ", s.Consumes.Select(m => Link("../message", m, m)))],
            ], raw: true);
            if (s.Streams.Count > 0) page.P($"Appends to the stream categories {string.Join(", ", s.Streams)} (how catalog diff maps a store's streams to this service).");
            if (s.Consumers.Count > 0)
                page.Table(["Consumes", "Competing consumers"], s.Consumers.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => new[] { c.Key, c.Value.ToString(CultureInfo.InvariantCulture) }));
            save($"service/{OutputFolder.FileName(s.Id)}.html", page.Html("../"));
            save($"markdown/service/{OutputFolder.FileName(s.Id)}.md", page.Markdown());
        }

        foreach (var m in catalog.Messages)
        {
            var page = new Page($"{m.Kind} {m.Name}", script, nav, "message:" + m.Name);
            page.P(m.Description ?? "");
            var ch = plan.GetValueOrDefault(m.Name);
            // A key-value table: each row names its fact in a row header, so no empty column header row is drawn.
            page.Facts([
                ("kind", m.Kind.ToString().ToLowerInvariant()),
                ("classification", m.Classification ?? "-"),
                ("owner", string.Join(", ", m.Owners)),
                ("producers", string.Join(", ", catalog.ProducersOf(m).Select(p => catalog.Service(p)?.External == true ? p + " (external)" : p))),
                ("consumers", string.Join(", ", catalog.ConsumersOf(m).Select(c => catalog.ConsumerCount(c, m.Name) is > 1 and var n ? $"{c} (×{n})" : c))),
                ("pattern", advice.TryGetValue(m.Name, out var a) ? $"{a.Pattern}: {a.Reason}" : "-"),
                ("channel", ch is null ? "-" : $"{ch.Kind} {ch.Name}" + (ch.Kind == "topic" ? $", {ch.Partitions} partition(s)" : "")),
                ("partition key", m.PartitionKey ?? "-"),
                ("correlation key", m.CorrelationKey ?? "-"),
                ("ordering", ch?.Ordering ?? "-"),
                ("compatibility", LintRules.ModeName(m.Compatibility)),
                ("rate / retention / latency", $"{(m.Rate is { } r ? r.ToString("0.#", CultureInfo.InvariantCulture) + "/s" : "-")} / {(m.Retention is { } ret ? ret.TotalDays.ToString("0.#", CultureInfo.InvariantCulture) + " days" : "-")} / {(m.Latency is { } l ? l.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture) + " s" : "-")}"),
            ]);
            page.H2("Flow");
            page.Mermaid(Flow(catalog, [m]));
            page.H2("Versions");
            for (var i = m.Versions.Count - 1; i >= 0; i--)
            {
                var v = m.Versions[i];
                page.H3($"v{v.Version}");
                if (v.Changelog is not null) page.P(v.Changelog);
                if (i > 0 && v.Schema is not null && m.Versions[i - 1].Schema is { } previous) page.List(Changes(previous, v.Schema));
                if (v.Schema is null) page.P("(no schema)");
                else
                {
                    var fields = SchemaFields(v.Schema);
                    if (fields.Count > 0) page.Table(["Field", "Type", "Required", "Description"], fields.Select(f => new[] { f.Path, f.Type, f.Required ? "yes" : "no", f.Description }), cssClass: "schema");
                    page.Code(v.Schema.ToJsonString(Pretty), fields.Count > 0 ? "Raw JSON Schema" : null);
                }
            }
            var own = findings.Where(f => f.Entity.EndsWith(" " + m.Name, StringComparison.Ordinal)).ToList();
            if (own.Count > 0)
            {
                page.H2("Lint findings");
                page.Table(["Severity", "Rule", "Finding", "Fix"], own.Select(f => new[] { f.Severity.ToString().ToLowerInvariant(), f.Rule, f.Message, f.Fix }));
            }
            save($"message/{OutputFolder.FileName(m.Name)}.html", page.Html("../"));
            save($"markdown/message/{OutputFolder.FileName(m.Name)}.md", page.Markdown());
        }
        return output.Files;
    }

    /// <summary>The messages the services of a domain produce.</summary>
    private static List<CatalogMessage> DomainMessages(EventCatalogModel catalog, string domain)
    {
        var services = catalog.Services.Where(s => s.Domain == domain).Select(s => s.Id).ToHashSet(StringComparer.Ordinal);
        return catalog.Messages.Where(m => catalog.ProducersOf(m).Any(services.Contains)).ToList();
    }

    /// <summary>The bundled mermaid.min.js, decompressed.</summary>
    private static string BundledMermaid()
    {
        using var compressed = typeof(SiteGenerator).Assembly.GetManifestResourceStream("Factum.Design.Assets.mermaid.min.js.br")
            ?? throw new InvalidOperationException("The bundled Mermaid is missing from Factum.Design.");
        using var brotli = new System.IO.Compression.BrotliStream(compressed, System.IO.Compression.CompressionMode.Decompress);
        using var reader = new StreamReader(brotli, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    private static string Resource(string name)
    {
        using var stream = typeof(SiteGenerator).Assembly.GetManifestResourceStream("Factum.Design.Assets." + name)
            ?? throw new InvalidOperationException($"The resource {name} is missing from Factum.Design.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    /// <summary>The search index: every message, service and domain with its kind, page (relative to the site root) and description.</summary>
    internal static JsonArray SearchIndex(EventCatalogModel catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        static JsonObject Entry(string name, string kind, string url, string? description) => new() { ["n"] = name, ["k"] = kind, ["u"] = url, ["d"] = description ?? "" };
        var entries = catalog.Messages.OrderBy(m => m.Name, StringComparer.Ordinal)
            .Select(m => Entry(m.Name, m.Kind.ToString().ToLowerInvariant(), $"message/{Uri.EscapeDataString(OutputFolder.FileName(m.Name))}.html", m.Description))
            .Concat(catalog.Services.OrderBy(s => s.Id, StringComparer.Ordinal).Select(s => Entry(s.Id, s.External ? "external" : "service", $"service/{Uri.EscapeDataString(OutputFolder.FileName(s.Id))}.html", s.Description)))
            .Concat(catalog.Domains.Select(d => Entry(d.Name ?? d.Id, "domain", $"domain/{Uri.EscapeDataString(OutputFolder.FileName(d.Id))}.html", d.Description)));
        return new JsonArray(entries.Select(e => (JsonNode)e).ToArray());
    }

    /// <summary>One row of a schema's field table.</summary>
    internal sealed record SchemaField(string Path, string Type, bool Required, string Description);

    /// <summary>
    /// The fields of a JSON Schema as rows: nested objects as <c>address.zip</c>, array items as <c>items[].sku</c>; the
    /// type with its format, enum or const; whether the parent requires it; its description. At most 8 levels and 500 rows.
    /// </summary>
    internal static IReadOnlyList<SchemaField> SchemaFields(JsonObject schema)
    {
        ArgumentNullException.ThrowIfNull(schema);
        var rows = new List<SchemaField>();
        void Walk(JsonObject node, string prefix, int depth)
        {
            if (depth > 8 || node["properties"] is not JsonObject props) return;
            var required = (node["required"] as JsonArray)?.Select(r => r is JsonValue v && v.TryGetValue<string>(out var s) ? s : null).OfType<string>().ToHashSet(StringComparer.Ordinal) ?? [];
            foreach (var (name, value) in props)
            {
                if (rows.Count >= 500) return;
                var child = value as JsonObject;
                rows.Add(new SchemaField(prefix + name, child is null ? "any" : TypeText(child), required.Contains(name), child?["description"] is JsonValue d && d.TryGetValue<string>(out var text) ? text : ""));
                if (child is null) continue;
                if (child["properties"] is JsonObject) Walk(child, prefix + name + ".", depth + 1);
                else if (child["items"] is JsonObject items && items["properties"] is JsonObject) Walk(items, prefix + name + "[].", depth + 1);
            }
        }
        Walk(schema, "", 0);
        return rows;
    }

    private static string TypeText(JsonObject s)
    {
        static string Str(JsonNode? n) => n switch
        {
            JsonValue v when v.TryGetValue<string>(out var t) => t,
            JsonArray a => string.Join(" | ", a.Select(x => x?.ToJsonString() is { } j ? j.Trim('"') : "null")),
            null => "",
            _ => n.ToJsonString(),
        };
        var type = Str(s["type"]);
        if (type.Length == 0) type = s["$ref"] is { } r ? "see " + Str(r) : s["oneOf"] is not null || s["anyOf"] is not null ? "one of several schemas" : "any";
        if (type == "array" && s["items"] is JsonObject items) type = "array of " + TypeText(items);
        if (s["format"] is { } f) type += $" ({Str(f)})";
        if (s["enum"] is JsonArray e) type += ": one of " + string.Join(", ", e.Select(x => x?.ToJsonString().Trim('"') ?? "null"));
        if (s["const"] is { } c) type += ": always " + c.ToJsonString().Trim('"');
        return type;
    }

    private static string Badge(CatalogMessageKind kind)
    {
        var k = kind.ToString().ToLowerInvariant();
        return $"<span class=\"badge {k}\">{k}</span>";
    }

    /// <summary>A Mermaid flowchart: services → message → services (events as stadiums, commands as rectangles, queries as hexagons).</summary>
    public static string Flow(EventCatalogModel catalog, IEnumerable<CatalogMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var sb = new StringBuilder("flowchart LR\n");
        var services = new HashSet<string>(StringComparer.Ordinal);
        foreach (var m in messages)
        {
            var id = "m_" + Node(m.Name);
            sb.Append(m.Kind switch
            {
                CatalogMessageKind.Event => $"  {id}([\"{Escape.Mermaid(m.Name)}\"])\n",
                CatalogMessageKind.Command => $"  {id}[\"{Escape.Mermaid(m.Name)}\"]\n",
                _ => $"  {id}{{{{\"{Escape.Mermaid(m.Name)}\"}}}}\n",
            });
            foreach (var p in catalog.ProducersOf(m)) { services.Add(p); sb.Append(CultureInfo.InvariantCulture, $"  s_{Node(p)} --> {id}\n"); }
            foreach (var c in catalog.ConsumersOf(m)) { services.Add(c); sb.Append(CultureInfo.InvariantCulture, $"  {id} --> s_{Node(c)}\n"); }
        }
        var external = new List<string>();
        foreach (var s in services)
        {
            // External systems (a payment provider, a partner) are drawn apart: dashed, marked, as Event Storming's pink notes.
            if (catalog.Service(s)?.External == true)
            {
                external.Add(s);
                sb.Append(CultureInfo.InvariantCulture, $"  s_{Node(s)}[/\"{Escape.Mermaid(s)} (external)\"/]\n");
            }
            else sb.Append(CultureInfo.InvariantCulture, $"  s_{Node(s)}[[\"{Escape.Mermaid(s)}\"]]\n");
        }
        if (external.Count > 0)
        {
            sb.Append("  classDef external fill:#f3e8fd,stroke:#6b2fa3,stroke-dasharray:5 3\n");
            sb.Append("  class ").Append(string.Join(",", external.Select(e => "s_" + Node(e)))).Append(" external\n");
        }
        return sb.ToString();
    }

    /// <summary>A Mermaid node id: the name when it is letters and digits only, else a cleaned name with a hash (so distinct names stay distinct nodes).</summary>
    private static string Node(string s) => s.Length > 0 && s.All(char.IsAsciiLetterOrDigit) ? s : new string(s.Take(40).Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_').ToArray()) + "_" + OutputFolder.Hash(s);

    /// <summary>What changed between two schema versions: properties added, removed, retyped, newly required.</summary>
    public static IReadOnlyList<string> Changes(JsonObject previous, JsonObject next)
    {
        ArgumentNullException.ThrowIfNull(previous);
        ArgumentNullException.ThrowIfNull(next);
        var before = previous["properties"] as JsonObject ?? [];
        var after = next["properties"] as JsonObject ?? [];
        var req0 = (previous["required"] as JsonArray)?.OfType<JsonValue>().Select(x => x.ToString()).ToHashSet() ?? [];
        var req1 = (next["required"] as JsonArray)?.OfType<JsonValue>().Select(x => x.ToString()).ToHashSet() ?? [];
        var changes = new List<string>();
        foreach (var (name, schema) in after.Where(p => !before.ContainsKey(p.Key))) changes.Add($"added {(req1.Contains(name) ? "required" : "optional")} '{name}' ({schema?["type"]?.ToJsonString() ?? "any"})");
        foreach (var (name, _) in before.Where(p => !after.ContainsKey(p.Key))) changes.Add($"removed '{name}'");
        foreach (var (name, schema) in after.Where(p => before.ContainsKey(p.Key)))
        {
            if (!JsonNode.DeepEquals(before[name], schema)) changes.Add($"changed '{name}': {before[name]?.ToJsonString()} → {schema?.ToJsonString()}");
            if (req1.Contains(name) && !req0.Contains(name)) changes.Add($"'{name}' became required");
            if (!req1.Contains(name) && req0.Contains(name)) changes.Add($"'{name}' became optional");
        }
        return changes.Count == 0 ? ["no change to the properties"] : changes;
    }

    private static string Enc(string? s) => WebUtility.HtmlEncode(s ?? "");

    private static readonly System.Text.RegularExpressions.Regex LinkPattern = new("<a href=\"([^\"]*)\\.html\">([^<]*)</a>", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>A link to the page of <paramref name="name"/> in <paramref name="folder"/>: the same file name the page was written under (<see cref="OutputFolder.FileName"/>), escaped for the attribute.</summary>
    private static string Link(string folder, string name, string text) =>
        $"<a href=\"{Enc(folder + "/" + Uri.EscapeDataString(OutputFolder.FileName(name)))}.html\">{Enc(text)}</a>";

    /// <summary>One page, rendered as HTML and as Markdown from the same blocks.</summary>
    /// <summary>The sidebar shared by every page: search, domains with their services, messages by kind; links relative to the page.</summary>
    private sealed class Navigation(EventCatalogModel catalog, string siteTitle)
    {
        public string Html(string root, string current)
        {
            string Item(string folder, string name, string text, string key, string? badge = null) =>
                $"<li{(key == current ? " class=\"current\" aria-current=\"page\"" : "")}>{Link(root + folder, name, text)}{badge}</li>";
            var sb = new StringBuilder();
            sb.Append(CultureInfo.InvariantCulture, $"<nav class=\"sidebar\" aria-label=\"Catalog\"><a class=\"home\" href=\"{root}index.html\">{Enc(siteTitle)}</a>");
            sb.Append("<div class=\"search\"><input type=\"search\" id=\"search\" placeholder=\"Search messages, services…\" aria-label=\"Search the catalog\" autocomplete=\"off\"><ul id=\"search-results\" role=\"listbox\"></ul></div>");
            var domainIds = catalog.Domains.Select(d => d.Id).ToHashSet(StringComparer.Ordinal);
            if (catalog.Domains.Count > 0)
            {
                sb.Append("<h2>Domains</h2><ul>");
                foreach (var d in catalog.Domains)
                {
                    sb.Append(Item("domain", d.Id, d.Name ?? d.Id, "domain:" + d.Id));
                    var services = catalog.Services.Where(x => x.Domain == d.Id).OrderBy(x => x.Id, StringComparer.Ordinal).ToList();
                    if (services.Count > 0) sb.Append("<ul>").Append(string.Concat(services.Select(x => Item("service", x.Id, x.Id, "service:" + x.Id, x.External ? " <span class=\"badge external\">ext</span>" : null)))).Append("</ul>");
                }
                sb.Append("</ul>");
            }
            var loose = catalog.Services.Where(x => x.Domain is null || !domainIds.Contains(x.Domain)).OrderBy(x => x.Id, StringComparer.Ordinal).ToList();
            if (loose.Count > 0) sb.Append("<h2>Services</h2><ul>").Append(string.Concat(loose.Select(x => Item("service", x.Id, x.Id, "service:" + x.Id, x.External ? " <span class=\"badge external\">ext</span>" : null)))).Append("</ul>");
            foreach (var (kind, heading) in new[] { (CatalogMessageKind.Event, "Events"), (CatalogMessageKind.Command, "Commands"), (CatalogMessageKind.Query, "Queries") })
            {
                var messages = catalog.Messages.Where(m => m.Kind == kind).OrderBy(m => m.Name, StringComparer.Ordinal).ToList();
                if (messages.Count > 0) sb.Append("<h2>").Append(heading).Append("</h2><ul>").Append(string.Concat(messages.Select(m => Item("message", m.Name, m.Name, "message:" + m.Name)))).Append("</ul>");
            }
            return sb.Append("</nav>").ToString();
        }
    }

    /// <summary>One page, rendered as HTML and as Markdown from the same blocks.</summary>
    private sealed class Page(string title, string mermaidScript, Navigation nav, string key)
    {
        private readonly List<(string Html, string Markdown)> _blocks = [];

        public void P(string text) => _blocks.Add(($"<p>{Enc(text)}</p>", Escape.Markdown(text)));

        public void H2(string text) => _blocks.Add(($"<h2>{Enc(text)}</h2>", "## " + Escape.Markdown(text)));

        public void H3(string text) => _blocks.Add(($"<h3>{Enc(text)}</h3>", "### " + Escape.Markdown(text)));

        public void List(IEnumerable<string> items)
        {
            var list = items.ToList();
            _blocks.Add(("<ul>" + string.Concat(list.Select(i => $"<li>{Enc(i)}</li>")) + "</ul>", string.Join("\n", list.Select(i => "- " + Escape.Markdown(i)))));
        }

        /// <summary>Code, shown as it is; with a <paramref name="summary"/> it starts folded (the raw schema under its field table).</summary>
        public void Code(string code, string? summary = null)
        {
            // A fence longer than any run of backticks in the code, so the code cannot close it.
            var fence = new string('`', Math.Max(3, System.Text.RegularExpressions.Regex.Matches(code, "`+").Select(m => m.Length + 1).DefaultIfEmpty(0).Max()));
            var pre = $"<pre><code>{Enc(code)}</code></pre>";
            _blocks.Add((summary is null ? pre : $"<details class=\"raw\"><summary>{Enc(summary)}</summary>{pre}</details>", fence + "json\n" + code + "\n" + fence));
        }

        public void Mermaid(string graph) => _blocks.Add((
            "<figure class=\"diagram\"><div class=\"diagram-tools\" hidden><button type=\"button\" data-zoom=\"in\" title=\"Zoom in\">+</button><button type=\"button\" data-zoom=\"out\" title=\"Zoom out\">−</button><button type=\"button\" data-zoom=\"fit\" title=\"Fit to width\">Fit</button><span>scroll to zoom, drag to pan</span></div>"
                + $"<pre class=\"mermaid\">{Enc(graph)}</pre></figure>",
            "```mermaid\n" + graph + "```"));

        /// <summary>A two-column table of named facts: each row's name is its header cell, so there is no column header row.</summary>
        public void Facts(IEnumerable<(string Name, string Value)> rows)
        {
            var list = rows.ToList();
            var html = new StringBuilder("<table class=\"facts\"><tbody>");
            foreach (var (name, value) in list) html.Append("<tr><th scope=\"row\">").Append(Enc(name)).Append("</th><td>").Append(Enc(value)).Append("</td></tr>");
            html.Append("</tbody></table>");
            _blocks.Add((html.ToString(), string.Join("\n", list.Select(r => $"- **{Escape.Markdown(r.Name)}**: {Escape.Markdown(r.Value)}"))));
        }

        public void Table(string[] headers, IEnumerable<string[]> rows, bool raw = false, string? cssClass = null)
        {
            var list = rows.ToList();
            var html = new StringBuilder(cssClass is null ? "<table><thead><tr>" : $"<table class=\"{cssClass}\"><thead><tr>");
            foreach (var h in headers) html.Append("<th>").Append(Enc(h)).Append("</th>");
            html.Append("</tr></thead><tbody>");
            foreach (var r in list)
            {
                html.Append("<tr>");
                foreach (var c in r) html.Append("<td>").Append(raw ? c : Enc(c)).Append("</td>");
                html.Append("</tr>");
            }
            html.Append("</tbody></table>");
            // Raw cells are HTML (text, badges and links to pages): links become Markdown links to the .md page, tags are
            // dropped, text is decoded and escaped.
            static string Md(string cell)
            {
                var sb = new StringBuilder();
                var at = 0;
                foreach (System.Text.RegularExpressions.Match m in LinkPattern.Matches(cell))
                {
                    sb.Append(Escape.Markdown(WebUtility.HtmlDecode(Untag(cell[at..m.Index]))));
                    sb.Append('[').Append(Escape.Markdown(WebUtility.HtmlDecode(m.Groups[2].Value))).Append("](").Append(WebUtility.HtmlDecode(m.Groups[1].Value)).Append(".md)");
                    at = m.Index + m.Length;
                }
                return sb.Append(Escape.Markdown(WebUtility.HtmlDecode(Untag(cell[at..])))).ToString();
            }
            var md = new StringBuilder("| " + string.Join(" | ", headers.Select(Escape.Markdown)) + " |\n|" + string.Concat(headers.Select(_ => "---|")) + "\n");
            foreach (var r in list) md.Append("| ").Append(string.Join(" | ", r.Select(c => raw ? Md(c) : Escape.Markdown(c)))).Append(" |\n");
            _blocks.Add((html.ToString(), md.ToString().TrimEnd()));
        }

        /// <summary>Markup the generator itself wrote (badges) removed; cell text is already encoded, so no '&lt;' is the catalog's.</summary>
        private static string Untag(string html) => System.Text.RegularExpressions.Regex.Replace(html, "<[^>]*>", "");

        public string Html(string root)
        {
            var script = mermaidScript.StartsWith("http", StringComparison.Ordinal) ? mermaidScript : root + mermaidScript;
            return $$"""
                <!doctype html>
                <html lang="en">
                <head>
                <meta charset="utf-8">
                <meta name="viewport" content="width=device-width, initial-scale=1">
                <title>{{Enc(title)}}</title>
                <link rel="stylesheet" href="{{root}}assets/site.css">
                </head>
                <body data-root="{{root}}">
                {{nav.Html(root, key)}}
                <main>
                <h1>{{Enc(title)}}</h1>
                {{string.Join("\n", _blocks.Select(b => b.Html))}}
                </main>
                <script src="{{Enc(script)}}"></script>
                <script src="{{root}}assets/search-index.js"></script>
                <script src="{{root}}assets/site.js"></script>
                </body>
                </html>
                """;
        }

        public string Markdown() => $"# {Escape.Markdown(title)}\n\n" + string.Join("\n\n", _blocks.Select(b => b.Markdown)) + "\n";
    }
}
