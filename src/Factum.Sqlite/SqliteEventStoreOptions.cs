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

    /// <summary>
    /// On Unix, the permissions a new store file is created with; default 0600 (owner read/write): events are business
    /// records, so other local users get nothing unless asked. SQLite gives the -wal and -shm files the same mode. A
    /// folder the store creates gets the matching execute bits (0700 by default). Existing files keep their mode.
    /// </summary>
    public UnixFileMode CreateFileMode { get; init; } = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// Open an existing store for reading only: nothing is created, migrated or written (a store on read-only media, a
    /// backup, another user's files). Every write throws <see cref="StoreReadOnlyException"/>. Default false.
    /// </summary>
    public bool ReadOnly { get; init; }

    /// <summary>
    /// Check every event's checksum when it is read (default true), so a corrupted event is an error naming its position,
    /// never altered data. Like Kafka's <c>check.crcs</c>: turning it off trades that for about 2% of read throughput
    /// (measured by the benchmark's read scenarios); <c>verify</c> always checks.
    /// </summary>
    public bool VerifyChecksumsOnRead { get; init; } = true;

    /// <summary>
    /// A group commit slower than this (default 1 s) is logged as a warning (event id 1001): a slow or failing disk, or
    /// another process holding the file's write lock, stalls every writer.
    /// </summary>
    public TimeSpan SlowCommitThreshold { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Durability of commits; default <see cref="SqliteDurability.Full"/>.</summary>
    public SqliteDurability Durability { get; init; } = SqliteDurability.Full;

    /// <summary>The most events one group commit writes; default 10,000.</summary>
    public int MaxEventsPerCommit
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxEventsPerCommit is at least 1.");
    } = 10_000;

    /// <summary>
    /// After committing a group of several appends, how long the writer may wait for those callers to send their next
    /// appends before starting the next group; default 0.5 ms. Larger groups share one fsync. Zero disables the wait.
    /// A single sequential writer never waits.
    /// </summary>
    public TimeSpan GroupCommitWindow { get; init; } = TimeSpan.FromMilliseconds(0.5);

    /// <summary>
    /// The SQLite page size in bytes, applied only when the file is created (512 to 65,536, a power of two); default 2,048.
    /// Concurrent appends to many streams dirty one index page per stream per commit, so smaller pages write less per
    /// fsync (2,048 measured ~15% faster than SQLite's 4,096 with 64 concurrent writers); larger pages suit large events
    /// and long sequential reads (4,096 reads the global log ~15% faster).
    /// </summary>
    public int PageSize
    {
        get;
        init => field = value is >= 512 and <= 65536 && (value & (value - 1)) == 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "PageSize is a power of two between 512 and 65,536.");
    } = 2048;

    /// <summary>
    /// How often a live subscription checks for appends made by other processes sharing the file (default 50 ms).
    /// Appends through this instance wake subscribers at once.
    /// </summary>
    public TimeSpan ExternalChangePollInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Projections updated inside the append's own transaction, so that a command's caller reads its own write as soon as
    /// the append returns. An inline projection that throws fails the append (nothing of it is written). Before each
    /// group commit the writer first brings every inline projection up to the head, so events appended by processes that
    /// do not run it are still applied, in order, exactly once. Keep them cheap: they run on the write path.
    /// </summary>
    public IReadOnlyList<Factum.Projections.IProjection> InlineProjections { get; init; } = [];

    /// <summary>How long to wait for another process holding the file's write lock; default 30 seconds.</summary>
    public TimeSpan BusyTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Test hook: runs on the writer thread inside each group commit's transaction, just before COMMIT; throwing rolls
    /// the group back. The high-water-mark conformance suite uses it to hold a write open while another process commits.
    /// </summary>
    internal Action? BeforeCommit { get; init; }

    /// <summary>Rows fetched per query by reads; default 1,024.</summary>
    public int ReadPageSize
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "ReadPageSize is at least 1.");
    } = 1024;
}
