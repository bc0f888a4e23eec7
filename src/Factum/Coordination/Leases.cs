using Factum.Subscriptions;

namespace Factum.Coordination;

/// <summary>
/// The right to run one job (a projection, the outbox relay, a backend-wide gauge) while several processes share a
/// store. One owner at a time; the lease lapses at <see cref="ExpiresAt"/> unless renewed.
/// </summary>
/// <param name="Name">The job, e.g. <c>relay:outbox</c>.</param>
/// <param name="Owner">Who holds it (unique per process, see <see cref="LeaseOptions.Owner"/>).</param>
/// <param name="FencingToken">
/// Grows every time the lease changes hands. A write made under a lease carries its token, and the store refuses it
/// when a newer owner holds the lease: a paused process that lost its lease cannot overwrite its successor's work.
/// </param>
/// <param name="ExpiresAt">When it lapses without renewal (by the store's clock).</param>
public sealed record Lease(string Name, string Owner, long FencingToken, DateTimeOffset ExpiresAt);

/// <summary>A lease's holder as the store sees it; <see cref="Owner"/> is null when released.</summary>
/// <param name="Name">The job.</param>
/// <param name="Owner">Its holder, or null when released.</param>
/// <param name="FencingToken">The current token.</param>
/// <param name="ExpiresAt">When the holder's lease lapses.</param>
public sealed record LeaseInfo(string Name, string? Owner, long FencingToken, DateTimeOffset ExpiresAt);

/// <summary>
/// Leases in the database every process shares. Each backend implements it in its own store, so that a fenced write
/// (<see cref="IFencedCheckpointStore"/>) checks the lease in the same transaction as the write.
/// </summary>
public interface ILeaseStore
{
    /// <summary>
    /// Takes the lease when it is free, released or lapsed, with a new, higher fencing token; extends it, keeping its
    /// token, when <paramref name="owner"/> holds it already. Null while another owner's lease is live. Durable on return.
    /// </summary>
    Task<Lease?> TryAcquireAsync(string name, string owner, TimeSpan duration, CancellationToken cancellationToken = default);

    /// <summary>
    /// Extends a held lease by <paramref name="duration"/> from now, keeping its token; null when it changed hands or
    /// was released (the caller has lost it and must stop). Durable on return.
    /// </summary>
    Task<Lease?> RenewAsync(Lease lease, TimeSpan duration, CancellationToken cancellationToken = default);

    /// <summary>Gives the lease up so that a standby takes it at once; nothing happens when it changed hands.</summary>
    Task ReleaseAsync(Lease lease, CancellationToken cancellationToken = default);

    /// <summary>Every lease the store knows, by name.</summary>
    Task<IReadOnlyList<LeaseInfo>> ListAsync(CancellationToken cancellationToken = default);
}

/// <summary>A checkpoint store whose writes can be fenced by a lease.</summary>
public interface IFencedCheckpointStore : ICheckpointStore
{
    /// <summary>
    /// Stores the checkpoint only while <paramref name="fence"/> is the live lease of its name (same owner and token,
    /// not lapsed), checked in the same transaction as the write. Durable on return.
    /// </summary>
    /// <exception cref="LeaseLostException">The lease changed hands or lapsed; nothing was written.</exception>
    Task StoreAsync(string subscriptionId, long position, Lease fence, CancellationToken cancellationToken = default);
}

/// <summary>A write under a lease was refused: the lease changed hands or lapsed. The job must stop and stand by.</summary>
public sealed class LeaseLostException(Lease lease)
    : FactumException($"The lease '{lease.Name}' (owner {lease.Owner}, token {lease.FencingToken}) is no longer held: another process took over or it lapsed.")
{
    /// <summary>The lease that was lost.</summary>
    public Lease Lease { get; } = lease;
}

/// <summary>A job could not start: another owner holds its lease and it is live.</summary>
public sealed class LeaseHeldException(string name, string? holder)
    : InvalidOperationException($"'{name}' is running in another process ({holder ?? "unknown owner"}); stop it first, or wait for its lease to lapse.")
{
    /// <summary>The lease's name.</summary>
    public string Name { get; } = name;

    /// <summary>Who holds it, as its record says.</summary>
    public string? Holder { get; } = holder;
}

