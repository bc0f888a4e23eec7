using System.Threading.Channels;
using Factum.Store;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

/// <summary>
/// The embedded event store: one SQLite file in WAL mode. One writer task group-commits concurrent appends
/// (many callers, one transaction, one fsync; each caller gets its own result or error). Reads use their own
/// pooled connections and fetch in pages. Several processes may open the same file: SQLite's write lock
/// serializes their commits and every check runs inside the locked transaction.
/// </summary>
/// <remarks>Thread-safe. Dispose it to stop the writer; appends still queued are completed first.</remarks>
public sealed partial class SqliteEventStore : IEventStore, Factum.Subscriptions.IAppendNotifier, Factum.Tracing.ICorrelationIndex, IAsyncDisposable, IDisposable
{
    private readonly SqliteEventStoreOptions _options;
    private readonly Microsoft.Extensions.Logging.ILogger _log;
    private readonly string _readConnectionString;
    private readonly Channel<WriteRequest> _queue = Channel.CreateUnbounded<WriteRequest>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _writerTask;
    private readonly SqliteConnection? _writeConnection;
    private int _disposed;
    private readonly Factum.Subscriptions.AppendSignal _signal = new();

    /// <summary>Opens (creating if needed) the store at <paramref name="path"/> with default options.</summary>
    public SqliteEventStore(string path) : this(new SqliteEventStoreOptions(path)) { }

    /// <summary>Opens (creating if needed) the store described by <paramref name="options"/>.</summary>
    /// <exception cref="StoreFormatException">The file is not a Factum store, is damaged, or was written by a newer Factum.</exception>
    public SqliteEventStore(SqliteEventStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _log = options.LoggerFactory.CreateLogger(FactumLog.StoreCategory);
        var fullPath = System.IO.Path.GetFullPath(options.Path);
        if (options.ReadOnly)
        {
            _readConnectionString = ReadOnlyConnectionString(fullPath, requireCurrentSchema: true);
            using (var c = OpenReadConnection()) ChecksumsFrom = SqliteSchema.ChecksumsFrom(c);
            FilePath = fullPath;
            _writerTask = Task.CompletedTask;
            _queue.Writer.TryComplete();
            return;
        }
        CheckHeader(fullPath);
        CreateFile(fullPath, options.CreateFileMode);
        var builder = new SqliteConnectionStringBuilder
        {
            DataSource = fullPath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = (int)Math.Ceiling(options.BusyTimeout.TotalSeconds),
        };
        _readConnectionString = builder.ToString();
        try
        {
            _writeConnection = new SqliteConnection(builder.ToString());
            _writeConnection.Open();
            Pragma(_writeConnection, $"PRAGMA busy_timeout = {(int)options.BusyTimeout.TotalMilliseconds}");
            // Only takes effect on a new, empty file; an existing store keeps the page size it was created with.
            Pragma(_writeConnection, $"PRAGMA page_size = {options.PageSize}");
            Pragma(_writeConnection, "PRAGMA journal_mode = WAL");
            Pragma(_writeConnection, options.Durability == SqliteDurability.Full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
            Pragma(_writeConnection, "PRAGMA foreign_keys = OFF");
            SqliteSchema.EnsureCreated(_writeConnection, fullPath);
            ChecksumsFrom = SqliteSchema.ChecksumsFrom(_writeConnection);
            _writer = new Writer(_writeConnection, options, _signal, ChecksumsFrom);
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode is 11 or 26)
        {
            _writeConnection?.Dispose();
            throw new StoreFormatException($"'{fullPath}' is damaged or is not a SQLite database: {ex.Message}", ex);
        }
        catch
        {
            _writeConnection?.Dispose();
            throw;
        }
        FilePath = fullPath;
        _writerTask = Task.Run(WriteLoopAsync);
    }

    /// <summary>The absolute path of the database file.</summary>
    public string FilePath { get; }

    /// <summary>The first global position written with a checksum; events below it (written before schema v7) have none.</summary>
    private long ChecksumsFrom { get; }

    /// <summary>What readers check: <see cref="ChecksumsFrom"/>, or nothing when checks on read are turned off.</summary>
    private long ReadChecksumsFrom => _options.VerifyChecksumsOnRead ? ChecksumsFrom : long.MaxValue;

    /// <summary>True when the store was opened with <see cref="SqliteEventStoreOptions.ReadOnly"/>: every write throws.</summary>
    public bool IsReadOnly => _options.ReadOnly;

    /// <summary>
    /// Opens an existing store without writing anything, not even the -shm file when the folder cannot take it: reads
    /// of a backup on read-only media, or of a store whose files belong to another user, must work. When SQLite cannot
    /// share memory with other readers (no -shm can be created) and no write-ahead log holds data, the file is opened as
    /// immutable; with a non-empty -wal that cannot be read that way, opening fails rather than hide its commits.
    /// </summary>
    internal static string ReadOnlyConnectionString(string path, bool requireCurrentSchema)
    {
        if (!File.Exists(path)) throw new StoreFormatException($"'{path}' does not exist; a read-only store cannot be created.");
        CheckHeader(path);
        var builder = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Cache = SqliteCacheMode.Private, Pooling = true };
        foreach (var candidate in Candidates())
        {
            try
            {
                using var c = new SqliteConnection(new SqliteConnectionStringBuilder(candidate) { Pooling = false }.ToString());
                c.Open();
                if (requireCurrentSchema) SqliteSchema.EnsureReadable(c, path);
                else SqliteSchema.Probe(c);
                return candidate;
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode is 8 or 14)
            {
                // Try the next way of opening.
            }
        }
        throw new StoreFormatException($"'{path}' cannot be opened read-only: its -wal file holds commits but the folder does not allow the shared-memory file readers need. Copy the store to a writable folder, or open it once with write access.");

        IEnumerable<string> Candidates()
        {
            yield return builder.ToString();
            var wal = new FileInfo(path + "-wal");
            if (!wal.Exists || wal.Length == 0)
                yield return new SqliteConnectionStringBuilder { DataSource = new Uri(path).AbsoluteUri + "?immutable=1", Mode = SqliteOpenMode.ReadOnly, Cache = SqliteCacheMode.Private, Pooling = true }.ToString();
        }
    }

