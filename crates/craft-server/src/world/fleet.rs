//! One world across a fleet: what this server tells the others over the
//! bus, and what it makes of what they tell it.
//!
//! Everything here runs in the game loop and never awaits the bus: the
//! tick's messages are encoded and handed to the [`Outbox`] task, and
//! deliveries arrive as [`BusEvent`]s the loop selects on.
//!
//! - **Edits** (blocks with their mirrors, lights, signs) are queued as
//!   accepted and published every bus tick (50 ms), grouped by region.
//!   Receivers apply them to the chunks they hold and send them to their
//!   players, at once. They are provisional: when a flush lands, its
//!   `Committed` heads tell receivers holding those chunks to re-sync them
//!   from the store.
//! - **Final values**: a block two servers edit at the same moment ends
//!   as the store's latest write of it (the higher key in the chunk's key
//!   order): a remote edit keeps the cached entry's key (or key 0 over a
//!   pending local write), so the sync that follows `Committed` replaces
//!   it with whatever the store holds last, on every server alike.
//! - **Losses** (an outage, a full receiver, a crashed sender) are
//!   repaired by the store sync, which keeps running at
//!   `bus_sync_interval` while the bus is connected, at `sync_interval`
//!   while it is not; a reconnection or a `Lagged` marks every held chunk
//!   for sync at once.
//! - **Players**: joins, leaves and nick changes are found by comparing
//!   the roster with what the fleet was told, every bus tick; positions of
//!   players that moved are coalesced per tick (every 500 ms on the
//!   PostgreSQL bus, which carries them through the database's
//!   notification queue). Remote players get protocol ids from the same
//!   pool as local ones, are shown with `P` before `N`, and disappear
//!   (`D`) on `Bye`, when their server is silent for
//!   `bus_heartbeat_timeout`, or when a roster no longer lists them.
//! - **Interest**: the server subscribes to the regions within
//!   `interest.edit_radius` of its players' chunks, so its traffic grows
//!   with its players' spread, not with the fleet.
//!
//! Remote players are shown to every local player: they take no part in
//! the nearest-`max_visible` selection of busy servers.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus_core::message::{self, Assembler, Body, Edit, Encoder, PlayerInfo, PlayerPos};
use bus_core::{Bus, BusEvent, BusStatus, RegionPos, ServerId, Topic, regions_near};
use rustc_hash::{FxHashMap, FxHashSet};
use tracing::{debug, info};
use world_core::coords::ChunkPos;
use world_core::protocol::{Position, ServerMessage};
use world_core::store::ChunkHead;

use super::{BlockEntry, ConnId, World, encode_all};
use crate::bus::{Opened, Outbox};
use crate::metrics::Metrics;

/// How often the tick's messages are published.
pub(crate) const BUS_TICK: Duration = Duration::from_millis(50);
/// How often a heartbeat goes out.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Positions on the PostgreSQL bus go out at most this often.
const POSTGRES_POSITIONS_EVERY: Duration = Duration::from_millis(500);
/// An unknown server with players makes us ask for rosters at most this
/// often (its roster was lost).
const HELLO_AT_MOST_EVERY: Duration = Duration::from_secs(5);

/// A player of another server, as shown here.
#[derive(Debug)]
struct Remote {
    /// The protocol id our clients know it by (from our id pool).
    local: u32,
    nick: String,
    pos: Position,
}

/// Another server of the fleet.
#[derive(Debug)]
struct Peer {
    last_seen: Instant,
    players: FxHashMap<message::PlayerId, Remote>,
}

/// What a local player was last announced as.
#[derive(Debug)]
struct Announced {
    conn: ConnId,
    nick: String,
}

