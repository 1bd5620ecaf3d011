//! Outages against real servers: backends terminated on the shared server,
//! a private cluster stopped and restarted, a server that never answers, a
//! lock held past the statement timeout. Calls fail with `Unavailable`
//! (they never hang: each is guarded here by a generous deadline that only
//! catches a hang), the pool recovers by itself, and a batch that failed
//! succeeds when applied again, with nothing lost or duplicated.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::cluster::Cluster;

use store_postgres::PostgresStore;
use world_core::coords::ChunkPos;
use world_core::store::{Batch, ChangeMeta, ChunkData};
use world_core::{BlockPos, BlockStore, StoreError, StoreResult};

/// Far above any call's own timeout: reaching it means a call hung.
const HANG: Duration = Duration::from_secs(90);

fn meta() -> ChangeMeta {
    ChangeMeta {
        user: Some(Arc::from("outage")),
        time_ms: Some(1_764_000_000_000),
    }
}

async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    match tokio::time::timeout(HANG, call).await {
        Ok(result) => result,
        Err(_) => panic!("{what} hung for {HANG:?}"),
    }
}

/// Calls `call` until it succeeds: an outage is over. Meanwhile it may
/// only fail as unavailable; a minute is far more than a recovery takes.
async fn once_recovered<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match bounded(what, call()).await {
            Ok(value) => return value,
            Err(StoreError::Unavailable { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{what}: the store did not recover: {e:?}"),
        }
    }
}

