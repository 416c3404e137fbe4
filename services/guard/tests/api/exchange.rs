//! Per-hop token exchange against the test issuer's real `/token`: the
//! exchanged token names the next service alone and its actor, is cached per
//! (subject, audience), made once for any number of concurrent requests, and
//! renewed when it nears its end (never outliving its subject).

use std::sync::Arc;
use std::time::Duration;

use guard::testing::TestIssuer;
use guard::{ExchangeError, Guard, Subject};

fn subject_token(issuer: &TestIssuer, until: i64) -> String {
    issuer
        .token()
        .aud(&["order"])
        .client_id("gateway")
        .scope("orders:write inventory:write payments:write")
        .valid(0, until)
        .sign()
}

#[tokio::test]
async fn an_exchanged_token_names_only_the_target_and_the_actor_chain() {
    let issuer = TestIssuer::start().await;
    // The caller's token as order received it: already exchanged once by the gateway.
    let token = issuer
        .token()
        .aud(&["order"])
        .scope("orders:write inventory:write")
        .claim("act", serde_json::json!({"sub": "gateway"}))
        .sign();
    let exchanger = issuer.exchanger("order");
    let exchanged = exchanger
        .token(
            &Subject {
                key: "j1",
                token: &token,
                caller: None,
            },
            "inventory",
            "inventory:write",
        )
        .await
        .unwrap();

    let inventory = Guard::new(issuer.config("inventory"));
    let principal = inventory
        .validate(&exchanged)
        .await
        .expect("inventory accepts the exchanged token");
    assert_eq!(principal.aud(), ["inventory"]);
    assert_eq!(principal.actors(), ["order", "gateway"]);
    assert_eq!(principal.scopes().collect::<Vec<_>>(), ["inventory:write"]);
    let payment = Guard::new(issuer.config("payment"));
    assert!(
        payment.validate(&exchanged).await.is_err(),
        "a token for inventory is refused by payment"
    );
}

#[tokio::test]
async fn a_hundred_concurrent_requests_make_one_exchange() {
    let issuer = TestIssuer::start().await;
    let token: Arc<str> = subject_token(&issuer, 300).into();
    let exchanger = issuer.exchanger("order");
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (exchanger, token) = (exchanger.clone(), token.clone());
            tokio::spawn(async move {
                exchanger
                    .token(
                        &Subject {
                            key: "jti-1",
                            token: &token,
                            caller: None,
                        },
                        "inventory",
                        "inventory:write",
                    )
                    .await
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap().unwrap());
    }
    assert_eq!(
        issuer.exchanges(),
        1,
        "single flight per (subject, audience)"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0]));

    // Another audience is another token.
    let payment = exchanger
        .token(
            &Subject {
                key: "jti-1",
                token: &token,
                caller: None,
            },
            "payment",
            "payments:write",
        )
        .await
        .unwrap();
    assert_ne!(payment, tokens[0]);
    assert_eq!(issuer.exchanges(), 2);
    // Another scope too: a cached token never serves a call that asked for less.
    exchanger
        .token(
            &Subject {
                key: "jti-1",
                token: &token,
                caller: None,
            },
            "inventory",
            "orders:write",
        )
        .await
        .unwrap();
    assert_eq!(issuer.exchanges(), 3);
}

#[tokio::test]
async fn a_token_near_its_subjects_end_is_exchanged_again() {
    let issuer = TestIssuer::start().await;
    let exchanger = issuer
        .exchanger("order")
        .with_margin(Duration::from_secs(30));
    // Far from its end: cached.
    let long = subject_token(&issuer, 300);
    let subject = Subject {
        key: "long",
        token: &long,
        caller: None,
    };
    let first = exchanger
        .token(&subject, "order", "orders:write")
        .await
        .unwrap();
    let second = exchanger
        .token(&subject, "order", "orders:write")
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(issuer.exchanges(), 1);
    // The subject ends within the margin: the exchanged token would too, so
    // it is not kept.
    let short = subject_token(&issuer, 20);
    let subject = Subject {
        key: "short",
        token: &short,
        caller: None,
    };
    exchanger
        .token(&subject, "order", "orders:write")
        .await
        .unwrap();
    exchanger
        .token(&subject, "order", "orders:write")
        .await
        .unwrap();
    assert_eq!(issuer.exchanges(), 3);
}

#[tokio::test]
async fn a_refused_exchange_is_not_cached_and_says_why() {
    let issuer = TestIssuer::start().await;
    let expired = subject_token(&issuer, -120);
    let exchanger = issuer.exchanger("order");
    let subject = Subject {
        key: "old",
        token: &expired,
        caller: None,
    };
    for _ in 0..2 {
        let e = exchanger.token(&subject, "order", "").await.unwrap_err();
        assert!(matches!(e, ExchangeError::Refused(_)), "{e:?}");
    }
    assert_eq!(exchanger.exchanges(), 2);
    // A client the issuer does not know (wrong secret) gets nothing.
    let stranger = guard::Exchanger::new(
        format!("{}/token", issuer.issuer()).parse().unwrap(),
        guard::ClientCredentials {
            id: "order".into(),
            secret: "guess".into(),
        },
    )
    .unwrap();
    let valid = subject_token(&issuer, 300);
    let e = stranger
        .token(
            &Subject {
                key: "v",
                token: &valid,
                caller: None,
            },
            "order",
            "",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ExchangeError::Refused(_)), "{e:?}");
    assert_eq!(issuer.exchanges(), 0);
}

