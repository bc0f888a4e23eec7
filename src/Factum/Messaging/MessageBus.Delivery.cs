using System.Diagnostics;
using System.Globalization;

namespace Factum.Messaging;

public sealed partial class MessageBus
{
    private ITransport? _deliveryTransport;
    private readonly IMessageStore? _messageStore;

    /// <summary>
    /// The transport of <see cref="EndpointMode.Durable"/> and <see cref="EndpointMode.Buffered"/> endpoints and of the
    /// outbox dispatcher: <see cref="MessagingOptions.DeliveryTransport"/>, else this bus's transport as a plain one.
    /// </summary>
    public ITransport DeliveryTransport => _deliveryTransport ??= Options.DeliveryTransport ?? new DatabaseQueueTransport(Transport, Options.TimeProvider);

    /// <summary>The message store of durable endpoints: <see cref="MessagingOptions.MessageStore"/>, else the container's <see cref="IMessageStore"/>.</summary>
    public IMessageStore? MessageStore => _messageStore;

    /// <summary>
    /// Whether this bus runs an outbox dispatcher: when a message store was set explicitly, or when one of its endpoints
    /// is durable (a bus from the container that only uses the database queue leaves the outbox alone).
    /// </summary>
    private bool RunsDispatcher => Options.MessageStore is not null || (_messageStore is not null && _endpoints.Any(e => e.Options.Mode == EndpointMode.Durable));

    /// <summary>A send to the delivery transport; a delayed one on a transport that cannot delay is scheduled by the message store.</summary>
    private async Task SendThroughAsync(ITransport transport, QueueName queue, TransportMessage m, DateTimeOffset? deliverAt, CancellationToken ct)
    {
        if (deliverAt is { } at && at > Now && !transport.Capabilities.NativeDelay)
        {
            var store = _messageStore ?? throw new NotSupportedException($"The {transport.Name} transport cannot delay a message and the bus has no message store to schedule it: set MessagingOptions.MessageStore.");
            await store.CommitAsync(new MessageTransaction { Outgoing = [new OutgoingMessage(m, null, queue, at)] }, ct).ConfigureAwait(false);
            return;
        }
        await transport.SendAsync(queue, [m], deliverAt is { } later && later > Now ? later : null, ct).ConfigureAwait(false);
    }

    private void CheckModes()
    {
        if (Options.DeliveryTransport is { } delivery && _endpoints.FirstOrDefault(e => e.Options.Mode == EndpointMode.DatabaseQueue) is { } embedded)
            throw new InvalidOperationException($"{embedded.Source} runs in DatabaseQueue mode, which consumes the embedded transport, but this bus publishes and sends to {delivery.Name} (MessagingOptions.DeliveryTransport): set its HandlerOptions.Mode to Durable or Buffered.");
        foreach (var e in _endpoints.Where(e => e.Options.Mode != EndpointMode.DatabaseQueue))
        {
            if (e.Source.Kind == MessageSourceKind.Stream)
                throw new InvalidOperationException($"{e.Source} runs in {e.Options.Mode} mode, but stream groups run in database-queue mode: their offsets and key holds live in the embedded transport.");
            if (e.Options.Mode == EndpointMode.Durable && _messageStore is null)
                throw new InvalidOperationException($"{e.Source} runs in Durable mode, which commits its inbox, handler writes and outgoing messages in a message store: set MessagingOptions.MessageStore.");
        }
    }

    private async Task DeclareDeliveryAsync(Endpoint e, CancellationToken ct)
    {
        if (e.Source.Kind == MessageSourceKind.Subscription)
            await DeliveryTransport.DeclareSubscriptionAsync(new TopicName(e.Source.Name), new GroupName(e.Source.Group!), ct).ConfigureAwait(false);
        else await DeliveryTransport.DeclareQueueAsync(e.Queue, ct).ConfigureAwait(false);
    }

    private Task RunDispatcherAsync(CancellationToken stop)
    {
        var dispatcher = new OutboxDispatcher(_messageStore!, DeliveryTransport, new OutboxDispatcherOptions
        {
            Leases = _leases,
            Lease = Options.OutboxLease,
            PollInterval = Options.PollInterval,
            LoggerFactory = Options.LoggerFactory,
            TimeProvider = Options.TimeProvider,
        });
        return dispatcher.RunAsync(stop);
    }

