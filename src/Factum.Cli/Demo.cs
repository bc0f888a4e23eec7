using System.Security.Cryptography;
using System.Text;

namespace Factum.Cli;

// The demo domain: typed events registered with the code-first registry.
[EventType("OrderPlaced", Owner = "sales", Description = "A customer placed an order.")]
internal sealed record OrderPlaced(string OrderId, string CustomerId, decimal Total, string[] Items);

[EventType("PaymentRequested", Owner = "billing")]
internal sealed record PaymentRequested(string PaymentId, string OrderId, decimal Amount);

[EventType("PaymentCaptured", Owner = "billing", Classification = EventClassification.Integration)]
internal sealed record PaymentCaptured(string PaymentId, string OrderId, decimal Amount);

[EventType("PaymentDeclined", Owner = "billing", Classification = EventClassification.Integration)]
internal sealed record PaymentDeclined(string PaymentId, string OrderId, string Reason);

[EventType("ShipmentScheduled", Owner = "shipping")]
internal sealed record ShipmentScheduled(string ShipmentId, string OrderId, string Carrier);

[EventType("ShipmentDispatched", Owner = "shipping", Classification = EventClassification.Integration)]
internal sealed record ShipmentDispatched(string ShipmentId, string OrderId, string TrackingNumber);

[EventType("OrderCompleted", Owner = "sales")]
internal sealed record OrderCompleted(string OrderId);

[EventType("OrderCancelled", Owner = "sales")]
internal sealed record OrderCancelled(string OrderId, string Reason);

[EventType("StockReserved", Owner = "warehouse")]
internal sealed record StockReserved(string OrderId, string Item);

/// <summary>The warehouse aggregate's state: which orders it has reserved stock for.</summary>
internal sealed record Warehouse(string[] ReservedOrders, int Reservations);

