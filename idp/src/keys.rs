//! Signing keys: generation, storage (private parts sealed with the master
//! key), rotation, the published JWKS and the in-memory signer.
//!
//! Key pairs are parsed once into aws-lc-rs objects and kept in memory; a JWT
//! is signed with them directly (never re-parsing a PEM per token). RSA
//! signatures (~1 ms) run on the bounded blocking pool; ECDSA and Ed25519 are
//! fast enough to run inline.
//!
//! The IdP keeps a signing key of each algorithm in [`signing_algs`]: the
//! configured one (every token by default) and RS256, which OIDC Core §15.1
//! requires to stay available for ID tokens (a client picks it with
//! `id_token_signed_response_alg`).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::Jwk;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;

mod material;

use material::ALL;
pub use material::{Alg, KeyError, NewKey, SigningKey, generate, signing_algs};

use crate::blocking::Blocking;
use platform::crypto::{SealKey, b64url};

struct KeyRow {
    kid: String,
    alg: String,
    public_jwk: Value,
    private_key_encrypted: Vec<u8>,
    not_before: OffsetDateTime,
    retire_at: Option<OffsetDateTime>,
}

/// One row of `idp keys list`.
#[derive(Debug, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub retire_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expire_at: Option<OffsetDateTime>,
}

impl KeyInfo {
    /// `pending` (published, not signing yet), `active`, `retired` (published,
    /// not signing) or `expired` (no longer published).
    pub fn status(&self, now: OffsetDateTime) -> &'static str {
        if self.expire_at.is_some_and(|t| t <= now) {
            "expired"
        } else if self.retire_at.is_some_and(|t| t <= now) {
            "retired"
        } else if self.not_before > now {
            "pending"
        } else {
            "active"
        }
    }
}

/// A published public key, ready to verify the IdP's own tokens.
pub struct PublicKey {
    pub kid: String,
    pub alg: Alg,
    pub decoding: DecodingKey,
}

struct Signer {
    not_before: OffsetDateTime,
    retire_at: Option<OffsetDateTime>,
    key: Arc<SigningKey>,
}

/// A consistent view of the keys, swapped as a whole on reload.
pub struct KeySet {
    jwks: Arc<str>,
    public: Vec<PublicKey>,
    signers: Vec<Signer>,
}

impl KeySet {
    /// The key of `alg` that signs at `now`: the newest one whose signing
    /// window contains `now`.
    fn signer(&self, alg: Alg, now: OffsetDateTime) -> Option<&Arc<SigningKey>> {
        self.signers
            .iter()
            .filter(|s| {
                s.key.alg == alg && s.not_before <= now && s.retire_at.is_none_or(|r| r > now)
            })
            .max_by_key(|s| s.not_before)
            .map(|s| &s.key)
    }
}

/// The keys in memory, reloaded from the database on a timer.
pub struct KeyStore {
    pool: PgPool,
    sealer: SealKey,
    alg: Alg,
    blocking: Blocking,
    current: RwLock<Arc<KeySet>>,
}

impl KeyStore {
    /// Makes sure a usable key of each of [`signing_algs`]`(alg)` is active
    /// (creating them on first start), then loads everything. `alg` signs by default.
    pub async fn open(
        pool: PgPool,
        sealer: SealKey,
        alg: Alg,
        blocking: Blocking,
        retired_key_life: Duration,
    ) -> Result<Self, KeyError> {
        let algs = signing_algs(alg);
        for a in &algs {
            ensure_active(&pool, &sealer, *a, &algs, &blocking, retired_key_life).await?;
        }
        let set = load(&pool, &sealer, &algs).await?;
        Ok(Self {
            pool,
            sealer,
            alg,
            blocking,
            current: RwLock::new(Arc::new(set)),
        })
    }

    pub async fn reload(&self) -> Result<(), KeyError> {
        let set = load(&self.pool, &self.sealer, &signing_algs(self.alg)).await?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        Ok(())
    }

