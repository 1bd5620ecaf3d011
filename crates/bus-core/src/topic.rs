//! Where a message goes: the fleet, one server, or one region of the world.

use std::collections::BTreeSet;
use std::fmt;

use world_core::ChunkPos;

use crate::config::ServerId;

/// Chunks along each side of a region.
///
/// Eight (256 blocks): a player's interest (`edit_radius` 15 chunks, 31
/// across) covers 4 x 4 to 5 x 5 regions, so a server hears at most
/// (40/31)^2 = 1.7 times the area its players need, with a few dozen
/// subscriptions per player cluster. Larger regions halve the
/// subscriptions and double the unwanted traffic; smaller ones the reverse.
pub const REGION_CHUNKS: i32 = 8;

/// A square of [`REGION_CHUNKS`] x [`REGION_CHUNKS`] chunks: the unit of
/// interest for edits and positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionPos {
    /// Region index along x (chunk `p` floor-divided by [`REGION_CHUNKS`]).
    pub p: i32,
    /// Region index along z.
    pub q: i32,
}

impl RegionPos {
    /// A region position.
    pub const fn new(p: i32, q: i32) -> Self {
        Self { p, q }
    }

    /// The region holding `chunk` (floor division: chunk -1 is in region -1).
    pub const fn of(chunk: ChunkPos) -> Self {
        Self {
            p: chunk.p.div_euclid(REGION_CHUNKS),
            q: chunk.q.div_euclid(REGION_CHUNKS),
        }
    }

    /// Whether `chunk` lies in this region.
    pub fn contains(self, chunk: ChunkPos) -> bool {
        Self::of(chunk) == self
    }
}

impl fmt::Display for RegionPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.p, self.q)
    }
}

/// The regions holding any chunk within `radius` chunks (Chebyshev, as
/// [`ChunkPos::distance`]) of one of `chunks`: what a server subscribes to
/// for its players. Coordinates saturate at the edges of `i32`.
pub fn regions_near(
    chunks: impl IntoIterator<Item = ChunkPos>,
    radius: u32,
) -> BTreeSet<RegionPos> {
    let radius = i32::try_from(radius).unwrap_or(i32::MAX);
    let mut regions = BTreeSet::new();
    for chunk in chunks {
        let low = RegionPos::of(ChunkPos::new(
            chunk.p.saturating_sub(radius),
            chunk.q.saturating_sub(radius),
        ));
        let high = RegionPos::of(ChunkPos::new(
            chunk.p.saturating_add(radius),
            chunk.q.saturating_add(radius),
        ));
        for p in low.p..=high.p {
            for q in low.q..=high.q {
                regions.insert(RegionPos::new(p, q));
            }
        }
    }
    regions
}

/// Where a message is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Every server of the world: membership, roster, chat. Always
    /// received.
    Fleet,
    /// One server: private messages for its players. A server always
    /// receives its own.
    Server(ServerId),
    /// One region: edits, commits and positions there. Received by the
    /// servers that declared interest in it.
    Region(RegionPos),
}

impl Topic {
    /// The region topic of `chunk`.
    pub const fn region_of(chunk: ChunkPos) -> Self {
        Self::Region(RegionPos::of(chunk))
    }

    /// The kind, for counters.
    pub const fn kind(self) -> TopicKind {
        match self {
            Self::Fleet => TopicKind::Fleet,
            Self::Server(_) => TopicKind::Server,
            Self::Region(_) => TopicKind::Region,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fleet => f.write_str("fleet"),
            Self::Server(id) => write!(f, "server {id}"),
            Self::Region(r) => write!(f, "region {r}"),
        }
    }
}

/// The kind of a [`Topic`] (the `topic` label of the counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// [`Topic::Fleet`].
    Fleet,
    /// [`Topic::Server`].
    Server,
    /// [`Topic::Region`].
    Region,
}

impl TopicKind {
    /// Every kind.
    pub const ALL: [TopicKind; 3] = [TopicKind::Fleet, TopicKind::Server, TopicKind::Region];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Fleet => "fleet",
            Self::Server => "server",
            Self::Region => "region",
        }
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Fleet => 0,
            Self::Server => 1,
            Self::Region => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_floor_divide() {
        assert_eq!(RegionPos::of(ChunkPos::new(0, 7)), RegionPos::new(0, 0));
        assert_eq!(RegionPos::of(ChunkPos::new(8, -1)), RegionPos::new(1, -1));
        assert_eq!(RegionPos::of(ChunkPos::new(-8, -9)), RegionPos::new(-1, -2));
        assert_eq!(
            RegionPos::of(ChunkPos::new(i32::MIN, i32::MAX)),
            RegionPos::new(i32::MIN / 8, i32::MAX / 8)
        );
        assert!(RegionPos::new(-1, 0).contains(ChunkPos::new(-1, 0)));
        assert!(!RegionPos::new(-1, 0).contains(ChunkPos::new(0, 0)));
    }

    #[test]
    fn regions_near_cover_the_radius() {
        let one = regions_near([ChunkPos::new(0, 0)], 0);
        assert_eq!(one.into_iter().collect::<Vec<_>>(), [RegionPos::new(0, 0)]);
        // Chunks -15..=15 span regions -2..=1 on each axis.
        let near = regions_near([ChunkPos::new(0, 0)], 15);
        assert_eq!(near.len(), 16);
        assert!(near.contains(&RegionPos::new(-2, 1)));
        // Every chunk within the radius is covered, nothing farther than a
        // region beyond it is.
        let centre = ChunkPos::new(-37, 12);
        let near = regions_near([centre], 10);
        for p in -60..-10 {
            for q in -10..40 {
                let chunk = ChunkPos::new(p, q);
                if centre.distance(chunk) <= 10 {
                    assert!(near.contains(&RegionPos::of(chunk)), "{chunk}");
                }
                if centre.distance(chunk) > 10 + REGION_CHUNKS as u32 {
                    assert!(!near.contains(&RegionPos::of(chunk)), "{chunk}");
                }
            }
        }
        // Several chunks: the union, without repeats.
        let two = regions_near([ChunkPos::new(0, 0), ChunkPos::new(1, 1)], 2);
        assert_eq!(two, regions_near([ChunkPos::new(0, 0)], 2));
        // The edges of the world saturate instead of overflowing.
        let edge = regions_near([ChunkPos::new(i32::MAX, i32::MIN)], 100);
        assert_eq!(edge.len(), 13 * 13);
    }

    #[test]
    fn topics_have_kinds() {
        assert_eq!(Topic::Fleet.kind().as_str(), "fleet");
        assert_eq!(Topic::Server(ServerId::new(1)).kind(), TopicKind::Server);
        assert_eq!(
            Topic::region_of(ChunkPos::new(9, -9)),
            Topic::Region(RegionPos::new(1, -2))
        );
    }
}
