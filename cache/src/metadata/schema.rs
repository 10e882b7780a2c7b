//! The database schema, as an append-only list of migrations. `pragma user_version` holds
//! how many have been applied; a database from a newer cairn (a higher version) is refused
//! rather than misread.

/// Each entry moves the schema from version `i` to `i + 1`. Never edit a released entry:
/// append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: records, parents, snapshots, leases, cache keys, blob sources.
    r#"
    CREATE TABLE records (
        id              TEXT PRIMARY KEY,
        kind            TEXT NOT NULL CHECK (kind IN ('layer', 'merge', 'diff', 'mutable')),
        -- 'incomplete': an operation of process `owner` is still building it; swept once
        -- that owner is dead. Everything else is 'complete'.
        state           TEXT NOT NULL CHECK (state IN ('complete', 'incomplete')),
        owner           TEXT,
        parent          TEXT REFERENCES records(id) ON DELETE RESTRICT,
        blob_digest     TEXT,
        blob_media_type TEXT,
        blob_size       INTEGER,
        blob_descriptor TEXT,
        diff_id         TEXT,
        chain_id        TEXT,
        blob_chain_id   TEXT,
        snapshot_id     TEXT NOT NULL,
        description     TEXT NOT NULL DEFAULT '',
        created_at      INTEGER NOT NULL,
        last_used_at    INTEGER NOT NULL,
        usage_count     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX records_blob_chain ON records (blob_chain_id);
    CREATE INDEX records_chain ON records (chain_id);
    CREATE INDEX records_parent ON records (parent);
    CREATE INDEX records_snapshot ON records (snapshot_id);
    CREATE INDEX records_blob ON records (blob_digest);

    -- Merge inputs in order, or a diff's lower (0) and upper (1).
    CREATE TABLE record_parents (
        child    TEXT NOT NULL REFERENCES records(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        parent   TEXT NOT NULL REFERENCES records(id) ON DELETE RESTRICT,
        PRIMARY KEY (child, position)
    );
    CREATE INDEX record_parents_parent ON record_parents (parent);

    -- A row exists only once the snapshot is committed on disk (renamed into place first).
    CREATE TABLE snapshots (
        id         TEXT PRIMARY KEY,
        size       INTEGER,
        created_at INTEGER NOT NULL
    );

    -- owner NOT NULL: held by a live process (a ref handle), swept when it dies.
    -- owner NULL: a persistent, named lease, released explicitly.
    CREATE TABLE leases (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        record_id  TEXT NOT NULL REFERENCES records(id) ON DELETE CASCADE,
        owner      TEXT,
        name       TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX leases_record ON leases (record_id);
    CREATE INDEX leases_owner ON leases (owner);

    CREATE TABLE cache_keys (
        key        TEXT NOT NULL,
        output     INTEGER NOT NULL,
        record_id  TEXT NOT NULL REFERENCES records(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (key, output, record_id)
    );
    CREATE INDEX cache_keys_record ON cache_keys (record_id);

    -- Where a blob can be had remotely ("registry/repository"), for lazy pulls and
    -- cross-repository mounts on push.
    CREATE TABLE blob_sources (
        digest TEXT NOT NULL,
        source TEXT NOT NULL,
        PRIMARY KEY (digest, source)
    );
    "#,
    // 2: the solver's cache keys: key -> the canonical key downstream keys build on, and
    // the result ids of every output (JSON list). A result id whose record was pruned
    // makes the row a miss, never a wrong hit, so rows need no foreign keys.
    r#"
    CREATE TABLE solver_keys (
        key        TEXT PRIMARY KEY,
        canonical  TEXT NOT NULL,
        results    TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    "#,
    // 3: the stat cache of content checksums (`file_hashes`): per scope (a snapshot id, or
    // a build context on the host) and path, the sha256 of a regular file's bytes with the
    // metadata it was read with. A snapshot's rows go with its `snapshots` row.
    r#"
    CREATE TABLE file_hashes (
        scope    TEXT NOT NULL,
        path     TEXT NOT NULL,
        dev      INTEGER NOT NULL,
        ino      INTEGER NOT NULL,
        size     INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        sha256   BLOB NOT NULL,
        PRIMARY KEY (scope, path)
    ) WITHOUT ROWID;
    "#,
];
