using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Factum.Messaging;

namespace Factum.Cli;

/// <summary>
/// `factum topics|queues|groups|dlq|publish|send|relay`: the chosen transport from the command line. They need a transport
/// whose messages outlive the command (the sqlite one): on memory: there is nothing another command could see.
/// </summary>
internal static class MessagingCommands
{
    public static void Add(Command root, BackendOptions data, Option<bool> json)
    {
        Task<int> Run(ParseResult pr, Func<IMessageTransport, Output, Task<int>> body, bool create = false) =>
            Cli.RunOn(pr, data, json, Needs.LastingTransport, async (backend, output) =>
            {
                await using var transport = backend.OpenTransport();
                return await body(transport, output);
            }, create);

        // topics
        {
            var cmd = new Command("topics", "Topics: partitions, retention, pub/sub subscriptions, records per partition.");
            data.AddTo(cmd);
            cmd.SetAction((pr, ct) => Run(pr, async (t, output) =>
            {
                var s = await t.GetStatusAsync(ct);
                if (output.Json)
                {
                    foreach (var topic in s.Topics)
                        output.JsonLine(w =>
                        {
                            w.WriteString("topic", topic.Name);
                            w.WriteNumber("partitions", topic.Options.Partitions);
                            WriteRetention(w, topic.Options);
                            w.WriteStartArray("subscriptions");
                            foreach (var g in topic.Subscriptions) w.WriteStringValue(g);
                            w.WriteEndArray();
                            w.WriteStartArray("partitionOffsets");
                            foreach (var p in topic.Partitions)
                            {
                                w.WriteStartObject();
                                w.WriteNumber("partition", p.Partition);
                                w.WriteNumber("start", p.StartOffset);
                                w.WriteNumber("end", p.EndOffset);
                                w.WriteEndObject();
                            }
                            w.WriteEndArray();
                        });
                }
                else
                {
                    output.Table(["TOPIC", "PARTITIONS", "RECORDS", "RETENTION", "SUBSCRIPTIONS"], s.Topics.Select(topic => new[]
                    {
                        topic.Name, topic.Options.Partitions == 0 ? "- (pub/sub)" : Output.Inv(topic.Options.Partitions),
                        topic.Options.Partitions == 0 ? "-" : Output.Inv(topic.Partitions.Sum(p => p.EndOffset - p.StartOffset)),
                        Retention(topic.Options), string.Join(",", topic.Subscriptions),
                    }));
                }
                return ExitCodes.Success;
            }));
            root.Subcommands.Add(cmd);
        }

        // queues
        {
            var all = new Option<bool>("--all") { Description = "Include reply queues." };
            var cmd = new Command("queues", "Queues (pub/sub subscription queues topic@group included): ready, in flight, delayed, live consumers, oldest ready message.") { all };
            data.AddTo(cmd);
            cmd.SetAction((pr, ct) => Run(pr, async (t, output) =>
            {
                var queues = (await t.GetStatusAsync(ct)).Queues.Where(q => pr.GetValue(all) || !q.Name.StartsWith('$')).ToList();
                if (output.Json)
                {
                    foreach (var q in queues)
                        output.JsonLine(w =>
                        {
                            w.WriteString("queue", q.Name);
                            w.WriteNumber("ready", q.Ready);
                            w.WriteNumber("inFlight", q.InFlight);
                            w.WriteNumber("delayed", q.Delayed);
                            w.WriteStartArray("consumers");
                            foreach (var c in q.Consumers) w.WriteStringValue(c);
                            w.WriteEndArray();
                            if (q.OldestReady is { } o) w.WriteString("oldestReady", Output.Iso(o)); else w.WriteNull("oldestReady");
                        });
                }
                else
                {
                    output.Table(["QUEUE", "READY", "IN-FLIGHT", "DELAYED", "CONSUMERS", "OLDEST READY"], queues.Select(q => new[]
                    {
                        q.Name, Output.Inv(q.Ready), Output.Inv(q.InFlight), Output.Inv(q.Delayed), Output.Inv(q.Consumers.Count), q.OldestReady is { } o ? Output.Iso(o) : "-",
                    }));
                }
                return ExitCodes.Success;
            }));
            root.Subcommands.Add(cmd);
        }

        // groups
        {
            var groups = new Command("groups", "Stream consumer groups: members, partition owners, committed offsets, lag; reset offsets.");
            var list = new Command("list", "Every group's partitions: owner, committed offset, end offset and lag.");
            data.AddTo(list);
            list.SetAction((pr, ct) => Run(pr, async (t, output) =>
            {
                var s = await t.GetStatusAsync(ct);
                if (output.Json)
                {
                    foreach (var g in s.Groups)
                        output.JsonLine(w =>
                        {
                            w.WriteString("topic", g.Topic);
                            w.WriteString("group", g.Group);
                            w.WriteNumber("lag", g.Lag);
                            w.WriteStartArray("members");
                            foreach (var m in g.Members)
                            {
                                w.WriteStartObject();
                                w.WriteString("member", m.Member);
                                w.WriteString("lastSeen", Output.Iso(m.LastSeen));
                                w.WriteStartArray("partitions");
                                foreach (var p in m.Partitions) w.WriteNumberValue(p);
                                w.WriteEndArray();
                                w.WriteEndObject();
                            }
                            w.WriteEndArray();
                            w.WriteStartArray("partitions");
                            foreach (var p in g.Partitions)
                            {
                                w.WriteStartObject();
                                w.WriteNumber("partition", p.Partition);
                                if (p.Owner is null) w.WriteNull("owner"); else w.WriteString("owner", p.Owner);
                                w.WriteNumber("committed", p.Committed);
                                w.WriteNumber("end", p.End);
                                w.WriteNumber("lag", p.Lag);
                                w.WriteEndObject();
                            }
                            w.WriteEndArray();
                        });
                }
                else
                {
                    output.Table(["TOPIC", "GROUP", "PARTITION", "OWNER", "COMMITTED", "END", "LAG"], s.Groups.SelectMany(g => g.Partitions.Select(p => new[]
                    {
                        g.Topic, g.Group, Output.Inv(p.Partition), p.Owner ?? "-", Output.Inv(p.Committed), Output.Inv(p.End), Output.Inv(p.Lag),
                    })));
                    var members = s.Groups.SelectMany(g => g.Members.Select(m => new[] { g.Topic, g.Group, m.Member, Output.Iso(m.LastSeen), string.Join(",", m.Partitions) })).ToList();
                    if (members.Count > 0)
                    {
                        output.Writer.WriteLine();
                        output.Table(["TOPIC", "GROUP", "MEMBER", "LAST SEEN", "PARTITIONS"], members);
                    }
                }
                return ExitCodes.Success;
            }));
            groups.Subcommands.Add(list);

            var topic = new Argument<string>("topic") { Description = "The stream topic." };
            var group = new Argument<string>("group") { Description = "The consumer group." };
            var to = new Option<string>("--to") { Description = "start | end | offset:N | time:ISO-8601 (e.g. time:2026-11-27T10:00:00Z).", Required = true };
            var reset = new Command("reset", "Move a group's offsets so that it replays (the group must have no live member).") { topic, group, to };
            data.AddTo(reset);
            reset.SetAction((pr, ct) => Run(pr, async (t, output) =>
            {
                var target = ParseReset(pr.GetValue(to)!);
                await t.ResetGroupAsync(new TopicName(pr.GetValue(topic)!), new GroupName(pr.GetValue(group)!), target, ct);
                output.Writer.WriteLine($"group {pr.GetValue(group)} on {pr.GetValue(topic)} reset to {target}");
                return ExitCodes.Success;
            }));
            groups.Subcommands.Add(reset);
            root.Subcommands.Add(groups);
        }

        // dlq
        {
            var dlq = new Command("dlq", "The dead-letter queue: list, show, replay and discard failed messages.");
            Option<string?> Opt(string name, string description) => new(name) { Description = description };
            var source = Opt("--source", "Only from this queue or topic.");
            var group = Opt("--group", "Only from this consumer group.");
            var type = Opt("--type", "Only this message type.");
            var exception = Opt("--exception", "Only this exception type (full or simple name).");
            var since = Opt("--since", "Dead-lettered at or after (ISO 8601, or a duration such as 1h meaning 'in the last hour').");
            var until = Opt("--until", "Dead-lettered before (ISO 8601).");
            var limit = new Option<int?>("--limit") { Description = "At most this many, oldest first." };
            var ids = new Argument<long[]>("id") { Description = "Dead letter ids.", Arity = ArgumentArity.ZeroOrMore };
            var all = new Option<bool>("--all") { Description = "Every dead letter (required when no id or filter is given)." };
            var inStore = new Option<bool>("--message-store") { Description = "The dead letters of Durable endpoints, kept in the message store (default: the transport's dead-letter queue)." };

            // The dead letters a command works on: the transport's queue, or the message store's (durable endpoints).
            // The message store's letters need only the store; the transport's need a transport that outlives the command.
            Task<int> RunLetters(ParseResult pr, Func<DeadLetters, Output, Task<int>> body) =>
                Cli.RunOn(pr, data, json, pr.GetValue(inStore) ? Needs.Store : Needs.LastingTransport, async (backend, output) =>
                {
                    if (pr.GetValue(inStore)) return await body(DeadLetters.Of(backend.MessageStore), output);
                    await using var transport = backend.OpenTransport();
                    return await body(DeadLetters.Of(transport), output);
                });

            DeadLetterFilter Filter(ParseResult pr, bool requireSelection)
            {
                var f = new DeadLetterFilter
                {
                    Ids = pr.GetValue(ids) is { Length: > 0 } x ? x : null,
                    Source = pr.GetValue(source),
                    Group = pr.GetValue(group),
                    Type = pr.GetValue(type),
                    ExceptionType = pr.GetValue(exception),
                    From = pr.GetValue(since) is { } s ? ParseSince(s) : null,
                    To = pr.GetValue(until) is { } u ? DateTimeOffset.Parse(u, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal) : null,
                    Limit = pr.GetValue(limit),
                };
                if (requireSelection && f == new DeadLetterFilter { Limit = f.Limit } && !pr.GetValue(all))
                    throw new ArgumentException("Say which dead letters: give ids, a filter (--source, --group, --type, --exception, --since, --until) or --all.");
                return f;
            }

            var list = new Command("list", "Dead letters, oldest first.") { source, group, type, exception, since, until, limit, inStore };
            data.AddTo(list);
            list.SetAction((pr, ct) => RunLetters(pr, async (t, output) =>
            {
                var rows = new List<DeadLetter>();
                await foreach (var d in t.List(Filter(pr, false), ct)) rows.Add(d);
                if (output.Json) foreach (var d in rows) output.JsonLine(w => WriteDeadLetter(w, d, full: false));
                else
                    output.Table(["ID", "SOURCE", "GROUP", "TYPE", "EXCEPTION", "ATTEMPTS", "REPLAYED", "DEAD-LETTERED", "BEHIND", "ERROR"], rows.Select(d => new[]
                    {
                        Output.Inv(d.Id), d.Source.Name, d.Source.Group ?? "-", d.Message.Type, ShortType(d.Failure.ExceptionType), Output.Inv(d.Failure.Attempts), Output.Inv(d.ReplayCount),
                        d.DeadLetteredAt.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture), d.HeldBehind is { } h ? Output.Inv(h) : "-", OneLine(d.Failure.Message),
                    }));
                return ExitCodes.Success;
            }));
            dlq.Subcommands.Add(list);

            var id = new Argument<long>("id") { Description = "The dead letter's id." };
            var show = new Command("show", "One dead letter in full: the original message (headers and body) and the failure with its stack trace.") { id, inStore };
            data.AddTo(show);
            show.SetAction((pr, ct) => RunLetters(pr, async (t, output) =>
            {
                DeadLetter? found = null;
                await foreach (var d in t.List(new DeadLetterFilter { Ids = [pr.GetValue(id)] }, ct)) found = d;
                if (found is null)
                {
                    Output.Error($"there is no dead letter {pr.GetValue(id)} (it may have been replayed or discarded); 'factum dlq list' shows what is there.");
                    return ExitCodes.StreamNotFound;
                }
                if (output.Json) output.JsonLine(w => WriteDeadLetter(w, found, full: true));
                else
                {
                    var m = found.Message;
                    var wr = output.Writer;
                    wr.WriteLine($"dead letter   {found.Id}");
                    wr.WriteLine($"source        {found.Source}");
                    wr.WriteLine($"message id    {m.Id}");
                    wr.WriteLine($"type          {m.Type} v{m.SchemaVersion}");
                    wr.WriteLine($"created       {Output.Iso(m.Timestamp)}");
                    wr.WriteLine($"correlation   {m.CorrelationId}");
                    wr.WriteLine($"causation     {m.CausationId ?? "-"}");
                    wr.WriteLine($"partition key {m.PartitionKey ?? "-"}");
                    wr.WriteLine($"replayed      {found.ReplayCount} time(s)");
                    if (found.HeldBehind is { } h) wr.WriteLine($"held behind   {h}");
                    foreach (var (k, v) in m.Headers) wr.WriteLine($"header        {k}: {v}");
                    wr.WriteLine($"body          {Output.DataText(m.Body)}");
                    wr.WriteLine($"exception     {found.Failure.ExceptionType}: {found.Failure.Message}");
                    wr.WriteLine($"attempts      {found.Failure.Attempts}; first failure {Output.Iso(found.Failure.FirstFailure)}, last {Output.Iso(found.Failure.LastFailure)}");
                    wr.WriteLine($"dead-lettered {Output.Iso(found.DeadLetteredAt)}");
                    if (found.Failure.StackTrace is { } st) wr.WriteLine("stack trace:" + Environment.NewLine + st);
                }
                return ExitCodes.Success;
            }));
            dlq.Subcommands.Add(show);

            // replay and discard select the same way and report a count.
            void Bulk(string name, string description, string verb, Func<DeadLetters, DeadLetterFilter, CancellationToken, ValueTask<int>> act)
            {
                var cmd = new Command(name, description) { ids, source, group, type, exception, since, until, limit, all, inStore };
                data.AddTo(cmd);
                cmd.SetAction((pr, ct) => RunLetters(pr, async (t, output) =>
                {
                    var n = await act(t, Filter(pr, true), ct);
                    if (output.Json) output.JsonLine(w => w.WriteNumber(verb, n));
                    else output.Writer.WriteLine($"{verb} {n} dead letter(s)");
                    return ExitCodes.Success;
                }));
                dlq.Subcommands.Add(cmd);
            }

            Bulk("replay", "Send dead letters back to where they came from (their own queue, or the group's queue for subscriptions and streams), in order; a failing one comes back.", "replayed",
                (t, f, ct) => t.Replay(f, ct));
            Bulk("discard", "Delete dead letters for good.", "discarded", (t, f, ct) => t.Discard(f, ct));
            root.Subcommands.Add(dlq);
        }

