//! Property tests of token parsing in the real validators (guard inside the
//! gateway, order, payment and inventory), with structure-aware generation:
//! the claims of a real token, signed with the IdP's real key, with random
//! breaking changes to the claims the contract requires (wrong type, wrong
//! value, missing) and random harmless extra claims; and random header
//! structures signed with an attacker's key.
//!
//! Oracle: any breaking change → 401 from every validator; harmless extras
//! only → 200 from every validator; never anything else (no 5xx, no crash).
//! `BATON_PROPERTY_CASES` / 5 tokens of each kind (default 60); `make fuzz`
//! raises it. guard's own deterministic mutation fuzz covers the raw bytes.

use guard::testing::{KeyKind, TestKey, TokenBuilder};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use super::tokens::{RealKey, answers, decode, now};
use crate::harness::{Stack, User, cli_token};

fn cases() -> usize {
    std::env::var("BATON_PROPERTY_CASES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(60, |n| (n / 5).max(1))
}

/// Randomness from the system RNG; a failure prints the token's claims.
struct Gen;

impl Gen {
    fn below(&self, n: usize) -> usize {
        let mut b = [0u8; 4];
        aws_lc_rs::rand::fill(&mut b).expect("system randomness");
        u32::from_le_bytes(b) as usize % n.max(1)
    }
    fn pick<T: Clone>(&self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
    fn text(&self) -> String {
        let pieces = [
            "a",
            "Z",
            "0",
            " ",
            "\"",
            "\\",
            "\u{e9}",
            "\u{1F600}",
            "\u{0}",
            "/",
            ":",
            ".",
        ];
        (0..self.below(12)).map(|_| self.pick(&pieces)).collect()
    }
    /// Any JSON value, nested a little.
    fn value(&self, depth: u32) -> Value {
        match self.below(if depth == 0 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(self.pick(&[0i64, -1, 1, i64::MAX, i64::MIN, 4_102_444_800])),
            3 => json!(self.pick(&[0.5f64, -1e300, 1e300, 1.7e9])),
            4 | 5 => json!(self.text()),
            6 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => Value::Object(
                (0..self.below(4))
                    .map(|i| (format!("k{i}{}", self.text()), self.value(depth - 1)))
                    .collect(),
            ),
        }
    }
    /// A value of the wrong JSON type for a claim of `kind` ("string",
    /// "number", "audience").
    fn wrong_type(&self, kind: &str) -> Value {
        loop {
            let v = self.value(2);
            let wrong = match kind {
                "string" => !v.is_string(),
                "number" => !v.is_i64() && !v.is_u64() && !v.is_f64(),
                _ => !v.is_string() && !v.is_array(),
            };
            if wrong {
                return v;
            }
        }
    }
}

/// Applies one change that must make the token invalid; returns what it did.
fn break_claims(g: &Gen, claims: &mut Map<String, Value>, issuer: &str) -> String {
    let t = now();
    let (name, value): (&str, Option<Value>) = match g.below(12) {
        0 => ("exp", Some(json!(t - 120 - g.below(100_000) as i64))),
        1 => ("exp", Some(g.wrong_type("number"))),
        2 => ("nbf", Some(json!(t + 120 + g.below(100_000) as i64))),
        3 => ("nbf", Some(g.wrong_type("number"))),
        4 => ("iat", Some(json!(t + 3600 + g.below(100_000) as i64))),
        5 => (
            "iss",
            Some(json!(format!(
                "{issuer}{}",
                g.pick(&["/", "x", " ", "/.", "?"])
            ))),
        ),
        6 => ("iss", Some(g.wrong_type("string"))),
        7 => (
            "aud",
            Some(g.pick(&[
                json!([]),
                json!(["billing"]),
                json!("gateway"),
                json!(["ORDER", "Payment"]),
            ])),
        ),
        8 => ("aud", Some(g.wrong_type("audience"))),
        9 => ("sub", Some(g.wrong_type("string"))),
        _ => (
            g.pick(&["exp", "nbf", "iss", "aud", "sub", "jti", "client_id"]),
            None,
        ),
    };
    match value {
        Some(v) => {
            let shown = v.to_string();
            claims.insert(name.to_owned(), v);
            let short: String = shown.chars().take(60).collect();
            format!("{name} = {short}")
        }
        None => {
            claims.remove(name);
            format!("no {name}")
        }
    }
}

#[tokio::test]
async fn generated_claims_and_headers_get_a_clean_answer_from_every_validator() {
    let stack = Stack::start().await;
    let issuer = stack.idp.as_str().trim_end_matches('/').to_owned();
    let real = cli_token(
        &stack,
        User::Alice,
        "openid orders:read payments:read inventory:read",
    )
    .await;
    let base = decode(real.split('.').nth(1).expect("payload"));
    let key = RealKey::open(&stack).await;
    let attacker = TestKey::generate(KeyKind::Ec, "attacker");
    let g = Gen;
    let (mut refused, mut accepted) = (0, 0);
    // Two gateway calls a case: stay under its per-address rate limit
    // (deploy/routes.toml: 20/s), or it would answer 429 instead of validating.
    let mut pace = tokio::time::interval(std::time::Duration::from_millis(150));

    for case in 0..cases() {
        pace.tick().await;
        let mut claims = base.clone();
        // Harmless extras: unknown claims with arbitrary values.
        for i in 0..g.below(4) {
            claims.insert(format!("x_extra_{i}"), g.value(3));
        }
        let changes: Vec<String> = (0..g.below(3))
            .map(|_| break_claims(&g, &mut claims, &issuer))
            .collect();
        let token = key.sign("at+jwt", &claims).await;
        let expected = if changes.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        for (url, status, body) in answers(&stack, &token).await {
            assert_eq!(
                status, expected,
                "case {case} at {url}: changes {changes:?}, claims {claims:?}: {body}"
            );
        }
        if changes.is_empty() {
            accepted += 1;
        } else {
            refused += 1;
        }

        // A random header structure, signed by an attacker.
        let mut forged = TokenBuilder::new(&issuer, &attacker);
        for (name, value) in &base {
            forged = forged.claim(name, value.clone());
        }
        for name in [
            "alg", "typ", "kid", "crit", "jku", "jwk", "x5u", "cty", "b64", "zip",
        ] {
            match g.below(3) {
                0 => forged = forged.header(name, g.value(2)),
                1 => forged = forged.without_header(name),
                _ => {}
            }
        }
        if g.below(2) == 0 {
            forged = forged.header("alg", g.pick(&["ES256", "RS256", "none", "HS256", "EdDSA"]));
        }
        let token = forged.sign();
        for (url, status, body) in answers(&stack, &token).await {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "case {case} at {url}: {token}: {body}"
            );
        }
    }
    eprintln!(
        "claims properties: {accepted} accepted, {refused} refused, {} forged headers refused",
        cases()
    );
    assert!(accepted > 0 && refused > 0, "both kinds were generated");
}
