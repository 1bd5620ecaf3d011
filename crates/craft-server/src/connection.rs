//! One client connection: a reader that frames and parses lines, and a
//! writer that drains the client's [`Outbound`] queue.
//!
//! The reader enforces the line limit (lines over 1 KiB are dropped up to
//! their newline), ignores malformed lines (logged at debug) and slows a
//! flooding client down with a token bucket instead of letting it starve
//! the game loop. The writer disconnects a client that does not read.
//!
//! # Order of lines
//!
//! What the server guarantees about the order in which the game loop
//! handles client lines:
//!
//! - Lines of one client are handled in the order it sent them, and its
//!   disconnection after its last line.
//! - Lines of different clients are handled in the order the server read
//!   them from their sockets. One reader thread serves every socket, first
//!   come first served: its scheduler is first-in first-out and sockets are
//!   taken in the order they became readable. Every line of one read goes
//!   to the game loop in one step (the room for all of them in the event
//!   queue is taken at once), so a line read later never overtakes one read
//!   earlier, even when a read brought several lines or the game loop is
//!   behind.
//! - Two things hold one player's lines back, and only that player's: the
//!   rate limit (a client over `limits.lines_per_second` has its later
//!   lines delayed) and a command waiting for something not in memory (a
//!   chunk load, terrain, a flush, a login check; see [`world`](crate::world)).
//!
//! The server cannot see when bytes reached the machine, only when it
//! reads them: lines that arrive while the reader thread is not running
//! (descheduled by the system) are read socket by socket, in the order the
//! sockets became readable, each read taking what its socket holds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use world_core::protocol::{ClientCommand, MAX_LINE_BYTES, ParseError, parse_line};

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::outbound::{CloseReason, Outbound};
use crate::world::{ConnId, Event};

/// How long a write may block before the client is considered gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes to one client are at least this far apart: a busy client gets
/// its lines in fewer, larger writes (far fewer system calls), a quiet one
/// gets each line at once.
const COALESCE_MIN: Duration = Duration::from_millis(4);

/// The window never grows past this: what a crowd adds to an edit's
/// latency at most.
const COALESCE_MAX: Duration = Duration::from_millis(32);

/// Writes a second the whole server aims to stay under. A write to a
/// loopback or LAN socket costs microseconds of kernel time whatever its
/// size (on loopback the receiver's TCP work runs on the sender's CPU too),
/// so with many busy clients the number of writes, not the bytes, is what
/// the server spends its CPU on; past `WRITES_PER_SECOND / 250` players the
/// window grows with the player count so the writes do not.
const WRITES_PER_SECOND: u64 = 62_500;

/// The time between two writes to one client when `players` are online.
fn coalesce_window(players: i64) -> Duration {
    let players = u64::try_from(players).unwrap_or(0);
    Duration::from_nanos(players.saturating_mul(1_000_000_000) / WRITES_PER_SECOND)
        .clamp(COALESCE_MIN, COALESCE_MAX)
}

/// Every connection's reader runs on one dedicated single-threaded
/// runtime. Its scheduler is first-in first-out, so clients whose lines
/// arrive first are parsed (and reach the game loop) first; a work-stealing
/// runtime's last-in first-out slot would let a later client overtake an
/// earlier one whenever both become readable in the same poll. Parsing is
/// cheap next to the game loop, which is a single task anyway; writes stay
/// on the main runtime.
#[derive(Debug)]
pub struct Readers {
    jobs: Option<mpsc::UnboundedSender<ReadJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct ReadJob {
    stream: std::net::TcpStream,
    conn: ConnId,
    events: mpsc::Sender<Event>,
    limits: Limits,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
    done: tokio::sync::oneshot::Sender<()>,
}

impl Readers {
    /// Starts the reader thread.
    pub fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (jobs, mut rx) = mpsc::unbounded_channel::<ReadJob>();
        let thread = std::thread::Builder::new().name("craft-readers".into()).spawn(move || {
            let tracker = tokio_util::task::TaskTracker::new();
            runtime.block_on(async {
                while let Some(job) = rx.recv().await {
                    tracker.spawn(async move {
                        match TcpStream::from_std(job.stream) {
                            Ok(stream) => {
                                // Read-only use of this descriptor: writing
                                // (and the final shutdown) is the writer's.
                                read_loop(stream, job.conn, &job.events, &job.limits, &job.metrics, &job.cancel).await;
                            }
                            Err(e) => debug!(conn = job.conn, error = %e, "cannot register the connection"),
                        }
                        // Queued behind the client's last line, and before
                        // the writer closes the socket: once the client sees
                        // the connection end, the game loop has it in line.
                        let _ = job.events.send(Event::Disconnected { conn: job.conn }).await;
                        job.cancel.cancel();
                        let _ = job.done.send(());
                    });
                }
                tracker.close();
                tracker.wait().await;
            });
        })?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Hands a connection to the reader thread; false when it has stopped.
    fn submit(&self, job: ReadJob) -> bool {
        self.jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok())
    }

    /// Stops taking connections and waits for the readers to finish (cancel
    /// the connections first).
    pub fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.jobs = None;
    }
}