/// <summary>
/// Writes a small order-fulfilment history: each order's process is one correlation id; every event's causation id
/// points at the event that caused it (through <see cref="EventContext"/>). Event ids are derived from names, so running
/// the demo twice is an idempotent retry that writes nothing new.
/// </summary>
internal static class Demo
{
    public static async Task<int> RunAsync(Backend backend, Output output, CancellationToken ct)
    {
        var store = backend.Store;
        var registry = new EventTypeRegistry().RegisterAssembly(typeof(Demo).Assembly);
        var orders = new (string Id, string Customer, decimal Total, string[] Items, bool PaymentOk)[]
        {
            ("1001", "c-ann", 59.90m, ["book", "pen"], true),
            ("1002", "c-bob", 1200.00m, ["laptop"], true),
            ("1003", "c-cho", 15.00m, ["mug"], false),
        };
        var written = 0;
        var total = 0;
        // What the demo did not do, and why: said at the end, so a store that holds other data is never damaged or hidden.
        var notDone = new List<string>();
        var skippedOrders = new HashSet<string>(StringComparer.Ordinal);
        foreach (var o in orders)
        {
            try
            {
                await WriteOrderAsync(o);
            }
            catch (WrongExpectedVersionException ex)
            {
                // The store already holds other events in this order's streams (not the demo's): leave them alone.
                skippedOrders.Add(o.Id);
                notDone.Add($"order {o.Id} was not completed: stream {ex.StreamId} holds events the demo did not write, so the demo left that stream as it was ({ex.Message})");
            }
        }

        async Task WriteOrderAsync((string Id, string Customer, decimal Total, string[] Items, bool PaymentOk) o)
        {
            var orderStream = StreamId.For("Order", o.Id);
            var paymentStream = StreamId.For("Payment", $"P{o.Id}");
            var shipmentStream = StreamId.For("Shipment", $"S{o.Id}");

            async Task<RecordedEvent> Write(StreamId stream, object e, int n)
            {
                var data = registry.Encode(e, DemoId($"{stream}:{n}"), new Dictionary<string, string> { ["source"] = "factum-demo" });
                var r = await store.AppendAsync(stream, n == 0 ? ExpectedVersion.NoStream : ExpectedVersion.Exactly(n - 1), [data], ct);
                total++;
                if (r.Written) written++;
                await foreach (var rec in store.ReadStreamAsync(stream, new ReadStreamOptions { From = n, MaxCount = 1 }, ct)) return rec;
                throw new InvalidOperationException("The event just appended was not found.");
            }

            var placed = await Write(orderStream, new OrderPlaced(o.Id, o.Customer, o.Total, o.Items), 0);
            RecordedEvent requested;
            using (EventContext.CausedBy(placed)) requested = await Write(paymentStream, new PaymentRequested($"P{o.Id}", o.Id, o.Total), 0);
            if (!o.PaymentOk)
            {
                RecordedEvent declined;
                using (EventContext.CausedBy(requested)) declined = await Write(paymentStream, new PaymentDeclined($"P{o.Id}", o.Id, "card expired"), 1);
                using (EventContext.CausedBy(declined)) await Write(orderStream, new OrderCancelled(o.Id, "payment declined"), 1);
                return;
            }
            RecordedEvent captured, scheduled, dispatched;
            using (EventContext.CausedBy(requested)) captured = await Write(paymentStream, new PaymentCaptured($"P{o.Id}", o.Id, o.Total), 1);
            using (EventContext.CausedBy(captured)) scheduled = await Write(shipmentStream, new ShipmentScheduled($"S{o.Id}", o.Id, "DHL"), 0);
            using (EventContext.CausedBy(scheduled)) dispatched = await Write(shipmentStream, new ShipmentDispatched($"S{o.Id}", o.Id, $"TRK-{o.Id}"), 1);
            using (EventContext.CausedBy(dispatched)) await Write(orderStream, new OrderCompleted(o.Id), 1);
        }

        // An aggregate with snapshots: the warehouse reserves stock for each order's items (once: re-running decides nothing).
        var aggregates = new Factum.Aggregates.AggregateStore(store, registry, backend.Snapshots);
        var warehouse = new Factum.Aggregates.AggregateDefinition<Warehouse>("Warehouse", () => new Warehouse([], 0),
            (w, e) => e is StockReserved r ? new Warehouse(w.ReservedOrders.Contains(r.OrderId) ? w.ReservedOrders : [.. w.ReservedOrders, r.OrderId], w.Reservations + 1) : w)
        { SnapshotEvery = 2 };
        foreach (var o in orders.Where(o => !skippedOrders.Contains(o.Id)))
            await aggregates.HandleAsync(warehouse, "main", w => w.ReservedOrders.Contains(o.Id) ? [] : o.Items.Select(i => (object)new StockReserved(o.Id, i)), cancellationToken: ct);
        var loadedWarehouse = await aggregates.LoadAsync(warehouse, "main", ct);

        var all = new List<RecordedEvent>();
        await foreach (var e in store.ReadAllAsync(new ReadAllOptions { Filter = new EventFilter { Categories = ["Order", "Payment", "Shipment"] } }, ct))
            if (e.Metadata.TryGetValue("source", out var s) && s == "factum-demo") all.Add(e);

        if (output.Json)
        {
            foreach (var e in all) output.Event(e);
            return ExitCodes.Success;
        }
        output.Writer.WriteLine(written == total
            ? $"Wrote {written} events for {orders.Length} orders into the store."
            : $"The demo events were already in the store: {total - written} of {total} recognised as retries (idempotent by event id), {written} new.");
        output.Writer.WriteLine();
        output.Table(["POSITION", "STREAM", "VERSION", "TYPE", "CORRELATION", "CAUSED BY"],
            all.Select(e => new[]
            {
                Output.Inv(e.Position.Value), e.StreamId.Value, Output.Inv(e.StreamVersion.Value), e.Type,
                e.CorrelationId[..8] + "…",
                e.CausationId is { } c ? all.FirstOrDefault(x => x.EventId.ToString() == c)?.Type ?? c : "-",
            }));
        output.Writer.WriteLine();
        output.Writer.WriteLine($"Aggregate Warehouse-main: {loadedWarehouse.State.Reservations} reservations for {loadedWarehouse.State.ReservedOrders.Length} orders, version {loadedWarehouse.Version}, loaded from the snapshot at version {loadedWarehouse.SnapshotVersion?.ToString() ?? "-"} plus {loadedWarehouse.EventsReplayed} event(s).");
        output.Writer.WriteLine();
        if (backend.Projections is { } models)
        {
            foreach (var projection in DemoProjections.All(registry))
            {
                // The demo's projections park what they cannot apply (events someone else appended, say) and go on.
                if (!await DemoProjections.CatchUpAsync(models, projection, null, Factum.Subscriptions.FailureAction.Park, null, follow: false, ct))
                    throw new InvalidOperationException($"Projection {projection.Name} stopped; 'factum projections status {projection.Name}' says why.");
                output.Writer.WriteLine($"Projection {projection.Name}:");
                foreach (var (k, doc) in await models.QueryAsync(projection.Name, null, ct)) output.Writer.WriteLine($"  {k}: {doc}");
                var parked = await models.ListParkedAsync(projection.Name, ct);
                if (parked.Count > 0)
                {
                    notDone.Add($"projection {projection.Name} left out {parked.Count} event(s) it cannot apply, e.g. {parked[0].Type} at position {parked[0].Position} in {parked[0].StreamId}: {parked[0].ErrorMessage} (factum projections parked {projection.Name}).");
                }
            }
            output.Writer.WriteLine();
        }
        else
        {
            notDone.Add($"the read models orders-by-customer and revenue-per-day were not built: the {backend.Choice.Store} store has no read-model store for projections yet (a sqlite: store has).");
        }
        await DemoMessaging.RunAsync(backend, registry, output, ct);
        if (all.FirstOrDefault(e => e.StreamId.Category == "Order") is { } firstOrder)
        {
            output.Writer.WriteLine($"The causation tree of {firstOrder.StreamId} (factum trace {firstOrder.CorrelationId}):");
            output.Writer.Write((await Cli.TraceAsync(store, firstOrder.CorrelationId, ct)).Render());
            output.Writer.WriteLine();
        }
        if (notDone.Count > 0)
        {
            output.Writer.WriteLine("What the demo did not do, and why:");
            foreach (var line in notDone) output.Writer.WriteLine("  - " + line);
            output.Writer.WriteLine();
        }
        output.Writer.WriteLine("Try: factum read --stream Order-1001   |   factum read-all --category Payment   |   factum projections list   |   factum projections query orders-by-customer   |   factum verify");
        output.Writer.WriteLine("     factum topics   |   factum queues   |   factum groups list   |   factum dlq list   |   factum send --queue payments --type CapturePayment --body '{\"orderId\":\"1\",\"amount\":5}'");
        return ExitCodes.Success;
    }

    /// <summary>A stable UUID (version 8, name-based) so the demo is idempotent across runs.</summary>
    private static EventId DemoId(string name)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes("factum-demo:" + name));
        hash[6] = (byte)((hash[6] & 0x0F) | 0x80);
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);
        return new EventId(new Guid(hash.AsSpan(0, 16), bigEndian: true));
    }
}
