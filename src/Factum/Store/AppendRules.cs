namespace Factum.Store;

/// <summary>An event ready to be written: validated, correlated, with its metadata encoded once.</summary>
internal sealed record PreparedEvent(
    EventId EventId,
    string Type,
    int SchemaVersion,
    ReadOnlyMemory<byte> Payload,
    IReadOnlyDictionary<string, string> Metadata,
    byte[]? MetadataJson,
    string CorrelationId,
    string? CausationId);

/// <summary>What a backend knows about a stream when it checks an append.</summary>
/// <param name="State">The stream's state.</param>
/// <param name="LastVersion">The version of its last event, -1 if none.</param>
/// <param name="StartVersion">The first version of its current life (after a soft delete, the version it was re-created at).</param>
internal readonly record struct StreamHead(StreamState State, long LastVersion, long StartVersion)
{
    public static StreamHead None => new(StreamState.NotFound, -1, 0);

    public StreamVersion? Actual => LastVersion >= 0 ? new StreamVersion(LastVersion) : null;
}

/// <summary>Lookups the idempotency rules need; backends answer them inside their write transaction.</summary>
internal interface IStreamLookup
{
    /// <summary>The ids of up to <paramref name="count"/> events from <paramref name="fromVersion"/> on, in version order.</summary>
    IReadOnlyList<EventId> ReadIds(long fromVersion, int count);

    /// <summary>The version of <paramref name="eventId"/> in this stream, or null.</summary>
    long? FindVersion(EventId eventId);
}

/// <summary>The decision for one stream: write at <see cref="FirstVersion"/>, or recognise a retry stored from there.</summary>
internal readonly record struct AppendDecision(bool IsIdempotent, long FirstVersion);

/// <summary>EventStoreDB's expected-version and idempotency rules, shared by every backend so that they cannot drift.</summary>
internal static class AppendRules
{
    public static AppendDecision Decide(StreamId streamId, StreamHead head, ExpectedVersion expected, IReadOnlyList<PreparedEvent> events, IStreamLookup lookup)
    {
        if (head.State == StreamState.Tombstoned) throw new StreamDeletedException(streamId);
        var visible = head.State == StreamState.Active;
        var write = new AppendDecision(false, head.LastVersion + 1);

        if (expected.IsAny)
            return events.Count == 0 ? write : CheckAlreadyStored(streamId, head, expected, events, lookup) ?? write;

        if (expected.IsNoStream)
        {
            if (!visible) return write;
            if (events.Count > 0 && Matches(lookup, head.StartVersion, events)) return new AppendDecision(true, head.StartVersion);
            throw new WrongExpectedVersionException(streamId, expected, head.Actual);
        }

        if (expected.IsStreamExists)
        {
            if (!visible) throw new WrongExpectedVersionException(streamId, expected, head.Actual, head.State == StreamState.SoftDeleted ? "the stream was soft-deleted" : null);
            return events.Count == 0 ? write : CheckAlreadyStored(streamId, head, expected, events, lookup) ?? write;
        }

        var n = expected.Value;
        if (n == head.LastVersion) return write;
        if (n < head.LastVersion && events.Count > 0 && n + 1 >= head.StartVersion && Matches(lookup, n + 1, events))
            return new AppendDecision(true, n + 1);
        throw new WrongExpectedVersionException(streamId, expected, head.Actual,
            n < head.LastVersion && events.Count > 0 ? "the events after the expected version are not these events" : null);
    }

    /// <summary>For Any/StreamExists: a full in-order match of ids already stored is a retry; a partial match is an error.</summary>
    private static AppendDecision? CheckAlreadyStored(StreamId streamId, StreamHead head, ExpectedVersion expected, IReadOnlyList<PreparedEvent> events, IStreamLookup lookup)
    {
        if (head.LastVersion < 0) return null;
        var first = lookup.FindVersion(events[0].EventId);
        if (first is { } v)
        {
            if (Matches(lookup, v, events)) return new AppendDecision(true, v);
            throw new WrongExpectedVersionException(streamId, expected, head.Actual,
                $"event {events[0].EventId} is already stored at version {v}, but the rest of the batch does not match what follows it (a partial or out-of-order retry)");
        }
        for (var i = 1; i < events.Count; i++)
        {
            if (lookup.FindVersion(events[i].EventId) is { } other)
                throw new WrongExpectedVersionException(streamId, expected, head.Actual,
                    $"event {events[i].EventId} is already stored at version {other} but event {events[0].EventId} is not (a partial retry)");
        }
        return null;
    }

    private static bool Matches(IStreamLookup lookup, long from, IReadOnlyList<PreparedEvent> events)
    {
        var ids = lookup.ReadIds(from, events.Count);
        if (ids.Count != events.Count) return false;
        for (var i = 0; i < ids.Count; i++)
        {
            if (ids[i] != events[i].EventId) return false;
        }
        return true;
    }

