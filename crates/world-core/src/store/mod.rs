//! The storage interface: [`BlockStore`], its data types and its error.
//!
//! Only *changes* are stored (the client generates untouched terrain itself):
//! per chunk, block rows (a block's own value, or a `-w` mirror of a block
//! on the edge of a neighbouring chunk), lights and signs. Each chunk has a
//! **key**: a number that grows with every stored change of the chunk. The
//! Craft client remembers the key of each chunk and asks for the changes
//! newer than it; servers sharing a store compare keys to learn what others
//! changed.

mod batch;
mod counters;
mod draft;
mod error;
mod forward;
mod history;
mod memory;

use async_trait::async_trait;

use crate::coords::{BlockPos, ChunkPos};

pub use batch::{
    Batch, BlockWrite, ChangeMeta, ChunkChanges, DecorClear, LightWrite, MAX_BLOCK_VALUE,
    MAX_STORED_TEXT_BYTES, MAX_TIME_MS, SignWrite,
};
pub use counters::{Labels, StoreCounters};
pub use draft::{
    DraftChange, DraftEdit, DraftKind, DraftSlot, Published, draft_batch, draft_conflicts,
    publish_draft, publish_draft_batch, validate_draft,
};
pub use error::{BoxError, StoreError, StoreResult, error_chain};
pub use forward::{ForwardingStore, StoreCall};
pub use history::{
    Area, Author, Change, HistoryEntry, HistoryQuery, MAX_AUTHOR_BYTES, MAX_HISTORY_LIMIT,
    first_changes,
};
pub use memory::MemoryStore;

/// A chunk key. Keys are per chunk, start above 0 and never pass
/// [`MAX_KEY`]; `0` means "nothing yet" (a client asks `C,P,Q,0` for all).
pub type Key = i64;

/// The largest key: the client reads keys into a signed 32-bit `int`.
pub const MAX_KEY: Key = 2_147_483_647;

/// A stored block row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlock {
    /// The block.
    pub pos: BlockPos,
    /// Its value (`0` = removed, negative = neighbour mirror).
    pub w: i32,
    /// The key assigned when this value was written.
    pub key: Key,
}

/// A stored light.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLight {
    /// The block.
    pub pos: BlockPos,
    /// Light level.
    pub w: i32,
}

/// A stored sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSign {
    /// The block.
    pub pos: BlockPos,
    /// Face, `0..=7`.
    pub face: i32,
    /// Text (never empty).
    pub text: String,
}

/// What [`BlockStore::load_chunk`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkData {
    /// Block rows with a key greater than the `since` asked for, at most one
    /// per position, in no particular order.
    pub blocks: Vec<StoredBlock>,
    /// Every light of the chunk.
    pub lights: Vec<StoredLight>,
    /// Every sign of the chunk.
    pub signs: Vec<StoredSign>,
    /// The chunk's head key when the read started: every change with a key
    /// up to `head` is reflected in this result. `0` for a chunk never
    /// written. (Blocks with keys above `head`, written during the read, may
    /// also be present.)
    pub head: Key,
}

impl ChunkData {
    /// Whether nothing at all is stored for the requested range.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty() && self.lights.is_empty() && self.signs.is_empty()
    }

    /// The largest key among the returned blocks (0 when none).
    pub fn max_block_key(&self) -> Key {
        self.blocks.iter().map(|b| b.key).max().unwrap_or(0)
    }
}

/// A chunk and its head key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkHead {
    /// The chunk.
    pub chunk: ChunkPos,
    /// Its current head key.
    pub head: Key,
}

/// How a batch moved the head of one chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkAdvance {
    /// The chunk.
    pub chunk: ChunkPos,
    /// Head right before this batch wrote to the chunk. When it equals the
    /// head a server last saw, nobody else wrote the chunk in between.
    pub before: Key,
    /// Head after this batch (greater than `before`).
    pub after: Key,
}

