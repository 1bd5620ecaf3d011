//! The NATS bus: one `async-nats` client, a task that forwards its
//! subscriptions to the game loop, a task that follows its connection.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::client::{PublishErrorKind, RequestErrorKind};
use async_nats::{Client, ConnectOptions, Event, HeaderMap, ServerAddr, Subscriber};
use async_trait::async_trait;
use bus_core::inbox::{self, Inbox};
use bus_core::{
    Bus, BusCounter, BusError, BusOptions, BusReceiver, BusResult, BusStatus, Namespace, ServerId,
    Topic,
};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::{StreamExt, StreamMap};
use tokio_util::sync::CancellationToken;

use crate::config::{Auth, Config};

/// Largest payload. Far under NATS's default limit (1 MB) so that a
/// region's batch never holds the connection up for long, and leaving
/// room for the header under 64 KiB.
pub const MAX_PAYLOAD: usize = 60 * 1024;

/// The header naming the publishing server: `no_echo` already keeps a
/// server's own messages from it; this is the safety net.
pub const FROM_HEADER: &str = "Craft-From";

/// How long a round trip to the server may take.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(5);

/// The subject of `topic` in `namespace`: `{namespace}.fleet`,
/// `{namespace}.server.{id}`, `{namespace}.region.{p}.{q}`
/// (`craft.region.-3.4`).
pub fn subject(namespace: &Namespace, topic: Topic) -> String {
    match topic {
        Topic::Fleet => format!("{namespace}.fleet"),
        Topic::Server(id) => format!("{namespace}.server.{id}"),
        Topic::Region(r) => format!("{namespace}.region.{}.{}", r.p, r.q),
    }
}

/// A fleet bus over NATS.
pub struct NatsBus {
    client: Client,
    shared: Arc<Shared>,
    interest: tokio::sync::Mutex<BTreeSet<Topic>>,
    updates: mpsc::Sender<Update>,
    header: HeaderMap,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    server: ServerId,
    namespace: Namespace,
    target: String,
    /// A subject nobody subscribes to: a request there comes back at once
    /// as "no responders", after the server processed everything this
    /// client sent before it.
    sync_subject: String,
    inbox: Inbox,
    // Bumped by every connection event; a connection is reported only if
    // no newer event came while its subscriptions were being confirmed.
    generation: Mutex<u64>,
}

/// A change of the pump's subscriptions; `done` when applied.
struct Update {
    add: Vec<(Topic, Subscriber)>,
    remove: Vec<Topic>,
    done: oneshot::Sender<()>,
}

impl fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBus")
            .field("target", &self.shared.target)
            .field("server", &self.shared.server)
            .field("namespace", &self.shared.namespace)
            .finish_non_exhaustive()
    }
}

