using System.Diagnostics;
using System.Text;

namespace Factum.Cli.Tests;

public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public string[] Lines => Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}

/// <summary>Runs the built factum program as a child process, the way a user does.</summary>
public static class FactumCli
{
    /// <summary>The repository checkout the tests run from (the folder holding Factum.slnx).</summary>
    public static string RepoRoot { get; } = FindRoot();

    public static string DllPath { get; } = Locate();

    private static string FindRoot()
    {
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Factum.slnx"))) root = root.Parent;
        return root?.FullName ?? throw new InvalidOperationException("Cannot find the repository root (Factum.slnx) above " + AppContext.BaseDirectory);
    }

    private static string Locate()
    {
        // tests/Factum.Cli.Tests/bin/<Configuration>/net10.0 → src/Factum.Cli/bin/<Configuration>/net10.0/Factum.Cli.dll
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        var dll = Path.Combine(RepoRoot, "src", "Factum.Cli", "bin", configuration, "net10.0", "Factum.Cli.dll");
        if (!File.Exists(dll)) throw new InvalidOperationException($"Build the CLI first: {dll} does not exist.");
        return dll;
    }

    public static ProcessStartInfo StartInfo(string dataDir, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        psi.ArgumentList.Add(DllPath);
        psi.ArgumentList.Add("--data");
        psi.ArgumentList.Add(dataDir);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["FACTUM_DATA"] = "";
        psi.Environment["FACTUM_STORE"] = "";
        psi.Environment["FACTUM_TRANSPORT"] = "";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        return psi;
    }

    public static Task<CliResult> Run(string dataDir, params string[] args) => RunWithInput(dataDir, null, args);

    public static Task<CliResult> RunWithInput(string dataDir, string? stdin, params string[] args) => RunAsync(StartInfo(dataDir, args), stdin);

    /// <summary>
    /// Runs the program as typed in <paramref name="workingDirectory"/>: relative paths resolve there and no --data is
    /// added (the docs' examples name their own folders). <paramref name="program"/> null runs factum itself.
    /// </summary>
    public static Task<CliResult> RunIn(string workingDirectory, string? program, params string[] args)
    {
        var psi = StartInfo(workingDirectory, args);
        psi.ArgumentList.Clear();
        if (program is null) psi.ArgumentList.Add(DllPath);
        else psi.FileName = program;
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.WorkingDirectory = workingDirectory;
        return RunAsync(psi, null);
    }

    /// <summary>Runs factum in <paramref name="workingDirectory"/> (no --data added) with these environment variables set.</summary>
    public static Task<CliResult> RunWithEnvironment(string workingDirectory, IReadOnlyDictionary<string, string> environment, string? stdin, params string[] args)
    {
        var psi = StartInfo(workingDirectory, args);
        psi.ArgumentList.Clear();
        psi.ArgumentList.Add(DllPath);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        psi.WorkingDirectory = workingDirectory;
        return RunAsync(psi, stdin);
    }

    private static async Task<CliResult> RunAsync(ProcessStartInfo psi, string? stdin)
    {
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null) await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await p.WaitForExitAsync(timeout.Token);
        return new CliResult(p.ExitCode, await stdout, await stderr);
    }
}

public sealed class TempDataDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "factum-cli-tests", Guid.NewGuid().ToString("N"));

    public string Db => System.IO.Path.Combine(Path, "factum.db");

    public TempDataDir() => Directory.CreateDirectory(Path);

    public void Dispose()
    {
        try { Directory.Delete(Path, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
