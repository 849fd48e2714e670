//! Signing in with a Firebase or OIDC ID token, verified locally against
//! a JWKS served on loopback; linking identities; every forgery refused.

use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::oidc::*;

pub(crate) const PROJECT: &str = "sessiond-test";

pub(crate) async fn sign_in(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/api/auth/idtoken", &json!({ "idToken": token }), None)
        .await
}

/// An app trusting one Firebase project whose JWKS publishes `signers`.
pub(crate) async fn app_with_provider(
    signers: &[&Signer],
    tweak: impl FnOnce(&mut sessiond::config::ProviderConfig),
) -> (TestApp, std::sync::Arc<Jwks>) {
    let (addr, jwks) = jwks_server(signers).await;
    let mut provider = firebase_provider(PROJECT, addr);
    tweak(&mut provider);
    let app = spawn_app_with(|c| c.oidc.providers = vec![provider]).await;
    (app, jwks)
}

#[tokio::test]
async fn a_first_sign_in_makes_a_passwordless_user_with_a_session() {
    let key = rsa_signer(0);
    let (app, _) = app_with_provider(&[&key], |_| {}).await;
    let token = key.sign(&firebase_claims(
        PROJECT,
        "uid-ann",
        Some("ann.lee@example.com"),
    ));
    let res = sign_in(&app, &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookie_of(&res).contains("Max-Age="));
    let cookie = cookie_of(&res);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "ann.lee");
    assert_eq!(body["user"]["email"], "ann.lee@example.com");
    let me: Value = app.me(&cookie).await.json().await.unwrap();
    assert_eq!(me["user"]["id"], body["user"]["id"]);

    // The same identity again is the same user.
    let again: Value = sign_in(&app, &token).await.json().await.unwrap();
    assert_eq!(again["user"]["id"], body["user"]["id"]);

    let ids: Value = app
        .get("/api/auth/identities", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    let ids = ids["identities"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0]["provider"], "firebase");
    assert_eq!(ids[0]["subject"], "uid-ann");
    assert_eq!(
        ids[0]["issuer"],
        format!("https://securetoken.google.com/{PROJECT}")
    );

    // No password yet: password login is refused like a wrong password,
    // and the first one is set without a current one.
    let res = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "ann.lee", "password": ""}),
            None,
        )
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let res = app
        .post_json(
            "/api/auth/password",
            &json!({"newPassword": PASSWORD}),
            Some(&cookie),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.login("ann.lee", PASSWORD).await.status(),
        StatusCode::OK
    );
    // Now it has one, changing it needs it.
    let fresh = app.login("ann.lee", PASSWORD).await;
    let fresh = cookie_of(&fresh);
    let res = app
        .post_json(
            "/api/auth/password",
            &json!({"newPassword": "another long password"}),
            Some(&fresh),
        )
        .await;
    let message = expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(message.contains("currentPassword"), "{message}");
}

#[tokio::test]
async fn es256_tokens_sign_in_and_names_are_made_unique() {
    let key = ec_signer("ec-1");
    let (app, _) = app_with_provider(&[&key], |_| {}).await;
    app.register("bob").await;
    let token = key.sign(&firebase_claims(
        PROJECT,
        "uid-bob",
        Some("bob@elsewhere.example"),
    ));
    let res = sign_in(&app, &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "bob2");
    // No e-mail in the token: a name, and a placeholder address.
    let token = key.sign(&{
        let mut c = firebase_claims(PROJECT, "uid-phone", None);
        c["name"] = json!("Carol Phone");
        c
    });
    let body: Value = sign_in(&app, &token).await.json().await.unwrap();
    assert_eq!(body["user"]["username"], "Carol.Phone");
    assert!(body["user"]["email"]
        .as_str()
        .unwrap()
        .ends_with(".invalid"));
}

#[tokio::test]
async fn remember_false_works_for_id_tokens_too() {
    let key = rsa_signer(0);
    let (app, _) = app_with_provider(&[&key], |_| {}).await;
    let token = key.sign(&firebase_claims(PROJECT, "uid-r", Some("r@example.com")));
    let res = app
        .post_json(
            "/api/auth/idtoken",
            &json!({"idToken": token, "remember": false}),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!set_cookie_of(&res).contains("Max-Age"));
}

