using Factum.Conformance;
using Factum.Coordination;
using Factum.Subscriptions;

namespace Factum.Tests;

public sealed class InMemoryLeaseFactory : ILeaseStoreFactory
{
    public LeaseBackend Create(TimeProvider clock)
    {
        var leases = new InMemoryLeaseStore(clock);
        return new LeaseBackend(leases, new InMemorySubscriptionStore(leases), () => ValueTask.CompletedTask);
    }
}

public sealed class InMemoryLeases : LeaseConformance<InMemoryLeaseFactory>;

/// <summary>The lease suite must be able to fail: two deliberately wrong lease stores, each caught.</summary>
public sealed class LeaseSuiteCatchesBrokenLeases
{
    /// <summary>Gets one thing wrong: it hands a live lease to anyone (<c>ignoreExpiry</c>), or it does not fence writes.</summary>
    private sealed class Broken : ILeaseStore, IFencedCheckpointStore
    {
        private readonly InMemoryLeaseStore _inner;
        private readonly InMemorySubscriptionStore _checkpoints;
        private readonly bool _ignoreExpiry;
        private readonly bool _noFence;

        public Broken(TimeProvider clock, bool ignoreExpiry, bool noFence)
        {
            _inner = new InMemoryLeaseStore(clock);
            _checkpoints = new InMemorySubscriptionStore(_inner);
            (_ignoreExpiry, _noFence) = (ignoreExpiry, noFence);
        }

        public async Task<Lease?> TryAcquireAsync(string name, string owner, TimeSpan duration, CancellationToken cancellationToken = default)
        {
            if (!_ignoreExpiry) return await _inner.TryAcquireAsync(name, owner, duration, cancellationToken);
            // Takes the lease whatever its state, as a store that forgot the expiry check would.
            var current = (await _inner.ListAsync(cancellationToken)).FirstOrDefault(l => l.Name == name);
            if (current?.Owner is { } holder) await _inner.ReleaseAsync(new Lease(name, holder, current.FencingToken, current.ExpiresAt), cancellationToken);
            return await _inner.TryAcquireAsync(name, owner, duration, cancellationToken);
        }

        public Task<Lease?> RenewAsync(Lease lease, TimeSpan duration, CancellationToken cancellationToken = default) => _inner.RenewAsync(lease, duration, cancellationToken);

        public Task ReleaseAsync(Lease lease, CancellationToken cancellationToken = default) => _inner.ReleaseAsync(lease, cancellationToken);

        public Task<IReadOnlyList<LeaseInfo>> ListAsync(CancellationToken cancellationToken = default) => _inner.ListAsync(cancellationToken);

        public Task<long?> LoadAsync(string subscriptionId, CancellationToken cancellationToken = default) => _checkpoints.LoadAsync(subscriptionId, cancellationToken);

        public Task StoreAsync(string subscriptionId, long position, CancellationToken cancellationToken = default) => _checkpoints.StoreAsync(subscriptionId, position, cancellationToken);

        public Task StoreAsync(string subscriptionId, long position, Lease fence, CancellationToken cancellationToken = default) =>
            _noFence ? _checkpoints.StoreAsync(subscriptionId, position, cancellationToken) : _checkpoints.StoreAsync(subscriptionId, position, fence, cancellationToken);
    }

    public sealed class TakesLiveLeases : ILeaseStoreFactory
    {
        public LeaseBackend Create(TimeProvider clock)
        {
            var b = new Broken(clock, ignoreExpiry: true, noFence: false);
            return new LeaseBackend(b, b, () => ValueTask.CompletedTask);
        }
    }

    public sealed class DoesNotFence : ILeaseStoreFactory
    {
        public LeaseBackend Create(TimeProvider clock)
        {
            var b = new Broken(clock, ignoreExpiry: false, noFence: true);
            return new LeaseBackend(b, b, () => ValueTask.CompletedTask);
        }
    }

    // Nested and private: xUnit does not run them on their own; the facts below expect their scenarios to fail.
    private sealed class OnTakesLiveLeases : LeaseConformance<TakesLiveLeases>;

    private sealed class OnDoesNotFence : LeaseConformance<DoesNotFence>;

    [Fact]
    public async Task A_store_that_hands_out_live_leases_fails_the_suite()
    {
        Assert.IsAssignableFrom<Xunit.Sdk.XunitException>(await SuiteSelfTest.FailureOf(new OnTakesLiveLeases(), s => s.The_first_owner_gets_the_lease_and_nobody_else_while_it_is_live()));
        Assert.IsAssignableFrom<Xunit.Sdk.XunitException>(await SuiteSelfTest.FailureOf(new OnTakesLiveLeases(), s => s.Of_many_contenders_racing_for_a_free_or_lapsed_lease_exactly_one_wins()));
    }

    [Fact]
    public async Task A_store_that_does_not_fence_writes_fails_the_suite()
    {
        Assert.IsAssignableFrom<Xunit.Sdk.XunitException>(await SuiteSelfTest.FailureOf(new OnDoesNotFence(), s => s.A_paused_owner_whose_lease_lapsed_and_was_taken_can_neither_renew_nor_commit()));
        Assert.IsAssignableFrom<Xunit.Sdk.XunitException>(await SuiteSelfTest.FailureOf(new OnDoesNotFence(), s => s.A_lapsed_lease_nobody_took_refuses_fenced_writes_until_its_owner_renews_it()));
    }
}
