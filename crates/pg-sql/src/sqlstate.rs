//! What a PostgreSQL error code (SQLSTATE) means for the caller, shared by
//! both backends (the Data API reports the SQLSTATE in its messages).

use world_core::StoreError;
use world_core::store::BoxError;

/// How a failure with a given SQLSTATE is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The database cannot serve now (shutting down, starting, failing
    /// over, out of connections, timed out): retry later.
    Unavailable,
    /// A concurrent transaction won (deadlock, serialization failure, lock
    /// not available): retry.
    Conflict,
    /// The data sent is wrong: retrying fails again.
    Invalid,
    /// The deployment is wrong (missing table, bad credentials, unknown
    /// database, missing privilege).
    Config,
    /// Anything else.
    Other,
}

/// Classifies a five-character SQLSTATE.
pub fn classify_sqlstate(code: &str) -> ErrorClass {
    match code {
        // admin_shutdown, crash_shutdown, cannot_connect_now, query_canceled
        // (statement_timeout), too_many_connections, and read_only_sql_transaction
        // (an Aurora writer that just became a reader during failover).
        "57P01" | "57P02" | "57P03" | "57014" | "53300" | "25006" => ErrorClass::Unavailable,
        "40001" | "40P01" | "55P03" => ErrorClass::Conflict,
        // undefined table/column/function, invalid schema, privilege,
        // unknown database.
        "42P01" | "42703" | "42883" | "3F000" | "42501" | "3D000" => ErrorClass::Config,
        _ => match code.get(..2) {
            // connection exceptions; insufficient resources (disk full,
            // out of memory); system errors.
            Some("08" | "53" | "58") => ErrorClass::Unavailable,
            // data exceptions, integrity constraint violations.
            Some("22" | "23") => ErrorClass::Invalid,
            // invalid authorization.
            Some("28") => ErrorClass::Config,
            _ => ErrorClass::Other,
        },
    }
}

impl ErrorClass {
    /// The [`StoreError`] of this class.
    pub fn error(self, message: String, source: Option<BoxError>) -> StoreError {
        match self {
            ErrorClass::Unavailable => StoreError::Unavailable { message, source },
            ErrorClass::Conflict => StoreError::Conflict(message),
            ErrorClass::Invalid => StoreError::Invalid(message),
            ErrorClass::Config => StoreError::Config(message),
            ErrorClass::Other => StoreError::Other { message, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        for (code, class) in [
            ("57P01", ErrorClass::Unavailable),
            ("57P02", ErrorClass::Unavailable),
            ("57P03", ErrorClass::Unavailable),
            ("08006", ErrorClass::Unavailable),
            ("08001", ErrorClass::Unavailable),
            ("53300", ErrorClass::Unavailable),
            ("40001", ErrorClass::Conflict),
            ("40P01", ErrorClass::Conflict),
            ("22003", ErrorClass::Invalid),
            ("23505", ErrorClass::Invalid),
            ("42P01", ErrorClass::Config),
            ("28P01", ErrorClass::Config),
            ("28000", ErrorClass::Config),
            ("3D000", ErrorClass::Config),
            ("42601", ErrorClass::Other),
            ("", ErrorClass::Other),
        ] {
            assert_eq!(classify_sqlstate(code), class, "{code}");
        }
        assert!(
            ErrorClass::Unavailable
                .error("x".into(), None)
                .is_retryable()
        );
        assert!(ErrorClass::Conflict.error("x".into(), None).is_retryable());
        assert!(!ErrorClass::Invalid.error("x".into(), None).is_retryable());
    }
}
