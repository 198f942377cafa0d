//! The connections of a [`SqliteStore`](super::SqliteStore): the writer (on its own thread,
//! see [`writer`](super::writer)), readers opened on demand, and a background checkpointer
//! (see [`checkpoints`](super::checkpoints)).
//! Reads run on the calling thread: a primary-key read of a page-cached database takes
//! microseconds, less than handing it to another thread and back (what sqlx's SQLite driver
//! did for every statement).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::checkpoints::{self, Checkpointer, Pace};
use super::writer::Writer;
use crate::error::StoreError;

/// How long a connection waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle reader connections kept for reuse; more are closed when they come back.
const MAX_IDLE_READERS: usize = 16;

/// Prepared statements kept per connection (the fixed ones, and `apply`'s per key set).
const STATEMENT_CACHE: usize = 64;

/// Where the database lives.
#[derive(Debug, Clone)]
pub(super) enum Location {
    /// A file, and how to open it.
    File { path: PathBuf, create: bool },
    /// In memory: one connection, the writer, serves reads too (another connection would open
    /// another database).
    Memory,
}

/// The connections of one store; shared by its clones.
pub(super) struct Connections {
    location: Location,
    writer: Writer,
    /// Idle reader connections (file databases only).
    readers: Mutex<Vec<Connection>>,
    checkpoints: Option<Arc<Checkpointer>>,
}

impl Connections {
    /// Opens the writer (which switches a file to WAL) and starts its thread and, for a file,
    /// the checkpointer.
    pub(super) fn open(location: Location) -> Result<Self, StoreError> {
        let writer = open(&location, true)?;
        let checkpoints = match &location {
            Location::File { .. } => Some(Arc::new(Checkpointer::start(open(&location, false)?)?)),
            Location::Memory => None,
        };
        let nudge = checkpoints.clone();
        let mut pace = Pace::default();
        // Runs on the writer thread, whose connection's commits `log_pages` reports.
        let writer = Writer::start(writer, move || {
            if let Some(checkpoints) = &nudge {
                if pace.ask(checkpoints::log_pages()) {
                    checkpoints.nudge();
                }
            }
        })?;
        Ok(Self {
            location,
            writer,
            readers: Mutex::default(),
            checkpoints,
        })
    }

    /// Runs a write on the writer thread, batched with the writes queued meanwhile; see
    /// [`Writer::write`].
    pub(super) async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer.write(work).await
    }

    /// Runs a read on a reader connection, on the calling thread (through the writer for an
    /// in-memory database, whose only connection it has). Readers never wait for the writer:
    /// in WAL mode a reader sees the last commit.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if matches!(self.location, Location::Memory) {
            return self.writer.write(work).await;
        }
        let idle = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let connection = match idle {
            Some(connection) => connection,
            None => open(&self.location, false)?,
        };
        let result = work(&connection);
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() < MAX_IDLE_READERS {
            readers.push(connection);
        }
        result
    }

    /// Transactions committed so far.
    pub(super) fn commits(&self) -> u64 {
        self.writer.commits()
    }

    /// Background checkpoints completed so far (`None`: none for an in-memory database).
    pub(super) fn checkpoints(&self) -> Option<u64> {
        self.checkpoints.as_ref().map(|c| c.completed())
    }

    pub(super) fn location(&self) -> &Location {
        &self.location
    }
}

/// Opens one connection with the store's settings: a 5 s busy timeout, WAL and
/// `synchronous = NORMAL` (durable across a crash of the process; a power loss may take the
/// last commits), and for the writer of a file, the log watched after each commit (its own
/// automatic checkpoint at 10,000 pages; see [`checkpoints`]).
fn open(location: &Location, writer: bool) -> Result<Connection, StoreError> {
    let connection = match location {
        Location::Memory => Connection::open_in_memory(),
        Location::File { path, create } => {
            let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI;
            if *create && writer {
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
            Connection::open_with_flags(path, flags)
        }
    }
    .map_err(StoreError::backend)?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(StoreError::backend)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if writer {
        if matches!(location, Location::File { .. }) {
            // Returns the mode as a row; a database already in WAL stays in it.
            let _mode: String = connection
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .map_err(StoreError::backend)?;
            checkpoints::watch_log(&connection);
        }
        connection
            .execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(StoreError::backend)?;
    }
    Ok(connection)
}
