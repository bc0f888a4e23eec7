namespace Factum.Conformance;

/// <summary>
/// Runs one scenario of a conformance suite by hand, on a deliberately wrong backend, to prove the suite can fail.
/// </summary>
public static class SuiteSelfTest
{
    /// <summary>What the scenario threw (null when it passed), with the suite's set-up and tear-down around it.</summary>
    public static async Task<Exception?> FailureOf<T>(T suite, Func<T, Task> scenario) where T : IAsyncLifetime
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(scenario);
        await suite.InitializeAsync();
        try
        {
            await scenario(suite);
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
        finally
        {
            await suite.DisposeAsync();
        }
    }
}
