using System.Diagnostics;
using System.Threading.Channels;

namespace Factum.Subscriptions;

/// <summary>Handles one event; throwing makes the subscription retry it.</summary>
public delegate ValueTask EventHandlerAsync(RecordedEvent @event, CancellationToken cancellationToken);

/// <summary>
/// A catch-up subscription: reads history from its checkpoint (or its start), then follows new events live, handing each
/// to the handler in order, at least once.
/// </summary>
/// <remarks>
/// <para><b>No gap, no duplicate across catch-up and live.</b> Live is the same read as catch-up, continued from the last
/// position read; the store's positions only grow and never leave holes that fill later, so nothing can slip between
/// the two, and a wake-up only says "read again".</para>
/// <para><b>Backpressure.</b> A reader task fills a bounded buffer of <see cref="SubscriptionOptions.BufferSize"/>
/// events; a slow handler makes the reader wait, so memory stays bounded and nothing is dropped.</para>
/// <para><b>Checkpoints.</b> The last handled position is stored every <see cref="SubscriptionOptions.CheckpointEvery"/>
/// events or <see cref="SubscriptionOptions.CheckpointInterval"/>, and on a graceful stop. With a filter, stretches of
/// non-matching events still advance it. After a crash, events after the checkpoint are delivered again: handlers must be
/// idempotent.</para>
/// <para><b>Failures.</b> A failing handler is retried with exponential backoff and jitter; after the last attempt the
/// subscription stops (faulted, naming the event and the error) or parks the event and goes on.</para>
/// <para>The handler runs inside <see cref="EventContext.CausedBy"/> of the event, so what it appends is correlated and caused by it.</para>
/// </remarks>
public sealed class EventSubscription : IAsyncDisposable
{
    private readonly IEventReader _reader;
    private readonly ICheckpointStore _checkpoints;
    private readonly IParkedEventStore? _parked;
    private readonly SubscriptionOptions _options;
    private readonly EventHandlerAsync _handler;
    private readonly TimeProvider _time;
    private readonly Microsoft.Extensions.Logging.ILogger _log;
    private readonly Random _random = new();
    private readonly CancellationTokenSource _stop = new();
    private Channel<Item>? _buffer;
    private Task _completion = Task.CompletedTask;
    private volatile SubscriptionState _state = SubscriptionState.NotStarted;
    private long _lastHandled;
    private long? _checkpoint;
    private long _handled;
    private long _parkedCount;
    private volatile string? _lastError;
    private volatile RecordedEvent? _failingEvent;
    private double _rate;
    private long _rateWindowStart;
    private long _rateWindowCount;

    private readonly record struct Item(RecordedEvent? Event, long Position);

    /// <summary>Creates a subscription; call <see cref="StartAsync"/> to run it.</summary>
    /// <exception cref="ArgumentException">Parking is requested but no <paramref name="parked"/> store is given.</exception>
    public EventSubscription(IEventReader reader, ICheckpointStore checkpoints, SubscriptionOptions options, EventHandlerAsync handler,
        IParkedEventStore? parked = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(checkpoints);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(handler);
        if (options.OnFailure == FailureAction.Park && parked is null)
            throw new ArgumentException($"Subscription '{options.Id}' parks failing events but no IParkedEventStore was given.", nameof(parked));
        if (options.Stream is not null && !options.Filter.IsEmpty)
            throw new ArgumentException($"Subscription '{options.Id}' follows one stream; filters apply to $all only.", nameof(options));
        _reader = reader;
        _checkpoints = checkpoints;
        _parked = parked;
        _options = options;
        _handler = handler;
        _time = timeProvider ?? TimeProvider.System;
        _log = options.LoggerFactory.CreateLogger(FactumLog.SubscriptionsCategory);
    }

    /// <summary>The subscription's name.</summary>
    public string Id => _options.Id;

    /// <summary>Completes when the subscription stops or faults.</summary>
    public Task Completion => _completion;

    private bool IsAll => _options.Stream is null;

    private static long PositionOf(RecordedEvent e, bool all) => all ? e.Position.Value : e.StreamVersion.Value;