/// What [`BlockStore::apply`] returns: one advance per chunk the batch
/// touched, ordered by chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReceipt {
    /// Per chunk, how its head moved.
    pub chunks: Vec<ChunkAdvance>,
}

impl ApplyReceipt {
    /// The heads the batch left its chunks at, in chunk order.
    pub fn heads(&self) -> impl Iterator<Item = ChunkHead> + '_ {
        self.chunks.iter().map(|a| ChunkHead {
            chunk: a.chunk,
            head: a.after,
        })
    }
}

/// A backend counter for `/metrics`, e.g. requests made or capacity
/// consumed. Values only grow (Prometheus counters).
#[derive(Clone, Debug, PartialEq)]
pub struct StoreCounter {
    /// Metric name, `snake_case`, ending in `_total` (`store_requests_total`).
    pub name: &'static str,
    /// One line of help text.
    pub help: &'static str,
    /// Labels, e.g. `[("op", "BatchWriteItem")]`.
    pub labels: Vec<(&'static str, String)>,
    /// Current value.
    pub value: f64,
}

/// A player's last position, kept per user name so that a player who joins
/// any server of a fleet again starts where they left.
#[derive(Clone, Debug, PartialEq)]
pub struct PlayerRecord {
    /// User name (logged-in players only).
    pub name: String,
    /// Position x.
    pub x: f32,
    /// Position y.
    pub y: f32,
    /// Position z.
    pub z: f32,
    /// Rotation around the vertical axis.
    pub rx: f32,
    /// Rotation up/down.
    pub ry: f32,
    /// When it was saved, milliseconds since the Unix epoch.
    pub time_ms: i64,
}

/// Where a world's changes live.
///
/// Object safe: servers hold an `Arc<dyn BlockStore>` chosen at run time.
///
/// # Contract
///
/// Every backend passes the conformance suite (`world_core::conformance`,
/// feature `conformance`), which checks the points below.
///
/// - **Batches are atomic.** [`apply`](Self::apply) either applies every
///   change of the batch or returns an error, and a failed batch leaves
///   nothing behind. It validates the batch ([`Batch::validate`]) before
///   writing. Backends without multi-item transactions document what they
///   guarantee instead (DynamoDB: a batch is not atomic, but its keys are
///   reserved before writing, become visible in order, and re-applying the
///   batch completes it).
/// - **Keys.** Each block write gets a key from its chunk; keys are greater
///   than every key the chunk had before, on insert *and* on update of an
///   existing block, and stay in `1..=`[`MAX_KEY`]. A batch that would pass
///   `MAX_KEY` fails with [`StoreError::KeyExhausted`]. Light, sign and
///   clear writes advance the chunk's head too, so that every change of a
///   chunk is visible to [`changed_chunks`](Self::changed_chunks).
/// - **Keys become visible in order.** If a read returns a block with key
///   `k`, every change of that chunk with a smaller key is visible to the
///   same read (returned, or superseded by a newer row of the same
///   position). So a client told "you have everything up to `k`" has.
/// - **Reads.** [`load_chunk`](Self::load_chunk) returns the blocks with a
///   key above `since`, and every light and sign, in one consistent view as
///   far as the backend allows (see [`ChunkData::head`]).
/// - **Re-applying a batch is harmless**: the values end the same and the
///   keys grow again. A server may therefore retry a batch whose outcome it
///   does not know.
/// - Coordinates are any `i32`; chunk and position are stored exactly as
///   given (a mirror row lives under the neighbour chunk). Text is stored
///   byte for byte (commas, quotes, non-ASCII).
/// - Errors say what to do: [`StoreError::is_retryable`].
/// - **Drafts** (a player's private edits, see [`DraftChange`]) live apart
///   from the world: no chunk read, head, `changed_chunks` or `list_chunks`
///   ever includes them. A draft holds at most one change per
///   [`DraftSlot`]; [`put_draft`](Self::put_draft) replaces by slot. Owner
///   names and sign text are stored byte for byte. Publishing is
///   [`publish_draft`]: one `apply` of the whole draft, then
///   [`delete_draft`](Self::delete_draft).
#[async_trait]
pub trait BlockStore: Send + Sync + std::fmt::Debug {
    /// A short name of the backend for logs and metrics (`sqlite`, ...).
    fn backend(&self) -> &'static str;

