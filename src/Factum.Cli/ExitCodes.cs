namespace Factum.Cli;

/// <summary>The CLI's exit codes, documented in docs/cli.md.</summary>
internal static class ExitCodes
{
    public const int Success = 0;
    public const int Failure = 1;
    public const int InvalidInput = 2;
    public const int WrongExpectedVersion = 3;
    public const int StreamNotFound = 4;

    /// <summary>Maps an exception to an exit code and a one-line message (no stack trace: the message says what to do).</summary>
    public static (int Code, string Message) From(Exception ex) => ex switch
    {
        WrongExpectedVersionException => (WrongExpectedVersion, ex.Message),
        StreamNotFoundException or StreamDeletedException => (StreamNotFound, ex.Message),
        EventTooLargeException => (InvalidInput, ex.Message),
        ArgumentException or FormatException or System.Text.Json.JsonException => (InvalidInput, ex.Message),
        StoreFormatException => (Failure, ex.Message),
        OperationCanceledException => (Failure, "Cancelled."),
        _ => (Failure, $"{ex.GetType().Name}: {ex.Message}"),
    };
}
