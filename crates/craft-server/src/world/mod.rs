//! The game loop: one task that owns every player and every cached chunk.
//!
//! Connections parse lines and send [`Event`]s here; the loop applies the
//! game rules against memory, queues answers on each player's
//! [`Outbound`](crate::outbound::Outbound) and never waits on a socket or
//! on the store. Store work (chunk loads, flushes, multi-server sync, login
//! checks) runs in spawned tasks that report back with an event.
//!
//! Events arrive in the order the connections read them (see
//! [`connection`](crate::connection) for what that guarantees between
//! clients). A player's commands run strictly in order: when one needs
//! something not in memory yet (a chunk load, terrain, a flush, a login
//! check), that player's later commands wait behind it while everyone else
//! goes on. Whatever walks over the players (greetings, `/list`,
//! broadcasts, wake-ups) goes in join order ([`Roster`]).

mod chunks;
pub(crate) mod drafts;
mod fleet;
mod flush;
pub(crate) mod players;
mod sync;
mod view;

use std::collections::HashMap;

use backon::{ExponentialBuilder, Retryable};
use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::{Instant as TokioInstant, sleep_until};
use tracing::{debug, info, warn};
use world_core::coords::ChunkPos;
use world_core::protocol::{ClientCommand, ServerMessage};
use world_core::store::{ApplyReceipt, Batch, ChunkData, ChunkHead, PlayerRecord};
use world_core::terrain::ChunkTerrain;
use world_core::{BlockStore, StoreError};

pub use chunks::{BlockEntry, ChunkCache, ChunkSlot, ChunkState, Load};
pub use players::{ConnId, Grid, IdPool, Player, Queued, Roster, Wait};
pub use view::{
    AdminRequest, BusState, EditEvent, HotChunk, KICK_MESSAGE, Observers, PlayerRef, PlayerView,
    WorldView,
};

use crate::config::Config;
use crate::login::LoginOutcome;
use crate::metrics::{Health, Metrics};
use crate::outbound::Outbound;
use flush::Flusher;
use sync::SyncState;
use view::ViewState;

/// Something that happened outside the game loop.
#[derive(Debug)]
pub enum Event {
    /// A client connected.
    Connected {
        /// Its connection id.
        conn: ConnId,
        /// Where to send its lines.
        out: Arc<Outbound>,
        /// Its address.
        addr: SocketAddr,
    },
    /// A client sent a valid line.
    Command {
        /// Connection.
        conn: ConnId,
        /// The command.
        cmd: ClientCommand,
        /// When the line arrived.
        received: Instant,
    },
    /// A client is gone.
    Disconnected {
        /// Connection.
        conn: ConnId,
    },
    /// A chunk load finished.
    ChunkLoaded {
        /// The chunk.
        chunk: ChunkPos,
        /// The data, or why not.
        result: Result<ChunkData, StoreError>,
    },
    /// Terrain of a chunk was generated.
    TerrainReady {
        /// The chunk.
        chunk: ChunkPos,
        /// The terrain.
        terrain: Arc<ChunkTerrain>,
    },
    /// A flush finished.
    Flushed {
        /// Its generation.
        generation: u64,
        /// What it wrote.
        batch: Arc<Batch>,
        /// The outcome.
        result: Result<ApplyReceipt, StoreError>,
        /// How long it took.
        elapsed: Duration,
    },
    /// The multi-server sync learned which cached chunks moved on.
    SyncChecked {
        /// The chunks whose head passed the key held, with that head.
        result: Result<Vec<ChunkHead>, StoreError>,
    },
    /// The multi-server sync loaded changes made by other servers.
    Synced {
        /// Chunk, the key loaded from, and what is newer.
        result: Result<Vec<(ChunkPos, i64, ChunkData)>, StoreError>,
    },
    /// A login check finished.
    LoginChecked {
        /// Connection.
        conn: ConnId,
        /// The outcome.
        outcome: LoginOutcome,
    },
    /// Saving player positions finished.
    PlayersSaved {
        /// What failed to save (to retry).
        failed: Vec<PlayerRecord>,
    },
    /// Tell every player something (a spot interruption notice).
    Announce(String),
    /// Start the shutdown drain.
    Shutdown,
    /// A request from the admin listener.
    Admin(AdminRequest),
    /// A stored draft was loaded (or could not be).
    DraftLoaded {
        /// Connection.
        conn: ConnId,
        /// Whose draft.
        owner: Arc<str>,
        /// Open a draft even if none is stored (`/private`).
        open: bool,
        /// The stored changes.
        result: Result<Vec<world_core::store::DraftChange>, StoreError>,
    },
    /// A `/publish` or `/publish check` finished.
    DraftPublished {
        /// Connection.
        conn: ConnId,
        /// Changes in the draft.
        changes: usize,
        /// What happened.
        result: Result<drafts::PublishOutcome, StoreError>,
    },
    /// A `/history` or `/rollback` finished.
    HistoryDone {
        /// Who asked.
        conn: ConnId,
        /// What to tell them.
        lines: Vec<String>,
        /// Chunks written behind the cache's back (a rollback), with their
        /// heads after it.
        dirty: Vec<world_core::store::ChunkHead>,
    },
}

