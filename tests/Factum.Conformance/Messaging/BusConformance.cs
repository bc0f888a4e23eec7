using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Factum.Messaging;
using Microsoft.Extensions.Logging;

namespace Factum.Conformance.Messaging;

/// <summary>The four patterns and their guarantees, through the <see cref="MessageBus"/> on the enrolled transport.</summary>
public abstract class BusConformance<TFactory> : TransportTestBase<TFactory> where TFactory : ITransportFactory, new()
{
    [Fact]
    public async Task PubSub_every_group_gets_every_event_and_members_of_a_group_compete()
    {
        var billing = new Log<(string Instance, string OrderId)>();
        var shipping = new Log<string>();
        var b1 = await StartBus(m => m.AddHandler<OrderPlaced>((e, ctx, _) => { billing.Add(("b1", e.OrderId)); return Task.CompletedTask; }, o => o.Group = "billing"));
        await StartBus(m => m.AddHandler<OrderPlaced>((e, ctx, _) => { billing.Add(("b2", e.OrderId)); return Task.CompletedTask; }, o => o.Group = "billing"));
        await StartBus(m => m.AddHandler<OrderPlaced>((e, ctx, _) => { shipping.Add(e.OrderId); return Task.CompletedTask; }, o => o.Group = "shipping"));
        var producer = await StartBus();
        for (var i = 0; i < 100; i++) await producer.PublishAsync(new OrderPlaced($"o-{i}", i));
        await Eventually(() => billing.Count >= 100 && shipping.Count >= 100, what: "both groups to handle 100 events");
        await Task.Delay(200);
        Assert.Equal(100, billing.Items.Select(x => x.OrderId).Distinct().Count());
        Assert.Equal(100, billing.Count); // each event once per group
        Assert.Equal(100, shipping.Items.Distinct().Count());
        Assert.Equal(100, shipping.Count);
        _ = b1;
    }

    [Fact]
    public async Task Queue_each_command_is_handled_exactly_once_by_competing_consumers()
    {
        var handled = new Log<(string Bus, string OrderId)>();
        for (var b = 0; b < 3; b++)
        {
            var name = $"worker-{b}";
            await StartBus(m => m.AddHandler<CapturePayment>(async (c, _, ct) => { handled.Add((name, c.OrderId)); await Task.Delay(1, ct); }, o => { o.Concurrency = 2; o.BatchSize = 8; }));
        }
        var producer = await StartBus();
        await Task.WhenAll(Enumerable.Range(0, 300).Select(i => producer.SendAsync(new CapturePayment($"o-{i}", i))));
        await Eventually(() => handled.Count >= 300, what: "300 commands");
        await Task.Delay(200);
        Assert.Equal(300, handled.Count);
        Assert.Equal(300, handled.Items.Select(h => h.OrderId).Distinct().Count());
        Assert.True(handled.Items.Select(h => h.Bus).Distinct().Count() >= 2, "the work is shared");
    }

    [Fact]
    public async Task A_message_whose_consumer_died_mid_message_is_redelivered_to_another()
    {
        var producer = await StartBus();
        await producer.SendAsync(new CapturePayment("o-dead", 5));
        // A consumer takes it and dies without settling (its lease just lapses).
        var dead = Assert.Single(await Transport.ReceiveAsync("CapturePayment", "dead-consumer", 1, TimeSpan.FromMilliseconds(300)));
        var attempts = new Log<int>();
        await StartBus(m => m.AddHandler<CapturePayment>((c, ctx, _) => { attempts.Add(ctx.Attempt); return Task.CompletedTask; }));
        await Eventually(() => attempts.Count == 1, what: "redelivery after the lease expired");
        Assert.Equal(2, attempts.Items[0]);
        // The handler returns before its ack commits: wait for the inbox record.
        await EventuallyAsync(async () => (await Transport.FilterHandledAsync("CapturePayment", [dead.Message.Id])).Contains(dead.Message.Id), what: "the inbox record");
    }

    [Fact]
    public async Task A_redelivered_message_is_not_handled_twice_thanks_to_the_inbox()
    {
        var handled = new Log<string>();
        await StartBus(m => m.AddHandler<CapturePayment>((c, _, _) => { handled.Add(c.OrderId); return Task.CompletedTask; }));
        var producer = await StartBus();
        var id = MessageId.New();
        await producer.SendAsync(new CapturePayment("o-1", 1), new SendOptions { MessageId = id });
        await Eventually(() => handled.Count == 1);
        await producer.SendAsync(new CapturePayment("o-1", 1), new SendOptions { MessageId = id });
        await producer.SendAsync(new CapturePayment("o-2", 1));
        await Eventually(() => handled.Count == 2);
        await Task.Delay(200);
        Assert.Equal(["o-1", "o-2"], handled.Items);
    }

