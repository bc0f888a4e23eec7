using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Factum.Messaging;
using Factum.Sqlite;

namespace Factum.Cli.Tests;

public sealed class MessagingCliTests : IDisposable
{
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private Task<CliResult> F(params string[] args) => FactumCli.Run(_dir.Path, args);

    private static JsonElement Json(string line) => JsonDocument.Parse(line).RootElement.Clone();

    private static TransportMessage Msg(string type, string json, string? key = null) => new()
    {
        Id = MessageId.New(),
        Type = type,
        Timestamp = DateTimeOffset.UtcNow,
        CorrelationId = "c-1",
        PartitionKey = key,
        Body = Encoding.UTF8.GetBytes(json),
    };

    [Fact]
    public async Task Send_and_publish_store_messages_that_queues_and_topics_show()
    {
        Assert.Equal(0, (await F("send", "--type", "CapturePayment", "--body", """{"orderId":"1","amount":5}""", "--key", "order-1", "-H", "tenant=acme")).ExitCode);
        Assert.Equal(0, (await F("send", "--queue", "later", "--type", "CapturePayment", "--body", "{}", "--delay", "1h")).ExitCode);
        await using (var t = SqliteMessageTransport.Open(_dir.Db))
        {
            await t.SubscribeAsync("OrderPlaced", "billing");
            await t.DeclareTopicAsync("OrderShipped", new TopicOptions { Partitions = 2, MaxCount = 1000 });
        }
        var published = Json((await F("publish", "--json", "--type", "OrderPlaced", "--body", """{"orderId":"1"}""")).Lines[0]);
        Assert.Equal(1, published.GetProperty("subscriptions").GetInt32());
        var streamed = Json((await F("publish", "--json", "--type", "OrderShipped", "--body", "{}", "--key", "order-1")).Lines[0]);
        Assert.Equal(KeyPartitioner.For("order-1", 2), streamed.GetProperty("partition").GetInt32());

        var queues = (await F("queues", "--json")).Lines.Select(Json).ToDictionary(q => q.GetProperty("queue").GetString()!);
        Assert.Equal(1, queues["CapturePayment"].GetProperty("ready").GetInt64());
        Assert.Equal(1, queues["later"].GetProperty("delayed").GetInt64());
        Assert.Equal(1, queues["OrderPlaced@billing"].GetProperty("ready").GetInt64());
        var text = (await F("queues")).Stdout;
        Assert.Contains("OrderPlaced@billing", text);
        Assert.Contains("READY", text);

        var topics = (await F("topics", "--json")).Lines.Select(Json).ToDictionary(t => t.GetProperty("topic").GetString()!);
        Assert.Equal(2, topics["OrderShipped"].GetProperty("partitions").GetInt32());
        Assert.Equal(1000, topics["OrderShipped"].GetProperty("maxCount").GetInt64());
        Assert.Equal("billing", topics["OrderPlaced"].GetProperty("subscriptions")[0].GetString());

        await using var check = SqliteMessageTransport.Open(_dir.Db);
        var d = Assert.Single(await check.ReceiveAsync("CapturePayment", "test", 10, TimeSpan.FromSeconds(30)));
        Assert.Equal(("order-1", "acme"), (d.Message.PartitionKey, d.Message.Headers["tenant"]));
        Assert.Equal("""{"orderId":"1","amount":5}""", Encoding.UTF8.GetString(d.Message.Body.Span));
    }

    [Fact]
    public async Task Bad_input_is_refused_with_exit_code_2_and_stores_nothing()
    {
        Assert.Equal(0, (await F("send", "--type", "CapturePayment", "--body", "{}")).ExitCode);
        var bad = await F("send", "--type", "CapturePayment", "--body", "{not json");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--body is not valid JSON", bad.Stderr);
        Assert.Equal(2, (await F("send", "--queue", "bad queue!", "--type", "CapturePayment", "--body", "{}")).ExitCode);
        Assert.Equal(2, (await F("send", "--type", "CapturePayment", "--body", "{}", "--delay", "soon")).ExitCode);
        Assert.Equal(2, (await F("publish", "--type", "Order Placed", "--body", "{}")).ExitCode);
        Assert.Equal(2, (await F("groups", "reset", "T", "g", "--to", "yesterday")).ExitCode);
        Assert.Equal(2, (await F("dlq", "replay")).ExitCode);
        Assert.Equal(4, (await F("dlq", "show", "999")).ExitCode);
        var queues = (await F("queues", "--json")).Lines.Select(Json).ToList();
        Assert.Equal(1, Assert.Single(queues).GetProperty("ready").GetInt64());
    }

