//! Private builds: `/private`, `/publish`, `/publish check`, `/discard`,
//! and the edits a player makes while building privately.
//!
//! The rules of an edit (login, y range, items, what is there) are checked
//! exactly as for a normal edit, against what the player sees (their draft
//! over the world); an accepted edit then goes into the player's draft
//! ([`Draft`]) instead of the world. The player's client drew it already;
//! nobody else hears of it, and chunk answers show drafts only to their
//! owner. `/publish` writes the whole draft as one store batch (see
//! `world/drafts.rs`), then tells everyone who sees the chunks.

use std::collections::BTreeSet;
use std::sync::Arc;

use bus_core::message::Edit;
use world_core::coords::{BlockPos, ChunkPos};
use world_core::protocol::ServerMessage;
use world_core::store::{
    BlockWrite, DraftChange, DraftEdit, DraftKind, DraftSlot, Published, StoreError,
};

use super::block::needs_terrain;
use crate::world::drafts::{Draft, DraftOp, PublishOutcome};
use crate::world::{BlockEntry, ConnId, Queued, Step, Wait, World, encode_all};

/// Told when a player starts building privately.
pub(crate) const PRIVATE_ON: &str = "You are building privately: only you see your edits. /publish makes them public, /publish check lists conflicts, /discard drops them.";
/// Told to guests starting a draft.
const GUEST_NOTE: &str =
    "As a guest, your draft is lost when you disconnect; log in to keep it across visits.";
/// Told for `/publish` or `/discard` outside private mode.
const NOT_PRIVATE: &str = "You are not building privately. Type /private to start a private draft.";

/// Most positions listed by `/publish check`.
const LISTED_CONFLICTS: usize = 5;

/// Which draft command a chat line is, if any.
enum DraftCommand {
    Private,
    Publish { check_only: bool },
    Discard,
}

fn parse(text: &str) -> Option<DraftCommand> {
    let mut words = text.split_whitespace();
    let command = words.next()?;
    let arg = words.next();
    if words.next().is_some() {
        return None;
    }
    match (command, arg) {
        ("/private", None) => Some(DraftCommand::Private),
        ("/publish", None) => Some(DraftCommand::Publish { check_only: false }),
        ("/publish", Some("check")) => Some(DraftCommand::Publish { check_only: true }),
        ("/discard", None) => Some(DraftCommand::Discard),
        _ => None,
    }
}

