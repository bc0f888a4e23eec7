using System.Text;
using Factum.Coordination;
using Factum.Projections;
using Factum.Subscriptions;
using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

/// <summary>
/// Runs one projection version over the SQLite store: the core <see cref="ProjectionRunner"/> over
/// <see cref="SqliteProjectionStore"/>. Each batch's documents and the projection's checkpoint commit in one
/// transaction of the store's writer, so every event affects the read model exactly once, even across crashes.
/// </summary>
public sealed class SqliteProjectionRunner : IProjectionRun
{
    private readonly ProjectionRunner _runner;

    /// <summary>Creates a runner; <see cref="StartAsync"/> runs it.</summary>
    public SqliteProjectionRunner(SqliteEventStore store, IProjection projection, ProjectionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        _runner = new SqliteReadModels(store).CreateRunner(projection, options);
    }

    /// <summary>Completes when the runner stops, faults or is superseded.</summary>
    public Task Completion => _runner.Completion;

    /// <summary>True while this runner holds its projection version's lease (the others stand by).</summary>
    public bool IsOwner => _runner.IsOwner;

    /// <summary>Registers the version (active at once if the projection has no active version yet) and starts it.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default) => _runner.StartAsync(cancellationToken);

    /// <summary>Stops after the current batch.</summary>
    public Task StopAsync() => _runner.StopAsync();

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _runner.DisposeAsync();

    /// <summary>The table of a projection version's documents (quoted).</summary>
    internal static string TableName(string name, int version) => $"\"rm_{name.Replace('-', '_')}_v{version}\"";
}

/// <summary>The SQLite projection engine: runs projections, queries read models (always the active version), lists, resets and skips.</summary>
public sealed class SqliteReadModels(SqliteEventStore store)
    : ProjectionEngine(store, new SqliteProjectionStore(store), store.Options.TimeProvider, store.Options.LoggerFactory);

/// <summary>
/// Projections in the SQLite file: a <c>projections</c> record per version, a table of JSON documents per version
/// (with an expression index per indexed field), parked events and leases in the same file. Every write goes through
/// the store's writer, so a batch's documents, its checkpoint and the lease check share one transaction.
/// </summary>
public sealed class SqliteProjectionStore(SqliteEventStore store) : IProjectionStore
{
    private readonly SqliteEventStore _store = store ?? throw new ArgumentNullException(nameof(store));

    /// <inheritdoc />
    public ILeaseStore Leases { get; } = new SqliteLeaseStore(store);

    /// <inheritdoc />
    public IParkedEventStore Parked { get; } = new SqliteSubscriptionStore(store);

    private long Now => _store.Options.TimeProvider.GetUtcNow().UtcTicks;

    /// <summary>Creates a version's table and the indexes of its fields, if missing (in the caller's transaction, if any).</summary>
    internal static void CreateStorage(SqliteConnection c, SqliteTransaction? tx, string name, int version, IReadOnlyList<string> indexedFields)
    {
        var table = SqliteProjectionRunner.TableName(name, version);
        var sql = new StringBuilder($"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, doc TEXT NOT NULL);");
        foreach (var field in indexedFields)
        {
            ProjectionQuery.ValidateField(field);
            // The indexed expression must be the one queries use (a literal path), or SQLite will not use the index; the key
            // second, so an order by the field (then by key) reads the index in order.
            sql.Append($"CREATE INDEX IF NOT EXISTS \"ix_{table[1..^1]}_{field.Replace("_", "__", StringComparison.Ordinal).Replace('.', '_')}\" ON {table} ({Extract(field)}, key);");
        }
        Exec(c, tx, sql.ToString());
    }

    /// <summary>The SQL expression of a (validated) field.</summary>
    internal static string Extract(string field) => $"json_extract(doc, '$.{field}')";

    /// <inheritdoc />
    public Task RegisterAsync(ProjectionRegistration registration, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(registration);
        ProjectionName.Validate(registration.Name);
        var now = Now;
        return _store.ExecuteInWriterAsync(c =>
        {
            RefuseSharedTable(c, registration.Name);
            CreateStorage(c, null, registration.Name, registration.Version, registration.IndexedFields);
            using var cmd = c.CreateCommand();
            cmd.CommandText = """
                INSERT INTO projections(name, version, active, position, state, updated_at)
                VALUES ($n, $v, NOT EXISTS (SELECT 1 FROM projections WHERE name = $n AND active = 1), 0, 'Building', $now)
                ON CONFLICT(name, version) DO UPDATE SET state = CASE WHEN state IN ('Faulted', 'Pending') THEN (CASE WHEN active = 1 THEN 'Live' ELSE 'Building' END) ELSE state END, last_error = NULL, failing_position = NULL
                """;
            Bind(cmd, registration.Name, registration.Version);
            cmd.Parameters.AddWithValue("$now", now);
            return cmd.ExecuteNonQuery();
        }, cancellationToken);
    }

