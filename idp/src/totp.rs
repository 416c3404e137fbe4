//! The TOTP second factor (RFC 6238) and its recovery codes: codes, sealing,
//! replay and the table rows. The pages are [`crate::http::second_factor`]
//! (sign-in) and [`crate::http::authenticator`] (enrolment at `/account`).
//!
//! - Codes are 6 digits over 30-second steps with HMAC-SHA1, what every
//!   authenticator app reads from an `otpauth://` QR code (computed by
//!   `totp-rs`); one step of clock skew either way is accepted.
//! - The secret (160 random bits, RFC 4226 §4) is sealed at rest with a key
//!   derived from the master key, bound to the user's id: a database dump
//!   alone yields no usable secret, and a sealed secret moved to another
//!   user's row does not open.
//! - A code is accepted only for a time step newer than the last accepted one
//!   (one conditional `UPDATE`), so a code seen over a shoulder or replayed
//!   by a proxy is refused, on every replica, even inside its 90 s window.
//! - Recovery codes are 50 random bits each, stored as SHA-256 (as client
//!   secrets are; argon2 is for what people choose), single-use.
//! - Guessing is throttled by the caller in the same lock-outs as passwords
//!   ([`crate::in_flight`], key [`throttle_key`]).

use qrcode::QrCode;
use qrcode::render::svg;
use sqlx::PgPool;
use totp_rs::{Algorithm, TOTP};
use uuid::Uuid;

use crate::in_flight::{self, Admission};
use crate::throttle::{self, AuthEvent};
use platform::crypto::{SealKey, ct_eq, random, sha256};

/// Digits of a code.
pub const DIGITS: usize = 6;
/// Seconds per time step.
pub const STEP: u64 = 30;
/// Steps of clock skew accepted either way.
const SKEW: i64 = 1;
/// Recovery codes handed out at enrolment.
pub const RECOVERY_CODES: usize = 10;

/// The server-side failure when a stored secret does not open: the master
/// key changed without its previous value (see `IDP_KEY_ENCRYPTION_KEY`).
pub const UNSEALABLE: &str = "a TOTP secret does not open under this master key";

/// The throttle key of a person's second factor (apart from their password's).
pub fn throttle_key(user: Uuid) -> String {
    format!("otp:{user}")
}

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    random::<20>().to_vec()
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> TOTP {
    // `new_unchecked`: the secret is always ours (20 bytes), and a `:` in a
    // name would only be refused; the otpauth URI escapes what it carries.
    TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        0,
        STEP,
        secret.to_vec(),
        Some(issuer.replace(':', " ")),
        account.replace(':', " "),
    )
}

/// What an enrolment page shows: the secret as the app reads it.
pub struct Provisioning {
    /// The `otpauth://totp/…` URI.
    pub uri: String,
    /// The secret in base32, for typing in by hand.
    pub base32: String,
    /// The URI as a QR code, an SVG image drawn here.
    pub qr_svg: String,
}