    /// <summary>Loads the checkpoint and starts reading and handling in the background.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (_state != SubscriptionState.NotStarted) throw new InvalidOperationException($"Subscription '{Id}' was already started.");
        _checkpoint = await _checkpoints.LoadAsync(Id, cancellationToken).ConfigureAwait(false);
        long after;
        if (_checkpoint is { } cp) after = cp;
        else if (_options.Start.IsEnd) after = IsAll ? (await _reader.GetHeadPositionAsync(cancellationToken).ConfigureAwait(false)).Value : await StreamHeadAsync(cancellationToken).ConfigureAwait(false);
        else after = _options.Start.Position;
        _lastHandled = IsAll ? Math.Max(after, 0) : after;
        _buffer = Channel.CreateBounded<Item>(new BoundedChannelOptions(_options.BufferSize) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
        _state = SubscriptionState.CatchingUp;
        _rateWindowStart = _time.GetTimestamp();
        var reading = Task.Run(() => ReadLoopAsync(after + 1, _stop.Token), CancellationToken.None);
        var handling = Task.Run(() => HandleLoopAsync(_stop.Token), CancellationToken.None);
        _completion = Task.WhenAll(reading, handling);
        _metrics = (_options.Metrics ?? FactumMetrics.Default).TrackComponent("subscription", Id);
        _metricsTimer = new Timer(_ => _ = RefreshMetricsAsync(), null, TimeSpan.Zero, TimeSpan.FromSeconds(5));
    }

    private FactumMetrics.ComponentStatus? _metrics;
    private Timer? _metricsTimer;

    /// <summary>Keeps the lag and state gauges (factum.subscription.*) current.</summary>
    private async Task RefreshMetricsAsync()
    {
        if (_metrics is not { } m) return;
        try
        {
            var s = await GetStatusAsync().ConfigureAwait(false);
            (m.Lag, m.Up, m.State) = (s.Lag, s.State is SubscriptionState.CatchingUp or SubscriptionState.Live, s.State.ToString());
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            m.State = _state.ToString();
            m.Up = _state is SubscriptionState.CatchingUp or SubscriptionState.Live;
        }
    }

    private async Task<long> StreamHeadAsync(CancellationToken ct)
    {
        try
        {
            await foreach (var e in _reader.ReadStreamAsync(_options.Stream!.Value, new ReadStreamOptions { Direction = Direction.Backwards, MaxCount = 1 }, ct).ConfigureAwait(false))
                return e.StreamVersion.Value;
        }
        catch (StreamNotFoundException)
        {
        }
        return -1;
    }

