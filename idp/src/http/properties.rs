//! Property tests of the IdP's request parsing: form parameters, PKCE,
//! redirect URI matching and `Authorization: Basic` credentials, over
//! generated inputs shaped like the real ones (percent-encoding, `+`, `&`,
//! `=`, NUL, multi-byte characters, near-miss URIs).
//!
//! `BATON_PROPERTY_CASES` cases per property (default 300, bounded for
//! `make test`; `make fuzz` runs many more). Inputs come from the system
//! RNG; a failure prints the input that broke the property.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::client_auth::basic_credentials;
use super::params::{ParamError, Params};
use super::token::pkce_matches;
use crate::realm::Client;
use platform::crypto::{b64url, sha256};

fn cases() -> usize {
    std::env::var("BATON_PROPERTY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// Randomness from the system RNG (no seeding: the failing input is printed).
struct Gen;

impl Gen {
    fn u32(&self) -> u32 {
        let mut b = [0u8; 4];
        aws_lc_rs::rand::fill(&mut b).expect("system randomness");
        u32::from_le_bytes(b)
    }
    fn below(&self, n: usize) -> usize {
        self.u32() as usize % n.max(1)
    }
    fn pick<'a, T>(&self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&self, max: usize) -> Vec<u8> {
        let mut b = vec![0u8; self.below(max + 1)];
        aws_lc_rs::rand::fill(&mut b).expect("system randomness");
        b
    }
    /// Text mixing the characters that matter to form and URL syntax.
    fn text(&self, max: usize) -> String {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "0",
            "-",
            "_",
            ".",
            "~",
            " ",
            "+",
            "&",
            "=",
            "%",
            "%2",
            "%25",
            "%00",
            "%zz",
            "?",
            "#",
            "/",
            ":",
            "@",
            ";",
            "\"",
            "'",
            "<",
            "\\",
            "\u{e9}",
            "\u{1F600}",
            "\u{202E}",
            "\r\n",
            "\t",
            "\0",
        ];
        (0..self.below(max + 1))
            .map(|_| *self.pick(PIECES))
            .collect()
    }
    fn unreserved(&self, len: usize) -> String {
        const SET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
        (0..len).map(|_| *self.pick(SET) as char).collect()
    }
}

