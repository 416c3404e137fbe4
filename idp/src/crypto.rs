//! The IdP's key-encryption key (`IDP_KEY_ENCRYPTION_KEY`) and the sealing
//! keys derived from it, one per purpose; sealing itself is
//! [`platform::crypto`]'s.

use aws_lc_rs::hkdf;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use platform::crypto::{SealKey, random};

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
    pub fn derive(&self, purpose: &str) -> SealKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"baton-idp").extract(&self.0);
        let info = [purpose.as_bytes()];
        let mut key = [0u8; 32];
        prk.expand(&info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut key))
            .expect("HKDF-SHA256 can always produce 32 bytes");
        SealKey::new(&key).expect("a 32-byte key suits AES-256-GCM")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::crypto::b64url;

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
}
