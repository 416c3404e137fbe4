//! [`Status`]: the life-cycle states of the shop's records (order, charge,
//! reservation statuses), each a Rust enum stored in a `TEXT` column whose
//! check constraint lists the same words. The store reads the column with
//! [`Status::parse`], so a word the code does not know is a decoding error,
//! never a silently wrong state.

/// An enum stored as one of a fixed set of words.
pub trait Status: Sized + Copy + Eq + std::fmt::Debug + 'static {
    /// Every state, each once.
    const ALL: &'static [Self];

    /// The word stored in the database and shown in JSON.
    fn as_str(self) -> &'static str;

    /// The state named by `word`, as read from the database.
    fn parse(word: &str) -> Result<Self, sqlx::Error> {
        Self::ALL
            .iter()
            .copied()
            .find(|status| status.as_str() == word)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown status {word:?}").into()))
    }
}

#[cfg(test)]
mod tests {
    use super::Status;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Light {
        On,
        Off,
    }

    impl Status for Light {
        const ALL: &'static [Self] = &[Self::On, Self::Off];
        fn as_str(self) -> &'static str {
            match self {
                Self::On => "on",
                Self::Off => "off",
            }
        }
    }

    #[test]
    fn every_word_parses_back_to_its_state_and_others_do_not() {
        for &light in Light::ALL {
            assert_eq!(Light::parse(light.as_str()).unwrap(), light);
        }
        for word in ["", "On", "dim", "on "] {
            let error = Light::parse(word).unwrap_err();
            assert!(error.to_string().contains("unknown status"), "{error}");
        }
    }
}