    [Fact]
    public async Task Immediate_retries_then_success_handles_once()
    {
        var calls = 0;
        var done = new Log<int>();
        await StartBus(m => m.AddHandler<CapturePayment>((c, ctx, _) =>
        {
            if (Interlocked.Increment(ref calls) < 3) throw new TimeoutException("flaky");
            done.Add(ctx.Attempt);
            return Task.CompletedTask;
        }, o => o.Retry = new MessageRetryPolicy { ImmediateRetries = 2, DelayedRetries = 0 }));
        var producer = await StartBus();
        await producer.SendAsync(new CapturePayment("o", 1));
        await Eventually(() => done.Count == 1);
        Assert.Equal(3, calls);
        Assert.Equal(1, done.Items[0]); // one delivery, retried in process
        Assert.Empty(await DeadLetters());
    }

    [Fact]
    public async Task Delayed_retries_back_off_then_dead_letter_with_the_failure_details()
    {
        var times = new Log<(int Attempt, DateTime At)>();
        await StartBus(m => m.AddHandler<CapturePayment>((c, ctx, _) =>
        {
            times.Add((ctx.Attempt, DateTime.UtcNow));
            throw new InvalidOperationException($"card declined for {c.OrderId}");
        }, o => o.Retry = FastRetry with { InitialDelay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(1), Jitter = 0 }));
        var producer = await StartBus();
        await producer.SendAsync(new CapturePayment("o-9", 9));
        await EventuallyAsync(async () => (await DeadLetters()).Count == 1, what: "the dead letter");
        Assert.Equal([1, 2, 3], times.Items.Select(t => t.Attempt));
        var gaps = times.Items.Zip(times.Items.Skip(1), (a, b) => (b.At - a.At).TotalMilliseconds).ToList();
        Assert.True(gaps[0] >= 90, $"first backoff {gaps[0]} ms");
        Assert.True(gaps[1] >= 180, $"second backoff {gaps[1]} ms (doubles)");
        var dl = (await DeadLetters())[0];
        Assert.Equal("System.InvalidOperationException", dl.Failure.ExceptionType);
        Assert.Equal("card declined for o-9", dl.Failure.Message);
        Assert.Contains("BusConformance", dl.Failure.StackTrace);
        Assert.Equal(3, dl.Failure.Attempts);
        Assert.True(dl.Failure.FirstFailure < dl.Failure.LastFailure);
        Assert.Equal(("CapturePayment", MessageSourceKind.Queue), (dl.Source.Name, dl.Source.Kind));
        Assert.Equal("CapturePayment", dl.Message.Type);
    }

    [Fact]
    public async Task A_dead_lettered_message_is_logged_as_exactly_one_warning_with_its_ids()
    {
        var logs = new CapturingLoggerProvider();
        await StartBus(m => m.AddHandler<CapturePayment>((c, _, _) => throw new InvalidOperationException($"card declined for {c.OrderId}"),
            o => o.Retry = FastRetry with { ImmediateRetries = 1, DelayedRetries = 1, InitialDelay = TimeSpan.FromMilliseconds(20), Jitter = 0 }),
            options: FastOptions() with { LoggerFactory = logs });
        var producer = await StartBus();
        var id = MessageId.New();
        using (EventContext.Begin("corr-logged", null)) await producer.SendAsync(new CapturePayment("o-log", 1), new SendOptions { MessageId = id });
        await EventuallyAsync(async () => (await DeadLetters()).Count == 1, what: "the dead letter");
        await Task.Delay(100);

        var warning = Assert.Single(logs.Entries, e => e.Level >= LogLevel.Warning);
        Assert.Equal(FactumLogEvents.MessageDeadLettered, warning.EventId.Id);
        Assert.Equal("Factum.Messaging", warning.Category);
        Assert.Equal(id.ToString(), warning.Fields["MessageId"]);
        Assert.Equal("corr-logged", warning.Fields["CorrelationId"]);
        Assert.Equal("CapturePayment", warning.Fields["MessageType"]);
        Assert.Equal(2, warning.Fields["Attempt"]);
        Assert.Contains("card declined for o-log", warning.Message);
        // The retry before it is information, one entry for the one delayed retry; each failed run is a debug entry.
        var retry = Assert.Single(logs.Entries, e => e.EventId.Id == FactumLogEvents.MessageRetryScheduled);
        Assert.Equal(LogLevel.Information, retry.Level);
        Assert.Equal(id.ToString(), retry.Fields["MessageId"]);
        Assert.Equal(4, logs.Entries.Count(e => e.EventId.Id == FactumLogEvents.HandlerFailed && e.Level == LogLevel.Debug && e.Exception is InvalidOperationException));
    }

