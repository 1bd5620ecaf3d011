//! `/tiles/{zoom}/{x}/{y}`: map tiles on demand, cached, within a CPU
//! budget.
//!
//! A tile's stored changes come from the game loop for the chunks it holds
//! in memory (one [`AdminRequest::Chunks`] round trip, answered at once),
//! and from the store for the others: only for the chunks that have
//! anything stored, which [`BlockStore::list_chunks`] tells (asked at most
//! once a minute, completed by the edits seen since), one `load_chunk` per
//! chunk, a few at a time. Rendering runs on the blocking pool behind a
//! semaphore of `admin.tile_renders` permits; beyond `admin.tile_queue`
//! waiting requests the answer is 503 with `Retry-After`, and the page
//! retries. Rendered tiles stay in an LRU cache of `admin.tile_cache`
//! entries; every edit the game loop publishes evicts the tiles showing
//! it, and a render that an edit overtook is served but not cached.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use lru::LruCache;
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::{Semaphore, broadcast, oneshot};
use tracing::debug;
use world_core::coords::ChunkPos;
use world_core::{BlockStore, StoreError};

use super::LOOP_TIMEOUT;
use super::settings::AdminConfig;
use super::tiles::{self, StoredChunk, TileError, TileKey};
use crate::world::{AdminRequest, EditEvent, Observers};

/// How long the list of chunks with stored changes is trusted. Edits made
/// here are added as they happen; this only bounds how late edits of
/// other servers (on chunks not cached here) show.
const INDEX_MAX_AGE: Duration = Duration::from_secs(60);

/// Chunk loads one tile runs at once.
const LOAD_CONCURRENCY: usize = 8;

/// Why no tile.
#[derive(Debug, thiserror::Error)]
pub enum TileFailure {
    /// Too many tiles are being made: try again in a moment.
    #[error("too many map tiles are being rendered; retry shortly")]
    Busy,
    /// The world cannot be read right now.
    #[error("the world cannot be read right now: {0}")]
    Unavailable(String),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] TileError),
}

impl From<StoreError> for TileFailure {
    fn from(e: StoreError) -> Self {
        TileFailure::Unavailable(e.to_string())
    }
}

/// Chunks with stored changes, as last listed.
#[derive(Debug)]
struct Index {
    listed_at: Instant,
    chunks: FxHashSet<ChunkPos>,
}

#[derive(Debug)]
struct Cache {
    tiles: LruCache<TileKey, Bytes>,
    /// Tiles being rendered, and whether an edit overtook them.
    rendering: FxHashMap<TileKey, bool>,
    edits: broadcast::Receiver<EditEvent>,
    /// Chunks edited here, with when (the index misses them until listed
    /// again).
    edited: FxHashMap<ChunkPos, Instant>,
}

