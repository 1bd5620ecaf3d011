//! Spot interruptions: watching the EC2 instance metadata service (IMDSv2).
//!
//! EC2 gives a spot instance two minutes' notice before reclaiming it, and
//! may recommend a rebalance earlier. Every `poll_interval` (AWS suggests
//! 5 s) the watcher asks, with an IMDSv2 session token
//! (`PUT /latest/api/token`, `X-aws-ec2-metadata-token-ttl-seconds`):
//!
//! - `GET /latest/meta-data/spot/instance-action`: 404 while nothing is
//!   planned; 200 `{"action": "terminate", "time": "2025-01-01T12:02:00Z"}`
//!   once the instance is to be stopped, hibernated or terminated;
//! - `GET /latest/meta-data/events/recommendations/rebalance`: 404, or 200
//!   `{"noticeTime": "..."}` when the instance is at elevated risk.
//!
//! On a notice the server tells every player (`imds.message`, with the
//! seconds left) and starts the drain, the same path as SIGTERM: stop
//! admitting, flush, Agones `Shutdown`, exit 0. A draining server is not
//! ready, so Kubernetes stops sending players its way at once.
//!
//! From a pod (not on the host network) IMDSv2 answers only when the
//! instance's metadata hop limit is at least 2; with 1, the token request
//! times out and the watcher says so in the log.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use tracing::{debug, info, warn};

use crate::config::{ImdsConfig, ShutdownConfig};
use crate::control::Control;

/// Header asking for a token of that many seconds.
const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
/// Header carrying the token.
const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
const INSTANCE_ACTION: &str = "/latest/meta-data/spot/instance-action";
const REBALANCE: &str = "/latest/meta-data/events/recommendations/rebalance";
/// Notice EC2 gives before reclaiming a spot instance, when the notice
/// itself does not say.
const SPOT_NOTICE: Duration = Duration::from_secs(120);

/// Whether this machine looks like an EC2 instance.
pub fn on_ec2() -> bool {
    looks_like_ec2(Path::new("/sys"))
}

/// The EC2 identity under a `/sys` tree: Nitro instances name their vendor
/// (and put the instance id in the asset tag), Xen ones their hypervisor.
fn looks_like_ec2(sys: &Path) -> bool {
    let read = |p: &str| std::fs::read_to_string(sys.join(p)).unwrap_or_default();
    read("devices/virtual/dmi/id/sys_vendor").trim() == "Amazon EC2"
        || read("devices/virtual/dmi/id/board_asset_tag")
            .trim()
            .starts_with("i-")
        || read("hypervisor/uuid")
            .trim()
            .to_ascii_lowercase()
            .starts_with("ec2")
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    /// The configured URL is unusable.
    #[error("invalid imds.base_url: {0}")]
    Config(String),
    /// No answer, or none in time.
    #[error("the instance metadata service does not answer: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// An unexpected status.
    #[error("the instance metadata service answered {status} to {path}")]
    Status {
        /// HTTP status.
        status: u16,
        /// What was asked.
        path: &'static str,
    },
}

/// What the metadata service announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The instance will be stopped, hibernated or terminated.
    Interruption {
        /// `terminate`, `stop` or `hibernate`.
        action: String,
        /// When, if the notice says.
        at: Option<SystemTime>,
    },
    /// The instance is at elevated risk of interruption.
    Rebalance,
}

#[derive(Debug, Deserialize)]
struct InstanceAction {
    #[serde(default)]
    action: String,
    #[serde(default)]
    time: Option<String>,
}

/// Polls the metadata service.
#[derive(Debug)]
pub struct Watcher {
    http: reqwest::Client,
    base: String,
    config: ImdsConfig,
    token: Option<(String, Instant)>,
    rebalance_seen: bool,
    flush_reserve: Duration,
    rebalance_notice: Duration,
}

impl Watcher {
    /// A watcher for `config` (validated: no I/O here).
    pub fn new(config: &ImdsConfig) -> Result<Self, ImdsError> {
        config.validate().map_err(ImdsError::Config)?;
        let http = reqwest::Client::builder()
            // Link-local metadata must never go through an HTTP proxy.
            .no_proxy()
            .timeout(config.timeout)
            .build()
            .map_err(|e| ImdsError::Config(e.to_string()))?;
        Ok(Self {
            http,
            base: config.base_url.trim_end_matches('/').to_owned(),
            config: config.clone(),
            token: None,
            rebalance_seen: false,
            flush_reserve: ShutdownConfig::default().flush_reserve,
            rebalance_notice: Duration::ZERO,
        })
    }

    /// Takes the shutdown timing from `shutdown`: an interruption closes
    /// connections `flush_reserve` before the instance goes away, a
    /// rebalance recommendation (when it drains) after `notice`.
    pub fn with_shutdown(mut self, shutdown: &ShutdownConfig) -> Self {
        self.flush_reserve = shutdown.flush_reserve;
        self.rebalance_notice = shutdown.notice;
        self
    }

