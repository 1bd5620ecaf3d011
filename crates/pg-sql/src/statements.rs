//! The statements, written once with `:name` placeholders.
//!
//! Two kinds:
//!
//! - [`Sql`]: a fixed statement with scalar parameters (`load_chunk`,
//!   `list_chunks`, `load_player`, `ping`);
//! - [`RowSql`]: a statement over a set of input rows ([`Rows`]), written as
//!   one body in which `{rows}` stands for the row source `t(...)`. The body
//!   is expanded into three [`Form`]s that differ only in that row source,
//!   so every backend runs the same SQL around it:
//!
//! | form | row source | parameters | used by |
//! |---|---|---|---|
//! | [`Form::Unnest`] | `(SELECT unnest(:p::int8[]) AS p, ...) AS t` | one array per column | store-postgres (tokio-postgres), every set statement |
//! | [`Form::Values`] | `(VALUES (:p::int8, ...)) AS t(p, ...)` | one scalar per column; run once per row | store-dataapi, as one `BatchExecuteStatement` (one parameter set per row) for writes whose result it does not read |
//! | [`Form::Json`] | `jsonb_to_recordset(:rows::text::jsonb) AS t(p int8, ...)` | one text parameter, [`Rows::to_json`] | store-dataapi, as one `ExecuteStatement` when it needs the result (`changed_chunks`) or wants one call for a large set |
//! | [`Form::Arrays`] | `(SELECT unnest(:p::text::int8[]) AS p, ...) AS t` | one text parameter per column: a PostgreSQL array literal, [`Rows::to_arrays`] | store-dataapi (`write_form=arrays`, the default): one `ExecuteStatement` per statement of a batch; the Data API has no array parameters on PostgreSQL, but a literal in a string parses as fast as a bound array |
//!
//! [`Rows`]: crate::Rows
//! [`Rows::to_json`]: crate::Rows::to_json
//! [`Rows::to_arrays`]: crate::Rows::to_arrays

use crate::named::{Positional, to_positional};
use crate::plan::Step;
use crate::rows::{Column, SqlType};
use crate::schema::SchemaName;

/// Which row source a [`RowSql`] reads (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// Arrays, one per column, expanded with `unnest` (tokio-postgres).
    Unnest,
    /// One row of scalar parameters (Data API `BatchExecuteStatement`).
    Values,
    /// One JSON array of objects in parameter `:rows` (Data API).
    Json,
    /// Arrays like [`Form::Unnest`], each passed as the text of a
    /// PostgreSQL array literal (Data API).
    Arrays,
}

impl Form {
    /// Every form.
    pub const ALL: [Form; 4] = [Form::Unnest, Form::Values, Form::Json, Form::Arrays];
}

/// A statement in named form, with its positional rewrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sql {
    named: String,
    positional: Positional,
}

impl Sql {
    pub(crate) fn new(named: String) -> Self {
        let positional = to_positional(&named);
        Self { named, positional }
    }

    /// The text with `:name` placeholders (Data API).
    pub fn named(&self) -> &str {
        &self.named
    }

    /// The text with `$n` placeholders and the parameter names in order
    /// (tokio-postgres).
    pub fn positional(&self) -> &Positional {
        &self.positional
    }
}

/// A statement over a set of input rows, in each [`Form`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowSql {
    name: &'static str,
    columns: &'static [Column],
    unnest: Sql,
    values: Sql,
    json: Sql,
    arrays: Sql,
}

impl RowSql {
    pub(crate) fn new(
        schema: &SchemaName,
        name: &'static str,
        columns: &'static [Column],
        body: &str,
    ) -> Self {
        let body = schema.expand(body);
        let build = |form| Sql::new(body.replace("{rows}", &row_source(form, columns)));
        Self {
            name,
            columns,
            unnest: build(Form::Unnest),
            values: build(Form::Values),
            json: build(Form::Json),
            arrays: build(Form::Arrays),
        }
    }

