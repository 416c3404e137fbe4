//! The route table: which path prefix goes to which upstream, how the path is
//! rewritten, and who may call it (coarse RBAC). Loaded from a TOML file
//! (`GATEWAY_ROUTES`, default `deploy/routes.toml`); see that file for the format.
//!
//! Access is deny-by-default: a request reaches the upstream only when one of
//! the route's `[[route.allow]]` rules matches its method and path and the
//! caller's token carries what the rule requires. Every route requires a valid
//! access token whose `aud` names the route's `audience`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use guard::{RelayMode, Requirement};
use http::Method;
use serde::Deserialize;
use url::Url;

use crate::circuit::{Breaker, CircuitConfig, Permit};
use crate::rate_limit::{RateLimitConfig, RateLimiter};

/// Why the route table cannot be used; the gateway refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum RouteTableError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid route table: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("route {route:?}: {reason}")]
    Invalid { route: String, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    route: Vec<RouteFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    circuit: CircuitConfig,
    /// How a session's token is relayed (absent: plain).
    relay: Option<RelayMode>,
    /// How an API client's own bearer token is relayed (absent: plain).
    bearer_relay: Option<RelayMode>,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            timeout_ms: default_timeout_ms(),
            rate_limit: None,
            circuit: CircuitConfig::default(),
            relay: None,
            bearer_relay: None,
        }
    }
}

fn default_timeout_ms() -> u64 {
    5000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    name: String,
    prefix: String,
    upstreams: Vec<String>,
    /// Replaces `prefix` in the upstream path; `""` strips it. Absent: the path is kept.
    rewrite: Option<String>,
    audience: String,
    timeout_ms: Option<u64>,
    rate_limit: Option<RateLimitConfig>,
    circuit: Option<CircuitConfig>,
    fallback: Option<FallbackFile>,
    relay: Option<RelayMode>,
    bearer_relay: Option<RelayMode>,
    /// The scopes an exchanged token carries (absent: all the caller's that
    /// the gateway may hold).
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    allow: Vec<AllowFile>,
}

/// `fallback = { json = '{"items": []}' }` or `fallback = { route = "other" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum FallbackFile {
    Json(String),
    Route(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowFile {
    methods: Vec<String>,
    path: Option<String>,
    #[serde(default)]
    any_role: Vec<String>,
    #[serde(default)]
    all_scopes: Vec<String>,
}

/// All routes, longest prefix first.
pub struct RouteTable {
    routes: Vec<Route>,
}

/// One entry of the route table.
pub struct Route {
    pub name: String,
    pub prefix: String,
    instances: Vec<Instance>,
    next_upstream: AtomicUsize,
    rewrite: Option<String>,
    /// The resource name the relayed token must carry in `aud`.
    pub audience: String,
    pub timeout: Duration,
    pub rate_limit: Option<RateLimiter>,
    /// Where requests go while every instance's circuit is open.
    pub fallback: Option<Fallback>,
    /// How a session's token reaches the upstream: exchanged for one whose
    /// `aud` is this route's audience alone, or as is.
    pub relay: RelayMode,
    /// The same for an API client's own bearer token.
    pub bearer_relay: RelayMode,
    /// The scope asked for in an exchange (space-separated; empty: the IdP's default).
    pub scope: String,
    allow: Vec<AllowRule>,
}

/// One upstream address of a route, with its own circuit breaker.
pub struct Instance {
    pub url: Url,
    pub breaker: Breaker,
}

/// What answers while every instance of a route has its circuit open.
#[derive(Debug, Clone, PartialEq)]
pub enum Fallback {
    /// A fixed JSON answer (200), e.g. an empty list.
    Json(serde_json::Value),
    /// Another route (same audience) takes the request, path rewritten by its rules.
    Route(String),
}

struct AllowRule {
    /// Empty: any method.
    methods: Vec<Method>,
    /// Segments relative to the prefix; `*` one segment, a final `**` the rest.
    path: Option<Vec<String>>,
    access: Access,
}

/// What an allow rule asks of the caller's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Any valid token for the route's audience.
    SignedIn,
    /// A valid token that also meets this (coarse RBAC).
    Requires(Requirement),
}

