//! The bytes waiting to be written to one client.
//!
//! The game loop never waits on a socket: it appends encoded lines to the
//! client's [`Outbound`] and moves on. The connection's writer task drains
//! it. A client that stops reading sees its queue grow to the configured
//! bound, at which point it is disconnected, so it can never slow anyone
//! else down nor hold unbounded memory.

use std::sync::Mutex;

use tokio::sync::Notify;

/// Why a connection is being closed by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client did not read fast enough.
    Overflow,
    /// The server asked (wrong version, server full, shutdown).
    Server,
}

#[derive(Debug, Default)]
struct State {
    buf: Vec<u8>,
    closing: Option<CloseReason>,
    /// The writer waits in [`Outbound::next`] for a wake-up. Only then does
    /// a send notify it: a busy writer comes back for more on its own
    /// timer, and waking a task per send (or per write) costs more than
    /// the bytes.
    parked: bool,
}

/// A bounded byte queue between the game loop and a writer task.
#[derive(Debug)]
pub struct Outbound {
    state: Mutex<State>,
    notify: Notify,
    limit: usize,
}

/// Buffers larger than this are given back to the allocator once drained,
/// so that an idle connection holds little memory after a burst.
const KEEP_CAPACITY: usize = 4096;

impl Outbound {
    /// A queue that disconnects its client past `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain bytes and a flag: a panic elsewhere cannot leave
        // it inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `bytes`. Returns false (and starts closing the connection) if
    /// the client is too far behind; bytes sent after closing are dropped.
    pub fn send(&self, bytes: &[u8]) -> bool {
        let mut state = self.lock();
        if state.closing.is_some() {
            return false;
        }
        if state.buf.len() + bytes.len() > self.limit {
            state.closing = Some(CloseReason::Overflow);
            state.buf = Vec::new();
            drop(state);
            self.notify.notify_one();
            return false;
        }
        state.buf.extend_from_slice(bytes);
        let wake = std::mem::take(&mut state.parked);
        drop(state);
        if wake {
            self.notify.notify_one();
        }
        true
    }

    /// Asks the writer to send what is queued, then close the connection.
    pub fn close(&self) {
        let mut state = self.lock();
        if state.closing.is_none() {
            state.closing = Some(CloseReason::Server);
        }
        drop(state);
        self.notify.notify_one();
    }

    /// Whether the connection is closing.
    pub fn is_closing(&self) -> bool {
        self.lock().closing.is_some()
    }

    /// Bytes waiting.
    pub fn queued(&self) -> usize {
        self.lock().buf.len()
    }

    /// Waits until there is something to write or the queue is closing;
    /// swaps the queued bytes into `into` (which must be empty).
    pub async fn next(&self, into: &mut Vec<u8>) -> Option<CloseReason> {
        loop {
            // Register interest before checking, so a send between the check
            // and the await is not missed.
            let notified = self.notify.notified();
            {
                let mut state = self.lock();
                if !state.buf.is_empty() {
                    std::mem::swap(&mut state.buf, into);
                    return None;
                }
                if let Some(reason) = state.closing {
                    return Some(reason);
                }
                state.parked = true;
            }
            notified.await;
        }
    }

    /// Appends whatever is queued to `into` (used to fill a write that
    /// waited a moment for more). Returns whether anything was queued.
    pub fn take_more(&self, into: &mut Vec<u8>) -> bool {
        let mut state = self.lock();
        if state.buf.is_empty() {
            return false;
        }
        if into.is_empty() {
            std::mem::swap(&mut state.buf, into);
        } else {
            into.extend_from_slice(&state.buf);
            state.buf.clear();
        }
        true
    }

    /// Returns a drained buffer for reuse, trimming it if it grew large.
    pub fn recycle(&self, mut buf: Vec<u8>) -> Vec<u8> {
        buf.clear();
        if buf.capacity() > KEEP_CAPACITY {
            buf = Vec::new();
        }
        let mut state = self.lock();
        if state.buf.capacity() > KEEP_CAPACITY && state.buf.is_empty() {
            state.buf = Vec::new();
        }
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_in_order_and_overflows() {
        let out = Outbound::new(10);
        assert!(out.send(b"abc"));
        assert!(out.send(b"def"));
        let mut buf = Vec::new();
        assert_eq!(out.next(&mut buf).await, None);
        assert_eq!(buf, b"abcdef");
        let _ = out.recycle(buf);
        assert!(!out.send(b"01234567890"));
        let mut buf = Vec::new();
        assert_eq!(out.next(&mut buf).await, Some(CloseReason::Overflow));
        assert!(!out.send(b"x"), "closed queues take nothing");
    }

    #[tokio::test]
    async fn a_parked_writer_is_woken_and_a_busy_one_takes_what_came() {
        let out = std::sync::Arc::new(Outbound::new(100));
        let writer = {
            let out = out.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let closing = out.next(&mut buf).await;
                (closing, buf)
            })
        };
        // Let the writer park, then send: it must wake.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(out.send(b"a\n"));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), writer)
            .await
            .expect("the parked writer woke")
            .expect("task");
        assert_eq!(got, (None, b"a\n".to_vec()));
        // A writer that is not parked finds the lines on its next look.
        assert!(out.send(b"b\n"));
        assert!(out.send(b"c\n"));
        let mut buf = Vec::new();
        assert!(out.take_more(&mut buf));
        assert_eq!(buf, b"b\nc\n");
        assert!(!out.take_more(&mut buf));
    }

    #[tokio::test]
    async fn close_flushes_first() {
        let out = Outbound::new(100);
        out.send(b"bye\n");
        out.close();
        let mut buf = Vec::new();
        assert_eq!(out.next(&mut buf).await, None);
        assert_eq!(buf, b"bye\n");
        buf.clear();
        assert_eq!(out.next(&mut buf).await, Some(CloseReason::Server));
    }
}
