//! `craft-bench features`: what private builds (issue 12), block history
//! and migration (issue 14) cost on each store.
//!
//! For each store URL, on a fresh world, in regions of their own:
//!
//! 1. **drafts** ([`drafts`]): a draft of 100, 1,000 and 10,000 changes
//!    (blocks, lights and signs over four chunks) is stored with
//!    `put_draft`, then [`publish_draft`](world_core::store::publish_draft)
//!    is timed (conflict check, one `apply`, `delete_draft`): the median of
//!    a few repetitions, each on a fresh region;
//! 2. **history cost** ([`history`]): batches of N block edits over busy
//!    chunks, written back to back like the server's flushes, with their
//!    history entries and without, interleaved in the same run;
//! 3. **rollback** ([`history`]): 10,000 changes by one author (among
//!    another author's), then [`craft_server::history::rollback`] of them;
//! 4. **migration** ([`migrate`]): a world of a fixed size (blocks with
//!    their mirrors, lights, signs) in each store, copied with
//!    [`craft_server::migrate::copy::copy_all`] to every other store and
//!    compared with [`craft_server::migrate::verify::verify`], each time
//!    into a fresh destination.
//!
//! Stores that keep no history (DynamoDB) report parts 2 and 3 as
//! unsupported. Fresh worlds for part 4 are derived from each store's URL
//! ([`fresh_url`]): another SQLite file next to the given one, another
//! PostgreSQL or Data API schema, another DynamoDB table.
//!
//! Every part ends in one JSON line (`kind: "features"`, `part: ...`).

pub mod drafts;
pub mod history;
pub mod migrate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use craft_server::config::StoreUrl;
use serde::Serialize;
use tracing::info;
use world_core::BlockStore;

/// What to run.
#[derive(Clone, Debug)]
pub struct FeaturesConfig {
    /// `(label, url)` of each store, each a fresh world.
    pub stores: Vec<(String, StoreUrl)>,
    /// Which parts run.
    pub parts: Parts,
    /// Identifies the run in the JSON lines (several runs may share a
    /// results file).
    pub run_id: String,
    /// Changes per draft.
    pub draft_sizes: Vec<usize>,
    /// Publishes measured per draft size (at least one).
    pub draft_reps: usize,
    /// After this long on one size, no further repetition starts.
    pub draft_budget: Duration,
    /// Largest draft per store, by label (skips the larger sizes).
    pub draft_limits: BTreeMap<String, usize>,
    /// Block edits per batch of the history-cost part.
    pub history_batch: usize,
    /// Rounds (one batch with history, one without) of that part.
    pub history_rounds: usize,
    /// After this long, no further round starts (at least two are made).
    pub history_budget: Duration,
    /// Changes the rollback undoes.
    pub rollback_changes: usize,
    /// Chunks of the migrated world.
    pub migrate_chunks: usize,
    /// Changes per chunk of the migrated world (blocks, lights and signs;
    /// mirrors come on top).
    pub migrate_per_chunk: usize,
    /// Fewer chunks for pairs involving some stores, by label (the
    /// DynamoDB emulator is slow).
    pub migrate_limits: BTreeMap<String, usize>,
}

/// Which parts run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    /// Draft publishes.
    pub drafts: bool,
    /// History cost on sustained edits.
    pub history: bool,
    /// Rollback.
    pub rollback: bool,
    /// Migration between every pair.
    pub migrate: bool,
}

impl Parts {
    /// Every part.
    pub const ALL: Parts = Parts {
        drafts: true,
        history: true,
        rollback: true,
        migrate: true,
    };

    /// Parses `drafts,history,rollback,migrate` (any subset, or `all`).
    pub fn parse(s: &str) -> Result<Parts, String> {
        let mut parts = Parts {
            drafts: false,
            history: false,
            rollback: false,
            migrate: false,
        };
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "all" => parts = Parts::ALL,
                "drafts" => parts.drafts = true,
                "history" => parts.history = true,
                "rollback" => parts.rollback = true,
                "migrate" => parts.migrate = true,
                other => {
                    return Err(format!(
                        "unknown part {other:?} (drafts, history, rollback, migrate, all)"
                    ));
                }
            }
        }
        Ok(parts)
    }
}

