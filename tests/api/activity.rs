//! The security log: each sign-in, sign-out and change to an account is
//! written once, in the account's own log, saying who did it (the user,
//! an admin, or the server itself); a user reads their own log, an admin
//! everyone's, and no secret ever reaches it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::header::USER_AGENT;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::idtoken::{app_with_provider, sign_in, PROJECT};
use crate::mailbox::{code_in, to_of, Mailbox, RECOVERY};
use crate::mfa::{enrol_totp, pending, step};
use crate::oidc::{firebase_claims, rsa_signer};

// ---- Reading the log ----------------------------------------------------

/// One page of the caller's own log, checked to be 200.
async fn own_page(app: &TestApp, cookie: &str, query: &str) -> Value {
    let res = app
        .get(&format!("/api/auth/activity{query}"), Some(cookie))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// The caller's whole log (fewer than 200 entries), newest first.
async fn own_log(app: &TestApp, cookie: &str) -> Vec<Value> {
    let page = own_page(app, cookie, "?limit=200").await;
    assert!(page["next"].is_null(), "one page holds it all: {page}");
    checked(page["entries"].as_array().unwrap().clone())
}

/// Everyone's log as an admin reads it, narrowed by `query` (fewer than
/// 200 entries), newest first.
async fn admin_log(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let res = app
        .get(
            &format!("/api/admin/activity?limit=200&{query}"),
            Some(admin),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK, "{query}");
    let page: Value = res.json().await.unwrap();
    assert!(page["next"].is_null(), "one page holds it all: {page}");
    checked(page["entries"].as_array().unwrap().clone())
}

/// The shape every entry has, and the order of a log: newest first, each
/// entry once.
fn checked(entries: Vec<Value>) -> Vec<Value> {
    let mut ids = HashSet::new();
    for e in &entries {
        for field in ["id", "time", "kind", "userId"] {
            assert!(e[field].is_string(), "{field} in {e}");
        }
        assert_eq!(e["userId"].as_str().unwrap().len(), 16, "{e}");
        assert!(e["time"].as_str().unwrap().ends_with('Z'), "{e}");
        let actor = e["actor"].as_object().expect("an actor");
        assert!(
            ["user", "admin", "system"].contains(&actor["kind"].as_str().unwrap()),
            "{e}"
        );
        assert!(
            ids.insert(e["id"].as_str().unwrap().to_owned()),
            "{e} twice"
        );
    }
    // RFC 3339 of one width: the text orders as the time does.
    let times: Vec<&str> = entries
        .iter()
        .map(|e| e["time"].as_str().unwrap())
        .collect();
    let ids: Vec<&str> = entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: times {times:?}, ids {ids:?}"
    );
    entries
}

/// The kinds of a log, newest first.
fn kinds(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect()
}

/// The details of a log, newest first ("" for none).
fn details(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["detail"].as_str().unwrap_or(""))
        .collect()
}

/// The entries of one kind, newest first.
fn of_kind<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["kind"] == kind).collect()
}

/// The one entry of `kind`: there must be exactly one.
fn the_one<'a>(entries: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(entries, kind);
    assert_eq!(found.len(), 1, "exactly one {kind} in {:?}", kinds(entries));
    found[0]
}

fn by_user(id: &str) -> Value {
    json!({"kind": "user", "userId": id})
}

fn by_admin(id: &str) -> Value {
    json!({"kind": "admin", "userId": id})
}

/// The public id of the session behind `cookie` (as `/me` shows it).
async fn session_id(app: &TestApp, cookie: &str) -> String {
    let me: Value = app.me(cookie).await.json().await.unwrap();
    me["session"]["id"].as_str().unwrap().to_owned()
}

/// `/me`'s `amr`, joined as a `login` entry's detail gives it.
async fn amr_of(app: &TestApp, cookie: &str) -> String {
    let me: Value = app.me(cookie).await.json().await.unwrap();
    let amr: Vec<&str> = me["session"]["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    amr.join(",")
}

async fn delete(app: &TestApp, path: &str, cookie: &str) -> Response {
    app.send(Method::DELETE, path, cookie, None).await
}

// ---- Second factors (as mfa.rs does them) -------------------------------

/// A security key in software, as a browser's authenticator answers:
/// a P-256 key, "none" attestation, user present and verified.
struct SoftKey {
    key: p256::ecdsa::SigningKey,
    id: Vec<u8>,
    counter: u32,
    origin: String,
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

/// A CBOR item's head: its major type and length (or small value).
fn cbor(out: &mut Vec<u8>, major: u8, n: usize) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=255 => out.extend([m | 24, n as u8]),
        _ => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
    }
}

fn cbor_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    cbor(out, 2, bytes.len());
    out.extend(bytes);
}

fn cbor_text(out: &mut Vec<u8>, text: &str) {
    cbor(out, 3, text.len());
    out.extend(text.as_bytes());
}

impl SoftKey {
    fn new(app: &TestApp) -> SoftKey {
        use p256::elliptic_curve::Generate;
        let id = sha256(format!("soft key {}", unique()).as_bytes());
        SoftKey {
            key: p256::ecdsa::SigningKey::generate(),
            id: id[..16].to_vec(),
            counter: 0,
            origin: format!("http://localhost:{}", app.addr.port()),
        }
    }

    fn client_data(&self, kind: &str, options: &Value) -> Vec<u8> {
        let challenge = options["publicKey"]["challenge"].as_str().unwrap();
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// The answer to `navigator.credentials.create(options)`.
    fn create(&self, options: &Value) -> Value {
        let rp = options["publicKey"]["rp"]["id"].as_str().unwrap();
        let point = self.key.verifying_key().to_sec1_bytes();
        assert_eq!(point.len(), 65, "an uncompressed point");
        // COSE: kty EC2, alg ES256, crv P-256, x, y.
        let mut cose = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cbor_bytes(&mut cose, &point[1..33]);
        cose.push(0x22);
        cbor_bytes(&mut cose, &point[33..]);
        let mut auth = sha256(rp.as_bytes());
        auth.push(0x45); // user present, user verified, credential data
        auth.extend(0u32.to_be_bytes());
        auth.extend([0; 16]);
        auth.extend((self.id.len() as u16).to_be_bytes());
        auth.extend(&self.id);
        auth.extend(cose);
        let mut attestation = vec![0xa3];
        cbor_text(&mut attestation, "fmt");
        cbor_text(&mut attestation, "none");
        cbor_text(&mut attestation, "attStmt");
        attestation.push(0xa0);
        cbor_text(&mut attestation, "authData");
        cbor_bytes(&mut attestation, &auth);
        json!({
            "id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&self.client_data("webauthn.create", options)),
            },
            "clientExtensionResults": {},
        })
    }

