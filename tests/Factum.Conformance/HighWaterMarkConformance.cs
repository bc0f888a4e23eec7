using System.Collections.Concurrent;
using Factum.Messaging;
using Factum.Subscriptions;

namespace Factum.Conformance;

/// <summary>A write that has taken its position in the log but is not committed yet.</summary>
public interface IHeldWrite
{
    /// <summary>Commits it: the event becomes visible at the position it took.</summary>
    Task CommitAsync();

    /// <summary>Rolls it back: its position stays empty forever (a gap).</summary>
    Task RollbackAsync();
}

/// <summary>
/// A backend's way to hold a write open while others commit: a hook in its writer, or a real second connection holding
/// a transaction. A backend whose writers are serialized (SQLite) holds the write lock, so later appends wait for it.
/// </summary>
public interface IHighWaterMarkHarness : IAsyncDisposable
{
    /// <summary>The reader that followers (subscriptions, the outbox relay) use.</summary>
    IEventReader Reader { get; }

    /// <summary>Appends one event and returns once it is committed (it may wait while a held write blocks it).</summary>
    Task AppendAsync(StreamId stream, EventData e, CancellationToken cancellationToken);

    /// <summary>Starts a write of one event that stays uncommitted until the handle commits or rolls it back.</summary>
    Task<IHeldWrite> HoldAsync(StreamId stream, EventData e, CancellationToken cancellationToken);
}

/// <summary>How a backend enrolls in <see cref="HighWaterMarkConformance{TFactory}"/>.</summary>
public interface IHighWaterMarkHarnessFactory
{
    /// <summary>A fresh, empty store with its hook.</summary>
    Task<IHighWaterMarkHarness> CreateAsync();
}

/// <summary>
/// The head is a high-water mark: while a write with a lower position is still open, no follower of the log (a
/// subscription to $all, the outbox relay) may pass it, even though a higher position has committed; once it commits,
/// every follower sees both in position order; once it rolls back, the gap is passed and nothing is lost.
/// </summary>
public abstract class HighWaterMarkConformance<TFactory> : IAsyncLifetime where TFactory : IHighWaterMarkHarnessFactory, new()
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    /// <summary>How long the followers are given to (wrongly) pass the open write.</summary>
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(400);

    private IHighWaterMarkHarness? _harness;
    private EventSubscription? _subscription;
    private readonly ConcurrentQueue<RecordedEvent> _seen = new();
    private readonly InMemorySubscriptionStore _checkpoints = new();
    private readonly InMemoryTransport _transport = new();

    private IHighWaterMarkHarness Harness => _harness ?? throw new InvalidOperationException("Created in InitializeAsync.");

    public async Task InitializeAsync() => _harness = await new TFactory().CreateAsync();

    public async Task DisposeAsync()
    {
        if (_subscription is not null) await _subscription.DisposeAsync();
        if (_harness is not null) await _harness.DisposeAsync();
    }

    private static StreamId NewStream() => StreamId.Parse($"Order-{Guid.NewGuid():N}");

    private static EventData Ev(string type) => EventData.FromJson(type, "{}") with { EventId = EventId.New() };

    private async Task StartSubscriptionAsync()
    {
        _subscription = new EventSubscription(Harness.Reader, _checkpoints, new SubscriptionOptions("hwm-" + Guid.NewGuid().ToString("N")[..8])
        {
            LiveWaitTimeout = TimeSpan.FromMilliseconds(50),
        }, (e, _) =>
        {
            _seen.Enqueue(e);
            return ValueTask.CompletedTask;
        });
        await _subscription.StartAsync();
    }

    private async Task WaitForSeen(int count)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (_seen.Count < count) await Task.Delay(5, cts.Token);
    }

    private async Task<List<RecordedEvent>> ReadAllAsync()
    {
        var all = new List<RecordedEvent>();
        await foreach (var e in Harness.Reader.ReadAllAsync()) all.Add(e);
        return all;
    }

    /// <summary>
    /// A committed, then an open write (H), then a write (B) committed after H took its position: returns B's task, the
    /// relay and what the followers did while H was open.
    /// </summary>
    private async Task<(IHeldWrite Held, Task AppendB, OutboxRelay Relay, EventData A, EventData H, EventData B)> OpenGapAsync()
    {
        var (a, h, b) = (Ev("OrderPlaced"), Ev("OrderHeld"), Ev("OrderShipped"));
        await Harness.AppendAsync(NewStream(), a, CancellationToken.None);
        await StartSubscriptionAsync();
        await WaitForSeen(1);
        var relay = new OutboxRelay(Harness.Reader, _transport, _checkpoints, new OutboxRelayOptions { Name = "hwm-relay" });
        Assert.Equal(1, await relay.CatchUpAsync());

        var held = await Harness.HoldAsync(NewStream(), h, CancellationToken.None);
        var appendB = Task.Run(() => Harness.AppendAsync(NewStream(), b, CancellationToken.None));
        // Where writers can commit out of order, B commits now, above H's open position; where they are serialized, B waits.
        await Task.WhenAny(appendB, Task.Delay(Quiet));
        await Task.Delay(Quiet);

        Assert.Equal([a.EventId], _seen.Select(e => e.EventId).ToArray());
        var head = await Harness.Reader.GetHeadPositionAsync();
        var upToHead = new List<EventId>();
        await foreach (var e in Harness.Reader.ReadAllAsync(new ReadAllOptions { From = GlobalPosition.Start, To = head })) upToHead.Add(e.EventId);
        Assert.Equal([a.EventId], upToHead.ToArray());
        Assert.Equal(0, await relay.CatchUpAsync());
        return (held, appendB, relay, a, h, b);
    }

    [Fact]
    public async Task No_follower_passes_a_position_that_is_still_committing_and_all_see_it_once_it_commits()
    {
        var (held, appendB, relay, a, h, b) = await OpenGapAsync();

        await held.CommitAsync();
        await appendB.WaitAsync(Patience);
        var log = await ReadAllAsync();
        Assert.Equal(3, log.Count);
        Assert.Equal(new HashSet<EventId> { a.EventId, h.EventId, b.EventId }, log.Select(e => e.EventId).ToHashSet());
        Assert.True(log[1].Position < log[2].Position);

        await WaitForSeen(3);
        await Task.Delay(50);
        Assert.Equal(log.Select(e => e.EventId), _seen.Select(e => e.EventId));
        Assert.Equal(2, await relay.CatchUpAsync());
        Assert.Equal(log[^1].Position.Value, relay.Position);
        Assert.Equal(log[^1].Position, await Harness.Reader.GetHeadPositionAsync());
    }

    [Fact]
    public async Task A_rolled_back_position_is_a_gap_that_every_follower_then_passes()
    {
        var (held, appendB, relay, a, _, b) = await OpenGapAsync();

        await held.RollbackAsync();
        await appendB.WaitAsync(Patience);
        var log = await ReadAllAsync();
        Assert.Equal([a.EventId, b.EventId], log.Select(e => e.EventId).ToArray());

        await WaitForSeen(2);
        await Task.Delay(50);
        Assert.Equal([a.EventId, b.EventId], _seen.Select(e => e.EventId).ToArray());
        Assert.Equal(1, await relay.CatchUpAsync());
        Assert.Equal(log[^1].Position.Value, relay.Position);
        Assert.True(await Harness.Reader.GetHeadPositionAsync() >= log[^1].Position);
    }
}
