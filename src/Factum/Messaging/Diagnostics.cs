using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Factum.Messaging;

/// <summary>
/// Factum's <see cref="ActivitySource"/> and <see cref="Meter"/>, both named <c>Factum</c>. Add them to OpenTelemetry with
/// <c>AddSource("Factum")</c> and <c>AddMeter("Factum")</c>.
/// </summary>
/// <remarks>
/// Metrics: <c>factum.messages.published</c>, <c>factum.messages.handled</c>, <c>factum.messages.failed</c>,
/// <c>factum.messages.retried</c>, <c>factum.messages.dead_lettered</c> (counters, tagged with the message type and
/// the destination or group), <c>factum.handler.duration</c> (histogram, ms), and the observable gauges
/// <c>factum.consumer.lag</c> (per topic, group and partition), <c>factum.queue.depth</c> (ready messages per queue) and
/// <c>factum.dlq.depth</c> (per source and group), refreshed by each running bus's housekeeping.
/// </remarks>
public static class FactumDiagnostics
{
    /// <summary>The name of the activity source and the meter.</summary>
    public const string Name = "Factum";

    /// <summary>Producer and consumer spans.</summary>
    public static ActivitySource ActivitySource { get; } = new(Name);

    /// <summary>The messaging metrics.</summary>
    public static Meter Meter { get; } = new(Name);

    internal static readonly Counter<long> Published = Meter.CreateCounter<long>("factum.messages.published", "{message}", "Messages published or sent.");
    internal static readonly Counter<long> Handled = Meter.CreateCounter<long>("factum.messages.handled", "{message}", "Messages handled successfully.");
    internal static readonly Counter<long> Failed = Meter.CreateCounter<long>("factum.messages.failed", "{message}", "Handler invocations that threw.");
    internal static readonly Counter<long> Retried = Meter.CreateCounter<long>("factum.messages.retried", "{message}", "Messages scheduled for a delayed retry.");
    internal static readonly Counter<long> DeadLettered = Meter.CreateCounter<long>("factum.messages.dead_lettered", "{message}", "Messages moved to the dead-letter queue.");
    internal static readonly Histogram<double> HandlerDuration = Meter.CreateHistogram<double>("factum.handler.duration", "ms", "Handler run time.");

    private static readonly List<WeakReference<MessageBus>> Buses = [];

    static FactumDiagnostics()
    {
        Meter.CreateObservableGauge("factum.consumer.lag", () => Observe(s => s.Groups.SelectMany(g => g.Partitions.Select(p =>
            new Measurement<long>(p.Lag, new("topic", g.Topic), new("group", g.Group), new("partition", p.Partition))))), "{message}", "Stream records a consumer group has not processed, per partition.");
        Meter.CreateObservableGauge("factum.queue.depth", () => Observe(s => s.Queues.Select(q =>
            new Measurement<long>(q.Ready, new KeyValuePair<string, object?>("queue", q.Name)))), "{message}", "Ready messages per queue (pub/sub subscription queues included).");
        Meter.CreateObservableGauge("factum.dlq.depth", () => Observe(s => s.DeadLetters.Select(d =>
            new Measurement<long>(d.Count, new("source", d.Source), new("group", d.Group)))), "{message}", "Dead letters per source.");
        Meter.CreateObservableGauge("factum.subscription.lag", () => Components("subscription", c => new Measurement<long>(c.Lag, new KeyValuePair<string, object?>("subscription", c.Name))), "{event}", "Events a subscription is behind the head.");
        Meter.CreateObservableGauge("factum.subscription.up", () => Components("subscription", c => new Measurement<long>(c.Up ? 1 : 0, new("subscription", c.Name), new("state", c.State))), "1", "1 while a subscription runs (catching up or live), 0 when stopped or faulted.");
        Meter.CreateObservableGauge("factum.projection.lag", () => Components("projection", c => new Measurement<long>(c.Lag, new KeyValuePair<string, object?>("projection", c.Name))), "{event}", "Events a projection is behind the head.");
        Meter.CreateObservableGauge("factum.projection.up", () => Components("projection", c => new Measurement<long>(c.Up ? 1 : 0, new("projection", c.Name), new("state", c.State))), "1", "1 while a projection runs, 0 when stopped or faulted.");
    }

    /// <summary>The last status of a long-running component (subscription, projection), refreshed by the component itself.</summary>
    internal sealed class ComponentStatus(string kind, string name)
    {
        public string Kind { get; } = kind;

        public string Name { get; } = name;

        public long Lag { get; set; }

        public bool Up { get; set; }

        public string State { get; set; } = "NotStarted";
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<ComponentStatus, byte> LiveComponents = new();

    /// <summary>Reports a component's status in the gauges until <see cref="Untrack"/>.</summary>
    internal static ComponentStatus TrackComponent(string kind, string name)
    {
        var c = new ComponentStatus(kind, name);
        LiveComponents[c] = 0;
        return c;
    }

    internal static void Untrack(ComponentStatus component) => LiveComponents.TryRemove(component, out _);

    private static List<Measurement<long>> Components(string kind, Func<ComponentStatus, Measurement<long>> measure) =>
        LiveComponents.Keys.Where(c => c.Kind == kind).Select(measure).ToList();

    internal static void Track(MessageBus bus)
    {
        lock (Buses) Buses.Add(new WeakReference<MessageBus>(bus));
    }

    private static List<Measurement<long>> Observe(Func<TransportStatus, IEnumerable<Measurement<long>>> select)
    {
        List<TransportStatus> statuses = [];
        lock (Buses)
        {
            Buses.RemoveAll(w => !w.TryGetTarget(out _));
            foreach (var w in Buses) if (w.TryGetTarget(out var b) && b.LastStatus is { } s) statuses.Add(s);
        }
        return statuses.SelectMany(select).ToList();
    }
}

/// <summary>A request got no reply in time.</summary>
public sealed class RequestTimeoutException : TimeoutException
{
    /// <summary>Creates the exception.</summary>
    public RequestTimeoutException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public RequestTimeoutException() { }

    /// <summary>Creates the exception.</summary>
    public RequestTimeoutException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A request was not sent because no consumer is alive on its queue.</summary>
public sealed class NoResponderException : FactumException
{
    /// <summary>Creates the exception.</summary>
    public NoResponderException(string message) : base(message) { }
}

/// <summary>The responder failed for good (its request was dead-lettered); the message says why.</summary>
public sealed class RequestFailedException : FactumException
{
    /// <summary>Creates the exception.</summary>
    public RequestFailedException(string message) : base(message) { }
}
