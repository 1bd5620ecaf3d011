//! Opening the store named by a URL, and measuring every call to it.
//!
//! | URL | backend | cargo feature |
//! |---|---|---|
//! | `sqlite:PATH` | embedded SQLite file (the default, `sqlite:craft.db`) | `sqlite` (default) |
//! | `postgres://…` | PostgreSQL / Aurora PostgreSQL | `postgres` |
//! | `dynamodb://TABLE?region=…&endpoint=…&create=true` | DynamoDB | `dynamodb` |
//! | `dataapi://DATABASE?resource_arn=…&secret_arn=…&region=…&endpoint=…&schema=…` (`dataapi://` alone: the seed's `CLUSTER_ARN`, `SECRET_ARN`, `DB_NAME`, `REGION`) | Aurora Data API | `dataapi` (default) |
//! | `memory:` | in memory, lost on exit (tests, benchmarks) | always |

use std::sync::Arc;
use std::time::Duration;

use world_core::store::{ForwardingStore, MemoryStore, StoreCall};
use world_core::{BlockStore, StoreError};

use crate::config::StoreUrl;
use crate::metrics::{Health, Metrics, OpKindLabels, OpLabel};

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL's scheme is not a known backend.
    #[error(
        "unknown store scheme {scheme:?} in {url}; expected sqlite:, postgres://, dynamodb://, dataapi:// or memory:"
    )]
    UnknownScheme {
        /// The scheme.
        scheme: String,
        /// The URL, secrets hidden.
        url: String,
    },
    /// The backend exists but this binary was built without it.
    #[error(
        "this craft-server was built without the {backend} backend; rebuild with `--features {feature}`"
    )]
    NotBuiltIn {
        /// Backend name.
        backend: &'static str,
        /// Cargo feature that enables it.
        feature: &'static str,
    },
    /// The URL is malformed for its backend.
    #[error("invalid store URL {url}: {message}")]
    InvalidUrl {
        /// The URL, secrets hidden.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The backend could not open the store.
    #[error("cannot open store {url}: {source}")]
    Open {
        /// The URL, secrets hidden.
        url: String,
        /// Why.
        source: StoreError,
    },
}

/// Opens the store `url` names.
pub async fn open(url: &StoreUrl) -> Result<Arc<dyn BlockStore>, OpenError> {
    let scheme = url.scheme();
    let redacted = url.redacted();
    let invalid = |message: String| OpenError::InvalidUrl {
        url: redacted.clone(),
        message,
    };
    let opened = |source: StoreError| OpenError::Open {
        url: redacted.clone(),
        source,
    };
    match scheme.as_str() {
        "memory" => Ok(Arc::new(MemoryStore::new())),
        "sqlite" => {
            #[cfg(feature = "sqlite")]
            {
                let config = store_sqlite::Config::from_url(url.expose())
                    .map_err(|e| invalid(e.to_string()))?;
                let store = store_sqlite::SqliteStore::open(config)
                    .await
                    .map_err(opened)?;
                Ok(Arc::new(store))
            }
            #[cfg(not(feature = "sqlite"))]
            {
                let _ = (&invalid, &opened);
                Err(OpenError::NotBuiltIn {
                    backend: "SQLite",
                    feature: "sqlite",
                })
            }
        }
        "postgres" | "postgresql" => {
            #[cfg(feature = "postgres")]
            {
                let config = store_postgres::Config::from_url(url.expose())
                    .map_err(|e| invalid(e.to_string()))?;
                let store = store_postgres::PostgresStore::open(config)
                    .await
                    .map_err(opened)?;
                Ok(Arc::new(store))
            }
            #[cfg(not(feature = "postgres"))]
            {
                let _ = (&invalid, &opened);
                Err(OpenError::NotBuiltIn {
                    backend: "PostgreSQL",
                    feature: "postgres",
                })
            }
        }
        "dynamodb" => {
            #[cfg(feature = "dynamodb")]
            {
                let config = store_dynamodb::Config::from_url(url.expose())
                    .map_err(|e| invalid(e.to_string()))?;
                let store = store_dynamodb::DynamoStore::open(config)
                    .await
                    .map_err(opened)?;
                Ok(Arc::new(store))
            }
            #[cfg(not(feature = "dynamodb"))]
            {
                let _ = (&invalid, &opened);
                Err(OpenError::NotBuiltIn {
                    backend: "DynamoDB",
                    feature: "dynamodb",
                })
            }
        }
        "dataapi" => {
            #[cfg(feature = "dataapi")]
            {
                let config = store_dataapi::Config::from_url(url.expose())
                    .map_err(|e| invalid(e.to_string()))?;
                let store = store_dataapi::DataApiStore::open(config)
                    .await
                    .map_err(opened)?;
                Ok(Arc::new(store))
            }
            #[cfg(not(feature = "dataapi"))]
            {
                let _ = (&invalid, &opened);
                Err(OpenError::NotBuiltIn {
                    backend: "Aurora Data API",
                    feature: "dataapi",
                })
            }
        }
        _ => Err(OpenError::UnknownScheme {
            scheme,
            url: redacted,
        }),
    }
}

/// A [`BlockStore`] decorator that records the latency and errors of
/// every call in [`Metrics`] and the store's health in [`Health`].
#[derive(Debug)]
pub struct Instrumented {
    inner: Arc<dyn BlockStore>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl Instrumented {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn BlockStore>, metrics: Arc<Metrics>, health: Arc<Health>) -> Self {
        Self {
            inner,
            metrics,
            health,
        }
    }
}

impl ForwardingStore for Instrumented {
    fn target(&self) -> &dyn BlockStore {
        &*self.inner
    }

    fn after(&self, call: StoreCall<'_>, elapsed: Duration, outcome: Result<(), &StoreError>) {
        // Closing is not a call whose latency or failure means anything
        // for the store's health.
        if matches!(call, StoreCall::Close) {
            return;
        }
        let op = call.name();
        self.metrics.store_rtt.observe(elapsed);
        self.metrics
            .store_call_seconds
            .get_or_create(&OpLabel { op: op.to_owned() })
            .observe(elapsed.as_secs_f64());
        match outcome {
            Ok(()) => self.health.store_result(true),
            Err(e) => {
                self.metrics
                    .store_errors
                    .get_or_create(&OpKindLabels {
                        op: op.to_owned(),
                        kind: e.kind().to_owned(),
                    })
                    .inc();
                if e.is_retryable() || matches!(e, StoreError::Closed) {
                    self.health.store_result(false);
                }
            }
        }
    }
}