impl NatsBus {
    /// Starts the bus: returns at once (unless the settings are unusable),
    /// the client connects in the background (watch [`Bus::status`] or the
    /// receiver's states) and reconnects forever.
    pub async fn open(config: Config, options: BusOptions) -> BusResult<(NatsBus, BusReceiver)> {
        let (inbox, receiver) = inbox::channel("nats", options.queue);
        let target = config.redacted_url();
        let shared = Arc::new(Shared {
            server: options.server,
            sync_subject: format!("{}.sync.{}", options.namespace, options.server),
            namespace: options.namespace,
            target: target.clone(),
            inbox,
            generation: Mutex::new(0),
        });
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut connect = ConnectOptions::new()
            .name(format!("craft-server {}", shared.server))
            .no_echo()
            .retry_on_initial_connect()
            .connection_timeout(config.connect_timeout())
            .ping_interval(config.ping_interval())
            .request_timeout(Some(ROUND_TRIP_TIMEOUT))
            .event_callback(move |event| {
                let events = events_tx.clone();
                async move {
                    let _ = events.send(event);
                }
            });
        connect = match config.auth() {
            Auth::None => connect,
            Auth::UserPassword { user, password } => {
                connect.user_and_password(user.clone(), password.expose().to_owned())
            }
            Auth::Token(token) => connect.token(token.expose().to_owned()),
        };
        if config.tls_required() {
            connect = connect.require_tls(true);
        }
        if let Some(ca) = config.tls_ca() {
            connect = connect.add_root_certificates(ca.clone());
        }
        let servers = config
            .servers()
            .iter()
            .map(|url| ServerAddr::from_url(url.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BusError::Config(format!("NATS {target}: {e}")))?;
        let client = connect
            .connect(servers)
            .await
            .map_err(|e| BusError::Config(format!("NATS {target}: {e}")))?;

        let mut always = Vec::new();
        for topic in [Topic::Fleet, Topic::Server(shared.server)] {
            let subscriber = client
                .subscribe(subject(&shared.namespace, topic))
                .await
                .map_err(|e| BusError::unavailable_from("subscribing to NATS", e))?;
            always.push((topic, subscriber));
        }
        let stop = CancellationToken::new();
        let (updates, updates_rx) = mpsc::channel(16);
        let tasks = vec![
            tokio::spawn(pump(shared.clone(), always, updates_rx, stop.clone())),
            tokio::spawn(follow(
                shared.clone(),
                client.clone(),
                events_rx,
                stop.clone(),
            )),
        ];
        let mut header = HeaderMap::new();
        header.insert(FROM_HEADER, shared.server.to_string());
        tracing::info!(target = %target, server = %shared.server, namespace = %shared.namespace, "NATS bus starting");
        Ok((
            NatsBus {
                client,
                shared,
                interest: tokio::sync::Mutex::new(BTreeSet::new()),
                updates,
                header,
                stop,
                tasks: Mutex::new(tasks),
            },
            receiver,
        ))
    }
}

/// Forwards every subscription's messages to the game loop, never
/// waiting on it, and applies subscription changes.
async fn pump(
    shared: Arc<Shared>,
    always: Vec<(Topic, Subscriber)>,
    mut updates: mpsc::Receiver<Update>,
    stop: CancellationToken,
) {
    let mut streams: StreamMap<Topic, Subscriber> = always.into_iter().collect();
    let own = shared.server.to_string();
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            update = updates.recv() => {
                let Some(update) = update else { return };
                for topic in update.remove {
                    if let Some(mut subscriber) = streams.remove(&topic) {
                        // Queued before the caller's round trip: the server has
                        // dropped the subscription when set_interest returns.
                        let _ = subscriber.unsubscribe().await;
                    }
                }
                for (topic, subscriber) in update.add {
                    streams.insert(topic, subscriber);
                }
                let _ = update.done.send(());
            }
            Some((topic, message)) = streams.next(), if !streams.is_empty() => {
                let own_message = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(FROM_HEADER))
                    .is_some_and(|from| from.as_str() == own);
                if !own_message {
                    shared.inbox.deliver(topic, message.payload);
                }
            }
        }
    }
}

/// Follows the client's connection events. A connection counts once a
/// round trip proves that the server has every subscription (the client
/// re-sends them right after reconnecting, before the round trip).
async fn follow(
    shared: Arc<Shared>,
    client: Client,
    mut events: mpsc::UnboundedReceiver<Event>,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            event = events.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        match event {
            Event::Connected => {
                let generation = shared.bump(|_| {});
                tokio::spawn(confirm(
                    shared.clone(),
                    client.clone(),
                    generation,
                    stop.clone(),
                ));
            }
            Event::Disconnected | Event::Closed => {
                shared.bump(|inbox| inbox.disconnected(format!("NATS connection {event}")));
                tracing::warn!(target = %shared.target, %event, "NATS bus disconnected; reconnecting");
            }
            Event::ServerError(_) | Event::ClientError(_) => {
                tracing::warn!(target = %shared.target, %event, "NATS bus error");
                shared.inbox.note_error(event.to_string());
            }
            Event::SlowConsumer(_) => {
                tracing::warn!(target = %shared.target, %event, "NATS client dropped messages");
            }
            Event::LameDuckMode | Event::Draining => {
                tracing::info!(target = %shared.target, %event, "NATS bus");
            }
        }
    }
}

