//! Brute-force defence: failure counters in PostgreSQL (so every replica
//! shares them) with growing lock-outs, and an audit trail.
//!
//! Counters are keyed by the *submitted* account name, whether or not it
//! exists, so a lock-out says nothing about existence; by the network address
//! (an IPv6 address counts as its /64, which one host usually holds whole), so
//! one address cannot try many accounts; and for client authentication by
//! (client id, address), never by the client id alone: failures lock out where
//! they come from, not the client everyone else relies on.
//!
//! Sign-ins reserve their place before hashing ([`crate::in_flight`]); client
//! authentication is a SHA-256 and counts failures afterwards ([`failed`]).

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use sqlx::PgPool;

use crate::cache::AuthCache;

/// How many failures a key may have in a window before it is locked, and
/// how long: `base × 2^(failures − limit)`, at most `cap`.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub limit: i32,
    pub window: Duration,
    pub base: Duration,
    pub cap: Duration,
}

const MINUTE: Duration = Duration::from_secs(60);

/// Per account name at the login form.
pub const ACCOUNT: Policy = Policy {
    limit: 5,
    window: Duration::from_secs(900),
    base: Duration::from_secs(30),
    cap: Duration::from_secs(900),
};
/// Per network address (login form and client authentication).
pub const ADDRESS: Policy = Policy {
    limit: 20,
    window: Duration::from_secs(900),
    base: MINUTE,
    cap: Duration::from_secs(900),
};
/// Per (client id, address) at the token, revocation and introspection endpoints.
pub const CLIENT: Policy = Policy {
    limit: 10,
    window: Duration::from_secs(900),
    base: Duration::from_secs(30),
    cap: Duration::from_secs(900),
};

pub fn account_key(username: &str) -> String {
    format!("user:{}", username.to_lowercase())
}

/// The network an address is throttled as: an IPv4 address itself, an IPv6
/// address its /64 (a host is usually given a whole /64 and can pick any
/// address in it). Anything else (`unknown`) as is.
pub fn network(addr: &str) -> String {
    match addr.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V6(v6)) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", Ipv6Addr::from(prefix))
        }
        Ok(v4) => v4.to_string(),
        Err(_) => addr.to_owned(),
    }
}

/// The sign-in key of an address.
pub fn addr_key(addr: &str) -> String {
    format!("addr:{}", network(addr))
}

/// The client-authentication key of an address (apart from sign-ins).
pub fn client_net_key(addr: &str) -> String {
    format!("addr:client-{}", network(addr))
}

/// The client-authentication key of a client id tried from an address.
pub fn client_addr_key(client_id: &str, addr: &str) -> String {
    format!("client:{client_id}@{}", network(addr))
}

/// Whether any of `keys` is locked out. From `cache` when it knows none is;
/// otherwise from the database, and a "not locked" answer is remembered unless
/// a failure was counted meanwhile (see [`failed`]).
pub async fn is_locked(db: &PgPool, cache: &AuthCache, keys: &[&str]) -> sqlx::Result<bool> {
    if cache.all_unlocked(keys) {
        return Ok(false);
    }
    let failures_before = cache.failure_count();
    let locked = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM auth_throttle WHERE key = ANY($1) AND locked_until > now())
           AS "locked!""#,
        keys as &[&str],
    )
    .fetch_one(db)
    .await?;
    if !locked {
        cache.mark_unlocked(keys, failures_before);
    }
    Ok(locked)
}

/// A failed attempt: counts it against each key (locking those past their
/// policy's limit) and writes the audit line `e` (as [`audit`]). Keeps
/// `cache`'s "not locked" verdicts honest: the keys are dropped from it before
/// the database is written and again after, so a lock-out lookup that read
/// the database in between (and could have seen no lock yet) is neither
/// cached then nor kept.
pub async fn failed(
    db: &PgPool,
    cache: &AuthCache,
    keys: &[(&str, Policy)],
    e: AuthEvent<'_>,
) -> sqlx::Result<()> {
    for (key, _) in keys {
        cache.failed(key);
    }
    let mut written = Ok(());
    for (key, policy) in keys {
        written = fail(db, key, *policy).await;
        if written.is_err() {
            break;
        }
    }
    for (key, _) in keys {
        cache.failed(key);
    }
    written?;
    audit(db, e).await
}

