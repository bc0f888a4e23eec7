using System.Collections.Concurrent;
using System.Globalization;
using Factum.Messaging;

namespace Factum.Cli;

[EventType("CapturePayment", Kind = MessageKind.Command, Owner = "billing", Description = "Charge the customer for an order.")]
internal sealed record CapturePayment(string OrderId, decimal Amount);

[EventType("CheckStock", Kind = MessageKind.Query, Owner = "warehouse", Description = "Are these items in stock?")]
internal sealed record CheckStock(string OrderId, string[] Items);

internal sealed record StockLevel(string OrderId, int Available, int Requested);

/// <summary>
/// The demo's second part: the order-fulfilment flow on the embedded message bus, in the same SQLite file. The outbox
/// relay publishes stored events; OrderPlaced is broadcast (pub/sub) to billing and shipping; billing sends a payment
/// command to a queue; shipping asks the warehouse by request-reply; analytics reads OrderPlaced from a partitioned
/// stream with a consumer group. The payment handler has a bug for large amounts, so one message goes to the
/// dead-letter queue and is replayed after the fix; an unreadable message goes there too and is discarded.
/// </summary>
internal static class DemoMessaging
{
    public static async Task RunAsync(Backend backend, EventTypeRegistry registry, Output output, CancellationToken ct)
    {
        var store = backend.Store;
        var log = new ConcurrentQueue<string>();
        var bugFixed = false;
        var ordersPerCustomer = new ConcurrentDictionary<string, int>();
        var handled = 0;
        var builder = new MessagingBuilder()
            .AddStream<OrderPlaced>(4)
            .PartitionBy<OrderPlaced>(o => "Order-" + o.OrderId)
            .RouteToQueue<CapturePayment>("payments")
            .RouteToQueue<CheckStock>("warehouse")
            .AddHandler<OrderPlaced>(async (o, ctx, token) =>
            {
                await ctx.SendAsync(new CapturePayment(o.OrderId, o.Total), new SendOptions { PartitionKey = o.OrderId }, token);
                log.Enqueue($"[billing]   OrderPlaced {o.OrderId} -> sent CapturePayment {Money(o.Total)} to queue 'payments'");
            }, h => h.Group = "billing")
            .AddHandler<OrderPlaced>(async (o, ctx, token) =>
            {
                var bus = (IMessageBus)ctx.Services.GetService(typeof(IMessageBus))!;
                var stock = await bus.RequestAsync<CheckStock, StockLevel>(new CheckStock(o.OrderId, o.Items), TimeSpan.FromSeconds(5), token);
                log.Enqueue($"[shipping]  OrderPlaced {o.OrderId} -> asked the warehouse (request-reply): {stock.Available} of {stock.Requested} item(s) in stock");
            }, h => { h.Group = "shipping"; h.Concurrency = 4; })
            .AddRequestHandler<CheckStock, StockLevel>((q, _, _) => Task.FromResult(new StockLevel(q.OrderId, q.Items.Length, q.Items.Length)))
            .AddHandler<CapturePayment>((c, ctx, _) =>
            {
                if (c.Amount >= 1000 && !Volatile.Read(ref bugFixed))
                    throw new FormatException($"amount {c.Amount.ToString(CultureInfo.InvariantCulture)} does not fit the payment provider's 6-character field");
                var replayed = ctx.Headers.GetValueOrDefault(MessageHeaders.Replayed);
                log.Enqueue($"[payments]  CapturePayment {c.OrderId} {Money(c.Amount)} captured" + (replayed is null ? "" : $" (replayed from the dead-letter queue, {replayed} time(s))"));
                Interlocked.Increment(ref handled);
                return Task.CompletedTask;
            }, h => h.Retry = new MessageRetryPolicy { ImmediateRetries = 1, DelayedRetries = 0, NonTransient = [typeof(FormatException)] })
            .AddHandler<OrderPlaced>((o, ctx, _) =>
            {
                var n = ordersPerCustomer.AddOrUpdate(o.CustomerId, 1, (_, v) => v + 1);
                log.Enqueue($"[analytics] stream OrderPlaced partition {ctx.Delivery.Source.Partition} offset {ctx.Delivery.Source.Offset}: order {o.OrderId} ({o.CustomerId}: {n} order(s) this run)");
                return Task.CompletedTask;
            }, h => { h.FromStream = true; h.Group = "analytics"; });

        await using var transport = backend.OpenTransport();
        var services = new BusServices();
        var bus = new MessageBus(transport, registry, builder, new MessagingOptions
        {
            ServiceName = "demo",
            HeartbeatInterval = TimeSpan.FromMilliseconds(200),
            PollInterval = TimeSpan.FromMilliseconds(20),
            LoggerFactory = backend.Logging,
        }, services);
        services.Bus = bus;
        await using (bus)
        {
            await bus.StartAsync(ct);
            var w = output.Writer;
            w.WriteLine(transport is InMemoryTransport
                ? "Messaging, on the in-memory transport (gone when the demo ends): pub/sub, a queue, request-reply, a partitioned stream and the dead-letter queue."
                : "Messaging, in the same file: pub/sub, a queue, request-reply, a partitioned stream and the dead-letter queue.");

            // The store is the outbox: stored events go to the topics named after their types (once; the checkpoint remembers).
            // The demo's relay publishes only the demo's own events (under its own checkpoint, demo-outbox), so whatever
            // else the store holds never reaches the demo's handlers; 'factum relay' (checkpoint outbox) publishes everything.
            var foreign = 0;
            var relay = new OutboxRelay(store, transport, backend.RelayCheckpoints(transport), new OutboxRelayOptions
            {
                Name = "demo-outbox",
                LoggerFactory = backend.Logging,
                Topic = e =>
                {
                    if (e.Metadata.TryGetValue("source", out var source) && source == "factum-demo") return new TopicName(e.Type);
                    Interlocked.Increment(ref foreign);
                    return null;
                },
            });
            var relayed = await relay.CatchUpAsync(ct);
            var published = relayed - foreign;
            w.WriteLine(published > 0
                ? $"  outbox relay 'demo-outbox': published {published} of the demo's stored events to their topics; checkpoint at position {relay.Position}"
                : $"  outbox relay 'demo-outbox': nothing new to publish (checkpoint at position {relay.Position})");
            if (foreign > 0)
                w.WriteLine($"  outbox relay 'demo-outbox': did not publish {foreign} event(s) the demo did not write (run 'factum relay' to publish everything)");

            // Checkout places two new orders in this run; one of them is large enough to trip the payment bug.
            var run = DateTimeOffset.UtcNow.ToString("HHmmss", CultureInfo.InvariantCulture);
            await bus.PublishAsync(new OrderPlaced($"L{run}-a", "c-dan", 42.50m, ["lamp"]), cancellationToken: ct);
            await bus.PublishAsync(new OrderPlaced($"L{run}-b", "c-eve", 1500.00m, ["bike", "helmet"]), cancellationToken: ct);
            w.WriteLine($"  checkout: published OrderPlaced L{run}-a (42.50) and L{run}-b (1500.00)");
            // And someone sends an unreadable message to the payments queue.
            await transport.SendAsync("payments", [new TransportMessage
            {
                Id = MessageId.New(), Type = "CapturePayment", Timestamp = DateTimeOffset.UtcNow, CorrelationId = "demo-poison",
                Body = "{\"orderId\": 7, amount: }"u8.ToArray(),
            }], null, ct);

            await WaitQuietAsync(transport, ct);
            foreach (var line in Drain(log)) w.WriteLine("  " + line);
            w.WriteLine();
            var status = await transport.GetStatusAsync(ct);
            output.Table(["TOPIC", "PARTITIONS", "SUBSCRIPTIONS"], status.Topics.Where(t => t.Subscriptions.Count > 0 || t.Options.Partitions > 0).Select(t => new[] { t.Name, t.Options.Partitions == 0 ? "-" : Output.Inv(t.Options.Partitions), string.Join(",", t.Subscriptions) }));
            w.WriteLine();
            output.Table(["GROUP", "PARTITION", "COMMITTED", "END", "LAG"], status.Groups.SelectMany(g => g.Partitions.Select(p => new[] { $"{g.Topic}/{g.Group}", Output.Inv(p.Partition), Output.Inv(p.Committed), Output.Inv(p.End), Output.Inv(p.Lag) })));
            w.WriteLine();
            var dead = new List<DeadLetter>();
            await foreach (var d in transport.ListDeadLettersAsync(DeadLetterFilter.All, ct)) dead.Add(d);
            w.WriteLine("Dead-letter queue (factum dlq list):");
            output.Table(["ID", "SOURCE", "TYPE", "EXCEPTION", "ERROR"], dead.Select(d => new[] { Output.Inv(d.Id), d.Source.Name, d.Message.Type, d.Failure.ExceptionType, d.Failure.Message.Length > 70 ? d.Failure.Message[..67] + "..." : d.Failure.Message }));
            w.WriteLine();

            // The fix ships: replay the payment failures; the unreadable one is discarded.
            Volatile.Write(ref bugFixed, true);
            var poison = dead.Where(d => d.Failure.ExceptionType == "Poison").Select(d => d.Id).ToList();
            var discarded = poison.Count == 0 ? 0 : await transport.DiscardDeadLettersAsync(new DeadLetterFilter { Ids = poison }, ct);
            var replayed = await transport.ReplayDeadLettersAsync(new DeadLetterFilter { Source = "payments", ExceptionType = "System.FormatException" }, ct);
            w.WriteLine($"After the fix: replayed {replayed} payment(s) (factum dlq replay --source payments --exception FormatException), discarded {discarded} unreadable message(s) (factum dlq discard ID).");
            await WaitQuietAsync(transport, ct);
            foreach (var line in Drain(log)) w.WriteLine("  " + line);
            var left = (await transport.GetStatusAsync(ct)).DeadLetterTotal;
            w.WriteLine($"  dead letters left: {left}");
            await bus.StopAsync(ct);
        }
        output.Writer.WriteLine();
    }

