using Factum;
using Factum.Sqlite;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the SQLite store.</summary>
public static class SqliteFactumBuilderExtensions
{
    /// <summary>Uses the embedded SQLite store at <paramref name="path"/>.</summary>
    public static FactumBuilder UseSqlite(this FactumBuilder builder, string path, Func<SqliteEventStoreOptions, SqliteEventStoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new SqliteEventStoreOptions(path);
        if (configure is not null) options = configure(options);
        return builder.UseEventStore(_ => new SqliteEventStore(options));
    }
}
