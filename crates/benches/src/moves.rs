//! How bots walk and write their lines, shared by `swarm` and `fleet`.

use world_core::coords::{CHUNK_SIZE, ChunkPos};

use crate::layout::SplitMix64;

/// Height bots report in `P` lines (anything works; the server only uses
/// it to rank nearest players).
pub(crate) const BOT_Y: f32 = 40.0;

/// `write!` into a byte buffer.
pub(crate) struct Text<'a>(pub(crate) &'a mut Vec<u8>);

impl std::fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A small random step that never leaves `home` (so that the server keeps
/// filing the bot under it).
pub(crate) fn step(home: ChunkPos, x: &mut f32, z: &mut f32, rng: &mut SplitMix64) {
    let lo_x = (home.p * CHUNK_SIZE) as f32 + 1.0;
    let lo_z = (home.q * CHUNK_SIZE) as f32 + 1.0;
    let span = (CHUNK_SIZE - 2) as f32;
    *x = (*x + (rng.unit() as f32 - 0.5)).clamp(lo_x, lo_x + span);
    *z = (*z + (rng.unit() as f32 - 0.5)).clamp(lo_z, lo_z + span);
}

/// Appends a `P` line at `x`, `z`, looking in a random direction.
pub(crate) fn write_position(out: &mut Vec<u8>, x: f32, z: f32, rng: &mut SplitMix64) {
    use std::fmt::Write as _;
    let rx = (rng.unit() * std::f64::consts::TAU) as f32;
    let _ = writeln!(Text(out), "P,{x:.2},{BOT_Y:.2},{z:.2},{rx:.2},0.00");
}
