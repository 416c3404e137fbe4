//! `GET /revocations/stream`: the revocation log as Server-Sent Events, the
//! protocol `guard`'s subscriber speaks (see `guard::subscriber`):
//!
//! ```text
//! id: 42
//! event: revocation
//! data: {"kind":"token","jti":"…","at":1767225600123}
//! ```
//!
//! A first connection gets every revocation that still matters, then live
//! events; a reconnection with `Last-Event-ID` gets what it missed. The
//! events name only token ids, session ids and subject ids (no tokens).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use tokio::sync::{broadcast, watch};

use crate::revocations::{self, StreamEvent};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/revocations/stream", get(stream))
}

const BATCH: i64 = 1000;

async fn stream(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|id| *id >= 0);
    // Subscribe before reading the backlog, so nothing falls in between.
    let live = state.revocation_hub.subscribe();
    let backlog = match revocations::after(&state.db, resume, BATCH).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "revocation stream cannot read the log");
            let body = Json(serde_json::json!({"error": "temporarily_unavailable"}));
            return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
        }
    };
    tracing::info!(resume_from = ?resume, backlog = backlog.len(), "revocation stream opened");
    let cursor = Cursor {
        state: state.clone(),
        pending: backlog.into(),
        last: resume,
        live,
        stopping: state.stopping(),
    };
    Sse::new(events(cursor))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

struct Cursor {
    state: AppState,
    pending: std::collections::VecDeque<StreamEvent>,
    last: Option<i64>,
    live: broadcast::Receiver<Arc<StreamEvent>>,
    stopping: watch::Receiver<bool>,
}

impl Cursor {
    /// The next event to send, `None` when the server stops.
    async fn next(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                if self.last.is_some_and(|l| e.id <= l) {
                    continue;
                }
                if self.pending.is_empty() && e.id - self.last.unwrap_or(0) >= BATCH {
                    // A full batch: there may be more in the log.
                    self.refill().await;
                }
                self.last = Some(e.id);
                return Some(e);
            }
            if *self.stopping.borrow() {
                return None;
            }
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(e) => self.pending.push_back((*e).clone()),
                    // Too slow for the live feed: catch up from the log.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.refill().await,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.stopping.changed() => return None,
            }
        }
    }

    async fn refill(&mut self) {
        let from = self.pending.back().map(|e| e.id).or(self.last);
        match revocations::after(&self.state.db, from, BATCH).await {
            Ok(more) => self.pending.extend(more),
            Err(e) => tracing::warn!(error = %e, "revocation stream cannot catch up from the log"),
        }
    }
}

fn events(cursor: Cursor) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(cursor, |mut cursor| async move {
        let e = cursor.next().await?;
        let event = Event::default()
            .id(e.id.to_string())
            .event("revocation")
            .data(e.data);
        Some((Ok(event), cursor))
    })
}
