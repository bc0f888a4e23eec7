using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Factum.Design;

/// <summary>
/// Generates the catalog's documentation: a static HTML site (open <c>index.html</c>, no server needed) and the same
/// pages in Markdown, with Mermaid flow diagrams (producers → messages → consumers) and the lint findings.
/// </summary>
public static class SiteGenerator
{
    private const string MermaidCdn = "https://cdn.jsdelivr.net/npm/mermaid@12/dist/mermaid.min.js";
    private static readonly JsonSerializerOptions Pretty = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes the site to <paramref name="outDir"/> (HTML at the root, Markdown under <c>markdown/</c>); returns the files.</summary>
    /// <param name="catalog">The catalog.</param>
    /// <param name="outDir">Where to write.</param>
    /// <param name="mermaidJs">A local <c>mermaid.min.js</c> to copy next to the pages (offline viewing); null loads it from a CDN.</param>
    /// <param name="title">The site title.</param>
    public static IReadOnlyList<string> Write(EventCatalogModel catalog, string outDir, string? mermaidJs = null, string title = "Event catalog")
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var output = new OutputFolder(outDir);
        var save = output.Save;
        var script = MermaidCdn;
        if (mermaidJs is not null)
        {
            if (!File.Exists(mermaidJs)) throw new CatalogFormatException(mermaidJs, 0, "the Mermaid script does not exist");
            output.Copy(mermaidJs, Path.Combine("assets", "mermaid.min.js"));
            script = "assets/mermaid.min.js";
        }
        var findings = LintRules.Lint(catalog);
        var advice = Advisor.Advise(catalog).Patterns.ToDictionary(p => p.Message);
        var plan = TopologyPlanner.Plan(catalog).ToDictionary(p => p.Message.Name);

        // index
        var index = new Page(title, script);
        index.P($"{catalog.Domains.Count} domain(s), {catalog.Services.Count} service(s), {catalog.Messages.Count} message(s). Lint: {findings.Count(f => f.Severity == Severity.Error)} error(s), {findings.Count(f => f.Severity == Severity.Warning)} warning(s).");
        index.H2("Flow");
        index.Mermaid(Flow(catalog, catalog.Messages));
        index.H2("Domains");
        index.Table(["Domain", "Services", "Description"], catalog.Domains.Select(d => new[] { Link("domain", d.Id, d.Name ?? d.Id), string.Join(", ", catalog.Services.Where(s => s.Domain == d.Id).Select(s => Link("service", s.Id, s.Id))), Enc(d.Description) }), raw: true);
        index.H2("Services");
        index.Table(["Service", "Domain", "Owner", "Publishes / sends", "Consumes"], catalog.Services.OrderBy(s => s.Id, StringComparer.Ordinal).Select(s => new[]
        {
            Link("service", s.Id, s.Id), Enc(s.Domain), Enc(s.Owner), string.Join(", ", s.Publishes.Concat(s.Sends).Concat(s.Requests).Select(m => Link("message", m, m))), string.Join(", ", s.Consumes.Select(m => Link("message", m, m))),
        }), raw: true);
        index.H2("Messages");
        index.Table(["Message", "Kind", "Owner", "Latest version", "Pattern", "Channel"], catalog.Messages.OrderBy(m => m.Name, StringComparer.Ordinal).Select(m => new[]
        {
            Link("message", m.Name, m.Name), m.Kind.ToString().ToLowerInvariant(), Enc(string.Join(", ", m.Owners)), m.Latest is { } v ? $"v{v.Version}" : "-",
            advice.TryGetValue(m.Name, out var a) ? a.Pattern.ToString() : "-", plan.TryGetValue(m.Name, out var p) ? Enc($"{p.Kind} {p.Name}") : "-",
        }), raw: true);
        index.H2("Lint findings");
        if (findings.Count == 0) index.P("None: the catalog follows every rule.");
        else index.Table(["Severity", "Rule", "Entity", "Finding", "Fix"], findings.Select(f => new[] { f.Severity.ToString().ToLowerInvariant(), f.Rule, f.Entity, f.Message, f.Fix }));
        save("index.html", index.Html(""));
        save("markdown/index.md", index.Markdown());

        foreach (var d in catalog.Domains)
        {
            var page = new Page($"Domain {d.Name ?? d.Id}", script);
            page.P(d.Description ?? "");
            var services = catalog.Services.Where(s => s.Domain == d.Id).ToList();
            var messages = catalog.Messages.Where(m => catalog.ProducersOf(m).Any(p => services.Any(s => s.Id == p))).ToList();
            page.H2("Flow");
            page.Mermaid(Flow(catalog, messages));
            page.H2("Services");
            page.Table(["Service", "Owner", "Description"], services.Select(s => new[] { Link("../service", s.Id, s.Id), Enc(s.Owner), Enc(s.Description) }), raw: true);
            save($"domain/{OutputFolder.FileName(d.Id)}.html", page.Html("../"));
            save($"markdown/domain/{OutputFolder.FileName(d.Id)}.md", page.Markdown());
        }

        foreach (var s in catalog.Services)
        {
            var page = new Page($"Service {s.Id}", script);
            page.P($"{s.Description} Domain: {s.Domain ?? "-"}. Owner: {s.Owner ?? "-"}.");
            var related = catalog.Messages.Where(m => s.Publishes.Concat(s.Sends).Concat(s.Consumes).Concat(s.Requests).Contains(m.Name)).ToList();
            page.H2("Flow");
            page.Mermaid(Flow(catalog, related));
            page.Table(["Role", "Messages"], [
                ["publishes", string.Join(", ", s.Publishes.Select(m => Link("../message", m, m)))],
                ["sends", string.Join(", ", s.Sends.Select(m => Link("../message", m, m)))],
                ["requests", string.Join(", ", s.Requests.Select(m => Link("../message", m, m)))],
                ["consumes", string.Join(", ", s.Consumes.Select(m => Link("../message", m, m)))],
            ], raw: true);
            save($"service/{OutputFolder.FileName(s.Id)}.html", page.Html("../"));
            save($"markdown/service/{OutputFolder.FileName(s.Id)}.md", page.Markdown());
        }

