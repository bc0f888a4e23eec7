namespace Factum.Sqlite;

/// <summary>How the SQLite store makes commits durable.</summary>
public enum SqliteDurability
{
    /// <summary><c>synchronous=FULL</c>: every commit is fsynced before the append returns (default).</summary>
    Full,

    /// <summary><c>synchronous=NORMAL</c>: a commit survives a process crash but may be lost on power failure.</summary>
    Normal,
}

/// <summary>Options of the SQLite event store.</summary>
public sealed record SqliteEventStoreOptions : EventStoreOptions
{
    /// <summary>Creates options for the store file at <paramref name="path"/>.</summary>
    public SqliteEventStoreOptions(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Path = path;
    }

    /// <summary>The database file.</summary>
    public string Path { get; }

    /// <summary>Durability of commits; default <see cref="SqliteDurability.Full"/>.</summary>
    public SqliteDurability Durability { get; init; } = SqliteDurability.Full;

    /// <summary>The most events one group commit writes; default 10,000.</summary>
    public int MaxEventsPerCommit
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxEventsPerCommit is at least 1.");
    } = 10_000;

    /// <summary>How long to wait for another process holding the file's write lock; default 30 seconds.</summary>
    public TimeSpan BusyTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Rows fetched per query by reads; default 1,024.</summary>
    public int ReadPageSize
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "ReadPageSize is at least 1.");
    } = 1024;
}
