//! Property tests of the IdP's request parsing: form parameters, PKCE,
//! redirect URI matching and `Authorization: Basic` credentials, over
//! generated inputs shaped like the real ones (percent-encoding, `+`, `&`,
//! `=`, NUL, multi-byte characters, near-miss URIs).
//!
//! proptest runs `PROPTEST_CASES` cases per property (proptest's default,
//! 256, in `make test`; `make fuzz` runs many more), shrinks a failing input
//! to a minimal one and saves its seed under `idp/proptest-regressions/`,
//! where the next runs try it first.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::collection::{SizeRange, vec};
use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::client_auth::basic_credentials;
use super::params::{ParamError, Params};
use super::token::pkce_matches;
use crate::realm::Client;
use platform::crypto::{b64url, sha256};

/// Text mixing the characters that matter to form and URL syntax.
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

/// Up to `max` pieces of [`PIECES`].
fn text(max: usize) -> impl Strategy<Value = String> {
    vec(select(PIECES), 0..=max).prop_map(|pieces| pieces.concat())
}

/// `len` characters of the URI unreserved set.
fn unreserved(len: impl Into<SizeRange>) -> impl Strategy<Value = String> {
    const SET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
    vec(select(SET), len).prop_map(|bytes| bytes.into_iter().map(char::from).collect())
}

/// Up to `max` arbitrary bytes.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

