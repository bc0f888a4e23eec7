using System.Collections.Concurrent;
using System.Text;
using Factum.Messaging;

namespace Factum.Conformance.Messaging;

/// <summary>How a transport enrolls in the transport conformance suites: a fresh, empty transport per test.</summary>
public interface ITransportFactory
{
    /// <summary>Creates a fresh transport whose leases, delays, heartbeats and retention follow <paramref name="clock"/> (the system clock when null).</summary>
    IMessageTransport Create(TimeProvider? clock = null);

    /// <summary>Disposes it and removes its files.</summary>
    ValueTask DestroyAsync(IMessageTransport transport);
}

public sealed record OrderPlaced(string OrderId, int N);

public sealed record OrderShipped(string OrderId);

public sealed record CapturePayment(string OrderId, decimal Amount);

public sealed record GetStock(string Sku);

public sealed record StockLevel(string Sku, int Available);

/// <summary>Shared plumbing: a fresh transport and registry per test, buses tuned for fast tests.</summary>
public abstract class TransportTestBase<TFactory> : IAsyncLifetime where TFactory : ITransportFactory, new()
{
    private readonly TFactory _factory = new();
    private readonly List<MessageBus> _buses = [];
    private IMessageTransport? _transport;

    protected IMessageTransport Transport => _transport ?? throw new InvalidOperationException("Created in InitializeAsync.");

    protected EventTypeRegistry Registry { get; } = NewRegistry();

    protected static EventTypeRegistry NewRegistry()
    {
        var r = new EventTypeRegistry();
        r.Register<OrderPlaced>();
        r.Register<OrderShipped>();
        r.Register<CapturePayment>(o => o.Kind = MessageKind.Command);
        r.Register<GetStock>(o => o.Kind = MessageKind.Query);
        return r;
    }

    protected static MessagingOptions FastOptions(string service = "svc") => new()
    {
        ServiceName = service,
        HeartbeatInterval = TimeSpan.FromMilliseconds(100),
        PollInterval = TimeSpan.FromMilliseconds(20),
        SessionTimeout = TimeSpan.FromSeconds(1),
        MaintenanceInterval = TimeSpan.FromSeconds(1),
    };

    protected static readonly MessageRetryPolicy FastRetry = new() { ImmediateRetries = 0, DelayedRetries = 2, InitialDelay = TimeSpan.FromMilliseconds(30), MaxDelay = TimeSpan.FromMilliseconds(100) };

    /// <summary>The clock the transport judges time by; null for the system clock (a bus's timers need real time).</summary>
    protected virtual TimeProvider? Clock => null;

    public Task InitializeAsync()
    {
        _transport = _factory.Create(Clock);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var b in _buses) await b.DisposeAsync();
        if (_transport is not null) await _factory.DestroyAsync(_transport);
    }

    /// <summary>A started bus on the shared transport (one more process, as far as the transport can tell).</summary>
    protected async Task<MessageBus> StartBus(Action<MessagingBuilder>? configure = null, string service = "svc", MessagingOptions? options = null)
    {
        var builder = new MessagingBuilder();
        configure?.Invoke(builder);
        var bus = new MessageBus(Transport, Registry, builder, options ?? FastOptions(service));
        _buses.Add(bus);
        await bus.StartAsync();
        return bus;
    }

    /// <summary>Enlisted work that any store's session accepts.</summary>
    protected static MessageWork Work(Action work) => MessageWork.For<object>((_, _) =>
    {
        work();
        return ValueTask.CompletedTask;
    });

    protected static TransportMessage Msg(string type = "OrderPlaced", string? key = null, string json = """{"orderId":"o-1","n":1}""", MessageId? id = null) => new()
    {
        Id = id ?? MessageId.New(),
        Type = type,
        Timestamp = DateTimeOffset.UtcNow,
        CorrelationId = "corr-" + Guid.NewGuid().ToString("N")[..8],
        PartitionKey = key,
        Body = Encoding.UTF8.GetBytes(json),
    };

    protected static string Json(TransportMessage m) => Encoding.UTF8.GetString(m.Body.Span);

    protected static async Task Eventually(Func<bool> condition, int timeoutMs = 10_000, string? what = null)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"Timed out waiting for {what ?? "the condition"}.");
            await Task.Delay(10);
        }
    }

    protected static async Task EventuallyAsync(Func<Task<bool>> condition, int timeoutMs = 10_000, string? what = null)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"Timed out waiting for {what ?? "the condition"}.");
            await Task.Delay(10);
        }
    }

    protected async Task<List<DeadLetter>> DeadLetters(DeadLetterFilter? filter = null)
    {
        var list = new List<DeadLetter>();
        await foreach (var d in Transport.ListDeadLettersAsync(filter ?? DeadLetterFilter.All)) list.Add(d);
        return list;
    }

    protected static Settlement Ack(QueueDelivery d, string? inbox = null, params OutgoingMessage[] outgoing) =>
        new() { Kind = SettlementKind.Ack, Delivery = d, Source = new MessageSource(MessageSourceKind.Queue, d.Queue.Value), Inbox = inbox, Outgoing = outgoing };

    protected static FailureInfo Failure(string type = "System.InvalidOperationException", int attempts = 1) =>
        new(type, "it broke", "at Handler.HandleAsync()", attempts, DateTimeOffset.UtcNow.AddSeconds(-1), DateTimeOffset.UtcNow);

    /// <summary>Collects what handlers saw, thread-safely.</summary>
    protected sealed class Log<T>
    {
        private readonly ConcurrentQueue<T> _items = new();

        public void Add(T item) => _items.Enqueue(item);

        public int Count => _items.Count;

        public List<T> Items => _items.ToList();
    }
}
