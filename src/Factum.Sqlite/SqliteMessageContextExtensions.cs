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
    /// <remarks>On another store the message fails with an error naming the session it needed.</remarks>
    public static void EnlistSqlite(this MessageContext context, Action<SqliteConnection> work)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(work);
        context.Enlist(work);
    }
}
