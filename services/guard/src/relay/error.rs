//! [`RelayError`]: why a relayed call failed — read from the upstream's
//! answer or the transport — and how it answers the original caller.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::error::quoted_safe;

/// Largest error body read from an upstream (to pass its description on).
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Why a relayed call failed, and how it answers the original caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The upstream refused the token (401) → 401 `invalid_token`.
    #[error("{service} refused the token")]
    Unauthorized {
        service: Arc<str>,
        description: Option<String>,
    },
    /// The upstream denied the call (403) → 403 `insufficient_scope`.
    #[error("{service} denied the call")]
    Forbidden {
        service: Arc<str>,
        description: Option<String>,
    },
    /// 404 → 404.
    #[error("{service} found no such resource")]
    NotFound {
        service: Arc<str>,
        description: Option<String>,
    },
    /// 409 → 409 (e.g. out of stock), with the upstream's `error` code when it
    /// sent one (`insufficient_stock`), else `conflict`.
    #[error("{service} reported a conflict")]
    Conflict {
        service: Arc<str>,
        error: Option<String>,
        description: Option<String>,
    },
    /// Another 4xx (400, 422, 429, …) → the same status (and `Retry-After`).
    #[error("{service} rejected the call with {status}")]
    Rejected {
        service: Arc<str>,
        status: StatusCode,
        error: Option<String>,
        description: Option<String>,
        retry_after: Option<u64>,
    },
    /// Connection refused / reset, or 503 → 503 with `Retry-After`.
    #[error("{service} is unavailable")]
    Unavailable {
        service: Arc<str>,
        retry_after: Option<u64>,
    },
    /// No answer within the timeout → 504.
    #[error("{service} did not answer in time")]
    Timeout { service: Arc<str> },
    /// 5xx (other than 503), or a redirect → 502.
    #[error("{service} failed with {status}")]
    Failed {
        service: Arc<str>,
        status: StatusCode,
    },
    /// The path given to [`Upstream::request`] is not below the upstream → 400.
    #[error("invalid path for {service}")]
    InvalidPath { service: Arc<str> },
    /// The answer could not be read → 502.
    #[error("{service} sent an invalid answer: {reason}")]
    InvalidResponse {
        service: Arc<str>,
        reason: Cow<'static, str>,
    },
}

impl RelayError {
    /// The upstream's name.
    pub fn service(&self) -> &str {
        match self {
            Self::Unauthorized { service, .. }
            | Self::Forbidden { service, .. }
            | Self::NotFound { service, .. }
            | Self::Conflict { service, .. }
            | Self::Rejected { service, .. }
            | Self::Unavailable { service, .. }
            | Self::Timeout { service }
            | Self::Failed { service, .. }
            | Self::InvalidPath { service }
            | Self::InvalidResponse { service, .. } => service,
        }
    }

    /// The status this error answers the original caller with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Rejected { status, .. } => *status,
            Self::InvalidPath { .. } => StatusCode::BAD_REQUEST,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Failed { .. } | Self::InvalidResponse { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// Whether the upstream could not be reached or did not answer properly
    /// (as opposed to answering "no"): worth a retry or a fallback.
    pub fn is_upstream_failure(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. }
                | Self::Timeout { .. }
                | Self::Failed { .. }
                | Self::InvalidResponse { .. }
        )
    }

    fn code(&self) -> &str {
        match self {
            Self::Unauthorized { .. } => "invalid_token",
            Self::Forbidden { .. } => "insufficient_scope",
            Self::NotFound { .. } => "not_found",
            Self::Conflict { error, .. } => error.as_deref().unwrap_or("conflict"),
            Self::Rejected { error, .. } => error.as_deref().unwrap_or("invalid_request"),
            Self::InvalidPath { .. } => "invalid_request",
            Self::Unavailable { .. } => "upstream_unavailable",
            Self::Timeout { .. } => "upstream_timeout",
            Self::Failed { .. } | Self::InvalidResponse { .. } => "upstream_error",
        }
    }

    fn description(&self) -> String {
        let upstream = match self {
            Self::Unauthorized { description, .. }
            | Self::Forbidden { description, .. }
            | Self::NotFound { description, .. }
            | Self::Conflict { description, .. }
            | Self::Rejected { description, .. } => description.as_deref(),
            _ => None,
        };
        match upstream {
            Some(d) => format!("{self}: {d}"),
            None => self.to_string(),
        }
    }
}

impl IntoResponse for RelayError {
    fn into_response(self) -> Response {
        if self.is_upstream_failure() {
            tracing::warn!(upstream = self.service(), error = %self, "relayed call failed");
        }
        let description = self.description();
        let body = serde_json::json!({
            "error": self.code(),
            "error_description": description,
            "upstream": self.service(),
        });
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        let challenge = match &self {
            Self::Unauthorized { .. } => Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                quoted_safe(&description)
            )),
            Self::Forbidden { .. } => Some(format!(
                "Bearer error=\"insufficient_scope\", error_description=\"{}\"",
                quoted_safe(&description)
            )),
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        match self {
            Self::Unavailable { retry_after, .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.unwrap_or(1)),
                );
            }
            Self::Rejected {
                retry_after: Some(secs),
                ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        response
    }
}

pub(crate) fn transport_error(service: Arc<str>, error: &reqwest::Error) -> RelayError {
    if error.is_timeout() {
        RelayError::Timeout { service }
    } else if error.is_connect() {
        RelayError::Unavailable {
            service,
            retry_after: None,
        }
    } else if error.is_builder() {
        RelayError::InvalidResponse {
            service,
            reason: "request could not be built".into(),
        }
    } else {
        // Reset connections, broken bodies: the upstream is not answering properly.
        RelayError::Unavailable {
            service,
            retry_after: None,
        }
    }
}

pub(crate) async fn status_error(service: Arc<str>, mut response: reqwest::Response) -> RelayError {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // Pass on the upstream's OAuth-style `{error, error_description}` when it sent one.
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if body.len() + chunk.len() > MAX_ERROR_BODY {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: Option<String>,
        error_description: Option<String>,
    }
    let parsed = serde_json::from_slice::<ErrorBody>(&body).ok();
    let error = parsed.as_ref().and_then(|b| b.error.clone());
    let description = parsed.and_then(|b| b.error_description);
    match status {
        StatusCode::UNAUTHORIZED => RelayError::Unauthorized {
            service,
            description,
        },
        StatusCode::FORBIDDEN => RelayError::Forbidden {
            service,
            description,
        },
        StatusCode::NOT_FOUND => RelayError::NotFound {
            service,
            description,
        },
        StatusCode::CONFLICT => RelayError::Conflict {
            service,
            error,
            description,
        },
        StatusCode::SERVICE_UNAVAILABLE => RelayError::Unavailable {
            service,
            retry_after,
        },
        StatusCode::GATEWAY_TIMEOUT => RelayError::Timeout { service },
        s if s.is_client_error() => RelayError::Rejected {
            service,
            status: s,
            error,
            description,
            retry_after,
        },
        s => RelayError::Failed { service, status: s },
    }
}