fn encode_form(pairs: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Distinct names (first character unreserved) with their values, and
/// maybe one name again (index into the pairs) with a second value.
type Form = (Vec<(String, String)>, Option<(Index, String)>);

fn form() -> impl Strategy<Value = Form> {
    let pair = (unreserved(1), text(8), text(40)).prop_map(|(a, b, v)| (a + &b, v));
    let pairs = vec(pair, 0..6).prop_map(|pairs| {
        let mut distinct: Vec<(String, String)> = Vec::new();
        for (name, value) in pairs {
            if !distinct.iter().any(|(n, _)| *n == name) {
                distinct.push((name, value));
            }
        }
        distinct
    });
    (
        pairs,
        proptest::option::weighted(0.25, (any::<Index>(), text(5))),
    )
}

proptest! {
    #[test]
    fn form_parameters_round_trip_and_repeats_or_nul_are_refused((mut pairs, again) in form()) {
        let repeat = !pairs.is_empty() && again.is_some();
        if let (true, Some((index, value))) = (repeat, again) {
            let name = pairs[index.index(pairs.len())].0.clone();
            pairs.push((name, value));
        }
        let raw = encode_form(&pairs);
        let nul = pairs
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'));
        match Params::parse(raw.as_bytes()) {
            Ok(params) => {
                prop_assert!(!repeat && !nul, "accepted {raw:?}");
                for (k, v) in &pairs {
                    let expected = (!v.is_empty()).then_some(v.as_str());
                    prop_assert_eq!(params.get(k), expected, "{:?} in {:?}", k, raw);
                }
            }
            Err(ParamError::Repeated(_)) => prop_assert!(repeat, "{raw:?}"),
            Err(ParamError::Malformed) => prop_assert!(nul, "{raw:?}"),
            Err(e) => panic!("{raw:?}: {e}"),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_form_parser(
        raw in prop_oneof![bytes(200), text(60).prop_map(String::into_bytes)]
    ) {
        let params = Params::parse_lenient(&raw);
        let _ = params.check();
        let _ = params.get("client_id");
    }

    #[test]
    fn pkce_accepts_exactly_the_s256_of_a_well_formed_verifier(
        verifier in unreserved(43..129),
        changed_v in any::<Index>(),
        changed_c in any::<Index>(),
        bad in prop_oneof![
            unreserved(0..43),
            unreserved(129..229),
            (unreserved(43), select(&[" ", "+", "/", "=", "%", "\u{e9}"][..]))
                .prop_map(|(v, tail)| v + tail),
        ],
    ) {
        let challenge = b64url(&sha256(verifier.as_bytes()));
        prop_assert!(pkce_matches(&verifier, &challenge), "{}", verifier);
        // Any one changed character of the verifier or the challenge fails.
        let mut v = verifier.clone().into_bytes();
        let i = changed_v.index(v.len());
        v[i] = if v[i] == b'a' { b'b' } else { b'a' };
        let v = String::from_utf8(v).expect("ascii");
        prop_assert!(!pkce_matches(&v, &challenge), "{} vs {}", v, verifier);
        let mut c = challenge.clone().into_bytes();
        let i = changed_c.index(c.len());
        c[i] = if c[i] == b'A' { b'B' } else { b'A' };
        let c = String::from_utf8(c).expect("ascii");
        prop_assert!(!pkce_matches(&verifier, &c), "{}", c);
        // plain (challenge = verifier) never matches.
        prop_assert!(!pkce_matches(&verifier, &verifier));
        // Too short, too long, or outside the unreserved set: refused even
        // when the challenge is its true S256.
        prop_assert!(
            !pkce_matches(&bad, &b64url(&sha256(bad.as_bytes()))),
            "{:?}", bad
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

const REGISTERED: [&str; 2] = [
    "https://app.example/auth/callback",
    "http://127.0.0.1:8976/callback",
];

proptest! {
    #[test]
    fn redirect_uris_match_exactly_and_near_misses_do_not(
        uri in select(&REGISTERED[..]),
        at in any::<Index>(),
        how in 0..8u8,
        suffix in select(&["/", "?", "#", "?x=1", "/..", "%2F", ".", " "][..]),
        extra in text(4),
        registration in text(30),
    ) {
        let c = client(&REGISTERED);
        prop_assert!(c.has_redirect_uri(uri));
        let mut chars: Vec<char> = uri.chars().collect();
        let i = at.index(chars.len());
        let near = match how {
            0 => format!("{uri}{suffix}"),
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
            5 => format!("{uri}{extra}"),
            6 => {
                let ch = chars[i];
                let enc = format!("%{:02X}", ch as u32 & 0x7f);
                uri.replacen(&ch.to_string(), &enc, 1)
            }
            _ => format!(" {uri}"),
        };
        if near != uri {
            prop_assert!(!c.has_redirect_uri(&near), "{:?} matched {:?}", near, uri);
        }
        // Any generated text never panics the registration check.
        let _ = crate::realm::check_redirect_uri(&registration);
    }
}

fn basic(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(header::AUTHORIZATION, v);
    }
    h
}

proptest! {
    #[test]
    fn basic_credentials_round_trip_and_garbage_is_refused_cleanly(
        id in (unreserved(1), text(10)).prop_map(|(a, b)| (a + &b).replace('\0', "")),
        secret in text(30).prop_map(|s| s.replace('\0', "")),
        scheme in select(&["Basic", "basic", "BASIC"][..]),
        garbage in prop_oneof![
            text(20).prop_map(|t| format!("Basic {t}")),
            bytes(30).prop_map(|b| format!("Basic {}", STANDARD.encode(b))),
            text(6).prop_map(|t| format!("{t} {}", STANDARD.encode("a:b"))),
            text(30),
        ],
    ) {
        // RFC 6749 §2.3.1: form-urlencode id and secret, then base64.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let value = format!(
            "{scheme} {}",
            STANDARD.encode(format!("{}:{}", enc(&id), enc(&secret)))
        );
        let got = basic_credentials(&basic(&value))
            .unwrap_or_else(|e| panic!("{value:?}: {e}"))
            .expect("credentials");
        prop_assert_eq!(got, (id.clone(), secret.clone()), "{:?}", value);

        // Garbage: any answer is fine except a panic or credentials that
        // were not in the header.
        if let Ok(Some((id, _))) = basic_credentials(&basic(&garbage)) {
            prop_assert!(!id.is_empty() && !id.contains('\0'), "{:?}", garbage);
        }
    }
}
