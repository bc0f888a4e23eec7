using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;

namespace Factum.Messaging;

public sealed partial class MessageBus
{
    /// <summary>
    /// Declares stream topics and subscriptions, then starts a consumer per endpoint (a queue, a subscription, or a stream
    /// group) and the housekeeping loop. Returns once the consumers are registered with the transport.
    /// </summary>
    /// <exception cref="InvalidOperationException">A handler's message type is not registered, or the registration does not fit its kind.</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _started, 1) == 1) return;
        lock (_startGate) _stopping ??= new CancellationTokenSource();
        var stop = _stopping!.Token;
        foreach (var (type, topic) in _builder.Streams)
            await Transport.DeclareTopicAsync(RouteTopic(type), topic, cancellationToken).ConfigureAwait(false);
        _endpoints.AddRange(BuildEndpoints());
        CheckModes();
        foreach (var e in _endpoints)
        {
            if (e.Options.Mode != EndpointMode.DatabaseQueue)
            {
                await DeclareDeliveryAsync(e, cancellationToken).ConfigureAwait(false);
                if (e.Source.Kind == MessageSourceKind.Queue) await Transport.HeartbeatConsumerAsync(e.Queue, InstanceId, LivenessWindow, cancellationToken).ConfigureAwait(false);
                continue;
            }
            switch (e.Source.Kind)
            {
                case MessageSourceKind.Subscription:
                    await Transport.SubscribeAsync(new TopicName(e.Source.Name), new GroupName(e.Source.Group!), cancellationToken).ConfigureAwait(false);
                    break;
                case MessageSourceKind.Queue:
                    await Transport.HeartbeatConsumerAsync(e.Queue, InstanceId, LivenessWindow, cancellationToken).ConfigureAwait(false);
                    break;
            }
        }
        // Consumer loops must not inherit the caller's ambient state (its Activity, EventContext or MessageContext).
        using (ExecutionContext.SuppressFlow())
        {
            foreach (var e in _endpoints)
            {
                e.Running = true;
                if (e.Options.Mode != EndpointMode.DatabaseQueue)
                {
                    _running.Add(Task.Run(() => DeliveryLoopAsync(e, stop), CancellationToken.None));
                    continue;
                }
                _running.Add(Task.Run(() => QueueLoopAsync(e, stop), CancellationToken.None));
                if (e.Source.Kind == MessageSourceKind.Stream) _running.Add(Task.Run(() => StreamMemberLoopAsync(e, stop), CancellationToken.None));
            }
            _running.Add(Task.Run(() => MaintenanceLoopAsync(stop), CancellationToken.None));
            if (RunsDispatcher) _running.Add(Task.Run(() => RunDispatcherAsync(stop), CancellationToken.None));
        }
        FactumLog.BusStarted(_log, InstanceId, _endpoints.Count, Transport.GetType().Name);
    }

    /// <summary>Stops the consumers: in-flight messages finish or their leases are released, stream groups are left so partitions move at once.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        CancellationTokenSource? stopping;
        lock (_startGate) stopping = _stopping;
        if (stopping is null) return;
        await stopping.CancelAsync().ConfigureAwait(false);
        var all = _running.ToList();
        if (_replyListener is not null) all.Add(_replyListener);
        try
        {
            await Task.WhenAll(all).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // Loops end by cancellation.
        }
        if (_gaugeLease is { } gauges && _leases is not null)
        {
            // Another process's bus reports the gauges from its next housekeeping round on; this one no longer does.
            _gaugeLease = null;
            try { await _leases.ReleaseAsync(gauges, cancellationToken).ConfigureAwait(false); }
            catch (Exception ex) when (ex is not OutOfMemoryException and not OperationCanceledException) { FactumLog.MaintenanceFailed(_log, ex); }
        }
        foreach (var e in _endpoints)
        {
            e.Running = false;
            try
            {
                if (e.Source.Kind == MessageSourceKind.Stream)
                    await Transport.LeaveGroupAsync(new TopicName(e.Source.Name), new GroupName(e.Source.Group!), InstanceId, cancellationToken).ConfigureAwait(false);
                if (e.Source.Kind == MessageSourceKind.Queue) await Transport.RemoveConsumerAsync(e.Queue, InstanceId, cancellationToken).ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                // The transport went first; its state ends with it.
            }
        }
        try
        {
            if (_replyListener is not null) await Transport.RemoveConsumerAsync(_replyQueue, InstanceId, cancellationToken).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // Same.
        }
        _running.Clear();
        lock (_startGate)
        {
            _stopping = null;
            _replyListener = null;
        }
        stopping.Dispose();
        Interlocked.Exchange(ref _started, 0);
        _endpoints.Clear();
        FactumLog.BusStopped(_log, InstanceId);
    }

    private List<Endpoint> BuildEndpoints()
    {
        var byKey = new Dictionary<(MessageSourceKind, string, string?), Endpoint>();
        foreach (var h in _builder.Handlers)
        {
            var info = Info(h.MessageType);
            MessageSource source;
            if (h.ResponseType is not null)
            {
                if (info.Kind == MessageKind.Event)
                    throw new InvalidOperationException($"{h.Description} answers '{info.Name}', which is an event. Requests are commands or queries; an event is a fact for every subscriber, not a question for one responder (the \"event-driven RPC\" anti-pattern).");
                source = new MessageSource(MessageSourceKind.Queue, (h.Options.Queue is { } q ? new QueueName(q) : RouteQueue(h.MessageType)).Value);
            }
            else if (info.Kind == MessageKind.Event)
            {
                var topic = RouteTopic(h.MessageType);
                var group = new GroupName(h.Options.Group ?? Options.ServiceName);
                source = new MessageSource(h.Options.FromStream ? MessageSourceKind.Stream : MessageSourceKind.Subscription, topic.Value, group.Value);
            }
            else if (info.Kind == MessageKind.Command)
            {
                source = new MessageSource(MessageSourceKind.Queue, (h.Options.Queue is { } q ? new QueueName(q) : RouteQueue(h.MessageType)).Value);
            }
            else throw new InvalidOperationException($"{h.Description} handles the query '{info.Name}' without answering it; register an IRequestHandler<{h.MessageType.Name}, TResponse>.");
            var key = (source.Kind, source.Name, source.Group);
            if (!byKey.TryGetValue(key, out var endpoint)) byKey[key] = endpoint = new Endpoint(source, h.Options);
            if (h.ResponseType is not null && endpoint.Handlers.ContainsKey(info.Name))
                throw new InvalidOperationException($"'{info.Name}' has two request handlers on queue '{source.Name}'; a request has exactly one answer.");
            endpoint.Add(info.Name, h);
        }
        // A stream group's queue (topic@group) and inbox would be shared with a subscription of the same name.
        foreach (var stream in byKey.Values.Where(e => e.Source.Kind == MessageSourceKind.Stream))
        {
            if (byKey.ContainsKey((MessageSourceKind.Subscription, stream.Source.Name, stream.Source.Group)))
                throw new InvalidOperationException($"Group '{stream.Source.Group}' consumes '{stream.Source.Name}' both from the stream and by subscription; give one of the two handlers another Group.");
        }
        return byKey.Values.ToList();
    }

    /// <summary>
    /// One process reports the backend-wide gauges: the holder of the gauges' lease (taken or extended each housekeeping
    /// round). Without a lease store every bus reports.
    /// </summary>
    private async Task TakeGaugesAsync(CancellationToken ct)
    {
        if (_leases is null) return;
        try
        {
            _gaugeLease = await _leases.TryAcquireAsync($"gauges:{Transport.Name}", InstanceId, Options.MaintenanceInterval * 3, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException and not OperationCanceledException)
        {
            _gaugeLease = null;
            FactumLog.MaintenanceFailed(_log, ex);
        }
    }

    private async Task MaintenanceLoopAsync(CancellationToken ct)
    {
        var nextHousekeeping = DateTimeOffset.MinValue;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                foreach (var e in _endpoints.Where(e => e.Source.Kind == MessageSourceKind.Queue))
                    await Transport.HeartbeatConsumerAsync(e.Queue, InstanceId, LivenessWindow, ct).ConfigureAwait(false);
                if (Now >= nextHousekeeping)
                {
                    nextHousekeeping = Now + Options.MaintenanceInterval;
                    await Transport.ApplyRetentionAsync(ct).ConfigureAwait(false);
                    await Transport.PurgeInboxAsync(Now - Options.InboxWindow, ct).ConfigureAwait(false);
                    if (RunsDispatcher) await _messageStore!.PurgeInboxAsync(Now - Options.InboxWindow, ct).ConfigureAwait(false);
                    LastStatus = await Transport.GetStatusAsync(ct).ConfigureAwait(false);
                    await TakeGaugesAsync(ct).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Housekeeping retries on the next tick; consumers report their own errors.
                FactumLog.MaintenanceFailed(_log, ex);
            }
            await DelayQuietly(Options.HeartbeatInterval, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Consumes a queue: a command queue, a subscription's group queue, or a stream group's replay queue.</summary>
    private async Task QueueLoopAsync(Endpoint e, CancellationToken ct)
    {
        using var gate = new SemaphoreSlim(e.Options.Concurrency);
        var empty = 0;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var batch = await Transport.ReceiveAsync(e.Queue, InstanceId, e.Options.BatchSize, e.Options.Lease, ct).ConfigureAwait(false);
                if (batch.Count == 0)
                {
                    // A consumer that just ran dry looks again after yielding a couple of times before it parks: under load
                    // more messages arrive meanwhile and are taken as one batch, instead of one wake-up per message.
                    if (++empty <= 2) await Task.Yield();
                    else await Transport.WaitForQueueAsync(e.Queue, Options.PollInterval, ct).ConfigureAwait(false);
                    continue;
                }
                empty = 0;
                var handled = e.Options.UseInbox ? await Transport.FilterHandledAsync(e.Inbox, batch.Select(d => d.Message.Id).ToList(), ct).ConfigureAwait(false) : null;
                var outcomes = new Outcome[batch.Count];
                var processing = HandleBatchAsync(e, batch, handled, outcomes, gate, ct);
                // Slow handlers keep their leases: renew every third of the lease while the batch still runs.
                while (!processing.IsCompleted)
                {
                    var tick = Task.Delay(e.Options.Lease / 3, Options.TimeProvider, CancellationToken.None);
                    if (await Task.WhenAny(processing, tick).ConfigureAwait(false) == processing) break;
                    var open = batch.Where((_, i) => Volatile.Read(ref outcomes[i]) is null).ToList();
                    try
                    {
                        if (open.Count > 0) await Transport.ExtendLeasesAsync(open, e.Options.Lease, CancellationToken.None).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OutOfMemoryException)
                    {
                        // Never abandon a running batch: the next tick tries again, and a lost lease only means a redelivery.
                        e.LastError = $"lease renewal: {ex.GetType().Name}: {ex.Message}";
                    }
                }
                try
                {
                    await processing.ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    // Stopping: keep what finished, give the rest back at once instead of letting leases lapse.
                    await SettleAsync(e, batch.Select((d, i) => outcomes[i] is { } o
                        ? o.ToSettlement(e, d, null)
                        : new Settlement { Kind = SettlementKind.Release, Delivery = d, Source = e.SourceFor(null) }).ToList(),
                        outcomes.Select(o => o ?? Outcome.Released).ToArray(), CancellationToken.None).ConfigureAwait(false);
                    return;
                }
                await SettleAsync(e, batch.Select((d, i) => outcomes[i].ToSettlement(e, d, null)).ToList(), outcomes, CancellationToken.None).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                await BackOffAfterConsumerErrorAsync(e, ex, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>A consumer loop's own failure (the transport, a settlement): recorded, logged, and tried again a little later.</summary>
    private async Task BackOffAfterConsumerErrorAsync(Endpoint e, Exception ex, CancellationToken ct)
    {
        e.LastError = $"{ex.GetType().Name}: {ex.Message}";
        FactumLog.ConsumerError(_log, ex, e.Source.ToString());
        await DelayQuietly(Options.PollInterval * 5, ct).ConfigureAwait(false);
    }

    private async Task HandleBatchAsync(Endpoint e, IReadOnlyList<QueueDelivery> batch, IReadOnlySet<MessageId>? handled, Outcome[] outcomes, SemaphoreSlim gate, CancellationToken ct)
    {
        // The transport leases at most one message per partition key at a time, so a batch never holds two messages
        // of one key: they can all run in parallel without breaking per-key order.
        if (e.Options.Concurrency == 1)
        {
            for (var i = 0; i < batch.Count; i++) outcomes[i] = await HandleOnceAsync(batch[i]).ConfigureAwait(false);
            return;
        }
        await Task.WhenAll(batch.Select(async (d, i) =>
        {
            await gate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                outcomes[i] = await HandleOnceAsync(d).ConfigureAwait(false);
            }
            finally
            {
                gate.Release();
            }
        })).ConfigureAwait(false);

        // A message this consumer already handled is settled as a duplicate without running the handler again.
        ValueTask<Outcome> HandleOnceAsync(QueueDelivery d) => handled is not null && handled.Contains(d.Message.Id)
            ? ValueTask.FromResult(Outcome.Duplicate)
            : HandleQueueDeliveryAsync(e, d, ct);
    }

    private async Task SettleAsync(Endpoint e, List<Settlement> settlements, Outcome[] outcomes, CancellationToken ct)
    {
        // Replies to requesters in this process skip the transport: they are handed over once the ack has committed.
        var local = new List<(int Index, MessageBus Bus, TransportMessage Reply)>();
        for (var i = 0; i < settlements.Count; i++)
        {
            var s = settlements[i];
            if (s.Outgoing.Count == 0) continue;
            var remote = new List<OutgoingMessage>(s.Outgoing.Count);
            foreach (var o in s.Outgoing)
            {
                if (Options.InProcessReplies && o.Queue is { } q && LocalReplyQueues.TryGetValue(q.Value, out var bus)) local.Add((i, bus, o.Message));
                else remote.Add(o);
            }
            if (remote.Count != s.Outgoing.Count) settlements[i] = s with { Outgoing = remote };
        }
        var results = await Transport.SettleAsync(settlements, ct).ConfigureAwait(false);
        var measure = Metrics.Handled.Enabled || Metrics.Retried.Enabled || Metrics.DeadLettered.Enabled;
        for (var i = 0; i < settlements.Count; i++)
        {
            var o = outcomes[i];
            if (!results[i]) continue;
            var kind = settlements[i].Kind;
            // Logged once the settlement has committed, so each retry and each dead letter is one log entry.
            if (kind is SettlementKind.Retry or SettlementKind.DeadLetter) LogSettlement(e, settlements[i]);
            if (kind == SettlementKind.Ack && !o.Skipped) Interlocked.Increment(ref e.Handled);
            else if (kind == SettlementKind.DeadLetter) Interlocked.Increment(ref e.DeadLettered);
            if (!measure) continue;
            var tags = new TagList { { "type", settlements[i].Delivery?.Message.Type ?? settlements[i].Record?.Message.Type }, { "source", e.Source.Name }, { "group", e.Source.Group } };
            switch (kind)
            {
                case SettlementKind.Ack when !o.Skipped:
                    Metrics.Handled.Add(1, tags);
                    break;
                case SettlementKind.Retry:
                    Metrics.Retried.Add(1, tags);
                    break;
                case SettlementKind.DeadLetter:
                    Metrics.DeadLettered.Add(1, tags);
                    break;
            }
        }
        foreach (var (index, bus, reply) in local)
        {
            if (results[index]) bus.CompleteReply(reply);
        }
        // A request that failed for good still gets an answer, so its requester does not wait for the timeout.
        foreach (var (o, i) in outcomes.Select((o, i) => (o, i)))
        {
            if (o.ErrorReply is not { } error || !results[i]) continue;
            if (Options.InProcessReplies && LocalReplyQueues.TryGetValue(error.Queue!.Value.Value, out var bus)) bus.CompleteReply(error.Message);
            else await Transport.SendAsync(error.Queue!.Value, [error.Message], null, ct).ConfigureAwait(false);
        }
    }

    private void LogSettlement(Endpoint e, Settlement s)
    {
        var m = s.Delivery?.Message ?? s.Record?.Message;
        if (m is null || s.Failure is not { } f) return;
        var attempt = s.Delivery?.Attempt ?? f.Attempts;
        if (s.Kind == SettlementKind.DeadLetter)
            FactumLog.MessageDeadLettered(_log, m.Type, m.Id.ToString(), e.Source.ToString(), attempt, f.ExceptionType, f.Message, m.CorrelationId);
        else if (s.RetryAt is { } at)
            FactumLog.MessageRetryScheduled(_log, m.Type, m.Id.ToString(), e.Source.ToString(), attempt, $"{f.ExceptionType}: {f.Message}", at, m.CorrelationId);
    }

    private async ValueTask<Outcome> HandleQueueDeliveryAsync(Endpoint e, QueueDelivery d, CancellationToken ct)
    {
        var policy = e.Options.Retry;
        var source = e.SourceFor(null);
        if (d.Attempt > policy.MaxDeliveries)
        {
            return Outcome.Dead(new FailureInfo("DeliveryLimitExceeded", $"delivered {d.Attempt - 1} times without being settled (a handler that crashes its process?); the limit is {policy.MaxDeliveries}", null, d.Attempt - 1, d.FirstFailure ?? Now, Now), e, d.Message, this);
        }
        var result = await RunHandlersAsync(e, d.Message, d.Attempt, source, d.FirstFailure, ct).ConfigureAwait(false);
        if (result.Kind != SettlementKind.Retry) return result;
        // Handler failed this delivery: a delayed retry through the transport, or the dead-letter queue when retries are spent.
        if (d.Attempt > policy.DelayedRetries) return Outcome.Dead(result.Failure!, e, d.Message, this);
        return result with { RetryAt = Now + policy.DelayBefore(d.Attempt, Random.Shared) };
    }

    /// <summary>Decodes the message and runs its handlers with the immediate retries; Retry means "this delivery failed, not for good".</summary>
    private async ValueTask<Outcome> RunHandlersAsync(Endpoint e, TransportMessage m, int attempt, MessageSource source, DateTimeOffset? firstFailure, CancellationToken ct)
    {
        if (m.Headers.TryGetValue(MessageHeaders.ExpiresAt, out var expiresText)
            && DateTimeOffset.TryParse(expiresText, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var expires) && expires < Now)
            return Outcome.Skip; // Nobody waits for this answer any more.
        if (!e.Handlers.TryGetValue(m.Type, out var handlers))
        {
            if (!Registry.TryGet(m.Type, out _))
                return Outcome.Dead(new FailureInfo("Poison", $"message type '{m.Type}' is not registered in this service, so its body cannot be read", null, attempt, Now, Now), e, m, this);
            if (e.Source.Kind == MessageSourceKind.Queue)
                return Outcome.Dead(new FailureInfo("NoHandler", $"queue '{e.Source.Name}' has no handler for '{m.Type}'", null, attempt, Now, Now), e, m, this);
            return Outcome.Skip; // Another type on the topic that this group does not handle.
        }
        // In process, the published object itself travels along: no need to read the body back.
        var (value, _, problem) = m.LocalValue is { } local && Registry.TryGet(m.Type, out var info) && info.ClrType == local.GetType() && info.Version == m.SchemaVersion
            ? (local, info, null)
            : Registry.DecodePayload(m.Type, m.SchemaVersion, m.Body);
        if (value is null)
            return Outcome.Dead(new FailureInfo("Poison", problem ?? "the body could not be read", null, attempt, Now, Now), e, m, this);

        using var activity = StartConsumerActivity(e, m, attempt);
        var policy = e.Options.Retry;
        Exception? last = null;
        var first = firstFailure;
        for (var run = 0; run <= policy.ImmediateRetries; run++)
        {
            ct.ThrowIfCancellationRequested();
            var started = Metrics.HandlerDuration.Enabled ? Stopwatch.GetTimestamp() : 0;
            var scope = _scopes?.CreateAsyncScope();
            var context = new MessageContext(this, m, attempt, source, scope?.ServiceProvider ?? _services);
            // The message context is also the ambient EventContext (events the handler appends are caused by this
            // message). It is set inside this async method, so it ends with it: no restore needed.
            MessageContext.Enter(context);
            try
            {
                object? response = null;
                HandlerRegistration? answering = null;
                foreach (var h in handlers)
                {
                    var r = await h.Invoke(context.Services, value, context, ct).ConfigureAwait(false);
                    if (h.ResponseType is not null) { response = r; answering = h; }
                }
                if (answering is not null && m.ReplyTo is { } replyTo)
                    context.Add(new OutgoingMessage(CreateReply(response, answering.ResponseType!, m, null), null, QueueName.Parse(replyTo)));
                if (Metrics.HandlerDuration.Enabled) Metrics.HandlerDuration.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds, new KeyValuePair<string, object?>("type", m.Type));
                return context.Outgoing.Count == 0 && context.Enlisted.Count == 0 ? Outcome.Handled : new Outcome(SettlementKind.Ack, null, context.Outgoing, context.Enlisted, null, false, null);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                last = ex;
                first ??= Now;
                Interlocked.Increment(ref e.Failed);
                e.LastError = $"{m.Type} {m.Id}: {ex.GetType().Name}: {ex.Message}";
                Metrics.Failed.Add(1, new("type", m.Type), new("source", e.Source.Name), new("group", e.Source.Group));
                FactumLog.HandlerFailed(_log, ex, m.Type, m.Id.ToString(), e.Source.ToString(), attempt, run + 1, m.CorrelationId);
                activity?.AddEvent(new ActivityEvent("exception", tags: new ActivityTagsCollection { ["exception.type"] = ex.GetType().FullName, ["exception.message"] = ex.Message }));
                if (policy.IsNonTransient(ex)) return Outcome.Dead(FailureInfo.From(ex, attempt, first.Value, Now), e, m, this);
            }
            finally
            {
                if (scope is { } s) await s.DisposeAsync().ConfigureAwait(false);
            }
        }
        activity?.SetStatus(ActivityStatusCode.Error, last!.Message);
        return new Outcome(SettlementKind.Retry, FailureInfo.From(last!, attempt, first!.Value, Now), [], [], null, false, null);
    }

    private static Activity? StartConsumerActivity(Endpoint e, TransportMessage m, int attempt)
    {
        if (!FactumDiagnostics.ActivitySource.HasListeners()) return null;
        var links = m.Headers.TryGetValue(MessageHeaders.TraceParent, out var parent)
            && ActivityContext.TryParse(parent, m.Headers.GetValueOrDefault(MessageHeaders.TraceState), out var producer)
            ? new[] { new ActivityLink(producer) }
            : null;
        var activity = FactumDiagnostics.ActivitySource.StartActivity(ActivityKind.Consumer, default(ActivityContext), links: links, name: $"{e.Source.Name} process");
        if (activity is null) return null;
        activity.SetTag("messaging.message.id", m.Id.ToString());
        activity.SetTag("messaging.message.type", m.Type);
        activity.SetTag("messaging.destination.name", e.Source.Name);
        activity.SetTag("messaging.consumer.group.name", e.Source.Group);
        activity.SetTag("messaging.message.conversation_id", m.CorrelationId);
        activity.SetTag("messaging.delivery.attempt", attempt);
        return activity;
    }

    private sealed class Endpoint
    {
        public Endpoint(MessageSource source, HandlerOptions options)
        {
            Source = source;
            Options = options;
            Queue = source.Kind == MessageSourceKind.Queue ? QueueName.Parse(source.Name) : QueueName.ForGroup(new TopicName(source.Name), new GroupName(source.Group!));
            Inbox = Queue.Value;
        }

        public MessageSource Source { get; }

        public HandlerOptions Options { get; }

        /// <summary>The queue it consumes (for streams: the group's queue of replayed and deferred records).</summary>
        public QueueName Queue { get; }

        public string Inbox { get; }

        public Dictionary<string, List<HandlerRegistration>> Handlers { get; } = new(StringComparer.Ordinal);

        public bool Running;
        public long Handled;
        public long Failed;
        public long DeadLettered;
        public string? LastError;

        public void Add(string type, HandlerRegistration h)
        {
            if (!Handlers.TryGetValue(type, out var list)) Handlers[type] = list = [];
            list.Add(h);
        }

        public MessageSource SourceFor(StreamRecord? record) => record is null ? Source : Source with { Partition = record.Partition, Offset = record.Offset };

        public EndpointStatus Status() => new(Source.ToString(), Handlers.Keys.Order(StringComparer.Ordinal).ToList(), Running,
            Interlocked.Read(ref Handled), Interlocked.Read(ref Failed), Interlocked.Read(ref DeadLettered), LastError);
    }

    private sealed record Outcome(SettlementKind Kind, FailureInfo? Failure, IReadOnlyList<OutgoingMessage> Outgoing, IReadOnlyList<MessageWork> Enlisted, DateTimeOffset? RetryAt, bool Skipped, OutgoingMessage? ErrorReply)
    {
        public static readonly Outcome Skip = new(SettlementKind.Ack, null, [], [], null, true, null);

        public static readonly Outcome Handled = new(SettlementKind.Ack, null, [], [], null, false, null);

        public static readonly Outcome Duplicate = Skip;

        public static readonly Outcome DeferIt = new(SettlementKind.Defer, null, [], [], null, true, null);

        public static readonly Outcome Released = new(SettlementKind.Release, null, [], [], null, true, null);

        public bool HoldKey { get; init; }

        public static Outcome Dead(FailureInfo failure, Endpoint e, TransportMessage m, MessageBus bus)
        {
            OutgoingMessage? error = null;
            if (m.ReplyTo is { } replyTo && e.Handlers.TryGetValue(m.Type, out var hs) && hs.FirstOrDefault(h => h.ResponseType is not null) is { } h)
                error = new OutgoingMessage(bus.CreateReply(null, h.ResponseType!, m, $"{failure.ExceptionType}: {failure.Message}"), null, QueueName.Parse(replyTo));
            return new Outcome(SettlementKind.DeadLetter, failure, [], [], null, false, error)
            {
                HoldKey = e.Source.Kind == MessageSourceKind.Stream && e.Options.HoldKeyOnDeadLetter && m.PartitionKey is not null,
            };
        }

        public Settlement ToSettlement(Endpoint e, QueueDelivery? delivery, StreamRecord? record) => new()
        {
            Kind = Kind,
            Delivery = delivery,
            Record = record,
            Source = e.SourceFor(record),
            RetryAt = RetryAt,
            Failure = Failure,
            HoldKey = HoldKey,
            Inbox = Kind == SettlementKind.Ack && e.Options.UseInbox && !Skipped ? e.Inbox : null,
            Outgoing = Outgoing,
            Enlisted = Enlisted,
        };
    }
}
