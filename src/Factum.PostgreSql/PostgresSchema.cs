using Npgsql;

namespace Factum.PostgreSql;

/// <summary>The store's tables, as numbered migrations applied in order inside the store's schema.</summary>
internal static class PostgresSchema
{
    // {s} is the schema. Stream ids and categories use the C collation: ordinal order, as every other backend lists them.
    private static readonly string[] Migrations =
    [
        // v1: the global log, streams and the head (the high-water mark).
        """
        CREATE TABLE {s}.head (
            id       integer PRIMARY KEY CHECK (id = 1),
            position bigint  NOT NULL  -- the last committed position: every event at or below it is visible
        );
        INSERT INTO {s}.head(id, position) VALUES (1, 0);
        CREATE TABLE {s}.streams (
            stream_id       text COLLATE "C" PRIMARY KEY,
            category        text COLLATE "C" NOT NULL,
            state           smallint NOT NULL,          -- 0 not found (metadata only), 1 active, 2 soft-deleted, 3 tombstoned
            start_version   bigint   NOT NULL DEFAULT 0, -- first version of the current life (after a soft delete)
            last_version    bigint   NOT NULL DEFAULT -1,
            last_position   bigint,
            created_at      timestamptz,
            updated_at      timestamptz NOT NULL,
            max_age_ms      bigint,
            max_count       bigint,
            truncate_before bigint,
            custom_metadata bytea
        );
        CREATE INDEX ix_streams_category ON {s}.streams(category, stream_id);
        CREATE TABLE {s}.events (
            position       bigint PRIMARY KEY,          -- assigned under the head's row lock: commit order, no gaps
            stream_id      text COLLATE "C" NOT NULL,
            category       text COLLATE "C" NOT NULL,
            stream_version bigint NOT NULL,
            event_id       uuid   NOT NULL,
            type           text   NOT NULL,
            schema_version integer NOT NULL,
            created_at     timestamptz NOT NULL,
            correlation_id text   NOT NULL,
            causation_id   text,
            metadata       bytea,
            payload        bytea  NOT NULL
        );
        CREATE UNIQUE INDEX ix_events_stream ON {s}.events(stream_id, stream_version);
        CREATE INDEX ix_events_event_id ON {s}.events(stream_id, event_id);
        CREATE INDEX ix_events_correlation ON {s}.events(correlation_id, position);
        """,
        // v2: leases, subscription checkpoints and parked events, aggregate snapshots.
        """
        CREATE TABLE {s}.leases (
            name        text COLLATE "C" PRIMARY KEY,
            owner       text,                       -- null once released
            token       bigint      NOT NULL,       -- the fencing token: grows every time the lease changes hands
            expires_at  timestamptz NOT NULL,
            acquired_at timestamptz NOT NULL
        );
        CREATE TABLE {s}.checkpoints (
            subscription_id text COLLATE "C" PRIMARY KEY,
            position        bigint      NOT NULL,
            updated_at      timestamptz NOT NULL
        );
        CREATE TABLE {s}.parked_events (
            subscription_id  text COLLATE "C" NOT NULL,
            position         bigint  NOT NULL,
            event_id         uuid    NOT NULL,
            stream_id        text    NOT NULL,
            stream_version   bigint  NOT NULL,
            type             text    NOT NULL,
            error_type       text    NOT NULL,
            error_message    text    NOT NULL,
            error_detail     text,
            attempts         integer NOT NULL,
            first_failure_at timestamptz NOT NULL,
            last_failure_at  timestamptz NOT NULL,
            PRIMARY KEY (subscription_id, position)
        );
        CREATE TABLE {s}.snapshots (
            stream_id      text COLLATE "C" PRIMARY KEY,
            version        bigint      NOT NULL,
            schema_version integer     NOT NULL,
            payload        bytea       NOT NULL,
            taken_at       timestamptz NOT NULL
        );
        """,
        // v3: projections. Each version's read model lives in a table of its own, "rm_<name>_v<version>" (key, jsonb
        // doc), created when the version registers; this is the record of every version.
        """
        CREATE TABLE {s}.projections (
            name             text COLLATE "C" NOT NULL,
            version          integer NOT NULL,
            active           boolean NOT NULL DEFAULT false, -- the version queries read
            position         bigint  NOT NULL DEFAULT 0,     -- the checkpoint: every event up to here is in its documents
            state            text    NOT NULL,               -- Building, Live, Faulted or Pending
            last_error       text,
            failing_position bigint,
            updated_at       timestamptz NOT NULL,
            PRIMARY KEY (name, version)
        );
        -- At most one active version per projection, whatever happens concurrently.
        CREATE UNIQUE INDEX ix_projections_active ON {s}.projections(name) WHERE active;
        """,
        // v4: the message store (PostgresMessageStore): inboxes, the outbox handed to the transport by the outbox
        // dispatcher (deliver_at schedules a send), and the dead letters of durable endpoints with their holds. The
        // message columns (MessageColumns, below) are those of SQLite's message tables (headers as the same JSON text, so
        // that a header value with U+0000, which jsonb refuses, is kept). Identity ids are never reused: a dispatcher completes entries by
        // id, and an operator replays or discards dead letters by the id they were shown.
        """
        CREATE TABLE {s}.msg_inbox (
            inbox      text COLLATE "C" NOT NULL,
            message_id uuid        NOT NULL,
            handled_at timestamptz NOT NULL,
            PRIMARY KEY (inbox, message_id)        -- decides between racing commits of one message
        );
        CREATE INDEX ix_msg_inbox_age ON {s}.msg_inbox(handled_at);
        CREATE TABLE {s}.msg_outbox (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- commit order (assigned under the outbox lock)
            dest_kind      text NOT NULL CHECK (dest_kind IN ('queue', 'topic')),
            destination    text COLLATE "C" NOT NULL,
            deliver_at     timestamptz,            -- NULL: due at once
            enqueued_at    timestamptz NOT NULL,
            {message_columns}
        );
        -- Due reads take the unscheduled entries in id order (deliver_at IS NULL) and the scheduled ones by due time.
        CREATE INDEX ix_msg_outbox_due ON {s}.msg_outbox(deliver_at, id);
        CREATE TABLE {s}.msg_store_dead_letters (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source_kind      text COLLATE "C" NOT NULL, -- Queue, Subscription or Stream
            source           text COLLATE "C" NOT NULL,
            grp              text COLLATE "C",
            source_partition integer,              -- SQLite's partition and offset (OFFSET is reserved here)
            source_offset    bigint,
            exception_type   text    NOT NULL,
            error            text    NOT NULL,
            stack_trace      text,
            attempts         integer NOT NULL,
            first_failure    timestamptz NOT NULL,
            last_failure     timestamptz NOT NULL,
            dead_lettered_at timestamptz NOT NULL,
            held_behind      bigint,               -- the dead letter holding this one's key when it came
            hold_key         boolean NOT NULL DEFAULT false, -- true: later messages of its key go behind it
            {message_columns}
        );
        -- One letter per message and source, also between racing commits (a redelivery that failed again).
        CREATE UNIQUE INDEX ix_msg_store_dead_letters_message ON {s}.msg_store_dead_letters(message_id, source_kind, source, grp) NULLS NOT DISTINCT;
        CREATE INDEX ix_msg_store_dead_letters_source ON {s}.msg_store_dead_letters(source, grp);
        CREATE INDEX ix_msg_store_dead_letters_behind ON {s}.msg_store_dead_letters(held_behind) WHERE held_behind IS NOT NULL;
        CREATE INDEX ix_msg_store_dead_letters_hold ON {s}.msg_store_dead_letters(source, grp, partition_key, id) WHERE hold_key;
        """,
    ];

