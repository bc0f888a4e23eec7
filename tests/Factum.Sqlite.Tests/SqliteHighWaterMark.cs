using Factum.Conformance;

namespace Factum.Sqlite.Tests;

/// <summary>
/// Two store instances on one file, as two processes would have: the first holds its write transaction open just
/// before COMMIT (the writer's hook), the second appends and reads. SQLite serializes writers, so the second append
/// waits for the lock and the suite passes because nothing can commit above an open position.
/// </summary>
public sealed class SqliteHighWaterMarkFactory : IHighWaterMarkHarnessFactory
{
    public Task<IHighWaterMarkHarness> CreateAsync() => Task.FromResult<IHighWaterMarkHarness>(new Harness());

    private sealed class Harness : IHighWaterMarkHarness
    {
        private readonly string _dir = TempDir.Create();
        private readonly SqliteEventStore _holder;
        private readonly SqliteEventStore _other;
        private ManualResetEventSlim? _gate;
        private TaskCompletionSource? _entered;
        private volatile bool _rollback;

        public Harness()
        {
            var path = Path.Combine(_dir, "factum.db");
            _holder = new SqliteEventStore(new SqliteEventStoreOptions(path) { BeforeCommit = Hold });
            _other = new SqliteEventStore(new SqliteEventStoreOptions(path));
        }

        private void Hold()
        {
            if (Interlocked.Exchange(ref _gate, null) is not { } gate) return;
            _entered!.TrySetResult();
            if (!gate.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("The held write was never released.");
            if (_rollback) throw new OperationCanceledException("The held write is rolled back.");
        }

        public IEventReader Reader => _other;

        public Task AppendAsync(StreamId stream, EventData e, CancellationToken cancellationToken) =>
            _other.AppendAsync(stream, ExpectedVersion.Any, [e], cancellationToken);

        public async Task<IHeldWrite> HoldAsync(StreamId stream, EventData e, CancellationToken cancellationToken)
        {
            var gate = new ManualResetEventSlim();
            _entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _rollback = false;
            _gate = gate;
            var append = _holder.AppendAsync(stream, ExpectedVersion.Any, [e], cancellationToken);
            await _entered.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            return new Held(this, gate, append);
        }

        private sealed class Held(Harness harness, ManualResetEventSlim gate, Task append) : IHeldWrite
        {
            public async Task CommitAsync()
            {
                gate.Set();
                await append;
            }

            public async Task RollbackAsync()
            {
                harness._rollback = true;
                gate.Set();
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => append);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _holder.DisposeAsync();
            await _other.DisposeAsync();
            TempDir.Delete(_dir);
        }
    }
}

public sealed class SqliteHighWaterMark : HighWaterMarkConformance<SqliteHighWaterMarkFactory>;
