//! Prometheus metrics and health state, shared by the game loop, the
//! connections and the admin listener.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use world_core::BlockStore;

/// Labels `{op="..."}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    /// Operation.
    pub op: String,
}

/// Labels `{op="...", kind="..."}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpKindLabels {
    /// Operation.
    pub op: String,
    /// Error kind.
    pub kind: String,
}

/// Labels `{kind="...", result="..."}` for edits.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EditLabels {
    /// `block`, `light` or `sign`.
    pub kind: &'static str,
    /// `accepted`, `refused` or `ignored`.
    pub result: &'static str,
}

/// Labels `{kind="..."}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// What kind.
    pub kind: &'static str,
}

/// Labels `{reason="..."}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: &'static str,
}

/// Labels `{result="..."}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// How it went.
    pub result: &'static str,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Connected players.
    pub players: Gauge,
    /// Lines received from clients.
    pub lines_in: Counter,
    /// Lines sent to clients (one per recipient).
    pub lines_out: Counter,
    /// Bytes written to clients.
    pub bytes_out: Counter,
    /// Client lines that did not parse.
    pub lines_malformed: Counter,
    /// Edits by kind and result.
    pub edits: Family<EditLabels, Counter>,
    /// Chunk requests answered.
    pub chunk_requests: Counter,
    /// Time from a chunk request's arrival to its answer being queued.
    pub chunk_answer_seconds: Histogram,
    /// Time to build a chunk answer from memory and queue it, from the
    /// moment the game loop takes the request up.
    pub chunk_build_seconds: Histogram,
    /// Store call latency by operation.
    pub store_call_seconds: Family<OpLabel, Histogram>,
    /// Store errors by operation and kind.
    pub store_errors: Family<OpKindLabels, Counter>,
    /// Edits waiting to be written.
    pub pending_edits: Gauge,
    /// Age of the oldest edit waiting to be written, in milliseconds.
    pub pending_oldest_ms: Gauge,
    /// Duration of successful flushes.
    pub flush_seconds: Histogram,
    /// Chunks cached in memory.
    pub cached_chunks: Gauge,
    /// Errors by kind (slow clients, store failures...).
    pub errors: Family<KindLabel, Counter>,
    /// Connections closed at once, by reason: `accept_limit` (more sockets
    /// than `max_players` plus `limits.connection_margin`), `per_ip`
    /// (`limits.max_connections_per_ip`), `full` (`max_players`),
    /// `draining`.
    pub connections_refused: Family<ReasonLabel, Counter>,
    /// The most edits held in memory (`limits.max_unwritten_edits`); at it,
    /// new edits are refused.
    pub pending_edits_limit: Gauge,
    /// Bytes queued for one client before it is disconnected (the
    /// effective `limits.max_outbound_bytes`).
    pub outbound_limit_bytes: Gauge,
    /// Agones health pings by result: `ok`, `failed`, `skipped` (the game
    /// loop is stuck).
    pub agones_health_pings: Family<ResultLabel, Counter>,
    /// Store call latency, smoothed, for the admin page (Prometheus gets
    /// the histogram).
    pub store_rtt: Ewma,
    store: OnceLock<Arc<dyn BlockStore>>,
    /// The fleet bus: connected (1) or not, rendered only with a bus.
    pub bus_connected: Gauge,
    /// Milliseconds between a peer's heartbeat and its arrival (the
    /// latest one).
    pub bus_lag_ms: Gauge,
    /// Other servers heard on the bus.
    pub bus_peers: Gauge,
    /// Players of other servers shown here.
    pub bus_remote_players: Gauge,
    /// Batches the publishing task dropped (behind, or publish failed).
    pub bus_outbox_dropped: AtomicU64,
    /// Undecodable payloads received.
    pub bus_invalid: AtomicU64,
    bus: OnceLock<Arc<dyn bus_core::Bus>>,
}