    /// <summary>The message envelope's columns: the one list the message tables and their statements take them from.</summary>
    private static readonly (string Name, string Type)[] MessageColumns =
    [
        ("message_id", "uuid NOT NULL"), ("type", "text NOT NULL"), ("schema_version", "integer NOT NULL"), ("created_at", "timestamptz NOT NULL"),
        ("correlation_id", "text NOT NULL"), ("causation_id", "text"), ("reply_to", "text"), ("partition_key", "text COLLATE \"C\""),
        ("headers", "text"), ("body", "bytea NOT NULL"),
    ];

    /// <summary>The message columns' names, comma-separated, in table order.</summary>
    internal static readonly string MessageColumnNames = string.Join(", ", MessageColumns.Select(c => c.Name));

    private static readonly string MessageColumnDefinitions = string.Join(",\n            ", MessageColumns.Select(c => $"{c.Name,-16} {c.Type}"));

    public static int LatestVersion => Migrations.Length;

    /// <summary>The SQL that brings a schema from <paramref name="from"/> to the latest version (what <c>factum migrate --print</c> shows).</summary>
    public static string Script(string schema, int from)
    {
        var parts = new List<string> { $"CREATE SCHEMA IF NOT EXISTS {schema};", $"CREATE TABLE IF NOT EXISTS {schema}.factum_meta (key text PRIMARY KEY, value text NOT NULL);" };
        for (var v = from; v < Migrations.Length; v++)
        {
            parts.Add(Migrations[v].Replace("{message_columns}", MessageColumnDefinitions, StringComparison.Ordinal).Replace("{s}", schema, StringComparison.Ordinal));
            parts.Add($"INSERT INTO {schema}.factum_meta(key, value) VALUES ('schema_version', '{v + 1}') ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;");
        }
        return string.Join("\n", parts);
    }

