using System.Diagnostics.Metrics;
using Factum.Messaging;

namespace Factum;

/// <summary>
/// Factum's metrics for one Factum instance (a store with its bus, subscriptions, projections and relay): a
/// <see cref="Meter"/> named <c>Factum</c>, created through the application's <see cref="IMeterFactory"/> and tagged
/// <c>factum.instance</c>, so that two stores in one process report separately. <c>AddFactum</c> registers one from the
/// container's <see cref="IMeterFactory"/> (name it with <see cref="Microsoft.Extensions.DependencyInjection.FactumBuilder.WithInstanceName"/>); components
/// built by hand take one in their options, or report through <see cref="Default"/>.
/// </summary>
/// <remarks>
/// Instruments: <c>factum.messages.published</c>, <c>factum.messages.handled</c>, <c>factum.messages.failed</c>,
/// <c>factum.messages.retried</c>, <c>factum.messages.dead_lettered</c> (counters, tagged with the message type and
/// the destination or group), <c>factum.handler.duration</c> (histogram, ms), and the observable gauges
/// <c>factum.consumer.lag</c> (per topic, group and partition), <c>factum.queue.depth</c> (ready messages per queue),
/// <c>factum.dlq.depth</c> (per source and group), refreshed by each running bus's housekeeping, and
/// <c>factum.subscription.lag|up</c> and <c>factum.projection.lag|up</c>. Every gauge measurement also carries
/// <c>factum.instance</c>.
/// </remarks>
public sealed class FactumMetrics : IDisposable
{
    /// <summary>The meter's name (<c>AddMeter("Factum")</c> in OpenTelemetry).</summary>
    public const string MeterName = FactumDiagnostics.Name;

    /// <summary>The tag naming the instance, on the meter and on every gauge measurement.</summary>
    public const string InstanceTag = "factum.instance";

    private static readonly Lazy<FactumMetrics> s_default = new(() => new FactumMetrics(null, "default"));

    /// <summary>
    /// The instance components report through when they are given none (built by hand, without <c>AddFactum</c>):
    /// one meter of its own, tagged <c>factum.instance=default</c>.
    /// </summary>
    public static FactumMetrics Default => s_default.Value;

    private readonly bool _ownsMeter;
    private readonly KeyValuePair<string, object?> _instanceTag;
    private readonly List<WeakReference<MessageBus>> _buses = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<ComponentStatus, byte> _components = new();