/// The bus side of the game loop.
pub(crate) struct Fleet {
    bus: Arc<dyn Bus>,
    outbox: Outbox,
    encoder: Encoder,
    assembler: Assembler,
    me: ServerId,
    /// Messages of this bus tick, in order.
    outgoing: Vec<(Topic, Body)>,
    /// Edits of this bus tick.
    edits: Vec<Edit>,
    /// Players that moved since positions last went out.
    moved: FxHashSet<ConnId>,
    positions_at: Instant,
    /// Local players as the fleet was told, by protocol id.
    announced: FxHashMap<u32, Announced>,
    peers: HashMap<ServerId, Peer>,
    status: BusStatus,
    heartbeat_at: Instant,
    hello_at: Option<Instant>,
    /// The players' chunks the interest was last computed from.
    interest_chunks: Vec<ChunkPos>,
    interest: Option<BTreeSet<RegionPos>>,
    /// Undecodable payloads received.
    pub(crate) invalid: u64,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("me", &self.me)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// The bus side over an opened bus.
    pub(crate) fn new(opened: &Opened, metrics: &Metrics) -> Self {
        let bus = opened.bus.clone();
        metrics.attach_bus(bus.clone());
        let me = bus.server();
        let now = Instant::now();
        Self {
            outbox: Outbox::start(bus.clone()),
            encoder: Encoder::new(me),
            assembler: Assembler::default(),
            me,
            outgoing: Vec::new(),
            edits: Vec::new(),
            moved: FxHashSet::default(),
            positions_at: now,
            announced: FxHashMap::default(),
            peers: HashMap::new(),
            status: opened.receiver.status(),
            heartbeat_at: now,
            hello_at: None,
            interest_chunks: Vec::new(),
            interest: None,
            invalid: 0,
            bus,
        }
    }

    /// Connected now.
    pub(crate) fn connected(&self) -> bool {
        self.status.connected
    }

    /// Players of other servers known here.
    pub(crate) fn remote_players(&self) -> usize {
        self.peers.values().map(|p| p.players.len()).sum()
    }

    fn queue(&mut self, topic: Topic, body: Body) {
        self.outgoing.push((topic, body));
    }

    /// Encodes and hands the tick's messages to the publishing task.
    fn send(&mut self) {
        if !self.edits.is_empty() {
            let edits = std::mem::take(&mut self.edits);
            for (region, edits) in message::by_region(edits, Edit::chunk) {
                self.outgoing
                    .push((Topic::Region(region), Body::Edits { edits }));
            }
        }
        if self.outgoing.is_empty() {
            return;
        }
        if !self.status.connected {
            // Nothing is queued to arrive late; the store repairs edits.
            self.outgoing.clear();
            return;
        }
        let max = self.bus.max_payload();
        let mut payloads = Vec::new();
        for (topic, body) in std::mem::take(&mut self.outgoing) {
            match self.encoder.encode(&body, max) {
                Ok(pieces) => payloads.extend(pieces.into_iter().map(|p| (topic, p))),
                Err(e) => debug!(error = %e, kind = body.kind(), "bus message not sent"),
            }
        }
        self.outbox.publish(payloads);
    }

    /// Leaves the bus: `Bye`, then close (at shutdown, after the drain).
    pub(crate) async fn leave(&mut self) {
        self.send();
        if self.status.connected
            && let Ok(bye) = self.encoder.encode(&Body::Bye, self.bus.max_payload())
        {
            let bye: Vec<_> = bye.into_iter().map(|p| (Topic::Fleet, p)).collect();
            let _ = tokio::time::timeout(Duration::from_secs(2), self.bus.publish(&bye)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.bus.close()).await;
        info!("left the fleet bus");
    }
}

impl World {
    /// Joins the fleet over `opened` (before [`World::run`]).
    pub fn with_bus(mut self, opened: Option<Opened>) -> Self {
        if let Some(opened) = opened {
            self.fleet = Some(Fleet::new(&opened, &self.metrics));
            self.bus_rx = Some(opened.receiver);
        }
        self
    }

    /// The store sync interval now: slower while a bus carries the edits.
    pub(crate) fn sync_interval(&self) -> Duration {
        match &self.fleet {
            Some(fleet) if fleet.connected() && !self.config.sync_interval.is_zero() => {
                self.config.bus_sync_interval
            }
            _ => self.config.sync_interval,
        }
    }

    // --- hooks from the commands -----------------------------------------

