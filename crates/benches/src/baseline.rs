//! Raw baselines for `craft-bench stores`: the same rows written and read
//! the plainest way each database allows, in the same run, so that the
//! stores' figures can be read as ratios.
//!
//! - SQLite: the original Craft schema, `INSERT OR REPLACE` with a prepared
//!   statement, one transaction per batch, same pragmas as `store-sqlite`
//!   (WAL, `synchronous=FULL`); loads are one `SELECT` by chunk.
//! - PostgreSQL: `COPY` into a table equal to `store-postgres`'s `block`
//!   (same columns, primary key and storage parameters as of pg-sql's
//!   migration 4: no `(p, q, key)` index, `fillfactor = 50`), one `COPY`
//!   per batch; loads are one `SELECT` by chunk.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use serde::Serialize;
use world_core::coords::{BlockPos, ChunkPos};

use crate::stores::{IMPORT_BATCH, Quantiles, StoresConfig, load_chunk_of, load_rows, world_rows};

/// Loads of one chunk size.
#[derive(Clone, Debug, Serialize)]
pub struct BaselineLoad {
    /// Rows in the chunk.
    pub changes: usize,
    /// One `SELECT` of the chunk's rows.
    pub latency: Quantiles,
}

/// One baseline.
#[derive(Clone, Debug, Serialize)]
pub struct BaselineReport {
    /// `sqlite-insert` or `postgres-copy`.
    pub name: String,
    /// Rows written.
    pub import_rows: usize,
    /// Seconds.
    pub import_seconds: f64,
    /// Rows per second.
    pub import_rows_per_s: f64,
    /// Loads by size.
    pub loads: Vec<BaselineLoad>,
}

type Row = (ChunkPos, BlockPos, i32);

/// Every row the stores import, then the load chunks' rows (by size).
fn rows(config: &StoresConfig) -> (Vec<Row>, Vec<Vec<Row>>) {
    let world = world_rows(config.import_edits).collect();
    let loads = config
        .load_sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| load_rows(i, n).collect())
        .collect();
    (world, loads)
}

/// Plain SQLite inserts into a file under `dir`.
pub async fn sqlite(config: &StoresConfig, dir: &Path) -> Result<BaselineReport, String> {
    let config = config.clone();
    let path = dir.join(format!("baseline-{}.db", std::process::id()));
    let result = tokio::task::spawn_blocking(move || sqlite_blocking(&config, &path))
        .await
        .map_err(|e| e.to_string())?;
    result.map_err(|e| format!("SQLite baseline: {e}"))
}

