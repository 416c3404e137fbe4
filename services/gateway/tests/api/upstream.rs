//! A real resource server for the proxy tests: validates the relayed token
//! with guard (its audience, like order/payment/inventory do), then answers
//! what it received, so tests can see exactly what the gateway forwarded.
//!
//! * `/status/{code}` answers that status with a JSON body (error pass-through);
//! * `/slow` never answers in time (route timeouts);
//! * anything else: `200` with `{method, path, query, sub, roles, jti, token, headers, body}`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use guard::{Guard, GuardConfig};
use http::StatusCode;
use serde_json::json;

pub struct Upstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and closes the open ones (idle
    /// keep-alive connections too): the upstream is down.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts an upstream accepting tokens for `audience` from `issuer`.
pub async fn start(issuer: &str, audience: &str) -> Upstream {
    let guard = Guard::new(GuardConfig::new(issuer, audience));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(answer).with_state(guard);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Upstream {
        addr,
        task,
        stop: Some(stop),
    }
}

async fn answer(State(guard): State<Guard>, request: Request) -> Response {
    let principal = match guard.authenticate(request.headers()).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let path = request.uri().path().to_owned();
    if let Some(code) = path.strip_prefix("/status/") {
        let status = StatusCode::from_u16(code.parse().unwrap()).unwrap();
        let mut response = (
            status,
            Json(json!({"error": "from_upstream", "status": status.as_u16()})),
        )
            .into_response();
        response
            .headers_mut()
            .insert("set-cookie", "baton_session=from-upstream".parse().unwrap());
        return response;
    }
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let headers: serde_json::Map<String, serde_json::Value> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                json!(v.to_str().unwrap_or("<binary>")),
            )
        })
        .collect();
    let method = request.method().to_string();
    let query = request.uri().query().map(str::to_owned);
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap();
    Json(json!({
        "method": method,
        "path": path,
        "query": query,
        "sub": principal.sub(),
        "roles": principal.roles(),
        "jti": principal.jti(),
        "token": principal.token().as_ref(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
    .into_response()
}
