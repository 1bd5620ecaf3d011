//! The LISTEN/NOTIFY bus: one session that listens and publishes, a task
//! that keeps it alive.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use bus_core::inbox::{self, Inbox};
use bus_core::{
    Bus, BusCounter, BusError, BusOptions, BusReceiver, BusResult, BusStatus, Namespace, ServerId,
    Topic,
};
use bytes::Bytes;
use futures::StreamExt;
use store_postgres::{SessionMessages, connect_session, session_error};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{AsyncMessage, Client, SimpleQueryMessage};
use tokio_util::sync::CancellationToken;

use crate::channel::{channel, topic};
use crate::config::Config;
use crate::error::bus_error;

/// Largest payload: PostgreSQL refuses notification payloads of 8000
/// bytes or more (in the default configuration).
pub const MAX_PAYLOAD: usize = 7999;

/// Every message of a publish call, one statement and one round trip; the
/// notifications are queued in array order and delivered in that order
/// when the statement's transaction commits. (PostgreSQL folds identical
/// channel-and-payload pairs within one transaction; envelopes never are,
/// their sequence numbers differ.)
const PUBLISH: &str =
    "SELECT count(pg_notify(c, p)) FROM unnest($1::text[], $2::text[]) AS m(c, p)";

/// A fleet bus over PostgreSQL LISTEN/NOTIFY.
pub struct PostgresBus {
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    config: Config,
    server: ServerId,
    namespace: Namespace,
    target: String,
    inbox: Inbox,
    session: Mutex<Option<Session>>,
    // The Region/Server topics asked for. Held across LISTEN statements so
    // that a session never misses a change made while it is being set up.
    interest: tokio::sync::Mutex<BTreeSet<Topic>>,
}

/// A connected, set-up session.
#[derive(Clone)]
struct Session {
    client: Arc<Client>,
    /// Drops the session (its connection closes, the bus reconnects) after
    /// a failure that leaves its state unknown.
    kill: CancellationToken,
}

impl fmt::Debug for PostgresBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBus")
            .field("target", &self.shared.target)
            .field("server", &self.shared.server)
            .field("namespace", &self.shared.namespace)
            .finish_non_exhaustive()
    }
}

impl PostgresBus {
    /// Starts the bus: returns at once, the session connects in the
    /// background (watch [`Bus::status`] or the receiver's states) and
    /// reconnects whenever it is lost.
    pub async fn open(
        config: Config,
        options: BusOptions,
    ) -> BusResult<(PostgresBus, BusReceiver)> {
        let (inbox, receiver) = inbox::channel("postgres", options.queue);
        let shared = Arc::new(Shared {
            target: config.store().redacted_url(),
            config,
            server: options.server,
            namespace: options.namespace,
            inbox,
            session: Mutex::new(None),
            interest: tokio::sync::Mutex::new(BTreeSet::new()),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(shared.clone(), stop.clone()));
        tracing::info!(target = %shared.target, server = %shared.server, namespace = %shared.namespace, "PostgreSQL bus starting");
        Ok((
            PostgresBus {
                shared,
                stop,
                task: Mutex::new(Some(task)),
            },
            receiver,
        ))
    }
}

impl Shared {
    fn session(&self) -> MutexGuard<'_, Option<Session>> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn call_timeout(&self) -> Duration {
        self.config.store().call_timeout()
    }

    /// `LISTEN` statements for `topics`.
    fn listen<'a>(&self, verb: &str, topics: impl IntoIterator<Item = &'a Topic>) -> String {
        topics
            .into_iter()
            .map(|t| format!("{verb} \"{}\";", channel(&self.namespace, *t)))
            .collect()
    }
}

/// Connects, sets up, watches, and starts again, until stopped.
async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let (min, max) = shared.config.reconnect_delay_values();
    let backoff = ExponentialBuilder::new()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times();
    let mut last_logged: Option<String> = None;
    loop {
        let attempt = (|| open_session(&shared, &stop))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .notify(|e: &BusError, delay: Duration| {
                let text = e.to_string();
                if last_logged.as_deref() != Some(text.as_str()) {
                    tracing::warn!(target = %shared.target, error = %text, ?delay, "PostgreSQL bus cannot connect; retrying");
                } else {
                    tracing::debug!(target = %shared.target, error = %text, ?delay, "PostgreSQL bus cannot connect; retrying");
                }
                shared.inbox.disconnected(text.clone());
                last_logged = Some(text);
            });
        let (session, driver) = tokio::select! {
            _ = stop.cancelled() => return,
            opened = attempt => match opened {
                Ok(opened) => opened,
                // Unreachable without a retry limit; start over if it is.
                Err(_) => continue,
            },
        };
        last_logged = None;
        tracing::info!(target = %shared.target, "PostgreSQL bus connected");
        let ended = watch(&shared, &session, driver, &stop).await;
        shared.session().take();
        match ended {
            Some(reason) => {
                tracing::warn!(target = %shared.target, reason = %reason, "PostgreSQL bus session lost; reconnecting");
                shared.inbox.disconnected(reason);
            }
            None => return,
        }
    }
}

