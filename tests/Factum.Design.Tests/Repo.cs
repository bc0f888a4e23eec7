namespace Factum.Design.Tests;

/// <summary>Paths in the repository the tests run from.</summary>
internal static class Repo
{
    public static string Root { get; } = Find();

    public static string SampleCatalog => Path.Combine(Root, "samples", "catalog");

    public static string NodeTools => Path.Combine(Root, "tools", "node");

    /// <summary>Runs a program to its end; returns its exit code and its standard output followed by its standard error.</summary>
    public static (int Exit, string Output) Run(string file, string workingDirectory, string? prependPath, params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (prependPath is not null) psi.Environment["PATH"] = prependPath + ":" + Environment.GetEnvironmentVariable("PATH");
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd() + stderr.GetAwaiter().GetResult();
        p.WaitForExit();
        return (p.ExitCode, output);
    }

    private static string Find()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Factum.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Cannot find the repository root (Factum.slnx) above " + AppContext.BaseDirectory);
    }
}
