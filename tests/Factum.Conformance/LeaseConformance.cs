using Factum.Coordination;
using Microsoft.Extensions.Logging.Abstractions;

namespace Factum.Conformance;

/// <summary>A backend's lease store with the checkpoint store its leases fence.</summary>
/// <param name="Leases">The lease store.</param>
/// <param name="Checkpoints">Checkpoints in the same database, fenced by those leases.</param>
/// <param name="Destroy">Releases both (and their files).</param>
public sealed record LeaseBackend(ILeaseStore Leases, IFencedCheckpointStore Checkpoints, Func<ValueTask> Destroy);

/// <summary>How a backend enrolls in <see cref="LeaseConformance{TFactory}"/>.</summary>
public interface ILeaseStoreFactory
{
    /// <summary>A fresh lease store whose expiries follow <paramref name="clock"/>.</summary>
    LeaseBackend Create(TimeProvider clock);
}

/// <summary>
/// Leases: one live owner per name, tokens that only grow, and fenced writes that a process which lost its lease can
/// no longer make. Expiry is driven by a manual clock (no sleeps), except for <see cref="SingleOwner"/>, which runs
/// on real timers with short leases.
/// </summary>
public abstract class LeaseConformance<TFactory> : IAsyncLifetime where TFactory : ILeaseStoreFactory, new()
{
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(10);
    private readonly List<LeaseBackend> _backends = [];

    protected ManualClock Clock { get; } = new();

    private LeaseBackend? _backend;

    protected LeaseBackend Backend => _backend ?? throw new InvalidOperationException("Created in InitializeAsync.");

    private ILeaseStore Leases => Backend.Leases;

    public Task InitializeAsync()
    {
        _backend = Create(Clock);
        return Task.CompletedTask;
    }

    private LeaseBackend Create(TimeProvider clock)
    {
        var b = new TFactory().Create(clock);
        _backends.Add(b);
        return b;
    }

    public async Task DisposeAsync()
    {
        foreach (var b in _backends) await b.Destroy();
    }

    [Fact]
    public async Task The_first_owner_gets_the_lease_and_nobody_else_while_it_is_live()
    {
        var a = await Leases.TryAcquireAsync("job", "a", Ttl);
        Assert.NotNull(a);
        Assert.Equal(("job", "a", Clock.Now + Ttl), (a.Name, a.Owner, a.ExpiresAt));
        Clock.Advance(Ttl - TimeSpan.FromSeconds(1));
        Assert.Null(await Leases.TryAcquireAsync("job", "b", Ttl));
        Assert.NotNull(await Leases.TryAcquireAsync("other-job", "b", Ttl));
        var info = Assert.Single(await Leases.ListAsync(), l => l.Name == "job");
        Assert.Equal(("a", a.FencingToken), (info.Owner, info.FencingToken));
    }

    [Fact]
    public async Task The_owner_acquiring_again_or_renewing_extends_its_lease_and_keeps_its_token()
    {
        var a = (await Leases.TryAcquireAsync("job", "a", Ttl))!;
        Clock.Advance(TimeSpan.FromSeconds(5));
        var again = (await Leases.TryAcquireAsync("job", "a", Ttl))!;
        Assert.Equal((a.FencingToken, Clock.Now + Ttl), (again.FencingToken, again.ExpiresAt));
        Clock.Advance(TimeSpan.FromSeconds(5));
        var renewed = (await Leases.RenewAsync(a, Ttl))!;
        Assert.Equal((a.FencingToken, Clock.Now + Ttl), (renewed.FencingToken, renewed.ExpiresAt));
        Clock.Advance(TimeSpan.FromSeconds(9)); // 19 s after the first acquisition, but renewed: still a's
        Assert.Null(await Leases.TryAcquireAsync("job", "b", Ttl));
    }

    [Fact]
    public async Task A_paused_owner_whose_lease_lapsed_and_was_taken_can_neither_renew_nor_commit()
    {
        var a = (await Leases.TryAcquireAsync("relay:outbox", "a", Ttl))!;
        await Backend.Checkpoints.StoreAsync("relay", 10, a);
        Clock.Advance(Ttl + TimeSpan.FromMilliseconds(1)); // a is paused (GC, swapped out) past its lease
        var b = (await Leases.TryAcquireAsync("relay:outbox", "b", Ttl))!;
        Assert.True(b.FencingToken > a.FencingToken);
        await Backend.Checkpoints.StoreAsync("relay", 30, b);

        // a wakes up: its commit is refused, so it cannot move b's checkpoint back; its renewal says it lost the lease.
        var refused = await Assert.ThrowsAsync<LeaseLostException>(() => Backend.Checkpoints.StoreAsync("relay", 20, a));
        Assert.Equal(a, refused.Lease);
        Assert.Equal(30, await Backend.Checkpoints.LoadAsync("relay"));
        Assert.Null(await Leases.RenewAsync(a, Ttl));
        await Leases.ReleaseAsync(a); // a late release must not free b's lease
        Assert.Null(await Leases.TryAcquireAsync("relay:outbox", "c", Ttl));
    }