impl RouteTable {
    /// Reads and validates the table at `path`; `${VAR}` and `${VAR:-default}`
    /// in upstream addresses are taken from `env`.
    pub fn load(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, RouteTableError> {
        let text = std::fs::read_to_string(path).map_err(|source| RouteTableError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, env)
    }

    pub fn parse(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, RouteTableError> {
        let file: File = toml::from_str(text)?;
        let mut names = HashSet::new();
        let mut prefixes = HashSet::new();
        let mut routes = Vec::with_capacity(file.route.len());
        for r in file.route {
            let invalid = |reason: String| RouteTableError::Invalid {
                route: r.name.clone(),
                reason,
            };
            if !names.insert(r.name.clone()) {
                return Err(invalid("duplicate name".into()));
            }
            if !r.prefix.starts_with('/') || r.prefix.ends_with('/') || r.prefix.contains("//") {
                return Err(invalid(format!(
                    "prefix {:?} must start with / and not end with /",
                    r.prefix
                )));
            }
            if !prefixes.insert(r.prefix.clone()) {
                return Err(invalid(format!("prefix {:?} is used twice", r.prefix)));
            }
            if let Some(rw) = &r.rewrite
                && !(rw.is_empty() || (rw.starts_with('/') && !rw.ends_with('/')))
            {
                return Err(invalid(format!(
                    "rewrite {rw:?} must be empty or start with / and not end with /"
                )));
            }
            if r.upstreams.is_empty() {
                return Err(invalid("needs at least one upstream".into()));
            }
            let upstreams = r
                .upstreams
                .iter()
                .map(|u| {
                    let expanded = expand_env(u, &env).map_err(&invalid)?;
                    let url = Url::parse(&expanded)
                        .map_err(|e| invalid(format!("upstream {expanded:?}: {e}")))?;
                    if !matches!(url.scheme(), "http" | "https")
                        || url.query().is_some()
                        || url.fragment().is_some()
                    {
                        return Err(invalid(format!(
                            "upstream {expanded:?} must be an http(s) base URL"
                        )));
                    }
                    Ok(url)
                })
                .collect::<Result<Vec<_>, _>>()?;
            if r.audience.trim().is_empty() {
                return Err(invalid("audience must name the upstream's resource".into()));
            }
            if r.allow.is_empty() {
                return Err(invalid(
                    "has no [[route.allow]] rule, so nothing could pass".into(),
                ));
            }
            let allow = r
                .allow
                .iter()
                .map(|a| {
                    let methods = a
                        .methods
                        .iter()
                        .filter(|m| m.as_str() != "*")
                        .map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| invalid(format!("bad method: {e}")))?;
                    if a.methods.is_empty() {
                        return Err(invalid(
                            "an allow rule needs methods (use [\"*\"] for any)".into(),
                        ));
                    }
                    let path = match &a.path {
                        None => None,
                        Some(p) if p.starts_with('/') => {
                            let segs: Vec<String> = p[1..].split('/').map(str::to_owned).collect();
                            if segs.iter().rev().skip(1).any(|s| s == "**") {
                                return Err(invalid(format!("path {p:?}: ** only at the end")));
                            }
                            Some(segs)
                        }
                        Some(p) => return Err(invalid(format!("path {p:?} must start with /"))),
                    };
                    let mut needs = Vec::new();
                    if !a.any_role.is_empty() {
                        needs.push(Requirement::any_of(
                            a.any_role.iter().map(|r| Requirement::role(r.clone())),
                        ));
                    }
                    needs.extend(a.all_scopes.iter().map(|s| Requirement::scope(s.clone())));
                    let access = match needs.len() {
                        0 => Access::SignedIn,
                        1 => Access::Requires(needs.remove(0)),
                        _ => Access::Requires(Requirement::all_of(needs)),
                    };
                    Ok(AllowRule {
                        methods,
                        path,
                        access,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let timeout_ms = r.timeout_ms.unwrap_or(file.defaults.timeout_ms);
            if timeout_ms == 0 {
                return Err(invalid("timeout_ms must be positive".into()));
            }
            let circuit = r.circuit.unwrap_or(file.defaults.circuit);
            if circuit.failures == 0 {
                return Err(invalid("circuit.failures must be positive".into()));
            }
            let fallback = match r.fallback {
                None => None,
                Some(FallbackFile::Json(text)) => Some(Fallback::Json(
                    serde_json::from_str(&text)
                        .map_err(|e| invalid(format!("fallback json: {e}")))?,
                )),
                Some(FallbackFile::Route(name)) => Some(Fallback::Route(name)),
            };
            routes.push(Route {
                rate_limit: r
                    .rate_limit
                    .or(file.defaults.rate_limit)
                    .map(RateLimiter::new),
                name: r.name,
                prefix: r.prefix,
                instances: upstreams
                    .into_iter()
                    .map(|url| Instance {
                        url,
                        breaker: Breaker::new(circuit),
                    })
                    .collect(),
                next_upstream: AtomicUsize::new(0),
                rewrite: r.rewrite,
                audience: r.audience,
                timeout: Duration::from_millis(timeout_ms),
                fallback,
                relay: r.relay.or(file.defaults.relay).unwrap_or(RelayMode::Plain),
                bearer_relay: r
                    .bearer_relay
                    .or(file.defaults.bearer_relay)
                    .unwrap_or(RelayMode::Plain),
                scope: r.scopes.join(" "),
                allow,
            });
        }
        for r in &routes {
            if let Some(Fallback::Route(name)) = &r.fallback {
                let invalid = |reason: String| RouteTableError::Invalid {
                    route: r.name.clone(),
                    reason,
                };
                let target = routes
                    .iter()
                    .find(|t| &t.name == name)
                    .ok_or_else(|| invalid(format!("fallback route {name:?} does not exist")))?;
                if target.name == r.name || target.audience != r.audience {
                    return Err(invalid(format!(
                        "fallback route {name:?} must be another route with the same audience"
                    )));
                }
            }
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(Self { routes })
    }

    /// The route that stands in for `route` when its circuits are open, if it names one.
    pub fn fallback_route(&self, route: &Route) -> Option<&Route> {
        match &route.fallback {
            Some(Fallback::Route(name)) => self.named(name),
            _ => None,
        }
    }

    /// The route named `name`.
    pub fn named(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// The route for `path` (longest matching prefix) and the rest of the path after it.
    pub fn find<'a>(&self, path: &'a str) -> Option<(&Route, &'a str)> {
        self.routes.iter().find_map(|r| {
            let rest = path.strip_prefix(r.prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((r, rest))
        })
    }

    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }
}

impl Route {
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// The next instance (round robin) whose circuit lets a call through,
    /// skipping the instances in `tried`; else how long until one may.
    pub fn acquire(&self, tried: &[usize]) -> Result<(usize, Permit<'_>), Duration> {
        let n = self.instances.len();
        let start = self.next_upstream.fetch_add(1, Ordering::Relaxed);
        let mut wait = Duration::MAX;
        for i in (0..n).map(|k| (start + k) % n) {
            if tried.contains(&i) {
                continue;
            }
            match self.instances[i].breaker.acquire() {
                Ok(permit) => return Ok((i, permit)),
                Err(w) => wait = wait.min(w),
            }
        }
        Err(wait)
    }

    /// The URL of a request on instance `i`: the rewritten prefix, the rest
    /// of the path and the query as received.
    pub fn upstream_url(&self, i: usize, rest: &str, query: Option<&str>) -> Url {
        let base = &self.instances[i % self.instances.len()].url;
        let mut url = base.clone();
        let prefix = self.rewrite.as_deref().unwrap_or(&self.prefix);
        let mut path = format!("{}{prefix}{rest}", base.path().trim_end_matches('/'));
        if path.is_empty() {
            path.push('/');
        }
        url.set_path(&path);
        url.set_query(query);
        url
    }

    /// Coarse RBAC: what the first allow rule matching `method` and `rest`
    /// asks for; `None` when no rule exposes this method and path.
    pub fn access(&self, method: &Method, rest: &str) -> Option<&Access> {
        self.allow
            .iter()
            .find(|a| a.matches(method, rest))
            .map(|a| &a.access)
    }
}

impl AllowRule {
    fn matches(&self, method: &Method, rest: &str) -> bool {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return false;
        }
        let Some(pattern) = &self.path else {
            return true;
        };
        // `/api/orders` and `/api/orders/` both match the pattern "/".
        let rest = if rest.is_empty() { "/" } else { rest };
        let mut segs = rest[1..].split('/');
        for p in pattern {
            if p == "**" {
                return true;
            }
            match segs.next() {
                Some(s) if p == "*" || p == s => {}
                _ => return false,
            }
        }
        segs.next().is_none()
    }
}

/// Expands `${VAR}` and `${VAR:-default}`.
fn expand_env(s: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or(format!("unclosed ${{ in {s:?}"))?
            + start;
        let inner = &rest[start + 2..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let value = env(name)
            .filter(|v| !v.is_empty())
            .or(default.map(str::to_owned));
        out.push_str(&value.ok_or(format!("{name} is not set and has no default"))?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