    /// The answer to `navigator.credentials.get(options)`, naming
    /// `user_handle` as a discoverable credential does.
    fn get(&mut self, options: &Value, user_handle: Option<&[u8]>) -> Value {
        use p256::ecdsa::signature::Signer;
        let rp = options["publicKey"]["rpId"].as_str().unwrap();
        self.counter += 1;
        let mut auth = sha256(rp.as_bytes());
        auth.push(0x05); // user present, user verified
        auth.extend(self.counter.to_be_bytes());
        let client_data = self.client_data("webauthn.get", options);
        let mut signed = auth.clone();
        signed.extend(sha256(&client_data));
        let signature: p256::ecdsa::DerSignature = self.key.sign(&signed);
        let mut response = json!({
            "authenticatorData": b64(&auth),
            "clientDataJSON": b64(&client_data),
            "signature": b64(signature.as_bytes()),
        });
        if let Some(handle) = user_handle {
            response["userHandle"] = json!(b64(handle));
        }
        json!({
            "id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key",
            "response": response, "clientExtensionResults": {},
        })
    }
}

/// The WebAuthn user handle of the user with this id.
fn user_handle(id: &str) -> Vec<u8> {
    let id = u64::from_str_radix(id, 16).unwrap();
    let mut handle = b"sessiond".to_vec();
    handle.extend(id.to_be_bytes());
    handle
}

// ---- Stories ------------------------------------------------------------

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

#[tokio::test]
async fn each_sign_in_and_sign_out_is_logged_once_with_its_actor() {
    let app = spawn_app().await;
    let (admin, root) = app.admin().await;
    let res = app.register("alice").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let alice: Value = res.json().await.unwrap();
    let alice = alice["user"]["id"].as_str().unwrap().to_owned();

    // A laptop (Firefox), a phone; a wrong password; a name nobody has.
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .header(USER_AGENT, FIREFOX)
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let laptop = cookie_of(&res);
    let phone = app.login_cookie("alice").await;
    let wrong = app.login("alice", "not the password at all").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let nobody = app.login("nobody", "not the password at all").await;
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);
    let (laptop_id, phone_id) = (
        session_id(&app, &laptop).await,
        session_id(&app, &phone).await,
    );
    // The phone signs out; a tablet signs in; the laptop ends itself by id.
    assert_eq!(app.logout(&phone).await.status(), StatusCode::NO_CONTENT);
    // Signing out a session already ended ends nothing, and logs nothing.
    app.logout(&phone).await;
    let tablet = app.login_cookie("alice").await;
    let tablet_id = session_id(&app, &tablet).await;
    let res = delete(&app, &format!("/api/auth/sessions/{laptop_id}"), &laptop).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    let log = own_log(&app, &tablet).await;
    assert_eq!(
        kinds(&log),
        [
            "logout",
            "login",
            "logout",
            "login_failed",
            "login",
            "login",
            "user_created"
        ]
    );
    for e in &log {
        assert_eq!(e["userId"], alice.as_str(), "{e}");
        assert_eq!(e["actor"], by_user(&alice), "{e}");
    }
    let sessions: Vec<&Value> = log.iter().map(|e| &e["sessionId"]).collect();
    assert_eq!(sessions[0], laptop_id.as_str(), "the laptop signed out");
    assert_eq!(sessions[1], tablet_id.as_str(), "the tablet signed in");
    assert_eq!(sessions[2], phone_id.as_str(), "the phone signed out");
    assert!(sessions[3].is_null(), "a refusal opened no session");
    assert_eq!(sessions[4], phone_id.as_str(), "the phone signed in");
    assert_eq!(sessions[5], laptop_id.as_str(), "the laptop signed in");
    for login in of_kind(&log, "login") {
        assert_eq!(login["detail"], "pwd", "{login}");
        assert_eq!(login["ip"], "127.0.0.1", "{login}");
    }
    assert_eq!(log[3]["detail"], "wrong_password");
    assert_eq!(log[3]["ip"], "127.0.0.1");
    // The client, as a person reads it, not the whole header.
    assert_eq!(log[5]["userAgent"], "Firefox on Linux");

    // Root's own log: made by an operator (no user id), then one sign-in.
    let root_log = own_log(&app, &admin).await;
    assert_eq!(kinds(&root_log), ["login", "user_created"]);
    assert_eq!(root_log[1]["actor"], json!({"kind": "admin"}));
    assert_eq!(root_log[0]["actor"], by_user(&root));
    // The unknown name wrote nothing, in anyone's log.
    let everyone = admin_log(&app, &admin, "").await;
    assert_eq!(everyone.len(), log.len() + root_log.len(), "{everyone:?}");
    assert_eq!(of_kind(&everyone, "login_failed").len(), 1);
}

#[tokio::test]
async fn a_sign_in_over_a_live_session_logs_that_sessions_end_in_its_owners_log() {
    let app = spawn_app().await;
    let alice = app.register_and_login("alice").await;
    let bob = app.register_and_login("bob").await;
    let alice_session = session_id(&app, &alice).await;
    // Bob's browser still holds alice's session and signs in as bob: the
    // session it came with ends (a sign-in always starts a new one), and
    // alice's log, not bob's, says so.
    let res = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "bob", "password": PASSWORD}),
            Some(&alice),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.me(&alice).await.status(), StatusCode::UNAUTHORIZED);
    let again = app.login_cookie("alice").await;
    let log = own_log(&app, &again).await;
    let ended = the_one(&log, "logout");
    assert_eq!(ended["sessionId"], alice_session.as_str());
    assert_eq!(ended["detail"], "replaced_by_sign_in");
    assert_eq!(ended["actor"]["kind"], "user");
    let bobs = own_log(&app, &bob).await;
    assert!(of_kind(&bobs, "logout").is_empty(), "{:?}", kinds(&bobs));
    assert_eq!(of_kind(&bobs, "login").len(), 2);
}

