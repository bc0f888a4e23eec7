using System.Diagnostics;
using System.Text;

namespace Factum.Samples.Tests;

public sealed record ProcessResult(string Command, int ExitCode, string Stdout, string Stderr)
{
    /// <summary>Everything the process printed, for assertion messages.</summary>
    public string Transcript => $"$ {Command}\nexit code {ExitCode}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
}

/// <summary>The repository and the build the tests run from.</summary>
public static class Repo
{
    /// <summary>The checkout the tests run from (the folder holding Factum.slnx).</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The configuration this test assembly was built with (Release under test.sh): the samples are run from the same one.</summary>
    public static string Configuration { get; } = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;

    /// <summary>The built sample program: samples/NAME/bin/CONFIGURATION/net10.0/NAME.dll.</summary>
    public static string SampleDll(string name)
    {
        var dll = Path.Combine(Root, "samples", name, "bin", Configuration, "net10.0", name + ".dll");
        if (!File.Exists(dll)) throw new InvalidOperationException($"Build the samples first ({Configuration}): {dll} does not exist.");
        return dll;
    }

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Factum.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Cannot find the repository root (Factum.slnx) above " + AppContext.BaseDirectory);
    }
}

/// <summary>Runs programs as child processes, the way a user does.</summary>
public static class Processes
{
    public static ProcessStartInfo StartInfo(string fileName, string workingDirectory, params string[] args)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        psi.Environment["DOTNET_GENERATE_ASPNET_CERTIFICATE"] = "false";
        // The test host's own settings must not leak into the programs under test.
        psi.Environment.Remove("MSBuildExtensionsPath");
        psi.Environment.Remove("MSBUILD_EXE_PATH");
        psi.Environment.Remove("MSBuildSDKsPath");
        psi.Environment.Remove("VSTEST_HOST_DEBUG");
        return psi;
    }

    /// <summary>Runs a program to its end (killing it after <paramref name="timeout"/>) and returns what it printed.</summary>
    public static async Task<ProcessResult> RunAsync(ProcessStartInfo psi, TimeSpan timeout)
    {
        var command = psi.FileName + " " + string.Join(' ', psi.ArgumentList);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("Could not start " + command);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            throw new TimeoutException($"{command} did not finish within {timeout}.\n--- stdout ---\n{await stdout}\n--- stderr ---\n{await stderr}");
        }
        return new ProcessResult(command, p.ExitCode, await stdout, await stderr);
    }

    public static Task<ProcessResult> RunAsync(string fileName, string workingDirectory, TimeSpan timeout, params string[] args) =>
        RunAsync(StartInfo(fileName, workingDirectory, args), timeout);

    /// <summary>Runs a program and fails the test with its transcript unless it exits 0.</summary>
    public static async Task<ProcessResult> RunOkAsync(string fileName, string workingDirectory, TimeSpan timeout, params string[] args)
    {
        var r = await RunAsync(fileName, workingDirectory, timeout, args);
        Assert.True(r.ExitCode == 0, r.Transcript);
        return r;
    }
}

/// <summary>A private folder under the system temp folder, deleted afterwards.</summary>
public sealed class TempFolder : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "factum-samples-tests", Guid.NewGuid().ToString("N"));

    public TempFolder() => Directory.CreateDirectory(Path);

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose()
    {
        try { Directory.Delete(Path, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
