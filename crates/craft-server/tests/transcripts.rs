//! Every recorded session of the original server, replayed against ours.

mod support;

use std::path::PathBuf;

use support::transcript::{compare, expected, replay};
use support::{TestServer, fixtures};

fn scenarios() -> Vec<PathBuf> {
    let dir = fixtures().join("transcripts");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("transcripts dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "scenario") && p.with_extension("expected").exists()
        })
        .collect();
    all.sort();
    assert!(
        all.len() >= 4,
        "expected the recorded transcripts in {}",
        dir.display()
    );
    all
}

async fn check(backend: &str, name: &str) {
    let path = scenarios()
        .into_iter()
        .find(|p| p.file_stem().is_some_and(|s| s == name))
        .expect("scenario");
    let Some(store) = support::stores::fresh(backend).await else {
        return;
    };
    let server = TestServer::start(store, |_| {}).await;
    let actual = replay(&path, server.addr).await;
    let want = expected(&path.with_extension("expected"));
    let mut problems = Vec::new();
    for (who, lines) in &want {
        problems.extend(compare(
            who,
            lines,
            actual.get(who).map(Vec::as_slice).unwrap_or(&[]),
        ));
    }
    server.stop().await;
    assert!(
        problems.is_empty(),
        "{name} on {backend}:\n{}\nactual: {actual:#?}",
        problems.join("\n")
    );
}

/// Every transcript against every backend built in.
macro_rules! transcripts {
    ($($backend:ident $(if $feature:literal)?),* $(,)?) => {$(
        $(#[cfg(feature = $feature)])?
        mod $backend {
            #[tokio::test]
            async fn session() {
                super::check(stringify!($backend), "01-session").await;
            }
            #[tokio::test]
            async fn blocks() {
                super::check(stringify!($backend), "02-blocks").await;
            }
            #[tokio::test]
            async fn lights_signs() {
                super::check(stringify!($backend), "03-lights-signs").await;
            }
            #[tokio::test]
            async fn two_players() {
                super::check(stringify!($backend), "04-two-players").await;
            }
        }
    )*};
}

transcripts!(
    memory,
    sqlite if "sqlite",
    postgres if "postgres",
    dynamodb if "dynamodb",
    dataapi if "dataapi",
);

#[test]
fn every_recorded_transcript_has_a_test() {
    let names: Vec<String> = scenarios()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(
        names,
        [
            "01-session",
            "02-blocks",
            "03-lights-signs",
            "04-two-players"
        ]
    );
}
