using System.Runtime.CompilerServices;
using Factum.Conformance;
using Factum.Subscriptions;

namespace Factum.Tests;

/// <summary>
/// A model of a log whose writers commit out of position order (as on a shared database with sequences): a held write
/// takes its position at once and becomes visible only when it commits. With <c>brokenHead</c> it reports the newest
/// committed position as its head, which is the mistake the high-water-mark suite must catch.
/// </summary>
internal sealed class GappedLog(bool brokenHead) : IEventReader, IAppendNotifier, IHighWaterMarkHarness
{
    private readonly Lock _lock = new();
    private readonly SortedDictionary<long, RecordedEvent> _committed = [];
    private readonly SortedSet<long> _open = [];
    private readonly AppendSignal _signal = new();
    private long _next = 1;

    public IEventReader Reader => this;

    private RecordedEvent Take(StreamId stream, EventData e)
    {
        lock (_lock)
        {
            var position = _next++;
            _open.Add(position);
            return new RecordedEvent
            {
                EventId = e.EventId,
                Type = e.Type,
                SchemaVersion = e.SchemaVersion,
                Timestamp = DateTimeOffset.UtcNow,
                StreamId = stream,
                StreamVersion = 0,
                Position = position,
                CorrelationId = e.CorrelationId ?? e.EventId.ToString(),
                Metadata = EmptyMetadata.Instance,
                Payload = e.Payload.ToArray(),
            };
        }
    }

    private void End(RecordedEvent e, bool commit)
    {
        lock (_lock)
        {
            _open.Remove(e.Position.Value);
            if (commit) _committed[e.Position.Value] = e;
        }
        _signal.Notify();
    }

    public Task AppendAsync(StreamId stream, EventData e, CancellationToken cancellationToken)
    {
        End(Take(stream, e), commit: true);
        return Task.CompletedTask;
    }

    public Task<IHeldWrite> HoldAsync(StreamId stream, EventData e, CancellationToken cancellationToken) =>
        Task.FromResult<IHeldWrite>(new Held(this, Take(stream, e)));

    private sealed class Held(GappedLog log, RecordedEvent e) : IHeldWrite
    {
        public Task CommitAsync()
        {
            log.End(e, commit: true);
            return Task.CompletedTask;
        }

        public Task RollbackAsync()
        {
            log.End(e, commit: false);
            return Task.CompletedTask;
        }
    }

    public Task<GlobalPosition> GetHeadPositionAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (brokenHead) return Task.FromResult(new GlobalPosition(_committed.Count == 0 ? 0 : _committed.Keys.Max()));
            // Everything below the lowest open write is settled (committed or rolled back).
            return Task.FromResult(new GlobalPosition(_open.Count > 0 ? _open.Min - 1 : _next - 1));
        }
    }

    public async IAsyncEnumerable<RecordedEvent> ReadAllAsync(ReadAllOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options ??= ReadAllOptions.Default;
        List<RecordedEvent> page;
        lock (_lock)
        {
            var forwards = options.Direction == Direction.Forwards;
            var to = options.To?.Value ?? (forwards ? long.MaxValue : 0);
            var rows = forwards
                ? _committed.Values.Where(e => e.Position.Value >= options.From.Value && e.Position.Value <= to)
                : _committed.Values.Reverse().Where(e => e.Position.Value <= options.From.Value && e.Position.Value >= to);
            page = rows.Where(options.Filter.Matches).Take((int)Math.Min(options.MaxCount, int.MaxValue)).ToList();
        }
        foreach (var e in page)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return e;
        }
        await Task.CompletedTask;
    }

    public IAsyncEnumerable<RecordedEvent> ReadStreamAsync(StreamId streamId, ReadStreamOptions? options = null, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("The high-water-mark suite follows $all only.");

    public Task WaitForAppendAsync(GlobalPosition after, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        _signal.WaitAsync(async ct => await GetHeadPositionAsync(ct) > after, timeout, cancellationToken);

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

public sealed class GappedLogFactory : IHighWaterMarkHarnessFactory
{
    public Task<IHighWaterMarkHarness> CreateAsync() => Task.FromResult<IHighWaterMarkHarness>(new GappedLog(brokenHead: false));
}

/// <summary>The suite on a log with real gaps and a correct high-water mark.</summary>
public sealed class GappedLogHighWaterMark : HighWaterMarkConformance<GappedLogFactory>;

/// <summary>The suite must be able to fail: on a log whose head is the newest committed position, both scenarios do.</summary>
public sealed class HighWaterMarkSuiteCatchesABrokenHead
{
    public sealed class BrokenFactory : IHighWaterMarkHarnessFactory
    {
        public Task<IHighWaterMarkHarness> CreateAsync() => Task.FromResult<IHighWaterMarkHarness>(new GappedLog(brokenHead: true));
    }

    // Nested and private: xUnit does not run it on its own; the facts below run its scenarios and expect them to fail.
    private sealed class Broken : HighWaterMarkConformance<BrokenFactory>;

    [Fact]
    public async Task The_commit_scenario_fails_when_the_head_passes_an_open_write()
    {
        var failure = await SuiteSelfTest.FailureOf(new Broken(), s => s.No_follower_passes_a_position_that_is_still_committing_and_all_see_it_once_it_commits());
        Assert.IsAssignableFrom<Xunit.Sdk.XunitException>(failure);
    }

    [Fact]
    public async Task The_rollback_scenario_fails_when_the_head_passes_an_open_write()
    {
        var failure = await SuiteSelfTest.FailureOf(new Broken(), s => s.A_rolled_back_position_is_a_gap_that_every_follower_then_passes());
        Assert.IsAssignableFrom<Xunit.Sdk.XunitException>(failure);
    }
}
