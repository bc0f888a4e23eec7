using System.Text.Json;
using Factum.Conformance;
using Factum.Coordination;
using Factum.Projections;
using Npgsql;

namespace Factum.PostgreSql.Tests;

/// <summary>
/// PostgreSQL read models beyond the projection suite: indexed fields are real expression indexes the planner uses,
/// queries mean what they mean in memory, names of any allowed shape get tables of their own, and a paused runner
/// whose lease another node took cannot commit.
/// </summary>
public sealed class PostgresProjectionTests : IAsyncLifetime
{
    private readonly string _schema = TestServer.NewSchema();
    private readonly ManualClock _clock = new();
    private readonly List<PostgresEventStore> _stores = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_stores.Count > 0) await _stores[0].DropSchemaAsync();
        foreach (var s in _stores) await s.DisposeAsync();
    }

    /// <summary>A store instance (a node) on this test's schema.</summary>
    private PostgresEventStore Node(TimeProvider? clock = null)
    {
        var store = new PostgresEventStore(new PostgresEventStoreOptions(TestServer.ConnectionString) { Schema = _schema, TimeProvider = clock ?? TimeProvider.System });
        _stores.Add(store);
        return store;
    }

    /// <summary>Commits <paramref name="documents"/> to a fresh version (checkpoint 0 to 1) under a lease of its own.</summary>
    private static async Task Seed(IProjectionStore store, string name, IReadOnlyList<string> indexed, IEnumerable<(string Key, string Json)> documents)
    {
        await store.RegisterAsync(new ProjectionRegistration(name, 1, indexed));
        var lease = (await store.Leases.TryAcquireAsync(ProjectionEngine.LeaseName(name, 1), "seed", TimeSpan.FromMinutes(5)))!;
        await store.CommitAsync(new ProjectionBatch(name, 1, 0, 1, documents.Select(d => new DocumentChange(d.Key, d.Json)).ToList()), lease);
        await store.Leases.ReleaseAsync(lease);
    }

    [Fact]
    public async Task Queries_on_indexed_fields_use_their_expression_indexes_in_both_directions_and_others_scan()
    {
        var store = Node();
        var projections = new PostgresProjectionStore(store);
        // A few thousand documents and fresh statistics, so the planner chooses honestly (no enable_seqscan = off).
        await Seed(projections, "orders", ["view.customerId", "view.total"], Enumerable.Range(0, 3000).Select(i =>
            ($"Order-{i:D4}", $$"""{"view":{"id":"Order-{{i}}","customerId":"c{{i % 500}}","total":{{i % 1000}}.5,"shipped":{{(i % 2 == 0 ? "true" : "false")}}},"position":{{i}}}""")));
        await Exec(store, $"ANALYZE {store.Schema}.\"{PostgresProjectionStore.TableName("orders", 1)}\"");
        var byCustomer = PostgresProjectionStore.IndexName("orders", 1, "view.customerId");
        var byTotal = PostgresProjectionStore.IndexName("orders", 1, "view.total");

        Assert.Equal(6, (await projections.QueryAsync("orders", ProjectionQuery.WhereEquals("view.customerId", "c7"))).Count);
        var equal = await Plan(store, ProjectionQuery.WhereEquals("view.customerId", "c7"));
        Assert.Contains(equal, n => n.Index == byCustomer);
        Assert.DoesNotContain(equal, n => n.Type == "Seq Scan");

        var range = ProjectionQuery.Where("view.total", QueryOperator.GreaterThan, 3).And("view.total", QueryOperator.LessThan, 9);
        Assert.Equal(18, (await projections.QueryAsync("orders", range)).Count); // 3.5 .. 8.5, three documents each
        Assert.Contains(await Plan(store, range), n => n.Index == byTotal);

        // Ordered by the field and paged: the index read in order (forward, or backward when descending), no sort.
        var first = ProjectionQuery.All.OrderedBy("view.total").Page(0, 5);
        Assert.Equal(["Order-0000", "Order-1000", "Order-2000", "Order-0001", "Order-1001"], (await projections.QueryAsync("orders", first)).Select(d => d.Key));
        var ascending = await Plan(store, first);
        Assert.Contains(ascending, n => n.Type == "Index Scan" && n.Index == byTotal && n.Direction == "Forward");
        Assert.DoesNotContain(ascending, n => n.Type is "Sort" or "Incremental Sort");
        var last = ProjectionQuery.All.OrderedBy("view.total", descending: true).Page(2, 3);
        Assert.Equal(["Order-0999", "Order-2998", "Order-1998"], (await projections.QueryAsync("orders", last)).Select(d => d.Key));
        var descending = await Plan(store, last);
        Assert.Contains(descending, n => n.Type == "Index Scan" && n.Index == byTotal && n.Direction == "Backward");
        Assert.DoesNotContain(descending, n => n.Type is "Sort" or "Incremental Sort");

        // A field without an index is still queried, by a scan.
        Assert.Equal(1500, (await projections.QueryAsync("orders", ProjectionQuery.WhereEquals("view.shipped", false))).Count);
        var scan = await Plan(store, ProjectionQuery.WhereEquals("view.shipped", false));
        Assert.Contains(scan, n => n.Type == "Seq Scan");
        Assert.DoesNotContain(scan, n => n.Index is not null);
    }

    private sealed record PlanNode(string Type, string? Index, string? Direction);

    /// <summary>Every node of the plan PostgreSQL chooses for the query (EXPLAIN (FORMAT JSON), with the query's parameters bound).</summary>
    private static async Task<List<PlanNode>> Plan(PostgresEventStore store, ProjectionQuery query)
    {
        await using var c = await store.OpenConnectionAsync(CancellationToken.None);
        await using var cmd = new NpgsqlCommand { Connection = c };
        cmd.CommandText = "EXPLAIN (FORMAT JSON) " + PostgresProjectionStore.QuerySql($"{store.Schema}.\"{PostgresProjectionStore.TableName("orders", 1)}\"", query, cmd);
        using var plan = JsonDocument.Parse((string)(await cmd.ExecuteScalarAsync())!);
        var nodes = new List<PlanNode>();
        void Walk(JsonElement n)
        {
            nodes.Add(new PlanNode(n.GetProperty("Node Type").GetString()!,
                n.TryGetProperty("Index Name", out var ix) ? ix.GetString() : null,
                n.TryGetProperty("Scan Direction", out var d) ? d.GetString() : null));
            if (n.TryGetProperty("Plans", out var children))
                foreach (var child in children.EnumerateArray()) Walk(child);
        }
        Walk(plan.RootElement[0].GetProperty("Plan"));
        return nodes;
    }

    [Fact]
    public async Task Queries_select_and_order_exactly_as_in_memory_over_fields_of_every_kind()
    {
        // Field f of every kind (missing, null, numbers written in several ways, bools, strings whose ordinal order
        // differs from a culture's, an object, an array); g nested; arr an array whose "0" is not a property.
        string[] values = ["", "null", "1", "2.5", "-3", "2", "2.0", "true", "false", "\"a\"", "\"B\"", "\"ab\"", "\"\\u00e9\"", "\"10\"",
            "{\"x\":1}", "[1,2]", "0", "1e3", "\"\"", "1", "-0.5", "\"Z\"", "1000"];
        var documents = values.Select((v, i) => ($"k{i:D2}", (v.Length == 0 ? "{" : $"{{\"f\":{v},") + $"\"g\":{{\"h\":{i % 4}}},\"arr\":[{{\"m\":1}}]}}")).ToList();
        var memory = new InMemoryProjectionStore();
        var postgres = new PostgresProjectionStore(Node());
        await Seed(memory, "kinds", [], documents);
        await Seed(postgres, "kinds", ["f", "g.h"], documents);

        object[] operands = ["a", "B", "10", "", "Z", "é", 1, 2L, 2.5, -3, 0, 1000, 1.5, -0.5, true, false];
        var queries = new List<ProjectionQuery> { ProjectionQuery.All, ProjectionQuery.All with { Descending = true } };
        foreach (var op in Enum.GetValues<QueryOperator>())
            foreach (var value in operands) queries.Add(ProjectionQuery.Where("f", op, value));
        foreach (var field in new[] { "f", "g.h", "missing", "g" })
        {
            queries.Add(ProjectionQuery.All.OrderedBy(field));
            queries.Add(ProjectionQuery.All.OrderedBy(field, descending: true));
            queries.Add(ProjectionQuery.All.OrderedBy(field).Page(3, 7));
            queries.Add(ProjectionQuery.All.OrderedBy(field, descending: true).Page(5, 4));
        }
        queries.Add(ProjectionQuery.Where("g.h", QueryOperator.GreaterThan, 1).And("f", QueryOperator.LessThanOrEqual, 2).OrderedBy("f", descending: true));
        queries.Add(ProjectionQuery.Where("f", QueryOperator.GreaterThanOrEqual, "B").And("f", QueryOperator.LessThan, "b").OrderedBy("f"));
        queries.Add(ProjectionQuery.WhereEquals("arr.0.m", 1)); // a path of properties only: no array indexes
        queries.Add(ProjectionQuery.WhereEquals("g", 1)); // an object is not a number
        queries.Add(ProjectionQuery.All.Page(0, 0));
        queries.Add(ProjectionQuery.All.Page(100, 5));

        foreach (var query in queries)
        {
            var expected = (await memory.QueryAsync("kinds", query)).Select(d => d.Key).ToList();
            var actual = (await postgres.QueryAsync("kinds", query)).Select(d => d.Key).ToList();
            Assert.True(expected.SequenceEqual(actual), $"{Describe(query)}: in memory [{string.Join(", ", expected)}], PostgreSQL [{string.Join(", ", actual)}]");
        }

        // Documents come back as compact JSON (jsonb's key order: shorter keys first), escaped as the serializer escapes.
        Assert.Equal("""{"f":"\u00E9","g":{"h":0},"arr":[{"m":1}]}""", await postgres.GetJsonAsync("kinds", "k12"));
        Assert.Equal("\"\\u00E9\"", JsonSerializer.Serialize("é"));
    }

    private static string Describe(ProjectionQuery q) =>
        $"where {string.Join(" and ", q.Conditions.Select(c => $"{c.Field} {c.Operator} {c.Value} ({c.Value.GetType().Name})"))} order by {q.OrderBy ?? "key"}{(q.Descending ? " desc" : "")} skip {q.Skip} take {q.Take}";

    [Fact]
    public async Task Long_and_similar_names_get_tables_and_indexes_of_their_own()
    {
        var store = Node();
        var projections = new PostgresProjectionStore(store);
        var longName = new string('x', 63);
        var longField = string.Join('.', Enumerable.Repeat("segment_of_a_long_field", 10));
        string[] names = ["a-b", "a_b", "A_b", longName + "1", longName + "2"];
        foreach (var name in names) await Seed(projections, name, ["n", longField], [("k", $$"""{"name":"{{name}}","n":1}""")]);

        foreach (var name in names)
        {
            Assert.Equal(name, JsonDocument.Parse((await projections.GetJsonAsync(name, "k"))!).RootElement.GetProperty("name").GetString());
            Assert.Single(await projections.QueryAsync(name, ProjectionQuery.WhereEquals("n", 1)));
            Assert.True(PostgresProjectionStore.TableName(name, 1).Length <= 63);
        }
        Assert.Equal(names.Order(StringComparer.Ordinal), (await projections.ListAsync()).Select(p => p.Name));
        Assert.All(await projections.ListAsync(), p => Assert.Equal((true, 1L), (p.Active, p.Documents)));
        // Each table has its key and both field indexes: no name was cut short into another's.
        await using var c = await store.OpenConnectionAsync(CancellationToken.None);
        await using var count = new NpgsqlCommand("SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename LIKE 'rm\\_%'", c);
        count.Parameters.AddWithValue(store.Schema);
        Assert.Equal(names.Length * 3L, (long)(await count.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task Reads_during_blue_green_switches_see_one_whole_version_and_never_fail()
    {
        // A promotion drops the old version's table, and DDL is not under a reader's snapshot: a read that looked up
        // the active version just before the switch finds its table gone, and must read the new version instead.
        var store = Node();
        var projections = new PostgresProjectionStore(store);
        static IEnumerable<(string, string)> Docs(int version) => Enumerable.Range(0, 50).Select(i => ($"k{i:D2}", $$"""{"version":{{version}},"n":{{i}}}"""));
        await Seed(projections, "switching", ["n"], Docs(1));
        using var stop = new CancellationTokenSource();
        var reads = 0;
        var reader = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var page = await projections.QueryAsync("switching", ProjectionQuery.Where("n", QueryOperator.LessThan, 10).OrderedBy("n", descending: true));
                Assert.Equal(10, page.Count);
                Assert.Single(page.Select(d => JsonDocument.Parse(d.Json).RootElement.GetProperty("version").GetInt32()).Distinct());
                Assert.NotNull(await projections.GetJsonAsync("switching", "k07"));
                Assert.Equal(50, Assert.Single(await projections.ListAsync(), p => p.Active).Documents);
                Interlocked.Increment(ref reads);
            }
        });
        for (var version = 2; version <= 12; version++)
        {
            await projections.RegisterAsync(new ProjectionRegistration("switching", version, ["n"]));
            var lease = (await projections.Leases.TryAcquireAsync(ProjectionEngine.LeaseName("switching", version), "switcher", TimeSpan.FromMinutes(1)))!;
            await projections.CommitAsync(new ProjectionBatch("switching", version, 0, 1, Docs(version).Select(d => new DocumentChange(d.Item1, d.Item2)).ToList()), lease);
            Assert.True(await projections.PromoteAsync("switching", version, lease));
            Assert.False(await projections.PromoteAsync("switching", version, lease));
            await Task.Delay(20);
        }
        await stop.CancelAsync();
        await reader;
        Assert.True(reads > 0);
        var left = Assert.Single(await projections.ListAsync());
        Assert.Equal((12, true, "Live", 50L), (left.Version, left.Active, left.State, left.Documents));
    }

    [Fact]
    public async Task A_paused_runner_whose_lease_another_node_took_cannot_commit_and_stands_by()
    {
        // Two nodes on the manual clock (leases are judged by it): node A's runner pauses inside a batch, its lease lapses
        // and node B takes it; when A resumes, its commit is refused, it stands by, and nothing is applied twice.
        var a = Node(_clock);
        var b = Node(_clock);
        var registry = new EventTypeRegistry().Register<ShopOrderPlaced>();
        for (var i = 0; i < 3; i++) await a.AppendAsync(StreamId.For("Order", $"{i}"), ExpectedVersion.Any, [registry.Encode(new ShopOrderPlaced($"{i}", "ann", 1m))]);
        var projection = new PausingCounter();
        var logs = new CapturingLoggerProvider();
        // No renewal while paused (as a process paused by GC or swapped out does not renew): only the fence can stop it.
        var lease = new LeaseOptions { Duration = TimeSpan.FromSeconds(10), RenewInterval = TimeSpan.FromHours(1), AcquireInterval = TimeSpan.FromMilliseconds(50) };
        var modelsA = new PostgresReadModels(a);
        await using var runner = Assert.IsType<ProjectionRunner>(await modelsA.StartAsync(projection, new ProjectionOptions { Lease = lease, LoggerFactory = logs, LiveWaitTimeout = TimeSpan.FromMilliseconds(50) }));
        Assert.True(await projection.Paused.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(runner.IsOwner);

        _clock.Advance(TimeSpan.FromSeconds(11));
        var storeB = new PostgresProjectionStore(b);
        var taken = await storeB.Leases.TryAcquireAsync(ProjectionEngine.LeaseName("counter", 1), "node-b", TimeSpan.FromSeconds(10));
        Assert.NotNull(taken);
        projection.Resume();
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            while (!logs.Entries.Any(e => e.EventId.Id == FactumLogEvents.LeaseLost)) await Task.Delay(10, cts.Token);
        Assert.False(runner.IsOwner);
        Assert.False(runner.Completion.IsCompleted); // standing by, not faulted
        Assert.Equal(0, await storeB.LoadCheckpointAsync("counter", 1));
        Assert.Null(await storeB.GetJsonAsync("counter", "count"));

        // Node B gives the lease up; A takes it again and applies every event once.
        await storeB.Leases.ReleaseAsync(taken);
        var head = (await a.GetHeadPositionAsync()).Value;
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            while (await storeB.LoadCheckpointAsync("counter", 1) != head) await Task.Delay(10, cts.Token);
        Assert.Equal("""{"count":3}""", await storeB.GetJsonAsync("counter", "count"));
        Assert.True(runner.IsOwner);
    }

    /// <summary>Counts events; pauses inside its first batch until <see cref="Resume"/>.</summary>
    private sealed class PausingCounter : IProjection
    {
        private readonly SemaphoreSlim _resume = new(0);
        private int _paused;

        public SemaphoreSlim Paused { get; } = new(0);

        public string Name => "counter";

        public int Version => 1;

        public EventFilter Filter => EventFilter.None;

        public void Resume() => _resume.Release();

        public async ValueTask ApplyAsync(RecordedEvent e, IProjectionContext context, CancellationToken cancellationToken)
        {
            if (Interlocked.Exchange(ref _paused, 1) == 0)
            {
                Paused.Release();
                await _resume.WaitAsync(cancellationToken);
            }
            context.Put("count", new Count(((await context.GetAsync<Count>("count", cancellationToken))?.count ?? 0) + 1));
        }
    }

    private sealed record Count(int count);

    private static async Task Exec(PostgresEventStore store, string sql)
    {
        await using var c = await store.OpenConnectionAsync(CancellationToken.None);
        await using var cmd = new NpgsqlCommand(sql, c);
        await cmd.ExecuteNonQueryAsync();
    }
}
