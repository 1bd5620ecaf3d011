//! Checking `A,USERNAME,TOKEN` against an identity service.
//!
//! In `http` mode the server POSTs `username` and `access_token` (form
//! encoded, as the original server did) to `login.url`. A 2xx answer logs
//! the player in; anything else, an error or no answer within
//! `login.timeout` leaves them a guest. The check runs in its own task: the
//! game never waits on it (only that player's later commands do).

use std::sync::Arc;

use tracing::{debug, warn};
use world_core::BlockStore;
use world_core::store::PlayerRecord;

use crate::config::{LoginConfig, LoginMode};

/// The result of a login check.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginOutcome {
    /// The user name when the login succeeded.
    pub user: Option<String>,
    /// The user's saved position, if any.
    pub saved: Option<PlayerRecord>,
}

/// Checks a login and, on success, loads the user's saved position.
pub async fn check(
    config: &LoginConfig,
    http: &reqwest::Client,
    store: Arc<dyn BlockStore>,
    username: String,
    token: String,
) -> LoginOutcome {
    let guest = LoginOutcome {
        user: None,
        saved: None,
    };
    if config.mode == LoginMode::None || username.is_empty() || token.is_empty() {
        return guest;
    }
    let Some(url) = config.url.as_deref() else {
        return guest;
    };
    let form = [
        ("username", username.as_str()),
        ("access_token", token.as_str()),
    ];
    let ok = match http
        .post(url)
        .form(&form)
        .timeout(config.timeout)
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => true,
        Ok(response) => {
            debug!(user = %username, status = %response.status(), "login refused");
            false
        }
        Err(e) => {
            warn!(user = %username, error = %e, "identity service did not answer; player stays a guest");
            false
        }
    };
    if !ok {
        return guest;
    }
    let saved = match store.load_player(&username).await {
        Ok(saved) => saved,
        Err(e) => {
            warn!(user = %username, error = %e, "cannot load the saved position");
            None
        }
    };
    LoginOutcome {
        user: Some(username),
        saved,
    }
}
