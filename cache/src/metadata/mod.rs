//! The metadata database: records, their snapshots, leases, cache keys and blob sources, in
//! SQLite at `<root>/metadata.db`.
//!
//! Several processes open one database at once: WAL lets readers run beside one writer,
//! `busy_timeout` makes a writer wait for another instead of failing, and every change that
//! touches more than one row runs in one `IMMEDIATE` transaction (taking the write lock up
//! front, so two processes never deadlock upgrading read transactions). `synchronous=FULL`
//! because the crash-safety order depends on it: files are renamed into place before the
//! row that names them commits, and on delete the row goes first and the files after. A
//! deleted row that came back after a power loss would point at files already gone.

mod cache_keys;
mod file_hashes;
mod leases;
mod records;
mod schema;
mod solver_keys;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

pub use file_hashes::{FileHash, FileStamp};
pub use leases::{LeaseId, OwnerSweep};
pub use records::{LayerBlob, NewRecord, Record, RecordId, RecordKind, RecordState, Removed};

/// How long a writer waits for another process's transaction before giving up. Generous:
/// transactions are short, but a slow disk under a parallel extraction can stall fsyncs.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the metadata database.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata database {path}: {op}")]
    Sqlite {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "metadata database {path} has schema version {found}, newer than this cairn knows \
         ({known}); use a newer cairn or another --root"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("metadata database: record {id} is corrupt: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("metadata database: record {0} does not exist")]
    NoSuchRecord(String),
    #[error("metadata database: record {id} is still used by {users}")]
    InUse { id: String, users: String },
}

/// The metadata database of one state root. Cheap operations, all synchronous: each is one
/// short transaction.
#[derive(Debug)]
pub struct MetadataDb {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl MetadataDb {
    /// Opens (creating and migrating as needed) `<state_root>/metadata.db`.
    pub fn open(state_root: &Path) -> Result<MetadataDb, MetadataError> {
        let path = state_root.join("metadata.db");
        let err = |op| {
            let path = path.clone();
            move |source| MetadataError::Sqlite { op, path, source }
        };
        let conn = Connection::open(&path).map_err(err("opening"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(err("setting busy_timeout"))?;
        // SQLite does not call the busy handler for the exclusive lock this takes, so another
        // process opening the same fresh database at once makes it fail "database is locked".
        let mode: String = retry_while_busy(|| {
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        })
        .map_err(err("enabling WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "metadata database is not in WAL mode");
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err("setting synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err("enabling foreign keys"))?;
        let db = MetadataDb {
            path,
            conn: Mutex::new(conn),
        };
        db.migrate()?;
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version this database is at.
    pub fn schema_version(&self) -> Result<i64, MetadataError> {
        self.read("reading schema version", |c| {
            Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?)
        })
    }

    fn migrate(&self) -> Result<(), MetadataError> {
        let known = MIGRATIONS_LEN;
        let path = self.path.clone();
        self.write("migrating schema", move |tx| {
            let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if found > known {
                return Err(Fail::Domain(MetadataError::TooNew { path, found, known }));
            }
            for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", i as i64 + 1)?;
            }
            Ok(())
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the guard cannot leave a transaction open: the
        // `Transaction` rolls back on drop. So the connection behind a poisoned lock is fine.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the connection outside an explicit transaction (single statements).
    fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T, Fail>,
    ) -> Result<T, MetadataError> {
        let conn = self.lock();
        f(&conn).map_err(|e| e.into_error(op, &self.path))
    }

    /// Runs `f` in one IMMEDIATE transaction, committed if `f` succeeds.
    fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, Fail>,
    ) -> Result<T, MetadataError> {
        let mut conn = self.lock();
        let run = |conn: &mut Connection| -> Result<T, Fail> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        };
        run(&mut conn).map_err(|e| e.into_error(op, &self.path))
    }
}

/// Runs `f` again while it fails with SQLITE_BUSY, for up to [`BUSY_TIMEOUT`]: for the few
/// statements where SQLite returns busy at once instead of waiting in its busy handler.
fn retry_while_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

const MIGRATIONS_LEN: i64 = schema::MIGRATIONS.len() as i64;

/// An error inside a transaction body: SQLite's (context added at the boundary) or ours.
enum Fail {
    Sql(rusqlite::Error),
    Domain(MetadataError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<MetadataError> for Fail {
    fn from(e: MetadataError) -> Self {
        Fail::Domain(e)
    }
}

impl Fail {
    fn into_error(self, op: &'static str, path: &Path) -> MetadataError {
        match self {
            Fail::Sql(source) => MetadataError::Sqlite {
                op,
                path: path.to_owned(),
                source,
            },
            Fail::Domain(e) => e,
        }
    }
}

/// Seconds since the epoch, for created/last-used columns (never part of a cache key).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