#[tokio::test]
async fn refused_registrations_leave_nothing_in_any_log() {
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    assert_eq!(app.register("alice").await.status(), StatusCode::CREATED);
    // The name again, and her address under another name: both 409.
    assert_eq!(app.register("alice").await.status(), StatusCode::CONFLICT);
    let body = json!({"username": "alicia", "email": "alice@example.com", "password": PASSWORD});
    let res = app.post_json("/api/auth/register", &body, None).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let everyone = admin_log(&app, &admin, "kind=user_created").await;
    assert_eq!(everyone.len(), 2, "root and alice only: {everyone:?}");
}

#[tokio::test]
async fn odd_cursors_and_ids_read_as_nothing_not_as_errors() {
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    let alice = app.register_and_login("alice").await;
    // The lowest cursor there is: nothing is older.
    let page = own_page(&app, &alice, "?before=0-0-0").await;
    assert_eq!(page["entries"], json!([]));
    for query in ["before=0-0-0", "user=ffffffffffffffff"] {
        let res = app
            .get(&format!("/api/admin/activity?{query}"), Some(&admin))
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{query}");
        let page: Value = res.json().await.unwrap();
        assert_eq!(page["entries"], json!([]), "{query}");
    }
    // The highest cursor there is: everything is older.
    let top = "before=18446744073709551615-18446744073709551615-18446744073709551615";
    let everyone = admin_log(&app, &admin, "").await;
    assert_eq!(admin_log(&app, &admin, top).await, everyone);
    // A name that looks like an id is the name's log.
    let res = app
        .post_json(
            "/api/auth/register",
            &json!({"username": "0000000000000001", "email": "hex@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let hex: Value = res.json().await.unwrap();
    let log = admin_log(&app, &admin, "user=0000000000000001").await;
    assert!(!log.is_empty());
    for e in &log {
        assert_eq!(e["userId"], hex["user"]["id"], "{e}");
    }
}

#[tokio::test]
async fn ending_other_sessions_is_logged_by_the_user_who_did_it() {
    let app = spawn_app().await;
    let here = app.register_and_login("alice").await;
    let alice = app.id_of(&here).await;
    let stolen = app.login_cookie("alice").await;
    let forgotten = app.login_cookie("alice").await;
    let stolen_id = session_id(&app, &stolen).await;
    let res = delete(&app, &format!("/api/auth/sessions/{stolen_id}"), &here).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = delete(&app, "/api/auth/sessions", &here).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"revoked": 1}));
    assert_eq!(app.me(&forgotten).await.status(), StatusCode::UNAUTHORIZED);
    // Nothing left to end: nothing happened, nothing is logged.
    let res = delete(&app, "/api/auth/sessions", &here).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"revoked": 0}));

    let log = own_log(&app, &here).await;
    assert_eq!(
        kinds(&log),
        [
            "sessions_revoked",
            "session_revoked",
            "login",
            "login",
            "login",
            "user_created"
        ]
    );
    let one = the_one(&log, "session_revoked");
    assert_eq!(one["sessionId"], stolen_id.as_str(), "names the ended one");
    assert_eq!(one["actor"], by_user(&alice));
    let all = the_one(&log, "sessions_revoked");
    assert_eq!(all["detail"], "other_sessions");
    assert_eq!(all["actor"], by_user(&alice));
    assert!(of_kind(&log, "logout").is_empty());
}

#[tokio::test]
async fn account_changes_are_logged_by_whom() {
    let app = spawn_app().await;
    let here = app.register_and_login("alice").await;
    let alice = app.id_of(&here).await;
    let elsewhere = app.login_cookie("alice").await;
    let change = |current: &str| {
        let (app, here) = (&app, &here);
        let body = json!({"currentPassword": current, "newPassword": "a brand new password"});
        async move {
            app.send(Method::POST, "/api/auth/password", here, Some(body))
                .await
        }
    };
    // A wrong current password is a wrong password: refused, and logged so.
    let res = change("not the password at all").await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let res = change(PASSWORD).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let fresh = cookie_of(&res);
    assert_eq!(app.me(&elsewhere).await.status(), StatusCode::UNAUTHORIZED);

    // The session the change hands back is no sign-in: no login for it.
    let log = own_log(&app, &fresh).await;
    assert_eq!(
        kinds(&log),
        [
            "sessions_revoked",
            "password_changed",
            "login_failed",
            "login",
            "login",
            "user_created"
        ]
    );
    assert_eq!(log[0]["detail"], "password_changed");
    assert_eq!(log[2]["detail"], "wrong_password");
    for e in &log {
        assert_eq!(e["actor"], by_user(&alice), "{e}");
    }
    let fresh_id = session_id(&app, &fresh).await;
    assert!(
        log.iter().all(|e| e["sessionId"] != fresh_id.as_str()),
        "{log:?}"
    );
}

