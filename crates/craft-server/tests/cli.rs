//! The command line: `--help`, `config`, `import`, clear errors.

mod support;

use support::fixtures;

use support::process::run as craft_server;

#[test]
fn help_documents_the_settings() {
    let out = craft_server(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--listen",
        "--store",
        "--commit-interval",
        "--max-players",
        "--spawn",
        "--day-length",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

#[test]
fn config_prints_the_effective_settings_without_secrets() {
    let out = craft_server(&[
        "--store",
        "postgres://craft:hunter2@db/world",
        "--max-players",
        "7",
        "config",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("max_players = 7"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn config_never_prints_the_admin_token() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("craft.toml");
    std::fs::write(
        &file,
        "[admin]\ntoken = \"correct-horse-battery-staple\"\ntile_renders = 2\n",
    )
    .expect("write");
    let out = craft_server(&["--config", file.to_str().expect("path"), "config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tile_renders = 2"), "{text}");
    assert!(text.contains("token = \"***\""), "{text}");
    assert!(!text.contains("correct-horse"), "{text}");
}

#[test]
fn bad_settings_are_clear_errors() {
    let out = craft_server(&["--store", "mongodb://x", "config"]);
    assert!(out.status.success(), "config does not open the store");
    let out = craft_server(&["--store", "mongodb://x", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown store scheme"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "commit_interval = \"soon\"\n").expect("write");
    let out = craft_server(&["--config", file.to_str().expect("utf-8"), "config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("commit_interval") || err.contains("invalid config file"),
        "{err}"
    );
}

#[test]
fn import_copies_an_original_world() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("craft.db");
    std::fs::copy(fixtures().join("craft-reference.db"), &source).expect("copy");
    let target = dir.path().join("copy.db");
    let from = format!("sqlite:{}", source.display());
    let to = format!("sqlite:{}", target.display());
    let out = craft_server(&["import", "--from", &from, "--to", &to]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("imported 51 chunks: 1670 blocks, 80 lights, 60 signs"),
        "{said}"
    );
}

/// Store URLs whose secret the URL parser would misplace (an unencoded
/// `#`, `/` or `?` in a password) or that a backend might repeat.
const LEAKY_URLS: &[&str] = &[
    "postgres://craft:p#s3cret@db/w",
    "postgres://craft:12#s3cret@db/w",
    "postgres://craft:1/s3cret@db/w",
    "postgres://craft:p?s3cret@db/w",
    "sqlite://craft:s3cret@example.com/craft.db",
    "dynamodb://key:s3cret@table?region=us-east-1",
    "dynamodb://key:s3cret#@table",
    "dataapi://craft:s3cret@world?resource_arn=arn:aws:rds:us-east-1:123456789012:cluster:c&secret_arn=arn:aws:secretsmanager:us-east-1:123456789012:secret:s&region=us-east-1",
];

#[test]
fn config_never_prints_a_misplaced_password() {
    for url in LEAKY_URLS {
        let out = craft_server(&["--store", url, "config"]);
        assert!(out.status.success(), "{url}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("s3cret"), "{url}: {text}");
        assert!(text.contains("store = \""), "{text}");
    }
}

#[test]
fn start_up_errors_never_show_a_misplaced_password() {
    for url in LEAKY_URLS {
        let out = craft_server(&["--store", url, "--listen", "127.0.0.1:0"]);
        assert!(!out.status.success(), "{url} opened");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("s3cret"), "{url}: {err}");
        assert!(
            err.contains("<redacted>") || err.contains("***"),
            "{url}: {err}"
        );
    }
}

#[tokio::test]
async fn store_open_errors_never_show_a_misplaced_password() {
    for url in LEAKY_URLS {
        let url = craft_server::config::StoreUrl((*url).to_owned());
        let Err(e) = craft_server::stores::open(&url).await else {
            panic!("{url} opened");
        };
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
