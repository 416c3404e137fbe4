//! `GET /revocations/stream`: the revocation log as Server-Sent Events, the
//! protocol `guard`'s subscriber speaks (see `guard::subscriber`):
//!
//! ```text
//! id: 42
//! event: revocation
//! data: {"kind":"token","jti":"…","at":1767225600123}
//!
//! id: 42
//! event: caught-up
//! data: {"position":42,"at":1767225600456}
//! ```
//!
//! * Only registered resource servers may subscribe: a confidential client
//!   authenticates as at `/token` (HTTP Basic) and must be registered with the
//!   scope `revocations:read`; anonymous requests get 401, others 403. Each
//!   client holds at most `IDP_REVOCATION_STREAMS_PER_CLIENT` streams per
//!   replica (429 beyond).
//! * `id` is the event's position in the log (commit order, see
//!   `crate::revocations`); `Last-Event-ID` resumes right after it, however
//!   far behind, page by page. A first connection, or one whose position the
//!   log cannot vouch for, starts with `event: snapshot` and gets every
//!   revocation that still matters.
//! * `caught-up` says: every revocation committed before `at` has been sent.
//!   It follows the backlog and then comes at least every two seconds, so a
//!   subscriber knows how stale it is and when it may report ready.
//! * Events name only token ids, session ids and subject ids (no tokens).
//!
//! # Why Server-Sent Events and not the Shared Signals Framework
//!
//! SSF (RFC 8417 Security Event Tokens with CAEP `session-revoked`, delivered
//! by RFC 8936 poll or RFC 8935 push) would let any SSF receiver subscribe.
//! It was weighed and not taken, for now: a SET is a signed JWT per event and
//! per receiver (an RSA signature is ~0.8 ms here, so a burst of a thousand
//! revocations to eight receivers would cost seconds of signing), poll
//! delivery keeps acknowledgement state per receiver at the transmitter
//! (shared by every replica, so written to PostgreSQL per acknowledgement),
//! and push needs an endpoint on every receiver. This log gives the same
//! guarantee by construction without any of that: the receiver holds its
//! position, the log is read in commit order, and every replica serves the
//! same log. A bridge that turns this stream into SETs for outside receivers
//! can be added beside it without changing the services.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::error::OAuthError;
use crate::http::client_auth::{AuthenticatedClient, Method};
use crate::realm::REVOCATIONS_READ;
use crate::revocations::{self, HubItem, Resume, StreamEvent, StreamSlot};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/revocations/stream", get(stream))
}

async fn stream(
    State(state): State<AppState>,
    AuthenticatedClient { client, method }: AuthenticatedClient,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    if method == Method::None || !client.allows_scope(REVOCATIONS_READ) {
        return Err(OAuthError::AccessDenied(
            format!("the revocation stream needs a confidential client with the scope {REVOCATIONS_READ}").into(),
        ));
    }
    let limit = state.config.revocation_streams_per_client;
    let Some(slot) = state.stream_counts.open(&client.id, limit) else {
        return Err(OAuthError::TooManyConnections(
            "this client has as many revocation streams open as it may".into(),
        ));
    };
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|id| *id >= 0);
    // Subscribe before reading the backlog, so nothing falls in between.
    let live = state.revocation_hub.subscribe();
    let start = revocations::resume(&state.db, last_seen).await?;
    tracing::info!(client = %client.id, resume_from = ?last_seen, start = ?start, "revocation stream opened");
    let (position, snapshot) = match start {
        Resume::After(position) => (position, None),
        Resume::Snapshot { reason } => (0, Some(reason)),
    };
    let cursor = Cursor {
        state: state.clone(),
        pending: VecDeque::new(),
        position,
        reading_log: true,
        checkpoint: None,
        live,
        stopping: state.stopping(),
        _slot: slot,
    };
    let first = snapshot.map(|reason| {
        Event::default()
            .event("snapshot")
            .data(json!({ "reason": reason }).to_string())
    });
    Ok(Sse::new(events(cursor, first))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// What a stream sends next.
enum Next {
    Revocation(StreamEvent),
    CaughtUp { position: i64, at: i64 },
}

/// One subscriber's place in the log: it reads the log itself (page by
/// page, to the end) until it has caught up, then follows the hub, whose
/// events start no later than where the log read ended (it subscribed first).
struct Cursor {
    state: AppState,
    pending: VecDeque<StreamEvent>,
    /// Everything up to here has been sent.
    position: i64,
    /// Reading the log itself rather than following the hub.
    reading_log: bool,
    /// A checkpoint to send once `pending` is empty: the time of the read
    /// (or the hub's) that found the end of the log.
    checkpoint: Option<i64>,
    live: broadcast::Receiver<HubItem>,
    stopping: watch::Receiver<bool>,
    _slot: StreamSlot,
}

impl Cursor {
    /// The next message, `None` when the server stops (or the log cannot be read).
    async fn next(&mut self) -> Option<Next> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                if e.position <= self.position {
                    continue; // read from the log and received from the hub
                }
                self.position = e.position;
                return Some(Next::Revocation(e));
            }
            if let Some(at) = self.checkpoint.take() {
                return Some(Next::CaughtUp {
                    position: self.position,
                    at,
                });
            }
            if *self.stopping.borrow() {
                return None;
            }
            if self.reading_log {
                let at = revocations::unix_millis();
                match revocations::page(&self.state.db, self.position).await {
                    Ok(page) => {
                        if (page.len() as i64) < revocations::PAGE {
                            // The end of the log as of `at`: follow the hub.
                            self.reading_log = false;
                            self.checkpoint = Some(at);
                        }
                        self.pending.extend(page);
                        continue;
                    }
                    Err(e) => {
                        // The subscriber reconnects with its Last-Event-ID.
                        tracing::warn!(error = %e, "revocation stream cannot read the log; closing it");
                        return None;
                    }
                }
            }
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(HubItem::Event(e)) => self.pending.push_back((*e).clone()),
                    // The hub's events before its checkpoint have all been
                    // received (and sent: nothing is pending), so the
                    // checkpoint holds here too — unless the hub is ahead,
                    // which only a log read can settle.
                    Ok(HubItem::CaughtUp { position, at }) => {
                        if position <= self.position {
                            self.checkpoint = Some(at);
                        } else {
                            self.reading_log = true;
                        }
                    }
                    // Too slow for the live feed: read the log again.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.reading_log = true,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.stopping.changed() => return None,
            }
        }
    }
}

fn events(cursor: Cursor, first: Option<Event>) -> impl Stream<Item = Result<Event, Infallible>> {
    let first = futures::stream::iter(first.map(Ok::<_, Infallible>));
    let rest = futures::stream::unfold(cursor, |mut cursor| async move {
        let event = match cursor.next().await? {
            Next::Revocation(e) => Event::default()
                .id(e.position.to_string())
                .event("revocation")
                .data(e.data),
            Next::CaughtUp { position, at } => Event::default()
                .id(position.to_string())
                .event("caught-up")
                .data(json!({ "position": position, "at": at }).to_string()),
        };
        Some((Ok(event), cursor))
    });
    first.chain(rest)
}