    /// Polls until a notice arrives, then warns the players and starts the
    /// drain through `control`.
    pub async fn run(mut self, control: Arc<Control>) {
        let mut failing = false;
        loop {
            match self.poll().await {
                Ok(Some(notice)) => {
                    if self.act(notice, &control).await {
                        return;
                    }
                }
                Ok(None) => {
                    if failing {
                        info!("the instance metadata service answers again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        warn!(
                            error = %e,
                            "cannot poll for spot interruption notices; retrying (from a pod, IMDSv2 needs a metadata hop limit of 2)"
                        );
                        failing = true;
                    } else {
                        debug!(error = %e, "IMDS poll failed again");
                    }
                }
            }
            if control.drain_requested() {
                // Draining for another reason: nothing left to watch for.
                return;
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    /// Acts on a notice; true when the drain was started.
    async fn act(&mut self, notice: Notice, control: &Control) -> bool {
        match notice {
            Notice::Interruption { action, at } => {
                let left = at
                    .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default())
                    .unwrap_or(SPOT_NOTICE);
                warn!(%action, seconds_left = left.as_secs(), "spot interruption notice: counting down");
                control
                    .announce(&self.config.interruption_message(left))
                    .await;
                // Connections close early enough for the last flush to land
                // before the instance goes away.
                let close_in = left.saturating_sub(self.flush_reserve);
                control.schedule_shutdown(
                    &format!("spot interruption ({action})"),
                    tokio::time::Instant::now() + close_in,
                    true,
                );
                true
            }
            Notice::Rebalance if self.config.drain_on_rebalance => {
                warn!("EC2 rebalance recommendation: draining");
                control.announce(&self.config.rebalance_message).await;
                control.schedule_shutdown(
                    "rebalance recommendation",
                    tokio::time::Instant::now() + self.rebalance_notice,
                    true,
                );
                true
            }
            Notice::Rebalance => {
                if !std::mem::replace(&mut self.rebalance_seen, true) {
                    warn!(
                        "EC2 rebalance recommendation (imds.drain_on_rebalance is off: serving on)"
                    );
                }
                false
            }
        }
    }

    /// One round: the interruption notice first, then the rebalance
    /// recommendation.
    pub async fn poll(&mut self) -> Result<Option<Notice>, ImdsError> {
        if let Some(body) = self.get(INSTANCE_ACTION).await? {
            let parsed: Option<InstanceAction> = serde_json::from_str(&body).ok();
            if parsed.is_none() {
                warn!(body = %body.chars().take(200).collect::<String>(), "unreadable spot instance-action; treating it as a termination notice");
            }
            let (action, time) = match parsed {
                Some(a) => (a.action, a.time),
                None => (String::new(), None),
            };
            let action = if action.is_empty() {
                "terminate".to_owned()
            } else {
                action
            };
            let at = time.and_then(|t| humantime::parse_rfc3339_weak(t.trim()).ok());
            return Ok(Some(Notice::Interruption { action, at }));
        }
        if !self.rebalance_seen && self.get(REBALANCE).await?.is_some() {
            return Ok(Some(Notice::Rebalance));
        }
        Ok(None)
    }

    /// A session token, fetched anew when close to expiring.
    async fn token(&mut self) -> Result<String, ImdsError> {
        let ttl = self.config.token_ttl;
        if let Some((token, fetched)) = &self.token {
            // Renew at half-life: a token never expires between check and use.
            if fetched.elapsed() < ttl / 2 {
                return Ok(token.clone());
            }
        }
        let response = self
            .http
            .put(format!("{}/latest/api/token", self.base))
            .header(TTL_HEADER, ttl.as_secs().to_string())
            .send()
            .await
            .map_err(ImdsError::Unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ImdsError::Status {
                status: status.as_u16(),
                path: "/latest/api/token",
            });
        }
        let token = response
            .text()
            .await
            .map_err(ImdsError::Unreachable)?
            .trim()
            .to_owned();
        self.token = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    /// GETs `path`: `Some(body)` on 200, `None` on 404. A token the service
    /// no longer takes (401) is replaced once.
    async fn get(&mut self, path: &'static str) -> Result<Option<String>, ImdsError> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let response = self
                .http
                .get(format!("{}{path}", self.base))
                .header(TOKEN_HEADER, token)
                .send()
                .await
                .map_err(ImdsError::Unreachable)?;
            match response.status().as_u16() {
                200 => {
                    return response
                        .text()
                        .await
                        .map(Some)
                        .map_err(ImdsError::Unreachable);
                }
                404 => return Ok(None),
                401 if attempt == 0 => {
                    debug!("IMDS token refused; fetching a new one");
                    self.token = None;
                }
                status => return Err(ImdsError::Status { status, path }),
            }
        }
        Err(ImdsError::Status { status: 401, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_is_recognised_from_sys() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!looks_like_ec2(dir.path()));
        let dmi = dir.path().join("devices/virtual/dmi/id");
        std::fs::create_dir_all(&dmi).expect("mkdir");
        std::fs::write(dmi.join("sys_vendor"), "QEMU\n").expect("write");
        assert!(!looks_like_ec2(dir.path()));
        std::fs::write(dmi.join("sys_vendor"), "Amazon EC2\n").expect("write");
        assert!(looks_like_ec2(dir.path()));
    }
}
