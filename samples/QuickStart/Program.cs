// <quickstart>
using Factum;
using Factum.Sqlite;

var registry = new EventTypeRegistry()                                 // rejects names like PlaceOrder or OrderCreate
    .Register<OrderPlaced>()
    .Register<ShipmentScheduled>();
await using var store = new SqliteEventStore("data/factum.db");        // or new InMemoryEventStore() in unit tests

var orderId = Guid.NewGuid().ToString("N")[..8];                       // a new order on every run
var order = StreamId.For("Order", orderId);                            // "Order-<id>", category "Order"
var result = await store.AppendAsync(order, ExpectedVersion.NoStream,  // returns only when durable (fsync)
    [registry.Encode(new OrderPlaced(orderId, 99.90m))]);
Console.WriteLine($"appended to {result.StreamId} at position {result.LastPosition}");

await foreach (var recorded in store.ReadStreamAsync(order))
{
    var decoded = registry.Decode(recorded);                           // upcast to the latest schema version
    Console.WriteLine($"{recorded.StreamVersion} {recorded.Type} {recorded.EventId} {decoded.Event}");

    // A handler that appends while handling an event passes the process on:
    // <caused-by>
    using (EventContext.CausedBy(recorded))                            // new events inherit its correlation id, and its id becomes their causation id
        await store.AppendAsync(StreamId.For("Shipment", orderId), ExpectedVersion.NoStream,
            [registry.Encode(new ShipmentScheduled(orderId, "DHL"))]);
    // </caused-by>
}

await foreach (var shipment in store.ReadStreamAsync(StreamId.For("Shipment", orderId)))
    Console.WriteLine($"{shipment.Type} caused by {shipment.CausationId}, correlation {shipment.CorrelationId}");

[EventType("OrderPlaced", Owner = "sales")]
public sealed record OrderPlaced(string OrderId, decimal Total);

[EventType("ShipmentScheduled", Owner = "shipping")]
public sealed record ShipmentScheduled(string OrderId, string Carrier);
// </quickstart>
