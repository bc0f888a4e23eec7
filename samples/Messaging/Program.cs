using System.Collections.Concurrent;
using System.Globalization;
using Factum;
using Factum.Messaging;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

// The order-to-payment flow on the generic host, in one SQLite file: OrderPlaced is published, billing sends
// CapturePayment to a queue, and the payment handler captures it. The payment provider has a bug for large amounts:
// that payment fails, is retried (immediately, then with backoff) and goes to the dead-letter queue; after the fix it
// is replayed from there. The program prints what happened and stops by itself (exit code 0 when the flow completed).
var provider = new PaymentProvider();
var captured = new ConcurrentDictionary<string, decimal>();

// <messaging>
var builder = Host.CreateApplicationBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);                       // the sample prints its own story
builder.Services.AddFactum(b => b
    .UseSqlite("data/factum.db").UseSqliteTransport()                    // messages live in the same file
    .AddEventType<OrderPlaced>().AddCommand<CapturePayment>()
    .AddHandler<OrderPlaced>(async (e, ctx, ct) =>                       // pub/sub: every group gets every event
    {
        await ctx.SendAsync(new CapturePayment(e.OrderId, e.Total), cancellationToken: ct);
        Console.WriteLine($"[billing]  OrderPlaced {e.OrderId} -> sent CapturePayment {e.Total:0.00}");
    }, h => h.Group = "billing")
    .AddHandler<PaymentHandler>(h =>                                     // queue: each command is handled once
    {
        h.Concurrency = 4;
        h.Retry = new MessageRetryPolicy { ImmediateRetries = 1, DelayedRetries = 2, InitialDelay = TimeSpan.FromMilliseconds(200) };
    }));
builder.Services.AddSingleton(provider).AddSingleton(captured);
using var host = builder.Build();
await host.StartAsync();                                                 // a hosted service runs the handlers

var bus = host.Services.GetRequiredService<IMessageBus>();
await bus.PublishAsync(new OrderPlaced("42", 99.90m));                   // durable when it returns
await bus.PublishAsync(new OrderPlaced("43", 1500.00m));                 // trips the provider's bug
// </messaging>

var transport = host.Services.GetRequiredService<IMessageTransport>();
if (!await Until(async () => captured.ContainsKey("42") && await CountDeadLetters(transport) > 0))
    return Fail("order 42 was not captured or order 43 never reached the dead-letter queue");

// <dead-letters>
await foreach (var d in transport.ListDeadLettersAsync(DeadLetterFilter.All))
    Console.WriteLine($"[dlq]      {d.Message.Type} from {d.Source} after {d.Failure.Attempts} attempts: {d.Failure.ExceptionType}: {d.Failure.Message}");

provider.Fixed = true;                                                   // the fix ships
var replayed = await transport.ReplayDeadLettersAsync(new DeadLetterFilter { Source = "CapturePayment" });
Console.WriteLine($"[dlq]      replayed {replayed} message(s) after the fix");
// </dead-letters>

if (!await Until(async () => captured.ContainsKey("43") && await CountDeadLetters(transport) == 0))
    return Fail("the replayed payment of order 43 was not captured");
await host.StopAsync();
Console.WriteLine($"done: {captured.Count} payments captured, {replayed} replayed from the dead-letter queue, 0 dead letters left");
return 0;

static async Task<int> CountDeadLetters(IMessageTransport transport)
{
    var n = 0;
    await foreach (var _ in transport.ListDeadLettersAsync(DeadLetterFilter.All)) n++;
    return n;
}

// Waits for the flow (at most 30 s): the handlers run on the host's consumers, not on this thread.
static async Task<bool> Until(Func<Task<bool>> done)
{
    var deadline = DateTime.UtcNow.AddSeconds(30);
    while (DateTime.UtcNow < deadline)
    {
        if (await done()) return true;
        await Task.Delay(50);
    }
    return false;
}

static int Fail(string why)
{
    Console.Error.WriteLine("error: " + why);
    return 1;
}

// <messages>
[EventType("OrderPlaced", Owner = "sales")]
public sealed record OrderPlaced(string OrderId, decimal Total);

[EventType("CapturePayment", Kind = MessageKind.Command, Owner = "billing")]
public sealed record CapturePayment(string OrderId, decimal Amount);

/// <summary>The payment provider: until the fix, amounts of 1,000 or more do not fit its 6-character field.</summary>
public sealed class PaymentProvider
{
    public volatile bool Fixed;

    public void Charge(CapturePayment payment)
    {
        if (payment.Amount >= 1000 && !Fixed)
            throw new InvalidOperationException($"amount {payment.Amount.ToString("0.00", CultureInfo.InvariantCulture)} does not fit the provider's 6-character field");
    }
}

/// <summary>Handles CapturePayment from its queue; created per message from the host's services.</summary>
public sealed class PaymentHandler(PaymentProvider provider, ConcurrentDictionary<string, decimal> captured) : IMessageHandler<CapturePayment>
{
    public Task HandleAsync(CapturePayment message, MessageContext context, CancellationToken cancellationToken)
    {
        try
        {
            provider.Charge(message);
        }
        catch (InvalidOperationException ex)
        {
            Console.WriteLine($"[payments] CapturePayment {message.OrderId}: delivery {context.Attempt} failed: {ex.Message}");
            throw;
        }
        var replayed = context.Headers.ContainsKey(MessageHeaders.Replayed) ? " (replayed from the dead-letter queue)" : "";
        Console.WriteLine($"[payments] CapturePayment {message.OrderId}: captured {message.Amount:0.00}{replayed}");
        captured[message.OrderId] = message.Amount;
        return Task.CompletedTask;
    }
}
// </messages>
