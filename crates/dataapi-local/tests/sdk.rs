//! dataapi-local driven by `aws-sdk-rdsdata` over the test PostgreSQL.

mod common;

use std::time::Duration;

use aws_sdk_rdsdata::error::ProvideErrorMetadata;
use aws_sdk_rdsdata::operation::batch_execute_statement::BatchExecuteStatementError;
use aws_sdk_rdsdata::operation::begin_transaction::BeginTransactionError;
use aws_sdk_rdsdata::operation::commit_transaction::CommitTransactionError;
use aws_sdk_rdsdata::operation::execute_statement::ExecuteStatementError;
use aws_sdk_rdsdata::primitives::Blob;
use aws_sdk_rdsdata::types::{
    ArrayValue, DecimalReturnType, Field, LongReturnType, RecordsFormatType, ResultSetOptions,
    SqlParameter, TypeHint,
};
use common::{Harness, harness, harness_with, hinted, param, string};
use dataapi_local::SchemaMode;

fn db_error(e: aws_sdk_rdsdata::error::SdkError<ExecuteStatementError>) -> ExecuteStatementError {
    e.into_service_error()
}

#[tokio::test]
async fn every_field_type_goes_in_and_comes_back() {
    let Some(h) = harness().await else { return };
    let t = h.t("types");
    h.exec(format!(
        "CREATE TABLE {t} (id int8 PRIMARY KEY, b bool, i2 int2, i4 int4, f4 float4, f8 float8, n numeric(12,3), \
         tx text, vc varchar(20), ch char(3), by bytea, d date, tm time, ts timestamp, tz timestamptz, u uuid, \
         j json, jb jsonb, nothing int4)"
    ))
    .send()
    .await
    .unwrap();
    let bytes: Vec<u8> = (0..=255u8).collect();
    h.exec(format!(
        "INSERT INTO {t} VALUES (:id, :b, :i2, :i4, :f4, :f8, :n, :tx, :vc, :ch, :by, :d, :tm, :ts, :tz, :u, :j, :jb, :nothing)"
    ))
    .parameters(param("id", Field::LongValue(i64::MAX)))
    .parameters(param("b", Field::BooleanValue(true)))
    .parameters(param("i2", Field::LongValue(-32768)))
    .parameters(param("i4", Field::LongValue(2_147_483_647)))
    .parameters(param("f4", Field::DoubleValue(1.5)))
    .parameters(param("f8", Field::DoubleValue(-2.25e-300)))
    .parameters(hinted("n", "123456789.125", TypeHint::Decimal))
    .parameters(param("tx", string("héllo, 世界 'quoted' \"double\" \\ back")))
    .parameters(param("vc", string("varchar")))
    .parameters(param("ch", string("ab")))
    .parameters(param("by", Field::BlobValue(Blob::new(bytes.clone()))))
    .parameters(hinted("d", "2024-02-29", TypeHint::Date))
    .parameters(hinted("tm", "13:14:15.5", TypeHint::Time))
    .parameters(hinted("ts", "2024-01-02 03:04:05.123", TypeHint::Timestamp))
    .parameters(hinted("tz", "2024-01-02 03:04:05", TypeHint::Timestamp))
    .parameters(hinted("u", "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c", TypeHint::Uuid))
    .parameters(hinted("j", r#"{"a": [1, 2]}"#, TypeHint::Json))
    .parameters(hinted("jb", r#"{"b": true}"#, TypeHint::Json))
    .parameters(param("nothing", Field::IsNull(true)))
    .send()
    .await
    .unwrap();

    let out = h.exec(format!("SELECT * FROM {t}")).send().await.unwrap();
    let row = &out.records()[0];
    let expected = vec![
        Field::LongValue(i64::MAX),
        Field::BooleanValue(true),
        Field::LongValue(-32768),
        Field::LongValue(2_147_483_647),
        Field::DoubleValue(1.5),
        Field::DoubleValue(-2.25e-300),
        string("123456789.125"),
        string("héllo, 世界 'quoted' \"double\" \\ back"),
        string("varchar"),
        string("ab "),
        Field::BlobValue(Blob::new(bytes)),
        string("2024-02-29"),
        string("13:14:15.5"),
        string("2024-01-02 03:04:05.123"),
        // timestamptz comes back in UTC; the session (like Aurora's) is UTC.
        string("2024-01-02 03:04:05"),
        string("6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c"),
        string(r#"{"a": [1, 2]}"#),
        string(r#"{"b": true}"#),
        Field::IsNull(true),
    ];
    assert_eq!(row, &expected);
    assert_eq!(out.number_of_records_updated(), 0);
    h.finish().await;
}

#[tokio::test]
async fn arrays_inet_enums_and_special_values_come_back() {
    let Some(h) = harness().await else { return };
    let mood = h.t("mood");
    h.exec(format!("CREATE TYPE {mood} AS ENUM ('sad', 'happy')"))
        .send()
        .await
        .unwrap();
    let out = h
        .exec(format!(
            "SELECT ARRAY[1, NULL, 3]::int4[] AS ints, ARRAY['a', NULL]::text[] AS texts, \
             ARRAY[1.5, NULL]::float8[] AS floats, ARRAY[true, false]::bool[] AS bools, \
             '{{}}'::int8[] AS empty, ARRAY[1.10, 2]::numeric[] AS decimals, ARRAY['2024-01-01']::date[] AS dates, \
             '10.1.2.3'::inet AS ip, '10.0.0.0/8'::cidr AS net, '::1'::inet AS ip6, 'happy'::{mood} AS m, \
             'NaN'::float8 AS nan, 'infinity'::timestamp AS forever, 1::oid AS o, B'1'::bit(1) AS bit"
        ))
        .send()
        .await
        .unwrap();
    let row = &out.records()[0];
    assert_eq!(
        row[0],
        Field::ArrayValue(ArrayValue::LongValues(vec![Some(1), None, Some(3)]))
    );
    assert_eq!(
        row[1],
        Field::ArrayValue(ArrayValue::StringValues(vec![Some("a".into()), None]))
    );
    assert_eq!(
        row[2],
        Field::ArrayValue(ArrayValue::DoubleValues(vec![Some(1.5), None]))
    );
    assert_eq!(
        row[3],
        Field::ArrayValue(ArrayValue::BooleanValues(vec![Some(true), Some(false)]))
    );
    assert_eq!(row[4], Field::ArrayValue(ArrayValue::LongValues(vec![])));
    assert_eq!(
        row[5],
        Field::ArrayValue(ArrayValue::StringValues(vec![
            Some("1.10".into()),
            Some("2".into())
        ]))
    );
    assert_eq!(
        row[6],
        Field::ArrayValue(ArrayValue::StringValues(vec![Some("2024-01-01".into())]))
    );
    assert_eq!(row[7], string("10.1.2.3"));
    assert_eq!(row[8], string("10.0.0.0/8"));
    assert_eq!(row[9], string("::1"));
    assert_eq!(row[10], string("happy"));
    assert!(matches!(row[11], Field::DoubleValue(d) if d.is_nan()));
    assert_eq!(row[12], string("infinity"));
    assert_eq!(row[13], Field::LongValue(1));
    assert_eq!(row[14], Field::BooleanValue(true));
    h.finish().await;
}

#[tokio::test]
async fn unsupported_types_and_multidimensional_arrays_are_refused() {
    let Some(h) = harness().await else { return };
    for sql in [
        "SELECT '1 day'::interval",
        "SELECT 1.5::money",
        "SELECT point(1, 2)",
        "SELECT ARRAY[[1, 2], [3, 4]]",
    ] {
        let error = db_error(h.exec(sql).send().await.unwrap_err());
        assert!(error.is_unsupported_result_exception(), "{sql}: {error:?}");
    }
    // The workaround the service documents: cast to text.
    let out = h
        .exec("SELECT '1 day'::interval::text")
        .send()
        .await
        .unwrap();
    assert_eq!(out.records()[0][0], string("1 day"));
    h.finish().await;
}

#[tokio::test]
async fn result_set_options_change_decimals_and_longs() {
    let Some(h) = harness().await else { return };
    let sql = "SELECT 42::int8 AS l, 7::int4 AS i, 12.50::numeric(5,2) AS d, 10::numeric AS whole, ARRAY[1,2]::int8[] AS a";
    let out = h.exec(sql).send().await.unwrap();
    assert_eq!(
        out.records()[0][..4],
        [
            Field::LongValue(42),
            Field::LongValue(7),
            string("12.50"),
            string("10")
        ]
    );
    let out = h
        .exec(sql)
        .result_set_options(
            ResultSetOptions::builder()
                .decimal_return_type(DecimalReturnType::DoubleOrLong)
                .long_return_type(LongReturnType::String)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.records()[0],
        vec![
            string("42"),
            string("7"),
            Field::DoubleValue(12.5),
            Field::LongValue(10),
            Field::ArrayValue(ArrayValue::StringValues(vec![
                Some("1".into()),
                Some("2".into())
            ])),
        ]
    );
    h.finish().await;
}

#[tokio::test]
async fn column_metadata_describes_the_columns() {
    let Some(h) = harness().await else { return };
    let t = h.t("meta");
    h.exec(format!("CREATE TABLE {t} (id serial PRIMARY KEY, name varchar(40) NOT NULL, price numeric(8,2), tags text[])"))
        .send()
        .await
        .unwrap();
    let out = h
        .exec(format!(
            "SELECT id, name, price, tags, 1 + 1 AS two FROM {t}"
        ))
        .include_result_metadata(true)
        .send()
        .await
        .unwrap();
    let meta = out.column_metadata();
    assert_eq!(meta.len(), 5);
    assert_eq!(meta[0].name(), Some("id"));
    assert_eq!(meta[0].type_name(), Some("serial"));
    assert_eq!(meta[0].r#type(), 4);
    assert!(meta[0].is_auto_increment());
    assert_eq!(meta[0].nullable(), 0);
    assert_eq!(meta[0].table_name(), Some("meta"));
    assert_eq!(meta[0].schema_name(), Some(h.schema.as_str()));
    assert_eq!(meta[1].type_name(), Some("varchar"));
    assert_eq!(meta[1].r#type(), 12);
    assert_eq!(meta[1].precision(), 40);
    assert!(meta[1].is_case_sensitive());
    assert_eq!(meta[2].type_name(), Some("numeric"));
    assert_eq!(meta[2].r#type(), 2);
    assert_eq!((meta[2].precision(), meta[2].scale()), (8, 2));
    assert_eq!(meta[2].nullable(), 1);
    assert!(meta[2].is_signed());
    assert_eq!(meta[3].type_name(), Some("_text"));
    assert_eq!(meta[3].r#type(), 2003);
    assert_eq!(meta[3].array_base_column_type(), 12);
    assert_eq!(meta[4].label(), Some("two"));
    assert_eq!(meta[4].nullable(), 2);
    assert_eq!(meta[4].table_name(), Some(""));
    assert!(out.records().is_empty());

    // Without includeResultMetadata there is none.
    let out = h.exec(format!("SELECT id FROM {t}")).send().await.unwrap();
    assert!(out.column_metadata().is_empty());
    h.finish().await;
}

#[tokio::test]
async fn json_format_returns_formatted_records_only() {
    let Some(h) = harness().await else { return };
    let out = h
        .exec("SELECT 17 AS a, 'x' AS b, NULL::text AS c, true AS d, '\\x0102'::bytea AS e, ARRAY[1,2] AS f, 1.5::numeric AS g, 2.5::float8 AS h")
        .format_records_as(RecordsFormatType::Json)
        .include_result_metadata(true)
        .send()
        .await
        .unwrap();
    assert!(out.records().is_empty());
    assert!(out.column_metadata().is_empty());
    let text = out.formatted_records().expect("formattedRecords");
    // Keys keep the column order.
    assert!(text.starts_with(r#"[{"a":17,"b":"x","c":null"#), "{text}");
    let parsed: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        parsed,
        serde_json::json!([{"a": 17, "b": "x", "c": null, "d": true, "e": "AQI=", "f": [1, 2], "g": "1.5", "h": 2.5}])
    );

    let error = db_error(
        h.exec("SELECT 1 AS x, 2 AS x")
            .format_records_as(RecordsFormatType::Json)
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_bad_request_exception(), "{error:?}");

    // JSON does not apply to a statement without a result set.
    let out = h
        .exec(format!("CREATE TABLE {} (a int)", h.t("j")))
        .format_records_as(RecordsFormatType::Json)
        .send()
        .await
        .unwrap();
    assert_eq!(out.formatted_records(), None);
    h.finish().await;
}

#[tokio::test]
async fn updates_report_counts_and_no_generated_fields() {
    let Some(h) = harness().await else { return };
    let t = h.t("counts");
    h.exec(format!("CREATE TABLE {t} (id serial PRIMARY KEY, v int)"))
        .send()
        .await
        .unwrap();
    let out = h
        .exec(format!(
            "INSERT INTO {t} (v) SELECT g FROM generate_series(1, 5) g"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(out.number_of_records_updated(), 5);
    assert!(out.generated_fields().is_empty());
    let out = h
        .exec(format!("UPDATE {t} SET v = v + 1 WHERE v > :min"))
        .parameters(param("min", Field::LongValue(2)))
        .send()
        .await
        .unwrap();
    assert_eq!(out.number_of_records_updated(), 3);
    // RETURNING gives rows (generated values for PostgreSQL come this way).
    let out = h
        .exec(format!("INSERT INTO {t} (v) VALUES (100) RETURNING id"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.records()[0][0], Field::LongValue(6));
    let out = h.exec(format!("DELETE FROM {t}")).send().await.unwrap();
    assert_eq!(out.number_of_records_updated(), 6);
    h.finish().await;
}

#[tokio::test]
async fn results_over_one_mebibyte_are_refused() {
    let Some(h) = harness().await else { return };
    // 17 rows of 60,000 bytes: 1,020,000 bytes, under 1 MiB.
    let out = h
        .exec("SELECT repeat('x', 60000) FROM generate_series(1, 17)")
        .send()
        .await
        .unwrap();
    assert_eq!(out.records().len(), 17);
    assert!(matches!(&out.records()[0][0], Field::StringValue(s) if s.len() == 60_000));
    let error = db_error(
        h.exec("SELECT repeat('x', 60000) FROM generate_series(1, 20)")
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_bad_request_exception(), "{error:?}");
    assert_eq!(
        error.message(),
        Some("Database response exceeded size limit")
    );
    // Inside a transaction, it ends the transaction.
    let id = h.begin().await;
    let error = db_error(
        h.exec("SELECT repeat('x', 60000) FROM generate_series(1, 20)")
            .transaction_id(&id)
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_bad_request_exception(), "{error:?}");
    let error = db_error(
        h.exec("SELECT 1")
            .transaction_id(&id)
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_transaction_not_found_exception(), "{error:?}");
    h.finish().await;
}

/// "The Data API size limit is 64 KB per row in the result set returned by
/// the database": a row of exactly 64 KiB comes back, one byte more is
/// refused whatever the rest of the answer, and ends a transaction like
/// an answer over 1 MiB.
#[tokio::test]
async fn result_rows_over_64_kib_are_refused() {
    let Some(h) = harness().await else { return };
    let out = h
        .exec("SELECT repeat('x', 32768), repeat('y', 32768)")
        .send()
        .await
        .unwrap();
    assert_eq!(out.records()[0].len(), 2);
    for sql in [
        "SELECT repeat('x', 65537)",
        "SELECT repeat('x', 32768), repeat('y', 32769)",
        "SELECT 1, repeat('x', 70000) FROM generate_series(1, 1)",
    ] {
        let error = db_error(h.exec(sql).send().await.unwrap_err());
        assert!(error.is_bad_request_exception(), "{sql}: {error:?}");
        let message = error.message().unwrap_or_default();
        assert!(
            message.starts_with("Packet for query is too large (")
                && message.ends_with(" > 65536)"),
            "{sql}: {message}"
        );
    }
    // Rows written are not limited: only what comes back.
    let big = h.t("big");
    h.exec(format!("CREATE TABLE {big} (t text)"))
        .send()
        .await
        .unwrap();
    h.exec(format!("INSERT INTO {big} SELECT repeat('x', 100000)"))
        .send()
        .await
        .unwrap();
    let out = h
        .exec(format!("SELECT length(t) FROM {big}"))
        .send()
        .await
        .unwrap();
    assert!(matches!(out.records()[0][0], Field::LongValue(100_000)));
    let id = h.begin().await;
    let error = db_error(
        h.exec(format!("SELECT t FROM {big}"))
            .transaction_id(&id)
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_bad_request_exception(), "{error:?}");
    let error = db_error(
        h.exec("SELECT 1")
            .transaction_id(&id)
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_transaction_not_found_exception(), "{error:?}");
    h.finish().await;
}

#[tokio::test]
async fn parameters_are_bound_never_spliced() {
    let Some(h) = harness().await else { return };
    let t = h.t("inject");
    h.exec(format!("CREATE TABLE {t} (id int PRIMARY KEY, s text)"))
        .send()
        .await
        .unwrap();
    let evil = format!("'); DROP TABLE {t}; --");
    h.exec(format!("INSERT INTO {t} VALUES (:id, :s)"))
        .parameters(param("id", Field::LongValue(1)))
        .parameters(param("s", string(&evil)))
        .send()
        .await
        .unwrap();
    let out = h
        .exec(format!("SELECT s, ':s', \":s\"::text, s::text, $$ :id $$ FROM (SELECT s, 'q' AS \":s\" FROM {t} WHERE id = :id) AS sub -- :nope"))
        .parameters(param("id", Field::LongValue(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.records()[0],
        vec![
            string(&evil),
            string(":s"),
            string("q"),
            string(&evil),
            string(" :id ")
        ]
    );
    assert_eq!(h.count("inject").await, 1);

    // A placeholder without a value, and array parameters, are refused.
    let error = db_error(h.exec("SELECT :missing").send().await.unwrap_err());
    assert!(error.is_bad_request_exception(), "{error:?}");
    let error = db_error(
        h.exec("SELECT :a")
            .parameters(param(
                "a",
                Field::ArrayValue(ArrayValue::LongValues(vec![Some(1)])),
            ))
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_bad_request_exception(), "{error:?}");
    assert_eq!(error.message(), Some("Array parameters are not supported."));
    h.finish().await;
}

#[tokio::test]
async fn strings_are_text_unless_hinted() {
    let Some(h) = harness().await else { return };
    let t = h.t("hints");
    h.exec(format!("CREATE TABLE {t} (u uuid, d date)"))
        .send()
        .await
        .unwrap();
    // As on AWS: a plain string is text, which PostgreSQL will not compare
    // with a uuid.
    let error = db_error(
        h.exec(format!("SELECT * FROM {t} WHERE u = :u"))
            .parameters(param("u", string("6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c")))
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_database_error_exception(), "{error:?}");
    assert!(
        error.message().unwrap_or_default().contains("uuid = text"),
        "{error:?}"
    );
    h.exec(format!("SELECT * FROM {t} WHERE u = :u AND d = :d"))
        .parameters(hinted(
            "u",
            "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c",
            TypeHint::Uuid,
        ))
        .parameters(hinted("d", "2024-01-01", TypeHint::Date))
        .send()
        .await
        .unwrap();
    // An explicit cast works without a hint.
    h.exec(format!("SELECT * FROM {t} WHERE u = :u::uuid"))
        .parameters(param("u", string("6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c")))
        .send()
        .await
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn batch_execute_runs_every_parameter_set_atomically() {
    let Some(h) = harness().await else { return };
    let t = h.t("batch");
    h.exec(format!(
        "CREATE TABLE {t} (id int8 PRIMARY KEY, name text, score float8)"
    ))
    .send()
    .await
    .unwrap();
    let sets: Vec<Vec<SqlParameter>> = (0..2000)
        .map(|i| {
            vec![
                param("id", Field::LongValue(i)),
                param(
                    "name",
                    if i % 7 == 0 {
                        Field::IsNull(true)
                    } else {
                        string(&format!("n{i}"))
                    },
                ),
                param("score", Field::DoubleValue(i as f64 / 2.0)),
            ]
        })
        .collect();
    let out = h
        .batch(format!(
            "INSERT INTO {t} (id, name, score) VALUES (:id, :name, :score)"
        ))
        .set_parameter_sets(Some(sets))
        .send()
        .await
        .unwrap();
    assert_eq!(out.update_results().len(), 2000);
    assert!(
        out.update_results()
            .iter()
            .all(|r| r.generated_fields().is_empty())
    );
    assert_eq!(h.count("batch").await, 2000);

    // A failing set fails the whole call and leaves nothing behind.
    let sets: Vec<Vec<SqlParameter>> = [5000, 5001, 3, 5002]
        .iter()
        .map(|&i| {
            vec![
                param("id", Field::LongValue(i)),
                param("name", string("x")),
                param("score", Field::DoubleValue(0.0)),
            ]
        })
        .collect();
    let error = h
        .batch(format!(
            "INSERT INTO {t} (id, name, score) VALUES (:id, :name, :score)"
        ))
        .set_parameter_sets(Some(sets))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(error, BatchExecuteStatementError::DatabaseErrorException(_)),
        "{error:?}"
    );
    assert!(
        error
            .message()
            .unwrap_or_default()
            .contains("SQLState: 23505"),
        "{error:?}"
    );
    assert_eq!(h.count("batch").await, 2000);
    h.finish().await;
}

#[tokio::test]
async fn transactions_commit_and_roll_back_in_isolation() {
    let Some(h) = harness().await else { return };
    let t = h.t("tx");
    h.exec(format!("CREATE TABLE {t} (id int PRIMARY KEY)"))
        .send()
        .await
        .unwrap();

    let id = h.begin().await;
    h.exec(format!("INSERT INTO {t} VALUES (1)"))
        .transaction_id(&id)
        .send()
        .await
        .unwrap();
    h.batch(format!("INSERT INTO {t} VALUES (:id)"))
        .parameter_sets(vec![param("id", Field::LongValue(2))])
        .parameter_sets(vec![param("id", Field::LongValue(3))])
        .transaction_id(&id)
        .send()
        .await
        .unwrap();
    // Inside the transaction the rows are there; outside, not yet.
    let inside = h
        .exec(format!("SELECT count(*) FROM {t}"))
        .transaction_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(inside.records()[0][0], Field::LongValue(3));
    assert_eq!(h.count("tx").await, 0);
    assert_eq!(h.commit(&id).await.unwrap(), "Transaction Committed");
    assert_eq!(h.count("tx").await, 3);

    let id = h.begin().await;
    h.exec(format!("DELETE FROM {t}"))
        .transaction_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(h.rollback(&id).await.unwrap(), "Rollback Complete");
    assert_eq!(h.count("tx").await, 3);
    h.finish().await;
}

#[tokio::test]
async fn unknown_ended_and_aborted_transactions_are_not_found() {
    let Some(h) = harness().await else { return };
    let t = h.t("gone");
    h.exec(format!("CREATE TABLE {t} (id int PRIMARY KEY)"))
        .send()
        .await
        .unwrap();

    let error = db_error(
        h.exec("SELECT 1")
            .transaction_id("no-such-transaction")
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_transaction_not_found_exception(), "{error:?}");

    let id = h.begin().await;
    h.commit(&id).await.unwrap();
    let error = db_error(
        h.exec("SELECT 1")
            .transaction_id(&id)
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_transaction_not_found_exception(), "{error:?}");
    assert!(
        error
            .message()
            .unwrap_or_default()
            .ends_with("One previous call resulted in a termination of your transaction.")
    );
    let error = h.commit(&id).await.unwrap_err().into_service_error();
    assert!(
        matches!(
            error,
            CommitTransactionError::TransactionNotFoundException(_)
        ),
        "{error:?}"
    );

    // A statement error aborts the transaction, and its work is rolled back.
    let id = h.begin().await;
    h.exec(format!("INSERT INTO {t} VALUES (1)"))
        .transaction_id(&id)
        .send()
        .await
        .unwrap();
    let error = db_error(
        h.exec(format!("INSERT INTO {t} VALUES (1)"))
            .transaction_id(&id)
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_database_error_exception(), "{error:?}");
    let error = db_error(
        h.exec("SELECT 1")
            .transaction_id(&id)
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_transaction_not_found_exception(), "{error:?}");
    assert!(
        error
            .message()
            .unwrap_or_default()
            .ends_with("Transaction has been aborted due to an error from a previous call.")
    );
    assert_eq!(h.count("gone").await, 0);
    h.finish().await;
}

#[tokio::test]
async fn idle_transactions_expire_and_roll_back() {
    let Some(h) = harness_with(|o| o.transaction_idle_timeout = Duration::from_secs(2)).await
    else {
        return;
    };
    let t = h.t("expire");
    h.exec(format!("CREATE TABLE {t} (id int PRIMARY KEY)"))
        .send()
        .await
        .unwrap();
    let id = h.begin().await;
    h.exec(format!("INSERT INTO {t} VALUES (1)"))
        .transaction_id(&id)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let error = db_error(
        h.exec("SELECT 1")
            .transaction_id(&id)
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_transaction_not_found_exception(), "{error:?}");
    assert!(
        error
            .message()
            .unwrap_or_default()
            .ends_with("Transaction may be expired.")
    );
    // Rolled back: the key is free again (no lock left behind either).
    h.exec(format!("INSERT INTO {t} VALUES (1)"))
        .send()
        .await
        .unwrap();
    assert_eq!(h.count("expire").await, 1);
    h.finish().await;
}

#[tokio::test]
async fn a_transaction_runs_one_call_at_a_time() {
    let Some(h) = harness().await else { return };
    let id = h.begin().await;
    // Unique text, so that no other run on the same server is mistaken for it.
    let sleep = format!("SELECT pg_sleep(2) AS {}", h.schema);
    let slow = h.exec(&sleep).transaction_id(&id).send();
    let pg = common::connect(&h.pg_url).await;
    let probe = async {
        // Wait until the first call is running in PostgreSQL.
        assert!(
            common::eventually(Duration::from_secs(10), || async {
                pg.query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE query = $1",
                    &[&sleep],
                )
                .await
                .map(|r| r.get::<_, i64>(0) > 0)
                .unwrap_or(false)
            })
            .await
        );
        h.exec("SELECT 1").transaction_id(&id).send().await
    };
    let (slow, second) = tokio::join!(slow, probe);
    slow.unwrap();
    let error = db_error(second.unwrap_err());
    assert!(error.is_database_error_exception(), "{error:?}");
    assert_eq!(
        error.message(),
        Some("Transaction is still running a query")
    );
    // The transaction is still usable afterwards.
    h.exec("SELECT 1").transaction_id(&id).send().await.unwrap();
    h.rollback(&id).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn statements_time_out() {
    let Some(h) = harness_with(|o| o.statement_timeout = Duration::from_secs(2)).await else {
        return;
    };
    let error = db_error(h.exec("SELECT pg_sleep(30)").send().await.unwrap_err());
    let ExecuteStatementError::StatementTimeoutException(timeout) = &error else {
        panic!("expected a statement timeout: {error:?}");
    };
    assert!(timeout.db_connection_id() > 0);
    let pid = timeout.db_connection_id();
    // Without continueAfterTimeout the statement is cancelled.
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            h.pg.query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
                &[&(pid as i32)],
            )
            .await
            .map(|r| r.get::<_, i64>(0) == 0)
            .unwrap_or(false)
        })
        .await
    );

    // With continueAfterTimeout it goes on and its work lands.
    let t = h.t("slow");
    h.exec(format!("CREATE TABLE {t} (id int)"))
        .send()
        .await
        .unwrap();
    let error = db_error(
        h.exec(format!("INSERT INTO {t} SELECT 1 FROM pg_sleep(4)"))
            .continue_after_timeout(true)
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_statement_timeout_exception(), "{error:?}");
    assert!(
        common::eventually(Duration::from_secs(30), || async {
            h.count("slow").await == 1
        })
        .await
    );

    // In a transaction, a cancelled statement aborts it.
    let id = h.begin().await;
    let error = db_error(
        h.exec("SELECT pg_sleep(30)")
            .transaction_id(&id)
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_statement_timeout_exception(), "{error:?}");
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            h.exec("SELECT 1")
                .transaction_id(&id)
                .send()
                .await
                .err()
                .map(|e| e.into_service_error().is_transaction_not_found_exception())
                .unwrap_or(false)
        })
        .await
    );
    h.finish().await;
}

#[tokio::test]
async fn the_resuming_switch_answers_database_resuming() {
    let Some(h) = harness_with(|o| o.resuming_calls = 2).await else {
        return;
    };
    for _ in 0..2 {
        let error = db_error(h.exec("SELECT 1").send().await.unwrap_err());
        assert!(error.is_database_resuming_exception(), "{error:?}");
    }
    h.exec("SELECT 1").send().await.unwrap();

    // Re-armed at run time through the local admin endpoint.
    let armed = h.raw_post("/_local/resuming", r#"{"calls": 1}"#).await;
    assert_eq!((armed.status, armed.body["calls"].as_u64()), (200, Some(1)));
    let error = h
        .client
        .begin_transaction()
        .resource_arn(common::RESOURCE_ARN)
        .secret_arn(common::SECRET_ARN)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(error, BeginTransactionError::DatabaseResumingException(_)),
        "{error:?}"
    );
    h.exec("SELECT 1").send().await.unwrap();

    h.raw_post("/_local/resuming", r#"{"seconds": 600}"#).await;
    let raw = h
        .raw_post(
            "/Execute",
            &format!(
                r#"{{"resourceArn":"{}","secretArn":"{}","sql":"SELECT 1"}}"#,
                common::RESOURCE_ARN,
                common::SECRET_ARN
            ),
        )
        .await;
    assert_eq!(raw.status, 400);
    assert_eq!(
        raw.header("x-amzn-ErrorType"),
        Some("DatabaseResumingException")
    );
    let error = h
        .batch("SELECT 1")
        .parameter_sets(vec![])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            error,
            BatchExecuteStatementError::DatabaseResumingException(_)
        ),
        "{error:?}"
    );
    h.raw_post("/_local/resuming", r#"{"seconds": 0}"#).await;
    h.exec("SELECT 1").send().await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn errors_have_the_service_codes_and_statuses() {
    let Some(h) = harness().await else { return };
    let t = h.t("errs");
    h.exec(format!("CREATE TABLE {t} (id int PRIMARY KEY)"))
        .send()
        .await
        .unwrap();

    let error = db_error(h.exec("SELEC 1").send().await.unwrap_err());
    assert!(error.is_database_error_exception(), "{error:?}");
    assert!(
        error
            .message()
            .unwrap_or_default()
            .starts_with("ERROR: syntax error"),
        "{error:?}"
    );
    assert!(
        error
            .message()
            .unwrap_or_default()
            .ends_with("SQLState: 42601"),
        "{error:?}"
    );

    h.exec(format!("INSERT INTO {t} VALUES (1)"))
        .send()
        .await
        .unwrap();
    let error = db_error(
        h.exec(format!("INSERT INTO {t} VALUES (1)"))
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_database_error_exception(), "{error:?}");
    assert!(
        error
            .message()
            .unwrap_or_default()
            .contains("\n  Detail: Key (id)=(1) already exists.; SQLState: 23505"),
        "{error:?}"
    );

    // Multistatements and the schema parameter: ValidationException.
    let error = db_error(h.exec("SELECT 1; SELECT 2").send().await.unwrap_err());
    assert_eq!(error.code(), Some("ValidationException"));
    let error = db_error(
        h.exec("SELECT 1")
            .schema("public")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code(), Some("ValidationException"));
    assert_eq!(
        error.message(),
        Some("The schema parameter isn't supported")
    );

    // A malformed ARN is a bad request.
    let error = db_error(
        h.client
            .execute_statement()
            .resource_arn("arn:aws:rds:us-east-1:123:cluster:x")
            .secret_arn(common::SECRET_ARN)
            .sql("SELECT 1")
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_bad_request_exception(), "{error:?}");
    let error = db_error(
        h.client
            .execute_statement()
            .resource_arn(common::RESOURCE_ARN)
            .secret_arn("not-an-arn-at-all")
            .sql("SELECT 1")
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_bad_request_exception(), "{error:?}");

    // Raw statuses and headers.
    let raw = h
        .raw_post(
            "/Execute",
            &format!(r#"{{"resourceArn":"{}","secretArn":"{}","sql":"SELECT 1","transactionId":"nope"}}"#, common::RESOURCE_ARN, common::SECRET_ARN),
        )
        .await;
    assert_eq!(raw.status, 404);
    assert_eq!(
        raw.header("x-amzn-ErrorType"),
        Some("TransactionNotFoundException")
    );
    assert!(
        raw.body["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Transaction nope is not found.")
    );
    let raw = h.raw_post("/Execute", "{not json").await;
    assert_eq!(
        (raw.status, raw.header("x-amzn-ErrorType")),
        (400, Some("BadRequestException"))
    );
    let raw = h
        .raw_post(
            "/Execute",
            &format!(
                r#"{{"resourceArn":"{}","secretArn":"{}","sql":"SELEC"}}"#,
                common::RESOURCE_ARN,
                common::SECRET_ARN
            ),
        )
        .await;
    assert_eq!(
        (raw.status, raw.header("x-amzn-ErrorType")),
        (400, Some("DatabaseErrorException"))
    );
    assert!(raw.header("x-amzn-RequestId").is_some());
    h.finish().await;
}

#[tokio::test]
async fn database_selects_a_database_on_the_same_server() {
    let Some(h) = harness().await else { return };
    let default = h.exec("SELECT current_database()").send().await.unwrap();
    let Field::StringValue(default) = &default.records()[0][0] else {
        panic!()
    };
    let out = h
        .exec("SELECT current_database()")
        .database("postgres")
        .send()
        .await
        .unwrap();
    assert_eq!(out.records()[0][0], string("postgres"));
    assert_ne!(default, "");
    let error = db_error(
        h.exec("SELECT 1")
            .database("no_such_database_here")
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_database_error_exception(), "{error:?}");
    assert!(
        error.message().unwrap_or_default().contains("3D000"),
        "{error:?}"
    );
    h.finish().await;
}

#[tokio::test]
async fn the_search_path_mode_uses_schema() {
    let Some(h) = harness_with(|o| o.schema_parameter = SchemaMode::SearchPath).await else {
        return;
    };
    let schema = h.schema.clone();
    h.exec("CREATE TABLE sp (id int)")
        .schema(&schema)
        .send()
        .await
        .unwrap();
    h.exec("INSERT INTO sp VALUES (1)")
        .schema(&schema)
        .send()
        .await
        .unwrap();
    let out = h
        .exec("SELECT count(*) FROM sp")
        .schema(&schema)
        .send()
        .await
        .unwrap();
    assert_eq!(out.records()[0][0], Field::LongValue(1));
    // The setting does not leak into later calls on the same connection.
    let error = db_error(h.exec("SELECT count(*) FROM sp").send().await.unwrap_err());
    assert!(
        error.message().unwrap_or_default().contains("42P01"),
        "{error:?}"
    );
    let id = h
        .client
        .begin_transaction()
        .resource_arn(common::RESOURCE_ARN)
        .secret_arn(common::SECRET_ARN)
        .schema(&schema)
        .send()
        .await
        .unwrap()
        .transaction_id()
        .unwrap()
        .to_owned();
    h.exec("INSERT INTO sp VALUES (2)")
        .transaction_id(&id)
        .send()
        .await
        .unwrap();
    h.commit(&id).await.unwrap();
    assert_eq!(h.count("sp").await, 2);
    h.finish().await;
}

#[tokio::test]
async fn the_binary_serves_the_command_line_interface() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dataapi-local"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--postgres",
            &url,
            "--statement-timeout",
            "10s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        common::eventually(Duration::from_secs(20), || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await
    );
    let raw = common::raw_request(
        addr,
        "POST",
        "/Execute",
        &format!(
            r#"{{"resourceArn":"{}","secretArn":"{}","sql":"SELECT 1 AS one"}}"#,
            common::RESOURCE_ARN,
            common::SECRET_ARN
        ),
    )
    .await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body["records"], serde_json::json!([[{"longValue": 1}]]));
    child.kill().await.unwrap();
}

/// Keeps `Harness` in use for the compiler when a test is skipped.
#[allow(dead_code)]
fn _uses(_: Harness) {}

/// Not a test: prints what calls cost through the SDK (run with
/// `--ignored --nocapture`). Nothing is asserted about time.
#[tokio::test]
#[ignore = "measurement, run by hand"]
async fn measure_call_costs() {
    let Some(h) = harness().await else { return };
    let t = h.t("bench");
    h.exec(format!(
        "CREATE TABLE {t} (id int8 PRIMARY KEY, cx int4, cz int4, w int4)"
    ))
    .send()
    .await
    .unwrap();
    for _ in 0..20 {
        h.exec("SELECT 1").send().await.unwrap();
    }
    let n = 500;
    let start = std::time::Instant::now();
    for _ in 0..n {
        h.exec("SELECT 1").send().await.unwrap();
    }
    let per_call = start.elapsed() / n;
    let rows = 10_000i64;
    let sets: Vec<Vec<SqlParameter>> = (0..rows)
        .map(|i| {
            vec![
                param("id", Field::LongValue(i)),
                param("cx", Field::LongValue(i % 32)),
                param("cz", Field::LongValue(i / 32)),
                param("w", Field::LongValue(1)),
            ]
        })
        .collect();
    let start = std::time::Instant::now();
    h.batch(format!("INSERT INTO {t} VALUES (:id, :cx, :cz, :w)"))
        .set_parameter_sets(Some(sets))
        .send()
        .await
        .unwrap();
    let batch = start.elapsed();
    let start = std::time::Instant::now();
    let out = h
        .exec(format!("SELECT id, cx, cz, w FROM {t}"))
        .send()
        .await
        .unwrap();
    let select = start.elapsed();
    assert_eq!(out.records().len(), rows as usize);
    let id = h.begin().await;
    let start = std::time::Instant::now();
    for i in 0..100 {
        h.exec(format!("UPDATE {t} SET w = w + 1 WHERE id = :id"))
            .parameters(param("id", Field::LongValue(i)))
            .transaction_id(&id)
            .send()
            .await
            .unwrap();
    }
    let in_txn = start.elapsed() / 100;
    h.commit(&id).await.unwrap();
    println!("SELECT 1 round trip: {per_call:?} per call ({n} calls)");
    println!("BatchExecute of {rows} inserts: {batch:?}");
    println!("SELECT of {rows} rows x 4 int columns: {select:?}");
    println!("UPDATE in a transaction: {in_txn:?} per call");
    h.finish().await;
}

/// The server `scripts/test.sh` starts (for `store-dataapi`) answers too.
#[tokio::test]
async fn the_test_script_server_answers() {
    let Some(endpoint) = world_core::conformance::test_service("CRAFT_TEST_DATAAPI_ENDPOINT")
    else {
        return;
    };
    let addr = endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("CRAFT_TEST_DATAAPI_ENDPOINT is http://host:port");
    let raw = common::raw_request(
        addr,
        "POST",
        "/Execute",
        &format!(
            r#"{{"resourceArn":"{}","secretArn":"{}","sql":"SELECT :x::int8 + 1 AS y","parameters":[{{"name":"x","value":{{"longValue":41}}}}]}}"#,
            common::RESOURCE_ARN,
            common::SECRET_ARN
        ),
    )
    .await;
    assert_eq!(raw.status, 200, "{raw:?}");
    assert_eq!(
        raw.body["records"],
        serde_json::json!([[{"longValue": 42}]])
    );
}