    pub fn snapshot(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The JWKS document (`{"keys":[...]}`).
    pub fn jwks(&self) -> Arc<str> {
        self.snapshot().jwks.clone()
    }

    /// Whether a key of every algorithm signs now.
    pub fn has_signer(&self) -> bool {
        let (set, now) = (self.snapshot(), OffsetDateTime::now_utc());
        signing_algs(self.alg)
            .into_iter()
            .all(|a| set.signer(a, now).is_some())
    }

    /// The algorithm that signs by default (`IDP_SIGNING_ALG`).
    pub fn default_alg(&self) -> Alg {
        self.alg
    }

    /// Runs `f` with the published public key `kid`, if any.
    pub fn with_public<R>(&self, kid: &str, f: impl FnOnce(&PublicKey) -> R) -> Option<R> {
        let set = self.snapshot();
        set.public.iter().find(|k| k.kid == kid).map(f)
    }

    /// The key of `alg` that signs now.
    pub fn signing_key(&self, alg: Alg) -> Option<Arc<SigningKey>> {
        self.snapshot()
            .signer(alg, OffsetDateTime::now_utc())
            .cloned()
    }

    /// Signs a compact JWS with the active key of the default algorithm:
    /// `header.payload.signature`.
    pub async fn sign_jwt(
        &self,
        typ: &str,
        claims: &impl Serialize,
    ) -> Result<(String, Alg), KeyError> {
        self.sign_jwt_as(self.alg, typ, claims).await
    }

    /// As [`sign_jwt`](Self::sign_jwt), with the active key of `alg`.
    pub async fn sign_jwt_as(
        &self,
        alg: Alg,
        typ: &str,
        claims: &impl Serialize,
    ) -> Result<(String, Alg), KeyError> {
        let key = self.signing_key(alg).ok_or(KeyError::NoActiveKey)?;
        let header = json!({"alg": key.alg.as_str(), "typ": typ, "kid": key.kid});
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Sign(e.to_string()))?;
        let mut jwt = b64url(header.to_string().as_bytes());
        jwt.push('.');
        jwt.push_str(&b64url(&payload));
        let alg = key.alg;
        let (jwt, sig) = if key.is_slow() {
            self.blocking
                .run(move || {
                    let sig = key.sign(jwt.as_bytes());
                    (jwt, sig)
                })
                .await
                .map_err(|e| KeyError::Sign(e.to_string()))?
        } else {
            let sig = key.sign(jwt.as_bytes());
            (jwt, sig)
        };
        let mut jwt = jwt;
        jwt.push('.');
        jwt.push_str(&b64url(&sig?));
        Ok((jwt, alg))
    }
}

/// Every published key; the private keys of `algs` that can sign.
async fn load(pool: &PgPool, sealer: &SealKey, algs: &[Alg]) -> Result<KeySet, KeyError> {
    let rows = sqlx::query_as!(
        KeyRow,
        "SELECT kid, alg, public_jwk, private_key_encrypted, not_before, retire_at
         FROM signing_keys WHERE expire_at IS NULL OR expire_at > now()
         ORDER BY created_at",
    )
    .fetch_all(pool)
    .await?;
    let mut public = Vec::new();
    let mut signers = Vec::new();
    let mut jwks = Vec::new();
    for row in rows {
        let Ok(row_alg) = row.alg.parse::<Alg>() else {
            continue;
        };
        let decoding = serde_json::from_value::<Jwk>(row.public_jwk.clone())
            .ok()
            .and_then(|jwk| DecodingKey::from_jwk(&jwk).ok());
        let Some(decoding) = decoding else {
            tracing::error!(kid = %row.kid, "published key has an unreadable JWK; skipped");
            continue;
        };
        jwks.push(row.public_jwk);
        public.push(PublicKey {
            kid: row.kid.clone(),
            alg: row_alg,
            decoding,
        });
        if !algs.contains(&row_alg)
            || row
                .retire_at
                .is_some_and(|r| r <= OffsetDateTime::now_utc())
        {
            continue;
        }
        match open_private(sealer, &row.kid, row_alg, &row.private_key_encrypted) {
            Some(key) => signers.push(Signer {
                not_before: row.not_before,
                retire_at: row.retire_at,
                key: Arc::new(key),
            }),
            None => {
                tracing::warn!(kid = %row.kid, "cannot decrypt this signing key with the configured IDP_KEY_ENCRYPTION_KEY; it stays published but will not sign")
            }
        }
    }
    let jwks = json!({ "keys": jwks }).to_string();
    Ok(KeySet {
        jwks: jwks.into(),
        public,
        signers,
    })
}