    /// An accepted edit, for the fleet.
    pub(crate) fn fleet_edit(&mut self, edit: Edit) {
        if let Some(fleet) = &mut self.fleet {
            fleet.edits.push(edit);
        }
    }

    /// A player moved (or joined, or teleported).
    pub(crate) fn fleet_moved(&mut self, conn: ConnId) {
        if let Some(fleet) = &mut self.fleet {
            fleet.moved.insert(conn);
        }
    }

    /// A public chat line, for the fleet.
    pub(crate) fn fleet_chat(&mut self, line: &str) {
        if let Some(fleet) = &mut self.fleet {
            fleet.queue(
                Topic::Fleet,
                Body::Chat {
                    line: line.to_owned(),
                },
            );
        }
    }

    /// `@nick` for a player of another server: sent there; false when no
    /// server has that nick.
    pub(crate) fn fleet_private(&mut self, to_nick: &str, line: &str) -> bool {
        let Some(fleet) = &mut self.fleet else {
            return false;
        };
        // The server whose player joined first here, for a stable choice.
        let target = fleet
            .peers
            .iter()
            .flat_map(move |(server, peer)| {
                peer.players
                    .values()
                    .filter(move |r| r.nick == to_nick)
                    .map(move |r| (r.local, *server))
            })
            .min();
        let Some((_, server)) = target else {
            return false;
        };
        fleet.queue(
            Topic::Server(server),
            Body::Private {
                to_nick: to_nick.to_owned(),
                line: line.to_owned(),
            },
        );
        true
    }

    /// Nicks of the players of other servers, sorted (for `/list`).
    pub(crate) fn fleet_nicks(&self) -> Vec<String> {
        let mut nicks: Vec<String> = self
            .fleet
            .iter()
            .flat_map(|f| f.peers.values())
            .flat_map(|p| p.players.values().map(|r| r.nick.clone()))
            .collect();
        nicks.sort_unstable();
        nicks
    }

    /// The players of other servers, for the admin page (by the ids our
    /// clients know them by; the server is the peer's bus id).
    pub(crate) fn fleet_player_views(&self) -> Vec<super::PlayerView> {
        let Some(fleet) = &self.fleet else {
            return Vec::new();
        };
        let mut views = Vec::new();
        for (server, peer) in &fleet.peers {
            let server: Arc<str> = Arc::from(server.to_string());
            for r in peer.players.values() {
                views.push(super::PlayerView {
                    id: r.local,
                    nick: r.nick.clone(),
                    x: r.pos.x,
                    y: r.pos.y,
                    z: r.pos.z,
                    server: server.clone(),
                });
            }
        }
        views
    }

    /// Chunks reached these heads in the store (a flush, a published
    /// draft, a rollback): receivers holding them re-sync them.
    pub(crate) fn fleet_heads(&mut self, heads: impl IntoIterator<Item = ChunkHead>) {
        let Some(fleet) = &mut self.fleet else {
            return;
        };
        for (region, chunks) in message::by_region(heads, |h| h.chunk) {
            fleet.queue(Topic::Region(region), Body::Committed { chunks });
        }
    }

    /// Shows a newcomer every remote player (`P` before `N`).
    pub(crate) fn fleet_greet(&self, conn: ConnId) {
        let (Some(fleet), Some(player)) = (&self.fleet, self.players.get(&conn)) else {
            return;
        };
        let mut msgs = Vec::new();
        for peer in fleet.peers.values() {
            for r in peer.players.values() {
                msgs.push(ServerMessage::Position {
                    id: r.local,
                    pos: r.pos,
                });
                msgs.push(ServerMessage::Nick {
                    id: r.local,
                    nick: &r.nick,
                });
            }
        }
        if !msgs.is_empty() {
            self.push(player, &encode_all(&msgs), msgs.len() as u64);
        }
    }

    // --- the bus tick --------------------------------------------------------

