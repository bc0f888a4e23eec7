using Factum.Coordination;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Factum.Messaging;

/// <summary>Settings of an <see cref="OutboxDispatcher"/>.</summary>
public sealed record OutboxDispatcherOptions
{
    /// <summary>Entries handed to the transport per round (default 256).</summary>
    public int BatchSize
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "BatchSize is at least 1.");
    } = 256;

    /// <summary>The longest an idle dispatcher waits before looking again (default 100 ms): bounds how late other processes' commits and scheduled messages go out.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// The lease store that makes one dispatcher, among all processes sharing the message store, the owner of the outbox
    /// (lease <c>outbox:&lt;store&gt;</c>), so entries go out once and in order. Null: this dispatcher assumes it is alone.
    /// </summary>
    public ILeaseStore? Leases { get; init; }

    /// <summary>How the lease is held (duration, renewal, owner id).</summary>
    public LeaseOptions Lease { get; init; } = new();

    /// <summary>Where failures are logged (category <c>Factum.Outbox</c>).</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>The clock of the waits.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>
/// Hands a message store's outbox to a transport: due entries in commit order, each batch confirmed by the transport
/// before it is removed from the outbox. A crash between the two sends the batch again (at-least-once; message ids are
/// kept, so consumers' inboxes and broker-side deduplication drop the copy); order is kept because one dispatcher at a
/// time owns the outbox and a failed entry stops the ones behind it until it goes out.
/// </summary>
public sealed class OutboxDispatcher
{
    private readonly IMessageStore _store;
    private readonly ITransport _transport;
    private readonly OutboxDispatcherOptions _options;
    private readonly ILogger _log;
    private long _dispatched;

    /// <summary>Creates a dispatcher of <paramref name="store"/>'s outbox onto <paramref name="transport"/>.</summary>
    public OutboxDispatcher(IMessageStore store, ITransport transport, OutboxDispatcherOptions? options = null)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _transport = transport ?? throw new ArgumentNullException(nameof(transport));
        _options = options ?? new OutboxDispatcherOptions();
        _log = (ILogger?)_options.LoggerFactory?.CreateLogger("Factum.Outbox") ?? NullLogger.Instance;
    }

    /// <summary>The lease name: <c>outbox:&lt;store name&gt;</c>.</summary>
    public string LeaseName => $"outbox:{_store.Name}";

    /// <summary>Entries this dispatcher has handed to the transport.</summary>
    public long Dispatched => Interlocked.Read(ref _dispatched);

    /// <summary>Dispatches until <paramref name="cancellationToken"/> is cancelled; under the lease when a lease store is set.</summary>
    public Task RunAsync(CancellationToken cancellationToken)
    {
        if (_options.Leases is not { } leases) return LoopAsync(null, cancellationToken);
        return SingleOwner.RunAsync(leases, LeaseName, _options.Lease with { TimeProvider = _options.TimeProvider }, LoopAsync, null, _log, cancellationToken);
    }

    private async Task LoopAsync(Lease? lease, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            int sent;
            try
            {
                sent = await DispatchCoreAsync(lease, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (LeaseLostException)
            {
                throw; // SingleOwner stands by again.
            }
            catch (OutboxDispatchException ex)
            {
                FactumLog.OutboxDispatchFailed(_log, ex.InnerException!, _store.Name, ex.EntryId, _transport.Name);
                await DelayQuietly(_options.PollInterval * 5, ct).ConfigureAwait(false);
                continue;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                FactumLog.OutboxDispatchFailed(_log, ex, _store.Name, 0, _transport.Name);
                await DelayQuietly(_options.PollInterval * 5, ct).ConfigureAwait(false);
                continue;
            }
            if (sent > 0) continue;
            try
            {
                await _store.WaitForOutboxAsync(_options.PollInterval, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>
    /// One round: hands every due entry (up to the batch size) to the transport in order, removing each run of entries
    /// once the transport confirmed it. Returns how many went out.
    /// </summary>
    /// <param name="fence">The outbox lease this dispatcher holds (removal is refused once it is lost), or null.</param>
    /// <param name="cancellationToken">Stops the round.</param>
    /// <exception cref="LeaseLostException">The lease was lost; what was sent stays in the outbox for the new owner.</exception>
    public async Task<int> DispatchDueAsync(Lease? fence, CancellationToken cancellationToken = default)
    {
        try
        {
            return await DispatchCoreAsync(fence, cancellationToken).ConfigureAwait(false);
        }
        catch (OutboxDispatchException ex)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(ex.InnerException!);
            throw;
        }
    }

    private async Task<int> DispatchCoreAsync(Lease? fence, CancellationToken cancellationToken)
    {
        var due = await _store.ReadDueOutboxAsync(_options.BatchSize, cancellationToken).ConfigureAwait(false);
        var sent = 0;
        // Consecutive entries for one destination go as one confirmed batch; a new destination starts a new one, so
        // order across destinations is the commit order too.
        for (var start = 0; start < due.Count;)
        {
            var first = due[start].Message;
            var end = start + 1;
            while (end < due.Count && SameDestination(due[end].Message, first)) end++;
            var run = due.Skip(start).Take(end - start).ToList();
            try
            {
                var messages = run.Select(e => e.Message.Message).ToList();
                if (first.Topic is { } topic) await _transport.PublishAsync(topic, messages, cancellationToken).ConfigureAwait(false);
                else
                {
                    var queue = first.Queue!.Value;
                    // The store only hands out due entries, so none needs the transport's delay.
                    await _transport.SendAsync(queue, messages, null, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
            {
                throw new OutboxDispatchException(run[0].Id, ex);
            }
            await _store.CompleteOutboxAsync(run.Select(e => e.Id).ToList(), fence, cancellationToken).ConfigureAwait(false);
            sent += run.Count;
            Interlocked.Add(ref _dispatched, run.Count);
            start = end;
        }
        return sent;
    }

    private static bool SameDestination(OutgoingMessage a, OutgoingMessage b) => a.Topic == b.Topic && a.Queue == b.Queue;

    private async Task DelayQuietly(TimeSpan delay, CancellationToken ct)
    {
        try { await Task.Delay(delay, _options.TimeProvider, ct).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
    }

    private sealed class OutboxDispatchException(long entryId, Exception inner) : Exception($"Outbox entry {entryId} could not be dispatched: {inner.Message}", inner)
    {
        public long EntryId { get; } = entryId;
    }
}
