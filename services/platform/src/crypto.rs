//! Sealing and hashing for every part, on aws-lc-rs: AES-256-GCM sealing
//! with random nonces ([`SealKey`]; layout nonce ‖ ciphertext ‖ tag, the
//! format both the IdP's sealed signing keys and the gateway's sessions and
//! cookies were written in), random tokens, SHA-2, base64url and
//! constant-time comparison.

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A 256-bit key that seals (encrypts and authenticates) data, with any
/// earlier keys that still open what they sealed (key rotation).
#[derive(Clone)]
pub struct SealKey(Arc<Vec<RandomizedNonceKey>>);

impl SealKey {
    /// `None` unless `bytes` is exactly 32 bytes long.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        Self::rotating(bytes, &[])
    }

    /// Seals with `current`, and also opens what any of `previous` sealed
    /// (rotation without signing everyone out). `None` unless every key is
    /// exactly 32 bytes long.
    pub fn rotating(current: &[u8], previous: &[Vec<u8>]) -> Option<Self> {
        let keys = std::iter::once(current)
            .chain(previous.iter().map(Vec::as_slice))
            .map(|bytes| {
                (bytes.len() == 32)
                    .then(|| RandomizedNonceKey::new(&AES_256_GCM, bytes).ok())
                    .flatten()
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self(Arc::new(keys)))
    }

    /// Encrypts `plaintext` with the current key, bound to `context`
    /// (authenticated, not stored): the result opens only with the same key
    /// and the same context. Layout: nonce (12 bytes) ‖ ciphertext ‖ tag.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let mut body = plaintext.to_vec();
        // Sealing only fails on absurd lengths (> 64 GiB); treat as a bug.
        let nonce = self.0[0]
            .seal_in_place_append_tag(Aad::from(context), &mut body)
            .expect("AES-GCM sealing of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + body.len());
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&body);
        out
    }

    /// Decrypts what [`seal`](Self::seal) produced with the same `context`
    /// and one of the keys; `None` when it was altered, sealed with an unknown
    /// key or for another context.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.0.iter().find_map(|key| {
            let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
            let mut body = body.to_vec();
            let len = key
                .open_in_place(nonce, Aad::from(context), &mut body)
                .ok()?
                .len();
            body.truncate(len);
            Some(body)
        })
    }
}

/// Fills an array from the operating system's CSPRNG.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // AWS-LC's RNG only fails when the OS has no entropy source at all, in which
    // case no secret this process could make would be safe: stop here.
    aws_lc_rs::rand::fill(&mut out).expect("the operating system's random generator failed");
    out
}

/// A fresh random token of `bytes` random bytes, base64url without padding
/// (32 bytes: a 256-bit bearer secret, 43 characters).
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("the operating system's random generator failed");
    b64url(&buf)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// SHA-512 of `data`.
pub fn sha512(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA512, data).as_ref().to_vec()
}

/// SHA-256 of `data`, base64url without padding (PKCE S256, log-safe fingerprints).
pub fn sha256_b64url(data: &[u8]) -> String {
    b64url(&sha256(data))
}

/// base64url without padding.
pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// The bytes of base64url without padding; `None` when it is not.
pub fn b64url_decode(data: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(data).ok()
}

/// Compares two secrets in constant time (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_context() {
        let key = SealKey::new(&[7; 32]).unwrap();
        let other = SealKey::new(&[8; 32]).unwrap();
        let sealed = key.seal(b"refresh-token", b"session-a");
        assert!(!sealed.windows(13).any(|w| w == b"refresh-token"));
        assert_eq!(key.open(&sealed, b"session-a").unwrap(), b"refresh-token");
        assert!(key.open(&sealed, b"session-b").is_none());
        assert!(other.open(&sealed, b"session-a").is_none());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open(&tampered, b"session-a").is_none());
        assert!(key.open(b"short", b"session-a").is_none());

        // Rotation: the new key opens what the old one sealed, and seals anew.
        let rotated = SealKey::rotating(&[8; 32], &[vec![7; 32]]).unwrap();
        assert_eq!(
            rotated.open(&sealed, b"session-a").unwrap(),
            b"refresh-token"
        );
        assert!(key.open(&rotated.seal(b"x", b"c"), b"c").is_none());
        assert!(SealKey::rotating(&[8; 32], &[vec![7; 31]]).is_none());
        assert_ne!(
            key.seal(b"x", b"c"),
            key.seal(b"x", b"c"),
            "nonces are random"
        );
    }

    #[test]
    fn keys_must_be_256_bits_and_helpers_behave() {
        assert!(SealKey::new(&[0; 16]).is_none());
        assert_eq!(random_token(32).len(), 43);
        assert_ne!(random_token(32), random_token(32));
        // RFC 7636 appendix B.
        assert_eq!(
            sha256_b64url(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd"));
    }

    #[test]
    fn tokens_are_random_and_256_bit() {
        let (a, b) = (random_token(32), random_token(32));
        assert_ne!(a, b);
        assert_eq!(b64url_decode(&a).unwrap().len(), 32);
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"abc", b"ab"));
    }
}
