using Factum.Messaging;

namespace Factum.Conformance.Messaging;

/// <summary>The transport primitives: queues, leases, pub/sub fan-out, stream partitions, groups, DLQ, inbox.</summary>
public abstract class TransportConformance<TFactory> : TransportTestBase<TFactory> where TFactory : ITransportFactory, new()
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Time moves by hand: a lease expires, a delay falls due, a member falls silent when the test says so, not after a
    /// wall-clock sleep (which is slow and, on a loaded machine, flaky).
    /// </summary>
    private readonly ManualClock _clock = new() { Now = DateTimeOffset.UtcNow };

    protected override TimeProvider? Clock => _clock;

    private DateTimeOffset Now => _clock.Now;

    [Fact]
    public async Task Queue_delivers_in_order_and_ack_removes()
    {
        var ms = Enumerable.Range(0, 5).Select(i => Msg(json: $$"""{"orderId":"o","n":{{i}}}""")).ToList();
        await Transport.SendAsync("work", ms);
        var got = await Transport.ReceiveAsync("work", "c1", 10, Lease);
        Assert.Equal(ms.Select(m => m.Id), got.Select(d => d.Message.Id));
        Assert.All(got, d => Assert.Equal(1, d.Attempt));
        Assert.Equal(ms[0].Body.ToArray(), got[0].Message.Body.ToArray());
        Assert.Equal(ms[0].CorrelationId, got[0].Message.CorrelationId);
        Assert.All(await Transport.SettleAsync(got.Select(d => Ack(d)).ToList()), Assert.True);
        Assert.Empty(await Transport.ReceiveAsync("work", "c1", 10, Lease));
        var status = (await Transport.GetStatusAsync()).Queues.Single(q => q.Name == "work");
        Assert.Equal(0, status.Ready + status.InFlight + status.Delayed);
    }

    [Fact]
    public async Task Envelope_fields_and_headers_round_trip()
    {
        var m = Msg(key: "k-1") with
        {
            CausationId = "cause-1",
            ReplyTo = "$reply.x",
            SchemaVersion = 3,
            Headers = new Dictionary<string, string> { ["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", ["x-app"] = "é" },
        };
        await Transport.SendAsync("env", [m]);
        var d = Assert.Single(await Transport.ReceiveAsync("env", "c", 1, Lease));
        Assert.Equal(m.Id, d.Message.Id);
        Assert.Equal("cause-1", d.Message.CausationId);
        Assert.Equal("$reply.x", d.Message.ReplyTo);
        Assert.Equal("k-1", d.Message.PartitionKey);
        Assert.Equal(3, d.Message.SchemaVersion);
        Assert.Equal("é", d.Message.Headers["x-app"]);
        Assert.Equal(m.Timestamp.ToUnixTimeMilliseconds(), d.Message.Timestamp.ToUnixTimeMilliseconds());
    }

    [Fact]
    public async Task Leased_messages_are_not_delivered_twice_and_expired_leases_are_redelivered()
    {
        await Transport.SendAsync("lease", [Msg(), Msg()]);
        var first = await Transport.ReceiveAsync("lease", "dies", 10, TimeSpan.FromMilliseconds(300));
        Assert.Equal(2, first.Count);
        Assert.Empty(await Transport.ReceiveAsync("lease", "other", 10, Lease));
        _clock.Advance(TimeSpan.FromMilliseconds(400));
        var again = await Transport.ReceiveAsync("lease", "other", 10, Lease);
        Assert.Equal(first.Select(d => d.Message.Id).Order(), again.Select(d => d.Message.Id).Order());
        Assert.All(again, d => Assert.Equal(2, d.Attempt));
        // The dead consumer's late ack is refused: the lease is someone else's now.
        Assert.All(await Transport.SettleAsync(first.Select(d => Ack(d)).ToList()), Assert.False);
        Assert.All(await Transport.SettleAsync(again.Select(d => Ack(d)).ToList()), Assert.True);
    }

    [Fact]
    public async Task Extending_a_lease_keeps_the_message()
    {
        await Transport.SendAsync("ext", [Msg()]);
        var d = await Transport.ReceiveAsync("ext", "c", 1, TimeSpan.FromMilliseconds(300));
        var kept = await Transport.ExtendLeasesAsync(d, TimeSpan.FromSeconds(5));
        Assert.Single(kept);
        _clock.Advance(TimeSpan.FromMilliseconds(400));
        Assert.Empty(await Transport.ReceiveAsync("ext", "other", 1, Lease));
        Assert.True((await Transport.SettleAsync([Ack(kept[0])]))[0]);
    }

    [Fact]
    public async Task A_partition_key_is_leased_one_message_at_a_time_in_order()
    {
        await Transport.SendAsync("keyed", [Msg(key: "a", json: """{"n":1}"""), Msg(key: "a", json: """{"n":2}"""), Msg(key: "b", json: """{"n":3}"""), Msg(json: """{"n":4}""")]);
        var first = await Transport.ReceiveAsync("keyed", "c1", 10, Lease);
        Assert.Equal(["""{"n":1}""", """{"n":3}""", """{"n":4}"""], first.Select(d => Json(d.Message)).Order());
        Assert.Empty(await Transport.ReceiveAsync("keyed", "c2", 10, Lease));
        await Transport.SettleAsync([Ack(first.Single(d => d.Message.PartitionKey == "a"))]);
        var second = Assert.Single(await Transport.ReceiveAsync("keyed", "c2", 10, Lease));
        Assert.Equal("""{"n":2}""", Json(second.Message));
    }

    [Fact]
    public async Task A_retry_waits_and_keeps_its_key_blocked()
    {
        await Transport.SendAsync("retry", [Msg(key: "a", json: """{"n":1}"""), Msg(key: "a", json: """{"n":2}""")]);
        var d = Assert.Single(await Transport.ReceiveAsync("retry", "c", 10, Lease));
        var retryAt = Now.AddMilliseconds(300);
        Assert.True((await Transport.SettleAsync([new Settlement { Kind = SettlementKind.Retry, Delivery = d, RetryAt = retryAt, Failure = Failure(), Source = new MessageSource(MessageSourceKind.Queue, "retry") }]))[0]);
        Assert.Empty(await Transport.ReceiveAsync("retry", "c", 10, Lease));
        Assert.Equal(1, (await Transport.GetStatusAsync()).Queues.Single(q => q.Name == "retry").Delayed);
        _clock.Advance(TimeSpan.FromMilliseconds(400));
        var again = Assert.Single(await Transport.ReceiveAsync("retry", "c", 10, Lease));
        Assert.Equal(d.Message.Id, again.Message.Id);
        Assert.Equal(2, again.Attempt);
        Assert.NotNull(again.FirstFailure);
    }

    [Fact]
    public async Task A_delayed_message_does_not_hold_back_an_older_one_of_its_key()
    {
        await Transport.SendAsync("k-order", [Msg(key: "k", json: """{"n":1}""")]);
        await Transport.SendAsync("k-order", [Msg(key: "k", json: """{"n":2}""")], Now.AddHours(1));
        var d = Assert.Single(await Transport.ReceiveAsync("k-order", "c", 10, Lease));
        Assert.Equal("""{"n":1}""", Json(d.Message));
    }

    [Fact]
    public async Task Discarding_a_blocker_with_all_its_followers_frees_the_key()
    {
        await Transport.DeclareTopicAsync("held3", new TopicOptions { Partitions = 1 });
        await Transport.PublishAsync("held3", [Msg(key: "k"), Msg(key: "k")]);
        var recs = await Transport.FetchAsync("held3", "grp", 0, 0, 10);
        var source = new MessageSource(MessageSourceKind.Stream, "held3", "grp", 0, 0);
        await Transport.SettleAsync(recs.Select(r => new Settlement { Kind = SettlementKind.DeadLetter, Record = r, HoldKey = true, Failure = Failure(), Source = source }).ToList());
        Assert.Equal(2, await Transport.DiscardDeadLettersAsync(new DeadLetterFilter { Source = "held3" }));
        await Transport.PublishAsync("held3", [Msg(key: "k")]);
        Assert.Equal(KeyHold.None, Assert.Single(await Transport.FetchAsync("held3", "grp", 0, 2, 10)).Hold);
    }

    [Fact]
    public async Task A_deferred_record_follows_a_replay_that_failed_again()
    {
        await Transport.DeclareTopicAsync("held4", new TopicOptions { Partitions = 1 });
        await Transport.PublishAsync("held4", [Msg(key: "k", json: """{"n":1}"""), Msg(key: "k", json: """{"n":2}""")]);
        var recs = await Transport.FetchAsync("held4", "grp", 0, 0, 10);
        var source = new MessageSource(MessageSourceKind.Stream, "held4", "grp", 0, 0);
        await Transport.SettleAsync([new Settlement { Kind = SettlementKind.DeadLetter, Record = recs[0], HoldKey = true, Failure = Failure(), Source = source }]);
        await Transport.ReplayDeadLettersAsync(DeadLetterFilter.All);
        var second = Assert.Single(await Transport.FetchAsync("held4", "grp", 0, 1, 10));
        Assert.Equal(KeyHold.Replaying, second.Hold);
        // The replayed message fails again before the second record is deferred behind it.
        var replayed = Assert.Single(await Transport.ReceiveAsync(QueueName.ForGroup("held4", "grp"), "c", 10, Lease));
        await Transport.SettleAsync([new Settlement { Kind = SettlementKind.DeadLetter, Delivery = replayed, HoldKey = true, Failure = Failure(), Source = source with { Partition = null, Offset = null } }]);
        await Transport.SettleAsync([new Settlement { Kind = SettlementKind.Defer, Record = second, Source = source with { Offset = 1 } }]);
        var dls = await DeadLetters();
        Assert.Equal(2, dls.Count);
        Assert.Equal(dls[0].Id, dls[1].HeldBehind);
        Assert.Equal("""{"n":2}""", Json(dls[1].Message));
        Assert.Empty(await Transport.ReceiveAsync(QueueName.ForGroup("held4", "grp"), "c", 10, Lease));
    }

    [Fact]
    public async Task Delayed_delivery_is_invisible_until_due()
    {
        await Transport.SendAsync("later", [Msg()], Now.AddMilliseconds(400));
        Assert.Empty(await Transport.ReceiveAsync("later", "c", 1, Lease));
        _clock.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Single(await Transport.ReceiveAsync("later", "c", 1, Lease));
    }

    [Fact]
    public async Task Release_returns_the_message_without_counting_an_attempt()
    {
        await Transport.SendAsync("rel", [Msg()]);
        var d = Assert.Single(await Transport.ReceiveAsync("rel", "c", 1, Lease));
        await Transport.SettleAsync([new Settlement { Kind = SettlementKind.Release, Delivery = d, Source = new MessageSource(MessageSourceKind.Queue, "rel") }]);
        Assert.Equal(1, Assert.Single(await Transport.ReceiveAsync("rel", "c", 1, Lease)).Attempt);
    }

    [Fact]
    public async Task Publish_copies_to_every_subscription_and_not_to_later_ones()
    {
        await Transport.SubscribeAsync("OrderPlaced", "billing");
        await Transport.SubscribeAsync("OrderPlaced", "shipping");
        var receipt = await Transport.PublishAsync("OrderPlaced", [Msg(), Msg()]);
        Assert.Equal(2, receipt.Subscriptions);
        Assert.Empty(receipt.Offsets);
        await Transport.SubscribeAsync("OrderPlaced", "late");
        Assert.Equal(2, (await Transport.ReceiveAsync(QueueName.ForGroup("OrderPlaced", "billing"), "c", 10, Lease)).Count);
        Assert.Equal(2, (await Transport.ReceiveAsync(QueueName.ForGroup("OrderPlaced", "shipping"), "c", 10, Lease)).Count);
        Assert.Empty(await Transport.ReceiveAsync(QueueName.ForGroup("OrderPlaced", "late"), "c", 10, Lease));
        var topic = (await Transport.GetStatusAsync()).Topics.Single(t => t.Name == "OrderPlaced");
        Assert.Equal(["billing", "late", "shipping"], topic.Subscriptions);
    }

    [Fact]
    public async Task Unsubscribe_removes_the_subscription_and_its_queue()
    {
        await Transport.SubscribeAsync("T1", "g");
        await Transport.PublishAsync("T1", [Msg()]);
        await Transport.UnsubscribeAsync("T1", "g");
        Assert.Equal(0, (await Transport.PublishAsync("T1", [Msg()])).Subscriptions);
        Assert.Empty(await Transport.ReceiveAsync(QueueName.ForGroup("T1", "g"), "c", 10, Lease));
    }

    [Fact]
    public async Task Stream_records_go_to_the_partition_of_their_key_in_order()
    {
        await Transport.DeclareTopicAsync("orders", new TopicOptions { Partitions = 4 });
        var ms = Enumerable.Range(0, 40).Select(i => Msg(key: $"order-{i % 5}", json: $$"""{"n":{{i}}}""")).ToList();
        var receipt = await Transport.PublishAsync("orders", ms);
        Assert.Equal(40, receipt.Offsets.Count);
        for (var i = 0; i < 40; i++) Assert.Equal(KeyPartitioner.For(ms[i].PartitionKey, 4), receipt.Offsets[i].Partition);
        var total = 0;
        for (var p = 0; p < 4; p++)
        {
            var records = await Transport.FetchAsync("orders", "g", p, 0, 100);
            Assert.Equal(Enumerable.Range(0, records.Count).Select(i => (long)i), records.Select(r => r.Offset));
            Assert.All(records, r => Assert.Equal(p, KeyPartitioner.For(r.Message.PartitionKey, 4)));
            foreach (var key in records.GroupBy(r => r.Message.PartitionKey))
            {
                var ns = key.Select(r => ms.FindIndex(m => m.Id == r.Message.Id)).ToList();
                Assert.Equal(ns.Order(), ns);
            }
            total += records.Count;
            Assert.Equal(records.Skip(2).Select(r => r.Offset), (await Transport.FetchAsync("orders", "g", p, 2, 100)).Select(r => r.Offset));
        }
        Assert.Equal(40, total);
    }

    [Fact]
    public async Task Redeclaring_a_stream_with_other_partitions_is_refused()
    {
        await Transport.DeclareTopicAsync("s", new TopicOptions { Partitions = 2 });
        await Transport.DeclareTopicAsync("s", new TopicOptions { Partitions = 2, MaxCount = 10 });
        var ex = await Assert.ThrowsAsync<ArgumentException>(async () => await Transport.DeclareTopicAsync("s", new TopicOptions { Partitions = 3 }));
        Assert.Contains("2 partitions", ex.Message);
    }

    [Fact]
    public async Task Group_members_share_partitions_and_rebalance_cooperatively()
    {
        await Transport.DeclareTopicAsync("g-topic", new TopicOptions { Partitions = 4 });
        var timeout = TimeSpan.FromSeconds(30);
        var a = await Transport.HeartbeatGroupAsync("g-topic", "grp", "a", [], timeout);
        Assert.Equal([0, 1, 2, 3], a.Owned.Select(o => o.Partition));
        var b = await Transport.HeartbeatGroupAsync("g-topic", "grp", "b", [], timeout);
        Assert.Empty(b.Owned); // a still runs them
        a = await Transport.HeartbeatGroupAsync("g-topic", "grp", "a", [0, 1, 2, 3], timeout);
        Assert.Equal(2, a.Revoke.Count);
        var kept = a.Owned.Select(o => o.Partition).ToList();
        a = await Transport.HeartbeatGroupAsync("g-topic", "grp", "a", kept, timeout); // stopped the revoked ones
        Assert.Empty(a.Revoke);
        b = await Transport.HeartbeatGroupAsync("g-topic", "grp", "b", [], timeout);
        Assert.Equal(2, b.Owned.Count);
        Assert.Empty(kept.Intersect(b.Owned.Select(o => o.Partition)));
        Assert.Equal(2, b.Members);
        await Transport.LeaveGroupAsync("g-topic", "grp", "b");
        a = await Transport.HeartbeatGroupAsync("g-topic", "grp", "a", kept, timeout);
        Assert.Equal(4, a.Owned.Count);
    }

    [Fact]
    public async Task A_silent_member_is_removed_after_the_session_timeout()
    {
        await Transport.DeclareTopicAsync("silent", new TopicOptions { Partitions = 2 });
        var timeout = TimeSpan.FromMilliseconds(300);
        await Transport.HeartbeatGroupAsync("silent", "grp", "dies", [], timeout);
        var other = await Transport.HeartbeatGroupAsync("silent", "grp", "lives", [], timeout);
        Assert.Empty(other.Owned);
        _clock.Advance(TimeSpan.FromMilliseconds(400));
        other = await Transport.HeartbeatGroupAsync("silent", "grp", "lives", [], timeout);
        Assert.Equal(2, other.Owned.Count);
        Assert.Equal(1, other.Members);
    }

    [Fact]
    public async Task Offset_commits_are_fenced_to_the_owner_and_resume_the_group()
    {
        await Transport.DeclareTopicAsync("fence", new TopicOptions { Partitions = 1 });
        await Transport.PublishAsync("fence", Enumerable.Range(0, 5).Select(_ => Msg()).ToList());
        var a = await Transport.HeartbeatGroupAsync("fence", "grp", "a", [], TimeSpan.FromSeconds(30));
        Assert.Equal(0, a.Owned[0].Offset);
        Assert.False(await Transport.CommitOffsetsAsync("fence", "grp", "intruder", [new PartitionOffset(0, 5)]));
        Assert.True(await Transport.CommitOffsetsAsync("fence", "grp", "a", [new PartitionOffset(0, 3)]));
        await Transport.LeaveGroupAsync("fence", "grp", "a");
        var b = await Transport.HeartbeatGroupAsync("fence", "grp", "b", [], TimeSpan.FromSeconds(30));
        Assert.Equal(3, b.Owned[0].Offset);
        var g = (await Transport.GetStatusAsync()).Groups.Single(x => x.Group == "grp");
        Assert.Equal(2, g.Lag);
        Assert.Equal("b", g.Partitions[0].Owner);
    }

    [Fact]
    public async Task A_group_resets_to_start_offset_time_or_end_only_while_no_member_is_live()
    {
        await Transport.DeclareTopicAsync("reset", new TopicOptions { Partitions = 1 });
        await Transport.PublishAsync("reset", [Msg(), Msg()]);
        _clock.Advance(TimeSpan.FromMilliseconds(50));
        var mid = Now;
        _clock.Advance(TimeSpan.FromMilliseconds(50));
        await Transport.PublishAsync("reset", [Msg(), Msg(), Msg()]);
        var a = await Transport.HeartbeatGroupAsync("reset", "grp", "a", [], TimeSpan.FromSeconds(30));
        await Transport.CommitOffsetsAsync("reset", "grp", "a", [new PartitionOffset(0, 5)]);
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(async () => await Transport.ResetGroupAsync("reset", "grp", GroupReset.ToStart));
        Assert.Contains("live member", ex.Message);
        await Transport.LeaveGroupAsync("reset", "grp", "a");

        async Task<long> Committed() => (await Transport.GetStatusAsync()).Groups.Single(x => x.Group == "grp").Partitions[0].Committed;
        await Transport.ResetGroupAsync("reset", "grp", GroupReset.ToStart);
        Assert.Equal(0, await Committed());
        await Transport.ResetGroupAsync("reset", "grp", GroupReset.ToOffset(3));
        Assert.Equal(3, await Committed());
        await Transport.ResetGroupAsync("reset", "grp", GroupReset.ToTime(mid));
        Assert.Equal(2, await Committed());
        await Transport.ResetGroupAsync("reset", "grp", GroupReset.ToEnd);
        Assert.Equal(5, await Committed());
        _ = a;
    }

    [Fact]
    public async Task Retention_trims_by_count_and_bytes_and_consumers_skip_to_the_first_retained_record()
    {
        await Transport.DeclareTopicAsync("ret", new TopicOptions { Partitions = 1, MaxCount = 3 });
        await Transport.PublishAsync("ret", Enumerable.Range(0, 10).Select(i => Msg(json: $$"""{"n":{{i}}}""")).ToList());
        Assert.Equal(7, await Transport.ApplyRetentionAsync());
        var records = await Transport.FetchAsync("ret", "g", 0, 0, 100);
        Assert.Equal([7L, 8, 9], records.Select(r => r.Offset));
        var part = (await Transport.GetStatusAsync()).Topics.Single(t => t.Name == "ret").Partitions[0];
        Assert.Equal((7L, 10L), (part.StartOffset, part.EndOffset));
        await Transport.PublishAsync("ret", [Msg()]);
        Assert.Equal(10, Assert.Single(await Transport.FetchAsync("ret", "g", 0, 10, 100)).Offset);

        await Transport.DeclareTopicAsync("ret-bytes", new TopicOptions { Partitions = 1, MaxBytes = 100 });
        await Transport.PublishAsync("ret-bytes", Enumerable.Range(0, 10).Select(_ => Msg(json: new string('x', 40).Insert(0, "\"") + "\"")).ToList());
        await Transport.ApplyRetentionAsync();
        Assert.Equal(2, (await Transport.FetchAsync("ret-bytes", "g", 0, 0, 100)).Count);
    }

    [Fact]
    public async Task Retention_by_age_keeps_recent_records()
    {
        await Transport.DeclareTopicAsync("age", new TopicOptions { Partitions = 1, MaxAge = TimeSpan.FromMilliseconds(300) });
        await Transport.PublishAsync("age", [Msg(), Msg()]);
        _clock.Advance(TimeSpan.FromMilliseconds(400));
        await Transport.PublishAsync("age", [Msg()]);
        Assert.Equal(2, await Transport.ApplyRetentionAsync());
        Assert.Equal(2, Assert.Single(await Transport.FetchAsync("age", "g", 0, 0, 100)).Offset);
    }

    [Fact]
    public async Task Dead_letters_keep_the_original_and_why_and_replay_moves_them_back_once()
    {
        var original = Msg(key: "k") with { Headers = new Dictionary<string, string> { ["x"] = "1" } };
        await Transport.SendAsync("dlq-src", [original]);
        var d = Assert.Single(await Transport.ReceiveAsync("dlq-src", "c", 1, Lease));
        var failure = Failure(attempts: 4);
        await Transport.SettleAsync([new Settlement { Kind = SettlementKind.DeadLetter, Delivery = d, Failure = failure, Source = new MessageSource(MessageSourceKind.Queue, "dlq-src") }]);
        var dl = Assert.Single(await DeadLetters());
        Assert.Equal(original.Id, dl.Message.Id);
        Assert.Equal(original.Body.ToArray(), dl.Message.Body.ToArray());
        Assert.Equal("1", dl.Message.Headers["x"]);
        Assert.Equal(("dlq-src", MessageSourceKind.Queue), (dl.Source.Name, dl.Source.Kind));
        Assert.Equal((failure.ExceptionType, failure.Message, failure.StackTrace, 4), (dl.Failure.ExceptionType, dl.Failure.Message, dl.Failure.StackTrace, dl.Failure.Attempts));
        Assert.Equal(failure.FirstFailure.ToUnixTimeMilliseconds(), dl.Failure.FirstFailure.ToUnixTimeMilliseconds());
        Assert.Equal(0, dl.ReplayCount);
        Assert.Equal(1, (await Transport.GetStatusAsync()).DeadLetterTotal);

        Assert.Equal(1, await Transport.ReplayDeadLettersAsync(DeadLetterFilter.All));
        Assert.Empty(await DeadLetters());
        Assert.Equal(0, await Transport.ReplayDeadLettersAsync(DeadLetterFilter.All));
        var back = Assert.Single(await Transport.ReceiveAsync("dlq-src", "c", 1, Lease));
        Assert.Equal(original.Id, back.Message.Id);
        Assert.Equal("1", back.Message.Headers[MessageHeaders.Replayed]);
        Assert.Equal(1, back.Attempt);

        await Transport.SettleAsync([new Settlement { Kind = SettlementKind.DeadLetter, Delivery = back, Failure = failure, Source = new MessageSource(MessageSourceKind.Queue, "dlq-src") }]);
        Assert.Equal(1, Assert.Single(await DeadLetters()).ReplayCount);
        Assert.Equal(1, await Transport.DiscardDeadLettersAsync(DeadLetterFilter.All));
        Assert.Empty(await DeadLetters());
    }

    [Fact]
    public async Task Dead_letters_filter_by_source_type_exception_time_and_id()
    {
        var now = Now;
        await Transport.SendAsync("qa", [Msg("OrderPlaced"), Msg("OrderShipped")]);
        await Transport.SendAsync("qb", [Msg("OrderPlaced")]);
        foreach (var (q, ex) in new[] { ("qa", "System.TimeoutException"), ("qb", "Acme.PaymentDeclinedException") })
        {
            var ds = await Transport.ReceiveAsync(q, "c", 10, Lease);
            await Transport.SettleAsync(ds.Select(d => new Settlement { Kind = SettlementKind.DeadLetter, Delivery = d, Failure = Failure(ex), Source = new MessageSource(MessageSourceKind.Queue, q) }).ToList());
        }
        Assert.Equal(3, (await DeadLetters()).Count);
        Assert.Equal(2, (await DeadLetters(new DeadLetterFilter { Source = "qa" })).Count);
        Assert.Equal(2, (await DeadLetters(new DeadLetterFilter { Type = "OrderPlaced" })).Count);
        Assert.Single(await DeadLetters(new DeadLetterFilter { ExceptionType = "PaymentDeclinedException" }));
        Assert.Single(await DeadLetters(new DeadLetterFilter { ExceptionType = "System.TimeoutException", Type = "OrderShipped" }));
        Assert.Equal(3, (await DeadLetters(new DeadLetterFilter { From = now.AddMinutes(-1), To = now.AddMinutes(1) })).Count);
        Assert.Empty(await DeadLetters(new DeadLetterFilter { From = now.AddMinutes(1) }));
        Assert.Single(await DeadLetters(new DeadLetterFilter { Limit = 1 }));
        var one = (await DeadLetters())[1];
        Assert.Equal(one.Id, Assert.Single(await DeadLetters(new DeadLetterFilter { Ids = [one.Id] })).Id);
        Assert.Equal(2, await Transport.ReplayDeadLettersAsync(new DeadLetterFilter { Source = "qa" }));
        Assert.Equal(2, (await Transport.ReceiveAsync("qa", "c", 10, Lease)).Count);
        var depth = (await Transport.GetStatusAsync()).DeadLetters;
        Assert.Equal(("qb", 1L), (Assert.Single(depth).Source, depth[0].Count));
    }

    [Fact]
    public async Task A_held_stream_key_follows_its_dead_letter_and_replays_in_order()
    {
        await Transport.DeclareTopicAsync("held", new TopicOptions { Partitions = 1 });
        var ms = new[] { Msg(key: "k", json: """{"n":1}"""), Msg(key: "k", json: """{"n":2}"""), Msg(key: "other", json: """{"n":3}""") };
        await Transport.PublishAsync("held", ms);
        var recs = await Transport.FetchAsync("held", "grp", 0, 0, 10);
        Assert.All(recs, r => Assert.Equal(KeyHold.None, r.Hold));
        var source = new MessageSource(MessageSourceKind.Stream, "held", "grp", 0, 0);
        await Transport.SettleAsync([new Settlement { Kind = SettlementKind.DeadLetter, Record = recs[0], HoldKey = true, Failure = Failure(), Source = source }]);
        recs = await Transport.FetchAsync("held", "grp", 0, 1, 10);
        Assert.Equal([KeyHold.DeadLettered, KeyHold.None], recs.Select(r => r.Hold));
        Assert.Equal(KeyHold.None, (await Transport.FetchAsync("held", "other-group", 0, 1, 10))[0].Hold);
        await Transport.SettleAsync([new Settlement { Kind = SettlementKind.DeadLetter, Record = recs[0], HoldKey = true, Failure = Failure("Held"), Source = source with { Offset = 1 } }]);
        var dls = await DeadLetters();
        Assert.Equal(2, dls.Count);
        Assert.Null(dls[0].HeldBehind);
        Assert.Equal(dls[0].Id, dls[1].HeldBehind);

        // Replaying only the held one would let it overtake its blocker: it is skipped.
        Assert.Equal(0, await Transport.ReplayDeadLettersAsync(new DeadLetterFilter { Ids = [dls[1].Id] }));
        // Replaying the blocker brings the held ones along, in order, into the group's queue.
        Assert.Equal(2, await Transport.ReplayDeadLettersAsync(new DeadLetterFilter { Ids = [dls[0].Id] }));
        await Transport.PublishAsync("held", [Msg(key: "k", json: """{"n":4}""")]);
        var later = Assert.Single(await Transport.FetchAsync("held", "grp", 0, 3, 10));
        Assert.Equal(KeyHold.Replaying, later.Hold);
        await Transport.SettleAsync([new Settlement { Kind = SettlementKind.Defer, Record = later, Source = source with { Offset = 3 } }]);

        var queue = QueueName.ForGroup("held", "grp");
        var order = new List<string>();
        while (true)
        {
            var d = await Transport.ReceiveAsync(queue, "c", 10, Lease);
            if (d.Count == 0) break;
            Assert.Single(d); // one per key at a time
            order.Add(Json(d[0].Message));
            await Transport.SettleAsync([new Settlement { Kind = SettlementKind.Ack, Delivery = d[0], Source = source with { Partition = null, Offset = null } }]);
        }
        Assert.Equal(["""{"n":1}""", """{"n":2}""", """{"n":4}"""], order);
        // Once the replays are through, the key flows again.
        await Transport.PublishAsync("held", [Msg(key: "k", json: """{"n":5}""")]);
        Assert.Equal(KeyHold.None, Assert.Single(await Transport.FetchAsync("held", "grp", 0, 4, 10)).Hold);
    }

    [Fact]
    public async Task Discarding_a_blocker_hands_the_hold_to_the_next_held_message()
    {
        await Transport.DeclareTopicAsync("held2", new TopicOptions { Partitions = 1 });
        await Transport.PublishAsync("held2", [Msg(key: "k"), Msg(key: "k"), Msg(key: "k")]);
        var recs = await Transport.FetchAsync("held2", "grp", 0, 0, 10);
        var source = new MessageSource(MessageSourceKind.Stream, "held2", "grp", 0, 0);
        await Transport.SettleAsync(recs.Select(r => new Settlement { Kind = SettlementKind.DeadLetter, Record = r, HoldKey = true, Failure = Failure(), Source = source }).ToList());
        var dls = await DeadLetters();
        Assert.Equal(1, await Transport.DiscardDeadLettersAsync(new DeadLetterFilter { Ids = [dls[0].Id] }));
        var rest = await DeadLetters();
        Assert.Null(rest[0].HeldBehind);
        Assert.Equal(rest[0].Id, rest[1].HeldBehind);
        await Transport.PublishAsync("held2", [Msg(key: "k")]);
        Assert.Equal(KeyHold.DeadLettered, Assert.Single(await Transport.FetchAsync("held2", "grp", 0, 3, 10)).Hold);
        Assert.Equal(2, await Transport.ReplayDeadLettersAsync(new DeadLetterFilter { Ids = [rest[0].Id] }));
    }

    [Fact]
    public async Task Ack_commits_the_inbox_record_and_the_outgoing_messages_together()
    {
        await Transport.SubscribeAsync("Out", "g");
        await Transport.SendAsync("in", [Msg()]);
        var d = Assert.Single(await Transport.ReceiveAsync("in", "c", 1, Lease));
        var enlisted = 0;
        var ok = await Transport.SettleAsync([Ack(d, "in") with
        {
            Outgoing = [new OutgoingMessage(Msg(), "Out", null), new OutgoingMessage(Msg(), null, "next")],
            Enlisted = [Work(() => enlisted++)],
        }]);
        Assert.True(ok[0]);
        Assert.Equal(1, enlisted);
        Assert.Single(await Transport.ReceiveAsync(QueueName.ForGroup("Out", "g"), "c", 10, Lease));
        Assert.Single(await Transport.ReceiveAsync("next", "c", 10, Lease));
        Assert.Equal([d.Message.Id], await Transport.FilterHandledAsync("in", [d.Message.Id, MessageId.New()]));
        Assert.Empty(await Transport.FilterHandledAsync("other-inbox", [d.Message.Id]));
        Assert.Equal(0, await Transport.PurgeInboxAsync(Now.AddMinutes(-1)));
        Assert.Equal(1, await Transport.PurgeInboxAsync(Now.AddMinutes(1)));
        Assert.Empty(await Transport.FilterHandledAsync("in", [d.Message.Id]));
    }

    [Fact]
    public async Task A_settlement_whose_lease_was_lost_changes_nothing()
    {
        await Transport.SendAsync("lost", [Msg()]);
        var d = Assert.Single(await Transport.ReceiveAsync("lost", "c", 1, TimeSpan.FromMilliseconds(100)));
        _clock.Advance(TimeSpan.FromMilliseconds(200));
        var taken = Assert.Single(await Transport.ReceiveAsync("lost", "c2", 1, Lease));
        var enlisted = 0;
        var ok = await Transport.SettleAsync([Ack(d, "lost", new OutgoingMessage(Msg(), null, "side-effect")) with { Enlisted = [Work(() => enlisted++)] }]);
        Assert.False(ok[0]);
        Assert.Equal(0, enlisted);
        Assert.Empty(await Transport.ReceiveAsync("side-effect", "c", 1, Lease));
        Assert.Empty(await Transport.FilterHandledAsync("lost", [d.Message.Id]));
        Assert.True((await Transport.SettleAsync([Ack(taken)]))[0]);
    }

    [Fact]
    public async Task An_enlisted_failure_rolls_back_only_its_settlement()
    {
        await Transport.SendAsync("atomic", [Msg(), Msg()]);
        var ds = await Transport.ReceiveAsync("atomic", "c", 2, Lease);
        var bad = Ack(ds[0], "atomic", new OutgoingMessage(Msg(), null, "atomic-out")) with { Enlisted = [Work(() => throw new InvalidOperationException("enlisted work failed"))] };
        await Assert.ThrowsAnyAsync<Exception>(async () => await Transport.SettleAsync([bad]));
        Assert.Empty(await Transport.ReceiveAsync("atomic-out", "c", 1, Lease));
        Assert.Empty(await Transport.FilterHandledAsync("atomic", [ds[0].Message.Id]));
        Assert.True((await Transport.SettleAsync([Ack(ds[1])]))[0]);
    }

    [Fact]
    public async Task Consumer_heartbeats_say_whether_a_queue_has_a_live_consumer()
    {
        Assert.False(await Transport.HasLiveConsumerAsync("rq", TimeSpan.FromSeconds(5)));
        await Transport.HeartbeatConsumerAsync("rq", "c1", TimeSpan.FromSeconds(4));
        Assert.True(await Transport.HasLiveConsumerAsync("rq", TimeSpan.FromSeconds(5)));
        Assert.Contains("c1", (await Transport.GetStatusAsync()).Queues.Single(q => q.Name == "rq").Consumers);
        await Transport.RemoveConsumerAsync("rq", "c1");
        Assert.False(await Transport.HasLiveConsumerAsync("rq", TimeSpan.FromSeconds(5)));
    }

    // Issue 9: `factum queues` listed a consumer killed with SIGKILL as live for 30 s, long after the bus had stopped
    // counting it. A consumer is listed only while its last heartbeat's promise holds.
    [Fact]
    public async Task A_consumer_whose_heartbeat_lapsed_is_no_longer_listed_as_live()
    {
        await Transport.HeartbeatConsumerAsync("lapse", "steady", TimeSpan.FromSeconds(5));
        await Transport.HeartbeatConsumerAsync("lapse", "killed", TimeSpan.FromMilliseconds(50));
        _clock.Advance(TimeSpan.FromMilliseconds(300));
        var consumers = (await Transport.GetStatusAsync()).Queues.Single(q => q.Name == "lapse").Consumers;
        Assert.Contains("steady", consumers);
        Assert.DoesNotContain("killed", consumers);
    }

    [Fact]
    public async Task Competing_receivers_never_get_the_same_message()
    {
        await Transport.SendAsync("race", Enumerable.Range(0, 500).Select(_ => Msg()).ToList());
        var seen = new System.Collections.Concurrent.ConcurrentBag<MessageId>();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(c => Task.Run(async () =>
        {
            while (true)
            {
                var ds = await Transport.ReceiveAsync("race", $"c{c}", 16, Lease);
                if (ds.Count == 0) return;
                foreach (var d in ds) seen.Add(d.Message.Id);
                await Transport.SettleAsync(ds.Select(d => Ack(d)).ToList());
            }
        })));
        Assert.Equal(500, seen.Count);
        Assert.Equal(500, seen.Distinct().Count());
    }

    [Fact]
    public async Task WaitForQueue_wakes_on_a_send_to_that_queue()
    {
        var wait = Transport.WaitForQueueAsync("wake", TimeSpan.FromSeconds(20));
        await Task.Delay(50);
        await Transport.SendAsync("wake", [Msg()]);
        var done = await Task.WhenAny(wait, Task.Delay(5000));
        Assert.Same(wait, done);
    }
}
