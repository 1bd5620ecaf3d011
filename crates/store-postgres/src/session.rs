//! A connection of its own with the store's settings (URL, `PG*`
//! variables, TLS, timeouts, keepalives), outside the pool, for a caller
//! that needs a session to itself: the PostgreSQL fleet bus, whose LISTEN
//! connection must be polled for notifications.

use std::pin::Pin;

use futures::Stream;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls};
use world_core::{StoreError, StoreResult};

use crate::config::Config;
use crate::error::postgres_error;
use crate::tls;

/// The server's asynchronous messages (notifications, notices) of a
/// [`connect_session`] connection. Polling it drives the connection: the
/// client's queries make progress only while it is polled. It ends when
/// the connection closes (with an error first if it broke).
pub type SessionMessages =
    Pin<Box<dyn Stream<Item = Result<AsyncMessage, tokio_postgres::Error>> + Send>>;

/// Opens one connection as the store would (no pool, no migration),
/// bounded by `connect_timeout`. Errors map as the store's do:
/// `Unavailable` when the server cannot be reached, `Config` for
/// credentials, database or TLS problems.
pub async fn connect_session(config: &Config) -> StoreResult<(Client, SessionMessages)> {
    let context = format!("connecting to {}", config.redacted_url());
    let tls = tls::connector(config)?;
    let pg = config.pg_config();
    let connecting = async {
        match tls {
            Some(tls) => pg
                .connect(tls)
                .await
                .map(|(client, connection)| (client, messages(connection))),
            None => pg
                .connect(NoTls)
                .await
                .map(|(client, connection)| (client, messages(connection))),
        }
    };
    match tokio::time::timeout(config.connect_timeout(), connecting).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => Err(postgres_error(&context, e)),
        Err(_) => Err(StoreError::Unavailable {
            message: format!(
                "{context}: no connection within {:?}",
                config.connect_timeout()
            ),
            source: None,
        }),
    }
}

/// Maps an error of a [`connect_session`] connection as the store maps its
/// own (lost connections `Unavailable`, bad data `Invalid`, ...).
pub fn session_error(context: &str, e: tokio_postgres::Error) -> StoreError {
    postgres_error(context, e)
}

fn messages<S, T>(mut connection: Connection<S, T>) -> SessionMessages
where
    Connection<S, T>: Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    Box::pin(futures::stream::poll_fn(move |cx| {
        connection.poll_message(cx)
    }))
}
