//! The OpenID Connect provider's token endpoint: code exchanges/s and
//! refreshes/s by a confidential client (HTTP Basic, its secret checked
//! with argon2 once and then by its SHA-256), and what a resource server
//! pays to check an access token against the JWKS alone.

use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use serde_json::Value;
use sessiond::config::{ClientConfig, Config, Consent, SigningAlg};
use sessiond::domain::{Email, Password, Role, Username};
use sessiond::server::Application;

use super::{row, Row, Scale};

const SECRET: &str = "a bench client secret";
const REDIRECT: &str = "http://127.0.0.1:9/cb";
/// Requests in flight at once.
const CONCURRENCY: usize = 32;

pub async fn rows(scale: &Scale) -> Vec<Row> {
    eprintln!("the OIDC token endpoint ...");
    let n = scale.oidc_grants;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.storage.data_dir = dir.path().to_owned();
    let passwords = sessiond::auth::Passwords::new(&config.auth).unwrap();
    let secret_hash = passwords
        .hash(&Password::unchecked(SECRET.into()))
        .await
        .unwrap();
    config.oidc_provider.enabled = true;
    config.oidc_provider.clients = vec![ClientConfig {
        id: "bench".into(),
        name: String::new(),
        secret_hash,
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![],
        scopes: ["openid", "profile", "email"].map(String::from).to_vec(),
        consent: Consent::Implicit,
        backchannel_logout_uri: String::new(),
        id_token_signed_response_alg: SigningAlg::RS256,
    }];
    let app = Application::build(config).await.unwrap();
    let base = format!("http://{}", app.addr());
    app.auth()
        .create_user(
            Username::parse("bench").unwrap(),
            Email::parse("bench@example.com").unwrap(),
            Password::unchecked("a long bench password".into()),
            Role::User,
            &sessiond::auth::By::operator(),
        )
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let login = http
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"username": "bench", "password": "a long bench password"}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // Codes first (they live a minute), each from its own authorization.
    let codes: Vec<String> = stream::iter(0..n)
        .map(|_| {
            let (http, base, cookie) = (http.clone(), base.clone(), cookie.clone());
            async move {
                let res = http
                    .get(format!("{base}/api/oidc/authorize"))
                    .query(&[
                        ("client_id", "bench"),
                        ("redirect_uri", REDIRECT),
                        ("response_type", "code"),
                        ("scope", "openid profile email"),
                    ])
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap();
                let to = res.headers()["location"].to_str().unwrap();
                url::Url::parse(to)
                    .unwrap()
                    .query_pairs()
                    .find(|(k, _)| k == "code")
                    .unwrap()
                    .1
                    .into_owned()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let token = |form: Vec<(&'static str, String)>| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let res = http
                .post(format!("{base}/api/oidc/token"))
                .basic_auth("bench", Some(SECRET))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success(), "{}", res.status());
            res.json::<Value>().await.unwrap()
        }
    };
    // The first exchange pays argon2 for the secret; the rest do not.
    let started = Instant::now();
    let answers: Vec<Value> = stream::iter(codes)
        .map(|code| {
            token(vec![
                ("grant_type", "authorization_code".into()),
                ("code", code),
                ("redirect_uri", REDIRECT.into()),
            ])
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let exchanges = n as f64 / started.elapsed().as_secs_f64();
    let refresh_tokens: Vec<String> = answers
        .iter()
        .map(|a| a["refresh_token"].as_str().unwrap().to_owned())
        .collect();
    let started = Instant::now();
    let refreshed: Vec<Value> = stream::iter(refresh_tokens)
        .map(|rt| {
            token(vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", rt),
            ])
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let refreshes = n as f64 / started.elapsed().as_secs_f64();
    // A resource server: the JWKS fetched once, each token checked offline.
    let jwks: jsonwebtoken::jwk::JwkSet = http
        .get(format!("{base}/api/oidc/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tokens: Vec<String> = refreshed
        .iter()
        .map(|a| a["access_token"].as_str().unwrap().to_owned())
        .collect();
    // Its keys parsed once per `kid`, as a resource server caches them.
    let keys: std::collections::HashMap<String, jsonwebtoken::DecodingKey> = jwks
        .keys
        .iter()
        .map(|k| {
            let kid = k.common.key_id.clone().unwrap();
            (kid, jsonwebtoken::DecodingKey::from_jwk(k).unwrap())
        })
        .collect();
    let started = Instant::now();
    let rounds = 5;
    for _ in 0..rounds {
        for t in &tokens {
            let header = jsonwebtoken::decode_header(t).unwrap();
            let key = &keys[header.kid.as_deref().unwrap()];
            let mut v = jsonwebtoken::Validation::new(header.alg);
            v.set_issuer(&[&base]);
            v.set_audience(&["bench"]);
            jsonwebtoken::decode::<Value>(t, key, &v).unwrap();
        }
    }
    let check_us = started.elapsed().as_secs_f64() * 1e6 / (rounds * tokens.len()) as f64;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), served).await;
    vec![
        row(
            "OIDC token endpoint: code exchanges/s (confidential client, Basic; 32 in flight)",
            format!("{exchanges:.0}/s over {n}"),
            "reported",
            None,
        ),
        row(
            "OIDC token endpoint: refreshes/s (rotation; 32 in flight)",
            format!("{refreshes:.0}/s over {n}"),
            "reported",
            None,
        ),
        row(
            "an access token checked by a resource server against the JWKS (RS256, keys parsed once)",
            format!("{check_us:.1} us per token"),
            "reported",
            None,
        ),
    ]
}
