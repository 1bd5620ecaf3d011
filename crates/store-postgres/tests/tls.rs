//! TLS against the local server, when it has `ssl = on` (Debian's default,
//! with the self-signed "snakeoil" certificate for `localhost`); skipped
//! when it does not.

mod common;

use store_postgres::{Config, ConfigBuilder, PostgresStore, SslMode};
use world_core::{BlockStore, StoreError};

/// The server's certificate file when TLS is on and the file is readable.
async fn server_certificate(admin: &tokio_postgres::Client) -> Option<String> {
    let ssl: String = admin
        .query_one("SHOW ssl", &[])
        .await
        .expect("SHOW ssl")
        .get(0);
    if ssl != "on" {
        eprintln!("skipping: the server has ssl = {ssl}");
        return None;
    }
    let file: String = admin
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .expect("SHOW ssl_cert_file")
        .get(0);
    if std::fs::metadata(&file).is_err() {
        eprintln!("skipping: cannot read the server certificate {file}");
        return None;
    }
    Some(file)
}

/// Opens a store with `settings`; true when its connections use TLS.
async fn open_and_check(
    url: &str,
    admin: &tokio_postgres::Client,
    settings: ConfigBuilder,
) -> Result<bool, StoreError> {
    let schema = common::unique("tls");
    let config: Config = settings
        .schema(&schema)
        .application_name(&schema)
        .build()
        .expect("config");
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

fn settings(url: &str, mode: SslMode) -> ConfigBuilder {
    Config::builder()
        .url(url)
        .sslmode(mode)
        .pool_size(1usize)
        .connect_timeout(std::time::Duration::from_secs(5))
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
async fn sslmodes_against_the_local_server() {
    let Some(url) = common::url() else {
        return;
    };
    let admin = common::admin(&url).await;
    let Some(certificate) = server_certificate(&admin).await else {
        return;
    };

    // require: encrypted, certificate not checked.
    let encrypted = open_and_check(&url, &admin, settings(&url, SslMode::Require)).await;
    assert!(encrypted.expect("sslmode=require connects"));
    // prefer: encrypted when offered; disable: plain.
    assert!(
        open_and_check(&url, &admin, settings(&url, SslMode::Prefer))
            .await
            .expect("prefer")
    );
    assert!(
        !open_and_check(&url, &admin, settings(&url, SslMode::Disable))
            .await
            .expect("disable")
    );

    // verify-full with the public roots: a self-signed certificate fails,
    // with a message that says what to do.
    let result = open_and_check(&url, &admin, settings(&url, SslMode::VerifyFull)).await;
    expect_certificate_error("verify-full, public roots", result, "sslrootcert");

    // Trusting the server's own certificate: verify-ca passes whatever the
    // host is called; verify-full needs the name in the certificate.
    let trusted = |mode| settings(&url, mode).sslrootcert(certificate.clone());
    assert!(
        open_and_check(&url, &admin, trusted(SslMode::VerifyCa))
            .await
            .expect("verify-ca")
    );
    let result = open_and_check(&url, &admin, trusted(SslMode::VerifyFull).host("127.0.0.1")).await;
    expect_certificate_error("verify-full, wrong name", result, "not valid for name");
    let by_name =
        open_and_check(&url, &admin, trusted(SslMode::VerifyFull).host("localhost")).await;
    assert!(by_name.expect("verify-full with the right name and root"));

    // A root file that does not exist is a configuration error.
    let missing = settings(&url, SslMode::VerifyFull).sslrootcert("/nonexistent/root.pem");
    assert!(matches!(
        open_and_check(&url, &admin, missing).await,
        Err(StoreError::Config(_))
    ));
}
