//! `craft-server history` and `craft-server rollback`: block history
//! against any store URL (`--store`, or the configured store), with the
//! same semantics as `/history` and `/rollback` in game.
//!
//! A rollback from the command line writes to the store directly; running
//! servers pick the restored blocks up through their sync (within
//! `sync_interval`), like changes from another server.

use std::str::FromStr;

use clap::Args;
use world_core::coords::BlockPos;
use world_core::store::{Area, Author, HistoryQuery};

use crate::config::StoreUrl;
use crate::history::{self as hist, RollbackRequest};
use crate::stores;

/// `X,Y,Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Xyz(pub BlockPos);

impl FromStr for Xyz {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Result<Vec<i32>, _> = s.split(',').map(|p| p.trim().parse::<i32>()).collect();
        match parts.as_deref() {
            Ok([x, y, z]) => Ok(Xyz(BlockPos::new(*x, *y, *z))),
            _ => Err(format!("{s:?}: expected X,Y,Z (integers)")),
        }
    }
}

/// `X,Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Xz(pub i32, pub i32);

impl FromStr for Xz {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Result<Vec<i32>, _> = s.split(',').map(|p| p.trim().parse::<i32>()).collect();
        match parts.as_deref() {
            Ok([x, z]) => Ok(Xz(*x, *z)),
            _ => Err(format!("{s:?}: expected X,Z (integers)")),
        }
    }
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    hist::parse_duration(s)
}

/// `craft-server history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Changes at this block.
    #[arg(long, value_name = "X,Y,Z", allow_hyphen_values = true, conflicts_with_all = ["radius", "around"])]
    pub at: Option<Xyz>,
    /// Changes by this user name or guest nick.
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Only changes within this long ago (90s, 10m, 2h, 1d).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub since: Option<std::time::Duration>,
    /// Only within this many blocks of --around.
    #[arg(long, value_name = "BLOCKS", requires = "around")]
    pub radius: Option<u32>,
    /// The centre of --radius.
    #[arg(
        long,
        value_name = "X,Z",
        allow_hyphen_values = true,
        requires = "radius"
    )]
    pub around: Option<Xz>,
    /// At most this many changes, newest first.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
}

/// `craft-server rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Whose changes to undo (user name or guest nick).
    pub name: String,
    /// How far back (90s, 10m, 2h, 1d).
    #[arg(value_parser = duration)]
    pub duration: std::time::Duration,
    /// Only within this many blocks of --at.
    #[arg(long, value_name = "BLOCKS", requires = "at")]
    pub radius: Option<u32>,
    /// The centre of --radius.
    #[arg(
        long,
        value_name = "X,Z",
        allow_hyphen_values = true,
        requires = "radius"
    )]
    pub at: Option<Xz>,
    /// The name recorded as the author of the restoring changes.
    #[arg(long = "as", value_name = "NAME", default_value = "console")]
    pub operator: String,
}

fn since_ms(ago: Option<std::time::Duration>) -> Option<i64> {
    ago.map(|d| hist::now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// Prints the matching changes, newest first.
pub async fn history(store_url: &StoreUrl, args: &HistoryArgs) -> Result<(), String> {
    let store = stores::open(store_url).await.map_err(|e| e.to_string())?;
    let query = HistoryQuery {
        at: args.at.map(|a| a.0),
        author: args.by.clone(),
        since_ms: since_ms(args.since),
        area: args.radius.zip(args.around).map(|(radius, c)| Area {
            x: c.0,
            z: c.1,
            radius,
        }),
        limit: args.limit,
    };
    let result = store.history(&query).await;
    let _ = store.close().await;
    let entries = result.map_err(|e| format!("reading history from {}: {e}", store_url))?;
    for entry in &entries {
        println!("{}", hist::describe(entry));
    }
    eprintln!("{} changes", entries.len());
    Ok(())
}

/// Undoes NAME's changes of the last DURATION as one batch.
pub async fn rollback(store_url: &StoreUrl, args: &RollbackArgs) -> Result<(), String> {
    let store = stores::open(store_url).await.map_err(|e| e.to_string())?;
    let now = hist::now_ms();
    let request = RollbackRequest {
        author: Some(args.name.clone()),
        since_ms: since_ms(Some(args.duration)).unwrap_or(0),
        area: args.radius.zip(args.at).map(|(radius, c)| Area {
            x: c.0,
            z: c.1,
            radius,
        }),
        by: Author::user(args.operator.as_str()),
        now_ms: now,
    };
    let result = hist::rollback(&*store, &request).await;
    let _ = store.close().await;
    let report = result.map_err(|e| format!("rollback on {}: {e}", store_url))?;
    tracing::info!(name = %args.name, found = report.found, restored = report.restored, "rollback done");
    println!(
        "rolled back {} of {} changes by {} ({} chunks)",
        report.restored,
        report.found,
        args.name,
        report.chunks.len()
    );
    Ok(())
}