    [Fact]
    public async Task A_lapsed_lease_nobody_took_refuses_fenced_writes_until_its_owner_renews_it()
    {
        var a = (await Leases.TryAcquireAsync("job", "a", Ttl))!;
        Clock.Advance(Ttl);
        await Assert.ThrowsAsync<LeaseLostException>(() => Backend.Checkpoints.StoreAsync("job", 5, a));
        Assert.Null(await Backend.Checkpoints.LoadAsync("job"));
        var renewed = await Leases.RenewAsync(a, Ttl);
        Assert.Equal(a.FencingToken, renewed!.FencingToken);
        await Backend.Checkpoints.StoreAsync("job", 5, a);
        Assert.Equal(5, await Backend.Checkpoints.LoadAsync("job"));
    }

    [Fact]
    public async Task A_released_lease_is_taken_at_once_and_tokens_only_grow()
    {
        var tokens = new List<long>();
        for (var i = 0; i < 6; i++)
        {
            var owner = i % 2 == 0 ? "a" : "b";
            var lease = await Leases.TryAcquireAsync("job", owner, Ttl);
            Assert.NotNull(lease);
            tokens.Add(lease.FencingToken);
            await Leases.ReleaseAsync(lease);
            await Assert.ThrowsAsync<LeaseLostException>(() => Backend.Checkpoints.StoreAsync("job", i, lease));
            Assert.Null(await Leases.RenewAsync(lease, Ttl));
        }
        for (var i = 1; i < tokens.Count; i++) Assert.True(tokens[i] > tokens[i - 1], $"tokens {string.Join(", ", tokens)}");
        Assert.Null(Assert.Single(await Leases.ListAsync()).Owner);
    }

    [Fact]
    public async Task Of_many_contenders_racing_for_a_free_or_lapsed_lease_exactly_one_wins()
    {
        for (var round = 0; round < 3; round++)
        {
            var start = new TaskCompletionSource();
            var racers = Enumerable.Range(0, 16).Select(i => Task.Run(async () =>
            {
                await start.Task;
                return await Leases.TryAcquireAsync("job", $"owner-{round}-{i}", Ttl);
            })).ToList();
            start.SetResult();
            var winners = (await Task.WhenAll(racers)).Where(l => l is not null).ToList();
            Assert.Single(winners);
            Clock.Advance(Ttl + TimeSpan.FromSeconds(1));
        }
    }

    [Fact]
    public async Task Single_owner_runs_the_job_in_one_place_and_a_standby_takes_over_when_the_owner_stops_or_stalls()
    {
        // Real timers here: the runner's renewals and standby attempts are what is tested.
        var backend = Create(TimeProvider.System);
        var running = 0;
        var maxRunning = 0;
        var runs = new System.Collections.Concurrent.ConcurrentQueue<string>();
        Func<Lease, CancellationToken, Task> Job(string who) => async (lease, ct) =>
        {
            var now = Interlocked.Increment(ref running);
            InterlockedMax(ref maxRunning, now);
            runs.Enqueue(who);
            try { await Task.Delay(Timeout.Infinite, ct); }
            finally { Interlocked.Decrement(ref running); }
        };
        // Renewals every 0.5 s leave a second of slack before the lease lapses, even on a loaded machine.
        var options = new LeaseOptions { Duration = TimeSpan.FromMilliseconds(1_500) };
        using var stopA = new CancellationTokenSource();
        using var stopB = new CancellationTokenSource();
        var a = SingleOwner.RunAsync(backend.Leases, "job", options with { Owner = "a" }, Job("a"), null, NullLogger.Instance, stopA.Token);
        await WaitUntil(() => runs.Count == 1);
        var b = SingleOwner.RunAsync(backend.Leases, "job", options with { Owner = "b" }, Job("b"), null, NullLogger.Instance, stopB.Token);
        await Task.Delay(2_000); // several of the owner's renewals and the standby's attempts
        Assert.Equal(["a"], runs.ToArray());

        // The owner stops: it releases, and the standby takes over without waiting for the lease to lapse.
        await stopA.CancelAsync();
        await a;
        await WaitUntil(() => runs.Count == 2);
        Assert.Equal(["a", "b"], runs.ToArray());
        Assert.Equal(1, maxRunning);

        // An owner that stalls (renews far too late) loses the lease to a standby and its job is cancelled.
        using var stopC = new CancellationTokenSource();
        var cJobEnded = new TaskCompletionSource();
        var c = SingleOwner.RunAsync(backend.Leases, "job2", options with { Owner = "c", RenewInterval = TimeSpan.FromSeconds(3) }, async (lease, ct) =>
        {
            runs.Enqueue("c");
            try { await Task.Delay(Timeout.Infinite, ct); }
            finally
            {
                // The lapsed owner's fenced write is refused.
                await Assert.ThrowsAsync<LeaseLostException>(() => backend.Checkpoints.StoreAsync("job2", 1, lease));
                cJobEnded.TrySetResult();
            }
        }, null, NullLogger.Instance, stopC.Token);
        await WaitUntil(() => runs.Contains("c"));
        using var stopD = new CancellationTokenSource();
        var d = SingleOwner.RunAsync(backend.Leases, "job2", options with { Owner = "d" }, Job("d"), null, NullLogger.Instance, stopD.Token);
        await WaitUntil(() => runs.Contains("d"));
        await cJobEnded.Task.WaitAsync(TimeSpan.FromSeconds(30)); // c's late renewal found the lease gone
        await stopB.CancelAsync();
        await stopC.CancelAsync();
        await stopD.CancelAsync();
        await Task.WhenAll(b, c, d).WaitAsync(TimeSpan.FromSeconds(30));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition()) await Task.Delay(10, cts.Token);
    }
}
