//! Moving a world between stores: `import`, `import --verify`,
//! `import --online` and `verify`, between every pair of backends, on a
//! world with negative and far coordinates, mirrors, lights and awkward
//! sign text, and on the original `craft.db`.
//!
//! Backends other than SQLite and memory need the services of
//! `scripts/with-services.sh` (skipped without them, failing when
//! `CRAFT_TEST_REQUIRE_SERVICES` is set).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use craft_server::config::StoreUrl;
use craft_server::migrate::{self, Endpoint, Options, ProgressMode};
use support::fixtures;
use support::stores::fresh_url;
use world_core::store::{Batch, ChangeMeta};
use world_core::{BlockPos, BlockStore, ChunkPos};

/// Generous: services on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(180);

const AWKWARD: &str = "commas, \"quotes\", 'single'; é ü ß 漢字 🙂";

fn quiet() -> Options {
    Options {
        progress: ProgressMode::Off,
        // Small batches: several writes per copy, as on a large world.
        batch_rows: 40,
        ..Options::default()
    }
}

/// A block edit as the server stores it: the value in its own chunk and
/// `-w` in each neighbour chunk that keeps a mirror.
fn edit(batch: &mut Batch, pos: BlockPos, w: i32) {
    batch.set_block(pos.chunk(), pos, w, ChangeMeta::default());
    for mirror in pos.mirror_chunks() {
        batch.set_block(mirror, pos, -w, ChangeMeta::default());
    }
    if w == 0 {
        batch.clear_decor(pos.chunk(), pos);
    }
}

fn light(batch: &mut Batch, pos: BlockPos, w: i32) {
    batch.set_light(pos.chunk(), pos, w, ChangeMeta::default());
}

fn sign(batch: &mut Batch, pos: BlockPos, face: i32, text: &str) {
    batch.set_sign(pos.chunk(), pos, face, text, ChangeMeta::default());
}

/// The small test world, in a few batches (later ones overwrite and delete
/// some of what earlier ones wrote).
fn sample_world() -> Vec<Batch> {
    let far = [
        BlockPos::new(1_000_000_031, 200, -1_000_000_033),
        BlockPos::new(i32::MAX - 3, 1, i32::MIN + 3),
        BlockPos::new(-2_000_000_000, 255, 1_999_999_999),
    ];
    let mut first = Batch::new();
    // Chunk corners and edges on both sides of 0: three mirrors each.
    for (x, z) in [(0, 0), (31, 31), (-1, -1), (-32, 31), (32, -33), (-33, 0)] {
        edit(&mut first, BlockPos::new(x, 10, z), 5);
        edit(&mut first, BlockPos::new(x, 11, z), 7);
    }
    for pos in far {
        edit(&mut first, pos, 3);
        light(&mut first, pos, 15);
        sign(&mut first, pos, 0, AWKWARD);
    }
    for (i, face) in (0..8).enumerate() {
        let pos = BlockPos::new(-5 - i as i32, 12, -70);
        edit(&mut first, pos, 17);
        sign(&mut first, pos, face, &format!("{AWKWARD} #{face}"));
        light(&mut first, pos, face * 2);
    }
    let mut second = Batch::new();
    // A removed block (a `0` row; its sign and light go with it).
    edit(&mut second, BlockPos::new(-5, 12, -70), 0);
    // An overwritten value and sign, a deleted sign, a light turned off.
    edit(&mut second, BlockPos::new(31, 10, 31), 9);
    sign(
        &mut second,
        BlockPos::new(-6, 12, -70),
        1,
        "changed, \"again\"",
    );
    sign(&mut second, BlockPos::new(-7, 12, -70), 2, "");
    light(&mut second, BlockPos::new(-8, 12, -70), 0);
    vec![first, second]
}

async fn build(store: &dyn BlockStore, batches: &[Batch]) {
    for batch in batches {
        store.apply(batch).await.expect("write the test world");
    }
}

async fn endpoint(backend: &str) -> Option<(String, Endpoint)> {
    let url = fresh_url(backend)?;
    let endpoint = Endpoint::open(&StoreUrl(url.clone()))
        .await
        .unwrap_or_else(|e| panic!("cannot open a fresh {backend} store: {e}"));
    Some((url, endpoint))
}

