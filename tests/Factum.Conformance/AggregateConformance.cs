using Factum.Aggregates;

namespace Factum.Conformance;

/// <summary>How a backend provides a snapshot store for its event store.</summary>
public interface ISnapshotStoreFactory
{
    /// <summary>The snapshot store that goes with <paramref name="store"/>.</summary>
    ISnapshotStore CreateSnapshotStore(IEventStore store);
}

[EventType("AccountOpened")]
public sealed record AccountOpened(string Owner);

[EventType("MoneyDeposited")]
public sealed record MoneyDeposited(decimal Amount);

[EventType("MoneyWithdrawn")]
public sealed record MoneyWithdrawn(decimal Amount);

public sealed record Account(bool Open, string? Owner, decimal Balance, int Transactions);

/// <summary>The object-oriented style of the same account.</summary>
public sealed class AccountRoot : AggregateRoot
{
    public decimal Balance { get; private set; }

    public void Deposit(decimal amount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(amount);
        Raise(new MoneyDeposited(amount));
    }

    protected override void When(object @event)
    {
        if (@event is MoneyDeposited d) Balance += d.Amount;
        if (@event is MoneyWithdrawn w) Balance -= w.Amount;
    }
}

/// <summary>Aggregates: decide/evolve, conflicts, snapshots and time travel.</summary>
public abstract class AggregateConformance<TFactory> : StoreTestBase<TFactory> where TFactory : IEventStoreFactory, ISnapshotStoreFactory, new()
{
    private static readonly EventTypeRegistry Registry = new EventTypeRegistry().Register<AccountOpened>().Register<MoneyDeposited>().Register<MoneyWithdrawn>();

    protected static AggregateDefinition<Account> Accounts(int snapshotEvery = 0, int snapshotVersion = 1) =>
        new("Account", () => new Account(false, null, 0, 0), (s, e) => e switch
        {
            AccountOpened o => s with { Open = true, Owner = o.Owner },
            MoneyDeposited d => s with { Balance = s.Balance + d.Amount, Transactions = s.Transactions + 1 },
            MoneyWithdrawn w => s with { Balance = s.Balance - w.Amount, Transactions = s.Transactions + 1 },
            _ => s,
        })
        { SnapshotEvery = snapshotEvery, SnapshotVersion = snapshotVersion };

    private static IEnumerable<object> Open(Account s) => s.Open ? [] : [new AccountOpened("ann")];

    private static IEnumerable<object> Deposit(Account s, decimal amount) =>
        s.Open ? [new MoneyDeposited(amount)] : throw new InvalidOperationException("The account is not open.");

    private AggregateStore NewStore(ISnapshotStore? snapshots = null) => new(Store, Registry, snapshots);

    private static string NewId() => Guid.NewGuid().ToString("N")[..10];

    [Fact]
    public async Task Handling_a_command_appends_the_decided_events_and_evolves_the_state()
    {
        var store = NewStore();
        var id = NewId();
        var opened = await store.HandleAsync(Accounts(), id, Open);
        Assert.Single(opened.NewEvents);
        var deposited = await store.HandleAsync(Accounts(), id, s => Deposit(s, 25m));
        Assert.Equal(25m, deposited.Aggregate.State.Balance);
        Assert.Equal(new StreamVersion(1), deposited.Aggregate.Version);
        var loaded = await store.LoadAsync(Accounts(), id);
        Assert.Equal(new Account(true, "ann", 25m, 1), loaded.State);
        Assert.Equal(2, loaded.EventsReplayed);
    }

    [Fact]
    public async Task A_decision_that_produces_nothing_appends_nothing()
    {
        var store = NewStore();
        var id = NewId();
        await store.HandleAsync(Accounts(), id, Open);
        var again = await store.HandleAsync(Accounts(), id, Open);
        Assert.Empty(again.NewEvents);
        Assert.Single(await Read(Accounts().StreamOf(id)));
    }

    [Fact]
    public async Task A_new_aggregate_loads_as_its_initial_state()
    {
        var loaded = await NewStore().LoadAsync(Accounts(), NewId());
        Assert.False(loaded.State.Open);
        Assert.Null(loaded.Version);
        Assert.Equal(ExpectedVersion.NoStream, loaded.ExpectedVersion);
    }

    [Fact]
    public async Task A_rejected_command_appends_nothing()
    {
        var store = NewStore();
        var id = NewId();
        await Assert.ThrowsAsync<InvalidOperationException>(() => store.HandleAsync(Accounts(), id, s => Deposit(s, 5m)));
        Assert.Equal(StreamState.NotFound, (await Store.GetStreamInfoAsync(Accounts().StreamOf(id))).State);
    }

