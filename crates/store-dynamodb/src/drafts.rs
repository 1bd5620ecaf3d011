//! Drafts ([`DraftChange`]): players' private edits, one item per slot in
//! a partition of their own.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | draft change | `d#OWNER` | `d#X#Y#Z#KIND#FACE` | `dx dy dz` position, `dk` kind, `df` face, `w` value, `x` text (absent when empty), `ds` seen key, `t` time |
//!
//! Draft items have no `k` attribute, so the key index never holds them;
//! chunk reads only query `c#` partitions and the head scan only matches
//! `sk = "h"`. Loading a draft is one `Query` of its partition (1 MB
//! pages); storing and deleting are `BatchWriteItem` calls of at most 25
//! items and 16 MB ([`DynamoStore::write_all`]). Neither is atomic: a failed
//! `put_draft` may have stored part of its changes (storing them again
//! completes it), a failed `delete_draft` part of the deletions (deleting
//! again completes it).

use std::collections::BTreeMap;

use world_core::store::{DraftChange, DraftSlot, validate_draft};
use world_core::{BlockPos, StoreError, StoreResult};

use crate::schema::{self, Item, PK, SK, TEXT, TIME, W, key, n, s};
use crate::store::{DynamoStore, check_name, delete, put};

const X: &str = "dx";
const Y: &str = "dy";
const Z: &str = "dz";
const KIND: &str = "dk";
const FACE: &str = "df";
const SEEN: &str = "ds";

/// Partition key of a draft.
pub fn draft_pk(owner: &str) -> String {
    format!("d#{owner}")
}

fn draft_sk(slot: DraftSlot) -> String {
    let p = slot.pos;
    format!(
        "d#{}#{}#{}#{}#{}",
        p.x,
        p.y,
        p.z,
        slot.kind.code(),
        slot.face
    )
}

fn draft_item(pk: &str, change: &DraftChange) -> Item {
    let mut item = key(pk, &draft_sk(change.slot()));
    item.insert(X.to_owned(), n(change.pos.x));
    item.insert(Y.to_owned(), n(change.pos.y));
    item.insert(Z.to_owned(), n(change.pos.z));
    item.insert(KIND.to_owned(), n(change.kind().code()));
    item.insert(FACE.to_owned(), n(change.face()));
    item.insert(W.to_owned(), n(change.w()));
    if !change.text().is_empty() {
        item.insert(TEXT.to_owned(), s(change.text()));
    }
    item.insert(SEEN.to_owned(), n(change.seen));
    item.insert(TIME.to_owned(), n(change.time_ms));
    item
}

fn parse_draft(item: &Item) -> StoreResult<DraftChange> {
    let num = |name: &str| schema::get_n::<i64>(item, name).map_err(StoreError::from);
    let int = |name: &str| schema::get_n::<i32>(item, name).map_err(StoreError::from);
    let text = match item.get(TEXT) {
        Some(_) => schema::get_s(item, TEXT)?.to_owned(),
        None => String::new(),
    };
    DraftChange::from_columns(
        BlockPos::new(int(X)?, int(Y)?, int(Z)?),
        int(KIND)?,
        int(FACE)?,
        int(W)?,
        text,
        num(SEEN)?,
        num(TIME)?,
    )
}

impl DynamoStore {
    async fn draft_items(&self, owner: &str) -> StoreResult<Vec<Item>> {
        self.query_all(
            None,
            true,
            "#pk = :pk",
            &[("#pk", PK)],
            vec![(":pk", s(draft_pk(owner)))],
        )
        .await
    }

    pub(crate) async fn draft_load(&self, owner: &str) -> StoreResult<Vec<DraftChange>> {
        self.check_open()?;
        check_name(owner, "draft owner")?;
        let items = self.draft_items(owner).await?;
        items.iter().map(parse_draft).collect()
    }

    pub(crate) async fn draft_put(&self, owner: &str, changes: &[DraftChange]) -> StoreResult<()> {
        self.check_open()?;
        check_name(owner, "draft owner")?;
        validate_draft(owner, changes)?;
        // One request per slot (BatchWriteItem refuses duplicate keys); the
        // last change of a slot wins.
        let mut latest: BTreeMap<DraftSlot, &DraftChange> = BTreeMap::new();
        for c in changes {
            latest.insert(c.slot(), c);
        }
        let pk = draft_pk(owner);
        let requests = latest
            .values()
            .map(|c| put(draft_item(&pk, c)))
            .collect::<StoreResult<Vec<_>>>()?;
        self.write_all(requests).await
    }

    pub(crate) async fn draft_delete(&self, owner: &str) -> StoreResult<()> {
        self.check_open()?;
        check_name(owner, "draft owner")?;
        let items = self.draft_items(owner).await?;
        let requests = items
            .iter()
            .map(|item| {
                let pk = schema::get_s(item, PK)?;
                let sk = schema::get_s(item, SK)?;
                Ok(key(pk, sk))
            })
            .collect::<Result<Vec<Item>, crate::error::DynamoError>>()
            .map_err(|e| self.failed(e))?
            .into_iter()
            .map(delete)
            .collect::<StoreResult<Vec<_>>>()?;
        self.write_all(requests).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use world_core::store::DraftEdit;

    #[test]
    fn items_round_trip() {
        for edit in [
            DraftEdit::Block(3),
            DraftEdit::Sign {
                face: 5,
                text: "é, \"x\"".into(),
            },
            DraftEdit::Sign {
                face: 5,
                text: String::new(),
            },
            DraftEdit::Clear,
        ] {
            let change = DraftChange {
                pos: BlockPos::new(-1, 2, i32::MAX),
                edit,
                seen: 42,
                time_ms: 7,
            };
            let item = draft_item(&draft_pk("Zoë"), &change);
            assert!(!item.contains_key(schema::KEY), "never in the key index");
            assert_eq!(parse_draft(&item).expect("parse"), change);
        }
    }
}
