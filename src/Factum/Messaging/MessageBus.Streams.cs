namespace Factum.Messaging;

public sealed partial class MessageBus
{
    /// <summary>
    /// A stream group member: heartbeats the group, runs one worker per owned partition, and gives partitions up
    /// cooperatively (stop the worker, then release) when the group rebalances.
    /// </summary>
    private async Task StreamMemberLoopAsync(Endpoint e, CancellationToken ct)
    {
        var topic = new TopicName(e.Source.Name);
        var group = new GroupName(e.Source.Group!);
        var workers = new Dictionary<int, (CancellationTokenSource Stop, Task Task)>();
        // Revoked partitions whose worker is finishing its batch: still reported as running (so they are not released
        // under it), while the member keeps heartbeating instead of waiting for them.
        var stopping = new Dictionary<int, (CancellationTokenSource Stop, Task Task)>();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var released = false;
                try
                {
                    foreach (var done in workers.Where(w => w.Value.Task.IsCompleted).Select(w => w.Key).ToList())
                    {
                        workers[done].Stop.Dispose();
                        workers.Remove(done);
                    }
                    foreach (var done in stopping.Where(w => w.Value.Task.IsCompleted).Select(w => w.Key).ToList())
                    {
                        stopping[done].Stop.Dispose();
                        stopping.Remove(done);
                        released = true;
                    }
                    var assignment = await Transport.HeartbeatGroupAsync(topic, group, InstanceId, workers.Keys.Concat(stopping.Keys).ToList(), Options.SessionTimeout, ct).ConfigureAwait(false);
                    var owned = assignment.Owned.Select(o => o.Partition).ToHashSet();
                    foreach (var p in assignment.Revoke.Concat(workers.Keys.Where(p => !owned.Contains(p))).Distinct().ToList())
                    {
                        if (!workers.Remove(p, out var w)) continue;
                        await w.Stop.CancelAsync().ConfigureAwait(false);
                        stopping[p] = w;
                    }
                    foreach (var o in assignment.Owned.Where(o => !workers.ContainsKey(o.Partition) && !stopping.ContainsKey(o.Partition)))
                    {
                        var stop = new CancellationTokenSource();
                        workers[o.Partition] = (stop, Task.Run(() => PartitionLoopAsync(e, topic, group, o, stop.Token, ct), CancellationToken.None));
                    }
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    e.LastError = $"group {group} on {topic}: {ex.GetType().Name}: {ex.Message}";
                    FactumLog.ConsumerError(_log, ex, e.Source.ToString());
                }
                // A partition just given up: heartbeat again at once so that the new owner can take it; while others are
                // still finishing, look again soon.
                if (!released) await DelayQuietly(stopping.Count > 0 ? Options.PollInterval : Options.HeartbeatInterval, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            foreach (var w in workers.Values.Concat(stopping.Values)) await w.Stop.CancelAsync().ConfigureAwait(false);
            foreach (var w in workers.Values.Concat(stopping.Values))
            {
                try { await w.Task.ConfigureAwait(false); }
                catch (OperationCanceledException) { /* stopping */ }
                w.Stop.Dispose();
            }
        }
    }

