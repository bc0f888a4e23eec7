using Factum.Messaging;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

/// <summary>Handler helpers for the embedded transport.</summary>
public static class SqliteMessageContextExtensions
{
    /// <summary>
    /// Runs <paramref name="work"/> on the connection of the transaction that acknowledges the message and records it in
    /// the inbox: the handler's own tables (in the store's file) change exactly when the message counts as handled, so a
    /// redelivery never applies them twice. Keep it short and synchronous: it runs on the store's writer.
    /// </summary>
    /// <exception cref="InvalidOperationException">The bus runs on another transport.</exception>
    public static void EnlistSqlite(this MessageContext context, Action<SqliteConnection> work)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(work);
        context.Enlist(c => work(c as SqliteConnection ?? throw new InvalidOperationException("EnlistSqlite needs the SQLite transport; this bus runs on another transport.")));
    }
}
