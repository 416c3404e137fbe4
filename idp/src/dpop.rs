//! DPoP (RFC 9449) at the IdP: the proofs sent to `/token` (which bind the
//! tokens issued to the proof's key) and to `/userinfo` (where a bound token
//! is used). The proof itself is checked by [`guard::dpop::verify`]; a proof
//! is accepted once across every replica: its replay key is inserted into
//! `dpop_proofs` (primary key) until it can no longer be accepted anyway,
//! and housekeeping deletes it after that.

use axum::http::HeaderMap;
use guard::dpop::{self, Expected, MAX_AGE_SECS, Proof, ProofError};
use url::Url;

use crate::error::OAuthError;
use crate::state::AppState;

/// Clock skew allowed between a client and the IdP on a proof's `iat`.
pub const LEEWAY_SECS: i64 = 30;

/// The request's `DPoP` proof, verified for `method` on the IdP's `path`
/// (and `access_token`, when one is presented) and used up; `None` when the
/// request carries none.
pub async fn proof(
    state: &AppState,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    access_token: Option<&str>,
) -> Result<Option<Proof>, OAuthError> {
    let Some(proof) = dpop::header(headers).map_err(refused)? else {
        return Ok(None);
    };
    let url = Url::parse(&state.config.url(path))
        .map_err(|e| OAuthError::Server(format!("the issuer's {path} URL: {e}")))?;
    let expected = Expected {
        method,
        url: &url,
        access_token,
        leeway_secs: LEEWAY_SECS,
    };
    let proof = dpop::verify(proof, &expected).map_err(refused)?;
    let fresh = sqlx::query!(
        "INSERT INTO dpop_proofs (replay_key, expires_at)
         VALUES ($1, to_timestamp($2)) ON CONFLICT DO NOTHING",
        &proof.replay_key[..],
        (proof.iat + MAX_AGE_SECS + LEEWAY_SECS) as f64,
    )
    .execute(&state.db)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Err(refused(ProofError::Replayed));
    }
    Ok(Some(proof))
}

fn refused(e: ProofError) -> OAuthError {
    OAuthError::InvalidDpopProof(e.to_string().into())
}
