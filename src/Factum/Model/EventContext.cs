namespace Factum;

/// <summary>
/// The ambient causal context: while a handler handles a message, the events it appends inherit the message's
/// correlation id and take the message's id as their causation id, without the handler passing them along.
/// </summary>
/// <example>
/// <code>
/// using (EventContext.CausedBy(handledEvent))
/// {
///     await store.AppendAsync(stream, ExpectedVersion.Any, [newEvent]); // correlated and caused by handledEvent
/// }
/// </code>
/// </example>
/// <remarks>The context flows with the async call chain (<see cref="AsyncLocal{T}"/>) and is restored on dispose.</remarks>
public static class EventContext
{
    private static readonly AsyncLocal<CausalScope?> Ambient = new();

    /// <summary>The current correlation id, if a scope is active (an explicit scope, else the message being handled).</summary>
    public static string? CorrelationId => Ambient.Value?.CorrelationId ?? Messaging.MessageContext.Current?.CorrelationId;

    /// <summary>The current causation id, if a scope is active (an explicit scope, else the id of the message being handled).</summary>
    public static string? CausationId => Ambient.Value is { } scope ? scope.CausationId : Messaging.MessageContext.Current?.MessageId.ToString();

    /// <summary>Starts a scope in which new events are caused by <paramref name="cause"/>.</summary>
    public static IDisposable CausedBy(RecordedEvent cause) => Begin(cause.CorrelationId, cause.EventId.ToString());

    /// <summary>Starts a scope with explicit ids (for example from an incoming HTTP request or message).</summary>
    public static IDisposable Begin(string correlationId, string? causationId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(correlationId);
        var previous = Ambient.Value;
        Ambient.Value = new CausalScope(correlationId, causationId);
        return new Restore(previous);
    }

    private sealed record CausalScope(string CorrelationId, string? CausationId);

    private sealed class Restore(CausalScope? previous) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            Ambient.Value = previous;
        }
    }
}
