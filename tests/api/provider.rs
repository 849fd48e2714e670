//! "Sign in with sessiond": apps sign their users in through sessiond's
//! OpenID Connect provider, told as the app (a relying party) and an API
//! (a resource server) see it. Each refusal the specs name is its own story.

use std::collections::HashMap;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use reqwest::header::{AUTHORIZATION, COOKIE, LOCATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sessiond::config::{ClientConfig, Consent, SigningAlg};
use sha2::{Digest, Sha256};

use crate::helpers::*;

pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/cb";
const BYE: &str = "http://127.0.0.1:9/bye";
const SECRET: &str = "a client secret nobody guesses";

/// A client as the config file lists it.
pub(crate) fn client(id: &str, secret: Option<&str>, consent: Consent) -> ClientConfig {
    ClientConfig {
        id: id.into(),
        name: format!("The {id} app"),
        secret_hash: secret.map(hash).unwrap_or_default(),
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![BYE.into()],
        scopes: ["openid", "profile", "email", "groups"]
            .map(String::from)
            .to_vec(),
        consent,
        backchannel_logout_uri: String::new(),
        id_token_signed_response_alg: SigningAlg::RS256,
    }
}

/// An argon2id PHC string as `sessiond oidc client add` writes (cheap
/// parameters: tests stay quick).
fn hash(secret: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(64, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
    argon
        .hash_password(secret.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// A server with the provider on and these clients.
pub(crate) async fn provider(clients: Vec<ClientConfig>) -> TestApp {
    spawn_app_with(|c| {
        c.oidc_provider.enabled = true;
        c.oidc_provider.clients = clients;
    })
    .await
}

/// The browser: follows no redirect, so every hop is checked.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A PKCE pair: (verifier, S256 challenge).
pub(crate) fn pkce() -> (String, String) {
    let verifier = format!("verifier-{}-{}", unique(), "x".repeat(40));
    (verifier.clone(), b64(&Sha256::digest(verifier.as_bytes())))
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `GET /api/oidc/authorize` with these parameters, as a browser with
/// `cookie` would; the answer unfollowed.
pub(crate) async fn authorize(
    app: &TestApp,
    cookie: Option<&str>,
    params: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = browser().get(app.url("/api/oidc/authorize")).query(params);
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    req.send().await.unwrap()
}

/// The usual request of `client`, with a PKCE challenge.
pub(crate) fn request<'a>(client: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid profile email groups"),
        ("state", "st-1"),
        ("nonce", "n-1"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// The query of a redirect.
pub(crate) fn query_of(res: &reqwest::Response) -> HashMap<String, String> {
    let to = location(res);
    url::Url::parse(&to)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

pub(crate) fn location(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), StatusCode::FOUND, "a redirect");
    res.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// Signs `name` in and runs the flow of `client` to a code (implicit
/// consent): `(cookie, code, verifier)`.
pub(crate) async fn code_for(app: &TestApp, name: &str, client: &str) -> (String, String, String) {
    let cookie = app.register_and_login(name).await;
    let (verifier, challenge) = pkce();
    let res = authorize(app, Some(&cookie), &request(client, &challenge)).await;
    let q = query_of(&res);
    assert!(location(&res).starts_with(REDIRECT), "{}", location(&res));
    assert_eq!(q["state"], "st-1");
    let doc: Value = app
        .get("/.well-known/openid-configuration", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(q["iss"], doc["issuer"]);
    (cookie, q["code"].clone(), verifier)
}

/// `POST /api/oidc/token` with a form (and HTTP Basic, when given).
pub(crate) async fn token(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut req = app.client.post(app.url("/api/oidc/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.unwrap()
}

/// Trades a code of the public client `client`: the token answer.
pub(crate) async fn exchange(app: &TestApp, client: &str, code: &str, verifier: &str) -> Value {
    let res = try_exchange(app, client, code, verifier).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.json().await.unwrap()
}

/// A public client's code exchange, answered as it is.
pub(crate) async fn try_exchange(
    app: &TestApp,
    client: &str,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    token(app, &form, None).await
}

pub(crate) async fn refresh(app: &TestApp, client: &str, refresh_token: &str) -> reqwest::Response {
    token(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client),
            ("refresh_token", refresh_token),
        ],
        None,
    )
    .await
}

/// Checks that the refresh token in `tokens` is refused: `invalid_grant`.
async fn refresh_refused(app: &TestApp, client: &str, tokens: &Value) {
    let res = refresh(app, client, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        oauth_error(res, StatusCode::BAD_REQUEST).await,
        "invalid_grant",
        "{client}"
    );
}

/// The OAuth error of an answer, checked to have `status`.
pub(crate) async fn oauth_error(res: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.unwrap();
    assert!(body["error_description"].is_string(), "{body}");
    body["error"].as_str().unwrap().to_owned()
}

/// Checks a JWT the provider signed as a relying party or an API would:
/// against the published keys, its `iss` and, when given, its `aud`.
pub(crate) async fn verify(
    app: &TestApp,
    jwt: &str,
    aud: Option<&str>,
) -> (jsonwebtoken::Header, Value) {
    let keys: JwkSet = app.get("/api/oidc/jwks", None).await.json().await.unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let kid = header.kid.clone().expect("a kid");
    let jwk = keys.find(&kid).expect("the key is published");
    let doc: Value = app
        .get("/.well-known/openid-configuration", None)
        .await
        .json()
        .await
        .unwrap();
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[doc["issuer"].as_str().unwrap()]);
    match aud {
        Some(aud) => v.set_audience(&[aud]),
        None => v.validate_aud = false,
    }
    let claims = jsonwebtoken::decode::<Value>(jwt, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .expect("a valid signature and claims")
        .claims;
    (header, claims)
}

#[tokio::test]
async fn discovery_names_every_endpoint_and_the_keys_offer_rs256_and_es256() {
    let app = provider(vec![client("app", None, Consent::Implicit)]).await;
    let doc: Value = app
        .get("/.well-known/openid-configuration", None)
        .await
        .json()
        .await
        .unwrap();
    let issuer = format!("http://{}", app.addr);
    assert_eq!(doc["issuer"], issuer);
    for (key, path) in [
        ("authorization_endpoint", "/api/oidc/authorize"),
        ("token_endpoint", "/api/oidc/token"),
        ("userinfo_endpoint", "/api/oidc/userinfo"),
        ("jwks_uri", "/api/oidc/jwks"),
        ("end_session_endpoint", "/api/oidc/logout"),
        ("revocation_endpoint", "/api/oidc/revoke"),
        ("introspection_endpoint", "/api/oidc/introspect"),
    ] {
        assert_eq!(doc[key], format!("{issuer}{path}"), "{key}");
    }
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["backchannel_logout_supported"], true);
    let keys: Value = app.get("/api/oidc/jwks", None).await.json().await.unwrap();
    let algs: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert_eq!(algs, ["RS256", "ES256"]);
    for k in keys["keys"].as_array().unwrap() {
        assert!(
            k.get("d").is_none() && k.get("p").is_none(),
            "no private part: {k}"
        );
    }
    // Off, the provider is not there at all.
    let off = spawn_app().await;
    let res = off.get("/.well-known/openid-configuration", None).await;
    expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn an_app_signs_a_user_in_with_a_code_and_pkce_and_an_api_checks_the_token_offline() {
    let app = provider(vec![client("app", None, Consent::Implicit)]).await;
    let (cookie, code, verifier) = code_for(&app, "olive", "app").await;
    let tokens = exchange(&app, "app", &code, &verifier).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 300);
    let (header, id) = verify(&app, tokens["id_token"].as_str().unwrap(), Some("app")).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let me: Value = app.me(&cookie).await.json().await.unwrap();
    assert_eq!(id["sub"], me["user"]["id"]);
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["amr"], json!(["pwd"]));
    assert_eq!(id["preferred_username"], "olive");
    assert_eq!(id["email"], "olive@example.com");
    assert_eq!(id["groups"], json!(["user"]));
    let sessions: Value = app
        .get("/api/auth/sessions", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(id["sid"], sessions["sessions"][0]["id"]);
    assert!(id["auth_time"].as_u64().unwrap() <= id["iat"].as_u64().unwrap());
    // The access token is an RFC 9068 JWT an API checks with the JWKS alone.
    let access = tokens["access_token"].as_str().unwrap();
    let (header, at) = verify(&app, access, Some("app")).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(at["client_id"], "app");
    assert_eq!(at["scope"], "openid profile email groups");
    let info: Value = app
        .client
        .get(app.url("/api/oidc/userinfo"))
        .header(AUTHORIZATION, format!("Bearer {access}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], id["sub"]);
    assert_eq!(info["preferred_username"], "olive");
    // A refresh rotates the refresh token and keeps the user.
    let res = refresh(&app, "app", tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let next: Value = res.json().await.unwrap();
    assert_ne!(next["refresh_token"], tokens["refresh_token"]);
    let (_, again) = verify(&app, next["id_token"].as_str().unwrap(), Some("app")).await;
    assert_eq!(again["sub"], id["sub"]);
}

#[tokio::test]
async fn an_unknown_client_or_unregistered_redirect_is_shown_never_redirected() {
    let app = provider(vec![client("app", None, Consent::Implicit)]).await;
    let cookie = app.register_and_login("pat").await;
    let (_, challenge) = pkce();
    let mut wrong = request("app", &challenge);
    wrong[1] = ("redirect_uri", "http://127.0.0.1:9/cb/../evil");
    let mut prefix = request("app", &challenge);
    prefix[1] = ("redirect_uri", "http://127.0.0.1:9/cbx");
    let mut unknown = request("nobody", &challenge);
    unknown[1] = ("redirect_uri", "http://evil.example/cb");
    for params in [wrong, prefix, unknown] {
        let res = authorize(&app, Some(&cookie), &params).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{params:?}");
        assert!(res.headers().get(LOCATION).is_none(), "{params:?}");
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let page = res.text().await.unwrap();
        assert!(
            !page.contains("href=\"http"),
            "no link away from sessiond: {page}"
        );
    }
}

#[tokio::test]
async fn a_bad_request_from_a_known_app_goes_back_to_it_with_the_error() {
    let app = provider(vec![client("app", None, Consent::Implicit)]).await;
    let cookie = app.register_and_login("quinn").await;
    let (_, challenge) = pkce();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        // A public client without PKCE.
        (
            request("app", &challenge)
                .into_iter()
                .filter(|(k, _)| !k.starts_with("code_challenge"))
                .collect(),
            "invalid_request",
        ),
        // `plain` is not accepted.
        (
            request("app", &challenge)
                .into_iter()
                .map(|(k, v)| {
                    if k == "code_challenge_method" {
                        (k, "plain")
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            "invalid_request",
        ),
        (
            request("app", &challenge)
                .into_iter()
                .map(|(k, v)| {
                    if k == "response_type" {
                        (k, "token")
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            "unsupported_response_type",
        ),
        (
            request("app", &challenge)
                .into_iter()
                .map(|(k, v)| if k == "scope" { (k, "profile") } else { (k, v) })
                .collect(),
            "invalid_scope",
        ),
    ];
    for (params, error) in cases {
        let res = authorize(&app, Some(&cookie), &params).await;
        assert!(location(&res).starts_with(REDIRECT));
        let q = query_of(&res);
        assert_eq!(q["error"], error, "{params:?}");
        assert_eq!(q["state"], "st-1");
        assert!(!q.contains_key("code"));
    }
}

#[tokio::test]
async fn a_code_works_once_for_its_own_client_and_a_second_use_revokes_what_it_gave() {
    let app = provider(vec![
        client("app", None, Consent::Implicit),
        client("other", None, Consent::Implicit),
    ])
    .await;
    let (_, code, verifier) = code_for(&app, "rhea", "app").await;
    // Another client cannot use it (and it is spent).
    let res = try_exchange(&app, "other", &code, &verifier).await;
    assert_eq!(
        oauth_error(res, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
    let (_, code, verifier) = code_for(&app, "rhea2", "app").await;
    let tokens = exchange(&app, "app", &code, &verifier).await;
    // The same code again: refused, and the refresh token it gave ends.
    let res = try_exchange(&app, "app", &code, &verifier).await;
    assert_eq!(
        oauth_error(res, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
    refresh_refused(&app, "app", &tokens).await;
}

#[tokio::test]
async fn pkce_refuses_a_wrong_or_missing_verifier_and_a_code_past_its_minute() {
    let app = provider(vec![client("app", None, Consent::Implicit)]).await;
    let (_, code, verifier) = code_for(&app, "sol", "app").await;
    let wrong = format!("{verifier}x");
    for v in [Some(wrong.as_str()), None] {
        let (_, code, _) = code_for(&app, &format!("sol-{}", unique()), "app").await;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", "app"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        if let Some(v) = v {
            form.push(("code_verifier", v));
        }
        let res = token(&app, &form, None).await;
        assert_eq!(
            oauth_error(res, StatusCode::BAD_REQUEST).await,
            "invalid_grant",
            "{v:?}"
        );
    }
    // A code whose minute has passed, as the store would keep it then.
    use sessiond::store::{TicketKey, TicketKind};
    let key = TicketKey::Id(TicketKind::OidcCode, Sha256::digest(code.as_bytes()).into());
    let mut kept = app
        .store
        .take_ticket(&key)
        .await
        .unwrap()
        .expect("the code is stored");
    let left = kept.deadline_ms.saturating_sub(sessiond::store::now_ms());
    assert!(
        (50_000..=60_000).contains(&left),
        "a code lives a minute: {left} ms left"
    );
    kept.deadline_ms = sessiond::store::now_ms() - 1;
    app.store.put_ticket(&key, &kept).await.unwrap();
    let res = try_exchange(&app, "app", &code, &verifier).await;
    assert_eq!(
        oauth_error(res, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
}

#[tokio::test]
async fn a_refresh_token_used_twice_ends_its_family() {
    let app = provider(vec![client("app", None, Consent::Implicit)]).await;
    let (_, code, verifier) = code_for(&app, "tess", "app").await;
    let first = exchange(&app, "app", &code, &verifier).await;
    let old = first["refresh_token"].as_str().unwrap();
    let res = refresh(&app, "app", old).await;
    let second: Value = res.json().await.unwrap();
    let new = second["refresh_token"].as_str().unwrap();
    // The old one again: someone else has it. Both end.
    assert_eq!(
        oauth_error(refresh(&app, "app", old).await, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
    assert_eq!(
        oauth_error(refresh(&app, "app", new).await, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
    // A token that never was one of the family's ends nothing.
    let (_, code, verifier) = code_for(&app, "tess2", "app").await;
    let live = exchange(&app, "app", &code, &verifier).await;
    let live_rt = live["refresh_token"].as_str().unwrap();
    let forged = format!("{}.{}", live_rt.split('.').next().unwrap(), "A".repeat(43));
    assert_eq!(
        oauth_error(refresh(&app, "app", &forged).await, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
    assert_eq!(refresh(&app, "app", live_rt).await.status(), StatusCode::OK);
    // Garbage is refused the same way, with no 5xx.
    for junk in ["", "x", "a.b", &"A".repeat(5000)] {
        let res = refresh(&app, "app", junk).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{junk:.10}");
    }
}

#[tokio::test]
async fn refresh_tokens_die_with_the_session_however_it_ends() {
    let app = provider(vec![client("app", None, Consent::Implicit)]).await;
    // Signed out, revoked by an admin, a password change: each ends them.
    let (cookie, code, verifier) = code_for(&app, "uma", "app").await;
    let tokens = exchange(&app, "app", &code, &verifier).await;
    let userinfo = |access: String| {
        let req = app
            .client
            .get(app.url("/api/oidc/userinfo"))
            .bearer_auth(access);
        async move { req.send().await.unwrap() }
    };
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(userinfo(access.clone()).await.status(), StatusCode::OK);
    assert_eq!(app.logout(&cookie).await.status(), StatusCode::NO_CONTENT);
    refresh_refused(&app, "app", &tokens).await;
    // Its access token too, before its five minutes are up.
    assert_eq!(
        oauth_error(userinfo(access).await, StatusCode::UNAUTHORIZED).await,
        "invalid_token"
    );

    let (cookie, code, verifier) = code_for(&app, "uma2", "app").await;
    let tokens = exchange(&app, "app", &code, &verifier).await;
    let (admin, _) = app.admin().await;
    let id = app.id_of(&cookie).await;
    let res = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/admin/users/{id}/sessions"),
            &admin,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    refresh_refused(&app, "app", &tokens).await;

    // A password change ends every session of the user (the caller gets
    // a fresh one), and every token they gave apps.
    let (other, code, verifier) = code_for(&app, "uma3", "app").await;
    let first = exchange(&app, "app", &code, &verifier).await;
    let cookie = app.login_cookie("uma3").await;
    let (v, c) = pkce();
    let res = authorize(&app, Some(&cookie), &request("app", &c)).await;
    let second = exchange(&app, "app", &query_of(&res)["code"], &v).await;
    let res = app
        .post_json(
            "/api/auth/password",
            &json!({"currentPassword": PASSWORD, "newPassword": "another long password"}),
            Some(&cookie),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me(&other).await.status(), StatusCode::UNAUTHORIZED);
    for tokens in [first, second] {
        refresh_refused(&app, "app", &tokens).await;
    }
}

#[tokio::test]
async fn rp_logout_ends_the_session_only_for_a_valid_hint_and_a_registered_uri() {
    let app = provider(vec![client("app", None, Consent::Implicit)]).await;
    let (cookie, code, verifier) = code_for(&app, "vera", "app").await;
    let tokens = exchange(&app, "app", &code, &verifier).await;
    let hint = tokens["id_token"].as_str().unwrap().to_owned();
    let logout = |params: Vec<(&'static str, String)>| {
        let req = browser()
            .get(app.url("/api/oidc/logout"))
            .query(&params)
            .header(COOKIE, cookie.clone());
        async move { req.send().await.unwrap() }
    };
    // alg:none with the same claims, and a tampered payload.
    let parts: Vec<&str> = hint.split('.').collect();
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let mut claims: Value = serde_json::from_slice(&base64_decode(parts[1])).unwrap();
    claims["sub"] = json!("0000000000000001");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    // An access token is signed with the same keys and names the same
    // session: it is no ID token, and ends nothing.
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    for bad in [none, tampered, access, "not a token".into()] {
        let res = logout(vec![
            ("id_token_hint", bad.clone()),
            ("post_logout_redirect_uri", BYE.into()),
        ])
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad:.20}");
        assert!(res.headers().get(LOCATION).is_none());
        assert_eq!(
            app.me(&cookie).await.status(),
            StatusCode::OK,
            "nothing ended"
        );
    }
    // A valid hint with an unregistered URI: refused too.
    let res = logout(vec![
        ("id_token_hint", hint.clone()),
        ("post_logout_redirect_uri", "http://evil.example/".into()),
    ])
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    // Valid: the session ends at once and the browser goes back with state.
    let res = logout(vec![
        ("id_token_hint", hint),
        ("post_logout_redirect_uri", BYE.into()),
        ("state", "s-9".into()),
    ])
    .await;
    assert_eq!(location(&res), format!("{BYE}?state=s-9"));
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
    refresh_refused(&app, "app", &tokens).await;
}

#[tokio::test]
async fn without_an_id_token_the_user_is_asked_before_being_signed_out() {
    let app = provider(vec![client("app", None, Consent::Implicit)]).await;
    let (cookie, code, verifier) = code_for(&app, "wanda", "app").await;
    let tokens = exchange(&app, "app", &code, &verifier).await;
    let ask = |cookie: Option<String>, params: Vec<(&'static str, String)>| {
        let mut req = browser().get(app.url("/api/oidc/logout")).query(&params);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        async move { req.send().await.unwrap() }
    };
    let back = vec![
        ("client_id", "app".to_owned()),
        ("post_logout_redirect_uri", BYE.to_owned()),
        ("state", "s-1".to_owned()),
    ];
    // Asked, not signed out: a page with a form that posts the request back.
    let res = ask(Some(cookie.clone()), back.clone()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains("The app app asks to sign you out"), "{page}");
    assert!(
        page.contains(r#"action="/api/oidc/logout/confirm""#),
        "{page}"
    );
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    let fields: HashMap<String, String> = page
        .split("<input type=\"hidden\" ")
        .skip(1)
        .map(|input| {
            let attr = |name: &str| {
                let start = input.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                input[start..start + input[start..].find('"').unwrap()].replace("&amp;", "&")
            };
            (attr("name"), attr("value"))
        })
        .collect();
    assert_eq!(fields["client_id"], "app");
    let confirm = |cookie: &str, origin: Option<&str>, form: &HashMap<String, String>| {
        let mut req = browser()
            .post(app.url("/api/oidc/logout/confirm"))
            .header(COOKIE, cookie)
            .form(form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        async move { req.send().await.unwrap() }
    };
    // Another site cannot answer for the user.
    let res = confirm(&cookie, Some("http://evil.example"), &fields).await;
    expect_error(res, StatusCode::FORBIDDEN, "bad_origin").await;
    // The page shown for one session ends no other: that one is asked
    // about again.
    let other = app.login_cookie("wanda").await;
    let res = confirm(&other, None, &fields).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Sign out?"));
    assert_eq!(app.me(&other).await.status(), StatusCode::OK);
    // The user says yes: signed out, the cookie cleared, back to the app.
    let origin = format!("http://{}", app.addr);
    let res = confirm(&cookie, Some(&origin), &fields).await;
    assert_eq!(location(&res), format!("{BYE}?state=s-1"));
    assert!(set_cookie_of(&res).contains("Max-Age=0"));
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
    refresh_refused(&app, "app", &tokens).await;
    // Signed in to nothing: straight back. A URI of no named client, or
    // not the named one's: refused.
    assert_eq!(location(&ask(None, back).await), format!("{BYE}?state=s-1"));
    let stray = vec![("post_logout_redirect_uri", BYE.to_owned())];
    assert_eq!(ask(None, stray).await.status(), StatusCode::BAD_REQUEST);
    let wrong = vec![
        ("client_id", "app".to_owned()),
        (
            "post_logout_redirect_uri",
            "http://evil.example/".to_owned(),
        ),
    ];
    assert_eq!(
        ask(Some(other.clone()), wrong).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.me(&other).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_app_may_post_its_logout_request() {
    let app = provider(vec![client("app", None, Consent::Implicit)]).await;
    let (cookie, code, verifier) = code_for(&app, "wes", "app").await;
    let tokens = exchange(&app, "app", &code, &verifier).await;
    // From the app's own site, with the ID token it has; no cookie rides
    // along on a cross-site post, and none is needed.
    let res = browser()
        .post(app.url("/api/oidc/logout"))
        .header("origin", "http://127.0.0.1:9")
        .form(&[
            ("id_token_hint", tokens["id_token"].as_str().unwrap()),
            ("post_logout_redirect_uri", BYE),
            ("state", "s-2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), format!("{BYE}?state=s-2"));
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
    // Without a hint only the cookie says who leaves, and a cross-site
    // post has none: sent on as the same request by GET, which has it.
    let cookie = app.login_cookie("wes").await;
    let res = browser()
        .post(app.url("/api/oidc/logout"))
        .header("origin", "http://127.0.0.1:9")
        .form(&[("client_id", "app"), ("post_logout_redirect_uri", BYE)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(to.starts_with("/api/oidc/logout?"), "{to}");
    let res = browser()
        .get(app.url(&to))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Sign out?"));
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    // A parameter given twice is refused, as everywhere in OAuth.
    let res = browser()
        .post(app.url("/api/oidc/logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("state=a&state=b")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

#[tokio::test]
async fn a_confidential_client_authenticates_by_basic_or_form_and_bad_secrets_are_throttled() {
    let app = provider(vec![client("conf", Some(SECRET), Consent::Implicit)]).await;
    let form = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
        ]
    };
    // Basic.
    let cookie = app.register_and_login("wren").await;
    let code_of = |res: reqwest::Response| query_of(&res)["code"].clone();
    // A confidential client may leave PKCE out.
    let plain = [
        ("client_id", "conf"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
    ];
    let get_code = || async {
        let res = browser()
            .get(app.url("/api/oidc/authorize"))
            .query(&plain)
            .header(COOKIE, cookie.clone())
            .send()
            .await
            .unwrap();
        code_of(res)
    };
    let code = get_code().await;
    let f = form(&code);
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = token(&app, &pairs, Some(("conf", SECRET))).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The form.
    let code = get_code().await;
    let mut f = form(&code);
    f.push(("client_id", "conf".into()));
    f.push(("client_secret", SECRET.into()));
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(token(&app, &pairs, None).await.status(), StatusCode::OK);
    // No secret, or a wrong one: 401 invalid_client, Basic challenged.
    let code = get_code().await;
    let f = form(&code);
    let mut pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.push(("client_id", "conf"));
    assert_eq!(
        oauth_error(token(&app, &pairs, None).await, StatusCode::UNAUTHORIZED).await,
        "invalid_client"
    );
    pairs.pop();
    let res = token(
        &app,
        &pairs,
        Some(("conf", "a client secret nobody guessez")),
    )
    .await;
    assert!(res.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_eq!(
        oauth_error(res, StatusCode::UNAUTHORIZED).await,
        "invalid_client"
    );
    // Guessing is throttled; the right secret, known before, still works.
    let mut throttled = false;
    for i in 0..40 {
        let res = token(&app, &pairs, Some(("conf", &format!("guess {i}")))).await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(res.headers().contains_key("retry-after"));
            throttled = true;
            break;
        }
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert!(throttled, "40 wrong secrets in a row went unthrottled");
    assert_eq!(
        token(&app, &pairs, Some(("conf", SECRET))).await.status(),
        StatusCode::OK,
        "the client is not locked out"
    );
}

#[tokio::test]
async fn consent_once_is_asked_once_listed_on_the_account_and_revocable() {
    let app = provider(vec![client("app", None, Consent::Once)]).await;
    let cookie = app.register_and_login("xena").await;
    let (verifier, challenge) = pkce();
    let res = authorize(&app, Some(&cookie), &request("app", &challenge)).await;
    let to = location(&res);
    assert!(to.contains("/?oidc=") && to.ends_with("&consent=1"), "{to}");
    let id = request_id(&to);
    let view: Value = app
        .get(&format!("/api/oidc/consent?request={id}"), Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["clientId"], "app");
    assert_eq!(view["name"], "The app app");
    assert_eq!(
        view["scopes"],
        json!(["openid", "profile", "email", "groups"])
    );
    let res = answer_consent(&app, &cookie, &id, true).await;
    assert_eq!(res.status(), StatusCode::OK);
    let back: Value = res.json().await.unwrap();
    let to = url::Url::parse(back["redirect"].as_str().unwrap()).unwrap();
    let code = to
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens = exchange(&app, "app", &code, &verifier).await;
    // The answer was single use.
    let res = answer_consent(&app, &cookie, &id, true).await;
    expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
    // Asked once: the next sign-in goes straight back.
    let (_, challenge) = pkce();
    let res = authorize(&app, Some(&cookie), &request("app", &challenge)).await;
    assert!(location(&res).starts_with(REDIRECT));
    let apps: Value = app
        .get("/api/auth/apps", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(apps["apps"][0]["clientId"], "app");
    assert_eq!(apps["apps"][0]["activeGrants"], 1);
    // Revoked: the tokens end and the next sign-in asks again.
    let res = app
        .send(reqwest::Method::DELETE, "/api/auth/apps/app", &cookie, None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    refresh_refused(&app, "app", &tokens).await;
    let apps: Value = app
        .get("/api/auth/apps", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(apps["apps"], json!([]));
    let res = authorize(&app, Some(&cookie), &request("app", &challenge)).await;
    assert!(location(&res).ends_with("&consent=1"));
    let res = app
        .send(reqwest::Method::DELETE, "/api/auth/apps/app", &cookie, None)
        .await;
    expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
    // Both are in the user's security log.
    let log: Value = app
        .get("/api/auth/activity", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"oidc_consent") && kinds.contains(&"oidc_tokens_revoked"),
        "{kinds:?}"
    );
    // Declining sends the app access_denied.
    let res = authorize(&app, Some(&cookie), &request("app", &challenge)).await;
    let id = request_id(&location(&res));
    let res = answer_consent(&app, &cookie, &id, false).await;
    let back: Value = res.json().await.unwrap();
    assert!(back["redirect"]
        .as_str()
        .unwrap()
        .contains("error=access_denied"));
}

#[tokio::test]
async fn prompt_and_max_age_send_the_user_to_sign_in_or_the_app_an_error() {
    let app = provider(vec![
        client("app", None, Consent::Implicit),
        client("ask", None, Consent::Always),
    ])
    .await;
    let (_, challenge) = pkce();
    // Nobody signed in.
    let res = authorize(&app, None, &request("app", &challenge)).await;
    let to = location(&res);
    assert!(
        to.starts_with(&format!("http://{}/?oidc=", app.addr)) && to.ends_with("&login=1"),
        "{to}"
    );
    let mut silent = request("app", &challenge);
    silent.push(("prompt", "none"));
    assert_eq!(
        query_of(&authorize(&app, None, &silent).await)["error"],
        "login_required"
    );
    // Signed in, but the app asks for a fresh sign-in.
    let cookie = app.register_and_login("yara").await;
    let mut login = request("app", &challenge);
    login.push(("prompt", "login"));
    let res = authorize(&app, Some(&cookie), &login).await;
    let to = location(&res);
    assert!(to.ends_with("&login=1"), "{to}");
    // The page signs in again and resumes the request: a code.
    let id = request_id(&to);
    let fresh = app.login_cookie("yara").await;
    let res = authorize(&app, Some(&fresh), &[("resume", &id)]).await;
    assert!(query_of(&res).contains_key("code"));
    let mut aged = request("app", &challenge);
    aged.push(("max_age", "0"));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(location(&authorize(&app, Some(&fresh), &aged).await).ends_with("&login=1"));
    // Consent "always", silently: the app hears consent_required.
    let mut ask = request("ask", &challenge);
    ask.push(("prompt", "none"));
    assert_eq!(
        query_of(&authorize(&app, Some(&fresh), &ask).await)["error"],
        "consent_required"
    );
}

/// The page's sign-in from a browser that already has `cookie`.
async fn sign_in_with(app: &TestApp, name: &str, cookie: &str) -> reqwest::Response {
    app.post_json(
        "/api/auth/login",
        &json!({"username": name, "password": PASSWORD}),
        Some(cookie),
    )
    .await
}

/// The user's answer on the consent screen for the waiting request `id`.
async fn answer_consent(app: &TestApp, cookie: &str, id: &str, approve: bool) -> reqwest::Response {
    app.post_json(
        "/api/oidc/consent",
        &json!({"request": id, "approve": approve}),
        Some(cookie),
    )
    .await
}

/// The request id in a redirect to the page (`/?oidc=ID&...`).
fn request_id(to: &str) -> String {
    to.split("oidc=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn signing_in_again_for_one_app_keeps_the_others_signed_in() {
    let (url, mut told) = backchannel_receiver().await;
    let mut other_app = client("wiki", None, Consent::Implicit);
    other_app.backchannel_logout_uri = url;
    let app = provider(vec![client("bank", None, Consent::Implicit), other_app]).await;
    // Signed in to the wiki through sessiond.
    let (cookie, code, verifier) = code_for(&app, "zeno", "wiki").await;
    let wiki = exchange(&app, "wiki", &code, &verifier).await;
    let (_, first) = verify(&app, wiki["id_token"].as_str().unwrap(), Some("wiki")).await;
    // The bank wants a fresh sign-in; the page signs zeno in again with
    // the cookie it has, which ends that session for a new one.
    let (bank_verifier, challenge) = pkce();
    let mut login = request("bank", &challenge);
    login.push(("prompt", "login"));
    let to = location(&authorize(&app, Some(&cookie), &login).await);
    assert!(to.ends_with("&login=1"), "{to}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let res = sign_in_with(&app, "zeno", &cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    let fresh = cookie_of(&res);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
    let res = authorize(&app, Some(&fresh), &[("resume", &request_id(&to))]).await;
    let bank = exchange(&app, "bank", &query_of(&res)["code"], &bank_verifier).await;
    // The wiki was not signed out: no logout token, and its refresh
    // token works, under the sid it knows, with the new sign-in's time.
    let quiet = tokio::time::timeout(std::time::Duration::from_secs(1), told.recv()).await;
    assert!(quiet.is_err(), "the wiki was told of a logout");
    let res = refresh(&app, "wiki", wiki["refresh_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let wiki: Value = res.json().await.unwrap();
    let (_, again) = verify(&app, wiki["id_token"].as_str().unwrap(), Some("wiki")).await;
    assert_eq!(again["sid"], first["sid"]);
    assert!(again["auth_time"].as_u64() > first["auth_time"].as_u64());
    let apps: Value = app
        .get("/api/auth/apps", Some(&fresh))
        .await
        .json()
        .await
        .unwrap();
    let grants: Vec<_> = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["clientId"].as_str().unwrap(),
                a["activeGrants"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(grants, [("wiki", 1), ("bank", 1)]);
    // Signing out from the wiki with the ID token it has ends the new
    // session: both apps' tokens end and the wiki hears its own sid.
    let res = browser()
        .get(app.url("/api/oidc/logout"))
        .query(&[("id_token_hint", wiki["id_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.me(&fresh).await.status(), StatusCode::UNAUTHORIZED);
    let (_, logout) = next_logout_token(&app, &mut told, "wiki").await;
    assert_eq!(logout["sid"], first["sid"]);
    for (client, tokens) in [("wiki", &wiki), ("bank", &bank)] {
        refresh_refused(&app, client, tokens).await;
    }
}

#[tokio::test]
async fn with_a_second_factor_the_old_session_lasts_until_the_new_one_is_made() {
    let app = provider(vec![client("wiki", None, Consent::Implicit)]).await;
    let (cookie, code, verifier) = code_for(&app, "vic", "wiki").await;
    let wiki = exchange(&app, "wiki", &code, &verifier).await;
    let totp = crate::mfa::enrol_totp(&app, &cookie).await;
    let res = sign_in_with(&app, "vic", &cookie).await;
    let body: Value = res.json().await.unwrap();
    let pending = body["mfa"]["pending"].as_str().unwrap();
    // Halfway, vic is still signed in as before: giving up here loses nothing.
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    let res = app
        .post_json(
            "/api/auth/mfa/totp",
            &json!({"pending": pending, "code": totp.code(1)}),
            Some(&cookie),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let fresh = cookie_of(&res);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&fresh).await.status(), StatusCode::OK);
    let res = refresh(&app, "wiki", wiki["refresh_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK, "the wiki kept its tokens");
}

#[tokio::test]
async fn a_session_that_has_ended_passes_nothing_on_to_the_next_sign_in() {
    // Ended by its idle timeout: its cookie no longer carries anything over.
    let app = spawn_app_with(|c| {
        c.oidc_provider.enabled = true;
        c.oidc_provider.clients = vec![client("wiki", None, Consent::Implicit)];
        c.session.idle_timeout = std::time::Duration::from_secs(1);
        c.session.touch_interval = std::time::Duration::from_millis(100);
    })
    .await;
    let (cookie, code, verifier) = code_for(&app, "ines", "wiki").await;
    let wiki = exchange(&app, "wiki", &code, &verifier).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
    let res = sign_in_with(&app, "ines", &cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    refresh_refused(&app, "wiki", &wiki).await;
}

#[tokio::test]
async fn a_sign_in_with_someone_elses_cookie_takes_none_of_their_apps() {
    let app = provider(vec![client("wiki", None, Consent::Implicit)]).await;
    let (planted, code, verifier) = code_for(&app, "mallory", "wiki").await;
    let hers = exchange(&app, "wiki", &code, &verifier).await;
    app.register("yann").await;
    let res = sign_in_with(&app, "yann", &planted).await;
    assert_eq!(res.status(), StatusCode::OK);
    let his = cookie_of(&res);
    assert_eq!(app.me(&planted).await.status(), StatusCode::UNAUTHORIZED);
    let apps: Value = app
        .get("/api/auth/apps", Some(&his))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(apps["apps"], json!([]));
    refresh_refused(&app, "wiki", &hers).await;
}

#[tokio::test]
async fn introspection_and_revocation_answer_a_confidential_client() {
    let app = provider(vec![
        client("conf", Some(SECRET), Consent::Implicit),
        client("pub", None, Consent::Implicit),
    ])
    .await;
    let cookie = app.register_and_login("zoe").await;
    let res = browser()
        .get(app.url("/api/oidc/authorize"))
        .query(&[
            ("client_id", "conf"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid profile"),
        ])
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    let code = query_of(&res)["code"].clone();
    let res = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
        Some(("conf", SECRET)),
    )
    .await;
    let tokens: Value = res.json().await.unwrap();
    let introspect = |t: String, who: Option<(&'static str, &'static str)>| {
        let mut req = app
            .client
            .post(app.url("/api/oidc/introspect"))
            .form(&[("token", t)]);
        if let Some((id, s)) = who {
            req = req.basic_auth(id, Some(s));
        }
        async move { req.send().await.unwrap() }
    };
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    let at: Value = introspect(access.clone(), Some(("conf", SECRET)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(at["active"], true);
    assert_eq!(at["client_id"], "conf");
    assert_eq!(at["scope"], "openid profile");
    let r: Value = introspect(rt.clone(), Some(("conf", SECRET)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["token_type"], "refresh_token");
    let junk: Value = introspect("junk".into(), Some(("conf", SECRET)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(junk, json!({"active": false}));
    // Only for a confidential client that proves itself.
    let res = introspect(access, None).await;
    assert_eq!(
        oauth_error(res, StatusCode::UNAUTHORIZED).await,
        "invalid_client"
    );
    // Revoked, the refresh token is inactive and refreshes nothing.
    let res = app
        .client
        .post(app.url("/api/oidc/revoke"))
        .basic_auth("conf", Some(SECRET))
        .form(&[("token", rt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let r: Value = introspect(rt.clone(), Some(("conf", SECRET)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["active"], false);
    let res = token(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        Some(("conf", SECRET)),
    )
    .await;
    assert_eq!(
        oauth_error(res, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
}

#[tokio::test]
async fn an_es256_client_gets_es256_id_tokens_checked_against_the_same_jwks() {
    let mut es = client("es", None, Consent::Implicit);
    es.id_token_signed_response_alg = SigningAlg::ES256;
    let app = provider(vec![es]).await;
    let (_, code, verifier) = code_for(&app, "abe", "es").await;
    let tokens = exchange(&app, "es", &code, &verifier).await;
    let (header, _) = verify(&app, tokens["id_token"].as_str().unwrap(), Some("es")).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let before: JwkSet = app.get("/api/oidc/jwks", None).await.json().await.unwrap();
    assert_eq!(before.keys.len(), 2);
}

#[tokio::test]
async fn tokens_and_requests_that_are_not_ours_get_the_spec_errors_and_no_5xx() {
    let app = provider(vec![client("app", None, Consent::Implicit)]).await;
    type Case<'a> = (Vec<(&'a str, &'a str)>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (vec![], StatusCode::BAD_REQUEST, "invalid_request"),
        (
            vec![("grant_type", "password"), ("client_id", "app")],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", "nobody"),
                ("code", "x"),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            vec![("grant_type", "authorization_code"), ("client_id", "app")],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", "app"),
                ("code", "made-up"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
    ];
    for (form, status, error) in cases {
        assert_eq!(
            oauth_error(token(&app, &form, None).await, status).await,
            error,
            "{form:?}"
        );
    }
    // A parameter twice is a malformed request.
    let res = app
        .post_raw(
            "/api/oidc/token",
            Some("application/x-www-form-urlencoded"),
            b"grant_type=refresh_token&grant_type=refresh_token".to_vec(),
        )
        .await;
    assert_eq!(
        oauth_error(res, StatusCode::BAD_REQUEST).await,
        "invalid_request"
    );
    // Userinfo refuses what is not an access token of ours.
    for bearer in ["", "Bearer junk", "Bearer eyJhbGciOiJub25lIn0.e30."] {
        let mut req = app.client.get(app.url("/api/oidc/userinfo"));
        if !bearer.is_empty() {
            req = req.header(AUTHORIZATION, bearer);
        }
        let res = req.send().await.unwrap();
        assert!(res.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert_eq!(
            oauth_error(res, StatusCode::UNAUTHORIZED).await,
            "invalid_token"
        );
    }
}

#[tokio::test]
async fn check_names_a_grant_its_session_would_not_end() {
    use sessiond::store::{TicketKey, TicketKind};
    let app = provider(vec![client("app", None, Consent::Implicit)]).await;
    let (_, code, verifier) = code_for(&app, "cyd", "app").await;
    exchange(&app, "app", &code, &verifier).await;
    assert_eq!(
        sessiond::oidc::check_grants(&app.store).await.unwrap(),
        Vec::<String>::new()
    );
    // The session's list of grants lost (a damaged store).
    for (key, _) in app.store.lasting_tickets().await.unwrap() {
        if matches!(key, TicketKey::Id(TicketKind::OidcSession, _)) {
            app.store.take_ticket(&key).await.unwrap();
        }
    }
    let problems = sessiond::oidc::check_grants(&app.store).await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("not listed under its session"),
        "{problems:?}"
    );
}

/// A logout token receiver: the bodies POSTed to it, as they come.
/// The next logout token the back-channel endpoint gets (within 10 s),
/// checked as the app `aud` checks it.
async fn next_logout_token(
    app: &TestApp,
    told: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    aud: &str,
) -> (jsonwebtoken::Header, Value) {
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), told.recv())
        .await
        .expect("a logout token within 10 s")
        .unwrap();
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    verify(app, &form["logout_token"], Some(aud)).await
}

async fn backchannel_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    backchannel_receiver_refusing(0).await
}

/// A back-channel endpoint that answers its first `refuse` posts 503
/// (each still reported), then 200.
async fn backchannel_receiver_refusing(
    refuse: usize,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (tx, refused) = (tx.clone(), refused.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        let _ = tx.send(text[end + 4..end + 4 + length].to_owned());
                        let status =
                            if refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < refuse {
                                "503 Service Unavailable"
                            } else {
                                "200 OK"
                            };
                        let answer = format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        );
                        let _ = stream.write_all(answer.as_bytes()).await;
                        return;
                    }
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn instances_on_one_redis_share_keys_and_whichever_ends_the_session_tells_the_app() {
    let (url, mut tokens) = backchannel_receiver().await;
    let mut app_client = client("app", None, Consent::Implicit);
    app_client.backchannel_logout_uri = url;
    // Instances behind one name: one issuer for all.
    let app = spawn_app_with(|c| {
        c.oidc_provider.enabled = true;
        c.oidc_provider.issuer = "https://login.example.com".into();
        c.oidc_provider.clients = vec![app_client];
    })
    .await;
    // On sled one process is the whole server: the story is the same on it.
    let twin = app.twin().await;
    let other = twin.as_ref().unwrap_or(&app);
    let (cookie, code, verifier) = code_for(&app, "dot", "app").await;
    let keys: Value = app.get("/api/oidc/jwks", None).await.json().await.unwrap();
    let theirs: Value = other
        .get("/api/oidc/jwks", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys, theirs, "every instance publishes the same keys");
    // The code made on one instance is exchanged on the other.
    let res = try_exchange(other, "app", &code, &verifier).await;
    assert_eq!(res.status(), StatusCode::OK);
    let issued: Value = res.json().await.unwrap();
    let (_, id) = verify(&app, issued["id_token"].as_str().unwrap(), Some("app")).await;
    // Signed out on the other instance: the app hears it once.
    assert_eq!(other.logout(&cookie).await.status(), StatusCode::NO_CONTENT);
    let (header, logout) = next_logout_token(&app, &mut tokens, "app").await;
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    assert_eq!(logout["sid"], id["sid"]);
    assert_eq!(logout["sub"], id["sub"]);
    assert!(logout["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(logout.get("nonce").is_none());
    let again = tokio::time::timeout(std::time::Duration::from_secs(1), tokens.recv()).await;
    assert!(again.is_err(), "told once, not once per instance");
    refresh_refused(&app, "app", &issued).await;
}

#[tokio::test]
async fn removing_a_client_ends_its_grants_and_consents_and_nobody_elses() {
    let app = provider(vec![
        client("gone", None, Consent::Once),
        client("kept", None, Consent::Implicit),
    ])
    .await;
    let cookie = app.register_and_login("eve").await;
    let (verifier, challenge) = pkce();
    let res = authorize(&app, Some(&cookie), &request("gone", &challenge)).await;
    let id = request_id(&location(&res));
    let res = answer_consent(&app, &cookie, &id, true).await;
    let back: Value = res.json().await.unwrap();
    let to = url::Url::parse(back["redirect"].as_str().unwrap()).unwrap();
    let code = to
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let gone = exchange(&app, "gone", &code, &verifier).await;
    let (v, c) = pkce();
    let res = authorize(&app, Some(&cookie), &request("kept", &c)).await;
    let kept = exchange(&app, "kept", &query_of(&res)["code"], &v).await;
    let removed = sessiond::oidc::remove_client(&app.store, "gone")
        .await
        .unwrap();
    assert_eq!(removed, (1, 1));
    refresh_refused(&app, "gone", &gone).await;
    assert_eq!(
        refresh(&app, "kept", kept["refresh_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    let apps: Value = app
        .get("/api/auth/apps", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["clientId"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kept"]);
    assert_eq!(
        sessiond::oidc::remove_client(&app.store, "gone")
            .await
            .unwrap(),
        (0, 0)
    );
}

#[tokio::test]
async fn a_logout_token_the_app_refuses_is_tried_again() {
    let (url, mut told) = backchannel_receiver_refusing(2).await;
    let mut wiki = client("wiki", None, Consent::Implicit);
    wiki.backchannel_logout_uri = url;
    let app = provider(vec![wiki]).await;
    let (cookie, code, verifier) = code_for(&app, "quinn", "wiki").await;
    exchange(&app, "wiki", &code, &verifier).await;
    assert_eq!(app.logout(&cookie).await.status(), StatusCode::NO_CONTENT);
    // Refused twice (503), taken the third time: the same token each time.
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let body = tokio::time::timeout(std::time::Duration::from_secs(20), told.recv())
            .await
            .expect("tried again within 20 s")
            .unwrap();
        bodies.push(body);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]));
}

#[tokio::test]
async fn a_refresh_token_lives_no_longer_than_its_session() {
    use sessiond::store::{now_ms, TicketKey, TicketKind};
    // Refresh tokens may live 30 days; sessions end a day after sign-in.
    let app = spawn_app_with(|c| {
        c.oidc_provider.enabled = true;
        c.oidc_provider.clients = vec![client("app", None, Consent::Implicit)];
        c.session.absolute_timeout = std::time::Duration::from_secs(24 * 60 * 60);
    })
    .await;
    let (_, code, verifier) = code_for(&app, "rhea", "app").await;
    let tokens = exchange(&app, "app", &code, &verifier).await;
    let res = refresh(&app, "app", tokens["refresh_token"].as_str().unwrap()).await;
    let tokens: Value = res.json().await.unwrap();
    let id = tokens["refresh_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    let key = TicketKey::Id(TicketKind::OidcGrant, base64_decode(id).try_into().unwrap());
    let grant = app.store.ticket(&key).await.unwrap().expect("the grant");
    let day = 24 * 60 * 60 * 1000;
    assert!(
        grant.deadline_ms <= now_ms() + day,
        "the grant is kept past its session: {} ms left",
        grant.deadline_ms - now_ms()
    );
    assert!(grant.deadline_ms > now_ms() + day - 60_000);
}
