//! The `derived_from` claim: where an exchanged token (RFC 8693) comes from.
//!
//! A token obtained by exchange names the `jti` of the token it was exchanged
//! from and, after it, that token's own `derived_from` — nearest first, the
//! root (the token the gateway got at sign-in) last. Revoking any of them
//! revokes the derived token: every validator refuses a token whose `jti` *or*
//! any `derived_from` jti is in its denylist, so a root's revocation reaches
//! every token derived from it through the ordinary revocation stream, with
//! nothing recorded per exchange.
//!
//! The chain is bounded ([`MAX_DEPTH`]): the IdP refuses to exchange a token
//! whose chain is full, and a validator refuses a token naming more ancestors
//! than that without collecting them (only the IdP can sign the claim, but a
//! validator must not allocate by what a token says).

use std::fmt;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Ancestors a token may name: exchanges in a row from one root token. Baton's
/// longest chain is gateway → order → payment/inventory (2).
pub const MAX_DEPTH: usize = 8;

/// The jtis a token was derived from, nearest first; empty for a token
/// issued directly (sign-in, refresh, client credentials).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Derivation(Vec<String>);

impl Derivation {
    /// The derivation of a token exchanged from a token with `jti` and `parent`
    /// derivation, or `None` when the chain would exceed [`MAX_DEPTH`].
    pub fn from_parent(jti: &str, parent: &Derivation) -> Option<Self> {
        if parent.0.len() >= MAX_DEPTH {
            return None;
        }
        let mut chain = Vec::with_capacity(parent.0.len() + 1);
        chain.push(jti.to_owned());
        chain.extend(parent.0.iter().cloned());
        Some(Self(chain))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ancestors' jtis, nearest first.
    pub fn jtis(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl<'de> Deserialize<'de> for Derivation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bounded;
        impl<'de> Visitor<'de> for Bounded {
            type Value = Derivation;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a list of at most {MAX_DEPTH} token ids")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Derivation, A::Error> {
                let mut chain = Vec::new();
                while let Some(jti) = seq.next_element::<String>()? {
                    if chain.len() == MAX_DEPTH {
                        return Err(serde::de::Error::invalid_length(MAX_DEPTH + 1, &self));
                    }
                    chain.push(jti);
                }
                Ok(Derivation(chain))
            }
        }
        d.deserialize_seq(Bounded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_grows_nearest_first_up_to_the_bound() {
        let root = Derivation::default();
        let first = Derivation::from_parent("root", &root).unwrap();
        let second = Derivation::from_parent("first", &first).unwrap();
        assert_eq!(second.jtis().collect::<Vec<_>>(), ["first", "root"]);
        let mut chain = root;
        for i in 0..MAX_DEPTH {
            chain = Derivation::from_parent(&i.to_string(), &chain).unwrap();
        }
        assert!(Derivation::from_parent("one-too-many", &chain).is_none());
    }

    #[test]
    fn a_list_longer_than_the_bound_is_refused() {
        let full: Vec<String> = (0..MAX_DEPTH).map(|i| i.to_string()).collect();
        let ok: Derivation = serde_json::from_value(serde_json::json!(full)).unwrap();
        assert_eq!(ok.jtis().count(), MAX_DEPTH);
        let forged: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
        assert!(serde_json::from_value::<Derivation>(serde_json::json!(forged)).is_err());
        assert!(serde_json::from_str::<Derivation>(r#""root""#).is_err());
    }
}
