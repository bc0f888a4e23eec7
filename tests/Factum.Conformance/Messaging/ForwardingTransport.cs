using System.Runtime.CompilerServices;
using Factum.Messaging;

namespace Factum.Conformance.Messaging;

/// <summary>
/// A transport that forwards everything to another, for tests that change one behaviour (a lost ack, a paused ack, a
/// lying ack): override <see cref="Wrap"/> to hand out a <see cref="ForwardingInbound"/> of your own. It owns nothing:
/// disposing it leaves the inner transport to whoever made it.
/// </summary>
public class ForwardingTransport(ITransport inner) : ITransport
{
    public ITransport Inner { get; } = inner;

    public string Name => Inner.Name;

    public TransportCapabilities Capabilities => Inner.Capabilities;

    public ValueTask DeclareQueueAsync(QueueName queue, CancellationToken cancellationToken = default) => Inner.DeclareQueueAsync(queue, cancellationToken);

    public ValueTask DeclareSubscriptionAsync(TopicName topic, GroupName group, CancellationToken cancellationToken = default) => Inner.DeclareSubscriptionAsync(topic, group, cancellationToken);

    public ValueTask PublishAsync(TopicName topic, IReadOnlyList<TransportMessage> messages, CancellationToken cancellationToken = default) => Inner.PublishAsync(topic, messages, cancellationToken);

    public ValueTask SendAsync(QueueName queue, IReadOnlyList<TransportMessage> messages, DateTimeOffset? deliverAt = null, CancellationToken cancellationToken = default) => Inner.SendAsync(queue, messages, deliverAt, cancellationToken);

    public async IAsyncEnumerable<InboundMessage> ConsumeAsync(QueueName queue, ConsumeOptions options, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var m in Inner.ConsumeAsync(queue, options, cancellationToken)) yield return Wrap(queue, m);
    }

    /// <summary>What the consumer gets for the inner transport's delivery <paramref name="delivery"/> (itself, by default).</summary>
    protected virtual InboundMessage Wrap(QueueName queue, InboundMessage delivery) => delivery;

    public ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }
}

/// <summary>A delivery that settles the inner one: override the settlement a test changes.</summary>
public class ForwardingInbound(InboundMessage inner) : InboundMessage(inner.Queue, inner.Message, inner.Attempt)
{
    protected InboundMessage Inner { get; } = inner;

    protected override ValueTask<bool> OnAckAsync(CancellationToken cancellationToken) => Inner.AckAsync(cancellationToken);

    protected override ValueTask<bool> OnNackAsync(TimeSpan delay, CancellationToken cancellationToken) => Inner.NackAsync(delay, cancellationToken);

    protected override ValueTask<bool> OnTerminateAsync(FailureInfo failure, CancellationToken cancellationToken) => Inner.TerminateAsync(failure, cancellationToken);

    protected override ValueTask<bool> OnInProgressAsync(CancellationToken cancellationToken) => Inner.InProgressAsync(cancellationToken);
}