pub fn provisioning(secret: &[u8], issuer: &str, account: &str) -> Provisioning {
    let t = totp(secret, issuer, account);
    let uri = t.get_url();
    let qr_svg = QrCode::new(uri.as_bytes())
        .map(|qr| {
            qr.render::<svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        // The element alone, for inlining in the page (no XML prolog).
        .ok()
        .and_then(|svg| svg.find("<svg").map(|at| svg[at..].to_owned()))
        .unwrap_or_default();
    Provisioning {
        uri,
        base32: t.get_secret_base32(),
        qr_svg,
    }
}

/// The time step of Unix time `now`.
pub fn step_at(now: u64) -> i64 {
    i64::try_from(now / STEP).unwrap_or(i64::MAX)
}

/// The time step whose code `code` is, within the skew window around `now`,
/// if any; every candidate is compared in constant time.
pub fn matching_step(secret: &[u8], code: &str, now: u64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, "", "");
    let current = step_at(now);
    let mut found = None;
    for step in current - SKEW..=current + SKEW {
        let Ok(at) = u64::try_from(step) else {
            continue;
        };
        if ct_eq(t.generate(at * STEP).as_bytes(), code.as_bytes()) {
            found = Some(step);
        }
    }
    found
}

/// The code of `secret` at Unix time `now` (tests and the demo's tooling).
pub fn code_at(secret: &[u8], now: u64) -> String {
    totp(secret, "", "").generate(now)
}

/// The additional data that binds a sealed secret to its user.
fn aad(user: Uuid) -> Vec<u8> {
    format!("baton-idp totp v1 {user}").into_bytes()
}

fn seal(sealer: &SealKey, user: Uuid, secret: &[u8]) -> Vec<u8> {
    sealer.seal(secret, &aad(user))
}

pub fn open(sealer: &SealKey, user: Uuid, sealed: &[u8]) -> Option<Vec<u8>> {
    sealer.open(sealed, &aad(user))
}

/// New recovery codes as the person sees them, `xxxxx-xxxxx` (lowercase
/// base32, 50 bits).
fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..RECOVERY_CODES)
        .map(|_| {
            let bits = u64::from_be_bytes(random::<8>());
            let chars: String = (0..10)
                .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char)
                .collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect()
}

/// A recovery code as typed (any case, dash and spaces optional), normalised
/// and hashed; `None` when it cannot be one.
pub fn recovery_code_hash(typed: &str) -> Option<[u8; 32]> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = code.len() == 10 && code.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'));
    valid.then(|| sha256(code.as_bytes()))
}

/// What proving the second factor came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// A current code (of a new time step) or an unused recovery code.
    Accepted,
    /// Wrong, replayed, old, or a recovery code used before: counted.
    Refused,
    /// The person's second factor (or the address) is locked out: not checked.
    Locked,
}

/// Checks `typed` (a current code or a recovery code) against `user`'s
/// authenticator `secret`, within the lock-outs: a place is reserved on the
/// person's second-factor key and the address `addr` first ([`crate::in_flight`]),
/// so guesses sent at once are checked no more than the budget allows.
/// Writes the audit lines (`login_locked`, `totp_failed`,
/// `recovery_code_used`) through `event`, which names the person and address.
pub async fn prove<'a>(
    db: &PgPool,
    user: Uuid,
    secret: &[u8],
    typed: &str,
    addr: &str,
    event: impl Fn(&'static str) -> AuthEvent<'a>,
) -> sqlx::Result<Proof> {
    let otp_key = throttle_key(user);
    let addr_key = throttle::addr_key(addr);
    let keys = [
        (otp_key.as_str(), throttle::ACCOUNT),
        (addr_key.as_str(), throttle::ADDRESS),
    ];
    let reservation = match in_flight::reserve(db, &keys).await? {
        Admission::Admitted(r) => r,
        Admission::Refused => {
            throttle::audit(db, event("login_locked")).await?;
            return Ok(Proof::Locked);
        }
    };
    let typed = typed.trim();
    let now = time::OffsetDateTime::now_utc()
        .unix_timestamp()
        .unsigned_abs();
    let accepted = match (matching_step(secret, typed, now), recovery_code_hash(typed)) {
        (Some(step), _) => accept_step(db, user, step).await?,
        (None, Some(hash)) => {
            let used = use_recovery_code(db, user, &hash).await?;
            if used {
                throttle::audit(db, event("recovery_code_used")).await?;
            }
            used
        }
        (None, None) => false,
    };
    if accepted {
        reservation.succeeded().await?;
        Ok(Proof::Accepted)
    } else {
        tracing::info!(%user, "second factor refused");
        reservation.failed(event("totp_failed")).await?;
        Ok(Proof::Refused)
    }
}

/// What a sign-in of a person to a client needs of the second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The person has an authenticator app.
    pub app: bool,
    /// The person has passkeys ([`crate::passkeys`]).
    pub passkeys: bool,
    /// The person, or the client, requires one: without any, the person
    /// sets up an app during the sign-in.
    pub required: bool,
}

