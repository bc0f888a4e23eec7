using Factum.Conformance;
using Factum.Projections;

namespace Factum.Sqlite.Tests;

public sealed class InlineProjectionTests : IDisposable
{
    private readonly string _dir = TempDir.Create();
    private readonly EventTypeRegistry _registry = new EventTypeRegistry().Register<ShopOrderPlaced>().Register<ShopOrderShipped>();

    private string Db => Path.Combine(_dir, "factum.db");

    public void Dispose() => TempDir.Delete(_dir);

    private DocumentProjection<CustomerView> Customers(string? failOnOrder = null) =>
        new DocumentProjection<CustomerView>("customers", 1, _registry, key => new CustomerView(key))
            .On<ShopOrderPlaced>(e => e.CustomerId, (v, e) => e.OrderId == failOnOrder
                ? throw new InvalidOperationException("refusing " + e.OrderId)
                : v with { Orders = v.Orders + 1, Spent = v.Spent + e.Total });

    private SqliteEventStore Open(params IProjection[] inline) => new(new SqliteEventStoreOptions(Db) { InlineProjections = inline });

    private Task<AppendResult> Place(IEventStore store, string order, string customer, decimal total) =>
        store.AppendAsync(StreamId.For("Order", order), ExpectedVersion.Any, [_registry.Encode(new ShopOrderPlaced(order, customer, total))]);

    [Fact]
    public async Task The_caller_reads_its_own_write_as_soon_as_the_append_returns()
    {
        await using var store = Open(Customers());
        var models = new SqliteReadModels(store);
        for (var i = 0; i < 5; i++)
        {
            await Place(store, $"{i}", "ann", 2m);
            Assert.Equal(new CustomerView("ann", i + 1, 2m * (i + 1)), await models.GetViewAsync<CustomerView>("customers", "ann"));
        }
        var info = Assert.Single(await models.ListAsync());
        Assert.Equal("Inline", info.State);
        Assert.Equal(0, info.Lag);
    }

    [Fact]
    public async Task A_failing_inline_projection_fails_the_append_and_writes_nothing()
    {
        await using var store = Open(Customers(failOnOrder: "bad"));
        await Place(store, "1", "ann", 1m);
        var head = await store.GetHeadPositionAsync();
        var ex = await Assert.ThrowsAsync<ProjectionFailedException>(() => Place(store, "bad", "ann", 100m));
        Assert.Contains("refusing bad", ex.Message);
        Assert.Equal(head, await store.GetHeadPositionAsync());
        Assert.Equal(StreamState.NotFound, (await store.GetStreamInfoAsync(StreamId.For("Order", "bad"))).State);
        await Place(store, "2", "ann", 1m);
        Assert.Equal(new CustomerView("ann", 2, 2m), await new SqliteReadModels(store).GetViewAsync<CustomerView>("customers", "ann"));
        Assert.True(SqliteStoreVerifier.Verify(Db).IsHealthy);
    }

    [Fact]
    public async Task In_a_group_commit_only_the_append_whose_projection_fails_is_rejected()
    {
        await using var store = Open(Customers(failOnOrder: "bad"));
        var appends = Enumerable.Range(0, 30).Select(i => Place(store, i == 15 ? "bad" : $"{i}", "ann", 1m)).ToArray();
        var outcomes = await Task.WhenAll(appends.Select(async t => { try { await t; return true; } catch (ProjectionFailedException) { return false; } }));
        Assert.Equal(29, outcomes.Count(ok => ok));
        Assert.Equal(new CustomerView("ann", 29, 29m), await new SqliteReadModels(store).GetViewAsync<CustomerView>("customers", "ann"));
        var positions = new List<long>();
        await foreach (var e in store.ReadAllAsync()) positions.Add(e.Position.Value);
        Assert.Equal(Enumerable.Range(1, 29).Select(i => (long)i), positions);
    }