        // publish / send
        {
            var type = new Option<string>("--type", "-t") { Description = "The message type, e.g. OrderPlaced.", Required = true };
            var body = new Option<string>("--body", "-b") { Description = "The message body as JSON.", Required = true };
            var key = new Option<string?>("--key", "-k") { Description = "The partition key (ordering key)." };
            var correlation = new Option<string?>("--correlation-id") { Description = "The correlation id (default: the message id)." };
            var version = new Option<int>("--schema-version") { Description = "The body's schema version (default 1).", DefaultValueFactory = _ => 1 };
            var header = new Option<string[]>("--header", "-H") { Description = "A header as NAME=VALUE (repeatable).", AllowMultipleArgumentsPerToken = false };

            TransportMessage Build(ParseResult pr)
            {
                var raw = pr.GetValue(body)!;
                JsonText.ValidateText(raw, "--body");
                var bytes = Encoding.UTF8.GetBytes(raw);
                JsonText.Validate(bytes, "--body");
                if (pr.GetValue(version) < 1) throw new ArgumentException("--schema-version is 1 or more.");
                var headers = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var h in pr.GetValue(header) ?? [])
                {
                    var eq = h.IndexOf('=', StringComparison.Ordinal);
                    if (eq <= 0) throw new ArgumentException($"--header takes NAME=VALUE; got '{h}'.");
                    JsonText.ValidateText(h, "--header");
                    headers[h[..eq]] = h[(eq + 1)..];
                }
                var id = MessageId.New();
                EventTypeName.Validate(pr.GetValue(type)!);
                return new TransportMessage
                {
                    Id = id,
                    Type = pr.GetValue(type)!,
                    SchemaVersion = pr.GetValue(version),
                    Timestamp = DateTimeOffset.UtcNow,
                    CorrelationId = EventData.ValidateId(pr.GetValue(correlation), "correlation id") ?? id.ToString(),
                    PartitionKey = pr.GetValue(key),
                    Headers = headers,
                    Body = bytes,
                };
            }

