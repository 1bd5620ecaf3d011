//! `[admin]`: the operator token and the map's CPU budget.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The operator token. `Debug`, `Display` and serialization (what
/// `craft-server config` prints) never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// A token (surrounding whitespace is not part of it).
    pub fn new(token: &str) -> Self {
        Self(token.trim().to_owned())
    }

    /// The token itself: only for comparing with what a request sends.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

impl Serialize for AdminToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for AdminToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::new(&String::deserialize(d)?))
    }
}

/// The admin page's settings (the listener itself is `admin_listen`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// The operator token that allows actions (kick, broadcast, drain,
    /// rollback). Prefer `token_file` or the `CRAFT_ADMIN_TOKEN`
    /// environment variable, which override it. Without any, the page is
    /// read-only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<AdminToken>,
    /// A file holding the token (a mounted Kubernetes Secret); read on
    /// every action, so a rotated Secret applies without a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Map tiles rendered at once (each keeps a core busy for up to about
    /// a second when its terrain must be generated).
    pub tile_renders: usize,
    /// Map tile requests that may wait for a render; more are answered 503
    /// with `Retry-After` (the page retries).
    pub tile_queue: usize,
    /// Rendered map tiles kept in memory (about 10 to 100 KiB each).
    pub tile_cache: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: None,
            token_file: None,
            tile_renders: 1,
            tile_queue: 16,
            tile_cache: 1024,
        }
    }
}

impl AdminConfig {
    /// Checks ranges and consistency (no I/O).
    pub fn validate(&self) -> Result<(), String> {
        if self.token.is_some() && self.token_file.is_some() {
            return Err("set admin.token or admin.token_file, not both".into());
        }
        if self.token.as_ref().is_some_and(|t| t.0.is_empty()) {
            return Err("admin.token is empty".into());
        }
        if self.tile_renders == 0 || self.tile_cache == 0 {
            return Err("admin.tile_renders and admin.tile_cache must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_shows() {
        let config: AdminConfig = toml::from_str("token = \" s3cret-token \"").expect("parse");
        let token = config.token.clone().expect("token");
        assert_eq!(token.expose(), "s3cret-token");
        assert!(!format!("{config:?}").contains("s3cret"));
        let printed = toml::to_string(&config).expect("print");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("***"), "{printed}");
        config.validate().expect("valid");
    }

    #[test]
    fn validation_catches_mistakes() {
        let both = AdminConfig {
            token: Some(AdminToken::new("a")),
            token_file: Some("/run/secret".into()),
            ..AdminConfig::default()
        };
        assert!(both.validate().is_err());
        let empty = AdminConfig {
            token: Some(AdminToken::new("  ")),
            ..AdminConfig::default()
        };
        assert!(empty.validate().is_err());
        let idle = AdminConfig {
            tile_renders: 0,
            ..AdminConfig::default()
        };
        assert!(idle.validate().is_err());
    }
}
