using System.IO.Compression;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Factum.Samples.Tests;

/// <summary>
/// Packs the src projects once, under a version no cache can hold (0.1.0-test.TIMESTAMP.RANDOM), into a private folder.
/// The packages are made from the outputs of the build the tests run after (<c>--no-build</c>): a pack that rebuilt
/// would rewrite src/*/bin while other test projects run those programs in parallel. The versions it adds to the
/// machine's global packages folder are removed afterwards.
/// </summary>
public sealed class PackedPackages : IAsyncLifetime
{
    public static readonly string[] Projects = ["Factum", "Factum.Sqlite", "Factum.PostgreSql", "Factum.Design", "Factum.Cli"];

    private readonly TempFolder _dir = new();

    public string Version { get; } = $"0.1.0-test.{DateTime.UtcNow:yyyyMMddHHmmssfff}.r{Guid.NewGuid():N}"[..40];

    public string Folder => _dir.Combine("packages");

    public string Root => _dir.Path;

    public async Task InitializeAsync()
    {
        foreach (var project in Projects)
            await Processes.RunOkAsync("dotnet", Repo.Root, TimeSpan.FromMinutes(3),
                "pack", Path.Combine("src", project), "-c", Repo.Configuration, "--no-build", "-o", Folder, "-nologo",
                $"-p:Version={Version}", $"-p:NuspecOutputPath={_dir.Combine("nuspec", project)}/");
    }

    public Task DisposeAsync()
    {
        var global = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } g ? g
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (var project in Projects)
        {
            var installed = Path.Combine(global, project.ToLowerInvariant(), Version.ToLowerInvariant());
            try
            {
                if (Directory.Exists(installed)) Directory.Delete(installed, true);
                var id = Path.GetDirectoryName(installed)!;
                if (Directory.Exists(id) && !Directory.EnumerateFileSystemEntries(id).Any()) Directory.Delete(id);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        _dir.Dispose();
        return Task.CompletedTask;
    }
}

/// <summary>The packages and the tool install the way .NET users install things, from a local folder, and work.</summary>
public sealed class PackageTests(PackedPackages packages) : IClassFixture<PackedPackages>, IDisposable
{
    private static readonly TimeSpan Slow = TimeSpan.FromMinutes(4);
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Every_package_has_its_readme_the_MIT_license_repository_info_and_a_symbols_package()
    {
        foreach (var project in PackedPackages.Projects)
        {
            var nupkg = Path.Combine(packages.Folder, $"{project}.{packages.Version}.nupkg");
            Assert.True(File.Exists(nupkg), $"{nupkg} was not packed");
            Assert.True(File.Exists(Path.ChangeExtension(nupkg, ".snupkg")), $"{project} has no symbols package");
            using var zip = ZipFile.OpenRead(nupkg);
            var entries = zip.Entries.Select(e => e.FullName).ToHashSet();
            var nuspec = XDocument.Load(zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open());
            var ns = nuspec.Root!.GetDefaultNamespace();
            var meta = nuspec.Root.Element(ns + "metadata")!;
            Assert.Equal(project, meta.Element(ns + "id")!.Value);
            Assert.Equal("MIT", meta.Element(ns + "license")!.Value);
            Assert.Equal("expression", meta.Element(ns + "license")!.Attribute("type")!.Value);
            Assert.Equal("README.md", meta.Element(ns + "readme")!.Value);
            Assert.Contains("README.md", entries);
            Assert.False(string.IsNullOrWhiteSpace(meta.Element(ns + "description")?.Value));
            var repository = meta.Element(ns + "repository")!;
            Assert.Equal("git", repository.Attribute("type")!.Value);
            Assert.StartsWith("https://", repository.Attribute("url")!.Value);
            Assert.Matches("^[0-9a-f]{40}$", repository.Attribute("commit")!.Value);
            if (project == "Factum.Cli")
            {
                Assert.Equal("DotnetTool", meta.Element(ns + "packageTypes")!.Element(ns + "packageType")!.Attribute("name")!.Value);
                Assert.Contains("tools/net10.0/any/Factum.Cli.dll", entries);
            }
            else
            {
                Assert.Contains($"lib/net10.0/{project}.dll", entries);
                Assert.Contains($"lib/net10.0/{project}.xml", entries);
            }
        }
        // Factum.Sqlite brings Factum, at the same version.
        using var sqlite = ZipFile.OpenRead(Path.Combine(packages.Folder, $"Factum.Sqlite.{packages.Version}.nupkg"));
        var deps = XDocument.Load(sqlite.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open())
            .Descendants().Where(e => e.Name.LocalName == "dependency").ToDictionary(e => e.Attribute("id")!.Value, e => e.Attribute("version")!.Value);
        Assert.Equal(packages.Version, deps["Factum"]);
    }