fn assert_unavailable<T: std::fmt::Debug>(what: &str, result: StoreResult<T>) {
    match result {
        Err(StoreError::Unavailable { .. }) => {}
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

/// `n` blocks in `chunk` at height `y`, value `w`.
fn layer(chunk: ChunkPos, y: i32, w: i32, n: i32) -> Batch {
    let mut batch = Batch::new();
    for i in 0..n {
        let pos = BlockPos::new(
            chunk.p * 32 + i % 32,
            y + i / 1024,
            chunk.q * 32 + (i / 32) % 32,
        );
        batch.set_block(chunk, pos, w, meta());
    }
    batch
}

/// Every block once, keys distinct, head covering them.
fn assert_consistent(data: &ChunkData) {
    let keys: BTreeSet<_> = data.blocks.iter().map(|b| b.key).collect();
    assert_eq!(keys.len(), data.blocks.len(), "a key is shared");
    let positions: BTreeSet<_> = data.blocks.iter().map(|b| b.pos).collect();
    assert_eq!(
        positions.len(),
        data.blocks.len(),
        "a position is duplicated"
    );
    assert!(data.blocks.iter().all(|b| b.key <= data.head));
}

fn values(data: &ChunkData) -> BTreeMap<BlockPos, i32> {
    data.blocks.iter().map(|b| (b.pos, b.w)).collect()
}

/// Waits until a session of `app` waits on a lock (our blocked batch).
async fn wait_for_lock_wait(admin: &tokio_postgres::Client, app: &str) {
    for _ in 0..600 {
        let rows = admin
            .query(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&app],
            )
            .await
            .expect("pg_stat_activity");
        if !rows.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the batch never waited on the lock");
}

async fn terminate(admin: &tokio_postgres::Client, app: &str) -> i64 {
    let row = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&app],
        )
        .await
        .expect("terminate");
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_are_replaced() {
    let Some(test) = common::fresh("terminate").await else {
        return;
    };
    let app = test.schema.clone();
    let admin = common::admin(&test.url).await;
    let chunk = ChunkPos::new(0, 0);
    let first = layer(chunk, 1, 3, 2000);
    bounded("apply", test.apply(&first))
        .await
        .expect("apply before");
    // Fill the pool, then kill every one of its connections while idle.
    let loads = futures::future::join_all((0..6).map(|_| test.load_chunk(chunk, 0))).await;
    assert!(loads.iter().all(Result::is_ok));
    assert!(terminate(&admin, &app).await >= 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Dead pooled connections are replaced; a call may only fail as
    // unavailable meanwhile.
    let mut ok = 0;
    for _ in 0..20 {
        match bounded("load_chunk", test.load_chunk(chunk, 0)).await {
            Ok(data) => {
                assert_eq!(data.blocks.len(), 2000);
                ok += 1;
            }
            Err(StoreError::Unavailable { .. }) => {}
            Err(e) => panic!("unexpected error after pg_terminate_backend: {e:?}"),
        }
    }
    assert!(ok > 0, "the pool never recovered");

    // In the middle of a batch: hold the chunk's lock so that the batch is
    // running (waiting) on the server, then terminate its connection.
    let mut locker = common::admin(&test.url).await;
    let tx = locker.transaction().await.expect("begin");
    tx.execute(
        &format!(
            "SELECT key FROM \"{}\".chunk WHERE p = 0 AND q = 0 FOR UPDATE",
            test.schema
        ),
        &[],
    )
    .await
    .expect("lock the chunk");
    let second = layer(chunk, 10, 4, 3000);
    let store = &test;
    let batch = &second;
    let apply = async move { bounded("apply", store.apply(batch)).await };
    let kill = async {
        wait_for_lock_wait(&admin, &app).await;
        assert!(terminate(&admin, &app).await >= 1);
        // Released only now: a retry on a fresh connection would wait on it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.rollback().await.expect("release the lock");
    };
    let (result, ()) = tokio::join!(apply, kill);
    match result {
        // Retried on a fresh connection (the lost one came from the pool).
        Ok(_) => {}
        Err(StoreError::Unavailable { .. }) => {
            bounded("apply again", test.apply(&second))
                .await
                .expect("the batch succeeds when applied again");
        }
        Err(e) => panic!("expected Ok or Unavailable, got {e:?}"),
    }
    let data = bounded("load", test.load_chunk(chunk, 0))
        .await
        .expect("load");
    assert_consistent(&data);
    assert_eq!(data.blocks.len(), 5000);
    let stored = values(&data);
    assert!(first.blocks().all(|b| stored.get(&b.pos) == Some(&3)));
    assert!(second.blocks().all(|b| stored.get(&b.pos) == Some(&4)));
    drop(locker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_times_out_as_unavailable() {
    let Some(url) = common::url() else {
        return;
    };
    let schema = common::unique("stmt_timeout");
    let config = common::settings(&url, &schema, &[("statement_timeout", "500ms")]);
    let store = common::TestStore {
        store: PostgresStore::open(config).await.expect("open"),
        url: url.clone(),
        schema: schema.clone(),
    };
    let chunk = ChunkPos::new(4, 4);
    store.apply(&layer(chunk, 1, 1, 10)).await.expect("apply");
    let mut locker = common::admin(&url).await;
    let tx = locker.transaction().await.expect("begin");
    tx.execute(
        &format!("SELECT 1 FROM \"{schema}\".chunk WHERE p = 4 AND q = 4 FOR UPDATE"),
        &[],
    )
    .await
    .expect("lock");
    let result = bounded("apply", store.apply(&layer(chunk, 2, 2, 10))).await;
    match &result {
        Err(StoreError::Unavailable { message, .. }) => {
            assert!(message.contains("57014"), "{message}")
        }
        other => panic!("expected Unavailable (statement timeout), got {other:?}"),
    }
    tx.rollback().await.expect("release");
    // The batch left nothing behind and the store goes on.
    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert_eq!(data.blocks.len(), 10);
    store
        .apply(&layer(chunk, 2, 2, 10))
        .await
        .expect("apply after the lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out() {
    // A listener that accepts and then says nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = common::config(&format!(
        "postgres://postgres@127.0.0.1:{port}/postgres\
         ?sslmode=disable&connect_timeout=500ms&statement_timeout=500ms"
    ));
    let started = std::time::Instant::now();
    assert_unavailable("open", bounded("open", PostgresStore::open(config)).await);
    eprintln!("gave up after {:?}", started.elapsed());
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_listening_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let config = common::config(&format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?connect_timeout=2s"
    ));
    assert_unavailable("open", bounded("open", PostgresStore::open(config)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_used_again() {
    let Some(cluster) = tokio::task::spawn_blocking(Cluster::create)
        .await
        .expect("create cluster")
    else {
        return;
    };
    let app = "craft-restart-test";
    let config = common::config(&common::with_params(
        &cluster.url(),
        &[
            ("schema", "craft"),
            ("application_name", app),
            ("pool_size", "3"),
            ("connect_timeout", "2s"),
            ("statement_timeout", "10s"),
        ],
    ));
    let store = PostgresStore::open(config).await.expect("open");
    let chunk = ChunkPos::new(-1, 2);
    let before = layer(chunk, 1, 5, 1500);
    store.apply(&before).await.expect("apply before the outage");

    // 1. A batch in flight when the server stops: it waits on a lock held
    //    by another session, then the server shuts down under it.
    let admin = common::admin(&cluster.url()).await;
    admin
        .batch_execute("BEGIN; SELECT 1 FROM craft.chunk WHERE p = -1 AND q = 2 FOR UPDATE")
        .await
        .expect("lock the chunk");
    let in_flight = layer(chunk, 20, 6, 1500);
    let (result, ()) = tokio::join!(bounded("apply", store.apply(&in_flight)), async {
        wait_for_lock_wait(&admin, app).await;
        let c = &cluster;
        tokio::task::block_in_place(|| c.stop("fast"));
    });
    assert_unavailable("apply during shutdown", result);

    // 2. While it is down, every call fails as unavailable, promptly.
    let down = layer(chunk, 40, 7, 1500);
    assert_unavailable(
        "apply while down",
        bounded("apply", store.apply(&down)).await,
    );
    assert_unavailable(
        "load while down",
        bounded("load", store.load_chunk(chunk, 0)).await,
    );
    assert_unavailable("ping while down", bounded("ping", store.ping()).await);

    // 3. Back up: the pool reconnects by itself.
    tokio::task::block_in_place(|| cluster.start());
    once_recovered("ping after the restart", || store.ping()).await;

    // The failed batches succeed when applied again; nothing is lost or
    // duplicated.
    store
        .apply(&in_flight)
        .await
        .expect("in-flight batch applied again");
    store
        .apply(&down)
        .await
        .expect("batch from the outage applied again");
    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert_consistent(&data);
    assert_eq!(data.blocks.len(), 4500);
    let stored = values(&data);
    for (batch, w) in [(&before, 5), (&in_flight, 6), (&down, 7)] {
        assert!(batch.blocks().all(|b| stored.get(&b.pos) == Some(&w)));
    }
    store.close().await.expect("close");
}

/// Copies `from` to `to`, holding every byte while `frozen`.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    frozen: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Forwards TCP to `target`; frozen, it holds every byte (a network
/// partition: no error, no answer).
async fn freezable_proxy(
    target: String,
) -> (
    u16,
    Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<()>,
) {
    let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let flag = frozen.clone();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pump(client_read, server_write, flag.clone()));
            tokio::spawn(pump(server_read, client_write, flag.clone()));
        }
    });
    (port, frozen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_network_times_out_and_recovers() {
    let Some(url) = common::url() else {
        return;
    };
    let target = {
        let parsed = url::Url::parse(&url).expect("url");
        format!(
            "{}:{}",
            parsed.host_str().unwrap_or("127.0.0.1"),
            parsed.port().unwrap_or(5432)
        )
    };
    let (port, frozen, proxy) = freezable_proxy(target).await;
    let mut via_proxy = url::Url::parse(&url).expect("url");
    via_proxy.set_port(Some(port)).expect("port");
    let schema = common::unique("silent");
    let config = common::settings(
        via_proxy.as_str(),
        &schema,
        &[
            ("sslmode", "disable"),
            ("connect_timeout", "1s"),
            ("statement_timeout", "1s"),
        ],
    );
    let store = common::TestStore {
        store: PostgresStore::open(config).await.expect("open"),
        url: url.clone(),
        schema,
    };
    let chunk = ChunkPos::new(6, 6);
    store.apply(&layer(chunk, 1, 2, 100)).await.expect("apply");

    frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    // A pooled connection that stops answering: the call gives up.
    assert_unavailable(
        "load while silent",
        bounded("load", store.load_chunk(chunk, 0)).await,
    );
    // New connections cannot be opened either.
    assert_unavailable(
        "apply while silent",
        bounded("apply", store.apply(&layer(chunk, 2, 3, 100))).await,
    );

    frozen.store(false, std::sync::atomic::Ordering::SeqCst);
    let data = once_recovered("load after the network came back", || {
        store.load_chunk(chunk, 0)
    })
    .await;
    // The batch that timed out may or may not have committed.
    assert!(
        data.blocks.len() == 100 || data.blocks.len() == 200,
        "{}",
        data.blocks.len()
    );
    store
        .apply(&layer(chunk, 2, 3, 100))
        .await
        .expect("the batch succeeds when applied again");
    let data = store.load_chunk(chunk, 0).await.expect("load");
    assert_consistent(&data);
    assert_eq!(data.blocks.len(), 200);
    proxy.abort();
}