fn encode_form(pairs: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

#[test]
fn form_parameters_round_trip_and_repeats_or_nul_are_refused() {
    let g = Gen;
    for _ in 0..cases() {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for _ in 0..g.below(6) {
            let name = format!("{}{}", g.unreserved(1), g.text(8));
            if !pairs.iter().any(|(n, _)| *n == name) {
                pairs.push((name, g.text(40)));
            }
        }
        let repeat = !pairs.is_empty() && g.below(4) == 0;
        if repeat {
            let again = pairs[g.below(pairs.len())].0.clone();
            pairs.push((again, g.text(5)));
        }
        let raw = encode_form(&pairs);
        let nul = pairs
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'));
        match Params::parse(raw.as_bytes()) {
            Ok(params) => {
                assert!(!repeat && !nul, "accepted {raw:?}");
                for (k, v) in &pairs {
                    let expected = (!v.is_empty()).then_some(v.as_str());
                    assert_eq!(params.get(k), expected, "{k:?} in {raw:?}");
                }
            }
            Err(ParamError::Repeated(_)) => assert!(repeat, "{raw:?}"),
            Err(ParamError::Malformed) => assert!(nul, "{raw:?}"),
            Err(e) => panic!("{raw:?}: {e}"),
        }
    }
}

#[test]
fn arbitrary_bytes_never_panic_the_form_parser() {
    let g = Gen;
    for _ in 0..cases() {
        let raw = if g.below(2) == 0 {
            g.bytes(200)
        } else {
            g.text(60).into_bytes()
        };
        let params = Params::parse_lenient(&raw);
        let _ = params.check();
        let _ = params.get("client_id");
    }
}

#[test]
fn pkce_accepts_exactly_the_s256_of_a_well_formed_verifier() {
    let g = Gen;
    for _ in 0..cases() {
        let verifier = g.unreserved(43 + g.below(86));
        let challenge = b64url(&sha256(verifier.as_bytes()));
        assert!(pkce_matches(&verifier, &challenge), "{verifier}");
        // Any one changed character of the verifier or the challenge fails.
        let mut v = verifier.clone().into_bytes();
        let i = g.below(v.len());
        v[i] = if v[i] == b'a' { b'b' } else { b'a' };
        let v = String::from_utf8(v).expect("ascii");
        assert!(!pkce_matches(&v, &challenge), "{v} vs {verifier}");
        let mut c = challenge.clone().into_bytes();
        let i = g.below(c.len());
        c[i] = if c[i] == b'A' { b'B' } else { b'A' };
        let c = String::from_utf8(c).expect("ascii");
        assert!(!pkce_matches(&verifier, &c), "{c}");
        // plain (challenge = verifier) never matches.
        assert!(!pkce_matches(&verifier, &verifier));
        // Too short, too long, or outside the unreserved set: refused even
        // when the challenge is its true S256.
        let bad = match g.below(3) {
            0 => g.unreserved(g.below(43)),
            1 => g.unreserved(129 + g.below(100)),
            _ => format!(
                "{}{}",
                g.unreserved(43),
                g.pick(&[" ", "+", "/", "=", "%", "\u{e9}"])
            ),
        };
        assert!(
            !pkce_matches(&bad, &b64url(&sha256(bad.as_bytes()))),
            "{bad:?}"
        );
    }
}

fn client(redirect_uris: &[&str]) -> Client {
    Client {
        id: "c".into(),
        name: "c".into(),
        public: true,
        redirect_uris: redirect_uris.iter().map(|s| (*s).to_owned()).collect(),
        ..Client::default()
    }
}

#[test]
fn redirect_uris_match_exactly_and_near_misses_do_not() {
    let g = Gen;
    let registered = [
        "https://app.example/auth/callback",
        "http://127.0.0.1:8976/callback",
    ];
    let c = client(&registered);
    for _ in 0..cases() {
        let uri = *g.pick(&registered);
        assert!(c.has_redirect_uri(uri));
        let mut chars: Vec<char> = uri.chars().collect();
        let i = g.below(chars.len());
        let near = match g.below(8) {
            0 => format!(
                "{uri}{}",
                g.pick(&["/", "?", "#", "?x=1", "/..", "%2F", ".", " "])
            ),
            1 => {
                chars.remove(i);
                chars.into_iter().collect()
            }
            2 => {
                chars[i] = chars[i].to_ascii_uppercase();
                if chars[i] == uri.chars().nth(i).unwrap_or_default() {
                    chars.insert(i, 'X');
                }
                chars.into_iter().collect()
            }
            3 => uri.replacen("://", "://evil.example@", 1),
            4 => uri
                .replace("127.0.0.1", "localhost")
                .replace("app.example", "app.example."),
            5 => format!("{}{}", uri, g.text(4)),
            6 => {
                let ch = chars[i];
                let enc = format!("%{:02X}", ch as u32 & 0x7f);
                uri.replacen(&ch.to_string(), &enc, 1)
            }
            _ => format!(" {uri}"),
        };
        if near != uri {
            assert!(!c.has_redirect_uri(&near), "{near:?} matched {uri:?}");
        }
        // Any generated text never panics the registration check.
        let _ = crate::realm::check_redirect_uri(&g.text(30));
    }
}

fn basic(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(header::AUTHORIZATION, v);
    }
    h
}

#[test]
fn basic_credentials_round_trip_and_garbage_is_refused_cleanly() {
    let g = Gen;
    for _ in 0..cases() {
        // RFC 6749 §2.3.1: form-urlencode id and secret, then base64.
        let id = format!("{}{}", g.unreserved(1), g.text(10)).replace('\0', "");
        let secret = g.text(30).replace('\0', "");
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let value = format!(
            "{} {}",
            g.pick(&["Basic", "basic", "BASIC"]),
            STANDARD.encode(format!("{}:{}", enc(&id), enc(&secret)))
        );
        let got = basic_credentials(&basic(&value))
            .unwrap_or_else(|e| panic!("{value:?}: {e}"))
            .expect("credentials");
        assert_eq!(got, (id.clone(), secret.clone()), "{value:?}");

        // Garbage: any answer is fine except a panic or credentials that
        // were not in the header.
        let garbage = match g.below(4) {
            0 => format!("Basic {}", g.text(20)),
            1 => format!("Basic {}", STANDARD.encode(g.bytes(30))),
            2 => format!("{} {}", g.text(6), STANDARD.encode("a:b")),
            _ => g.text(30),
        };
        if let Ok(Some((id, _))) = basic_credentials(&basic(&garbage)) {
            assert!(!id.is_empty() && !id.contains('\0'), "{garbage:?}");
        }
    }
}