#[tokio::test]
async fn admin_actions_are_logged_in_the_targets_log_with_the_admin_as_actor() {
    let app = spawn_app().await;
    let (admin, root) = app.admin().await;
    let cookie = app.register_and_login("alice").await;
    app.login_cookie("alice").await;
    let alice = app.id_of(&cookie).await;
    let user_path = format!("/api/admin/users/{alice}");
    let role = |role: &str| {
        let (app, admin, path) = (&app, &admin, &user_path);
        let body = json!({ "role": role });
        async move {
            let res = app.send(Method::PATCH, path, admin, Some(body)).await;
            assert_eq!(res.status(), StatusCode::OK);
        }
    };
    role("admin").await;
    role("admin").await; // the same role: no change, nothing logged
    role("user").await;
    let sessions = format!("{user_path}/sessions");
    let res = delete(&app, &sessions, &admin).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"revoked": 2}));
    let res = delete(&app, &sessions, &admin).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"revoked": 0}));
    // She signs in again and adds an app; then loses it: the admin resets.
    let cookie = app.login_cookie("alice").await;
    enrol_totp(&app, &cookie).await;
    let res = delete(&app, &format!("{user_path}/mfa"), &admin).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"revoked": 1}));
    let res = delete(&app, &user_path, &admin).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    // Her log outlives her; the admin reads it by her id.
    let log = admin_log(&app, &admin, &format!("user={alice}")).await;
    assert_eq!(
        kinds(&log),
        [
            "user_removed",
            "sessions_revoked",
            "mfa_removed",
            "mfa_added",
            "login",
            "sessions_revoked",
            "role_changed",
            "role_changed",
            "login",
            "login",
            "user_created"
        ]
    );
    let admins: Vec<(&str, &str)> = log
        .iter()
        .filter(|e| e["actor"]["kind"] == "admin")
        .map(|e| {
            assert_eq!(e["actor"], by_admin(&root), "{e}");
            (
                e["kind"].as_str().unwrap(),
                e["detail"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        admins,
        [
            ("user_removed", ""),
            ("sessions_revoked", "mfa_removed"),
            ("mfa_removed", "all"),
            ("sessions_revoked", "admin"),
            ("role_changed", "admin -> user"),
            ("role_changed", "user -> admin"),
        ]
    );
    for e in log.iter().filter(|e| e["actor"]["kind"] != "admin") {
        assert_eq!(e["actor"], by_user(&alice), "{e}");
    }
    assert!(log.iter().all(|e| e["userId"] == alice.as_str()));
    // Nothing of it is in the admin's own log.
    assert_eq!(
        kinds(&own_log(&app, &admin).await),
        ["login", "user_created"]
    );
    // Everyone's log still holds it.
    let everyone = admin_log(&app, &admin, "").await;
    let hers: Vec<&Value> = everyone
        .iter()
        .filter(|e| e["userId"] == alice.as_str())
        .collect();
    assert_eq!(hers, log.iter().collect::<Vec<_>>());
    // Her name is free now: by name she is unknown, and a newcomer who
    // takes it starts a log of their own.
    let res = app
        .get("/api/admin/activity?user=alice", Some(&admin))
        .await;
    expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.register("alice").await.status(), StatusCode::CREATED);
    let newcomer = admin_log(&app, &admin, "user=alice").await;
    assert_eq!(kinds(&newcomer), ["user_created"]);
    assert_ne!(newcomer[0]["userId"], alice.as_str());
}

#[tokio::test]
async fn second_steps_are_logged() {
    let app = spawn_app_with(|c| c.auth.max_failed_mfa_per_account = 2).await;
    let first = app.register_and_login("alice").await;
    let alice = app.id_of(&first).await;
    let totp = enrol_totp(&app, &first).await;
    let res = app
        .send(Method::POST, "/api/auth/mfa/recovery", &first, None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let codes: Vec<String> = res.json::<Value>().await.unwrap()["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();

    // A wrong code, then the right one: a session made with two factors.
    let token = pending(&app, "alice").await.0;
    let res = step(&app, "totp", "0.00", &totp.code(1)).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    let res = step(&app, "totp", &token, &totp.wrong()).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    let res = step(&app, "totp", &token, &totp.code(1)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let by_app = session_id(&app, &cookie_of(&res)).await;
    // A recovery code instead of the app.
    let token = pending(&app, "alice").await.0;
    let res = step(&app, "recovery", &token, &codes[0]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let by_code = session_id(&app, &cookie_of(&res)).await;
    // Two wrong guesses (the limit), then even the right code waits.
    let token = pending(&app, "alice").await.0;
    let res = step(&app, "totp", &token, &totp.wrong()).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    let res = step(&app, "recovery", &token, "zzzz-zzzz-zzzz").await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    let res = step(&app, "totp", &token, &totp.code(1)).await;
    expect_error(res, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    // The app goes: every other session ends.
    let factors: Value = app
        .get("/api/auth/mfa", Some(&first))
        .await
        .json()
        .await
        .unwrap();
    let factor = factors["factors"][0]["id"].as_str().unwrap().to_owned();
    let res = delete(&app, &format!("/api/auth/mfa/{factor}"), &first).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    let log = own_log(&app, &first).await;
    assert_eq!(
        kinds(&log),
        [
            "sessions_revoked",
            "mfa_removed",
            "login_throttled",
            "mfa_failed",
            "mfa_failed",
            "login",
            "mfa_passed",
            "login",
            "mfa_passed",
            "mfa_failed",
            "mfa_added",
            "mfa_added",
            "login",
            "user_created"
        ]
    );
    let details = details(&log);
    assert_eq!(
        details[..13],
        [
            "mfa_removed",
            "totp",
            "mfa",
            "recovery",
            "totp",
            "pwd,otp",
            "recovery",
            "pwd,otp",
            "totp",
            "totp",
            "recovery codes",
            "totp",
            "pwd"
        ]
    );
    for e in &log {
        assert_eq!(e["actor"], by_user(&alice), "{e}");
    }
    // Each login names the session the second step made.
    let logins: Vec<&Value> = of_kind(&log, "login")
        .into_iter()
        .map(|e| &e["sessionId"])
        .collect();
    let first_id = session_id(&app, &first).await;
    assert_eq!(logins, [&json!(by_code), &json!(by_app), &json!(first_id)]);
}

#[tokio::test]
async fn refused_sign_ins_are_logged_for_known_accounts_only() {
    let app = spawn_app_with(|c| c.auth.max_failed_logins_per_account = 2).await;
    let (admin, root) = app.admin().await;
    assert_eq!(app.register("alice").await.status(), StatusCode::CREATED);
    for _ in 0..2 {
        let res = app.login("alice", "not the password at all").await;
        expect_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        let res = app.login("ghost", "not the password at all").await;
        expect_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let res = app.login("alice", PASSWORD).await;
    expect_error(res, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    let by_email = json!({"email": "alice@example.com", "password": PASSWORD});
    let res = app.post_json("/api/auth/login", &by_email, None).await;
    expect_error(res, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;

    // A storm of throttled guesses is one entry per window, so it cannot
    // push the account's history out of its log.
    for _ in 0..20 {
        let res = app.login("alice", "not the password at all").await;
        expect_error(res, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    }

    let log = admin_log(&app, &admin, "user=alice").await;
    assert_eq!(
        kinds(&log),
        [
            "login_throttled",
            "login_failed",
            "login_failed",
            "user_created"
        ]
    );
    let alice = log[0]["userId"].as_str().unwrap().to_owned();
    for e in &log {
        assert_eq!(e["actor"], by_user(&alice), "{e}");
        assert!(e.get("sessionId").is_none(), "{e}");
    }
    assert_eq!(log[0]["detail"], "password", "{}", log[0]);
    for e in &log[1..3] {
        assert_eq!(e["detail"], "wrong_password", "{e}");
        assert_eq!(e["ip"], "127.0.0.1", "{e}");
    }
    // The guesses at a name nobody has are in no one's log.
    let everyone = admin_log(&app, &admin, "").await;
    let owners: HashSet<&str> = everyone
        .iter()
        .map(|e| e["userId"].as_str().unwrap())
        .collect();
    assert_eq!(owners, HashSet::from([root.as_str(), alice.as_str()]));
    assert_eq!(everyone.len(), log.len() + 2, "root: made, signed in");
}

#[tokio::test]
async fn recovery_with_an_operators_link_is_logged() {
    let app = spawn_app().await;
    let old = app.register_and_login("alice").await;
    let alice = app.id_of(&old).await;
    let made = app.reset_link("alice").await;
    let token = made["link"].as_str().unwrap().rsplit('/').next().unwrap();
    let res = app
        .post_json(
            "/api/auth/recovery/verify",
            &json!({"token": token, "newPassword": "a brand new password"}),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let new = cookie_of(&res);

    let log = own_log(&app, &new).await;
    let mut seen = kinds(&log);
    // Written together: either order.
    seen[2..4].sort_unstable();
    assert_eq!(
        seen,
        [
            "login",
            "sessions_revoked",
            "password_changed",
            "recovery_used",
            "login",
            "user_created"
        ]
    );
    assert_eq!(log[0]["detail"], "pwd");
    assert_eq!(log[0]["sessionId"], session_id(&app, &new).await.as_str());
    assert_eq!(log[1]["detail"], "password_changed");
    assert_eq!(the_one(&log, "password_changed")["detail"], "recovery");
    assert_eq!(the_one(&log, "recovery_used")["detail"], "link");
    for e in &log {
        assert_eq!(e["actor"], by_user(&alice), "{e}");
    }
}

#[tokio::test]
async fn recovery_by_mail_is_logged_for_known_accounts_only() {
    let Some(mailbox) = Mailbox::start() else {
        return;
    };
    let url = mailbox.url();
    let app = spawn_app_with(move |c| c.mail.smtp_url = url).await;
    let (admin, root) = app.admin().await;
    assert_eq!(app.register("alice").await.status(), StatusCode::CREATED);
    for login in ["alice", "ghost"] {
        let res = app
            .post_json("/api/auth/recovery", &json!({ "login": login }), None)
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }
    let mail = mailbox.wait_for_subject(RECOVERY, 1).await.remove(0);
    assert!(to_of(&mail).contains("alice@example.com"));
    let res = app
        .post_json(
            "/api/auth/recovery/verify",
            &json!({"login": "alice", "code": code_in(&mail), "newPassword": "a brand new password"}),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = cookie_of(&res);
    let alice = app.id_of(&cookie).await;

    // No session to end: no sessions_revoked.
    let log = own_log(&app, &cookie).await;
    let mut seen = kinds(&log);
    seen[1..3].sort_unstable();
    assert_eq!(
        seen,
        [
            "login",
            "password_changed",
            "recovery_used",
            "recovery_requested",
            "user_created"
        ]
    );
    assert_eq!(the_one(&log, "recovery_used")["detail"], "code");
    assert_eq!(the_one(&log, "password_changed")["detail"], "recovery");
    for e in &log {
        assert_eq!(e["actor"], by_user(&alice), "{e}");
    }
    let everyone = admin_log(&app, &admin, "").await;
    assert_eq!(
        everyone.len(),
        log.len() + 2,
        "the ghost's request is in no log"
    );
    assert!(everyone
        .iter()
        .all(|e| e["userId"] == alice.as_str() || e["userId"] == root.as_str()));
}

#[tokio::test]
async fn an_address_change_is_logged_with_both_addresses() {
    let Some(mailbox) = Mailbox::start() else {
        return;
    };
    let url = mailbox.url();
    let app = spawn_app_with(move |c| c.mail.smtp_url = url).await;
    let cookie = app.register_and_login("yara").await;
    let yara = app.id_of(&cookie).await;
    // Proving the first address is no change of address.
    let first = mailbox.wait_for(1).await.remove(0);
    let res = app
        .post_json(
            "/api/auth/email/verify",
            &json!({"code": code_in(&first)}),
            Some(&cookie),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let change = json!({"email": "yara@new.example", "password": PASSWORD});
    let res = app
        .post_json("/api/auth/email", &change, Some(&cookie))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let mails = mailbox.wait_for(2).await;
    let to_new = mails
        .iter()
        .find(|m| to_of(m).contains("yara@new.example"))
        .unwrap();
    // Asking is no change yet.
    assert_eq!(
        kinds(&own_log(&app, &cookie).await),
        ["login", "user_created"]
    );
    let res = app
        .post_json(
            "/api/auth/email/verify",
            &json!({"code": code_in(to_new)}),
            Some(&cookie),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    let log = own_log(&app, &cookie).await;
    assert_eq!(kinds(&log), ["email_changed", "login", "user_created"]);
    assert_eq!(log[0]["detail"], "yara@example.com -> yara@new.example");
    assert_eq!(log[0]["actor"], by_user(&yara));
}

#[tokio::test]
async fn a_sign_in_refused_for_an_unproved_address_is_logged() {
    let Some(mailbox) = Mailbox::start() else {
        return;
    };
    let url = mailbox.url();
    let app = spawn_app_with(move |c| {
        c.mail.smtp_url = url;
        c.auth.require_verified_email = true;
    })
    .await;
    let (admin, _) = app.admin().await;
    assert_eq!(app.register("walt").await.status(), StatusCode::CREATED);
    let res = app.login("walt", "not the password at all").await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let res = app.login("walt", PASSWORD).await;
    expect_error(res, StatusCode::FORBIDDEN, "email_unverified").await;

    let log = admin_log(&app, &admin, "user=walt").await;
    assert_eq!(
        kinds(&log),
        ["login_failed", "login_failed", "user_created"]
    );
    assert_eq!(log[0]["detail"], "email_unverified");
    assert_eq!(log[1]["detail"], "wrong_password");
    let walt = log[0]["userId"].as_str().unwrap();
    assert!(log.iter().all(|e| e["actor"] == by_user(walt)));
}

#[tokio::test]
async fn identities_linked_and_unlinked_are_logged() {
    let key = rsa_signer(0);
    let (app, _jwks) = app_with_provider(&[&key], |_| {}).await;
    let sign_in = |token: String| {
        let app = &app;
        async move {
            let res = sign_in(app, &token).await;
            assert_eq!(res.status(), StatusCode::OK);
            cookie_of(&res)
        }
    };

    // A first sign-in makes the user and links the identity.
    let ann_token = key.sign(&firebase_claims(
        PROJECT,
        "uid-ann",
        Some("ann@example.com"),
    ));
    let ann = sign_in(ann_token).await;
    let ann_id = app.id_of(&ann).await;
    let log = own_log(&app, &ann).await;
    let mut seen = kinds(&log);
    // Written together: either order.
    seen[1..].sort_unstable();
    assert_eq!(seen, ["login", "identity_linked", "user_created"]);
    assert!(log.iter().all(|e| e["actor"] == by_user(&ann_id)));
    assert_eq!(log[0]["sessionId"], session_id(&app, &ann).await.as_str());
    // No RFC 8176 method for a provider's proof: the entry names it.
    assert_eq!(amr_of(&app, &ann).await, "");
    assert_eq!(log[0]["detail"], "id_token");

    // Alice links one, signs in with it, and unlinks it.
    let alice = app.register_and_login("alice").await;
    let alice_id = app.id_of(&alice).await;
    let token = key.sign(&firebase_claims(
        PROJECT,
        "uid-alice",
        Some("al@example.com"),
    ));
    let res = app
        .post_json(
            "/api/auth/identities",
            &json!({ "idToken": token }),
            Some(&alice),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let linked: Value = res.json().await.unwrap();
    let identity = linked["identity"]["id"].as_str().unwrap().to_owned();
    let by_token = sign_in(token).await;
    assert_eq!(app.id_of(&by_token).await, alice_id);
    let res = delete(&app, &format!("/api/auth/identities/{identity}"), &alice).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    let log = own_log(&app, &alice).await;
    assert_eq!(
        kinds(&log),
        [
            "identity_unlinked",
            "login",
            "identity_linked",
            "login",
            "user_created"
        ]
    );
    assert!(log.iter().all(|e| e["actor"] == by_user(&alice_id)));
    assert_eq!(
        log[1]["sessionId"],
        session_id(&app, &by_token).await.as_str()
    );
    // Ann's log is as it was.
    assert_eq!(own_log(&app, &ann).await.len(), 3);
}

#[tokio::test]
async fn a_user_reads_only_their_own_log_and_pages_it() {
    let app = spawn_app().await;
    let alice = app.register_and_login("alice").await;
    let alice_id = app.id_of(&alice).await;
    let bob = app.register_and_login("bob").await;
    let bob_id = app.id_of(&bob).await;
    // 54 more sign-ins: 56 entries in all, more than a default page.
    for _ in 0..54 {
        app.login_cookie("alice").await;
    }
    app.login("bob", "not the password at all").await;

    let all = own_log(&app, &alice).await;
    assert_eq!(all.len(), 56);
    assert!(all.iter().all(|e| e["userId"] == alice_id.as_str()));
    // Asking for someone else's changes nothing.
    let asked: Value = own_page(&app, &alice, &format!("?limit=200&user={bob_id}")).await;
    assert_eq!(asked["entries"].as_array().unwrap(), &all);
    let bobs = own_log(&app, &bob).await;
    assert_eq!(kinds(&bobs), ["login_failed", "login", "user_created"]);

    // The default page is 50, with a cursor to the rest.
    let first = own_page(&app, &alice, "").await;
    assert_eq!(first["entries"].as_array().unwrap()[..], all[..50]);
    let next = first["next"].as_str().expect("a next page");
    let rest = own_page(&app, &alice, &format!("?before={next}")).await;
    assert_eq!(rest["entries"].as_array().unwrap()[..], all[50..]);
    assert!(rest["next"].is_null());
    // Page by page, the same entries, each once, in order; a page of
    // exactly what is left says there is no more.
    let mut paged = Vec::new();
    let mut query = "?limit=7".to_owned();
    loop {
        let page = own_page(&app, &alice, &query).await;
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 7);
        paged.extend(entries.iter().cloned());
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=7&before={next}"),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let page = own_page(&app, &alice, "?limit=56").await;
    assert!(page["next"].is_null(), "{}", page["next"]);

    for query in [
        "?limit=0",
        "?limit=201",
        "?limit=many",
        "?limit=-1",
        "?before=yesterday",
        "?before=1-2",
    ] {
        let res = app
            .get(&format!("/api/auth/activity{query}"), Some(&alice))
            .await;
        expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    let limits = own_page(&app, &alice, "?limit=200").await;
    assert_eq!(limits["entries"].as_array().unwrap().len(), 56);
    let res = app.get("/api/auth/activity", None).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(app.logout(&alice).await.status(), StatusCode::NO_CONTENT);
    let res = app.get("/api/auth/activity", Some(&alice)).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn the_admin_view_filters_by_user_and_kind() {
    let app = spawn_app().await;
    let (admin, root) = app.admin().await;
    let alice = app.register_and_login("alice").await;
    let alice_id = app.id_of(&alice).await;
    let bob = app.register_and_login("bob").await;
    let bob_id = app.id_of(&bob).await;
    app.login("bob", "not the password at all").await;
    app.logout(&bob).await;

    // Admins only.
    let res = app.get("/api/admin/activity", None).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let res = app.get("/api/admin/activity", Some(&alice)).await;
    expect_error(res, StatusCode::FORBIDDEN, "forbidden").await;

    // Everyone's log: every user's entries, newest first.
    let everyone = admin_log(&app, &admin, "").await;
    assert_eq!(everyone.len(), 2 + 2 + 4);
    let count = |id: &str| everyone.iter().filter(|e| e["userId"] == id).count();
    assert_eq!((count(&root), count(&alice_id), count(&bob_id)), (2, 2, 4));
    // One user's, by name or by id: the same.
    let by_name = admin_log(&app, &admin, "user=bob").await;
    assert_eq!(
        kinds(&by_name),
        ["logout", "login_failed", "login", "user_created"]
    );
    assert_eq!(
        admin_log(&app, &admin, &format!("user={bob_id}")).await,
        by_name
    );
    let mine = own_log(&app, &alice).await;
    assert_eq!(admin_log(&app, &admin, "user=alice").await, mine);
    // One kind, everyone's or one user's.
    let logins = admin_log(&app, &admin, "kind=login").await;
    assert_eq!(logins.len(), 3);
    assert!(logins.iter().all(|e| e["kind"] == "login"));
    let expected: Vec<&Value> = of_kind(&everyone, "login");
    assert_eq!(logins.iter().collect::<Vec<_>>(), expected);
    let bobs = admin_log(&app, &admin, "user=bob&kind=login_failed").await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0]["userId"], bob_id.as_str());
    assert!(admin_log(&app, &admin, "user=alice&kind=logout")
        .await
        .is_empty());
    // Everyone's log pages like one log, filtered or not.
    for (filter, whole) in [("", &everyone), ("&kind=login", &logins)] {
        let mut paged = Vec::new();
        let mut query = format!("?limit=1{filter}");
        loop {
            let res = app
                .get(&format!("/api/admin/activity{query}"), Some(&admin))
                .await;
            assert_eq!(res.status(), StatusCode::OK);
            let page: Value = res.json().await.unwrap();
            paged.extend(page["entries"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => query = format!("?limit=1&before={next}{filter}"),
                None => break,
            }
        }
        assert_eq!(&paged, whole, "{filter}");
    }

    let res = app
        .get("/api/admin/activity?user=nobody", Some(&admin))
        .await;
    expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
    for query in [
        "kind=logins",
        "kind=Login",
        "limit=0",
        "limit=201",
        "before=x",
    ] {
        let res = app
            .get(&format!("/api/admin/activity?{query}"), Some(&admin))
            .await;
        expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn expired_sessions_are_logged_by_the_system() {
    let app = spawn_app_with(|c| {
        c.session.absolute_timeout = Duration::from_secs(1);
        c.session.prune_interval = Duration::from_secs(3600);
    })
    .await;
    let cookie = app.register_and_login("alice").await;
    let alice = app.id_of(&cookie).await;
    let id = session_id(&app, &cookie).await;
    // The pruner wakes at the deadline; each look is a fresh admin sign-in,
    // sessions lasting a second here.
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = loop {
        let (admin, _) = app.admin().await;
        let log = admin_log(&app, &admin, "user=alice").await;
        if !of_kind(&log, "session_expired").is_empty() {
            break log;
        }
        assert!(Instant::now() < deadline, "no session_expired in 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(kinds(&log), ["session_expired", "login", "user_created"]);
    assert_eq!(log[0]["actor"], json!({"kind": "system"}));
    assert_eq!(log[0]["sessionId"], id.as_str());
    assert_eq!(log[0]["userId"], alice.as_str());
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn no_secret_reaches_the_log() {
    let app = spawn_app().await;
    let wrong_password = "a guess that is not it";
    let new_password = "the second password of alice";
    let first = app.register_and_login("alice").await;
    let mut secrets: Vec<String> =
        vec![PASSWORD.into(), wrong_password.into(), new_password.into()];
    app.login("alice", wrong_password).await;
    let totp = enrol_totp(&app, &first).await;
    let confirmed = totp.1.clone();
    let res = app
        .send(Method::POST, "/api/auth/mfa/recovery", &first, None)
        .await;
    let recovery: Vec<String> = res.json::<Value>().await.unwrap()["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let token = pending(&app, "alice").await.0;
    let wrong_code = totp.wrong();
    step(&app, "totp", &token, &wrong_code).await;
    let used = totp.code(1);
    let res = step(&app, "totp", &token, &used).await;
    assert_eq!(res.status(), StatusCode::OK);
    let second = cookie_of(&res);
    let token2 = pending(&app, "alice").await.0;
    let res = step(&app, "recovery", &token2, &recovery[0]).await;
    let third = cookie_of(&res);
    let res = app
        .send(
            Method::POST,
            "/api/auth/password",
            &third,
            Some(json!({"currentPassword": PASSWORD, "newPassword": new_password})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let fourth = cookie_of(&res);
    let made = app.reset_link("alice").await;
    let link = made["link"].as_str().unwrap();
    let link_token = link.rsplit('/').next().unwrap();
    let res = app
        .post_json(
            "/api/auth/recovery/verify",
            &json!({"token": link_token, "newPassword": "the third password of alice"}),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let pending3: Value = res.json().await.unwrap();
    let token3 = pending3["mfa"]["pending"].as_str().unwrap().to_owned();
    let res = step(&app, "recovery", &token3, &recovery[1]).await;
    let fifth = cookie_of(&res);
    secrets.push("the third password of alice".into());
    secrets.extend([link.to_owned(), link_token.to_owned()]);
    for token in [&token, &token2, &token3] {
        secrets.push(token.clone());
        secrets.push(token.split_once('.').unwrap().1.to_owned());
    }
    for cookie in [&first, &second, &third, &fourth, &fifth] {
        // The signed value, and the token in it (as sessions.rs reads it).
        let value = cookie.split_once('=').unwrap().1;
        secrets.extend([value.to_owned(), value[44..].to_owned()]);
    }
    secrets.extend(recovery.iter().cloned());
    secrets.extend(recovery.iter().map(|c| c.replace('-', "")));
    let codes = [confirmed, wrong_code, used];

    let (admin, _) = app.admin().await;
    let own = own_log(&app, &fifth).await;
    let everyone = admin_log(&app, &admin, "").await;
    assert!(own.len() >= 15, "{:?}", kinds(&own));
    for log in [&own, &everyone] {
        let text = serde_json::to_string(log).unwrap();
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{secret:?} is in the log");
        }
        // Six-digit codes could be part of an id or a time by chance; no
        // other field holds one.
        for e in log.iter() {
            for field in ["kind", "sessionId", "ip", "userAgent", "detail"] {
                let Some(value) = e[field].as_str() else {
                    continue;
                };
                for code in &codes {
                    assert!(!value.contains(code.as_str()), "{code} in {e}");
                }
            }
        }
    }
}

#[tokio::test]
async fn keys_and_passkeys_are_logged() {
    let app = spawn_app().await;
    let first = app.register_and_login("kim").await;
    let kim = app.id_of(&first).await;
    let mut laptop = SoftKey::new(&app);
    let res = app
        .send(
            Method::POST,
            "/api/auth/mfa/webauthn/register/start",
            &first,
            Some(json!({"name": "Laptop"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let options: Value = res.json().await.unwrap();
    let res = app
        .send(
            Method::POST,
            "/api/auth/mfa/webauthn/register/finish",
            &first,
            Some(json!({"credential": laptop.create(&options)})),
        )
        .await;
    let status = res.status();
    let added: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let factor = added["factor"]["id"].as_str().unwrap().to_owned();

    // Without a name or a password: a passkey sign-in.
    let options: Value = app
        .post_json("/api/auth/passkey/start", &json!(null), None)
        .await
        .json()
        .await
        .unwrap();
    let credential = laptop.get(&options, Some(&user_handle(&kim)));
    let res = app
        .post_json(
            "/api/auth/passkey/finish",
            &json!({ "credential": credential }),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let by_passkey = cookie_of(&res);
    let passkey_amr = amr_of(&app, &by_passkey).await;

    // The password, then the key: first a key she does not have.
    let token = pending(&app, "kim").await.0;
    let start = || {
        let (app, token) = (&app, &token);
        async move {
            let res = app
                .post_json(
                    "/api/auth/mfa/webauthn/start",
                    &json!({ "pending": token }),
                    None,
                )
                .await;
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()
        }
    };
    let finish = |credential: Value| {
        let (app, token) = (&app, &token);
        async move {
            app.post_json(
                "/api/auth/mfa/webauthn/finish",
                &json!({ "pending": token, "credential": credential }),
                None,
            )
            .await
        }
    };
    let mut stranger = SoftKey::new(&app);
    stranger.id.clone_from(&laptop.id);
    let res = finish(stranger.get(&start().await, None)).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "mfa_failed").await;
    let res = finish(laptop.get(&start().await, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let by_key = cookie_of(&res);
    let key_amr = amr_of(&app, &by_key).await;
    let res = delete(&app, &format!("/api/auth/mfa/{factor}"), &first).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    let log = own_log(&app, &first).await;
    assert_eq!(
        kinds(&log),
        [
            "sessions_revoked",
            "mfa_removed",
            "login",
            "mfa_passed",
            "mfa_failed",
            "login",
            "mfa_added",
            "login",
            "user_created"
        ]
    );
    let details = details(&log);
    assert_eq!(
        details[..8],
        [
            "mfa_removed",
            "webauthn: Laptop",
            key_amr.as_str(),
            "webauthn",
            "webauthn",
            passkey_amr.as_str(),
            "webauthn: Laptop",
            "pwd"
        ]
    );
    assert!(key_amr.starts_with("pwd,"), "{key_amr}");
    assert!(log.iter().all(|e| e["actor"] == by_user(&kim)));
}

/// Many threads, so the sign-ins really run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_ins_at_once_are_each_logged_once_and_everyones_log_pages_whole() {
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    let names = ["ann", "ben", "cat", "dan"];
    const EACH: usize = 10;
    for name in names {
        assert_eq!(app.register(name).await.status(), StatusCode::CREATED);
    }
    // Ten sign-ins of each of four users, all at once.
    let app = &app;
    let sign_ins = names.iter().flat_map(|name| {
        (0..EACH).map(move |_| {
            let req = app
                .client
                .post(app.url("/api/auth/login"))
                .json(&json!({"username": name, "password": PASSWORD}))
                .send();
            async move {
                let res = req.await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                cookie_of(&res)
            }
        })
    });
    let cookies = futures_util::future::join_all(sign_ins).await;
    for (n, name) in names.iter().enumerate() {
        let mut made = HashSet::new();
        for cookie in &cookies[n * EACH..(n + 1) * EACH] {
            made.insert(session_id(app, cookie).await);
        }
        let log = admin_log(app, &admin, &format!("user={name}&kind=login")).await;
        let logged: HashSet<String> = log
            .iter()
            .map(|e| e["sessionId"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(log.len(), EACH, "{name}");
        assert_eq!(logged, made, "{name}");
    }
    // Everyone's log, one entry a page: each entry once, none left out.
    let whole = admin_log(app, &admin, "").await;
    assert_eq!(whole.len(), 2 + 4 * (EACH + 1));
    let mut paged = Vec::new();
    let mut query = "?limit=1".to_owned();
    while paged.len() <= whole.len() {
        let page: Value = app
            .get(&format!("/api/admin/activity{query}"), Some(&admin))
            .await
            .json()
            .await
            .unwrap();
        paged.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=1&before={next}"),
            None => break,
        }
    }
    assert_eq!(paged, whole);
}