    /// Every [`BUS_TICK`]: roster changes, positions, heartbeat, interest,
    /// timeouts, then publishes.
    pub(crate) fn fleet_tick(&mut self) {
        if self.fleet.is_none() {
            return;
        }
        self.announce_roster_changes();
        self.queue_positions();
        self.check_peers();
        self.update_interest();
        if let Some(fleet) = &mut self.fleet {
            if fleet.heartbeat_at.elapsed() >= HEARTBEAT_EVERY {
                fleet.heartbeat_at = Instant::now();
                let at_ms = u64::try_from(Self::now_ms()).unwrap_or(0);
                let players = u32::try_from(self.players.len()).unwrap_or(u32::MAX);
                fleet.queue(Topic::Fleet, Body::Heartbeat { players, at_ms });
            }
            fleet.send();
            self.metrics
                .bus_remote_players
                .set(i64::try_from(fleet.remote_players()).unwrap_or(i64::MAX));
            self.metrics
                .bus_peers
                .set(i64::try_from(fleet.peers.len()).unwrap_or(i64::MAX));
            self.metrics.bus_connected.set(i64::from(fleet.connected()));
            self.metrics.bus_outbox_dropped.store(
                fleet
                    .outbox
                    .dropped
                    .load(std::sync::atomic::Ordering::Relaxed),
                std::sync::atomic::Ordering::Relaxed,
            );
            self.metrics
                .bus_invalid
                .store(fleet.invalid, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Joins, leaves and nick changes since the last tick.
    fn announce_roster_changes(&mut self) {
        let Some(fleet) = &mut self.fleet else {
            return;
        };
        let mut gone: Vec<u32> = Vec::new();
        for (id, was) in &fleet.announced {
            let still = self
                .by_id
                .get(id)
                .is_some_and(|conn| *conn == was.conn && self.players.contains_key(conn));
            if !still {
                gone.push(*id);
            }
        }
        gone.sort_unstable();
        for id in gone {
            if let Some(was) = fleet.announced.remove(&id) {
                fleet.queue(Topic::Fleet, Body::Leave { id, nick: was.nick });
            }
        }
        for (conn, player) in &self.players {
            match fleet.announced.get_mut(&player.id) {
                None => {
                    fleet.announced.insert(
                        player.id,
                        Announced {
                            conn: *conn,
                            nick: player.nick.clone(),
                        },
                    );
                    fleet.queue(
                        Topic::Fleet,
                        Body::Join(PlayerInfo {
                            id: player.id,
                            nick: player.nick.clone(),
                            pos: player.pos,
                        }),
                    );
                }
                Some(was) if was.nick != player.nick => {
                    was.nick.clone_from(&player.nick);
                    fleet.queue(
                        Topic::Fleet,
                        Body::Nick {
                            id: player.id,
                            nick: player.nick.clone(),
                        },
                    );
                }
                Some(_) => {}
            }
        }
    }

    fn queue_positions(&mut self) {
        let Some(fleet) = &mut self.fleet else {
            return;
        };
        if fleet.moved.is_empty() {
            return;
        }
        if fleet.bus.backend() == "postgres"
            && fleet.positions_at.elapsed() < POSTGRES_POSITIONS_EVERY
        {
            return;
        }
        fleet.positions_at = Instant::now();
        let moved = std::mem::take(&mut fleet.moved);
        let positions = moved.iter().filter_map(|conn| {
            let p = self.players.get(conn)?;
            // A player not announced yet goes out with its `Join`.
            fleet.announced.contains_key(&p.id).then_some((
                p.chunk,
                PlayerPos {
                    id: p.id,
                    pos: p.pos,
                },
            ))
        });
        let grouped = message::by_region(positions, |(chunk, _)| *chunk);
        for (region, players) in grouped {
            let players = players.into_iter().map(|(_, p)| p).collect();
            fleet
                .outgoing
                .push((Topic::Region(region), Body::Positions { players }));
        }
    }

    /// Drops the players of servers silent for the heartbeat timeout.
    fn check_peers(&mut self) {
        let timeout = self.config.bus_heartbeat_timeout;
        let Some(fleet) = &self.fleet else {
            return;
        };
        let silent: Vec<ServerId> = fleet
            .peers
            .iter()
            .filter(|(_, p)| p.last_seen.elapsed() >= timeout)
            .map(|(s, _)| *s)
            .collect();
        for server in silent {
            info!(%server, "a server of the fleet went silent; its players leave");
            self.drop_peer(server);
        }
    }

    /// Subscribes to the regions near the players, when they changed.
    fn update_interest(&mut self) {
        let radius = self.config.interest.edit_radius;
        let Some(fleet) = &mut self.fleet else {
            return;
        };
        let mut chunks: Vec<ChunkPos> = self.players.values().map(|p| p.chunk).collect();
        chunks.sort_unstable_by_key(|c| (c.p, c.q));
        chunks.dedup();
        if fleet.interest.is_some() && chunks == fleet.interest_chunks {
            return;
        }
        let regions = regions_near(chunks.iter().copied(), radius);
        if fleet.interest.as_ref() != Some(&regions) {
            let topics: Vec<Topic> = regions.iter().map(|r| Topic::Region(*r)).collect();
            if !fleet.outbox.set_interest(topics) {
                return;
            }
            fleet.interest = Some(regions);
        }
        fleet.interest_chunks = chunks;
    }

    // --- receiving -------------------------------------------------------------

    /// Something arrived from the bus.
    pub(crate) fn on_bus(&mut self, event: BusEvent) {
        match event {
            BusEvent::Message(delivery) => {
                let Some(fleet) = &mut self.fleet else {
                    return;
                };
                let envelope = match message::decode(&delivery.payload) {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        fleet.invalid += 1;
                        debug!(error = %e, "undecodable bus message skipped");
                        return;
                    }
                };
                if envelope.from == fleet.me {
                    return;
                }
                let from = envelope.from;
                let known = fleet.peers.contains_key(&from);
                fleet
                    .peers
                    .entry(from)
                    .or_insert_with(|| Peer {
                        last_seen: Instant::now(),
                        players: FxHashMap::default(),
                    })
                    .last_seen = Instant::now();
                if !known {
                    info!(server = %from, "a server of the fleet is here");
                }
                match fleet.assembler.push(envelope) {
                    Ok(Some(envelope)) => self.on_message(from, envelope.body, known),
                    Ok(None) => {}
                    Err(e) => {
                        fleet.invalid += 1;
                        debug!(error = %e, "inconsistent bus message skipped");
                    }
                }
            }
            BusEvent::Lagged(lost) => {
                debug!(lost, "bus messages dropped; re-syncing held chunks");
                self.mark_all_for_sync();
            }
            BusEvent::State(status) => self.on_bus_state(status),
        }
    }

    fn on_bus_state(&mut self, status: BusStatus) {
        let Some(fleet) = &mut self.fleet else {
            return;
        };
        let reconnected = status.connects > fleet.status.connects && status.connected;
        if status.connected != fleet.status.connected {
            if status.connected {
                info!(backend = status.backend, "fleet bus connected");
            } else {
                info!(backend = status.backend, reason = ?status.last_error, "fleet bus disconnected; polling the store meanwhile");
            }
        }
        fleet.status = status;
        if reconnected {
            // Peers answer `Hello` with their rosters; ours may have been
            // timed out meanwhile, so it goes too.
            fleet.queue(Topic::Fleet, Body::Hello);
            let roster = self.roster_body();
            if let Some(fleet) = &mut self.fleet {
                fleet.queue(Topic::Fleet, roster);
                fleet.hello_at = Some(Instant::now());
                // The interest is restored by the bus itself.
            }
            self.mark_all_for_sync();
        }
    }

    fn roster_body(&self) -> Body {
        Body::Roster {
            players: self
                .players
                .values()
                .map(|p| PlayerInfo {
                    id: p.id,
                    nick: p.nick.clone(),
                    pos: p.pos,
                })
                .collect(),
        }
    }

    /// Every held chunk is looked at by the next sync (messages were lost).
    fn mark_all_for_sync(&mut self) {
        let held: Vec<ChunkPos> = self
            .chunks
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.load, super::Load::Ready(_)))
            .map(|(c, _)| *c)
            .collect();
        self.sync.dirty.extend(held);
    }

