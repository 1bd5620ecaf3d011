//! Pure game logic of a Craft world server.
//!
//! Everything here is deterministic and free of I/O so that the server, the
//! stores, the benchmarks and the tests share one definition of the game:
//!
//! - [`coords`]: block and chunk coordinates, floor division by 32 and the
//!   neighbour chunks that mirror a block on a chunk edge;
//! - [`item`]: block ids and which of them players may place or destroy;
//! - [`rules`]: the editing rules of the protocol as pure functions that
//!   return a typed verdict carrying the exact refusal text;
//! - [`terrain`]: the Craft terrain generator, bit-exact with the client;
//! - [`protocol`]: the line codec (client commands in, server messages out);
//! - [`store`]: the [`store::BlockStore`] trait every backend implements, its
//!   data types and its error type, [`store::ForwardingStore`] for stores
//!   that wrap another, and [`store::StoreCounters`] for backend counters;
//! - `conformance` (feature `conformance`): the suite every backend runs.

pub mod coords;
pub mod item;
pub mod protocol;
pub mod rules;
pub mod store;
pub mod terrain;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use coords::{BlockPos, CHUNK_SIZE, ChunkPos};
pub use store::{BlockStore, StoreError, StoreResult};
