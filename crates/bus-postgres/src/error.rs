//! Store errors (from the store's connection code, which this bus shares)
//! as bus errors, by meaning.

use bus_core::BusError;
use world_core::StoreError;

/// Maps a `StoreError` of a bus session onto a `BusError`.
pub(crate) fn bus_error(e: StoreError) -> BusError {
    match e {
        StoreError::Unavailable { message, source } => BusError::Unavailable { message, source },
        StoreError::Conflict(message) => BusError::unavailable(message),
        StoreError::Invalid(message) => BusError::Invalid(message),
        StoreError::Config(message) => BusError::Config(message),
        StoreError::Closed => BusError::Closed,
        // Anything else on a notification session is a session that
        // misbehaves: the caller drops it and reconnects.
        other => BusError::unavailable(other.to_string()),
    }
}
