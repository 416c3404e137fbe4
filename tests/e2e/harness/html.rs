//! Just enough HTML reading to act like a browser on server-rendered pages:
//! find a form, its action and its fields, and a link by its text.
//! (No HTML parser dependency: the pages are ours and well-formed.)

/// A `<form>`: its `action` (raw, possibly relative), method and every
/// `<input>` with a name and its value (hidden fields such as the CSRF token).
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub method: String,
    pub fields: Vec<(String, String)>,
}

impl Form {
    /// Sets a field, adding it when absent.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value.to_owned(),
            None => self.fields.push((name.to_owned(), value.to_owned())),
        }
    }
}

/// Every form of the page.
pub fn forms(html: &str) -> Vec<Form> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = find_ci(rest, "<form") {
        let after = &rest[start..];
        let end = find_ci(after, "</form").unwrap_or(after.len());
        let body = &after[..end];
        let open_tag = &body[..body.find('>').map_or(body.len(), |i| i + 1)];
        let mut fields = Vec::new();
        for tag in tags(body, "input").chain(tags(body, "button")) {
            if let Some(name) = attr(tag, "name") {
                fields.push((name, attr(tag, "value").unwrap_or_default()));
            }
        }
        out.push(Form {
            action: attr(open_tag, "action").unwrap_or_default(),
            method: attr(open_tag, "method")
                .unwrap_or_else(|| "get".into())
                .to_ascii_lowercase(),
            fields,
        });
        rest = &after[end.min(after.len())..];
        if end == after.len() {
            break;
        }
    }
    out
}

/// The form with a password field (a login page).
pub fn login_form(html: &str) -> Option<Form> {
    forms(html)
        .into_iter()
        .find(|f| f.fields.iter().any(|(n, _)| n == "password"))
}

/// The `href` of the first `<a>` whose text contains `text`, or the action of
/// the first form whose button says `text` (a "Sign in" may be either).
pub enum Control {
    Link(String),
    Form(Form),
}

pub fn control(html: &str, text: &str) -> Option<Control> {
    let mut rest = html;
    while let Some(start) = find_ci(rest, "<a ") {
        let after = &rest[start..];
        let end = find_ci(after, "</a>").unwrap_or(after.len());
        let element = &after[..end];
        let inner = element.find('>').map_or("", |i| &element[i + 1..]);
        if strip_tags(inner).contains(text)
            && let Some(href) = attr(element, "href")
        {
            return Some(Control::Link(href));
        }
        rest = &after[end.min(after.len())..];
        if end == after.len() {
            break;
        }
    }
    let mut rest = html;
    while let Some(start) = find_ci(rest, "<form") {
        let after = &rest[start..];
        let end = find_ci(after, "</form").unwrap_or(after.len());
        if strip_tags(&after[..end]).contains(text) {
            return forms(&after[..end]).into_iter().next().map(Control::Form);
        }
        rest = &after[end.min(after.len())..];
        if end == after.len() {
            break;
        }
    }
    None
}

/// The opening tags named `name` in `html`.
fn tags<'a>(html: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let needle = format!("<{name}");
    let mut rest = html;
    std::iter::from_fn(move || {
        loop {
            let start = find_ci(rest, &needle)?;
            let after = &rest[start..];
            let end = after.find('>').map_or(after.len(), |i| i + 1);
            rest = &after[end..];
            // `<input` but not `<inputs`: the next character ends the name.
            if after[needle.len()..]
                .starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
            {
                return Some(&after[..end]);
            }
        }
    })
}

/// The decoded value of attribute `name` in an opening tag.
pub fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = lower[..at].ends_with(|c: char| c.is_ascii_whitespace());
        let rest = tag[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let value = rest[1..].trim_start();
        let raw = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or_default(),
            _ => value
                .split(|c: char| c.is_ascii_whitespace() || c == '>')
                .next()
                .unwrap_or_default(),
        };
        return Some(decode_entities(raw));
    }
    None
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    decode_entities(&out)
}

fn decode_entities(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2F;", "/")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .to_ascii_lowercase()
        .find(&needle.to_ascii_lowercase())
}

#[test]
fn reads_a_login_form() {
    let html = r#"<html><form method="POST" action="/login?x=1&amp;y=2">
        <input type="hidden" name="csrf" value="t&#x2F;k">
        <input name="username"><input type="password" name="password">
        <button type=submit>Sign in</button></form></html>"#;
    let form = login_form(html).expect("a login form");
    assert_eq!(form.action, "/login?x=1&y=2");
    assert_eq!(form.method, "post");
    assert_eq!(form.fields[0], ("csrf".to_owned(), "t/k".to_owned()));
    assert!(matches!(control(html, "Sign in"), Some(Control::Form(_))));
    let link = r#"<nav><a class="btn" href="/auth/login?next=%2F">Sign <b>in</b></a></nav>"#;
    assert!(
        matches!(control(link, "Sign in"), Some(Control::Link(h)) if h == "/auth/login?next=%2F")
    );
}