    private static IEnumerable<string> Drain(ConcurrentQueue<string> q)
    {
        while (q.TryDequeue(out var s)) yield return s;
    }

    private static string Money(decimal d) => d.ToString("0.00", CultureInfo.InvariantCulture);

    /// <summary>Waits until every queue is empty and every stream group has caught up (or 15 s pass).</summary>
    private static async Task WaitQuietAsync(IMessageTransport transport, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        var quietSince = (DateTime?)null;
        while (DateTime.UtcNow < deadline)
        {
            var s = await transport.GetStatusAsync(ct);
            var busy = s.Queues.Where(q => !q.Name.StartsWith('$')).Sum(q => q.Ready + q.InFlight + q.Delayed) + s.Groups.Sum(g => g.Lag);
            if (busy == 0)
            {
                quietSince ??= DateTime.UtcNow;
                if (DateTime.UtcNow - quietSince > TimeSpan.FromMilliseconds(300)) return;
            }
            else quietSince = null;
            await Task.Delay(50, ct);
        }
    }

    /// <summary>Lets handlers reach the bus (the demo runs without a DI container).</summary>
    private sealed class BusServices : IServiceProvider
    {
        public MessageBus? Bus { get; set; }

        public object? GetService(Type serviceType) => serviceType == typeof(IMessageBus) || serviceType == typeof(MessageBus) ? Bus : null;
    }
}
