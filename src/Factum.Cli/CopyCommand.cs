using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Factum.PostgreSql;

namespace Factum.Cli;

/// <summary>
/// <c>factum copy --from STORE --to postgres://…</c>: moves a store's history to PostgreSQL without losing anything —
/// event ids, positions, stream versions, times, correlation, causation and metadata, then each stream's state and
/// metadata — resumable (it goes on from the target's head), and verified at the end by counting and digesting every
/// event on both sides.
/// </summary>
internal static class CopyCommand
{
    public static void Add(Command root, Option<bool> json)
    {
        var from = new Option<string>("--from") { Description = "The store to copy from: sqlite:<path> (or a postgres://… store).", Required = true };
        var to = new Option<string>("--to") { Description = "The PostgreSQL store to copy to: postgres://user:password@host:port/db[?schema=NAME].", Required = true };
        var chunk = new Option<int>("--chunk") { Description = "Events per transaction (default 1,000).", DefaultValueFactory = _ => 1000 };
        var cmd = new Command("copy", "Copy a store's events (ids, positions, versions, times, metadata) and stream states to PostgreSQL, resumably, then verify both sides by count and digest.") { from, to, chunk };
        cmd.SetAction(async (pr, ct) =>
        {
            var output = new Output(Console.Out, pr.GetValue(json));
            using var logging = Cli.CreateLogging(pr);
            try
            {
                var source = StoreConnectionString.Parse(pr.GetValue(from)!);
                var target = StoreConnectionString.Parse(pr.GetValue(to)!);
                if (target.Kind != StoreKind.PostgreSql) throw new CommandNotSupportedException($"'factum copy' copies to a PostgreSQL store; {target} is not one.");
                if (source.Kind == StoreKind.Memory) throw new CommandNotSupportedException("'factum copy' copies from a store that outlives the command; memory: has nothing to copy.");
                var size = pr.GetValue(chunk);
                if (size is < 1 or > 100_000) throw new ArgumentException("--chunk is between 1 and 100,000.");
                await using var src = Backend.Open(new BackendChoice(source, TransportConnectionString.Memory), create: false, logging);
                await using var dst = new PostgresEventStore(new PostgresEventStoreOptions(target) { LoggerFactory = logging });
                return await CopyAsync(src.Store, dst, size, output, ct);
            }
            catch (Exception ex)
            {
                return Cli.Fail(ex);
            }
        });
        root.Subcommands.Add(cmd);
    }

    private static async Task<int> CopyAsync(IEventStore source, PostgresEventStore target, int chunk, Output output, CancellationToken ct)
    {
        var sourceHead = (await source.GetHeadPositionAsync(ct)).Value;
        var start = (await target.GetHeadPositionAsync(ct)).Value;
        var progress = Stopwatch.StartNew();
        long copied = 0, total = 0;
        await foreach (var _ in source.ReadAllAsync(new ReadAllOptions { From = start + 1, To = sourceHead }, ct)) total++;
        if (start > 0)
        {
            // Resuming is only right when the target holds exactly the source's first events: check before writing any.
            var (theirs, theirDigest) = await DigestAsync(target, start, ct);
            var (ours, ourDigest) = await DigestAsync(source, start, ct);
            if (theirs != ours || theirDigest != ourDigest)
            {
                Output.Error($"MISMATCH: the target already holds {theirs:N0} events up to position {start} that are not the source's first events (digest {theirDigest} against {ourDigest}); nothing was copied. Copy into an empty store or schema.");
                return ExitCodes.Failure;
            }
            Console.Error.WriteLine($"resuming after position {start} (the target's head, which holds the source's first {ours:N0} events)");
        }
        var batch = new List<RecordedEvent>(chunk);
        async Task Flush()
        {
            await target.ImportAsync(batch, ct);
            copied += batch.Count;
            batch.Clear();
            var rate = copied / Math.Max(progress.Elapsed.TotalSeconds, 0.001);
            var eta = TimeSpan.FromSeconds((total - copied) / Math.Max(rate, 1));
            Console.Error.Write($"\rcopied {copied:N0} of {total:N0} events ({rate:N0} events/s, ETA {eta:mm\\:ss})   ");
        }
        await foreach (var e in source.ReadAllAsync(new ReadAllOptions { From = start + 1, To = sourceHead }, ct))
        {
            batch.Add(e);
            if (batch.Count == chunk) await Flush();
        }
        if (batch.Count > 0) await Flush();
        if (copied > 0) Console.Error.WriteLine();

        // Then each stream's state and metadata (soft and hard deletes, retention), in pages.
        var states = 0;
        string? after = null;
        do
        {
            var page = await source.ListStreamsAsync(new ListStreamsOptions { IncludeDeleted = true, After = after, PageSize = 500 }, ct);
            await target.ImportStreamStatesAsync(page.Streams, ct);
            states += page.Streams.Count;
            after = page.ContinuationToken;
        }
        while (after is not null);

        // Verify: every event on both sides, by count and a digest of what a copy must keep.
        var (sourceCount, sourceDigest) = await DigestAsync(source, sourceHead, ct);
        var (targetCount, targetDigest) = await DigestAsync(target, sourceHead, ct);
        var same = sourceCount == targetCount && sourceDigest == targetDigest;
        if (output.Json)
        {
            output.JsonLine(w =>
            {
                w.WriteNumber("copied", copied);
                w.WriteNumber("streams", states);
                w.WriteNumber("sourceEvents", sourceCount);
                w.WriteNumber("targetEvents", targetCount);
                w.WriteString("sourceDigest", sourceDigest);
                w.WriteString("targetDigest", targetDigest);
                w.WriteBoolean("verified", same);
            });
        }
        else
        {
            output.Writer.WriteLine($"copied {copied:N0} events (positions {start + 1}..{sourceHead}) and the state of {states:N0} streams");
            output.Writer.WriteLine($"source: {sourceCount:N0} events, digest {sourceDigest}");
            output.Writer.WriteLine($"target: {targetCount:N0} events, digest {targetDigest}");
            output.Writer.WriteLine(same ? "verified: both sides hold the same events" : "MISMATCH: the target does not hold the same events as the source");
        }
        return same ? ExitCodes.Success : ExitCodes.Failure;
    }

    /// <summary>
    /// A digest of the log up to <paramref name="head"/>: each event's position, id, stream, version, type, schema version,
    /// time (to the microsecond, PostgreSQL's precision), correlation, causation, metadata and payload.
    /// </summary>
    internal static async Task<(long Count, string Digest)> DigestAsync(IEventStore store, long head, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long count = 0;
        await foreach (var e in store.ReadAllAsync(new ReadAllOptions { To = head }, ct))
        {
            count++;
            var micros = e.Timestamp.UtcTicks / 10;
            var line = string.Join('\u001f', e.Position.Value.ToString(CultureInfo.InvariantCulture), e.EventId.ToString(), e.StreamId.Value,
                e.StreamVersion.Value.ToString(CultureInfo.InvariantCulture), e.Type, e.SchemaVersion.ToString(CultureInfo.InvariantCulture),
                micros.ToString(CultureInfo.InvariantCulture), e.CorrelationId, e.CausationId ?? "",
                string.Join('\u001e', e.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + kv.Value)));
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(line));
            hash.AppendData(e.Payload.Span);
            hash.AppendData("\n"u8);
        }
        return (count, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }
}