    [Fact]
    public async Task Concurrent_commands_all_succeed_when_conflicts_are_retried()
    {
        var store = NewStore();
        var id = NewId();
        await store.HandleAsync(Accounts(), id, Open);
        var results = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => Task.Run(() => store.HandleAsync(Accounts(), id, s => Deposit(s, 1m), retriesOnConflict: 50))));
        Assert.Equal(10m, (await store.LoadAsync(Accounts(), id)).State.Balance);
        Assert.Equal(11, (await Read(Accounts().StreamOf(id))).Count);
        Assert.All(results, r => Assert.Single(r.NewEvents));
    }

    [Fact]
    public async Task Without_retries_a_conflict_fails_clearly_and_writes_nothing()
    {
        var store = NewStore();
        var id = NewId();
        await store.HandleAsync(Accounts(), id, Open);
        using var loaded = new SemaphoreSlim(0);
        using var gate = new SemaphoreSlim(0);
        var slow = Task.Run(() => store.HandleAsync(Accounts(), id, s =>
        {
            loaded.Release();
            gate.Wait();
            return Deposit(s, 100m);
        }, retriesOnConflict: 0));
        await loaded.WaitAsync();
        await store.HandleAsync(Accounts(), id, s => Deposit(s, 1m));
        gate.Release();
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => slow);
        Assert.Equal(1m, (await store.LoadAsync(Accounts(), id)).State.Balance);
    }

    [Fact]
    public async Task Snapshots_are_taken_every_n_events_and_loading_starts_from_the_latest()
    {
        var snapshots = new TFactory().CreateSnapshotStore(Store);
        var store = NewStore(snapshots);
        var def = Accounts(snapshotEvery: 10);
        var id = NewId();
        await store.HandleAsync(def, id, Open);
        for (var i = 0; i < 24; i++) await store.HandleAsync(def, id, s => Deposit(s, 1m));
        var snap = await snapshots.LoadAsync(def.StreamOf(id));
        Assert.NotNull(snap);
        Assert.Equal(19, snap!.Version.Value);
        var loaded = await store.LoadAsync(def, id);
        Assert.Equal(new StreamVersion(19), loaded.SnapshotVersion);
        Assert.Equal(5, loaded.EventsReplayed);
        Assert.Equal(new Account(true, "ann", 24m, 24), loaded.State);
    }

    [Fact]
    public async Task A_snapshot_of_another_schema_version_is_ignored_and_replaced()
    {
        var snapshots = new TFactory().CreateSnapshotStore(Store);
        var id = NewId();
        var v1 = Accounts(snapshotEvery: 5, snapshotVersion: 1);
        var store = NewStore(snapshots);
        await store.HandleAsync(v1, id, Open);
        for (var i = 0; i < 5; i++) await store.HandleAsync(v1, id, s => Deposit(s, 2m));
        Assert.Equal(1, (await snapshots.LoadAsync(v1.StreamOf(id)))!.SchemaVersion);
        // The state's shape changed: version 2 must not read the old snapshot.
        await snapshots.SaveAsync((await snapshots.LoadAsync(v1.StreamOf(id)))! with { Payload = "{\"open\":\"garbage\"}"u8.ToArray() });
        var v2 = Accounts(snapshotEvery: 5, snapshotVersion: 2);
        var loaded = await store.LoadAsync(v2, id);
        Assert.Null(loaded.SnapshotVersion);
        Assert.Equal(10m, loaded.State.Balance);
        for (var i = 0; i < 5; i++) await store.HandleAsync(v2, id, s => Deposit(s, 2m));
        var replaced = await snapshots.LoadAsync(v2.StreamOf(id));
        Assert.Equal(2, replaced!.SchemaVersion);
        Assert.Equal(20m, (await store.LoadAsync(v2, id)).State.Balance);
    }

    [Fact]
    public async Task Time_travel_to_a_version_folds_only_the_events_up_to_it()
    {
        var snapshots = new TFactory().CreateSnapshotStore(Store);
        var store = NewStore(snapshots);
        var def = Accounts(snapshotEvery: 3);
        var id = NewId();
        await store.HandleAsync(def, id, Open);
        for (var i = 1; i <= 8; i++) { var amount = i; await store.HandleAsync(def, id, s => Deposit(s, amount)); }
        var asOf2 = await store.LoadAsOfAsync(def, id, new StreamVersion(2));
        Assert.Equal(3m, asOf2.State.Balance);
        Assert.Equal(new StreamVersion(2), asOf2.Version);
        var asOf7 = await store.LoadAsOfAsync(def, id, new StreamVersion(7));
        Assert.Equal(28m, asOf7.State.Balance);
    }

    [Fact]
    public async Task Time_travel_to_a_timestamp_folds_the_events_recorded_by_then()
    {
        var store = NewStore();
        var def = Accounts();
        var id = NewId();
        Clock.Now = new DateTimeOffset(2026, 3, 1, 9, 0, 0, TimeSpan.Zero);
        await store.HandleAsync(def, id, Open);
        await store.HandleAsync(def, id, s => Deposit(s, 10m));
        Clock.Advance(TimeSpan.FromDays(1));
        await store.HandleAsync(def, id, s => Deposit(s, 5m));
        var thatMorning = await store.LoadAsOfAsync(def, id, new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));
        Assert.Equal(10m, thatMorning.State.Balance);
        Assert.Equal(15m, (await store.LoadAsync(def, id)).State.Balance);
    }

    [Fact]
    public async Task The_base_class_style_loads_decides_and_saves_with_optimistic_concurrency()
    {
        var store = NewStore();
        var id = NewId();
        var a = await store.LoadAsync<AccountRoot>("Account", id);
        a.Deposit(5m);
        a.Deposit(7m);
        await store.SaveAsync("Account", id, a);
        Assert.Empty(a.Changes);
        var b = await store.LoadAsync<AccountRoot>("Account", id);
        Assert.Equal(12m, b.Balance);
        Assert.Equal(new StreamVersion(1), b.Version);
        var stale = await store.LoadAsync<AccountRoot>("Account", id);
        b.Deposit(1m);
        await store.SaveAsync("Account", id, b);
        stale.Deposit(1m);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => store.SaveAsync("Account", id, stale));
    }

    [Fact]
    public async Task An_event_the_code_cannot_read_stops_the_fold_instead_of_skewing_the_state()
    {
        var id = NewId();
        await Append(Accounts().StreamOf(id), ExpectedVersion.NoStream, EventData.FromJson("AccountOpened", """{"owner":"ann"}"""), EventData.FromJson("MoneyDeposited", "not json"));
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => NewStore().LoadAsync(Accounts(), id));
        Assert.Contains("MoneyDeposited", ex.Message);
    }
}