    /// <summary>
    /// Refuses a projection whose read-model tables would be another projection's: SQLite compares table names without
    /// regard to case, and the table name writes '-' as '_', so 'orders-by-day' and 'Orders_by_day' would share one.
    /// </summary>
    private static void RefuseSharedTable(SqliteConnection c, string name)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT DISTINCT name FROM projections WHERE name <> $n AND lower(replace(name, '-', '_')) = lower(replace($n, '-', '_'))";
        cmd.Parameters.AddWithValue("$n", name);
        if (cmd.ExecuteScalar() is string other)
            throw new ArgumentException($"Projection '{name}' would keep its read model in the same SQLite table as projection '{other}' (table names ignore case, and '-' is written as '_'); give one of them another name.", nameof(name));
    }

    /// <inheritdoc />
    public async Task<long?> LoadCheckpointAsync(string name, int version, CancellationToken cancellationToken = default)
    {
        using var c = _store.OpenReadConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT position FROM projections WHERE name = $n AND version = $v";
        Bind(cmd, name, version);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as long?;
    }

    /// <inheritdoc />
    public ValueTask<IProjectionDocumentReader> OpenReaderAsync(string name, int version, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<IProjectionDocumentReader>(new DocumentReader(_store, name, version));

    /// <summary>
    /// Reads on a read connection of its own. Only the lease holder writes a version's documents, so what it reads
    /// between its commits is what its next commit changes.
    /// </summary>
    private sealed class DocumentReader(SqliteEventStore store, string name, int version) : IProjectionDocumentReader
    {
        private SqliteConnection? _c;
        private SqliteCommand? _select;

        public ValueTask<string?> GetAsync(string key, CancellationToken cancellationToken = default)
        {
            if (_select is null)
            {
                _c = store.OpenReadConnection();
                _select = _c.CreateCommand();
                _select.CommandText = $"SELECT doc FROM {SqliteProjectionRunner.TableName(name, version)} WHERE key = $k";
                _select.Parameters.Add(new SqliteParameter { ParameterName = "$k" });
            }
            _select.Parameters[0].Value = key;
            try
            {
                // Microsoft.Data.Sqlite's async calls run synchronously anyway; this saves their allocations.
                return ValueTask.FromResult(_select.ExecuteScalar() as string);
            }
            catch (SqliteException ex) when (ex.Message.Contains("no such table", StringComparison.Ordinal))
            {
                // A newer version caught up and dropped this one's table since the batch began.
                throw new ProjectionSupersededException(name, version);
            }
        }

        public ValueTask DisposeAsync()
        {
            _select?.Dispose();
            _c?.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    /// <inheritdoc />
    public Task CommitAsync(ProjectionBatch batch, Lease fence, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(fence);
        var now = Now;
        return _store.ExecuteInWriterAsync(c =>
        {
            // Checked in the writer's transaction, where a promotion, a reset or a skip also happens, so none can
            // change it before this batch commits.
            using (var check = c.CreateCommand())
            {
                check.CommandText = "SELECT position FROM projections WHERE name = $n AND version = $v";
                Bind(check, batch.Name, batch.Version);
                var position = check.ExecuteScalar() as long? ?? throw new ProjectionSupersededException(batch.Name, batch.Version);
                if (position != batch.From) throw new ProjectionCheckpointMovedException(batch.Name, batch.Version, batch.From, position);
            }
            SqliteLeaseStore.CheckFence(c, fence, now);
            // A savepoint keeps a failed write's partial changes out of the group transaction other writers share.
            Exec(c, null, "SAVEPOINT projection");
            try
            {
                WriteChanges(c, SqliteProjectionRunner.TableName(batch.Name, batch.Version), batch.Changes);
                using var cmd = c.CreateCommand();
                cmd.CommandText = "UPDATE projections SET position = $p, state = CASE WHEN active = 1 THEN 'Live' ELSE 'Building' END, updated_at = $now WHERE name = $n AND version = $v";
                Bind(cmd, batch.Name, batch.Version);
                cmd.Parameters.AddWithValue("$p", batch.Through);
                cmd.Parameters.AddWithValue("$now", now);
                cmd.ExecuteNonQuery();
                Exec(c, null, "RELEASE projection");
            }
            catch
            {
                Exec(c, null, "ROLLBACK TO projection");
                Exec(c, null, "RELEASE projection");
                throw;
            }
            return null;
        }, cancellationToken);
    }

    /// <summary>Writes document changes to a version's table (in the caller's transaction).</summary>
    internal static void WriteChanges(SqliteConnection c, string table, IReadOnlyList<DocumentChange> changes)
    {
        SqliteCommand? upsert = null, delete = null;
        try
        {
            foreach (var change in changes)
            {
                if (change.Json is null)
                {
                    delete ??= Prepared(c, $"DELETE FROM {table} WHERE key = $k", "$k");
                    delete.Parameters[0].Value = change.Key;
                    delete.ExecuteNonQuery();
                }
                else
                {
                    upsert ??= Prepared(c, $"INSERT OR REPLACE INTO {table}(key, doc) VALUES ($k, $d)", "$k", "$d");
                    upsert.Parameters[0].Value = change.Key;
                    upsert.Parameters[1].Value = change.Json;
                    upsert.ExecuteNonQuery();
                }
            }
        }
        finally
        {
            upsert?.Dispose();
            delete?.Dispose();
        }
    }

    /// <inheritdoc />
    public async Task<bool> PromoteAsync(string name, int version, Lease fence, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fence);
        var now = Now;
        return (bool)(await _store.ExecuteInWriterAsync(c =>
        {
            SqliteLeaseStore.CheckFence(c, fence, now);
            using var check = c.CreateCommand();
            check.CommandText = "SELECT active FROM projections WHERE name = $n AND version = $v";
            Bind(check, name, version);
            switch (check.ExecuteScalar())
            {
                case null: throw new ProjectionSupersededException(name, version);
                case 1L: return false;
            }
            var old = new List<long>();
            using (var list = c.CreateCommand())
            {
                list.CommandText = "SELECT version FROM projections WHERE name = $n AND version <> $v";
                Bind(list, name, version);
                using var r = list.ExecuteReader();
                while (r.Read()) old.Add(r.GetInt64(0));
            }
            using (var swap = c.CreateCommand())
            {
                swap.CommandText = "UPDATE projections SET active = (version = $v), state = CASE WHEN version = $v THEN 'Live' ELSE state END WHERE name = $n; DELETE FROM projections WHERE name = $n AND version <> $v";
                Bind(swap, name, version);
                swap.ExecuteNonQuery();
            }
            foreach (var v in old) Exec(c, null, $"DROP TABLE IF EXISTS {SqliteProjectionRunner.TableName(name, (int)v)}");
            return true;
        }, cancellationToken).ConfigureAwait(false))!;
    }

    /// <inheritdoc />
    public Task RecordFaultAsync(string name, int version, long position, string error, Lease fence, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fence);
        var now = Now;
        return _store.ExecuteInWriterAsync(c =>
        {
            SqliteLeaseStore.CheckFence(c, fence, now);
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE projections SET state = 'Faulted', last_error = $err, failing_position = $p WHERE name = $n AND version = $v";
            Bind(cmd, name, version);
            cmd.Parameters.AddWithValue("$err", error);
            cmd.Parameters.AddWithValue("$p", position);
            return cmd.ExecuteNonQuery();
        }, cancellationToken);
    }

    /// <inheritdoc />
    public async Task<bool> SkipAsync(string name, int version, long position, CancellationToken cancellationToken = default) =>
        (int)(await _store.ExecuteInWriterAsync(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE projections SET position = max(position, $p), state = 'Pending', last_error = NULL, failing_position = NULL WHERE name = $n AND version = $v AND state = 'Faulted' AND failing_position = $p";
            Bind(cmd, name, version);
            cmd.Parameters.AddWithValue("$p", position);
            return cmd.ExecuteNonQuery();
        }, cancellationToken).ConfigureAwait(false))! > 0;

    /// <inheritdoc />
    public Task ResetAsync(string projection, CancellationToken cancellationToken = default) =>
        _store.ExecuteInWriterAsync(c =>
        {
            var table = ActiveTable(c, projection);
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"DELETE FROM {table}; UPDATE projections SET position = 0, state = 'Pending', last_error = NULL, failing_position = NULL WHERE name = $n AND active = 1";
            cmd.Parameters.AddWithValue("$n", projection);
            return cmd.ExecuteNonQuery();
        }, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<ProjectionInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        using var c = _store.OpenReadConnection();
        // One read transaction: a promotion cannot drop a table between the list and its count.
        using var tx = c.BeginTransaction(deferred: true);
        var rows = new List<ProjectionInfo>();
        using (var cmd = c.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = "SELECT name, version, active, position, state, last_error, failing_position FROM projections ORDER BY name, version";
            using var r = cmd.ExecuteReader();
            while (r.Read())
                rows.Add(new ProjectionInfo(r.GetString(0), r.GetInt32(1), r.GetInt64(2) == 1, r.GetInt64(3), r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? null : r.GetInt64(6), 0, 0));
        }
        for (var i = 0; i < rows.Count; i++)
        {
            using var count = c.CreateCommand();
            count.Transaction = tx;
            count.CommandText = $"SELECT count(*) FROM {SqliteProjectionRunner.TableName(rows[i].Name, rows[i].Version)}";
            rows[i] = rows[i] with { Documents = (long)count.ExecuteScalar()! };
        }
        return Task.FromResult<IReadOnlyList<ProjectionInfo>>(rows);
    }

    /// <inheritdoc />
    public async Task<string?> GetJsonAsync(string projection, string key, CancellationToken cancellationToken = default)
    {
        using var c = _store.OpenReadConnection();
        var table = ActiveTable(c, projection);
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT doc FROM {table} WHERE key = $k";
        cmd.Parameters.AddWithValue("$k", key);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<(string Key, string Json)>> QueryAsync(string projection, ProjectionQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        query.Validate();
        using var c = _store.OpenReadConnection();
        var table = ActiveTable(c, projection);
        using var cmd = c.CreateCommand();
        cmd.CommandText = QuerySql(table, query, cmd);
        var list = new List<(string, string)>();
        using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (r.Read()) list.Add((r.GetString(0), r.GetString(1)));
        return list;
    }

    /// <summary>The SQL of a (validated) query over <paramref name="table"/>, binding its values to <paramref name="cmd"/>.</summary>
    internal static string QuerySql(string table, ProjectionQuery query, SqliteCommand cmd)
    {
        var sql = new StringBuilder($"SELECT key, doc FROM {table}");
        for (var i = 0; i < query.Conditions.Count; i++)
        {
            var (field, op, value) = query.Conditions[i];
            var p = $"$p{i}";
            // The kind check makes a string never match a number (SQLite would order every number before every text).
            var kinds = value switch { string => "'text'", bool => "'true', 'false'", _ => "'integer', 'real'" };
            var sqlOp = op.ToSql();
            sql.Append(i == 0 ? " WHERE " : " AND ").Append($"{Extract(field)} {sqlOp} {p} AND json_type(doc, '$.{field}') IN ({kinds})");
            cmd.Parameters.AddWithValue(p, value is bool b ? (b ? 1L : 0L) : value);
        }
        var dir = query.Descending ? " DESC" : "";
        sql.Append(query.OrderBy is { } order ? $" ORDER BY {Extract(order)}{dir}, key{dir}" : $" ORDER BY key{dir}");
        if (query.Take is not null || query.Skip > 0)
        {
            sql.Append(" LIMIT $take OFFSET $skip");
            cmd.Parameters.AddWithValue("$take", (long?)query.Take ?? -1L);
            cmd.Parameters.AddWithValue("$skip", (long)query.Skip);
        }
        return sql.ToString();
    }

    private static string ActiveTable(SqliteConnection c, string projection)
    {
        ArgumentNullException.ThrowIfNull(projection);
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT version FROM projections WHERE name = $n AND active = 1";
        cmd.Parameters.AddWithValue("$n", projection);
        return cmd.ExecuteScalar() is long v
            ? SqliteProjectionRunner.TableName(projection, (int)v)
            : throw new ArgumentException($"There is no projection named '{projection}' in this store.", nameof(projection));
    }

    private static void Bind(SqliteCommand cmd, string name, int version)
    {
        cmd.Parameters.AddWithValue("$n", name);
        cmd.Parameters.AddWithValue("$v", version);
    }

    private static SqliteCommand Prepared(SqliteConnection c, string sql, params string[] parameters)
    {
        var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        foreach (var p in parameters) cmd.Parameters.Add(new SqliteParameter { ParameterName = p });
        return cmd;
    }

    private static void Exec(SqliteConnection c, SqliteTransaction? tx, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