    /// The changes of `chunk`: blocks with a key greater than `since`, and
    /// every light and sign.
    async fn load_chunk(&self, chunk: ChunkPos, since: Key) -> StoreResult<ChunkData>;

    /// Applies `batch` atomically and reports how each chunk's head moved.
    async fn apply(&self, batch: &Batch) -> StoreResult<ApplyReceipt>;

    /// The chunks among `held` whose head is now greater than the key held
    /// for them, with their current head; chunks never written are never
    /// returned. One round trip (or a few) for the whole set: servers
    /// sharing a store call it for every chunk they cache.
    async fn changed_chunks(&self, held: &[ChunkHead]) -> StoreResult<Vec<ChunkHead>>;

    /// Every chunk that has anything stored, with its head (for import,
    /// export and administration; may be slow on large worlds).
    async fn list_chunks(&self) -> StoreResult<Vec<ChunkHead>>;

    /// The saved position of a user, if any.
    async fn load_player(&self, name: &str) -> StoreResult<Option<PlayerRecord>>;

    /// Saves (replaces) the positions of these users.
    async fn save_players(&self, players: &[PlayerRecord]) -> StoreResult<()>;

    /// Every change of the draft of `owner`, in no particular order (empty
    /// when there is none). Drafts of 10,000 changes load whole.
    async fn load_draft(&self, owner: &str) -> StoreResult<Vec<DraftChange>>;

    /// Stores `changes` in the draft of `owner`, each replacing the change
    /// in its [`DraftSlot`] (other slots are kept). Checked with
    /// [`validate_draft`] before anything is written. All or nothing where
    /// the backend has transactions; on DynamoDB a failed call may have
    /// stored part of `changes`, and storing them again completes it.
    async fn put_draft(&self, owner: &str, changes: &[DraftChange]) -> StoreResult<()>;

    /// Deletes the whole draft of `owner`; harmless when there is none.
    async fn delete_draft(&self, owner: &str) -> StoreResult<()>;

    /// Backend counters for `/metrics`: at least the requests (round trips)
    /// made, by operation, so that benchmarks can report requests per edit;
    /// DynamoDB adds consumed capacity units.
    fn counters(&self) -> Vec<StoreCounter> {
        Vec::new()
    }

    /// A cheap round trip proving the store answers (readiness).
    async fn ping(&self) -> StoreResult<()>;

    /// Releases connections and files. Later calls fail with
    /// [`StoreError::Closed`]. Calling it twice is harmless.
    async fn close(&self) -> StoreResult<()>;

    // --- block history ---------------------------------------------------

    /// Whether this store writes the history entries of the batches it
    /// applies ([`Batch::record`]) and answers [`history`](Self::history).
    /// Stores without history ignore the entries of a batch.
    fn keeps_history(&self) -> bool {
        false
    }

    /// The recorded changes matching `query`, newest first (ties in time
    /// in the reverse order they were recorded). Stores without history
    /// fail with [`StoreError::Unsupported`].
    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<HistoryEntry>> {
        let _ = query;
        Err(StoreError::Unsupported(format!(
            "the {} store does not keep block history",
            self.backend()
        )))
    }

    /// Deletes history entries older than `older_than_ms` (milliseconds
    /// since the epoch), then the oldest beyond the newest `max_rows` when
    /// set; returns how many were deleted. Stores without history fail with
    /// [`StoreError::Unsupported`].
    async fn prune_history(&self, older_than_ms: i64, max_rows: Option<u64>) -> StoreResult<u64> {
        let _ = (older_than_ms, max_rows);
        Err(StoreError::Unsupported(format!(
            "the {} store does not keep block history",
            self.backend()
        )))
    }
}
