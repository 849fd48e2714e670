//! Second factors, as a user and an attacker meet them: TOTP enrolled and
//! asked for after the password, each code accepted once, recovery codes,
//! the pending sign-in between the two steps, throttled guesses, fresh
//! proofs for changes, and what operators and proxies see.

use reqwest::header::{SET_COOKIE, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use totp_rs::Totp;

use crate::helpers::{cookie_of, expect_error, spawn_app, spawn_app_with, TestApp, PASSWORD};

/// The authenticator app: reads the enrolment's `otpauth://` URI, as any
/// app does, and makes codes from it.
pub(crate) struct App(Totp, pub(crate) String);

impl App {
    /// The code `steps` steps from now (one either way is still accepted).
    pub(crate) fn code(&self, steps: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        self.0.generate((now + 30 * steps) as u64).to_string()
    }

    /// A code no step near now has.
    pub(crate) fn wrong(&self) -> String {
        let near: Vec<String> = (-3..=3).map(|s| self.code(s)).collect();
        [
            "000000", "111111", "222222", "333333", "444444", "555555", "666666", "777777",
        ]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .unwrap()
        .to_owned()
    }
}

/// Enrols TOTP for the session `cookie`, confirmed with the current code;
/// returns the app (the confirming code is in `App::used`).
pub(crate) async fn enrol_totp(app: &TestApp, cookie: &str) -> App {
    let res = app
        .send(Method::POST, "/api/auth/mfa/totp/enrol", cookie, None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let uri = body["otpauthUri"].as_str().unwrap();
    assert!(body["qrSvg"].as_str().unwrap().contains("<svg"));
    assert!(uri.contains(body["secret"].as_str().unwrap()));
    let mut totp = App(
        Totp::from_url(uri).expect("an authenticator app reads the URI"),
        String::new(),
    );
    totp.1 = totp.code(0);
    let res = app
        .send(
            Method::POST,
            "/api/auth/mfa/totp/confirm",
            cookie,
            Some(json!({"code": totp.1})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    totp
}

/// The password step of a user with a factor: the pending token.
pub(crate) async fn pending(app: &TestApp, name: &str) -> (String, Vec<String>) {
    let res = app.login(name, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get(SET_COOKIE).is_none(), "no session yet");
    let body: Value = res.json().await.unwrap();
    assert!(body.get("user").is_none(), "{body}");
    assert_eq!(body["mfa"]["expiresIn"], 300);
    let methods = body["mfa"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    (body["mfa"]["pending"].as_str().unwrap().to_owned(), methods)
}

pub(crate) async fn step(
    app: &TestApp,
    route: &str,
    pending: &str,
    code: &str,
) -> reqwest::Response {
    app.post_json(
        &format!("/api/auth/mfa/{route}"),
        &json!({"pending": pending, "code": code}),
        None,
    )
    .await
}

#[tokio::test]
async fn totp_is_asked_for_after_the_password_and_each_code_is_accepted_once() {
    let app = spawn_app().await;
    let first = app.register_and_login("alice").await;
    let list: Value = app
        .get("/api/auth/mfa", Some(&first))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["factors"], json!([]));
    let totp = enrol_totp(&app, &first).await;
    let list: Value = app
        .get("/api/auth/mfa", Some(&first))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["factors"][0]["kind"], "totp");

    // A wrong password says nothing about factors.
    let res = app.login("alice", "not the password at all").await;
    let text = expect_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert!(!text.contains("mfa"), "{text}");

    let (token, methods) = pending(&app, "alice").await;
    assert_eq!(methods, ["totp"]);
    // The code that confirmed the enrolment was used: refused.
    let res = step(&app, "totp", &token, &totp.1).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    // The next step's code is accepted (one step of skew), and gives a
    // new session made with two factors.
    let res = step(&app, "totp", &token, &totp.code(1)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let second = cookie_of(&res);
    assert_ne!(second, first);
    let me: Value = app.me(&second).await.json().await.unwrap();
    assert_eq!(me["session"]["amr"], json!(["pwd", "otp"]));
    assert!(me["session"]["authTime"].is_string());
    let me_first: Value = app.me(&first).await.json().await.unwrap();
    assert_eq!(me_first["session"]["amr"], json!(["pwd"]));
    assert_ne!(me["session"]["id"], me_first["session"]["id"]);

    // The pending token is used up, and that code too.
    let res = step(&app, "totp", &token, &totp.code(1)).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    let (token, _) = pending(&app, "alice").await;
    let res = step(&app, "totp", &token, &totp.code(1)).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;

    // Forward auth: ?mfa=1 lets only the two-factor session through.
    let res = app.get("/api/auth/verify?mfa=1", Some(&second)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["x-auth-amr"], "pwd,otp");
    let res = app.get("/api/auth/verify?mfa=1", Some(&first)).await;
    expect_error(res, StatusCode::FORBIDDEN, "mfa_required").await;
    let res = app.get("/api/auth/verify", Some(&first)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(app.metric("sessiond_mfa_total{result=\"success\"}").await >= 1);
}

async fn left(app: &TestApp, cookie: &str) -> u64 {
    let list: Value = app
        .get("/api/auth/mfa", Some(cookie))
        .await
        .json()
        .await
        .unwrap();
    list["recoveryCodesLeft"].as_u64().unwrap()
}

#[tokio::test]
async fn recovery_codes_are_shown_once_used_once_and_a_new_batch_voids_the_old() {
    let app = spawn_app().await;
    let cookie = app.register_and_login("bob").await;
    // Nothing to recover yet.
    let res = app
        .send(Method::POST, "/api/auth/mfa/recovery", &cookie, None)
        .await;
    expect_error(res, StatusCode::CONFLICT, "mfa_not_enabled").await;
    enrol_totp(&app, &cookie).await;
    let res = app
        .send(Method::POST, "/api/auth/mfa/recovery", &cookie, None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let codes: Vec<String> = res.json::<Value>().await.unwrap()["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    assert_eq!(left(&app, &cookie).await, 10);

    let (token, methods) = pending(&app, "bob").await;
    assert_eq!(methods, ["totp", "recovery"]);
    let res = step(&app, "recovery", &token, &codes[0]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let recovered = cookie_of(&res);
    let me: Value = app.me(&recovered).await.json().await.unwrap();
    assert_eq!(me["session"]["amr"], json!(["pwd", "otp"]));
    // Used once: refused the second time.
    let (token, _) = pending(&app, "bob").await;
    let res = step(&app, "recovery", &token, &codes[0]).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    // Typed loosely (upper case, spaces for dashes) it still counts.
    let loose = codes[1].to_uppercase().replace('-', " ");
    let res = step(&app, "recovery", &token, &loose).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(left(&app, &cookie).await, 8);

    // A new batch: the old codes are void.
    let res = app
        .send(Method::POST, "/api/auth/mfa/recovery", &cookie, None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (token, _) = pending(&app, "bob").await;
    let res = step(&app, "recovery", &token, &codes[2]).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    assert_eq!(left(&app, &cookie).await, 10);
}

#[tokio::test]
async fn the_pending_sign_in_is_bound_to_its_client_and_to_the_latest_password_step() {
    let app = spawn_app().await;
    let cookie = app.register_and_login("carol").await;
    let totp = enrol_totp(&app, &cookie).await;
    let (older, _) = pending(&app, "carol").await;
    let (newer, _) = pending(&app, "carol").await;
    // A fresh password step voids the pending sign-in before it.
    let res = step(&app, "totp", &older, &totp.code(1)).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    // Another client with the token gets nowhere.
    let res = app
        .client
        .post(app.url("/api/auth/mfa/totp"))
        .header(USER_AGENT, "somebody else's browser")
        .json(&json!({"pending": newer, "code": totp.code(1)}))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    // Forged and malformed tokens: the same answer.
    let user = newer.split('.').next().unwrap();
    for forged in [
        format!("{user}.{}", "ab".repeat(32)),
        "not a token".into(),
        String::new(),
    ] {
        let res = step(&app, "totp", &forged, &totp.code(1)).await;
        expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    }
    // The pending token is no session.
    let res = app.me(&format!("connect.sid={newer}")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = step(&app, "totp", &newer, &totp.code(1)).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn second_factor_guesses_are_throttled_per_account_until_an_admin_unlocks() {
    let app = spawn_app().await;
    let cookie = app.register_and_login("dave").await;
    let totp = enrol_totp(&app, &cookie).await;
    let id = app.id_of(&cookie).await;
    let (token, _) = pending(&app, "dave").await;
    let wrong = totp.wrong();
    for _ in 0..5 {
        let res = step(&app, "totp", &token, &wrong).await;
        expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    }
    // Even the right code waits now.
    let res = step(&app, "totp", &token, &totp.code(1)).await;
    assert!(res.headers().contains_key("retry-after"));
    expect_error(res, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    assert!(app.metric("sessiond_mfa_total{result=\"throttled\"}").await >= 1);
    assert_eq!(
        app.metric("sessiond_mfa_total{result=\"failure\"}").await,
        5
    );
    let (admin, _) = app.admin().await;
    let res = app
        .send(
            Method::POST,
            &format!("/api/admin/users/{id}/unlock"),
            &admin,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = step(&app, "totp", &token, &totp.code(1)).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn changing_factors_needs_a_fresh_proof_and_removing_one_ends_the_other_sessions() {
    let app = spawn_app_with(|c| c.auth.reauth_window = std::time::Duration::from_secs(2)).await;
    let cookie = app.register_and_login("erin").await;
    let totp = enrol_totp(&app, &cookie).await;
    let (token, _) = pending(&app, "erin").await;
    let other = cookie_of(&step(&app, "totp", &token, &totp.code(1)).await);
    let list: Value = app
        .get("/api/auth/mfa", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    let factor = list["factors"][0]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    let remove = |cookie: String| {
        let path = format!("/api/auth/mfa/{factor}");
        let app = &app;
        async move { app.send(Method::DELETE, &path, &cookie, None).await }
    };
    expect_error(
        remove(cookie.clone()).await,
        StatusCode::FORBIDDEN,
        "reauth_required",
    )
    .await;
    let res = app
        .send(Method::POST, "/api/auth/mfa/recovery", &cookie, None)
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "reauth_required").await;
    let res = app
        .send(
            Method::POST,
            "/api/auth/reauth",
            &cookie,
            Some(json!({"password": "wrong password!!"})),
        )
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let res = app
        .send(
            Method::POST,
            "/api/auth/reauth",
            &cookie,
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = remove(cookie.clone()).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_error(
        remove(cookie.clone()).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // The other session ended; this one goes on; the password alone
    // signs in again.
    assert_eq!(app.me(&other).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    let res = app.login("erin", PASSWORD).await;
    assert!(res.headers().get(SET_COOKIE).is_some());
}

#[tokio::test]
async fn an_admin_sees_and_resets_a_users_factors() {
    let app = spawn_app().await;
    let cookie = app.register_and_login("frank").await;
    enrol_totp(&app, &cookie).await;
    let id = app.id_of(&cookie).await;
    let path = format!("/api/admin/users/{id}/mfa");
    let res = app.send(Method::GET, &path, &cookie, None).await;
    expect_error(res, StatusCode::FORBIDDEN, "forbidden").await;
    let (admin, _) = app.admin().await;
    let seen: Value = app
        .send(Method::GET, &path, &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["factors"][0]["kind"], "totp");
    assert!(seen.to_string().find("secret").is_none(), "{seen}");
    let res = app.send(Method::DELETE, &path, &admin, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["revoked"], 1);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
    let res = app.login("frank", PASSWORD).await;
    assert!(
        res.headers().get(SET_COOKIE).is_some(),
        "password alone again"
    );
    let res = app
        .send(
            Method::GET,
            "/api/admin/users/00000000000000ff/mfa",
            &admin,
            None,
        )
        .await;
    expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn require_mfa_sends_a_user_without_a_factor_to_enrolment_and_nowhere_else() {
    let app = spawn_app_with(|c| c.auth.require_mfa = sessiond::config::RequireMfa::All).await;
    let cookie = app.register_and_login("gina").await;
    let res = app.get("/api/auth/sessions", Some(&cookie)).await;
    expect_error(res, StatusCode::FORBIDDEN, "mfa_enrolment_required").await;
    let res = app.get("/api/auth/verify", Some(&cookie)).await;
    expect_error(res, StatusCode::FORBIDDEN, "mfa_enrolment_required").await;
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    let list: Value = app
        .get("/api/auth/mfa", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["required"], true);
    enrol_totp(&app, &cookie).await;
    assert_eq!(
        app.get("/api/auth/sessions", Some(&cookie)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn two_instances_accept_a_code_once_and_count_guesses_together() {
    let a = spawn_app().await;
    let Some(b) = a.twin().await else {
        println!("skipped: two instances need the Redis backend (SESSIOND_TEST_BACKEND=redis)");
        return;
    };
    let cookie = a.register_and_login("hank").await;
    let totp = enrol_totp(&a, &cookie).await;
    // The same pending token and code on both at once: one session.
    let (token, _) = pending(&a, "hank").await;
    let code = totp.code(1);
    let (ra, rb) = tokio::join!(
        step(&a, "totp", &token, &code),
        step(&b, "totp", &token, &code)
    );
    let oks = [ra.status(), rb.status()]
        .iter()
        .filter(|s| **s == StatusCode::OK)
        .count();
    assert_eq!(oks, 1, "{} {}", ra.status(), rb.status());
    // Used on one, refused on the other.
    let (token, _) = pending(&b, "hank").await;
    let res = step(&b, "totp", &token, &code).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    // Guesses on both count against one limit (5): the racer that lost
    // and the replay above were the first two.
    let wrong = totp.wrong();
    for app in [&a, &b, &a] {
        let res = step(app, "totp", &token, &wrong).await;
        expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    }
    let res = step(&b, "totp", &token, &totp.code(-1)).await;
    expect_error(res, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
}

/// An assertion as a browser would send it, for a challenge of our
/// choosing, signed by no key sessiond knows.
fn forged_assertion(challenge: &str) -> Value {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let client_data = json!({
        "type": "webauthn.get", "challenge": challenge, "origin": "http://localhost",
    });
    json!({
        "id": b64(b"no such key"), "rawId": b64(b"no such key"), "type": "public-key",
        "response": {
            "clientDataJSON": b64(client_data.to_string().as_bytes()),
            "authenticatorData": b64(&[0; 37]), "signature": b64(&[1; 64]),
            "userHandle": b64(b"sessiond\0\0\0\0\0\0\0\x01"),
        },
        "clientExtensionResults": {},
    })
}

#[tokio::test]
async fn key_ceremonies_refuse_what_no_registered_key_signed() {
    let app = spawn_app_with(|c| c.auth.reauth_window = std::time::Duration::from_secs(2)).await;
    let cookie = app.register_and_login("kim").await;

    // Registration: options for the browser, bound to this site.
    let res = app
        .send(
            Method::POST,
            "/api/auth/mfa/webauthn/register/start",
            &cookie,
            Some(json!({"name": "Laptop"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let options: Value = res.json().await.unwrap();
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["residentKey"],
        "preferred"
    );
    let long = "k".repeat(65);
    let res = app
        .send(
            Method::POST,
            "/api/auth/mfa/webauthn/register/start",
            &cookie,
            Some(json!({"name": long})),
        )
        .await;
    expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    // A registration answer that is no such thing, then one with no
    // ceremony left to finish (the first took it).
    let junk = json!({"credential": {"id": "x", "rawId": "eA", "type": "public-key",
        "response": {"attestationObject": "oA", "clientDataJSON": "e30"}}});
    let path = "/api/auth/mfa/webauthn/register/finish";
    let res = app
        .send(Method::POST, path, &cookie, Some(junk.clone()))
        .await;
    expect_error(res, StatusCode::BAD_REQUEST, "webauthn_failed").await;
    let res = app.send(Method::POST, path, &cookie, Some(junk)).await;
    expect_error(res, StatusCode::CONFLICT, "no_enrolment").await;
    let res = app
        .send(Method::POST, path, &cookie, Some(json!({"credential": 5})))
        .await;
    expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;

    // Passwordless: a challenge naming no user; each start a new one; an
    // answer nobody's key signed, or for no challenge we gave, is refused
    // as a wrong password is.
    let start = || app.post_json("/api/auth/passkey/start", &json!(null), None);
    let first: Value = start().await.json().await.unwrap();
    let second: Value = start().await.json().await.unwrap();
    let challenge = first["publicKey"]["challenge"].as_str().unwrap();
    assert_ne!(challenge, second["publicKey"]["challenge"]);
    assert!(first["publicKey"]
        .get("allowCredentials")
        .is_none_or(|a| a == &json!([])));
    for body in [
        json!({"credential": forged_assertion(challenge)}),
        json!({"credential": forged_assertion(challenge)}),
        json!({"credential": forged_assertion("not one of ours")}),
    ] {
        let res = app.post_json("/api/auth/passkey/finish", &body, None).await;
        assert!(res.headers().get(SET_COOKIE).is_none());
        expect_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }

    // The second step with a key: for a pending sign-in only, and only a
    // user with a key.
    let res = app
        .post_json(
            "/api/auth/mfa/webauthn/start",
            &json!({"pending": "0.00"}),
            None,
        )
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    let _totp = enrol_totp(&app, &cookie).await;
    let (token, methods) = pending(&app, "kim").await;
    assert_eq!(methods, ["totp"]);
    let res = app
        .post_json(
            "/api/auth/mfa/webauthn/start",
            &json!({"pending": token}),
            None,
        )
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    let body = json!({"pending": token, "credential": forged_assertion(challenge)});
    let res = app
        .post_json("/api/auth/mfa/webauthn/finish", &body, None)
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;

    // Past the fresh-proof window, adding a key needs the password again.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let res = app
        .send(
            Method::POST,
            "/api/auth/mfa/webauthn/register/start",
            &cookie,
            None,
        )
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "reauth_required").await;
}

#[tokio::test]
async fn a_password_recovered_with_a_link_still_needs_the_second_factor() {
    let app = spawn_app().await;
    let cookie = app.register_and_login("quinn").await;
    let totp = enrol_totp(&app, &cookie).await;
    let made = app.reset_link("quinn").await;
    let token = made["link"].as_str().unwrap().rsplit('/').next().unwrap();
    let res = app
        .post_json(
            "/api/auth/recovery/verify",
            &json!({"token": token, "newPassword": "quinn's new long password"}),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers().get(SET_COOKIE).is_none(),
        "no session before the second step"
    );
    let body: Value = res.json().await.unwrap();
    let pending = body["mfa"]["pending"].as_str().unwrap();
    let res = step(&app, "totp", pending, &totp.code(1)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.me(&cookie_of(&res)).await.status(), StatusCode::OK);
    // The session it was done from ended with the others.
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_pending_sign_in_lasts_five_minutes_and_not_a_moment_more() {
    use sessiond::domain::UserId;
    use sessiond::store::{now_ms, TicketKey, TicketKind, TicketRecord};
    let app = spawn_app().await;
    let cookie = app.register_and_login("pat").await;
    let totp = enrol_totp(&app, &cookie).await;
    let id = UserId::parse(&app.id_of(&cookie).await).unwrap();
    let (token, _) = pending(&app, "pat").await;
    // Held server-side, ending five minutes after the password step.
    let key = TicketKey::User(TicketKind::Pending, id);
    let held = app
        .store
        .ticket(&key)
        .await
        .unwrap()
        .expect("the pending sign-in");
    let left = held.deadline_ms.saturating_sub(now_ms());
    assert!((295_000..=300_000).contains(&left), "{left} ms left");
    // Five minutes on (its deadline passed, not yet pruned): refused, with
    // the right code.
    let ended = TicketRecord {
        deadline_ms: now_ms() - 1,
        ..held
    };
    app.store.put_ticket(&key, &ended).await.unwrap();
    let res = step(&app, "totp", &token, &totp.code(1)).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
}

#[tokio::test]
async fn require_mfa_for_admins_leaves_other_users_alone() {
    let app = spawn_app_with(|c| c.auth.require_mfa = sessiond::config::RequireMfa::Admins).await;
    let (admin, _) = app.admin().await;
    let res = app
        .send(Method::GET, "/api/auth/sessions", &admin, None)
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "mfa_enrolment_required").await;
    let user = app.register_and_login("rita").await;
    let res = app
        .send(Method::GET, "/api/auth/sessions", &user, None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}