/// Copies the sample world from `from` to `to`, checks the copy is
/// verified, then changes a block and a sign in the copy and checks the
/// comparison finds exactly those.
async fn pair(from: &str, to: &str) {
    let Some((_, source)) = endpoint(from).await else {
        return;
    };
    let Some((_, dest)) = endpoint(to).await else {
        return;
    };
    build(&*source.store, &sample_world()).await;
    let copied = migrate::copy::copy_all(&source, &dest, &quiet())
        .await
        .expect("copy");
    let report = migrate::verify::verify(&source, &dest, &quiet())
        .await
        .expect("compare");
    assert!(report.is_same(), "{from} -> {to}:\n{report}");
    assert_eq!(report.source_totals.blocks, copied.blocks);
    assert_eq!(report.dest_totals, report.source_totals, "{report}");
    assert_eq!(report.source_digest, report.dest_digest);
    assert!(report.source_totals.signs >= 9 && report.source_totals.lights >= 10);

    // Deliberate damage: a mirror's value and a sign's text (one byte).
    let mirror = BlockPos::new(31, 11, 31);
    let mirror_chunk = ChunkPos::new(1, 1);
    let signed = BlockPos::new(-6, 12, -70);
    let mut damage = Batch::new();
    damage.set_block(mirror_chunk, mirror, -8, ChangeMeta::default());
    sign(&mut damage, signed, 1, "changed, \"agaim\"");
    dest.store.apply(&damage).await.expect("damage");
    let report = migrate::verify::verify(&source, &dest, &quiet())
        .await
        .expect("compare");
    assert!(!report.is_same());
    assert_eq!(report.values_differing(), 2, "{report}");
    let chunks: Vec<ChunkPos> = report.differing.iter().map(|c| c.chunk).collect();
    assert_eq!(chunks, vec![signed.chunk(), mirror_chunk], "{report}");
    let text = report.to_string();
    assert!(
        text.contains("block (31, 11, 31): source -7, destination -8"),
        "{text}"
    );
    assert!(
        text.contains(
            "sign (-6, 12, -70) face 1: source \"changed, \\\"again\\\"\", destination \"changed, \\\"agaim\\\"\""
        ),
        "{text}"
    );
    source.close().await.expect("close");
    dest.close().await.expect("close");
}

macro_rules! pairs {
    ($($name:ident: $from:literal -> $to:literal,)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            pair($from, $to).await;
        }
    )*};
}

pairs! {
    sqlite_to_postgres: "sqlite" -> "postgres",
    sqlite_to_dynamodb: "sqlite" -> "dynamodb",
    sqlite_to_dataapi: "sqlite" -> "dataapi",
    postgres_to_sqlite: "postgres" -> "sqlite",
    postgres_to_dynamodb: "postgres" -> "dynamodb",
    postgres_to_dataapi: "postgres" -> "dataapi",
    dynamodb_to_sqlite: "dynamodb" -> "sqlite",
    dynamodb_to_postgres: "dynamodb" -> "postgres",
    dynamodb_to_dataapi: "dynamodb" -> "dataapi",
    dataapi_to_sqlite: "dataapi" -> "sqlite",
    dataapi_to_postgres: "dataapi" -> "postgres",
    dataapi_to_dynamodb: "dataapi" -> "dynamodb",
    memory_to_sqlite: "memory" -> "sqlite",
    sqlite_to_memory: "sqlite" -> "memory",
}

// --- the binary ------------------------------------------------------------

use support::process::run as craft_server;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A private copy of the original server's world file.
fn reference_world(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("craft.db");
    std::fs::copy(fixtures().join("craft-reference.db"), &path).expect("copy the fixture");
    format!("sqlite:{}", path.display())
}