fn latency_histogram() -> Histogram {
    // 20 µs .. ~42 s.
    Histogram::new(exponential_buckets(0.00002, 2.0, 22))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("craft");
        let players = Gauge::default();
        registry.register("players", "Connected players", players.clone());
        let lines_in = Counter::default();
        registry.register("lines_in", "Lines received from clients", lines_in.clone());
        let lines_out = Counter::default();
        registry.register(
            "lines_out",
            "Lines sent to clients, one per recipient",
            lines_out.clone(),
        );
        let bytes_out = Counter::default();
        registry.register("bytes_out", "Bytes written to clients", bytes_out.clone());
        let lines_malformed = Counter::default();
        registry.register(
            "lines_malformed",
            "Client lines that did not parse (ignored)",
            lines_malformed.clone(),
        );
        let edits = Family::<EditLabels, Counter>::default();
        registry.register("edits", "Edits by kind and result", edits.clone());
        let chunk_requests = Counter::default();
        registry.register(
            "chunk_requests",
            "Chunk requests answered",
            chunk_requests.clone(),
        );
        let chunk_answer_seconds = latency_histogram();
        registry.register(
            "chunk_answer_seconds",
            "Time from a chunk request's arrival to its answer",
            chunk_answer_seconds.clone(),
        );
        // 1 µs .. ~0.5 s: building an answer from memory takes microseconds.
        let chunk_build_seconds = Histogram::new(exponential_buckets(0.000001, 2.0, 20));
        registry.register(
            "chunk_build_seconds",
            "Time to build a chunk answer from memory and queue it (no waiting included)",
            chunk_build_seconds.clone(),
        );
        let store_call_seconds = Family::<OpLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "store_call_seconds",
            "Store call latency by operation",
            store_call_seconds.clone(),
        );
        let store_errors = Family::<OpKindLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Store errors by operation and kind",
            store_errors.clone(),
        );
        let pending_edits = Gauge::default();
        registry.register(
            "pending_edits",
            "Edits accepted but not yet written",
            pending_edits.clone(),
        );
        let pending_oldest_ms = Gauge::default();
        registry.register(
            "pending_oldest_milliseconds",
            "Age of the oldest edit not yet written",
            pending_oldest_ms.clone(),
        );
        let flush_seconds = latency_histogram();
        registry.register(
            "flush_seconds",
            "Duration of successful flushes",
            flush_seconds.clone(),
        );
        let cached_chunks = Gauge::default();
        registry.register(
            "cached_chunks",
            "Chunks cached in memory",
            cached_chunks.clone(),
        );
        let errors = Family::<KindLabel, Counter>::default();
        registry.register("errors", "Errors by kind", errors.clone());
        let connections_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed at once, by reason",
            connections_refused.clone(),
        );
        let pending_edits_limit = Gauge::default();
        registry.register(
            "pending_edits_limit",
            "Most edits held in memory before new ones are refused",
            pending_edits_limit.clone(),
        );
        let outbound_limit_bytes = Gauge::default();
        registry.register(
            "outbound_limit_bytes",
            "Bytes queued for one client before it is disconnected",
            outbound_limit_bytes.clone(),
        );
        let agones_health_pings = Family::<ResultLabel, Counter>::default();
        registry.register(
            "agones_health_pings",
            "Agones health pings by result",
            agones_health_pings.clone(),
        );
        Self {
            registry,
            players,
            lines_in,
            lines_out,
            bytes_out,
            lines_malformed,
            edits,
            chunk_requests,
            chunk_answer_seconds,
            chunk_build_seconds,
            store_call_seconds,
            store_errors,
            pending_edits,
            pending_oldest_ms,
            flush_seconds,
            cached_chunks,
            errors,
            connections_refused,
            pending_edits_limit,
            outbound_limit_bytes,
            agones_health_pings,
            store_rtt: Ewma::default(),
            store: OnceLock::new(),
            bus_connected: Gauge::default(),
            bus_lag_ms: Gauge::default(),
            bus_peers: Gauge::default(),
            bus_remote_players: Gauge::default(),
            bus_outbox_dropped: AtomicU64::new(0),
            bus_invalid: AtomicU64::new(0),
            bus: OnceLock::new(),
        }
    }

    /// Adds the store's own counters to every scrape.
    pub fn attach_store(&self, store: Arc<dyn BlockStore>) {
        let _ = self.store.set(store);
    }

    /// Adds the fleet bus's counters and gauges to every scrape.
    pub fn attach_bus(&self, bus: Arc<dyn bus_core::Bus>) {
        let _ = self.bus.set(bus);
    }

    /// The fleet bus's state, when a bus is configured (for `/readyz`).
    pub fn bus_status(&self) -> Option<bus_core::BusStatus> {
        self.bus.get().map(|bus| bus.status())
    }

    /// Counts an edit.
    pub fn edit(&self, kind: &'static str, result: &'static str) {
        self.edits.get_or_create(&EditLabels { kind, result }).inc();
    }

    /// Counts an error.
    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&KindLabel { kind }).inc();
    }

    /// Counts a connection closed at once.
    pub fn refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        if self.store.get().is_none() && self.bus.get().is_none() {
            return out;
        }
        // Strip the trailing `# EOF` so the store's and the bus's metrics
        // stay inside the exposition, then put it back.
        if let Some(body) = out.strip_suffix("# EOF\n") {
            out = body.to_owned();
        }
        if let Some(store) = self.store.get() {
            let mut last = "";
            for c in store.counters() {
                let labels = c.labels.iter().map(|(k, v)| (*k, v.as_str()));
                render_counter(&mut out, &mut last, (c.name, c.help), labels, c.value);
            }
        }
        if let Some(bus) = self.bus.get() {
            self.render_bus(bus.as_ref(), &mut out);
        }
        out.push_str("# EOF\n");
        out
    }

    fn render_bus(&self, bus: &dyn bus_core::Bus, out: &mut String) {
        let mut last = "";
        for c in bus.counters() {
            let labels = c.labels.iter().copied();
            render_counter(out, &mut last, (c.name, c.help), labels, c.value);
        }
        let counters = [
            (
                "craft_bus_outbox_dropped",
                "Batches of bus messages dropped by this server (publisher behind or publish failed)",
                self.bus_outbox_dropped.load(Ordering::Relaxed),
            ),
            (
                "craft_bus_invalid_messages",
                "Bus payloads received that could not be decoded",
                self.bus_invalid.load(Ordering::Relaxed),
            ),
        ];
        for (family, help, value) in counters {
            out.push_str(&format!(
                "# HELP {family} {help}\n# TYPE {family} counter\n{family}_total {value}\n"
            ));
        }
        let status = bus.status();
        let gauges = [
            (
                "craft_bus_connected",
                "The fleet bus is connected (1) or not (0)",
                i64::from(status.connected),
            ),
            (
                "craft_bus_lag_ms",
                "Milliseconds between the latest peer heartbeat's sending and its arrival",
                self.bus_lag_ms.get(),
            ),
            (
                "craft_bus_peers",
                "Other servers heard on the fleet bus",
                self.bus_peers.get(),
            ),
            (
                "craft_bus_remote_players",
                "Players of other servers shown here",
                self.bus_remote_players.get(),
            ),
            (
                "craft_bus_connects",
                "Connections of the bus established since start",
                i64::try_from(status.connects).unwrap_or(i64::MAX),
            ),
        ];
        for (family, help, value) in gauges {
            out.push_str(&format!(
                "# HELP {family} {help}\n# TYPE {family} gauge\n{family} {value}\n"
            ));
        }
    }
}

