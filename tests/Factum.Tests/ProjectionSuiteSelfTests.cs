using Factum.Conformance;
using Factum.Coordination;
using Factum.InMemory;
using Factum.Projections;

namespace Factum.Tests;

/// <summary>The projection suite must be able to fail: on a projection store that does not fence its writes, it does.</summary>
public sealed class ProjectionSuiteCatchesAnUnfencedStore
{
    /// <summary>
    /// A projection store that forgot its fence: it commits, promotes and records faults under whatever lease is current,
    /// whoever asks, so a runner that lost its lease still writes.
    /// </summary>
    private sealed class Unfenced(IProjectionStore inner) : IProjectionStore
    {
        public ILeaseStore Leases => inner.Leases;

        public Subscriptions.IParkedEventStore Parked => inner.Parked;

        private async Task<Lease> CurrentAsync(string name, int version, CancellationToken ct)
        {
            var current = (await inner.Leases.ListAsync(ct)).Single(l => l.Name == ProjectionEngine.LeaseName(name, version));
            return new Lease(current.Name, current.Owner ?? "anyone", current.FencingToken, current.ExpiresAt);
        }

        public Task RegisterAsync(ProjectionRegistration registration, CancellationToken cancellationToken = default) => inner.RegisterAsync(registration, cancellationToken);

        public Task<long?> LoadCheckpointAsync(string name, int version, CancellationToken cancellationToken = default) => inner.LoadCheckpointAsync(name, version, cancellationToken);

        public ValueTask<IProjectionDocumentReader> OpenReaderAsync(string name, int version, CancellationToken cancellationToken = default) => inner.OpenReaderAsync(name, version, cancellationToken);

        public async Task CommitAsync(ProjectionBatch batch, Lease fence, CancellationToken cancellationToken = default) =>
            await inner.CommitAsync(batch, await CurrentAsync(batch.Name, batch.Version, cancellationToken), cancellationToken);

        public async Task<bool> PromoteAsync(string name, int version, Lease fence, CancellationToken cancellationToken = default) =>
            await inner.PromoteAsync(name, version, await CurrentAsync(name, version, cancellationToken), cancellationToken);

        public async Task RecordFaultAsync(string name, int version, long position, string error, Lease fence, CancellationToken cancellationToken = default) =>
            await inner.RecordFaultAsync(name, version, position, error, await CurrentAsync(name, version, cancellationToken), cancellationToken);

        public Task<bool> SkipAsync(string name, int version, long position, CancellationToken cancellationToken = default) => inner.SkipAsync(name, version, position, cancellationToken);

        public Task ResetAsync(string projection, CancellationToken cancellationToken = default) => inner.ResetAsync(projection, cancellationToken);

        public Task<IReadOnlyList<ProjectionInfo>> ListAsync(CancellationToken cancellationToken = default) => inner.ListAsync(cancellationToken);

        public Task<string?> GetJsonAsync(string projection, string key, CancellationToken cancellationToken = default) => inner.GetJsonAsync(projection, key, cancellationToken);

        public Task<IReadOnlyList<(string Key, string Json)>> QueryAsync(string projection, ProjectionQuery query, CancellationToken cancellationToken = default) => inner.QueryAsync(projection, query, cancellationToken);
    }

    public sealed class UnfencedFactory : IEventStoreFactory, IProjectionEngineFactory, ISubscriptionStoreFactory
    {
        private readonly InMemoryFactory _inner = new();

        public IEventStore Create(EventStoreOptions options) => _inner.Create(options);

        public ValueTask DestroyAsync(IEventStore store) => _inner.DestroyAsync(store);

        public IProjectionEngine CreateProjectionEngine(IEventStore store)
        {
            var s = (InMemoryEventStore)store;
            return new ProjectionEngine(s, new Unfenced(s.ProjectionStore), s.Options.TimeProvider);
        }

        public Task RewindCheckpointOnlyAsync(IEventStore store, string projection) => _inner.RewindCheckpointOnlyAsync(store, projection);

        public (Subscriptions.ICheckpointStore Checkpoints, Subscriptions.IParkedEventStore Parked) CreateSubscriptionStores(IEventStore store) => _inner.CreateSubscriptionStores(store);
    }

    // Nested and private: xUnit does not run it on its own; the facts below expect its fencing scenarios to fail.
    private sealed class OnUnfenced : ProjectionConformance<UnfencedFactory>;

    [Fact]
    public async Task A_store_that_does_not_fence_fails_the_suite()
    {
        Assert.IsAssignableFrom<Xunit.Sdk.XunitException>(await SuiteSelfTest.FailureOf(new OnUnfenced(), s => s.A_runner_whose_lease_was_taken_cannot_commit_promote_or_record_a_fault()));
        Assert.IsAssignableFrom<Xunit.Sdk.XunitException>(await SuiteSelfTest.FailureOf(new OnUnfenced(), s => s.A_paused_runner_whose_lease_expired_cannot_commit_even_before_another_takes_it()));
    }

    [Fact]
    public async Task The_same_scenarios_pass_on_the_real_in_memory_store()
    {
        Assert.Null(await SuiteSelfTest.FailureOf(new InMemoryProjections(), s => s.A_runner_whose_lease_was_taken_cannot_commit_promote_or_record_a_fault()));
    }
}
