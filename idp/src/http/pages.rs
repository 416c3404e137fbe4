//! Server-rendered pages (askama) and the headers every page carries.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub client_name: &'a str,
    pub csrf: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
    /// Passkeys are on: the page offers "Use a passkey".
    pub passkeys: bool,
}

/// The second step of a sign-in ([`super::second_factor`]).
#[derive(Template)]
#[template(path = "second_factor.html")]
pub struct SecondFactorPage<'a> {
    pub client_name: &'a str,
    pub csrf: &'a str,
    /// The person has an authenticator app: the code form.
    pub code: bool,
    /// The person has passkeys: "Use a passkey".
    pub passkey: bool,
    /// Setting an app up at sign-in (the person must have one).
    pub setup: Option<AuthenticatorSetup>,
    /// Just set up: the recovery codes, shown once, and the way on.
    pub recovery_codes: Vec<String>,
    pub continue_to: Option<&'a str>,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub message: &'a str,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage<'a> {
    pub username: &'a str,
    pub csrf: &'a str,
    pub client_id: Option<&'a str>,
    pub post_logout_redirect_uri: Option<&'a str>,
    pub state: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
pub struct SignedOutPage;

/// `GET /account` ([`super::account`]).
#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage<'a> {
    /// Whether the person has an authenticator app.
    pub authenticator: bool,
    /// How many passkeys the person has.
    pub passkeys: i64,
    pub username: &'a str,
    pub name: &'a str,
    pub csrf: &'a str,
    pub sessions: Vec<SessionRow>,
    pub notice: Option<&'static str>,
    pub error: Option<&'static str>,
}

/// One session on the account page, its times already written out.
pub struct SessionRow {
    pub id: String,
    pub current: bool,
    pub signed_in: String,
    pub authenticated: String,
    pub expires: String,
    pub apps: String,
}

/// `GET /account/authenticator` ([`super::authenticator`]): set one up, or
/// the one the person has.
#[derive(Template)]
#[template(path = "authenticator.html")]
pub struct AuthenticatorPage<'a> {
    pub csrf: &'a str,
    /// Setting one up: the secret to scan, sealed for the confirming form.
    pub setup: Option<AuthenticatorSetup>,
    /// Just confirmed: the recovery codes, shown this once.
    pub recovery_codes: Vec<String>,
    /// The person has one: how many recovery codes are left.
    pub recovery_codes_left: Option<i64>,
    pub error: Option<&'static str>,
}

/// The secret of an authenticator being set up.
pub struct AuthenticatorSetup {
    /// The `otpauth://` URI as an inline SVG QR code (drawn by
    /// [`crate::totp::provisioning`], never from input).
    pub qr_svg: String,
    pub base32: String,
    pub sealed: String,
}

/// `GET /account/passkeys` ([`super::passkeys`]).
#[derive(Template)]
#[template(path = "passkeys.html")]
pub struct PasskeysPage<'a> {
    pub csrf: &'a str,
    /// The issuer is at a domain name: passkeys can be added.
    pub available: bool,
    pub passkeys: Vec<PasskeyRow>,
    pub notice: Option<&'static str>,
    pub error: Option<&'static str>,
}

/// One passkey on its page, its times already written out.
pub struct PasskeyRow {
    pub id: String,
    pub name: String,
    pub added: String,
    pub last_used: Option<String>,
}

/// `GET /account` without a session.
#[derive(Template)]
#[template(path = "account_signed_out.html")]
pub struct AccountSignedOutPage;

/// An HTML response with a strict Content-Security-Policy: our stylesheet,
/// our one script file (passkeys: it calls back to us only), no inline
/// script or style, no framing. `form_target` is the origin a form on the page
/// ends up redirecting to (CSP `form-action` covers redirects too).
pub fn html(status: StatusCode, body: String, form_target: Option<&str>) -> Response {
    let form_action = match form_target {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; \
         connect-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// What a person is told when the server failed them (no detail: that goes
/// to the log).
pub const SERVER_FAILED: &str = "Something went wrong on our side. Please try again in a moment.";

/// Renders a page; a template failure becomes the server error page.
pub fn render(status: StatusCode, page: &impl Template, form_target: Option<&str>) -> Response {
    match page.render() {
        Ok(body) => html(status, body, form_target),
        Err(e) => {
            tracing::error!(error = %e, "page failed on the server side");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, SERVER_FAILED)
        }
    }
}

/// The error page saying `message`; plain text if even that cannot render.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    match (ErrorPage { message }).render() {
        Ok(body) => html(status, body, None),
        Err(_) => (status, message.to_owned()).into_response(),
    }
}

/// A time as the account pages write it (`2026-12-04 09:30 UTC`).
pub fn when(t: time::OffsetDateTime) -> String {
    t.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_default()
}

/// The origin of a URL, for CSP (`https://app.example:8443`).
pub fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    match u.origin() {
        o @ url::Origin::Tuple(..) => Some(o.ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// `GET /static/idp.css`.
pub async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../static/idp.css"),
    )
}

/// `GET /static/passkey.js`: the one script of the pages (passkeys).
pub async fn passkey_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/passkey.js"),
    )
}

/// `GET /static/favicon.svg` (also answers `/favicon.ico`, so browsers log no 404).
pub async fn favicon() -> Response {
    asset("image/svg+xml", include_str!("../../static/favicon.svg"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let page = LoginPage {
            client_name: "<b>x</b>",
            csrf: "t\"",
            username: "a&b",
            error: Some("<script>"),
            passkeys: true,
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<b>x</b>") && !html.contains("<script>"));
        assert!(
            html.contains("&#60;b&#62;x&#60;/b&#62;") || html.contains("&lt;b&gt;x&lt;/b&gt;"),
            "{html}"
        );
        assert!(!html.contains("style="), "no inline style");
        let scripts: Vec<&str> = html.split("<script").skip(1).collect();
        assert!(
            scripts
                .iter()
                .all(|s| s.starts_with(r#" src="/static/passkey.js" defer></script>"#)),
            "no script but our own file: {html}"
        );
    }

    #[test]
    fn origins_are_scheme_host_port() {
        assert_eq!(
            origin_of("https://a.example:8443/cb?x=1").as_deref(),
            Some("https://a.example:8443")
        );
        assert_eq!(
            origin_of("http://localhost:8080/auth/callback").as_deref(),
            Some("http://localhost:8080")
        );
        assert_eq!(origin_of("not a url"), None);
    }
}
