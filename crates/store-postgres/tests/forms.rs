//! The statement forms the Data API backend will use (per-row `VALUES`,
//! one `JSON` document) run on a real server and leave exactly the rows the
//! `unnest` form of this store leaves: one set of statements, three ways of
//! feeding them.

mod common;

use std::sync::Arc;

use pg_sql::{Form, JSON_ROWS_PARAM, Rows, Sql, Statements, Step, Value, WritePlan, held_rows};
use store_postgres::PostgresStore;
use tokio_postgres::types::ToSql;
use world_core::coords::ChunkPos;
use world_core::store::{Batch, ChangeMeta, ChunkHead};
use world_core::{BlockPos, BlockStore};

fn meta(user: Option<&str>) -> ChangeMeta {
    ChangeMeta {
        user: user.map(Arc::from),
        time_ms: Some(1_764_000_000_123),
    }
}

fn batches() -> Vec<Batch> {
    let a = ChunkPos::new(0, 0);
    let b = ChunkPos::new(-1, 0);
    let mut first = Batch::new();
    for i in 0..40 {
        first.set_block(
            a,
            BlockPos::new(i % 32, 1 + i / 32, 3),
            1 + i % 5,
            meta(Some("ann")),
        );
    }
    first.set_block(b, BlockPos::new(0, 4, 3), -2, meta(None));
    first.set_light(a, BlockPos::new(1, 1, 3), 12, meta(Some("ann")));
    first.set_light(a, BlockPos::new(2, 1, 3), 9, meta(Some("ann")));
    first.set_sign(
        a,
        BlockPos::new(3, 1, 3),
        0,
        "a, 'quoted' \"sign\" é",
        meta(Some("ann")),
    );
    first.set_sign(a, BlockPos::new(1, 1, 3), 1, "cleared", meta(None));
    first.set_sign(a, BlockPos::new(1, 1, 3), 4, ":name $1 ?", meta(None));
    first.set_sign(a, BlockPos::new(2, 1, 3), 2, "kept", meta(None));
    let mut second = Batch::new();
    second.set_block(a, BlockPos::new(1, 1, 3), 0, meta(Some("bob")));
    second.clear_decor(a, BlockPos::new(1, 1, 3));
    second.set_block(a, BlockPos::new(5, 9, 3), 7, meta(Some("bob")));
    second.set_sign(a, BlockPos::new(2, 1, 3), 2, "", meta(None));
    second.set_sign(a, BlockPos::new(2, 1, 3), 3, "new", meta(None));
    second.set_light(
        ChunkPos::new(7, 7),
        BlockPos::new(230, 1, 230),
        4,
        meta(None),
    );
    vec![first, second]
}