/// Serves one accepted connection until it closes: `out` is the queue the
/// game loop already knows it by (its [`Event::Connected`] went first).
/// `stop` cancels it (the server is going away).
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    conn: ConnId,
    out: Arc<Outbound>,
    events: mpsc::Sender<Event>,
    limits: Limits,
    metrics: Arc<Metrics>,
    readers: Arc<Readers>,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    // One descriptor for the reader thread, one for writing here.
    let split = stream.into_std().and_then(|s| Ok((s.try_clone()?, s)));
    let (read_stream, write_stream) =
        match split.and_then(|(r, w)| Ok((r, TcpStream::from_std(w)?))) {
            Ok(pair) => pair,
            Err(e) => {
                debug!(%addr, error = %e, "cannot set up the connection");
                let _ = events.send(Event::Disconnected { conn }).await;
                return;
            }
        };
    let cancel = stop.child_token();
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let job = ReadJob {
        stream: read_stream,
        conn,
        events: events.clone(),
        limits,
        metrics: metrics.clone(),
        cancel: cancel.clone(),
        done: done_tx,
    };
    let reading = readers.submit(job);
    if !reading {
        cancel.cancel();
    }
    write_loop(write_stream, out, cancel.clone(), metrics, conn).await;
    cancel.cancel();
    if reading {
        // The reader tells the game loop the client is gone.
        let _ = done.await;
    } else {
        let _ = events.send(Event::Disconnected { conn }).await;
    }
}

/// Token bucket: `rate` lines per second, `burst` at once.
struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: Instant::now(),
        }
    }

    /// How long to wait before the next line may go.
    fn take(&mut self) -> Option<Duration> {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            self.tokens -= 1.0;
            Some(Duration::from_secs_f64(wait))
        }
    }
}

async fn read_loop(
    mut reader: impl AsyncRead + Unpin,
    conn: ConnId,
    events: &mpsc::Sender<Event>,
    limits: &Limits,
    metrics: &Metrics,
    cancel: &CancellationToken,
) {
    let mut bucket = Bucket::new(limits.lines_per_second, limits.line_burst);
    // Room for one maximal line; the buffer never grows past that.
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut discarding = false;
    // The commands of one read, handed to the game loop together.
    let mut commands: Vec<ClientCommand> = Vec::new();
    loop {
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(512);
        }
        let read = tokio::select! {
            _ = cancel.cancelled() => return,
            read = reader.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                debug!(conn, error = %e, "read failed");
                return;
            }
        }
        let received = Instant::now();
        let mut start = 0;
        while let Some(offset) = buf[start..].iter().position(|b| *b == b'\n') {
            let line = &buf[start..start + offset];
            start += offset + 1;
            if std::mem::take(&mut discarding) {
                continue;
            }
            if line.is_empty() || line == b"\r" {
                continue;
            }
            match parse_line(line) {
                Ok(cmd) => commands.push(cmd),
                Err(e) => {
                    metrics.lines_malformed.inc();
                    debug!(conn, error = %e, line = %String::from_utf8_lossy(&line[..line.len().min(64)]), "ignoring malformed line");
                }
            }
        }
        buf.drain(..start);
        if buf.len() > MAX_LINE_BYTES + 1 {
            // No newline within the limit: drop up to the next one.
            metrics.lines_malformed.inc();
            debug!(conn, error = %ParseError::TooLong(buf.len()), "ignoring overlong line");
            buf.clear();
            discarding = true;
        }
        if buf.is_empty() && buf.capacity() > 4096 {
            buf = Vec::with_capacity(1024);
        }
        if !dispatch(&mut commands, conn, received, &mut bucket, events, cancel).await {
            return;
        }
    }
}

/// Hands the commands of one read to the game loop, emptying `commands`:
/// those the rate limit lets through now in one step, then, after each
/// pause the limit imposes, the next ones. False when the connection or the
/// game loop is gone.
async fn dispatch(
    commands: &mut Vec<ClientCommand>,
    conn: ConnId,
    received: Instant,
    bucket: &mut Bucket,
    events: &mpsc::Sender<Event>,
    cancel: &CancellationToken,
) -> bool {
    let mut remaining = commands.len();
    let mut pending = commands.drain(..);
    // Commands allowed by the rate limit and not sent yet.
    let mut allowed = 0;
    while remaining > 0 {
        let mut wait = None;
        while allowed < remaining {
            match bucket.take() {
                None => allowed += 1,
                Some(pause) => {
                    wait = Some(pause);
                    break;
                }
            }
        }
        if allowed > 0 {
            // Room for all of them at once: the event queue is fair, so
            // nobody's later lines slip in between.
            let permits = tokio::select! {
                _ = cancel.cancelled() => return false,
                permits = events.reserve_many(allowed) => permits,
            };
            let Ok(permits) = permits else {
                return false;
            };
            for permit in permits {
                if let Some(cmd) = pending.next() {
                    permit.send(Event::Command {
                        conn,
                        cmd,
                        received,
                    });
                }
            }
            remaining -= allowed;
            allowed = 0;
        }
        if let Some(pause) = wait {
            tokio::select! {
                _ = cancel.cancelled() => return false,
                _ = tokio::time::sleep(pause) => {}
            }
            // The bucket already counted the command it paused for.
            allowed = 1;
        }
    }
    true
}

