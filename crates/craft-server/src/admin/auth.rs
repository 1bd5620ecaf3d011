//! Who may act: the operator token.
//!
//! The token comes from, in this order, the `CRAFT_ADMIN_TOKEN`
//! environment variable, `admin.token_file` (re-read on every action, so a
//! rotated Kubernetes Secret applies at once) or `admin.token`. Requests
//! send it as `Authorization: Bearer TOKEN`; it is compared in constant
//! time and never echoed. Headers rather than cookies: a page on another
//! site cannot make the browser send it (no CSRF).

use std::path::PathBuf;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;
use tracing::warn;

use super::settings::{AdminConfig, AdminToken};

/// The environment variable that holds the token.
pub const TOKEN_ENV: &str = "CRAFT_ADMIN_TOKEN";

/// Tokens shorter than this are accepted with a warning: they can be
/// guessed.
const SHORT_TOKEN: usize = 16;

/// Why an action was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// No token is configured: the page is read-only.
    #[error("actions are disabled: no admin token is configured")]
    NotConfigured,
    /// The request carries no bearer token.
    #[error("this action needs the admin token (Authorization: Bearer)")]
    Missing,
    /// The token does not match.
    #[error("wrong admin token")]
    Wrong,
    /// The token file could not be read.
    #[error("the admin token file cannot be read")]
    Unreadable,
}

/// Where the token comes from.
#[derive(Clone, Debug)]
enum Source {
    Fixed(AdminToken),
    File(PathBuf),
}

/// The configured token source.
#[derive(Clone, Debug)]
pub struct Auth {
    source: Option<Source>,
}

impl Auth {
    /// The source `config` and the environment (`env`) name.
    pub fn new(config: &AdminConfig, env: impl Fn(&str) -> Option<String>) -> Self {
        let from_env = env(TOKEN_ENV)
            .map(|t| AdminToken::new(&t))
            .filter(|t| !t.expose().is_empty());
        let source = match (from_env, &config.token_file, &config.token) {
            (Some(token), _, _) => Some(Source::Fixed(token)),
            (None, Some(path), _) => Some(Source::File(path.clone())),
            (None, None, Some(token)) => Some(Source::Fixed(token.clone())),
            (None, None, None) => None,
        };
        Self { source }
    }

    /// Whether actions are possible at all.
    pub fn configured(&self) -> bool {
        self.source.is_some()
    }

    /// Checks at start-up that the token can be read (a clear error rather
    /// than refused actions later).
    pub fn preflight(&self) -> Result<(), String> {
        let token = match &self.source {
            None => return Ok(()),
            Some(Source::Fixed(token)) => token.clone(),
            Some(Source::File(path)) => read_token(path)
                .map_err(|e| format!("cannot read admin.token_file {}: {e}", path.display()))?,
        };
        if token.expose().is_empty() {
            return Err("the admin token is empty".into());
        }
        if token.expose().len() < SHORT_TOKEN {
            warn!(
                "the admin token is shorter than {SHORT_TOKEN} characters: use a long random one"
            );
        }
        Ok(())
    }

    /// Whether `headers` carry the token.
    pub async fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let expected = match &self.source {
            None => return Err(Refusal::NotConfigured),
            Some(Source::Fixed(token)) => token.clone(),
            Some(Source::File(path)) => {
                let path = path.clone();
                let read = tokio::task::spawn_blocking(move || read_token(&path)).await;
                match read {
                    Ok(Ok(token)) if !token.expose().is_empty() => token,
                    Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
                        warn!("the admin token file cannot be read; refusing actions");
                        return Err(Refusal::Unreadable);
                    }
                }
            }
        };
        let sent = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(Refusal::Missing)?;
        if bool::from(sent.as_bytes().ct_eq(expected.expose().as_bytes())) {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        }
    }
}

fn read_token(path: &std::path::Path) -> std::io::Result<AdminToken> {
    Ok(AdminToken::new(&std::fs::read_to_string(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        headers
    }

    #[tokio::test]
    async fn tokens_are_checked_in_order_of_precedence() {
        let config = AdminConfig {
            token: Some(AdminToken::new("from-the-config-file")),
            ..AdminConfig::default()
        };
        let auth = Auth::new(&config, |_| None);
        assert_eq!(auth.check(&bearer("from-the-config-file")).await, Ok(()));
        assert_eq!(auth.check(&bearer("nope")).await, Err(Refusal::Wrong));
        assert_eq!(auth.check(&HeaderMap::new()).await, Err(Refusal::Missing));

        let env = Auth::new(&config, |_| Some("from-the-environment".into()));
        assert_eq!(env.check(&bearer("from-the-environment")).await, Ok(()));
        assert_eq!(
            env.check(&bearer("from-the-config-file")).await,
            Err(Refusal::Wrong)
        );

        let none = Auth::new(&AdminConfig::default(), |_| None);
        assert!(!none.configured());
        assert_eq!(none.check(&bearer("x")).await, Err(Refusal::NotConfigured));
    }

    #[tokio::test]
    async fn a_token_file_is_read_on_every_check() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "first-token-0123456789\n").expect("write");
        let config = AdminConfig {
            token_file: Some(path.clone()),
            ..AdminConfig::default()
        };
        let auth = Auth::new(&config, |_| None);
        auth.preflight().expect("readable");
        assert_eq!(auth.check(&bearer("first-token-0123456789")).await, Ok(()));
        std::fs::write(&path, "rotated-token-0123456789").expect("rotate");
        assert_eq!(
            auth.check(&bearer("first-token-0123456789")).await,
            Err(Refusal::Wrong)
        );
        assert_eq!(
            auth.check(&bearer("rotated-token-0123456789")).await,
            Ok(())
        );
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(
            auth.check(&bearer("rotated-token-0123456789")).await,
            Err(Refusal::Unreadable)
        );
        assert!(auth.preflight().is_err());
    }
}
