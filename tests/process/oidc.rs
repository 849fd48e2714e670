//! The OpenID Connect provider as an operator runs it: a client made with
//! `sessiond oidc client add` and pasted into the config, keys that
//! survive a restart and rotate with `sessiond oidc rotate-key`, and an
//! issuer production refuses.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

const PROVIDER: &str = "[oidc_provider]\nenabled = true\n";

/// The `kid`s the server publishes.
async fn kids(server: &Server) -> Vec<String> {
    let keys: Value = server
        .client
        .get(server.url("/api/oidc/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs a command; its status, stdout and stderr.
fn output(site: &Site, args: &[&str]) -> (bool, String, String) {
    let out = site.command(args).stdin(Stdio::null()).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_client_added_on_the_command_line_authenticates_with_the_secret_printed_once() {
    let site = Site::new(PROVIDER);
    let (ok, out, err) = output(
        &site,
        &[
            "oidc",
            "client",
            "add",
            "grafana",
            "--redirect",
            "https://grafana.example/login/generic_oauth",
        ],
    );
    assert!(ok, "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client secret (shown once, give it to the app): "))
        .expect("the secret is printed")
        .to_owned();
    let block = &out[out
        .find("[[oidc_provider.clients]]")
        .expect("the block is printed")..];
    assert!(!block.contains(&secret), "only the hash goes in the file");
    let config = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(&site.config, format!("{config}\n{block}")).unwrap();
    let (ok, out, _) = output(&site, &["oidc", "client", "list"]);
    assert!(ok && out.contains("grafana\tconfidential"), "{out}");
    let (ok, out, err) = output(&site, &["oidc", "client", "remove", "grafana"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("0 grant(s) ended") && out.contains("delete its"),
        "{out}"
    );
    let server = site.start(&[]);
    let token = |secret: String| {
        let req = server
            .client
            .post(server.url("/api/oidc/token"))
            .basic_auth("grafana", Some(secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "none.such"),
            ]);
        async move { req.send().await.unwrap() }
    };
    // The client is known by its secret: past authentication, the made-up
    // refresh token is what is refused.
    let res = token(secret.clone()).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    let res = token(format!("{secret}x")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A second client of the same id is refused.
    drop(server);
    let (ok, _, err) = output(
        &site,
        &[
            "oidc",
            "client",
            "add",
            "grafana",
            "--redirect",
            "https://x.example/cb",
        ],
    );
    assert!(!ok && err.contains("already"), "{err}");
}

#[tokio::test]
async fn signing_keys_survive_a_restart_and_a_rotation_keeps_the_old_ones_published() {
    let site = Site::new(PROVIDER);
    let server = site.start(&[]);
    let first = kids(&server).await;
    assert_eq!(first.len(), 2);
    drop(server);
    let server = site.start(&[]);
    assert_eq!(kids(&server).await, first, "the same keys after a restart");
    drop(server);
    let (ok, out, err) = output(&site, &["oidc", "rotate-key"]);
    assert!(ok, "{err}");
    let server = site.start(&[]);
    let now = kids(&server).await;
    assert_eq!(now.len(), 4, "{now:?}");
    assert!(
        first.iter().all(|k| now.contains(k)),
        "the old keys stay published"
    );
    let new: Vec<&String> = now.iter().filter(|k| !first.contains(k)).collect();
    assert!(new.iter().all(|k| out.contains(k.as_str())), "{out}");
}

#[test]
fn production_refuses_an_issuer_that_is_not_https() {
    let site =
        Site::new("[oidc_provider]\nenabled = true\nissuer = \"http://login.example.com\"\n");
    let (status, stderr) = site.run(
        &["serve"],
        &[
            ("SESSIOND_ENV", "production"),
            ("SESSION_SECRET", "a production secret of enough length!!"),
        ],
        "",
    );
    assert!(!status.success());
    assert!(stderr.contains("oidc_provider.issuer"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
}

/// `POST /api/oidc/token` with a form.
async fn token(server: &Server, form: Vec<(&str, String)>) -> reqwest::Response {
    let req = server.client.post(server.url("/api/oidc/token"));
    req.form(&form).send().await.unwrap()
}

/// A relying party's back-channel logout endpoint: `(uri, logout tokens)`.
async fn backchannel() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use warp::Filter;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let route = warp::post()
        .and(warp::path("bc"))
        .and(warp::body::form())
        .map(move |form: std::collections::HashMap<String, String>| {
            let _ = tx.send(form.get("logout_token").cloned().unwrap_or_default());
            warp::reply()
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/bc"), rx)
}

#[tokio::test]
async fn a_session_ended_while_the_server_was_down_is_told_to_the_app_at_the_next_start() {
    use base64::Engine;
    use sha2::Digest;
    let (uri, mut told) = backchannel().await;
    let redirect = "http://127.0.0.1:9/cb";
    let site = Site::new(&format!(
        "{PROVIDER}\n[[oidc_provider.clients]]\nid = \"wiki\"\nredirect_uris = [\"{redirect}\"]\nconsent = \"implicit\"\n\
         backchannel_logout_uri = \"{uri}\"\n"
    ));
    let server = site.start(&[]);
    server.register("odile").await;
    let cookie = server.login_cookie("odile").await;
    let verifier = "a-verifier-of-more-than-forty-three-characters-for-pkce";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = browser
        .get(server.url("/api/oidc/authorize"))
        .header("cookie", &cookie)
        .query(&[
            ("client_id", "wiki"),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    let to = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let code = to
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap_or_else(|| panic!("{to}"))
        .1;
    let res = token(
        &server,
        vec![
            ("grant_type", "authorization_code".into()),
            ("client_id", "wiki".into()),
            ("code", code.into_owned()),
            ("redirect_uri", redirect.into()),
            ("code_verifier", verifier.into()),
        ],
    )
    .await;
    let tokens: Value = res.json().await.unwrap();
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    // Stopped; the operator sets her password offline, which ends her
    // sessions with no server there to tell the wiki.
    drop(server);
    let (status, err) = site.run(
        &["user", "passwd", "odile", "--password-stdin"],
        &[],
        "a new password, set offline\n",
    );
    assert!(status.success(), "{err}");
    let early = tokio::time::timeout(Duration::from_millis(500), told.recv()).await;
    assert!(early.is_err(), "nobody was there to tell the wiki yet");
    let server = site.start(&[]);
    let logout = tokio::time::timeout(Duration::from_secs(10), told.recv())
        .await
        .expect("the wiki hears of it within 10 s of the start")
        .unwrap();
    // The wiki's own session and user, as its ID token named them.
    let claims = |jwt: &str| -> Value {
        let payload = jwt.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let (said, id) = (
        claims(&logout),
        claims(tokens["id_token"].as_str().unwrap()),
    );
    assert_eq!(said["sid"], id["sid"]);
    assert_eq!(said["sub"], id["sub"]);
    assert!(said["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    let res = token(
        &server,
        vec![
            ("grant_type", "refresh_token".into()),
            ("client_id", "wiki".into()),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().unwrap().into(),
            ),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    drop(server);
}
