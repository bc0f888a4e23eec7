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
