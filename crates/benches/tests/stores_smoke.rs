//! Smoke test of `craft-bench stores`: a tiny run on every store the test
//! services provide (memory and SQLite always; PostgreSQL, DynamoDB on moto
//! and the Data API on dataapi-local when `scripts/test.sh` started them;
//! with `CRAFT_TEST_REQUIRE_SERVICES` set, each must be there), with both
//! baselines, then `scripts/bench_report.py` over the result.
//! Checks that every phase completes and counts what it should; never
//! timing.

use std::time::Duration;

use benches::stores::{self, StoresConfig, StoresReport};
use craft_server::config::StoreUrl;

const POSTGRES: &str = "CRAFT_TEST_POSTGRES_URL";
const DYNAMODB: &str = "CRAFT_TEST_DYNAMODB_ENDPOINT";
const DATAAPI: &str = "CRAFT_TEST_DATAAPI_ENDPOINT";
/// The service variables `scripts/test.sh` sets for this test.
const SERVICES: [&str; 3] = [POSTGRES, DYNAMODB, DATAAPI];

/// Reads a test service's address from `var`, exactly like
/// `world_core::conformance::test_service`: missing, the backend is skipped
/// (`None`), unless `CRAFT_TEST_REQUIRE_SERVICES` is set, in which case the
/// test fails: the test command must never skip a backend silently.
///
/// A copy, because the `conformance` feature as a dev-dependency here would
/// give world-core (and every crate built on it) a second release build in
/// `scripts/bench.sh`: `cargo bench` turns dev-dependency features on,
/// `cargo build` does not.
fn test_service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("CRAFT_TEST_REQUIRE_SERVICES").is_some() => {
            panic!(
                "{var} is not set but CRAFT_TEST_REQUIRE_SERVICES is: start the services with scripts/test.sh"
            )
        }
        _ => {
            eprintln!("skipping: {var} is not set (scripts/test.sh sets it)");
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

fn store_urls(dir: &std::path::Path) -> Vec<(String, StoreUrl)> {
    let mut urls = vec![
        ("memory".to_owned(), "memory:".to_owned()),
        (
            "sqlite".to_owned(),
            format!("sqlite:{}", dir.join("world.db").display()),
        ),
    ];
    if let Some(url) = test_service(POSTGRES) {
        let sep = if url.contains('?') { '&' } else { '?' };
        urls.push((
            "postgres".into(),
            format!("{url}{sep}schema={}", unique("bench_smoke")),
        ));
    }
    if let Some(endpoint) = test_service(DYNAMODB) {
        let table = unique("bench-smoke").replace('_', "-");
        urls.push((
            "dynamodb".into(),
            format!("dynamodb://{table}?region=us-east-1&endpoint={endpoint}&create=true"),
        ));
    }
    if let Some(endpoint) = test_service(DATAAPI) {
        urls.push((
            "dataapi".into(),
            format!(
                "dataapi://?resource_arn=arn:aws:rds:us-east-1:123456789012:cluster:local\
                 &secret_arn=arn:aws:secretsmanager:us-east-1:123456789012:secret:local\
                 &region=us-east-1&endpoint={endpoint}&schema={}\
                 &access_key_id=local&secret_access_key=local",
                unique("bench_smoke")
            ),
        ));
    }
    urls.into_iter()
        .map(|(label, url)| (label, StoreUrl(url)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_phase_runs_on_every_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = StoresConfig {
        stores: store_urls(dir.path()),
        import_edits: 2_500,
        import_budget: Duration::from_secs(60),
        import_limits: Default::default(),
        commit_interval: Duration::from_secs(1),
        sustain_budget: Duration::from_millis(1),
        max_rate: 2_000,
        load_sizes: vec![50, 300],
        load_samples: 2,
        load_budget: Duration::from_secs(5),
        sync_samples: 2,
        pg_baseline: test_service(POSTGRES),
        sqlite_baseline: Some(dir.path().to_owned()),
    };
    let wanted = config.stores.len();
    let report: StoresReport = stores::run(config).await.expect("stores run");
    assert_eq!(report.stores.len(), wanted);
    for s in &report.stores {
        assert_eq!(s.import.edits, 2_500, "{}", s.label);
        assert!(s.sustain.edits >= 1_000, "{}: {:?}", s.label, s.sustain);
        assert_eq!(s.loads.len(), 2);
        assert_eq!(s.loads[1].changes, 300);
        assert_eq!(s.sync.held, 3, "{}", s.label);
        if s.backend != "memory" {
            // Real backends count their requests: fewer than one per
            // edit (these edits spread over 100 chunks, 10 each: DynamoDB
            // pays two key-counter updates per chunk on top of its
            // 25-item batches).
            let requests = s.sustain.per_1000.0["store_requests_total"];
            assert!(
                requests > 0.0 && requests < 500.0,
                "{}: {requests} requests per 1,000 edits",
                s.label
            );
        }
    }
    assert!(report.baselines.iter().any(|b| b.name == "sqlite-insert"));
    assert!(
        report.baselines.iter().all(|b| b.import_rows == 2_500),
        "{:?}",
        report.baselines
    );

    // The report script turns the JSON line into BENCHMARKS.md sections.
    let results = dir.path().join("results.jsonl");
    std::fs::write(
        &results,
        serde_json::to_string(&report).expect("json") + "\n",
    )
    .expect("write results");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/bench_report.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg("--results")
        .arg(&results)
        .output()
        .expect("run python3 scripts/bench_report.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench_report.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for section in [
        "## Stores",
        "### Chunk loads",
        "### Incremental sync",
        "sqlite-insert",
    ] {
        assert!(stdout.contains(section), "{section} missing:\n{stdout}");
    }
}

/// With `CRAFT_TEST_REQUIRE_SERVICES` set, a missing service fails the
/// smoke test instead of leaving its store out (run in a child process:
/// the environment is per process).
#[test]
fn missing_services_fail_when_required() {
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"));
    child
        .args(["--exact", "every_phase_runs_on_every_store", "--nocapture"])
        .env("CRAFT_TEST_REQUIRE_SERVICES", "1");
    for var in SERVICES {
        child.env_remove(var);
    }
    let output = child.output().expect("run the smoke test");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "passed without its services: {stdout}{stderr}"
    );
    assert!(
        stderr.contains("CRAFT_TEST_POSTGRES_URL is not set but CRAFT_TEST_REQUIRE_SERVICES is"),
        "{stdout}{stderr}"
    );
}
