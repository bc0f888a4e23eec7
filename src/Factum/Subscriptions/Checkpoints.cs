using System.Collections.Concurrent;

namespace Factum.Subscriptions;

/// <summary>Stores the last position each subscription has handled, so that a restarted subscription resumes after it.</summary>
public interface ICheckpointStore
{
    /// <summary>The stored checkpoint of <paramref name="subscriptionId"/>, or null when it has none.</summary>
    Task<long?> LoadAsync(string subscriptionId, CancellationToken cancellationToken = default);

    /// <summary>Stores <paramref name="position"/> as the last handled position; durable on return.</summary>
    Task StoreAsync(string subscriptionId, long position, CancellationToken cancellationToken = default);
}

/// <summary>A dead-lettered event of a subscription: the event's position plus why and when it failed.</summary>
/// <param name="SubscriptionId">The subscription.</param>
/// <param name="Position">The event's global position (the event itself stays in the log).</param>
/// <param name="EventId">The event's id.</param>
/// <param name="StreamId">The event's stream.</param>
/// <param name="StreamVersion">The event's version.</param>
/// <param name="Type">The event type.</param>
/// <param name="ErrorType">The exception type of the last failure.</param>
/// <param name="ErrorMessage">Its message.</param>
/// <param name="ErrorDetail">Its stack trace.</param>
/// <param name="Attempts">How many times the handler failed on it.</param>
/// <param name="FirstFailureAt">When it first failed.</param>
/// <param name="LastFailureAt">When it last failed.</param>
public sealed record ParkedEvent(
    string SubscriptionId, GlobalPosition Position, EventId EventId, StreamId StreamId, StreamVersion StreamVersion, string Type,
    string ErrorType, string ErrorMessage, string? ErrorDetail, int Attempts, DateTimeOffset FirstFailureAt, DateTimeOffset LastFailureAt);

/// <summary>Each subscription's dead-letter set.</summary>
public interface IParkedEventStore
{
    /// <summary>Adds or replaces (same subscription and position) a parked event; durable on return.</summary>
    Task ParkAsync(ParkedEvent parked, CancellationToken cancellationToken = default);

    /// <summary>The parked events of a subscription, in position order.</summary>
    Task<IReadOnlyList<ParkedEvent>> ListAsync(string subscriptionId, CancellationToken cancellationToken = default);

    /// <summary>Removes a parked event (after a successful replay); durable on return.</summary>
    Task RemoveAsync(string subscriptionId, GlobalPosition position, CancellationToken cancellationToken = default);
}

/// <summary>
/// Checkpoints and parked events in memory, for tests. Given an <see cref="Coordination.InMemoryLeaseStore"/>, its
/// checkpoints can be fenced by leases (<see cref="Coordination.IFencedCheckpointStore"/>).
/// </summary>
public sealed class InMemorySubscriptionStore(Coordination.InMemoryLeaseStore? leases = null) : Coordination.IFencedCheckpointStore, IParkedEventStore
{
    private readonly ConcurrentDictionary<string, long> _checkpoints = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public Task StoreAsync(string subscriptionId, long position, Coordination.Lease fence, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fence);
        if (leases is null) throw new InvalidOperationException("This checkpoint store has no lease store to fence with: create it with an InMemoryLeaseStore.");
        leases.WriteFenced(fence, () => _checkpoints[subscriptionId] = position);
        return Task.CompletedTask;
    }
    private readonly ConcurrentDictionary<(string, long), ParkedEvent> _parked = new();

    /// <inheritdoc />
    public Task<long?> LoadAsync(string subscriptionId, CancellationToken cancellationToken = default) =>
        Task.FromResult(_checkpoints.TryGetValue(subscriptionId, out var p) ? p : (long?)null);

    /// <inheritdoc />
    public Task StoreAsync(string subscriptionId, long position, CancellationToken cancellationToken = default)
    {
        _checkpoints[subscriptionId] = position;
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task ParkAsync(ParkedEvent parked, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(parked);
        _parked[(parked.SubscriptionId, parked.Position.Value)] = parked;
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<ParkedEvent>> ListAsync(string subscriptionId, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<ParkedEvent>>(_parked.Values.Where(p => p.SubscriptionId == subscriptionId).OrderBy(p => p.Position).ToList());

    /// <inheritdoc />
    public Task RemoveAsync(string subscriptionId, GlobalPosition position, CancellationToken cancellationToken = default)
    {
        _parked.TryRemove((subscriptionId, position.Value), out _);
        return Task.CompletedTask;
    }
}