    fn on_message(&mut self, from: ServerId, body: Body, known: bool) {
        match body {
            Body::Hello => {
                let roster = self.roster_body();
                if let Some(fleet) = &mut self.fleet {
                    fleet.queue(Topic::Fleet, roster);
                }
            }
            Body::Heartbeat { players, at_ms } => {
                let lag = Self::now_ms().saturating_sub(i64::try_from(at_ms).unwrap_or(0));
                self.metrics.bus_lag_ms.set(lag.max(0));
                let Some(fleet) = &mut self.fleet else {
                    return;
                };
                let empty = fleet.peers.get(&from).is_none_or(|p| p.players.is_empty());
                // Its roster was lost: ask again (everyone answers).
                if (!known || empty)
                    && players > 0
                    && fleet
                        .hello_at
                        .is_none_or(|t| t.elapsed() >= HELLO_AT_MOST_EVERY)
                {
                    fleet.hello_at = Some(Instant::now());
                    fleet.queue(Topic::Fleet, Body::Hello);
                }
            }
            Body::Bye => {
                info!(server = %from, "a server left the fleet");
                self.drop_peer(from);
            }
            Body::Roster { players } => self.replace_roster(from, players),
            Body::Join(info) => self.remote_join(from, info),
            Body::Leave { id, .. } => {
                if let Some(remote) = self.remove_remote(from, id) {
                    let text = format!("{} has disconnected from the server.", remote.nick);
                    self.broadcast(&[ServerMessage::Talk(&text)], None);
                }
            }
            Body::Nick { id, nick } => {
                let Some(remote) = self.remote_mut(from, id) else {
                    return;
                };
                remote.nick.clone_from(&nick);
                let local = remote.local;
                self.broadcast(
                    &[ServerMessage::Nick {
                        id: local,
                        nick: &nick,
                    }],
                    None,
                );
            }
            Body::Chat { line } => {
                self.broadcast(&[ServerMessage::Talk(&line)], None);
            }
            Body::Private { to_nick, line } => {
                if let Some((conn, _)) = self.players.iter().find(|(_, p)| p.nick == to_nick) {
                    self.send(*conn, ServerMessage::Talk(&line));
                }
            }
            Body::Edits { edits } => {
                for edit in edits {
                    self.apply_remote_edit(edit);
                }
            }
            Body::Committed { chunks } => {
                let mut due = false;
                for head in chunks {
                    if self
                        .chunks
                        .ready(head.chunk)
                        .is_some_and(|s| s.synced < head.head)
                    {
                        self.sync.dirty.insert(head.chunk);
                        due = true;
                    }
                }
                if due && !self.sync_interval().is_zero() {
                    self.start_sync();
                }
            }
            Body::Positions { players } => {
                for p in players {
                    let Some(remote) = self.remote_mut(from, p.id) else {
                        continue;
                    };
                    remote.pos = p.pos;
                    let id = remote.local;
                    self.broadcast(&[ServerMessage::Position { id, pos: p.pos }], None);
                }
            }
        }
    }