/// <summary>How a job holds its lease.</summary>
public sealed record LeaseOptions
{
    /// <summary>
    /// How long a lease lasts without renewal (default 10 seconds): after its owner dies, a standby takes over within
    /// this plus <see cref="AcquireInterval"/>. Shorter means faster takeover but more renewals, and a pause (GC,
    /// swapped out) longer than it costs the lease.
    /// </summary>
    public TimeSpan Duration
    {
        get;
        init => field = value >= TimeSpan.FromMilliseconds(100) && value <= TimeSpan.FromDays(1) ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "A lease lasts between 100 ms and one day.");
    } = TimeSpan.FromSeconds(10);

    /// <summary>How often the owner renews (default a third of <see cref="Duration"/>, so two renewals may fail in a row).</summary>
    public TimeSpan? RenewInterval { get; init; }

    /// <summary>How often a standby tries to take the lease (default a third of <see cref="Duration"/>).</summary>
    public TimeSpan? AcquireInterval { get; init; }

    /// <summary>
    /// This process's name in lease records (default: host name and process id). Each job running under a lease adds
    /// a random suffix, so two instances of one job in one process are still two owners.
    /// </summary>
    public string Owner
    {
        get;
        init => field = !string.IsNullOrWhiteSpace(value) ? value : throw new ArgumentException("A lease owner is not empty.", nameof(value));
    } = NewOwnerId();

    /// <summary>The clock for the waits between renewals and attempts (the lease store keeps its own).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal TimeSpan Renew => RenewInterval ?? Duration / 3;

    internal TimeSpan Acquire => AcquireInterval ?? Duration / 3;

    /// <summary>The owner id of one instance of a job: <see cref="Owner"/> and a random suffix.</summary>
    internal string NewInstanceOwner() => $"{Owner}/{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>This process's default owner name: host name and process id.</summary>
    public static string NewOwnerId() => $"{Environment.MachineName}/{Environment.ProcessId}";
}