            var topic = new Option<string?>("--topic") { Description = "The topic (default: the type name)." };
            var publish = new Command("publish", "Publish a message to a topic: every subscription gets a copy; a stream topic appends it to its key's partition.") { type, body, key, correlation, version, header, topic };
            data.AddTo(publish);
            publish.SetAction((pr, ct) => Run(pr, async (t, output) =>
            {
                var m = Build(pr);
                var name = new TopicName(pr.GetValue(topic) ?? m.Type);
                var receipt = await t.PublishAsync(name, [m], ct);
                if (output.Json)
                    output.JsonLine(w =>
                    {
                        w.WriteString("messageId", m.Id.ToString());
                        w.WriteString("topic", name.Value);
                        w.WriteNumber("subscriptions", receipt.Subscriptions);
                        if (receipt.Offsets.Count > 0) { w.WriteNumber("partition", receipt.Offsets[0].Partition); w.WriteNumber("offset", receipt.Offsets[0].Offset); }
                    });
                else
                    output.Writer.WriteLine($"published {m.Id} to {name}: {receipt.Subscriptions} subscription(s)" + (receipt.Offsets.Count > 0 ? $", partition {receipt.Offsets[0].Partition} offset {receipt.Offsets[0].Offset}" : ""));
                return ExitCodes.Success;
            }, create: true));
            root.Subcommands.Add(publish);

