//! Revocation stream subscriber: applies the IdP's revocations as they happen.
//!
//! At `GUARD_REVOCATION_STREAM_URL` (default `<issuer>/revocations/stream`;
//! `off` disables it), authenticated as this service's own client
//! (`GUARD_CLIENT_ID`/`GUARD_CLIENT_SECRET`, HTTP Basic). The stream is
//! Server-Sent Events (`GET`, `Accept: text/event-stream`):
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
//! `revocation` data is a [`Revocation`] (`kind` = `token` + `jti`,
//! `session` + `sid`, or `subject` + `sub` + `issued_before`) plus `at`, the
//! IdP's time of the revocation in Unix milliseconds (used to report the lag).
//! `caught-up` is the IdP's word that every revocation committed before `at`
//! has been sent; it follows the backlog and then comes every few seconds. The
//! time since the last one is how far behind this guard may be: past
//! `GUARD_REVOCATION_MAX_STALENESS_SECS` it is *stale*, which is logged,
//! shown on `/readyz`, and handled by the [`StalePolicy`]. `snapshot` announces
//! that the whole set of live revocations follows (a first connection, or a
//! position the IdP cannot vouch for). On reconnect the subscriber sends
//! `Last-Event-ID`, so the IdP replays everything after it, however much.
//! Comments (`: ping`) keep the connection alive; 30 s of silence counts as a
//! broken connection.

use secrecy::ExposeSecret;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::{ClientCredentials, StalePolicy};
use crate::revocation::{DenylistStatus, Revocation};

/// Silence after which the connection is considered dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest event accepted.
const MAX_EVENT_BYTES: usize = 64 * 1024;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// State of the revocation stream, for `/readyz`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationStatus {
    pub url: String,
    pub connected: bool,
    pub last_event_id: Option<String>,
    pub events_applied: u64,
    /// Milliseconds between the IdP recording the last revocation and this
    /// service applying it.
    pub last_lag_ms: Option<i64>,
    pub last_error: Option<String>,
    /// The IdP has confirmed at least once that this guard had every revocation.
    pub caught_up: bool,
    /// Seconds since the IdP last confirmed it (none before the first time).
    pub seconds_since_caught_up: Option<u64>,
    /// Not confirmed within `GUARD_REVOCATION_MAX_STALENESS_SECS` (or never).
    pub stale: bool,
    pub stale_policy: Option<StalePolicy>,
    /// What the denylist holds (and whether it overflowed).
    pub denylist: DenylistStatus,
    /// When the IdP last confirmed this guard was up to date.
    #[serde(skip)]
    pub(crate) caught_up_at: Option<Instant>,
}

impl RevocationStatus {
    /// Fills in the time-dependent fields as of now.
    pub(crate) fn at_this_moment(mut self, bound: Duration, policy: StalePolicy) -> Self {
        let since = self.caught_up_at.map(|t| t.elapsed());
        self.caught_up = since.is_some();
        self.seconds_since_caught_up = since.map(|d| d.as_secs());
        self.stale = since.is_none_or(|d| d > bound);
        self.stale_policy = Some(policy);
        self
    }
}

#[derive(Deserialize)]
struct Event {
    #[serde(flatten)]
    revocation: Revocation,
    at: Option<i64>,
}

/// Where the subscriber reports, shared with the guard.
pub(crate) type Status = Arc<Mutex<RevocationStatus>>;