/// One JSON line: a part's results over every store.
#[derive(Clone, Debug, Serialize)]
pub struct PartReport<T: Serialize> {
    /// Always `"features"`.
    pub kind: &'static str,
    /// `drafts`, `history`, `rollback` or `migrate`.
    pub part: &'static str,
    /// The run this line belongs to.
    pub run: String,
    /// Per store (or, for `migrate`, per pair).
    pub results: Vec<T>,
}

impl<T: Serialize> PartReport<T> {
    fn new(part: &'static str, run: &str, results: Vec<T>) -> Self {
        Self {
            kind: "features",
            part,
            run: run.to_owned(),
            results,
        }
    }
}

/// Opens the stores and runs the parts asked for; `emit` receives each
/// part's summary for people and its JSON line as soon as it is done.
pub async fn run(
    config: FeaturesConfig,
    mut emit: impl FnMut(&str, &serde_json::Value) -> Result<(), String>,
) -> Result<(), String> {
    let mut opened: Vec<(String, StoreUrl, Arc<dyn BlockStore>)> = Vec::new();
    let parts = config.parts;
    if parts.drafts || parts.history || parts.rollback {
        for (label, url) in &config.stores {
            let store = craft_server::stores::open(url)
                .await
                .map_err(|e| format!("{label}: {e}"))?;
            opened.push((label.clone(), url.clone(), store));
        }
    }
    let result = run_parts(&config, &opened, &mut emit).await;
    for (_, _, store) in &opened {
        let _ = store.close().await;
    }
    result
}

async fn run_parts(
    config: &FeaturesConfig,
    opened: &[(String, StoreUrl, Arc<dyn BlockStore>)],
    emit: &mut impl FnMut(&str, &serde_json::Value) -> Result<(), String>,
) -> Result<(), String> {
    if config.parts.drafts {
        let mut results = Vec::new();
        for (label, url, store) in opened {
            info!(store = %label, "drafts");
            let r = drafts::measure(config, label, url, store)
                .await
                .map_err(|e| format!("{label}: drafts: {e}"))?;
            results.push(r);
        }
        let report = PartReport::new("drafts", &config.run_id, results);
        emit(&drafts::human(&report.results), &json(&report)?)?;
    }
    if config.parts.history {
        let mut results = Vec::new();
        for (label, url, store) in opened {
            info!(store = %label, "history cost");
            let r = history::cost(config, label, url, store)
                .await
                .map_err(|e| format!("{label}: history: {e}"))?;
            results.push(r);
        }
        let report = PartReport::new("history", &config.run_id, results);
        emit(&history::human_cost(&report.results), &json(&report)?)?;
    }
    if config.parts.rollback {
        let mut results = Vec::new();
        for (label, url, store) in opened {
            info!(store = %label, "rollback");
            let r = history::rollback(config, label, url, store)
                .await
                .map_err(|e| format!("{label}: rollback: {e}"))?;
            results.push(r);
        }
        let report = PartReport::new("rollback", &config.run_id, results);
        emit(&history::human_rollback(&report.results), &json(&report)?)?;
    }
    if config.parts.migrate {
        let results = migrate::measure(config).await?;
        let report = PartReport::new("migrate", &config.run_id, results);
        emit(&migrate::human(&report.results), &json(&report)?)?;
    }
    Ok(())
}

fn json(value: &impl Serialize) -> Result<serde_json::Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

