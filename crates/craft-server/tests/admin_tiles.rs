//! Map tiles of the original server's world file
//! (`fixtures/craft-reference.db`, opened with the SQLite store) compared
//! pixel for pixel with the images committed under `tests/data/`.
//!
//! After a deliberate change to the map's look, regenerate them with
//! `CRAFT_BLESS=1 cargo test -p craft-server --test admin_tiles`, look at
//! them, and commit them.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use craft_server::admin::tiles::{self, TileKey};
use rustc_hash::FxHashMap;
use support::admin::{decode, get};
use support::{TestServer, fixtures};
use world_core::BlockStore;

fn expected(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

async fn reference_world(dir: &Path) -> Arc<dyn BlockStore> {
    let copy = dir.join("craft.db");
    std::fs::copy(fixtures().join("craft-reference.db"), &copy).expect("copy the fixture");
    let url = format!("sqlite:{}", copy.display());
    Arc::new(
        store_sqlite::SqliteStore::open_url(&url)
            .await
            .expect("open sqlite"),
    )
}

/// Compares the tile served at `path` with `tests/data/{name}` (or writes
/// it with `CRAFT_BLESS=1`); returns its pixels.
async fn compare(server: &TestServer, path: &str, name: &str) -> Vec<u8> {
    let got = get(server, path).await;
    assert_eq!(got.status, 200, "{path}: {}", got.text());
    let pixels = decode(&got.body);
    let file = expected(name);
    if std::env::var_os("CRAFT_BLESS").is_some() {
        std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
        std::fs::write(&file, &got.body).expect("bless");
        eprintln!("wrote {}", file.display());
    }
    let want = std::fs::read(&file)
        .unwrap_or_else(|e| panic!("{}: {e} (generate it with CRAFT_BLESS=1)", file.display()));
    let want = decode(&want);
    let differing = pixels
        .chunks(3)
        .zip(want.chunks(3))
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(differing, 0, "{path}: pixels differ from {name}");
    pixels
}

fn distinct_colours(pixels: &[u8]) -> usize {
    pixels.chunks(3).collect::<HashSet<_>>().len()
}

#[tokio::test]
async fn tiles_of_the_reference_world_match_the_committed_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(reference_world(dir.path()).await, |c| {
        c.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    // The session built around the origin, in chunks -4..=3: tile (-1, -1)
    // at zoom 0 is its north-west quarter; zoom 1 shows it whole, coarser.
    let fine = compare(&server, "/tiles/0/-1/-1", "reference-tile-0--1--1.png").await;
    let coarse = compare(&server, "/tiles/1/-1/-1", "reference-tile-1--1--1.png").await;

    // Plausible: terrain of many colours, and the session's blocks on it.
    for pixels in [&fine, &coarse] {
        assert!(
            distinct_colours(pixels) > 20,
            "{}",
            distinct_colours(pixels)
        );
    }
    let key = TileKey::new(0, -1, -1).expect("tile");
    let terrain_only = tiles::pixels(key, &FxHashMap::default());
    let built = fine
        .chunks(3)
        .zip(terrain_only.chunks(3))
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        built > 100,
        "the stored blocks show on the terrain: {built} columns"
    );
    // Grass (green dominates) and the sand of the shores.
    let greenish = fine
        .chunks(3)
        .filter(|p| p[1] > p[0] && p[1] > p[2])
        .count();
    assert!(greenish > 256 * 256 / 4, "{greenish} green pixels");
    server.stop().await;
}