/// Runs until `apply` reports the guard is gone: connects, applies events,
/// reconnects with backoff and `Last-Event-ID`.
pub(crate) async fn run(
    url: Url,
    credentials: Option<ClientCredentials>,
    status: Status,
    apply: impl Fn(Revocation) -> bool,
) {
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            update(&status, |s| s.last_error = Some(e.to_string()));
            return;
        }
    };
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u32;
    loop {
        let last_id = lock(&status).last_event_id.clone();
        let mut connected = false;
        let outcome = stream_once(
            &http,
            &url,
            credentials.as_ref(),
            last_id,
            &status,
            &apply,
            &mut connected,
        )
        .await;
        update(&status, |s| s.connected = false);
        if connected {
            // The outage (if any) is over: start again from short retries.
            backoff = Duration::from_millis(100);
            failures = 0;
        }
        match outcome {
            Ok(Flow::GuardGone) => return,
            Ok(Flow::Ended) => {}
            Err(e) => {
                // Warn once per outage, not on every retry.
                if failures == 0 {
                    tracing::warn!(error = %e, "revocation stream unavailable; reconnecting");
                } else {
                    tracing::debug!(error = %e, failures, "revocation stream still unavailable");
                }
                failures = failures.saturating_add(1);
                update(&status, |s| s.last_error = Some(e));
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Logs when the guard turns stale and when it recovers; runs while the
/// status is shared with a guard.
pub(crate) async fn watch_staleness(
    status: std::sync::Weak<Mutex<RevocationStatus>>,
    bound: Duration,
) {
    let mut stale = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(status) = status.upgrade() else {
            return;
        };
        let since = lock(&status).caught_up_at.map(|t| t.elapsed());
        let now_stale = since.is_none_or(|d| d > bound);
        match (stale, now_stale, since) {
            (false, true, Some(since)) => tracing::warn!(
                seconds = since.as_secs(),
                "revocation stream has not confirmed this service is up to date: revocations may be missed (stale)"
            ),
            (true, false, _) => tracing::info!("revocation stream caught up again"),
            _ => {}
        }
        stale = now_stale;
    }
}

enum Flow {
    Ended,
    GuardGone,
}

async fn stream_once(
    http: &reqwest::Client,
    url: &Url,
    credentials: Option<&ClientCredentials>,
    last_id: Option<String>,
    status: &Status,
    apply: &impl Fn(Revocation) -> bool,
    connected: &mut bool,
) -> Result<Flow, String> {
    let mut request = http
        .get(url.clone())
        .header(http::header::ACCEPT, "text/event-stream");
    if let Some(c) = credentials {
        request = crate::client_auth::basic_auth(request, &c.id, c.secret.expose_secret());
    }
    if let Some(id) = &last_id {
        request = request.header("last-event-id", id.as_str());
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    *connected = true;
    update(status, |s| {
        s.connected = true;
        s.last_error = None;
    });
    tracing::info!(%url, resume_from = ?last_id, "revocation stream connected");
    let mut parser = SseParser::default();
    loop {
        let chunk = match tokio::time::timeout(IDLE_TIMEOUT, response.chunk()).await {
            Err(_) => return Err("revocation stream silent for 30 s".into()),
            Ok(Err(e)) => return Err(e.without_url().to_string()),
            Ok(Ok(None)) => return Ok(Flow::Ended),
            Ok(Ok(Some(chunk))) => chunk,
        };
        for event in parser.feed(&chunk)? {
            match event.name.as_deref() {
                None | Some("revocation") => {}
                Some("caught-up") => {
                    update(status, |s| {
                        s.caught_up_at = Some(Instant::now());
                        if event.id.is_some() {
                            s.last_event_id = event.id.clone();
                        }
                    });
                    continue;
                }
                Some("snapshot") => {
                    tracing::info!(detail = %event.data, "revocation stream resends every live revocation");
                    continue;
                }
                Some(_) => continue,
            }
            let parsed: Event = match serde_json::from_str(&event.data) {
                Ok(parsed) => parsed,
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring a malformed revocation event");
                    continue;
                }
            };
            if !apply(parsed.revocation) {
                return Ok(Flow::GuardGone);
            }
            update(status, |s| {
                s.events_applied += 1;
                if event.id.is_some() {
                    s.last_event_id = event.id.clone();
                }
                s.last_lag_ms = parsed.at.map(|at| (unix_millis() - at).max(0));
            });
        }
    }
}

fn lock(status: &Status) -> std::sync::MutexGuard<'_, RevocationStatus> {
    status.lock().unwrap_or_else(|e| e.into_inner())
}

fn update(status: &Status, f: impl FnOnce(&mut RevocationStatus)) {
    f(&mut lock(status));
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One dispatched Server-Sent Event.
#[derive(Debug, PartialEq, Eq)]
struct SseEvent {
    id: Option<String>,
    name: Option<String>,
    data: String,
}

/// An incremental `text/event-stream` parser (the WHATWG rules we need:
/// `id`, `event`, `data` fields, comments, CRLF/LF line ends, blank line dispatch).
#[derive(Default)]
struct SseParser {
    buffer: Vec<u8>,
    id: Option<String>,
    name: Option<String>,
    data: Option<String>,
}

impl SseParser {
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    events.push(SseEvent {
                        id: self.id.clone(),
                        name: self.name.take(),
                        data,
                    });
                }
                self.name = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => self.id = Some(value.to_owned()),
                "event" => self.name = Some(value.to_owned()),
                "data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                _ => {}
            }
            if self
                .data
                .as_ref()
                .is_some_and(|d| d.len() > MAX_EVENT_BYTES)
            {
                return Err("revocation event too large".into());
            }
        }
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err("revocation stream line too long".into());
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_across_chunks_with_comments_and_crlf() {
        let mut parser = SseParser::default();
        assert_eq!(parser.feed(b": ping\n\nid: 1\r\nevent: revoc").unwrap(), []);
        let events = parser
            .feed(b"ation\r\ndata: {\"a\":\ndata: 1}\r\n\r\nid: 2\ndata:x\n\n")
            .unwrap();
        assert_eq!(
            events,
            [
                SseEvent {
                    id: Some("1".into()),
                    name: Some("revocation".into()),
                    data: "{\"a\":\n1}".into()
                },
                SseEvent {
                    id: Some("2".into()),
                    name: None,
                    data: "x".into()
                },
            ]
        );
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut parser = SseParser::default();
        let long = format!("data: {}\n", "x".repeat(MAX_EVENT_BYTES + 1));
        assert!(parser.feed(long.as_bytes()).is_err());
    }

    #[test]
    fn event_data_is_a_revocation_with_its_time() {
        let event: Event = serde_json::from_str(r#"{"kind":"session","sid":"s1","at":5}"#).unwrap();
        assert_eq!(event.revocation, Revocation::Session { sid: "s1".into() });
        assert_eq!(event.at, Some(5));
    }
}
