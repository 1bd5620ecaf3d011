//! The phases of a swarm run, as the orchestrator sets them and every bot
//! reads them.

use std::sync::atomic::{AtomicU8, Ordering};

/// Where a run is. The orchestrator moves forward through these in order;
/// bots look at the current phase on each of their ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Phase {
    /// Bots connect, log in and wait for the chunks around them; the
    /// orchestrator waits until every bot joined (or gave up).
    Join,
    /// Everyone joined: nobody acts while the server settles and its
    /// memory is sampled as "joined and idle".
    Settle,
    /// The measured window: bots move, edit, chat and re-request chunks.
    Active,
    /// Bots stop acting (each removes the block its last edit left) and
    /// keep reading, so that late deliveries still count.
    Drain,
    /// Bots hang up.
    Done,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::Join,
        Phase::Settle,
        Phase::Active,
        Phase::Drain,
        Phase::Done,
    ];
}

/// The current [`Phase`], shared by the orchestrator and every bot.
#[derive(Debug)]
pub(super) struct PhaseCell(AtomicU8);

impl PhaseCell {
    pub(super) fn new(phase: Phase) -> Self {
        Self(AtomicU8::new(phase as u8))
    }

    pub(super) fn get(&self) -> Phase {
        let raw = self.0.load(Ordering::Acquire);
        // Only `set` writes the cell, so the value is always a phase.
        Phase::ALL
            .get(usize::from(raw))
            .copied()
            .unwrap_or(Phase::Done)
    }

    pub(super) fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_round_trips() {
        let cell = PhaseCell::new(Phase::Join);
        for phase in Phase::ALL {
            cell.set(phase);
            assert_eq!(cell.get(), phase);
        }
    }
}
