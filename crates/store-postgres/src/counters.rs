//! Round trips and statements, by operation, for `/metrics` and benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};

use world_core::store::StoreCounter;

/// What a round trip was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    LoadChunk,
    Apply,
    ChangedChunks,
    ListChunks,
    LoadPlayer,
    SavePlayers,
    Ping,
    /// Preparing statements on a new connection.
    Prepare,
    /// Migrating the schema at start-up.
    Migrate,
}

impl Op {
    const ALL: [Op; 9] = [
        Op::LoadChunk,
        Op::Apply,
        Op::ChangedChunks,
        Op::ListChunks,
        Op::LoadPlayer,
        Op::SavePlayers,
        Op::Ping,
        Op::Prepare,
        Op::Migrate,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::LoadChunk => "load_chunk",
            Op::Apply => "apply",
            Op::ChangedChunks => "changed_chunks",
            Op::ListChunks => "list_chunks",
            Op::LoadPlayer => "load_player",
            Op::SavePlayers => "save_players",
            Op::Ping => "ping",
            Op::Prepare => "prepare",
            Op::Migrate => "migrate",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: [AtomicU64; Op::ALL.len()],
    statements: [AtomicU64; Op::ALL.len()],
    connections: AtomicU64,
}

impl Counters {
    /// One round trip for `op` carrying `statements` SQL statements
    /// (pipelined or in one simple query).
    pub(crate) fn round_trip(&self, op: Op, statements: usize) {
        self.requests[op as usize].fetch_add(1, Ordering::Relaxed);
        self.statements[op as usize].fetch_add(statements as u64, Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Vec<StoreCounter> {
        let mut out = Vec::with_capacity(2 * Op::ALL.len() + 1);
        for op in Op::ALL {
            out.push(StoreCounter {
                name: "store_requests_total",
                help: "Round trips to PostgreSQL, by operation.",
                labels: vec![("op", op.name().to_owned())],
                value: self.requests[op as usize].load(Ordering::Relaxed) as f64,
            });
        }
        for op in Op::ALL {
            out.push(StoreCounter {
                name: "store_statements_total",
                help: "SQL statements sent to PostgreSQL (BEGIN and COMMIT included), by operation.",
                labels: vec![("op", op.name().to_owned())],
                value: self.statements[op as usize].load(Ordering::Relaxed) as f64,
            });
        }
        out.push(StoreCounter {
            name: "store_connections_opened_total",
            help: "Connections opened to PostgreSQL.",
            labels: Vec::new(),
            value: self.connections.load(Ordering::Relaxed) as f64,
        });
        out
    }
}
