using System.Buffers;
using System.Data;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Factum.Coordination;
using Factum.Projections;
using Factum.Subscriptions;
using Npgsql;
using NpgsqlTypes;

namespace Factum.PostgreSql;

/// <summary>The PostgreSQL projection engine: runs projections, queries read models (always the active version), lists, resets and skips.</summary>
/// <remarks>Every engine over stores that share a database and schema shares their read models, parked events and leases.</remarks>
public sealed class PostgresReadModels(PostgresEventStore store)
    : ProjectionEngine(store, new PostgresProjectionStore(store), store.Options.TimeProvider, store.Options.LoggerFactory);

/// <summary>
/// Projections in the store's PostgreSQL schema: a <c>projections</c> record per version, a table of <c>jsonb</c>
/// documents per version (with an expression index per indexed field), parked events and leases beside them. A batch's
/// documents, its checkpoint and the lease check share one transaction, so every event affects a read model exactly
/// once, across crashes and across the nodes that share the database.
/// </summary>
/// <remarks>
/// <para>
/// Locks are always taken in one order — the projection's record, then the lease row, then the documents — so that a
/// runner committing, a stale runner, a promotion and a reset wait for each other instead of deadlocking. Changes to a
/// projection's set of versions (register, promote, reset) are also serialized per name by a transaction-scoped
/// advisory lock, as the SQLite store's single writer serializes them.
/// </para>
/// <para>
/// Documents are stored as <c>jsonb</c>: what <see cref="GetJsonAsync"/> and <see cref="QueryAsync"/> return is the
/// same JSON value, compact, but PostgreSQL's normal form of it (object keys in its order, numbers as written, the last
/// of duplicate keys); a string holding the character U+0000 cannot be stored (PostgreSQL refuses it in <c>jsonb</c>).
/// </para>
/// </remarks>
public sealed class PostgresProjectionStore : IProjectionStore
{
    /// <summary>Reads that meet a version's table dropped under them (a promotion) look up the active version again this often.</summary>
    private const int ActiveVersionAttempts = 5;

    private readonly PostgresEventStore _store;

