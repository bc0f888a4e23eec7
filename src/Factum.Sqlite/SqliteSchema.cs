using Microsoft.Data.Sqlite;

namespace Factum.Sqlite;

/// <summary>The file format: versioned, migrated forward on open, refused when written by a newer Factum.</summary>
internal static class SqliteSchema
{
    public const string FormatName = "factum-store";

    /// <summary>
    /// The columns every stored message has, in msg_log, msg_queue, msg_dead_letters, msg_outbox and msg_store_dead_letters:
    /// one list, so the tables, the statements (<see cref="MessageColumnNames"/>) and a future backend cannot drift apart.
    /// </summary>
    private static readonly (string Name, string Type)[] MessageColumns =
    [
        ("message_id", "BLOB    NOT NULL"), ("type", "TEXT    NOT NULL"), ("schema_version", "INTEGER NOT NULL"), ("created_at", "INTEGER NOT NULL"),
        ("correlation_id", "TEXT    NOT NULL"), ("causation_id", "TEXT"), ("reply_to", "TEXT"), ("partition_key", "TEXT"), ("headers", "TEXT"),
        ("body", "BLOB    NOT NULL"),
    ];

    /// <summary>The message columns' names, comma-separated, in table order.</summary>
    internal static readonly string MessageColumnNames = string.Join(", ", MessageColumns.Select(c => c.Name));

    private static readonly string MessageColumnDefinitions = string.Join(",\n            ", MessageColumns.Select(c => $"{c.Name,-14} {c.Type}"));