fn state_message(n: usize) -> String {
    format!(
        "You are building privately: your draft holds {n} change{}. /publish, /publish check, /discard.",
        plural(n)
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl World {
    /// Runs a draft command, if `text` is one.
    pub(crate) fn on_draft_command(
        &mut self,
        conn: ConnId,
        text: &str,
        queued: &Queued,
    ) -> Option<Step> {
        Some(match parse(text)? {
            DraftCommand::Private => self.on_private(conn),
            DraftCommand::Publish { check_only } => self.on_publish(conn, check_only, queued),
            DraftCommand::Discard => self.on_discard(conn),
        })
    }

    fn draft_of(&self, conn: ConnId) -> Option<&Draft> {
        self.players.get(&conn).and_then(|p| p.draft.as_ref())
    }

    /// Whether `conn` builds privately.
    pub(crate) fn drafting(&self, conn: ConnId) -> bool {
        self.draft_of(conn).is_some()
    }

    /// The block at `pos` as `conn` sees it: their draft, else the world.
    pub(crate) fn block_seen_by(&self, conn: ConnId, pos: BlockPos) -> Option<i32> {
        match self.draft_of(conn).and_then(|d| d.block(pos)) {
            Some(w) => Some(w),
            None => self.block_at(pos),
        }
    }

    fn talk(&self, conn: ConnId, text: &str) {
        self.send(conn, ServerMessage::Talk(text));
    }

    fn on_private(&mut self, conn: ConnId) -> Step {
        let Some(player) = self.players.get(&conn) else {
            return Step::Done;
        };
        if let Some(draft) = &player.draft {
            let msg = state_message(draft.len());
            self.talk(conn, &msg);
            return Step::Done;
        }
        match player.user.clone() {
            Some(owner) => {
                // A stored draft (from another visit or server) comes first.
                self.drafts.send(DraftOp::Load {
                    conn,
                    owner,
                    open: true,
                });
                Step::Pending(Wait::Draft)
            }
            None => {
                if let Some(player) = self.players.get_mut(&conn) {
                    player.draft = Some(Draft::default());
                }
                self.talk(conn, PRIVATE_ON);
                self.talk(conn, GUEST_NOTE);
                Step::Done
            }
        }
    }

    /// Adds `changes` to the draft of `conn` (and to the stored draft of a
    /// logged-in player). `false`, with nothing added, when they would take
    /// the draft past `drafts.max_changes`.
    fn add_to_draft(&mut self, conn: ConnId, mut changes: Vec<DraftChange>) -> bool {
        let max = self.config.drafts.max_changes;
        let synced = |chunk: ChunkPos| self.chunks.ready(chunk).map_or(0, |s| s.synced);
        let seen: Vec<i64> = changes.iter().map(|c| synced(c.pos.chunk())).collect();
        let Some(player) = self.players.get_mut(&conn) else {
            return false;
        };
        let Some(draft) = player.draft.as_mut() else {
            return false;
        };
        let new: BTreeSet<DraftSlot> = changes
            .iter()
            .map(DraftChange::slot)
            .filter(|s| !draft.contains(s))
            .collect();
        if draft.len() + new.len() > max {
            return false;
        }
        for (change, seen) in changes.iter_mut().zip(seen) {
            // The key of the first touch of a position is what conflicts
            // are judged against.
            change.seen = draft.seen_at(change.pos).unwrap_or(seen);
            draft.insert(change.clone());
        }
        if let Some(owner) = player.user.clone() {
            self.drafts.send(DraftOp::Put { owner, changes });
        }
        true
    }

    fn full_message(&self) -> String {
        format!(
            "Your private draft is full ({} changes): /publish or /discard it first. That edit was not kept.",
            self.config.drafts.max_changes
        )
    }

    fn draft_change(pos: BlockPos, edit: DraftEdit) -> DraftChange {
        DraftChange {
            pos,
            edit,
            seen: 0,
            time_ms: Self::now_ms(),
        }
    }

    /// An accepted block edit of a player building privately.
    pub(crate) fn draft_block(
        &mut self,
        conn: ConnId,
        pos: BlockPos,
        w: i32,
        previous: i32,
    ) -> Step {
        let mut changes = vec![Self::draft_change(pos, DraftEdit::Block(w))];
        if w == 0 {
            // What removing a block does, for the world's rows (the clear)
            // and for what the draft put there before.
            changes.push(Self::draft_change(pos, DraftEdit::Clear));
            if let Some(draft) = self.draft_of(conn) {
                for c in draft.at(pos) {
                    match &c.edit {
                        DraftEdit::Light(_) => {
                            changes.push(Self::draft_change(pos, DraftEdit::Light(0)));
                        }
                        DraftEdit::Sign { face, .. } => changes.push(Self::draft_change(
                            pos,
                            DraftEdit::Sign {
                                face: *face,
                                text: String::new(),
                            },
                        )),
                        DraftEdit::Block(_) | DraftEdit::Clear => {}
                    }
                }
            }
        }
        if self.add_to_draft(conn, changes) {
            self.metrics.edit("block", "drafted");
            return Step::Done;
        }
        let chunk = pos.chunk();
        let full = self.full_message();
        let msgs = [
            ServerMessage::Block {
                chunk,
                pos,
                w: previous,
            },
            ServerMessage::Redraw { chunk },
            ServerMessage::Talk(&full),
        ];
        if let Some(player) = self.players.get(&conn) {
            self.push(player, &encode_all(&msgs), 3);
        }
        self.metrics.edit("block", "draft_full");
        Step::Done
    }

    /// An accepted light edit of a player building privately.
    pub(crate) fn draft_light(&mut self, conn: ConnId, pos: BlockPos, w: i32) -> Step {
        if self.add_to_draft(conn, vec![Self::draft_change(pos, DraftEdit::Light(w))]) {
            self.metrics.edit("light", "drafted");
            return Step::Done;
        }
        let full = self.full_message();
        let msgs = [
            ServerMessage::Redraw { chunk: pos.chunk() },
            ServerMessage::Talk(&full),
        ];
        if let Some(player) = self.players.get(&conn) {
            self.push(player, &encode_all(&msgs), 2);
        }
        self.metrics.edit("light", "draft_full");
        Step::Done
    }

    /// An accepted sign edit of a player building privately.
    pub(crate) fn draft_sign(
        &mut self,
        conn: ConnId,
        pos: BlockPos,
        face: i32,
        text: &str,
    ) -> Step {
        let edit = DraftEdit::Sign {
            face,
            text: text.to_owned(),
        };
        if self.add_to_draft(conn, vec![Self::draft_change(pos, edit)]) {
            self.metrics.edit("sign", "drafted");
            return Step::Done;
        }
        // Put back what the player saw there.
        let chunk = pos.chunk();
        let drafted = self.draft_of(conn).and_then(|d| {
            d.at(pos).find_map(|c| match &c.edit {
                DraftEdit::Sign { face: f, text } if *f == face => Some(text.clone()),
                _ => None,
            })
        });
        let before = drafted
            .or_else(|| {
                self.chunks
                    .ready(chunk)
                    .and_then(|s| s.signs.get(&(pos, face)).cloned())
            })
            .unwrap_or_default();
        let full = self.full_message();
        let msgs = [
            ServerMessage::Sign {
                chunk,
                pos,
                face,
                text: &before,
            },
            ServerMessage::Talk(&full),
        ];
        if let Some(player) = self.players.get(&conn) {
            self.push(player, &encode_all(&msgs), 2);
        }
        self.metrics.edit("sign", "draft_full");
        Step::Done
    }

    /// Appends what `conn`'s draft changes in `chunk` to a chunk answer (or
    /// to a refresh of the whole draft), after the world's lines; returns
    /// the number of lines.
    pub(crate) fn draft_lines(&self, conn: ConnId, chunk: ChunkPos, lines: &mut Vec<u8>) -> u64 {
        let Some(draft) = self.draft_of(conn) else {
            return 0;
        };
        let state = self.chunks.ready(chunk);
        let mut count = 0;
        // A drafted removal deletes the world's signs and zeroes its light.
        for c in draft.in_chunk(chunk) {
            if c.edit != DraftEdit::Clear || c.pos.chunk() != chunk {
                continue;
            }
            let Some(state) = state else { continue };
            for ((pos, face), _) in state.signs.range((c.pos, i32::MIN)..=(c.pos, i32::MAX)) {
                let msg = ServerMessage::Sign {
                    chunk,
                    pos: *pos,
                    face: *face,
                    text: "",
                };
                msg.encode(lines);
                count += 1;
            }
            if state.lights.contains_key(&c.pos) {
                ServerMessage::Light {
                    chunk,
                    pos: c.pos,
                    w: 0,
                }
                .encode(lines);
                count += 1;
            }
        }
        for c in draft.in_chunk(chunk) {
            if let DraftEdit::Block(w) = c.edit {
                let w = if c.pos.chunk() == chunk { w } else { -w };
                ServerMessage::Block {
                    chunk,
                    pos: c.pos,
                    w,
                }
                .encode(lines);
                count += 1;
            }
        }
        for c in draft.in_chunk(chunk) {
            if c.pos.chunk() != chunk {
                continue;
            }
            match &c.edit {
                DraftEdit::Light(w) => {
                    ServerMessage::Light {
                        chunk,
                        pos: c.pos,
                        w: *w,
                    }
                    .encode(lines);
                    count += 1;
                }
                DraftEdit::Sign { face, text } => {
                    ServerMessage::Sign {
                        chunk,
                        pos: c.pos,
                        face: *face,
                        text,
                    }
                    .encode(lines);
                    count += 1;
                }
                DraftEdit::Block(_) | DraftEdit::Clear => {}
            }
        }
        count
    }

    /// Sends `conn` their whole draft (after loading a stored one, whose
    /// chunks their client may have been sent without it).
    fn show_draft(&self, conn: ConnId) {
        let Some(draft) = self.draft_of(conn) else {
            return;
        };
        let chunks: BTreeSet<ChunkPos> = draft
            .changes()
            .flat_map(|c| std::iter::once(c.pos.chunk()).chain(c.pos.mirror_chunks()))
            .collect();
        let mut lines = Vec::new();
        let mut count = 0;
        for chunk in chunks {
            count += self.draft_lines(conn, chunk, &mut lines);
            ServerMessage::Redraw { chunk }.encode(&mut lines);
            count += 1;
        }
        if let Some(player) = self.players.get(&conn) {
            self.push(player, &lines, count);
        }
    }

    fn on_publish(&mut self, conn: ConnId, check_only: bool, queued: &Queued) -> Step {
        let Some(player) = self.players.get(&conn) else {
            return Step::Done;
        };
        let Some(draft) = &player.draft else {
            self.talk(conn, NOT_PRIVATE);
            return Step::Done;
        };
        if draft.is_empty() {
            if check_only {
                self.talk(conn, "Your draft is empty: nothing to check.");
            } else {
                if let Some(player) = self.players.get_mut(&conn) {
                    player.draft = None;
                }
                self.talk(
                    conn,
                    "Your draft was empty: nothing to publish. You are building publicly again.",
                );
            }
            return Step::Done;
        }
        // Edits accepted before this command reach the store first, so that
        // the draft overwrites them (last writer wins) and conflicts see them.
        if !self.flusher.is_idle() && queued.flush_waits < 2 && !self.flusher.failing {
            self.flush_soon();
            return Step::Wait(Wait::Flush);
        }
        let owner = player.user.clone();
        let changes: Vec<DraftChange> = draft.changes().cloned().collect();
        if let Some(draft) = self.players.get_mut(&conn).and_then(|p| p.draft.as_mut()) {
            draft.publishing = true;
        }
        let history = self.history_on.then(|| self.author(conn));
        self.drafts.send(DraftOp::Publish {
            conn,
            owner,
            changes,
            check_only,
            history,
        });
        Step::Pending(Wait::Draft)
    }

    fn on_discard(&mut self, conn: ConnId) -> Step {
        let Some(draft) = self.draft_of(conn) else {
            self.talk(conn, NOT_PRIVATE);
            return Step::Done;
        };
        // The world's values of every drafted position must be in memory.
        let mut needed: Vec<(ChunkPos, bool)> = Vec::new();
        for chunk in draft.own_chunks() {
            let terrain = draft.changes().any(|c| {
                c.pos.chunk() == chunk && c.kind() == DraftKind::Block && needs_terrain(c.pos)
            });
            needed.push((chunk, terrain));
        }
        let mut wait = None;
        for (chunk, terrain) in needed {
            match self.ensure_chunk(chunk, terrain) {
                Err(w) => {
                    wait.get_or_insert(w);
                }
                Ok(false) => {
                    self.talk(conn, super::block::STORE_UNAVAILABLE);
                    return Step::Done;
                }
                Ok(true) => {}
            }
        }
        if let Some(wait) = wait {
            return Step::Wait(wait);
        }
        let Some(draft) = self.players.get_mut(&conn).and_then(|p| p.draft.take()) else {
            return Step::Done;
        };
        let owner = self.players.get(&conn).and_then(|p| p.user.clone());
        self.send_world_values(conn, &draft);
        if let Some(owner) = owner {
            self.drafts.send(DraftOp::Delete { owner });
        }
        let n = draft.len();
        let msg = format!(
            "Discarded your draft ({n} change{}); you see the world as it is again.",
            plural(n)
        );
        self.talk(conn, &msg);
        Step::Done
    }

    /// Sends `conn` the world's values of every position `draft` changed.
    fn send_world_values(&self, conn: ConnId, draft: &Draft) {
        let mut blocks = Vec::new();
        let mut decor = Vec::new();
        let mut count = 0u64;
        let mut chunks = BTreeSet::new();
        for c in draft.changes() {
            let chunk = c.pos.chunk();
            chunks.insert(chunk);
            let state = self.chunks.ready(chunk);
            match &c.edit {
                DraftEdit::Block(_) => {
                    let real = self.block_at(c.pos).unwrap_or(world_core::item::AIR);
                    ServerMessage::Block {
                        chunk,
                        pos: c.pos,
                        w: real,
                    }
                    .encode(&mut blocks);
                    count += 1;
                    for neighbour in c.pos.mirror_chunks() {
                        chunks.insert(neighbour);
                        ServerMessage::Block {
                            chunk: neighbour,
                            pos: c.pos,
                            w: -real,
                        }
                        .encode(&mut blocks);
                        count += 1;
                    }
                }
                DraftEdit::Light(_) => {
                    let w = state.and_then(|s| s.lights.get(&c.pos).copied());
                    ServerMessage::Light {
                        chunk,
                        pos: c.pos,
                        w: w.unwrap_or(0),
                    }
                    .encode(&mut decor);
                    count += 1;
                }
                DraftEdit::Sign { face, .. } => {
                    let text = state.and_then(|s| s.signs.get(&(c.pos, *face)));
                    ServerMessage::Sign {
                        chunk,
                        pos: c.pos,
                        face: *face,
                        text: text.map_or("", String::as_str),
                    }
                    .encode(&mut decor);
                    count += 1;
                }
                DraftEdit::Clear => {
                    let Some(state) = state else { continue };
                    for ((pos, face), text) in
                        state.signs.range((c.pos, i32::MIN)..=(c.pos, i32::MAX))
                    {
                        ServerMessage::Sign {
                            chunk,
                            pos: *pos,
                            face: *face,
                            text,
                        }
                        .encode(&mut decor);
                        count += 1;
                    }
                    if let Some(w) = state.lights.get(&c.pos) {
                        ServerMessage::Light {
                            chunk,
                            pos: c.pos,
                            w: *w,
                        }
                        .encode(&mut decor);
                        count += 1;
                    }
                }
            }
        }
        // Blocks first: a removal clears a block's signs and light on the
        // client, and the decor lines after it put the world's back.
        blocks.extend(decor);
        for chunk in chunks {
            ServerMessage::Redraw { chunk }.encode(&mut blocks);
            count += 1;
        }
        if let Some(player) = self.players.get(&conn) {
            self.push(player, &blocks, count);
        }
    }

    /// A stored draft was loaded (at login, or for `/private`).
    pub(crate) fn on_draft_loaded(
        &mut self,
        conn: ConnId,
        owner: Arc<str>,
        open: bool,
        result: Result<Vec<DraftChange>, StoreError>,
    ) {
        let Some(player) = self.players.get_mut(&conn) else {
            return;
        };
        if player.user.as_deref() == Some(&*owner) {
            match result {
                Ok(stored) if stored.is_empty() && !open && player.draft.is_none() => {}
                Ok(stored) => {
                    let mut draft = Draft::from_changes(stored);
                    // A draft begun before logging in joins the stored one.
                    let earlier: Vec<DraftChange> = player
                        .draft
                        .take()
                        .map(|d| d.changes().cloned().collect())
                        .unwrap_or_default();
                    for c in &earlier {
                        draft.insert(c.clone());
                    }
                    let n = draft.len();
                    player.draft = Some(draft);
                    if !earlier.is_empty() {
                        self.drafts.send(DraftOp::Put {
                            owner,
                            changes: earlier,
                        });
                    }
                    self.show_draft(conn);
                    if n == 0 {
                        self.talk(conn, PRIVATE_ON);
                    } else {
                        self.talk(conn, &state_message(n));
                    }
                }
                Err(e) => {
                    self.metrics.error("draft_load");
                    tracing::warn!(error = %e, "cannot load a player's draft");
                    let msg = format!(
                        "Your private draft could not be loaded right now ({}); type /private to try again.",
                        e.kind()
                    );
                    self.talk(conn, &msg);
                }
            }
        }
        self.resume_after_draft(conn);
    }

    fn resume_after_draft(&mut self, conn: ConnId) {
        if let Some(player) = self.players.get_mut(&conn)
            && player.waiting == Some(Wait::Draft)
        {
            player.waiting = None;
            self.drive(conn);
        }
    }

    /// A `/publish` or `/publish check` finished.
    pub(crate) fn on_draft_published(
        &mut self,
        conn: ConnId,
        changes: usize,
        result: Result<PublishOutcome, StoreError>,
    ) {
        let msg = match result {
            Ok(PublishOutcome::Checked(positions)) => {
                if positions.is_empty() {
                    "No conflicts: nobody changed your drafted positions since you drafted them."
                        .to_owned()
                } else {
                    let listed: Vec<String> = positions
                        .iter()
                        .take(LISTED_CONFLICTS)
                        .map(|p| format!("({},{},{})", p.x, p.y, p.z))
                        .collect();
                    let more = positions.len().saturating_sub(LISTED_CONFLICTS);
                    let more = if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    };
                    format!(
                        "{} drafted position{} changed by others since you drafted {}; /publish would overwrite {}: {}{more}",
                        positions.len(),
                        if positions.len() == 1 {
                            " was"
                        } else {
                            "s were"
                        },
                        if positions.len() == 1 { "it" } else { "them" },
                        if positions.len() == 1 { "it" } else { "them" },
                        listed.join(" ")
                    )
                }
            }
            Ok(PublishOutcome::Published(published)) => {
                self.apply_published(conn, &published);
                if let Some(player) = self.players.get_mut(&conn) {
                    player.draft = None;
                }
                self.metrics.edit("draft", "published");
                let overwritten = published.overwritten.len();
                let mut msg = format!(
                    "Published {changes} change{}; you are building publicly again.",
                    plural(changes)
                );
                if overwritten > 0 {
                    msg.push_str(&format!(
                        " {overwritten} position{} others had changed since you drafted {} overwritten.",
                        plural(overwritten),
                        if overwritten == 1 { "it was" } else { "them were" }
                    ));
                }
                msg
            }
            Err(e) => {
                self.metrics.error("draft_publish");
                tracing::warn!(error = %e, changes, "publishing a draft failed; the draft is kept");
                format!(
                    "Publishing failed ({}): your draft is kept and you are still building privately. Try /publish again.",
                    e.kind()
                )
            }
        };
        if let Some(draft) = self.players.get_mut(&conn).and_then(|p| p.draft.as_mut()) {
            draft.publishing = false;
        }
        self.talk(conn, &msg);
        self.resume_after_draft(conn);
    }

    /// Brings the cache up to a published draft and tells everyone who
    /// sees its chunks (but its owner, whose client shows it already).
    fn apply_published(&mut self, owner: ConnId, published: &Published) {
        let batch = &published.batch;
        for advance in &published.receipt.chunks {
            let chunk = advance.chunk;
            let changes = batch.for_chunk(chunk);
            // What clears remove, from the cache before it changes: other
            // clients drop signs and lights only for blocks set to 0.
            let cleared: Vec<(BlockPos, i32)> = self
                .chunks
                .ready(chunk)
                .map(|state| {
                    changes
                        .clears
                        .iter()
                        .flat_map(|c| {
                            state
                                .signs
                                .range((c.pos, i32::MIN)..=(c.pos, i32::MAX))
                                .map(|((pos, face), _)| (*pos, *face))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut msgs: Vec<ServerMessage<'_>> = Vec::with_capacity(changes.len() + 1);
            msgs.extend(
                changes
                    .blocks
                    .iter()
                    .map(|b: &&BlockWrite| ServerMessage::Block {
                        chunk,
                        pos: b.pos,
                        w: b.w,
                    }),
            );
            msgs.extend(cleared.iter().map(|(pos, face)| ServerMessage::Sign {
                chunk,
                pos: *pos,
                face: *face,
                text: "",
            }));
            msgs.extend(changes.lights.iter().map(|l| ServerMessage::Light {
                chunk,
                pos: l.pos,
                w: l.w,
            }));
            msgs.extend(changes.signs.iter().map(|s| ServerMessage::Sign {
                chunk,
                pos: s.pos,
                face: s.face,
                text: s.text.as_deref().unwrap_or(""),
            }));
            msgs.push(ServerMessage::Redraw { chunk });
            if let Some(state) = self.chunks.ready_mut(chunk) {
                state.overlay_decor(batch, chunk);
                for b in &changes.blocks {
                    // A pending write of someone else came after: it wins.
                    if state.blocks.get(&b.pos).is_some_and(|e| e.key.is_none()) {
                        continue;
                    }
                    state.blocks.insert(
                        b.pos,
                        BlockEntry {
                            w: b.w,
                            key: Some(advance.after),
                            generation: 0,
                        },
                    );
                }
                if advance.before == state.synced {
                    state.synced = advance.after;
                } else {
                    self.sync.dirty.insert(chunk);
                }
            }
            self.broadcast_edit(chunk, &msgs, owner);
            for msg in &msgs {
                if let Some(edit) = Edit::from_message(msg) {
                    self.fleet_edit(edit);
                }
            }
            for b in &changes.blocks {
                if b.pos.chunk() == chunk {
                    self.publish_edit(b.pos, b.w);
                }
            }
        }
        self.fleet_heads(published.receipt.heads());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert!(matches!(parse("/private"), Some(DraftCommand::Private)));
        assert!(matches!(
            parse("/publish"),
            Some(DraftCommand::Publish { check_only: false })
        ));
        assert!(matches!(
            parse("/publish check"),
            Some(DraftCommand::Publish { check_only: true })
        ));
        assert!(matches!(parse("/discard"), Some(DraftCommand::Discard)));
        assert!(parse("/publish now").is_none());
        assert!(parse("/private x").is_none());
        assert!(parse("/privately").is_none());
    }
}
