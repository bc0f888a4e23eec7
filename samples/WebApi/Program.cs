using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Factum;
using Factum.Aggregates;
using Factum.Messaging;
using Factum.Projections;
using Factum.Sqlite;

// An order API on Factum, in one SQLite file: a POST runs a command on the Order aggregate (AggregateStore: load,
// decide, append with optimistic concurrency), a projection keeps the "orders" read model that the GET serves, and the
// outbox relay publishes the stored events to the message bus, where a "shipping" subscriber receives them.
// Run it with `dotnet run --project samples/WebApi`, then:
//   curl -X POST localhost:5000/orders -H 'content-type: application/json' -d '{"orderId":"42","customer":"ann","total":99.90}'
//   curl -X POST localhost:5000/orders/42/pay
//   curl localhost:5000/orders/42            (the projection; eventually consistent: 404 for a moment after the POST)
//   curl localhost:5000/outbox/published     (what the shipping subscriber received through the outbox)
var builder = WebApplication.CreateBuilder(args);
builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);   // keep "Now listening on", drop per-request lines
var path = builder.Configuration["Factum:Path"] ?? "data/factum.db";

// <webapi-services>
builder.Services.AddFactum(b => b
    .UseSqlite(path).UseSqliteTransport()                                // events, read models and messages in one file
    .AddEventType<OrderPlaced>().AddEventType<OrderPaid>()
    .AddHandler<OrderPlaced>(ShippingSubscriber.HandleAsync, h => h.Group = "shipping")   // receives what the outbox publishes
    .AddHandler<OrderPaid>(ShippingSubscriber.HandleAsync, h => h.Group = "shipping"));
builder.Services.AddSingleton(sp => (SqliteEventStore)sp.GetRequiredService<IEventStore>());
builder.Services.AddSingleton(sp => new AggregateStore(sp.GetRequiredService<IEventStore>(), sp.GetRequiredService<EventTypeRegistry>()));
builder.Services.AddSingleton(sp => new SqliteReadModels(sp.GetRequiredService<SqliteEventStore>()));
builder.Services.AddHostedService<ProjectionAndOutbox>();               // starts after the bus: its subscribers exist first
// </webapi-services>

var app = builder.Build();

// <webapi-endpoints>
app.MapPost("/orders", async (PlaceOrder command, AggregateStore aggregates) =>
{
    var result = await aggregates.HandleAsync(Order.Definition, command.OrderId, order => order.Place(command));
    return result.NewEvents.Count == 0
        ? Results.Conflict(new { error = $"order {command.OrderId} was already placed" })
        : Results.Accepted($"/orders/{command.OrderId}", new { command.OrderId, version = result.Aggregate.Version?.Value });
});

app.MapPost("/orders/{id}/pay", async (string id, AggregateStore aggregates) =>
{
    var result = await aggregates.HandleAsync(Order.Definition, id, order => order.Pay(id));
    return result.NewEvents.Count == 0
        ? Results.Conflict(new { error = $"order {id} is not placed or already paid" })
        : Results.Accepted($"/orders/{id}", new { orderId = id, version = result.Aggregate.Version?.Value });
});

app.MapGet("/orders/{id}", async (string id, SqliteReadModels readModels) =>
    await readModels.GetJsonAsync(OrdersProjection.Name, id) is { } json
        ? Results.Ok(JsonNode.Parse(json)!["view"])                    // the stored document is { view, position }
        : Results.NotFound());

app.MapGet("/outbox/published", () => ShippingSubscriber.Received.ToArray());
// </webapi-endpoints>

app.Run();

public sealed record PlaceOrder(string OrderId, string Customer, decimal Total);

[EventType("OrderPlaced", Owner = "sales", Classification = EventClassification.Integration)]
public sealed record OrderPlaced(string OrderId, string Customer, decimal Total);

[EventType("OrderPaid", Owner = "sales", Classification = EventClassification.Integration)]
public sealed record OrderPaid(string OrderId, decimal Amount);

/// <summary>The Order aggregate: its state, how events change it, and the decisions of its commands.</summary>
public sealed record Order(bool Placed, bool Paid, decimal Total)
{
    public static AggregateDefinition<Order> Definition { get; } = new("Order", () => new Order(false, false, 0), (order, e) => e switch
    {
        OrderPlaced placed => order with { Placed = true, Total = placed.Total },
        OrderPaid => order with { Paid = true },
        _ => order,
    });

    public IEnumerable<object> Place(PlaceOrder command) => Placed ? [] : [new OrderPlaced(command.OrderId, command.Customer, command.Total)];

    public IEnumerable<object> Pay(string orderId) => Placed && !Paid ? [new OrderPaid(orderId, Total)] : [];
}

/// <summary>The read model behind GET /orders/{id}: one document per order.</summary>
public sealed record OrderView(string OrderId, string? Customer = null, decimal Total = 0, string Status = "unknown");

public static class OrdersProjection
{
    public const string Name = "orders";

    public static DocumentProjection<OrderView> Create(EventTypeRegistry registry) =>
        new DocumentProjection<OrderView>(Name, 1, registry, id => new OrderView(id))
            .On<OrderPlaced>(e => e.OrderId, (view, e) => view with { Customer = e.Customer, Total = e.Total, Status = "placed" })
            .On<OrderPaid>(e => e.OrderId, (view, e) => view with { Status = "paid" });
}

// <outbox>
/// <summary>Runs the projection and the outbox relay for the lifetime of the app.</summary>
public sealed class ProjectionAndOutbox(SqliteEventStore store, EventTypeRegistry registry, IMessageTransport transport) : IHostedService, IAsyncDisposable
{
    private SqliteProjectionRunner? _projection;
    private OutboxRelay? _relay;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _projection = new SqliteProjectionRunner(store, OrdersProjection.Create(registry));
        await _projection.StartAsync(cancellationToken);
        // The store is the outbox: every stored OrderPlaced and OrderPaid is published to the topic named after its type.
        _relay = new OutboxRelay(store, transport, new SqliteSubscriptionStore(store),
            new OutboxRelayOptions { Filter = EventFilter.ForEventTypes("OrderPlaced", "OrderPaid") });
        await _relay.StartAsync(cancellationToken);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_relay is not null) await _relay.StopAsync();
        if (_projection is not null) await _projection.StopAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (_relay is not null) await _relay.DisposeAsync();
        if (_projection is not null) await _projection.DisposeAsync();
    }
}
// </outbox>

/// <summary>An integration-event subscriber (group "shipping"); it remembers what it received for GET /outbox/published.</summary>
public static class ShippingSubscriber
{
    public static ConcurrentQueue<string> Received { get; } = new();

    public static Task HandleAsync(OrderPlaced e, MessageContext context, CancellationToken cancellationToken) => Record($"OrderPlaced {e.OrderId}", context);

    public static Task HandleAsync(OrderPaid e, MessageContext context, CancellationToken cancellationToken) => Record($"OrderPaid {e.OrderId}", context);

    private static Task Record(string what, MessageContext context)
    {
        Received.Enqueue(what);
        Console.WriteLine($"outbox published {what} (stream {context.Headers.GetValueOrDefault(MessageHeaders.StreamId)}) -> shipping");
        return Task.CompletedTask;
    }
}
