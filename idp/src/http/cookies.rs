//! The IdP's two cookies: the SSO session and the login flow. HttpOnly,
//! `SameSite=Lax` (session: it must come along on the client's top-level
//! redirect to `/authorize`) or `Strict` (flow: only our own form posts it);
//! `Secure` and the `__Host-` prefix when the issuer is https.

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use time::Duration;

use crate::config::{Config, LOGIN_FLOW_TTL};
use platform::crypto::{b64url, ct_eq, sha256};

pub fn session_name(config: &Config) -> &'static str {
    if config.secure_cookies() {
        "__Host-baton_idp_session"
    } else {
        "baton_idp_session"
    }
}

pub fn flow_name(config: &Config) -> &'static str {
    if config.secure_cookies() {
        "__Host-baton_idp_login"
    } else {
        "baton_idp_login"
    }
}

fn build(
    config: &Config,
    name: &'static str,
    value: String,
    same_site: SameSite,
    max_age: Duration,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(config.secure_cookies())
        .same_site(same_site)
        .max_age(max_age)
        .build()
}

/// A form's CSRF token bound to the SSO session cookie, which a foreign page
/// can neither read nor choose; `form` keeps the tokens of two forms apart.
pub fn session_csrf(form: &str, cookie: &str) -> String {
    b64url(&sha256(format!("baton-idp {form}:{cookie}").as_bytes()))
}

/// Whether `presented` is the CSRF token of `form` for `cookie` (constant time).
pub fn session_csrf_matches(form: &str, cookie: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|t| ct_eq(t.as_bytes(), session_csrf(form, cookie).as_bytes()))
}

pub fn session_value(config: &Config, jar: &CookieJar) -> Option<String> {
    jar.get(session_name(config)).map(|c| c.value().to_owned())
}

pub fn set_session(config: &Config, jar: CookieJar, value: String) -> CookieJar {
    let ttl = Duration::try_from(config.session_ttl).unwrap_or(Duration::hours(12));
    jar.add(build(
        config,
        session_name(config),
        value,
        SameSite::Lax,
        ttl,
    ))
}

pub fn clear_session(config: &Config, jar: CookieJar) -> CookieJar {
    jar.add(build(
        config,
        session_name(config),
        String::new(),
        SameSite::Lax,
        Duration::ZERO,
    ))
}

pub fn flow_value(config: &Config, jar: &CookieJar) -> Option<String> {
    jar.get(flow_name(config)).map(|c| c.value().to_owned())
}

pub fn set_flow(config: &Config, jar: CookieJar, value: String) -> CookieJar {
    let ttl = Duration::try_from(LOGIN_FLOW_TTL).unwrap_or(Duration::minutes(10));
    jar.add(build(
        config,
        flow_name(config),
        value,
        SameSite::Strict,
        ttl,
    ))
}

pub fn clear_flow(config: &Config, jar: CookieJar) -> CookieJar {
    jar.add(build(
        config,
        flow_name(config),
        String::new(),
        SameSite::Strict,
        Duration::ZERO,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_issuers_get_secure_host_prefixed_cookies() {
        let https = Config::with_issuer("https://id.example.com").unwrap();
        let jar = set_session(&https, CookieJar::new(), "v".into());
        let c = jar
            .get("__Host-baton_idp_session")
            .expect("__Host- prefix over https");
        assert_eq!(c.secure(), Some(true));
        assert_eq!(c.path(), Some("/"));
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.same_site(), Some(SameSite::Lax));
        assert!(c.domain().is_none(), "__Host- cookies have no Domain");
        let jar = set_flow(&https, CookieJar::new(), "f".into());
        assert_eq!(
            jar.get("__Host-baton_idp_login").unwrap().same_site(),
            Some(SameSite::Strict)
        );

        let http = Config::with_issuer("http://localhost:9000").unwrap();
        let jar = set_session(&http, CookieJar::new(), "v".into());
        assert_eq!(jar.get("baton_idp_session").unwrap().secure(), Some(false));
    }
}