    private async Task ReadLoopAsync(long next, CancellationToken ct)
    {
        var writer = _buffer!.Writer;
        var notifier = _reader as IAppendNotifier;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                // Read the head first: a page read after it sees every event at or below it.
                var head = await _reader.GetHeadPositionAsync(ct).ConfigureAwait(false);
                var count = 0;
                long last = next - 1;
                await foreach (var e in ReadPageAsync(next, head, ct).ConfigureAwait(false))
                {
                    await writer.WriteAsync(new Item(e, PositionOf(e, IsAll)), ct).ConfigureAwait(false);
                    last = PositionOf(e, IsAll);
                    count++;
                }
                next = last + 1;
                if (count == _options.PageSize)
                {
                    _state = SubscriptionState.CatchingUp;
                    continue;
                }
                if (IsAll && head.Value >= next)
                {
                    // Nothing up to the mark matched the filter (or a rolled-back position left a gap): let the checkpoint move past the stretch.
                    await writer.WriteAsync(new Item(null, head.Value), ct).ConfigureAwait(false);
                    next = head.Value + 1;
                }
                if (_state == SubscriptionState.CatchingUp) _state = SubscriptionState.Live;
                if (notifier is not null) await notifier.WaitForAppendAsync(head, _options.LiveWaitTimeout, ct).ConfigureAwait(false);
                else await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(100, _options.LiveWaitTimeout.TotalMilliseconds)), _time, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            _lastError = $"reading failed: {ex.GetType().Name}: {ex.Message}";
            _state = SubscriptionState.Faulted;
            await _stop.CancelAsync().ConfigureAwait(false);
        }
        finally
        {
            writer.TryComplete();
        }
    }

    private async IAsyncEnumerable<RecordedEvent> ReadPageAsync(long from, GlobalPosition head, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        if (IsAll)
        {
            // Only up to the high-water mark read before the page: past it, a lower position may still be committing.
            if (head.Value < from) yield break;
            await foreach (var e in _reader.ReadAllAsync(new ReadAllOptions { From = from, To = head, MaxCount = _options.PageSize, Filter = _options.Filter }, ct).ConfigureAwait(false))
                yield return e;
            yield break;
        }
        var source = _reader.ReadStreamAsync(_options.Stream!.Value, new ReadStreamOptions { From = from, MaxCount = _options.PageSize }, ct);
        var e2 = source.GetAsyncEnumerator(ct);
        await using (e2.ConfigureAwait(false))
        {
            while (true)
            {
                bool more;
                try { more = await e2.MoveNextAsync().ConfigureAwait(false); }
                catch (StreamNotFoundException) { yield break; } // not written yet: wait for it like for any new event
                if (!more) yield break;
                yield return e2.Current;
            }
        }
    }

    private async Task HandleLoopAsync(CancellationToken ct)
    {
        var reader = _buffer!.Reader;
        var sinceCheckpoint = 0;
        var lastCheckpointAt = _time.GetTimestamp();
        try
        {
            while (true)
            {
                if (!reader.TryRead(out var item))
                {
                    if (sinceCheckpoint > 0)
                    {
                        // Idle with unsaved progress: save it when the interval is up, unless an event comes first.
                        var due = _options.CheckpointInterval - _time.GetElapsedTime(lastCheckpointAt);
                        if (due > TimeSpan.Zero)
                        {
                            var ready = reader.WaitToReadAsync(ct).AsTask();
                            if (await Task.WhenAny(ready, Task.Delay(due, _time, ct)).ConfigureAwait(false) == ready && !await ready.ConfigureAwait(false)) break;
                            continue;
                        }
                        await CheckpointAsync(ct).ConfigureAwait(false);
                        sinceCheckpoint = 0;
                        lastCheckpointAt = _time.GetTimestamp();
                        continue;
                    }
                    if (!await reader.WaitToReadAsync(ct).ConfigureAwait(false)) break;
                    continue;
                }
                if (item.Event is { } e)
                {
                    var failure = await HandleWithRetriesAsync(e, ct).ConfigureAwait(false);
                    if (failure is not null)
                    {
                        if (_options.OnFailure == FailureAction.Stop)
                        {
                            _failingEvent = e;
                            _state = SubscriptionState.Faulted;
                            await _stop.CancelAsync().ConfigureAwait(false);
                            break;
                        }
                        await _parked!.ParkAsync(failure, ct).ConfigureAwait(false);
                        Interlocked.Increment(ref _parkedCount);
                    }
                    else
                    {
                        Interlocked.Increment(ref _handled);
                        CountRate();
                    }
                }
                Volatile.Write(ref _lastHandled, Math.Max(Volatile.Read(ref _lastHandled), item.Position));
                sinceCheckpoint++;
                if (sinceCheckpoint >= _options.CheckpointEvery || _time.GetElapsedTime(lastCheckpointAt) >= _options.CheckpointInterval)
                {
                    await CheckpointAsync(ct).ConfigureAwait(false);
                    sinceCheckpoint = 0;
                    lastCheckpointAt = _time.GetTimestamp();
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            _lastError = $"{ex.GetType().Name}: {ex.Message}";
            FactumLog.SubscriptionFailed(_log, ex, Id, Volatile.Read(ref _lastHandled));
            _state = SubscriptionState.Faulted;
            await _stop.CancelAsync().ConfigureAwait(false);
        }
        // Keep what was handled, even on a stop or a fault (the failing event itself is not included).
        try { await CheckpointAsync(CancellationToken.None).ConfigureAwait(false); }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _lastError ??= $"final checkpoint failed: {ex.Message}";
            FactumLog.SubscriptionFailed(_log, ex, Id, Volatile.Read(ref _lastHandled));
        }
        if (_state != SubscriptionState.Faulted) _state = SubscriptionState.Stopped;
    }

    /// <summary>Runs the handler with retries; returns null on success, or the record to park on final failure.</summary>
    private async Task<ParkedEvent?> HandleWithRetriesAsync(RecordedEvent e, CancellationToken ct)
    {
        DateTimeOffset? first = null;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using (EventContext.CausedBy(e))
                {
                    await _handler(e, ct).ConfigureAwait(false);
                }
                return null;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex)
            {
                var now = _time.GetUtcNow();
                first ??= now;
                _lastError = $"{ex.GetType().Name} handling {e.Type} at {(IsAll ? "position " + e.Position : "version " + e.StreamVersion)} (attempt {attempt} of {_options.Retry.MaxAttempts}): {ex.Message}";
                if (attempt >= _options.Retry.MaxAttempts)
                {
                    if (_options.OnFailure == FailureAction.Stop)
                        FactumLog.SubscriptionFaulted(_log, ex, Id, e.Type, e.EventId.ToString(), e.Position.Value, e.StreamId.Value, attempt);
                    else
                        FactumLog.SubscriptionEventParked(_log, Id, e.Type, e.EventId.ToString(), e.Position.Value, e.StreamId.Value, attempt, $"{ex.GetType().Name}: {ex.Message}");
                    return new ParkedEvent(Id, e.Position, e.EventId, e.StreamId, e.StreamVersion, e.Type, ex.GetType().FullName ?? ex.GetType().Name, ex.Message, ex.StackTrace, attempt, first.Value, now);
                }
                FactumLog.SubscriptionRetry(_log, ex, Id, e.Type, e.Position.Value, attempt, _options.Retry.MaxAttempts);
                await Task.Delay(_options.Retry.DelayBefore(attempt, _random), _time, ct).ConfigureAwait(false);
            }
        }
    }

    private async Task CheckpointAsync(CancellationToken ct)
    {
        var position = Volatile.Read(ref _lastHandled);
        if (_checkpoint == position) return;
        if (!IsAll && position < 0) return;
        await _checkpoints.StoreAsync(Id, position, ct).ConfigureAwait(false);
        _checkpoint = position;
    }

    private void CountRate()
    {
        _rateWindowCount++;
        var elapsed = _time.GetElapsedTime(_rateWindowStart);
        if (elapsed < TimeSpan.FromSeconds(1)) return;
        Volatile.Write(ref _rate, _rateWindowCount / elapsed.TotalSeconds);
        _rateWindowCount = 0;
        _rateWindowStart = _time.GetTimestamp();
    }

    /// <summary>State, checkpoint, head, lag, last error and rate, in one record.</summary>
    public async Task<SubscriptionStatus> GetStatusAsync(CancellationToken cancellationToken = default)
    {
        var head = IsAll ? (await _reader.GetHeadPositionAsync(cancellationToken).ConfigureAwait(false)).Value : await StreamHeadAsync(cancellationToken).ConfigureAwait(false);
        var last = Volatile.Read(ref _lastHandled);
        // A rate measured more than two seconds ago says nothing about now.
        var rate = _time.GetElapsedTime(_rateWindowStart) > TimeSpan.FromSeconds(2) ? 0 : Volatile.Read(ref _rate);
        return new SubscriptionStatus(Id, _state, _checkpoint, _state == SubscriptionState.NotStarted ? null : last, head, Math.Max(0, head - last),
            Interlocked.Read(ref _handled), Interlocked.Read(ref _parkedCount), rate, _lastError, _failingEvent);
    }

    /// <summary>
    /// Hands every parked event of this subscription to the handler again (with the same retries). Each success leaves the
    /// dead-letter set; each failure stays parked with its attempts and last failure time updated. It may run while the
    /// subscription is live: handlers are idempotent.
    /// </summary>
    /// <returns>How many were handled and how many failed again.</returns>
    public async Task<(int Replayed, int Failed)> ReplayParkedAsync(CancellationToken cancellationToken = default)
    {
        if (_parked is null) throw new InvalidOperationException($"Subscription '{Id}' has no dead-letter store.");
        int replayed = 0, failed = 0;
        foreach (var p in await _parked.ListAsync(Id, cancellationToken).ConfigureAwait(false))
        {
            RecordedEvent? e = null;
            await foreach (var candidate in _reader.ReadAllAsync(new ReadAllOptions { From = p.Position, MaxCount = 1 }, cancellationToken).ConfigureAwait(false))
                e = candidate;
            if (e is null || e.EventId != p.EventId) throw new InvalidOperationException($"Parked event {p.EventId} is no longer at position {p.Position}.");
            var failure = await HandleWithRetriesAsync(e, cancellationToken).ConfigureAwait(false);
            if (failure is null)
            {
                await _parked.RemoveAsync(Id, p.Position, cancellationToken).ConfigureAwait(false);
                replayed++;
            }
            else
            {
                await _parked.ParkAsync(failure with { Attempts = p.Attempts + failure.Attempts, FirstFailureAt = p.FirstFailureAt }, cancellationToken).ConfigureAwait(false);
                failed++;
            }
        }
        return (replayed, failed);
    }

    /// <summary>Stops after the event being handled, stores the checkpoint, and waits for both loops to end.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try { await _completion.ConfigureAwait(false); }
        catch (OperationCanceledException) { }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        if (_metricsTimer is not null) await _metricsTimer.DisposeAsync().ConfigureAwait(false);
        if (_metrics is not null) (_options.Metrics ?? FactumMetrics.Default).Untrack(_metrics);
        _stop.Dispose();
    }
}
