using CsCheck;
using Factum.Sqlite;
using Microsoft.Data.Sqlite;
using Xunit.Abstractions;

namespace Factum.Fuzz.Tests;

/// <summary>
/// Stored rows as a damaged disk or a stray tool leaves them, and the invariants over accepted operations.
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class StoredRows(ITestOutputHelper output) : IDisposable
{
    private static readonly string[] Columns = ["type", "correlation_id", "causation_id", "metadata", "payload", "event_id", "created_at", "schema_version", "stream_version", "checksum", "position"];
    private readonly string _dir = Directory.CreateTempSubdirectory("factum-fuzz-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static List<RecordedEvent> ReadAll(IEventReader store) => store.ReadAllAsync().ToBlockingEnumerable().ToList();

    // One column of one row changed to a mutation of its own bytes (or NULL, or a random number): every read returns
    // either the original event or an EventCorruptedException for that position — never altered data — and verify
    // names the problem whenever the stored value really changed.
    [Fact]
    public void Fuzz_stored_row()
    {
        var pristine = Path.Combine(_dir, "pristine.db");
        List<RecordedEvent> originals;
        using (var store = new SqliteEventStore(pristine))
        {
            for (var i = 0; i < 40; i++)
            {
                var e = EventData.FromJson(i % 3 == 0 ? "OrderPlaced" : "OrderPaid", $$"""{"n":{{i}},"s":"caf\u00e9 {{new string('x', i)}}"}""") with
                {
                    Metadata = i % 2 == 0 ? new Dictionary<string, string> { ["user"] = $"u{i}", ["tenant"] = "t" } : new Dictionary<string, string>(),
                    CausationId = i % 4 == 0 ? $"cause-{i}" : null,
                    CorrelationId = i % 5 == 0 ? $"corr-{i}" : null,
                };
                store.AppendAsync(StreamId.Parse($"Order-{i % 7}"), ExpectedVersion.Any, [e]).GetAwaiter().GetResult();
            }
            originals = ReadAll(store);
        }
        SqliteConnection.ClearAllPools();
        var work = Path.Combine(_dir, "work.db");
        var corpus = originals.Select(o => o.Payload.ToArray()).Concat([[0xFF, 0x00], "{}"u8.ToArray()]).ToArray();
        var iteration = 0;
        output.WriteLine(Fuzzer.Run("stored-row", corpus, mutation =>
        {
            var n = iteration++;
            File.Copy(pristine, work, overwrite: true);
            var column = Columns[n % Columns.Length];
            var position = 1 + (n * 7 % originals.Count);
            bool changed;
            using (var c = new SqliteConnection($"Data Source={work};Pooling=False"))
            {
                c.Open();
                using var read = c.CreateCommand();
                read.CommandText = $"SELECT {column} FROM events WHERE position = {position}";
                var before = read.ExecuteScalar();
                object value = column is "created_at" or "schema_version" or "stream_version" or "checksum" or "position"
                    ? (mutation.Length == 0 ? DBNull.Value : BitConverter.ToInt64([.. mutation.Take(8), .. new byte[8]]))
                    : mutation.Length == 0 && column is "causation_id" or "metadata" ? DBNull.Value
                    : column is "type" or "correlation_id" or "causation_id" ? (object)System.Text.Encoding.UTF8.GetString(mutation) : mutation;
                using var update = c.CreateCommand();
                update.CommandText = $"UPDATE events SET {column} = $v WHERE position = {position}";
                update.Parameters.AddWithValue("$v", value);
                try { update.ExecuteNonQuery(); }
                catch (SqliteException) { return "update refused (constraint)"; }
                changed = !Equals(Normalize(before), Normalize(value));
            }
            var report = SqliteStoreVerifier.Verify(work);
            if (changed && report.IsHealthy) throw new InvalidOperationException($"verify missed a changed {column} at position {position}");
            if (!changed && !report.IsHealthy) throw new InvalidOperationException($"verify flagged an unchanged store: {report.Problems[0]}");
            using var store = new SqliteEventStore(work);
            var got = new List<RecordedEvent>();
            try
            {
                foreach (var e in store.ReadAllAsync().ToBlockingEnumerable()) got.Add(e);
            }
            catch (EventCorruptedException) { }
            foreach (var e in got)
            {
                var o = originals.Single(x => x.EventId == e.EventId || x.Position == e.Position);
                if (!Same(o, e)) throw new InvalidOperationException($"a read returned altered data for position {e.Position} after changing {column} at {position}");
            }
            if (!changed && got.Count != originals.Count) throw new InvalidOperationException("an unchanged store did not read back whole");
            return $"{column}:{(changed ? "changed" : "same")}:{(got.Count == originals.Count ? "whole" : "stopped")}";
        }, iterations: 250).ToString());

        static object? Normalize(object? v) => v switch
        {
            DBNull or null => null,
            byte[] b => Convert.ToBase64String(b),
            string s => Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(s)),
            _ => v,
        };
    }

    private static bool Same(RecordedEvent a, RecordedEvent b) =>
        a.EventId == b.EventId && a.Position == b.Position && a.StreamId == b.StreamId && a.StreamVersion == b.StreamVersion && a.Type == b.Type
        && a.SchemaVersion == b.SchemaVersion && a.Timestamp == b.Timestamp && a.CorrelationId == b.CorrelationId && a.CausationId == b.CausationId
        && a.Payload.Span.SequenceEqual(b.Payload.Span) && a.Metadata.Count == b.Metadata.Count
        && a.Metadata.All(kv => b.Metadata.TryGetValue(kv.Key, out var v) && v == kv.Value);

    private static readonly Gen<string> Text = Gen.String[Gen.Char.Where(c => !char.IsSurrogate(c)), 0, 40];

    private static readonly Gen<EventData> Events =
        Gen.Select(Gen.Byte.Array[0, 300], Gen.Dictionary(Gen.String[Gen.Char.AlphaNumeric, 1, 10], Text)[0, 4], Gen.Int[1, 5],
            Gen.String[Gen.Char.AlphaNumeric, 1, 30].Null(0.5), Gen.Int[0, 2])
        .Select((payload, metadata, version, correlation, typeIndex) => new EventData(new[] { "OrderPlaced", "OrderPaid", "OrderShipped" }[typeIndex], payload)
        {
            Metadata = metadata,
            SchemaVersion = version,
            CorrelationId = correlation,
        });

    // Any accepted append reads back byte for byte (payload, metadata, ids) — through the store and after reopening.
    [Fact]
    public void Any_accepted_append_is_readable_back_byte_for_byte()
    {
        var db = Path.Combine(_dir, "roundtrip.db");
        using var store = new SqliteEventStore(db);
        var n = 0;
        Gen.Select(Events.List[1, 5], Gen.Int[0, 9]).Sample((events, stream) =>
        {
            // CsCheck samples on several threads: each sample gets its own stream.
            var id = StreamId.Parse($"Order-{Interlocked.Increment(ref n)}-{stream}");
            var r = store.AppendAsync(id, ExpectedVersion.NoStream, events).GetAwaiter().GetResult();
            var back = store.ReadStreamAsync(id).ToBlockingEnumerable().ToList();
            if (back.Count != events.Count) return false;
            for (var i = 0; i < events.Count; i++)
            {
                var (e, b) = (events[i], back[i]);
                if (!b.Payload.Span.SequenceEqual(e.Payload.Span) || b.EventId != e.EventId || b.Type != e.Type || b.SchemaVersion != e.SchemaVersion) return false;
                if (b.Metadata.Count != e.Metadata.Count || e.Metadata.Any(kv => !b.Metadata.TryGetValue(kv.Key, out var v) || v != kv.Value)) return false;
                if (e.CorrelationId is not null && b.CorrelationId != e.CorrelationId) return false;
            }
            return r.Written;
        }, iter: Fuzzer.Seconds > 0 ? 100_000 : 300, time: Fuzzer.Seconds > 0 ? Fuzzer.Seconds : -1, seed: Fuzzer.Seconds > 0 ? null : "0N0XIzNsQ0O2");
        Assert.True(SqliteStoreVerifier.Verify(db).IsHealthy);
    }

    private static Gen<int?> Maybe(Gen<int> gen, double nullChance) => Gen.Select(gen, Gen.Double[0, 1]).Select((v, d) => d < nullChance ? (int?)null : v);

    private abstract record Op;

    private sealed record Append(int Stream, EventData[] Events, int Expected) : Op;

    private sealed record Delete(int Stream, bool Hard) : Op;

    private sealed record Retain(int Stream, int? MaxCount, int? TruncateBefore, int? MaxAgeSeconds) : Op;

    private static readonly Gen<Op> Ops = Gen.Frequency(
        (6, Gen.Select(Gen.Int[0, 5], Events.Array[1, 4], Gen.Int[-3, 6]).Select(Op (s, e, x) => new Append(s, e, x))),
        (1, Gen.Select(Gen.Int[0, 5], Gen.Bool).Select(Op (s, h) => new Delete(s, h))),
        (1, Gen.Select(Gen.Int[0, 5], Maybe(Gen.Int[1, 5], 0.5), Maybe(Gen.Int[0, 5], 0.5), Maybe(Gen.Int[1, 100_000], 0.7)).Select(Op (s, c, t, a) => new Retain(s, c, t, a))));

    // Whatever sequence of accepted (or refused) operations runs, verify finds the store healthy afterwards.
    [Fact]
    public void Verify_passes_after_any_sequence_of_operations()
    {
        var run = 0;
        Ops.List[1, 40].Sample(ops =>
        {
            var db = Path.Combine(_dir, $"ops-{Interlocked.Increment(ref run)}.db");
            using (var store = new SqliteEventStore(db))
            {
                foreach (var op in ops)
                {
                    var id = StreamId.Parse($"Order-{op switch { Append a => a.Stream, Delete d => d.Stream, Retain r => r.Stream, _ => 0 }}");
                    try
                    {
                        switch (op)
                        {
                            case Append a:
                                var expected = a.Expected switch { -3 => ExpectedVersion.NoStream, -2 => ExpectedVersion.StreamExists, -1 => ExpectedVersion.Any, var v => ExpectedVersion.Exactly(v) };
                                store.AppendAsync(id, expected, a.Events.Select(e => e with { EventId = EventId.New() }).ToList()).GetAwaiter().GetResult();
                                break;
                            case Delete d:
                                store.DeleteStreamAsync(id, ExpectedVersion.Any, d.Hard ? DeleteMode.Hard : DeleteMode.Soft).GetAwaiter().GetResult();
                                break;
                            case Retain r:
                                store.SetStreamMetadataAsync(id, new StreamMetadata
                                {
                                    MaxCount = r.MaxCount,
                                    TruncateBefore = r.TruncateBefore is { } t ? new StreamVersion(t) : null,
                                    MaxAge = r.MaxAgeSeconds is { } s ? TimeSpan.FromSeconds(s) : null,
                                }).GetAwaiter().GetResult();
                                break;
                        }
                    }
                    catch (Exception ex) when (ex is WrongExpectedVersionException or StreamDeletedException or StreamNotFoundException) { }
                }
                _ = ReadAll(store);
            }
            var report = SqliteStoreVerifier.Verify(db);
            SqliteConnection.ClearAllPools();
            File.Delete(db);
            return report.IsHealthy;
        }, iter: Fuzzer.Seconds > 0 ? 1_000_000 : 40, time: Fuzzer.Seconds > 0 ? Fuzzer.Seconds : -1, seed: Fuzzer.Seconds > 0 ? null : "0N0XIzNsQ0O2");
    }
}
