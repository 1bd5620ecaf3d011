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

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::lifecycle::{Control, Switch};

/// Header asking for a token of that many seconds.
const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
/// Header carrying the token.
const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
const INSTANCE_ACTION: &str = "/latest/meta-data/spot/instance-action";
const REBALANCE: &str = "/latest/meta-data/events/recommendations/rebalance";
/// Notice EC2 gives before reclaiming a spot instance, when the notice
/// itself does not say.
const SPOT_NOTICE: Duration = Duration::from_secs(120);

/// `[imds]` settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImdsConfig {
    /// `auto`: on when the machine looks like an EC2 instance (its DMI or
    /// hypervisor identity, read from /sys: no network probe).
    pub enabled: Switch,
    /// The metadata service.
    pub base_url: String,
    /// Time between two polls.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Lifetime asked for each session token (at most 6 h).
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Longest wait for one answer.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Told to every player on an interruption notice; `{seconds}` becomes
    /// the time left.
    pub message: String,
    /// Also drain on a rebalance recommendation (an earlier, softer signal
    /// than the two-minute notice).
    pub drain_on_rebalance: bool,
    /// Told to every player when a rebalance recommendation starts the drain.
    pub rebalance_message: String,
}

impl Default for ImdsConfig {
    fn default() -> Self {
        Self {
            enabled: Switch::Auto,
            base_url: "http://169.254.169.254".to_owned(),
            poll_interval: Duration::from_secs(5),
            token_ttl: Duration::from_secs(6 * 3600),
            timeout: Duration::from_secs(2),
            message: "This server is being reclaimed in {seconds} seconds - your universe is saved"
                .to_owned(),
            drain_on_rebalance: true,
            rebalance_message: "This server is moving to another machine - your universe is saved"
                .to_owned(),
        }
    }
}

impl ImdsConfig {
    /// Checks ranges (no I/O).
    pub fn validate(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.base_url)
            .map_err(|e| format!("imds.base_url {:?}: {e}", self.base_url))?;
        if url.scheme() != "http" {
            return Err(format!("imds.base_url {:?} must be http", self.base_url));
        }
        if self.poll_interval.is_zero() || self.timeout.is_zero() {
            return Err("imds.poll_interval and imds.timeout must be positive".into());
        }
        let ttl = self.token_ttl.as_secs();
        if !(1..=21_600).contains(&ttl) {
            return Err("imds.token_ttl must be between 1s and 6h".into());
        }
        if self.message.contains('\n') || self.rebalance_message.contains('\n') {
            return Err("imds.message and imds.rebalance_message cannot contain newlines".into());
        }
        Ok(())
    }

    /// The interruption message with `left` filled in.
    pub fn interruption_message(&self, left: Duration) -> String {
        self.message
            .replace("{seconds}", &left.as_secs().to_string())
    }
}

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
        })
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
                warn!(%action, seconds_left = left.as_secs(), "spot interruption notice: draining");
                control
                    .announce(&self.config.interruption_message(left))
                    .await;
                control.request_drain(&format!("spot interruption ({action})"));
                true
            }
            Notice::Rebalance if self.config.drain_on_rebalance => {
                warn!("EC2 rebalance recommendation: draining");
                control.announce(&self.config.rebalance_message).await;
                control.request_drain("rebalance recommendation");
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

    #[test]
    fn message_and_validation() {
        let c = ImdsConfig::default();
        c.validate().expect("defaults");
        assert_eq!(
            c.interruption_message(Duration::from_secs(115)),
            "This server is being reclaimed in 115 seconds - your universe is saved"
        );
        let bad = ImdsConfig {
            token_ttl: Duration::from_secs(7 * 3600),
            ..ImdsConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
