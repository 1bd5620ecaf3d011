//! The original server's world file, `fixtures/craft-reference.db`: served
//! exactly as stored, and reproduced by replaying the session that built it.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use support::{TestServer, fixtures};
use world_core::BlockStore;

const WAIT: Duration = Duration::from_secs(30);

/// Every row of a Craft world file, as protocol lines of its chunk's answer.
fn rows(db: &Path) -> std::collections::BTreeMap<(i32, i32), BTreeSet<String>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open");
    let mut out: std::collections::BTreeMap<(i32, i32), BTreeSet<String>> = Default::default();
    let mut add = |sql: &str, kind: &str| {
        let mut stmt = conn.prepare(sql).expect("prepare");
        let mut q = stmt.query([]).expect("query");
        while let Some(row) = q.next().expect("row") {
            let p: i32 = row.get(0).expect("p");
            let q: i32 = row.get(1).expect("q");
            let count = row.as_ref().column_count();
            let mut fields = vec![kind.to_owned()];
            for i in 0..count {
                let v: rusqlite::types::Value = row.get(i).expect("value");
                fields.push(match v {
                    rusqlite::types::Value::Integer(n) => n.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => panic!("unexpected value {other:?}"),
                });
            }
            out.entry((p, q)).or_default().insert(fields.join(","));
        }
    };
    add("SELECT p, q, x, y, z, w FROM block", "B");
    add("SELECT p, q, x, y, z, w FROM light", "L");
    add("SELECT p, q, x, y, z, face, text FROM sign", "S");
    out
}

fn copy_reference(dir: &Path) -> std::path::PathBuf {
    let copy = dir.join("craft.db");
    std::fs::copy(fixtures().join("craft-reference.db"), &copy).expect("copy the fixture");
    copy
}

async fn sqlite(path: &Path) -> Arc<dyn BlockStore> {
    let url = format!("sqlite:{}", path.display());
    Arc::new(
        store_sqlite::SqliteStore::open_url(&url)
            .await
            .expect("open sqlite"),
    )
}

#[tokio::test]
async fn the_original_world_file_is_served_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_reference(dir.path());
    let expected = rows(&db);
    assert_eq!(expected.len(), 51, "the fixture has 51 chunks");
    let server = TestServer::start(sqlite(&db).await, |_| {}).await;
    let mut client = server.connect().await;
    client.send("V,1").await;
    for (p, q) in expected.keys() {
        client.send(&format!("C,{p},{q},0")).await;
    }
    for ((p, q), want) in &expected {
        let done = format!("C,{p},{q}");
        let answer = client.until(WAIT, |l| l == done).await;
        let got: BTreeSet<String> = answer
            .iter()
            .filter(|l| ["B,", "L,", "S,"].iter().any(|k| l.starts_with(k)))
            .cloned()
            .collect();
        assert_eq!(&got, want, "chunk ({p}, {q})");
        assert!(
            answer.iter().any(|l| l.starts_with(&format!("K,{p},{q},")))
                || !want.iter().any(|l| l.starts_with("B,"))
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn replaying_the_build_session_reproduces_the_reference_world() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("replayed.db");
    let server = TestServer::start(sqlite(&db).await, |c| {
        c.commit_interval = Duration::from_millis(200)
    })
    .await;
    let scenario = fixtures().join("transcripts/90-build-session.scenario");
    support::transcript::replay(&scenario, server.addr).await;
    server.stop().await;
    let want = rows(&fixtures().join("craft-reference.db"));
    let got = rows(&db);
    let chunks: BTreeSet<_> = want.keys().chain(got.keys()).collect();
    let mut problems = Vec::new();
    for chunk in chunks {
        let (w, g) = (
            want.get(chunk).cloned().unwrap_or_default(),
            got.get(chunk).cloned().unwrap_or_default(),
        );
        if w != g {
            let missing: Vec<_> = w.difference(&g).collect();
            let extra: Vec<_> = g.difference(&w).collect();
            problems.push(format!(
                "chunk {chunk:?}: missing {missing:?}, extra {extra:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn edits_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_reference(dir.path());
    let server = TestServer::start(sqlite(&db).await, |_| {}).await;
    let mut client = server.connect().await;
    client.send("V,1").await;
    client.send("B,2000,100,2000,5").await;
    client.send("S,2000,100,2000,0,kept, across restarts").await;
    client.send("T,done").await;
    client.until(WAIT, |l| l == "T,guest1> done").await;
    server.stop().await;

    let server = TestServer::start(sqlite(&db).await, |_| {}).await;
    let mut client = server.connect().await;
    client.send("V,1").await;
    client.send("C,62,62,0").await;
    let answer = client.until(WAIT, |l| l == "C,62,62").await;
    assert!(
        answer.contains(&"B,62,62,2000,100,2000,5".to_owned()),
        "{answer:?}"
    );
    assert!(
        answer.contains(&"S,62,62,2000,100,2000,0,kept, across restarts".to_owned()),
        "{answer:?}"
    );
    // The original rows are still all there.
    assert_eq!(rows(&db).len(), 52);
    server.stop().await;
}