    /// <summary>The store's options.</summary>
    public SqliteEventStoreOptions Options => _options;

    /// <summary>Creates the folder and an empty store file with restrictive permissions before SQLite opens it (SQLite would use the umask).</summary>
    private static void CreateFile(string path, UnixFileMode mode)
    {
        var dir = System.IO.Path.GetDirectoryName(path);
        if (OperatingSystem.IsWindows())
        {
            if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
            return;
        }
        if (!string.IsNullOrEmpty(dir) && !Directory.Exists(dir))
        {
            var dirMode = mode;
            if ((mode & (UnixFileMode.UserRead | UnixFileMode.UserWrite)) != 0) dirMode |= UnixFileMode.UserExecute;
            if ((mode & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite)) != 0) dirMode |= UnixFileMode.GroupExecute;
            if ((mode & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0) dirMode |= UnixFileMode.OtherExecute;
            Directory.CreateDirectory(dir, dirMode);
        }
        if (File.Exists(path)) return;
        try
        {
            using var _ = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = mode });
        }
        catch (IOException) when (File.Exists(path))
        {
            // Another process created it first: fine, it is the same store.
        }
    }

    private static void CheckHeader(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists || info.Length == 0) return;
        Span<byte> header = stackalloc byte[16];
        using (var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            if (f.ReadAtLeast(header, 16, throwOnEndOfStream: false) < 16 || !header.SequenceEqual("SQLite format 3\0"u8))
                throw new StoreFormatException($"'{path}' is not a Factum store: it is not a SQLite database (its header is not 'SQLite format 3').");
        }
    }

    private static void Pragma(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    /// <inheritdoc />
    public async Task WaitForAppendAsync(GlobalPosition after, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        // Appends through this instance signal at once; other processes' appends are seen by polling the head.
        var deadline = TimeProvider.System.GetTimestamp();
        while (true)
        {
            var remaining = timeout - TimeProvider.System.GetElapsedTime(deadline);
            if (remaining <= TimeSpan.Zero) return;
            var slice = remaining < _options.ExternalChangePollInterval ? remaining : _options.ExternalChangePollInterval;
            var moved = false;
            await _signal.WaitAsync(async ct => moved = await GetHeadPositionAsync(ct).ConfigureAwait(false) > after, slice, cancellationToken).ConfigureAwait(false);
            if (moved || await GetHeadPositionAsync(cancellationToken).ConfigureAwait(false) > after) return;
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> inside the writer's next group transaction (durable on return). Used by the stores that
    /// keep their state in the same file (checkpoints, dead letters, read models) so that they share its group commit.
    /// <paramref name="work"/> may run again in a fresh transaction if the group fails below the rules; it must only write.
    /// </summary>
    internal Task<object?> ExecuteInWriterAsync(Func<SqliteConnection, object?> work, CancellationToken cancellationToken = default) =>
        Enqueue(new WorkRequest(work, cancellationToken));

    /// <summary>Completes at the writer's next commit, or after <paramref name="timeout"/> (other processes' commits are seen at the timeout).</summary>
    internal Task WaitForCommitAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        _signal.WaitAsync(static _ => Task.FromResult(false), timeout, cancellationToken);

    /// <summary>Opens a pooled read connection on the store's file.</summary>
    internal SqliteConnection OpenReadConnection()
    {
        var c = new SqliteConnection(_readConnectionString);
        c.Open();
        return c;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>Stops the writer after the queued appends are committed, and closes the file.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _queue.Writer.TryComplete();
        try { await _writerTask.ConfigureAwait(false); }
        finally
        {
            _writer?.Dispose();
            _writeConnection?.Dispose();
            SqliteConnection.ClearPool(new SqliteConnection(_readConnectionString));
        }
    }

    /// <inheritdoc />
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}
