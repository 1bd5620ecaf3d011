//! TLS against a PostgreSQL cluster of the test's own with `ssl = on` and
//! a self-signed certificate for `localhost` made here (the shared test
//! server may not have TLS; a private cluster always does).

mod common;

use std::path::Path;

use common::cluster::Cluster;
use store_postgres::PostgresStore;
use world_core::{BlockStore, StoreError};

/// Writes a self-signed certificate for `localhost` and its key into
/// `dir`; the server settings that use them.
fn with_certificate(dir: &Path) -> Vec<String> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    std::fs::write(&cert, made.cert.pem()).expect("write the certificate");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write the key");
    // PostgreSQL refuses a key others may read.
    let owner_only = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(&key, owner_only).expect("key permissions");
    vec![
        "ssl=on".to_owned(),
        format!("ssl_cert_file={}", cert.display()),
        format!("ssl_key_file={}", key.display()),
    ]
}

/// Opens a store of one connection on `url` with the query parameters
/// `settings`; true when its connection uses TLS.
async fn open_and_check(
    url: &str,
    admin: &tokio_postgres::Client,
    settings: &[(&str, &str)],
) -> Result<bool, StoreError> {
    let schema = common::unique("tls");
    let mut all = vec![("pool_size", "1")];
    all.extend_from_slice(settings);
    let config = common::settings(url, &schema, &all);
    let result = PostgresStore::open(config).await;
    let outcome = match result {
        Ok(store) => {
            store.ping().await.expect("ping over the connection");
            let row = admin
                .query_one(
                    "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                     WHERE a.application_name = $1",
                    &[&schema],
                )
                .await
                .expect("pg_stat_ssl");
            store.close().await.expect("close");
            Ok(row.get::<_, Option<bool>>(0).unwrap_or(false))
        }
        Err(e) => Err(e),
    };
    common::drop_schema(url, &schema);
    outcome
}

/// `url` with its host replaced by `host`.
fn with_host(url: &str, host: &str) -> String {
    let mut url = url::Url::parse(url).expect("url");
    url.set_host(Some(host)).expect("host");
    url.into()
}

fn expect_certificate_error(what: &str, result: Result<bool, StoreError>, needle: &str) {
    match result {
        Err(StoreError::Config(message)) => {
            assert!(
                message.contains("certificate") && message.contains(needle),
                "{what}: {message}"
            );
            eprintln!("{what}: {message}");
        }
        other => panic!("{what}: expected a Config error about the certificate, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmodes_against_a_tls_server() {
    let Some(cluster) = tokio::task::spawn_blocking(|| Cluster::create_with(with_certificate))
        .await
        .expect("create cluster")
    else {
        return;
    };
    let url = cluster.url();
    let certificate = cluster.path().join("server.crt").display().to_string();
    let admin = common::admin(&url).await;

    // require: encrypted, certificate not checked.
    let encrypted = open_and_check(&url, &admin, &[("sslmode", "require")]).await;
    assert!(encrypted.expect("sslmode=require connects"));
    // prefer: encrypted when offered; disable: plain.
    assert!(
        open_and_check(&url, &admin, &[("sslmode", "prefer")])
            .await
            .expect("prefer")
    );
    assert!(
        !open_and_check(&url, &admin, &[("sslmode", "disable")])
            .await
            .expect("disable")
    );

    // verify-full with the public roots: a self-signed certificate fails,
    // with a message that says what to do.
    let result = open_and_check(&url, &admin, &[("sslmode", "verify-full")]).await;
    expect_certificate_error("verify-full, public roots", result, "sslrootcert");

    // Trusting the server's own certificate: verify-ca passes whatever the
    // host is called; verify-full needs the name in the certificate.
    let trusted = |mode| [("sslmode", mode), ("sslrootcert", certificate.as_str())];
    assert!(
        open_and_check(&url, &admin, &trusted("verify-ca"))
            .await
            .expect("verify-ca")
    );
    let result = open_and_check(
        &with_host(&url, "127.0.0.1"),
        &admin,
        &trusted("verify-full"),
    )
    .await;
    expect_certificate_error("verify-full, wrong name", result, "not valid for name");
    let by_name = open_and_check(
        &with_host(&url, "localhost"),
        &admin,
        &trusted("verify-full"),
    )
    .await;
    assert!(by_name.expect("verify-full with the right name and root"));

    // A root file that does not exist is a configuration error.
    let missing = [
        ("sslmode", "verify-full"),
        ("sslrootcert", "/nonexistent/root.pem"),
    ];
    assert!(matches!(
        open_and_check(&url, &admin, &missing).await,
        Err(StoreError::Config(_))
    ));
}