    /// <summary>Migrations by target version; each runs in its own transaction.</summary>
    private static readonly string[] Migrations =
    [
        // v1: streams, events, store metadata.
        """
        CREATE TABLE streams (
            stream_key      INTEGER PRIMARY KEY,
            stream_id       TEXT    NOT NULL UNIQUE,
            category        TEXT    NOT NULL,
            state           INTEGER NOT NULL,           -- 0 not found (metadata only), 1 active, 2 soft-deleted, 3 tombstoned
            start_version   INTEGER NOT NULL DEFAULT 0, -- first version of the current life (after a soft delete)
            changed_at      INTEGER NOT NULL,           -- UTC ticks of the last state or metadata change
            max_age_ms      INTEGER,
            max_count       INTEGER,
            truncate_before INTEGER,
            custom_metadata BLOB
            -- The last version, last position and creation time are derived from the events index, so an append to an
            -- existing stream writes no stream row: one page fewer per commit.
        );
        CREATE INDEX ix_streams_category ON streams(category, stream_id);
        CREATE TABLE events (
            position       INTEGER PRIMARY KEY,         -- the global position: assigned in commit order by the single writer
            stream_key     INTEGER NOT NULL REFERENCES streams(stream_key),
            stream_version INTEGER NOT NULL,
            event_id       BLOB    NOT NULL,
            type           TEXT    NOT NULL,
            schema_version INTEGER NOT NULL,
            created_at     INTEGER NOT NULL,
            correlation_id TEXT    NOT NULL,
            causation_id   TEXT,
            metadata       BLOB,
            payload        BLOB    NOT NULL
        );
        CREATE UNIQUE INDEX ix_events_stream ON events(stream_key, stream_version);
        CREATE INDEX ix_events_event_id ON events(event_id);
        """,
        // v2: subscription checkpoints and dead-letter sets.
        """
        CREATE TABLE checkpoints (
            subscription_id TEXT    PRIMARY KEY,
            position        INTEGER NOT NULL,
            updated_at      INTEGER NOT NULL
        );
        CREATE TABLE parked_events (
            subscription_id  TEXT    NOT NULL,
            position         INTEGER NOT NULL,
            event_id         BLOB    NOT NULL,
            stream_id        TEXT    NOT NULL,
            stream_version   INTEGER NOT NULL,
            type             TEXT    NOT NULL,
            error_type       TEXT    NOT NULL,
            error_message    TEXT    NOT NULL,
            error_detail     TEXT,
            attempts         INTEGER NOT NULL,
            first_failure_at INTEGER NOT NULL,
            last_failure_at  INTEGER NOT NULL,
            PRIMARY KEY (subscription_id, position)
        );
        """,
        // v3: aggregate snapshots, kept apart from the streams.
        """
        CREATE TABLE snapshots (
            stream_id      TEXT    PRIMARY KEY,
            version        INTEGER NOT NULL,
            schema_version INTEGER NOT NULL,
            payload        BLOB    NOT NULL,
            taken_at       INTEGER NOT NULL
        );
        """,
        // v4: the correlation index behind `factum trace`, maintained by SQLite in the append's own transaction.
        """
        CREATE INDEX ix_events_correlation ON events(correlation_id);
        """,
        // v5: projections (each version's read model lives in its own table, rm_<name>_v<version>).
        """
        CREATE TABLE projections (
            name             TEXT    NOT NULL,
            version          INTEGER NOT NULL,
            active           INTEGER NOT NULL DEFAULT 0,
            position         INTEGER NOT NULL DEFAULT 0,
            state            TEXT    NOT NULL,
            last_error       TEXT,
            failing_position INTEGER,
            updated_at       INTEGER NOT NULL,
            PRIMARY KEY (name, version)
        );
        """,
        // v6: messaging (topics, stream logs, queues with leases, consumer groups, inbox, dead letters).
        $"""
        CREATE TABLE msg_topics (
            topic      TEXT PRIMARY KEY,
            partitions INTEGER NOT NULL DEFAULT 0,
            max_age_ms INTEGER,
            max_bytes  INTEGER,
            max_count  INTEGER
        ) WITHOUT ROWID;
        CREATE TABLE msg_subscriptions (
            topic TEXT NOT NULL,
            grp   TEXT NOT NULL,
            PRIMARY KEY (topic, grp)
        ) WITHOUT ROWID;
        CREATE TABLE msg_partitions (
            topic        TEXT    NOT NULL,
            partition    INTEGER NOT NULL,
            start_offset INTEGER NOT NULL DEFAULT 0,
            next_offset  INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (topic, partition)
        ) WITHOUT ROWID;
        CREATE TABLE msg_log (
            topic          TEXT    NOT NULL,
            partition      INTEGER NOT NULL,
            offset         INTEGER NOT NULL,
            appended_at    INTEGER NOT NULL,
            {MessageColumnDefinitions},
            PRIMARY KEY (topic, partition, offset)
        ) WITHOUT ROWID;
        CREATE TABLE msg_queues (
            queue      TEXT PRIMARY KEY,
            created_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE msg_queue (
            seq            INTEGER PRIMARY KEY,
            queue          TEXT    NOT NULL,
            visible_at     INTEGER NOT NULL,
            lease_token    TEXT,
            lease_owner    TEXT,
            attempts       INTEGER NOT NULL DEFAULT 0,
            first_failure  INTEGER,
            enqueued_at    INTEGER NOT NULL,
            {MessageColumnDefinitions}
        );
        CREATE INDEX ix_msg_queue_visible ON msg_queue(queue, visible_at, seq);
        CREATE INDEX ix_msg_queue_key ON msg_queue(queue, partition_key, seq) WHERE partition_key IS NOT NULL;
        CREATE TABLE msg_consumers (
            queue     TEXT    NOT NULL,
            consumer  TEXT    NOT NULL,
            last_seen INTEGER NOT NULL,
            PRIMARY KEY (queue, consumer)
        ) WITHOUT ROWID;
        CREATE TABLE msg_inbox (
            inbox      TEXT    NOT NULL,
            message_id BLOB    NOT NULL,
            handled_at INTEGER NOT NULL,
            PRIMARY KEY (inbox, message_id)
        ) WITHOUT ROWID;
        CREATE INDEX ix_msg_inbox_age ON msg_inbox(handled_at);
        CREATE TABLE msg_group_members (
            topic     TEXT    NOT NULL,
            grp       TEXT    NOT NULL,
            member    TEXT    NOT NULL,
            last_seen INTEGER NOT NULL,
            PRIMARY KEY (topic, grp, member)
        ) WITHOUT ROWID;
        CREATE TABLE msg_group_offsets (
            topic     TEXT    NOT NULL,
            grp       TEXT    NOT NULL,
            partition INTEGER NOT NULL,
            committed INTEGER NOT NULL DEFAULT 0,
            owner     TEXT,
            PRIMARY KEY (topic, grp, partition)
        ) WITHOUT ROWID;
        CREATE TABLE msg_holds (
            source  TEXT    NOT NULL,
            grp     TEXT    NOT NULL,
            key     TEXT    NOT NULL,
            blocker INTEGER,
            PRIMARY KEY (source, grp, key)
        ) WITHOUT ROWID;
        CREATE TABLE msg_dead_letters (
            id               INTEGER PRIMARY KEY,
            source_kind      TEXT    NOT NULL,
            source           TEXT    NOT NULL,
            grp              TEXT,
            partition        INTEGER,
            offset           INTEGER,
            exception_type   TEXT    NOT NULL,
            error            TEXT    NOT NULL,
            stack_trace      TEXT,
            attempts         INTEGER NOT NULL,
            first_failure    INTEGER NOT NULL,
            last_failure     INTEGER NOT NULL,
            dead_lettered_at INTEGER NOT NULL,
            held_behind      INTEGER,
            {MessageColumnDefinitions}
        );
        CREATE INDEX ix_msg_dead_letters_source ON msg_dead_letters(source, grp);
        CREATE INDEX ix_msg_dead_letters_held ON msg_dead_letters(held_behind) WHERE held_behind IS NOT NULL;
        """,
        // v7: a checksum per event (see EventChecksum), written with the row and checked on every read. Rows written
        // before v7 keep NULL: they were not checksummed when written, and computing one now would bless whatever the
        // file holds today.
        """
        ALTER TABLE events ADD COLUMN checksum INTEGER;
        -- From this position on every event has a checksum: a missing one there is damage, not an old row.
        INSERT OR REPLACE INTO factum_meta(key, value) SELECT 'checksums_from', CAST(COALESCE(MAX(position), 0) + 1 AS TEXT) FROM events;
        ALTER TABLE msg_consumers ADD COLUMN live_until INTEGER; -- a consumer is listed as live until its last heartbeat lapses
        """,
        // v8: leases, so that one process at a time runs each projection and relay (see SqliteLeaseStore). The token
        // only grows, also across releases, so a write fenced by an old token is refused forever.
        """
        CREATE TABLE leases (
            name        TEXT    PRIMARY KEY,
            owner       TEXT,
            token       INTEGER NOT NULL,
            expires_at  INTEGER NOT NULL,
            acquired_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        """,
        // v9: the message store (SqliteMessageStore): the outbox of what durable endpoints' handlers produced, handed to
        // the transport by the outbox dispatcher (deliver_at schedules a send), and those endpoints' dead letters, which
        // are not the transport's (msg_dead_letters). AUTOINCREMENT so that an id is never reused: a dispatcher completes
        // entries by id, and an operator replays or discards dead letters by the id they were shown.
        $"""
        CREATE TABLE msg_outbox (
            id               INTEGER PRIMARY KEY AUTOINCREMENT, -- commit order
            dest_kind        TEXT    NOT NULL,                  -- 'topic' or 'queue'
            destination      TEXT    NOT NULL,
            deliver_at       INTEGER,                           -- UTC ticks; NULL: due at once
            enqueued_at      INTEGER NOT NULL,
            {MessageColumnDefinitions}
        );
        -- Due reads take the unscheduled entries in id order (deliver_at IS NULL) and the scheduled ones by due time.
        CREATE INDEX ix_msg_outbox_due ON msg_outbox(deliver_at, id);
        CREATE TABLE msg_store_dead_letters (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            source_kind      TEXT    NOT NULL,
            source           TEXT    NOT NULL,
            grp              TEXT,
            partition        INTEGER,
            offset           INTEGER,
            exception_type   TEXT    NOT NULL,
            error            TEXT    NOT NULL,
            stack_trace      TEXT,
            attempts         INTEGER NOT NULL,
            first_failure    INTEGER NOT NULL,
            last_failure     INTEGER NOT NULL,
            dead_lettered_at INTEGER NOT NULL,
            held_behind      INTEGER,                           -- the dead letter holding this one's key when it came
            hold_key         INTEGER NOT NULL DEFAULT 0,        -- 1: later messages of its key go behind it
            {MessageColumnDefinitions}
        );
        CREATE INDEX ix_msg_store_dead_letters_source ON msg_store_dead_letters(source, grp);
        CREATE INDEX ix_msg_store_dead_letters_message ON msg_store_dead_letters(message_id);
        CREATE INDEX ix_msg_store_dead_letters_behind ON msg_store_dead_letters(held_behind) WHERE held_behind IS NOT NULL;
        CREATE INDEX ix_msg_store_dead_letters_hold ON msg_store_dead_letters(source, grp, partition_key, id) WHERE hold_key = 1;
        """,
    ];