/// One connection, listening to everything asked for; `Err` leaves
/// nothing running.
async fn open_session(
    shared: &Shared,
    stop: &CancellationToken,
) -> BusResult<(Session, JoinHandle<Option<String>>)> {
    let (client, messages) = connect_session(shared.config.store())
        .await
        .map_err(bus_error)?;
    let own_pid = Arc::new(AtomicI32::new(0));
    let driver = tokio::spawn(drive(
        shared.inbox.clone(),
        shared.namespace.clone(),
        messages,
        own_pid.clone(),
        stop.clone(),
    ));
    let set_up = async {
        let interest = shared.interest.lock().await;
        let always = [Topic::Fleet, Topic::Server(shared.server)];
        let mut sql = shared.listen("LISTEN", always.iter().chain(interest.iter()));
        sql.push_str("SELECT pg_backend_pid()");
        let replies = match tokio::time::timeout(shared.call_timeout(), client.simple_query(&sql))
            .await
        {
            Ok(Ok(replies)) => replies,
            Ok(Err(e)) => return Err(bus_error(session_error("setting up the bus session", e))),
            Err(_) => {
                return Err(BusError::unavailable(
                    "setting up the bus session timed out",
                ));
            }
        };
        let pid = replies
            .iter()
            .find_map(|reply| match reply {
                SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse::<i32>().ok()),
                _ => None,
            })
            .ok_or_else(|| BusError::unavailable("pg_backend_pid() returned nothing"))?;
        own_pid.store(pid, Ordering::Relaxed);
        let session = Session {
            client: Arc::new(client),
            kill: CancellationToken::new(),
        };
        *shared.session() = Some(session.clone());
        shared.inbox.connected();
        Ok(session)
    };
    match set_up.await {
        Ok(session) => Ok((session, driver)),
        Err(e) => {
            driver.abort();
            Err(e)
        }
    }
}

/// Polls the session's connection (which also carries its queries) and
/// hands notifications of other sessions to the game loop. Returns why the
/// connection ended, `None` when stopped.
async fn drive(
    inbox: Inbox,
    namespace: Namespace,
    mut messages: SessionMessages,
    own_pid: Arc<AtomicI32>,
    stop: CancellationToken,
) -> Option<String> {
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return None,
            message = messages.next() => message,
        };
        match message {
            Some(Ok(AsyncMessage::Notification(n))) => {
                // Our own publications come back to this session: skip.
                if n.process_id() == own_pid.load(Ordering::Relaxed) {
                    continue;
                }
                match topic(&namespace, n.channel()) {
                    Some(topic) => {
                        inbox.deliver(topic, Bytes::copy_from_slice(n.payload().as_bytes()));
                    }
                    None => tracing::debug!(channel = n.channel(), "notification outside the bus"),
                }
            }
            Some(Ok(AsyncMessage::Notice(notice))) => {
                tracing::debug!(notice = %notice, "PostgreSQL bus notice");
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Some(e.to_string()),
            None => return Some("the server closed the connection".into()),
        }
    }
}

type Ping = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Waits for the end of a session: connection lost, killed after a failed
/// call, failed health check (`Some(reason)`), or stopped (`None`).
async fn watch(
    shared: &Shared,
    session: &Session,
    mut driver: JoinHandle<Option<String>>,
    stop: &CancellationToken,
) -> Option<String> {
    let interval = shared.config.ping_interval_value();
    let mut next_ping = Instant::now() + interval;
    let mut ping: Option<Ping> = None;
    let reason = loop {
        tokio::select! {
            _ = stop.cancelled() => break None,
            _ = session.kill.cancelled() => break Some("dropped after a failed call".to_owned()),
            ended = &mut driver => {
                return match ended {
                    Ok(reason) => reason,
                    Err(e) => Some(format!("the connection task failed: {e}")),
                };
            }
            checked = async { if let Some(p) = ping.as_mut() { p.await } else { Ok(()) } }, if ping.is_some() => {
                ping = None;
                if let Err(reason) = checked {
                    break Some(reason);
                }
                next_ping = Instant::now() + interval;
            }
            _ = tokio::time::sleep_until(next_ping), if ping.is_none() => {
                let client = session.client.clone();
                ping = Some(Box::pin(async move {
                    match tokio::time::timeout(interval, client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(format!("health check failed: {e}")),
                        Err(_) => Err(format!("health check unanswered for {interval:?}")),
                    }
                }));
            }
        }
    };
    driver.abort();
    reason
}