        foreach (var m in catalog.Messages)
        {
            var page = new Page($"{m.Kind} {m.Name}", script);
            page.P(m.Description ?? "");
            var ch = plan.GetValueOrDefault(m.Name);
            page.Table(["", ""], [
                ["kind", m.Kind.ToString().ToLowerInvariant()],
                ["classification", m.Classification ?? "-"],
                ["owner", string.Join(", ", m.Owners)],
                ["producers", string.Join(", ", catalog.ProducersOf(m))],
                ["consumers", string.Join(", ", catalog.ConsumersOf(m))],
                ["pattern", advice.TryGetValue(m.Name, out var a) ? $"{a.Pattern}: {a.Reason}" : "-"],
                ["channel", ch is null ? "-" : $"{ch.Kind} {ch.Name}" + (ch.Kind == "topic" ? $", {ch.Partitions} partition(s)" : "")],
                ["partition key", m.PartitionKey ?? "-"],
                ["ordering", ch?.Ordering ?? "-"],
                ["compatibility", LintRules.ModeName(m.Compatibility)],
                ["rate / retention / latency", $"{(m.Rate is { } r ? r.ToString("0.#", CultureInfo.InvariantCulture) + "/s" : "-")} / {(m.Retention is { } ret ? ret.TotalDays.ToString("0.#", CultureInfo.InvariantCulture) + " days" : "-")} / {(m.Latency is { } l ? l.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture) + " s" : "-")}"],
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
                page.Code(v.Schema?.ToJsonString(Pretty) ?? "(no schema)");
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
        foreach (var s in services) sb.Append(CultureInfo.InvariantCulture, $"  s_{Node(s)}[[\"{Escape.Mermaid(s)}\"]]\n");
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
    private sealed class Page(string title, string mermaidScript)
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

        public void Code(string code)
        {
            // A fence longer than any run of backticks in the code, so the code cannot close it.
            var fence = new string('`', Math.Max(3, System.Text.RegularExpressions.Regex.Matches(code, "`+").Select(m => m.Length + 1).DefaultIfEmpty(0).Max()));
            _blocks.Add(($"<pre><code>{Enc(code)}</code></pre>", fence + "json\n" + code + "\n" + fence));
        }

        public void Mermaid(string graph) => _blocks.Add(($"<pre class=\"mermaid\">{Enc(graph)}</pre>", "```mermaid\n" + graph + "```"));

        public void Table(string[] headers, IEnumerable<string[]> rows, bool raw = false)
        {
            var list = rows.ToList();
            var html = new StringBuilder("<table><thead><tr>");
            foreach (var h in headers) html.Append("<th>").Append(Enc(h)).Append("</th>");
            html.Append("</tr></thead><tbody>");
            foreach (var r in list)
            {
                html.Append("<tr>");
                foreach (var c in r) html.Append("<td>").Append(raw ? c : Enc(c)).Append("</td>");
                html.Append("</tr>");
            }
            html.Append("</tbody></table>");
            // Raw cells are HTML (text and links to pages): links become Markdown links to the .md page, text is decoded and escaped.
            static string Md(string cell)
            {
                var sb = new StringBuilder();
                var at = 0;
                foreach (System.Text.RegularExpressions.Match m in LinkPattern.Matches(cell))
                {
                    sb.Append(Escape.Markdown(WebUtility.HtmlDecode(cell[at..m.Index])));
                    sb.Append('[').Append(Escape.Markdown(WebUtility.HtmlDecode(m.Groups[2].Value))).Append("](").Append(WebUtility.HtmlDecode(m.Groups[1].Value)).Append(".md)");
                    at = m.Index + m.Length;
                }
                return sb.Append(Escape.Markdown(WebUtility.HtmlDecode(cell[at..]))).ToString();
            }
            var md = new StringBuilder("| " + string.Join(" | ", headers.Select(Escape.Markdown)) + " |\n|" + string.Concat(headers.Select(_ => "---|")) + "\n");
            foreach (var r in list) md.Append("| ").Append(string.Join(" | ", r.Select(c => raw ? Md(c) : Escape.Markdown(c)))).Append(" |\n");
            _blocks.Add((html.ToString(), md.ToString().TrimEnd()));
        }

        public string Html(string root)
        {
            var script = mermaidScript.StartsWith("http", StringComparison.Ordinal) ? mermaidScript : root + mermaidScript;
            return $$"""
                <!doctype html>
                <html lang="en">
                <head>
                <meta charset="utf-8">
                <title>{{Enc(title)}}</title>
                <style>
                body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1d1d1f; }
                table { border-collapse: collapse; margin: 1rem 0; } th, td { border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; vertical-align: top; }
                pre { background: #f6f8fa; padding: 1rem; overflow-x: auto; } pre.mermaid { background: none; }
                nav { margin-bottom: 1rem; }
                </style>
                </head>
                <body>
                <nav><a href="{{root}}index.html">Catalog</a></nav>
                <h1>{{Enc(title)}}</h1>
                {{string.Join("\n", _blocks.Select(b => b.Html))}}
                <script src="{{script}}"></script>
                <script>mermaid.initialize({ startOnLoad: true, securityLevel: 'strict' });</script>
                </body>
                </html>
                """;
        }

        public string Markdown() => $"# {Escape.Markdown(title)}\n\n" + string.Join("\n\n", _blocks.Select(b => b.Markdown)) + "\n";
    }
}