    [Fact]
    public async Task Dlq_list_show_replay_and_discard()
    {
        await using (var t = SqliteMessageTransport.Open(_dir.Db))
        {
            await t.SendAsync("payments", [Msg("CapturePayment", """{"orderId":"1"}"""), Msg("CapturePayment", """{"orderId":"2"}"""), Msg("RefundPayment", "{}")]);
            var ds = await t.ReceiveAsync("payments", "test", 10, TimeSpan.FromSeconds(30));
            await t.SettleAsync(ds.Select((d, i) => new Settlement
            {
                Kind = SettlementKind.DeadLetter,
                Delivery = d,
                Source = new MessageSource(MessageSourceKind.Queue, "payments"),
                Failure = new FailureInfo(i == 2 ? "System.TimeoutException" : "Acme.CardDeclinedException", $"failure {i}", "at Acme.Pay()", 3, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow),
            }).ToList());
        }
        var list = (await F("dlq", "list", "--json")).Lines.Select(Json).ToList();
        Assert.Equal(3, list.Count);
        Assert.Equal("payments", list[0].GetProperty("source").GetString());
        Assert.Equal(3, list[0].GetProperty("attempts").GetInt32());
        Assert.Equal(2, (await F("dlq", "list", "--json", "--exception", "CardDeclinedException")).Lines.Length);
        Assert.Single((await F("dlq", "list", "--json", "--type", "RefundPayment")).Lines);
        Assert.Equal(3, (await F("dlq", "list", "--json", "--since", "1h")).Lines.Length);
        Assert.Contains("CardDeclinedException", (await F("dlq", "list")).Stdout);

        var id = list[0].GetProperty("id").GetInt64().ToString();
        var show = await F("dlq", "show", id);
        Assert.Contains("at Acme.Pay()", show.Stdout);
        Assert.Contains("""{"orderId":"1"}""", show.Stdout);
        Assert.Equal("1", Json((await F("dlq", "show", id, "--json")).Lines[0]).GetProperty("data").GetProperty("orderId").GetString());

        var replayed = await F("dlq", "replay", id);
        Assert.Contains("replayed 1", replayed.Stdout);
        Assert.Equal(1, Json((await F("queues", "--json")).Lines.Single()).GetProperty("ready").GetInt64());
        Assert.Equal(1, Json((await F("dlq", "replay", "--json", "--exception", "CardDeclinedException")).Lines[0]).GetProperty("replayed").GetInt32());
        Assert.Contains("discarded 1", (await F("dlq", "discard", "--all")).Stdout);
        Assert.Empty((await F("dlq", "list", "--json")).Lines);
        await using var t2 = SqliteMessageTransport.Open(_dir.Db);
        var back = await t2.ReceiveAsync("payments", "test", 10, TimeSpan.FromSeconds(30));
        Assert.Equal(2, back.Count);
        Assert.All(back, b => Assert.Equal("1", b.Message.Headers[MessageHeaders.Replayed]));
    }

    [Fact]
    public async Task Dlq_with_message_store_works_on_the_dead_letters_of_durable_endpoints()
    {
        var stuck = Msg("CapturePayment", """{"orderId":"9"}""");
        await using (var store = new SqliteEventStore(_dir.Db))
        {
            var messages = new SqliteMessageStore(store);
            await messages.CommitAsync(new MessageTransaction
            {
                DeadLetters = [new DeadLetterRecord(stuck, new MessageSource(MessageSourceKind.Queue, "payments"), new FailureInfo("Acme.CardDeclinedException", "declined", "at Acme.Pay()", 4, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow))],
            });
        }
        // The transport's dead-letter queue is another place: the default list does not show the store's letters.
        Assert.Empty((await F("dlq", "list", "--json")).Lines);
        var list = (await F("dlq", "list", "--json", "--message-store")).Lines.Select(Json).ToList();
        var letter = Assert.Single(list);
        Assert.Equal("payments", letter.GetProperty("source").GetString());
        var id = letter.GetProperty("id").GetInt64().ToString();
        Assert.Contains("declined", (await F("dlq", "show", id, "--message-store")).Stdout);
        Assert.Equal(2, (await F("dlq", "replay", "--message-store")).ExitCode);

        // Replay puts it in the message store's outbox, for the dispatcher to send back to its queue.
        Assert.Contains("replayed 1", (await F("dlq", "replay", "--all", "--message-store")).Stdout);
        Assert.Empty((await F("dlq", "list", "--json", "--message-store")).Lines);
        await using var reopened = new SqliteEventStore(_dir.Db);
        var outbox = await new SqliteMessageStore(reopened).ReadDueOutboxAsync(10);
        var entry = Assert.Single(outbox);
        Assert.Equal(stuck.Id, entry.Message.Message.Id);
        Assert.Equal(QueueName.Parse("payments"), entry.Message.Queue);
    }

