//! Logs name requests, never secrets; the data dir holds no secret either.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn no_password_cookie_or_token_reaches_the_log() {
    let site = Site::new("");
    let server = site.start(&[("RUST_LOG", "trace")]);
    server.register("alice").await;
    let wrong = "a wrong password used once";
    assert_eq!(
        server.login("alice", wrong).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let cookie = server.login_cookie("alice").await;
    assert_eq!(server.me(&cookie).await, StatusCode::OK);
    assert_eq!(server.logout(&cookie).await, StatusCode::NO_CONTENT);
    let (status, log) = server.stop_with("-TERM");
    assert!(status.success());

    assert!(
        log.contains("/api/auth/login") && log.contains("status=200"),
        "requests are logged:\n{log}"
    );
    let value = cookie.split_once('=').unwrap().1;
    let (signature, token) = value.split_at(44);
    for secret in [PASSWORD, wrong, value, signature, token] {
        assert!(!log.contains(secret), "the log contains a secret: {secret}");
    }

    // Each security event is one line on its own target, for shippers.
    let kinds: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sessiond::audit"))
        .map(|l| {
            assert!(l.contains("actor=user"), "{l}");
            l.split("kind=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(kinds, ["user_created", "login_failed", "login", "logout"]);
    // The offline CLI's changes too, on stderr, by the operator.
    let (status, stderr) = site.run(&["user", "set-role", "alice", "admin"], &[], "");
    assert!(status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("sessiond::audit"))
        .expect(&stderr);
    assert!(
        line.contains("kind=role_changed") && line.contains("actor=admin"),
        "{line}"
    );
}

/// Every file under `dir`, concatenated.
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn no_password_cookie_or_token_is_stored_on_disk() {
    let site = Site::new("");
    let server = site.start(&[]);
    server.register("alice").await;
    let cookie = server.login_cookie("alice").await;
    let second = server.login_cookie("alice").await;
    assert_eq!(server.me(&cookie).await, StatusCode::OK);
    assert_eq!(server.logout(&second).await, StatusCode::NO_CONTENT);
    let (status, _) = server.stop_with("-TERM");
    assert!(status.success());

    let disk = all_bytes(&site.data_dir());
    // A control: plain record text is found, so a secret stored would be.
    assert!(
        contains(&disk, b"alice@example.com"),
        "the search reads the records"
    );
    for c in [&cookie, &second] {
        let value = c.split_once('=').unwrap().1;
        let token_hex = &value[44..];
        // The token's last 32 bytes are its random part; the 8 before them
        // are the login time, which the key does carry.
        let token: Vec<u8> = (0..token_hex.len() / 2)
            .map(|i| u8::from_str_radix(&token_hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let token = token[token.len() - 32..].to_vec();
        let needles: Vec<(&str, Vec<u8>)> = vec![
            ("cookie value", value.as_bytes().to_vec()),
            ("signature", value.as_bytes()[..44].to_vec()),
            ("token hex", token_hex.as_bytes().to_vec()),
            ("token's random bytes", token.clone()),
            ("token base64", base64(&token).into_bytes()),
        ];
        for (what, needle) in needles {
            assert!(!contains(&disk, &needle), "the data dir holds a {what}");
        }
    }
    assert!(
        !contains(&disk, PASSWORD.as_bytes()),
        "the data dir holds the password"
    );
}

/// Standard base64 with padding (what a careless encoder would write).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