    fn remote_mut(&mut self, server: ServerId, id: message::PlayerId) -> Option<&mut Remote> {
        self.fleet
            .as_mut()?
            .peers
            .get_mut(&server)?
            .players
            .get_mut(&id)
    }

    fn remote_join(&mut self, server: ServerId, info: PlayerInfo) {
        if let Some(remote) = self.remote_mut(server, info.id) {
            // Already known (a roster came first): an update.
            remote.pos = info.pos;
            remote.nick.clone_from(&info.nick);
            let id = remote.local;
            let msgs = [
                ServerMessage::Position { id, pos: info.pos },
                ServerMessage::Nick {
                    id,
                    nick: &info.nick,
                },
            ];
            self.broadcast(&msgs, None);
            return;
        }
        let local = self.ids.take();
        let Some(peer) = self.fleet.as_mut().and_then(|f| f.peers.get_mut(&server)) else {
            self.ids.give(local);
            return;
        };
        peer.players.insert(
            info.id,
            Remote {
                local,
                nick: info.nick.clone(),
                pos: info.pos,
            },
        );
        let msgs = [
            ServerMessage::Position {
                id: local,
                pos: info.pos,
            },
            ServerMessage::Nick {
                id: local,
                nick: &info.nick,
            },
        ];
        self.broadcast(&msgs, None);
    }

