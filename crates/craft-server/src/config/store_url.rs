//! The store URL setting, kept out of logs: `Debug` and `Display` show it
//! with its secrets hidden.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A store URL. `Debug` and `Display` hide passwords and secrets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoreUrl(pub String);

impl StoreUrl {
    /// The URL as given (secrets included): only for opening the store.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The scheme (`sqlite`, `postgres`, ...), lower case.
    pub fn scheme(&self) -> String {
        self.0
            .split_once(':')
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// The URL with any password and secret-looking query values replaced.
    pub fn redacted(&self) -> String {
        let Ok(mut url) = url::Url::parse(&self.0) else {
            // Not a URL with an authority (e.g. `sqlite:craft.db`): no secrets.
            return self.0.clone();
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        let secret = |k: &str| {
            let k = k.to_ascii_lowercase();
            ["password", "secret", "token", "key"]
                .iter()
                .any(|s| k.contains(s))
                && !k.ends_with("_arn")
        };
        if url.query_pairs().any(|(k, _)| secret(&k)) {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if secret(&k) {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string()
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({})", self.redacted())
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_url_hides_secrets() {
        let url = StoreUrl("postgres://craft:hunter2@db:5432/world?sslmode=require".into());
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(!url.to_string().contains("hunter2"));
        let url = StoreUrl("dataapi://world?resource_arn=arn:aws:rds:x&secret_arn=arn:aws:secretsmanager:y&token=abc".into());
        assert!(
            url.to_string().contains("secret_arn=arn"),
            "ARNs are not secrets: {url}"
        );
        assert!(!url.to_string().contains("abc"));
        assert_eq!(
            StoreUrl("sqlite:craft.db".into()).to_string(),
            "sqlite:craft.db"
        );
        assert_eq!(StoreUrl("Postgres://x".into()).scheme(), "postgres");
    }
}