    [Fact]
    public async Task Groups_list_and_reset()
    {
        await using (var t = SqliteMessageTransport.Open(_dir.Db))
        {
            await t.DeclareTopicAsync("Orders", new TopicOptions { Partitions = 2 });
            await t.PublishAsync("Orders", Enumerable.Range(0, 6).Select(i => Msg("OrderPlaced", "{}", $"k{i}")).ToList());
            var a = await t.HeartbeatGroupAsync("Orders", "analytics", "member-1", [], TimeSpan.FromSeconds(30));
            await t.CommitOffsetsAsync("Orders", "analytics", "member-1", a.Owned.Select(o => o with { Offset = 1 }).ToList());
        }
        var g = Json((await F("groups", "list", "--json")).Lines.Single());
        Assert.Equal(("Orders", "analytics"), (g.GetProperty("topic").GetString(), g.GetProperty("group").GetString()));
        Assert.Equal(4, g.GetProperty("lag").GetInt64());
        Assert.Equal("member-1", g.GetProperty("members")[0].GetProperty("member").GetString());
        var refused = await F("groups", "reset", "Orders", "analytics", "--to", "start");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("live member", refused.Stderr);
        await using (var t = SqliteMessageTransport.Open(_dir.Db)) await t.LeaveGroupAsync("Orders", "analytics", "member-1");
        Assert.Equal(0, (await F("groups", "reset", "Orders", "analytics", "--to", "start")).ExitCode);
        Assert.Equal(6, Json((await F("groups", "list", "--json")).Lines.Single()).GetProperty("lag").GetInt64());
        Assert.Equal(0, (await F("groups", "reset", "Orders", "analytics", "--to", "end")).ExitCode);
        Assert.Equal(0, Json((await F("groups", "list", "--json")).Lines.Single()).GetProperty("lag").GetInt64());
        Assert.Contains("COMMITTED", (await F("groups", "list")).Stdout);
    }

    [Fact]
    public async Task Relay_once_publishes_stored_events_and_resumes_from_its_checkpoint()
    {
        await using (var t = SqliteMessageTransport.Open(_dir.Db)) await t.SubscribeAsync("OrderPlaced", "audit");
        await F("append", "--stream", "Order-1", "--type", "OrderPlaced", "--data", """{"orderId":"1"}""", "--correlation-id", "corr-1");
        await F("append", "--stream", "Order-1", "--type", "OrderShipped", "--data", "{}");
        Assert.Contains("relayed 2 event(s)", (await F("relay", "--once")).Stdout);
        await F("append", "--stream", "Order-2", "--type", "OrderPlaced", "--data", """{"orderId":"2"}""");
        Assert.Contains("relayed 1 event(s)", (await F("relay", "--once")).Stdout);
        Assert.Contains("relayed 0 event(s)", (await F("relay", "--once")).Stdout);
        await using var check = SqliteMessageTransport.Open(_dir.Db);
        var ds = await check.ReceiveAsync(QueueName.ForGroup("OrderPlaced", "audit"), "t", 10, TimeSpan.FromSeconds(30));
        Assert.Equal(2, ds.Count);
        var first = ds.Single(d => d.Message.PartitionKey == "Order-1");
        Assert.Equal("corr-1", first.Message.CorrelationId);
        Assert.Equal("1", first.Message.Headers[MessageHeaders.StorePosition]);
        var stored = Json((await F("read", "--stream", "Order-1", "--json")).Lines[0]);
        Assert.Equal(stored.GetProperty("eventId").GetString(), first.Message.Id.ToString());
    }

