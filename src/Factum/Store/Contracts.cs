using System.Runtime.CompilerServices;

namespace Factum;

/// <summary>Writes events. Every method returns only when what it wrote is durable.</summary>
public interface IEventWriter
{
    /// <summary>
    /// Appends <paramref name="events"/> to <paramref name="streamId"/> atomically (all or none) after checking
    /// <paramref name="expectedVersion"/>. Returns only when the events are durable.
    /// </summary>
    /// <remarks>
    /// Idempotency follows EventStoreDB: re-sending the same event ids with the same expected version succeeds without
    /// writing again (<see cref="AppendResult.Written"/> is false); a partial or out-of-order match fails with
    /// <see cref="WrongExpectedVersionException"/>. With <see cref="ExpectedVersion.Any"/>, ids already in the stream are
    /// recognised the same way.
    /// </remarks>
    /// <exception cref="WrongExpectedVersionException">The expectation failed; nothing was written.</exception>
    /// <exception cref="StreamDeletedException">The stream is tombstoned.</exception>
    /// <exception cref="EventTooLargeException">An event exceeds <see cref="EventStoreOptions.MaxEventSize"/>.</exception>
    Task<AppendResult> AppendAsync(StreamId streamId, ExpectedVersion expectedVersion, IReadOnlyList<EventData> events, CancellationToken cancellationToken = default);

    /// <summary>
    /// Appends to several streams in one atomic operation: every stream's expectation is checked and either all the
    /// events are written or none. Returns only when durable. A stream may appear only once.
    /// </summary>
    Task<IReadOnlyList<AppendResult>> AppendMultipleAsync(IReadOnlyList<StreamAppend> appends, CancellationToken cancellationToken = default);
}

