//! The test issuer's signing keys: RSA (RS256), EC P-256 (ES256) and Ed25519
//! (EdDSA) pairs with their `kid` and public JWK.

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// The kind of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA 2048, RS256.
    Rsa,
    /// EC P-256, ES256.
    Ec,
    /// Ed25519, EdDSA.
    Ed,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A signing key with its `kid` and public JWK.
pub struct TestKey {
    kid: String,
    kind: KeyKind,
    pair: Pair,
    jwk: Value,
}

impl TestKey {
    /// A fresh key (not published anywhere).
    pub fn generate(kind: KeyKind, kid: &str) -> Arc<Self> {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (pair, jwk) = match kind {
            KeyKind::Rsa => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                                 "n": b64(&public.n), "e": b64(&public.e)});
                (Pair::Rsa(pair), jwk)
            }
            KeyKind::Ec => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .expect("EC key generation");
                let point = pair.public_key().as_ref(); // 0x04 || x || y
                let jwk = json!({"kty": "EC", "use": "sig", "alg": "ES256", "kid": kid, "crv": "P-256",
                                 "x": b64(&point[1..33]), "y": b64(&point[33..65])});
                (Pair::Ec(pair), jwk)
            }
            KeyKind::Ed => {
                let pair = Ed25519KeyPair::generate().expect("Ed25519 key generation");
                let jwk = json!({"kty": "OKP", "use": "sig", "alg": "EdDSA", "kid": kid, "crv": "Ed25519",
                                 "x": b64(pair.public_key().as_ref())});
                (Pair::Ed(pair), jwk)
            }
        };
        Arc::new(Self {
            kid: kid.to_owned(),
            kind,
            pair,
            jwk,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The kind of key.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The JOSE algorithm this key signs with.
    pub fn alg(&self) -> &'static str {
        match self.kind {
            KeyKind::Rsa => "RS256",
            KeyKind::Ec => "ES256",
            KeyKind::Ed => "EdDSA",
        }
    }

    /// The public JWK.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`): what an
    /// algorithm-confusion attacker uses as an HMAC secret.
    pub fn public_key_pem(&self) -> String {
        let der = match &self.pair {
            Pair::Rsa(p) => p.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Pair::Ec(p) => p.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Pair::Ed(p) => p.public_key().as_der().map(|d| d.as_ref().to_vec()),
        }
        .expect("public key DER");
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    pub(super) fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.pair {
            Pair::Rsa(p) => {
                let mut sig = vec![0; p.public_modulus_len()];
                p.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .expect("RSA signing");
                sig
            }
            Pair::Ec(p) => p
                .sign(&SystemRandom::new(), message)
                .expect("EC signing")
                .as_ref()
                .to_vec(),
            Pair::Ed(p) => p.sign(message).as_ref().to_vec(),
        }
    }
}
