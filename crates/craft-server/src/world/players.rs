//! Connected players, their ids and where they are.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use indexmap::IndexMap;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};
use world_core::coords::{ChunkPos, chunk_of_f32};
use world_core::protocol::{ClientCommand, Position};

use crate::outbound::Outbound;

/// A connection's identity inside the server (never reused).
pub type ConnId = u64;

/// What a player's command is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The stored changes of a chunk.
    Chunk(ChunkPos),
    /// The generated terrain of a chunk.
    Terrain(ChunkPos),
    /// A flush that stores the chunk's pending blocks (so keys are real).
    Flush,
    /// The identity service.
    Login,
    /// The draft store task (loading a draft, publishing one).
    Draft,
    /// A `/history` or `/rollback` reading or writing the store.
    History,
}

/// A command waiting its turn.
#[derive(Debug)]
pub struct Queued {
    /// The command.
    pub cmd: ClientCommand,
    /// When its line arrived.
    pub received: Instant,
    /// Flushes it already waited for (the one running when it arrived,
    /// then the one carrying its chunk's edits; never more).
    pub flush_waits: u8,
}

/// A connected player.
#[derive(Debug)]
pub struct Player {
    /// Protocol id (smallest free positive integer).
    pub id: u32,
    /// Nick shown to others.
    pub nick: String,
    /// Logged-in user name.
    pub user: Option<Arc<str>>,
    /// Last known position.
    pub pos: Position,
    /// Chunk of the position.
    pub chunk: ChunkPos,
    /// Outbound queue.
    pub out: Arc<Outbound>,
    /// Peer address.
    pub addr: SocketAddr,
    /// The first `V` received.
    pub version: Option<i32>,
    /// Commands waiting behind `waiting`.
    pub backlog: VecDeque<Queued>,
    /// What the head of the backlog waits for.
    pub waiting: Option<Wait>,
    /// On a busy server, the players this one is shown (`None`: everyone).
    pub visible: Option<FxHashSet<u32>>,
    /// On a busy server, the queues of the players shown this one (rebuilt
    /// with the visible sets).
    pub watchers: Vec<Arc<Outbound>>,
    /// Position changed since last saved.
    pub pos_dirty: bool,
    /// The private draft, while building privately.
    pub draft: Option<super::drafts::Draft>,
}

impl Player {
    /// Moves the player; returns the old chunk when it changed.
    pub fn set_pos(&mut self, pos: Position) -> Option<ChunkPos> {
        self.pos = pos;
        let chunk = ChunkPos::new(chunk_of_f32(pos.x), chunk_of_f32(pos.z));
        (chunk != self.chunk).then(|| std::mem::replace(&mut self.chunk, chunk))
    }

    /// Whether this player is shown `other` (by id).
    pub fn sees(&self, other: u32) -> bool {
        self.visible.as_ref().is_none_or(|v| v.contains(&other))
    }
}

/// The connected players in join order, like the original's list of
/// clients: every walk over them (greetings, `/list`, broadcasts, who is
/// woken first) goes the same way for the same history, never in hash
/// order. Connection ids only grow, so join order is id order.
///
/// Lookups hash (as a hash map's do); walks go over a dense array, which is
/// faster than a hash map's. Leaving shifts the later players down, linear
/// in the players (a memmove and index fixes): rare next to lookups and
/// walks.
#[derive(Debug, Default)]
pub struct Roster {
    map: IndexMap<ConnId, Player, FxBuildHasher>,
}

impl Roster {
    /// The player of `conn`.
    pub fn get(&self, conn: &ConnId) -> Option<&Player> {
        self.map.get(conn)
    }

    /// The player of `conn`, mutably.
    pub fn get_mut(&mut self, conn: &ConnId) -> Option<&mut Player> {
        self.map.get_mut(conn)
    }

    /// Whether `conn` is a player.
    pub fn contains_key(&self, conn: &ConnId) -> bool {
        self.map.contains_key(conn)
    }

    /// Adds a player who just joined (after everyone there).
    pub fn insert(&mut self, conn: ConnId, player: Player) {
        debug_assert!(
            self.map.last().is_none_or(|(last, _)| *last < conn),
            "connection ids grow"
        );
        self.map.insert(conn, player);
    }

    /// Removes a player, keeping the others' order.
    pub fn remove(&mut self, conn: &ConnId) -> Option<Player> {
        self.map.shift_remove(conn)
    }