#[async_trait]
impl Bus for PostgresBus {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn server(&self) -> ServerId {
        self.shared.server
    }

    fn namespace(&self) -> &Namespace {
        &self.shared.namespace
    }

    fn max_payload(&self) -> usize {
        MAX_PAYLOAD
    }

    async fn publish(&self, messages: &[(Topic, Bytes)]) -> BusResult<()> {
        let shared = &self.shared;
        shared.inbox.admit(messages, MAX_PAYLOAD)?;
        let counters = shared.inbox.counters();
        let mut channels = Vec::with_capacity(messages.len());
        let mut payloads = Vec::with_capacity(messages.len());
        for (topic, payload) in messages {
            let text = match std::str::from_utf8(payload) {
                Ok(text) if !text.contains('\0') => text,
                _ => {
                    counters.publish_failed();
                    return Err(BusError::Invalid(
                        "PostgreSQL notifications carry text: a payload is not UTF-8 or holds NUL"
                            .into(),
                    ));
                }
            };
            channels.push(channel(&shared.namespace, *topic));
            payloads.push(text);
        }
        if messages.is_empty() {
            return Ok(());
        }
        let Some(session) = shared.session().clone() else {
            counters.publish_failed();
            return Err(BusError::unavailable(format!(
                "not connected to {}",
                shared.target
            )));
        };
        let params: [(&(dyn ToSql + Sync), Type); 2] =
            [(&channels, Type::TEXT_ARRAY), (&payloads, Type::TEXT_ARRAY)];
        let call = session.client.query_typed(PUBLISH, &params);
        let error = match tokio::time::timeout(shared.call_timeout(), call).await {
            Ok(Ok(_)) => {
                for (topic, payload) in messages {
                    counters.published(topic.kind(), payload.len());
                }
                return Ok(());
            }
            Ok(Err(e)) => bus_error(session_error("publishing on the bus", e)),
            Err(_) => BusError::unavailable(format!(
                "publishing on the bus: no answer within {:?}",
                shared.call_timeout()
            )),
        };
        counters.publish_failed();
        if error.is_retryable() {
            session.kill.cancel();
        }
        Err(error)
    }

    async fn set_interest(&self, topics: &[Topic]) -> BusResult<()> {
        let shared = &self.shared;
        if shared.inbox.is_closed() {
            return Err(BusError::Closed);
        }
        let own = Topic::Server(shared.server);
        let wanted: BTreeSet<Topic> = topics
            .iter()
            .copied()
            .filter(|t| *t != Topic::Fleet && *t != own)
            .collect();
        let mut interest = shared.interest.lock().await;
        let mut sql = shared.listen("LISTEN", wanted.difference(&interest));
        sql.push_str(&shared.listen("UNLISTEN", interest.difference(&wanted)));
        *interest = wanted;
        let session = shared.session().clone();
        if let (false, Some(session)) = (sql.is_empty(), session) {
            let call = session.client.batch_execute(&sql);
            let failed = match tokio::time::timeout(shared.call_timeout(), call).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("no answer".to_owned()),
            };
            if let Some(reason) = failed {
                // Connected must mean listening to the whole set: start a
                // new session, which listens to it from scratch.
                tracing::warn!(reason = %reason, "PostgreSQL bus could not change its LISTENs; reconnecting");
                session.kill.cancel();
            }
        }
        Ok(())
    }

    fn status(&self) -> BusStatus {
        self.shared.inbox.status()
    }

    fn counters(&self) -> Vec<BusCounter> {
        self.shared.inbox.counters().snapshot()
    }

    async fn close(&self) -> BusResult<()> {
        self.shared.inbox.close();
        self.stop.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.shared.session().take();
        Ok(())
    }
}

impl Drop for PostgresBus {
    fn drop(&mut self) {
        self.shared.inbox.close();
        self.stop.cancel();
    }
}
