//! A writer process killed with SIGKILL loses no batch it had acknowledged,
//! the file opens cleanly afterwards, and keys from two processes writing
//! the same file at once never collide.
//!
//! The child is this test binary run again with `CHILD_ENV` set, executing
//! only [`crash_child`], which applies batches forever and prints
//! `applied I BEFORE AFTER` after each `apply` returns.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::meta;
use rusqlite::Connection;
use store_sqlite::{Config, SqliteStore};
use world_core::store::{Batch, Key};
use world_core::{BlockPos, BlockStore, ChunkPos};

const CHILD_ENV: &str = "STORE_SQLITE_CRASH_CHILD_DB";
const ONCE_ENV: &str = "STORE_SQLITE_CHILD_ONCE";
const SHARED: ChunkPos = ChunkPos::new(0, 0);
const BLOCKS_PER_BATCH: i32 = 20;

/// Batch `i` of writer `who` (0: the crashing child, 1: the parent, 2..:
/// short-lived children): its own positions, all stored under the shared
/// chunk (a store keeps rows under the chunk it is given), so that every
/// batch can be checked afterwards.
fn batch(who: i32, i: i32) -> Batch {
    let mut batch = Batch::new();
    let y = 1 + i % 250;
    let z = 1000 * who + i / 250;
    for x in 0..BLOCKS_PER_BATCH {
        batch.set_block(SHARED, BlockPos::new(x, y, z), value(who, i), meta());
    }
    batch
}

fn value(who: i32, i: i32) -> i32 {
    1 + (i + who * 7) % 60
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return; // Only meaningful as the child of the tests below.
    };
    let store = SqliteStore::open(Config::new(path))
        .await
        .expect("child open");
    if let Some(who) = std::env::var_os(ONCE_ENV) {
        // One batch of its own, then a clean exit.
        let who: i32 = who
            .to_str()
            .and_then(|w| w.parse().ok())
            .expect("writer number");
        let a = store
            .apply(&batch(who, 0))
            .await
            .expect("child apply")
            .chunks[0];
        println!("applied {who} {} {}", a.before, a.after);
        store.close().await.expect("child close");
        return;
    }
    for i in 0.. {
        let receipt = store.apply(&batch(0, i)).await.expect("child apply");
        let a = receipt.chunks[0];
        // Printed only once apply returned: the batch is acknowledged.
        println!("applied {i} {} {}", a.before, a.after);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_loses_no_acknowledged_batch() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("world.db");
    let parent = SqliteStore::open(Config::new(&path))
        .await
        .expect("parent open");

    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("child stdout");

    // The parent writes the same chunk meanwhile, as a second server would.
    let stop = Arc::new(AtomicBool::new(false));
    let parent_writes = {
        let (parent, stop) = (parent.clone(), stop.clone());
        tokio::spawn(async move {
            let mut ranges = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 2000 {
                let a = parent
                    .apply(&batch(1, i))
                    .await
                    .expect("parent apply")
                    .chunks[0];
                ranges.push((i, a.before, a.after));
                i += 1;
            }
            ranges
        })
    };

    // Read acknowledgements until enough, then SIGKILL mid-stream.
    let acked = tokio::task::spawn_blocking(move || {
        let mut acked: Vec<(i32, Key, Key)> = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read child stdout");
            // libtest prints "test crash_child ... " before the first line.
            let Some((_, rest)) = line.split_once("applied ") else {
                continue;
            };
            let f: Vec<i64> = rest
                .split(' ')
                .map(|x| x.parse().expect("number"))
                .collect();
            acked.push((f[0] as i32, f[1], f[2]));
            if acked.len() == 150 {
                child.kill().expect("SIGKILL the child");
                break;
            }
        }
        let status = child.wait().expect("wait for the child");
        (acked, status)
    })
    .await
    .expect("reader");
    let (child_acked, status) = acked;
    stop.store(true, Ordering::Relaxed);
    let parent_acked = parent_writes.await.expect("parent writer");
    assert_eq!(
        child_acked.len(),
        150,
        "the child stopped early: {status:?}"
    );
    assert!(!status.success(), "the child was killed, not finished");
    parent.close().await.expect("close");

    // The file opens cleanly and holds every acknowledged batch.
    let check = Connection::open(&path).expect("open after the crash");
    let integrity: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(integrity, "ok");
    drop(check);
    let store = SqliteStore::open(Config::new(&path))
        .await
        .expect("reopen after the crash");
    let data = store.load_chunk(SHARED, 0).await.expect("load");
    let stored: std::collections::BTreeMap<BlockPos, i32> =
        data.blocks.iter().map(|b| (b.pos, b.w)).collect();
    for (who, acked) in [
        (0, child_acked.iter().map(|a| a.0).collect::<Vec<_>>()),
        (1, parent_acked.iter().map(|a| a.0).collect()),
    ] {
        for i in acked {
            for b in batch(who, i).blocks() {
                assert_eq!(
                    stored.get(&b.pos),
                    Some(&value(who, i)),
                    "writer {who} batch {i} lost {}",
                    b.pos
                );
            }
        }
    }
    let keys: BTreeSet<Key> = data.blocks.iter().map(|b| b.key).collect();
    assert_eq!(keys.len(), data.blocks.len(), "two blocks share a key");

    // Key ranges of the two processes interleave but never overlap.
    let mut ranges: Vec<(Key, Key)> = child_acked
        .iter()
        .chain(parent_acked.iter())
        .map(|a| (a.1, a.2))
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "overlapping key ranges {pair:?}");
    }
    assert!(
        !parent_acked.is_empty(),
        "the parent wrote nothing beside the child"
    );

    // And the store writes on after the crash.
    let receipt = store
        .apply(&batch(1, 1999))
        .await
        .expect("apply after the crash");
    assert!(receipt.chunks[0].after > ranges.last().map(|r| r.1).unwrap_or(0));
    store.close().await.expect("close");
}

/// Several processes opening a brand-new file at the same instant all
/// succeed: the WAL switch and the migration serialise on SQLite's locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_open_a_new_file_at_once() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("world.db");
    let children: Vec<_> = (2..6)
        .map(|who| {
            Command::new(std::env::current_exe().expect("test binary"))
                .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, &path)
                .env(ONCE_ENV, who.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut ranges = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "a child failed: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("applied ").map(|(_, rest)| rest))
            .expect("acknowledged");
        let f: Vec<i64> = line
            .split(' ')
            .map(|x| x.parse().expect("number"))
            .collect();
        ranges.push((f[1], f[2]));
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "overlapping key ranges {pair:?}");
    }
    let store = SqliteStore::open(Config::new(&path)).await.expect("open");
    let data = store.load_chunk(SHARED, 0).await.expect("load");
    assert_eq!(data.blocks.len(), 4 * BLOCKS_PER_BATCH as usize);
    store.close().await.expect("close");
}