fn open_private(sealer: &SealKey, kid: &str, alg: Alg, sealed: &[u8]) -> Option<SigningKey> {
    let pkcs8 = sealer.open(sealed, kid.as_bytes())?;
    SigningKey::from_pkcs8(kid.to_owned(), alg, &pkcs8)
}

async fn insert_key(
    tx: &mut sqlx::PgConnection,
    sealer: &SealKey,
    key: &NewKey,
    not_before: OffsetDateTime,
) -> Result<(), KeyError> {
    let sealed = sealer.seal(&key.pkcs8, key.kid.as_bytes());
    sqlx::query!(
        "INSERT INTO signing_keys (kid, alg, public_jwk, private_key_encrypted, not_before)
         VALUES ($1, $2, $3, $4, $5)",
        key.kid,
        key.alg.as_str(),
        key.jwk,
        sealed,
        not_before,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Retires every other key of `keep`'s algorithm, and of any algorithm not
/// in `algs`, still signing (or scheduled to) at `at`: they stop signing then
/// and stay published `retired_key_life` longer.
async fn retire_others(
    tx: &mut sqlx::PgConnection,
    keep: &NewKey,
    algs: &[Alg],
    at: OffsetDateTime,
    retired_key_life: Duration,
) -> Result<(), KeyError> {
    let algs: Vec<&str> = algs.iter().map(|a| a.as_str()).collect();
    sqlx::query!(
        "UPDATE signing_keys SET retire_at = $2, expire_at = $2 + make_interval(secs => $3)
         WHERE kid <> $1 AND (alg = $4 OR alg <> ALL($5))
           AND (retire_at IS NULL OR retire_at > $2)",
        keep.kid,
        at.max(OffsetDateTime::now_utc()),
        retired_key_life.as_secs_f64(),
        keep.alg.as_str(),
        &algs as &[&str],
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Serialises key changes between IdP replicas and CLI runs.
const KEY_LOCK: i64 = 0x6261_746f_6e6b_6579; // "batonkey"

/// Takes [`KEY_LOCK`] until the transaction ends.
async fn lock_keys(tx: &mut sqlx::PgConnection) -> Result<(), KeyError> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", KEY_LOCK)
        .execute(tx)
        .await?;
    Ok(())
}

async fn generate_off_runtime(blocking: &Blocking, alg: Alg) -> Result<NewKey, KeyError> {
    blocking
        .run(move || generate(alg))
        .await
        .map_err(|_| KeyError::Generate)?
}

/// On start-up: when no decryptable key of `alg` is signing now, creates one
/// that signs at once (first start, a changed algorithm, or a lost dev key),
/// retiring keys of algorithms no longer in `algs`.
pub async fn ensure_active(
    pool: &PgPool,
    sealer: &SealKey,
    alg: Alg,
    algs: &[Alg],
    blocking: &Blocking,
    retired_key_life: Duration,
) -> Result<(), KeyError> {
    if load(pool, sealer, &[alg])
        .await?
        .signer(alg, OffsetDateTime::now_utc())
        .is_some()
    {
        return Ok(());
    }
    let key = generate_off_runtime(blocking, alg).await?;
    let mut tx = pool.begin().await?;
    lock_keys(&mut tx).await?;
    // Another replica may have done it while we waited for the lock.
    let now = OffsetDateTime::now_utc();
    let active = sqlx::query!(
        "SELECT kid, private_key_encrypted FROM signing_keys
         WHERE alg = $1 AND not_before <= now() AND (retire_at IS NULL OR retire_at > now())",
        alg.as_str(),
    )
    .fetch_all(&mut *tx)
    .await?;
    if active
        .iter()
        .any(|row| open_private(sealer, &row.kid, alg, &row.private_key_encrypted).is_some())
    {
        return Ok(());
    }
    insert_key(&mut tx, sealer, &key, now).await?;
    retire_others(&mut tx, &key, algs, now, retired_key_life).await?;
    tx.commit().await?;
    tracing::info!(kid = %key.kid, %alg, "created a signing key");
    Ok(())
}

/// `idp keys rotate`: publishes a new key now that starts signing after
/// `lead` (JWKS caches see it first); the current key stops signing then and
/// stays published until every token it signed has expired.
pub async fn rotate(
    pool: &PgPool,
    sealer: &SealKey,
    alg: Alg,
    lead: Duration,
    retired_key_life: Duration,
) -> Result<KeyInfo, KeyError> {
    let key = generate(alg)?;
    let not_before = OffsetDateTime::now_utc() + lead;
    let mut tx = pool.begin().await?;
    lock_keys(&mut tx).await?;
    insert_key(&mut tx, sealer, &key, not_before).await?;
    // Only keys of its own algorithm: the others keep signing what they sign.
    retire_others(&mut tx, &key, &ALL, not_before, retired_key_life).await?;
    tx.commit().await?;
    let info = sqlx::query_as!(
        KeyInfo,
        "SELECT kid, alg, created_at, not_before, retire_at, expire_at FROM signing_keys WHERE kid = $1",
        key.kid,
    )
    .fetch_one(pool)
    .await?;
    Ok(info)
}

/// `idp keys list`: every key, newest first.
pub async fn list(pool: &PgPool) -> Result<Vec<KeyInfo>, KeyError> {
    Ok(sqlx::query_as!(
        KeyInfo,
        "SELECT kid, alg, created_at, not_before, retire_at, expire_at FROM signing_keys ORDER BY created_at DESC",
    )
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Validation, decode};

    #[test]
    fn every_algorithm_signs_what_its_published_jwk_verifies() {
        for alg in [Alg::RS256, Alg::ES256, Alg::EdDSA] {
            let new = generate(alg).unwrap();
            let key = SigningKey::from_pkcs8(new.kid.clone(), alg, &new.pkcs8).unwrap();
            let header = b64url(
                json!({"alg": alg.as_str(), "typ": "JWT", "kid": new.kid})
                    .to_string()
                    .as_bytes(),
            );
            let payload = b64url(br#"{"sub":"x","exp":9999999999}"#);
            let signing_input = format!("{header}.{payload}");
            let jwt = format!(
                "{signing_input}.{}",
                b64url(&key.sign(signing_input.as_bytes()).unwrap())
            );
            let jwk: Jwk = serde_json::from_value(new.jwk.clone()).unwrap();
            let mut v = Validation::new(alg.jsonwebtoken());
            v.validate_aud = false;
            v.set_required_spec_claims(&["exp"]);
            decode::<Value>(&jwt, &DecodingKey::from_jwk(&jwk).unwrap(), &v).unwrap();
            assert_eq!(new.jwk["kid"], json!(new.kid));
            assert!(new.jwk.get("d").is_none(), "no private member is published");
        }
    }

    #[test]
    fn key_status_follows_its_windows() {
        let now = OffsetDateTime::now_utc();
        let h = time::Duration::hours(1);
        let info = |nb, r, e| KeyInfo {
            kid: "k".into(),
            alg: "RS256".into(),
            created_at: now - h,
            not_before: nb,
            retire_at: r,
            expire_at: e,
        };
        assert_eq!(info(now + h, None, None).status(now), "pending");
        assert_eq!(info(now - h, None, None).status(now), "active");
        assert_eq!(
            info(now - h, Some(now - h), Some(now + h)).status(now),
            "retired"
        );
        assert_eq!(
            info(now - h, Some(now - h), Some(now - h)).status(now),
            "expired"
        );
    }

    #[test]
    fn at_hash_is_the_left_half_of_the_algorithms_hash() {
        assert_eq!(Alg::RS256.half_hash(b"token").len(), 22);
        assert_eq!(Alg::EdDSA.half_hash(b"token").len(), 43);
    }
}
