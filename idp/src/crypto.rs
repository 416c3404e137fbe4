//! Small cryptographic helpers over aws-lc-rs: random tokens, hashes,
//! constant-time comparison and AES-256-GCM sealing.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{digest, hkdf};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

/// Fills an array from the operating system's CSPRNG.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // AWS-LC's RNG only fails when the OS has no entropy source at all, in which
    // case no secret this process could make would be safe: stop here.
    aws_lc_rs::rand::fill(&mut out).expect("the operating system's random generator failed");
    out
}

/// A new bearer secret: 256 random bits, base64url (43 characters).
pub fn random_token() -> String {
    b64url(&random::<32>())
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub fn sha512(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA512, data).as_ref().to_vec()
}

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn b64url_decode(data: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(data).ok()
}

/// Constant-time equality of two byte strings (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The key-encryption key (`IDP_KEY_ENCRYPTION_KEY`): 32 bytes.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// Parses 32 bytes written in base64 (standard or URL-safe, padding optional).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .ok()
            .or_else(|| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok())?;
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn generate() -> Self {
        Self(random())
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// An AEAD key for one purpose, derived with HKDF-SHA256 so that keys for
    /// different purposes are independent.
    pub fn derive(&self, purpose: &str) -> Sealer {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"baton-idp").extract(&self.0);
        let info = [purpose.as_bytes()];
        let mut key = [0u8; 32];
        prk.expand(&info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut key))
            .expect("HKDF-SHA256 can always produce 32 bytes");
        Sealer::new(&key)
    }
}

/// AES-256-GCM with random nonces: `nonce || ciphertext || tag`.
pub struct Sealer(LessSafeKey);

impl Sealer {
    fn new(key: &[u8; 32]) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key suits AES-256-GCM");
        Self(LessSafeKey::new(key))
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce_bytes = random::<NONCE_LEN>();
        let mut buf = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut buf,
            )
            .expect("AES-GCM sealing of an in-memory buffer cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// `None` when the input was not sealed by this key with this `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = rest.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(aad), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_the_same_key_and_aad() {
        let master = MasterKey::generate();
        let a = master.derive("a");
        let sealed = a.seal(b"secret", b"kid-1");
        assert_eq!(a.open(&sealed, b"kid-1").as_deref(), Some(&b"secret"[..]));
        assert!(a.open(&sealed, b"kid-2").is_none(), "other associated data");
        assert!(
            master.derive("b").open(&sealed, b"kid-1").is_none(),
            "other purpose"
        );
        assert!(
            MasterKey::generate()
                .derive("a")
                .open(&sealed, b"kid-1")
                .is_none(),
            "other key"
        );
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(a.open(&tampered, b"kid-1").is_none());
        assert!(a.open(&sealed[..10], b"kid-1").is_none());
    }

    #[test]
    fn master_key_parses_base64_of_32_bytes_only() {
        let k = MasterKey::generate();
        assert!(MasterKey::parse(&k.to_base64()).is_some());
        assert!(MasterKey::parse(&b64url(&k.0)).is_some());
        assert!(MasterKey::parse("c2hvcnQ=").is_none());
        assert!(MasterKey::parse("not base64!").is_none());
    }

    #[test]
    fn tokens_are_random_and_256_bit() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(b64url_decode(&a).unwrap().len(), 32);
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"abc", b"ab"));
    }
}