    /// <summary>Consumes a durable or buffered endpoint from the delivery transport.</summary>
    private async Task DeliveryLoopAsync(Endpoint e, CancellationToken ct)
    {
        var consume = new ConsumeOptions { Consumer = InstanceId, Prefetch = Math.Max(e.Options.Concurrency, Math.Min(e.Options.BatchSize, 64)), AckTimeout = e.Options.Lease };
        using var gate = new SemaphoreSlim(e.Options.Concurrency);
        var inFlight = new HashSet<Task>();
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await foreach (var m in DeliveryTransport.ConsumeAsync(e.Queue, consume, ct).ConfigureAwait(false))
                {
                    if (e.Options.Concurrency == 1)
                    {
                        await HandleInboundAsync(e, m, ct).ConfigureAwait(false);
                        continue;
                    }
                    await gate.WaitAsync(ct).ConfigureAwait(false);
                    var task = Task.Run(async () =>
                    {
                        try { await HandleInboundAsync(e, m, ct).ConfigureAwait(false); }
                        finally { gate.Release(); }
                    }, CancellationToken.None);
                    lock (inFlight) inFlight.Add(task);
                    _ = task.ContinueWith(t => { lock (inFlight) inFlight.Remove(t); }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                await BackOffAfterConsumerErrorAsync(e, ex, ct).ConfigureAwait(false);
            }
        }
        Task[] rest;
        lock (inFlight) rest = inFlight.ToArray();
        try { await Task.WhenAll(rest).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
    }

    /// <summary>Handles one delivery and settles it the endpoint's way; a failure to settle leaves it to the transport's redelivery.</summary>
    private async Task HandleInboundAsync(Endpoint e, InboundMessage m, CancellationToken ct)
    {
        try
        {
            await HandleInboundCoreAsync(e, m, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Unsettled: the transport delivers it again (to this consumer's successor or a competitor).
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            e.LastError = $"{m.Message.Type} {m.Message.Id}: {ex.GetType().Name}: {ex.Message}";
            FactumLog.ConsumerError(_log, ex, e.Source.ToString());
        }
    }

    private async Task HandleInboundCoreAsync(Endpoint e, InboundMessage m, CancellationToken ct)
    {
        var message = m.Message;
        // A retry the message store scheduled is a new copy to the broker: its attempt count travels in a header.
        var carried = message.Headers.TryGetValue(MessageHeaders.Attempt, out var a) && int.TryParse(a, CultureInfo.InvariantCulture, out var n) ? n : 0;
        DateTimeOffset? firstFailure = message.Headers.TryGetValue(MessageHeaders.FirstFailure, out var f)
            && DateTimeOffset.TryParse(f, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var ff) ? ff : null;
        var attempt = carried + m.Attempt;
        var store = e.Options.Mode == EndpointMode.Durable ? _messageStore : null;
        var inbox = store is not null && e.Options.UseInbox;
        if (inbox && (await store!.FilterHandledAsync(e.Inbox, [message.Id], ct).ConfigureAwait(false)).Count > 0)
        {
            await m.AckAsync(CancellationToken.None).ConfigureAwait(false);
            return;
        }

        Outcome outcome;
        using (var keepAlive = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            var renewing = KeepAliveAsync(m, e.Options.Lease, keepAlive.Token);
            try
            {
                outcome = attempt > e.Options.Retry.MaxDeliveries
                    ? Outcome.Dead(new FailureInfo("DeliveryLimitExceeded", $"delivered {attempt - 1} times without being settled (a handler that crashes its process?); the limit is {e.Options.Retry.MaxDeliveries}", null, attempt - 1, firstFailure ?? Now, Now), e, message, this)
                    : await RunHandlersAsync(e, message, attempt, e.Source, firstFailure, ct).ConfigureAwait(false);
            }
            finally
            {
                await keepAlive.CancelAsync().ConfigureAwait(false);
                await renewing.ConfigureAwait(false);
            }
        }
        if (outcome.Kind == SettlementKind.Retry && attempt > e.Options.Retry.DelayedRetries) outcome = Outcome.Dead(outcome.Failure!, e, message, this);

        if (outcome.Kind == SettlementKind.Ack)
        {
            try
            {
                await AckInboundAsync(e, m, outcome, store, inbox).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException && store is not null && !m.IsSettled)
            {
                // The commit failed (a handler's enlisted write, say): this delivery failed like a throwing handler, and
                // is retried or dead-lettered now rather than after its ack deadline.
                Interlocked.Increment(ref e.Failed);
                e.LastError = $"{message.Type} {message.Id}: {ex.GetType().Name}: {ex.Message}";
                FactumLog.HandlerFailed(_log, ex, message.Type, message.Id.ToString(), e.Source.ToString(), attempt, 1, message.CorrelationId);
                var failure = FailureInfo.From(ex, attempt, firstFailure ?? Now, Now);
                outcome = attempt > e.Options.Retry.DelayedRetries || e.Options.Retry.IsNonTransient(ex)
                    ? Outcome.Dead(failure, e, message, this)
                    : new Outcome(SettlementKind.Retry, failure, [], [], null, false, null);
            }
        }
        if (outcome.Kind == SettlementKind.Retry) await RetryInboundAsync(e, m, outcome, attempt, store).ConfigureAwait(false);
        else await DeadLetterInboundAsync(e, m, outcome, attempt, store).ConfigureAwait(false);
    }

    private async Task AckInboundAsync(Endpoint e, InboundMessage m, Outcome outcome, IMessageStore? store, bool inbox)
    {
        var (remote, local) = SplitReplies(outcome.Outgoing);
        if (store is not null)
        {
            var transaction = new MessageTransaction
            {
                Inbox = inbox && !outcome.Skipped ? new InboxRecord(e.Inbox, m.Message.Id) : null,
                Outgoing = remote,
                Work = outcome.Enlisted,
            };
            if (transaction.Inbox is not null || remote.Count > 0 || outcome.Enlisted.Count > 0)
            {
                // The commit decides: of two deliveries of one message racing here, one commits and the other is a duplicate.
                if (await store.CommitAsync(transaction, CancellationToken.None).ConfigureAwait(false) == MessageCommitResult.Duplicate)
                {
                    await m.AckAsync(CancellationToken.None).ConfigureAwait(false);
                    return;
                }
            }
        }
        else
        {
            if (outcome.Enlisted.Count > 0)
                throw new InvalidOperationException($"A handler on {e.Source} enlisted work, but the endpoint runs in Buffered mode, which has no store transaction; use Durable or DatabaseQueue mode.");
            await SendDirectAsync(remote).ConfigureAwait(false);
        }
        foreach (var reply in local) reply.Bus.CompleteReply(reply.Message);
        // Past this point a crash only means a redelivery, which the inbox (durable) drops.
        await m.AckAsync(CancellationToken.None).ConfigureAwait(false);
        if (!outcome.Skipped)
        {
            Interlocked.Increment(ref e.Handled);
            if (Metrics.Handled.Enabled) Metrics.Handled.Add(1, Tags(e, m.Message));
        }
    }

    private async Task RetryInboundAsync(Endpoint e, InboundMessage m, Outcome outcome, int attempt, IMessageStore? store)
    {
        var delay = e.Options.Retry.DelayBefore(attempt, Random.Shared);
        var at = Now + delay;
        if (DeliveryTransport.Capabilities.NativeDelay)
        {
            if (!await m.NackAsync(delay, CancellationToken.None).ConfigureAwait(false)) return;
        }
        else if ((store ?? _messageStore) is { } scheduler)
        {
            // The broker cannot hold it back: the store schedules a copy (same id, attempt count carried), then the ack.
            var headers = new Dictionary<string, string>(m.Message.Headers, StringComparer.Ordinal)
            {
                [MessageHeaders.Attempt] = attempt.ToString(CultureInfo.InvariantCulture),
                [MessageHeaders.FirstFailure] = (outcome.Failure?.FirstFailure ?? Now).ToString("O", CultureInfo.InvariantCulture),
            };
            await scheduler.CommitAsync(new MessageTransaction { Outgoing = [new OutgoingMessage(m.Message with { Headers = headers }, null, e.Queue, at)] }, CancellationToken.None).ConfigureAwait(false);
            await m.AckAsync(CancellationToken.None).ConfigureAwait(false);
        }
        else
        {
            // No delay anywhere: redeliver at once; the delivery limit still ends it.
            at = Now;
            if (!await m.NackAsync(TimeSpan.Zero, CancellationToken.None).ConfigureAwait(false)) return;
        }
        FactumLog.MessageRetryScheduled(_log, m.Message.Type, m.Message.Id.ToString(), e.Source.ToString(), attempt, $"{outcome.Failure!.ExceptionType}: {outcome.Failure.Message}", at, m.Message.CorrelationId);
        if (Metrics.Retried.Enabled) Metrics.Retried.Add(1, Tags(e, m.Message));
    }

    private async Task DeadLetterInboundAsync(Endpoint e, InboundMessage m, Outcome outcome, int attempt, IMessageStore? store)
    {
        var failure = outcome.Failure!;
        var (remote, local) = SplitReplies(outcome.ErrorReply is { } r ? [r] : []);
        store ??= DeliveryTransport.Capabilities.NativeDeadLetter ? null : _messageStore;
        if (store is not null)
        {
            await store.CommitAsync(new MessageTransaction { DeadLetters = [new DeadLetterRecord(m.Message, e.Source, failure)], Outgoing = remote }, CancellationToken.None).ConfigureAwait(false);
            await m.AckAsync(CancellationToken.None).ConfigureAwait(false);
        }
        else
        {
            await SendDirectAsync(remote).ConfigureAwait(false);
            await m.TerminateAsync(failure, CancellationToken.None).ConfigureAwait(false);
            if (!DeliveryTransport.Capabilities.NativeDeadLetter)
            {
                FactumLog.MessageDropped(_log, m.Message.Type, m.Message.Id.ToString(), e.Source.ToString(), failure.ExceptionType, failure.Message, m.Message.CorrelationId);
                return;
            }
        }
        foreach (var reply in local) reply.Bus.CompleteReply(reply.Message);
        Interlocked.Increment(ref e.DeadLettered);
        FactumLog.MessageDeadLettered(_log, m.Message.Type, m.Message.Id.ToString(), e.Source.ToString(), attempt, failure.ExceptionType, failure.Message, m.Message.CorrelationId);
        if (Metrics.DeadLettered.Enabled) Metrics.DeadLettered.Add(1, Tags(e, m.Message));
    }

    private (List<OutgoingMessage> Remote, List<(MessageBus Bus, TransportMessage Message)> Local) SplitReplies(IReadOnlyList<OutgoingMessage> outgoing)
    {
        var remote = new List<OutgoingMessage>(outgoing.Count);
        var local = new List<(MessageBus, TransportMessage)>();
        foreach (var o in outgoing)
        {
            if (Options.InProcessReplies && o.Queue is { } q && LocalReplyQueues.TryGetValue(q.Value, out var bus)) local.Add((bus, o.Message));
            else remote.Add(o);
        }
        return (remote, local);
    }

    /// <summary>Buffered mode: outgoing messages go straight to the transport, each confirmed before the ack.</summary>
    private async Task SendDirectAsync(IReadOnlyList<OutgoingMessage> outgoing)
    {
        foreach (var o in outgoing)
        {
            if (o.Topic is { } topic) await DeliveryTransport.PublishAsync(topic, [o.Message], CancellationToken.None).ConfigureAwait(false);
            else await SendThroughAsync(DeliveryTransport, o.Queue!.Value, o.Message, o.DeliverAt, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>Tells the transport the handler is still working, every third of the ack timeout.</summary>
    private async Task KeepAliveAsync(InboundMessage m, TimeSpan ackTimeout, CancellationToken ct)
    {
        while (true)
        {
            try
            {
                await Task.Delay(ackTimeout / 3, Options.TimeProvider, ct).ConfigureAwait(false);
                if (m.IsSettled) return;
                await m.InProgressAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // A lost deadline only means a redelivery, which the inbox handles; keep trying.
                FactumLog.ConsumerError(_log, ex, m.Queue.Value);
            }
        }
    }

    private static TagList Tags(Endpoint e, TransportMessage m) => new() { { "type", m.Type }, { "source", e.Source.Name }, { "group", e.Source.Group } };
}
