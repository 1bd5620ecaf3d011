//! A [`BlockStore`](world_core::BlockStore) on Amazon DynamoDB, over
//! `aws-sdk-dynamodb` with the standard AWS credential and region chains.
//!
//! ```text
//! --store 'dynamodb://craft-world?region=eu-west-1&create=true'
//! --store 'dynamodb://craft-world?endpoint=http://127.0.0.1:5000&region=us-east-1&create=true'
//! ```
//!
//! [`Config::from_url`] documents every parameter (region, endpoint,
//! profile, create, timeouts, retry attempts, concurrency, `stuck_after`).
//! [`DynamoStore::open`] connects and checks (or, with `create=true`,
//! creates) the table; [`create_table`] does only the latter, for a server
//! subcommand.
//!
//! # Table design
//!
//! One table, one partition per chunk (so a chunk's reads are `Query`s of
//! one partition), players in partitions of their own. Blocks are not
//! items of their own: a set of block changes is **packed** (`pack.rs`:
//! varint/zigzag deltas of position, value and key, ~5 bytes a block) into
//! one binary value, kept in one of three places:
//!
//! | item | `pk` (S, partition) | `sk` (S, sort) | attributes |
//! |---|---|---|---|
//! | snapshot part | `c#P#Q` | `f#ID#PART` | `d` packed blocks (newest per position, keys up to the head's `sh`), at most 4,000 blocks (< 100 KB) a part |
//! | log item | `c#P#Q` | `g#HI` (last key, 10 digits) | `d` packed blocks of one large share, consecutive keys, at most 4,000 a item |
//! | chunk head | `c#P#Q` | `h` | `r` largest reserved key, `c` committed watermark (the head), `rt`/`ct` times of the last reservation/commit, `cw` who committed; `g` the **log list** (`L` of `B`: packed small shares, oldest first), `gn` log items not folded yet, `sf`/`sh`/`sp` current snapshot id, its last key and its number of parts, `st` time of the last compaction, `lf` first-layout items folded |
//! | light | `c#P#Q` | `l#X#Y#Z` | `w` level, `u`, `t` |
//! | sign | `c#P#Q` | `s#X#Y#Z#F` | `x` text, `u`, `t` |
//! | player | `p#NAME` | `p` | `px py pz rx ry` (f32 as decimal), `t` |
//! | draft change (a player's private edit) | `d#OWNER` | `d#X#Y#Z#KIND#FACE` | `dx dy dz dk df w x ds t` (see `drafts.rs`); never read with chunks |
//! | *first layout:* block | `c#P#Q` | `b#X#Y#Z` | `w` value, `k` key, `u`, `t`; indexed by the LSI `by_key` (`pk`, `k`) |
//!
//! Coordinates are decimal, so any `i32` round-trips. The sort keys order a
//! chunk as first-layout blocks (`b#`), snapshot parts (`f#`), log items
//! (`g#`, by key), head (`h`), lights (`l#`), signs (`s#`). Blocks carry no
//! user or time any more (nothing reads them back: this store keeps no
//! block history).
//!
//! **Writes.** A chunk's share of a batch whose packed blocks take at most
//! 600 bytes (about 100 blocks) is **one** conditional `UpdateItem` on the
//! head: `SET r = c = base + n, g = list_append(g, [packed])` if
//! `r = c = base` (no reservation open; `base` is the head this store saw
//! last, and a failed condition returns the head, so a wrong guess costs
//! one more try) and the list has fewer than 64 entries. It reserves,
//! writes and commits at once, so readers see it whole or not at all.
//! When a reservation is open (another writer's large share), or the share
//! is larger, it takes the reserve / write / commit path below, writing
//! log items (`BatchWriteItem`, 25 a call, 16 MB, `UnprocessedItems` sent
//! again) instead of one item per block.
//!
//! **Folds and compaction.** Every update of the head is charged per KB
//! of the whole item, so its list stays short: once it has more than
//! `compact_after` entries (16) or the head passed 900 bytes, the writer
//! that saw it **folds** the list into one log item `g#LAST` (the entries'
//! bytes only) and then `REMOVE g[0], .., g[L-1] ADD gn 1` on the head.
//! Once more than `compact_after` log items gathered (`gn`, counted at
//! reservation and by folds; on a first-layout table also when the log
//! has that many entries), the writer **compacts**: it reads the whole
//! chunk, writes a new snapshot (parts `f#ID#..` under a fresh random id)
//! and then switches the head to it with one conditional `UpdateItem`:
//! `SET sf = ID, sh = c, sp = parts, gn = (log items above c) REMOVE
//! g[0], .., g[L-1]`. Both updates are conditioned on the head's log version `cv`
//! still being the one they read, and set a new one: two of them never
//! act on one list (a losing compaction deletes its own parts; a losing
//! fold leaves a log item that repeats committed blocks under their own
//! keys, harmless, deleted by the next compaction). Only the list entries
//! read are removed (appends go to the end) and only log items up to the
//! `c` read are folded into a snapshot. The items a compaction replaced
//! (old parts, folded log items, first-layout block items) are deleted
//! `compact_grace` (60 s) later, so that a reader still paging through the
//! chunk finds them; a crash before that leaves them for the next
//! compaction, which deletes every item it finds replaced. So a chunk is
//! rewritten whole only every ~`compact_after`² small writes.
//!
//! **Reads.** `load_chunk(chunk, since)` is one `Query` in *descending*
//! sort-key order, strongly consistent: `sk >= "f#"` for a full load,
//! `sk >= g#(since+1)` for an incremental one. It reads signs, lights and
//! the head (with the log list) first, then the log items (and for a full
//! load the snapshot) the head covers: blocks come from the snapshot
//! `sf` (all its `sp` parts must be there), log items with a last key
//! above `max(sh, since)`, and the list; only keys in `since+1 ..= c`, the
//! newest per position. An incremental load older than the snapshot
//! (`since < sh`) reads the snapshot's parts with a second query. So a
//! chunk load is one request (two when the snapshot is needed by an
//! incremental one; more only past 1 MB pages: a chunk of 20,000 blocks is
//! ~110 KB). If the head's snapshot parts are missing (deleted by a later
//! compaction) or the read took longer than `compact_grace`, it starts
//! again, at most 3 times, then fails as `Unavailable`.
//!
//! **Migration from the first layout** (one item per block, the `by_key`
//! LSI; [`DynamoStore::is_legacy`]): a table with that index is read both
//! ways: until a chunk's head has `lf`, its load also queries `by_key` for
//! `k BETWEEN since+1 AND c` (one more request); new writes use the new
//! layout; the chunk's first compaction folds the old block items into
//! the snapshot, sets `lf` and deletes them. `craft-server import` from
//! such a table into a new one (created without index) works as from any
//! store. Servers of both versions must not write one table at the same
//! time (the old version reads no log).
//!
//! Every `Query` and `Scan` follows `LastEvaluatedKey` to the end (1 MB
//! pages). `changed_chunks` is `BatchGetItem` of head items (100 keys a
//! call, strongly consistent, `UnprocessedKeys` sent again); `list_chunks`
//! is a `Scan` for head items (administration only: it reads the whole
//! table).
//!
//! `create=true` (or [`create_table`]) creates the table with on-demand
//! billing (`PAY_PER_REQUEST`), no index, and waits until it is active.
//!
//! # Keys become visible in order
//!
//! The contract: if a read returns a block with key `k`, every change of
//! the chunk with a smaller key is visible to it. With several servers
//! writing one chunk, "reserve keys with an atomic counter, then write" is
//! not enough: A reserves 11..15, B reserves 16..20, B's items land first,
//! a reader sees 16..20, tells its client "you have 20", and A's 11..15 are
//! missed forever. This store keeps a **committed watermark** per chunk:
//!
//! 1. **Reserve.** `UpdateItem` on the head: `ADD r :n`, condition
//!    `r <= MAX_KEY - n` (else [`StoreError::KeyExhausted`](world_core::StoreError::KeyExhausted)),
//!    returning the new `r`: the share owns keys `r-n+1 ..= r`. It only
//!    touches `r`, `rt` and `gn` (its log items), never `c` (a missing `c`
//!    reads as 0). A share
//!    with no block (lights, signs, clears only) reserves one key, so that
//!    every change moves the head.
//! 2. **Write** the log items with `BatchWriteItem` (25 per call, calls of
//!    all chunks packed together, `concurrency` in flight, `UnprocessedItems`
//!    sent again with jittered exponential backoff). Blocks carry their keys.
//! 3. **Commit.** `UpdateItem SET c = hi IF c = lo - 1`. If the condition
//!    fails because an earlier reservation is still open, wait (polling,
//!    5 ms doubling to 250 ms, jittered) and try again. Commits of
//!    different chunks never wait for each other, so writers cannot
//!    deadlock.
//!
//! (A small share does all three in its one `UpdateItem`, and only when no
//! reservation is open: it never overtakes an earlier one.)
//!
//! Readers only use `c`: they return blocks with `k <= c` and report
//! `head = c`. Every log item with a key up to `c` was written, and
//! acknowledged, before `c` moved past it, and the reader reads `c` before
//! the log items (descending order: the head sorts after them; a later
//! page is a later read) with strongly consistent reads, which reflect
//! every write acknowledged before them. List entries are in the head
//! itself. So a returned key never runs ahead of a missing one.
//!
//! *Crashed writers.* A reservation whose writer died is never committed.
//! A writer waiting behind it skips it once the watermark has not moved for
//! `stuck_after` (30 s by default; measured on the waiter's own clock):
//! `SET c = hi IF c = <the value it has been stuck at>`. Readers
//! (`load_chunk`, `changed_chunks`) do the same when the head shows
//! reserved keys above `c` and neither a reservation nor a commit for
//! `stuck_after` (head times, so clocks of servers should agree within a
//! fraction of `stuck_after`): `SET c = r IF c = .. AND r = ..`. A writer
//! that is only slow is never lost either: a share larger than
//! `PROGRESS_COMMIT_KEYS` (2,500) publishes its progress (the watermark
//! follows the prefix of its keys already written), so it does not look
//! stuck; and a writer that finds at commit that someone moved the
//! watermark past its keys writes its whole share again under new keys
//! (harmless, see below) and commits those ([`metrics::REWRITES`]). A store
//! whose `apply` failed after reserving remembers the reservation as
//! abandoned and skips it at once the next time it reads or writes the
//! chunk, so a server retrying after an outage does not wait `stuck_after`.
//!
//! *Why not `TransactWriteItems`* (head condition plus the chunk's items
//! in one transaction): it costs two write units per item instead of one;
//! it holds at most 100 items, so larger shares would be split into
//! consecutive transactions anyway; concurrent writers of one chunk cancel
//! each other's transactions (`TransactionConflict`) and must retry; and
//! it would not even give readers an atomic view, because a `Query` is only
//! read-committed per item against transactions (DynamoDB documents
//! `TransactGetItems` as the only atomic read of a transaction's items), so
//! readers would still need a watermark. This store therefore needs no
//! multi-item atomicity and sends no `TransactWriteItems`.
//!
//! # What a batch guarantees (less than SQL)
//!
//! - A batch is validated (values, sign text of at most 1 KiB, user and
//!   player names of at most [`limits::MAX_NAME_BYTES`]) before anything is
//!   written: an invalid batch writes nothing.
//! - It is **not atomic**, neither across chunks nor within a chunk: an
//!   `apply` that fails (outage, throttling beyond the retries, a crash)
//!   may have written part of the batch. What it wrote is made of the
//!   batch's final values; blocks become visible once the watermark passes
//!   their keys (after a later commit, a skip or a repair); lights and
//!   signs, which every load returns in full, are visible at once.
//! - When `apply` returns `Ok`, every change of the batch is visible to
//!   every later read, and each chunk's head is at least the receipt's
//!   `after`; the receipt's `before` differs from the head a server last
//!   saw exactly when someone else wrote the chunk in between.
//! - Keys are unique per chunk and grow: on insert and on update, by
//!   reservation, also across servers.
//!
//! Why the server stays correct: keys are assigned (reserved) before
//! anything is written, and every write is idempotent (puts of final
//! values, deletes), so re-applying the same batch after an error leaves
//! the same values under newer keys, and the server retries failed batches
//! (errors are `Unavailable`, i.e. retryable). Two servers writing the same
//! block at the same time end with whichever write landed last; both learn
//! it (the receipt's `before`, or `changed_chunks`) and reload. One
//! residual risk is the network's: a request that timed out on the client
//! may still be executed by DynamoDB a moment later; timeouts are seconds,
//! a server's retry comes after them.
//!
//! **Clears** (a removed block deletes its signs and zeroes its light, for
//! rows that existed before the batch) cost one `Query` of the chunk's
//! lights and signs per chunk that has clears, whatever their number (one
//! read unit for a chunk with under 4 KB of lights and signs), and then
//! only the writes needed. The alternatives cost more: deleting the 8 sign
//! faces blindly is 8 write units per removed block (deletes are charged
//! even when nothing is there), and zeroing a light blindly would create
//! light rows that every load returns.
//!
//! # Publishing a draft (what readers see meanwhile)
//!
//! A player's draft is published with one `apply` of the whole draft (up to
//! `drafts.max_changes`, 10,000 by default, plus neighbour mirrors), under
//! the guarantees above: it is **not** one transaction (no
//! `TransactWriteItems`, so its 100-item limit never applies; the items go
//! in `BatchWriteItem` calls of 25). While it runs, another player's
//! client may see some lights and signs of the draft already, and blocks
//! chunk by chunk as each chunk's watermark passes their keys (every
//! block of a chunk up to the watermark at once, never a later one before
//! an earlier one). If it fails, the server keeps the draft and says so;
//! publishing again completes it (re-applying is harmless) and only then
//! deletes the draft.
//!
//! # Limits
//!
//! [`limits`] holds DynamoDB's limits and this store's bounds in one place:
//! `BatchWriteItem` at most 25 items and 16 MB per call, `BatchGetItem` at
//! most 100 keys, items below 400 KB (sign text at most 1 KiB, names at
//! most 1 KiB, log items and snapshot parts at most 4,000 packed blocks,
//! under 100 KB; the head's list at most 64 entries of 600 bytes). Throttling and 5xx are retried by
//! the SDK's standard retry strategy (`max_attempts`, default 4), and
//! unprocessed items and keys by the store (10 times, 25 ms doubling to
//! 2 s, jittered). The tests check the requests actually sent through an
//! SDK interceptor, and simulate `UnprocessedItems`/`UnprocessedKeys`
//! (moto accepts 26-item batches and never leaves anything unprocessed).
//! moto does not make a conditional `UpdateItem` atomic against a
//! concurrent one on the same item (it reads, evaluates and writes in
//! separate steps); DynamoDB does. A store therefore sends its own appends
//! to one chunk one at a time (which also spares them failed conditions),
//! and tests that race several stores on one chunk's head stay rare.
//!
//! # Timeouts and outages
//!
//! Defaults: connect 2 s, one attempt 5 s, one operation (all attempts)
//! 15 s, 4 attempts. An unreachable endpoint makes a call fail with
//! `StoreError::Unavailable` after at most `operation_timeout` (refused
//! connections fail faster: the SDK's backoff between attempts is a few
//! seconds in total); `ping` is an eventually consistent `GetItem` (half a
//! read unit) and fails the same way.
//!
//! # Cost
//!
//! Every request asks for `ReturnConsumedCapacity=TOTAL` and [`metrics`]
//! exposes, through `BlockStore::counters()`: `store_requests_total{op}`
//! (HTTP requests, SDK retries included),
//! `dynamodb_consumed_read_capacity_units_total{op}` and
//! `dynamodb_consumed_write_capacity_units_total{op}` (what DynamoDB
//! reported), and `dynamodb_estimated_*_capacity_units_total{op}`: the
//! store's own estimate from item sizes, by DynamoDB's rules (1 write unit
//! per KB written, an update charged by the larger of the item before and
//! after, a deletion by the item deleted, strongly consistent reads 1 unit
//! per 4 KB per page or per item, a conditional write charged even when
//! its condition fails). Also `dynamodb_small_shares_total`,
//! `dynamodb_compactions_total`, `dynamodb_read_restarts_total`. Use the
//! reported numbers on AWS; moto reports constants (1 per `BatchWriteItem`
//! call whatever its size, 0.5 per `UpdateItem` or `GetItem`, 1 per
//! `Query` page).
//!
//! Typical costs (estimates; `tests/cost.rs` measures them): a batch's
//! share of up to ~100 blocks in one chunk is 1 request and 1 write unit
//! (the head stays under 1 KB: its list is folded past 900 bytes or
//! `compact_after` entries); a fold costs 2 requests and 2-3 write units
//! (the list's bytes, the head); a compaction costs a query, the snapshot
//! (1 write unit per KB of packed blocks, ~200 blocks), the head update
//! and the deletions, once per `compact_after` log items. A large share is
//! 3 requests (reserve, write, commit) and ~1 write unit per 200 blocks
//! plus 2. So 1,000 edits over 100 chunks (10 each) cost about 100-110
//! requests and write units, $0.07 per million edits on demand ($0.625
//! per million write units; $0.13 even when compacting every 6 writes of
//! a chunk), against 3,200 write units ($2.00) with one item per block
//! and its index entry. Loading a chunk is one request and 1 read unit per
//! 4 KB (800 blocks).
//!
//! # IAM
//!
//! On the table (and, for a first-layout table, its index `by_key`):
//! `dynamodb:GetItem`, `BatchGetItem`, `Query`, `Scan` (`list_chunks`
//! only), `UpdateItem`, `BatchWriteItem` (puts and the deletions after
//! compaction), `DescribeTable`, and `CreateTable` with `create=true`.
//!
//! # TLS
//!
//! The workspace builds the SDK with `rustls`: requests go through the
//! SDK's hyper 1 client with rustls (aws-lc) and the platform's roots, for
//! `https://` (AWS) and plain `http://` endpoints (moto) alike. A test
//! checks that an `https://` endpoint really negotiates TLS and verifies
//! the peer (it refuses moto's self-signed certificate).

mod chunk;
pub mod config;
mod drafts;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod pack;
pub mod schema;
mod store;
mod table;
mod writer;

pub use config::{Config, ConfigError};
pub use error::DynamoError;
pub use store::DynamoStore;

/// Creates the table of `config` (on-demand billing, the schema above) if
/// it does not exist, and waits until it is active. For a server
/// subcommand (`craft-server create-table --store dynamodb://...`).
pub async fn create_table(config: &Config) -> world_core::StoreResult<()> {
    let client = store::sdk_client(config, None, |builder| builder).await?;
    table::create(&client, &config.table).await.map(|_| ())
}