    /// <summary>Creates the metrics of one instance.</summary>
    /// <param name="meterFactory">The application's meter factory (it owns the meter); null creates a meter this object owns.</param>
    /// <param name="instance">The instance's name: the value of <c>factum.instance</c>.</param>
    public FactumMetrics(IMeterFactory? meterFactory, string instance)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instance);
        Instance = instance;
        _instanceTag = new(InstanceTag, instance);
        var options = new MeterOptions(MeterName) { Tags = [_instanceTag] };
        _ownsMeter = meterFactory is null;
        Meter = meterFactory?.Create(options) ?? new Meter(options);
        Published = Meter.CreateCounter<long>("factum.messages.published", "{message}", "Messages published or sent.");
        Handled = Meter.CreateCounter<long>("factum.messages.handled", "{message}", "Messages handled successfully.");
        Failed = Meter.CreateCounter<long>("factum.messages.failed", "{message}", "Handler invocations that threw.");
        Retried = Meter.CreateCounter<long>("factum.messages.retried", "{message}", "Messages scheduled for a delayed retry.");
        DeadLettered = Meter.CreateCounter<long>("factum.messages.dead_lettered", "{message}", "Messages moved to the dead-letter queue.");
        HandlerDuration = Meter.CreateHistogram<double>("factum.handler.duration", "ms", "Handler run time.");
        Meter.CreateObservableGauge("factum.consumer.lag", () => Observe(s => s.Groups.SelectMany(g => g.Partitions.Select(p =>
            new Measurement<long>(p.Lag, new("topic", g.Topic), new("group", g.Group), new("partition", p.Partition), _instanceTag)))), "{message}", "Stream records a consumer group has not processed, per partition.");
        Meter.CreateObservableGauge("factum.queue.depth", () => Observe(s => s.Queues.Select(q =>
            new Measurement<long>(q.Ready, new("queue", q.Name), _instanceTag))), "{message}", "Ready messages per queue (pub/sub subscription queues included).");
        Meter.CreateObservableGauge("factum.dlq.depth", () => Observe(s => s.DeadLetters.Select(d =>
            new Measurement<long>(d.Count, new("source", d.Source), new("group", d.Group), _instanceTag))), "{message}", "Dead letters per source.");
        Meter.CreateObservableGauge("factum.subscription.lag", () => Components("subscription", c => new Measurement<long>(c.Lag, new("subscription", c.Name), _instanceTag)), "{event}", "Events a subscription is behind the head.");
        Meter.CreateObservableGauge("factum.subscription.up", () => Components("subscription", c => new Measurement<long>(c.Up ? 1 : 0, new("subscription", c.Name), new("state", c.State), _instanceTag)), "1", "1 while a subscription runs (catching up or live), 0 when stopped or faulted.");
        Meter.CreateObservableGauge("factum.projection.lag", () => Components("projection", c => new Measurement<long>(c.Lag, new("projection", c.Name), _instanceTag)), "{event}", "Events a projection is behind the head.");
        Meter.CreateObservableGauge("factum.projection.up", () => Components("projection", c => new Measurement<long>(c.Up ? 1 : 0, new("projection", c.Name), new("state", c.State), _instanceTag)), "1", "1 while a projection runs, 0 when stopped or faulted.");
    }

    /// <summary>The instance's name.</summary>
    public string Instance { get; }

    /// <summary>The meter (from the factory when one was given).</summary>
    public Meter Meter { get; }

    internal Counter<long> Published { get; }

    internal Counter<long> Handled { get; }

    internal Counter<long> Failed { get; }

    internal Counter<long> Retried { get; }

    internal Counter<long> DeadLettered { get; }

    internal Histogram<double> HandlerDuration { get; }

    /// <summary>The last status of a long-running component (subscription, projection), refreshed by the component itself.</summary>
    internal sealed class ComponentStatus(string kind, string name)
    {
        public string Kind { get; } = kind;

        public string Name { get; } = name;

        public long Lag { get; set; }

        public bool Up { get; set; }

        public string State { get; set; } = "NotStarted";
    }

    /// <summary>Reports a component's status in the gauges until <see cref="Untrack"/>.</summary>
    internal ComponentStatus TrackComponent(string kind, string name)
    {
        var c = new ComponentStatus(kind, name);
        _components[c] = 0;
        return c;
    }

    internal void Untrack(ComponentStatus component) => _components.TryRemove(component, out _);

    private List<Measurement<long>> Components(string kind, Func<ComponentStatus, Measurement<long>> measure) =>
        _components.Keys.Where(c => c.Kind == kind).Select(measure).ToList();

    /// <summary>Reports the bus's last transport status in the messaging gauges while it lives.</summary>
    internal void Track(MessageBus bus)
    {
        lock (_buses) _buses.Add(new WeakReference<MessageBus>(bus));
    }

    private List<Measurement<long>> Observe(Func<TransportStatus, IEnumerable<Measurement<long>>> select)
    {
        List<TransportStatus> statuses = [];
        lock (_buses)
        {
            _buses.RemoveAll(w => !w.TryGetTarget(out _));
            foreach (var w in _buses) if (w.TryGetTarget(out var b) && b.GaugeStatus is { } s) statuses.Add(s);
        }
        return statuses.SelectMany(select).ToList();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        // A factory's meters are the factory's to dispose.
        if (_ownsMeter) Meter.Dispose();
    }
}
