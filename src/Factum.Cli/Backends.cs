using System.CommandLine;
using System.CommandLine.Parsing;
using Factum.Aggregates;
using Factum.InMemory;
using Factum.Messaging;
using Factum.PostgreSql;
using Factum.Projections;
using Factum.Sqlite;
using Factum.Subscriptions;
using Microsoft.Extensions.Logging;

namespace Factum.Cli;

/// <summary>What a command needs of the chosen backend beyond an event store.</summary>
[Flags]
internal enum Needs
{
    /// <summary>An event store: every backend has one.</summary>
    Store = 0,

    /// <summary>A read-model store for projections.</summary>
    Projections = 1,

    /// <summary>A message transport, in memory or not (the demo's bus).</summary>
    Transport = 2,

    /// <summary>A transport whose topics, queues and dead letters outlive the command, so another command can see them.</summary>
    LastingTransport = 4 | Transport,

    /// <summary>A SQLite file (verify).</summary>
    StoreFile = 8,
}

/// <summary>The chosen backend does not support the command: exit 2 with a message naming the backend that does.</summary>
internal sealed class CommandNotSupportedException(string message) : Exception(message);

/// <summary>
/// The store and transport a command runs on, chosen but not opened: from <c>--store</c> or <c>--data</c> (not both),
/// else <c>FACTUM_STORE</c>, else <c>FACTUM_DATA</c>, else <c>./factum-data</c>; and <c>--transport</c>, else
/// <c>FACTUM_TRANSPORT</c>, else the store's own (<c>sqlite</c> for a sqlite: store, <c>memory:</c> for memory:).
/// </summary>
internal sealed record BackendChoice(StoreConnectionString Store, TransportConnectionString Transport)
{
    /// <summary>
    /// Refuses, before anything is opened, a backend that does not exist yet or cannot do what <paramref name="command"/>
    /// needs, with one line saying which backend can.
    /// </summary>
    public void Check(Needs needs, string command)
    {
        if (BackendProviders.NotYetAvailable(Store) is { } store) throw new BackendNotAvailableException(store);
        var sqlite = Store.Kind == StoreKind.Sqlite;
        const string UseSqlite = "It works on a sqlite: store (--store sqlite:<path>, or --data DIR).";
        if (needs.HasFlag(Needs.StoreFile) && !sqlite)
            throw new CommandNotSupportedException($"'factum {command}' is not supported by the {Store} store: it checks a SQLite file, and {Store} has none. {UseSqlite}");
        if (needs.HasFlag(Needs.Projections) && Store.Kind == StoreKind.Memory)
            throw new CommandNotSupportedException($"'factum {command}' is not supported by the {Store} store: it has no read-model store for projections that outlives one command (memory: read models live and end inside one process; the demo builds them). {UseSqlite}");
        if (!needs.HasFlag(Needs.Transport)) return;
        if (BackendProviders.NotYetAvailable(Transport) is { } transport) throw new BackendNotAvailableException(transport);
        if (Transport.Kind == TransportKind.Sqlite && !sqlite)
            throw new CommandNotSupportedException($"the sqlite transport lives in the store's own SQLite file, and the {Store} store has none: use --transport memory:, or a sqlite: store.");
        if (needs.HasFlag(Needs.LastingTransport) && Transport.Kind == TransportKind.Memory)
            throw new CommandNotSupportedException($"'factum {command}' is not supported by the memory: transport: its topics, queues and dead letters live inside one process and end with it, so there is nothing here to inspect or keep. It works on the sqlite transport (the default with a sqlite: store).");
    }
}

/// <summary>
/// The opened backend a command works on: its event store, and what else it has (snapshots, projections, a transport).
/// Commands see this, never the SQLite types, so each works on every backend that has what it needs.
/// </summary>
internal abstract class Backend(BackendChoice choice, ILoggerFactory logging) : IAsyncDisposable
{
    /// <summary>What was chosen.</summary>
    public BackendChoice Choice { get; } = choice;

    /// <summary>Where the store's components log.</summary>
    public ILoggerFactory Logging { get; } = logging;

    public abstract IEventStore Store { get; }

    /// <summary>The largest event the store accepts, in bytes.</summary>
    public abstract int MaxEventSize { get; }

    /// <summary>Where aggregates keep snapshots.</summary>
    public abstract ISnapshotStore Snapshots { get; }

    /// <summary>The read-model store, or null when this backend has none.</summary>
    public virtual IProjectionEngine? Projections => null;

    /// <summary>Opens the chosen transport (checked by <see cref="BackendChoice.Check"/>).</summary>
    public abstract IMessageTransport OpenTransport();

    /// <summary>
    /// Where an outbox relay keeps its checkpoint: next to the messages. A relay publishing to a transport that forgets
    /// its messages must not remember (in the store) that it published them, or the next run would never publish again.
    /// </summary>
    public abstract Factum.Coordination.IFencedCheckpointStore RelayCheckpoints(IMessageTransport transport);

    /// <summary>The message store of durable endpoints (their inboxes, outbox and dead letters): the store's own.</summary>
    public abstract IMessageStore MessageStore { get; }