    /// A short name for logs and metrics (`upsert_blocks`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The input columns; the [`Rows`](crate::Rows) given to this statement
    /// have these (`upsert_blocks` and `insert_blocks` take the plan's block
    /// rows, which also have `n`: bind their columns by name).
    pub fn columns(&self) -> &'static [Column] {
        self.columns
    }

    /// The statement in `form`.
    pub fn form(&self, form: Form) -> &Sql {
        match form {
            Form::Unnest => &self.unnest,
            Form::Values => &self.values,
            Form::Json => &self.json,
            Form::Arrays => &self.arrays,
        }
    }
}

/// The parameter name of the [`Form::Json`] row source.
pub const JSON_ROWS_PARAM: &str = "rows";

fn row_source(form: Form, columns: &[Column]) -> String {
    let names = columns
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ");
    let list = |f: &dyn Fn(&Column) -> String| columns.iter().map(f).collect::<Vec<_>>().join(", ");
    match form {
        // Set-returning functions in the select list run in lockstep
        // without materialising anything; `unnest(a, b, ...)` in FROM
        // stores each array's rows first: ten times slower on 100,000 rows.
        Form::Unnest => format!(
            "(SELECT {}) AS t",
            list(&|c| format!("unnest(:{}::{}[]) AS {}", c.name, c.ty.name(), c.name))
        ),
        // The text is cast to the array type by the type's input function:
        // the service binds a string as text (or untyped), never as an array.
        Form::Arrays => format!(
            "(SELECT {}) AS t",
            list(&|c| format!("unnest(:{}::text::{}[]) AS {}", c.name, c.ty.name(), c.name))
        ),
        Form::Values => format!(
            "(VALUES ({})) AS t({names})",
            list(&|c| format!(":{}::{}", c.name, c.ty.name()))
        ),
        Form::Json => format!(
            "jsonb_to_recordset(:{JSON_ROWS_PARAM}::text::jsonb) AS t({})",
            list(&|c| format!("{} {}", c.name, c.ty.name()))
        ),
    }
}

const fn col(name: &'static str, ty: SqlType) -> Column {
    Column { name, ty }
}

const I8: SqlType = SqlType::Int8;
const I4: SqlType = SqlType::Int4;
const F4: SqlType = SqlType::Float4;
const TEXT: SqlType = SqlType::Text;

/// Input of `advance_heads`: a chunk and by how much its head grows.
pub(crate) const HEAD_COLUMNS: &[Column] = &[col("p", I8), col("q", I8), col("n", I8)];
/// Input of `clear_decor`: a block position under a chunk.
pub(crate) const CLEAR_COLUMNS: &[Column] = &[
    col("p", I8),
    col("q", I8),
    col("x", I8),
    col("y", I8),
    col("z", I8),
];
/// Input of `upsert_blocks`: `n` is the number of block writes of the
/// row's chunk in the batch, the key is `head - back`.
pub(crate) const BLOCK_COLUMNS: &[Column] = &[
    col("p", I8),
    col("q", I8),
    col("x", I8),
    col("y", I8),
    col("z", I8),
    col("w", I4),
    col("n", I8),
    col("back", I8),
    col("user_id", TEXT),
    col("ms", I8),
];
/// Input of `upsert_blocks` and `insert_blocks`, which do not filter on
/// `n`: [`BLOCK_COLUMNS`] without it, so that store-postgres neither sends
/// nor unnests a column no one reads (bind by name: the plan's block rows
/// still have `n`).
pub(crate) const BLOCK_WRITE_COLUMNS: &[Column] = &[
    col("p", I8),
    col("q", I8),
    col("x", I8),
    col("y", I8),
    col("z", I8),
    col("w", I4),
    col("back", I8),
    col("user_id", TEXT),
    col("ms", I8),
];
/// Input of `upsert_lights`.
pub(crate) const LIGHT_COLUMNS: &[Column] = &[
    col("p", I8),
    col("q", I8),
    col("x", I8),
    col("y", I8),
    col("z", I8),
    col("w", I4),
    col("user_id", TEXT),
    col("ms", I8),
];
/// Input of `upsert_signs`.
pub(crate) const SIGN_COLUMNS: &[Column] = &[
    col("p", I8),
    col("q", I8),
    col("x", I8),
    col("y", I8),
    col("z", I8),
    col("face", I4),
    col("text", TEXT),
    col("user_id", TEXT),
    col("ms", I8),
];
/// Input of `delete_signs`.
pub(crate) const SIGN_KEY_COLUMNS: &[Column] = &[
    col("p", I8),
    col("q", I8),
    col("x", I8),
    col("y", I8),
    col("z", I8),
    col("face", I4),
];
/// Input of `changed_chunks`: a chunk and the head its caller holds.
pub(crate) const HELD_COLUMNS: &[Column] = &[col("p", I8), col("q", I8), col("key", I8)];
/// Input of `chunk_heads`.
pub(crate) const CHUNK_COLUMNS: &[Column] = &[col("p", I8), col("q", I8)];
/// Input of `save_players`.
pub(crate) const PLAYER_COLUMNS: &[Column] = &[
    col("name", TEXT),
    col("x", F4),
    col("y", F4),
    col("z", F4),
    col("rx", F4),
    col("ry", F4),
    col("ms", I8),
];

