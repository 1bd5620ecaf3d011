//! The two ends between a backend and the game loop: the backend delivers
//! into an [`Inbox`] (never waiting: a full queue drops and counts), the
//! game loop reads a [`BusReceiver`]. Connection states travel beside the
//! messages in a watch channel, so they are never dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::bus::{BusCounter, BusEvent, BusStatus, Delivery};
use crate::error::{BusError, BusResult};
use crate::topic::{Topic, TopicKind};

/// Opens the channel of a bus of `backend` with room for `queue`
/// deliveries. The status starts disconnected.
pub fn channel(backend: &'static str, queue: usize) -> (Inbox, BusReceiver) {
    let (tx, rx) = mpsc::channel(queue.max(1));
    let (state_tx, state_rx) = watch::channel(BusStatus {
        backend,
        connected: false,
        since: Instant::now(),
        connects: 0,
        last_error: None,
        closed: false,
    });
    let lagged = Arc::new(AtomicU64::new(0));
    let inbox = Inbox {
        inner: Arc::new(InboxInner {
            tx: Mutex::new(Some(tx)),
            state: state_tx,
            lagged: lagged.clone(),
            counters: Counters::default(),
        }),
    };
    let receiver = BusReceiver {
        rx,
        state: state_rx,
        state_open: true,
        lagged,
    };
    (inbox, receiver)
}

/// The backend's end: deliveries, connection state, counters. Cheap to
/// clone (one shared inner).
#[derive(Clone, Debug)]
pub struct Inbox {
    inner: Arc<InboxInner>,
}

#[derive(Debug)]
struct InboxInner {
    // Taken out on close, which ends the receiver.
    tx: Mutex<Option<mpsc::Sender<Delivery>>>,
    state: watch::Sender<BusStatus>,
    lagged: Arc<AtomicU64>,
    counters: Counters,
}

