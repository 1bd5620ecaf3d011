//! Round trips and statements, by operation, for `/metrics` and benchmarks.

use world_core::store::{StoreCounter, StoreCounters};

/// What a round trip was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    LoadChunk,
    Apply,
    ChangedChunks,
    ListChunks,
    LoadPlayer,
    SavePlayers,
    LoadDraft,
    PutDraft,
    DeleteDraft,
    Ping,
    /// Preparing statements on a new connection.
    Prepare,
    /// Migrating the schema at start-up.
    Migrate,
    /// Reading block history.
    History,
    /// Pruning block history.
    PruneHistory,
}

impl Op {
    const ALL: [Op; 14] = [
        Op::LoadChunk,
        Op::Apply,
        Op::ChangedChunks,
        Op::ListChunks,
        Op::LoadPlayer,
        Op::SavePlayers,
        Op::LoadDraft,
        Op::PutDraft,
        Op::DeleteDraft,
        Op::Ping,
        Op::Prepare,
        Op::Migrate,
        Op::History,
        Op::PruneHistory,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::LoadChunk => "load_chunk",
            Op::Apply => "apply",
            Op::ChangedChunks => "changed_chunks",
            Op::ListChunks => "list_chunks",
            Op::LoadPlayer => "load_player",
            Op::SavePlayers => "save_players",
            Op::LoadDraft => "load_draft",
            Op::PutDraft => "put_draft",
            Op::DeleteDraft => "delete_draft",
            Op::Ping => "ping",
            Op::Prepare => "prepare",
            Op::Migrate => "migrate",
            Op::History => "history",
            Op::PruneHistory => "prune_history",
        }
    }
}

const REQUESTS: &str = "store_requests_total";
const STATEMENTS: &str = "store_statements_total";
const CONNECTIONS: &str = "store_connections_opened_total";
const HELP: &[(&str, &str)] = &[
    (REQUESTS, "Round trips to PostgreSQL, by operation."),
    (
        STATEMENTS,
        "SQL statements sent to PostgreSQL (BEGIN and COMMIT included), by operation.",
    ),
    (CONNECTIONS, "Connections opened to PostgreSQL."),
];

/// The store's counters (every operation reported from the start).
#[derive(Debug)]
pub(crate) struct Counters(StoreCounters);

impl Default for Counters {
    fn default() -> Self {
        let counters = StoreCounters::new(HELP);
        for op in Op::ALL {
            counters.declare(REQUESTS, &[("op", op.name())]);
            counters.declare(STATEMENTS, &[("op", op.name())]);
        }
        counters.declare(CONNECTIONS, &[]);
        Self(counters)
    }
}

impl Counters {
    /// One round trip for `op` carrying `statements` SQL statements
    /// (pipelined or in one simple query).
    pub(crate) fn round_trip(&self, op: Op, statements: usize) {
        let labels = [("op", op.name())];
        self.0.incr(REQUESTS, &labels);
        self.0.add(STATEMENTS, &labels, statements as f64);
    }

    pub(crate) fn connection_opened(&self) {
        self.0.incr(CONNECTIONS, &[]);
    }

    pub(crate) fn snapshot(&self) -> Vec<StoreCounter> {
        self.0.snapshot()
    }
}