    /// Forgets a remote player and tells our players (`D`).
    fn remove_remote(&mut self, server: ServerId, id: message::PlayerId) -> Option<Remote> {
        let remote = self
            .fleet
            .as_mut()?
            .peers
            .get_mut(&server)?
            .players
            .remove(&id)?;
        self.ids.give(remote.local);
        self.broadcast(&[ServerMessage::Disconnect { id: remote.local }], None);
        Some(remote)
    }

    fn replace_roster(&mut self, server: ServerId, players: Vec<PlayerInfo>) {
        let listed: FxHashSet<message::PlayerId> = players.iter().map(|p| p.id).collect();
        let stale: Vec<message::PlayerId> = self
            .fleet
            .as_ref()
            .and_then(|f| f.peers.get(&server))
            .map(|p| {
                p.players
                    .keys()
                    .filter(|id| !listed.contains(id))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        for id in stale {
            self.remove_remote(server, id);
        }
        for info in players {
            self.remote_join(server, info);
        }
    }

    /// A server left or died: its players leave.
    fn drop_peer(&mut self, server: ServerId) {
        let Some(peer) = self.fleet.as_mut().and_then(|f| f.peers.remove(&server)) else {
            return;
        };
        let mut ids: Vec<u32> = peer.players.values().map(|r| r.local).collect();
        ids.sort_unstable();
        let mut msgs = Vec::with_capacity(ids.len());
        for id in &ids {
            self.ids.give(*id);
            msgs.push(ServerMessage::Disconnect { id: *id });
        }
        if !msgs.is_empty() {
            self.broadcast(&msgs, None);
        }
    }

    /// Applies another server's accepted edit to the cache and shows it to
    /// the players who may hold the chunk.
    fn apply_remote_edit(&mut self, edit: Edit) {
        let chunk = edit.chunk();
        if let Some(state) = self.chunks.ready_mut(chunk) {
            match &edit {
                Edit::Block { pos, w, .. } => {
                    // Keep the entry's key: the sync after `Committed`
                    // replaces the value with the store's latest write.
                    let key = match state.blocks.get(pos) {
                        Some(BlockEntry { key: Some(k), .. }) => *k,
                        Some(BlockEntry { key: None, .. }) => {
                            // Over our own pending write: whichever the
                            // store orders last wins, here too.
                            state.unflushed = state.unflushed.saturating_sub(1);
                            0
                        }
                        None => 0,
                    };
                    state.blocks.insert(
                        *pos,
                        BlockEntry {
                            w: *w,
                            key: Some(key),
                            generation: 0,
                        },
                    );
                    if *w == 0 {
                        state.clear_decor(*pos);
                    }
                }
                Edit::Light { pos, w, .. } => {
                    state.lights.insert(*pos, *w);
                }
                Edit::Sign {
                    pos, face, text, ..
                } => {
                    if text.is_empty() {
                        state.signs.remove(&(*pos, *face));
                    } else {
                        state.signs.insert((*pos, *face), text.clone());
                    }
                }
            }
        }
        let redraw = !matches!(edit, Edit::Sign { .. });
        let mut lines = Vec::with_capacity(64);
        edit.message().encode(&mut lines);
        let mut count = 1;
        if redraw {
            ServerMessage::Redraw { chunk }.encode(&mut lines);
            count += 1;
        }
        let mut near = std::mem::take(&mut self.scratch);
        near.clear();
        if self.players.len() <= self.config.interest.broadcast_all_up_to {
            near.extend(self.players.keys().copied());
        } else {
            self.grid
                .near(chunk, self.config.interest.edit_radius, &mut near);
        }
        for conn in &near {
            if let Some(player) = self.players.get(conn) {
                self.push(player, &lines, count);
            }
        }
        self.scratch = near;
        if let Edit::Block { pos, w, chunk } = edit
            && w >= 0
            && pos.chunk() == chunk
        {
            self.publish_edit(pos, w);
        }
    }
}
