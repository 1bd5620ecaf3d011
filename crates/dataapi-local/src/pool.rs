//! PostgreSQL connections: one idle list per database, a statement cache per
//! connection, and the backend pid of each connection (the `dbConnectionId`
//! of a statement timeout), read once when connecting.
//!
//! A small pool of our own rather than deadpool: a connection is moved into
//! the task that runs a statement (so a timed-out statement can go on
//! running, or be cancelled, after the call has answered) and the pid has to
//! travel with it.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Statement};
use tracing::debug;

/// Idle connections kept per database.
const MAX_IDLE: usize = 16;
/// Prepared statements kept per connection.
const MAX_CACHED: usize = 256;

/// One PostgreSQL session.
pub struct Conn {
    /// The client.
    pub client: Client,
    /// The backend pid.
    pub pid: i32,
    /// The database it is connected to.
    pub database: String,
    cache: HashMap<(String, Vec<u32>), Statement>,
}

impl Conn {
    /// Prepares `sql` with the declared parameter types, once per
    /// connection.
    pub async fn prepare(
        &mut self,
        sql: &str,
        types: &[Type],
    ) -> Result<Statement, tokio_postgres::Error> {
        let key = (
            sql.to_owned(),
            types.iter().map(Type::oid).collect::<Vec<_>>(),
        );
        if let Some(statement) = self.cache.get(&key) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare_typed(sql, types).await?;
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        self.cache.insert(key, statement.clone());
        Ok(statement)
    }

    /// Forgets every prepared statement (after "cached plan must not change
    /// result type" and the like).
    pub fn forget_statements(&mut self) {
        self.cache.clear();
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("pid", &self.pid)
            .field("database", &self.database)
            .finish()
    }
}

/// Connections to the databases of one PostgreSQL server.
pub struct Pool {
    base: tokio_postgres::Config,
    default_database: String,
    idle: Mutex<HashMap<String, Vec<Conn>>>,
}

impl Pool {
    /// A pool over the server of `base`; its database is the default one.
    pub fn new(mut base: tokio_postgres::Config) -> Pool {
        let default_database = base
            .get_dbname()
            .map(str::to_owned)
            .or_else(|| base.get_user().map(str::to_owned))
            .unwrap_or_else(|| "postgres".to_owned());
        base.application_name("dataapi-local");
        // Aurora clusters run in UTC unless configured otherwise.
        base.options("-c TimeZone=UTC");
        Pool {
            base,
            default_database,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// The database used when a request names none.
    pub fn default_database(&self) -> &str {
        &self.default_database
    }

    /// An idle connection to `database`, or a new one.
    pub async fn get(&self, database: &str) -> Result<Conn, tokio_postgres::Error> {
        loop {
            let conn = self
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(database)
                .and_then(Vec::pop);
            match conn {
                Some(conn) if !conn.client.is_closed() => return Ok(conn),
                Some(_) => continue,
                None => break,
            }
        }
        let mut config = self.base.clone();
        config.dbname(database);
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, "PostgreSQL connection ended");
            }
        });
        let pid: i32 = match client
            .query_typed("SELECT pg_backend_pid()", &[])
            .await?
            .first()
        {
            Some(row) => row.try_get(0)?,
            None => 0,
        };
        debug!(database, pid, "connected to PostgreSQL");
        Ok(Conn {
            client,
            pid,
            database: database.to_owned(),
            cache: HashMap::new(),
        })
    }

    /// Gives a connection back; a closed one, or one beyond the idle limit,
    /// is dropped (which closes it).
    pub fn put(&self, conn: Conn) {
        if conn.client.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(conn.database.clone()).or_default();
        if list.len() < MAX_IDLE {
            list.push(conn);
        }
    }

    /// Drops every idle connection.
    pub fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
