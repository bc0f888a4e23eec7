using Factum.Conformance;
using Factum.Coordination;
using Factum.Messaging;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;

namespace Factum.Sqlite.Tests;

/// <summary>The SQLite message store on a real file: atomic commits with the handler's work, holds, replay, fencing.</summary>
public sealed class SqliteMessageStoreTests : IAsyncLifetime
{
    private static readonly MessageSource Orders = new(MessageSourceKind.Queue, "orders");
    private readonly string _dir = TempDir.Create();
    private readonly ManualClock _clock = new();
    private SqliteEventStore _events = null!;
    private SqliteMessageStore _store = null!;

    private string Db => Path.Combine(_dir, "factum.db");

    public Task InitializeAsync()
    {
        _events = Open();
        _store = new SqliteMessageStore(_events);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _events.DisposeAsync();
        SqliteConnection.ClearAllPools();
        TempDir.Delete(_dir);
    }

    private SqliteEventStore Open() => new(new SqliteEventStoreOptions(Db) { TimeProvider = _clock });

    private static TransportMessage Msg(string type = "PaymentCaptured", string? key = null, Dictionary<string, string>? headers = null) => new()
    {
        Id = MessageId.New(),
        Type = type,
        CorrelationId = "corr-1",
        CausationId = "cause-1",
        PartitionKey = key,
        Timestamp = new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero),
        Headers = headers ?? new Dictionary<string, string> { ["tenant"] = "acme" },
        Body = "{\"amount\":10}"u8.ToArray(),
    };

    private static OutgoingMessage ToQueue(TransportMessage m, string queue = "shipping", DateTimeOffset? at = null) => new(m, null, new QueueName(queue), at);

    private static FailureInfo Failure(string type = "System.TimeoutException") =>
        new(type, "timed out", "at Handler()", 5, new DateTimeOffset(2026, 1, 1, 11, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 1, 1, 11, 5, 0, TimeSpan.Zero));

    private static MessageWork Sql(string sql) => MessageWork.For<SqliteConnection>((c, _) =>
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
        return ValueTask.CompletedTask;
    });

    private long Count(string sql)
    {
        using var c = new SqliteConnection($"Data Source={Db};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return (long)cmd.ExecuteScalar()!;
    }

    private async Task<List<DeadLetter>> Letters(DeadLetterFilter? filter = null)
    {
        var list = new List<DeadLetter>();
        await foreach (var d in _store.ListDeadLettersAsync(filter ?? DeadLetterFilter.All)) list.Add(d);
        return list;
    }

    [Fact]
    public async Task A_commit_records_the_inbox_and_outbox_and_a_second_commit_of_the_message_is_a_duplicate()
    {
        var handled = MessageId.New();
        var sent = Msg();
        var published = Msg("OrderShipped");
        var tx = new MessageTransaction
        {
            Inbox = new InboxRecord("billing", handled),
            Outgoing = [ToQueue(sent), new OutgoingMessage(published, new TopicName("orders"), null)],
        };

        Assert.Equal(MessageCommitResult.Committed, await _store.CommitAsync(tx));
        Assert.Equal(MessageCommitResult.Duplicate, await _store.CommitAsync(tx));

        Assert.Equal(2, await _store.CountOutboxAsync());
        var entries = await _store.ReadDueOutboxAsync(10);
        Assert.Equal(2, entries.Count);
        Assert.True(entries[0].Id < entries[1].Id);
        Assert.Equal(_clock.Now, entries[0].EnqueuedAt);
        var first = entries[0].Message;
        Assert.Equal(new QueueName("shipping"), first.Queue);
        Assert.Null(first.Topic);
        Assert.Null(first.DeliverAt);
        Assert.Equal(sent.Id, first.Message.Id);
        Assert.Equal(sent.Type, first.Message.Type);
        Assert.Equal(sent.CausationId, first.Message.CausationId);
        Assert.Equal(sent.Timestamp, first.Message.Timestamp);
        Assert.Equal("acme", first.Message.Headers["tenant"]);
        Assert.Equal(sent.Body.ToArray(), first.Message.Body.ToArray());
        Assert.Equal(new TopicName("orders"), entries[1].Message.Topic);
        Assert.Null(entries[1].Message.Queue);
        Assert.Equal(published.Id, entries[1].Message.Message.Id);

        var other = MessageId.New();
        Assert.Equal([handled], await _store.FilterHandledAsync("billing", [handled, other]));
        Assert.Empty(await _store.FilterHandledAsync("audit", [handled]));
        Assert.Equal("sqlite", _store.Name);
    }

    [Fact]
    public async Task A_throwing_work_rolls_back_the_inbox_record_the_outbox_the_dead_letters_and_its_own_writes()
    {
        await _store.CommitAsync(new MessageTransaction { Work = [Sql("CREATE TABLE notes(id INTEGER PRIMARY KEY, text TEXT NOT NULL)")] });
        var id = MessageId.New();
        var failing = new MessageTransaction
        {
            Inbox = new InboxRecord("billing", id),
            Work =
            [
                Sql("INSERT INTO notes(text) VALUES ('first')"),
                MessageWork.For<SqliteConnection>((c, _) =>
                {
                    using (var cmd = c.CreateCommand())
                    {
                        cmd.CommandText = "INSERT INTO notes(text) VALUES ('second')";
                        cmd.ExecuteNonQuery();
                    }
                    throw new InvalidDataException("the handler failed");
                }),
            ],
            Outgoing = [ToQueue(Msg())],
            DeadLetters = [new DeadLetterRecord(Msg(key: "k"), Orders, Failure(), HoldKey: true)],
        };

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => _store.CommitAsync(failing).AsTask());
        Assert.Equal("the handler failed", ex.Message);

        Assert.Equal(0, Count("SELECT COUNT(*) FROM notes"));
        Assert.Equal(0, Count("SELECT COUNT(*) FROM msg_inbox"));
        Assert.Equal(0, await _store.CountOutboxAsync());
        Assert.Empty(await Letters());
        Assert.Null(await _store.FindHoldAsync(Orders, "k"));

        // Nothing was recorded, so the redelivery commits.
        var retried = failing with { Work = [Sql("INSERT INTO notes(text) VALUES ('retried')")] };
        Assert.Equal(MessageCommitResult.Committed, await _store.CommitAsync(retried));
        Assert.Equal(1, Count("SELECT COUNT(*) FROM notes"));
        Assert.Equal(1, await _store.CountOutboxAsync());
    }

    [Fact]
    public async Task A_failing_commit_does_not_sink_the_commits_grouped_with_it()
    {
        await _store.CommitAsync(new MessageTransaction { Work = [Sql("CREATE TABLE notes(id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")] });
        var commits = Enumerable.Range(0, 40).Select(i => Task.Run(async () =>
        {
            var tx = new MessageTransaction
            {
                Inbox = new InboxRecord("billing", MessageId.New()),
                Work = i % 4 == 0 ? [Sql($"INSERT INTO notes(n) VALUES ({i})"), Sql("INSERT INTO no_such_table VALUES (1)")] : [Sql($"INSERT INTO notes(n) VALUES ({i})")],
                Outgoing = [ToQueue(Msg())],
            };
            try { return await _store.CommitAsync(tx) == MessageCommitResult.Committed; }
            catch (SqliteException) { return false; }
        })).ToList();

        var results = await Task.WhenAll(commits);

        Assert.Equal(30, results.Count(r => r));
        Assert.Equal(30, Count("SELECT COUNT(*) FROM notes"));
        Assert.Equal(0, Count("SELECT COUNT(*) FROM notes WHERE n % 4 = 0"));
        Assert.Equal(30, Count("SELECT COUNT(*) FROM msg_inbox"));
        Assert.Equal(30, await _store.CountOutboxAsync());
    }

    [Fact]
    public async Task Work_for_another_session_type_is_refused_and_nothing_is_committed()
    {
        var tx = new MessageTransaction
        {
            Inbox = new InboxRecord("billing", MessageId.New()),
            Work = [MessageWork.For<InMemoryMessageSession>((s, _) => { s.Data["x"] = 1; return ValueTask.CompletedTask; })],
            Outgoing = [ToQueue(Msg())],
        };

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => _store.CommitAsync(tx).AsTask());
        Assert.Contains(nameof(InMemoryMessageSession), ex.Message);
        Assert.Contains(nameof(SqliteConnection), ex.Message);
        Assert.Equal(0, Count("SELECT COUNT(*) FROM msg_inbox"));
        Assert.Equal(0, await _store.CountOutboxAsync());
    }

    [Fact]
    public async Task An_invalid_outgoing_message_fails_the_commit_and_undoes_the_inbox_record_and_the_work()
    {
        await _store.CommitAsync(new MessageTransaction { Work = [Sql("CREATE TABLE notes(id INTEGER PRIMARY KEY)")] });
        var m = Msg();
        foreach (var bad in new[] { new OutgoingMessage(m, null, null), new OutgoingMessage(m, new TopicName("orders"), null, _clock.Now.AddMinutes(1)) })
        {
            var tx = new MessageTransaction
            {
                Inbox = new InboxRecord("billing", MessageId.New()),
                Work = [Sql("INSERT INTO notes DEFAULT VALUES")],
                Outgoing = [ToQueue(Msg()), bad],
            };
            await Assert.ThrowsAsync<ArgumentException>(() => _store.CommitAsync(tx).AsTask());
        }
        Assert.Equal(0, Count("SELECT COUNT(*) FROM notes"));
        Assert.Equal(0, Count("SELECT COUNT(*) FROM msg_inbox"));
        Assert.Equal(0, await _store.CountOutboxAsync());
    }

    [Fact]
    public async Task Of_twenty_racing_commits_of_one_inbox_record_across_two_writers_exactly_one_commits()
    {
        await _store.CommitAsync(new MessageTransaction { Work = [Sql("CREATE TABLE effects(id INTEGER PRIMARY KEY)")] });
        // A second event store on the file is a second writer, as another process would be.
        await using var otherEvents = Open();
        var stores = new[] { _store, new SqliteMessageStore(otherEvents) };
        var record = new InboxRecord("billing", MessageId.New());
        using var go = new ManualResetEventSlim();
        var commits = Enumerable.Range(0, 20).Select(i => Task.Run(async () =>
        {
            go.Wait();
            return await stores[i % 2].CommitAsync(new MessageTransaction
            {
                Inbox = record,
                Work = [Sql("INSERT INTO effects DEFAULT VALUES")],
                Outgoing = [ToQueue(Msg())],
            });
        })).ToList();
        go.Set();

        var results = await Task.WhenAll(commits);

        Assert.Single(results, r => r == MessageCommitResult.Committed);
        Assert.Equal(19, results.Count(r => r == MessageCommitResult.Duplicate));
        Assert.Equal(1, Count("SELECT COUNT(*) FROM effects"));
        Assert.Equal(1, await _store.CountOutboxAsync());
    }

    [Fact]
    public async Task A_scheduled_entry_is_not_due_until_the_clock_passes_its_time_and_keeps_its_commit_order()
    {
        var later = Msg();
        var now = Msg();
        await _store.CommitAsync(new MessageTransaction { Outgoing = [ToQueue(later, at: _clock.Now.AddMinutes(5))] });
        await _store.CommitAsync(new MessageTransaction { Outgoing = [ToQueue(now)] });

        Assert.Equal(2, await _store.CountOutboxAsync());
        Assert.Equal([now.Id], (await _store.ReadDueOutboxAsync(10)).Select(e => e.Message.Message.Id));

        _clock.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromTicks(1));
        Assert.Equal([now.Id], (await _store.ReadDueOutboxAsync(10)).Select(e => e.Message.Message.Id));

        _clock.Advance(TimeSpan.FromTicks(1));
        var due = await _store.ReadDueOutboxAsync(10);
        Assert.Equal([later.Id, now.Id], due.Select(e => e.Message.Message.Id));
        Assert.Equal(_clock.Now, due[0].Message.DeliverAt);
        Assert.Equal([later.Id], (await _store.ReadDueOutboxAsync(1)).Select(e => e.Message.Message.Id));
    }

    [Fact]
    public async Task Due_reads_are_limited_and_in_commit_order_among_unscheduled_and_scheduled_entries()
    {
        var ids = new List<MessageId>();
        for (var i = 0; i < 10; i++)
        {
            var m = Msg();
            ids.Add(m.Id);
            // Even entries scheduled (already due), odd ones not scheduled; one far in the future after each.
            await _store.CommitAsync(new MessageTransaction { Outgoing = [ToQueue(m, at: i % 2 == 0 ? _clock.Now.AddSeconds(-i) : null), ToQueue(Msg(), at: _clock.Now.AddDays(1))] });
        }

        Assert.Equal(ids.Take(4), (await _store.ReadDueOutboxAsync(4)).Select(e => e.Message.Message.Id));
        Assert.Equal(ids, (await _store.ReadDueOutboxAsync(100)).Select(e => e.Message.Message.Id));
        Assert.Equal(20, await _store.CountOutboxAsync());
    }

    [Fact]
    public async Task Completion_under_a_lost_lease_is_refused_and_removes_nothing()
    {
        var leases = new SqliteLeaseStore(_events);
        await _store.CommitAsync(new MessageTransaction { Outgoing = [ToQueue(Msg()), ToQueue(Msg()), ToQueue(Msg())] });
        var entries = await _store.ReadDueOutboxAsync(10);
        var mine = await leases.TryAcquireAsync("outbox:sqlite", "dispatcher-a", TimeSpan.FromSeconds(10));
        Assert.NotNull(mine);

        await _store.CompleteOutboxAsync([entries[0].Id], mine);
        Assert.Equal(2, await _store.CountOutboxAsync());

        // Paused past its lease; another dispatcher took over.
        _clock.Advance(TimeSpan.FromSeconds(11));
        var theirs = await leases.TryAcquireAsync("outbox:sqlite", "dispatcher-b", TimeSpan.FromSeconds(10));
        Assert.NotNull(theirs);
        var ex = await Assert.ThrowsAsync<LeaseLostException>(() => _store.CompleteOutboxAsync([entries[1].Id, entries[2].Id], mine).AsTask());
        Assert.Equal(mine, ex.Lease);
        Assert.Equal(2, await _store.CountOutboxAsync());

        // A lapsed lease nobody took is lost too.
        _clock.Advance(TimeSpan.FromSeconds(11));
        await Assert.ThrowsAsync<LeaseLostException>(() => _store.CompleteOutboxAsync([entries[1].Id], theirs).AsTask());

        await _store.CompleteOutboxAsync([entries[1].Id, entries[2].Id]);
        Assert.Equal(0, await _store.CountOutboxAsync());
    }

    [Fact]
    public async Task Replay_moves_each_letter_to_the_outbox_once_under_two_concurrent_replays_keeping_its_id()
    {
        var subscription = new MessageSource(MessageSourceKind.Subscription, "orders", "billing");
        var letters = Enumerable.Range(0, 30).Select(i => new DeadLetterRecord(
            Msg(headers: new Dictionary<string, string> { ["tenant"] = "acme", [MessageHeaders.Attempt] = "5", [MessageHeaders.FirstFailure] = "2026-01-01T11:00:00Z", [MessageHeaders.Replayed] = i == 0 ? "2" : "0" }),
            i % 3 == 0 ? subscription : Orders,
            Failure())).ToList();
        await _store.CommitAsync(new MessageTransaction { DeadLetters = letters });

        var replays = await Task.WhenAll(Task.Run(() => _store.ReplayDeadLettersAsync(DeadLetterFilter.All).AsTask()), Task.Run(() => _store.ReplayDeadLettersAsync(DeadLetterFilter.All).AsTask()));

        Assert.Equal(30, replays.Sum());
        Assert.Empty(await Letters());
        var outbox = await _store.ReadDueOutboxAsync(100);
        Assert.Equal(letters.Select(l => l.Message.Id), outbox.Select(e => e.Message.Message.Id));
        for (var i = 0; i < outbox.Count; i++)
        {
            var (entry, letter) = (outbox[i].Message, letters[i]);
            Assert.Null(entry.Topic);
            Assert.Null(entry.DeliverAt);
            Assert.Equal(letter.Source.ReplayQueue, entry.Queue);
            Assert.Equal(i == 0 ? "3" : "1", entry.Message.Headers[MessageHeaders.Replayed]);
            Assert.Equal("acme", entry.Message.Headers["tenant"]);
            Assert.False(entry.Message.Headers.ContainsKey(MessageHeaders.Attempt));
            Assert.False(entry.Message.Headers.ContainsKey(MessageHeaders.FirstFailure));
        }
        Assert.Equal(QueueName.Parse("orders@billing"), outbox[0].Message.Queue);
    }

    [Fact]
    public async Task Replay_and_discard_take_the_oldest_matching_letters_up_to_the_limit()
    {
        await _store.CommitAsync(new MessageTransaction { DeadLetters = Enumerable.Range(0, 5).Select(_ => new DeadLetterRecord(Msg(), Orders, Failure())).ToList() });
        var all = await Letters();

        Assert.Equal(2, await _store.ReplayDeadLettersAsync(new DeadLetterFilter { Limit = 2 }));
        Assert.Equal(all.Skip(2).Select(d => d.Id), (await Letters()).Select(d => d.Id));
        Assert.Equal(all.Take(2).Select(d => d.Message.Id), (await _store.ReadDueOutboxAsync(10)).Select(e => e.Message.Message.Id));

        Assert.Equal(1, await _store.DiscardDeadLettersAsync(new DeadLetterFilter { Limit = 1 }));
        Assert.Equal(all.Skip(3).Select(d => d.Id), (await Letters()).Select(d => d.Id));
        Assert.Equal(1, await _store.DiscardDeadLettersAsync(new DeadLetterFilter { Ids = [all[4].Id, all[0].Id] }));
        Assert.Equal([all[3].Id], (await Letters()).Select(d => d.Id));
        Assert.Equal(0, await _store.DiscardDeadLettersAsync(new DeadLetterFilter { Ids = [] }));
    }

    [Fact]
    public async Task A_dead_letter_of_a_held_key_goes_behind_the_oldest_letter_holding_it_in_its_source()
    {
        var stream = new MessageSource(MessageSourceKind.Stream, "orders", "billing", 3, 41);
        var otherGroup = stream with { Group = "audit" };
        var asQueue = new MessageSource(MessageSourceKind.Queue, "orders");

        await _store.CommitAsync(new MessageTransaction { DeadLetters = [new DeadLetterRecord(Msg(key: "k"), stream, Failure(), HoldKey: true)] });
        var blocker = Assert.Single(await Letters());
        Assert.Null(blocker.HeldBehind);
        Assert.Equal(stream, blocker.Source);
        Assert.Equal(blocker.Id, await _store.FindHoldAsync(stream, "k"));
        Assert.Equal(blocker.Id, await _store.FindHoldAsync(stream with { Partition = 0, Offset = 7 }, "k"));
        Assert.Null(await _store.FindHoldAsync(otherGroup, "k"));
        Assert.Null(await _store.FindHoldAsync(asQueue, "k"));
        Assert.Null(await _store.FindHoldAsync(stream, "other"));

        // In one commit: a follower that holds nothing, one that also holds, a keyless one, and another group's.
        await _store.CommitAsync(new MessageTransaction
        {
            DeadLetters =
            [
                new DeadLetterRecord(Msg(key: "k"), stream, Failure("Held")),
                new DeadLetterRecord(Msg(key: "k"), stream with { Offset = 42 }, Failure(), HoldKey: true),
                new DeadLetterRecord(Msg(), stream, Failure(), HoldKey: true),
                new DeadLetterRecord(Msg(key: "k"), otherGroup, Failure(), HoldKey: true),
            ],
        });
        var letters = await Letters();
        Assert.Equal([null, blocker.Id, blocker.Id, null, null], letters.Select(d => d.HeldBehind));
        Assert.Equal(blocker.Id, await _store.FindHoldAsync(stream, "k"));
        Assert.Equal(letters[4].Id, await _store.FindHoldAsync(otherGroup, "k"));

        // Once the blocker is gone, the next letter that holds the key holds it; replaying that one releases the key.
        await _store.DiscardDeadLettersAsync(new DeadLetterFilter { Ids = [blocker.Id] });
        Assert.Equal(letters[2].Id, await _store.FindHoldAsync(stream, "k"));
        await _store.ReplayDeadLettersAsync(new DeadLetterFilter { Ids = [letters[2].Id] });
        Assert.Null(await _store.FindHoldAsync(stream, "k"));
        Assert.Equal(letters[4].Id, await _store.FindHoldAsync(otherGroup, "k"));
    }

    [Fact]
    public async Task Dead_letter_filters_select_what_DeadLetterFilter_Matches_selects()
    {
        var memory = new InMemoryMessageStore(_clock);
        var sources = new[] { Orders, new MessageSource(MessageSourceKind.Subscription, "orders", "billing"), new MessageSource(MessageSourceKind.Queue, "payments") };
        var exceptions = new[] { "System.TimeoutException", "Acme.timeoutexception", "TimeoutException", "Poison", "Acme.Time_outException" };
        for (var i = 0; i < 15; i++)
        {
            var tx = new MessageTransaction { DeadLetters = [new DeadLetterRecord(Msg(i % 2 == 0 ? "PaymentCaptured" : "PaymentRefused"), sources[i % 3], Failure(exceptions[i % 5]))] };
            await _store.CommitAsync(tx);
            await memory.CommitAsync(tx);
            _clock.Advance(TimeSpan.FromMinutes(1));
        }
        var start = new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);
        DeadLetterFilter[] filters =
        [
            DeadLetterFilter.All,
            new() { Source = "orders" },
            new() { Source = "orders", Group = "billing" },
            new() { Type = "PaymentRefused" },
            new() { ExceptionType = "TimeoutException" },
            new() { ExceptionType = "System.TimeoutException" },
            new() { ExceptionType = "Time_outException" },
            new() { ExceptionType = "Time%Exception" },
            new() { From = start.AddMinutes(3), To = start.AddMinutes(9) },
            new() { Ids = [2, 3, 99], Type = "PaymentCaptured" },
            new() { Source = "orders", Limit = 3 },
            new() { Limit = 0 },
        ];
        foreach (var filter in filters)
        {
            var expected = new List<long>();
            await foreach (var d in memory.ListDeadLettersAsync(filter)) expected.Add(d.Id);
            Assert.Equal(expected, (await Letters(filter)).Select(d => d.Id));
        }
        var first = (await Letters())[0];
        Assert.Equal(start, first.DeadLetteredAt);
        Assert.Equal(Failure(exceptions[0]), first.Failure);
    }

    [Fact]
    public async Task Purging_the_inbox_removes_records_older_than_the_cutoff()
    {
        var old = MessageId.New();
        await _store.CommitAsync(new MessageTransaction { Inbox = new InboxRecord("billing", old) });
        _clock.Advance(TimeSpan.FromHours(1));
        var recent = MessageId.New();
        await _store.CommitAsync(new MessageTransaction { Inbox = new InboxRecord("billing", recent) });

        Assert.Equal(1, await _store.PurgeInboxAsync(_clock.Now.AddMinutes(-30)));
        Assert.Equal([recent], await _store.FilterHandledAsync("billing", [old, recent]));
        Assert.Equal(MessageCommitResult.Committed, await _store.CommitAsync(new MessageTransaction { Inbox = new InboxRecord("billing", old) }));
    }

    [Fact]
    public async Task A_commit_with_outgoing_messages_wakes_an_outbox_waiter_of_any_message_store_on_the_file()
    {
        var waiting = _store.WaitForOutboxAsync(TimeSpan.FromMinutes(5));
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted);
        await new SqliteMessageStore(_events).CommitAsync(new MessageTransaction { Inbox = new InboxRecord("billing", MessageId.New()) });
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted);

        await new SqliteMessageStore(_events).CommitAsync(new MessageTransaction { Outgoing = [ToQueue(Msg())] });
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));

        // With nothing committed it returns at its timeout.
        await _store.WaitForOutboxAsync(TimeSpan.FromMilliseconds(20)).WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_v8_store_is_migrated_to_v9_keeping_its_data()
    {
        var handled = MessageId.New();
        await _store.CommitAsync(new MessageTransaction { Inbox = new InboxRecord("billing", handled) });
        await _events.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.NoStream, [new EventData("OrderPlaced", "{}"u8.ToArray())]);
        await _events.DisposeAsync();
        SqliteConnection.ClearAllPools();
        using (var c = new SqliteConnection($"Data Source={Db};Pooling=False"))
        {
            // What v8 had: no message-store tables.
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DROP TABLE msg_outbox; DROP TABLE msg_store_dead_letters; UPDATE factum_meta SET value = '8' WHERE key = 'schema_version'";
            cmd.ExecuteNonQuery();
        }
        Assert.Equal(0, Count("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('msg_outbox', 'msg_store_dead_letters')"));

        _events = Open();
        _store = new SqliteMessageStore(_events);

        Assert.Equal(9, SqliteSchema.LatestVersion);
        Assert.Equal(9, Count("SELECT CAST(value AS INTEGER) FROM factum_meta WHERE key = 'schema_version'"));
        Assert.Equal(new GlobalPosition(1), await _events.GetHeadPositionAsync());
        Assert.Equal([handled], await _store.FilterHandledAsync("billing", [handled]));
        await _store.CommitAsync(new MessageTransaction { Outgoing = [ToQueue(Msg())], DeadLetters = [new DeadLetterRecord(Msg(), Orders, Failure())] });
        Assert.Equal(1, await _store.CountOutboxAsync());
        Assert.Single(await Letters());
    }

    [Fact]
    public async Task UseSqlite_registers_the_message_store_on_the_same_file()
    {
        await using var services = new ServiceCollection().AddFactum(b => b.UseSqlite(Path.Combine(_dir, "di.db"))).BuildServiceProvider();
        var store = Assert.IsType<SqliteMessageStore>(services.GetRequiredService<IMessageStore>());
        Assert.Same(store, services.GetRequiredService<IMessageStore>());
        Assert.Equal(MessageCommitResult.Committed, await store.CommitAsync(new MessageTransaction { Inbox = new InboxRecord("billing", MessageId.New()) }));
    }
}