/// <summary>
/// Runs a job only while this process holds its lease, and stands by otherwise: one owner across every process sharing
/// the store. The owner renews in the background; when a renewal says the lease was lost (or it cannot renew before the
/// lease lapses), the job's token is cancelled and the process stands by again. Stopping releases the lease, so a
/// standby takes over at once instead of after the lease lapses.
/// </summary>
public static class SingleOwner
{
    /// <summary>
    /// Acquires <paramref name="name"/> and runs <paramref name="job"/> under it, again after each loss, until
    /// <paramref name="cancellationToken"/> is cancelled or the job returns (its work is done). The job gets the lease
    /// for fenced writes and a token cancelled when the lease is lost; a <see cref="LeaseLostException"/> from it means
    /// the same. Any other exception from the job ends the loop: the lease is released and the exception rethrown, so
    /// the caller's completion reports the fault (a standby elsewhere then takes over).
    /// </summary>
    /// <param name="leases">The shared lease store.</param>
    /// <param name="name">The job's lease name.</param>
    /// <param name="options">Duration, intervals and owner id.</param>
    /// <param name="job">The work; it should run until its token is cancelled.</param>
    /// <param name="onOwnership">Told of every change: the lease when acquired, null when lost or given up.</param>
    /// <param name="logger">Where acquisitions, losses and standing by are logged.</param>
    /// <param name="cancellationToken">Stops the loop (and the job) and releases the lease.</param>
    public static async Task RunAsync(ILeaseStore leases, string name, LeaseOptions options, Func<Lease, CancellationToken, Task> job,
        Action<Lease?>? onOwnership, Microsoft.Extensions.Logging.ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(leases);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(logger);
        var time = options.TimeProvider;
        var saidStandingBy = false;
        // This instance of the job is its own owner, even beside another instance in the same process.
        options = options with { Owner = options.NewInstanceOwner() };
        while (!cancellationToken.IsCancellationRequested)
        {
            Lease? lease;
            try
            {
                lease = await leases.TryAcquireAsync(name, options.Owner, options.Duration, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                FactumLog.LeaseError(logger, ex, name, options.Owner);
                lease = null;
            }
            if (lease is null)
            {
                if (!saidStandingBy)
                {
                    saidStandingBy = true;
                    FactumLog.LeaseStandingBy(logger, name, options.Owner);
                }
                try { await Task.Delay(options.Acquire, time, cancellationToken).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
                continue;
            }
            saidStandingBy = false;
            FactumLog.LeaseAcquired(logger, name, options.Owner, lease.FencingToken);
            onOwnership?.Invoke(lease);
            using var owned = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var lostByRenewal = new System.Runtime.CompilerServices.StrongBox<bool>();
            var renewing = RenewAsync(leases, lease, options, owned, lostByRenewal, logger);
            var done = false;
            try
            {
                await job(lease, owned.Token).ConfigureAwait(false);
                done = !owned.IsCancellationRequested;
            }
            catch (OperationCanceledException) when (owned.IsCancellationRequested)
            {
            }
            catch (LeaseLostException)
            {
                lostByRenewal.Value = true;
                FactumLog.LeaseLost(logger, name, options.Owner, lease.FencingToken);
            }
            finally
            {
                await owned.CancelAsync().ConfigureAwait(false);
                await renewing.ConfigureAwait(false);
                onOwnership?.Invoke(null);
                if (!lostByRenewal.Value)
                {
                    // Given up on purpose (stopping, or the job is done): let a standby take over now.
                    try { await leases.ReleaseAsync(lease, CancellationToken.None).ConfigureAwait(false); }
                    catch (Exception ex) when (ex is not OutOfMemoryException) { FactumLog.LeaseError(logger, ex, name, options.Owner); }
                }
            }
            if (done) return;
        }
    }

    private static async Task RenewAsync(ILeaseStore leases, Lease lease, LeaseOptions options, CancellationTokenSource owned, System.Runtime.CompilerServices.StrongBox<bool> lost, Microsoft.Extensions.Logging.ILogger logger)
    {
        var time = options.TimeProvider;
        var heldUntil = lease.ExpiresAt;
        var ct = owned.Token;
        try
        {
            while (true)
            {
                await Task.Delay(options.Renew, time, ct).ConfigureAwait(false);
                Lease? renewed;
                try
                {
                    renewed = await leases.RenewAsync(lease, options.Duration, ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException and not OperationCanceledException)
                {
                    FactumLog.LeaseError(logger, ex, lease.Name, lease.Owner);
                    // Cannot tell whether it is still held: keep trying until it would have lapsed, then give up the job.
                    if (time.GetUtcNow() < heldUntil) continue;
                    renewed = null;
                }
                if (renewed is null)
                {
                    lost.Value = true;
                    FactumLog.LeaseLost(logger, lease.Name, lease.Owner, lease.FencingToken);
                    await owned.CancelAsync().ConfigureAwait(false);
                    return;
                }
                heldUntil = renewed.ExpiresAt;
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }
}

/// <summary>
/// Leases in memory, for tests and single-process use; pass it to <see cref="InMemorySubscriptionStore"/> to fence
/// its checkpoints.
/// </summary>
public sealed class InMemoryLeaseStore(TimeProvider? timeProvider = null) : ILeaseStore
{
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, LeaseInfo> _leases = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public Task<Lease?> TryAcquireAsync(string name, string owner, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(owner);
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            _leases.TryGetValue(name, out var current);
            long token;
            if (current is null) token = 1;
            else if (current.Owner == owner) token = current.FencingToken;
            else if (current.Owner is null || current.ExpiresAt <= now) token = current.FencingToken + 1;
            else return Task.FromResult<Lease?>(null);
            var lease = new Lease(name, owner, token, now + duration);
            _leases[name] = new LeaseInfo(name, owner, token, lease.ExpiresAt);
            return Task.FromResult<Lease?>(lease);
        }
    }

    /// <inheritdoc />
    public Task<Lease?> RenewAsync(Lease lease, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (!_leases.TryGetValue(lease.Name, out var current) || current.Owner != lease.Owner || current.FencingToken != lease.FencingToken)
                return Task.FromResult<Lease?>(null);
            var renewed = lease with { ExpiresAt = now + duration };
            _leases[lease.Name] = current with { ExpiresAt = renewed.ExpiresAt };
            return Task.FromResult<Lease?>(renewed);
        }
    }

    /// <inheritdoc />
    public Task ReleaseAsync(Lease lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        lock (_lock)
        {
            if (_leases.TryGetValue(lease.Name, out var current) && current.Owner == lease.Owner && current.FencingToken == lease.FencingToken)
                _leases[lease.Name] = current with { Owner = null, ExpiresAt = _time.GetUtcNow() };
        }
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<LeaseInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock) return Task.FromResult<IReadOnlyList<LeaseInfo>>(_leases.Values.OrderBy(l => l.Name, StringComparer.Ordinal).ToList());
    }

    /// <summary>Runs <paramref name="write"/> only while <paramref name="fence"/> is the live lease, atomically with the check.</summary>
    internal void WriteFenced(Lease fence, Action write)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (!_leases.TryGetValue(fence.Name, out var current) || current.Owner != fence.Owner || current.FencingToken != fence.FencingToken || current.ExpiresAt <= now)
                throw new LeaseLostException(fence);
            write();
        }
    }
}