    /// <summary>
    /// Consumes one partition from the group's committed offset. Records of different keys run in parallel (up to the
    /// endpoint's concurrency), records of one key run in order; the offset is committed after the batch is settled, so
    /// a crash replays at most one batch (deduplicated by the inbox). A revoked partition finishes and commits its
    /// current batch before it stops (<paramref name="revoke"/>), so a rebalance hands over cleanly; stopping the bus
    /// (<paramref name="ct"/>) cancels the handlers and leaves the batch to be redelivered.
    /// </summary>
    private async Task PartitionLoopAsync(Endpoint e, TopicName topic, GroupName group, PartitionOffset start, CancellationToken revoke, CancellationToken ct)
    {
        var offset = start.Offset;
        using var gate = new SemaphoreSlim(e.Options.Concurrency);
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(revoke, ct);
        while (!idle.IsCancellationRequested)
        {
            try
            {
                var records = await Transport.FetchAsync(topic, group, start.Partition, offset, e.Options.BatchSize, idle.Token).ConfigureAwait(false);
                if (records.Count == 0)
                {
                    await Transport.WaitForChangeAsync(Options.PollInterval, idle.Token).ConfigureAwait(false);
                    continue;
                }
                var handled = e.Options.UseInbox ? await Transport.FilterHandledAsync(e.Inbox, records.Select(r => r.Message.Id).ToList(), ct).ConfigureAwait(false) : null;
                var outcomes = new Outcome[records.Count];
                var lanes = records.Select((r, i) => (Record: r, Index: i)).GroupBy(x => x.Record.Message.PartitionKey ?? "", StringComparer.Ordinal);
                await Task.WhenAll(lanes.Select(async lane =>
                {
                    await gate.WaitAsync(ct).ConfigureAwait(false);
                    try
                    {
                        var held = false;
                        foreach (var (r, i) in lane)
                        {
                            outcomes[i] = handled is not null && handled.Contains(r.Message.Id) ? Outcome.Duplicate : await HandleStreamRecordAsync(e, r, held, ct).ConfigureAwait(false);
                            held |= outcomes[i].Kind == SettlementKind.DeadLetter && outcomes[i].HoldKey;
                        }
                    }
                    finally
                    {
                        gate.Release();
                    }
                })).ConfigureAwait(false);
                await SettleAsync(e, records.Select((r, i) => outcomes[i].ToSettlement(e, null, r)).ToList(), outcomes, CancellationToken.None).ConfigureAwait(false);
                offset = records[^1].Offset + 1;
                if (!await Transport.CommitOffsetsAsync(topic, group, InstanceId, [new PartitionOffset(start.Partition, offset)], CancellationToken.None).ConfigureAwait(false))
                    return; // Fenced: the partition belongs to another member now; it resumes from the last committed offset.
            }
            catch (OperationCanceledException) when (idle.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                e.LastError = $"{topic}[{start.Partition}] group {group}: {ex.GetType().Name}: {ex.Message}";
                FactumLog.ConsumerError(_log, ex, $"{topic}[{start.Partition}] group {group}");
                await DelayQuietly(Options.PollInterval * 5, idle.Token).ConfigureAwait(false);
            }
        }
    }

    private async ValueTask<Outcome> HandleStreamRecordAsync(Endpoint e, StreamRecord r, bool heldInBatch, CancellationToken ct)
    {
        if (r.Hold == KeyHold.Replaying && !heldInBatch) return Outcome.DeferIt;
        if (r.Hold == KeyHold.DeadLettered || heldInBatch)
        {
            return new Outcome(SettlementKind.DeadLetter, new FailureInfo("Held", $"held behind an earlier dead letter of partition key '{r.Message.PartitionKey}', so that the key keeps its order", null, 0, Now, Now), [], [], null, false, null) { HoldKey = true };
        }
        var policy = e.Options.Retry;
        DateTimeOffset? first = null;
        for (var delivery = 1; ; delivery++)
        {
            var result = await RunHandlersAsync(e, r.Message, delivery, e.SourceFor(r), first, ct).ConfigureAwait(false);
            if (result.Kind != SettlementKind.Retry) return result;
            first ??= result.Failure!.FirstFailure;
            if (delivery > policy.DelayedRetries) return Outcome.Dead(result.Failure!, e, r.Message, this);
            // Streams keep order per key, so the retry waits here instead of letting later records of the key pass.
            Metrics.Retried.Add(1, new("type", r.Message.Type), new("source", e.Source.Name), new("group", e.Source.Group));
            await Task.Delay(policy.DelayBefore(delivery, Random.Shared), Options.TimeProvider, ct).ConfigureAwait(false);
        }
    }
}
