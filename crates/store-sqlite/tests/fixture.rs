//! The reference world written by the original server
//! (`shared/fixtures/craft-reference.db`) opens as is, reads back exactly,
//! takes new writes with greater keys, and stays usable by the original
//! server's own statements.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{fixture, fixture_copy, meta, place};
use rusqlite::{Connection, OpenFlags, named_params};
use store_sqlite::{Config, SqliteStore};
use world_core::store::{Batch, ChunkHead, Key};
use world_core::{BlockPos, BlockStore, ChunkPos};

type Blocks = BTreeSet<(Key, i32, i32, i32, i32)>;
type Lights = BTreeSet<(i32, i32, i32, i32)>;
type Signs = BTreeSet<(i32, i32, i32, i32, String)>;

/// What a chunk holds, read straight from a file with plain SQL.
#[derive(Debug, Default, PartialEq)]
struct Raw {
    blocks: Blocks,
    lights: Lights,
    signs: Signs,
}

fn read_raw(conn: &Connection) -> BTreeMap<ChunkPos, Raw> {
    let mut out: BTreeMap<ChunkPos, Raw> = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT p, q, rowid, x, y, z, w FROM block")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                ChunkPos::new(r.get(0)?, r.get(1)?),
                (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?),
            ))
        })
        .expect("query");
    for row in rows {
        let (chunk, b) = row.expect("row");
        out.entry(chunk).or_default().blocks.insert(b);
    }
    let mut stmt = conn
        .prepare("SELECT p, q, x, y, z, w FROM light")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                ChunkPos::new(r.get(0)?, r.get(1)?),
                (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
            ))
        })
        .expect("query");
    for row in rows {
        let (chunk, l) = row.expect("row");
        out.entry(chunk).or_default().lights.insert(l);
    }
    let mut stmt = conn
        .prepare("SELECT p, q, x, y, z, face, text FROM sign")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                ChunkPos::new(r.get(0)?, r.get(1)?),
                (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?),
            ))
        })
        .expect("query");
    for row in rows {
        let (chunk, s) = row.expect("row");
        out.entry(chunk).or_default().signs.insert(s);
    }
    out
}

fn from_store(data: &world_core::store::ChunkData) -> Raw {
    Raw {
        blocks: data
            .blocks
            .iter()
            .map(|b| (b.key, b.pos.x, b.pos.y, b.pos.z, b.w))
            .collect(),
        lights: data
            .lights
            .iter()
            .map(|l| (l.pos.x, l.pos.y, l.pos.z, l.w))
            .collect(),
        signs: data
            .signs
            .iter()
            .map(|s| (s.pos.x, s.pos.y, s.pos.z, s.face, s.text.clone()))
            .collect(),
    }
}

