//! Key material: the algorithms the IdP signs with, generating a key pair,
//! and a parsed key that signs (aws-lc-rs objects, never re-parsed per token).
//! Storage, rotation and the published JWKS are in the parent module.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use serde_json::{Value, json};

use platform::crypto::{b64url, sha256};

/// The signature algorithms the IdP can sign with (an allow-list: nothing else exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum Alg {
    RS256,
    ES256,
    EdDSA,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
        }
    }

    pub fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Alg::RS256 => jsonwebtoken::Algorithm::RS256,
            Alg::ES256 => jsonwebtoken::Algorithm::ES256,
            Alg::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    /// OIDC Core §3.1.3.6: `at_hash` is the left half of the hash the JWS
    /// algorithm uses (SHA-512 for Ed25519).
    pub fn half_hash(self, data: &[u8]) -> String {
        match self {
            Alg::RS256 | Alg::ES256 => b64url(&sha256(data)[..16]),
            Alg::EdDSA => b64url(&platform::crypto::sha512(data)[..32]),
        }
    }
}

/// Every algorithm there is.
pub(super) const ALL: [Alg; 3] = [Alg::RS256, Alg::ES256, Alg::EdDSA];

/// The algorithms an IdP configured with `primary` signs with: `primary`
/// first, and RS256 (OIDC Core §15.1).
pub fn signing_algs(primary: Alg) -> Vec<Alg> {
    let mut algs = vec![primary];
    if primary != Alg::RS256 {
        algs.push(Alg::RS256);
    }
    algs
}

impl FromStr for Alg {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "RS256" => Ok(Alg::RS256),
            "ES256" => Ok(Alg::ES256),
            "EdDSA" => Ok(Alg::EdDSA),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("key generation failed")]
    Generate,
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("no signing key is active")]
    NoActiveKey,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A parsed private key that can sign.
pub struct SigningKey {
    pub kid: String,
    pub alg: Alg,
    pair: Pair,
}

impl SigningKey {
    pub(super) fn from_pkcs8(kid: String, alg: Alg, pkcs8: &[u8]) -> Option<Self> {
        let pair = match alg {
            Alg::RS256 => Pair::Rsa(RsaKeyPair::from_pkcs8(pkcs8).ok()?),
            Alg::ES256 => {
                Pair::Ec(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).ok()?)
            }
            Alg::EdDSA => Pair::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).ok()?),
        };
        Some(Self { kid, alg, pair })
    }

    /// `true` when a signature costs enough to belong on the blocking pool.
    pub fn is_slow(&self) -> bool {
        matches!(self.pair, Pair::Rsa(_))
    }

    /// The JWS signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match &self.pair {
            Pair::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|e| KeyError::Sign(e.to_string()))?;
                Ok(sig)
            }
            Pair::Ec(k) => Ok(k
                .sign(&rng, message)
                .map_err(|e| KeyError::Sign(e.to_string()))?
                .as_ref()
                .to_vec()),
            Pair::Ed(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// A freshly generated key: its id, public JWK and PKCS#8 private document.
pub struct NewKey {
    pub kid: String,
    pub alg: Alg,
    pub jwk: Value,
    pub pkcs8: Vec<u8>,
}

/// Generates a key pair (RSA 2048, P-256 or Ed25519) with AWS-LC. The `kid` is
/// the RFC 7638 JWK thumbprint.
pub fn generate(alg: Alg) -> Result<NewKey, KeyError> {
    let g = |_| KeyError::Generate;
    let (pkcs8, mut jwk) = match alg {
        Alg::RS256 => {
            let k = RsaKeyPair::generate(KeySize::Rsa2048).map_err(g)?;
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&k).map_err(g)?;
            let public = k.public_key();
            let n = b64url(public.modulus().big_endian_without_leading_zero());
            let e = b64url(public.exponent().big_endian_without_leading_zero());
            (der.as_ref().to_vec(), json!({"e": e, "kty": "RSA", "n": n}))
        }
        Alg::ES256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &aws_lc_rs::rand::SystemRandom::new(),
            )
            .map_err(g)?;
            let k = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())
                .map_err(|_| KeyError::Generate)?;
            let point = k.public_key().as_ref(); // 0x04 || x || y
            if point.len() != 65 {
                return Err(KeyError::Generate);
            }
            let (x, y) = (b64url(&point[1..33]), b64url(&point[33..]));
            (
                doc.as_ref().to_vec(),
                json!({"crv": "P-256", "kty": "EC", "x": x, "y": y}),
            )
        }
        Alg::EdDSA => {
            let doc =
                Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).map_err(g)?;
            let k = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| KeyError::Generate)?;
            let x = b64url(k.public_key().as_ref());
            (
                doc.as_ref().to_vec(),
                json!({"crv": "Ed25519", "kty": "OKP", "x": x}),
            )
        }
    };
    // RFC 7638: the members above are exactly the required ones, and serde_json
    // writes object keys in lexicographic order.
    let kid = b64url(&sha256(jwk.to_string().as_bytes()));
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg.as_str());
    jwk["use"] = json!("sig");
    Ok(NewKey {
        kid,
        alg,
        jwk,
        pkcs8,
    })
}
