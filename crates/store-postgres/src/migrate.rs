//! Running pg-sql's [`MigrationScript`] at start-up, in two round trips.

use pg_sql::{MigrationScript, SchemaName};
use tokio_postgres::{Client, SimpleQueryMessage};
use world_core::StoreError;

use crate::counters::{Counters, Op};
use crate::error::postgres_error;

/// Brings `schema` up to date. On error the caller drops the connection,
/// which rolls the transaction back.
pub(crate) async fn migrate(
    client: &Client,
    schema: &SchemaName,
    counters: &Counters,
) -> Result<(), StoreError> {
    let context = format!("migrating schema {schema}");
    let script = MigrationScript::new(schema);

    // Round trip 1: lock, create what is missing of the schema and the
    // migrations table, and read the applied versions, all in the simple
    // query protocol (one message, no prepared statements).
    let mut first = String::from("BEGIN;\n");
    for statement in &script.prelude {
        first.push_str(statement);
        first.push_str(";\n");
    }
    first.push_str(&script.applied_versions);
    counters.round_trip(Op::Migrate, script.prelude.len() + 2);
    let messages = client
        .simple_query(&first)
        .await
        .map_err(|e| postgres_error(&context, e))?;
    // Only the last statement's rows are versions (the lock's SELECT
    // returns a row too): keep the rows of each statement until the next.
    let mut applied = Vec::new();
    let mut current = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::Row(row) => {
                let version = row
                    .get(0)
                    .and_then(|v| v.parse::<i32>().ok())
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("{context}: unreadable migration version"))
                    });
                current.push(version);
            }
            SimpleQueryMessage::CommandComplete(_) => applied = std::mem::take(&mut current),
            _ => {}
        }
    }
    let applied = applied.into_iter().collect::<Result<Vec<i32>, _>>()?;
    let pending = script
        .pending(&applied)
        .map_err(|e| StoreError::Corrupt(format!("{context}: {e}")))?;

    // Round trip 2: the pending migrations and COMMIT (just COMMIT when
    // the schema is current).
    let mut second = String::new();
    let mut statements = 1;
    for migration in &pending {
        for statement in &migration.statements {
            second.push_str(statement);
            second.push_str(";\n");
        }
        second.push_str(&migration.record);
        second.push_str(";\n");
        statements += migration.statements.len() + 1;
    }
    second.push_str("COMMIT");
    counters.round_trip(Op::Migrate, statements);
    client
        .batch_execute(&second)
        .await
        .map_err(|e| postgres_error(&context, e))?;
    if pending.is_empty() {
        tracing::debug!(%schema, ?applied, "schema is current");
    } else {
        let versions: Vec<i32> = pending.iter().map(|m| m.version).collect();
        tracing::info!(%schema, ?versions, "migrated schema");
    }
    Ok(())
}
