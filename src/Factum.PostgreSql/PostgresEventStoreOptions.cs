using System.Text.RegularExpressions;
using Npgsql;

namespace Factum.PostgreSql;

/// <summary>Options of the PostgreSQL event store.</summary>
public sealed partial record PostgresEventStoreOptions : EventStoreOptions
{
    /// <summary>Options for the database at <paramref name="connectionString"/>.</summary>
    /// <param name="connectionString">
    /// <c>postgres://user:password@host:port/db[?key=value&amp;…]</c> (also <c>postgresql://</c>), or an Npgsql
    /// connection string (<c>Host=…;Database=…</c>). In the URL form, <c>schema=NAME</c> sets <see cref="Schema"/>; every
    /// other parameter is an Npgsql setting (<c>sslmode=require</c>, <c>timeout=5</c>).
    /// </param>
    /// <exception cref="FormatException">Neither form; the message masks the password.</exception>
    public PostgresEventStoreOptions(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        (ConnectionString, var schema) = ToNpgsql(connectionString);
        if (schema is not null) Schema = schema;
    }

    /// <summary>Options for the database <paramref name="store"/> names (a parsed <c>postgres://</c> string).</summary>
    /// <exception cref="ArgumentException"><paramref name="store"/> does not name a PostgreSQL database.</exception>
    public PostgresEventStoreOptions(StoreConnectionString store)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (store.Kind != StoreKind.PostgreSql) throw new ArgumentException($"The PostgreSQL store opens postgres:// databases, not {store}.", nameof(store));
        (ConnectionString, var schema) = FromParts(store);
        if (schema is not null) Schema = schema;
    }

    /// <summary>The Npgsql connection string.</summary>
    public string ConnectionString { get; }

    /// <summary>
    /// The schema the store's tables live in (default <c>factum</c>): several stores can share one database, each in
    /// its own schema. Lower-case letters, digits and underscores, starting with a letter or underscore, at most 63.
    /// </summary>
    public string Schema
    {
        get;
        init => field = SchemaName().IsMatch(value ?? "") ? value! : throw new ArgumentException($"'{value}' is not a schema name this store accepts: lower-case letters, digits and '_', starting with a letter or '_', at most 63 characters.", nameof(value));
    } = "factum";

    /// <summary>Events read per round trip (default 512).</summary>
    public int ReadPageSize
    {
        get;
        init => field = value is >= 1 and <= 100_000 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "ReadPageSize is between 1 and 100,000.");
    } = 512;

    /// <summary>Writes (appends, metadata changes, deletes) committed together by this process's writer at most (default 256).</summary>
    public int MaxWritesPerCommit
    {
        get;
        init => field = value is >= 1 and <= 10_000 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxWritesPerCommit is between 1 and 10,000.");
    } = 256;

    /// <summary>
    /// How often a waiting subscriber looks at the head when no notification came (default 1 s): appends are announced
    /// with <c>NOTIFY</c>, and this bounds how late one is noticed if a notification is lost (a dropped listener).
    /// </summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long the writer keeps trying through connection failures (a server restart, a dropped connection) before it
    /// fails the waiting writes (default 30 s). A write that certainly did not commit is run again; one whose COMMIT was
    /// sent but not answered is first looked up by its first event's id and position, so nothing is written twice.
    /// </summary>
    public TimeSpan RetryFor { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Apply pending schema migrations when the store opens (default true); false refuses to open an outdated schema (the DBA applies <c>factum migrate</c>'s script).</summary>
    public bool MigrateOnStart { get; init; } = true;

    /// <summary>Test hook: runs in the writer's transaction just before COMMIT (the high-water-mark suite holds a write open here).</summary>
    internal Func<CancellationToken, Task>? BeforeCommit { get; init; }

    /// <summary>Test hook: after a COMMIT succeeded, true makes the writer behave as if its answer had been lost.</summary>
    internal Func<bool>? LoseCommitAnswer { get; init; }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$", RegexOptions.CultureInvariant)]
    private static partial Regex SchemaName();

    /// <summary>Turns a <c>postgres://</c> URL into an Npgsql connection string (and its schema, if named); passes an Npgsql one through (validated).</summary>
    internal static (string ConnectionString, string? Schema) ToNpgsql(string value)
    {
        if (value.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || value.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase))
            return FromParts(StoreConnectionString.Parse(value));
        try
        {
            return (new NpgsqlConnectionStringBuilder(value).ConnectionString, null);
        }
        catch (ArgumentException ex)
        {
            throw new FormatException($"Not a PostgreSQL connection string (expected postgres://user:password@host:port/db or Host=…;Database=…): {ex.Message}", ex);
        }
    }

    private static (string ConnectionString, string? Schema) FromParts(StoreConnectionString parsed)
    {
        {
            var b = new NpgsqlConnectionStringBuilder
            {
                Host = parsed.Host,
                Port = parsed.Port ?? 5432,
                Database = parsed.Database,
                Username = parsed.UserName,
                Password = parsed.Password,
            };
            string? schema = null;
            if (parsed.Parameters is { Length: > 0 } query)
            {
                foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
                {
                    var eq = pair.IndexOf('=', StringComparison.Ordinal);
                    var key = Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq]);
                    var val = eq < 0 ? "" : Uri.UnescapeDataString(pair[(eq + 1)..]);
                    if (key.Equals("schema", StringComparison.OrdinalIgnoreCase))
                    {
                        schema = val;
                        continue;
                    }
                    try
                    {
                        b[key] = val;
                    }
                    catch (ArgumentException ex)
                    {
                        throw new FormatException($"'{parsed}': the parameter '{key}' is not an Npgsql connection setting ({ex.Message}).", ex);
                    }
                }
            }
            return (b.ConnectionString, schema);
        }
    }
}