/// An exponentially weighted moving average of durations, lock-free.
#[derive(Debug, Default)]
pub struct Ewma {
    /// The average in seconds as `f64` bits; 0 before the first sample.
    bits: AtomicU64,
}

impl Ewma {
    /// Weight of a new sample: the average follows the last twenty or so.
    const ALPHA: f64 = 0.1;

    /// Adds a sample.
    pub fn observe(&self, sample: Duration) {
        let sample = sample.as_secs_f64();
        // The closure always answers, so the update always lands.
        let _ = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                let new = if bits == 0 {
                    sample
                } else {
                    old + Self::ALPHA * (sample - old)
                };
                Some(new.to_bits())
            });
    }

    /// The average, `None` before the first sample.
    pub fn get(&self) -> Option<Duration> {
        let bits = self.bits.load(Ordering::Relaxed);
        (bits != 0).then(|| Duration::from_secs_f64(f64::from_bits(bits).max(0.0)))
    }
}

/// One sample of a backend's counter family `name` (a store's or the
/// bus's), with the family's `# HELP`/`# TYPE` lines before its first
/// sample (`last` is the family written last). OpenMetrics names the
/// family without `_total` and each counter sample with it.
fn render_counter<'a>(
    out: &mut String,
    last: &mut &'static str,
    (name, help): (&'static str, &'static str),
    labels: impl Iterator<Item = (&'static str, &'a str)>,
    value: impl std::fmt::Display,
) {
    let family = format!("craft_{}", name.strip_suffix("_total").unwrap_or(name));
    if name != *last {
        out.push_str(&format!(
            "# HELP {family} {}\n# TYPE {family} counter\n",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        ));
        *last = name;
    }
    let labels: Vec<String> = labels
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", labels.join(","))
    };
    out.push_str(&format!("{family}_total{labels} {value}\n"));
}

