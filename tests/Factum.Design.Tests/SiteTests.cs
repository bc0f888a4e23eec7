using Factum.Design;
using Microsoft.Playwright;

namespace Factum.Design.Tests;

public sealed class SiteTests : IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("factum-site-").FullName;

    public void Dispose() => Directory.Delete(_out, true);


    private static EventCatalogModel Sample() => CatalogLoader.Load([Repo.SampleCatalog]);

    private static string MermaidJs()
    {
        var path = Path.Combine(Repo.NodeTools, "node_modules", "mermaid", "dist", "mermaid.min.js");
        Assert.True(File.Exists(path), "Mermaid is not installed: run ./test.sh (it installs it) or `npm install` in tools/node.");
        return path;
    }

    [Fact]
    public void The_site_has_a_page_per_domain_service_and_message_in_html_and_markdown()
    {
        var files = SiteGenerator.Write(Sample(), _out, title: "Order fulfilment");
        Assert.Contains(files, f => f.EndsWith(Path.Combine("message", "OrderPlaced.html"), StringComparison.Ordinal));
        Assert.Contains(files, f => f.EndsWith(Path.Combine("markdown", "service", "billing.md"), StringComparison.Ordinal));
        Assert.Contains(files, f => f.EndsWith(Path.Combine("domain", "sales.html"), StringComparison.Ordinal));
        var page = File.ReadAllText(Path.Combine(_out, "message", "OrderPlaced.html"));
        Assert.Contains("<pre class=\"mermaid\">flowchart LR", page);
        Assert.Contains("added optional &#39;channel&#39;", page);       // the changelog between v1 and v2
        Assert.Contains("Adds the optional sales channel", page);
        Assert.Contains("EventStreaming", page);
        Assert.Contains("topic OrderPlaced, 3 partition(s)", page);
        var md = File.ReadAllText(Path.Combine(_out, "markdown", "message", "OrderPlaced.md"));
        Assert.Contains("```mermaid", md);
        Assert.Contains("s_orders --> m_OrderPlaced", md);
        Assert.Contains("m_OrderPlaced --> s_billing", md);
        Assert.Contains("[billing](service/billing.md)", File.ReadAllText(Path.Combine(_out, "markdown", "index.md")));
    }

    [Fact]
    public void Lint_findings_appear_on_the_site()
    {
        var catalog = CatalogLoader.Parse("events:\n  - {name: PlaceOrder, owner: t, versions: [{version: 1, schema: {type: object}}]}\n");
        SiteGenerator.Write(catalog, _out);
        Assert.Contains("naming/event-past-tense", File.ReadAllText(Path.Combine(_out, "index.html")));
        Assert.Contains("naming/event-past-tense", File.ReadAllText(Path.Combine(_out, "message", "PlaceOrder.html")));
    }

    [Fact]
    public async Task A_page_loads_in_headless_chromium_and_the_diagram_draws()
    {
        SiteGenerator.Write(Sample(), _out, MermaidJs(), "Order fulfilment");
        var chromium = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);
        Assert.True(chromium is not null, "Chromium is not installed: run ./test.sh (it installs Debian's chromium package).");
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = chromium, Headless = true, Args = ["--no-sandbox"] });
        var page = await browser.NewPageAsync();
        var errors = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        await page.GotoAsync(new Uri(Path.Combine(_out, "message", "OrderPlaced.html")).AbsoluteUri);
        await page.WaitForSelectorAsync("pre.mermaid svg", new PageWaitForSelectorOptions { Timeout = 30_000 });
        Assert.Equal("Event OrderPlaced", await page.TitleAsync());
        var nodes = await page.Locator("pre.mermaid svg .node").CountAsync();
        Assert.True(nodes >= 5, $"the flow diagram drew {nodes} nodes"); // the event, its producer and three consumers
        var labels = await page.Locator("pre.mermaid").InnerTextAsync();
        Assert.Contains("OrderPlaced", labels);
        Assert.Contains("billing", labels);
        Assert.Empty(errors);
    }

    private static string Chromium()
    {
        var chromium = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);
        Assert.True(chromium is not null, "Chromium is not installed: run ./test.sh (it installs Debian's chromium package).");
        return chromium!;
    }

    [Fact]
    public async Task The_site_renders_its_diagrams_offline_searches_and_zooms_with_no_network_at_all()
    {
        SiteGenerator.Write(Sample(), _out, title: "Order fulfilment"); // the default: Mermaid bundled, nothing from a CDN
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = Chromium(), Headless = true, Args = ["--no-sandbox"] });
        var context = await browser.NewContextAsync();
        var blocked = new List<string>();
        // Offline: every request that is not a file of the site is aborted (and recorded, so the test names it).
        await context.RouteAsync("**/*", async route =>
        {
            if (route.Request.Url.StartsWith("file://", StringComparison.Ordinal)) await route.ContinueAsync();
            else { lock (blocked) blocked.Add(route.Request.Url); await route.AbortAsync(); }
        });
        var page = await context.NewPageAsync();
        var errors = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        page.Console += (_, m) => { if (m.Type == "error") errors.Add(m.Text); };

        await page.GotoAsync(new Uri(Path.Combine(_out, "index.html")).AbsoluteUri);
        await page.WaitForSelectorAsync("body[data-diagrams=ready]", new PageWaitForSelectorOptions { Timeout = 60_000 });
        var diagrams = await page.Locator("pre.mermaid").CountAsync();
        Assert.Equal(3, diagrams); // one graph per domain: sales, billing, fulfilment
        Assert.Equal(diagrams, await page.Locator("pre.mermaid svg").CountAsync());
        Assert.True(await page.Locator("pre.mermaid svg .node").CountAsync() >= 10);
        Assert.Contains("OrderPlaced", await page.Locator("pre.mermaid").First.TextContentAsync());

        // Zoom with the wheel and pan by dragging change the diagram's transform.
        var first = page.Locator("pre.mermaid").First;
        var scale = await first.GetAttributeAsync("data-scale");
        var box = (await first.BoundingBoxAsync())!;
        await page.Mouse.MoveAsync(box.X + box.Width / 2, box.Y + box.Height / 2);
        await page.Mouse.WheelAsync(0, -300);
        await page.WaitForFunctionAsync("s => document.querySelector('pre.mermaid').getAttribute('data-scale') !== s", scale);
        var before = await first.Locator("svg").EvaluateAsync<string>("e => e.style.transform");
        await page.Mouse.DownAsync();
        await page.Mouse.MoveAsync(box.X + box.Width / 2 + 60, box.Y + box.Height / 2 + 20, new MouseMoveOptions { Steps = 4 });
        await page.Mouse.UpAsync();
        Assert.NotEqual(before, await first.Locator("svg").EvaluateAsync<string>("e => e.style.transform"));

        // The sidebar links every domain, service and message; the search finds a message and opens it.
        Assert.Equal(11, await page.Locator("nav.sidebar a[href^='message/']").CountAsync());
        await page.FillAsync("#search", "captured");
        await page.WaitForSelectorAsync("#search-results li");
        Assert.StartsWith("PaymentCaptured", await page.Locator("#search-results li").First.InnerTextAsync());
        await page.PressAsync("#search", "Enter");
        await page.WaitForURLAsync("**/message/PaymentCaptured.html");
        await page.WaitForSelectorAsync("body[data-diagrams=ready]", new PageWaitForSelectorOptions { Timeout = 60_000 });
        Assert.Equal(1, await page.Locator("pre.mermaid svg").CountAsync());

        // The schema reads as a table of fields; the raw JSON is still there.
        var row = page.Locator("table.schema tr", new PageLocatorOptions { HasText = "paymentId" });
        Assert.Equal(["paymentId", "string", "yes", ""], await row.Locator("td").AllInnerTextsAsync());
        Assert.Contains("\"additionalProperties\": false", await page.Locator("details.raw pre").TextContentAsync());

        Assert.Empty(blocked);
        Assert.Empty(errors);
    }

    [Fact]
    public void Mermaid_is_bundled_by_default_and_comes_from_a_cdn_only_when_asked()
    {
        var files = SiteGenerator.Write(Sample(), _out);
        var bundled = new FileInfo(Path.Combine(_out, "assets", "mermaid.min.js"));
        Assert.True(bundled.Exists && bundled.Length > 1_000_000, "the bundled mermaid.min.js is missing");
        Assert.StartsWith("\"use strict\";", File.ReadAllText(bundled.FullName)[..20], StringComparison.Ordinal);
        Assert.Contains("MIT License", File.ReadAllText(Path.Combine(_out, "assets", "mermaid.LICENSE.txt")));
        foreach (var html in files.Where(f => f.EndsWith(".html", StringComparison.Ordinal)))
            Assert.DoesNotContain("src=\"http", File.ReadAllText(html));

        var cdn = Path.Combine(_out, "cdn");
        SiteGenerator.Write(Sample(), cdn, SiteGenerator.MermaidFromCdn);
        Assert.False(File.Exists(Path.Combine(cdn, "assets", "mermaid.min.js")));
        Assert.Contains($"<script src=\"{SiteGenerator.MermaidCdn}\"></script>", File.ReadAllText(Path.Combine(cdn, "index.html")));
    }

    [Fact]
    public void Message_pages_have_no_empty_table_header_row()
    {
        SiteGenerator.Write(Sample(), _out);
        foreach (var file in Directory.EnumerateFiles(_out, "*.html", SearchOption.AllDirectories))
        {
            var html = File.ReadAllText(file);
            Assert.DoesNotContain("<th></th>", html);
            foreach (System.Text.RegularExpressions.Match head in System.Text.RegularExpressions.Regex.Matches(html, "<thead>(.*?)</thead>"))
                Assert.DoesNotMatch("<th>\\s*</th>", head.Groups[1].Value);
        }
        var page = File.ReadAllText(Path.Combine(_out, "message", "OrderPlaced.html"));
        Assert.Contains("<table class=\"facts\"><tbody><tr><th scope=\"row\">kind</th><td>Event</td>".Replace("Event", "event", StringComparison.Ordinal), page);
        Assert.Contains("- **kind**: event", File.ReadAllText(Path.Combine(_out, "markdown", "message", "OrderPlaced.md")));
    }

    [Fact]
    public void Schema_fields_list_nested_properties_array_items_types_and_required()
    {
        var schema = (System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse("""
            {"type":"object","required":["id"],"properties":{
              "id":{"type":"string","format":"uuid","description":"The order."},
              "channel":{"type":"string","enum":["web","store"]},
              "address":{"type":"object","required":["zip"],"properties":{"zip":{"type":"string"}}},
              "lines":{"type":"array","items":{"type":"object","properties":{"sku":{"type":["string","null"]}}}}}}
            """)!;
        var rows = SiteGenerator.SchemaFields(schema).Select(f => $"{f.Path}|{f.Type}|{f.Required}|{f.Description}").ToList();
        Assert.Equal([
            "id|string (uuid)|True|The order.",
            "channel|string: one of web, store|False|",
            "address|object|False|",
            "address.zip|string|True|",
            "lines|array of object|False|",
            "lines[].sku|string | null|False|",
        ], rows);
    }
}
