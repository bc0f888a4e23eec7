using System.Diagnostics;

namespace Factum.Messaging;

/// <summary>
/// Factum's <see cref="ActivitySource"/>, named <c>Factum</c>: add it to OpenTelemetry with <c>AddSource("Factum")</c>.
/// Metrics are per instance: see <see cref="FactumMetrics"/> (<c>AddMeter("Factum")</c>).
/// </summary>
public static class FactumDiagnostics
{
    /// <summary>The name of the activity source and of the meter.</summary>
    public const string Name = "Factum";

    /// <summary>Producer and consumer spans.</summary>
    public static ActivitySource ActivitySource { get; } = new(Name);
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
