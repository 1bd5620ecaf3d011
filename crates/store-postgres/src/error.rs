//! Mapping tokio-postgres and pool failures onto [`StoreError`].
//!
//! | failure | [`StoreError`] |
//! |---|---|
//! | connection refused, reset or closed; I/O errors; connect or pool timeouts; SQLSTATE `57P01` admin_shutdown, `57P02`, `57P03` cannot_connect_now, `57014` statement timeout, `08*`, `53*`, `25006` (Aurora failover) | `Unavailable` |
//! | `40001` serialization failure, `40P01` deadlock, `55P03` lock not available | `Conflict` |
//! | `22*` data exceptions, `23*` constraint violations | `Invalid` |
//! | `42P01` undefined table (and column, function), `3F000` no schema, `42501` privilege, `28*` authentication, `3D000` unknown database, TLS verification failures, a server without TLS under `sslmode=require` | `Config` |
//! | `22003` from `advance_heads` | `KeyExhausted` (in the store) |
//! | the pool closed | `Closed` |
//!
//! Messages carry what was being done (`load_chunk (3, 4)`), the server's
//! message and SQLSTATE; the original error is kept as `source` where the
//! variant has one. Passwords are never part of either.

use std::error::Error as StdError;

use deadpool_postgres::{HookError, PoolError, TimeoutType};
use pg_sql::{ErrorClass, classify_sqlstate};
use world_core::StoreError;
use world_core::store::error_chain;

/// A failure inside one store operation, before it is given its context.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpError {
    /// The database or the connection failed.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// Already a store error (decoding, validation, pool).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpError {
    /// Whether the connection is gone (so a fresh one may succeed).
    pub(crate) fn is_connection_lost(&self) -> bool {
        match self {
            OpError::Postgres(e) => connection_lost(e),
            OpError::Store(_) => false,
        }
    }

    /// Whether the connection can go back to the pool: the server answered
    /// the whole request with an error, so the session is idle.
    pub(crate) fn leaves_connection_usable(&self) -> bool {
        match self {
            OpError::Postgres(e) => e.as_db_error().is_some() && !connection_lost(e),
            OpError::Store(
                StoreError::Corrupt(_) | StoreError::Invalid(_) | StoreError::KeyExhausted { .. },
            ) => true,
            OpError::Store(_) => false,
        }
    }

    /// The store error, with `context`.
    pub(crate) fn into_store(self, context: &str) -> StoreError {
        match self {
            OpError::Postgres(e) => postgres_error(context, e),
            OpError::Store(e) => e,
        }
    }
}

/// Whether `e` means the connection is lost rather than the statement
/// refused.
pub(crate) fn connection_lost(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            matches!(code.code(), "57P01" | "57P02" | "57P03") || code.code().starts_with("08")
        }
        None => e.is_closed() || has_io_error(e) || is_timeout(e),
    }
}

fn has_io_error(e: &tokio_postgres::Error) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// tokio-postgres does not expose its error kinds; its Display texts are
/// stable and the only way to tell a connect timeout apart.
fn is_timeout(e: &tokio_postgres::Error) -> bool {
    e.to_string().starts_with("timeout waiting for server")
}

fn is_tls_failure(e: &tokio_postgres::Error) -> bool {
    e.to_string().starts_with("error performing TLS handshake")
}

/// The rustls error somewhere in `e`'s sources (certificate problems).
fn rustls_error(e: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && let Some(tls) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        source = s.source();
    }
    None
}

/// Maps a tokio-postgres error (see the module docs).
pub(crate) fn postgres_error(context: &str, e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let mut message = format!("{context}: {} (SQLSTATE {code})", db.message());
        if let Some(detail) = db.detail() {
            message.push_str("; ");
            message.push_str(detail);
        }
        if let Some(hint) = db.hint() {
            message.push_str("; hint: ");
            message.push_str(hint);
        }
        return classify_sqlstate(code).error(message, Some(Box::new(e)));
    }
    if let Some(tls) = rustls_error(&e) {
        return StoreError::Config(format!(
            "{context}: TLS certificate verification failed: {tls}. Check sslmode and sslrootcert \
             (for Aurora/RDS, sslrootcert must name the RDS CA bundle)"
        ));
    }
    if is_tls_failure(&e) && !has_io_error(&e) {
        // "server does not support TLS" under sslmode=require or stricter.
        return StoreError::Config(format!("{context}: {}", error_chain(&e)));
    }
    let text = error_chain(&e);
    if connection_lost(&e) {
        return StoreError::unavailable(format!("{context}: {text}"), e);
    }
    if text.starts_with("invalid configuration") || text.starts_with("authentication error") {
        return StoreError::Config(format!("{context}: {text}"));
    }
    ErrorClass::Other.error(format!("{context}: {text}"), Some(Box::new(e)))
}

/// Maps a failure to get a connection from the pool.
pub(crate) fn pool_error(context: &str, e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => postgres_error(&format!("{context}: connecting"), e),
        PoolError::PostCreateHook(HookError::Backend(e)) => postgres_error(
            &format!("{context}: preparing statements on a new connection"),
            e,
        ),
        PoolError::Closed => StoreError::Closed,
        PoolError::Timeout(kind) => {
            let what = match kind {
                TimeoutType::Wait => "waiting for a free connection",
                TimeoutType::Create => "opening a connection",
                TimeoutType::Recycle => "checking a pooled connection",
            };
            StoreError::unavailable(format!("{context}: timed out {what}"), e)
        }
        other => StoreError::other(format!("{context}: connection pool: {other}"), other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeouts_and_close() {
        let e = pool_error("load_chunk (0, 0)", PoolError::Timeout(TimeoutType::Wait));
        assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("load_chunk (0, 0): timed out waiting for a free connection")
        );
        assert!(matches!(
            pool_error("x", PoolError::Closed),
            StoreError::Closed
        ));
    }
}