    [Fact]
    public async Task NonTransient_failures_skip_the_retries()
    {
        var calls = 0;
        await StartBus(m => m.AddHandler<CapturePayment>((_, _, _) =>
        {
            Interlocked.Increment(ref calls);
            throw new ArgumentException("amount must be positive");
        }, o => o.Retry = new MessageRetryPolicy { NonTransient = [typeof(ArgumentException)] }));
        var producer = await StartBus();
        await producer.SendAsync(new CapturePayment("o", -1));
        await EventuallyAsync(async () => (await DeadLetters()).Count == 1);
        Assert.Equal(1, calls);
        Assert.Equal(1, (await DeadLetters())[0].Failure.Attempts);
    }

    [Fact]
    public async Task A_dead_letter_replayed_after_a_fix_is_handled_and_one_that_fails_again_returns()
    {
        var fixedIt = false;
        var handled = new Log<(string OrderId, string? Replayed)>();
        await StartBus(m => m.AddHandler<CapturePayment>((c, ctx, _) =>
        {
            if (!Volatile.Read(ref fixedIt)) throw new NonTransientException("bug in handler");
            handled.Add((c.OrderId, ctx.Headers.GetValueOrDefault(MessageHeaders.Replayed)));
            return Task.CompletedTask;
        }));
        var producer = await StartBus();
        await producer.SendAsync(new CapturePayment("o-1", 1));
        await EventuallyAsync(async () => (await DeadLetters()).Count == 1);
        // Replay before the fix: it fails again and comes back, not lost.
        Assert.Equal(1, await Transport.ReplayDeadLettersAsync(DeadLetterFilter.All));
        await EventuallyAsync(async () => (await DeadLetters()) is [{ ReplayCount: 1 }], what: "the failed replay back in the DLQ");
        Volatile.Write(ref fixedIt, true);
        Assert.Equal(1, await Transport.ReplayDeadLettersAsync(new DeadLetterFilter { Type = "CapturePayment" }));
        await Eventually(() => handled.Count == 1);
        Assert.Equal(("o-1", "2"), handled.Items[0]);
        Assert.Empty(await DeadLetters());
    }

    [Fact]
    public async Task Poison_messages_go_to_the_DLQ_with_a_reason_and_the_consumer_goes_on()
    {
        var handled = new Log<string>();
        await StartBus(m => m.AddHandler<CapturePayment>((c, _, _) => { handled.Add(c.OrderId); return Task.CompletedTask; }));
        await Transport.SendAsync("CapturePayment", [Msg("CapturePayment", json: "{not json"), Msg("NoSuchType", json: "{}"), Msg("CapturePayment", json: """{"orderId":"ok","amount":1}""")]);
        await Eventually(() => handled.Count == 1);
        await EventuallyAsync(async () => (await DeadLetters()).Count == 2);
        var dls = await DeadLetters();
        Assert.All(dls, d => Assert.Equal("Poison", d.Failure.ExceptionType));
        Assert.Contains(dls, d => d.Failure.Message.Contains("could not be decoded"));
        Assert.Contains(dls, d => d.Failure.Message.Contains("'NoSuchType' is not registered"));
        Assert.Equal(["ok"], handled.Items);
    }

    [Fact]
    public async Task Messages_a_handler_produces_commit_with_its_ack_and_never_without_it()
    {
        var shipped = new Log<OrderShipped>();
        var attempts = 0;
        await StartBus(m => m.AddHandler<CapturePayment>(async (c, ctx, ct) =>
        {
            await ctx.PublishAsync(new OrderShipped(c.OrderId + "-attempt-" + Interlocked.Increment(ref attempts)), cancellationToken: ct);
            if (attempts == 1) throw new TimeoutException("after publishing");
        }, o => o.Retry = new MessageRetryPolicy { ImmediateRetries = 1, DelayedRetries = 0 }));
        await StartBus(m => m.AddHandler<OrderShipped>((e, _, _) => { shipped.Add(e); return Task.CompletedTask; }, o => o.Group = "audit"));
        var producer = await StartBus();
        await producer.SendAsync(new CapturePayment("o", 1));
        await Eventually(() => shipped.Count == 1);
        await Task.Delay(200);
        Assert.Equal(["o-attempt-2"], shipped.Items.Select(s => s.OrderId));
    }

