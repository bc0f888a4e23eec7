using System.Globalization;
using System.Text;
using System.Text.Json;
using Factum.Messaging;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

/// <summary>
/// How messages and dead letters are written to and read from their rows, shared by the transport's tables and the
/// message store's, so that the two cannot come to store the same message differently.
/// </summary>
internal static class SqliteMessageRows
{
    /// <summary>The parameters <see cref="BindMessage"/> binds, in the order of <see cref="SqliteSchema.MessageColumnNames"/>.</summary>
    internal const string MessageParams = "$mid, $mtype, $mver, $mts, $mcorr, $mcause, $mreply, $mkey, $mheaders, $mbody";

    /// <summary>The columns <see cref="ReadDeadLetter"/> reads, in its order (the same in every dead-letter table).</summary>
    internal static readonly string DeadLetterColumns = $"id, source_kind, source, grp, partition, offset, exception_type, error, stack_trace, attempts, first_failure, last_failure, dead_lettered_at, held_behind, {SqliteSchema.MessageColumnNames}";

    internal static DateTimeOffset FromTicks(long ticks) => new(ticks, TimeSpan.Zero);

    private static void Bind(SqliteCommand cmd, string name, object? value) => cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);

    /// <summary>Binds <see cref="MessageParams"/> to <paramref name="m"/>.</summary>
    internal static void BindMessage(SqliteCommand cmd, TransportMessage m)
    {
        Bind(cmd, "$mid", m.Id.Value.ToByteArray());
        Bind(cmd, "$mtype", m.Type);
        Bind(cmd, "$mver", m.SchemaVersion);
        Bind(cmd, "$mts", m.Timestamp.UtcTicks);
        Bind(cmd, "$mcorr", m.CorrelationId);
        Bind(cmd, "$mcause", m.CausationId);
        Bind(cmd, "$mreply", m.ReplyTo);
        Bind(cmd, "$mkey", m.PartitionKey);
        Bind(cmd, "$mheaders", m.Headers.Count == 0 ? null : JsonSerializer.Serialize(m.Headers, HeadersJson.Default.IReadOnlyDictionaryStringString));
        Bind(cmd, "$mbody", m.Body.ToArray());
    }

    /// <summary>Reads the ten message columns starting at <paramref name="i"/>.</summary>
    internal static TransportMessage ReadMessage(SqliteDataReader r, int i) => new()
    {
        Id = new MessageId(new Guid(((byte[])r.GetValue(i)).AsSpan())),
        Type = r.GetString(i + 1),
        SchemaVersion = r.GetInt32(i + 2),
        Timestamp = FromTicks(r.GetInt64(i + 3)),
        CorrelationId = r.GetString(i + 4),
        CausationId = r.IsDBNull(i + 5) ? null : r.GetString(i + 5),
        ReplyTo = r.IsDBNull(i + 6) ? null : r.GetString(i + 6),
        PartitionKey = r.IsDBNull(i + 7) ? null : r.GetString(i + 7),
        Headers = r.IsDBNull(i + 8) ? TransportMessage.EmptyHeaders : JsonSerializer.Deserialize(r.GetString(i + 8), HeadersJson.Default.DictionaryStringString)!,
        Body = (byte[])r.GetValue(i + 9),
    };

    /// <summary>
    /// The insert of a dead letter into <paramref name="table"/>, returning its id; <paramref name="extraColumns"/> and
    /// <paramref name="extraParams"/> (each starting with a comma) add a table's own columns.
    /// </summary>
    internal static string DeadLetterInsert(string table, string extraColumns = "", string extraParams = "") => $"""
        INSERT INTO {table}(source_kind, source, grp, partition, offset, exception_type, error, stack_trace, attempts, first_failure, last_failure, dead_lettered_at, held_behind{extraColumns}, {SqliteSchema.MessageColumnNames})
        VALUES ($sk, $s, $g, $p, $o, $et, $err, $st, $att, $ff, $lf, $now, $behind{extraParams}, {MessageParams}) RETURNING id
        """;

    /// <summary>Binds the parameters of <see cref="DeadLetterInsert"/> (not the extra ones).</summary>
    internal static void BindDeadLetter(SqliteCommand cmd, TransportMessage m, MessageSource source, FailureInfo f, long now, long? behind)
    {
        Bind(cmd, "$sk", source.Kind.ToString());
        Bind(cmd, "$s", source.Name);
        Bind(cmd, "$g", source.Group);
        Bind(cmd, "$p", source.Partition);
        Bind(cmd, "$o", source.Offset);
        Bind(cmd, "$et", f.ExceptionType);
        Bind(cmd, "$err", f.Message);
        Bind(cmd, "$st", f.StackTrace);
        Bind(cmd, "$att", f.Attempts);
        Bind(cmd, "$ff", f.FirstFailure.UtcTicks);
        Bind(cmd, "$lf", f.LastFailure.UtcTicks);
        Bind(cmd, "$now", now);
        Bind(cmd, "$behind", behind);
        BindMessage(cmd, m);
    }

    /// <summary>Reads a row selected with <see cref="DeadLetterColumns"/>.</summary>
    internal static DeadLetter ReadDeadLetter(SqliteDataReader r) => new(
        r.GetInt64(0),
        ReadMessage(r, 14),
        new MessageSource(Enum.Parse<MessageSourceKind>(r.GetString(1)), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), r.IsDBNull(4) ? null : r.GetInt32(4), r.IsDBNull(5) ? null : r.GetInt64(5)),
        new FailureInfo(r.GetString(6), r.GetString(7), r.IsDBNull(8) ? null : r.GetString(8), r.GetInt32(9), FromTicks(r.GetInt64(10)), FromTicks(r.GetInt64(11))),
        FromTicks(r.GetInt64(12)),
        r.IsDBNull(13) ? null : r.GetInt64(13));

    /// <summary>
    /// Sets <paramref name="cmd"/> to select <paramref name="columns"/> of the dead letters in <paramref name="table"/> that
    /// match <paramref name="f"/>, oldest first, at most <see cref="DeadLetterFilter.Limit"/>: the same selection as
    /// <see cref="DeadLetterFilter.Matches"/>, made in SQL so that the limit applies to matching rows.
    /// </summary>
    internal static void SelectDeadLetters(SqliteCommand cmd, string table, DeadLetterFilter f, string columns)
    {
        var sql = new StringBuilder($"SELECT {columns} FROM {table} WHERE 1 = 1");
        if (f.Ids is { } ids) sql.Append(ids.Count == 0 ? " AND 0" : $" AND id IN ({string.Join(",", ids.Select(i => i.ToString(CultureInfo.InvariantCulture)))})");
        if (f.Source is not null) { sql.Append(" AND source = $source"); cmd.Parameters.AddWithValue("$source", f.Source); }
        if (f.Group is not null) { sql.Append(" AND grp = $grp"); cmd.Parameters.AddWithValue("$grp", f.Group); }
        if (f.Type is not null) { sql.Append(" AND type = $type"); cmd.Parameters.AddWithValue("$type", f.Type); }
        if (f.ExceptionType is not null)
        {
            // The full name, or a name it ends with after a dot; compared exactly (LIKE would ignore case and read
            // '_' in a name as a wildcard).
            sql.Append(" AND (exception_type = $ex OR substr(exception_type, -length($ex) - 1) = '.' || $ex)");
            cmd.Parameters.AddWithValue("$ex", f.ExceptionType);
        }
        if (f.From is { } from) { sql.Append(" AND dead_lettered_at >= $from"); cmd.Parameters.AddWithValue("$from", from.UtcTicks); }
        if (f.To is { } to) { sql.Append(" AND dead_lettered_at < $to"); cmd.Parameters.AddWithValue("$to", to.UtcTicks); }
        sql.Append(" ORDER BY id");
        // A negative limit selects nothing, as Take does (SQLite would read LIMIT -1 as no limit).
        if (f.Limit is { } limit) sql.Append(CultureInfo.InvariantCulture, $" LIMIT {Math.Max(0, limit)}");
        cmd.CommandText = sql.ToString();
    }

    /// <summary>The dead letters in <paramref name="table"/> matching <paramref name="filter"/>, oldest first.</summary>
    internal static List<DeadLetter> QueryDeadLetters(SqliteConnection c, string table, DeadLetterFilter filter)
    {
        using var cmd = c.CreateCommand();
        SelectDeadLetters(cmd, table, filter, DeadLetterColumns);
        var list = new List<DeadLetter>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) list.Add(ReadDeadLetter(r));
        return list;
    }
}
