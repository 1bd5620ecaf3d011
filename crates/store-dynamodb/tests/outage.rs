//! A private moto_server that goes away and comes back: nothing is lost,
//! calls during the outage fail as `Unavailable` (within the configured
//! timeouts, not minutes), and the same batch applies after the restart.
//! Also: the SDK's rustls client really speaks TLS (against moto `--ssl`).

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use store_dynamodb::{Config, DynamoStore};
use tokio::process::{Child, Command};
use world_core::conformance::test_service;
use world_core::store::{Batch, BlockStore, ChangeMeta, StoreError, error_chain};
use world_core::{BlockPos, ChunkPos};

const MOTO_VAR: &str = "CRAFT_TEST_MOTO_SERVER";

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

async fn start_moto(bin: &str, port: u16, extra: &[&str]) -> Child {
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start moto_server");
    for _ in 0..300 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto_server did not listen on port {port}");
}

async fn stop(mut child: Child) {
    child.kill().await.expect("kill moto_server");
}

fn short_timeouts(endpoint: &str) -> Config {
    let mut config = common::config(endpoint, "outage");
    config.connect_timeout = Duration::from_millis(500);
    config.attempt_timeout = Duration::from_secs(2);
    config.operation_timeout = Duration::from_secs(5);
    config.max_attempts = 3;
    config
}

fn batch(chunk: ChunkPos, y: i32, n: i32) -> Batch {
    let meta = ChangeMeta {
        user: Some("outage".into()),
        time_ms: Some(1),
    };
    let mut batch = Batch::new();
    for i in 0..n {
        batch.set_block(chunk, BlockPos::new(i, y, 0), 3, meta.clone());
    }
    batch.set_light(chunk, BlockPos::new(0, y, 0), 5, meta.clone());
    batch.set_sign(chunk, BlockPos::new(0, y, 0), 2, "still here", meta);
    batch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing_and_fails_fast() {
    let Some(bin) = test_service(MOTO_VAR) else {
        return;
    };
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let moto = start_moto(&bin, port, &[]).await;
    let store = DynamoStore::open_with(short_timeouts(&endpoint), common::test_credentials)
        .await
        .expect("open");
    let chunk = ChunkPos::new(0, 0);
    store
        .apply(&batch(chunk, 1, 30))
        .await
        .expect("apply before the outage");
    store.ping().await.expect("ping before the outage");

    stop(moto).await;
    let started = Instant::now();
    let second = batch(chunk, 2, 40);
    match store.apply(&second).await {
        Err(e @ StoreError::Unavailable { .. }) => assert!(e.is_retryable()),
        other => panic!("expected Unavailable during the outage, got {other:?}"),
    }
    eprintln!("apply failed after {:?}", started.elapsed());
    assert!(
        matches!(store.ping().await, Err(StoreError::Unavailable { .. })),
        "ping must fail"
    );
    assert!(matches!(
        store.load_chunk(chunk, 0).await,
        Err(StoreError::Unavailable { .. })
    ));

    // The emulator keeps everything in memory: after the restart the table
    // is gone and is created again.
    let moto = start_moto(&bin, port, &[]).await;
    store.create_table().await.expect("create the table again");
    store.ping().await.expect("ping after the restart");
    let receipt = store
        .apply(&second)
        .await
        .expect("the same batch after the restart");
    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert_eq!(data.blocks.len(), 40);
    assert_eq!(data.head, receipt.chunks[0].after);
    assert_eq!(data.signs.len(), 1);
    stop(moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_large_batch_is_retried_whole() {
    let Some(bin) = test_service(MOTO_VAR) else {
        return;
    };
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let moto = start_moto(&bin, port, &[]).await;
    let mut config = short_timeouts(&endpoint);
    config.concurrency = 1;
    // Reading the chunk back is slow on a busy machine (moto scans in
    // Python): longer operations here, the outage itself fails fast anyway.
    config.attempt_timeout = Duration::from_secs(10);
    config.operation_timeout = Duration::from_secs(30);
    let store = DynamoStore::open_with(config, common::test_credentials)
        .await
        .expect("open");
    let chunk = ChunkPos::new(3, -1);
    let mut big = Batch::new();
    for i in 0..1500 {
        big.set_block(
            chunk,
            BlockPos::new(96 + i % 32, 1 + i / 1024, -32 + (i / 32) % 32),
            4,
            ChangeMeta::default(),
        );
    }
    let applying = tokio::spawn({
        let store = std::sync::Arc::new(store);
        let big = big.clone();
        async move { (store.apply(&big).await, store) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop(moto).await;
    let (result, store) = applying.await.expect("join");
    let moto = start_moto(&bin, port, &[]).await;
    store.create_table().await.expect("create the table again");
    match result {
        Err(e) => {
            eprintln!("the apply cut by the restart failed: {e}");
            assert!(e.is_retryable(), "{e}");
        }
        Ok(_) => eprintln!("the apply finished before the restart"),
    }
    // Whatever happened, re-applying the batch is harmless and complete.
    let receipt = store.apply(&big).await.expect("re-apply");
    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert_eq!(data.blocks.len(), 1500);
    assert_eq!(data.head, receipt.chunks[0].after);
    stop(moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoints_go_through_rustls() {
    let Some(bin) = test_service(MOTO_VAR) else {
        return;
    };
    let port = free_port();
    // moto's `--ssl` serves a self-signed certificate: the handshake must
    // happen and be refused for that certificate, which proves the TLS
    // client is built in and verifies peers.
    let moto = start_moto(&bin, port, &["--ssl"]).await;
    let mut config = short_timeouts(&format!("https://127.0.0.1:{port}"));
    config.max_attempts = 1;
    let error = DynamoStore::open_with(config, common::test_credentials)
        .await
        .expect_err("a self-signed certificate must be refused");
    let chain = error_chain(&error);
    eprintln!("refused as expected: {chain}");
    let chain_lower = chain.to_lowercase();
    assert!(
        chain_lower.contains("certificate") || chain_lower.contains("unknownissuer"),
        "{chain}"
    );
    stop(moto).await;
}