    /// Players connected.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Nobody is connected.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Players with their connections, in join order.
    pub fn iter(&self) -> indexmap::map::Iter<'_, ConnId, Player> {
        self.map.iter()
    }

    /// Connections, in join order.
    pub fn keys(&self) -> indexmap::map::Keys<'_, ConnId, Player> {
        self.map.keys()
    }

    /// Players, in join order.
    pub fn values(&self) -> indexmap::map::Values<'_, ConnId, Player> {
        self.map.values()
    }

    /// Players, mutably, in join order.
    pub fn values_mut(&mut self) -> indexmap::map::ValuesMut<'_, ConnId, Player> {
        self.map.values_mut()
    }
}

impl<'a> IntoIterator for &'a Roster {
    type Item = (&'a ConnId, &'a Player);
    type IntoIter = indexmap::map::Iter<'a, ConnId, Player>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

/// Hands out the smallest positive id not in use, as the original does.
#[derive(Debug, Default)]
pub struct IdPool {
    next: u32,
    free: BinaryHeap<Reverse<u32>>,
}

impl IdPool {
    /// Takes an id.
    pub fn take(&mut self) -> u32 {
        if let Some(Reverse(id)) = self.free.pop() {
            return id;
        }
        self.next += 1;
        self.next
    }

    /// Gives an id back.
    pub fn give(&mut self, id: u32) {
        self.free.push(Reverse(id));
    }
}

/// Players by chunk, for interest management.
#[derive(Debug, Default)]
pub struct Grid {
    cells: FxHashMap<ChunkPos, Vec<ConnId>>,
}

impl Grid {
    /// Adds a player to a chunk.
    pub fn insert(&mut self, chunk: ChunkPos, conn: ConnId) {
        self.cells.entry(chunk).or_default().push(conn);
    }

    /// Removes a player from a chunk.
    pub fn remove(&mut self, chunk: ChunkPos, conn: ConnId) {
        if let Some(cell) = self.cells.get_mut(&chunk) {
            cell.retain(|c| *c != conn);
            if cell.is_empty() {
                self.cells.remove(&chunk);
            }
        }
    }

    /// Players within `radius` chunks of `center`. Walks cells or occupied
    /// cells, whichever is fewer.
    pub fn near(&self, center: ChunkPos, radius: u32, out: &mut Vec<ConnId>) {
        let r = i64::from(radius);
        let side = (2 * r + 1) * (2 * r + 1);
        if side as usize <= self.cells.len() {
            for dp in -r..=r {
                for dq in -r..=r {
                    let p = i64::from(center.p) + dp;
                    let q = i64::from(center.q) + dq;
                    let (Ok(p), Ok(q)) = (i32::try_from(p), i32::try_from(q)) else {
                        continue;
                    };
                    if let Some(cell) = self.cells.get(&ChunkPos::new(p, q)) {
                        out.extend_from_slice(cell);
                    }
                }
            }
        } else {
            for (chunk, cell) in &self.cells {
                if chunk.distance(center) <= radius {
                    out.extend_from_slice(cell);
                }
            }
        }
    }
}

/// Squared horizontal distance between two positions.
pub fn distance2(a: &Position, b: &Position) -> f32 {
    let dx = a.x - b.x;
    let dz = a.z - b.z;
    let dy = a.y - b.y;
    dx * dx + dy * dy + dz * dz
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_smallest_free() {
        let mut pool = IdPool::default();
        assert_eq!((pool.take(), pool.take(), pool.take()), (1, 2, 3));
        pool.give(2);
        pool.give(1);
        assert_eq!(pool.take(), 1);
        assert_eq!(pool.take(), 2);
        assert_eq!(pool.take(), 4);
    }

    #[test]
    fn grid_finds_neighbours_both_ways() {
        let mut grid = Grid::default();
        grid.insert(ChunkPos::new(0, 0), 1);
        grid.insert(ChunkPos::new(3, -3), 2);
        grid.insert(ChunkPos::new(20, 0), 3);
        let mut out = Vec::new();
        grid.near(ChunkPos::new(0, 0), 5, &mut out);
        out.sort_unstable();
        assert_eq!(out, vec![1, 2]);
        out.clear();
        grid.near(ChunkPos::new(0, 0), 0, &mut out);
        assert_eq!(out, vec![1]);
        grid.remove(ChunkPos::new(0, 0), 1);
        out.clear();
        grid.near(ChunkPos::new(0, 0), 0, &mut out);
        assert!(out.is_empty());
    }
}