/// The URL of another, fresh world next to the one `url` names: `suffix`
/// appended to the SQLite file name (before `.db`), the PostgreSQL or Data
/// API schema (`schema=` added when absent) or the DynamoDB table;
/// `memory:` is fresh whenever it is opened.
pub fn fresh_url(url: &StoreUrl, suffix: &str) -> Result<StoreUrl, String> {
    let raw = url.expose();
    let clean: String = suffix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let (base, query) = match raw.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (raw, None),
    };
    let with_query = |base: String, query: Option<String>| match query {
        Some(q) => StoreUrl(format!("{base}?{q}")),
        None => StoreUrl(base),
    };
    match url.scheme().as_str() {
        "memory" => Ok(url.clone()),
        "sqlite" => {
            let path = base.split_once(':').map_or("", |(_, p)| p);
            if path.is_empty() || path == ":memory:" {
                return Err(format!(
                    "{}: no file to put a fresh world next to",
                    url.redacted()
                ));
            }
            let fresh = match path.strip_suffix(".db") {
                Some(stem) => format!("sqlite:{stem}-{clean}.db"),
                None => format!("sqlite:{path}-{clean}"),
            };
            Ok(with_query(fresh, query.map(str::to_owned)))
        }
        "dynamodb" => {
            let rest = base
                .strip_prefix("dynamodb://")
                .filter(|t| !t.is_empty() && !t.contains('/'))
                .ok_or_else(|| format!("{}: expected dynamodb://TABLE", url.redacted()))?;
            let table = format!("{rest}-{}", clean.replace('_', "-"));
            Ok(with_query(
                format!("dynamodb://{table}"),
                query.map(str::to_owned),
            ))
        }
        "postgres" | "postgresql" | "dataapi" => {
            let mut found = false;
            let mut pairs: Vec<String> = query
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some(("schema", v)) => {
                        found = true;
                        format!("schema={v}_{clean}")
                    }
                    _ => p.to_owned(),
                })
                .collect();
            if !found {
                pairs.push(format!("schema=craft_{clean}"));
            }
            Ok(with_query(base.to_owned(), Some(pairs.join("&"))))
        }
        other => Err(format!(
            "{}: cannot derive a fresh world for scheme {other:?}",
            url.redacted()
        )),
    }
}

/// Median of `samples` in milliseconds (the lower middle; 0 when empty).
pub(crate) fn median_ms(samples: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        return 0.0;
    }
    ms[(ms.len() - 1) / 2]
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    craft_server::history::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(url: &str, suffix: &str) -> String {
        fresh_url(&StoreUrl(url.to_owned()), suffix)
            .expect("derivable")
            .0
    }

    #[test]
    fn fresh_urls_name_another_world() {
        assert_eq!(fresh("sqlite:/tmp/w.db", "m-1"), "sqlite:/tmp/w-m_1.db");
        assert_eq!(fresh("sqlite:/tmp/w", "x"), "sqlite:/tmp/w-x");
        assert_eq!(
            fresh("postgres://u@h/db?schema=run1", "src"),
            "postgres://u@h/db?schema=run1_src"
        );
        assert_eq!(
            fresh("postgres://u@h/db", "src"),
            "postgres://u@h/db?schema=craft_src"
        );
        assert_eq!(
            fresh("dataapi://?region=x&schema=a&endpoint=e", "to_pg"),
            "dataapi://?region=x&schema=a_to_pg&endpoint=e"
        );
        assert_eq!(
            fresh("dynamodb://t-1?region=us-east-1&create=true", "to_pg"),
            "dynamodb://t-1-to-pg?region=us-east-1&create=true"
        );
        assert_eq!(fresh("memory:", "x"), "memory:");
        assert!(fresh_url(&StoreUrl("redis://x".into()), "a").is_err());
    }

    #[test]
    fn parts_parse() {
        assert_eq!(Parts::parse("all"), Ok(Parts::ALL));
        let p = Parts::parse("drafts,migrate").expect("parts");
        assert!(p.drafts && p.migrate && !p.history && !p.rollback);
        assert!(Parts::parse("nope").is_err());
    }

    #[test]
    fn medians_take_the_lower_middle() {
        let d = |ms: u64| Duration::from_millis(ms);
        assert_eq!(median_ms(&[d(3), d(1), d(2)]), 2.0);
        assert_eq!(median_ms(&[d(4), d(1), d(2), d(3)]), 2.0);
        assert_eq!(median_ms(&[]), 0.0);
    }
}
