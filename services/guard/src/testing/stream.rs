//! The test issuer's revocation stream: Server-Sent Events as the IdP sends
//! them, behind HTTP Basic for one client.

use std::sync::Arc;

use axum::extract::State;
use serde_json::json;
use tokio::sync::broadcast;

use super::now;
use super::shared::Shared;

/// The client the test issuer's revocation stream lets in (HTTP Basic).
pub const STREAM_CLIENT_ID: &str = "test-service";
/// Its secret.
pub const STREAM_CLIENT_SECRET: &str = "test-service-secret";

/// Server-Sent Events as the IdP sends them (see [`crate::subscriber`]): for
/// the stream's client only; the backlog after `Last-Event-ID`, `caught-up`,
/// then live events, each followed by `caught-up`, and `caught-up` every
/// second, until the issuer stops.
pub(super) async fn revocation_stream(
    State(shared): State<Arc<Shared>>,
    headers: http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use axum::response::sse::{Event, KeepAlive};
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{STREAM_CLIENT_ID}:{STREAM_CLIENT_SECRET}"))
    );
    if headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(expected.as_str())
    {
        return (
            http::StatusCode::UNAUTHORIZED,
            [(http::header::WWW_AUTHENTICATE, "Basic realm=\"test\"")],
        )
            .into_response();
    }
    let after: u64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (backlog, live) = {
        let log = shared.revocations.lock().unwrap_or_else(|e| e.into_inner());
        let backlog: Vec<(u64, String)> =
            log.iter().filter(|(id, _)| *id > after).cloned().collect();
        (backlog, shared.live.subscribe())
    };
    let stopping = shared.stopping.subscribe();
    let caught_up = |position: u64| {
        Event::default()
            .id(position.to_string())
            .event("caught-up")
            .data(json!({ "position": position, "at": now() * 1000 }).to_string())
    };
    let mut queue: std::collections::VecDeque<Event> = backlog
        .iter()
        .map(|(id, data)| {
            Event::default()
                .id(id.to_string())
                .event("revocation")
                .data(data.clone())
        })
        .collect();
    let position = backlog.last().map_or(after, |(id, _)| *id);
    queue.push_back(caught_up(position));
    let tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let state = (queue, live, stopping, tick, position);
    let stream = futures::stream::unfold(
        state,
        move |(mut queue, mut live, mut stopping, mut tick, mut position)| async move {
            loop {
                if let Some(event) = queue.pop_front() {
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (queue, live, stopping, tick, position),
                    ));
                }
                if *stopping.borrow() {
                    return None;
                }
                tokio::select! {
                    event = live.recv() => match event {
                        Ok((id, data)) => {
                            position = id;
                            queue.push_back(Event::default().id(id.to_string()).event("revocation").data(data));
                            queue.push_back(caught_up(position));
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = tick.tick() => queue.push_back(caught_up(position)),
                    changed = stopping.changed() => if changed.is_err() {
                        return None;
                    },
                }
            }
        },
    );
    axum::response::Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