/// A scalar parameter for tokio-postgres.
fn scalar(value: Value<'_>) -> Box<dyn ToSql + Sync + Send + '_> {
    match value {
        Value::Int8(v) => Box::new(v),
        Value::Int4(v) => Box::new(v),
        Value::Float4(v) => Box::new(v),
        Value::Text(v) => Box::new(v),
        Value::Null(pg_sql::SqlType::Text) => Box::new(None::<&str>),
        Value::Null(pg_sql::SqlType::Int8) => Box::new(None::<i64>),
        Value::Null(pg_sql::SqlType::Int4) => Box::new(None::<i32>),
        Value::Null(pg_sql::SqlType::Float4) => Box::new(None::<f32>),
    }
}

/// Runs `sql` once per row, binding by name (a `BatchExecuteStatement`).
async fn per_row(client: &tokio_postgres::Transaction<'_>, sql: &Sql, rows: &Rows<'_>) {
    let positional = sql.positional();
    let statement = client
        .prepare(&positional.sql)
        .await
        .expect("prepare VALUES form");
    for i in 0..rows.len() {
        let values: Vec<(&str, Box<dyn ToSql + Sync + Send>)> =
            rows.row(i).map(|(n, v)| (n, scalar(v))).collect();
        let params: Vec<&(dyn ToSql + Sync)> = positional
            .params
            .iter()
            .map(|name| {
                let (_, v) = values
                    .iter()
                    .find(|(n, _)| n == name)
                    .expect("a value per parameter");
                v.as_ref() as &(dyn ToSql + Sync)
            })
            .collect();
        client
            .execute(&statement, &params)
            .await
            .expect("VALUES form");
    }
}

/// Runs `sql` once with every row as one JSON document.
async fn as_json(
    client: &tokio_postgres::Transaction<'_>,
    sql: &Sql,
    rows: &Rows<'_>,
) -> Vec<tokio_postgres::Row> {
    let positional = sql.positional();
    assert_eq!(positional.params, [JSON_ROWS_PARAM]);
    client
        .query(&positional.sql, &[&rows.to_json()])
        .await
        .expect("JSON form")
}

/// Applies `batch` the way a Data API backend would: heads in JSON form,
/// then each step per row or in JSON.
async fn apply_like_dataapi(
    client: &mut tokio_postgres::Client,
    sql: &Statements,
    batch: &Batch,
    json: bool,
) {
    let plan = WritePlan::new(batch);
    let tx = client.transaction().await.expect("begin");
    for (step, rows) in plan.steps() {
        if step == Step::AdvanceHeads {
            let heads = as_json(&tx, sql.advance_heads.form(Form::Json), rows).await;
            let returned: Vec<(i64, i64, i64)> = heads
                .iter()
                .map(|r| (r.get(0), r.get(1), i64::from(r.get::<_, i32>(2))))
                .collect();
            plan.receipt(&returned).expect("a head per chunk");
            continue;
        }
        let statements: Vec<&pg_sql::RowSql> = if step == Step::UpsertBlocks && !json {
            vec![&sql.upsert_blocks]
        } else {
            sql.step(step).iter().collect()
        };
        for statement in statements {
            if json {
                as_json(&tx, statement.form(Form::Json), rows).await;
            } else {
                per_row(&tx, statement.form(Form::Values), rows).await;
            }
        }
    }
    tx.commit().await.expect("commit");
}

async fn contents(client: &tokio_postgres::Client, schema: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (table, columns) in [
        ("chunk", "p, q, key"),
        ("block", "p, q, x, y, z, w, key, user_id, updated_at"),
        ("light", "p, q, x, y, z, w, key, user_id"),
        (
            "sign",
            "p, q, x, y, z, face, text, key, user_id, updated_at",
        ),
    ] {
        let rows = client
            .query(
                &format!("SELECT ({columns})::text FROM \"{schema}\".{table} ORDER BY 1"),
                &[],
            )
            .await
            .expect("contents");
        out.extend(
            rows.iter()
                .map(|r| format!("{table} {}", r.get::<_, String>(0))),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_writes_the_same_rows() {
    let Some(reference) = common::fresh("forms_unnest").await else {
        return;
    };
    for batch in batches() {
        reference.apply(&batch).await.expect("apply");
    }
    let mut admin = common::admin(&reference.url).await;
    let expected = contents(&admin, &reference.schema).await;
    assert!(
        expected
            .iter()
            .any(|r| r.starts_with("sign") && r.contains("quoted"))
    );
    assert!(
        expected.iter().any(|r| r.contains(":00.123")),
        "{expected:?}"
    );

    for json in [false, true] {
        let schema = common::unique(if json { "forms_json" } else { "forms_values" });
        let config = common::settings(&reference.url, &schema, &[]);
        let migrated = PostgresStore::open(config).await.expect("migrate");
        let sql = migrated.statements().clone();
        for batch in batches() {
            apply_like_dataapi(&mut admin, &sql, &batch, json).await;
        }
        let got = contents(&admin, &schema).await;
        assert_eq!(got, expected, "json = {json}");

        // changed_chunks in JSON form answers as the store does.
        let held = [
            ChunkHead {
                chunk: ChunkPos::new(0, 0),
                head: 0,
            },
            ChunkHead {
                chunk: ChunkPos::new(-1, 0),
                head: 1,
            },
            ChunkHead {
                chunk: ChunkPos::new(9, 9),
                head: 0,
            },
        ];
        let tx = admin.transaction().await.expect("begin");
        let rows = as_json(&tx, sql.changed_chunks.form(Form::Json), &held_rows(&held)).await;
        tx.commit().await.expect("commit");
        let from_json: Vec<(i64, i64, i64)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let from_store: Vec<(i64, i64, i64)> = migrated
            .changed_chunks(&held)
            .await
            .expect("changed_chunks")
            .iter()
            .map(|h| (h.chunk.p.into(), h.chunk.q.into(), h.head))
            .collect();
        assert_eq!(from_json, from_store);
        migrated.close().await.expect("close");
        common::drop_schema(&reference.url, &schema);
    }
}
