using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

/// <summary>
/// Prepared commands on the store's writer connection, reused across calls: the writer runs one request at a time, so
/// one cache per component is safe. A new writer connection (after a reopen) drops the old commands.
/// </summary>
internal sealed class WriterCommands
{
    private readonly Dictionary<string, SqliteCommand> _commands = new(StringComparer.Ordinal);
    private SqliteConnection? _connection;

    /// <summary>The command for <paramref name="sql"/> on <paramref name="c"/>, with its parameters cleared.</summary>
    public SqliteCommand Get(SqliteConnection c, string sql)
    {
        if (!ReferenceEquals(c, _connection))
        {
            foreach (var old in _commands.Values) old.Dispose();
            _commands.Clear();
            _connection = c;
        }
        if (!_commands.TryGetValue(sql, out var cmd))
        {
            cmd = c.CreateCommand();
            cmd.CommandText = sql;
            _commands[sql] = cmd;
        }
        cmd.Parameters.Clear();
        return cmd;
    }

    /// <summary>Adds a parameter (null as NULL) and returns the command, so bindings chain.</summary>
    public static SqliteCommand P(SqliteCommand cmd, string name, object? value)
    {
        cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return cmd;
    }
}