/// <summary>Reads events. Reads stream: events are fetched in pages, never all at once.</summary>
public interface IEventReader
{
    /// <summary>
    /// Reads one stream in version order (forwards or backwards). Events hidden by the stream's retention metadata
    /// (<c>maxAge</c>, <c>maxCount</c>, <c>truncateBefore</c>) are skipped.
    /// </summary>
    /// <exception cref="StreamNotFoundException">On enumeration: the stream does not exist or was soft-deleted.</exception>
    /// <exception cref="StreamDeletedException">On enumeration: the stream is tombstoned.</exception>
    IAsyncEnumerable<RecordedEvent> ReadStreamAsync(StreamId streamId, ReadStreamOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Reads the global log in position order from <see cref="ReadAllOptions.From"/> (inclusive), with optional filters.
    /// Like EventStoreDB's <c>$all</c>, the log keeps every committed fact: events hidden from stream reads by retention or deletion
    /// are still returned here.
    /// </summary>
    IAsyncEnumerable<RecordedEvent> ReadAllAsync(ReadAllOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// The high-water mark of the global log: every event at or below it is committed and visible to reads, so a reader
    /// that follows the log up to it (with <see cref="ReadAllOptions.To"/>) never passes an event that becomes visible
    /// later. <see cref="GlobalPosition.Start"/> for an empty store.
    /// </summary>
    /// <remarks>
    /// On a backend that assigns positions in commit order (SQLite, in-memory) it is the newest event's position. On one
    /// where writers can commit out of position order (a shared database with sequences), an open transaction holding a
    /// lower position keeps the mark below it until that transaction commits or rolls back; a rolled-back position
    /// is a gap the mark then passes. Subscriptions, projections and the outbox relay read only up to it.
    /// </remarks>
    Task<GlobalPosition> GetHeadPositionAsync(CancellationToken cancellationToken = default);
}

/// <summary>Stream metadata, deletion and listing.</summary>
public interface IStreamManager
{
    /// <summary>Describes one stream; <see cref="StreamState.NotFound"/> when it was never written.</summary>
    Task<StreamInfo> GetStreamInfoAsync(StreamId streamId, CancellationToken cancellationToken = default);

    /// <summary>Lists streams in id order, one page at a time.</summary>
    Task<StreamPage> ListStreamsAsync(ListStreamsOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Replaces the stream's metadata (retention and custom values). Durable on return.</summary>
    /// <exception cref="StreamDeletedException">The stream is tombstoned.</exception>
    Task SetStreamMetadataAsync(StreamId streamId, StreamMetadata metadata, CancellationToken cancellationToken = default);

    /// <summary>
    /// Deletes a stream after checking <paramref name="expectedVersion"/>. A soft delete hides the stream; appending again
    /// re-creates it and versions continue. A hard delete writes a tombstone: every later read or append fails with
    /// <see cref="StreamDeletedException"/>. Durable on return.
    /// </summary>
    Task DeleteStreamAsync(StreamId streamId, ExpectedVersion expectedVersion, DeleteMode mode, CancellationToken cancellationToken = default);
}

/// <summary>The whole event store: reading, writing and managing streams.</summary>
public interface IEventStore : IEventReader, IEventWriter, IStreamManager
{
}

/// <summary>How to delete a stream.</summary>
public enum DeleteMode
{
    /// <summary>Hide the stream; it may be re-created and its versions continue.</summary>
    Soft,

    /// <summary>Tombstone the stream forever.</summary>
    Hard,
}

/// <summary>Read direction.</summary>
public enum Direction
{
    /// <summary>Oldest first.</summary>
    Forwards,

    /// <summary>Newest first.</summary>
    Backwards,
}

/// <summary>One stream's part of a multi-stream append.</summary>
public sealed record StreamAppend(StreamId StreamId, ExpectedVersion ExpectedVersion, IReadOnlyList<EventData> Events);

/// <summary>The outcome of an append.</summary>
/// <param name="StreamId">The stream.</param>
/// <param name="NextExpectedVersion">The stream's last version after the append: pass it as the next expected version.</param>
/// <param name="FirstPosition">The global position of the first event of this append (or of its already stored copy).</param>
/// <param name="LastPosition">The global position of the last event of this append (or of its already stored copy).</param>
/// <param name="Written">False when the append was recognised as a retry of events already stored and nothing was written.</param>
public sealed record AppendResult(StreamId StreamId, StreamVersion? NextExpectedVersion, GlobalPosition FirstPosition, GlobalPosition LastPosition, bool Written);

/// <summary>Options of <see cref="IEventReader.ReadStreamAsync"/>.</summary>
public sealed record ReadStreamOptions
{
    /// <summary>Forwards (default) or backwards.</summary>
    public Direction Direction { get; init; } = Direction.Forwards;

    /// <summary>The first version to return (inclusive); null means the start (forwards) or the end (backwards).</summary>
    public StreamVersion? From { get; init; }

    /// <summary>The most events to return; default unbounded.</summary>
    public long MaxCount
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxCount is 0 or more.");
    } = long.MaxValue;

    /// <summary>Reads everything forwards.</summary>
    public static ReadStreamOptions Default { get; } = new();
}

/// <summary>Options of <see cref="IEventReader.ReadAllAsync"/>.</summary>
public sealed record ReadAllOptions
{
    /// <summary>The first position to return (inclusive) when reading forwards; the highest position to return when reading backwards.</summary>
    public GlobalPosition From { get; init; } = GlobalPosition.Start;

    /// <summary>Forwards (default) or backwards.</summary>
    public Direction Direction { get; init; } = Direction.Forwards;

    /// <summary>
    /// Reading forwards: the last position to return (inclusive); null for no bound. Followers of the log pass the
    /// high-water mark (<see cref="IEventReader.GetHeadPositionAsync"/>) read just before, so they never step over a
    /// position that is still being committed. Reading backwards: the lowest position to return.
    /// </summary>
    public GlobalPosition? To { get; init; }

    /// <summary>The most events to return; default unbounded.</summary>
    public long MaxCount
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxCount is 0 or more.");
    } = long.MaxValue;

    /// <summary>Which events to return; default all.</summary>
    public EventFilter Filter { get; init; } = EventFilter.None;

    /// <summary>Reads everything forwards.</summary>
    public static ReadAllOptions Default { get; } = new();
}

/// <summary>
/// Selects events of the global log. An event passes when it matches every non-empty criterion; within one criterion, any listed value matches.
/// </summary>
public sealed record EventFilter
{
    /// <summary>No filtering.</summary>
    public static EventFilter None { get; } = new();

    /// <summary>Event type names to keep.</summary>
    public IReadOnlyList<string> EventTypes { get; init; } = [];

    /// <summary>Stream categories to keep.</summary>
    public IReadOnlyList<string> Categories { get; init; } = [];

    /// <summary>Stream id prefixes to keep.</summary>
    public IReadOnlyList<string> StreamPrefixes { get; init; } = [];

    /// <summary>True when nothing is filtered.</summary>
    public bool IsEmpty => EventTypes.Count == 0 && Categories.Count == 0 && StreamPrefixes.Count == 0;

    /// <summary>Keeps only these event types.</summary>
    public static EventFilter ForEventTypes(params string[] types) => new() { EventTypes = types };

    /// <summary>Keeps only these categories.</summary>
    public static EventFilter ForCategories(params string[] categories) => new() { Categories = categories };

    /// <summary>Keeps only streams with these prefixes.</summary>
    public static EventFilter ForStreamPrefixes(params string[] prefixes) => new() { StreamPrefixes = prefixes };

    /// <summary>Evaluates the filter on one event.</summary>
    public bool Matches(RecordedEvent e)
    {
        if (EventTypes.Count > 0 && !EventTypes.Contains(e.Type, StringComparer.Ordinal)) return false;
        if (Categories.Count > 0 && !Categories.Contains(e.StreamId.Category, StringComparer.Ordinal)) return false;
        if (StreamPrefixes.Count > 0)
        {
            var id = e.StreamId.Value;
            var any = false;
            foreach (var p in StreamPrefixes)
            {
                if (id.StartsWith(p, StringComparison.Ordinal)) { any = true; break; }
            }
            if (!any) return false;
        }
        return true;
    }
}

/// <summary>Options of <see cref="IStreamManager.ListStreamsAsync"/>.</summary>
public sealed record ListStreamsOptions
{
    /// <summary>Only streams of this category; null for all.</summary>
    public string? Category { get; init; }