/// Author time: the change's own time, else the transaction's. (Float
/// division: exact to the millisecond, much cheaper than numeric.)
const UPDATED_AT: &str = "COALESCE(to_timestamp(t.ms::float8 / 1000), now())";

const BLOCK_UPSERT: &str = "ON CONFLICT (p, q, x, y, z) DO UPDATE SET w = EXCLUDED.w, key = EXCLUDED.key, \
     user_id = EXCLUDED.user_id, updated_at = EXCLUDED.updated_at";

/// The block write statements: one SELECT list, a filter, a conflict clause.
fn block_insert(filter: &str, conflict: &str) -> String {
    format!(
        "INSERT INTO {{schema}}.block AS b (p, q, x, y, z, w, key, user_id, updated_at) \
         SELECT t.p, t.q, t.x, t.y, t.z, t.w, c.key - t.back, t.user_id, {UPDATED_AT} \
         FROM {{rows}} JOIN {{schema}}.chunk c ON c.p = t.p AND c.q = t.q {filter} {conflict}"
    )
}

/// Every statement of the store, for one schema. Build it once per store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statements {
    schema: SchemaName,
    /// Blocks of chunk (`:p`, `:q`) with a key above `:since`, every light
    /// and sign, and the head, in one statement and therefore one snapshot.
    /// Columns: `kind int4` ([`RowKind`](crate::RowKind)), `x`, `y`, `z`
    /// `int8`, `w int4`, `n int8` (a block's key, a sign's face, the head),
    /// `text`. Decode with [`ChunkDataBuilder`](crate::ChunkDataBuilder).
    pub load_chunk: Sql,
    /// One page of a chunk, for backends whose answers are size-limited
    /// (the Data API's 1 MiB): the same columns as
    /// [`load_chunk`](Self::load_chunk), with each part after its own
    /// cursor and limited: blocks ordered by `(key, x, y, z)` after
    /// `(:bkey, :bx, :by, :bz)`, at most `:blocks`; lights by `(x, y, z)`
    /// after `(:lx, :ly, :lz)`, at most `:lights`; signs by
    /// `(x, y, z, face)` after `(:sx, :sy, :sz, :sface)`, at most `:signs`;
    /// and the head. A limit of 0 skips its part. Drive it with
    /// [`ChunkPager`](crate::ChunkPager), which also holds the cursors.
    pub load_chunk_page: Sql,
    /// Every chunk and its head: `p`, `q`, `key` (`int8`), ordered.
    pub list_chunks: Sql,
    /// One page of [`list_chunks`](Self::list_chunks): the chunks after
    /// `(:p, :q)`, at most `:limit` (start below every chunk with
    /// `i64::MIN`, go on from the last chunk returned).
    pub list_chunks_page: Sql,
    /// One player (`:name`): `x`, `y`, `z`, `rx`, `ry` (`float4`), `ms int8`.
    pub load_player: Sql,
    /// `SELECT 1`.
    pub ping: Sql,
    /// `SELECT now()`: the transaction's time, for rows written without
    /// their own (inside a transaction, `now()` does not move).
    pub now: Sql,
    /// `COPY` of block rows in binary form, columns `p`, `q`, `x`, `y`, `z`
    /// (`int8`), `w` (`int4`), `key` (`int8`), `user_id` (`text`),
    /// `updated_at` (`timestamptz`): store-postgres writes the rows of
    /// chunks a large batch created this way, with the keys the heads it
    /// read give them.
    pub copy_blocks: Sql,
    /// Step 1 of a batch: advances each touched chunk's head by `n`, in
    /// chunk order, locking the chunk rows until commit. Returns `p`, `q`
    /// (`int8`) and `head int4` per chunk; fails with SQLSTATE `22003`
    /// (integer out of range) when a head would pass 2147483647, which a
    /// backend reports as `KeyExhausted` (the transaction is then aborted).
    pub advance_heads: RowSql,
    /// Step 2: for each position, deletes its signs and sets its light (if
    /// any) to 0: what removing a block does to rows that existed before.
    pub clear_decor: RowSql,
    /// Step 3: upserts blocks with key `head - back`, head read from the
    /// chunk rows step 1 advanced (the keys of a chunk's writes are
    /// `(before, head]`). An update gets a new key, unlike the seed's.
    /// Equivalent to [`insert_blocks_new_chunks`](Self::insert_blocks_new_chunks)
    /// then [`upsert_blocks_old_chunks`](Self::upsert_blocks_old_chunks),
    /// which the set forms use; this one suits per-row execution.
    pub upsert_blocks: RowSql,
    /// Step 3 for a backend that guesses which chunks are new before the
    /// heads are known (store-postgres, which sends a whole batch in one
    /// round trip): plain inserts, with neither the new-chunk filter nor
    /// `ON CONFLICT`. For a row whose position is free the result is the
    /// upsert's; a row whose position exists fails the statement with
    /// SQLSTATE `23505` (unique violation), which aborts the transaction:
    /// a wrong guess costs a retry through
    /// [`upsert_blocks`](Self::upsert_blocks), never a lost or doubled
    /// row.
    pub insert_blocks: RowSql,
    /// Step 3 for rows of chunks known to exist, on PostgreSQL 15 and
    /// later: one `MERGE` that probes the primary key once per row, then
    /// updates the row found or inserts a new one. An existing row costs
    /// about a fifth less than through
    /// [`upsert_blocks`](Self::upsert_blocks), whose conflict path also
    /// locks the row (a second WAL record). `MERGE` does not insert
    /// speculatively: a position inserted by a concurrent transaction
    /// fails the statement with SQLSTATE `23505`. None of this store's
    /// writers can do that (each holds its chunks' rows, locked by
    /// [`advance_heads`](Self::advance_heads)), and a backend that sees it
    /// anyway retries the batch through `upsert_blocks`.
    pub merge_blocks: RowSql,
    /// Step 4: upserts lights.
    pub upsert_lights: RowSql,
    /// Step 5: upserts signs with text.
    pub upsert_signs: RowSql,
    /// Step 6: deletes the signs written with empty text.
    pub delete_signs: RowSql,
    /// The chunks among the input whose head is above the `key` held:
    /// `p`, `q`, `key` (`int8`), ordered, each chunk once.
    pub changed_chunks: RowSql,
    /// Current heads of the input chunks: `p`, `q`, `key` (`int8`). Used
    /// after a `22003` from `advance_heads` to name the exhausted chunk.
    pub chunk_heads: RowSql,
    /// Upserts players in name order (input deduplicated by name).
    pub save_players: RowSql,
    /// The statements of players' drafts.
    pub drafts: crate::drafts::DraftStatements,
    /// Block history: recording (the last step of a batch), reads,
    /// pruning.
    pub history: crate::history::HistoryStatements,
    /// `insert_blocks_new_chunks` and `upsert_blocks_old_chunks`.
    block_steps: [RowSql; 2],
}