/// `import --verify` of the original craft.db into `to`, through the
/// binary.
fn fixture_into(to: &str) {
    let Some(to) = fresh_url(to) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let from = reference_world(&dir);
    let out = craft_server(&[
        "import",
        "--from",
        &from,
        "--to",
        &to,
        "--verify",
        "--progress",
        "lines",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("imported 51 chunks: 1670 blocks, 80 lights, 60 signs"),
        "{stdout}"
    );
    assert!(stdout.contains("verified: 51 chunks identical"), "{stdout}");
    assert!(
        stderr.contains("copy: 51/51 chunks (100%)") && stderr.contains("ETA"),
        "{stderr}"
    );
}

#[test]
fn original_world_into_sqlite() {
    fixture_into("sqlite");
}

#[test]
fn original_world_into_postgres() {
    fixture_into("postgres");
}

#[test]
fn original_world_into_dynamodb() {
    fixture_into("dynamodb");
}

#[test]
fn original_world_into_dataapi() {
    fixture_into("dataapi");
}

#[tokio::test]
async fn verify_reports_a_changed_block_and_sign_and_exits_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = reference_world(&dir);
    let to = format!("sqlite:{}", dir.path().join("copy.db").display());
    let out = craft_server(&["import", "--from", &from, "--to", &to]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = craft_server(&["verify", "--from", &from, "--to", &to]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("verified: 51 chunks identical"));

    // Change one block value and one sign's text in the copy.
    let copy = Endpoint::open(&StoreUrl(to.clone())).await.expect("open");
    let chunks = copy.store.list_chunks().await.expect("list");
    let mut block = None;
    let mut signed = None;
    for head in &chunks {
        let data = copy.store.load_chunk(head.chunk, 0).await.expect("load");
        if block.is_none() {
            block = data
                .blocks
                .iter()
                .find(|b| b.w > 0)
                .map(|b| (head.chunk, b.clone()));
        }
        if signed.is_none() {
            signed = data.signs.first().map(|s| (head.chunk, s.clone()));
        }
    }
    let (block_chunk, block) = block.expect("a block");
    let (sign_chunk, sign) = signed.expect("a sign");
    let mut damage = Batch::new();
    let other = if block.w == 1 { 2 } else { 1 };
    damage.set_block(block_chunk, block.pos, other, ChangeMeta::default());
    damage.set_sign(
        sign_chunk,
        sign.pos,
        sign.face,
        "tampered, \"é\"",
        ChangeMeta::default(),
    );
    copy.store.apply(&damage).await.expect("damage");
    copy.close().await.expect("close");

    let out = craft_server(&["verify", "--from", &from, "--to", &to]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("DIFFERENT:"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "block {}: source {}, destination {other}",
            block.pos, block.w
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "sign {} face {}: source {:?}, destination \"tampered, \\\"é\\\"\"",
            sign.pos, sign.face, sign.text
        )),
        "{stdout}"
    );
    assert!(stderr.contains("the stores differ"), "{stderr}");

    // `import --verify` into a store that already holds something else
    // fails the same way.
    let mut stray = Batch::new();
    stray.set_block(
        ChunkPos::new(-40, 9),
        BlockPos::new(-1270, 5, 300),
        4,
        ChangeMeta::default(),
    );
    let other_url = format!("sqlite:{}", dir.path().join("other.db").display());
    let other = Endpoint::open(&StoreUrl(other_url.clone()))
        .await
        .expect("open");
    other.store.apply(&stray).await.expect("write");
    other.close().await.expect("close");
    let out = craft_server(&["import", "--from", &from, "--to", &other_url, "--verify"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("block (-1270, 5, 300): source absent, destination 4"),
        "{stdout}"
    );
}

/// Luanti's failure: a migration that produced a blank world. Counted
/// and reported, the report bounded.
#[test]
fn a_blank_destination_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = reference_world(&dir);
    let blank = format!("sqlite:{}", dir.path().join("blank.db").display());
    let out = craft_server(&["verify", "--from", &from, "--to", &blank]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("DIFFERENT: 51 of 51 chunks differ (1810 values)"),
        "{stdout}"
    );
    assert!(stdout.contains("destination sqlite:"), "{stdout}");
    assert!(
        stdout.contains(": 0 chunks, 0 blocks, 0 lights, 0 signs"),
        "{stdout}"
    );
    assert!(stdout.contains("... and 1 more chunks"), "{stdout}");
    assert!(stdout.lines().count() < 51 * 12 + 10, "{stdout}");
}

// --- online ----------------------------------------------------------------