    /// <summary>Projections beside the events of <paramref name="store"/>, with their leases and parked events there too.</summary>
    public PostgresProjectionStore(PostgresEventStore store)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        Leases = new PostgresLeaseStore(store);
        Parked = new PostgresSubscriptionStore(store);
    }

    /// <inheritdoc />
    public ILeaseStore Leases { get; }

    /// <inheritdoc />
    public IParkedEventStore Parked { get; }

    private string S => _store.Schema;

    private DateTimeOffset Now => _store.Options.TimeProvider.GetUtcNow();

    // ------------------------------------------------------------------ names and SQL

    /// <summary>
    /// The identifier (unquoted) of a projection version's table: <c>rm_&lt;name&gt;_v&lt;version&gt;</c>, the name kept as
    /// it is (it is always quoted, so '-' and case survive and two names never share a table), shortened with a hash
    /// when longer than PostgreSQL's 63 bytes.
    /// </summary>
    internal static string TableName(string name, int version) => Identifier($"rm_{name}_v{version.ToString(CultureInfo.InvariantCulture)}");

    /// <summary>
    /// The identifier (unquoted) of the index of <paramref name="field"/> in a version's table. The '.' before the field
    /// cannot occur in a name, so distinct (projection, version, field) never share an index name.
    /// </summary>
    internal static string IndexName(string name, int version, string field) => Identifier($"ix_{name}_v{version.ToString(CultureInfo.InvariantCulture)}.{field}");

    /// <summary>
    /// <paramref name="full"/> if it fits PostgreSQL's identifier limit (63 bytes; every character here is ASCII), else
    /// its start, '#' and a hash of all of it: PostgreSQL would silently truncate a longer name, and two long names
    /// with a common start would then collide.
    /// </summary>
    private static string Identifier(string full)
    {
        const int Max = 63, Hash = 12;
        if (full.Length <= Max) return full;
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(full)))[..Hash];
        return $"{full[..(Max - Hash - 1)]}#{hash}";
    }

    private string Table(string name, int version) => $"{S}.\"{TableName(name, version)}\"";

    /// <summary>The <c>jsonb</c> value of a (validated) field: <c>doc -&gt; 'view' -&gt; 'total'</c>.</summary>
    /// <remarks>
    /// Each step is a text key, never an array index (<c>jsonb -&gt; text</c> on an array is null), so a field matches
    /// only a path of object properties, as on the other backends.
    /// </remarks>
    private static string Value(string field) => "doc" + string.Concat(field.Split('.').Select(p => $" -> '{p}'"));

    /// <summary>
    /// The field's text, for strings (and objects and arrays, as JSON text); null for anything else. The first key of
    /// the order by the field, and what string conditions compare.
    /// </summary>
    private static string SortText(string field)
    {
        var v = Value(field);
        return $"(CASE WHEN jsonb_typeof({v}) IN ('string', 'object', 'array') THEN {v} #>> '{{}}' END)";
    }

    /// <summary>
    /// The field's number, for numbers (and bools as 0 and 1); null for anything else. The second key of the order by
    /// the field, and what number and bool conditions compare. The CASE keeps the cast from seeing a string.
    /// </summary>
    private static string SortNumber(string field)
    {
        var v = Value(field);
        return $"(CASE jsonb_typeof({v}) WHEN 'number' THEN ({v})::numeric WHEN 'boolean' THEN CASE WHEN ({v})::boolean THEN 1 ELSE 0 END END)";
    }

    /// <summary>
    /// The DDL of a version's table and its field indexes, if missing. Each index is on exactly the expressions a query
    /// orders by (text first, nulls first; then the number, nulls first; then the key), so the planner uses it for
    /// conditions on the field and for an order by it, in both directions, without sorting.
    /// </summary>
    internal List<string> StorageSql(string name, int version, IReadOnlyList<string> indexedFields)
    {
        var table = Table(name, version);
        var sql = new List<string> { $"CREATE TABLE IF NOT EXISTS {table} (key text COLLATE \"C\" PRIMARY KEY, doc jsonb NOT NULL)" };
        foreach (var field in indexedFields)
        {
            ProjectionQuery.ValidateField(field);
            sql.Add($"CREATE INDEX IF NOT EXISTS \"{IndexName(name, version, field)}\" ON {table} ({SortText(field)} COLLATE \"C\" NULLS FIRST, {SortNumber(field)} NULLS FIRST, key)");
        }
        return sql;
    }

    /// <summary>
    /// The SQL of a (validated) query over <paramref name="table"/>, adding its values to <paramref name="cmd"/> as
    /// positional parameters. A condition holds only for a field of the value's kind (the <c>jsonb_typeof</c> check),
    /// strings compare in the C collation (ordinal), numbers as <c>numeric</c> (exactly), bools as 0 and 1.
    /// </summary>
    internal static string QuerySql(string table, ProjectionQuery query, NpgsqlCommand cmd)
    {
        var sql = new StringBuilder($"SELECT key, doc FROM {table}");
        for (var i = 0; i < query.Conditions.Count; i++)
        {
            var (field, op, value) = query.Conditions[i];
            var sqlOp = op.ToSql();
            var p = $"${cmd.Parameters.Count + 1}";
            sql.Append(i == 0 ? " WHERE " : " AND ");
            switch (value)
            {
                case string s:
                    sql.Append($"{SortText(field)} COLLATE \"C\" {sqlOp} {p} AND jsonb_typeof({Value(field)}) = 'string'");
                    cmd.Parameters.AddWithValue(NpgsqlDbType.Text, s);
                    break;
                default:
                    // "Text is null" adds nothing to the meaning (a number or bool has no text) but lets the planner
                    // use the index, whose first column is the text. The value goes as text cast to numeric: exact for
                    // every long and double (and infinities), where a double parameter would compare approximately.
                    var (kind, number) = value switch
                    {
                        bool b => ("boolean", b ? "1" : "0"),
                        long l => ("number", l.ToString(CultureInfo.InvariantCulture)),
                        _ => ("number", ((double)value).ToString("R", CultureInfo.InvariantCulture)),
                    };
                    sql.Append($"{SortText(field)} COLLATE \"C\" IS NULL AND {SortNumber(field)} {sqlOp} {p}::numeric AND jsonb_typeof({Value(field)}) = '{kind}'");
                    cmd.Parameters.AddWithValue(NpgsqlDbType.Text, number);
                    break;
            }
        }
        // Missing or null first, then numbers and bools, then strings (each ascending), ties by key; all reversed when
        // descending — the order of the other backends.
        sql.Append(query.OrderBy is { } order
            ? query.Descending
                ? $" ORDER BY {SortText(order)} COLLATE \"C\" DESC NULLS LAST, {SortNumber(order)} DESC NULLS LAST, key DESC"
                : $" ORDER BY {SortText(order)} COLLATE \"C\" NULLS FIRST, {SortNumber(order)} NULLS FIRST, key"
            : query.Descending ? " ORDER BY key DESC" : " ORDER BY key");
        if (query.Take is not null || query.Skip > 0)
        {
            sql.Append($" LIMIT ${cmd.Parameters.Count + 1} OFFSET ${cmd.Parameters.Count + 2}");
            cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, query.Take is { } take ? (long)take : (object)DBNull.Value); // LIMIT NULL: all
            cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, (long)query.Skip);
        }
        return sql.ToString();
    }

    /// <summary>
    /// The document as compact JSON: PostgreSQL prints <c>jsonb</c> with spaces after ':' and ',', and unescapes what
    /// the serializer escaped; this writes it back as the serializer would (same value, same escaping, no spaces).
    /// </summary>
    internal static string Compact(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var buffer = new ArrayBufferWriter<byte>(json.Length);
        using (var writer = new Utf8JsonWriter(buffer)) doc.WriteTo(writer);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    // ------------------------------------------------------------------ IProjectionStore

    /// <inheritdoc />
    public async Task RegisterAsync(ProjectionRegistration registration, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(registration);
        ProjectionName.Validate(registration.Name);
        var ddl = StorageSql(registration.Name, registration.Version, registration.IndexedFields);
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        await LockNameAsync(c, tx, registration.Name, cancellationToken).ConfigureAwait(false);
        using (var batch = new NpgsqlBatch(c, tx))
        {
            // The record first: its row lock comes before the table's lock (CREATE INDEX IF NOT EXISTS locks the table
            // even when the index exists), the order a committing runner takes them in.
            var upsert = new NpgsqlBatchCommand($"""
                INSERT INTO {S}.projections AS p (name, version, active, position, state, updated_at)
                VALUES ($1, $2, NOT EXISTS (SELECT 1 FROM {S}.projections WHERE name = $1 AND active), 0, 'Building', $3)
                ON CONFLICT (name, version) DO UPDATE SET
                    state = CASE WHEN p.state IN ('Faulted', 'Pending') THEN (CASE WHEN p.active THEN 'Live' ELSE 'Building' END) ELSE p.state END,
                    last_error = NULL, failing_position = NULL
                """);
            Bind(upsert.Parameters, registration.Name, registration.Version);
            upsert.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, Now);
            batch.BatchCommands.Add(upsert);
            foreach (var statement in ddl) batch.BatchCommands.Add(new NpgsqlBatchCommand(statement));
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<long?> LoadCheckpointAsync(string name, int version, CancellationToken cancellationToken = default)
    {
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"SELECT position FROM {S}.projections WHERE name = $1 AND version = $2", c);
        Bind(cmd.Parameters, name, version);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as long?;
    }

    /// <inheritdoc />
    public ValueTask<IProjectionDocumentReader> OpenReaderAsync(string name, int version, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<IProjectionDocumentReader>(new DocumentReader(_store, Table(name, version), name, version));

    /// <summary>
    /// Reads on a pooled connection it keeps while its runner owns the version (opened at the first read, opened again
    /// after a connection failure, so that a retried batch does not fail on a dead connection). Only the lease holder
    /// writes a version's documents, so what it reads between its commits is what its next commit changes.
    /// </summary>
    private sealed class DocumentReader(PostgresEventStore store, string table, string name, int version) : IProjectionDocumentReader
    {
        private NpgsqlConnection? _c;
        private NpgsqlCommand? _select;

        public async ValueTask<string?> GetAsync(string key, CancellationToken cancellationToken = default)
        {
            if (_c is { } old && (old.FullState & ConnectionState.Broken) != 0) await CloseAsync().ConfigureAwait(false);
            if (_select is null)
            {
                _c = await store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
                _select = new NpgsqlCommand($"SELECT doc FROM {table} WHERE key = $1", _c);
                _select.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text });
            }
            _select.Parameters[0].Value = key;
            try
            {
                return await _select.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
            {
                // A newer version caught up and dropped this one's table since the batch began.
                throw new ProjectionSupersededException(name, version);
            }
            catch (NpgsqlException ex) when (ex is not PostgresException)
            {
                // The connection failed (a restart, a network error): the next read opens another.
                await CloseAsync().ConfigureAwait(false);
                throw;
            }
        }

        private async ValueTask CloseAsync()
        {
            _select?.Dispose();
            _select = null;
            if (_c is not null) await _c.DisposeAsync().ConfigureAwait(false);
            _c = null;
        }

        public ValueTask DisposeAsync() => CloseAsync();
    }

    /// <inheritdoc />
    public async Task CommitAsync(ProjectionBatch batch, Lease fence, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(fence);
        // At most one change per key (the contract); should one come twice, the last wins, as it would applied in order.
        var last = new Dictionary<string, string?>(batch.Changes.Count, StringComparer.Ordinal);
        foreach (var change in batch.Changes) last[change.Key] = change.Json;
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        // The record locked in this transaction: a promotion (which deletes it), a reset or a skip (which move the
        // checkpoint) waits for this commit, or this commit sees what they did.
        using (var check = new NpgsqlCommand($"SELECT position FROM {S}.projections WHERE name = $1 AND version = $2 FOR NO KEY UPDATE", c, tx))
        {
            Bind(check.Parameters, batch.Name, batch.Version);
            var position = await check.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as long? ?? throw new ProjectionSupersededException(batch.Name, batch.Version);
            if (position != batch.From) throw new ProjectionCheckpointMovedException(batch.Name, batch.Version, batch.From, position);
        }
        await PostgresLeaseStore.CheckFenceAsync(_store, c, tx, fence, cancellationToken).ConfigureAwait(false);
        using (var write = new NpgsqlBatch(c, tx))
        {
            var table = Table(batch.Name, batch.Version);
            var puts = last.Where(x => x.Value is not null).ToList();
            if (puts.Count > 0)
            {
                var upsert = new NpgsqlBatchCommand($"INSERT INTO {table} (key, doc) SELECT * FROM unnest($1::text[], $2::jsonb[]) ON CONFLICT (key) DO UPDATE SET doc = EXCLUDED.doc");
                upsert.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, puts.Select(x => x.Key).ToArray());
                upsert.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Jsonb, puts.Select(x => x.Value!).ToArray());
                write.BatchCommands.Add(upsert);
            }
            var deletes = last.Where(x => x.Value is null).Select(x => x.Key).ToArray();
            if (deletes.Length > 0)
            {
                var delete = new NpgsqlBatchCommand($"DELETE FROM {table} WHERE key = ANY($1)");
                delete.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, deletes);
                write.BatchCommands.Add(delete);
            }
            var advance = new NpgsqlBatchCommand($"UPDATE {S}.projections SET position = $3, state = CASE WHEN active THEN 'Live' ELSE 'Building' END, updated_at = $4 WHERE name = $1 AND version = $2");
            Bind(advance.Parameters, batch.Name, batch.Version);
            advance.Parameters.AddWithValue(NpgsqlDbType.Bigint, batch.Through);
            advance.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, Now);
            write.BatchCommands.Add(advance);
            await write.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<bool> PromoteAsync(string name, int version, Lease fence, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fence);
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        await LockNameAsync(c, tx, name, cancellationToken).ConfigureAwait(false);
        // Every version's record locked (in version order) before the lease row: a stale runner's commit, which locks
        // its record first, then waits here instead of deadlocking with this promotion.
        var versions = new List<(int Version, bool Active)>();
        using (var list = new NpgsqlCommand($"SELECT version, active FROM {S}.projections WHERE name = $1 ORDER BY version FOR UPDATE", c, tx))
        {
            list.Parameters.AddWithValue(NpgsqlDbType.Text, name);
            var r = await list.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var rScope = r.ConfigureAwait(false);
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false)) versions.Add((r.GetInt32(0), r.GetBoolean(1)));
        }
        await PostgresLeaseStore.CheckFenceAsync(_store, c, tx, fence, cancellationToken).ConfigureAwait(false);
        var self = versions.FindIndex(v => v.Version == version);
        if (self < 0) throw new ProjectionSupersededException(name, version);
        if (versions[self].Active) return false;
        using (var swap = new NpgsqlBatch(c, tx))
        {
            // The others deleted before this one becomes active: at most one active version per name is a unique index.
            var delete = new NpgsqlBatchCommand($"DELETE FROM {S}.projections WHERE name = $1 AND version <> $2");
            Bind(delete.Parameters, name, version);
            swap.BatchCommands.Add(delete);
            var activate = new NpgsqlBatchCommand($"UPDATE {S}.projections SET active = true, state = 'Live', updated_at = $3 WHERE name = $1 AND version = $2");
            Bind(activate.Parameters, name, version);
            activate.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, Now);
            swap.BatchCommands.Add(activate);
            // In version order, as ListAsync counts them, so the two never wait for each other's table locks in a cycle.
            foreach (var old in versions.Where(v => v.Version != version)) swap.BatchCommands.Add(new NpgsqlBatchCommand($"DROP TABLE IF EXISTS {Table(name, old.Version)}"));
            await swap.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <inheritdoc />
    public async Task RecordFaultAsync(string name, int version, long position, string error, Lease fence, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fence);
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        // The update (which locks the record) before the fence check, the lock order of a commit; a lost lease rolls it back.
        using (var cmd = new NpgsqlCommand($"UPDATE {S}.projections SET state = 'Faulted', last_error = $3, failing_position = $4, updated_at = $5 WHERE name = $1 AND version = $2", c, tx))
        {
            Bind(cmd.Parameters, name, version);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Text, error);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, position);
            cmd.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, Now);
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await PostgresLeaseStore.CheckFenceAsync(_store, c, tx, fence, cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<bool> SkipAsync(string name, int version, long position, CancellationToken cancellationToken = default)
    {
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        using var cmd = new NpgsqlCommand($"""
            UPDATE {S}.projections SET position = GREATEST(position, $3), state = 'Pending', last_error = NULL, failing_position = NULL, updated_at = $4
            WHERE name = $1 AND version = $2 AND state = 'Faulted' AND failing_position = $3
            """, c);
        Bind(cmd.Parameters, name, version);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Bigint, position);
        cmd.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, Now);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    /// <inheritdoc />
    public async Task ResetAsync(string projection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(projection);
        var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        await LockNameAsync(c, tx, projection, cancellationToken).ConfigureAwait(false);
        int version;
        // The record first (its lock keeps the runner's next commit waiting, then refused: the checkpoint moved), then the documents.
        using (var rewind = new NpgsqlCommand($"UPDATE {S}.projections SET position = 0, state = 'Pending', last_error = NULL, failing_position = NULL, updated_at = $2 WHERE name = $1 AND active RETURNING version", c, tx))
        {
            rewind.Parameters.AddWithValue(NpgsqlDbType.Text, projection);
            rewind.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, Now);
            version = await rewind.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as int? ?? throw NoSuchProjection(projection);
        }
        // TRUNCATE rather than DELETE: a large read model empties at once, with no dead rows left to vacuum.
        using (var empty = new NpgsqlCommand($"TRUNCATE {Table(projection, version)}", c, tx))
            await empty.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<ProjectionInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        for (var attempt = 1; ; attempt++)
        {
            var c = await _store.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var cScope = c.ConfigureAwait(false);
            var rows = new List<ProjectionInfo>();
            using (var cmd = new NpgsqlCommand($"SELECT name, version, active, position, state, last_error, failing_position FROM {S}.projections ORDER BY name, version", c))
            {
                var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using var rScope = r.ConfigureAwait(false);
                while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
                    rows.Add(new ProjectionInfo(r.GetString(0), r.GetInt32(1), r.GetBoolean(2), r.GetInt64(3), r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? null : r.GetInt64(6), 0, 0));
            }
            if (rows.Count == 0) return rows;
            // Every count in one statement, in (name, version) order (the order a promotion drops tables in).
            using var count = new NpgsqlCommand("SELECT " + string.Join(", ", rows.Select(p => $"(SELECT count(*) FROM {Table(p.Name, p.Version)})")), c);
            try
            {
                var r = await count.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using var rScope = r.ConfigureAwait(false);
                await r.ReadAsync(cancellationToken).ConfigureAwait(false);
                for (var i = 0; i < rows.Count; i++) rows[i] = rows[i] with { Documents = r.GetInt64(i) };
                return rows;
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable && attempt < ActiveVersionAttempts)
            {
                // A promotion dropped a version listed a moment ago (DDL is not under the snapshot): list again.
            }
        }
    }

    /// <inheritdoc />
    public Task<string?> GetJsonAsync(string projection, string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        return ReadActiveAsync<string?>(projection, async (c, table, ct) =>
        {
            using var cmd = new NpgsqlCommand($"SELECT doc FROM {table} WHERE key = $1", c);
            cmd.Parameters.AddWithValue(NpgsqlDbType.Text, key);
            return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is string doc ? Compact(doc) : null;
        }, cancellationToken);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<(string Key, string Json)>> QueryAsync(string projection, ProjectionQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        query.Validate();
        return ReadActiveAsync<IReadOnlyList<(string, string)>>(projection, async (c, table, ct) =>
        {
            using var cmd = new NpgsqlCommand { Connection = c };
            cmd.CommandText = QuerySql(table, query, cmd);
            var list = new List<(string, string)>();
            var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            await using var rScope = r.ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false)) list.Add((r.GetString(0), Compact(r.GetString(1))));
            return list;
        }, cancellationToken);
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>
    /// Runs <paramref name="read"/> on the active version's table. A promotion may drop that table between the lookup
    /// and the read (DDL is not under a snapshot); the read then looks the active version up again.
    /// </summary>
    /// <exception cref="ArgumentException">There is no such projection.</exception>
    private async Task<T> ReadActiveAsync<T>(string projection, Func<NpgsqlConnection, string, CancellationToken, Task<T>> read, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(projection);
        for (var attempt = 1; ; attempt++)
        {
            var c = await _store.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var cScope = c.ConfigureAwait(false);
            int version;
            using (var active = new NpgsqlCommand($"SELECT version FROM {S}.projections WHERE name = $1 AND active", c))
            {
                active.Parameters.AddWithValue(NpgsqlDbType.Text, projection);
                version = await active.ExecuteScalarAsync(ct).ConfigureAwait(false) as int? ?? throw NoSuchProjection(projection);
            }
            try
            {
                return await read(c, Table(projection, version), ct).ConfigureAwait(false);
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable && attempt < ActiveVersionAttempts)
            {
                // Promoted meanwhile: read the new active version.
            }
        }
    }

    /// <summary>Serializes the changes to one projection's versions (register, promote, reset) across every node, until the transaction ends.</summary>
    private async Task LockNameAsync(NpgsqlConnection c, NpgsqlTransaction tx, string name, CancellationToken ct)
    {
        using var cmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext($1))", c, tx);
        cmd.Parameters.AddWithValue(NpgsqlDbType.Text, $"factum-projection:{S}:{name}");
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    private static ArgumentException NoSuchProjection(string projection) =>
        new($"There is no projection named '{projection}' in this store.", nameof(projection));

    private static void Bind(NpgsqlParameterCollection parameters, string name, int version)
    {
        parameters.AddWithValue(NpgsqlDbType.Text, name);
        parameters.AddWithValue(NpgsqlDbType.Integer, version);
    }
}
