using Factum.Conformance;

namespace Factum.Sqlite.Tests;

public sealed class SqliteLeaseFactory : ILeaseStoreFactory
{
    public LeaseBackend Create(TimeProvider clock)
    {
        var dir = TempDir.Create();
        var store = new SqliteEventStore(new SqliteEventStoreOptions(Path.Combine(dir, "factum.db")) { TimeProvider = clock });
        return new LeaseBackend(new SqliteLeaseStore(store), new SqliteSubscriptionStore(store), async () =>
        {
            await store.DisposeAsync();
            TempDir.Delete(dir);
        });
    }
}

public sealed class SqliteLeases : LeaseConformance<SqliteLeaseFactory>;