#[tokio::test]
async fn an_address_already_registered_is_not_taken_over_by_a_token() {
    let key = rsa_signer(0);
    let (app, _) = app_with_provider(&[&key], |_| {}).await;
    app.register("alice").await;
    let token = key.sign(&firebase_claims(
        PROJECT,
        "uid-x",
        Some("alice@example.com"),
    ));
    let res = sign_in(&app, &token).await;
    expect_error(res, StatusCode::CONFLICT, "email_taken").await;
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn every_forgery_is_the_same_401_and_the_jwks_is_fetched_once() {
    let key = rsa_signer(0);
    let stranger = rsa_signer(1);
    let (app, jwks) = app_with_provider(&[&key], |_| {}).await;
    let good = firebase_claims(PROJECT, "uid-1", Some("one@example.com"));
    let signed = key.sign(&good);
    let mut parts: Vec<String> = signed.split('.').map(str::to_owned).collect();
    let claims_with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let hs256_with_public_key = {
        let n = key.jwk["n"].as_str().unwrap();
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": key.kid});
        let message = format!("{}.{}", b64(&header), b64(&good));
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(n.as_bytes()).unwrap();
        mac.update(message.as_bytes());
        let sig =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{message}.{sig}")
    };
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    let truncated = signed[..signed.len() - 10].to_owned();
    let altered = {
        parts[1] = b64(&claims_with(&|c| c["sub"] = json!("uid-admin")));
        parts.join(".")
    };
    let now = now();
    let forgeries: Vec<(&str, String)> = vec![
        ("alg none", alg_none),
        (
            "HS256 with the RSA public key as secret",
            hs256_with_public_key,
        ),
        ("a kid not in the JWKS", {
            let mut s = stranger.clone();
            s.kid = "no-such-kid".into();
            s.sign(&good)
        }),
        ("another provider's key", stranger.sign(&good)),
        (
            "wrong iss",
            key.sign(&claims_with(&|c| {
                c["iss"] = json!("https://securetoken.google.com/other")
            })),
        ),
        (
            "wrong aud",
            key.sign(&claims_with(&|c| c["aud"] = json!("other"))),
        ),
        (
            "expired",
            key.sign(&claims_with(&|c| c["exp"] = json!(now - 3600))),
        ),
        (
            "iat in the future",
            key.sign(&claims_with(&|c| c["iat"] = json!(now + 600))),
        ),
        (
            "auth_time in the future",
            key.sign(&claims_with(&|c| c["auth_time"] = json!(now + 600))),
        ),
        (
            "empty sub",
            key.sign(&claims_with(&|c| c["sub"] = json!(""))),
        ),
        ("truncated signature", truncated),
        ("altered claims", altered),
        ("100 KiB", {
            key.sign(&claims_with(&|c| c["pad"] = json!("x".repeat(100 * 1024))))
        }),
        ("not a JWT", "hello".into()),
    ];
    let mut messages = Vec::new();
    for (what, token) in &forgeries {
        let res = sign_in(&app, token).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_token", "{what}");
        messages.push(body["error"]["message"].as_str().unwrap().to_owned());
    }
    messages.dedup();
    assert_eq!(
        messages.len(),
        1,
        "one message for every cause: {messages:?}"
    );
    assert!(
        jwks.fetches() <= 1,
        "the JWKS was fetched {} times",
        jwks.fetches()
    );
    // The genuine token still works.
    assert_eq!(sign_in(&app, &signed).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_a_dropped_one_stops_working() {
    let old = rsa_signer(0);
    let new = rsa_signer(2);
    let (app, jwks) = app_with_provider(&[&old], |_| {}).await;
    *jwks.max_age.lock().unwrap() = 1;
    let claims = firebase_claims(PROJECT, "uid-rot", Some("rot@example.com"));
    assert_eq!(
        sign_in(&app, &old.sign(&claims)).await.status(),
        StatusCode::OK
    );
    // The provider adds a key and signs with it: the next sign-in refetches.
    jwks.publish(&[&old, &new]);
    assert_eq!(
        sign_in(&app, &new.sign(&claims)).await.status(),
        StatusCode::OK
    );
    // The old key is dropped: once its cache time is past, it is refused.
    jwks.publish(&[&new]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let res = sign_in(&app, &old.sign(&claims)).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(
        sign_in(&app, &new.sign(&claims)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn with_the_jwks_down_cached_keys_work_and_no_cache_is_503() {
    let key = rsa_signer(0);
    let (app, jwks) = app_with_provider(&[&key], |_| {}).await;
    let token = key.sign(&firebase_claims(PROJECT, "uid-d", Some("d@example.com")));
    jwks.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let res = sign_in(&app, &token).await;
    expect_error(res, StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable").await;
    jwks.down.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(sign_in(&app, &token).await.status(), StatusCode::OK);
    // Cached now: the provider going down changes nothing, even once the
    // keys are past their cache time.
    *jwks.max_age.lock().unwrap() = 1;
    jwks.down.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(sign_in(&app, &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_slow_jwks_holds_no_other_request() {
    let key = rsa_signer(0);
    let (app, jwks) = app_with_provider(&[&key], |_| {}).await;
    *jwks.delay.lock().unwrap() = Duration::from_secs(3);
    let alice = app.register_and_login("alice").await;
    let token = key.sign(&firebase_claims(PROJECT, "uid-s", Some("s@example.com")));
    let url = app.url("/api/auth/idtoken");
    let client = app.client.clone();
    let pending = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({ "idToken": token }))
            .send()
            .await
            .unwrap()
            .status()
    });
    while jwks.fetches() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.me(&alice).await.status(), StatusCode::OK);
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    assert!(
        !pending.is_finished(),
        "the sign-in should still be waiting on the JWKS"
    );
    assert_eq!(pending.await.unwrap(), StatusCode::OK);
}

#[tokio::test]
async fn identities_link_unlink_and_go_with_their_user() {
    let key = rsa_signer(0);
    let (app, _) = app_with_provider(&[&key], |p| p.auto_register = false).await;
    let token = key.sign(&firebase_claims(
        PROJECT,
        "uid-link",
        Some("link@example.com"),
    ));
    let res = sign_in(&app, &token).await;
    expect_error(res, StatusCode::FORBIDDEN, "not_linked").await;

    let alice = app.register_and_login("alice").await;
    let res = app
        .post_json(
            "/api/auth/identities",
            &json!({ "idToken": token }),
            Some(&alice),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let linked: Value = res.json().await.unwrap();
    let identity_id = linked["identity"]["id"].as_str().unwrap().to_owned();
    let body: Value = sign_in(&app, &token).await.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");

    // Someone else cannot take it.
    let bob = app.register_and_login("bob").await;
    let res = app
        .post_json(
            "/api/auth/identities",
            &json!({ "idToken": token }),
            Some(&bob),
        )
        .await;
    expect_error(res, StatusCode::CONFLICT, "identity_taken").await;
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/auth/identities/{identity_id}"),
            &bob,
            None,
        )
        .await;
    expect_error(res, StatusCode::NOT_FOUND, "not_found").await;

    // Alice has a password, so the identity is not her last way in.
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/auth/identities/{identity_id}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = sign_in(&app, &token).await;
    expect_error(res, StatusCode::FORBIDDEN, "not_linked").await;

    // Linked again, then alice is removed: the link goes with her.
    app.post_json(
        "/api/auth/identities",
        &json!({ "idToken": token }),
        Some(&alice),
    )
    .await;
    let alice_id = app.id_of(&alice).await;
    let (admin, _) = app.admin().await;
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/admin/users/{alice_id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = sign_in(&app, &token).await;
    expect_error(res, StatusCode::FORBIDDEN, "not_linked").await;
    let res = app
        .post_json(
            "/api/auth/identities",
            &json!({ "idToken": token }),
            Some(&bob),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn the_last_way_to_sign_in_cannot_be_unlinked() {
    let key = rsa_signer(0);
    let (app, _) = app_with_provider(&[&key], |_| {}).await;
    let token = key.sign(&firebase_claims(
        PROJECT,
        "uid-only",
        Some("only@example.com"),
    ));
    let cookie = cookie_of(&sign_in(&app, &token).await);
    let ids: Value = app
        .get("/api/auth/identities", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    let id = ids["identities"][0]["id"].as_str().unwrap().to_owned();
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/auth/identities/{id}"),
            &cookie,
            None,
        )
        .await;
    expect_error(res, StatusCode::CONFLICT, "last_identity").await;
    assert_eq!(sign_in(&app, &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_user_without_a_password_changes_address_only_with_a_fresh_proof() {
    let Some(mailbox) = crate::mailbox::Mailbox::start() else {
        return;
    };
    let key = rsa_signer(0);
    let (addr, _jwks) = jwks_server(&[&key]).await;
    let provider = firebase_provider(PROJECT, addr);
    let url = mailbox.url();
    let app = spawn_app_with(move |c| {
        c.oidc.providers = vec![provider];
        c.mail.smtp_url = url;
        c.auth.reauth_window = Duration::from_millis(500);
    })
    .await;
    let token = key.sign(&firebase_claims(
        PROJECT,
        "uid-nia",
        Some("nia@example.com"),
    ));
    let res = sign_in(&app, &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = cookie_of(&res);
    // No password to give: the sign-in just made is the proof.
    let change = json!({"email": "nia@new.example"});
    let res = app
        .post_json("/api/auth/email", &change, Some(&cookie))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    // Later, a session alone (a stolen cookie, say) moves nothing.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let res = app
        .post_json("/api/auth/email", &change, Some(&cookie))
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "reauth_required").await;
}