    /// <summary>Checks a delete's expected version.</summary>
    public static void CheckDelete(StreamId streamId, StreamHead head, ExpectedVersion expected)
    {
        if (head.State == StreamState.Tombstoned) throw new StreamDeletedException(streamId);
        var visible = head.State == StreamState.Active;
        var ok = expected.IsAny
                 || (expected.IsNoStream && !visible)
                 || (expected.IsStreamExists && visible)
                 || (expected.IsExact && expected.Value == head.LastVersion);
        if (!ok) throw new WrongExpectedVersionException(streamId, expected, head.Actual, "the stream was not deleted");
    }
}

/// <summary>Validation and correlation applied to every append before it reaches a backend.</summary>
internal static class AppendPreparation
{
    public static PreparedEvent[] Prepare(StreamId streamId, IReadOnlyList<EventData> events, EventStoreOptions options, string? defaultCorrelation)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (streamId == default) throw new ArgumentException("The stream id is default(StreamId); pass a real stream id.", nameof(streamId));
        if (events.Count > options.MaxEventsPerAppend)
            throw new ArgumentException($"An append carries at most {options.MaxEventsPerAppend:N0} events; this one has {events.Count:N0}.", nameof(events));
        var ambientCorrelation = EventContext.CorrelationId;
        var ambientCausation = ambientCorrelation is null ? null : EventContext.CausationId;
        var correlation = ambientCorrelation ?? defaultCorrelation ?? (events.Count > 0 ? events[0].EventId.ToString() : null);
        // The ambient context bypasses EventData's checks: hold it to the same rules before it reaches a row.
        EventData.ValidateId(ambientCorrelation, "ambient correlation id (EventContext)");
        EventData.ValidateId(ambientCausation, "ambient causation id (EventContext)");
        var prepared = new PreparedEvent[events.Count];
        HashSet<EventId>? seen = events.Count > 1 ? new HashSet<EventId>(events.Count) : null;
        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i] ?? throw new ArgumentException($"Event {i} of the append to '{streamId}' is null.", nameof(events));
            if (e.EventId == default) throw new ArgumentException($"Event {i} of the append to '{streamId}' has no event id.", nameof(events));
            if (seen is not null && !seen.Add(e.EventId))
                throw new ArgumentException($"Event id {e.EventId} appears more than once in the append to '{streamId}'.", nameof(events));
            var metadataJson = MetadataCodec.Encode(e.Metadata);
            long size = e.Payload.Length + (metadataJson?.Length ?? 0);
            if (size > options.MaxEventSize) throw new EventTooLargeException(e.EventId, e.Type, size, options.MaxEventSize);
            prepared[i] = new PreparedEvent(
                e.EventId, e.Type, e.SchemaVersion, e.Payload, e.Metadata, metadataJson,
                e.CorrelationId ?? correlation!,
                e.CausationId ?? (e.CorrelationId is null ? ambientCausation : null));
        }
        return prepared;
    }

    public static (StreamAppend Append, PreparedEvent[] Events)[] PrepareMany(IReadOnlyList<StreamAppend> appends, EventStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(appends);
        if (appends.Count == 0) throw new ArgumentException("A multi-stream append needs at least one stream.", nameof(appends));
        var streams = new HashSet<StreamId>();
        string? correlation = null;
        foreach (var a in appends)
        {
            ArgumentNullException.ThrowIfNull(a, nameof(appends));
            if (!streams.Add(a.StreamId))
                throw new ArgumentException($"Stream '{a.StreamId}' appears more than once in a multi-stream append; put its events in one entry.", nameof(appends));
            if (correlation is null && a.Events.Count > 0) correlation = a.Events[0].EventId.ToString();
        }
        var total = appends.Sum(a => (long)a.Events.Count);
        if (total > options.MaxEventsPerAppend)
            throw new ArgumentException($"An append carries at most {options.MaxEventsPerAppend:N0} events; this one has {total:N0}.", nameof(appends));
        // One business operation: every event shares the first event's correlation id unless given one.
        return appends.Select(a => (a, Prepare(a.StreamId, a.Events, options, correlation))).ToArray();
    }
}

/// <summary>Retention: which versions and timestamps of a stream are still visible.</summary>
internal static class Retention
{
    /// <summary>The lowest visible version and the oldest visible timestamp (ticks, UTC).</summary>
    public static (long MinVersion, long MinTicks) Window(StreamMetadata metadata, long lastVersion, DateTimeOffset now)
    {
        long minVersion = 0;
        if (metadata.TruncateBefore is { } tb) minVersion = Math.Max(minVersion, tb.Value);
        if (metadata.MaxCount is { } mc) minVersion = Math.Max(minVersion, lastVersion - mc + 1);
        // An age longer than the calendar reaches back hides nothing (clamped rather than overflowing, so a stream whose
        // metadata was stored by an older build with an absurd maxAge stays readable).
        var minTicks = metadata.MaxAge is { } age && age.Ticks < now.UtcTicks - DateTimeOffset.MinValue.UtcTicks ? (now - age).UtcTicks : 0L;
        return (minVersion, minTicks);
    }
}