impl Policy {
    /// The person has a second factor: after a password it is always asked for.
    pub fn enrolled(&self) -> bool {
        self.app || self.passkeys
    }
}

/// The second-factor [`Policy`] of `user` signing in to `client_id`, in one read.
#[tracing::instrument(name = "db.totp.policy", skip_all)]
pub async fn policy(db: &PgPool, user: Uuid, client_id: &str) -> sqlx::Result<Policy> {
    let row = sqlx::query!(
        r#"SELECT EXISTS (SELECT 1 FROM totp_authenticators WHERE user_id = $1) AS "app!",
                  EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1) AS "passkeys!",
                  (COALESCE((SELECT second_factor_required FROM users WHERE id = $1), false)
                   OR COALESCE((SELECT second_factor_required FROM clients WHERE id = $2), false)) AS "required!""#,
        user,
        client_id,
    )
    .fetch_one(db)
    .await?;
    Ok(Policy {
        app: row.app,
        passkeys: row.passkeys,
        required: row.required,
    })
}

/// Requires (or no longer requires) a second factor of `user`.
pub async fn require_for_user(db: &PgPool, user: Uuid, required: bool) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET second_factor_required = $2, updated_at = now() WHERE id = $1",
        user,
        required,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Requires (or no longer requires) a second factor of everyone signing in