fn sqlite_blocking(config: &StoresConfig, path: &Path) -> rusqlite::Result<BaselineReport> {
    let _ = std::fs::remove_file(path);
    let mut db = rusqlite::Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "wal")?;
    db.pragma_update(None, "synchronous", "full")?;
    db.execute_batch(
        "CREATE TABLE block (p INT NOT NULL, q INT NOT NULL, x INT NOT NULL, \
         y INT NOT NULL, z INT NOT NULL, w INT NOT NULL);
         CREATE UNIQUE INDEX block_pqxyz_idx ON block (p, q, x, y, z);",
    )?;
    let (world, loads) = rows(config);
    let insert = |db: &mut rusqlite::Connection, rows: &[Row]| -> rusqlite::Result<()> {
        for part in rows.chunks(IMPORT_BATCH) {
            let tx = db.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR REPLACE INTO block (p, q, x, y, z, w) VALUES (?, ?, ?, ?, ?, ?)",
                )?;
                for (c, b, w) in part {
                    stmt.execute((c.p, c.q, b.x, b.y, b.z, w))?;
                }
            }
            tx.commit()?;
        }
        Ok(())
    };
    let started = Instant::now();
    insert(&mut db, &world)?;
    let import_seconds = started.elapsed().as_secs_f64();
    let mut results = Vec::new();
    for (i, rows) in loads.iter().enumerate() {
        insert(&mut db, rows)?;
        let chunk = load_chunk_of(i);
        let mut stmt = db.prepare_cached("SELECT x, y, z, w FROM block WHERE p = ? AND q = ?")?;
        let mut samples = Vec::new();
        for n in 0..=config.load_samples {
            let started = Instant::now();
            let got = stmt
                .query_map((chunk.p, chunk.q), |r| {
                    Ok((
                        r.get::<_, i32>(0)?,
                        r.get::<_, i32>(1)?,
                        r.get::<_, i32>(2)?,
                        r.get::<_, i32>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // The first read warms the cache, as in the stores' runs.
            if n > 0 {
                samples.push(started.elapsed());
            }
            debug_assert_eq!(got.len(), rows.len());
        }
        results.push(BaselineLoad {
            changes: rows.len(),
            latency: Quantiles::of(&samples),
        });
    }
    drop(db);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(BaselineReport {
        name: "sqlite-insert".into(),
        import_rows: world.len(),
        import_seconds,
        import_rows_per_s: world.len() as f64 / import_seconds.max(1e-9),
        loads: results,
    })
}

/// `COPY` into a fresh schema of the PostgreSQL database `url`.
pub async fn postgres(config: &StoresConfig, url: &str) -> Result<BaselineReport, String> {
    let err = |e: tokio_postgres::Error| format!("PostgreSQL baseline: {e}");
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(err)?;
    let driver = tokio::spawn(connection);
    let schema = format!("craft_bench_copy_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE;
             CREATE SCHEMA {schema};
             CREATE TABLE {schema}.block (
                 p bigint NOT NULL, q bigint NOT NULL,
                 x bigint NOT NULL, y bigint NOT NULL, z bigint NOT NULL,
                 w integer NOT NULL, key bigint NOT NULL, user_id text,
                 updated_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (p, q, x, y, z)) WITH (fillfactor = 50);"
        ))
        .await
        .map_err(err)?;
    let (world, loads) = rows(config);
    let copy = format!("COPY {schema}.block (p, q, x, y, z, w, key) FROM STDIN");
    let mut key = 0u64;
    let mut write = async |rows: &[Row]| -> Result<(), tokio_postgres::Error> {
        for part in rows.chunks(IMPORT_BATCH) {
            let mut text = String::with_capacity(part.len() * 40);
            for (c, b, w) in part {
                key += 1;
                text.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{w}\t{key}\n",
                    c.p, c.q, b.x, b.y, b.z
                ));
            }
            let sink = client.copy_in(copy.as_str()).await?;
            futures::pin_mut!(sink);
            sink.send(Bytes::from(text)).await?;
            sink.finish().await?;
        }
        Ok(())
    };
    let started = Instant::now();
    write(&world).await.map_err(err)?;
    let import_seconds = started.elapsed().as_secs_f64();
    let mut results = Vec::new();
    for rows in &loads {
        write(rows).await.map_err(err)?;
    }
    let select = client
        .prepare(&format!(
            "SELECT x, y, z, w, key FROM {schema}.block WHERE p = $1 AND q = $2"
        ))
        .await
        .map_err(err)?;
    for (i, rows) in loads.iter().enumerate() {
        let chunk = load_chunk_of(i);
        let (p, q) = (i64::from(chunk.p), i64::from(chunk.q));
        let mut samples: Vec<Duration> = Vec::new();
        for n in 0..=config.load_samples {
            let started = Instant::now();
            let got = client.query(&select, &[&p, &q]).await.map_err(err)?;
            if n > 0 {
                samples.push(started.elapsed());
            }
            if got.len() != rows.len() {
                return Err(format!(
                    "PostgreSQL baseline: {} rows in {chunk}, wrote {}",
                    got.len(),
                    rows.len()
                ));
            }
        }
        results.push(BaselineLoad {
            changes: rows.len(),
            latency: Quantiles::of(&samples),
        });
    }
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .map_err(err)?;
    drop(client);
    let _ = driver.await;
    Ok(BaselineReport {
        name: "postgres-copy".into(),
        import_rows: world.len(),
        import_seconds,
        import_rows_per_s: world.len() as f64 / import_seconds.max(1e-9),
        loads: results,
    })
}
