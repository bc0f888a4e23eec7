using System.Globalization;
using Factum.Coordination;
using Factum.Subscriptions;

namespace Factum.Messaging;

/// <summary>Settings of an <see cref="OutboxRelay"/>.</summary>
public sealed record OutboxRelayOptions
{
    /// <summary>The relay's name; its checkpoint is stored under it (default <c>outbox</c>).</summary>
    public string Name { get; init; } = "outbox";

    /// <summary>Which stored events to publish (default: all).</summary>
    public EventFilter Filter { get; init; } = EventFilter.None;

    /// <summary>The topic of an event, or null to skip it (default: the topic named after its type, the bus's convention).</summary>
    public Func<RecordedEvent, TopicName?> Topic { get; init; } = e => new TopicName(e.Type);

    /// <summary>Events read and published per round (default 512).</summary>
    public int BatchSize
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "BatchSize is at least 1.");
    } = 512;

    /// <summary>How long to wait for new appends before looking again (default 1 s; appends through the same store wake it at once).</summary>
    public TimeSpan LiveWaitTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Log a warning (at most once a minute) while the relay is more than this many events behind the store's head
    /// (default 10,000): integration events are reaching other services late.
    /// </summary>
    public long LagWarningThreshold
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "LagWarningThreshold is at least 1.");
    } = 10_000;

    /// <summary>
    /// Where the relay's lease lives when several processes share the store; default none (this relay assumes it is
    /// the only one of its name). With a lease store, one relay of each name runs across all the processes and the
    /// others stand by, taking over within <see cref="LeaseOptions.Duration"/> when the owner dies; the owner's
    /// checkpoints are fenced, so a relay that lost its lease cannot move the checkpoint back. The checkpoint store
    /// must then implement <see cref="IFencedCheckpointStore"/> over the same database.
    /// </summary>
    public ILeaseStore? Leases { get; init; }

    /// <summary>How the relay holds its lease (used with <see cref="Leases"/>).</summary>
    public LeaseOptions Lease { get; init; } = new();

    /// <summary>Where the published count is reported; default <see cref="FactumMetrics.Default"/>.</summary>
    public FactumMetrics? Metrics { get; init; }

    /// <summary>Where failures and lag are logged (category <c>Factum.Outbox</c>); default none.</summary>
    public Microsoft.Extensions.Logging.ILoggerFactory LoggerFactory { get; init; } = Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
}

/// <summary>
/// The event store is the outbox: the relay reads the global log from its checkpoint and publishes every appended
/// event to the bus, then stores the checkpoint. Delivery is at least once and nothing is lost across crashes: an event
/// is published before the checkpoint passes it, so after a crash the relay publishes again from the last checkpoint.
/// The message id is the event id, so consumers' inboxes drop the duplicates; the partition key is the stream id, so
/// order holds per aggregate; correlation and causation ids are carried over unchanged. It reads only up to the
/// store's high-water mark, so an append still committing is never passed. With
/// <see cref="OutboxRelayOptions.Leases"/>, one relay of each name runs across the processes sharing the store.
/// </summary>
public sealed class OutboxRelay : IAsyncDisposable
{
    private readonly IEventReader _store;
    private readonly IMessageTransport _transport;
    private readonly ICheckpointStore _checkpoints;
    private readonly OutboxRelayOptions _options;
    private CancellationTokenSource? _stop;
    private Task _completion = Task.CompletedTask;
    private long _position;
    private long _published;
    private volatile string? _lastError;
    private readonly Microsoft.Extensions.Logging.ILogger _log;
    private long _lagWarnedAt;