/// to `client_id`; `false` when there is no such client.
pub async fn require_for_client(
    db: &PgPool,
    client_id: &str,
    required: bool,
) -> sqlx::Result<bool> {
    let updated = sqlx::query!(
        "UPDATE clients SET second_factor_required = $2, updated_at = now() WHERE id = $1",
        client_id,
        required,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// A person's authenticator, as stored.
pub struct Authenticator {
    pub secret_sealed: Vec<u8>,
    pub last_step: i64,
}

#[tracing::instrument(name = "db.totp.authenticator_of", skip_all)]
pub async fn authenticator_of(db: &PgPool, user: Uuid) -> sqlx::Result<Option<Authenticator>> {
    sqlx::query_as!(
        Authenticator,
        "SELECT secret_sealed, last_step FROM totp_authenticators WHERE user_id = $1",
        user,
    )
    .fetch_optional(db)
    .await
}

/// Stores a confirmed authenticator of `secret` (its first code was for
/// `step`), sealed with `sealer`, with ten new recovery codes (hashed), and
/// the audit line `event`. Answers the recovery codes, to show once; `None`
/// when the person already has one (two enrolments raced): nothing is changed.
#[tracing::instrument(name = "db.totp.enrol", skip_all)]
pub async fn enrol(
    db: &PgPool,
    sealer: &SealKey,
    user: Uuid,
    secret: &[u8],
    step: i64,
    event: AuthEvent<'_>,
) -> sqlx::Result<Option<Vec<String>>> {
    let codes = new_recovery_codes();
    let sealed = seal(sealer, user, secret);
    let hashes: Vec<Vec<u8>> = codes
        .iter()
        .filter_map(|c| recovery_code_hash(c))
        .map(|h| h.to_vec())
        .collect();
    let stored = sqlx::query_scalar!(
        r#"WITH a AS (INSERT INTO totp_authenticators (user_id, secret_sealed, last_step)
                      VALUES ($1, $2, $3) ON CONFLICT (user_id) DO NOTHING RETURNING user_id),
                r AS (INSERT INTO recovery_codes (user_id, code_hash)
                      SELECT a.user_id, h FROM a, unnest($4::bytea[]) AS h),
                e AS (INSERT INTO auth_events (kind, username, client_id, addr)
                      SELECT $5, $6, $7, $8 FROM a)
           SELECT count(*) AS "stored!" FROM a"#,
        user,
        &sealed,
        step,
        &hashes,
        event.kind,
        event.username,
        event.client_id,
        event.addr,
    )
    .fetch_one(db)
    .await?;
    if stored != 1 {
        return Ok(None);
    }
    crate::throttle::log_event(&event);
    Ok(Some(codes))
}

/// Accepts time step `step` for `user` if it is newer than every step
/// accepted before; `false` for a replay (or a step at or before it).
#[tracing::instrument(name = "db.totp.accept_step", skip_all)]
async fn accept_step(db: &PgPool, user: Uuid, step: i64) -> sqlx::Result<bool> {
    let updated = sqlx::query!(
        "UPDATE totp_authenticators SET last_step = $2 WHERE user_id = $1 AND last_step < $2",
        user,
        step,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Uses up the recovery code hashed `hash` of `user`; `false` when it is not
/// one of theirs or was used before.
#[tracing::instrument(name = "db.totp.use_recovery_code", skip_all)]
async fn use_recovery_code(db: &PgPool, user: Uuid, hash: &[u8; 32]) -> sqlx::Result<bool> {
    let updated = sqlx::query!(
        "UPDATE recovery_codes SET used_at = now()
         WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        user,
        &hash[..],
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Recovery codes `user` has left.
pub async fn recovery_codes_left(db: &PgPool, user: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "left!" FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL"#,
        user,
    )
    .fetch_one(db)
    .await
}

/// Removes the authenticator and the recovery codes of `user` (the person at
/// `/account`, or an administrator); answers whether there was one.
#[tracing::instrument(name = "db.totp.remove", skip_all)]
pub async fn remove(db: &PgPool, user: Uuid) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    sqlx::query!("DELETE FROM recovery_codes WHERE user_id = $1", user)
        .execute(&mut *tx)
        .await?;
    let removed = sqlx::query!("DELETE FROM totp_authenticators WHERE user_id = $1", user)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(removed == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 (8-digit values; the 6-digit code is their tail).
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(secret, time), eight[2..], "at {time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_one_step_either_side_only() {
        let secret = new_secret();
        let now = 1_800_000_000;
        let code = code_at(&secret, now);
        assert_eq!(matching_step(&secret, &code, now), Some(step_at(now)));
        assert_eq!(
            matching_step(&secret, &code, now + STEP),
            Some(step_at(now))
        );
        assert_eq!(
            matching_step(&secret, &code, now - STEP),
            Some(step_at(now))
        );
        assert_eq!(matching_step(&secret, &code, now + 2 * STEP), None);
        assert_eq!(matching_step(&new_secret(), &code, now), None);
        assert_eq!(matching_step(&secret, "12345", now), None);
        assert_eq!(matching_step(&secret, "12a456", now), None);
        assert_eq!(matching_step(&secret, "", now), None);
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_user() {
        let sealer = crate::crypto::MasterKey::generate().derive("totp");
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let secret = new_secret();
        let sealed = seal(&sealer, alice, &secret);
        assert_eq!(open(&sealer, alice, &sealed), Some(secret));
        assert_eq!(open(&sealer, bob, &sealed), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_read_back_however_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let code = &codes[0];
        let hash = recovery_code_hash(code).unwrap();
        assert_eq!(recovery_code_hash(&code.to_uppercase()), Some(hash));
        assert_eq!(recovery_code_hash(&code.replace('-', " ")), Some(hash));
        assert_eq!(recovery_code_hash("123456"), None);
        assert_eq!(recovery_code_hash("abcde-fghi1"), None);
    }

    #[test]
    fn the_provisioning_uri_names_the_issuer_and_account_and_draws_a_qr_code() {
        let p = provisioning(&new_secret(), "Baton", "alice");
        assert!(
            p.uri.starts_with("otpauth://totp/Baton:alice?"),
            "{}",
            p.uri
        );
        assert!(p.uri.contains(&format!("secret={}", p.base32)));
        assert!(p.qr_svg.starts_with("<svg") && p.qr_svg.ends_with("</svg>"));
    }
}
