using System.Text;

namespace Factum.Conformance;

/// <summary>How a backend enrolls in the conformance suites: it creates a fresh, empty store per test.</summary>
public interface IEventStoreFactory
{
    /// <summary>Creates a fresh, empty store with these options.</summary>
    IEventStore Create(EventStoreOptions options);

    /// <summary>Releases a store created by <see cref="Create"/> (and its files).</summary>
    ValueTask DestroyAsync(IEventStore store);
}

/// <summary>A clock the tests move by hand.</summary>
public sealed class ManualClock : TimeProvider
{
    public DateTimeOffset Now { get; set; } = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => Now;

    public void Advance(TimeSpan by) => Now += by;
}

/// <summary>Shared plumbing: a fresh store per test, helpers to build and read events.</summary>
public abstract class StoreTestBase<TFactory> : IAsyncLifetime where TFactory : IEventStoreFactory, new()
{
    private readonly TFactory _factory = new();
    private IEventStore? _store;

    protected ManualClock Clock { get; } = new();

    /// <summary>Options for this suite's store; override to change limits.</summary>
    protected virtual EventStoreOptions Options => new() { TimeProvider = Clock };

    protected IEventStore Store => _store ?? throw new InvalidOperationException("The store is created in InitializeAsync.");

    public Task InitializeAsync()
    {
        _store = _factory.Create(Options);
        return Task.CompletedTask;
    }

    public virtual async Task DisposeAsync()
    {
        if (_store is not null) await _factory.DestroyAsync(_store);
    }

    private static int s_counter;

    /// <summary>A stream id unique to this test.</summary>
    protected static StreamId NewStream(string category = "Order") => StreamId.Parse($"{category}-{Interlocked.Increment(ref s_counter)}-{Guid.NewGuid():N}");

    protected static EventData Ev(string type = "OrderPlaced", string json = """{"amount":1}""", EventId? id = null) =>
        EventData.FromJson(type, json) with { EventId = id ?? EventId.New() };

    protected static EventData[] Evs(int count, string type = "OrderPlaced") =>
        Enumerable.Range(0, count).Select(i => Ev(type, $$"""{"n":{{i}}}""")).ToArray();

    protected Task<AppendResult> Append(StreamId stream, ExpectedVersion expected, params EventData[] events) =>
        Store.AppendAsync(stream, expected, events);

    /// <summary>A new stream holding <paramref name="events"/> events (versions 0..events-1).</summary>
    protected async Task<StreamId> StreamWith(int events)
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.NoStream, Evs(events));
        return s;
    }

    protected async Task<List<RecordedEvent>> Read(StreamId stream, ReadStreamOptions? options = null)
    {
        var list = new List<RecordedEvent>();
        await foreach (var e in Store.ReadStreamAsync(stream, options)) list.Add(e);
        return list;
    }

    protected async Task<List<RecordedEvent>> ReadAll(ReadAllOptions? options = null)
    {
        var list = new List<RecordedEvent>();
        await foreach (var e in Store.ReadAllAsync(options)) list.Add(e);
        return list;
    }

    protected static long[] Versions(IEnumerable<RecordedEvent> events) => events.Select(e => e.StreamVersion.Value).ToArray();

    protected static string Text(RecordedEvent e) => Encoding.UTF8.GetString(e.Payload.Span);
}