/// The game loop's state.
pub struct World {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Arc<dyn BlockStore>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) players: Roster,
    pub(crate) by_id: FxHashMap<u32, ConnId>,
    pub(crate) ids: IdPool,
    pub(crate) grid: Grid,
    pub(crate) chunks: ChunkCache,
    pub(crate) flusher: Flusher,
    pub(crate) sync: SyncState,
    pub(crate) http: reqwest::Client,
    /// Logged-in players' positions waiting to be saved.
    pub(crate) player_saves: HashMap<String, PlayerRecord>,
    pub(crate) saving_players: bool,
    /// The drain started at this time.
    pub(crate) draining: Option<Instant>,
    /// Scratch buffer for recipient lists.
    pub(crate) scratch: Vec<ConnId>,
    /// What the admin listener sees.
    pub(crate) view: ViewState,
    /// The fleet bus, when one is configured.
    pub(crate) fleet: Option<fleet::Fleet>,
    /// Deliveries from the fleet bus (taken by [`World::run`]).
    pub(crate) bus_rx: Option<bus_core::BusReceiver>,
    /// The task taking drafts to the store.
    pub(crate) drafts: drafts::DraftWriter,
    /// Accepted edits are recorded in block history.
    pub(crate) history_on: bool,
    /// The background task enforcing history retention.
    pub(crate) pruner: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("players", &self.players.len())
            .finish_non_exhaustive()
    }
}

/// What a command needs before it can finish.
pub(crate) enum Step {
    /// Finished.
    Done,
    /// Must run again once `Wait` is satisfied.
    Wait(Wait),
    /// Finishes elsewhere (a task reports back); later commands wait.
    Pending(Wait),
}

const TICK: Duration = Duration::from_millis(250);
/// The players' visible sets are refreshed a slice per tick, so each one
/// once a second (see [`World::refresh_visibility`]).
pub(crate) const VISIBILITY_SLICES: usize =
    (Duration::from_secs(1).as_millis() / TICK.as_millis()) as usize;
/// Pauses between attempts of a failing chunk load: 50 ms doubling to 2 s.
const CHUNK_LOAD_BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(50))
    .with_max_delay(Duration::from_secs(2))
    .without_max_times();
const PLAYER_SAVE_INTERVAL: Duration = Duration::from_secs(5);