    public static int LatestVersion => Migrations.Length;

    /// <summary>Checks the file is a Factum store (or empty), then applies pending migrations.</summary>
    public static void EnsureCreated(SqliteConnection connection, string path)
    {
        using (var check = connection.CreateCommand())
        {
            check.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name";
            var tables = new List<string>();
            using (var r = check.ExecuteReader())
            {
                while (r.Read()) tables.Add(r.GetString(0));
            }
            if (tables.Count > 0 && !tables.Contains("factum_meta"))
                throw new StoreFormatException($"'{path}' is a SQLite database but not a Factum store (it has the tables {string.Join(", ", tables.Take(10))}). Use a new file or another --data directory.");
        }

        // An up-to-date store needs no write: check without the write lock, so opening a store to read it never waits
        // for (or fails on) another process that holds the write lock. Only a migration takes it.
        if (IsCurrent(connection)) return;
        using var tx = connection.BeginTransaction();
        Execute(connection, tx, "CREATE TABLE IF NOT EXISTS factum_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
        var format = Scalar(connection, tx, "SELECT value FROM factum_meta WHERE key = 'format'");
        if (format is null)
        {
            Execute(connection, tx, $"INSERT INTO factum_meta(key, value) VALUES ('format', '{FormatName}'), ('schema_version', '0')");
        }
        else if (format != FormatName)
        {
            throw new StoreFormatException($"'{path}' has a factum_meta table but its format is '{format}', not '{FormatName}'.");
        }
        var versionText = Scalar(connection, tx, "SELECT value FROM factum_meta WHERE key = 'schema_version'");
        if (!int.TryParse(versionText, System.Globalization.CultureInfo.InvariantCulture, out var version) || version < 0)
            throw new StoreFormatException($"'{path}' has an unreadable schema version '{versionText}'; the file is damaged.");
        if (version > LatestVersion)
            throw new StoreFormatException($"'{path}' was written by a newer Factum (schema v{version}); this build reads up to v{LatestVersion}. Upgrade Factum.");
        for (var v = version; v < LatestVersion; v++)
        {
            Execute(connection, tx, Migrations[v]);
            Execute(connection, tx, $"UPDATE factum_meta SET value = '{v + 1}' WHERE key = 'schema_version'");
        }
        tx.Commit();
    }

    /// <summary>For read-only use: the file is a Factum store at the current schema version (nothing can be migrated).</summary>
    public static void EnsureReadable(SqliteConnection connection, string path)
    {
        if (IsCurrent(connection)) return;
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'factum_meta'";
        if (cmd.ExecuteScalar() is not 1L) throw new StoreFormatException($"'{path}' is not a Factum store (it has no factum_meta table).");
        cmd.CommandText = "SELECT value FROM factum_meta WHERE key = 'schema_version'";
        var version = cmd.ExecuteScalar() as string;
        throw new StoreFormatException($"'{path}' has schema v{version}; this build reads v{LatestVersion}. A read-only store cannot be migrated: open it once with write access (or with the Factum that wrote it).");
    }

    /// <summary>The first position written with a checksum (see migration v7); 1 for a store created at v7 or later.</summary>
    public static long ChecksumsFrom(SqliteConnection connection)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT value FROM factum_meta WHERE key = 'checksums_from'";
        return long.TryParse(cmd.ExecuteScalar() as string, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var p) && p >= 1 ? p : 1;
    }

    /// <summary>Reads the schema list: fails now, not on the first query, when the file cannot be read this way.</summary>
    public static void Probe(SqliteConnection connection)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM sqlite_master";
        cmd.ExecuteScalar();
    }

    private static bool IsCurrent(SqliteConnection c)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'factum_meta'";
        if (cmd.ExecuteScalar() is not 1L) return false;
        cmd.CommandText = "SELECT (SELECT value FROM factum_meta WHERE key = 'format'), (SELECT value FROM factum_meta WHERE key = 'schema_version')";
        using var r = cmd.ExecuteReader();
        return r.Read() && !r.IsDBNull(0) && r.GetString(0) == FormatName && !r.IsDBNull(1)
               && r.GetString(1) == LatestVersion.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void Execute(SqliteConnection c, SqliteTransaction tx, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static string? Scalar(SqliteConnection c, SqliteTransaction tx, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        return cmd.ExecuteScalar() as string;
    }
}