/// The binary running `import --online`, its output collected.
struct Child {
    child: std::process::Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Child {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_craft-server"))
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("CRAFT_CONFIG")
            .env_remove("CRAFT_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start craft-server");
        let log = Arc::new(Mutex::new(Vec::new()));
        let streams: Vec<Box<dyn std::io::Read + Send>> = vec![
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for stream in streams {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().expect("log").push(line);
                }
            });
        }
        Self { child, log }
    }

    fn said(&self, what: &str) -> usize {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.contains(what))
            .count()
    }

    fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    async fn until_exited(&self, what: &str, cond: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond(self) {
            assert!(Instant::now() < deadline, "never {what}:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn until(&mut self, what: &str, cond: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited ({status}) before {what}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "never {what}:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Writes to `store` until `stop`: overwrites, removals (which delete
/// signs and zero lights), sign edits and deletions over 40 positions on
/// both sides of 0 and on chunk edges, and now and then in a new chunk far
/// away.
async fn writer(store: Arc<dyn BlockStore>, stop: Arc<AtomicBool>, done: Arc<AtomicUsize>) {
    let mut i: i32 = 0;
    while !stop.load(Ordering::SeqCst) {
        let mut batch = Batch::new();
        let x = (i % 8) * 31 - 124;
        let z = (i / 8 % 5) * 33 - 66;
        let pos = BlockPos::new(x, 20 + i % 50, z);
        match i % 5 {
            0 => {
                edit(&mut batch, pos, 1 + i % 60);
                sign(&mut batch, pos, i % 8, &format!("{AWKWARD} {i}"));
                light(&mut batch, pos, i % 16);
            }
            1 => edit(&mut batch, pos, 0),
            2 => sign(&mut batch, BlockPos::new(x, 20, z), 0, ""),
            4 if i % 25 == 4 => {
                // One of 8 chunks nobody wrote before (the copy must find
                // them by listing).
                let far = BlockPos::new(100_000 + (i / 25 % 8) * 32, 30, -100_000);
                edit(&mut batch, far, 4);
                sign(&mut batch, far, 3, &format!("new chunk {i}"));
            }
            _ => edit(&mut batch, BlockPos::new(x + 1, 21, z), 9),
        }
        store.apply(&batch).await.expect("writer");
        done.fetch_add(1, Ordering::SeqCst);
        i += 1;
        // Paced like a few busy players: the emulated stores are slow, and
        // a flood would only make the rounds longer.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An online copy while a writer keeps changing the source: it catches
/// up, and once the writer stops and the copy is told to finish, the
/// stores are verified equal (by the copy and again here).
async fn online_with_writer(from: &str, to: &str) {
    let Some((from_url, source)) = endpoint(from).await else {
        return;
    };
    let Some(to_url) = fresh_url(to) else {
        return;
    };
    build(&*source.store, &sample_world()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let writing = tokio::spawn(writer(source.store.clone(), stop.clone(), done.clone()));
    // Some writes land before the copy starts.
    let started = Instant::now();
    while done.load(Ordering::SeqCst) < 20 {
        assert!(started.elapsed() < WAIT, "the writer is stuck");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut import = Child::start(&[
        "import",
        "--from",
        &from_url,
        "--to",
        &to_url,
        "--online",
        "--follow",
        "--verify",
        "--interval",
        "50ms",
        "--progress",
        "lines",
        "--concurrency",
        "4",
    ]);
    import
        .until("finished the first copy", |c| {
            c.said("copied; catching up with the source") > 0
        })
        .await;
    let after_copy = done.load(Ordering::SeqCst);
    // Caught up with writes made after the copy, more than once.
    import
        .until("caught up with the writer", |c| {
            c.said("caught up with changed chunks") >= 2
                && done.load(Ordering::SeqCst) >= after_copy + 30
        })
        .await;
    stop.store(true, Ordering::SeqCst);
    writing.await.expect("writer task");
    let status = Command::new("kill")
        .args(["-INT", &import.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = import.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running:\n{}",
            import.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}:\n{}", import.log());
    // The output threads may still be reading the last lines.
    import
        .until_exited("printed the report", |c| c.said("verified: ") > 0)
        .await;
    let log = import.log();
    assert!(log.contains("told to stop"), "{log}");

    let dest = Endpoint::open(&StoreUrl(to_url)).await.expect("open");
    let report = migrate::verify::verify(&source, &dest, &quiet())
        .await
        .expect("compare");
    assert!(report.is_same(), "{report}");
    assert!(report.source_totals.signs > 9, "{report}");
    source.close().await.expect("close");
    dest.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_copy_postgres_to_dynamodb_with_a_writer() {
    online_with_writer("postgres", "dynamodb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_copy_sqlite_to_dataapi_with_a_writer() {
    online_with_writer("sqlite", "dataapi").await;
}

/// Without `--follow`, an online copy of a quiet source ends by itself.
#[tokio::test]
async fn online_copy_of_a_quiet_world_ends_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = reference_world(&dir);
    let to = format!("sqlite:{}", dir.path().join("copy.db").display());
    let out = craft_server(&[
        "import", "--from", &from, "--to", &to, "--online", "--verify",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("caught up with the source in 0 rounds"),
        "{stdout}"
    );
    assert!(stdout.contains("verified: 51 chunks identical"), "{stdout}");
}
