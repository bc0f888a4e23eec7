using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace Factum.Design;

/// <summary>One disagreement between two sources of the catalog.</summary>
/// <param name="Entity">The message or service.</param>
/// <param name="Aspect">What differs: presence, kind, owner, version, schema, producers, consumers.</param>
/// <param name="Left">The left source's value.</param>
/// <param name="Right">The right source's value.</param>
public sealed record CatalogDifference(string Entity, string Aspect, string Left, string Right);

/// <summary>Compares two catalogs (YAML vs code vs what a store holds).</summary>
public static class CatalogDiff
{
    /// <summary>
    /// Every disagreement; aspects a source does not know (no owner, no services) are not compared. When
    /// <paramref name="right"/> is an observation of a store (<see cref="EventCatalogModel.IsObservation"/>): commands and
    /// queries are not expected in it (a store holds events); a store whose newest version of an event is older than the
    /// catalog's is not drift (history keeps old versions, and the new one may not be written yet), one holding a version
    /// the catalog does not list is; producers must match; and every consumer the store shows (a service that appended
    /// in response) must be declared, while declared consumers that append nothing cannot show in a store.
    /// </summary>
    public static IReadOnlyList<CatalogDifference> Compare(EventCatalogModel left, EventCatalogModel right)
    {
        ArgumentNullException.ThrowIfNull(left);
        ArgumentNullException.ThrowIfNull(right);
        var observed = right.IsObservation;
        var diffs = new List<CatalogDifference>();
        foreach (var name in left.Messages.Select(m => m.Name).Union(right.Messages.Select(m => m.Name)).Order(StringComparer.Ordinal))
        {
            var l = left.Message(name);
            var r = right.Message(name);
            if (l is null || r is null)
            {
                if (observed && r is null && l!.Kind != CatalogMessageKind.Event) continue;
                diffs.Add(new(name, "presence", l is null ? "missing" : "defined", r is null ? "missing" : "defined"));
                continue;
            }
            if (l.Kind != r.Kind) diffs.Add(new(name, "kind", l.Kind.ToString(), r.Kind.ToString()));
            if (l.Owners.Count > 0 && r.Owners.Count > 0 && !l.Owners.Order().SequenceEqual(r.Owners.Order())) diffs.Add(new(name, "owner", string.Join(",", l.Owners), string.Join(",", r.Owners)));
            if (l.Latest is { } lv && r.Latest is { } rv)
            {
                if (lv.Version != rv.Version && !(observed && rv.Version < lv.Version && l.Versions.Any(v => v.Version == rv.Version)))
                    diffs.Add(new(name, "latest version", $"v{lv.Version}", $"v{rv.Version}"));
                var same = l.Versions.FirstOrDefault(v => v.Version == rv.Version);
                if (same?.Schema is { } ls && rv.Schema is { } rs)
                {
                    var lp = Props(ls);
                    var rp = Props(rs);
                    foreach (var p in lp.Keys.Except(rp.Keys)) diffs.Add(new(name, $"schema v{rv.Version} property", p, "missing"));
                    foreach (var p in rp.Keys.Except(lp.Keys)) diffs.Add(new(name, $"schema v{rv.Version} property", "missing", p));
                    foreach (var p in lp.Keys.Intersect(rp.Keys).Where(p => lp[p] != rp[p])) diffs.Add(new(name, $"schema v{rv.Version} type of {p}", lp[p], rp[p]));
                }
            }
            if (left.Services.Count > 0 && right.Services.Count > 0)
            {
                var lpr = string.Join(",", left.ProducersOf(l));
                var rpr = string.Join(",", right.ProducersOf(r));
                if (lpr != rpr) diffs.Add(new(name, "producers", lpr, rpr));
                var lc = left.ConsumersOf(l);
                var rc = right.ConsumersOf(r);
                if (observed ? rc.Except(lc, StringComparer.Ordinal).Any() : !lc.SequenceEqual(rc))
                    diffs.Add(new(name, observed ? "consumers (observed, not declared)" : "consumers", string.Join(",", lc), string.Join(",", observed ? rc.Except(lc, StringComparer.Ordinal) : rc)));
            }
        }
        return diffs;
    }

    private static Dictionary<string, string> Props(JsonObject schema) =>
        (schema["properties"] as JsonObject ?? []).GroupBy(p => p.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().Value?["type"]?.ToJsonString() ?? "any", StringComparer.Ordinal);
}