async fn write_loop(
    mut writer: impl AsyncWrite + Unpin,
    out: Arc<Outbound>,
    cancel: CancellationToken,
    metrics: Arc<Metrics>,
    conn: ConnId,
) {
    let mut buf = Vec::new();
    let mut last_write = Instant::now() - COALESCE_MIN;
    'park: loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break,
            next = out.next(&mut buf) => next,
        };
        match next {
            None => {}
            Some(CloseReason::Overflow) => {
                info!(conn, "client too far behind; disconnecting");
                metrics.error("slow_client");
                break;
            }
            Some(CloseReason::Server) => break,
        }
        // Something is queued. While lines keep coming, this task runs on
        // its own timer, one write per window, and the game loop never has
        // to wake it; once a window passes without a line it parks again.
        loop {
            let window = coalesce_window(metrics.players.get());
            let due = last_write + window;
            if due > Instant::now() {
                tokio::select! {
                    _ = cancel.cancelled() => break 'park,
                    _ = tokio::time::sleep_until(due.into()) => {}
                }
                out.take_more(&mut buf);
            }
            last_write = Instant::now();
            let written = tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&buf)).await;
            match written {
                Ok(Ok(())) => {
                    metrics.bytes_out.inc_by(buf.len() as u64);
                }
                Ok(Err(e)) => {
                    debug!(conn, error = %e, "write failed");
                    break 'park;
                }
                Err(_) => {
                    info!(conn, "client stopped reading; disconnecting");
                    metrics.error("slow_client");
                    break 'park;
                }
            }
            buf = out.recycle(buf);
            tokio::select! {
                _ = cancel.cancelled() => break 'park,
                _ = tokio::time::sleep_until((last_write + window).into()) => {}
            }
            if !out.take_more(&mut buf) {
                continue 'park;
            }
        }
    }
    let _ = writer.shutdown().await;
    cancel.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_window_grows_with_the_crowd() {
        assert_eq!(coalesce_window(-1), COALESCE_MIN);
        assert_eq!(coalesce_window(10), COALESCE_MIN);
        assert_eq!(coalesce_window(1_000), Duration::from_millis(16));
        assert_eq!(coalesce_window(100_000), COALESCE_MAX);
    }

    fn talk(text: &str) -> ClientCommand {
        ClientCommand::Talk(text.to_owned())
    }

    /// The game loop is behind (its queue full): a read of three lines
    /// waits for room, and a line another client's reader read afterwards
    /// waits behind all three, not between them.
    #[tokio::test]
    async fn a_read_reaches_the_game_loop_in_one_piece() {
        let (events, mut rx) = mpsc::channel::<Event>(4);
        for i in 0..4 {
            events
                .try_send(Event::Disconnected { conn: i })
                .expect("room");
        }
        // A reader handing over one read's lines, unlimited by rate.
        let reader = |conn: ConnId, texts: &'static [&'static str]| {
            let events = events.clone();
            tokio::spawn(async move {
                let mut cmds: Vec<ClientCommand> = texts.iter().map(|t| talk(t)).collect();
                let mut unlimited = Bucket::new(1000, 1000);
                let cancel = CancellationToken::new();
                dispatch(
                    &mut cmds,
                    conn,
                    Instant::now(),
                    &mut unlimited,
                    &events,
                    &cancel,
                )
                .await
            })
        };
        let first = reader(1, &["a1", "a2", "a3"]);
        // A single-threaded runtime: yielding lets the first reader run until
        // it waits for room, before the second one starts.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        let second = reader(2, &["b1"]);
        tokio::task::yield_now().await;
        let mut seen = Vec::new();
        while seen.len() < 8 {
            match rx.recv().await {
                Some(Event::Command {
                    cmd: ClientCommand::Talk(text),
                    ..
                }) => seen.push(text),
                Some(_) => seen.push("old".to_owned()),
                None => break,
            }
        }
        assert!(first.await.expect("first") && second.await.expect("second"));
        assert_eq!(seen, ["old", "old", "old", "old", "a1", "a2", "a3", "b1"]);
    }

    #[tokio::test]
    async fn lines_over_the_rate_limit_follow_in_order() {
        let (events, mut rx) = mpsc::channel::<Event>(16);
        let mut bucket = Bucket::new(10, 2);
        let mut cmds = vec![talk("1"), talk("2"), talk("3")];
        let cancel = CancellationToken::new();
        let sent = dispatch(&mut cmds, 1, Instant::now(), &mut bucket, &events, &cancel).await;
        assert!(sent && cmds.is_empty());
        drop(events);
        let mut seen = Vec::new();
        while let Some(Event::Command {
            cmd: ClientCommand::Talk(text),
            ..
        }) = rx.recv().await
        {
            seen.push(text);
        }
        assert_eq!(seen, ["1", "2", "3"]);
    }
}