impl Inbox {
    /// Hands a message to the game loop without waiting: when the queue is
    /// full (or the bus closed) it is dropped and counted. Returns whether
    /// it was queued.
    pub fn deliver(&self, topic: Topic, payload: Bytes) -> bool {
        let counters = &self.inner.counters;
        let kind = topic.kind();
        let size = payload.len() as u64;
        let tx = self.inner.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = tx.as_ref() else {
            return false;
        };
        // Counted before it is sent, so that a message the game loop holds
        // is always counted already.
        let (messages, bytes) = (
            &counters.messages_in[kind.index()],
            &counters.bytes_in[kind.index()],
        );
        messages.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(size, Ordering::Relaxed);
        match tx.try_send(Delivery { topic, payload }) {
            Ok(()) => true,
            Err(_) => {
                messages.fetch_sub(1, Ordering::Relaxed);
                bytes.fetch_sub(size, Ordering::Relaxed);
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                self.inner.lagged.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Records a new connection (subscriptions in place).
    pub fn connected(&self) {
        self.inner.state.send_modify(|s| {
            if !s.closed {
                if s.connects > 0 {
                    self.inner
                        .counters
                        .reconnects
                        .fetch_add(1, Ordering::Relaxed);
                }
                s.connected = true;
                s.since = Instant::now();
                s.connects += 1;
            }
        });
    }

    /// Records the loss (or a failed attempt) of the connection, and why.
    pub fn disconnected(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.inner.state.send_modify(|s| {
            if s.connected {
                s.since = Instant::now();
            }
            s.connected = false;
            s.last_error = Some(reason);
        });
    }

    /// Records an error that does not (yet) change the connection state,
    /// such as a refused authentication while reconnecting.
    pub fn note_error(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.inner
            .state
            .send_modify(|s| s.last_error = Some(reason));
    }

    /// Marks the bus closed and ends the receiver (after what is queued).
    pub fn close(&self) {
        self.inner.state.send_modify(|s| {
            if !s.closed {
                s.since = Instant::now();
            }
            s.connected = false;
            s.closed = true;
        });
        self.inner
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// The checks every `publish` starts with: `Closed` after close,
    /// `TooLarge` (counted as a publish error) when a payload exceeds
    /// `max_payload`, in which case nothing may be sent.
    pub fn admit(&self, messages: &[(Topic, Bytes)], max_payload: usize) -> BusResult<()> {
        if self.is_closed() {
            return Err(BusError::Closed);
        }
        if let Some((_, payload)) = messages.iter().find(|(_, p)| p.len() > max_payload) {
            self.inner.counters.publish_failed();
            return Err(BusError::TooLarge {
                size: payload.len(),
                max: max_payload,
            });
        }
        Ok(())
    }

    /// Whether [`Inbox::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.state.borrow().closed
    }

    /// Whether connected now.
    pub fn is_connected(&self) -> bool {
        self.inner.state.borrow().connected
    }

    /// The current status.
    pub fn status(&self) -> BusStatus {
        self.inner.state.borrow().clone()
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }
}

/// Traffic counters every backend keeps the same way.
#[derive(Debug, Default)]
pub struct Counters {
    messages_in: [AtomicU64; 3],
    bytes_in: [AtomicU64; 3],
    messages_out: [AtomicU64; 3],
    bytes_out: [AtomicU64; 3],
    dropped: AtomicU64,
    publish_errors: AtomicU64,
    reconnects: AtomicU64,
}

impl Counters {
    /// Counts a message published on a topic of `kind`.
    pub fn published(&self, kind: TopicKind, bytes: usize) {
        self.messages_out[kind.index()].fetch_add(1, Ordering::Relaxed);
        self.bytes_out[kind.index()].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a failed publish call.
    pub fn publish_failed(&self) {
        self.publish_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The values, for `/metrics`.
    pub fn snapshot(&self) -> Vec<BusCounter> {
        let mut out = Vec::with_capacity(16);
        let traffic = [
            (
                "bus_messages_total",
                "Bus messages by direction and topic kind.",
                &self.messages_in,
                &self.messages_out,
            ),
            (
                "bus_bytes_total",
                "Bus payload bytes by direction and topic kind.",
                &self.bytes_in,
                &self.bytes_out,
            ),
        ];
        for (name, help, inbound, outbound) in traffic {
            for (direction, values) in [("in", inbound), ("out", outbound)] {
                for kind in TopicKind::ALL {
                    out.push(BusCounter {
                        name,
                        help,
                        labels: vec![("direction", direction), ("topic", kind.as_str())],
                        value: values[kind.index()].load(Ordering::Relaxed),
                    });
                }
            }
        }
        for (name, help, value) in [
            (
                "bus_dropped_total",
                "Bus messages dropped because the game loop's queue was full.",
                &self.dropped,
            ),
            (
                "bus_publish_errors_total",
                "Bus publish calls that failed.",
                &self.publish_errors,
            ),
            (
                "bus_reconnects_total",
                "Bus connections re-established after a loss.",
                &self.reconnects,
            ),
        ] {
            out.push(BusCounter {
                name,
                help,
                labels: Vec::new(),
                value: value.load(Ordering::Relaxed),
            });
        }
        out
    }
}

/// The game loop's end of a bus: messages from other servers, drops and
/// connection states.
#[derive(Debug)]
pub struct BusReceiver {
    rx: mpsc::Receiver<Delivery>,
    state: watch::Receiver<BusStatus>,
    state_open: bool,
    lagged: Arc<AtomicU64>,
}

impl BusReceiver {
    /// The next event; `None` once the bus is closed and everything queued
    /// was read. Cancel safe.
    ///
    /// Drops and state changes come before queued messages: they tell the
    /// game loop to repair from the store, the sooner the better.
    pub async fn recv(&mut self) -> Option<BusEvent> {
        loop {
            if let Some(event) = self.pending_signal() {
                return Some(event);
            }
            tokio::select! {
                biased;
                changed = self.state.changed(), if self.state_open => {
                    // `changed` marks the value seen: report it now.
                    match changed {
                        Ok(()) => {
                            return Some(BusEvent::State(self.state.borrow_and_update().clone()));
                        }
                        Err(_) => self.state_open = false,
                    }
                }
                delivery = self.rx.recv() => return delivery.map(BusEvent::Message),
            }
        }
    }

    /// The next event if one is ready (for a game loop draining once per
    /// tick); `None` when nothing is.
    pub fn try_recv(&mut self) -> Option<BusEvent> {
        self.pending_signal()
            .or_else(|| self.rx.try_recv().ok().map(BusEvent::Message))
    }

    /// The current status, without consuming a state change.
    pub fn status(&self) -> BusStatus {
        self.state.borrow().clone()
    }

    fn pending_signal(&mut self) -> Option<BusEvent> {
        let lost = self.lagged.swap(0, Ordering::Relaxed);
        if lost > 0 {
            return Some(BusEvent::Lagged(lost));
        }
        if self.state_open && self.state.has_changed().unwrap_or(false) {
            return Some(BusEvent::State(self.state.borrow_and_update().clone()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::counter;

    #[tokio::test]
    async fn full_queue_drops_counts_and_reports_lag() {
        let (inbox, mut rx) = channel("test", 2);
        for i in 0..5u8 {
            inbox.deliver(Topic::Fleet, Bytes::from(vec![i]));
        }
        assert_eq!(rx.recv().await, Some(BusEvent::Lagged(3)));
        for i in 0..2u8 {
            match rx.recv().await {
                Some(BusEvent::Message(d)) => assert_eq!(d.payload, Bytes::from(vec![i])),
                other => panic!("{other:?}"),
            }
        }
        let counters = inbox.counters().snapshot();
        assert_eq!(counter(&counters, "bus_dropped_total", &[]), 3);
        assert_eq!(
            counter(
                &counters,
                "bus_messages_total",
                &[("direction", "in"), ("topic", "fleet")]
            ),
            2
        );
        assert!(rx.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_on_a_state_change() {
        let (inbox, mut rx) = channel("test", 4);
        let waiting = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        inbox.disconnected("refused");
        match waiting.await.expect("join") {
            Some(BusEvent::State(s)) => assert_eq!(s.last_error.as_deref(), Some("refused")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn states_are_never_lost_and_close_ends_the_receiver() {
        let (inbox, mut rx) = channel("test", 4);
        assert!(!rx.status().connected);
        inbox.connected();
        inbox.deliver(Topic::Fleet, Bytes::from_static(b"a"));
        inbox.disconnected("gone");
        inbox.connected();
        // The state comes first and shows the reconnection.
        match rx.recv().await {
            Some(BusEvent::State(s)) => {
                assert!(s.connected);
                assert_eq!(s.connects, 2);
                assert_eq!(s.last_error.as_deref(), Some("gone"));
            }
            other => panic!("{other:?}"),
        }
        let reconnects = counter(&inbox.counters().snapshot(), "bus_reconnects_total", &[]);
        assert_eq!(reconnects, 1);
        inbox.close();
        assert!(inbox.is_closed());
        assert!(!inbox.deliver(Topic::Fleet, Bytes::from_static(b"late")));
        assert!(matches!(rx.recv().await, Some(BusEvent::State(s)) if s.closed));
        assert!(matches!(rx.recv().await, Some(BusEvent::Message(_))));
        assert_eq!(rx.recv().await, None);
    }
}