/// <summary>
/// Imports the output of an Event Storming or Event Modeling session (a simple YAML or JSON document, see
/// <c>docs/catalog.md</c>) into a catalog skeleton.
/// </summary>
public static class StormingImport
{
    /// <summary>Reads the board and builds the skeleton: a domain per bounded context, a service per aggregate (or context), policies as consumers that send commands, read models as consumers.</summary>
    /// <exception cref="CatalogFormatException">The board does not parse or misses a name.</exception>
    public static EventCatalogModel Import(string text, string file)
    {
        ArgumentNullException.ThrowIfNull(text);
        var yaml = CatalogLoader.LoadYaml(text, file, "YAML or JSON");
        if (yaml.Documents.Count == 0 || yaml.Documents[0].RootNode is not YamlMappingNode root) throw new CatalogFormatException(file, 1, "expected a mapping with 'contexts:'");
        var contexts = root.Children.FirstOrDefault(kv => (kv.Key as YamlScalarNode)?.Value == "contexts").Value as YamlSequenceNode
            ?? throw new CatalogFormatException(file, (int)root.Start.Line, "'contexts' (a list of bounded contexts) is required");
        var domains = new List<CatalogDomain>();
        var services = new Dictionary<string, CatalogService>(StringComparer.Ordinal);
        var messages = new Dictionary<string, CatalogMessage>(StringComparer.Ordinal);
        CatalogService Svc(string id, string domain) => services.TryGetValue(id, out var s) ? s : services[id] = new CatalogService { Id = id, Domain = domain, Owner = domain, Description = "from the event storming board" };
        void Msg(string name, CatalogMessageKind kind, string owner, SourceLocation loc) =>
            messages.TryAdd(name, new CatalogMessage { Name = name, Kind = kind, Owners = [owner], Description = "from the event storming board", Source = loc, Versions = [new MessageVersion(1, new JsonObject { ["type"] = "object" }, "placeholder schema: fill in the payload")] });

        foreach (var node in contexts.Children)
        {
            if (node is not YamlMappingNode ctx) throw new CatalogFormatException(file, (int)node.Start.Line, "each context must be a mapping");
            string Name(YamlMappingNode n) => (n.Children.FirstOrDefault(kv => (kv.Key as YamlScalarNode)?.Value == "name").Value as YamlScalarNode)?.Value
                ?? throw new CatalogFormatException(file, (int)n.Start.Line, "'name' is required here");
            IEnumerable<YamlMappingNode> Items(YamlMappingNode n, string key) =>
                (n.Children.FirstOrDefault(kv => (kv.Key as YamlScalarNode)?.Value == key).Value as YamlSequenceNode)?.Children.Select(c => c as YamlMappingNode ?? throw new CatalogFormatException(file, (int)c.Start.Line, $"each entry of '{key}' must be a mapping")) ?? [];
            string? Str(YamlMappingNode n, string key) => (n.Children.FirstOrDefault(kv => (kv.Key as YamlScalarNode)?.Value == key).Value as YamlScalarNode)?.Value;
            IEnumerable<string> Strs(YamlMappingNode n, string key) => n.Children.FirstOrDefault(kv => (kv.Key as YamlScalarNode)?.Value == key).Value switch
            {
                YamlSequenceNode seq => seq.Children.OfType<YamlScalarNode>().Select(x => x.Value!),
                YamlScalarNode s when s.Value is not null => [s.Value],
                _ => [],
            };
            var context = Name(ctx);
            var domainId = Slug(context);
            domains.Add(new CatalogDomain(domainId, context, Str(ctx, "description"), new SourceLocation(file, (int)ctx.Start.Line)));
            foreach (var e in Items(ctx, "events"))
            {
                var svc = Svc(Slug(Str(e, "aggregate") ?? context), domainId);
                Msg(Name(e), CatalogMessageKind.Event, domainId, new SourceLocation(file, (int)e.Start.Line));
                services[svc.Id] = svc with { Publishes = [.. svc.Publishes, Name(e)] };
            }
            foreach (var c in Items(ctx, "commands"))
            {
                var svc = Svc(Slug(Str(c, "aggregate") ?? context), domainId);
                Msg(Name(c), CatalogMessageKind.Command, domainId, new SourceLocation(file, (int)c.Start.Line));
                services[svc.Id] = svc with { Consumes = [.. svc.Consumes, Name(c)] };
                if (Str(c, "actor") is { } actor)
                {
                    // The actor issues the command through some front end: model it as the command's sender.
                    var sender = Svc(Slug(actor), domainId);
                    services[sender.Id] = sender with { Sends = [.. sender.Sends, Name(c)], Description = $"actor {actor} (through a user interface)" };
                }
                foreach (var ev in Strs(c, "emits"))
                {
                    Msg(ev, CatalogMessageKind.Event, domainId, new SourceLocation(file, (int)c.Start.Line));
                    var current = services[svc.Id];
                    if (!current.Publishes.Contains(ev)) services[svc.Id] = current with { Publishes = [.. current.Publishes, ev] };
                }
            }
            foreach (var p in Items(ctx, "policies"))
            {
                var policy = Svc(Slug(Name(p)), domainId);
                services[policy.Id] = policy with { Consumes = [.. policy.Consumes, .. Strs(p, "when")], Sends = [.. policy.Sends, .. Strs(p, "then")], Description = "policy: whenever " + string.Join(", ", Strs(p, "when")) + " then " + string.Join(", ", Strs(p, "then")) };
            }
            foreach (var rm in Items(ctx, "readModels"))
            {
                var view = Svc(Slug(Name(rm)), domainId);
                services[view.Id] = view with { Consumes = [.. view.Consumes, .. Strs(rm, "from")], Description = "read model" };
            }
            foreach (var x in Items(ctx, "externalSystems"))
            {
                var ext = Svc(Slug(Name(x)), domainId);
                services[ext.Id] = ext with { Publishes = [.. ext.Publishes, .. Strs(x, "publishes")], Consumes = [.. ext.Consumes, .. Strs(x, "consumes")], Description = "external system" };
            }
        }
        var model = new EventCatalogModel { Domains = domains, Teams = domains.Select(d => new CatalogTeam(d.Id, d.Name, d.Source)).ToList(), Services = services.Values.ToList(), Messages = messages.Values.ToList() };
        // Events consumed in another context are public contracts: classify them as integration events from the start.
        var classified = model.Messages.Select(m =>
        {
            if (m.Kind != CatalogMessageKind.Event) return m;
            var home = m.Owners.Count > 0 ? m.Owners[0] : null;
            var crosses = model.ConsumersOf(m).Any(c => model.Service(c)?.Domain is { } d && d != home);
            return m with { Classification = crosses ? "integration" : "domain" };
        }).ToList();
        return model with { Messages = classified };
    }

