using Factum.Projections;
using Factum.Subscriptions;

namespace Factum.Conformance;

/// <summary>How a backend provides its projection engine.</summary>
public interface IProjectionEngineFactory
{
    /// <summary>The projection engine of <paramref name="store"/>.</summary>
    IProjectionEngine CreateProjectionEngine(IEventStore store);

    /// <summary>Rewinds a projection's checkpoint to 0 without touching its documents, as a crash between the two would.</summary>
    Task RewindCheckpointOnlyAsync(IEventStore store, string projection);
}

[EventType("ShopOrderPlaced")]
public sealed record ShopOrderPlaced(string OrderId, string CustomerId, decimal Total);

[EventType("ShopOrderShipped")]
public sealed record ShopOrderShipped(string OrderId);

[EventType("CreditTransferred")]
public sealed record CreditTransferred(string From, string To, decimal Amount);

public sealed record OrderView(string Id, string? CustomerId = null, decimal Total = 0, bool Shipped = false);

public sealed record CustomerView(string CustomerId, int Orders = 0, decimal Spent = 0);

public sealed record BalanceView(string Account, decimal Balance = 0);

/// <summary>Projections: styles, exactly-once batches, idempotent views, blue/green rebuild, reset and failure policies.</summary>
public abstract class ProjectionConformance<TFactory> : StoreTestBase<TFactory>
    where TFactory : IEventStoreFactory, IProjectionEngineFactory, ISubscriptionStoreFactory, new()
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly EventTypeRegistry _registry = new EventTypeRegistry().Register<ShopOrderPlaced>().Register<ShopOrderShipped>().Register<CreditTransferred>();
    private readonly List<IProjectionRun> _runners = [];
    private IProjectionEngine? _engine;

    protected override EventStoreOptions Options => new();

    private IProjectionEngine _models => _engine ??= new TFactory().CreateProjectionEngine(Store);

    public override async Task DisposeAsync()
    {
        foreach (var r in _runners) await r.DisposeAsync();
        await base.DisposeAsync();
    }

    private DocumentProjection<CustomerView> Customers(int version = 1, decimal factor = 1m, Func<ShopOrderPlaced, bool>? failOn = null) =>
        new DocumentProjection<CustomerView>("customers", version, _registry, key => new CustomerView(key))
            .On<ShopOrderPlaced>(e => e.CustomerId, (v, e) =>
            {
                if (failOn?.Invoke(e) == true) throw new InvalidOperationException($"cannot project {e.OrderId}");
                return v with { Orders = v.Orders + 1, Spent = v.Spent + e.Total * factor };
            });

    private DocumentProjection<OrderView> Orders() =>
        new DocumentProjection<OrderView>("orders", 1, _registry, key => new OrderView(key))
            .On<ShopOrderPlaced>((v, e) => v with { CustomerId = e.CustomerId, Total = e.Total })
            .On<ShopOrderShipped>((v, e) => v with { Shipped = true });

    private async Task<IProjectionRun> Run(IProjection projection, ProjectionOptions? options = null)
    {
        var runner = await _models.StartAsync(projection, options ?? new ProjectionOptions { Retry = new RetryPolicy { MaxAttempts = 2, InitialDelay = TimeSpan.FromMilliseconds(1) }, LiveWaitTimeout = TimeSpan.FromMilliseconds(100) });
        _runners.Add(runner);
        return runner;
    }

    private Task Place(string order, string customer, decimal total) =>
        Store.AppendAsync(StreamId.For("Order", order), ExpectedVersion.Any, [_registry.Encode(new ShopOrderPlaced(order, customer, total))]);

    private async Task<ProjectionInfo> Info(string name, int? version = null) =>
        (await _models.ListAsync()).Single(p => p.Name == name && (version is null ? p.Active : p.Version == version));

    private async Task UntilCaughtUp(string name, int? version = null)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (true)
        {
            var all = await _models.ListAsync();
            var p = all.SingleOrDefault(x => x.Name == name && (version is null ? x.Active : x.Version == version));
            if (p is not null && p.Lag == 0 && (version is null || p.Active)) return;
            await Task.Delay(10, cts.Token);
        }
    }

    [Fact]
    public async Task A_declarative_projection_builds_views_by_stream_and_by_any_key()
    {
        await Place("1", "ann", 10m);
        await Place("2", "ann", 5m);
        await Place("3", "bob", 7m);
        await Store.AppendAsync(StreamId.For("Order", "1"), ExpectedVersion.Any, [_registry.Encode(new ShopOrderShipped("1"))]);
        await Run(Orders());
        await Run(Customers());
        await UntilCaughtUp("orders");
        await UntilCaughtUp("customers");
        Assert.Equal(new OrderView("Order-1", "ann", 10m, true), await _models.GetViewAsync<OrderView>("orders", "Order-1"));
        Assert.Equal(new CustomerView("ann", 2, 15m), await _models.GetViewAsync<CustomerView>("customers", "ann"));
        Assert.Equal(new CustomerView("bob", 1, 7m), await _models.GetViewAsync<CustomerView>("customers", "bob"));
        Assert.Null(await _models.GetViewAsync<CustomerView>("customers", "nobody"));
        var annOrders = await _models.QueryAsync("orders", ProjectionQuery.WhereEquals("view.customerId", "ann"));
        Assert.Equal(["Order-1", "Order-2"], annOrders.Select(x => x.Key));
    }

    [Fact]
    public async Task One_event_can_update_several_views()
    {
        var balances = new DocumentProjection<BalanceView>("balances", 1, _registry, key => new BalanceView(key))
            .On<CreditTransferred>((e, _) => [e.From, e.To], (v, e, _) => v with { Balance = v.Balance + (v.Account == e.To ? e.Amount : -e.Amount) });
        await Store.AppendAsync(StreamId.Parse("Transfer-1"), ExpectedVersion.Any, [_registry.Encode(new CreditTransferred("a", "b", 30m))]);
        await Run(balances);
        await UntilCaughtUp("balances");
        Assert.Equal(-30m, (await _models.GetViewAsync<BalanceView>("balances", "a"))!.Balance);
        Assert.Equal(30m, (await _models.GetViewAsync<BalanceView>("balances", "b"))!.Balance);
    }

    [Fact]
    public async Task A_running_projection_follows_new_events_and_its_checkpoint_reaches_the_head()
    {
        await Run(Customers());
        await Place("1", "ann", 1m);
        await Store.AppendAsync(StreamId.Parse("Noise-1"), ExpectedVersion.Any, [EventData.FromJson("NoiseMade", "{}")]);
        await Place("2", "ann", 2m);
        await UntilCaughtUp("customers");
        var info = await Info("customers");
        Assert.Equal((await Store.GetHeadPositionAsync()).Value, info.Position);
        Assert.Equal("Live", info.State);
        Assert.Equal(3m, (await _models.GetViewAsync<CustomerView>("customers", "ann"))!.Spent);
    }

    [Fact]
    public async Task Redelivered_events_do_not_change_the_views()
    {
        for (var i = 0; i < 20; i++) await Place($"{i}", i % 2 == 0 ? "ann" : "bob", 1m);
        var runner = await Run(Customers());
        await UntilCaughtUp("customers");
        await runner.StopAsync();
        // Simulate a crash between the read model and its checkpoint: rewind only the checkpoint.
        await new TFactory().RewindCheckpointOnlyAsync(Store, "customers");
        await Run(Customers());
        await UntilCaughtUp("customers");
        Assert.Equal(new CustomerView("ann", 10, 10m), await _models.GetViewAsync<CustomerView>("customers", "ann"));
    }

    [Fact]
    public async Task A_restarted_projection_continues_from_its_checkpoint()
    {
        await Place("1", "ann", 1m);
        var runner = await Run(Customers());
        await UntilCaughtUp("customers");
        await runner.StopAsync();
        await Place("2", "ann", 1m);
        await Run(Customers());
        await UntilCaughtUp("customers");
        Assert.Equal(new CustomerView("ann", 2, 2m), await _models.GetViewAsync<CustomerView>("customers", "ann"));
    }

    [Fact]
    public async Task A_new_version_rebuilds_in_the_background_while_queries_read_the_old_one_then_switches()
    {
        for (var i = 0; i < 10; i++) await Place($"{i}", "ann", 1m);
        await Run(Customers(version: 1));
        await UntilCaughtUp("customers");
        using var gate = new SemaphoreSlim(0);
        var v2 = new DocumentProjection<CustomerView>("customers", 2, _registry, key => new CustomerView(key))
            .On<ShopOrderPlaced>(e => e.CustomerId, (v, e) =>
            {
                gate.Wait();
                return v with { Orders = v.Orders + 1, Spent = v.Spent + e.Total * 100 };
            });
        await Run(v2, new ProjectionOptions { BatchSize = 1, LiveWaitTimeout = TimeSpan.FromMilliseconds(100) });
        await Task.Delay(100);
        // v2 is building (blocked on its first event): readers still get v1.
        Assert.Equal(10m, (await _models.GetViewAsync<CustomerView>("customers", "ann"))!.Spent);
        var building = await Info("customers", 2);
        Assert.False(building.Active);
        Assert.Equal("Building", building.State);
        gate.Release(1000);
        await UntilCaughtUp("customers", 2);
        Assert.Equal(1000m, (await _models.GetViewAsync<CustomerView>("customers", "ann"))!.Spent);
        var versions = (await _models.ListAsync()).Where(p => p.Name == "customers").ToList();
        Assert.Equal(2, Assert.Single(versions).Version); // the old version and its documents are gone
    }

    [Fact]
    public async Task Reset_rebuilds_in_place()
    {
        for (var i = 0; i < 5; i++) await Place($"{i}", "ann", 2m);
        await Run(Customers());
        await UntilCaughtUp("customers");
        await _models.ResetAsync("customers");
        await UntilCaughtUp("customers");
        Assert.Equal(new CustomerView("ann", 5, 10m), await _models.GetViewAsync<CustomerView>("customers", "ann"));
    }

    [Fact]
    public async Task A_failing_event_stops_the_projection_and_says_which_and_why()
    {
        await Place("1", "ann", 1m);
        await Place("2", "ann", 1m);
        await Place("3", "ann", 1m);
        var runner = await Run(Customers(failOn: e => e.OrderId == "2"));
        await runner.Completion.WaitAsync(Patience);
        var info = await Info("customers");
        Assert.Equal("Faulted", info.State);
        Assert.Equal(2, info.FailingPosition);
        Assert.Contains("cannot project 2", info.LastError);
        Assert.Equal(1, info.Position);
        Assert.Equal(new CustomerView("ann", 1, 1m), await _models.GetViewAsync<CustomerView>("customers", "ann"));
    }

    [Fact]
    public async Task A_stopped_projection_is_logged_once_and_skip_parks_the_event_so_the_next_run_goes_on()
    {
        await Place("1", "ann", 1m);
        await Place("2", "ann", 1m);
        await Place("3", "ann", 1m);
        var logs = new CapturingLoggerProvider();
        var runner = await Run(Customers(failOn: e => e.OrderId == "2"), new ProjectionOptions
        {
            Retry = new RetryPolicy { MaxAttempts = 2, InitialDelay = TimeSpan.FromMilliseconds(1) },
            LiveWaitTimeout = TimeSpan.FromMilliseconds(100),
            LoggerFactory = logs,
        });
        await runner.Completion.WaitAsync(Patience);
        var error = Assert.Single(logs.Entries, e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning);
        Assert.Equal((FactumLogEvents.ProjectionFaulted, Microsoft.Extensions.Logging.LogLevel.Error), (error.EventId.Id, error.Level));
        Assert.Equal(2L, error.Fields["Position"]);
        Assert.Equal("ShopOrderPlaced", error.Fields["EventType"]);
        Assert.Equal("Order-2", error.Fields["Stream"]);
        Assert.Contains("factum projections skip customers", error.Message);
        Assert.Contains("cannot project 2", error.Exception!.Message);

        // Nothing to skip on a projection that has not stopped, and no such projection: both say so.
        await Assert.ThrowsAsync<ArgumentException>(() => _models.SkipFailingEventAsync("nope"));
        var skipped = Assert.Single(await _models.SkipFailingEventAsync("customers"));
        Assert.Equal((2L, "ShopOrderPlaced", "Order-2"), (skipped.Position.Value, skipped.Type, skipped.StreamId.Value));
        Assert.Contains("cannot project 2", skipped.ErrorMessage);
        var info = await Info("customers");
        Assert.Equal(("Pending", 2L, null), (info.State, info.Position, info.FailingPosition));
        await Assert.ThrowsAsync<InvalidOperationException>(() => _models.SkipFailingEventAsync("customers"));

        // Its next run goes on after the skipped event; the parked list says what the read model leaves out.
        await Run(Customers(failOn: e => e.OrderId == "2"));
        await UntilCaughtUp("customers");
        Assert.Equal(new CustomerView("ann", 2, 2m), await _models.GetViewAsync<CustomerView>("customers", "ann"));
        Assert.Equal([2L], (await _models.ListParkedAsync("customers")).Select(p => p.Position.Value));
    }

    [Fact]
    public async Task A_reset_projection_is_pending_until_a_runner_takes_it()
    {
        await Place("1", "ann", 1m);
        var runner = await Run(Customers());
        await UntilCaughtUp("customers");
        await runner.StopAsync();
        await _models.ResetAsync("customers");
        Assert.Equal(("Pending", 0L), ((await Info("customers")).State, (await Info("customers")).Position));
        await Run(Customers());
        await UntilCaughtUp("customers");
        Assert.Equal("Live", (await Info("customers")).State);
    }

    [Fact]
    public async Task With_the_park_policy_a_failing_event_is_parked_and_the_projection_goes_on()
    {
        await Place("1", "ann", 1m);
        await Place("2", "ann", 1m);
        await Place("3", "ann", 1m);
        await Run(Customers(failOn: e => e.OrderId == "2"), new ProjectionOptions { OnFailure = FailureAction.Park, Retry = new RetryPolicy { MaxAttempts = 1 } });
        await UntilCaughtUp("customers");
        Assert.Equal(new CustomerView("ann", 2, 2m), await _models.GetViewAsync<CustomerView>("customers", "ann"));
        var parked = Assert.Single(await new TFactory().CreateSubscriptionStores(Store).Parked.ListAsync("projection:customers:v1"));
        Assert.Equal(2, parked.Position.Value);
    }

    [Fact]
    public async Task A_low_level_projection_writes_through_its_context()
    {
        var counter = new EventCounter();
        await Place("1", "ann", 1m);
        await Store.AppendAsync(StreamId.Parse("Noise-1"), ExpectedVersion.Any, [EventData.FromJson("NoiseMade", "{}")]);
        await Run(counter);
        await UntilCaughtUp("event-counts");
        Assert.Equal("{\"count\":1}", await _models.GetJsonAsync("event-counts", "ShopOrderPlaced"));
        Assert.Equal("{\"count\":1}", await _models.GetJsonAsync("event-counts", "NoiseMade"));
        Assert.Null(await _models.GetJsonAsync("event-counts", "Nothing"));
    }

    [Fact]
    public async Task Querying_an_unknown_projection_fails_clearly()
    {
        var ex = await Assert.ThrowsAsync<ArgumentException>(() => _models.GetJsonAsync("nope", "x"));
        Assert.Contains("no projection named 'nope'", ex.Message);
    }

    // Issue 11 (found by review): a superseded version's runner, caught between reading its checkpoint and applying a
    // batch while the new version took over and dropped its table, faulted with "no such table".
    [Fact]
    public async Task A_superseded_version_caught_mid_batch_by_the_switch_ends_quietly()
    {
        await Place("1", "ann", 1m);
        var v1 = new GatedCounter(1);
        var logs = new CapturingLoggerProvider();
        var runner = await Run(v1, new ProjectionOptions { LiveWaitTimeout = TimeSpan.FromMilliseconds(20), LoggerFactory = logs, Retry = new RetryPolicy { MaxAttempts = 2, InitialDelay = TimeSpan.FromMilliseconds(1) } });
        await UntilCaughtUp("event-counts");
        // v1 pauses in its next round, after it has read its checkpoint and before it reads and applies the batch.
        v1.Hold();
        Assert.True(await v1.Held.WaitAsync(Patience));
        await Place("2", "bob", 1m);
        await Run(new GatedCounter(2));
        await UntilCaughtUp("event-counts", 2); // v2 is active; v1's table and record are gone
        Assert.DoesNotContain(await _models.ListAsync(), p => p.Name == "event-counts" && p.Version == 1);
        v1.Release();
        await runner.Completion.WaitAsync(Patience); // ends, without an exception
        // ...and without reporting a failure: being superseded is not an error, and nothing was parked.
        Assert.DoesNotContain(logs.Entries, e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning);
        Assert.Empty(await new TFactory().CreateSubscriptionStores(Store).Parked.ListAsync("projection:event-counts:v1"));
        Assert.Equal("{\"count\":2}", await _models.GetJsonAsync("event-counts", "ShopOrderPlaced"));
    }

    private DocumentProjection<OrderView> IndexedOrders() =>
        new DocumentProjection<OrderView>("orders", 1, _registry, key => new OrderView(key))
            .Index("view.customerId").Index("view.total")
            .On<ShopOrderPlaced>((v, e) => v with { CustomerId = e.CustomerId, Total = e.Total })
            .On<ShopOrderShipped>((v, e) => v with { Shipped = true });

    private async Task<string[]> Keys(ProjectionQuery query) =>
        (await _models.QueryAsync("orders", query)).Select(d => d.Key.Replace("Order-", "", StringComparison.Ordinal)).ToArray();

    [Fact]
    public async Task Queries_select_by_field_equality_and_range_order_by_a_field_and_page()
    {
        await Place("1", "ann", 10m);
        await Place("2", "bob", 5m);
        await Place("3", "ann", 7.5m);
        await Place("4", "cat", 20m);
        await Place("5", "ann", 1m);
        await Store.AppendAsync(StreamId.For("Order", "3"), ExpectedVersion.Any, [_registry.Encode(new ShopOrderShipped("3"))]);
        await Run(IndexedOrders());
        await UntilCaughtUp("orders");

        Assert.Equal(["1", "2", "3", "4", "5"], await Keys(ProjectionQuery.All));
        Assert.Equal(["1", "3", "5"], await Keys(ProjectionQuery.WhereEquals("view.customerId", "ann")));
        Assert.Equal(["1", "3", "4"], await Keys(ProjectionQuery.Where("view.total", QueryOperator.GreaterThanOrEqual, 7.5m)));
        Assert.Equal(["1", "3"], await Keys(ProjectionQuery.Where("view.total", QueryOperator.GreaterThan, 5).And("view.total", QueryOperator.LessThan, 20)));
        Assert.Equal(["2", "5"], await Keys(ProjectionQuery.Where("view.total", QueryOperator.LessThanOrEqual, 5L)));
        Assert.Equal(["1", "3"], await Keys(ProjectionQuery.WhereEquals("view.customerId", "ann").And("view.total", QueryOperator.GreaterThan, 5)));
        Assert.Equal(["3"], await Keys(ProjectionQuery.WhereEquals("view.shipped", true)));
        Assert.Equal(["2", "4"], await Keys(ProjectionQuery.Where("view.customerId", QueryOperator.GreaterThan, "ann")));

        // Ordered by a field (then by key), either way, and paged.
        Assert.Equal(["5", "2", "3", "1", "4"], await Keys(ProjectionQuery.All.OrderedBy("view.total")));
        Assert.Equal(["4", "1", "3", "2", "5"], await Keys(ProjectionQuery.All.OrderedBy("view.total", descending: true)));
        Assert.Equal(["1", "3", "5", "2", "4"], await Keys(ProjectionQuery.All.OrderedBy("view.customerId")));
        Assert.Equal(["2", "3"], await Keys(ProjectionQuery.All.OrderedBy("view.total").Page(skip: 1, take: 2)));
        Assert.Equal(["4", "5"], await Keys(ProjectionQuery.All.Page(skip: 3, take: 10)));
        Assert.Equal(["3"], await Keys(ProjectionQuery.WhereEquals("view.customerId", "ann").OrderedBy("view.total", descending: true).Page(1, 1)));

        // A value matches only a field of its kind; a document without the field never matches, and orders first.
        Assert.Empty(await Keys(ProjectionQuery.WhereEquals("view.total", "10")));
        Assert.Empty(await Keys(ProjectionQuery.Where("view.customerId", QueryOperator.GreaterThan, 0)));
        Assert.Empty(await Keys(ProjectionQuery.WhereEquals("view.nothing", "x")));
        Assert.Equal(["1", "2", "3", "4", "5"], await Keys(ProjectionQuery.All.OrderedBy("view.nothing")));
    }

    [Fact]
    public async Task A_query_on_a_malformed_field_or_value_fails_naming_it()
    {
        await Place("1", "ann", 10m);
        await Run(IndexedOrders());
        await UntilCaughtUp("orders");
        foreach (var field in new[] { "$.view.total", "view..total", "view total", "", "view.total'" })
        {
            var ex = await Assert.ThrowsAsync<ArgumentException>(() => _models.QueryAsync("orders", new ProjectionQuery { Conditions = [new FieldCondition(field, QueryOperator.Equal, "x")] }));
            Assert.Contains($"Unknown field '{field}'", ex.Message);
            Assert.Throws<ArgumentException>(() => ProjectionQuery.All.OrderedBy(field));
        }
        var order = await Assert.ThrowsAsync<ArgumentException>(() => _models.QueryAsync("orders", new ProjectionQuery { OrderBy = "view.to-tal" }));
        Assert.Contains("Unknown field 'view.to-tal'", order.Message);
        var value = Assert.Throws<ArgumentException>(() => ProjectionQuery.WhereEquals("view.total", DateTime.UtcNow));
        Assert.Contains("a string, a number or a bool", value.Message);
        Assert.Throws<ArgumentException>(() => ProjectionQuery.WhereEquals("view.total", null!));
        Assert.Throws<ArgumentException>(() => new DocumentProjection<OrderView>("orders", 1, _registry, key => new OrderView(key)).Index("view.customer id"));
        var unknown = await Assert.ThrowsAsync<ArgumentException>(() => _models.QueryAsync("nope", ProjectionQuery.All));
        Assert.Contains("no projection named 'nope'", unknown.Message);
    }

    [Fact]
    public async Task Two_runners_of_one_version_apply_each_event_once_through_one_lease_and_the_standby_takes_over()
    {
        for (var i = 0; i < 10; i++) await Place($"{i}", "ann", 1m);
        var options = new ProjectionOptions { LiveWaitTimeout = TimeSpan.FromMilliseconds(50), Lease = new Coordination.LeaseOptions { Duration = TimeSpan.FromSeconds(2) } };
        var a = Assert.IsType<ProjectionRunner>(await Run(new EventCounter(), options));
        var b = Assert.IsType<ProjectionRunner>(await Run(new EventCounter(), options));
        await UntilCaughtUp("event-counts");
        Assert.True(a.IsOwner ^ b.IsOwner, $"one owner: a {a.IsOwner}, b {b.IsOwner}");
        Assert.Equal("{\"count\":10}", await _models.GetJsonAsync("event-counts", "ShopOrderPlaced"));

        var (owner, standby) = a.IsOwner ? (a, b) : (b, a);
        await owner.StopAsync(); // releases the lease: the standby takes it at its next attempt
        for (var i = 10; i < 15; i++) await Place($"{i}", "ann", 1m);
        using var cts = new CancellationTokenSource(Patience);
        while (!standby.IsOwner) await Task.Delay(10, cts.Token);
        await UntilCaughtUp("event-counts");
        Assert.Equal("{\"count\":15}", await _models.GetJsonAsync("event-counts", "ShopOrderPlaced"));
    }

    [Fact]
    public async Task A_runner_whose_lease_was_taken_cannot_commit_promote_or_record_a_fault()
    {
        var store = Assert.IsAssignableFrom<ProjectionEngine>(_models).Store;
        await store.RegisterAsync(new ProjectionRegistration("fenced", 1, []));
        var lease = ProjectionEngine.LeaseName("fenced", 1);
        var first = (await store.Leases.TryAcquireAsync(lease, "first", TimeSpan.FromMinutes(1)))!;
        // The first owner pauses; its lease ends (released here, as a lapse would) and a second owner takes it.
        await store.Leases.ReleaseAsync(first);
        var second = (await store.Leases.TryAcquireAsync(lease, "second", TimeSpan.FromMinutes(1)))!;
        Assert.True(second.FencingToken > first.FencingToken);

        var batch = new ProjectionBatch("fenced", 1, 0, 5, [new DocumentChange("k", "{\"by\":\"first\"}")]);
        await Assert.ThrowsAsync<Coordination.LeaseLostException>(() => store.CommitAsync(batch, first));
        await Assert.ThrowsAsync<Coordination.LeaseLostException>(() => store.PromoteAsync("fenced", 1, first));
        await Assert.ThrowsAsync<Coordination.LeaseLostException>(() => store.RecordFaultAsync("fenced", 1, 3, "boom", first));
        Assert.Equal(0, await store.LoadCheckpointAsync("fenced", 1));
        Assert.Null(await _models.GetJsonAsync("fenced", "k"));
        Assert.Equal(("Building", (long?)null), ((await Info("fenced")).State, (await Info("fenced")).FailingPosition));

        // The owner commits; a batch computed from a checkpoint that has moved since is refused.
        await store.CommitAsync(batch with { Changes = [new DocumentChange("k", "{\"by\":\"second\"}")] }, second);
        Assert.Equal(5, await store.LoadCheckpointAsync("fenced", 1));
        Assert.Equal("{\"by\":\"second\"}", await _models.GetJsonAsync("fenced", "k"));
        await Assert.ThrowsAsync<ProjectionCheckpointMovedException>(() => store.CommitAsync(batch with { Through = 7 }, second));
        Assert.Equal(5, await store.LoadCheckpointAsync("fenced", 1));
    }

    [Fact]
    public async Task A_paused_runner_whose_lease_expired_cannot_commit_even_before_another_takes_it()
    {
        // A store on the manual clock: the lease lapses when the clock says so, with no wall-clock sleep.
        var factory = new TFactory();
        var store = factory.Create(new EventStoreOptions { TimeProvider = Clock });
        try
        {
            var projections = Assert.IsAssignableFrom<ProjectionEngine>(factory.CreateProjectionEngine(store)).Store;
            await projections.RegisterAsync(new ProjectionRegistration("paused", 1, ["view.total"]));
            var lease = ProjectionEngine.LeaseName("paused", 1);
            var owner = (await projections.Leases.TryAcquireAsync(lease, "owner", TimeSpan.FromSeconds(10)))!;
            var batch = new ProjectionBatch("paused", 1, 0, 3, [new DocumentChange("k", "{\"n\":1}")]);
            Clock.Advance(TimeSpan.FromSeconds(11)); // the owner was paused past its lease
            await Assert.ThrowsAsync<Coordination.LeaseLostException>(() => projections.CommitAsync(batch, owner));
            Assert.Equal(0, await projections.LoadCheckpointAsync("paused", 1));

            var next = (await projections.Leases.TryAcquireAsync(lease, "next", TimeSpan.FromSeconds(10)))!;
            await Assert.ThrowsAsync<Coordination.LeaseLostException>(() => projections.CommitAsync(batch, owner));
            await projections.CommitAsync(batch, next);
            Assert.Equal(3, await projections.LoadCheckpointAsync("paused", 1));
            Assert.Equal("{\"n\":1}", await projections.GetJsonAsync("paused", "k"));
        }
        finally
        {
            await factory.DestroyAsync(store);
        }
    }

    /// <summary>Counts events per type; <see cref="Hold"/> makes the runner wait when it next asks for the filter.</summary>
    private sealed class GatedCounter(int version) : IProjection
    {
        private readonly SemaphoreSlim _release = new(0);
        private volatile bool _hold;

        public SemaphoreSlim Held { get; } = new(0);

        public string Name => "event-counts";

        public int Version => version;

        public EventFilter Filter
        {
            get
            {
                if (_hold)
                {
                    _hold = false;
                    Held.Release();
                    _release.Wait(TimeSpan.FromSeconds(30));
                }
                return EventFilter.None;
            }
        }

        public void Hold() => _hold = true;

        public void Release() => _release.Release();

        public async ValueTask ApplyAsync(RecordedEvent e, IProjectionContext context, CancellationToken cancellationToken) =>
            context.Put(e.Type, new Count(((await context.GetAsync<Count>(e.Type, cancellationToken))?.count ?? 0) + 1));
    }

    private sealed record Count(int count);

    private sealed class EventCounter : IProjection
    {
        public string Name => "event-counts";
        public int Version => 1;
        public EventFilter Filter => EventFilter.None;

        public async ValueTask ApplyAsync(RecordedEvent e, IProjectionContext context, CancellationToken cancellationToken) =>
            context.Put(e.Type, new Count(((await context.GetAsync<Count>(e.Type, cancellationToken))?.count ?? 0) + 1));
    }
}