impl Cache {
    /// Applies the edits published since the last look.
    fn catch_up(&mut self) {
        loop {
            match self.edits.try_recv() {
                Ok(edit) => {
                    for key in TileKey::containing(edit.x, edit.z) {
                        self.tiles.pop(&key);
                        if let Some(dirty) = self.rendering.get_mut(&key) {
                            *dirty = true;
                        }
                    }
                    self.edited
                        .insert(ChunkPos::new(edit.p, edit.q), Instant::now());
                }
                Err(TryRecvError::Lagged(missed)) => {
                    // Which tiles the missed edits touched is unknown.
                    debug!(missed, "map tile cache fell behind the edits; clearing it");
                    self.tiles.clear();
                    self.rendering.values_mut().for_each(|d| *d = true);
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }
}

/// The tile service.
#[derive(Debug)]
pub struct Tiles {
    observers: Arc<Observers>,
    cache: Mutex<Cache>,
    index: tokio::sync::Mutex<Option<Index>>,
    cpu: Semaphore,
    admitted: AtomicUsize,
    max_admitted: usize,
}

/// Leaves the admission count and the rendering set as they were.
struct Admission<'a> {
    tiles: &'a Tiles,
    key: TileKey,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.tiles.admitted.fetch_sub(1, Ordering::AcqRel);
        self.tiles.lock().rendering.remove(&self.key);
    }
}

impl Tiles {
    /// A service over `observers` with `config`'s budget.
    pub fn new(observers: Arc<Observers>, config: &AdminConfig) -> Self {
        let size = NonZeroUsize::new(config.tile_cache).unwrap_or(NonZeroUsize::MIN);
        let edits = observers.watch_edits();
        Self {
            observers,
            cache: Mutex::new(Cache {
                tiles: LruCache::new(size),
                rendering: FxHashMap::default(),
                edits,
                edited: FxHashMap::default(),
            }),
            index: tokio::sync::Mutex::new(None),
            cpu: Semaphore::new(config.tile_renders.max(1)),
            admitted: AtomicUsize::new(0),
            max_admitted: config.tile_renders.max(1) + config.tile_queue,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache stays consistent whatever panicked while holding it.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The PNG of `key`, from the cache or rendered.
    pub async fn tile(&self, key: TileKey) -> Result<Bytes, TileFailure> {
        {
            let mut cache = self.lock();
            cache.catch_up();
            if let Some(png) = cache.tiles.get(&key) {
                return Ok(png.clone());
            }
        }
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.max_admitted {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(TileFailure::Busy);
        }
        self.lock().rendering.insert(key, false);
        let _admission = Admission { tiles: self, key };
        let stored = self.stored(key).await?;
        let png = {
            let _permit = self
                .cpu
                .acquire()
                .await
                .map_err(|_| TileFailure::Unavailable("shutting down".into()))?;
            tokio::task::spawn_blocking(move || tiles::render(key, &stored))
                .await
                .map_err(|e| TileFailure::Unavailable(format!("tile render stopped: {e}")))??
        };
        let png = Bytes::from(png);
        let mut cache = self.lock();
        cache.catch_up();
        if cache.rendering.get(&key) == Some(&false) {
            cache.tiles.put(key, png.clone());
        }
        Ok(png)
    }

    /// The stored changes of `key`'s chunks.
    async fn stored(&self, key: TileKey) -> Result<FxHashMap<ChunkPos, StoredChunk>, TileFailure> {
        let store = self
            .observers
            .store()
            .ok_or_else(|| TileFailure::Unavailable("the game loop is not running".into()))?;
        let chunks = key.chunks();
        let (reply, hot) = oneshot::channel();
        let request = AdminRequest::Chunks {
            chunks: chunks.clone(),
            reply,
        };
        if !self.observers.request(request).await {
            return Err(TileFailure::Unavailable(
                "the game loop is not running".into(),
            ));
        }
        let hot = tokio::time::timeout(LOOP_TIMEOUT, hot)
            .await
            .map_err(|_| TileFailure::Unavailable("the game loop does not answer".into()))?
            .map_err(|_| TileFailure::Unavailable("the game loop stopped".into()))?;
        let mut stored: FxHashMap<ChunkPos, StoredChunk> = hot
            .into_iter()
            .map(|h| {
                (
                    h.chunk,
                    StoredChunk {
                        blocks: h.blocks,
                        terrain: h.terrain,
                    },
                )
            })
            .collect();
        let not_hot = chunks
            .into_iter()
            .filter(|c| !stored.contains_key(c))
            .collect();
        let cold = self.with_changes(&*store, not_hot).await?;
        let loaded: Vec<(ChunkPos, StoredChunk)> = stream::iter(cold)
            .map(|chunk| {
                let store = store.clone();
                async move {
                    let data = store.load_chunk(chunk, 0).await?;
                    let blocks = data
                        .blocks
                        .into_iter()
                        .filter(|b| b.w >= 0 && b.pos.chunk() == chunk)
                        .map(|b| (b.pos, b.w))
                        .collect();
                    Ok::<_, StoreError>((
                        chunk,
                        StoredChunk {
                            blocks,
                            terrain: None,
                        },
                    ))
                }
            })
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_collect()
            .await?;
        stored.extend(loaded);
        Ok(stored)
    }

    /// Those of `candidates` that have stored changes: in the last listing
    /// (renewed when stale) or edited here since.
    async fn with_changes(
        &self,
        store: &dyn BlockStore,
        candidates: Vec<ChunkPos>,
    ) -> Result<Vec<ChunkPos>, TileFailure> {
        let mut index = self.index.lock().await;
        let fresh = index
            .as_ref()
            .is_some_and(|i| i.listed_at.elapsed() < INDEX_MAX_AGE);
        let index = match &mut *index {
            Some(index) if fresh => index,
            stale => {
                let listed_at = Instant::now();
                let chunks: FxHashSet<ChunkPos> = store
                    .list_chunks()
                    .await?
                    .into_iter()
                    .map(|h| h.chunk)
                    .collect();
                debug!(
                    chunks = chunks.len(),
                    "listed the chunks with stored changes"
                );
                // Edits older than the listing are in it now.
                self.lock().edited.retain(|_, at| *at >= listed_at);
                stale.insert(Index { listed_at, chunks })
            }
        };
        let cache = self.lock();
        Ok(candidates
            .into_iter()
            .filter(|c| index.chunks.contains(c) || cache.edited.contains_key(c))
            .collect())
    }
}

/// `GET /tiles/{zoom}/{x}/{y}`: a PNG (see [`tiles`]).
pub(super) async fn tile(
    axum::extract::State(state): axum::extract::State<super::AdminState>,
    axum::extract::Path((zoom, x, y)): axum::extract::Path<(u8, i32, i32)>,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let Some(key) = TileKey::new(zoom, x, y) else {
        return (StatusCode::NOT_FOUND, "no such tile\n").into_response();
    };
    match state.app.tiles.tile(key).await {
        Ok(png) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                // Edits change tiles: the page asks again when it sees one.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            png,
        )
            .into_response(),
        Err(e @ TileFailure::Busy) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            format!("{e}\n"),
        )
            .into_response(),
        Err(e @ TileFailure::Unavailable(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!("{e}\n"),
        )
            .into_response(),
        Err(e @ TileFailure::Render(_)) => {
            tracing::error!(error = %e, ?key, "map tile failed");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
    }
}