    /// <summary>A lower-case, dash-separated id that keeps non-ASCII letters (Überweisung → überweisung, 受注 → 受注).</summary>
    internal static string Slug(string s)
    {
        var slug = string.Join("-", System.Text.RegularExpressions.Regex.Matches(s, @"\p{Lu}?[\p{Ll}\p{Lo}\p{N}]+|\p{Lu}+(?!\p{Ll})").Select(m => m.Value.ToLowerInvariant()));
        return slug.Length > 0 ? slug : "x" + Convert.ToHexString(System.Text.Encoding.UTF8.GetBytes(s)).ToLowerInvariant()[..Math.Min(16, s.Length * 2)];
    }
}

/// <summary>Exports the catalog to EventCatalog's folder format (<c>index.mdx</c> with frontmatter), so teams on EventCatalog keep their viewer.</summary>
public static class EventCatalogExport
{
    /// <summary>The EventCatalog release the emitted project pins: 2.64 runs on Node.js 20 (EventCatalog 3 needs Node.js 22.12 or later).</summary>
    public const string CoreVersionRange = "2.64.x";

    /// <summary>
    /// Writes a complete EventCatalog project that <c>npm install &amp;&amp; npm run build</c> turns into a site:
    /// <c>package.json</c> (pinning <c>@eventcatalog/core</c> <see cref="CoreVersionRange"/>), <c>eventcatalog.config.js</c>,
    /// <c>eventcatalog.styles.css</c>, <c>.gitignore</c>, and the content folders domains/, services/, events/, commands/,
    /// queries/ and teams/ (older versions under versioned/&lt;v&gt;/). Returns the files.
    /// </summary>
    /// <param name="catalog">The catalog.</param>
    /// <param name="outDir">The project folder.</param>
    /// <param name="title">The catalog's title (and organisation name) in the config.</param>
    public static IReadOnlyList<string> Write(EventCatalogModel catalog, string outDir, string title = "Event catalog")
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(title);
        var output = new OutputFolder(outDir);
        var save = output.Save;
        Project(save, title);
        // Frontmatter values are YAML double-quoted strings; body text is escaped for MDX (no markup, no {expressions});
        // folder names come from OutputFolder.FileName.
        static string Q(string? s) => Escape.Yaml(s);
        static string Body(string? s) => Escape.Markdown(s);
        static string F(string name) => OutputFolder.FileName(name);
        string Version(CatalogMessage m) => $"{m.Latest?.Version ?? 1}.0.0";
        string Refs(IEnumerable<string> names) => string.Concat(names.Select(n => catalog.Message(n) is { } m ? $"\n  - id: {Q(m.Name)}\n    version: {Version(m)}" : ""));
        foreach (var t in catalog.Teams) save($"teams/{F(t.Id)}.mdx", $"---\nid: {Q(t.Id)}\nname: {Q(t.Name ?? t.Id)}\n---\n");
        foreach (var d in catalog.Domains)
        {
            var services = catalog.Services.Where(s => s.Domain == d.Id).ToList();
            save($"domains/{F(d.Id)}/index.mdx", $"---\nid: {Q(d.Id)}\nname: {Q(d.Name ?? d.Id)}\nversion: 1.0.0\nsummary: {Q(d.Description)}\nservices:{string.Concat(services.Select(s => $"\n  - id: {Q(s.Id)}"))}\n---\n\n{Body(d.Description)}\n\n<NodeGraph />\n");
        }
        foreach (var s in catalog.Services)
        {
            save($"services/{F(s.Id)}/index.mdx", $"---\nid: {Q(s.Id)}\nname: {Q(s.Id)}\nversion: 1.0.0\nsummary: {Q(s.Description)}\nowners:{(s.Owner is null ? " []" : $"\n  - {Q(s.Owner)}")}\nsends:{Refs(s.Publishes.Concat(s.Sends).Concat(s.Requests))}\nreceives:{Refs(s.Consumes)}\n---\n\n{Body(s.Description)}\n\n<NodeGraph />\n");
        }
        foreach (var m in catalog.Messages)
        {
            var folder = m.Kind switch { CatalogMessageKind.Command => "commands", CatalogMessageKind.Query => "queries", _ => "events" };
            for (var i = 0; i < m.Versions.Count; i++)
            {
                var v = m.Versions[i];
                var latest = i == m.Versions.Count - 1;
                var dir = latest ? $"{folder}/{F(m.Name)}" : $"{folder}/{F(m.Name)}/versioned/{v.Version}.0.0";
                var badges = m.Classification is null ? "" : $"\nbadges:\n  - content: {Q(m.Classification)}\n    backgroundColor: blue\n    textColor: white";
                save($"{dir}/index.mdx", $"---\nid: {Q(m.Name)}\nname: {Q(m.Name)}\nversion: {v.Version}.0.0\nsummary: {Q(m.Description)}\nowners:{(m.Owners.Count == 0 ? " []" : string.Concat(m.Owners.Select(o => $"\n  - {Q(o)}")))}{badges}\nschemaPath: schema.json\n---\n\n{Body(m.Description)}\n\n{(v.Changelog is null ? "" : "## Changes\n\n" + Body(v.Changelog) + "\n\n")}<Schema file=\"schema.json\" />\n\n<NodeGraph />\n");
                save($"{dir}/schema.json", (v.Schema ?? new JsonObject()).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
        }
        return output.Files;
    }

    /// <summary>The files that make the folder an EventCatalog project rather than content alone.</summary>
    private static void Project(Action<string, string> save, string title)
    {
        // JSON string literals are valid JavaScript string literals; the default encoder escapes every non-ASCII and
        // markup character, so no title can end the literal or the comment.
        static string Js(string s) => JsonSerializer.Serialize(s);
        var slug = new string(title.ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '-').ToArray()).Trim('-');
        var package = new JsonObject
        {
            ["name"] = (slug.Length == 0 ? "catalog" : slug.Length > 60 ? slug[..60].TrimEnd('-') : slug) + "-eventcatalog",
            ["version"] = "0.1.0",
            ["private"] = true,
            ["type"] = "module",
            ["description"] = "Generated by factum catalog export-eventcatalog. Build with: npm install && npm run build (Node.js 20 or later).",
            ["scripts"] = new JsonObject
            {
                ["dev"] = "eventcatalog dev",
                ["build"] = "eventcatalog build",
                ["start"] = "eventcatalog start",
                ["preview"] = "eventcatalog preview",
                ["generate"] = "eventcatalog generate",
            },
            ["dependencies"] = new JsonObject { ["@eventcatalog/core"] = CoreVersionRange },
            ["engines"] = new JsonObject { ["node"] = ">=20" },
        };
        save("package.json", package.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        // EventCatalog adds a catalog id (cId) to a config without one; a stable one derived from the title keeps the
        // export reproducible (re-exporting writes the same file).
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes("factum-eventcatalog:" + title));
        var cId = new Guid(hash.AsSpan(0, 16)).ToString();
        save("eventcatalog.config.js", $$"""
            // Generated by factum catalog export-eventcatalog (EventCatalog {{CoreVersionRange}}).
            /** @type {import('@eventcatalog/core/bin/eventcatalog.config').Config} */
            export default {
              cId: '{{cId}}',
              title: {{Js(title)}},
              tagline: 'Events, commands, queries and services, exported from the Factum catalog',
              organizationName: {{Js(title)}},
              homepageLink: 'https://eventcatalog.dev/',
              output: 'static',
              trailingSlash: false,
              base: '/',
            };

            """);
        save("eventcatalog.styles.css", "/* Custom styles for the exported catalog (EventCatalog loads this file). */\n");
        save(".gitignore", "node_modules/\ndist/\n.eventcatalog-core/\n");
    }
}
