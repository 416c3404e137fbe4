//! The demo realm's users as the services' tests know them: alice
//! (customer), carol (customer, support) and bob (admin), and valid tokens
//! for them from the test issuer.

use super::TestIssuer;

/// The `sub` of alice (customer).
pub const ALICE: &str = "7b0c5a7e-0000-4000-8000-00000000a11c";
/// The `sub` of carol (customer, support).
pub const CAROL: &str = "7b0c5a7e-0000-4000-8000-0000000ca201";
/// The `sub` of bob (admin).
pub const BOB: &str = "7b0c5a7e-0000-4000-8000-000000000b0b";

impl TestIssuer {
    /// A valid token for `sub` with `roles` and `scope` (space-separated).
    pub fn user_token(&self, sub: &str, roles: &[&str], scope: &str) -> String {
        self.token().sub(sub).roles(roles).scope(scope).sign()
    }

    /// A valid token for alice (customer) with `scope`.
    pub fn alice(&self, scope: &str) -> String {
        self.user_token(ALICE, &["customer"], scope)
    }

    /// A valid token for carol (customer, support) with `scope`.
    pub fn carol(&self, scope: &str) -> String {
        self.user_token(CAROL, &["customer", "support"], scope)
    }

    /// A valid token for bob (admin) with `scope`.
    pub fn bob(&self, scope: &str) -> String {
        self.user_token(BOB, &["admin"], scope)
    }
}