    /// <summary>Where jobs that must run once across processes (the relay, projections) take their leases: the store's.</summary>
    public abstract Factum.Coordination.ILeaseStore Leases { get; }

    public abstract ValueTask DisposeAsync();

    /// <summary>Opens <paramref name="choice"/>; a sqlite: store is created only by commands that write (<paramref name="create"/>).</summary>
    public static Backend Open(BackendChoice choice, bool create, ILoggerFactory logging) => choice.Store.Kind switch
    {
        StoreKind.Memory => new MemoryBackend(choice, logging),
        StoreKind.Sqlite => SqliteBackend.OpenFile(choice, create, logging),
        StoreKind.PostgreSql => new PostgresBackend(choice, create, logging),
        _ => throw new BackendNotAvailableException(BackendProviders.NotYetAvailable(choice.Store) ?? $"no backend for {choice.Store}."),
    };
}

/// <summary><c>memory:</c> — the core's in-memory store; everything ends with the command (useful for the demo and dry runs).</summary>
internal sealed class MemoryBackend(BackendChoice choice, ILoggerFactory logging) : Backend(choice, logging)
{
    private readonly EventStoreOptions _options = new() { LoggerFactory = logging };
    private InMemoryEventStore? _store;

    public override IEventStore Store => _store ??= new InMemoryEventStore(_options);

    public override int MaxEventSize => _options.MaxEventSize;

    public override ISnapshotStore Snapshots { get; } = new InMemorySnapshotStore();

    private InMemoryReadModels? _projections;

    public override IProjectionEngine Projections => _projections ??= new InMemoryReadModels((InMemoryEventStore)Store);

    public override IMessageTransport OpenTransport() => new InMemoryTransport();

    private readonly Factum.Coordination.InMemoryLeaseStore _leases = new();

    public override Factum.Coordination.IFencedCheckpointStore RelayCheckpoints(IMessageTransport transport) => new InMemorySubscriptionStore(_leases);

    public override Factum.Coordination.ILeaseStore Leases => _leases;

    public override IMessageStore MessageStore => field ??= new InMemoryMessageStore(leases: _leases);

    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>
/// <c>postgres://…</c> — the PostgreSQL store (events, read models, snapshots, leases, the message store of durable
/// endpoints); its transport is in memory (PostgreSQL has no transport yet). A command that only reads does not create the
/// store's schema.
/// </summary>
internal sealed class PostgresBackend(BackendChoice choice, bool create, ILoggerFactory logging) : Backend(choice, logging)
{
    private readonly PostgresEventStore _store = new(new PostgresEventStoreOptions(choice.Store) { LoggerFactory = logging, MigrateOnStart = create });
    private readonly Factum.Coordination.InMemoryLeaseStore _memoryLeases = new();

    public override IEventStore Store => _store;

    public override int MaxEventSize => _store.Options.MaxEventSize;

    public override ISnapshotStore Snapshots => field ??= new PostgresSnapshotStore(_store);

    public override IProjectionEngine Projections => field ??= new PostgresReadModels(_store);

    public override IMessageTransport OpenTransport() => new InMemoryTransport();

    // The relay publishes to an in-memory transport here, so its checkpoint (and lease) stay in memory too.
    public override Factum.Coordination.IFencedCheckpointStore RelayCheckpoints(IMessageTransport transport) => new InMemorySubscriptionStore(_memoryLeases);

    public override Factum.Coordination.ILeaseStore Leases => field ??= new PostgresLeaseStore(_store);

    // The message store of durable endpoints, in the same schema: what 'factum dlq --message-store' works on.
    private PostgresMessageStore? _messages;

    public override IMessageStore MessageStore => _messages ??= new PostgresMessageStore(_store);

    public override async ValueTask DisposeAsync()
    {
        if (_messages is not null) await _messages.DisposeAsync();
        await _store.DisposeAsync();
    }
}

/// <summary><c>sqlite:&lt;path&gt;</c> — the embedded store with its read models and transport in one file.</summary>
internal sealed class SqliteBackend : Backend
{
    private readonly SqliteEventStore _store;

    private SqliteBackend(BackendChoice choice, SqliteEventStore store, ILoggerFactory logging) : base(choice, logging)
    {
        _store = store;
        Snapshots = new SqliteSnapshotStore(store);
        Projections = new SqliteReadModels(store);
    }

    public override IEventStore Store => _store;

    public override int MaxEventSize => _store.Options.MaxEventSize;

    public override ISnapshotStore Snapshots { get; }

    public override IProjectionEngine Projections { get; }

    public override IMessageTransport OpenTransport() =>
        Choice.Transport.Kind == TransportKind.Memory ? new InMemoryTransport() : new SqliteMessageTransport(_store);

    // A relay to an in-memory transport keeps its checkpoint (and so its lease) in memory too.
    private readonly Factum.Coordination.InMemoryLeaseStore _memoryLeases = new();