    [Fact]
    public async Task Quick_start_runs_in_a_fresh_console_project_that_adds_the_packed_Factum_Sqlite()
    {
        var app = _dir.Combine("QuickStartApp");
        await Processes.RunOkAsync("dotnet", _dir.Path, Slow, "new", "console", "-o", app, "--no-restore");
        // The packed folder plus the machine's own sources (nuget.config files merge; no <clear/>).
        await File.WriteAllTextAsync(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="factum-local" value="{packages.Folder}" />
              </packageSources>
            </configuration>
            """);
        await Processes.RunOkAsync("dotnet", app, Slow, "add", "package", "Factum.Sqlite", "--version", packages.Version);
        File.Copy(Path.Combine(Repo.Root, "samples", "QuickStart", "Program.cs"), Path.Combine(app, "Program.cs"), overwrite: true);

        var r = await Processes.RunOkAsync("dotnet", app, Slow, "run");

        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(lines.Length == 3, r.Transcript);
        Assert.Matches("^appended to Order-[0-9a-f]{8} at position 1$", lines[0]);
        Assert.Matches("^0 OrderPlaced [0-9a-f-]{36} OrderPlaced { OrderId = [0-9a-f]{8}, Total = 99.90 }$", lines[1]);
        Assert.StartsWith("ShipmentScheduled caused by ", lines[2]);
        // It ran on the packages, not on the repository's projects.
        var assets = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(app, "obj", "project.assets.json")));
        var libraries = assets.RootElement.GetProperty("libraries").EnumerateObject().Select(p => p.Name).ToList();
        Assert.Contains($"Factum.Sqlite/{packages.Version}", libraries);
        Assert.Contains($"Factum/{packages.Version}", libraries);
        Assert.Equal("package", assets.RootElement.GetProperty("libraries").GetProperty($"Factum/{packages.Version}").GetProperty("type").GetString());
    }

    [Fact]
    public async Task Factum_tool_installs_from_the_packed_folder_as_a_local_tool_and_appends_and_reads()
    {
        var work = _dir.Combine("tool");
        Directory.CreateDirectory(work);
        await Processes.RunOkAsync("dotnet", work, Slow, "new", "tool-manifest");
        var install = await Processes.RunOkAsync("dotnet", work, Slow, "tool", "install", "--add-source", packages.Folder, "Factum.Cli", "--version", packages.Version);
        Assert.Contains("factum", install.Stdout);

        // The tool is the CLI the solution built: the same informational version.
        var version = await Processes.RunOkAsync("dotnet", work, Slow, "factum", "--version");
        var built = await Processes.RunOkAsync("dotnet", work, Slow, Path.Combine(Repo.Root, "src", "Factum.Cli", "bin", Repo.Configuration, "net10.0", "Factum.Cli.dll"), "--version");
        Assert.Equal(built.Stdout.Trim(), version.Stdout.Trim());
        Assert.Matches(@"^\d+\.\d+\.\d+", version.Stdout.Trim());

        var data = _dir.Combine("store");
        var appended = await Processes.RunOkAsync("dotnet", work, Slow, "factum", "--data", data, "append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", """{"total":5}""", "--expected", "no-stream");
        Assert.Contains("appended: 1 event(s) to Order-1", appended.Stdout);
        var read = await Processes.RunOkAsync("dotnet", work, Slow, "factum", "--data", data, "read", "--stream", "Order-1", "--json");
        var e = JsonDocument.Parse(read.Stdout.Trim()).RootElement;
        Assert.Equal("OrderPlaced", e.GetProperty("type").GetString());
        Assert.Equal(5, e.GetProperty("data").GetProperty("total").GetInt32());
        Assert.True(File.Exists(Path.Combine(data, "factum.db")));
    }
}