    [Fact]
    public async Task The_relay_loses_nothing_when_killed_with_sigkill_while_events_are_appended()
    {
        await using (var t = SqliteMessageTransport.Open(_dir.Db)) await t.SubscribeAsync("RelayTested", "audit");
        long Scalar(string sql)
        {
            using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_dir.Db};Pooling=False;Mode=ReadOnly");
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = sql;
            return cmd.ExecuteScalar() is long v ? v : 0;
        }
        for (var round = 0; round < 4; round++)
        {
            // The relay runs live while another process appends; it is killed as soon as it has relayed part of this
            // round, and the test proves the kill landed mid-relay: its checkpoint was behind the round's last event.
            var roundStart = Scalar("SELECT MAX(position) FROM events");
            // A short lease: the killed relay's lease lapses soon, so the next round's relay takes over quickly.
            using var p = Process.Start(FactumCli.StartInfo(_dir.Path, "relay", "--lease", "1s"))!;
            // The appends start once the relay is live (it says so), so they stream in while it relays: a relay still
            // starting up when a fast import had already finished could catch up in one go and make the kill land late.
            var ready = Task.Run(async () =>
            {
                while (await p.StandardOutput.ReadLineAsync() is { } line)
                    if (line.StartsWith("relaying from position", StringComparison.Ordinal)) return;
            });
            await ready.WaitAsync(TimeSpan.FromMinutes(1));
            // Enough events that relaying them takes several batches (512 each), so the kill can land among them.
            var lines = Enumerable.Range(0, 5000).Select(i => $$$"""{"stream":"R-{{{round}}}-{{{i % 100}}}","type":"RelayTested","data":{"n":{{{i}}}}}""");
            // The lines are fed in over about a second, so the relay follows them live and a kill as soon as its
            // checkpoint moves lands while the round is still being appended, however fast the relay is.
            using var importer = Process.Start(FactumCli.StartInfo(_dir.Path, "import", "--json"))!;
            var output = importer.StandardOutput.ReadToEndAsync();
            var errors = importer.StandardError.ReadToEndAsync();
            var feeding = Task.Run(async () =>
            {
                foreach (var chunk in lines.Chunk(100))
                {
                    await importer.StandardInput.WriteAsync(string.Join('\n', chunk) + "\n");
                    await importer.StandardInput.FlushAsync();
                    await Task.Delay(20);
                }
                importer.StandardInput.Close();
            });
            var waited = Stopwatch.StartNew();
            long atKill;
            while ((atKill = Scalar("SELECT MAX(position) FROM checkpoints")) <= roundStart)
            {
                Assert.True(waited.Elapsed < TimeSpan.FromMinutes(1), "the relay relayed nothing of this round within a minute");
                await Task.Delay(5);
            }
            p.Kill();
            await p.WaitForExitAsync();
            await feeding;
            await importer.WaitForExitAsync();
            Assert.True(importer.ExitCode == 0, $"import failed: {await errors}");
            _ = await output;
            var roundEnd = Scalar("SELECT MAX(position) FROM events");
            Assert.True(atKill < roundEnd, $"round {round}: the kill landed after the relay had caught up (checkpoint {atKill}, last event {roundEnd})");
        }
        Assert.Equal(0, (await F("relay", "--once", "--lease", "1s")).ExitCode);
        var stored = (await F("read-all", "--json", "--type", "RelayTested")).Lines.Select(l => Json(l).GetProperty("eventId").GetString()!).ToHashSet();
        Assert.Equal(20_000, stored.Count);
        await using var check = SqliteMessageTransport.Open(_dir.Db);
        var published = new HashSet<string>();
        var total = 0;
        while (true)
        {
            var ds = await check.ReceiveAsync(QueueName.ForGroup("RelayTested", "audit"), "t", 500, TimeSpan.FromMinutes(5));
            if (ds.Count == 0) break;
            total += ds.Count;
            foreach (var d in ds) published.Add(d.Message.Id.ToString());
            // Keyed messages are leased one per key at a time: ack to see the next of each stream.
            await check.SettleAsync(ds.Select(d => new Settlement { Kind = SettlementKind.Ack, Delivery = d, Source = new MessageSource(MessageSourceKind.Subscription, "RelayTested", "audit") }).ToList());
        }
        Assert.Empty(stored.Except(published)); // every stored event published at least once
        Assert.Empty(published.Except(stored));
        Assert.True(total - published.Count <= 4 * 512, $"duplicates are bounded by one batch per kill ({total - published.Count})");
        Assert.Equal(0, (await F("verify")).ExitCode);
    }
}
