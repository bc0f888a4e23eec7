using Factum.Conformance;

namespace Factum.PostgreSql.Tests;

/// <summary>
/// Two store instances on one schema, as two nodes would have: the first holds its write transaction open just before
/// COMMIT (the writer's hook), the second appends and reads. The second append waits on the head's row lock, so nothing
/// commits above an open position and no follower can pass it.
/// </summary>
public sealed class PostgresHighWaterMarkFactory : IHighWaterMarkHarnessFactory
{
    public Task<IHighWaterMarkHarness> CreateAsync() => Task.FromResult<IHighWaterMarkHarness>(new Harness());

    private sealed class Harness : IHighWaterMarkHarness
    {
        private readonly PostgresEventStore _holder;
        private readonly PostgresEventStore _other;
        private TaskCompletionSource<bool>? _gate;
        private TaskCompletionSource? _entered;

        public Harness()
        {
            var schema = TestServer.NewSchema();
            _holder = new PostgresEventStore(new PostgresEventStoreOptions(TestServer.ConnectionString) { Schema = schema, BeforeCommit = Hold });
            _other = new PostgresEventStore(new PostgresEventStoreOptions(TestServer.ConnectionString) { Schema = schema });
        }

        private async Task Hold(CancellationToken ct)
        {
            if (Interlocked.Exchange(ref _gate, null) is not { } gate) return;
            _entered!.TrySetResult();
            if (!await gate.Task.WaitAsync(TimeSpan.FromSeconds(60), ct)) throw new OperationCanceledException("The held write is rolled back.");
        }

        public IEventReader Reader => _other;

        public Task AppendAsync(StreamId stream, EventData e, CancellationToken cancellationToken) =>
            _other.AppendAsync(stream, ExpectedVersion.Any, [e], cancellationToken);

        public async Task<IHeldWrite> HoldAsync(StreamId stream, EventData e, CancellationToken cancellationToken)
        {
            var gate = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            _entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _gate = gate;
            var append = _holder.AppendAsync(stream, ExpectedVersion.Any, [e], cancellationToken);
            await _entered.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            return new Held(gate, append);
        }

        private sealed class Held(TaskCompletionSource<bool> gate, Task append) : IHeldWrite
        {
            public async Task CommitAsync()
            {
                gate.SetResult(true);
                await append;
            }

            public async Task RollbackAsync()
            {
                gate.SetResult(false);
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => append);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _holder.DropSchemaAsync();
            await _holder.DisposeAsync();
            await _other.DisposeAsync();
        }
    }
}

public sealed class PostgresHighWaterMark : HighWaterMarkConformance<PostgresHighWaterMarkFactory>;
