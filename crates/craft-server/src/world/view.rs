//! What the game loop shows the admin listener, and what it asks of it.
//!
//! The loop publishes; the admin side reads without ever waiting on it:
//!
//! - a [`WorldView`] on a `watch` channel, rebuilt at most once per tick
//!   (250 ms): players, pending writes, edit rate, bus state;
//! - every accepted block edit (and every block another server changed in a
//!   cached chunk) as an [`EditEvent`] on a `broadcast` channel, for map
//!   tiles to be invalidated and edits highlighted. A receiver that falls
//!   behind loses events, never slows the loop.
//!
//! Requests the other way ([`AdminRequest`]: kick a player, read cached
//! chunks for the map) are ordinary [`Event`]s; the loop answers each at
//! once from memory.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use world_core::BlockStore;
use world_core::coords::{BlockPos, ChunkPos};
use world_core::protocol::ServerMessage;
use world_core::terrain::ChunkTerrain;

use super::{Event, Load, World};
use crate::metrics::EditLabels;

/// Edit events kept for slow receivers before they start losing some.
const EDIT_BACKLOG: usize = 4096;

/// The window the edit rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Told to a player an operator kicks, before the connection closes.
pub const KICK_MESSAGE: &str = "You have been disconnected by an operator.";

/// A player as the admin page shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlayerView {
    /// Protocol id (unique on its server).
    pub id: u32,
    /// Nick.
    pub nick: String,
    /// Position.
    pub x: f32,
    /// Height.
    pub y: f32,
    /// Position.
    pub z: f32,
    /// The server the player is on (fleet-wide views mix servers).
    #[serde(serialize_with = "shared_str")]
    pub server: Arc<str>,
}

/// The fleet bus, as far as this server knows it; the page shows the
/// state as it is named here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BusState {
    /// No bus configured: every figure is this server's alone.
    #[default]
    None,
    /// A bus is configured and connected.
    Connected,
    /// A bus is configured but down: the server polls the store meanwhile.
    Disconnected,
}

/// A snapshot of the world for the admin side.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorldView {
    /// This server's name (the host name, the pod's name in Kubernetes).
    #[serde(serialize_with = "shared_str")]
    pub server: Arc<str>,
    /// Players online here (and, with a bus, elsewhere in the fleet).
    pub players: Vec<PlayerView>,
    /// Players online in the whole fleet; `None` without a bus.
    pub players_fleet: Option<usize>,
    /// Accepted edits (blocks, lights, signs) since start.
    pub edits_total: u64,
    /// Accepted edits per second over the last few seconds.
    pub edits_per_second: f64,
    /// Edits accepted and waiting for the next flush.
    pub pending_writes: usize,
    /// Edits being written right now.
    pub in_flight_writes: usize,
    /// Chunks cached in memory.
    pub cached_chunks: usize,
    /// The fleet bus.
    pub bus: BusState,
    /// The server is draining.
    pub draining: bool,
}

/// One changed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EditEvent {
    /// Chunk.
    pub p: i32,
    /// Chunk.
    pub q: i32,
    /// Block.
    pub x: i32,
    /// Block.
    pub y: i32,
    /// Block.
    pub z: i32,
    /// The new value (0: removed).
    pub w: i32,
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: i64,
}

/// Who an operator means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlayerRef {
    /// A protocol id.
    Id(u32),
    /// A nick (exact).
    Nick(String),
}

impl std::fmt::Display for PlayerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlayerRef::Id(id) => write!(f, "id {id}"),
            PlayerRef::Nick(nick) => write!(f, "{nick:?}"),
        }
    }
}

/// The stored changes of a chunk the game loop holds in memory.
#[derive(Clone, Debug)]
pub struct HotChunk {
    /// The chunk.
    pub chunk: ChunkPos,
    /// Its own blocks (stored or pending; mirrors left out).
    pub blocks: Vec<(BlockPos, i32)>,
    /// Its generated terrain, when the loop has it.
    pub terrain: Option<Arc<ChunkTerrain>>,
}