#[tokio::test]
async fn tokens_of_expired_subjects_are_swept_as_the_cache_grows() {
    let issuer = TestIssuer::start().await;
    // Subjects ending within the margin: every token is due as soon as it
    // is kept, as those of subjects that went away are after their end.
    let exchanger = issuer
        .exchanger("order")
        .with_margin(Duration::from_secs(30));
    let token = subject_token(&issuer, 20);
    for i in 0..300 {
        let key = format!("gone-{i}");
        exchanger
            .token(
                &Subject {
                    key: &key,
                    token: &token,
                    caller: None,
                },
                "inventory",
                "inventory:write",
            )
            .await
            .unwrap();
        assert!(
            exchanger.cached() <= guard::exchange::SWEEP_FLOOR,
            "{} kept after {} subjects whose tokens were all due",
            exchanger.cached(),
            i + 1
        );
    }
    assert_eq!(issuer.exchanges(), 300);
}

#[tokio::test]
async fn hundreds_of_concurrent_subjects_never_exceed_the_capacity() {
    let issuer = TestIssuer::start().await;
    let capacity = 50;
    let exchanger = issuer.exchanger("order").with_capacity(capacity);
    let token: Arc<str> = subject_token(&issuer, 300).into();
    // 400 callers, each with its own subject, at once: every token is fresh,
    // and up to 64 exchanges are under way together (more than the capacity;
    // bounded so that the test issuer is not flooded with connections).
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let (exchanger, token, in_flight) =
                (exchanger.clone(), token.clone(), in_flight.clone());
            tokio::spawn(async move {
                let _permit = in_flight.acquire().await.unwrap();
                let key = format!("caller-{i}");
                let subject = Subject {
                    key: &key,
                    token: &token,
                    caller: None,
                };
                let first = exchanger
                    .token(&subject, "inventory", "inventory:write")
                    .await;
                let kept = exchanger.cached();
                (first, kept)
            })
        })
        .collect();
    for task in tasks {
        let (token, kept) = task.await.unwrap();
        token.expect("an exchange beyond the capacity still succeeds");
        assert!(kept <= capacity, "{kept} kept, capacity {capacity}");
    }
    assert!(exchanger.cached() <= capacity);
    assert_eq!(issuer.exchanges(), 400);
    // What is kept still serves: a kept subject's second call exchanges nothing.
    let mut repeats = 0;
    for i in 0..400 {
        let key = format!("caller-{i}");
        let subject = Subject {
            key: &key,
            token: &token,
            caller: None,
        };
        let before = issuer.exchanges();
        exchanger
            .token(&subject, "inventory", "inventory:write")
            .await
            .unwrap();
        repeats += usize::from(issuer.exchanges() == before);
        assert!(exchanger.cached() <= capacity);
    }
    assert_eq!(
        repeats,
        capacity,
        "the full cache still serves what it keeps ({} kept)",
        exchanger.cached()
    );
}

/// order's cached exchanged token for a caller is not handed out once the
/// caller's root token is revoked: the exchanger refuses instead of relaying
/// a token every next hop would refuse, and asks the IdP nothing.
#[tokio::test]
async fn a_cached_exchanged_token_is_not_reused_once_the_root_is_revoked() {
    let issuer = TestIssuer::start().await;
    // What the gateway obtained by exchanging its session's token `root`.
    let for_order = issuer
        .token()
        .aud(&["order"])
        .client_id("gateway")
        .scope("inventory:write")
        .claim("derived_from", serde_json::json!(["root"]))
        .sign();
    let order = Guard::new(issuer.config("order"));
    let caller = order.validate(&for_order).await.unwrap();
    let exchanger = issuer.exchanger("order");
    let first = exchanger
        .token(&Subject::of(&caller), "inventory", "inventory:write")
        .await
        .unwrap();
    let again = exchanger
        .token(&Subject::of(&caller), "inventory", "inventory:write")
        .await
        .unwrap();
    assert_eq!(first, again, "cached while the root is valid");
    let exchanges = issuer.exchanges();

    order.revoke(guard::Revocation::Token { jti: "root".into() });
    assert!(caller.is_revoked());
    assert!(matches!(
        exchanger
            .token(&Subject::of(&caller), "inventory", "inventory:write")
            .await,
        Err(ExchangeError::Refused(_))
    ));
    assert_eq!(issuer.exchanges(), exchanges, "no stale token, no new one");
    let inventory = Guard::new(issuer.config("inventory"));
    inventory.revoke(guard::Revocation::Token {
        jti: caller.jti().to_owned(),
    });
    assert!(
        inventory.validate(&first).await.is_err(),
        "the cached token names its ancestors"
    );
}
