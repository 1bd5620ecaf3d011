//! CPU time and resident memory of a process, from Linux's `/proc`.
//!
//! Read from outside the process so that a server binary needs no metrics
//! endpoint for the benchmark: `/proc/PID/stat` gives user and system CPU
//! ticks, `/proc/PID/status` the resident set (`VmRSS`).

use std::time::Instant;

use serde::Serialize;

/// Why a process could not be sampled.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file could not be read (no such process, not Linux).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file did not look as expected.
    #[error("unexpected format of {0}")]
    Format(String),
}

/// One look at a process.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// User + system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident memory, in KiB.
    pub rss_kib: u64,
    /// Time its threads spent runnable but waiting for a CPU, in
    /// nanoseconds (`/proc/PID/task/*/schedstat`; 0 where unavailable).
    pub runqueue_ns: u64,
}

/// A process to watch (`None` pid: this process).
#[derive(Clone, Debug)]
pub struct Process {
    dir: String,
    ticks_per_second: f64,
}

impl Process {
    /// Process `pid`.
    pub fn pid(pid: u32) -> Self {
        Self::at(format!("/proc/{pid}"))
    }

    /// This process.
    pub fn current() -> Self {
        Self::at("/proc/self".to_owned())
    }

    fn at(dir: String) -> Self {
        Self {
            dir,
            ticks_per_second: ticks_per_second(),
        }
    }

    /// Takes a sample.
    pub fn sample(&self) -> Result<Sample, ProcError> {
        let at = Instant::now();
        let stat = read(&format!("{}/stat", self.dir))?;
        let cpu_ticks = parse_stat_ticks(&stat)
            .ok_or_else(|| ProcError::Format(format!("{}/stat", self.dir)))?;
        let status = read(&format!("{}/status", self.dir))?;
        let rss_kib = parse_status_rss(&status)
            .ok_or_else(|| ProcError::Format(format!("{}/status", self.dir)))?;
        Ok(Sample {
            at,
            cpu_ticks,
            rss_kib,
            runqueue_ns: self.runqueue_ns(),
        })
    }

    /// Sum over the threads of the time spent waiting to run: a process
    /// that wants more CPU than the machine gives it (other load, or the
    /// load generator itself) shows here, not in its CPU time.
    fn runqueue_ns(&self) -> u64 {
        let Ok(tasks) = std::fs::read_dir(format!("{}/task", self.dir)) else {
            return 0;
        };
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_ascii_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    }

    /// Time spent runnable but not running between two samples, in percent
    /// of the wall time (summed over threads, so it can exceed 100).
    pub fn runqueue_percent(&self, from: &Sample, to: &Sample) -> f64 {
        let wall = to.at.duration_since(from.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        100.0 * to.runqueue_ns.saturating_sub(from.runqueue_ns) as f64 / 1e9 / wall
    }

    /// CPU time used between two samples, seconds (user + system, all
    /// threads, exited ones included).
    pub fn cpu_seconds(&self, from: &Sample, to: &Sample) -> f64 {
        to.cpu_ticks.saturating_sub(from.cpu_ticks) as f64 / self.ticks_per_second
    }

    /// CPU used between two samples, in percent of one core.
    pub fn cpu_percent(&self, from: &Sample, to: &Sample) -> f64 {
        let wall = to.at.duration_since(from.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        100.0 * self.cpu_seconds(from, to) / wall
    }
}

fn read(path: &str) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| ProcError::Read {
        path: path.to_owned(),
        source,
    })
}

/// `utime + stime` (fields 14 and 15). The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from its last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// The kernel's `USER_HZ` as `getconf CLK_TCK` tells it; 100 on every
/// common Linux build when that is not available.
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// The 1-minute load average (`/proc/loadavg`), 0 where unavailable.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_ascii_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Memory and CPU of a process over a run, for reports.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct ProcessReport {
    /// Its pid (absent for this process).
    pub pid: Option<u32>,
    /// CPU used during the measured phase, in percent of one core.
    pub cpu_percent: f64,
    /// Time its threads were runnable but waited for a CPU during the
    /// measured phase, percent of wall time summed over threads: high
    /// means it was starved (by other load on the machine), so its
    /// latencies say more about the machine than about the code.
    pub runqueue_wait_percent: f64,
    /// Resident memory before the bots connected, KiB.
    pub rss_before_kib: u64,
    /// Resident memory with every bot connected and idle, KiB.
    pub rss_joined_kib: u64,
    /// Resident memory at the end of the measured phase, KiB.
    pub rss_end_kib: u64,
    /// Highest resident memory seen, KiB.
    pub rss_peak_kib: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "1234 (craft (server) x) S 1 1234 1234 0 -1 4194560 \
                    100 0 0 0 250 31 0 0 20 0 5 0 100 1000000 500 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(281));
        let status = "Name:\tcraft-server\nVmPeak:\t  9000 kB\nVmRSS:\t  4321 kB\n";
        assert_eq!(parse_status_rss(status), Some(4321));
        assert_eq!(parse_status_rss("Name: x\n"), None);
    }

    #[test]
    fn samples_this_process() {
        let me = Process::current();
        let a = me.sample().expect("sample self");
        assert!(a.rss_kib > 0);
        let b = me.sample().expect("sample self");
        assert!(me.cpu_percent(&a, &b) >= 0.0);
        assert!(me.runqueue_percent(&a, &b) >= 0.0);
        assert!(load_average() >= 0.0);
    }
}
