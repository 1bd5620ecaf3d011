//! Private builds: each player's draft in memory, and the one task that
//! takes drafts to the store.
//!
//! A player in private mode has a [`Draft`]: their block, light and sign
//! edits go there instead of the world (see `commands/drafts.rs`). A
//! logged-in player's draft is also stored ([`BlockStore::put_draft`]), so
//! it survives a restart, a drain or a move to another server; a guest's
//! lives only as long as the connection.
//!
//! Every store call about drafts goes through one [`DraftWriter`] task, in
//! the order the game loop made them: a draft's writes can never land after
//! its deletion (a publish or a discard), and a publish sees every change
//! written before it. Writes that fail with a retryable error are retried
//! until they succeed (the memory copy stays the truth meanwhile); the
//! shutdown drain waits for the queue to empty.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use world_core::coords::{BlockPos, ChunkPos};
use world_core::store::{
    Author, DraftChange, DraftEdit, DraftKind, DraftSlot, Published, draft_batch,
    publish_draft_batch,
};
use world_core::{BlockStore, StoreError};

use super::{ConnId, Event};

/// Pauses between attempts of a failing draft write: 100 ms doubling to 5 s.
const DRAFT_BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_jitter()
    .with_min_delay(Duration::from_millis(100))
    .with_max_delay(Duration::from_secs(5))
    .without_max_times();

/// How long loading a returning player's draft may keep retrying.
const LOAD_GIVE_UP: Duration = Duration::from_secs(10);

/// A player's draft: at most one change per slot, indexed by the chunks
/// whose answers show it (a block's own chunk and its mirror chunks).
#[derive(Debug, Default)]
pub struct Draft {
    changes: BTreeMap<DraftSlot, DraftChange>,
    by_chunk: FxHashMap<ChunkPos, BTreeSet<DraftSlot>>,
    /// A `/publish` or `/publish check` is running.
    pub publishing: bool,
}

fn slots_at(pos: BlockPos) -> RangeInclusive<DraftSlot> {
    DraftSlot {
        pos,
        kind: DraftKind::Block,
        face: i32::MIN,
    }..=DraftSlot {
        pos,
        kind: DraftKind::Clear,
        face: i32::MAX,
    }
}

impl Draft {
    /// A draft holding `changes`.
    pub fn from_changes(changes: impl IntoIterator<Item = DraftChange>) -> Self {
        let mut draft = Self::default();
        for change in changes {
            draft.insert(change);
        }
        draft
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether the draft holds nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Whether `slot` holds a change.
    pub fn contains(&self, slot: &DraftSlot) -> bool {
        self.changes.contains_key(slot)
    }

    /// Every change, by slot.
    pub fn changes(&self) -> impl Iterator<Item = &DraftChange> {
        self.changes.values()
    }

    /// The changes at `pos`.
    pub fn at(&self, pos: BlockPos) -> impl Iterator<Item = &DraftChange> {
        self.changes.range(slots_at(pos)).map(|(_, c)| c)
    }

    /// The drafted block value at `pos`, if any.
    pub fn block(&self, pos: BlockPos) -> Option<i32> {
        self.at(pos).find_map(|c| match c.edit {
            DraftEdit::Block(w) => Some(w),
            _ => None,
        })
    }

    /// The key the draft saw at `pos` when it first touched it.
    pub fn seen_at(&self, pos: BlockPos) -> Option<i64> {
        self.at(pos).map(|c| c.seen).min()
    }

    /// The changes shown in answers for `chunk`, by slot.
    pub fn in_chunk(&self, chunk: ChunkPos) -> impl Iterator<Item = &DraftChange> {
        self.by_chunk
            .get(&chunk)
            .into_iter()
            .flatten()
            .filter_map(|slot| self.changes.get(slot))
    }

    /// The chunks holding drafted positions (their own chunks).
    pub fn own_chunks(&self) -> BTreeSet<ChunkPos> {
        self.changes.keys().map(|s| s.pos.chunk()).collect()
    }

    /// Stores `change` in its slot.
    pub fn insert(&mut self, change: DraftChange) {
        let slot = change.slot();
        self.by_chunk
            .entry(slot.pos.chunk())
            .or_default()
            .insert(slot);
        if slot.kind == DraftKind::Block {
            for neighbour in slot.pos.mirror_chunks() {
                self.by_chunk.entry(neighbour).or_default().insert(slot);
            }
        }
        self.changes.insert(slot, change);
    }
}

/// A store call about drafts, queued for the writer task.
#[derive(Debug)]
pub(crate) enum DraftOp {
    /// Upsert changes of a stored draft.
    Put {
        owner: Arc<str>,
        changes: Vec<DraftChange>,
    },
    /// Delete a stored draft.
    Delete { owner: Arc<str> },
    /// Load a returning player's draft; answers [`Event::DraftLoaded`].
    Load {
        conn: ConnId,
        owner: Arc<str>,
        open: bool,
    },
    /// Publish (or only check) a draft; answers [`Event::DraftPublished`].
    Publish {
        conn: ConnId,
        owner: Option<Arc<str>>,
        changes: Vec<DraftChange>,
        check_only: bool,
        /// Who publishes, when history is recorded.
        history: Option<Author>,
    },
}

/// What a `/publish` (or `/publish check`) found.
#[derive(Debug)]
pub enum PublishOutcome {
    /// Only checked: the drafted positions others changed since.
    Checked(Vec<BlockPos>),
    /// Published.
    Published(Published),
}

/// The queue of the draft writer task.
#[derive(Debug)]
pub struct DraftWriter {
    tx: mpsc::UnboundedSender<DraftOp>,
    outstanding: Arc<AtomicUsize>,
}

impl DraftWriter {
    /// Starts the writer task over `store`; answers go to `events`.
    pub fn start(store: Arc<dyn BlockStore>, events: mpsc::Sender<Event>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let outstanding = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(store, events, rx, outstanding.clone()));
        Self { tx, outstanding }
    }

