using System.Globalization;
using System.Text;
using System.Text.Json;
using Factum.Messaging;
using Npgsql;
using NpgsqlTypes;

namespace Factum.PostgreSql;

/// <summary>
/// How messages and dead letters are written to and read from their rows (the column lists of the message store's migration), in one
/// place so that every statement stores a message the same way. Parameters are positional: each helper appends its
/// parameters to the collection and returns their placeholders, so statements are built without counting by hand.
/// </summary>
internal static class PostgresMessageRows
{
    /// <summary>The message columns, in the order <see cref="BindMessage"/> binds and <see cref="ReadMessage"/> reads them.</summary>
    internal static readonly string MessageColumnNames = PostgresSchema.MessageColumnNames;

    /// <summary>The columns <see cref="ReadDeadLetter"/> reads, in its order.</summary>
    internal static readonly string DeadLetterColumns = "id, source_kind, source, grp, source_partition, source_offset, exception_type, error, stack_trace, attempts, first_failure, last_failure, dead_lettered_at, held_behind, " + MessageColumnNames;

    /// <summary>Appends a positional parameter; returns its placeholder (<c>$n</c>).</summary>
    internal static string Param(NpgsqlParameterCollection p, NpgsqlDbType type, object? value)
    {
        p.Add(new NpgsqlParameter { NpgsqlDbType = type, Value = value ?? DBNull.Value });
        return "$" + p.Count.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>PostgreSQL keeps UTC instants: a time with an offset is stored as the same instant in UTC.</summary>
    internal static DateTimeOffset Utc(DateTimeOffset value) => value.ToUniversalTime();

    /// <summary>Appends the ten message parameters of <paramref name="m"/>; returns their placeholders, comma-separated.</summary>
    internal static string BindMessage(NpgsqlParameterCollection p, TransportMessage m) => string.Join(", ",
        Param(p, NpgsqlDbType.Uuid, m.Id.Value),
        Param(p, NpgsqlDbType.Text, m.Type),
        Param(p, NpgsqlDbType.Integer, m.SchemaVersion),
        Param(p, NpgsqlDbType.TimestampTz, Utc(m.Timestamp)),
        Param(p, NpgsqlDbType.Text, m.CorrelationId),
        Param(p, NpgsqlDbType.Text, m.CausationId),
        Param(p, NpgsqlDbType.Text, m.ReplyTo),
        Param(p, NpgsqlDbType.Text, m.PartitionKey),
        Param(p, NpgsqlDbType.Text, m.Headers.Count == 0 ? null : JsonSerializer.Serialize(m.Headers, PostgresHeadersJson.Default.IReadOnlyDictionaryStringString)),
        Param(p, NpgsqlDbType.Bytea, m.Body.ToArray()));

    /// <summary>Reads the ten message columns starting at <paramref name="i"/>.</summary>
    internal static TransportMessage ReadMessage(NpgsqlDataReader r, int i) => new()
    {
        Id = new MessageId(r.GetGuid(i)),
        Type = r.GetString(i + 1),
        SchemaVersion = r.GetInt32(i + 2),
        Timestamp = r.GetFieldValue<DateTimeOffset>(i + 3),
        CorrelationId = r.GetString(i + 4),
        CausationId = r.IsDBNull(i + 5) ? null : r.GetString(i + 5),
        ReplyTo = r.IsDBNull(i + 6) ? null : r.GetString(i + 6),
        PartitionKey = r.IsDBNull(i + 7) ? null : r.GetString(i + 7),
        Headers = r.IsDBNull(i + 8) ? TransportMessage.EmptyHeaders : JsonSerializer.Deserialize(r.GetString(i + 8), PostgresHeadersJson.Default.DictionaryStringString)!,
        Body = r.GetFieldValue<byte[]>(i + 9),
    };

    /// <summary>Reads a row selected with <see cref="DeadLetterColumns"/>.</summary>
    internal static DeadLetter ReadDeadLetter(NpgsqlDataReader r) => new(
        r.GetInt64(0),
        ReadMessage(r, 14),
        new MessageSource(Enum.Parse<MessageSourceKind>(r.GetString(1)), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), r.IsDBNull(4) ? null : r.GetInt32(4), r.IsDBNull(5) ? null : r.GetInt64(5)),
        new FailureInfo(r.GetString(6), r.GetString(7), r.IsDBNull(8) ? null : r.GetString(8), r.GetInt32(9), r.GetFieldValue<DateTimeOffset>(10), r.GetFieldValue<DateTimeOffset>(11)),
        r.GetFieldValue<DateTimeOffset>(12),
        r.IsDBNull(13) ? null : r.GetInt64(13));

    /// <summary>
    /// The condition selecting the dead letters that match <paramref name="f"/> (without its limit), its parameters
    /// appended to <paramref name="p"/>: the same selection as <see cref="DeadLetterFilter.Matches"/>, made in SQL so
    /// that a limit applies to matching rows.
    /// </summary>
    internal static string Where(NpgsqlParameterCollection p, DeadLetterFilter f)
    {
        var sql = new StringBuilder("TRUE");
        if (f.Ids is { } ids) sql.Append(" AND id = ANY(").Append(Param(p, NpgsqlDbType.Array | NpgsqlDbType.Bigint, ids.ToArray())).Append(')');
        if (f.Source is not null) sql.Append(" AND source = ").Append(Param(p, NpgsqlDbType.Text, f.Source));
        if (f.Group is not null) sql.Append(" AND grp = ").Append(Param(p, NpgsqlDbType.Text, f.Group));
        if (f.Type is not null) sql.Append(" AND type = ").Append(Param(p, NpgsqlDbType.Text, f.Type));
        if (f.ExceptionType is not null)
        {
            // The full name, or a name it ends with after a dot; compared exactly (LIKE would read '_' in a name as a wildcard).
            var ex = Param(p, NpgsqlDbType.Text, f.ExceptionType);
            sql.Append(CultureInfo.InvariantCulture, $" AND (exception_type = {ex} OR right(exception_type, length({ex}) + 1) = ('.' || {ex}))");
        }
        if (f.From is { } from) sql.Append(" AND dead_lettered_at >= ").Append(Param(p, NpgsqlDbType.TimestampTz, Utc(from)));
        if (f.To is { } to) sql.Append(" AND dead_lettered_at < ").Append(Param(p, NpgsqlDbType.TimestampTz, Utc(to)));
        return sql.ToString();
    }

    /// <summary>The filter's limit as SQL (a negative limit selects nothing, as <c>Take</c> does; PostgreSQL would refuse it).</summary>
    internal static string Limit(DeadLetterFilter f) => f.Limit is { } limit ? string.Create(CultureInfo.InvariantCulture, $" LIMIT {Math.Max(0, limit)}") : "";
}

/// <summary>Headers as JSON without reflection (the same encoding as the SQLite backend's).</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyDictionary<string, string>))]
[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class PostgresHeadersJson : System.Text.Json.Serialization.JsonSerializerContext;
