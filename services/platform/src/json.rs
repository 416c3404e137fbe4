//! [`Json`]: the one JSON body extractor of the services. It is axum's `Json`
//! whose rejection is already the project's error, so a handler takes
//! `Json(request): Json<Request>` and never sees a `JsonRejection`: a body
//! that is not JSON, not `application/json`, or does not parse into the
//! request type (including a domain type's own rule, e.g. a quantity out of
//! bounds) answers like any bad request, `{"error": "invalid_request"}` with
//! axum's status (400, 415 or 422) and its description.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error_body::json_error;

/// A JSON request body parsed into `T`, or the request is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// Why a body was refused: axum's rejection, answered as `invalid_request`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(#[from] pub JsonRejection);

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        json_error(self.0.status(), "invalid_request", self)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = JsonError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{StatusCode, header};
    use axum::routing::post;
    use tower::ServiceExt;

    use super::Json;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Request {
        #[allow(dead_code)]
        n: u8,
    }

    async fn answer(content_type: &str, body: &'static str) -> (StatusCode, serde_json::Value) {
        let app = Router::new().route("/", post(|Json(_): Json<Request>| async { "ok" }));
        let request = axum::http::Request::post("/")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    #[tokio::test]
    async fn a_body_that_parses_reaches_the_handler() {
        let (status, _) = answer("application/json", r#"{"n": 7}"#).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn refused_bodies_answer_invalid_request_with_axums_status() {
        for (content_type, body, status) in [
            ("application/json", "{", StatusCode::BAD_REQUEST),
            (
                "text/plain",
                r#"{"n": 7}"#,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                "application/json",
                r#"{"n": 256}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "application/json",
                r#"{"n": 1, "m": 2}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ] {
            let (actual, json) = answer(content_type, body).await;
            assert_eq!(actual, status, "{body}");
            assert_eq!(json["error"], "invalid_request", "{body}");
            assert!(
                json["error_description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty())
            );
        }
    }
}
