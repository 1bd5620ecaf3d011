//! Recent warnings and errors for the dashboard: a `tracing` layer that
//! keeps the last few in a bounded ring.
//!
//! The ring is process-wide because the subscriber is: `main` installs
//! [`layer`] beside the log formatter, and a test can install it too.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Entries kept.
const KEEP: usize = 50;
/// Characters kept of one entry's text.
const MAX_TEXT: usize = 500;

/// One warning or error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Numbered from 1 in the order logged.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// `WARN` or `ERROR`.
    pub level: &'static str,
    /// The module that logged it.
    pub target: String,
    /// The message and its fields.
    pub text: String,
}

#[derive(Default)]
struct Ring {
    next: u64,
    entries: VecDeque<LogEntry>,
}

static RING: LazyLock<Mutex<Ring>> = LazyLock::new(Mutex::default);

/// The layer that records warnings and errors.
#[derive(Clone, Copy, Debug, Default)]
pub struct WarningLayer;

/// The layer to add to the subscriber.
pub fn layer() -> WarningLayer {
    WarningLayer
}

/// The most recent warnings and errors, oldest first.
pub fn recent() -> Vec<LogEntry> {
    let ring = RING.lock().unwrap_or_else(|e| e.into_inner());
    ring.entries.iter().cloned().collect()
}

/// Writes the message first, then the other fields as `name=value`.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for WarningLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        // More severe levels compare lower.
        if level > Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let mut text = text.message + &text.fields;
        if text.len() > MAX_TEXT {
            let mut end = MAX_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let mut ring = RING.lock().unwrap_or_else(|e| e.into_inner());
        ring.next += 1;
        let entry = LogEntry {
            seq: ring.next,
            time_ms,
            level: if level == Level::ERROR {
                "ERROR"
            } else {
                "WARN"
            },
            target: event.metadata().target().to_owned(),
            text,
        };
        if ring.entries.len() == KEEP {
            ring.entries.pop_front();
        }
        ring.entries.push_back(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn warnings_and_errors_are_kept_and_bounded() {
        let subscriber = tracing_subscriber::registry().with(layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::warn!(chunk = "0,0", "a warning to keep");
            for i in 0..KEEP {
                tracing::error!(i, "error");
            }
            tracing::warn!("the last one");
        });
        let recent = recent();
        assert_eq!(recent.len(), KEEP);
        let last = recent.last().expect("entries");
        assert_eq!((last.level, last.text.as_str()), ("WARN", "the last one"));
        assert!(recent.iter().all(|e| e.text != "not kept"));
        assert!(recent.windows(2).all(|w| w[0].seq < w[1].seq));
    }
}
