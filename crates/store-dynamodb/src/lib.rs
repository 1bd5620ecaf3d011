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
//! one partition), players in partitions of their own:
//!
//! | item | `pk` (S, partition) | `sk` (S, sort) | attributes |
//! |---|---|---|---|
//! | block (one per stored block, mirrors too) | `c#P#Q` | `b#X#Y#Z` | `w` value, `k` key, `u` user, `t` time |
//! | chunk head (key counter) | `c#P#Q` | `h` | `r` largest reserved key, `c` committed watermark (the head), `rt`/`ct` times of the last reservation/commit, `cw` who committed |
//! | light | `c#P#Q` | `l#X#Y#Z` | `w` level, `u`, `t` |
//! | sign | `c#P#Q` | `s#X#Y#Z#F` | `x` text, `u`, `t` |
//! | player | `p#NAME` | `p` | `px py pz rx ry` (f32 as decimal), `t` |
//! | draft change (a player's private edit) | `d#OWNER` | `d#X#Y#Z#KIND#FACE` | `dx dy dz dk df w x ds t` (see `drafts.rs`); never read with chunks |
//!
//! Coordinates are decimal, so any `i32` round-trips. The sort keys order a
//! chunk as blocks (`b#`), head (`h`), lights (`l#`), signs (`s#`): one
//! `Query sk >= "h"` reads the head, every light and every sign.
//!
//! **Incremental sync** uses a local secondary index `by_key` (partition
//! `pk`, sort `k`, projecting `w`). Only block items have `k`, so the index
//! is sparse: it holds blocks, nothing else. `load_chunk(chunk, since)` is
//!
//! 1. `Query pk = c#P#Q AND sk >= "h"` (strongly consistent): head, lights,
//!    signs (usually one read unit);
//! 2. only if the head is above `since`: `Query` on `by_key`,
//!    `pk = c#P#Q AND k BETWEEN since+1 AND head` (strongly consistent,
//!    which an LSI allows and a GSI would not): exactly the newer blocks,
//!    never the whole chunk.
//!
//! Every `Query` and `Scan` follows `LastEvaluatedKey` to the end (1 MB
//! pages). A chunk is an item collection, which DynamoDB caps at 10 GB when
//! the table has an LSI; a full chunk (32 x 32 x 255 blocks, ~60 bytes
//! each, plus signs) is under 30 MB. `changed_chunks` is `BatchGetItem` of
//! head items (100 keys a call, strongly consistent, `UnprocessedKeys` sent
//! again); `list_chunks` is a `Scan` for head items (administration only:
//! it reads the whole table).
//!
//! `create=true` (or [`create_table`]) creates the table with on-demand
//! billing (`PAY_PER_REQUEST`) and the index, and waits until it is active.
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
//!    touches `r` and `rt`, never `c` (a missing `c` reads as 0). A share
//!    with no block (lights, signs, clears only) reserves one key, so that
//!    every change moves the head.
//! 2. **Write** the items with `BatchWriteItem` (25 per call, calls of all
//!    chunks packed together, `concurrency` in flight, `UnprocessedItems`
//!    sent again with jittered exponential backoff). Blocks carry their keys.
//! 3. **Commit.** `UpdateItem SET c = hi IF c = lo - 1`. If the condition
//!    fails because an earlier reservation is still open, wait (polling,
//!    5 ms doubling to 250 ms, jittered) and try again. Commits of
//!    different chunks never wait for each other, so writers cannot
//!    deadlock.
//!
//! Readers only use `c`: they return blocks with `k <= c` and report
//! `head = c`. Every block with a key up to `c` was written, and
//! acknowledged, before `c` moved past it, and the reader reads `c` before
//! querying blocks with strongly consistent reads, which reflect every
//! write acknowledged before them. So a returned key never runs ahead of a
//! missing one.
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
//! most 1 KiB, so items stay far below). Throttling and 5xx are retried by
//! the SDK's standard retry strategy (`max_attempts`, default 4), and
//! unprocessed items and keys by the store (10 times, 25 ms doubling to
//! 2 s, jittered). The tests check the requests actually sent through an
//! SDK interceptor, and simulate `UnprocessedItems`/`UnprocessedKeys`
//! (moto accepts 26-item batches and never leaves anything unprocessed).
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
//! Every request asks for `ReturnConsumedCapacity=TOTAL` (which includes
//! the index) and [`metrics`] exposes, through `BlockStore::counters()`:
//! `store_requests_total{op}` (HTTP requests, SDK retries included),
//! `dynamodb_consumed_read_capacity_units_total{op}` and
//! `dynamodb_consumed_write_capacity_units_total{op}` (what DynamoDB
//! reported), and `dynamodb_estimated_*_capacity_units_total{op}`: the
//! store's own estimate from item sizes, by DynamoDB's rules (1 write unit
//! per KB written, strongly consistent reads 1 unit per 4 KB per page or
//! per item, a conditional write is charged even when its condition
//! fails). The estimate counts every block write as an *update* of the key
//! index (3 write units: item, index delete, index put; a first write of a
//! position costs 2), an upper bound. Use the reported numbers on AWS; on
//! moto only the estimates mean anything: moto reports constants (1 per
//! `BatchWriteItem` call whatever its size, 0.5 per `UpdateItem` or
//! `GetItem`, 1 per `Query` page whatever it read).
//!
//! Typical costs (estimates): a batch with one block edit in one chunk is
//! 3 requests (reserve, write, commit) and 4-5 write units (item 1, index
//! 1-2, head 2); each more block of the same chunk in the batch adds 2-3;
//! a block on a chunk corner touches 4 chunks. Loading a chunk is 1 read
//! unit plus ~1 per 100 blocks returned; an unchanged chunk since the
//! client's key is 1 request and 1 read unit.
//!
//! # TLS
//!
//! The workspace builds the SDK with `rustls`: requests go through the
//! SDK's hyper 1 client with rustls (aws-lc) and the platform's roots, for
//! `https://` (AWS) and plain `http://` endpoints (moto) alike. A test
//! checks that an `https://` endpoint really negotiates TLS and verifies
//! the peer (it refuses moto's self-signed certificate).

pub mod config;
mod drafts;
pub mod error;
pub mod limits;
pub mod metrics;
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
    table::create(&client, &config.table).await
}