    /// <summary>Creates a relay; call <see cref="StartAsync"/> to run it, or <see cref="CatchUpAsync"/> to publish what is there.</summary>
    public OutboxRelay(IEventReader store, IMessageTransport transport, ICheckpointStore checkpoints, OutboxRelayOptions? options = null)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _transport = transport ?? throw new ArgumentNullException(nameof(transport));
        _checkpoints = checkpoints ?? throw new ArgumentNullException(nameof(checkpoints));
        _options = options ?? new OutboxRelayOptions();
        if (_options.Leases is not null && checkpoints is not IFencedCheckpointStore)
            throw new ArgumentException("A relay with a lease store needs a checkpoint store that fences its writes (IFencedCheckpointStore) in the same database.", nameof(checkpoints));
        _log = _options.LoggerFactory.CreateLogger(FactumLog.OutboxCategory);
        _leaseLog = _options.LoggerFactory.CreateLogger(FactumLog.CoordinationCategory);
    }

    private readonly Microsoft.Extensions.Logging.ILogger _leaseLog;

    /// <summary>The lease the checkpoints are written under, while this relay owns it.</summary>
    private volatile Lease? _fence;

    private volatile bool _isOwner;

    /// <summary>The lease's name: <c>relay:</c> and the relay's name.</summary>
    public string LeaseName => "relay:" + _options.Name;

    /// <summary>
    /// True while this relay is the one publishing: always once started without a lease store; with one, while it
    /// holds the lease (the others stand by).
    /// </summary>
    public bool IsOwner => _isOwner;

    /// <summary>
    /// Raised when this relay becomes the owner (true, after it has loaded the checkpoint, so <see cref="Position"/>
    /// is where it resumes) or stops being it (false).
    /// </summary>
    public event Action<bool>? OwnershipChanged;

    private void SetOwner(bool owner)
    {
        _isOwner = owner;
        OwnershipChanged?.Invoke(owner);
    }

    /// <summary>The last store position published and checkpointed.</summary>
    public long Position => Interlocked.Read(ref _position);

    /// <summary>Events published by this instance.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>The last error, if the relay is retrying.</summary>
    public string? LastError => _lastError;

    /// <summary>Completes when the relay stops.</summary>
    public Task Completion => _completion;

    /// <summary>Converts a stored event to the message the relay publishes.</summary>
    public static TransportMessage ToMessage(RecordedEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        var headers = new Dictionary<string, string>(e.Metadata, StringComparer.Ordinal)
        {
            [MessageHeaders.StreamId] = e.StreamId.Value,
            [MessageHeaders.StorePosition] = e.Position.Value.ToString(CultureInfo.InvariantCulture),
        };
        return new TransportMessage
        {
            Id = MessageId.From(e.EventId),
            Type = e.Type,
            SchemaVersion = e.SchemaVersion,
            Timestamp = e.Timestamp,
            CorrelationId = e.CorrelationId,
            CausationId = e.CausationId,
            PartitionKey = e.StreamId.Value,
            Headers = headers,
            Body = e.Payload,
        };
    }

    /// <summary>
    /// Loads the checkpoint and relays in the background until stopped. With a lease store, it first stands by until
    /// it holds the lease (see <see cref="IsOwner"/>), and stands by again if it loses it.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        _stop = new CancellationTokenSource();
        var ct = _stop.Token;
        if (_options.Leases is not { } leases)
        {
            _position = await _checkpoints.LoadAsync(_options.Name, cancellationToken).ConfigureAwait(false) ?? 0;
            SetOwner(true);
            _completion = Task.Run(async () =>
            {
                try { await RelayLoopAsync(ct).ConfigureAwait(false); }
                finally { SetOwner(false); }
            }, CancellationToken.None);
            return;
        }
        _completion = Task.Run(() => SingleOwner.RunAsync(leases, LeaseName, _options.Lease, async (lease, owned) =>
        {
            _fence = lease;
            // Another process may have relayed while this one stood by: resume from the checkpoint as it is now.
            _position = await _checkpoints.LoadAsync(_options.Name, owned).ConfigureAwait(false) ?? 0;
            SetOwner(true);
            await RelayLoopAsync(owned).ConfigureAwait(false);
        }, lease =>
        {
            if (lease is not null) return;
            _fence = null;
            if (_isOwner) SetOwner(false);
        }, _leaseLog, ct), CancellationToken.None);
    }

    private async Task RelayLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (await RelayBatchAsync(ct).ConfigureAwait(false) > 0) continue;
                if (_store is IAppendNotifier notifier) await notifier.WaitForAppendAsync(new GlobalPosition(Position), _options.LiveWaitTimeout, ct).ConfigureAwait(false);
                else await Task.Delay(_options.LiveWaitTimeout, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException and not LeaseLostException)
            {
                // Publish or checkpoint failed: nothing past the checkpoint is lost; try again shortly.
                _lastError = $"{ex.GetType().Name}: {ex.Message}";
                FactumLog.RelayFailed(_log, ex, _options.Name, Position);
                try { await Task.Delay(TimeSpan.FromMilliseconds(500), ct).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    /// <summary>
    /// Publishes everything appended after the checkpoint, then returns how many events it published. With a lease
    /// store it holds the lease while it runs.
    /// </summary>
    /// <exception cref="LeaseHeldException">With a lease store: another process's relay of this name holds the lease.</exception>
    public async Task<long> CatchUpAsync(CancellationToken cancellationToken = default)
    {
        Lease? lease = null;
        if (_options.Leases is { } leases)
        {
            lease = await leases.TryAcquireAsync(LeaseName, _options.Lease.NewInstanceOwner(), _options.Lease.Duration, cancellationToken).ConfigureAwait(false);
            if (lease is null)
            {
                var holder = (await leases.ListAsync(cancellationToken).ConfigureAwait(false)).FirstOrDefault(l => l.Name == LeaseName)?.Owner;
                throw new LeaseHeldException(LeaseName, holder);
            }
            _fence = lease;
        }
        try
        {
            _position = await _checkpoints.LoadAsync(_options.Name, cancellationToken).ConfigureAwait(false) ?? 0;
            long total = 0;
            while (true)
            {
                var n = await RelayBatchAsync(cancellationToken).ConfigureAwait(false);
                if (n == 0) return total;
                total += n;
                // A long catch-up keeps its lease (a standby would otherwise take over halfway).
                if (lease is not null) lease = await _options.Leases!.RenewAsync(lease, _options.Lease.Duration, cancellationToken).ConfigureAwait(false) ?? throw new LeaseLostException(lease);
            }
        }
        finally
        {
            _fence = null;
            if (lease is not null) await _options.Leases!.ReleaseAsync(lease, CancellationToken.None).ConfigureAwait(false);
        }
    }

    private Task StoreCheckpointAsync(long position, CancellationToken ct) => _fence is { } fence
        ? ((IFencedCheckpointStore)_checkpoints).StoreAsync(_options.Name, position, fence, ct)
        : _checkpoints.StoreAsync(_options.Name, position, ct);

    private async Task<int> RelayBatchAsync(CancellationToken ct)
    {
        // Only up to the high-water mark: a position above it may still be committing, and the checkpoint must not pass it.
        var head = (await _store.GetHeadPositionAsync(ct).ConfigureAwait(false)).Value;
        if (head <= Position) return 0;
        var batch = new List<RecordedEvent>(_options.BatchSize);
        await foreach (var e in _store.ReadAllAsync(new ReadAllOptions { From = new GlobalPosition(Position + 1), To = head, MaxCount = _options.BatchSize, Filter = _options.Filter }, ct).ConfigureAwait(false))
            batch.Add(e);
        if (batch.Count == 0)
        {
            // Nothing up to the mark passed the filter (or a rolled-back gap): the checkpoint may move there.
            await StoreCheckpointAsync(head, ct).ConfigureAwait(false);
            Interlocked.Exchange(ref _position, head);
            return 0;
        }
        // One publish per topic, in log order within it (so per stream); concurrent calls share the store's group commit.
        var byTopic = batch.Select(e => (Topic: _options.Topic(e), Event: e)).Where(x => x.Topic is not null)
            .GroupBy(x => x.Topic!.Value).ToList();
        await Task.WhenAll(byTopic.Select(g => _transport.PublishAsync(g.Key, g.Select(x => ToMessage(x.Event)).ToList(), ct).AsTask())).ConfigureAwait(false);
        var last = batch[^1].Position.Value;
        await StoreCheckpointAsync(last, ct).ConfigureAwait(false);
        Interlocked.Exchange(ref _position, last);
        Interlocked.Add(ref _published, byTopic.Sum(g => g.Count()));
        (_options.Metrics ?? FactumMetrics.Default).Published.Add(byTopic.Sum(g => g.Count()), new KeyValuePair<string, object?>("destination", "outbox"));
        _lastError = null;
        // A full batch means there is more: check how far behind the head the relay is.
        if (batch.Count == _options.BatchSize && _log.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Warning)
            && (Interlocked.Read(ref _lagWarnedAt) is var warned && (warned == 0 || System.Diagnostics.Stopwatch.GetElapsedTime(warned) > TimeSpan.FromMinutes(1))))
        {
            if (head - last > _options.LagWarningThreshold)
            {
                Interlocked.Exchange(ref _lagWarnedAt, System.Diagnostics.Stopwatch.GetTimestamp());
                FactumLog.RelayBehind(_log, _options.Name, head - last, last, head);
            }
        }
        return batch.Count;
    }

    /// <summary>Stops relaying (what was published stays published; the checkpoint is current).</summary>
    public async Task StopAsync()
    {
        if (_stop is null) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        await _completion.ConfigureAwait(false);
        _stop.Dispose();
        _stop = null;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);
}
