//! Mapping SQLite failures onto [`StoreError`].
//!
//! | SQLite | `StoreError` | why |
//! |---|---|---|
//! | `SQLITE_BUSY`, `SQLITE_LOCKED` | `Unavailable` | another connection or process held the lock past `busy_timeout`; retrying is safe |
//! | `SQLITE_IOERR`, `SQLITE_FULL`, `SQLITE_NOMEM`, `SQLITE_PROTOCOL`, `SQLITE_INTERRUPT`, `SQLITE_SCHEMA`, `SQLITE_CANTOPEN` after open | `Unavailable` | the disk or the OS failed; the transaction rolled back |
//! | `SQLITE_NOTADB` | `Config` | the URL points at a file that is not a SQLite database |
//! | `SQLITE_CORRUPT`, a stored value of the wrong type or range | `Corrupt` | |
//! | `SQLITE_READONLY`, `SQLITE_PERM`, `SQLITE_AUTH`, `SQLITE_CANTOPEN` at open | `Config` | permissions or a missing directory |
//! | `SQLITE_TOOBIG` | `Invalid` | |
//! | anything else | `Other` | |

use rusqlite::ErrorCode;
use world_core::StoreError;

/// A world file whose schema this backend cannot use. Every variant becomes
/// [`StoreError::Corrupt`] (the shape of stored data is wrong) except
/// [`SchemaError::ForeignDatabase`], a [`StoreError::Config`] (wrong file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// A table lacks a column the store reads or writes.
    #[error(
        "table {table} has no column {column}: this is not a Craft world file, or it was altered"
    )]
    MissingColumn {
        /// The table.
        table: &'static str,
        /// The missing column.
        column: &'static str,
    },
    /// A table lacks the unique index that makes `INSERT OR REPLACE`
    /// replace (without it every write would add a duplicate row).
    #[error(
        "table {table} has no unique index on ({columns}): this is not a Craft world file, or it was altered"
    )]
    MissingUniqueIndex {
        /// The table.
        table: &'static str,
        /// The columns the index must cover.
        columns: &'static str,
    },
    /// `craft_meta` records a schema version from a newer build.
    #[error(
        "the world file has schema version {found}, newer than this build understands ({supported}); upgrade the server"
    )]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A SQLite database of something else: it has tables but none of a
    /// Craft world, and the store refuses to add its own to it.
    #[error(
        "the file is a SQLite database of something else (tables: {tables}), not a Craft world; refusing to add a world to it"
    )]
    ForeignDatabase {
        /// The tables found, comma-separated.
        tables: String,
    },
    /// `craft_meta` lacks a row the store maintains.
    #[error("craft_meta has no {0:?} row")]
    MissingMeta(&'static str),
}

impl From<SchemaError> for StoreError {
    fn from(e: SchemaError) -> Self {
        match e {
            SchemaError::ForeignDatabase { .. } => StoreError::Config(e.to_string()),
            _ => StoreError::Corrupt(e.to_string()),
        }
    }
}

/// Maps a rusqlite error met while doing `context` (e.g. `apply`).
pub(crate) fn map(context: &str, err: rusqlite::Error) -> StoreError {
    match &err {
        rusqlite::Error::SqliteFailure(e, _) => match e.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::unavailable(
                format!(
                    "{context}: the world file is locked by another connection or process (busy_timeout passed)"
                ),
                err,
            ),
            ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::OutOfMemory
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::OperationInterrupted
            | ErrorCode::SchemaChanged
            | ErrorCode::CannotOpen
            | ErrorCode::NoLargeFileSupport => {
                StoreError::unavailable(format!("{context}: {err}"), err)
            }
            ErrorCode::NotADatabase => StoreError::Config(format!(
                "{context}: the file is not a SQLite database ({err})"
            )),
            ErrorCode::DatabaseCorrupt | ErrorCode::TypeMismatch => {
                StoreError::Corrupt(format!("{context}: {err}"))
            }
            ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::AuthorizationForStatementDenied => StoreError::Config(format!(
                "{context}: {err} (check the file's and directory's permissions)"
            )),
            ErrorCode::TooBig => StoreError::Invalid(format!("{context}: {err}")),
            _ => StoreError::other(format!("{context}: {err}"), err),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(..) => {
            StoreError::Corrupt(format!("{context}: unexpected stored value: {err}"))
        }
        _ => StoreError::other(format!("{context}: {err}"), err),
    }
}

/// Maps errors met while opening: a file that cannot be opened at all is a
/// configuration problem (missing directory, permissions), not an outage.
pub(crate) fn map_open(path: &std::path::Path, err: rusqlite::Error) -> StoreError {
    let context = format!("opening {}", path.display());
    match &err {
        rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::CannotOpen => {
            StoreError::Config(format!(
                "{context}: {err} (does the directory exist, and may this user write it?)"
            ))
        }
        _ => map(&context, err),
    }
}

/// A blocking task that panicked or was cancelled.
pub(crate) fn join(context: &str, err: tokio::task::JoinError) -> StoreError {
    StoreError::other(format!("{context}: the blocking task failed"), err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn busy_and_io_are_retryable() {
        for code in [
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_LOCKED,
            rusqlite::ffi::SQLITE_IOERR,
            rusqlite::ffi::SQLITE_FULL,
        ] {
            let e = map("apply", failure(code));
            assert!(e.is_retryable(), "{code}: {e}");
        }
    }

    #[test]
    fn wrong_files_are_not_retryable() {
        assert!(matches!(
            map("open", failure(rusqlite::ffi::SQLITE_NOTADB)),
            StoreError::Config(_)
        ));
        assert!(matches!(
            map("load", failure(rusqlite::ffi::SQLITE_CORRUPT)),
            StoreError::Corrupt(_)
        ));
        assert!(matches!(
            map("apply", failure(rusqlite::ffi::SQLITE_READONLY)),
            StoreError::Config(_)
        ));
        let e = map_open(
            std::path::Path::new("/nope/w.db"),
            failure(rusqlite::ffi::SQLITE_CANTOPEN),
        );
        assert!(
            matches!(e, StoreError::Config(ref m) if m.contains("/nope/w.db")),
            "{e}"
        );
        let e = map("load", rusqlite::Error::IntegralValueOutOfRange(0, 1 << 40));
        assert!(matches!(e, StoreError::Corrupt(_)));
    }
}