    /// <summary>Continue after this stream id (from <see cref="StreamPage.ContinuationToken"/>); null to start.</summary>
    public string? After { get; init; }

    /// <summary>Streams per page (1 to 10,000; default 100).</summary>
    public int PageSize
    {
        get;
        init => field = value is >= 1 and <= 10_000 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "PageSize is between 1 and 10,000.");
    } = 100;

    /// <summary>Include soft-deleted and tombstoned streams (default false).</summary>
    public bool IncludeDeleted { get; init; }
}

/// <summary>One page of streams.</summary>
/// <param name="Streams">The streams of this page, ordered by id.</param>
/// <param name="ContinuationToken">Pass as <see cref="ListStreamsOptions.After"/> for the next page; null on the last page.</param>
public sealed record StreamPage(IReadOnlyList<StreamInfo> Streams, string? ContinuationToken);

/// <summary>Whether a stream can be read and written.</summary>
public enum StreamState
{
    /// <summary>Never written.</summary>
    NotFound,

    /// <summary>Has events and is not deleted.</summary>
    Active,

    /// <summary>Soft-deleted: hidden; an append re-creates it.</summary>
    SoftDeleted,

    /// <summary>Hard-deleted: tombstoned forever.</summary>
    Tombstoned,
}

/// <summary>What is known about a stream.</summary>
public sealed record StreamInfo
{
    /// <summary>The stream.</summary>
    public required StreamId StreamId { get; init; }

    /// <summary>Its state.</summary>
    public required StreamState State { get; init; }

    /// <summary>The version of its last event (including hidden ones), or null if it has none.</summary>
    public StreamVersion? LastVersion { get; init; }

    /// <summary>The global position of its last event, or null.</summary>
    public GlobalPosition? LastPosition { get; init; }

    /// <summary>When its first event was recorded.</summary>
    public DateTimeOffset? CreatedAt { get; init; }

    /// <summary>When it was last changed.</summary>
    public DateTimeOffset? UpdatedAt { get; init; }

    /// <summary>Its metadata.</summary>
    public StreamMetadata Metadata { get; init; } = StreamMetadata.None;
}

/// <summary>
/// A stream's metadata: retention rules (events beyond them are no longer returned by stream reads) and custom values.
/// </summary>
public sealed record StreamMetadata
{
    /// <summary>No retention, no custom values.</summary>
    public static StreamMetadata None { get; } = new();

    /// <summary>The longest <see cref="MaxAge"/> accepted: 1,000 years (omit the rule to keep events forever).</summary>
    public static TimeSpan MaxAgeLimit { get; } = TimeSpan.FromDays(365_250);

    /// <summary>Events older than this are hidden. From one second to <see cref="MaxAgeLimit"/>.</summary>
    public TimeSpan? MaxAge
    {
        get;
        init => field = value is null || (value.Value >= TimeSpan.FromSeconds(1) && value.Value <= MaxAgeLimit) ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "maxAge is between one second and 1,000 years (leave it out to keep events forever).");
    }

    /// <summary>Only the newest N events are returned.</summary>
    public long? MaxCount
    {
        get;
        init => field = value is null || value.Value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "maxCount is at least 1.");
    }

    /// <summary>Events with a version below this are hidden.</summary>
    public StreamVersion? TruncateBefore { get; init; }

    /// <summary>Free-form values.</summary>
    public IReadOnlyDictionary<string, string> Custom { get; init; } = EmptyMetadata.Instance;

    /// <summary>True when no retention rule applies.</summary>
    public bool HasRetention => MaxAge is not null || MaxCount is not null || TruncateBefore is not null;
}

/// <summary>Store-wide limits, shared by every backend.</summary>
public record EventStoreOptions
{
    /// <summary>The largest event (payload plus metadata) accepted, in bytes. Default 1 MiB.</summary>
    public int MaxEventSize
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxEventSize is at least 1 byte.");
    } = 1024 * 1024;

    /// <summary>The most events one append may carry. Default 10,000.</summary>
    public int MaxEventsPerAppend
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxEventsPerAppend is at least 1.");
    } = 10_000;

    /// <summary>The clock; replace it in tests.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// Where the store and what runs on it (projections, subscriptions) log; default none. <c>AddFactum</c> sets the
    /// application's factory. Event ids are listed in <see cref="FactumLogEvents"/>.
    /// </summary>
    public Microsoft.Extensions.Logging.ILoggerFactory LoggerFactory { get; init; } = Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
}