    [Fact]
    public async Task Correlation_and_causation_flow_from_a_handled_message_to_what_it_sends()
    {
        var seen = new Log<MessageContext>();
        var first = new Log<MessageContext>();
        var bus = await StartBus(m =>
        {
            m.AddHandler<OrderPlaced>(async (e, ctx, ct) => { first.Add(ctx); await ctx.SendAsync(new CapturePayment(e.OrderId, 10), cancellationToken: ct); }, o => o.Group = "billing");
            m.AddHandler<CapturePayment>((c, ctx, _) => { seen.Add(ctx); return Task.CompletedTask; });
        });
        using (EventContext.Begin("checkout-42", "http-request-1"))
            await bus.PublishAsync(new OrderPlaced("o-7", 1));
        await Eventually(() => seen.Count == 1);
        var ctx = seen.Items[0];
        Assert.Equal("checkout-42", ctx.CorrelationId);
        Assert.Equal(first.Items[0].MessageId.ToString(), ctx.CausationId);
        Assert.Equal("checkout-42", first.Items[0].CorrelationId);
        Assert.Equal("http-request-1", first.Items[0].CausationId);
    }

    [Fact]
    public async Task Events_appended_by_a_handler_inherit_the_message_context()
    {
        string? corr = null, cause = null;
        var bus = await StartBus(m => m.AddHandler<CapturePayment>((c, ctx, _) =>
        {
            corr = EventContext.CorrelationId;
            cause = EventContext.CausationId;
            return Task.CompletedTask;
        }));
        await bus.SendAsync(new CapturePayment("o", 1), new SendOptions { MessageId = new MessageId(Guid.Parse("0199c1d2-0000-7000-8000-000000000001")) });
        await Eventually(() => cause is not null);
        Assert.Equal("0199c1d2-0000-7000-8000-000000000001", cause);
        Assert.Equal("0199c1d2-0000-7000-8000-000000000001", corr); // a message without context starts its own correlation
    }