impl Statements {
    /// Step 3, first half: plain inserts of the rows of chunks this batch
    /// created (head before = 0, i.e. new head = `n`). Such a chunk has no
    /// block rows, and nobody else can add one while its row is locked, so
    /// no conflict is possible and `ON CONFLICT`'s speculative insertion
    /// (an extra index probe and WAL record per row) is saved: imports and
    /// first edits of a chunk write at plain `INSERT` speed.
    pub fn insert_blocks_new_chunks(&self) -> &RowSql {
        &self.block_steps[0]
    }

    /// Step 3, second half: upserts of the rows of chunks that had a head.
    pub fn upsert_blocks_old_chunks(&self) -> &RowSql {
        &self.block_steps[1]
    }
}

impl Statements {
    /// The statements over the tables of `schema`.
    pub fn new(schema: &SchemaName) -> Self {
        let fixed = |template: &str| Sql::new(schema.expand(template));
        let rows = |name, columns, body: &str| RowSql::new(schema, name, columns, body);
        Self {
            schema: schema.clone(),
            history: crate::history::HistoryStatements::new(schema),
            load_chunk: fixed(
                "SELECT 0 AS kind, x, y, z, w, key AS n, NULL::text AS text FROM {schema}.block \
                 WHERE p = :p::int8 AND q = :q::int8 AND key > :since::int8 \
                 UNION ALL SELECT 1, x, y, z, w, NULL, NULL FROM {schema}.light \
                 WHERE p = :p::int8 AND q = :q::int8 \
                 UNION ALL SELECT 2, x, y, z, NULL, face, text FROM {schema}.sign \
                 WHERE p = :p::int8 AND q = :q::int8 \
                 UNION ALL SELECT 3, NULL, NULL, NULL, NULL, key, NULL FROM {schema}.chunk \
                 WHERE p = :p::int8 AND q = :q::int8",
            ),
            // The chunk's rows come by the primary key's (p, q) prefix; the
            // `key >= :bkey` conjunct filters most of them out before the
            // row comparison, which breaks ties between equal keys
            // (never written by this schema, but possible in imported data).
            load_chunk_page: fixed(
                "(SELECT 0 AS kind, x, y, z, w, key AS n, NULL::text AS text FROM {schema}.block \
                 WHERE p = :p::int8 AND q = :q::int8 AND key >= :bkey::int8 \
                 AND (key, x, y, z) > (:bkey::int8, :bx::int8, :by::int8, :bz::int8) \
                 ORDER BY key, x, y, z LIMIT :blocks::int8) \
                 UNION ALL (SELECT 1, x, y, z, w, NULL, NULL FROM {schema}.light \
                 WHERE p = :p::int8 AND q = :q::int8 \
                 AND (x, y, z) > (:lx::int8, :ly::int8, :lz::int8) \
                 ORDER BY x, y, z LIMIT :lights::int8) \
                 UNION ALL (SELECT 2, x, y, z, NULL, face, text FROM {schema}.sign \
                 WHERE p = :p::int8 AND q = :q::int8 \
                 AND (x, y, z, face) > (:sx::int8, :sy::int8, :sz::int8, :sface::int4) \
                 ORDER BY x, y, z, face LIMIT :signs::int8) \
                 UNION ALL SELECT 3, NULL, NULL, NULL, NULL, key, NULL FROM {schema}.chunk \
                 WHERE p = :p::int8 AND q = :q::int8",
            ),
            list_chunks: fixed("SELECT p, q, key FROM {schema}.chunk ORDER BY p, q"),
            list_chunks_page: fixed(
                "SELECT p, q, key FROM {schema}.chunk WHERE (p, q) > (:p::int8, :q::int8) \
                 ORDER BY p, q LIMIT :limit::int8",
            ),
            load_player: fixed(
                "SELECT x, y, z, rx, ry, (extract(epoch FROM updated_at) * 1000)::int8 AS ms \
                 FROM {schema}.player WHERE name = :name::text",
            ),
            ping: fixed("SELECT 1"),
            now: fixed("SELECT now()"),
            copy_blocks: fixed(
                "COPY {schema}.block (p, q, x, y, z, w, key, user_id, updated_at) \
                 FROM STDIN (FORMAT binary)",
            ),
            advance_heads: rows(
                "advance_heads",
                HEAD_COLUMNS,
                "INSERT INTO {schema}.chunk AS c (p, q, key) \
                 SELECT t.p, t.q, t.n FROM {rows} ORDER BY t.p, t.q \
                 ON CONFLICT (p, q) DO UPDATE SET key = c.key + EXCLUDED.key \
                 RETURNING c.p, c.q, c.key::int4 AS head",
            ),
            // Every block removal clears, and most worlds have few lights
            // and signs or none: the uncorrelated EXISTS is a one-time
            // filter (an InitPlan run once), so with an empty table neither
            // part unnests or joins the rows at all (on 128,000 removals in
            // an empty-decor world that was ~15% of the batch's server
            // time: a hash join with the chunks and an index probe per
            // row, or a sort spilled to disk in a custom plan). The light's
            // new key comes from a subquery per cleared light, not from a
            // join of every row with its chunk.
            clear_decor: rows(
                "clear_decor",
                CLEAR_COLUMNS,
                "WITH cleared_signs AS (\
                 DELETE FROM {schema}.sign s USING {rows} \
                 WHERE s.p = t.p AND s.q = t.q AND s.x = t.x AND s.y = t.y AND s.z = t.z \
                 AND EXISTS (SELECT 1 FROM {schema}.sign)) \
                 UPDATE {schema}.light l SET w = 0, \
                 key = (SELECT c.key FROM {schema}.chunk c WHERE c.p = l.p AND c.q = l.q), \
                 updated_at = now() FROM {rows} \
                 WHERE l.p = t.p AND l.q = t.q AND l.x = t.x AND l.y = t.y AND l.z = t.z \
                 AND EXISTS (SELECT 1 FROM {schema}.light)",
            ),
            upsert_blocks: rows(
                "upsert_blocks",
                BLOCK_WRITE_COLUMNS,
                &block_insert("", BLOCK_UPSERT),
            ),
            insert_blocks: rows("insert_blocks", BLOCK_WRITE_COLUMNS, &block_insert("", "")),
            merge_blocks: rows(
                "merge_blocks",
                BLOCK_WRITE_COLUMNS,
                &format!(
                    "MERGE INTO {{schema}}.block AS b USING (\
                     SELECT t.p, t.q, t.x, t.y, t.z, t.w, c.key - t.back AS key, t.user_id, \
                     {UPDATED_AT} AS updated_at \
                     FROM {{rows}} JOIN {{schema}}.chunk c ON c.p = t.p AND c.q = t.q) AS s \
                     ON b.p = s.p AND b.q = s.q AND b.x = s.x AND b.y = s.y AND b.z = s.z \
                     WHEN MATCHED THEN UPDATE SET w = s.w, key = s.key, user_id = s.user_id, \
                     updated_at = s.updated_at \
                     WHEN NOT MATCHED THEN INSERT (p, q, x, y, z, w, key, user_id, updated_at) \
                     VALUES (s.p, s.q, s.x, s.y, s.z, s.w, s.key, s.user_id, s.updated_at)"
                ),
            ),
            block_steps: [
                rows(
                    "insert_blocks_new_chunks",
                    BLOCK_COLUMNS,
                    &block_insert("WHERE c.key = t.n", ""),
                ),
                rows(
                    "upsert_blocks_old_chunks",
                    BLOCK_COLUMNS,
                    &block_insert("WHERE c.key <> t.n", BLOCK_UPSERT),
                ),
            ],
            upsert_lights: rows(
                "upsert_lights",
                LIGHT_COLUMNS,
                &format!(
                    "INSERT INTO {{schema}}.light AS l (p, q, x, y, z, w, key, user_id, updated_at) \
                     SELECT t.p, t.q, t.x, t.y, t.z, t.w, c.key, t.user_id, {UPDATED_AT} \
                     FROM {{rows}} JOIN {{schema}}.chunk c ON c.p = t.p AND c.q = t.q \
                     ON CONFLICT (p, q, x, y, z) DO UPDATE SET w = EXCLUDED.w, key = EXCLUDED.key, \
                     user_id = EXCLUDED.user_id, updated_at = EXCLUDED.updated_at"
                ),
            ),
            upsert_signs: rows(
                "upsert_signs",
                SIGN_COLUMNS,
                &format!(
                    "INSERT INTO {{schema}}.sign AS s (p, q, x, y, z, face, text, key, user_id, updated_at) \
                     SELECT t.p, t.q, t.x, t.y, t.z, t.face, t.text, c.key, t.user_id, {UPDATED_AT} \
                     FROM {{rows}} JOIN {{schema}}.chunk c ON c.p = t.p AND c.q = t.q \
                     ON CONFLICT (p, q, x, y, z, face) DO UPDATE SET text = EXCLUDED.text, key = EXCLUDED.key, \
                     user_id = EXCLUDED.user_id, updated_at = EXCLUDED.updated_at"
                ),
            ),
            delete_signs: rows(
                "delete_signs",
                SIGN_KEY_COLUMNS,
                "DELETE FROM {schema}.sign s USING {rows} \
                 WHERE s.p = t.p AND s.q = t.q AND s.x = t.x AND s.y = t.y AND s.z = t.z AND s.face = t.face",
            ),
            changed_chunks: rows(
                "changed_chunks",
                HELD_COLUMNS,
                "SELECT DISTINCT c.p, c.q, c.key FROM {rows} \
                 JOIN {schema}.chunk c ON c.p = t.p AND c.q = t.q \
                 WHERE c.key > t.key ORDER BY c.p, c.q",
            ),
            chunk_heads: rows(
                "chunk_heads",
                CHUNK_COLUMNS,
                "SELECT c.p, c.q, c.key FROM {rows} JOIN {schema}.chunk c ON c.p = t.p AND c.q = t.q",
            ),
            save_players: rows(
                "save_players",
                PLAYER_COLUMNS,
                "INSERT INTO {schema}.player AS pl (name, x, y, z, rx, ry, updated_at) \
                 SELECT t.name, t.x, t.y, t.z, t.rx, t.ry, to_timestamp(t.ms::float8 / 1000) \
                 FROM {rows} ORDER BY t.name \
                 ON CONFLICT (name) DO UPDATE SET x = EXCLUDED.x, y = EXCLUDED.y, z = EXCLUDED.z, \
                 rx = EXCLUDED.rx, ry = EXCLUDED.ry, updated_at = EXCLUDED.updated_at",
            ),
            drafts: crate::drafts::DraftStatements::new(schema),
        }
    }