/// What the admin listener asks of the game loop.
#[derive(Debug)]
pub enum AdminRequest {
    /// Disconnects a player (told [`KICK_MESSAGE`] first). Answers with
    /// the nick of the player kicked, `None` when nobody matched.
    Kick {
        /// Who.
        player: PlayerRef,
        /// The answer.
        reply: oneshot::Sender<Option<String>>,
    },
    /// Chunks written behind the game loop's back (a rollback from the
    /// admin page): reload them and show them to the players who have them.
    Resync {
        /// The chunks, with their heads after the write.
        chunks: Vec<world_core::store::ChunkHead>,
    },
    /// The cached chunks among `chunks`, for the map. Chunks not in memory
    /// are left out: the caller reads those from the store.
    Chunks {
        /// Chunks wanted.
        chunks: Vec<ChunkPos>,
        /// The answer.
        reply: oneshot::Sender<Vec<HotChunk>>,
    },
}

/// The channels between a game loop and its observers, created before
/// either (see [`Shared`](crate::server::Shared)).
#[derive(Debug)]
pub struct Observers {
    view: watch::Sender<Arc<WorldView>>,
    edits: broadcast::Sender<EditEvent>,
    events: OnceLock<mpsc::Sender<Event>>,
    store: OnceLock<Arc<dyn BlockStore>>,
}

impl Default for Observers {
    fn default() -> Self {
        Self::new()
    }
}

impl Observers {
    /// Channels with nothing published yet.
    pub fn new() -> Self {
        let view = WorldView {
            server: server_name(),
            ..WorldView::default()
        };
        Self {
            view: watch::Sender::new(Arc::new(view)),
            edits: broadcast::Sender::new(EDIT_BACKLOG),
            events: OnceLock::new(),
            store: OnceLock::new(),
        }
    }

    /// Connects the game loop and its (instrumented) store; done once by
    /// [`server::run`](crate::server::run).
    pub(crate) fn attach(&self, events: mpsc::Sender<Event>, store: Arc<dyn BlockStore>) {
        let _ = self.events.set(events);
        let _ = self.store.set(store);
    }

    /// The latest snapshot.
    pub fn view(&self) -> Arc<WorldView> {
        self.view.borrow().clone()
    }

    /// Follows the snapshots.
    pub fn watch_view(&self) -> watch::Receiver<Arc<WorldView>> {
        self.view.subscribe()
    }

    /// Follows the edits from now on.
    pub fn watch_edits(&self) -> broadcast::Receiver<EditEvent> {
        self.edits.subscribe()
    }

    /// The store, once a game loop runs.
    pub fn store(&self) -> Option<Arc<dyn BlockStore>> {
        self.store.get().cloned()
    }

    /// Sends `request` to the game loop. False when no loop runs (or it is
    /// gone).
    pub async fn request(&self, request: AdminRequest) -> bool {
        match self.events.get() {
            Some(events) => events.send(Event::Admin(request)).await.is_ok(),
            None => false,
        }
    }
}

/// Serializes a shared string (serde's `rc` feature is not on).
fn shared_str<S: serde::Serializer>(s: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(s)
}

/// This server's name: the host name (a pod's name in Kubernetes).
fn server_name() -> Arc<str> {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".to_owned())
        .into()
}

/// The game loop's side of the observers.
#[derive(Debug)]
pub(crate) struct ViewState {
    observers: Arc<Observers>,
    /// Accepted edits at recent ticks, for the rate.
    samples: VecDeque<(Instant, u64)>,
}

impl ViewState {
    pub(crate) fn new(observers: Arc<Observers>) -> Self {
        Self {
            observers,
            samples: VecDeque::new(),
        }
    }
}

impl World {
    /// Publishes to `observers` instead of the loop's private channels.
    pub fn with_observers(mut self, observers: Arc<Observers>) -> Self {
        self.view = ViewState::new(observers);
        self
    }

