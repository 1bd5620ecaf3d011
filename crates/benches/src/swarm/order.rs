//! Whether a receiver got each author's edits in the order they were made,
//! and all of them.
//!
//! The server promises that the edits of one player reach every other
//! player in the order it accepted them. Each receiver keeps, per author in
//! range, the number of the newest edit it got ([`EditOrder::receive`]);
//! at the end it compares that with the number of edits each author made
//! ([`EditOrder::finish`]).

use crate::layout::{Layout, Senders};

/// One receiver's view of the edits of every author in its range.
#[derive(Debug)]
pub(super) struct EditOrder {
    senders: Senders,
    /// Per sender: one past the number of the newest edit received (0:
    /// none yet).
    next: Box<[u32]>,
    /// Edits passed over by a newer one from the same author.
    skipped: u64,
    /// Edits that came after a newer one from the same author.
    late: u64,
}

/// How one receiver's edits arrived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct OrderTally {
    /// Edits that came after a newer edit of the same author.
    pub(super) out_of_order: u64,
    /// Edits made but never received.
    pub(super) missing: u64,
}

impl EditOrder {
    pub(super) fn new(senders: Senders) -> Self {
        let next = vec![0; senders.len()].into_boxed_slice();
        Self {
            senders,
            next,
            skipped: 0,
            late: 0,
        }
    }

    /// Edit number `n` (counting from 0) of `author` arrived.
    pub(super) fn receive(&mut self, layout: &Layout, author: u32, n: u64) {
        let Some(next) = self
            .senders
            .index(layout, author)
            .and_then(|i| self.next.get_mut(i))
        else {
            // Out of range: not an edit the server should have sent here,
            // which the delivery counts already show.
            return;
        };
        // Leaves room for `n + 1`; no bot makes four billion edits.
        let n = n.min(u64::from(u32::MAX - 1)) as u32;
        if n >= *next {
            self.skipped += u64::from(n - *next);
            *next = n + 1;
        } else {
            self.late += 1;
        }
    }

    /// The tally once every author stopped editing: `made(author)` is how
    /// many edits `author` made; `me` is the receiver, which never gets its
    /// own edits.
    pub(super) fn finish(&self, layout: &Layout, me: u32, made: impl Fn(u32) -> u64) -> OrderTally {
        let never: u64 = self
            .senders
            .bots(layout)
            .filter(|(_, bot)| *bot != me)
            .map(|(i, bot)| made(bot).saturating_sub(u64::from(self.next[i])))
            .sum();
        OrderTally {
            out_of_order: self.late,
            // Each late edit fills one gap a newer edit left.
            missing: (self.skipped + never).saturating_sub(self.late),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Spread;
    use world_core::coords::ChunkPos;

    fn layout() -> Layout {
        Layout::new(4, ChunkPos::new(0, 0), 1, 1, Spread::Even, 1).expect("layout")
    }

    #[test]
    fn counts_late_and_missing_edits() {
        let layout = layout();
        let made = |bot: u32| [0, 5, 3, 2][bot as usize];

        let mut order = EditOrder::new(layout.senders(0, None));
        for n in 0..5 {
            order.receive(&layout, 1, n);
        }
        for n in 0..3 {
            order.receive(&layout, 2, n);
        }
        order.receive(&layout, 3, 0);
        order.receive(&layout, 3, 1);
        assert_eq!(order.finish(&layout, 0, made), OrderTally::default());

        let mut order = EditOrder::new(layout.senders(0, None));
        // Author 1: 0, 2, 1, 4 (3 never comes); author 2: only its first;
        // author 3: nothing.
        for n in [0, 2, 1, 4] {
            order.receive(&layout, 1, n);
        }
        order.receive(&layout, 2, 0);
        assert_eq!(
            order.finish(&layout, 0, made),
            OrderTally {
                out_of_order: 1,
                missing: 1 + 2 + 2,
            }
        );
    }
}
