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
}
