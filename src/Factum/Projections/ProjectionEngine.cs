using System.Text.Json;
using Factum.Subscriptions;

namespace Factum.Projections;

/// <summary>A projection failed on an event; nothing of that batch (or, inline, of that append) was written.</summary>
public sealed class ProjectionFailedException(string message, Exception inner) : FactumException(message, inner);

/// <summary>One projection version as recorded by its backend.</summary>
/// <param name="Name">The projection.</param>
/// <param name="Version">The version.</param>
/// <param name="Active">True for the version queries read.</param>
/// <param name="Position">Its checkpoint: every event up to here is reflected in its documents.</param>
/// <param name="State">Building (catching up, not yet active), Live (active and following), Inline (updated with each append), Faulted (stopped on an event: see <paramref name="FailingPosition"/>) or Pending (reset or skipped; waiting for a runner to start it).</param>
/// <param name="LastError">The error that stopped it, if any.</param>
/// <param name="FailingPosition">The event that stopped it, if any.</param>
/// <param name="Head">The store's head position.</param>
/// <param name="Documents">Documents it holds.</param>
public sealed record ProjectionInfo(string Name, int Version, bool Active, long Position, string State, string? LastError, long? FailingPosition, long Head, long Documents)
{
    /// <summary>Events behind the head.</summary>
    public long Lag => Math.Max(0, Head - Position);
}

/// <summary>How a projection runs.</summary>
public sealed record ProjectionOptions
{
    /// <summary>Events applied per transaction (default 500).</summary>
    public int BatchSize
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "BatchSize is at least 1.");
    } = 500;

    /// <summary>Retries of a failing batch before the failing event is isolated.</summary>
    public RetryPolicy Retry { get; init; } = new() { MaxAttempts = 3 };

    /// <summary>Stop on a failing event (default) or park it and go on.</summary>
    public FailureAction OnFailure { get; init; } = FailureAction.Stop;

    /// <summary>Longest live wait before re-reading (default 1 s).</summary>
    public TimeSpan LiveWaitTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The JSON options of the documents.</summary>
    public JsonSerializerOptions Json { get; init; } = SystemTextJsonEventSerializer.Default.Options;

    /// <summary>Where retries, parked events and a stop are logged (category <c>Factum.Projections</c>); default: the store's.</summary>
    public Microsoft.Extensions.Logging.ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>
    /// How a runner holds its projection version's lease: one runner per projection version runs across all the
    /// processes sharing the store; the others stand by and take over within <see cref="Coordination.LeaseOptions.Duration"/>
    /// (default 10 s) after the owner dies, at once after it stops. A runner that lost its lease cannot commit a batch.
    /// </summary>
    public Coordination.LeaseOptions Lease { get; init; } = new();

    /// <summary>Where the lag and state gauges (<c>factum.projection.*</c>) are reported; default <see cref="FactumMetrics.Default"/>.</summary>
    public FactumMetrics? Metrics { get; init; }
}

/// <summary>A running projection.</summary>
public interface IProjectionRun : IAsyncDisposable
{
    /// <summary>Completes when it stops or faults.</summary>
    Task Completion { get; }

    /// <summary>Stops after the current batch.</summary>
    Task StopAsync();
}

/// <summary>
/// Where projections run and their read models live: start projections, list their status, query and reset them.
/// A backend's engine gives every projection exactly-once effects (documents and checkpoint commit together).
/// </summary>
public interface IProjectionEngine
{
    /// <summary>Registers the projection version and runs it in the background (see the backend for rebuild semantics).</summary>
    Task<IProjectionRun> StartAsync(IProjection projection, ProjectionOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Every projection version with its checkpoint and lag.</summary>
    Task<IReadOnlyList<ProjectionInfo>> ListAsync(CancellationToken cancellationToken = default);

    /// <summary>The active version's document under <paramref name="key"/> as JSON, or null.</summary>
    Task<string?> GetJsonAsync(string projection, string key, CancellationToken cancellationToken = default);

    /// <summary>
    /// Documents of the active version that <paramref name="query"/> selects (by field equality and ranges, ordered,
    /// paged); every document in key order when it is null.
    /// </summary>
    /// <exception cref="ArgumentException">There is no such projection, or the query names a malformed field or value.</exception>
    Task<IReadOnlyList<(string Key, string Json)>> QueryAsync(string projection, ProjectionQuery? query = null, CancellationToken cancellationToken = default);

    /// <summary>Rebuild in place: empty the active version and rewind its checkpoint.</summary>
    Task ResetAsync(string projection, CancellationToken cancellationToken = default);

    /// <summary>
    /// For a projection stopped on an event it cannot apply (state Faulted): parks that event with its error and moves
    /// the checkpoint past it, so the projection's next run goes on after it. The event stays in the log; the parked
    /// record says it is missing from the read model.
    /// </summary>
    /// <returns>The parked event of each faulted version.</returns>
    /// <exception cref="ArgumentException">There is no such projection.</exception>
    /// <exception cref="InvalidOperationException">The projection has not stopped on an event.</exception>
    Task<IReadOnlyList<ParkedEvent>> SkipFailingEventAsync(string projection, CancellationToken cancellationToken = default);

    /// <summary>The events a projection parked (its park policy, or a skip), in position order, over all its versions.</summary>
    Task<IReadOnlyList<ParkedEvent>> ListParkedAsync(string projection, CancellationToken cancellationToken = default);
}

/// <summary>Typed reads over <see cref="IProjectionEngine"/>.</summary>
public static class ProjectionEngineExtensions
{
    /// <summary>The view a <see cref="DocumentProjection{TView}"/> keeps under <paramref name="key"/>, or null.</summary>
    public static async Task<TView?> GetViewAsync<TView>(this IProjectionEngine engine, string projection, string key, CancellationToken cancellationToken = default) where TView : class
    {
        ArgumentNullException.ThrowIfNull(engine);
        return await engine.GetJsonAsync(projection, key, cancellationToken).ConfigureAwait(false) is { } doc
            ? JsonSerializer.Deserialize<DocumentProjection<TView>.Versioned>(doc, SystemTextJsonEventSerializer.Default.Options)!.View
            : null;
    }
}