impl World {
    /// A new world over `store`.
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn BlockStore>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        events: mpsc::Sender<Event>,
    ) -> Self {
        metrics
            .pending_edits_limit
            .set(i64::try_from(config.limits.max_unwritten_edits).unwrap_or(i64::MAX));
        let http = reqwest::Client::builder()
            .timeout(config.login.timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let history_on = config.history.records(&config.store.scheme()) && store.keeps_history();
        Self {
            drafts: drafts::DraftWriter::start(store.clone(), events.clone()),
            history_on,
            pruner: None,
            flusher: Flusher::new(),
            sync: SyncState::default(),
            config,
            store,
            metrics,
            health,
            events,
            players: Roster::default(),
            by_id: FxHashMap::default(),
            ids: IdPool::default(),
            grid: Grid::default(),
            chunks: ChunkCache::default(),
            http,
            player_saves: HashMap::new(),
            saving_players: false,
            draining: None,
            scratch: Vec::new(),
            view: ViewState::new(Arc::new(Observers::new())),
            fleet: None,
            bus_rx: None,
        }
    }

    /// Runs until the drain after [`Event::Shutdown`] is complete, then
    /// closes the store.
    /// Returns how many edits could not be stored (0 unless the drain hit
    /// `shutdown.timeout`).
    pub async fn run(mut self, mut rx: mpsc::Receiver<Event>) -> usize {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_player_save = Instant::now();
        let mut visibility_slice = 0;
        let mut bus_rx = self.bus_rx.take();
        let mut bus_tick = tokio::time::interval(fleet::BUS_TICK);
        bus_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.start_pruner();
        loop {
            self.health.turn();
            let flush_at = self
                .flusher
                .deadline(&self.config)
                .map(TokioInstant::from_std);
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => self.handle(event),
                    None => break,
                },
                event = async {
                    match bus_rx.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                }, if bus_rx.is_some() => match event {
                    Some(event) => self.on_bus(event),
                    None => bus_rx = None,
                },
                _ = bus_tick.tick(), if self.fleet.is_some() => self.fleet_tick(),
                _ = async { if let Some(at) = flush_at { sleep_until(at).await } }, if flush_at.is_some() => {
                    self.start_flush();
                }
                _ = tick.tick() => {
                    self.start_flush_if_due();
                    if self.sync_interval() > Duration::ZERO || !self.sync.dirty.is_empty() {
                        self.start_sync();
                    }
                    if last_player_save.elapsed() >= PLAYER_SAVE_INTERVAL {
                        last_player_save = Instant::now();
                        self.collect_player_saves();
                        self.start_player_save();
                    }
                    visibility_slice = (visibility_slice + 1) % VISIBILITY_SLICES;
                    self.refresh_visibility(visibility_slice);
                    let evicted = self.chunks.evict(self.config.limits.cache_chunks);
                    if evicted > 0 {
                        debug!(evicted, "evicted cold chunks");
                    }
                    self.update_gauges();
                    self.publish_view();
                }
            }
            if self.draining.is_some() && self.drain_step().await {
                break;
            }
        }
        let unwritten = self.flusher.unwritten();
        self.finish().await;
        unwritten
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Connected { conn, out, addr } => self.on_connect(conn, out, addr),
            Event::Command {
                conn,
                cmd,
                received,
            } => self.enqueue(conn, cmd, received),
            Event::Disconnected { conn } => self.on_disconnect(conn),
            Event::ChunkLoaded { chunk, result } => self.on_chunk_loaded(chunk, result),
            Event::TerrainReady { chunk, terrain } => self.on_terrain_ready(chunk, terrain),
            Event::Flushed {
                generation,
                batch,
                result,
                elapsed,
            } => self.on_flushed(generation, batch, result, elapsed),
            Event::SyncChecked { result } => self.on_sync_checked(result),
            Event::Synced { result } => self.on_synced(result),
            Event::LoginChecked { conn, outcome } => self.on_login_checked(conn, outcome),
            Event::PlayersSaved { failed } => {
                self.saving_players = false;
                if !failed.is_empty() {
                    self.metrics.error("player_save");
                }
                for record in failed {
                    self.player_saves
                        .entry(record.name.clone())
                        .or_insert(record);
                }
            }
            Event::Announce(text) => self.broadcast(&[ServerMessage::Talk(&text)], None),
            Event::Shutdown => self.start_drain(),
            Event::Admin(request) => self.on_admin(request),
            Event::DraftLoaded {
                conn,
                owner,
                open,
                result,
            } => self.on_draft_loaded(conn, owner, open, result),
            Event::DraftPublished {
                conn,
                changes,
                result,
            } => self.on_draft_published(conn, changes, result),
            Event::HistoryDone { conn, lines, dirty } => self.on_history_done(conn, lines, dirty),
        }
    }

    /// Queues a command behind the player's waiting ones, or runs it.
    fn enqueue(&mut self, conn: ConnId, cmd: ClientCommand, received: Instant) {
        self.metrics.lines_in.inc();
        let limit = self.config.limits.max_backlog;
        let Some(player) = self.players.get_mut(&conn) else {
            return;
        };
        player.backlog.push_back(Queued {
            cmd,
            received,
            flush_waits: 0,
        });
        if player.waiting.is_some() {
            if player.backlog.len() > limit {
                warn!(
                    player = player.id,
                    backlog = player.backlog.len(),
                    "backlog too long; disconnecting"
                );
                self.metrics.error("backlog_overflow");
                player.out.close();
            }
            return;
        }
        self.drive(conn);
    }

    /// Runs a player's queued commands until one must wait.
    pub(crate) fn drive(&mut self, conn: ConnId) {
        loop {
            let Some(player) = self.players.get_mut(&conn) else {
                return;
            };
            let Some(queued) = player.backlog.pop_front() else {
                player.waiting = None;
                return;
            };
            match self.execute(conn, &queued) {
                Step::Done => {}
                Step::Wait(wait) => {
                    if let Some(player) = self.players.get_mut(&conn) {
                        let queued = Queued {
                            flush_waits: queued.flush_waits + u8::from(wait == Wait::Flush),
                            ..queued
                        };
                        player.backlog.push_front(queued);
                        player.waiting = Some(wait);
                    }
                    return;
                }
                Step::Pending(wait) => {
                    if let Some(player) = self.players.get_mut(&conn) {
                        player.waiting = Some(wait);
                    }
                    return;
                }
            }
        }
    }

    /// Resumes every player waiting for `what`.
    pub(crate) fn wake(&mut self, what: impl Fn(Wait) -> bool) {
        let waiting: Vec<ConnId> = self
            .players
            .iter()
            .filter(|(_, p)| p.waiting.is_some_and(&what))
            .map(|(conn, _)| *conn)
            .collect();
        for conn in waiting {
            if let Some(player) = self.players.get_mut(&conn) {
                player.waiting = None;
            }
            self.drive(conn);
        }
    }

    fn execute(&mut self, conn: ConnId, queued: &Queued) -> Step {
        match &queued.cmd {
            ClientCommand::Version(v) => self.on_version(conn, *v),
            ClientCommand::Login { username, token } => self.on_login(conn, username, token),
            ClientCommand::Chunk { p, q, key } => {
                self.on_chunk(conn, ChunkPos::new(*p, *q), *key, queued)
            }
            ClientCommand::Block { pos, w } => self.on_block(conn, *pos, *w),
            ClientCommand::Light { pos, w } => self.on_light(conn, *pos, *w),
            ClientCommand::Sign { pos, face, text } => self.on_sign(conn, *pos, *face, text),
            ClientCommand::Position(pos) => self.on_position(conn, *pos),
            ClientCommand::Talk(text) if crate::commands::history::is_history_command(text) => {
                self.on_history_command(conn, text, queued.flush_waits)
            }
            ClientCommand::Talk(text) => self.on_talk(conn, text, queued),
        }
    }

    // --- sending -----------------------------------------------------------

    /// Sends one message to one player.
    pub(crate) fn send(&self, conn: ConnId, msg: ServerMessage<'_>) {
        if let Some(player) = self.players.get(&conn) {
            let mut line = Vec::with_capacity(48);
            msg.encode(&mut line);
            self.push(player, &line, 1);
        }
    }

    /// Queues pre-encoded `lines` (count of lines) for `player`.
    pub(crate) fn push(&self, player: &Player, bytes: &[u8], lines: u64) {
        if player.out.send(bytes) {
            self.metrics.lines_out.inc_by(lines);
        } else if !player.out.is_closing() || player.out.queued() == 0 {
            debug!(
                player = player.id,
                "dropping output for a closing connection"
            );
        }
    }

    /// Queues pre-encoded `lines` on an outbound queue directly.
    pub(crate) fn push_to(&self, out: &Outbound, bytes: &[u8], lines: u64) {
        if out.send(bytes) {
            self.metrics.lines_out.inc_by(lines);
        }
    }

    /// Sends to the players near `conn` (everyone on a quiet server),
    /// `conn` included: arrivals, departures and name changes.
    pub(crate) fn announce(&mut self, conn: ConnId, msgs: &[ServerMessage<'_>]) {
        if !self.busy() {
            self.broadcast(msgs, None);
            return;
        }
        let Some(chunk) = self.players.get(&conn).map(|p| p.chunk) else {
            return;
        };
        let bytes = encode_all(msgs);
        let mut near = std::mem::take(&mut self.scratch);
        near.clear();
        self.grid
            .near(chunk, self.config.interest.view_radius, &mut near);
        if !near.contains(&conn) {
            near.push(conn);
        }
        for c in &near {
            if let Some(player) = self.players.get(c) {
                self.push(player, &bytes, msgs.len() as u64);
            }
        }
        self.scratch = near;
    }

    /// Sends to every player (but `except`).
    pub(crate) fn broadcast(&self, msgs: &[ServerMessage<'_>], except: Option<ConnId>) {
        let bytes = encode_all(msgs);
        for (conn, player) in &self.players {
            if Some(*conn) != except {
                self.push(player, &bytes, msgs.len() as u64);
            }
        }
    }

    /// Sends an edit of `chunk` to the players who may have it loaded.
    pub(crate) fn broadcast_edit(
        &mut self,
        chunk: ChunkPos,
        msgs: &[ServerMessage<'_>],
        except: ConnId,
    ) {
        if self.players.len() <= self.config.interest.broadcast_all_up_to {
            self.broadcast(msgs, Some(except));
            return;
        }
        let bytes = encode_all(msgs);
        let mut near = std::mem::take(&mut self.scratch);
        near.clear();
        self.grid
            .near(chunk, self.config.interest.edit_radius, &mut near);
        for conn in &near {
            if *conn != except
                && let Some(player) = self.players.get(conn)
            {
                self.push(player, &bytes, msgs.len() as u64);
            }
        }
        self.scratch = near;
    }

    // --- chunks ------------------------------------------------------------

    /// Makes sure `chunk` is loaded (and its terrain generated when
    /// `terrain`), starting what is missing. `Ok(true)` when ready,
    /// `Ok(false)` when the last load failed (answer without it),
    /// `Err(wait)` to wait.
    pub(crate) fn ensure_chunk(&mut self, chunk: ChunkPos, terrain: bool) -> Result<bool, Wait> {
        let slot = self.chunks.slots.entry(chunk).or_default();
        match slot.load {
            Load::Ready(ref mut state) => {
                state.last_used = Some(Instant::now());
            }
            Load::Loading => return Err(Wait::Chunk(chunk)),
            // Everyone who waited for the failed load is answered without
            // it; `on_chunk_loaded` then lets the next request retry.
            Load::Failed => return Ok(false),
            Load::Absent => {
                slot.load = Load::Loading;
                self.spawn_load(chunk);
                return Err(Wait::Chunk(chunk));
            }
        }
        if terrain && slot.terrain.is_none() {
            if !slot.terrain_pending {
                slot.terrain_pending = true;
                let events = self.events.clone();
                tokio::task::spawn_blocking(move || {
                    let terrain = Arc::new(ChunkTerrain::generate(chunk));
                    let _ = events.blocking_send(Event::TerrainReady { chunk, terrain });
                });
            }
            return Err(Wait::Terrain(chunk));
        }
        Ok(true)
    }

    fn spawn_load(&self, chunk: ChunkPos) {
        let store = self.store.clone();
        let events = self.events.clone();
        let give_up = self.config.limits.load_timeout;
        tokio::spawn(async move {
            let started = Instant::now();
            // Retry while the store says it may help and `load_timeout` has
            // not passed (calls count too, not only the pauses).
            let result = (|| store.load_chunk(chunk, 0))
                .retry(CHUNK_LOAD_BACKOFF.with_total_delay(Some(give_up)))
                .sleep(tokio::time::sleep)
                .when(|e| e.is_retryable() && started.elapsed() < give_up)
                .notify(|e, _| debug!(%chunk, error = %e, "chunk load failed; retrying"))
                .await;
            let _ = events.send(Event::ChunkLoaded { chunk, result }).await;
        });
    }

    fn on_chunk_loaded(&mut self, chunk: ChunkPos, result: Result<ChunkData, StoreError>) {
        let slot = self.chunks.slots.entry(chunk).or_default();
        match result {
            Ok(data) => {
                let mut state = ChunkState::from_data(data);
                // Writes not stored yet (or racing with this read) win.
                if let Some((generation, batch)) = self.flusher.in_flight() {
                    state.overlay_blocks(batch, chunk, generation);
                    state.overlay_decor(batch, chunk);
                }
                state.overlay_blocks(&self.flusher.pending, chunk, self.flusher.generation);
                state.overlay_decor(&self.flusher.pending, chunk);
                state.last_used = Some(Instant::now());
                slot.load = Load::Ready(state);
            }
            Err(e) => {
                warn!(%chunk, error = %e, "cannot load chunk; answering without it");
                self.metrics.error("chunk_load");
                slot.load = Load::Failed;
            }
        }
        self.wake(|w| w == Wait::Chunk(chunk));
        // Whoever could not use the failed load has been answered; the next
        // request retries.
        if let Some(slot) = self.chunks.slots.get_mut(&chunk)
            && matches!(slot.load, Load::Failed)
        {
            slot.load = Load::Absent;
        }
    }

    fn on_terrain_ready(&mut self, chunk: ChunkPos, terrain: Arc<ChunkTerrain>) {
        if let Some(slot) = self.chunks.slots.get_mut(&chunk) {
            slot.terrain = Some(terrain);
            slot.terrain_pending = false;
        }
        self.wake(|w| w == Wait::Terrain(chunk));
    }

    // --- time and players ----------------------------------------------------

    /// Milliseconds since the Unix epoch.
    pub(crate) fn now_ms() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    /// Seconds since the Unix epoch, for `E` lines: every server of a fleet
    /// shows the same time of day.
    pub(crate) fn now_seconds() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }

    fn update_gauges(&self) {
        self.metrics.players.set(self.players.len() as i64);
        self.health
            .players
            .store(self.players.len(), Ordering::Relaxed);
        self.metrics.cached_chunks.set(self.chunks.loaded() as i64);
        let pending = self.flusher.unwritten();
        self.metrics.pending_edits.set(pending as i64);
        let oldest = self.flusher.oldest().map_or(0, |t| t.elapsed().as_millis());
        self.metrics
            .pending_oldest_ms
            .set(i64::try_from(oldest).unwrap_or(i64::MAX));
    }

    // --- shutdown ----------------------------------------------------------

    fn start_drain(&mut self) {
        if self.draining.is_some() {
            return;
        }
        info!(
            players = self.players.len(),
            "shutdown: warning players and flushing"
        );
        self.draining = Some(Instant::now());
        self.health.draining.store(true, Ordering::Relaxed);
        let message = self.config.shutdown.message.clone();
        self.broadcast(&[ServerMessage::Talk(&message)], None);
        self.start_flush();
    }

    /// One step of the drain; true when it is over.
    async fn drain_step(&mut self) -> bool {
        let Some(started) = self.draining else {
            return false;
        };
        let elapsed = started.elapsed();
        if elapsed >= self.config.shutdown.timeout {
            let lost = self.flusher.unwritten();
            tracing::error!(
                unwritten = lost,
                "shutdown timeout reached before every edit was stored"
            );
            return true;
        }
        if elapsed < self.config.shutdown.grace {
            // Keep reading: lines sent just before the signal still count.
            self.start_flush();
            return false;
        }
        let idle = self.players.values().all(|p| p.waiting.is_none());
        if !idle {
            return false;
        }
        if !self.flusher.is_idle() {
            self.start_flush();
            return false;
        }
        // Drafts are stored too (logged-in players find them again).
        self.drafts.is_idle()
    }

    /// Starts the retention task when history is recorded with limits.
    fn start_pruner(&mut self) {
        let settings = self.config.history.clone();
        if !self.history_on || !settings.prunes() {
            return;
        }
        let store = self.store.clone();
        self.pruner = Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(settings.prune_interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let older_than = settings.max_age.map_or(i64::MIN, |age| {
                    let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
                    Self::now_ms().saturating_sub(age)
                });
                match store.prune_history(older_than, settings.max_rows).await {
                    Ok(0) => {}
                    Ok(deleted) => info!(deleted, "pruned block history"),
                    Err(e) => warn!(error = %e, "pruning block history failed; will retry"),
                }
            }
        }));
    }

    async fn finish(&mut self) {
        if let Some(fleet) = &mut self.fleet {
            fleet.leave().await;
        }
        if let Some(pruner) = self.pruner.take() {
            pruner.abort();
        }
        self.collect_player_saves();
        let records: Vec<PlayerRecord> = self.player_saves.drain().map(|(_, r)| r).collect();
        if !records.is_empty()
            && let Err(e) = self.store.save_players(&records).await
        {
            warn!(error = %e, players = records.len(), "could not save player positions at shutdown");
        }
        for player in self.players.values() {
            player.out.close();
        }
        if let Err(e) = self.store.close().await {
            warn!(error = %e, "closing the store failed");
        }
        info!("world stopped");
    }
}

/// Encodes messages into one buffer.
pub(crate) fn encode_all(msgs: &[ServerMessage<'_>]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(msgs.len() * 32);
    for msg in msgs {
        msg.encode(&mut bytes);
    }
    bytes
}
