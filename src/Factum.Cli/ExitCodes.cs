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
        StreamNotFoundException or StreamDeletedException or StoreMissingException or PostgreSql.PostgresStoreNotFoundException => (StreamNotFound, ex.Message),
        EventCorruptedException => (Failure, ex.Message),
        StoreReadOnlyException => (Failure, "the store cannot be written: its file or folder is read-only for this user, so it was opened for reading only. Nothing was written."),
        Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 5 or 6 } =>
            (Failure, "the store is locked: another process held its write lock for longer than the busy timeout (30 s). Nothing was written; try again when that process has finished."),
        Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 8 } =>
            (Failure, "the store cannot be written: its file or folder is read-only (check the permissions of factum.db, factum.db-wal and factum.db-shm and of their folder)."),
        Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 14 } =>
            (Failure, "the store cannot be opened: SQLite could not open factum.db or create its -wal/-shm files next to it (check that the folder exists and is writable)."),
        EventTooLargeException => (InvalidInput, ex.Message),
        // A backend that cannot do the command, or does not exist yet: choose another with --store/--transport.
        CommandNotSupportedException or BackendNotAvailableException => (InvalidInput, ex.Message),
        ArgumentException or FormatException or System.Text.Json.JsonException => (InvalidInput, ex.Message),
        StoreFormatException => (Failure, ex.Message),
        OperationCanceledException => (Failure, "Cancelled."),
        Npgsql.NpgsqlException => (Failure, $"PostgreSQL: {ex.Message}"),
        _ => (Failure, $"{ex.GetType().Name}: {ex.Message}"),
    };
}