/// Counts a failure; locks the key once it passes the policy's limit.
async fn fail(db: &PgPool, key: &str, policy: Policy) -> sqlx::Result<()> {
    let window = policy.window.as_secs_f64();
    let failures = sqlx::query_scalar!(
        "INSERT INTO auth_throttle (key, failures, window_start) VALUES ($1, 1, now())
         ON CONFLICT (key) DO UPDATE SET
             failures = CASE WHEN auth_throttle.window_start < now() - make_interval(secs => $2)
                             THEN 1 ELSE auth_throttle.failures + 1 END,
             window_start = CASE WHEN auth_throttle.window_start < now() - make_interval(secs => $2)
                                 THEN now() ELSE auth_throttle.window_start END
         RETURNING failures",
        key,
        window,
    )
    .fetch_one(db)
    .await?;
    if let Some(delay) = lock_for(failures, policy) {
        sqlx::query!(
            "UPDATE auth_throttle SET locked_until = now() + make_interval(secs => $2) WHERE key = $1",
            key,
            delay.as_secs_f64(),
        )
        .execute(db)
        .await?;
        tracing::warn!(
            key,
            failures,
            delay_secs = delay.as_secs(),
            "too many authentication failures; locked"
        );
    }
    Ok(())
}

/// How long `failures` failures lock a key, if at all.
pub fn lock_for(failures: i32, policy: Policy) -> Option<Duration> {
    let over = failures.checked_sub(policy.limit)?;
    if over < 0 {
        return None;
    }
    let factor = 2u32.saturating_pow(over.min(20) as u32);
    Some(policy.base.saturating_mul(factor).min(policy.cap))
}

/// A successful sign-in in one round trip: clears the counters of `keys`
/// (the account's, not the address's: one success does not excuse many
/// failures from the same place) and writes the audit line (as [`audit`]).
pub async fn succeeded(db: &PgPool, keys: &[&str], e: AuthEvent<'_>) -> sqlx::Result<()> {
    let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    sqlx::query!(
        "WITH cleared AS (DELETE FROM auth_throttle WHERE key = ANY($5))
         INSERT INTO auth_events (kind, username, client_id, addr) VALUES ($1, $2, $3, $4)",
        e.kind,
        e.username,
        e.client_id,
        e.addr,
        &keys,
    )
    .execute(db)
    .await?;
    log_event(&e);
    Ok(())
}

/// One line of the audit trail.
pub struct AuthEvent<'a> {
    pub kind: &'static str,
    pub username: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub addr: &'a str,
}

pub async fn audit(db: &PgPool, e: AuthEvent<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO auth_events (kind, username, client_id, addr) VALUES ($1, $2, $3, $4)",
        e.kind,
        e.username,
        e.client_id,
        e.addr,
    )
    .execute(db)
    .await?;
    log_event(&e);
    Ok(())
}

pub(crate) fn log_event(e: &AuthEvent<'_>) {
    tracing::info!(target: "audit", kind = e.kind, client_id = e.client_id.unwrap_or(""), addr = e.addr, "authentication event");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_grow_and_are_capped() {
        assert_eq!(lock_for(4, ACCOUNT), None);
        assert_eq!(lock_for(5, ACCOUNT), Some(Duration::from_secs(30)));
        assert_eq!(lock_for(6, ACCOUNT), Some(Duration::from_secs(60)));
        assert_eq!(lock_for(7, ACCOUNT), Some(Duration::from_secs(120)));
        assert_eq!(lock_for(50, ACCOUNT), Some(Duration::from_secs(900)));
        assert_eq!(lock_for(i32::MAX, ACCOUNT), Some(Duration::from_secs(900)));
        assert_eq!(lock_for(19, ADDRESS), None);
    }

    #[test]
    fn account_keys_ignore_case() {
        assert_eq!(account_key("Alice"), account_key("alice"));
        assert_ne!(account_key("alice"), client_addr_key("alice", "1.2.3.4"));
    }

    #[test]
    fn ipv6_addresses_are_throttled_per_64() {
        assert_eq!(
            addr_key("2001:db8:1:2:aaaa::1"),
            addr_key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(addr_key("2001:db8:1:2::9"), "addr:2001:db8:1:2::/64");
        assert_ne!(addr_key("2001:db8:1:2::1"), addr_key("2001:db8:1:3::1"));
        assert_eq!(addr_key("::ffff:10.0.0.1"), "addr:10.0.0.1");
        assert_ne!(addr_key("10.0.0.1"), addr_key("10.0.0.2"));
        assert_eq!(
            client_addr_key("gateway", "2001:db8::1"),
            client_addr_key("gateway", "2001:db8::2")
        );
        assert_eq!(addr_key("unknown"), "addr:unknown");
    }
}
