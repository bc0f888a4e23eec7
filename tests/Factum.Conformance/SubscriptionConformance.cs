using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Factum.Subscriptions;

namespace Factum.Conformance;

/// <summary>How a backend provides checkpoint and dead-letter stores for its event store.</summary>
public interface ISubscriptionStoreFactory
{
    /// <summary>The checkpoint and dead-letter stores that go with <paramref name="store"/>.</summary>
    (ICheckpointStore Checkpoints, IParkedEventStore Parked) CreateSubscriptionStores(IEventStore store);
}

/// <summary>Subscriptions: ordering, catch-up to live, checkpoints, filters, backpressure and failure policies.</summary>
public abstract class SubscriptionConformance<TFactory> : StoreTestBase<TFactory> where TFactory : IEventStoreFactory, ISubscriptionStoreFactory, new()
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly List<EventSubscription> _subscriptions = [];
    private (ICheckpointStore Checkpoints, IParkedEventStore Parked)? _stores;

    protected override EventStoreOptions Options => new();

    private (ICheckpointStore Checkpoints, IParkedEventStore Parked) Stores => _stores ??= new TFactory().CreateSubscriptionStores(Store);

    /// <summary>Records what a handler saw and lets a test wait for a count.</summary>
    protected sealed class Collector
    {
        public ConcurrentQueue<RecordedEvent> Seen { get; } = new();

        public ValueTask Handle(RecordedEvent e, CancellationToken ct)
        {
            Seen.Enqueue(e);
            return ValueTask.CompletedTask;
        }

        public async Task WaitFor(int count)
        {
            using var cts = new CancellationTokenSource(Patience);
            while (Seen.Count < count) await Task.Delay(5, cts.Token);
        }

        public long[] Positions => Seen.Select(e => e.Position.Value).ToArray();
    }

    private static SubscriptionOptions Opts(string? id = null) => new(id ?? "sub-" + Guid.NewGuid().ToString("N")[..8])
    {
        Retry = new RetryPolicy { MaxAttempts = 3, InitialDelay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromMilliseconds(5) },
        LiveWaitTimeout = TimeSpan.FromMilliseconds(200),
    };

    private async Task<EventSubscription> Start(SubscriptionOptions options, EventHandlerAsync handler, IEventReader? reader = null)
    {
        var s = new EventSubscription(reader ?? Store, Stores.Checkpoints, options, handler, Stores.Parked);
        _subscriptions.Add(s);
        await s.StartAsync();
        return s;
    }

    public override async Task DisposeAsync()
    {
        foreach (var s in _subscriptions) await s.DisposeAsync();
        await base.DisposeAsync();
    }

    private static async Task WaitUntil(Func<Task<bool>> condition)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (!await condition()) await Task.Delay(5, cts.Token);
    }

    [Fact]
    public async Task A_subscription_to_all_from_the_beginning_delivers_every_event_in_order()
    {
        for (var i = 0; i < 5; i++) await Append(NewStream(), ExpectedVersion.Any, Evs(20));
        var c = new Collector();
        await Start(Opts() with { PageSize = 7 }, c.Handle);
        await c.WaitFor(100);
        Assert.Equal(Enumerable.Range(1, 100).Select(i => (long)i), c.Positions);
    }

    [Fact]
    public async Task Catch_up_then_live_with_concurrent_writers_has_no_gap_and_no_duplicate()
    {
        for (var i = 0; i < 20; i++) await Append(NewStream(), ExpectedVersion.Any, Evs(50));
        var c = new Collector();
        var writers = Task.WhenAll(Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            var s = NewStream();
            for (var i = 0; i < 40; i++) await Append(s, ExpectedVersion.Any, Evs(i % 3 + 1));
        })));
        await Start(Opts() with { PageSize = 16, BufferSize = 8 }, async (e, ct) =>
        {
            if (e.Position.Value % 97 == 0) await Task.Delay(1, ct); // a handler slower than the writers at times
            await c.Handle(e, ct);
        });
        await writers;
        var total = (int)(await Store.GetHeadPositionAsync()).Value;
        await c.WaitFor(total);
        await Task.Delay(100);
        Assert.Equal(Enumerable.Range(1, total).Select(i => (long)i), c.Positions);
    }

    [Fact]
    public async Task A_subscription_from_the_end_delivers_only_new_events()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(10));
        var c = new Collector();
        var sub = await Start(Opts() with { Start = SubscriptionStart.End }, c.Handle);
        await WaitUntil(async () => (await sub.GetStatusAsync()).State == SubscriptionState.Live);
        await Append(NewStream(), ExpectedVersion.Any, Evs(3));
        await c.WaitFor(3);
        Assert.Equal([11L, 12, 13], c.Positions);
    }

    [Fact]
    public async Task A_subscription_after_a_position_delivers_what_follows_it()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(10));
        var c = new Collector();
        await Start(Opts() with { Start = SubscriptionStart.After(7) }, c.Handle);
        await c.WaitFor(3);
        await Task.Delay(50);
        Assert.Equal([8L, 9, 10], c.Positions);
    }

    [Fact]
    public async Task A_stream_subscription_delivers_its_versions_in_order_even_before_the_stream_exists()
    {
        var s = NewStream();
        var c = new Collector();
        await Start(Opts() with { Stream = s }, c.Handle);
        await Append(NewStream(), ExpectedVersion.Any, Evs(5));
        await Append(s, ExpectedVersion.NoStream, Evs(3));
        await Append(NewStream(), ExpectedVersion.Any, Evs(5));
        await Append(s, ExpectedVersion.Exactly(2), Evs(2));
        await c.WaitFor(5);
        await Task.Delay(50);
        Assert.Equal([0L, 1, 2, 3, 4], c.Seen.Select(e => e.StreamVersion.Value));
        Assert.All(c.Seen, e => Assert.Equal(s, e.StreamId));
    }

    [Fact]
    public async Task A_filtered_subscription_delivers_only_matching_events()
    {
        await Append(NewStream("Order"), ExpectedVersion.Any, Ev("OrderPlaced"), Ev("OrderPaid"));
        await Append(NewStream("Payment"), ExpectedVersion.Any, Ev("PaymentCaptured"));
        var byType = new Collector();
        var byCategory = new Collector();
        await Start(Opts() with { Filter = EventFilter.ForEventTypes("OrderPaid", "PaymentCaptured") }, byType.Handle);
        await Start(Opts() with { Filter = EventFilter.ForCategories("Payment") }, byCategory.Handle);
        await Append(NewStream("Payment"), ExpectedVersion.Any, Ev("PaymentCaptured"));
        await byType.WaitFor(3);
        await byCategory.WaitFor(2);
        await Task.Delay(50);
        Assert.Equal(["OrderPaid", "PaymentCaptured", "PaymentCaptured"], byType.Seen.Select(e => e.Type));
        Assert.All(byCategory.Seen, e => Assert.Equal("Payment", e.StreamId.Category));
        Assert.Equal(2, byCategory.Seen.Count);
    }

    [Fact]
    public async Task A_restarted_subscription_resumes_after_its_checkpoint()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(40));
        var options = Opts("resume-" + Guid.NewGuid().ToString("N")[..6]) with { CheckpointEvery = 10 };
        var first = new Collector();
        var sub = await Start(options, first.Handle);
        await first.WaitFor(40);
        await sub.StopAsync();
        Assert.Equal(40, await Stores.Checkpoints.LoadAsync(options.Id));
        await Append(NewStream(), ExpectedVersion.Any, Evs(5));
        var second = new Collector();
        await Start(options, second.Handle);
        await second.WaitFor(5);
        await Task.Delay(50);
        Assert.Equal([41L, 42, 43, 44, 45], second.Positions);
    }

    [Fact]
    public async Task The_checkpoint_is_stored_every_n_events()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(25));
        var options = Opts() with { CheckpointEvery = 10, CheckpointInterval = TimeSpan.FromHours(1) };
        var c = new Collector();
        await Start(options, c.Handle);
        await c.WaitFor(25);
        await WaitUntil(async () => await Stores.Checkpoints.LoadAsync(options.Id) == 20);
        await Task.Delay(50);
        Assert.Equal(20, await Stores.Checkpoints.LoadAsync(options.Id));
    }

    [Fact]
    public async Task The_checkpoint_is_stored_after_the_interval_when_idle()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(3));
        var options = Opts() with { CheckpointEvery = 1000, CheckpointInterval = TimeSpan.FromMilliseconds(50) };
        var c = new Collector();
        await Start(options, c.Handle);
        await c.WaitFor(3);
        await WaitUntil(async () => await Stores.Checkpoints.LoadAsync(options.Id) == 3);
    }

    [Fact]
    public async Task A_filtered_subscription_advances_its_checkpoint_through_events_it_skips()
    {
        await Append(NewStream(), ExpectedVersion.Any, Ev("RareThingHappened"));
        for (var i = 0; i < 6; i++) await Append(NewStream(), ExpectedVersion.Any, Evs(100));
        var options = Opts() with { Filter = EventFilter.ForEventTypes("RareThingHappened"), PageSize = 50, CheckpointInterval = TimeSpan.FromMilliseconds(20) };
        var c = new Collector();
        var sub = await Start(options, c.Handle);
        await c.WaitFor(1);
        await WaitUntil(async () => await Stores.Checkpoints.LoadAsync(options.Id) == 601);
        Assert.Equal(0, (await sub.GetStatusAsync()).Lag);
    }

    [Fact]
    public async Task A_slow_handler_slows_reading_instead_of_buffering_without_bound()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(500));
        var counting = new CountingReader(Store);
        using var gate = new SemaphoreSlim(0);
        var handled = 0;
        await Start(Opts() with { BufferSize = 16, PageSize = 8 }, async (e, ct) =>
        {
            await gate.WaitAsync(ct);
            Interlocked.Increment(ref handled);
        }, counting);
        await Task.Delay(300);
        Assert.InRange(counting.Read, 1, 16 + 8 + 1);
        gate.Release(100);
        await WaitUntil(() => Task.FromResult(Volatile.Read(ref handled) == 100));
        await Task.Delay(300);
        Assert.InRange(counting.Read, 100, 100 + 16 + 8 + 1);
        gate.Release(400);
        await WaitUntil(() => Task.FromResult(Volatile.Read(ref handled) == 500));
        Assert.Equal(500, counting.Read);
    }

    [Fact]
    public async Task A_failing_handler_is_retried_until_it_succeeds()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(3));
        var attempts = new ConcurrentDictionary<long, int>();
        var c = new Collector();
        await Start(Opts() with { Retry = new RetryPolicy { MaxAttempts = 4, InitialDelay = TimeSpan.FromMilliseconds(1) } }, async (e, ct) =>
        {
            if (attempts.AddOrUpdate(e.Position.Value, 1, (_, n) => n + 1) < 3 && e.Position.Value == 2) throw new InvalidOperationException("flaky");
            await c.Handle(e, ct);
        });
        await c.WaitFor(3);
        Assert.Equal(3, attempts[2]);
        Assert.Equal([1L, 2, 3], c.Positions);
    }

    [Fact]
    public async Task After_the_last_attempt_the_default_policy_stops_and_names_the_failing_event()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(5));
        var options = Opts() with { CheckpointEvery = 1 };
        var calls = 0;
        var sub = await Start(options, (e, ct) =>
        {
            if (e.Position.Value == 3) { Interlocked.Increment(ref calls); throw new InvalidOperationException("cannot handle three"); }
            return ValueTask.CompletedTask;
        });
        await sub.Completion.WaitAsync(Patience);
        var status = await sub.GetStatusAsync();
        Assert.Equal(SubscriptionState.Faulted, status.State);
        Assert.Equal(3, status.FailingEvent!.Position.Value);
        Assert.Contains("cannot handle three", status.LastError);
        Assert.Contains("attempt 3 of 3", status.LastError);
        Assert.Equal(3, calls);
        Assert.Equal(2, await Stores.Checkpoints.LoadAsync(options.Id));
    }

    [Fact]
    public async Task With_the_park_policy_a_failing_event_is_parked_and_the_subscription_goes_on()
    {
        var s = NewStream();
        await Append(s, ExpectedVersion.Any, Evs(5));
        var options = Opts() with { OnFailure = FailureAction.Park };
        var c = new Collector();
        var sub = await Start(options, async (e, ct) =>
        {
            if (e.Position.Value == 2) throw new FormatException("bad payload");
            await c.Handle(e, ct);
        });
        await c.WaitFor(4);
        var parked = Assert.Single(await Stores.Parked.ListAsync(options.Id));
        Assert.Equal(2, parked.Position.Value);
        Assert.Equal(s, parked.StreamId);
        Assert.Equal(1, parked.StreamVersion.Value);
        Assert.Equal(typeof(FormatException).FullName, parked.ErrorType);
        Assert.Equal("bad payload", parked.ErrorMessage);
        Assert.NotNull(parked.ErrorDetail);
        Assert.Equal(3, parked.Attempts);
        Assert.True(parked.FirstFailureAt <= parked.LastFailureAt);
        Assert.Equal(1, (await sub.GetStatusAsync()).Parked);
        Assert.Equal([1L, 3, 4, 5], c.Positions);
    }

    [Fact]
    public async Task Parked_events_are_replayed_after_a_fix_and_leave_the_dead_letter_set()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(3));
        var options = Opts() with { OnFailure = FailureAction.Park };
        var broken = true;
        var c = new Collector();
        var sub = await Start(options, async (e, ct) =>
        {
            if (broken && e.Position.Value == 2) throw new InvalidOperationException("bug");
            await c.Handle(e, ct);
        });
        await c.WaitFor(2);
        await WaitUntil(async () => (await Stores.Parked.ListAsync(options.Id)).Count == 1);
        broken = false;
        Assert.Equal((1, 0), await sub.ReplayParkedAsync());
        Assert.Empty(await Stores.Parked.ListAsync(options.Id));
        Assert.Contains(2L, c.Positions);
    }

    [Fact]
    public async Task A_replay_that_fails_again_keeps_the_event_parked_with_its_attempts_added()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(2));
        var options = Opts() with { OnFailure = FailureAction.Park };
        var sub = await Start(options, (e, ct) => e.Position.Value == 1 ? throw new InvalidOperationException("still broken") : ValueTask.CompletedTask);
        await WaitUntil(async () => (await Stores.Parked.ListAsync(options.Id)).Count == 1);
        var before = (await Stores.Parked.ListAsync(options.Id))[0];
        Assert.Equal((0, 1), await sub.ReplayParkedAsync());
        var after = Assert.Single(await Stores.Parked.ListAsync(options.Id));
        Assert.Equal(6, after.Attempts);
        Assert.Equal(before.FirstFailureAt, after.FirstFailureAt);
    }

    [Fact]
    public async Task The_status_reports_state_checkpoint_head_lag_and_counts()
    {
        await Append(NewStream(), ExpectedVersion.Any, Evs(30));
        var options = Opts() with { CheckpointEvery = 10 };
        var c = new Collector();
        var sub = await Start(options, c.Handle);
        await c.WaitFor(30);
        await WaitUntil(async () => (await sub.GetStatusAsync()) is { State: SubscriptionState.Live, Checkpoint: 30 });
        var status = await sub.GetStatusAsync();
        Assert.Equal(options.Id, status.Id);
        Assert.Equal(30, status.Head);
        Assert.Equal(30, status.LastHandled);
        Assert.Equal(0, status.Lag);
        Assert.Equal(30, status.Handled);
        Assert.Null(status.LastError);
        await sub.StopAsync();
        Assert.Equal(SubscriptionState.Stopped, (await sub.GetStatusAsync()).State);
    }

    [Fact]
    public async Task An_append_wakes_a_live_subscriber_without_waiting_for_its_poll_timeout()
    {
        var c = new Collector();
        var sub = await Start(Opts() with { LiveWaitTimeout = TimeSpan.FromMinutes(10) }, c.Handle);
        await WaitUntil(async () => (await sub.GetStatusAsync()).State == SubscriptionState.Live);
        await Task.Delay(50); // the reader is now waiting for a wake-up
        await Append(NewStream(), ExpectedVersion.Any, Evs(1));
        await c.WaitFor(1); // would take ten minutes if appends did not wake the reader
    }

    [Fact]
    public async Task What_a_handler_appends_is_correlated_with_and_caused_by_the_handled_event()
    {
        var source = NewStream();
        var target = NewStream("Reaction");
        await Append(source, ExpectedVersion.NoStream, Ev() with { CorrelationId = "process-1" });
        var done = new TaskCompletionSource();
        await Start(Opts() with { Stream = source }, async (e, ct) =>
        {
            await Store.AppendAsync(target, ExpectedVersion.Any, [Ev("ReactionHappened")], ct);
            done.TrySetResult();
        });
        await done.Task.WaitAsync(Patience);
        var reaction = Assert.Single(await Read(target));
        var cause = Assert.Single(await Read(source));
        Assert.Equal("process-1", reaction.CorrelationId);
        Assert.Equal(cause.EventId.ToString(), reaction.CausationId);
    }

    [Fact]
    public void Parking_without_a_dead_letter_store_is_rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() => new EventSubscription(Store, Stores.Checkpoints, Opts() with { OnFailure = FailureAction.Park }, (_, _) => ValueTask.CompletedTask));
        Assert.Contains("IParkedEventStore", ex.Message);
    }

    /// <summary>Counts the events the subscription has pulled from the store.</summary>
    private sealed class CountingReader(IEventStore inner) : IEventReader, IAppendNotifier
    {
        private long _read;

        public long Read => Interlocked.Read(ref _read);

        public async IAsyncEnumerable<RecordedEvent> ReadStreamAsync(StreamId streamId, ReadStreamOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            await foreach (var e in inner.ReadStreamAsync(streamId, options, cancellationToken)) { Interlocked.Increment(ref _read); yield return e; }
        }

        public async IAsyncEnumerable<RecordedEvent> ReadAllAsync(ReadAllOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            await foreach (var e in inner.ReadAllAsync(options, cancellationToken)) { Interlocked.Increment(ref _read); yield return e; }
        }

        public Task<GlobalPosition> GetHeadPositionAsync(CancellationToken cancellationToken = default) => inner.GetHeadPositionAsync(cancellationToken);

        public Task WaitForAppendAsync(GlobalPosition after, TimeSpan timeout, CancellationToken cancellationToken = default) =>
            ((IAppendNotifier)inner).WaitForAppendAsync(after, timeout, cancellationToken);
    }
}