    [Fact]
    public async Task Events_appended_without_the_projection_are_applied_before_the_next_commit_exactly_once()
    {
        await using (var plain = Open())
        {
            for (var i = 0; i < 7; i++) await Place(plain, $"old{i}", "ann", 1m);
        }
        await using var withProjection = Open(Customers());
        await using var other = Open(); // another process that does not run the projection
        await Place(other, "x1", "ann", 1m);
        await Place(withProjection, "new", "ann", 1m);
        await Place(other, "x2", "ann", 1m);
        await Place(withProjection, "new2", "ann", 1m);
        Assert.Equal(new CustomerView("ann", 11, 11m), await new SqliteReadModels(withProjection).GetViewAsync<CustomerView>("customers", "ann"));
    }

    [Fact]
    public async Task Promoting_a_new_version_drops_the_old_versions_table()
    {
        await using var store = Open();
        await Place(store, "1", "ann", 1m);
        var engine = new SqliteReadModels(store);
        await using (await engine.StartAsync(Customers()))
        {
            while ((await engine.ListAsync()).Single().Lag > 0) await Task.Delay(10);
        }
        var v2 = new DocumentProjection<CustomerView>("customers", 2, _registry, key => new CustomerView(key))
            .On<ShopOrderPlaced>(e => e.CustomerId, (v, e) => v with { Orders = v.Orders + 1 });
        await using (await engine.StartAsync(v2))
        {
            while ((await engine.ListAsync()) is var l && !(l.Count == 1 && l[0].Version == 2)) await Task.Delay(10);
        }
        using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Db};Pooling=False;Mode=ReadOnly");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT group_concat(name) FROM sqlite_master WHERE type = 'table' AND name LIKE 'rm_customers_%'";
        Assert.Equal("rm_customers_v2", cmd.ExecuteScalar());
    }
}

/// <summary>An inline projection runs inside the append's transaction: one that awaits anything but its context is refused.</summary>
public sealed class InlineProjectionAsyncTests : IDisposable
{
    private readonly string _dir = TempDir.Create();

    public void Dispose() => TempDir.Delete(_dir);

    private sealed class Yielding : IProjection
    {
        public string Name => "yielding";
        public int Version => 1;
        public EventFilter Filter => EventFilter.None;

        public async ValueTask ApplyAsync(RecordedEvent e, IProjectionContext context, CancellationToken cancellationToken)
        {
            await Task.Yield();
            context.Put(e.Type, 1);
        }
    }

    [Fact]
    public async Task An_inline_projection_that_does_not_complete_synchronously_fails_the_append_naming_why()
    {
        await using var store = new SqliteEventStore(new SqliteEventStoreOptions(Path.Combine(_dir, "factum.db")) { InlineProjections = [new Yielding()] });
        var ex = await Assert.ThrowsAsync<ProjectionFailedException>(() => store.AppendAsync(StreamId.Parse("Noise-1"), ExpectedVersion.Any, [EventData.FromJson("NoiseMade", "{}")]));
        Assert.Contains("must complete synchronously", ex.Message);
        Assert.Equal(0, (await store.GetHeadPositionAsync()).Value);
    }
}

/// <summary>A projection's indexed fields are real SQLite expression indexes, and queries on them use them.</summary>
public sealed class ProjectionIndexTests : IDisposable
{
    private readonly string _dir = TempDir.Create();
    private readonly EventTypeRegistry _registry = new EventTypeRegistry().Register<ShopOrderPlaced>();

    public void Dispose() => TempDir.Delete(_dir);

