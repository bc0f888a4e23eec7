using Factum.Messaging;
using Microsoft.Extensions.DependencyInjection;

namespace Factum.Sqlite.Tests;

/// <summary>Issue 11 §5: <c>UseStore("sqlite:…")</c> finds this package by name; the core does not reference it.</summary>
public sealed class BackendSelectionTests : IDisposable
{
    private readonly string _dir = TempDir.Create();

    public void Dispose() => TempDir.Delete(_dir);

    [Fact]
    public async Task UseStore_sqlite_on_a_data_directory_opens_factum_db_in_it_and_the_sqlite_transport_shares_the_file()
    {
        var data = Path.Combine(_dir, "data");
        await using (var services = new ServiceCollection().AddFactum(b => b.UseStore("sqlite:" + data).UseTransport("sqlite")).BuildServiceProvider())
        {
            var store = Assert.IsType<SqliteEventStore>(services.GetRequiredService<IEventStore>());
            Assert.Equal(Path.GetFullPath(Path.Combine(data, "factum.db")), Path.GetFullPath(store.FilePath));
            Assert.IsType<SqliteMessageTransport>(services.GetRequiredService<IMessageTransport>());
            await store.AppendAsync(StreamId.Parse("Order-1"), ExpectedVersion.NoStream, [new EventData("OrderPlaced", "{}"u8.ToArray())]);
        }

        // The same file by its name, and by the directory again: one store.
        foreach (var connection in new[] { "sqlite:" + Path.Combine(data, "factum.db"), "sqlite:" + data })
        {
            await using var services = new ServiceCollection().AddFactum(b => b.UseStore(connection)).BuildServiceProvider();
            Assert.Equal(new GlobalPosition(1), await services.GetRequiredService<IEventStore>().GetHeadPositionAsync());
        }
    }

    [Fact]
    public async Task The_sqlite_transport_without_a_sqlite_store_says_so()
    {
        await using var services = new ServiceCollection().AddFactum(b => b.UseStore("memory:").UseTransport("sqlite")).BuildServiceProvider();
        var ex = Assert.Throws<InvalidOperationException>(() => services.GetRequiredService<IMessageTransport>());
        Assert.Contains("register the store with UseSqlite(path) or UseStore", ex.Message);
    }
}