/// A label value as OpenMetrics spells it.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The time [`Health`] measures with: the monotonic clock, or one that only
/// moves when told (tests: "the game loop has not turned for a minute"
/// without waiting a minute).
#[derive(Clone, Debug)]
pub struct Clock {
    origin: Instant,
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The monotonic clock.
    pub fn system() -> Self {
        Self {
            origin: Instant::now(),
            manual: None,
        }
    }

    /// A clock standing still until [`Clock::advance`] moves it.
    pub fn manual() -> Self {
        Self {
            origin: Instant::now(),
            manual: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    /// Moves a manual clock forward; the system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Some(ms) = &self.manual {
            let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
            ms.fetch_add(by, Ordering::Relaxed);
        }
    }

    /// Time since the clock started.
    pub fn elapsed(&self) -> Duration {
        match &self.manual {
            Some(ms) => Duration::from_millis(ms.load(Ordering::Relaxed)),
            None => self.origin.elapsed(),
        }
    }
}

/// `/readyz` while the edit buffer is full.
pub const READ_ONLY_REASON: &str = "read-only: limits.max_unwritten_edits edits wait for the store";

/// What `/healthz` and `/readyz` look at.
#[derive(Debug)]
pub struct Health {
    clock: Clock,
    /// Milliseconds on `clock` when the game loop last turned.
    last_turn_ms: AtomicU64,
    /// The server is shutting down.
    pub draining: AtomicBool,
    /// A shutdown is scheduled (a countdown runs): players play on, but
    /// new ones should go elsewhere.
    pub shutdown_scheduled: AtomicBool,
    /// The drain is over (every edit stored); the process only waits for
    /// its signal.
    pub drained: AtomicBool,
    /// `limits.max_unwritten_edits` edits are held in memory: new edits
    /// are refused until the store takes some.
    pub edits_full: AtomicBool,
    /// The last store call succeeded.
    pub store_ok: AtomicBool,
    /// The store answered at least once since start.
    pub store_seen: AtomicBool,
    /// Players connected.
    pub players: AtomicUsize,
    /// Player limit.
    pub max_players: usize,
}

impl Health {
    /// Fresh health state, on the system clock.
    pub fn new(max_players: usize) -> Self {
        Self::with_clock(max_players, Clock::system())
    }

    /// Fresh health state measuring time with `clock`.
    pub fn with_clock(max_players: usize, clock: Clock) -> Self {
        Self {
            clock,
            last_turn_ms: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            shutdown_scheduled: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            edits_full: AtomicBool::new(false),
            store_ok: AtomicBool::new(false),
            store_seen: AtomicBool::new(false),
            players: AtomicUsize::new(0),
            max_players,
        }
    }

    /// Records that the game loop turned.
    pub fn turn(&self) {
        let ms = u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_turn_ms.store(ms, Ordering::Relaxed);
    }

    /// How long ago the game loop last turned.
    pub fn since_last_turn(&self) -> Duration {
        let now = self.clock.elapsed();
        now.saturating_sub(Duration::from_millis(
            self.last_turn_ms.load(Ordering::Relaxed),
        ))
    }

    /// The time on the health clock (for timers that tests control, e.g.
    /// how long the server has been empty).
    pub fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    /// Records a store outcome.
    pub fn store_result(&self, ok: bool) {
        self.store_ok.store(ok, Ordering::Relaxed);
        if ok {
            self.store_seen.store(true, Ordering::Relaxed);
        }
    }

    /// Whether new players should be sent here, and if not why.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.draining.load(Ordering::Relaxed) {
            Err("draining")
        } else if self.shutdown_scheduled.load(Ordering::Relaxed) {
            Err("shutdown scheduled")
        } else if self.edits_full.load(Ordering::Relaxed) {
            Err(READ_ONLY_REASON)
        } else if !self.store_ok.load(Ordering::Relaxed) {
            Err("store unavailable")
        } else if self.players.load(Ordering::Relaxed) >= self.max_players {
            Err("full")
        } else {
            Ok(())
        }
    }
}
