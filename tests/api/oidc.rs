//! A provider for ID-token tests: signing keys generated here (RSA and
//! P-256), a JWKS server on loopback that can rotate keys, go down or
//! answer slowly and counts its fetches, and Firebase-shaped tokens.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sessiond::config::ProviderConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A signing key and its public JWK.
#[derive(Clone)]
pub struct Signer {
    pub kid: String,
    pub alg: Algorithm,
    key: EncodingKey,
    pub jwk: Value,
}

impl Signer {
    fn new(kid: &str, alg: Algorithm, key: EncodingKey) -> Signer {
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&key, alg).unwrap()).unwrap();
        jwk["kid"] = json!(kid);
        Signer {
            kid: kid.to_owned(),
            alg,
            key,
            jwk,
        }
    }

    /// Signs `claims` with this key, naming it in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let header = Header {
            kid: Some(self.kid.clone()),
            ..Header::new(self.alg)
        };
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

/// RSA keys are slow to make: a few, made once per test run.
pub fn rsa_signer(n: usize) -> Signer {
    static KEYS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        (0..3)
            .map(|_| {
                rsa::RsaPrivateKey::new(&mut rng, 2048)
                    .unwrap()
                    .to_pkcs1_der()
                    .unwrap()
                    .as_bytes()
                    .to_vec()
            })
            .collect()
    });
    Signer::new(
        &format!("rsa-{n}"),
        Algorithm::RS256,
        EncodingKey::from_rsa_der(&keys[n]),
    )
}

/// A fresh P-256 key.
pub fn ec_signer(kid: &str) -> Signer {
    use p256::elliptic_curve::Generate;
    use p256::pkcs8::EncodePrivateKey;
    let secret = p256::SecretKey::generate();
    let der = secret.to_pkcs8_der().unwrap();
    Signer::new(
        kid,
        Algorithm::ES256,
        EncodingKey::from_ec_der(der.as_bytes()),
    )
}

/// What the JWKS server serves and how.
pub struct Jwks {
    pub keys: Mutex<Vec<Value>>,
    pub max_age: Mutex<u64>,
    pub fetches: AtomicUsize,
    pub down: AtomicBool,
    pub delay: Mutex<Duration>,
}

impl Jwks {
    pub fn publish(&self, signers: &[&Signer]) {
        *self.keys.lock().unwrap() = signers.iter().map(|s| s.jwk.clone()).collect();
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A JWKS server on loopback publishing `signers`.
pub async fn jwks_server(signers: &[&Signer]) -> (SocketAddr, Arc<Jwks>) {
    let jwks = Arc::new(Jwks {
        keys: Mutex::new(Vec::new()),
        max_age: Mutex::new(3600),
        fetches: AtomicUsize::new(0),
        down: AtomicBool::new(false),
        delay: Mutex::new(Duration::ZERO),
    });
    jwks.publish(signers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = jwks.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                state.fetches.fetch_add(1, Ordering::SeqCst);
                let delay = *state.delay.lock().unwrap();
                tokio::time::sleep(delay).await;
                let answer = if state.down.load(Ordering::SeqCst) {
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_owned()
                } else {
                    let body = json!({ "keys": *state.keys.lock().unwrap() }).to_string();
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: public, max-age={}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        *state.max_age.lock().unwrap(),
                        body.len()
                    )
                };
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, jwks)
}

/// A Firebase project as sessiond's config names it.
pub fn firebase_provider(project: &str, jwks: SocketAddr) -> ProviderConfig {
    ProviderConfig {
        name: "firebase".into(),
        issuer: format!("https://securetoken.google.com/{project}"),
        audience: project.into(),
        jwks_url: format!("http://{jwks}/jwks"),
        auto_register: true,
        clock_skew: Duration::from_secs(60),
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims shaped like a Firebase ID token's.
pub fn firebase_claims(project: &str, sub: &str, email: Option<&str>) -> Value {
    let now = now();
    let mut claims = json!({
        "iss": format!("https://securetoken.google.com/{project}"),
        "aud": project,
        "auth_time": now - 5,
        "user_id": sub,
        "sub": sub,
        "iat": now - 5,
        "exp": now + 3600,
        "firebase": {"sign_in_provider": "google.com", "identities": {}},
    });
    if let Some(email) = email {
        claims["email"] = json!(email);
        claims["email_verified"] = json!(true);
    }
    claims
}