    /// The schema these statements use.
    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    /// The statements of a batch step, run in order on the step's rows
    /// (set forms; per-row execution may use `upsert_blocks` for
    /// [`Step::UpsertBlocks`] instead of its two statements).
    pub fn step(&self, step: Step) -> &[RowSql] {
        match step {
            Step::AdvanceHeads => std::slice::from_ref(&self.advance_heads),
            Step::ClearDecor => std::slice::from_ref(&self.clear_decor),
            Step::UpsertBlocks => &self.block_steps,
            Step::UpsertLights => std::slice::from_ref(&self.upsert_lights),
            Step::UpsertSigns => std::slice::from_ref(&self.upsert_signs),
            Step::DeleteSigns => std::slice::from_ref(&self.delete_signs),
            Step::RecordHistory => std::slice::from_ref(&self.history.record),
        }
    }

    /// Every fixed statement (to prepare them all when a connection opens).
    pub fn fixed(&self) -> [&Sql; 4] {
        [
            &self.load_chunk,
            &self.list_chunks,
            &self.load_player,
            &self.ping,
        ]
    }

    /// The paged reads for size-limited backends (not prepared by
    /// store-postgres, which reads whole results).
    pub fn paged(&self) -> [&Sql; 2] {
        [&self.load_chunk_page, &self.list_chunks_page]
    }

