//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use store_sqlite::{Config, SqliteStore};
use tempfile::TempDir;
use world_core::BlockPos;
use world_core::store::{Batch, ChangeMeta};

/// A store on a file in its own temporary directory, removed on drop.
pub struct TempStore {
    pub store: SqliteStore,
    pub dir: TempDir,
}

impl TempStore {
    pub async fn new() -> TempStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(Config::new(dir.path().join("world.db")))
            .await
            .expect("open");
        TempStore { store, dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("world.db")
    }
}

impl Deref for TempStore {
    type Target = SqliteStore;

    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

pub fn meta() -> ChangeMeta {
    ChangeMeta {
        user: Some(Arc::from("tester")),
        time_ms: Some(1_764_000_000_000),
    }
}

/// Places block `w` at `pos` with its neighbour mirrors, as the server does.
pub fn place(batch: &mut Batch, pos: BlockPos, w: i32) {
    batch.set_block(pos.chunk(), pos, w, meta());
    for neighbour in pos.mirror_chunks() {
        batch.set_block(neighbour, pos, -w, meta());
    }
}

pub const FIXTURE: &str = "craft-reference.db";

/// Finds `craft-reference.db`: `$CRAFT_FIXTURES/`, else `shared/fixtures/`
/// beside the workspace root or beside one of its ancestors (the main
/// checkout is `/work/main`, worktrees are `/work/wt/NAME`, the fixtures
/// `/work/shared/fixtures`).
pub fn fixture() -> PathBuf {
    let mut tried = Vec::new();
    if let Some(dir) = std::env::var_os("CRAFT_FIXTURES") {
        let path = Path::new(&dir).join(FIXTURE);
        if path.is_file() {
            return path;
        }
        panic!(
            "CRAFT_FIXTURES is set but {} does not exist",
            path.display()
        );
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for ancestor in workspace.ancestors().skip(1) {
        let path = ancestor.join("shared/fixtures").join(FIXTURE);
        if path.is_file() {
            return path;
        }
        tried.push(path);
    }
    panic!(
        "fixture {FIXTURE} not found; set CRAFT_FIXTURES to the fixtures directory. Tried: {}",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// A writable copy of the reference world in a fresh temporary directory
/// (the fixtures directory is read-only).
pub fn fixture_copy() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("craft.db");
    std::fs::copy(fixture(), &path).expect("copy the fixture");
    let mut perms = std::fs::metadata(&path).expect("metadata").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).expect("make the copy writable");
    (dir, path)
}
