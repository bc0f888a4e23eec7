using Factum.Conformance;
using Factum.Conformance.Messaging;
using Factum.Coordination;
using Factum.Messaging;

namespace Factum.Tests;

public sealed class InMemoryMessageStoreFactory : IMessageStoreFactory
{
    public (IMessageStore Store, ILeaseStore Leases) Create(TimeProvider clock)
    {
        var leases = new InMemoryLeaseStore(clock);
        return (new InMemoryMessageStore(clock, leases), leases);
    }

    public MessageWork CountEffect(string key) => MessageWork.For<InMemoryMessageSession>((s, _) =>
    {
        s.Data[key] = (s.Data.TryGetValue(key, out var v) ? (int)v! : 0) + 1;
        return ValueTask.CompletedTask;
    });

    public Task<int> EffectsAsync(IMessageStore store, string key) =>
        Task.FromResult(((InMemoryMessageStore)store).Data.TryGetValue(key, out var v) ? (int)v! : 0);

    public ValueTask DestroyAsync(IMessageStore store) => ValueTask.CompletedTask;
}

public sealed class InMemoryMessageStoreConformance : MessageStoreConformance<InMemoryMessageStoreFactory>;

/// <summary>The message-store suite must be able to fail: on a check-then-act inbox and on dispatchers without a lease, it does.</summary>
public sealed class MessageStoreSuiteSelfTests
{
    // Nested and private: xUnit does not run them on their own; the facts below expect their scenarios to fail.
    private sealed class OnCheckThenActInbox : MessageStoreConformance<InMemoryMessageStoreFactory>
    {
        protected override IMessageStore Wrap(IMessageStore store) => new CheckThenActInbox(store);
    }

    private sealed class WithoutDispatcherLease : MessageStoreConformance<InMemoryMessageStoreFactory>
    {
        protected override ILeaseStore? DispatcherLeases => null;
    }

    [Fact]
    public async Task A_check_then_act_inbox_fails_the_race()
    {
        Assert.IsAssignableFrom<Xunit.Sdk.XunitException>(await SuiteSelfTest.FailureOf(new OnCheckThenActInbox(), s => s.Two_consumers_racing_on_one_inbox_record_commit_exactly_once()));
        // The same scenario passes on the store itself.
        Assert.Null(await SuiteSelfTest.FailureOf(new InMemoryMessageStoreConformance(), s => s.Two_consumers_racing_on_one_inbox_record_commit_exactly_once()));
    }

    [Fact]
    public async Task Two_dispatchers_without_one_owner_fail_the_order_test()
    {
        Assert.IsAssignableFrom<Xunit.Sdk.XunitException>(await SuiteSelfTest.FailureOf(new WithoutDispatcherLease(), s => s.Two_dispatchers_hand_the_outbox_over_once_and_in_commit_order()));
    }
}