    /// <summary>
    /// Applies pending migrations (or, when <paramref name="migrate"/> is false, refuses an outdated schema), under a
    /// transaction-scoped advisory lock so that nodes starting together migrate once. Refuses a schema newer than this code.
    /// </summary>
    public static async Task EnsureAsync(NpgsqlDataSource source, string schema, bool migrate, CancellationToken ct)
    {
        var c = await source.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var cScope = c.ConfigureAwait(false);
        var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext($1))", c, tx))
        {
            lockCmd.Parameters.AddWithValue("factum-migrate:" + schema);
            await lockCmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        var current = await CurrentVersionAsync(c, tx, schema, ct).ConfigureAwait(false);
        if (current > LatestVersion)
            throw new InvalidOperationException($"The schema '{schema}' is at version {current}, newer than this build of Factum understands ({LatestVersion}); upgrade Factum, or point it at another schema.");
        if (current < LatestVersion)
        {
            if (!migrate && current == 0)
                throw new PostgresStoreNotFoundException($"There is no Factum store in the schema '{schema}' of this database yet; a command that writes (or factum migrate) creates it.");
            if (!migrate)
                throw new InvalidOperationException($"The schema '{schema}' is at version {current} and this build needs {LatestVersion}; apply the migrations (factum migrate, or open it with MigrateOnStart = true).");
            using var apply = new NpgsqlCommand(Script(schema, current), c, tx);
            await apply.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>The schema's version now (0: no store) and the SQL that would bring it to the latest, without applying it.</summary>
    public static async Task<(int Current, string Script)> PlanAsync(string connectionString, string schema, CancellationToken ct)
    {
        var c = new NpgsqlConnection(connectionString);
        await using var cScope = c.ConfigureAwait(false);
        await c.OpenAsync(ct).ConfigureAwait(false);
        var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using var txScope = tx.ConfigureAwait(false);
        var current = await CurrentVersionAsync(c, tx, schema, ct).ConfigureAwait(false);
        return (current, current >= LatestVersion ? "" : Script(schema, current));
    }

    private static async Task<int> CurrentVersionAsync(NpgsqlConnection c, NpgsqlTransaction tx, string schema, CancellationToken ct)
    {
        using var exists = new NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL", c, tx);
        exists.Parameters.AddWithValue(schema + ".factum_meta");
        if (!(bool)(await exists.ExecuteScalarAsync(ct).ConfigureAwait(false))!) return 0;
        using var read = new NpgsqlCommand($"SELECT value FROM {schema}.factum_meta WHERE key = 'schema_version'", c, tx);
        return await read.ExecuteScalarAsync(ct).ConfigureAwait(false) is string v ? int.Parse(v, System.Globalization.CultureInfo.InvariantCulture) : 0;
    }
}

/// <summary>The database holds no Factum store in the schema asked for (and the store was opened without creating one).</summary>
public sealed class PostgresStoreNotFoundException(string message) : FactumException(message);