    [Fact]
    public async Task Request_reply_returns_the_correlated_response()
    {
        await StartBus(m => m.AddRequestHandler<GetStock, StockLevel>((q, ctx, _) => Task.FromResult(new StockLevel(q.Sku, q.Sku.Length))));
        var client = await StartBus();
        var results = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => client.RequestAsync<GetStock, StockLevel>(new GetStock(new string('s', i + 1)))));
        Assert.Equal(Enumerable.Range(1, 20), results.Select(r => r.Available));
        Assert.All(results, r => Assert.Equal(r.Available, r.Sku.Length));
    }

    [Fact]
    public async Task Request_reply_through_the_reply_queue_as_between_processes()
    {
        // One responder in another "process" (no in-process shortcut) answers good requests and fails bad ones; both the
        // reply and the error reply travel through the reply queue. Deterministic: which request fails is decided by its
        // content, not by which of two competing responders happens to take it.
        var remote = FastOptions() with { InProcessReplies = false };
        await StartBus(m => m.AddRequestHandler<GetStock, StockLevel>((q, ctx, _) =>
            q.Sku.StartsWith("bad", StringComparison.Ordinal) ? throw new NonTransientException($"broken responder for {q.Sku}") : Task.FromResult(new StockLevel(q.Sku, 7))), options: remote);
        var client = await StartBus(options: remote with { ServiceName = "client" });
        for (var i = 0; i < 10; i++)
        {
            var sku = (i % 2 == 0 ? "good-" : "bad-") + i;
            if (i % 2 == 0)
            {
                var reply = await client.RequestAsync<GetStock, StockLevel>(new GetStock(sku), TimeSpan.FromSeconds(5));
                Assert.Equal((sku, 7), (reply.Sku, reply.Available));
            }
            else
            {
                var ex = await Assert.ThrowsAsync<RequestFailedException>(() => client.RequestAsync<GetStock, StockLevel>(new GetStock(sku), TimeSpan.FromSeconds(5)));
                Assert.Contains($"broken responder for {sku}", ex.Message);
            }
        }
    }

    [Fact]
    public async Task Request_without_a_responder_fails_fast_and_a_slow_one_times_out()
    {
        var client = await StartBus();
        var none = await Assert.ThrowsAsync<NoResponderException>(() => client.RequestAsync<GetStock, StockLevel>(new GetStock("x")));
        Assert.Contains("GetStock", none.Message);
        await StartBus(m => m.AddRequestHandler<GetStock, StockLevel>(async (q, _, ct) => { await Task.Delay(2000, ct); return new StockLevel(q.Sku, 1); }));
        var sw = Stopwatch.StartNew();
        var timeout = await Assert.ThrowsAsync<RequestTimeoutException>(() => client.RequestAsync<GetStock, StockLevel>(new GetStock("x"), TimeSpan.FromMilliseconds(300)));
        Assert.InRange(sw.ElapsedMilliseconds, 250, 1900);
        Assert.Contains("300 ms", timeout.Message);
    }

    [Fact]
    public async Task A_failing_responder_answers_with_an_error_instead_of_a_timeout()
    {
        await StartBus(m => m.AddRequestHandler<GetStock, StockLevel>((q, _, _) => throw new NonTransientException($"unknown sku {q.Sku}")));
        var client = await StartBus();
        var ex = await Assert.ThrowsAsync<RequestFailedException>(() => client.RequestAsync<GetStock, StockLevel>(new GetStock("zz"), TimeSpan.FromSeconds(5)));
        Assert.Contains("unknown sku zz", ex.Message);
    }

    [Fact]
    public async Task Events_cannot_be_requests()
    {
        var client = await StartBus();
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => client.RequestAsync<OrderPlaced, StockLevel>(new OrderPlaced("o", 1)));
        Assert.Contains("event-driven RPC", ex.Message);
        var builder = new MessagingBuilder().AddRequestHandler<OrderPlaced, StockLevel>((_, _, _) => Task.FromResult(new StockLevel("x", 1)));
        await using var bus = new MessageBus(Transport, Registry, builder, FastOptions());
        var start = await Assert.ThrowsAsync<InvalidOperationException>(() => bus.StartAsync());
        Assert.Contains("event-driven RPC", start.Message);
    }

    [Fact]
    public async Task Stopping_the_bus_gives_unfinished_messages_back_at_once()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var bus = await StartBus(m => m.AddHandler<CapturePayment>(async (_, _, ct) => { started.TrySetResult(); await Task.Delay(Timeout.Infinite, ct); }));
        await bus.SendAsync(new CapturePayment("slow", 1));
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await bus.StopAsync();
        // Not after the 30 s lease: released, and the attempt it did not finish does not count.
        var d = Assert.Single(await Transport.ReceiveAsync("CapturePayment", "next", 1, TimeSpan.FromSeconds(30)));
        Assert.Equal(1, d.Attempt);
    }

    [Fact]
    public async Task A_group_cannot_read_a_topic_both_from_the_stream_and_by_subscription()
    {
        var builder = new MessagingBuilder().AddStream<OrderPlaced>(2)
            .AddHandler<OrderPlaced>((_, _, _) => Task.CompletedTask, o => { o.FromStream = true; o.Group = "g"; })
            .AddHandler<OrderPlaced>((_, _, _) => Task.CompletedTask, o => o.Group = "g");
        await using var bus = new MessageBus(Transport, Registry, builder, FastOptions());
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => bus.StartAsync());
        Assert.Contains("both from the stream and by subscription", ex.Message);
    }

    [Fact]
    public async Task Publishing_a_command_or_sending_an_event_is_refused()
    {
        var bus = await StartBus();
        await Assert.ThrowsAsync<InvalidOperationException>(() => bus.PublishAsync(new CapturePayment("o", 1)));
        await Assert.ThrowsAsync<InvalidOperationException>(() => bus.SendAsync(new OrderPlaced("o", 1)));
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => bus.PublishAsync(new { Unregistered = true }));
        Assert.Contains("not a registered message type", ex.Message);
    }

    [Fact]
    public async Task Delayed_delivery_through_the_bus()
    {
        var at = new Log<DateTime>();
        await StartBus(m => m.AddHandler<CapturePayment>((_, _, _) => { at.Add(DateTime.UtcNow); return Task.CompletedTask; }));
        var producer = await StartBus();
        var sent = DateTime.UtcNow;
        await producer.SendAsync(new CapturePayment("later", 1), new SendOptions { DeliverAt = DateTimeOffset.UtcNow.AddMilliseconds(500) });
        await Eventually(() => at.Count == 1);
        Assert.True((at.Items[0] - sent).TotalMilliseconds >= 450);
    }

    [Fact]
    public async Task Older_message_versions_are_upcast_before_the_handler_sees_them()
    {
        var seen = new Log<CapturePayment>();
        // Re-register the command as v2 on a fresh registry with the same upcaster.
        var r2 = new EventTypeRegistry();
        r2.Register<CapturePayment>(o => { o.Kind = MessageKind.Command; o.Version = 2; });
        r2.AddUpcaster("CapturePayment", 1, old => new JsonObject { ["orderId"] = old["order"]!.GetValue<string>(), ["amount"] = 3 });
        var bus = new MessageBus(Transport, r2, new MessagingBuilder().AddHandler<CapturePayment>((c, _, _) => { seen.Add(c); return Task.CompletedTask; }), FastOptions());
        await bus.StartAsync();
        try
        {
            await Transport.SendAsync("CapturePayment", [Msg("CapturePayment", json: """{"order":"legacy-1"}""") with { SchemaVersion = 1 }]);
            await Eventually(() => seen.Count == 1);
            Assert.Equal(new CapturePayment("legacy-1", 3), seen.Items[0]);
        }
        finally
        {
            await bus.DisposeAsync();
        }
    }

    [Fact]
    public async Task Handlers_run_in_a_consumer_activity_linked_to_the_producer()
    {
        var activities = new Log<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == FactumDiagnostics.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activities.Add,
        };
        ActivitySource.AddActivityListener(listener);
        string? producerTrace = null;
        var inHandler = new Log<string?>();
        var bus = await StartBus(m => m.AddHandler<CapturePayment>((c, ctx, _) => { inHandler.Add(Activity.Current?.OperationName); return Task.CompletedTask; }));
        using (var root = new Activity("checkout").Start())
        {
            producerTrace = root.TraceId.ToString();
            await bus.SendAsync(new CapturePayment("traced", 1));
        }
        await Eventually(() => inHandler.Count == 1);
        await Eventually(() => activities.Items.Any(a => a.Kind == ActivityKind.Consumer && a.Tags.Any(t => t.Value == "traced" || t.Key == "messaging.message.id")));
        var consumer = activities.Items.First(a => a.Kind == ActivityKind.Consumer);
        Assert.Contains(consumer.Links, l => l.Context.TraceId.ToString() == producerTrace);
        Assert.Equal("CapturePayment process", inHandler.Items[0]);
        Assert.Contains(activities.Items, a => a.Kind == ActivityKind.Producer && a.TraceId.ToString() == producerTrace);
    }

    [Fact]
    public async Task Order_per_key_holds_for_a_queue_consumed_with_concurrency()
    {
        var seen = new Log<(string Key, int N)>();
        await StartBus(m => m.AddHandler<CapturePayment>(async (c, _, ct) =>
        {
            await Task.Delay(Random.Shared.Next(0, 3), ct);
            seen.Add((c.OrderId, (int)c.Amount));
        }, o => { o.Concurrency = 8; o.BatchSize = 32; }));
        await StartBus(m => m.AddHandler<CapturePayment>((c, _, _) => { seen.Add((c.OrderId, (int)c.Amount)); return Task.CompletedTask; }, o => o.Concurrency = 4));
        var producer = await StartBus();
        for (var n = 0; n < 30; n++)
            await Task.WhenAll(Enumerable.Range(0, 10).Select(k => producer.SendAsync(new CapturePayment($"key-{k}", n), new SendOptions { PartitionKey = $"key-{k}" })));
        await Eventually(() => seen.Count >= 300, 20_000, "300 keyed commands");
        foreach (var key in seen.Items.GroupBy(s => s.Key)) Assert.Equal(Enumerable.Range(0, 30), key.Select(k => k.N));
    }

    [Fact]
    public async Task Stream_keeps_order_per_key_with_concurrency_and_spreads_partitions_over_members()
    {
        var seen = new Log<(string Instance, string Key, int N)>();
        void Consumer(MessagingBuilder m, string name) => m
            .AddStream<OrderPlaced>(8)
            .PartitionBy<OrderPlaced>(e => e.OrderId)
            .AddHandler<OrderPlaced>(async (e, _, ct) =>
            {
                await Task.Delay(Random.Shared.Next(0, 2), ct);
                seen.Add((name, e.OrderId, e.N));
            }, o => { o.FromStream = true; o.Group = "analytics"; o.Concurrency = 4; });
        var a = await StartBus(m => Consumer(m, "a"));
        var b = await StartBus(m => Consumer(m, "b"));
        var producer = await StartBus(m => m.AddStream<OrderPlaced>(8).PartitionBy<OrderPlaced>(e => e.OrderId));
        await EventuallyAsync(async () => (await Transport.GetStatusAsync()).Groups.SingleOrDefault()?.Members.Count(m => m.Partitions.Count > 0) == 2, what: "both members own partitions");
        for (var n = 0; n < 25; n++)
            await Task.WhenAll(Enumerable.Range(0, 16).Select(k => producer.PublishAsync(new OrderPlaced($"order-{k}", n))));
        await Eventually(() => seen.Items.Select(s => (s.Key, s.N)).Distinct().Count() >= 400, 20_000, "400 stream records");
        foreach (var key in seen.Items.GroupBy(s => s.Key))
        {
            var ns = key.Select(k => k.N).ToList();
            Assert.Equal(Enumerable.Range(0, 25), ns.Distinct());
            Assert.True(ns.Order().SequenceEqual(ns), string.Join(",", key.Select(k => $"{k.Instance}{k.N}")));
        }
        await EventuallyAsync(async () => (await Transport.GetStatusAsync()).Groups.Single().Members.Count == 2);
        var group = (await Transport.GetStatusAsync()).Groups.Single();
        Assert.Equal(("OrderPlaced", "analytics"), (group.Topic, group.Group));
        await EventuallyAsync(async () => (await Transport.GetStatusAsync()).Groups.Single().Lag == 0, what: "lag 0");
        Assert.True(seen.Items.Select(s => s.Instance).Distinct().Count() == 2, "both members consumed");
        _ = (a, b);
    }

    [Fact]
    public async Task When_a_member_leaves_the_group_rebalances_and_the_rest_is_consumed_by_the_others()
    {
        var seen = new Log<(string Instance, int N)>();
        void Consumer(MessagingBuilder m, string name) => m.AddStream<OrderPlaced>(4).PartitionBy<OrderPlaced>(e => e.OrderId)
            .AddHandler<OrderPlaced>((e, _, _) => { seen.Add((name, e.N)); return Task.CompletedTask; }, o => { o.FromStream = true; o.Group = "g"; });
        var a = await StartBus(m => Consumer(m, "a"));
        var b = await StartBus(m => Consumer(m, "b"));
        var producer = await StartBus(m => m.AddStream<OrderPlaced>(4).PartitionBy<OrderPlaced>(e => e.OrderId));
        await EventuallyAsync(async () => (await Transport.GetStatusAsync()).Groups.SingleOrDefault()?.Members.Count(m => m.Partitions.Count > 0) == 2, what: "both members own partitions");
        for (var i = 0; i < 40; i++) await producer.PublishAsync(new OrderPlaced($"o-{i}", i));
        await Eventually(() => seen.Items.Select(s => s.N).Distinct().Count() == 40);
        await b.StopAsync();
        for (var i = 40; i < 80; i++) await producer.PublishAsync(new OrderPlaced($"o-{i}", i));
        await Eventually(() => seen.Items.Select(s => s.N).Distinct().Count() == 80, 15_000, "the rest after b left");
        Assert.All(seen.Items.Where(s => s.N >= 40), s => Assert.Equal("a", s.Instance));
        var group = (await Transport.GetStatusAsync()).Groups.Single();
        Assert.Equal(a.InstanceId, group.Members.Single().Member);
        Assert.All(group.Partitions, p => Assert.Equal(a.InstanceId, p.Owner));
    }

    [Fact]
    public async Task A_stream_group_replays_from_the_start_or_a_timestamp_after_a_reset()
    {
        var seen = new Log<int>();
        Action<MessagingBuilder> consumer = m => m.AddStream<OrderPlaced>(2)
            .AddHandler<OrderPlaced>((e, _, _) => { seen.Add(e.N); return Task.CompletedTask; }, o => { o.FromStream = true; o.Group = "replayer"; o.UseInbox = false; });
        var producer = await StartBus(m => m.AddStream<OrderPlaced>(2));
        for (var i = 0; i < 10; i++) await producer.PublishAsync(new OrderPlaced($"o-{i}", i));
        await Task.Delay(60);
        var mid = DateTimeOffset.UtcNow;
        await Task.Delay(60);
        for (var i = 10; i < 15; i++) await producer.PublishAsync(new OrderPlaced($"o-{i}", i));
        var c = await StartBus(consumer);
        await Eventually(() => seen.Count == 15);
        await c.StopAsync();
        await Transport.ResetGroupAsync("OrderPlaced", "replayer", GroupReset.ToStart);
        await c.StartAsync();
        await Eventually(() => seen.Count == 30, what: "the replay from the start");
        await c.StopAsync();
        await Transport.ResetGroupAsync("OrderPlaced", "replayer", GroupReset.ToTime(mid));
        await c.StartAsync();
        await Eventually(() => seen.Count == 35, what: "the replay from the timestamp");
        Assert.Equal(Enumerable.Range(10, 5), seen.Items.Skip(30).Order());
    }

    [Fact]
    public async Task A_dead_lettered_stream_message_holds_its_key_until_replayed_then_the_key_resumes_in_order()
    {
        var broken = true;
        var seen = new Log<(string Key, int N)>();
        await StartBus(m => m.AddStream<OrderPlaced>(1).PartitionBy<OrderPlaced>(e => e.OrderId).AddHandler<OrderPlaced>((e, _, _) =>
        {
            if (e.OrderId == "k" && e.N == 1 && Volatile.Read(ref broken)) throw new NonTransientException("cannot handle n=1 yet");
            seen.Add((e.OrderId, e.N));
            return Task.CompletedTask;
        }, o => { o.FromStream = true; o.Group = "ordered"; }));
        var producer = await StartBus(m => m.AddStream<OrderPlaced>(1).PartitionBy<OrderPlaced>(e => e.OrderId));
        for (var n = 0; n < 4; n++)
        {
            await producer.PublishAsync(new OrderPlaced("k", n));
            await producer.PublishAsync(new OrderPlaced("other", n));
        }
        await Eventually(() => seen.Items.Count(s => s.Key == "other") == 4);
        await EventuallyAsync(async () => (await DeadLetters()).Count == 3, what: "the failure and the two held behind it");
        Assert.Equal([0], seen.Items.Where(s => s.Key == "k").Select(s => s.N));
        var dls = await DeadLetters();
        Assert.Equal(["Held", "Held"], dls.Where(d => d.HeldBehind is not null).Select(d => d.Failure.ExceptionType));
        Assert.Equal(MessageSourceKind.Stream, dls[0].Source.Kind);
        Assert.NotNull(dls[0].Source.Offset);

        Volatile.Write(ref broken, false);
        Assert.Equal(3, await Transport.ReplayDeadLettersAsync(new DeadLetterFilter { Ids = [dls[0].Id] }));
        await producer.PublishAsync(new OrderPlaced("k", 4));
        await Eventually(() => seen.Items.Count(s => s.Key == "k") == 5, what: "k resumes");
        Assert.Equal([0, 1, 2, 3, 4], seen.Items.Where(s => s.Key == "k").Select(s => s.N));
        Assert.Empty(await DeadLetters());
    }

    [Fact]
    public async Task Enlisted_work_runs_with_the_ack()
    {
        var enlisted = new Log<string>();
        await StartBus(m => m.AddHandler<CapturePayment>((c, ctx, _) => { ctx.Enlist<object>(_ => enlisted.Add(c.OrderId)); return Task.CompletedTask; }));
        var producer = await StartBus();
        await producer.SendAsync(new CapturePayment("o-e", 1));
        await Eventually(() => enlisted.Count == 1);
    }

    [Fact]
    public async Task Status_reports_endpoints_queues_and_dead_letters()
    {
        var bus = await StartBus(m =>
        {
            m.AddHandler<CapturePayment>((_, _, _) => throw new NonTransientException("no"));
            m.AddHandler<OrderPlaced>((_, _, _) => Task.CompletedTask, o => o.Group = "billing");
        });
        await bus.SendAsync(new CapturePayment("o", 1));
        await EventuallyAsync(async () => (await bus.GetStatusAsync()).Endpoints.Any(e => e.DeadLettered == 1), what: "the endpoint's dead-letter count");
        var status = await bus.GetStatusAsync();
        Assert.Equal(1, status.State.DeadLetterTotal);
        Assert.Equal(2, status.Endpoints.Count);
        var ep = status.Endpoints.Single(e => e.MessageTypes.Contains("CapturePayment"));
        Assert.Equal((1L, 1L), (ep.Failed, ep.DeadLettered));
        Assert.Contains("no", ep.LastError);
        Assert.Contains(status.State.Topics, t => t.Name == "OrderPlaced" && t.Subscriptions.Contains("billing"));
        Assert.Contains(status.State.Queues, q => q.Name == "CapturePayment" && q.Consumers.Contains(bus.InstanceId));
    }
}