fn original_read_only() -> Connection {
    Connection::open_with_flags(fixture(), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the fixture read-only")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_world_reads_back_exactly() {
    let expected = read_raw(&original_read_only());
    let rows: usize = expected.values().map(|r| r.blocks.len()).sum();
    let lights: usize = expected.values().map(|r| r.lights.len()).sum();
    let signs: usize = expected.values().map(|r| r.signs.len()).sum();
    let block_chunks = expected.values().filter(|r| !r.blocks.is_empty()).count();
    assert_eq!(
        (rows, block_chunks, lights, signs),
        (1670, 51, 80, 60),
        "the fixture changed"
    );

    let (_dir, path) = fixture_copy();
    let store = SqliteStore::open(Config::new(&path))
        .await
        .expect("open the reference world");

    let listed = store.list_chunks().await.expect("list_chunks");
    let listed_chunks: BTreeSet<ChunkPos> = listed.iter().map(|h| h.chunk).collect();
    assert_eq!(
        listed_chunks,
        expected.keys().copied().collect(),
        "every chunk with rows is listed"
    );

    for head in &listed {
        let raw = &expected[&head.chunk];
        let data = store.load_chunk(head.chunk, 0).await.expect("load_chunk");
        assert_eq!(from_store(&data), *raw, "chunk {}", head.chunk);
        let max_rowid = raw.blocks.iter().map(|b| b.0).max().unwrap_or(0);
        assert!(data.head >= 1, "chunk {} has rows but head 0", head.chunk);
        assert_eq!(
            data.head, head.head,
            "list_chunks and load_chunk agree on {}",
            head.chunk
        );
        if max_rowid > 0 {
            assert_eq!(
                data.head, max_rowid,
                "the head of {} is its largest rowid",
                head.chunk
            );
        }

        // Incremental loads: nothing past the head, exactly the newer rows
        // past any key in between; lights and signs always in full.
        let newer = store
            .load_chunk(head.chunk, data.head)
            .await
            .expect("load since head");
        assert!(
            newer.blocks.is_empty(),
            "{} since its head returned {:?}",
            head.chunk,
            newer.blocks
        );
        assert_eq!(from_store(&newer).lights, raw.lights);
        assert_eq!(from_store(&newer).signs, raw.signs);
        if let Some(middle) = raw.blocks.iter().map(|b| b.0).nth(raw.blocks.len() / 2) {
            let part = store
                .load_chunk(head.chunk, middle)
                .await
                .expect("load since middle");
            let want: Blocks = raw
                .blocks
                .iter()
                .filter(|b| b.0 > middle)
                .cloned()
                .collect();
            assert_eq!(from_store(&part).blocks, want);
        }
    }
    let held: Vec<ChunkHead> = listed.clone();
    assert_eq!(
        store.changed_chunks(&held).await.expect("changed_chunks"),
        vec![]
    );
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_writes_get_keys_above_the_original_rows() {
    let (_dir, path) = fixture_copy();
    let original_max: Key = original_read_only()
        .query_row("SELECT max(rowid) FROM block", [], |r| r.get(0))
        .expect("max rowid");
    let store = SqliteStore::open(Config::new(&path)).await.expect("open");
    let chunks = store.list_chunks().await.expect("list");
    // An existing chunk with blocks: update one of its rows, add another.
    let mut found = None;
    for h in &chunks {
        let data = store.load_chunk(h.chunk, 0).await.expect("load");
        if let Some(b) = data
            .blocks
            .iter()
            .find(|b| b.w > 0 && b.pos.chunk() == h.chunk)
        {
            found = Some((h.chunk, data.clone(), b.clone()));
            break;
        }
    }
    let (target, before, existing) = found.expect("a chunk with a block of its own");
    let mut batch = Batch::new();
    batch.set_block(target, existing.pos, 0, meta());
    batch.clear_decor(target, existing.pos);
    let fresh = BlockPos::new(target.p * 32 + 7, 200, target.q * 32 + 7);
    place(&mut batch, fresh, 5);
    batch.set_sign(target, fresh, 2, "added later, by us", meta());
    let receipt = store.apply(&batch).await.expect("apply");
    let advance = receipt
        .chunks
        .iter()
        .find(|a| a.chunk == target)
        .expect("advance");
    assert_eq!(advance.before, before.head);
    let after = store
        .load_chunk(target, before.head)
        .await
        .expect("load since");
    let mut got: Vec<(BlockPos, i32)> = after.blocks.iter().map(|b| (b.pos, b.w)).collect();
    got.sort();
    let mut want = vec![(existing.pos, 0), (fresh, 5)];
    want.sort();
    assert_eq!(got, want);
    for b in &after.blocks {
        assert!(
            b.key > original_max,
            "key {} not above the original rows ({original_max})",
            b.key
        );
        assert!(b.key > existing.key);
    }
    store.close().await.expect("close");

    // Reopening the migrated file is a no-op migration and keeps everything.
    let store = SqliteStore::open(Config::new(&path)).await.expect("reopen");
    let again = store.load_chunk(target, before.head).await.expect("load");
    assert_eq!(again.blocks.len(), 2);
    assert_eq!(again.head, advance.after);
    store.close().await.expect("close");
}

/// The original server's statements (server.py), verbatim in substance,
/// against the migrated file while our store has it open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_server_still_works_on_the_migrated_file() {
    let (_dir, path) = fixture_copy();
    let store = SqliteStore::open(Config::new(&path)).await.expect("open");
    // Write something first, so that our keys and tables are in play.
    let ours = BlockPos::new(3, 60, 3);
    let mut batch = Batch::new();
    place(&mut batch, ours, 9);
    batch.set_light(ours.chunk(), ours, 12, meta());
    batch.set_sign(ours.chunk(), ours, 1, "ours", meta());
    store.apply(&batch).await.expect("apply");
    let chunk = ours.chunk();
    let head = store.load_chunk(chunk, 0).await.expect("load").head;

    let py = Connection::open(&path).expect("a second connection, as the original server");
    py.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    // Its create_tables runs at every start.
    py.execute_batch(
        "create table if not exists block (p int not null, q int not null, x int not null, \
         y int not null, z int not null, w int not null);
         create unique index if not exists block_pqxyz_idx on block (p, q, x, y, z);
         create table if not exists light (p int not null, q int not null, x int not null, \
         y int not null, z int not null, w int not null);
         create unique index if not exists light_pqxyz_idx on light (p, q, x, y, z);
         create table if not exists sign (p int not null, q int not null, x int not null, \
         y int not null, z int not null, face int not null, text text not null);
         create index if not exists sign_pq_idx on sign (p, q);
         create unique index if not exists sign_xyzface_idx on sign (x, y, z, face);
         create table if not exists block_history (timestamp real not null, user_id int not null, \
         x int not null, y int not null, z int not null, w int not null);",
    )
    .expect("create_tables");
    // get_block sees our write.
    let w: i32 = py
        .query_row(
            "select w from block where p = :p and q = :q and x = :x and y = :y and z = :z;",
            named_params! {":p": 0, ":q": 0, ":x": 3, ":y": 60, ":z": 3},
            |r| r.get(0),
        )
        .expect("get_block");
    assert_eq!(w, 9);
    // on_block: remove our block and add another, in one of its transactions.
    let put = "insert or replace into block (p, q, x, y, z, w) values (:p, :q, :x, :y, :z, :w);";
    py.execute_batch("begin").expect("begin");
    py.execute(
        put,
        named_params! {":p": 0, ":q": 0, ":x": 3, ":y": 60, ":z": 3, ":w": 0},
    )
    .expect("remove");
    py.execute(
        "delete from sign where x = :x and y = :y and z = :z;",
        named_params! {":x": 3, ":y": 60, ":z": 3},
    )
    .expect("delete signs");
    py.execute(
        "update light set w = 0 where x = :x and y = :y and z = :z;",
        named_params! {":x": 3, ":y": 60, ":z": 3},
    )
    .expect("zero light");
    py.execute(
        put,
        named_params! {":p": 0, ":q": 0, ":x": 4, ":y": 61, ":z": 4, ":w": 17},
    )
    .expect("add");
    py.execute(
        "insert or replace into sign (p, q, x, y, z, face, text) values (:p, :q, :x, :y, :z, :face, :text);",
        named_params! {":p": 0, ":q": 0, ":x": 4, ":y": 61, ":z": 4, ":face": 0, ":text": "by the original"},
    )
    .expect("sign");
    py.execute_batch("commit").expect("commit");
    // on_chunk, as the original asks.
    let mut on_chunk = py
        .prepare("select rowid, x, y, z, w from block where p = :p and q = :q and rowid > :key;")
        .expect("prepare");
    let rows: Vec<(i64, i32, i32, i32, i32)> = on_chunk
        .query_map(named_params! {":p": 0, ":q": 0, ":key": head}, |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        rows.len(),
        2,
        "the original sees both its rows as newer than our head: {rows:?}"
    );

    // And we see the original's writes, with keys above our head.
    let data = store
        .load_chunk(chunk, head)
        .await
        .expect("load since our head");
    let mut got: Vec<(BlockPos, i32)> = data.blocks.iter().map(|b| (b.pos, b.w)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![(BlockPos::new(3, 60, 3), 0), (BlockPos::new(4, 61, 4), 17)]
    );
    assert!(data.blocks.iter().all(|b| b.key > head));
    assert!(
        data.head > head,
        "the head grew past {head} to {}",
        data.head
    );
    assert_eq!(data.head, data.max_block_key());
    let changed = store
        .changed_chunks(&[ChunkHead { chunk, head }])
        .await
        .expect("changed");
    assert_eq!(
        changed,
        vec![ChunkHead {
            chunk,
            head: data.head
        }]
    );
    let signs: Vec<String> = data.signs.iter().map(|s| s.text.clone()).collect();
    assert_eq!(signs, vec!["by the original".to_owned()]);
    let light = data.lights.iter().find(|l| l.pos == ours).map(|l| l.w);
    assert_eq!(light, Some(0), "the original's removal zeroed our light");

    // Our next batch continues above the original's rows.
    let mut batch = Batch::new();
    batch.set_block(chunk, BlockPos::new(5, 62, 5), 3, meta());
    let receipt = store.apply(&batch).await.expect("apply after the original");
    assert_eq!(receipt.chunks[0].before, data.head);
    assert!(receipt.chunks[0].after > data.head);
    drop(on_chunk);
    drop(py);
    store.close().await.expect("close");

    // The file is sound.
    let check = Connection::open(&path).expect("open");
    let status: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(status, "ok");
}

/// The migration only adds: every object of the original schema is still
/// there, and the original tables only gained NULLable columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_only_adds() {
    let schema = |conn: &Connection| -> BTreeMap<String, String> {
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let before = schema(&original_read_only());
    let (_dir, path) = fixture_copy();
    let store = SqliteStore::open(Config::new(&path)).await.expect("open");
    store.close().await.expect("close");
    let conn = Connection::open(&path).expect("open");
    let after = schema(&conn);
    for (name, sql) in &before {
        let now = after
            .get(name)
            .unwrap_or_else(|| panic!("{name} disappeared"));
        if ["block", "light", "sign"].contains(&name.as_str()) {
            let kept = sql.trim_end_matches(')');
            assert!(
                now.starts_with(kept),
                "{name} changed beyond added columns: {now}"
            );
            assert!(
                now.contains("author TEXT") && now.contains("time_ms INTEGER"),
                "{now}"
            );
        } else {
            assert_eq!(now, sql, "{name} changed");
        }
    }
    for added in [
        "craft_meta",
        "craft_chunk",
        "craft_player",
        "craft_block_pq_idx",
    ] {
        assert!(after.contains_key(added), "{added} missing");
    }
    let version: i64 = conn
        .query_row(
            "SELECT value FROM craft_meta WHERE name = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .expect("version");
    assert_eq!(version, store_sqlite::SCHEMA_VERSION);
    // Every chunk with anything stored has a head >= 1.
    let headless: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT p, q FROM block UNION SELECT p, q FROM light UNION SELECT p, q FROM sign) c
             WHERE NOT EXISTS (SELECT 1 FROM craft_chunk h WHERE h.p = c.p AND h.q = c.q AND h.head >= 1)",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(headless, 0);
}
