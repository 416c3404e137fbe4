//! Tests of the route table: parsing, matching, access rules.

use super::*;

const TABLE: &str = r#"
    [defaults]
    timeout_ms = 1500
    rate_limit = { per_second = 5, burst = 10 }

    [[route]]
    name = "payments"
    prefix = "/api/payments"
    upstreams = ["${PAY_URL:-http://127.0.0.1:8082}", "http://10.0.0.2:8082/base/"]
    rewrite = "/charges"
    audience = "payment"
    [[route.allow]]
    methods = ["POST"]
    path = "/*/refund"
    any_role = ["admin", "support"]
    all_scopes = ["payments:refund"]
    [[route.allow]]
    methods = ["GET"]

    [[route]]
    name = "pay-audit"
    prefix = "/api/payments/audit"
    upstreams = ["http://127.0.0.1:8082"]
    rewrite = ""
    audience = "payment"
    timeout_ms = 200
    [[route.allow]]
    methods = ["*"]
    path = "/**"
"#;

fn table() -> RouteTable {
    RouteTable::parse(TABLE, |k| {
        (k == "PAY_URL").then(|| "http://pay:1".to_owned())
    })
    .unwrap()
}

#[test]
fn longest_prefix_wins_on_segment_boundaries_and_unknown_paths_miss() {
    let t = table();
    let (r, rest) = t.find("/api/payments/audit/x").unwrap();
    assert_eq!((r.name.as_str(), rest), ("pay-audit", "/x"));
    assert_eq!(r.timeout, Duration::from_millis(200));
    let (r, rest) = t.find("/api/payments").unwrap();
    assert_eq!((r.name.as_str(), rest), ("payments", ""));
    assert_eq!(r.timeout, Duration::from_millis(1500));
    assert!(t.find("/api/paymentsX").is_none());
    assert!(t.find("/api/other").is_none());
}

#[test]
fn upstream_urls_rewrite_the_prefix_keep_the_query_and_rotate_instances() {
    let t = table();
    let (r, rest) = t.find("/api/payments/c1/refund").unwrap();
    let (first, permit) = r.acquire(&[]).unwrap();
    permit.success();
    assert_eq!(
        r.upstream_url(first, rest, Some("a=1")).as_str(),
        "http://pay:1/charges/c1/refund?a=1"
    );
    let (second, permit) = r.acquire(&[]).unwrap();
    drop(permit);
    assert_ne!(first, second);
    assert_eq!(
        r.upstream_url(second, rest, None).as_str(),
        "http://10.0.0.2:8082/base/charges/c1/refund"
    );
    let (r, rest) = t.find("/api/payments/audit").unwrap();
    assert_eq!(
        r.upstream_url(0, rest, None).as_str(),
        "http://127.0.0.1:8082/"
    );
}

#[test]
fn instances_with_an_open_circuit_are_skipped_and_tried_ones_too() {
    let t = table();
    let r = t.named("payments").unwrap();
    // The defaults: 5 consecutive failures open an instance's circuit.
    for _ in 0..5 {
        r.instances()[0].breaker.acquire().unwrap().failure();
    }
    for _ in 0..4 {
        let (i, permit) = r.acquire(&[]).unwrap();
        assert_eq!(i, 1);
        permit.success();
    }
    let wait = r.acquire(&[1]).err().unwrap();
    assert!(wait > Duration::from_secs(5), "{wait:?}");
}