            var queue = new Option<string?>("--queue", "-q") { Description = "The queue (default: the type name)." };
            var delay = new Option<string?>("--delay") { Description = "Deliver after this long (e.g. 30s, 5m)." };
            var at = new Option<string?>("--deliver-at") { Description = "Deliver at this time (ISO 8601)." };
            var send = new Command("send", "Send a message to a queue, where exactly one consumer handles it.") { type, body, key, correlation, version, header, queue, delay, at };
            data.AddTo(send);
            send.SetAction((pr, ct) => Run(pr, async (t, output) =>
            {
                var m = Build(pr);
                var name = pr.GetValue(queue) is { } q ? QueueName.Parse(q) : new QueueName(m.Type);
                if (pr.GetValue(delay) is not null && pr.GetValue(at) is not null) throw new ArgumentException("Use either --delay or --deliver-at, not both.");
                DateTimeOffset? deliverAt = pr.GetValue(delay) is { } d ? Durations.After(DateTimeOffset.UtcNow, Durations.Parse(d, "--delay"))
                    : pr.GetValue(at) is { } a ? Durations.ParseTime(a, "--deliver-at") : null;
                await t.SendAsync(name, [m], deliverAt, ct);
                if (output.Json) output.JsonLine(w => { w.WriteString("messageId", m.Id.ToString()); w.WriteString("queue", name.Value); });
                else output.Writer.WriteLine($"sent {m.Id} to {name}" + (deliverAt is { } x ? $", visible at {Output.Iso(x)}" : ""));
                return ExitCodes.Success;
            }, create: true));
            root.Subcommands.Add(send);
        }

        // relay
        {
            var once = new Option<bool>("--once") { Description = "Publish what is there and exit (default: keep relaying until stopped)." };
            var name = new Option<string>("--name") { Description = "The relay's name, which is the name of its checkpoint (default outbox, the same as OutboxRelayOptions.Name; the demo's relay, which publishes only the demo's events, is demo-outbox).", DefaultValueFactory = _ => "outbox" };
            var lease = new Option<string>("--lease") { Description = "How long the relay's lease lasts without renewal (default 10s): one relay of a name runs across all processes sharing the store, and a standby takes over within about this long after the owner dies.", DefaultValueFactory = _ => "10s" };
            var cmd = new Command("relay", "The outbox relay: publish every event appended to the store to the topic named after its type (at least once; resumes from its checkpoint). One relay of a name runs at a time; others started on the same store stand by and take over.") { once, name, lease };
            data.AddTo(cmd);
            cmd.SetAction((pr, ct) => Cli.RunOn(pr, data, json, Needs.LastingTransport, async (backend, output) =>
            {
                var store = backend.Store;
                await using var transport = backend.OpenTransport();
                var relayName = pr.GetValue(name)!;
                var checkpoints = backend.RelayCheckpoints(transport);
                // Say which checkpoint is used and where it starts: a relay under a new name publishes the whole log again.
                var from = await checkpoints.LoadAsync(relayName, ct);
                var start = from is { } f0
                    ? $"relay '{relayName}' resumes after position {f0} (its checkpoint)"
                    : $"relay '{relayName}' has no checkpoint yet: it publishes the whole log from position 1 (consumers' inboxes drop events another relay already published)";
                var leaseDuration = Durations.ParseLease(pr.GetValue(lease)!);
                var leases = backend.Leases;
                var relay = new OutboxRelay(store, transport, checkpoints, new OutboxRelayOptions
                {
                    Name = relayName,
                    LoggerFactory = backend.Logging,
                    Leases = leases,
                    Lease = new Factum.Coordination.LeaseOptions { Duration = leaseDuration },
                });
                if (pr.GetValue(once))
                {
                    // A relay that died keeps its lease until it lapses: wait that long before saying another one runs.
                    var deadline = DateTimeOffset.UtcNow + leaseDuration + TimeSpan.FromSeconds(1);
                    long n;
                    while (true)
                    {
                        try
                        {
                            n = await relay.CatchUpAsync(ct);
                            break;
                        }
                        catch (Factum.Coordination.LeaseHeldException) when (DateTimeOffset.UtcNow < deadline)
                        {
                            await Task.Delay(TimeSpan.FromMilliseconds(100), ct);
                        }
                    }
                    if (output.Json) output.JsonLine(w => { w.WriteString("relay", relayName); if (from is { } f1) w.WriteNumber("from", f1); else w.WriteNull("from"); w.WriteNumber("published", n); w.WriteNumber("position", relay.Position); });
                    else
                    {
                        output.Writer.WriteLine(start);
                        output.Writer.WriteLine($"relayed {n} event(s); checkpoint '{relayName}' at position {relay.Position}");
                    }
                    return ExitCodes.Success;
                }
                // Said as it happens: whether this process relays or stands by behind another relay of this name.
                var said = new Lock();
                relay.OwnershipChanged += owner =>
                {
                    if (!owner && ct.IsCancellationRequested) return; // stopping: said below
                    lock (said)
                    {
                        output.Writer.WriteLine(owner
                            ? $"relaying from position {relay.Position}; Ctrl+C to stop"
                            : $"stopped relaying at position {relay.Position}: the lease was lost (another process took over); standing by");
                        output.Writer.Flush();
                    }
                };
                output.Writer.WriteLine(start);
                await output.Writer.FlushAsync(ct);
                await relay.StartAsync(ct);
                await Task.Delay(TimeSpan.FromMilliseconds(200), ct).ConfigureAwait(false);
                if (!relay.IsOwner)
                {
                    var holder = (await leases.ListAsync(ct)).FirstOrDefault(l => l.Name == relay.LeaseName)?.Owner;
                    lock (said)
                    {
                        if (!relay.IsOwner)
                        {
                            output.Writer.WriteLine($"standing by: relay '{relayName}' runs in another process ({holder ?? "starting"}); this one takes over within {Durations.Format(leaseDuration)} of its end");
                            output.Writer.Flush();
                        }
                    }
                }
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                    // Ctrl+C.
                }
                await relay.StopAsync();
                output.Writer.WriteLine($"stopped at position {relay.Position} ({relay.Published} published)");
                return ExitCodes.Success;
            }));
            root.Subcommands.Add(cmd);
        }
    }

    private static GroupReset ParseReset(string to)
    {
        if (to == "start") return GroupReset.ToStart;
        if (to == "end") return GroupReset.ToEnd;
        if (to.StartsWith("offset:", StringComparison.Ordinal) && long.TryParse(to[7..], NumberStyles.None, CultureInfo.InvariantCulture, out var o)) return GroupReset.ToOffset(o);
        if (to.StartsWith("time:", StringComparison.Ordinal) && DateTimeOffset.TryParse(to[5..], CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)) return GroupReset.ToTime(t);
        throw new ArgumentException($"--to '{to}' is not start, end, offset:N or time:ISO-8601.");
    }

    private static DateTimeOffset ParseSince(string text) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : Durations.Before(DateTimeOffset.UtcNow, Durations.Parse(text, "--since"));

    /// <summary>An exception's type without its namespace (the table's width is for the message); --json and dlq show give the full name.</summary>
    private static string ShortType(string fullName) => fullName[(fullName.LastIndexOfAny(['.', '+']) + 1)..];

    private static string Retention(TopicOptions o)
    {
        var parts = new List<string>();
        if (o.MaxAge is { } a) parts.Add($"age {Durations.Format(a)}");
        if (o.MaxBytes is { } b) parts.Add($"{b} bytes");
        if (o.MaxCount is { } c) parts.Add($"{c} records");
        return parts.Count == 0 ? "-" : string.Join(", ", parts);
    }

    private static void WriteRetention(Utf8JsonWriter w, TopicOptions o)
    {
        if (o.MaxAge is { } a) w.WriteNumber("maxAgeSeconds", (long)a.TotalSeconds);
        if (o.MaxBytes is { } b) w.WriteNumber("maxBytes", b);
        if (o.MaxCount is { } c) w.WriteNumber("maxCount", c);
    }

    private static string OneLine(string s)
    {
        var line = s.ReplaceLineEndings(" ");
        return line.Length > 80 ? line[..77] + "..." : line;
    }

    private static void WriteDeadLetter(Utf8JsonWriter w, DeadLetter d, bool full)
    {
        var m = d.Message;
        w.WriteNumber("id", d.Id);
        w.WriteString("sourceKind", d.Source.Kind.ToString());
        w.WriteString("source", d.Source.Name);
        if (d.Source.Group is { } g) w.WriteString("group", g); else w.WriteNull("group");
        if (d.Source.Partition is { } p) w.WriteNumber("partition", p);
        if (d.Source.Offset is { } o) w.WriteNumber("offset", o);
        w.WriteString("messageId", m.Id.ToString());
        w.WriteString("type", m.Type);
        w.WriteNumber("schemaVersion", m.SchemaVersion);
        w.WriteString("correlationId", m.CorrelationId);
        if (m.CausationId is { } c) w.WriteString("causationId", c); else w.WriteNull("causationId");
        if (m.PartitionKey is { } k) w.WriteString("partitionKey", k); else w.WriteNull("partitionKey");
        w.WriteString("exceptionType", d.Failure.ExceptionType);
        w.WriteString("error", d.Failure.Message);
        w.WriteNumber("attempts", d.Failure.Attempts);
        w.WriteString("firstFailure", Output.Iso(d.Failure.FirstFailure));
        w.WriteString("lastFailure", Output.Iso(d.Failure.LastFailure));
        w.WriteString("deadLetteredAt", Output.Iso(d.DeadLetteredAt));
        w.WriteNumber("replayCount", d.ReplayCount);
        if (d.HeldBehind is { } h) w.WriteNumber("heldBehind", h); else w.WriteNull("heldBehind");
        if (!full) return;
        if (d.Failure.StackTrace is { } st) w.WriteString("stackTrace", st);
        w.WriteString("timestamp", Output.Iso(m.Timestamp));
        if (m.ReplyTo is { } r) w.WriteString("replyTo", r);
        w.WriteStartObject("headers");
        foreach (var (hk, hv) in m.Headers) w.WriteString(hk, hv);
        w.WriteEndObject();
        Output.WriteData(w, m.Body);
    }
}

/// <summary>Where `factum dlq` finds dead letters: the transport's dead-letter queue or the message store's.</summary>
internal sealed record DeadLetters(
    Func<DeadLetterFilter, CancellationToken, IAsyncEnumerable<DeadLetter>> List,
    Func<DeadLetterFilter, CancellationToken, ValueTask<int>> Replay,
    Func<DeadLetterFilter, CancellationToken, ValueTask<int>> Discard)
{
    public static DeadLetters Of(IMessageTransport t) => new(t.ListDeadLettersAsync, t.ReplayDeadLettersAsync, t.DiscardDeadLettersAsync);

    public static DeadLetters Of(IMessageStore s) => new(s.ListDeadLettersAsync, s.ReplayDeadLettersAsync, s.DiscardDeadLettersAsync);
}