    public override Factum.Coordination.IFencedCheckpointStore RelayCheckpoints(IMessageTransport transport) =>
        transport is SqliteMessageTransport ? new SqliteSubscriptionStore(_store) : new InMemorySubscriptionStore(_memoryLeases);

    public override Factum.Coordination.ILeaseStore Leases => new SqliteLeaseStore(_store);

    public override IMessageStore MessageStore => new SqliteMessageStore(_store);

    public override ValueTask DisposeAsync() => _store.DisposeAsync();

    public static SqliteBackend OpenFile(BackendChoice choice, bool create, ILoggerFactory logging)
    {
        var db = choice.Store.DatabaseFile!;
        Cli.CheckStorePath(db, create);
        return new SqliteBackend(choice, OpenStore(db, create, logging), logging);
    }

    /// <summary>
    /// Opens the store for writing; a command that only reads falls back to a read-only open when the file or its folder
    /// cannot be written (a backup on read-only media, another user's store), so reads and verify still work there.
    /// </summary>
    private static SqliteEventStore OpenStore(string db, bool create, ILoggerFactory logging)
    {
        try
        {
            return new SqliteEventStore(new SqliteEventStoreOptions(db) { LoggerFactory = logging });
        }
        catch (Exception ex) when (!create && ex is UnauthorizedAccessException or Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 8 or 14 })
        {
            return new SqliteEventStore(new SqliteEventStoreOptions(db) { ReadOnly = true, LoggerFactory = logging });
        }
    }
}

/// <summary>
/// The options that choose the backend: the root's <c>--store</c>, <c>--transport</c> and <c>--data</c>, and each
/// command's own <c>--data</c> (<c>--data-dir</c> on append, where <c>--data</c> is the payload).
/// </summary>
internal sealed class BackendOptions(Option<string?> rootData)
{
    private readonly Dictionary<Command, Option<string?>> _local = [];

    /// <summary><c>--store</c>, on every command.</summary>
    public Option<string?> Store { get; } = new("--store")
    {
        Description = "The store: sqlite:<path> (a data directory holding factum.db, or a .db file), memory: (one process; gone when the command ends), or postgres://user:password@host:port/db[?schema=NAME] (shared by several nodes). Env FACTUM_STORE; default: --data.",
        Recursive = true,
    };

    /// <summary><c>--transport</c>, on every command.</summary>
    public Option<string?> Transport { get; } = new("--transport")
    {
        Description = "The message transport: sqlite (the store's own file; the default with a sqlite: store), memory: (the default with memory: and postgres:// stores), amqp://… or nats://host:port[,host:port…] (not available yet). Env FACTUM_TRANSPORT.",
        Recursive = true,
    };

    public void AddTo(Command command, bool payloadTakesData = false)
    {
        // On append, --data is the payload (as documented), so only --data-dir names the directory there.
        var option = payloadTakesData
            ? new Option<string?>("--data-dir") { Description = "The data directory holding factum.db." }
            : new Option<string?>("--data", "--data-dir") { Description = "The data directory holding factum.db (env FACTUM_DATA; default ./factum-data)." };
        command.Options.Add(option);
        _local[command] = option;
    }

    /// <summary>Chooses the backend (see <see cref="BackendChoice"/>); a bad or conflicting choice is a <see cref="FormatException"/> or <see cref="ArgumentException"/>.</summary>
    public BackendChoice Resolve(ParseResult pr)
    {
        var data = _local.TryGetValue(pr.CommandResult.Command, out var local) && pr.GetValue(local) is { Length: > 0 } l ? l
            : pr.GetValue(rootData) is { Length: > 0 } r ? r : null;
        var storeText = pr.GetValue(Store);
        if (storeText is not null && data is not null)
            throw new ArgumentException("Use either --store or --data, not both: both name the store (--data DIR is --store sqlite:DIR).");
        var store = storeText is not null ? StoreConnectionString.Parse(storeText)
            : data is not null ? StoreConnectionString.ForDataDirectory(data)
            : Environment.GetEnvironmentVariable("FACTUM_STORE") is { Length: > 0 } envStore ? FromEnvironment("FACTUM_STORE", envStore, StoreConnectionString.Parse)
            : StoreConnectionString.ForDataDirectory(Environment.GetEnvironmentVariable("FACTUM_DATA") is { Length: > 0 } d ? d : "./factum-data");
        var transport = pr.GetValue(Transport) is { } t ? TransportConnectionString.Parse(t)
            : Environment.GetEnvironmentVariable("FACTUM_TRANSPORT") is { Length: > 0 } envTransport ? FromEnvironment("FACTUM_TRANSPORT", envTransport, TransportConnectionString.Parse)
            : store.Kind == StoreKind.Sqlite ? TransportConnectionString.Sqlite : TransportConnectionString.Memory;
        return new BackendChoice(store, transport);
    }

    // Say where a bad value came from: an environment variable is easy to forget.
    private static T FromEnvironment<T>(string variable, string value, Func<string, T> parse)
    {
        try
        {
            return parse(value);
        }
        catch (FormatException ex)
        {
            throw new FormatException($"{variable}: {ex.Message}", ex);
        }
    }
}