#[test]
fn circuits_and_fallbacks_are_configured_per_route() {
    let text = r#"
        [defaults]
        circuit = { failures = 2, cooldown_ms = 50 }
        [[route]]
        name = "a"
        prefix = "/a"
        upstreams = ["http://a"]
        audience = "x"
        fallback = { route = "b" }
        [[route.allow]]
        methods = ["GET"]
        [[route]]
        name = "b"
        prefix = "/b"
        upstreams = ["http://b"]
        audience = "x"
        circuit = { failures = 1, cooldown_ms = 60000 }
        fallback = { json = '{"items": []}' }
        [[route.allow]]
        methods = ["GET"]
    "#;
    let t = RouteTable::parse(text, |_| None).unwrap();
    let a = t.named("a").unwrap();
    assert_eq!(a.fallback, Some(Fallback::Route("b".into())));
    a.instances()[0].breaker.acquire().unwrap().failure();
    assert!(a.acquire(&[]).is_ok(), "one failure of two");
    let b = t.named("b").unwrap();
    assert_eq!(
        b.fallback,
        Some(Fallback::Json(serde_json::json!({"items": []})))
    );
    b.instances()[0].breaker.acquire().unwrap().failure();
    assert!(b.acquire(&[]).is_err(), "one failure opens b");

    for (bad, expected) in [
        (
            text.replace("route = \"b\"", "route = \"nope\""),
            "does not exist",
        ),
        (
            text.replace("route = \"b\"", "route = \"a\""),
            "another route",
        ),
        (
            text.replace("'{\"items\": []}'", "'{nope'"),
            "fallback json",
        ),
        (
            text.replace("failures = 2", "failures = 0"),
            "must be positive",
        ),
    ] {
        let err = RouteTable::parse(&bad, |_| None).err().unwrap().to_string();
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn the_first_matching_allow_rule_decides_and_nothing_else_is_exposed() {
    let t = table();
    let (r, _) = t.find("/api/payments").unwrap();
    let refund = Requirement::all_of([
        Requirement::any_of([Requirement::role("admin"), Requirement::role("support")]),
        Requirement::scope("payments:refund"),
    ]);
    assert_eq!(
        r.access(&Method::POST, "/c1/refund"),
        Some(&Access::Requires(refund))
    );
    assert_eq!(r.access(&Method::GET, ""), Some(&Access::SignedIn));
    assert_eq!(
        r.access(&Method::GET, "/c1/anything"),
        Some(&Access::SignedIn)
    );
    assert_eq!(r.access(&Method::POST, ""), None);
    assert_eq!(r.access(&Method::POST, "/c1/refund/x"), None);
    assert_eq!(r.access(&Method::POST, "/c1"), None);
    assert_eq!(r.access(&Method::DELETE, "/c1"), None);
    let (audit, _) = t.find("/api/payments/audit").unwrap();
    assert_eq!(
        audit.access(&Method::DELETE, "/a/b/c"),
        Some(&Access::SignedIn)
    );
}

#[test]
fn bad_tables_are_refused_with_the_route_named() {
    let bad = [
        ("prefix = \"api\"", "must start with /"),
        ("upstreams = []", "at least one upstream"),
        ("upstreams = [\"ftp://x\"]", "http(s) base URL"),
        ("upstreams = [\"${NOPE}\"]", "NOPE is not set"),
    ];
    for (line, expected) in bad {
        let text = format!(
            "[[route]]\nname = \"r\"\naudience = \"a\"\n{}\n{}\n[[route.allow]]\nmethods = [\"GET\"]\n",
            if line.starts_with("prefix") {
                line
            } else {
                "prefix = \"/r\""
            },
            if line.starts_with("upstreams") {
                line
            } else {
                "upstreams = [\"http://u\"]"
            },
        );
        let err = RouteTable::parse(&text, |_| None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("\"r\"") && err.contains(expected), "{err}");
    }
    let no_rule =
        "[[route]]\nname = \"r\"\nprefix = \"/r\"\nupstreams = [\"http://u\"]\naudience = \"a\"\n";
    assert!(
        RouteTable::parse(no_rule, |_| None)
            .err()
            .unwrap()
            .to_string()
            .contains("no [[route.allow]]")
    );
    assert!(RouteTable::parse("[[route]]\nbogus = 1", |_| None).is_err());
}

#[test]
fn the_shipped_table_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/routes.toml");
    let t = RouteTable::load(&path, |_| None).unwrap();
    for prefix in ["/api/orders", "/api/payments", "/api/inventory"] {
        assert!(t.find(prefix).is_some(), "{prefix}");
    }
}
