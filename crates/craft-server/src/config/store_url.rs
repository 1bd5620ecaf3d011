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

    /// The URL with any password and secret-looking query values replaced,
    /// fit for logs and errors. Fails closed: a URL that does not parse, or
    /// parses in a way that may have put part of a secret elsewhere (a
    /// fragment, an `@` outside the user information: an unencoded `#`, `/`
    /// or `?` in a password), shows only its scheme.
    pub fn redacted(&self) -> String {
        let Some(mut url) = self.parse_cleanly() else {
            return self.scheme_only();
        };
        let mut changed = false;
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
            changed = true;
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
            changed = true;
        }
        if changed {
            url.to_string()
        } else {
            // Nothing to hide: as given (a path stays readable).
            self.0.clone()
        }
    }

    /// The URL parsed, unless it does not parse or looks misparsed.
    fn parse_cleanly(&self) -> Option<url::Url> {
        let url = url::Url::parse(&self.0).ok()?;
        if url.fragment().is_some() {
            return None;
        }
        let userinfo = !url.username().is_empty() || url.password().is_some();
        if self.0.contains('@') && !userinfo {
            return None;
        }
        Some(url)
    }

    /// `SCHEME://<redacted>` (or `SCHEME:<redacted>`), or `<redacted>`
    /// when not even the scheme looks like one.
    fn scheme_only(&self) -> String {
        let scheme = self.scheme();
        let looks_like_one = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !looks_like_one {
            return "<redacted>".to_owned();
        }
        let authority = self.0[scheme.len() + 1..].starts_with("//");
        format!("{scheme}:{}<redacted>", if authority { "//" } else { "" })
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = std::convert::Infallible;

    /// Any text: the backend checks it when the store is opened.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(StoreUrl(s.to_owned()))
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

    #[test]
    fn a_url_that_does_not_parse_cleanly_shows_only_its_scheme() {
        for (raw, shown) in [
            // '#' starts a fragment, '/' a path, '?' a query: the password
            // is cut in two, and may land in the host, port or path.
            ("postgres://craft:p#ss@db/w", "postgres://<redacted>"),
            ("postgres://craft:12#ss@db/w", "postgres://<redacted>"),
            ("postgres://craft:1/ss@db/w", "postgres://<redacted>"),
            ("postgres://craft:p?ss@db/w", "postgres://<redacted>"),
            ("postgres://craft:p ss@db:x/w", "postgres://<redacted>"),
            ("dynamodb://key:s3cret@table", "dynamodb://key:***@table"),
            ("craft:p#ss@db", "craft:<redacted>"),
            ("p#ss", "<redacted>"),
        ] {
            let url = StoreUrl(raw.into());
            assert_eq!(url.redacted(), shown, "{raw}");
            assert_eq!(url.to_string(), shown, "{raw}");
            assert_eq!(format!("{url:?}"), format!("StoreUrl({shown})"), "{raw}");
        }
    }

    #[test]
    fn a_url_without_secrets_shows_as_given() {
        for raw in [
            "sqlite:craft.db",
            "sqlite:my world/craft.db",
            "sqlite:///var/lib/craft/world.db",
            "memory:",
            "postgres://craft@db:5432/world?sslmode=require",
            "dynamodb://world?region=us-east-1&endpoint=http://127.0.0.1:8000",
        ] {
            assert_eq!(StoreUrl(raw.into()).redacted(), raw);
        }
    }
}