    /// Queues `op`.
    pub(crate) fn send(&self, op: DraftOp) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(op).is_err() {
            // The task only ends when the world does.
            self.outstanding.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Nothing queued or running (for the shutdown drain).
    pub fn is_idle(&self) -> bool {
        self.outstanding.load(Ordering::Acquire) == 0
    }
}

async fn run(
    store: Arc<dyn BlockStore>,
    events: mpsc::Sender<Event>,
    mut rx: mpsc::UnboundedReceiver<DraftOp>,
    outstanding: Arc<AtomicUsize>,
) {
    let mut queue: VecDeque<DraftOp> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv().await {
                Some(op) => queue.push_back(op),
                None => return,
            }
        }
        while let Ok(op) = rx.try_recv() {
            queue.push_back(op);
        }
        let Some(op) = queue.pop_front() else {
            continue;
        };
        let mut done = 1;
        match op {
            DraftOp::Put { owner, mut changes } => {
                // Consecutive writes of one draft go in one call.
                while let Some(DraftOp::Put { owner: next, .. }) = queue.front()
                    && *next == owner
                {
                    if let Some(DraftOp::Put { changes: more, .. }) = queue.pop_front() {
                        changes.extend(more);
                        done += 1;
                    }
                }
                persist("put_draft", &owner, || store.put_draft(&owner, &changes)).await;
            }
            DraftOp::Delete { owner } => {
                persist("delete_draft", &owner, || store.delete_draft(&owner)).await;
            }
            DraftOp::Load { conn, owner, open } => {
                let started = Instant::now();
                let mut delays = DRAFT_BACKOFF.build();
                let result = loop {
                    match store.load_draft(&owner).await {
                        Err(e) if e.is_retryable() && started.elapsed() < LOAD_GIVE_UP => {
                            let wait = delays.next().unwrap_or(Duration::from_secs(1));
                            debug!(error = %e, "loading a draft failed; retrying");
                            tokio::time::sleep(wait).await;
                        }
                        other => break other,
                    }
                };
                let _ = events
                    .send(Event::DraftLoaded {
                        conn,
                        owner,
                        open,
                        result,
                    })
                    .await;
            }
            DraftOp::Publish {
                conn,
                owner,
                changes,
                check_only,
                history,
            } => {
                let result = if check_only {
                    world_core::store::draft_conflicts(&*store, &changes)
                        .await
                        .map(PublishOutcome::Checked)
                } else {
                    publish(&*store, owner.clone(), &changes, history.as_ref())
                        .await
                        .map(PublishOutcome::Published)
                };
                if let Ok(PublishOutcome::Published(p)) = &result
                    && let (Some(e), Some(owner)) = (&p.delete_error, &owner)
                {
                    // The world has the draft; a stored copy left behind
                    // would come back at the next login, so insist.
                    warn!(error = %e, "published draft could not be deleted; retrying");
                    persist("delete_draft", owner, || store.delete_draft(owner)).await;
                }
                let _ = events
                    .send(Event::DraftPublished {
                        conn,
                        changes: changes.len(),
                        result,
                    })
                    .await;
            }
        }
        outstanding.fetch_sub(done, Ordering::AcqRel);
    }
}

/// Runs a draft write until it succeeds or fails for good.
/// Publishes `changes` (see [`publish_draft_batch`]) with their history
/// entries in the same batch when `history` names the author.
async fn publish(
    store: &dyn BlockStore,
    owner: Option<Arc<str>>,
    changes: &[DraftChange],
    history: Option<&Author>,
) -> Result<Published, StoreError> {
    let mut batch = draft_batch(changes, owner.clone());
    if let Some(author) = history {
        crate::history::record_draft(store, &mut batch, changes, author, crate::history::now_ms())
            .await?;
    }
    publish_draft_batch(store, owner.as_deref(), changes, batch).await
}

async fn persist<F, Fut>(what: &'static str, owner: &str, mut call: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let mut delays = DRAFT_BACKOFF.build();
    let mut failures = 0u32;
    loop {
        match call().await {
            Ok(()) => {
                if failures > 0 {
                    debug!(what, failures, "draft write went through");
                }
                return;
            }
            Err(e) if e.is_retryable() => {
                if failures == 0 {
                    warn!(what, error = %e, "draft write failed; retrying until the store takes it");
                }
                failures += 1;
                let wait = delays.next().unwrap_or(Duration::from_secs(5));
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                warn!(what, owner, error = %e, "draft write refused; the stored draft may lack it");
                return;
            }
        }
    }
}