/// Reports connection `generation` once a round trip went through, unless
/// a newer event came first.
async fn confirm(shared: Arc<Shared>, client: Client, generation: u64, stop: CancellationToken) {
    loop {
        if stop.is_cancelled() || shared.generation() != generation {
            return;
        }
        if round_trip(&client, &shared.sync_subject).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let current = shared
        .generation
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if *current == generation {
        shared.inbox.connected();
        tracing::info!(target = %shared.target, "NATS bus connected");
    }
}

impl Shared {
    fn generation(&self) -> u64 {
        *self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a new generation, updating the state under the same lock.
    fn bump(&self, update: impl FnOnce(&Inbox)) -> u64 {
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *generation += 1;
        update(&self.inbox);
        *generation
    }
}

#[async_trait]
impl Bus for NatsBus {
    fn backend(&self) -> &'static str {
        "nats"
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
        let inbox = &self.shared.inbox;
        inbox.admit(messages, MAX_PAYLOAD)?;
        let counters = inbox.counters();
        if !inbox.is_connected() {
            counters.publish_failed();
            return Err(BusError::unavailable(format!(
                "not connected to NATS {}",
                self.shared.target
            )));
        }
        // The client writes them out back to back: no round trip waited.
        for (topic, payload) in messages {
            let sent = self
                .client
                .publish_with_headers(
                    subject(&self.shared.namespace, *topic),
                    self.header.clone(),
                    payload.clone(),
                )
                .await;
            if let Err(e) = sent {
                counters.publish_failed();
                return Err(match e.kind() {
                    PublishErrorKind::MaxPayloadExceeded => BusError::TooLarge {
                        size: payload.len(),
                        max: MAX_PAYLOAD,
                    },
                    _ => BusError::unavailable_from("publishing to NATS", e),
                });
            }
            counters.published(topic.kind(), payload.len());
        }
        Ok(())
    }

    async fn set_interest(&self, topics: &[Topic]) -> BusResult<()> {
        if self.shared.inbox.is_closed() {
            return Err(BusError::Closed);
        }
        let own = Topic::Server(self.shared.server);
        let wanted: BTreeSet<Topic> = topics
            .iter()
            .copied()
            .filter(|t| *t != Topic::Fleet && *t != own)
            .collect();
        let mut interest = self.interest.lock().await;
        let remove: Vec<Topic> = interest.difference(&wanted).copied().collect();
        let mut add = Vec::new();
        for topic in wanted.difference(&interest) {
            let subscriber = self
                .client
                .subscribe(subject(&self.shared.namespace, *topic))
                .await
                .map_err(|e| BusError::unavailable_from("subscribing to NATS", e))?;
            add.push((*topic, subscriber));
        }
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let (done, applied) = oneshot::channel();
        self.updates
            .send(Update { add, remove, done })
            .await
            .map_err(|_| BusError::Closed)?;
        applied.await.map_err(|_| BusError::Closed)?;
        *interest = wanted;
        // While disconnected there is nothing to wait for: the client sends
        // every subscription on reconnection, and the bus reports connected
        // only after a round trip.
        if self.shared.inbox.is_connected()
            && let Err(e) = round_trip(&self.client, &self.shared.sync_subject).await
        {
            tracing::debug!(error = %e, "NATS round trip after an interest change failed");
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
        if self.shared.inbox.is_closed() {
            return Ok(());
        }
        self.shared.inbox.close();
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            let _ = task.await;
        }
        // What was published goes out before the connection closes.
        if let Err(e) = round_trip(&self.client, &self.shared.sync_subject).await {
            tracing::debug!(error = %e, "NATS round trip on close failed");
        }
        let _ = self.client.drain().await;
        Ok(())
    }
}

/// One round trip through the server (the client's `flush` only empties
/// its socket buffer): when it returns, the server has processed every
/// subscription and message this client sent before.
async fn round_trip(client: &Client, sync_subject: &str) -> BusResult<()> {
    let request = client.request(sync_subject.to_owned(), Bytes::new());
    match tokio::time::timeout(ROUND_TRIP_TIMEOUT, request).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders => Ok(()),
        Ok(Err(e)) => Err(BusError::unavailable_from("round trip to NATS", e)),
        Err(_) => Err(BusError::unavailable("round trip to NATS timed out")),
    }
}

impl Drop for NatsBus {
    fn drop(&mut self) {
        self.shared.inbox.close();
        self.stop.cancel();
    }
}