    [Fact]
    public async Task Queries_on_indexed_fields_use_their_expression_indexes_and_others_scan()
    {
        await using var store = new SqliteEventStore(Path.Combine(_dir, "factum.db"));
        for (var i = 0; i < 20; i++)
            await store.AppendAsync(StreamId.For("Order", $"{i}"), ExpectedVersion.Any, [_registry.Encode(new ShopOrderPlaced($"{i}", i % 3 == 0 ? "ann" : "bob", i))]);
        var models = new SqliteReadModels(store);
        var orders = new DocumentProjection<OrderView>("orders", 1, _registry, key => new OrderView(key))
            .Index("view.customerId").Index("view.total")
            .On<ShopOrderPlaced>((v, e) => v with { CustomerId = e.CustomerId, Total = e.Total });
        await using (var run = await models.StartAsync(orders))
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while ((await models.ListAsync(cts.Token)).Single() is var p && (p.Lag > 0 || !p.Active)) await Task.Delay(10, cts.Token);
        }
        Assert.Equal(7, (await models.QueryAsync("orders", ProjectionQuery.WhereEquals("view.customerId", "ann"))).Count);

        Assert.Contains("USING INDEX ix_rm_orders_v1_view_customerId (<expr>=?)", Plan(store, ProjectionQuery.WhereEquals("view.customerId", "ann")));
        Assert.Contains("USING INDEX ix_rm_orders_v1_view_total (<expr>>? AND <expr><?)", Plan(store, ProjectionQuery.Where("view.total", QueryOperator.GreaterThan, 3).And("view.total", QueryOperator.LessThan, 9)));
        var ordered = Plan(store, ProjectionQuery.All.OrderedBy("view.total").Page(0, 5));
        Assert.Contains("USING INDEX ix_rm_orders_v1_view_total", ordered);
        Assert.DoesNotContain("TEMP B-TREE", ordered);
        // A field without an index is still queried, by a scan.
        var scan = Plan(store, ProjectionQuery.WhereEquals("view.shipped", false));
        Assert.StartsWith("SCAN rm_orders_v1", scan);
        Assert.DoesNotContain("ix_rm_orders", scan);
    }

    private static string Plan(SqliteEventStore store, ProjectionQuery query)
    {
        using var c = store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "EXPLAIN QUERY PLAN " + SqliteProjectionStore.QuerySql(SqliteProjectionRunner.TableName("orders", 1), query, cmd);
        using var r = cmd.ExecuteReader();
        var plan = new List<string>();
        while (r.Read()) plan.Add(r.GetString(3));
        return string.Join("\n", plan);
    }
}

/// <summary>Two projections never share a read-model table: names SQLite would map to one table are refused.</summary>
public sealed class ProjectionTableNameTests : IDisposable
{
    private readonly string _dir = TempDir.Create();

    public void Dispose() => TempDir.Delete(_dir);

    [Theory]
    [InlineData("orders-by-day", "orders_by_day")]
    [InlineData("Orders", "orders")]
    [InlineData("revenue-Per-Day", "REVENUE_per_day")]
    public async Task A_name_that_would_share_another_projections_table_is_refused_and_the_first_keeps_working(string first, string second)
    {
        await using var store = new SqliteEventStore(Path.Combine(_dir, "factum.db"));
        var projections = new SqliteProjectionStore(store);
        await projections.RegisterAsync(new Factum.Projections.ProjectionRegistration(first, 1, []));
        var ex = await Assert.ThrowsAsync<ArgumentException>(() => projections.RegisterAsync(new Factum.Projections.ProjectionRegistration(second, 1, [])));
        Assert.Contains($"'{second}'", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"'{first}'", ex.Message, StringComparison.Ordinal);
        // Registering the first again (a restart) and a name of its own are fine.
        await projections.RegisterAsync(new Factum.Projections.ProjectionRegistration(first, 1, []));
        await projections.RegisterAsync(new Factum.Projections.ProjectionRegistration(first, 2, []));
        await projections.RegisterAsync(new Factum.Projections.ProjectionRegistration("something-else", 1, []));
        Assert.Equal([first, "something-else"], (await projections.ListAsync()).Select(p => p.Name).Distinct().Order(StringComparer.Ordinal));
    }
}
