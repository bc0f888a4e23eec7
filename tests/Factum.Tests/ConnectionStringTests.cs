using Factum.InMemory;
using Factum.Messaging;
using Microsoft.Extensions.DependencyInjection;

namespace Factum.Tests;

/// <summary>Issue 11 §5: the backend is chosen by a connection string; bad strings are named (never their password).</summary>
public sealed class ConnectionStringTests
{
    [Fact]
    public void Memory_and_postgres_store_strings_parse_into_their_parts()
    {
        Assert.Same(StoreConnectionString.Memory, StoreConnectionString.Parse("memory:"));
        Assert.Same(StoreConnectionString.Memory, StoreConnectionString.Parse("MEMORY:"));

        var pg = StoreConnectionString.Parse("postgres://app:s3cr%40t@db.local:6543/orders?sslmode=require");
        Assert.Equal(StoreKind.PostgreSql, pg.Kind);
        Assert.Equal(("db.local", 6543, "orders", "app", "s3cr@t", "sslmode=require"), (pg.Host, pg.Port, pg.Database, pg.UserName, pg.Password, pg.Parameters));
        Assert.Equal("postgres://app:***@db.local:6543/orders?sslmode=require", pg.ToString());
        Assert.Equal(5432, StoreConnectionString.Parse("postgresql://db/orders").Port);
    }

