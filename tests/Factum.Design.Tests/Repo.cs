namespace Factum.Design.Tests;

/// <summary>Paths in the repository the tests run from.</summary>
internal static class Repo
{
    public static string Root { get; } = Find();

    public static string SampleCatalog => Path.Combine(Root, "samples", "catalog");

    public static string NodeTools => Path.Combine(Root, "tools", "node");

    private static string Find()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Factum.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Cannot find the repository root (Factum.slnx) above " + AppContext.BaseDirectory);
    }
}
