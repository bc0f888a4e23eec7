using System.Collections.Concurrent;
using System.Text;
using Factum.Messaging;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NpgsqlTypes;

namespace Factum.PostgreSql.Tests;

/// <summary>What the message-store suites do not cover: several nodes on one schema, the session's own writes, migration.</summary>
public sealed class PostgresMessageStoreTests : IAsyncLifetime
{
    private readonly PostgresEffects _effects = new();
    private PostgresEventStore _events = null!;
    private PostgresMessageStore _store = null!;
    private readonly List<IAsyncDisposable> _others = [];

    public Task InitializeAsync()
    {
        _events = _effects.CreateStore(TimeProvider.System);
        _store = new PostgresMessageStore(_events);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var o in Enumerable.Reverse(_others)) await o.DisposeAsync();
        await PostgresEffects.DestroyAsync(_store);
    }

    /// <summary>Another node: its own event store instance (own pool, own writer, own signal) on the same schema.</summary>
    private PostgresMessageStore OtherNode()
    {
        var events = new PostgresEventStore(new PostgresEventStoreOptions(TestServer.ConnectionString) { Schema = _events.Schema });
        var store = new PostgresMessageStore(events);
        _others.Add(events);
        _others.Add(store);
        return store;
    }

    private static TransportMessage Msg(string type = "OrderPlaced") => new()
    {
        Id = MessageId.New(),
        Type = type,
        Timestamp = DateTimeOffset.UtcNow,
        CorrelationId = "corr-1",
        Body = Encoding.UTF8.GetBytes("{}"),
    };

    private static MessageTransaction Handled(TransportMessage m, params MessageWork[] work) => new()
    {
        Inbox = new InboxRecord("orders", m.Id),
        Work = work,
        Outgoing = [new OutgoingMessage(Msg("OrderShipped"), null, QueueName.Parse("shipping"))],
    };

    /// <summary>Work that lets the test know its transaction holds the inbox row, then waits for the test's go (and optionally fails).</summary>
    private static MessageWork Pause(TaskCompletionSource holding, Task go, bool thenFail = false) => MessageWork.For<PostgresMessageSession>(async (_, ct) =>
    {
        holding.TrySetResult();
        await go.WaitAsync(ct);
        if (thenFail) throw new InvalidOperationException("the first node's handler failed");
    });

    [Fact]
    public async Task Two_nodes_racing_on_one_inbox_record_commit_it_exactly_once()
    {
        var other = OtherNode();
        const int messages = 30;
        var ids = Enumerable.Range(0, messages).Select(_ => Msg()).ToList();
        var results = new ConcurrentBag<(MessageId Id, MessageCommitResult Result)>();
        using var start = new ManualResetEventSlim();
        var racers = ids.SelectMany(m => new[] { (m, (IMessageStore)_store), (m, other) }).Select(x => Task.Run(async () =>
        {
            start.Wait();
            results.Add((x.m.Id, await x.Item2.CommitAsync(Handled(x.m, _effects.Count($"race-{x.m.Id}")))));
        })).ToList();
        start.Set();
        await Task.WhenAll(racers);

        foreach (var m in ids)
        {
            Assert.Equal([MessageCommitResult.Committed, MessageCommitResult.Duplicate], results.Where(r => r.Id == m.Id).Select(r => r.Result).Order());
            Assert.Equal(1, await _effects.ReadAsync(_events, $"race-{m.Id}"));
        }
        Assert.Equal(messages, await other.CountOutboxAsync());
        Assert.Equal(ids.Select(m => m.Id).ToHashSet(), await other.FilterHandledAsync("orders", [.. ids.Select(m => m.Id)]));
    }

    [Fact]
    public async Task The_second_node_waits_for_the_first_nodes_uncommitted_inbox_row_then_is_a_duplicate()
    {
        var other = OtherNode();
        var m = Msg();
        var holding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = _store.CommitAsync(Handled(m, _effects.Count("first"), Pause(holding, go.Task))).AsTask();
        await holding.Task.WaitAsync(TimeSpan.FromSeconds(10));

        var second = other.CommitAsync(Handled(m, _effects.Count("second"))).AsTask();
        await Task.Delay(300);
        Assert.False(second.IsCompleted, "the second commit waits on the first's uncommitted inbox row");

        go.SetResult();
        Assert.Equal(MessageCommitResult.Committed, await first.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(MessageCommitResult.Duplicate, await second.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(1, await _effects.ReadAsync(_events, "first"));
        Assert.Equal(0, await _effects.ReadAsync(_events, "second"));
        Assert.Equal(1, await _store.CountOutboxAsync());
    }

    [Fact]
    public async Task When_the_first_node_rolls_back_the_waiting_second_node_commits()
    {
        var other = OtherNode();
        var m = Msg();
        var holding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = _store.CommitAsync(Handled(m, _effects.Count("first"), Pause(holding, go.Task, thenFail: true))).AsTask();
        await holding.Task.WaitAsync(TimeSpan.FromSeconds(10));

        var second = other.CommitAsync(Handled(m, _effects.Count("second"))).AsTask();
        await Task.Delay(300);
        Assert.False(second.IsCompleted);

        go.SetResult();
        await Assert.ThrowsAsync<InvalidOperationException>(() => first.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(MessageCommitResult.Committed, await second.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, await _effects.ReadAsync(_events, "first"));
        Assert.Equal(1, await _effects.ReadAsync(_events, "second"));
        Assert.Equal(1, await _store.CountOutboxAsync());
    }

    [Fact]
    public async Task Work_that_writes_its_own_table_through_the_session_and_then_throws_rolls_that_write_back_with_everything_else()
    {
        var schema = _events.Schema;
        await using (var c = await _events.OpenConnectionAsync(CancellationToken.None))
        await using (var create = new NpgsqlCommand($"CREATE TABLE {schema}.payments (order_id text PRIMARY KEY, amount numeric NOT NULL)", c))
        {
            await create.ExecuteNonQueryAsync();
        }
        MessageWork Pay(string order) => MessageWork.For<PostgresMessageSession>(async (session, ct) =>
        {
            Assert.Same(session.Connection, session.Transaction.Connection);
            await using var insert = session.CreateCommand($"INSERT INTO {schema}.payments(order_id, amount) VALUES ($1, 10)");
            insert.Parameters.AddWithValue(NpgsqlDbType.Text, order);
            await insert.ExecuteNonQueryAsync(ct);
        });
        var thenFail = MessageWork.For<PostgresMessageSession>((_, _) => throw new InvalidOperationException("after the write"));
        var deadLetter = new DeadLetterRecord(Msg(), new MessageSource(MessageSourceKind.Queue, "orders"), new FailureInfo("X", "y", null, 1, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow));

        var m = Msg();
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(async () => await _store.CommitAsync(Handled(m, Pay("o-1"), thenFail) with { DeadLetters = [deadLetter] }));
        Assert.Equal("after the write", ex.Message);
        Assert.Equal(0L, await CountAsync($"SELECT count(*) FROM {schema}.payments"));
        Assert.Empty(await _store.FilterHandledAsync("orders", [m.Id]));
        Assert.Equal(0, await _store.CountOutboxAsync());
        Assert.Empty(await _store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync());

        // A write the database refuses (the same payment twice) fails the commit with PostgreSQL's error, and undoes
        // the first write of the same transaction.
        var pg = await Assert.ThrowsAsync<PostgresException>(async () => await _store.CommitAsync(Handled(Msg(), Pay("o-2"), Pay("o-2"))));
        Assert.Equal(PostgresErrorCodes.UniqueViolation, pg.SqlState);
        Assert.Equal(0L, await CountAsync($"SELECT count(*) FROM {schema}.payments"));

        // The redelivery commits, its write with it.
        Assert.Equal(MessageCommitResult.Committed, await _store.CommitAsync(Handled(m, Pay("o-1"))));
        Assert.Equal(1L, await CountAsync($"SELECT count(*) FROM {schema}.payments"));
        Assert.Equal(1, await _store.CountOutboxAsync());
    }

    [Fact]
    public async Task A_store_at_the_previous_schema_version_is_migrated_when_it_opens_and_keeps_its_events()
    {
        var stream = StreamId.Parse("Order-1");
        await _events.AppendAsync(stream, ExpectedVersion.NoStream, [EventData.FromJson("OrderPlaced", "{}")]);
        // Back to the version before the message store's migration (the last one): its tables gone, the version lowered.
        var previous = PostgresEventStore.SchemaVersion - 1;
        await ExecuteAsync($"""
            DROP TABLE {_events.Schema}.msg_inbox, {_events.Schema}.msg_outbox, {_events.Schema}.msg_store_dead_letters;
            UPDATE {_events.Schema}.factum_meta SET value = '{previous}' WHERE key = 'schema_version';
            """);
        var plan = await PostgresEventStore.PlanMigrationAsync(new PostgresEventStoreOptions(TestServer.ConnectionString) { Schema = _events.Schema });
        Assert.Equal(previous, plan.Current);
        Assert.Contains($"CREATE TABLE {_events.Schema}.msg_outbox", plan.Script, StringComparison.Ordinal);

        // A store that may not migrate refuses it; one that may, migrates.
        var refusing = new PostgresEventStoreOptions(TestServer.ConnectionString) { Schema = _events.Schema, MigrateOnStart = false };
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => PostgresEventStore.OpenAsync(refusing));
        Assert.Contains($"version {previous}", refused.Message, StringComparison.Ordinal);
        await using var reopened = await PostgresEventStore.OpenAsync(new PostgresEventStoreOptions(TestServer.ConnectionString) { Schema = _events.Schema });
        await using var store = new PostgresMessageStore(reopened);

        Assert.Equal(PostgresEventStore.SchemaVersion.ToString(System.Globalization.CultureInfo.InvariantCulture), await ScalarAsync($"SELECT value FROM {_events.Schema}.factum_meta WHERE key = 'schema_version'"));
        var m = Msg();
        Assert.Equal(MessageCommitResult.Committed, await store.CommitAsync(Handled(m) with { DeadLetters = [new DeadLetterRecord(Msg(), new MessageSource(MessageSourceKind.Queue, "orders"), new FailureInfo("X", "y", null, 1, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow))] }));
        Assert.Equal([m.Id], await store.FilterHandledAsync("orders", [m.Id]));
        Assert.Single(await store.ReadDueOutboxAsync(10));
        Assert.Single(await store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync());
        var events = await reopened.ReadStreamAsync(stream).ToListAsync();
        Assert.Equal("OrderPlaced", Assert.Single(events).Type);
    }

    [Fact]
    public async Task A_dispatcher_waiting_on_one_node_wakes_for_an_outbox_commit_on_another()
    {
        var other = OtherNode();
        // The first wait starts this node's listener, which wakes it once it listens (commits made before may have been missed).
        await _store.WaitForOutboxAsync(TimeSpan.FromSeconds(10));
        var waiting = _store.WaitForOutboxAsync(TimeSpan.FromMinutes(5));
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted);

        // A commit without outgoing messages does not wake it; one with them does, through NOTIFY (the other node
        // shares no signal with this one).
        // Longer than the listener's tick, so the notification arrives on a connection that timed out waiting before.
        await other.CommitAsync(new MessageTransaction { Inbox = new InboxRecord("orders", MessageId.New()) });
        await Task.Delay(1500);
        Assert.False(waiting.IsCompleted);
        await other.CommitAsync(new MessageTransaction { Outgoing = [new OutgoingMessage(Msg(), new TopicName("orders"), null)] });
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));

        // In the process, a commit wakes a waiter directly.
        var local = _store.WaitForOutboxAsync(TimeSpan.FromMinutes(5));
        await _store.CommitAsync(new MessageTransaction { Outgoing = [new OutgoingMessage(Msg(), null, QueueName.Parse("shipping"))] });
        await local.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_replay_waits_for_a_commit_adding_a_letter_behind_its_blocker_and_takes_that_letter_along()
    {
        var stream = new MessageSource(MessageSourceKind.Subscription, "orders", "billing");
        var blocker = Msg() with { PartitionKey = "order-1" };
        await _store.CommitAsync(new MessageTransaction { DeadLetters = [new DeadLetterRecord(blocker, stream, new FailureInfo("X", "y", null, 1, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow), HoldKey: true)] });
        var blockerId = Assert.Single(await _store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync()).Id;

        // Another node's commit, caught between its dead-letter insert and its COMMIT, done as the store does it: the
        // blocker's row held FOR SHARE, then a letter behind it.
        var s = _events.Schema;
        await using var c = await _events.OpenConnectionAsync(CancellationToken.None);
        await using var tx = await c.BeginTransactionAsync();
        await using (var follow = new NpgsqlBatch(c, tx))
        {
            var share = new NpgsqlBatchCommand($"SELECT id FROM {s}.msg_store_dead_letters WHERE id = $1 FOR SHARE");
            share.Parameters.AddWithValue(NpgsqlDbType.Bigint, blockerId);
            var insert = new NpgsqlBatchCommand($"""
                INSERT INTO {s}.msg_store_dead_letters(source_kind, source, grp, exception_type, error, attempts, first_failure, last_failure, dead_lettered_at, held_behind, hold_key, message_id, type, schema_version, created_at, correlation_id, partition_key, body)
                SELECT source_kind, source, grp, exception_type, error, attempts, first_failure, last_failure, dead_lettered_at, id, false, gen_random_uuid(), type, schema_version, created_at, correlation_id, partition_key, body
                FROM {s}.msg_store_dead_letters WHERE id = $1
                """);
            insert.Parameters.AddWithValue(NpgsqlDbType.Bigint, blockerId);
            follow.BatchCommands.Add(share);
            follow.BatchCommands.Add(insert);
            await follow.ExecuteNonQueryAsync();
        }

        var replay = _store.ReplayDeadLettersAsync(new DeadLetterFilter { Ids = [blockerId] }).AsTask();
        await Task.Delay(300);
        Assert.False(replay.IsCompleted, "the replay waits for the commit that holds its blocker");
        await tx.CommitAsync();

        Assert.Equal(2, await replay.WaitAsync(TimeSpan.FromSeconds(10)));
        var outbox = await _store.ReadDueOutboxAsync(10);
        Assert.Equal(2, outbox.Count);
        Assert.Equal(blocker.Id, outbox[0].Message.Message.Id);
        Assert.Empty(await _store.ListDeadLettersAsync(DeadLetterFilter.All).ToListAsync());
    }

    [Fact]
    public async Task UsePostgres_registers_the_message_store_in_the_same_schema()
    {
        await using var services = new ServiceCollection()
            .AddFactum(b => b.UsePostgres(TestServer.ConnectionString, o => o with { Schema = _events.Schema }))
            .BuildServiceProvider();
        var store = Assert.IsType<PostgresMessageStore>(services.GetRequiredService<IMessageStore>());
        Assert.Equal("postgres", store.Name);
        Assert.Same(services.GetRequiredService<IEventStore>(), store.Store);
        var m = Msg();
        await _store.CommitAsync(new MessageTransaction { Inbox = new InboxRecord("orders", m.Id) });
        Assert.Equal([m.Id], await store.FilterHandledAsync("orders", [m.Id]));
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var c = await _events.OpenConnectionAsync(CancellationToken.None);
        await using var cmd = new NpgsqlCommand(sql, c);
        await cmd.ExecuteNonQueryAsync();
    }

    private async Task<object?> ScalarAsync(string sql)
    {
        await using var c = await _events.OpenConnectionAsync(CancellationToken.None);
        await using var cmd = new NpgsqlCommand(sql, c);
        return await cmd.ExecuteScalarAsync();
    }

    private async Task<long> CountAsync(string sql) => (long)(await ScalarAsync(sql))!;
}
