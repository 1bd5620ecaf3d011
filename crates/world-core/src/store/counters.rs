//! [`StoreCounters`]: the counters a backend keeps for
//! [`BlockStore::counters`](super::BlockStore::counters), in one type for
//! every backend.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use super::StoreCounter;

/// Label names and values of one series (`[("op", "apply")]`).
pub type Labels<'a> = &'a [(&'static str, &'static str)];

/// One series: counter name and labels.
type Series = (&'static str, Vec<(&'static str, &'static str)>);

/// Counters by name and labels, each a growing `f64` (request counts,
/// bytes, capacity units), reported as [`StoreCounter`]s.
///
/// Series appear in [`snapshot`](Self::snapshot) once added to or
/// [declared](Self::declare), ordered by name, then labels.
#[derive(Debug)]
pub struct StoreCounters {
    help: &'static [(&'static str, &'static str)],
    values: Mutex<BTreeMap<Series, f64>>,
}

impl StoreCounters {
    /// No counters yet; `help` gives each counter name its help text.
    pub const fn new(help: &'static [(&'static str, &'static str)]) -> Self {
        Self {
            help,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    fn values(&self) -> std::sync::MutexGuard<'_, BTreeMap<Series, f64>> {
        // A poisoned lock only means a panic elsewhere; the numbers are plain.
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `value` to the series `name{labels}`.
    pub fn add(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        *self.values().entry((name, labels.to_vec())).or_insert(0.0) += value;
    }

    /// Adds one to the series `name{labels}`.
    pub fn incr(&self, name: &'static str, labels: Labels<'_>) {
        self.add(name, labels, 1.0);
    }

    /// Reports the series `name{labels}` (at 0 until added to), so that
    /// `/metrics` shows every operation from the start.
    pub fn declare(&self, name: &'static str, labels: Labels<'_>) {
        self.values().entry((name, labels.to_vec())).or_insert(0.0);
    }

    /// Every series, for [`BlockStore::counters`](super::BlockStore::counters).
    pub fn snapshot(&self) -> Vec<StoreCounter> {
        self.values()
            .iter()
            .map(|((name, labels), value)| StoreCounter {
                name,
                help: self.help_of(name),
                labels: labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
                value: *value,
            })
            .collect()
    }

    /// The sum of counter `name` over the series that have a label with
    /// value `label` (any label name), or over all its series when `label`
    /// is `None`.
    pub fn sum(&self, name: &str, label: Option<&str>) -> f64 {
        self.values()
            .iter()
            .filter(|((n, labels), _)| {
                *n == name && label.is_none_or(|l| labels.iter().any(|(_, v)| *v == l))
            })
            .fold(0.0, |total, (_, v)| total + v)
    }

    fn help_of(&self, name: &str) -> &'static str {
        self.help
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("Store counter.", |(_, help)| help)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &[(&str, &str)] = &[("requests_total", "Requests, by operation.")];

    #[test]
    fn series_add_up_and_report_in_order() {
        let c = StoreCounters::new(HELP);
        c.declare("requests_total", &[("op", "ping")]);
        c.incr("requests_total", &[("op", "apply")]);
        c.add("requests_total", &[("op", "apply")], 2.0);
        c.add("bytes_total", &[], 10.0);
        let snapshot = c.snapshot();
        let rendered: Vec<_> = snapshot
            .iter()
            .map(|s| (s.name, s.labels.clone(), s.value, s.help))
            .collect();
        assert_eq!(
            rendered,
            [
                ("bytes_total", vec![], 10.0, "Store counter."),
                (
                    "requests_total",
                    vec![("op", "apply".to_owned())],
                    3.0,
                    "Requests, by operation."
                ),
                (
                    "requests_total",
                    vec![("op", "ping".to_owned())],
                    0.0,
                    "Requests, by operation."
                ),
            ]
        );
        assert_eq!(c.sum("requests_total", None), 3.0);
        assert_eq!(c.sum("requests_total", Some("apply")), 3.0);
        assert_eq!(c.sum("requests_total", Some("ping")), 0.0);
        // A sum of nothing is +0.0, not -0.0.
        assert!(c.sum("nothing", None).is_sign_positive());
    }
}