    /// Tells observers that the block at `pos` is now `w`.
    pub(crate) fn publish_edit(&self, pos: BlockPos, w: i32) {
        let chunk = pos.chunk();
        // No receiver is not an error: nobody looks at the map.
        let _ = self.view.observers.edits.send(EditEvent {
            p: chunk.p,
            q: chunk.q,
            x: pos.x,
            y: pos.y,
            z: pos.z,
            w,
            time_ms: Self::now_ms(),
        });
    }

    /// Rebuilds the snapshot (once per tick).
    pub(crate) fn publish_view(&mut self) {
        let edits_total: u64 = ["block", "light", "sign"]
            .into_iter()
            .filter_map(|kind| {
                // `get`, not `get_or_create`: the scrape shows only the
                // series that happened.
                let labels = EditLabels {
                    kind,
                    result: "accepted",
                };
                self.metrics.edits.get(&labels).map(|c| c.get())
            })
            .sum();
        let now = Instant::now();
        self.view.samples.push_back((now, edits_total));
        while self
            .view
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.view.samples.pop_front();
        }
        let edits_per_second = match self.view.samples.front() {
            Some((t, n)) if now > *t => {
                (edits_total - n) as f64 / now.duration_since(*t).as_secs_f64()
            }
            _ => 0.0,
        };
        let server = self.view.observers.view.borrow().server.clone();
        let mut players: Vec<PlayerView> = self
            .players
            .values()
            .map(|p| PlayerView {
                id: p.id,
                nick: p.nick.clone(),
                x: p.pos.x,
                y: p.pos.y,
                z: p.pos.z,
                server: server.clone(),
            })
            .collect();
        players.extend(self.fleet_player_views());
        players.sort_unstable_by_key(|p| p.id);
        let view = WorldView {
            server,
            players,
            players_fleet: self
                .fleet
                .as_ref()
                .map(|f| self.players.len() + f.remote_players()),
            edits_total,
            edits_per_second,
            pending_writes: self.flusher.pending.len(),
            in_flight_writes: self.flusher.in_flight().map_or(0, |(_, b)| b.len()),
            cached_chunks: self.chunks.loaded(),
            bus: match &self.fleet {
                None => BusState::None,
                Some(f) if f.connected() => BusState::Connected,
                Some(_) => BusState::Disconnected,
            },
            draining: self.draining.is_some(),
        };
        self.view.observers.view.send_replace(Arc::new(view));
    }

    /// Answers an admin request from memory.
    pub(crate) fn on_admin(&mut self, request: AdminRequest) {
        match request {
            AdminRequest::Kick { player, reply } => {
                let conn = match &player {
                    PlayerRef::Id(id) => self.by_id.get(id).copied(),
                    PlayerRef::Nick(nick) => self
                        .players
                        .iter()
                        .find(|(_, p)| &p.nick == nick)
                        .map(|(conn, _)| *conn),
                };
                let kicked = conn.and_then(|conn| {
                    self.send(conn, ServerMessage::Talk(KICK_MESSAGE));
                    let player = self.players.get(&conn)?;
                    // The writer sends what is queued, then closes; the
                    // connection's end reports the departure as usual.
                    player.out.close();
                    tracing::info!(player = player.id, nick = %player.nick, "kicked by an operator");
                    Some(player.nick.clone())
                });
                let _ = reply.send(kicked);
            }
            AdminRequest::Resync { chunks } => self.resync(chunks),
            AdminRequest::Chunks { chunks, reply } => {
                let hot = chunks
                    .into_iter()
                    .filter_map(|chunk| {
                        let slot = self.chunks.slots.get(&chunk)?;
                        let Load::Ready(state) = &slot.load else {
                            return None;
                        };
                        let blocks = state
                            .blocks
                            .iter()
                            .filter(|(pos, e)| e.w >= 0 && pos.chunk() == chunk)
                            .map(|(pos, e)| (*pos, e.w))
                            .collect();
                        Some(HotChunk {
                            chunk,
                            blocks,
                            terrain: slot.terrain.clone(),
                        })
                    })
                    .collect();
                let _ = reply.send(hot);
            }
        }
    }
}