    [Fact]
    public void A_sqlite_path_is_a_data_directory_unless_it_names_a_db_file_or_an_existing_file()
    {
        var dir = Path.Combine(Path.GetTempPath(), "factum-cs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            Assert.Equal(Path.Combine(dir, "factum.db"), StoreConnectionString.Parse("sqlite:" + dir).DatabaseFile);
            Assert.Equal(Path.Combine(dir, "new", "factum.db"), StoreConnectionString.Parse("sqlite:" + Path.Combine(dir, "new")).DatabaseFile);
            Assert.Equal(Path.Combine(dir, "events.db"), StoreConnectionString.Parse("sqlite:" + Path.Combine(dir, "events.db")).DatabaseFile);
            var other = Path.Combine(dir, "events.sqlite");
            File.WriteAllText(other, "");
            Assert.Equal(other, StoreConnectionString.Parse("sqlite:" + other).DatabaseFile);
            Assert.Equal("sqlite:" + dir, StoreConnectionString.Parse("sqlite:" + dir).ToString());
            Assert.Equal(StoreConnectionString.Parse("sqlite:" + dir), StoreConnectionString.ForDataDirectory(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("", "it is empty")]
    [InlineData("factum-data", "it has no scheme")]
    [InlineData("mysql://root@db/x", "the scheme 'mysql:' is not one Factum knows")]
    [InlineData("sqlite:", "sqlite: needs a path")]
    [InlineData("memory:extra", "memory: takes nothing after the colon")]
    [InlineData("postgres:db/x", "the scheme must be followed by //")]
    [InlineData("postgres://u@/x", "it names no host")]
    [InlineData("postgres://db:99999/x", "is not a number from 1 to 65535")]
    [InlineData("postgres://db", "name the database after the host")]
    public void A_bad_store_string_is_named_with_the_reason_and_the_accepted_forms(string value, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => StoreConnectionString.Parse(value));
        Assert.Contains($"'{value}' is not a store connection string", ex.Message);
        Assert.Contains(reason, ex.Message);
        Assert.Contains("sqlite:<path>", ex.Message);
        Assert.Contains("memory:", ex.Message);
        Assert.Contains("postgres://user:password@host:port/db", ex.Message);
        Assert.False(StoreConnectionString.TryParse(value, out _, out var error));
        Assert.Equal(ex.Message, error);
    }

    [Theory]
    [InlineData("postgres://app:hunter2@db:notaport/x", "hunter2")]
    [InlineData("mysql://root:hunter2@db/x", "hunter2")]
    [InlineData("postgres://app:hunter2/orders", "hunter2")]         // no @: the "port" may be a password
    [InlineData("Host=db;Username=app;Password=hunter2", "hunter2")]
    [InlineData("postgres://db/x?password=hunter2&sslmode=off", "hunter2")]
    [InlineData("postgres://app:p@ss/w0rd@db/x", "ss/w0rd")]         // an unescaped @ or / in the password
    public void Errors_never_show_a_password(string value, string password)
    {
        // Whether it parses or not, what is shown (ToString or the error) hides the password.
        string shown;
        try { shown = StoreConnectionString.Parse(value).ToString(); }
        catch (FormatException ex) { shown = ex.Message; }
        Assert.DoesNotContain(password, shown, StringComparison.Ordinal);
        Assert.Contains("***", shown, StringComparison.Ordinal);
    }

    [Fact]
    public void Transport_strings_parse_into_their_parts()
    {
        Assert.Same(TransportConnectionString.Sqlite, TransportConnectionString.Parse("sqlite"));
        Assert.Same(TransportConnectionString.Sqlite, TransportConnectionString.Parse("sqlite:"));
        Assert.Same(TransportConnectionString.Memory, TransportConnectionString.Parse("memory:"));
        var nats = TransportConnectionString.Parse("nats://n1:4223,n2,[::1]:4224");
        Assert.Equal(TransportKind.Nats, nats.Kind);
        Assert.Equal(["n1:4223", "n2:4222", "[::1]:4224"], nats.Servers);
        var amqp = TransportConnectionString.Parse("amqps://guest:hunter2@rabbit/prod");
        Assert.Equal((TransportKind.Amqp, true, "prod", "guest", "hunter2"), (amqp.Kind, amqp.Tls, amqp.VirtualHost, amqp.UserName, amqp.Password));
        Assert.Equal(["rabbit:5671"], amqp.Servers);
        Assert.Equal("amqps://guest:***@rabbit:5671/prod", amqp.ToString());
    }

    [Theory]
    [InlineData("kafka://b:9092", "the scheme 'kafka:' is not one Factum knows")]
    [InlineData("sqlite:/tmp/bus.db", "the sqlite transport lives in the store's own file")]
    [InlineData("nats://n1,,n2", "a host is missing between the commas")]
    [InlineData("nats://n1/x", "no path")]
    [InlineData("amqp://a,b", "more than one host")]
    public void A_bad_transport_string_is_named_with_the_reason_and_the_accepted_forms(string value, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => TransportConnectionString.Parse(value));
        Assert.Contains($"'{value}' is not a transport connection string", ex.Message);
        Assert.Contains(reason, ex.Message);
        Assert.Contains("nats://host:port[,host:port…]", ex.Message);
    }

    [Fact]
    public async Task UseStore_and_UseTransport_choose_the_in_memory_backends()
    {
        await using var services = new ServiceCollection()
            .AddFactum(b => b.UseStore("memory:").UseTransport("memory:"))
            .BuildServiceProvider();
        Assert.IsType<InMemoryEventStore>(services.GetRequiredService<IEventStore>());
        Assert.IsType<InMemoryTransport>(services.GetRequiredService<IMessageTransport>());
    }

    // This test project does not reference Factum.Sqlite: exactly the application that forgot the package.
    [Fact]
    public void A_sqlite_store_without_the_sqlite_package_says_which_package_to_add()
    {
        var store = Assert.Throws<BackendNotAvailableException>(() => new ServiceCollection().AddFactum(b => b.UseStore("sqlite:data")));
        Assert.Equal("the sqlite: store needs the Factum.Sqlite package (dotnet add package Factum.Sqlite); this application does not reference it.", store.Message);
        var transport = Assert.Throws<BackendNotAvailableException>(() => new ServiceCollection().AddFactum(b => b.UseTransport("sqlite")));
        Assert.Contains("the sqlite transport needs the Factum.Sqlite package", transport.Message);
    }

    [Fact]
    public void Backends_that_do_not_exist_yet_or_are_not_referenced_are_refused_with_the_password_masked()
    {
        // This test project does not reference Factum.PostgreSql either.
        var pg = Assert.Throws<BackendNotAvailableException>(() => new ServiceCollection().AddFactum(b => b.UseStore("postgres://app:hunter2@db:5432/orders")));
        Assert.Equal("the postgres:// store needs the Factum.PostgreSql package (dotnet add package Factum.PostgreSql); this application does not reference it.", pg.Message);
        var amqp = Assert.Throws<BackendNotAvailableException>(() => new ServiceCollection().AddFactum(b => b.UseTransport("amqp://guest:hunter2@rabbit")));
        Assert.Contains("the RabbitMQ transport amqp://guest:***@rabbit:5672 is not available yet", amqp.Message);
        var nats = Assert.Throws<BackendNotAvailableException>(() => new ServiceCollection().AddFactum(b => b.UseTransport("nats://n1:4222,n2:4222")));
        Assert.Contains("the NATS transport nats://n1:4222,n2:4222 is not available yet", nats.Message);
        Assert.Throws<FormatException>(() => new ServiceCollection().AddFactum(b => b.UseStore("postgres:/nope")));
    }
}