    /// Every set statement.
    pub fn row_statements(&self) -> [&RowSql; 14] {
        [
            &self.advance_heads,
            &self.clear_decor,
            &self.upsert_blocks,
            &self.insert_blocks,
            &self.merge_blocks,
            &self.block_steps[0],
            &self.block_steps[1],
            &self.upsert_lights,
            &self.upsert_signs,
            &self.delete_signs,
            &self.changed_chunks,
            &self.chunk_heads,
            &self.save_players,
            &self.history.record,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements() -> Statements {
        Statements::new(&SchemaName::new("craft").expect("valid"))
    }

    #[test]
    fn forms_share_the_body() {
        let s = statements();
        let blocks = &s.upsert_blocks;
        let unnest = blocks.form(Form::Unnest).named();
        let values = blocks.form(Form::Values).named();
        let json = blocks.form(Form::Json).named();
        let arrays = blocks.form(Form::Arrays).named();
        assert!(
            arrays.contains("(SELECT unnest(:p::text::int8[]) AS p, unnest(:q::text::int8[]) AS q")
        );
        assert!(unnest.contains("(SELECT unnest(:p::int8[]) AS p, unnest(:q::int8[]) AS q"));
        assert!(values.contains("(VALUES (:p::int8, :q::int8"));
        assert!(json.contains("jsonb_to_recordset(:rows::text::jsonb) AS t(p int8, q int8"));
        let tail = |sql: &str| sql[sql.find(" JOIN ").expect("join")..].to_owned();
        assert_eq!(tail(unnest), tail(values));
        assert_eq!(tail(unnest), tail(json));
        assert_eq!(tail(unnest), tail(arrays));
    }

    #[test]
    fn parameters_are_the_columns() {
        let s = statements();
        for statement in s.row_statements() {
            let names: Vec<&str> = statement.columns().iter().map(|c| c.name).collect();
            for form in [Form::Unnest, Form::Values, Form::Arrays] {
                let params = &statement.form(form).positional().params;
                assert_eq!(params, &names, "{} {form:?}", statement.name());
            }
            assert_eq!(
                statement.form(Form::Json).positional().params,
                [JSON_ROWS_PARAM]
            );
            for form in Form::ALL {
                let sql = statement.form(form).named();
                assert!(!sql.contains('{'), "{sql}");
                assert!(sql.contains("\"craft\"."), "{sql}");
            }
        }
        assert_eq!(s.load_chunk.positional().params, ["p", "q", "since"]);
        assert_eq!(s.load_player.positional().params, ["name"]);
        assert!(s.ping.positional().params.is_empty());
        assert_eq!(
            s.load_chunk_page.positional().params,
            [
                "p", "q", "bkey", "bx", "by", "bz", "blocks", "lx", "ly", "lz", "lights", "sx",
                "sy", "sz", "sface", "signs"
            ]
        );
        assert_eq!(s.list_chunks_page.positional().params, ["p", "q", "limit"]);
        for sql in s.paged() {
            assert!(sql.named().contains("\"craft\"."), "{}", sql.named());
        }
    }
}
