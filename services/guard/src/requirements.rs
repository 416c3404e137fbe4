//! [`Requirement`]: what a caller must have — a role, a scope, or a
//! combination — and how it reads in a 403. Only the type: checking a
//! [`Principal`](crate::Principal) against it and the route layers are in
//! [`require`](crate::require), so that [`AuthError`](crate::AuthError), which
//! names the requirement that failed, depends on no more than this.

use std::borrow::Cow;
use std::fmt;

/// What a caller must have: a role, a scope, or a combination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// The `roles` claim contains this role.
    Role(Cow<'static, str>),
    /// The `scope` claim contains this scope.
    Scope(Cow<'static, str>),
    /// At least one of these.
    AnyOf(Vec<Requirement>),
    /// All of these.
    AllOf(Vec<Requirement>),
}

impl Requirement {
    /// The role `name`.
    pub fn role(name: impl Into<Cow<'static, str>>) -> Self {
        Self::Role(name.into())
    }

    /// The scope `name`.
    pub fn scope(name: impl Into<Cow<'static, str>>) -> Self {
        Self::Scope(name.into())
    }

    /// Any of `requirements`.
    pub fn any_of(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        Self::AnyOf(requirements.into_iter().collect())
    }

    /// All of `requirements`.
    pub fn all_of(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        Self::AllOf(requirements.into_iter().collect())
    }

    /// Every scope named in the requirement (for the `scope` challenge attribute).
    pub fn scopes(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Self::Role(_) => Box::new(std::iter::empty()),
            Self::Scope(scope) => Box::new(std::iter::once(scope.as_ref())),
            Self::AnyOf(all) | Self::AllOf(all) => Box::new(all.iter().flat_map(|r| r.scopes())),
        }
    }
}

impl fmt::Display for Requirement {
    /// "requires role admin", "requires one of: role admin, role support", …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn inner(r: &Requirement, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let (all, joiner) = match r {
                Requirement::Role(role) => return write!(f, "role {role}"),
                Requirement::Scope(scope) => return write!(f, "scope {scope}"),
                Requirement::AnyOf(all) => (all, " or "),
                Requirement::AllOf(all) => (all, " and "),
            };
            f.write_str("(")?;
            for (i, r) in all.iter().enumerate() {
                if i > 0 {
                    f.write_str(joiner)?;
                }
                inner(r, f)?;
            }
            f.write_str(")")
        }
        f.write_str("requires ")?;
        match self {
            Self::AnyOf(all) | Self::AllOf(all) if all.len() == 1 => inner(&all[0], f),
            _ => inner(self, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_name_what_is_needed() {
        assert_eq!(
            Requirement::role("admin").to_string(),
            "requires role admin"
        );
        assert_eq!(
            Requirement::any_of([Requirement::role("admin"), Requirement::role("support")])
                .to_string(),
            "requires (role admin or role support)"
        );
        let both = Requirement::all_of([
            Requirement::role("admin"),
            Requirement::scope("inventory:write"),
        ]);
        assert_eq!(
            both.to_string(),
            "requires (role admin and scope inventory:write)"
        );
        assert_eq!(both.scopes().collect::<Vec<_>>(), ["inventory:write"]);
        assert_eq!(
            Requirement::any_of([Requirement::scope("a")]).to_string(),
            "requires scope a"
        );
    }
}
