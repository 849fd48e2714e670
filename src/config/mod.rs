//! Typed settings: built-in defaults, then `config.toml`, then environment.
//!
//! Every problem is reported as one line naming the key or variable, so an
//! operator can fix it without reading code.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

mod audit;
mod backup;
mod mail;
mod oidc_provider;

pub use audit::AuditConfig;
pub use backup::BackupConfig;
pub use mail::{MailConfig, SmtpServer, SmtpTls};
pub use oidc_provider::{ClientConfig, Consent, OidcProviderConfig, SigningAlg, KNOWN_SCOPES};

/// A setting that cannot be used, named the way the operator wrote it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file named.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key is unknown, mistyped or out of range.
    #[error("config error in {origin}: {key}: {message}")]
    Invalid {
        /// The file, or "environment".
        origin: String,
        /// The dotted key or variable name.
        key: String,
        /// What is wrong, in one line.
        message: String,
    },
}

/// The whole configuration; every key optional with the contract's default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[storage]`
    pub storage: StorageConfig,
    /// `[session]`
    pub session: SessionConfig,
    /// `[auth]`
    pub auth: AuthConfig,
    /// `[chat]`
    pub chat: ChatConfig,
    /// `[forward_auth]`
    pub forward_auth: ForwardAuthConfig,
    /// `[oidc]`: ID-token sign-in providers.
    pub oidc: OidcConfig,
    /// `[webauthn]`: passkeys and security keys.
    pub webauthn: WebauthnConfig,
    /// `[mail]`: the SMTP server for recovery codes and notices.
    pub mail: MailConfig,
    /// `[backup]`: backups the server takes by itself.
    pub backup: BackupConfig,
    /// `[audit]`: how long the security log keeps entries.
    pub audit: AuditConfig,
    /// `[oidc_provider]`: "sign in with sessiond" for other apps.
    pub oidc_provider: OidcProviderConfig,
    /// Secrets come only from the environment, never from the file.
    #[serde(skip)]
    pub secrets: Secrets,
}

/// How the server faces the network.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind; port 0 picks a free one (tests).
    pub listen: SocketAddr,
    /// Production turns on Secure cookies and requires a real secret.
    pub environment: Environment,
    /// Origins trusted besides the server's own host.
    pub allowed_origins: Vec<String>,
    /// Believe `X-Forwarded-For` / `-Proto` from a reverse proxy.
    pub trust_proxy: bool,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// HTTP connections served at once; past it, new ones wait in the
    /// listen backlog, so idle clients cannot starve the users already in.
    pub max_connections: usize,
    /// Serve the page at `/` (false: 404).
    pub ui: bool,
    /// Where users reach the server (`https://auth.example`); empty: the
    /// address it listens on. WebAuthn's origin by default.
    pub public_url: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            environment: Environment::Development,
            allowed_origins: Vec::new(),
            trust_proxy: false,
            max_body_bytes: 16 * 1024,
            max_connections: 4096,
            ui: true,
            public_url: String::new(),
        }
    }
}

/// Development generates a secret for you; production insists on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local work: generated secret, cookies without Secure.
    Development,
    /// Real traffic: Secure cookies, `SESSION_SECRET` required.
    Production,
}

impl TryFrom<&str> for Environment {
    type Error = String;
    fn try_from(raw: &str) -> Result<Self, String> {
        match raw {
            "development" => Ok(Self::Development),
            "production" => Ok(Self::Production),
            other => Err(format!(
                "unknown environment {other:?}; use \"development\" or \"production\""
            )),
        }
    }
}

/// Where and how safely data is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The database lives in `<data_dir>/db`, the dev secret beside it.
    pub data_dir: PathBuf,
    /// sled's page cache.
    pub cache_capacity_mb: u64,
    /// Whether an answer waits for the disk.
    pub durability: Durability,
    /// How often "periodic" flushes.
    #[serde(deserialize_with = "duration")]
    pub flush_interval: Duration,
    /// Which backend holds the data.
    pub backend: Backend,
    /// The Redis server (`redis://` or `redis+unix://`), for `backend = "redis"`.
    pub redis_url: String,
    /// Every Redis key starts with it, so deployments can share a server.
    pub redis_key_prefix: String,
    /// The longest wait for one Redis round trip before 503.
    #[serde(deserialize_with = "duration")]
    pub redis_timeout: Duration,
    /// `redis_url` names one node of a Redis Cluster.
    pub redis_cluster: bool,
    /// With `durability = "sync"`, replicas that must hold each write.
    pub redis_wait_replicas: u32,
}

/// Where users and sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded, in `<data_dir>/db`: one process.
    Sled,
    /// A Redis server shared by any number of instances.
    Redis,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            cache_capacity_mb: 64,
            durability: Durability::Sync,
            flush_interval: Duration::from_millis(500),
            backend: Backend::Sled,
            redis_url: "redis://127.0.0.1:6379/0".into(),
            redis_key_prefix: "sessiond:".into(),
            redis_timeout: Duration::from_secs(1),
            redis_cluster: false,
            redis_wait_replicas: 0,
        }
    }
}

/// The trade between a disk write per login and losing the last moments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Logins, logouts and revocations are answered once on disk.
    Sync,
    /// The disk is written every `flush_interval`.
    Periodic,
}

/// The session cookie and the session's lifetime.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Cookie name; `__Host-` forces Secure and Path=/.
    pub cookie_name: String,
    /// A session ends this long after login.
    #[serde(deserialize_with = "duration")]
    pub absolute_timeout: Duration,
    /// ... or this long after its last activity.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// Activity is written at most this often per session.
    #[serde(deserialize_with = "duration")]
    pub touch_interval: Duration,
    /// The cookie's SameSite attribute.
    pub same_site: SameSite,
    /// The cookie's Secure attribute.
    pub secure: Secure,
    /// The longest the pruner sleeps between passes.
    #[serde(deserialize_with = "duration")]
    pub prune_interval: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            cookie_name: "connect.sid".into(),
            absolute_timeout: Duration::from_secs(24 * 3600),
            idle_timeout: Duration::from_secs(2 * 3600),
            touch_interval: Duration::from_secs(60),
            same_site: SameSite::Lax,
            secure: Secure::Auto,
            prune_interval: Duration::from_secs(60),
        }
    }
}

impl SessionConfig {
    /// Whether cookies carry `Secure`, all rules applied.
    pub fn cookie_secure(&self, env: Environment) -> bool {
        self.cookie_name.starts_with("__Host-")
            || self.cookie_name.starts_with("__Secure-")
            || match self.secure {
                Secure::Auto => env == Environment::Production,
                Secure::Always => true,
                Secure::Never => false,
            }
    }
}

/// The cookie's SameSite attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// Never sent cross-site.
    Strict,
    /// Sent on top-level navigation.
    Lax,
    /// Always sent (browsers then require Secure).
    None,
}

/// `secure = "auto" | true | false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secure {
    /// On in production.
    Auto,
    /// Always on.
    Always,
    /// Always off.
    Never,
}

impl<'de> Deserialize<'de> for Secure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected \"auto\", true or false"))?
        {
            Raw::Bool(true) => Ok(Secure::Always),
            Raw::Bool(false) => Ok(Secure::Never),
            Raw::Text(t) if t == "auto" => Ok(Secure::Auto),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "expected \"auto\", true or false, found {t:?}"
            ))),
        }
    }
}

/// Who may register and how passwords are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// "open" lets anyone register; "closed" leaves it to the CLI.
    pub registration: Registration,
    /// Shortest password accepted.
    pub min_password_length: usize,
    /// Longest password accepted.
    pub max_password_length: usize,
    /// argon2id memory cost.
    pub argon2_memory_kib: u32,
    /// argon2id time cost.
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Failed logins per account per 15 minutes before 429.
    pub max_failed_logins_per_account: u32,
    /// Failed logins per client IP per 15 minutes before 429.
    pub max_failed_logins_per_ip: u32,
    /// Who must have a second factor before reaching anything else.
    pub require_mfa: RequireMfa,
    /// Failed second-factor codes per account per 15 minutes before 429
    /// (the admin unlock clears it).
    pub max_failed_mfa_per_account: u32,
    /// How recent a proof (a sign-in, or `POST /api/auth/reauth`) must be
    /// to add or remove factors.
    #[serde(deserialize_with = "duration")]
    pub reauth_window: Duration,
    /// Refuse password sign-in to users whose e-mail is not verified.
    pub require_verified_email: bool,
}

/// `auth.require_mfa`: whose password alone is not enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequireMfa {
    /// Nobody must; anyone may.
    Off,
    /// Admins must.
    Admins,
    /// Everyone must.
    All,
}

impl RequireMfa {
    /// Whether a user of `role` must have a second factor.
    pub fn applies_to(self, role: crate::domain::Role) -> bool {
        match self {
            RequireMfa::Off => false,
            RequireMfa::Admins => role == crate::domain::Role::Admin,
            RequireMfa::All => true,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            registration: Registration::Open,
            min_password_length: 12,
            max_password_length: 128,
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            max_failed_logins_per_account: 10,
            max_failed_logins_per_ip: 50,
            require_mfa: RequireMfa::Off,
            max_failed_mfa_per_account: 5,
            reauth_window: Duration::from_secs(5 * 60),
            require_verified_email: false,
        }
    }
}

/// Whether `POST /api/auth/register` is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone may register.
    Open,
    /// Only the CLI adds users.
    Closed,
}

/// Chat limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Longest message text.
    pub max_message_chars: usize,
    /// Per connection.
    pub max_messages_per_second: u32,
    /// Messages sent with `joined`.
    pub history_on_join: usize,
    /// Sockets one user may hold.
    pub max_sockets_per_user: usize,
    /// An idle socket is pinged this often; one silent for two pings is dropped.
    #[serde(deserialize_with = "duration")]
    pub ping_interval: Duration,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            max_message_chars: 4000,
            max_messages_per_second: 20,
            history_on_join: 50,
            max_sockets_per_user: 16,
            ping_interval: Duration::from_secs(30),
        }
    }
}

/// `GET /api/auth/verify`, the check a reverse proxy asks before it lets
/// a request through to the app behind it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// Where a browser without a session is sent, with `?rd=` naming the
    /// page it wanted: a path on the app's own origin (the example proxy
    /// configs route sessiond's page there) or an absolute URL.
    pub sign_in_url: String,
    /// Hosts (`host` or `host:port`) that `rd` may name besides the host
    /// the request came to; anything else gets no redirect.
    pub allowed_redirect_hosts: Vec<String>,
    /// The identity headers' names.
    pub headers: IdentityHeaders,
}

impl Default for ForwardAuthConfig {
    fn default() -> Self {
        Self {
            sign_in_url: "/".into(),
            allowed_redirect_hosts: Vec::new(),
            headers: IdentityHeaders::default(),
        }
    }
}

/// Names of the headers a 204 from `/api/auth/verify` carries.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityHeaders {
    /// The user's id.
    pub user_id: String,
    /// The user name.
    pub user: String,
    /// The e-mail address.
    pub email: String,
    /// `user` or `admin`.
    pub role: String,
    /// The session's public id.
    pub session_id: String,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            user_id: "X-Auth-User-Id".into(),
            user: "X-Auth-User".into(),
            email: "X-Auth-Email".into(),
            role: "X-Auth-Role".into(),
            session_id: "X-Auth-Session-Id".into(),
        }
    }
}

impl IdentityHeaders {
    /// Each configured name with its dotted key, for validation.
    pub fn named(&self) -> [(&'static str, &str); 5] {
        [
            ("forward_auth.headers.user_id", &self.user_id),
            ("forward_auth.headers.user", &self.user),
            ("forward_auth.headers.email", &self.email),
            ("forward_auth.headers.role", &self.role),
            ("forward_auth.headers.session_id", &self.session_id),
        ]
    }
}

/// `[webauthn]`: the relying party passkeys are bound to. A passkey made
/// for one `rp_id` never works under another, so the defaults follow where
/// the server is reached.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebauthnConfig {
    /// The registrable domain every origin is under; empty: the first
    /// origin's host.
    pub rp_id: String,
    /// Shown by the authenticator.
    pub rp_name: String,
    /// Pages that may run a ceremony; empty: `server.public_url`, else
    /// `http://localhost:<port>`.
    pub origins: Vec<String>,
}

impl Default for WebauthnConfig {
    fn default() -> Self {
        Self {
            rp_id: String::new(),
            rp_name: "sessiond".into(),
            origins: Vec::new(),
        }
    }
}

/// The relying party as the server uses it, every default settled.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    /// `rp_id`.
    pub id: String,
    /// `rp_name`.
    pub name: String,
    /// The origins, parsed; never empty.
    pub origins: Vec<url::Url>,
}

impl Config {
    /// Where a person reaches the page, for links in mail:
    /// `server.public_url` without its trailing `/`, else the address the
    /// server listens on.
    pub fn page_url(&self) -> String {
        match self.server.public_url.trim_end_matches('/') {
            "" => format!("http://{}", self.server.listen),
            url => url.to_owned(),
        }
    }
}

impl Config {
    /// `[webauthn]` with its defaults settled for a server bound to
    /// `port`; one line naming the key when the origins and `rp_id` (or
    /// `server.public_url` and `server.allowed_origins`) disagree.
    pub fn relying_party(&self, port: u16) -> Result<RelyingParty, ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            origin: "config".into(),
            key: key.into(),
            message,
        };
        let w = &self.webauthn;
        let public = match self.server.public_url.as_str() {
            "" => None,
            raw => Some(
                url::Url::parse(raw)
                    .map_err(|e| bad("server.public_url", format!("not a URL ({e})")))?,
            ),
        };
        let explicit = !w.origins.is_empty();
        let origins: Vec<url::Url> = if explicit {
            w.origins
                .iter()
                .map(|o| {
                    url::Url::parse(o)
                        .map_err(|e| bad("webauthn.origins", format!("{o:?} is not a URL ({e})")))
                })
                .collect::<Result<_, _>>()?
        } else {
            // A browser refuses an IP address as an RP ID: localhost is
            // this machine's name WebAuthn accepts.
            let local = url::Url::parse(&format!("http://localhost:{port}")).expect("a URL");
            public
                .iter()
                .filter(|u| u.domain().is_some())
                .cloned()
                .chain([local])
                .collect()
        };
        let id = match w.rp_id.as_str() {
            "" => origins[0].domain().unwrap_or_default().to_owned(),
            id => id.to_owned(),
        };
        let covered = |u: &url::Url| {
            u.domain()
                .is_some_and(|d| d == id || d.ends_with(&format!(".{id}")))
        };
        let origins: Vec<url::Url> = if explicit {
            for o in &origins {
                if !matches!(o.scheme(), "http" | "https") || o.path() != "/" || o.query().is_some()
                {
                    return Err(bad(
                        "webauthn.origins",
                        format!("{o} is not an origin like https://auth.example"),
                    ));
                }
                if !covered(o) {
                    return Err(bad(
                        "webauthn.rp_id",
                        format!("{id:?} does not cover the origin {o} (its host must be rp_id or under it, and not an IP address)"),
                    ));
                }
                if o.scheme() == "http" && o.domain() != Some("localhost") {
                    return Err(bad(
                        "webauthn.origins",
                        format!("{o}: browsers run WebAuthn only on https (or http://localhost)"),
                    ));
                }
                let listed = public.as_ref().is_none_or(|p| p.origin() == o.origin())
                    || self
                        .server
                        .allowed_origins
                        .iter()
                        .any(|a| url::Url::parse(a).is_ok_and(|a| a.origin() == o.origin()));
                if !listed {
                    return Err(bad(
                        "webauthn.origins",
                        format!("{o} is neither server.public_url nor in server.allowed_origins, so its requests would be refused"),
                    ));
                }
            }
            origins
        } else {
            origins.into_iter().filter(covered).collect()
        };
        if origins.is_empty() {
            return Err(bad(
                "webauthn.rp_id",
                format!("{id:?} covers none of the origins"),
            ));
        }
        Ok(RelyingParty {
            id,
            name: w.rp_name.clone(),
            origins,
        })
    }
}

/// `[[oidc.providers]]`: whose ID tokens `POST /api/auth/idtoken` takes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// Several at once; each issuer once.
    pub providers: Vec<ProviderConfig>,
}

/// One ID-token issuer (a Firebase project, any OIDC provider).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Shown in identities and the sign-in page ("firebase").
    pub name: String,
    /// The token's `iss`, exactly.
    pub issuer: String,
    /// The token's `aud` (a Firebase project id, an OIDC client id).
    pub audience: String,
    /// Where the signing keys are: `https://`, or `http://` on loopback.
    pub jwks_url: String,
    /// A first sign-in creates a local user; false: 403 `not_linked`
    /// until a signed-in user links the identity.
    #[serde(default = "yes")]
    pub auto_register: bool,
    /// Leeway for `exp`, `iat` and `auth_time`.
    #[serde(default = "sixty_seconds", deserialize_with = "duration")]
    pub clock_skew: Duration,
}

fn yes() -> bool {
    true
}

fn sixty_seconds() -> Duration {
    Duration::from_secs(60)
}

/// Secret bytes that never print.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret material.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes, for key derivation only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// `SESSION_SECRET` and `SESSION_SECRET_OLD`.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Signs new cookies.
    pub current: Option<Secret>,
    /// Still accepted when verifying, so a rotation logs nobody out.
    pub old: Vec<Secret>,
}

impl Config {
    /// Loads the file (if any) and applies the environment, as the contract
    /// orders them: `--config` > `SESSIOND_CONFIG` > `./config.toml` > defaults.
    pub fn load(
        explicit: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let from_env = env("SESSIOND_CONFIG").map(PathBuf::from);
        let path = explicit.map(Path::to_path_buf).or(from_env);
        let mut config = match path {
            Some(path) => Self::from_file(&path)?,
            None if Path::new("config.toml").exists() => Self::from_file(Path::new("config.toml"))?,
            None => Config::default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|err| {
            let key = err.path().to_string();
            let inner = err.into_inner();
            let mut message = one_line(inner.message());
            if let Some(span) = inner.span() {
                let (line, column) = line_and_column(text, span.start);
                message = format!("{message} (line {line}, column {column})");
            }
            ConfigError::Invalid {
                origin: origin.to_owned(),
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                message,
            }
        })
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            origin: "environment".into(),
            key: key.into(),
            message,
        };
        if let Some(v) = env("SESSIOND_LISTEN") {
            self.server.listen = v.parse().map_err(|_| {
                bad(
                    "SESSIOND_LISTEN",
                    format!("not an address like 127.0.0.1:8080: {v:?}"),
                )
            })?;
        }
        if let Some(v) = env("SESSIOND_DATA_DIR") {
            self.storage.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("SESSIOND_REDIS_URL") {
            self.storage.redis_url = v;
        }
        if let Some(v) = env("SESSIOND_ENV") {
            self.server.environment =
                Environment::try_from(v.as_str()).map_err(|m| bad("SESSIOND_ENV", m))?;
        }
        if let Some(v) = env("SESSION_SECRET").filter(|v| !v.is_empty()) {
            self.secrets.current = Some(Secret::new(v.into_bytes()));
        }
        if let Some(v) = env("SESSIOND_SMTP_PASSWORD").filter(|v| !v.is_empty()) {
            self.mail.password = Some(Secret::new(v.into_bytes()));
        }
        if let Some(v) = env("SESSION_SECRET_OLD") {
            self.secrets.old = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Secret::new(s.as_bytes().to_vec()))
                .collect();
        }
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                origin: "config".into(),
                key: key.into(),
                message: message.into(),
            })
        };
        let name = &self.session.cookie_name;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return bad("session.cookie_name", "must be a non-empty cookie token");
        }
        if self.session.idle_timeout.is_zero() {
            return bad("session.idle_timeout", "must be longer than zero");
        }
        if self.session.absolute_timeout.is_zero() {
            return bad("session.absolute_timeout", "must be longer than zero");
        }
        if self.session.prune_interval.is_zero() {
            return bad("session.prune_interval", "must be longer than zero");
        }
        if self.chat.ping_interval.is_zero() {
            return bad("chat.ping_interval", "must be longer than zero");
        }
        if self.storage.flush_interval.is_zero() {
            return bad("storage.flush_interval", "must be longer than zero");
        }
        if self.storage.redis_timeout.is_zero() {
            return bad("storage.redis_timeout", "must be longer than zero");
        }
        self.mail.server()?;
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            return bad(
                "mail.from",
                "is not an address (\"sessiond <no-reply@example.com>\" or \"no-reply@example.com\")",
            );
        }
        if self.mail.timeout.is_zero() {
            return bad("mail.timeout", "must be longer than zero");
        }
        if self.backup.scheduled() && self.backup.every < std::time::Duration::from_secs(1) {
            return bad("backup.every", "must be at least a second");
        }
        if self.backup.keep == 0 {
            return bad("backup.keep", "must be at least 1");
        }
        if self.audit.keep < std::time::Duration::from_secs(1) {
            return bad("audit.keep", "must be at least a second");
        }
        if self.audit.max_per_user == 0 {
            return bad("audit.max_per_user", "must be at least 1");
        }
        if self.storage.backend == Backend::Redis {
            if self.storage.redis_cluster && self.storage.redis_wait_replicas > 0 {
                return bad(
                    "storage.redis_wait_replicas",
                    "cannot be used with storage.redis_cluster (WAIT covers one node's writes, and a change spans nodes); set it to 0",
                );
            }
            if let Err(e) = redis::Client::open(self.storage.redis_url.as_str()) {
                return Err(ConfigError::Invalid {
                    origin: "config".into(),
                    key: "storage.redis_url".into(),
                    message: format!(
                        "not a Redis URL ({e}); write redis://HOST:PORT/DB or redis+unix:///PATH?db=N"
                    ),
                });
            }
        }
        if self.server.max_body_bytes == 0 {
            return bad("server.max_body_bytes", "must be at least 1");
        }
        if self.server.max_connections == 0 {
            return bad("server.max_connections", "must be at least 1");
        }
        if self.auth.min_password_length > self.auth.max_password_length {
            return bad(
                "auth.min_password_length",
                "must not exceed auth.max_password_length",
            );
        }
        if argon2_rust::Params::builder()
            .memory(argon2_rust::params::Memory::kib(
                self.auth.argon2_memory_kib as u64,
            ))
            .passes(self.auth.argon2_iterations)
            .lanes(self.auth.argon2_parallelism)
            .build()
            .is_err()
        {
            return bad(
                "auth.argon2_memory_kib",
                "argon2 parameters out of range (memory >= 8 x parallelism KiB, iterations >= 1, parallelism >= 1)",
            );
        }
        if self.auth.max_failed_logins_per_account == 0 {
            return bad("auth.max_failed_logins_per_account", "must be at least 1");
        }
        if self.auth.max_failed_mfa_per_account == 0 {
            return bad("auth.max_failed_mfa_per_account", "must be at least 1");
        }
        if self.auth.max_failed_logins_per_ip == 0 {
            return bad("auth.max_failed_logins_per_ip", "must be at least 1");
        }
        for (key, name) in self.forward_auth.headers.named() {
            if warp::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return bad(key, "must be a valid HTTP header name, like X-Auth-User");
            }
        }
        self.validate_providers()?;
        self.oidc_provider
            .validate(self.server.environment == Environment::Production)?;
        self.relying_party(self.server.listen.port())?;
        let sign_in = &self.forward_auth.sign_in_url;
        if !(sign_in.starts_with('/') && !sign_in.starts_with("//")
            || sign_in.starts_with("http://")
            || sign_in.starts_with("https://"))
        {
            return bad(
                "forward_auth.sign_in_url",
                "must be a path like \"/\" or an http(s) URL",
            );
        }
        Ok(())
    }
}

impl Config {
    fn validate_providers(&self) -> Result<(), ConfigError> {
        let bad = |i: usize, key: &str, message: String| {
            Err(ConfigError::Invalid {
                origin: "config".into(),
                key: format!("oidc.providers[{i}].{key}"),
                message,
            })
        };
        for (i, p) in self.oidc.providers.iter().enumerate() {
            if p.name.is_empty() || p.issuer.is_empty() || p.audience.is_empty() {
                let key = if p.name.is_empty() {
                    "name"
                } else if p.issuer.is_empty() {
                    "issuer"
                } else {
                    "audience"
                };
                return bad(i, key, "must not be empty".into());
            }
            let earlier = &self.oidc.providers[..i];
            if earlier.iter().any(|e| e.issuer == p.issuer) {
                return bad(i, "issuer", format!("{:?} is listed twice", p.issuer));
            }
            if earlier.iter().any(|e| e.name == p.name) {
                return bad(i, "name", format!("{:?} is listed twice", p.name));
            }
            if let Err(why) = check_jwks_url(&p.jwks_url) {
                return bad(i, "jwks_url", why);
            }
        }
        Ok(())
    }
}

/// Keys come over HTTPS; plain HTTP only from this machine (tests, a
/// local provider), where nobody on the path can swap them.
fn check_jwks_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err("must be https:// (plain http:// only on loopback)".into())
            }
        }
        _ => Err("must be an https:// URL".into()),
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1-based line and column of a byte offset, as editors count them.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    /// A bare number is the likeliest mistake: say how to write it.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(f64),
    }
    let raw = match Raw::deserialize(d)? {
        Raw::Text(t) => t,
        Raw::Number(n) => {
            return Err(serde::de::Error::custom(format!(
                "a duration is a string with a unit: write \"{n}s\" (or \"{n}ms\", \"{n}m\", \"{n}h\"), not {n}"
            )))
        }
    };
    humantime::parse_duration(&raw).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {raw:?} ({e}); write it like \"500ms\", \"90s\" or \"2h\""
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn err_line(text: &str) -> String {
        Config::parse(text, "test.toml").unwrap_err().to_string()
    }

    #[test]
    fn webauthn_follows_where_the_server_is_reached() {
        let rp = Config::parse("", "x").unwrap().relying_party(4321).unwrap();
        assert_eq!(rp.id, "localhost");
        assert_eq!(rp.origins[0].as_str(), "http://localhost:4321/");
        let behind = "[server]\npublic_url = \"https://auth.example.com\"\n";
        let rp = Config::parse(behind, "x")
            .unwrap()
            .relying_party(1)
            .unwrap();
        assert_eq!(rp.id, "auth.example.com");
        assert_eq!(rp.origins.len(), 1, "{:?}", rp.origins);
        let parent = format!("{behind}[webauthn]\nrp_id = \"example.com\"\norigins = [\"https://auth.example.com\"]\n");
        assert_eq!(
            Config::parse(&parent, "x")
                .unwrap()
                .relying_party(1)
                .unwrap()
                .id,
            "example.com"
        );
    }

    #[test]
    fn webauthn_settings_that_disagree_are_named_at_start() {
        let bad_line = |text: &str| {
            Config::parse(text, "x")
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        let line = bad_line(
            "[webauthn]\nrp_id = \"example.com\"\norigins = [\"https://evil.example.org\"]\n",
        );
        assert!(
            line.contains("webauthn.rp_id") && line.contains("evil.example.org"),
            "{line}"
        );
        let line = bad_line("[webauthn]\norigins = [\"http://auth.example.com\"]\n");
        assert!(
            line.contains("webauthn.origins") && line.contains("https"),
            "{line}"
        );
        let line = bad_line("[server]\npublic_url = \"https://auth.example.com\"\n[webauthn]\nrp_id = \"example.com\"\norigins = [\"https://app.example.com\"]\n");
        assert!(
            line.contains("webauthn.origins") && line.contains("allowed_origins"),
            "{line}"
        );
        let listed = "[server]\npublic_url = \"https://auth.example.com\"\nallowed_origins = [\"https://app.example.com\"]\n[webauthn]\nrp_id = \"example.com\"\norigins = [\"https://app.example.com\"]\n";
        assert!(Config::parse(listed, "x").unwrap().validate().is_ok());
        let line = bad_line("[webauthn]\norigins = [\"http://127.0.0.1:8080\"]\n");
        assert!(line.contains("webauthn.rp_id"), "{line}");
        let line = bad_line("[server]\npublic_url = \"not a url\"\n");
        assert!(line.contains("server.public_url"), "{line}");
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("", "x").unwrap();
        assert_eq!(c.server.listen.port(), 8080);
        assert_eq!(c.session.cookie_name, "connect.sid");
        assert_eq!(c.session.idle_timeout, Duration::from_secs(7200));
        assert_eq!(c.auth.argon2_memory_kib, 19456);
    }

    #[test]
    fn the_shipped_config_toml_is_exactly_the_defaults() {
        let text = include_str!("../../config.toml");
        let shipped = Config::parse(text, "config.toml").unwrap();
        assert_eq!(format!("{shipped:?}"), format!("{:?}", Config::default()));
        for key in [
            "listen",
            "environment",
            "allowed_origins",
            "trust_proxy",
            "max_body_bytes",
            "max_connections",
            "ui",
            "data_dir",
            "cache_capacity_mb",
            "durability",
            "flush_interval",
            "cookie_name",
            "absolute_timeout",
            "idle_timeout",
            "touch_interval",
            "same_site",
            "secure",
            "prune_interval",
            "registration",
            "min_password_length",
            "max_password_length",
            "argon2_memory_kib",
            "argon2_iterations",
            "argon2_parallelism",
            "max_failed_logins_per_account",
            "max_failed_logins_per_ip",
            "require_mfa",
            "max_failed_mfa_per_account",
            "reauth_window",
            "require_verified_email",
            "public_url",
            "rp_id",
            "rp_name",
            "origins",
            "smtp_url",
            "from",
            "timeout",
            "dir",
            "every",
            "keep",
            "max_message_chars",
            "max_messages_per_second",
            "history_on_join",
            "max_sockets_per_user",
            "sign_in_url",
            "allowed_redirect_hosts",
            "user_id",
            "session_id",
            "enabled",
            "issuer",
            "access_token_ttl",
            "refresh_token_ttl",
        ] {
            assert!(
                text.contains(&format!("\n{key} = ")),
                "config.toml lacks {key}"
            );
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let line = err_line("[server]\nlistn = \"1.2.3.4:5\"\n");
        assert!(line.contains("server.listn"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn unknown_section_is_named() {
        let line = err_line("[servr]\n");
        assert!(line.contains("servr"), "{line}");
    }

    #[test]
    fn wrong_type_is_named() {
        let line = err_line("[server]\nmax_body_bytes = \"big\"\n");
        assert!(line.contains("server.max_body_bytes"), "{line}");
    }

    #[test]
    fn bad_duration_is_named() {
        let line = err_line("[session]\nidle_timeout = \"2 fortnights\"\n");
        assert!(line.contains("session.idle_timeout"), "{line}");
        assert!(line.contains("invalid duration"), "{line}");
    }

    #[test]
    fn a_bare_number_duration_says_to_add_a_unit() {
        let line = err_line("[session]\nidle_timeout = 30\n");
        assert!(line.contains("session.idle_timeout"), "{line}");
        assert!(line.contains(r#"write "30s""#), "{line}");
    }

    #[test]
    fn a_syntax_error_gives_line_and_column() {
        let line = err_line("[server]\ntrust_proxy = false\nlisten = 127.0.0.1:8080\n");
        assert!(line.contains("(line 3, column 15)"), "{line}");
    }

    #[test]
    fn providers_parse_and_their_keys_must_come_over_https() {
        let text = "[[oidc.providers]]\nname = \"firebase\"\nissuer = \"https://securetoken.google.com/p\"\n\
                    audience = \"p\"\njwks_url = \"https://keys.example/jwks\"\n";
        let c = Config::parse(text, "t").unwrap();
        c.validate().unwrap();
        let p = &c.oidc.providers[0];
        assert!(p.auto_register);
        assert_eq!(p.clock_skew, Duration::from_secs(60));
        let plain = text.replace("https://keys", "http://keys");
        let err = Config::parse(&plain, "t").unwrap().validate().unwrap_err();
        assert!(
            err.to_string().contains("oidc.providers[0].jwks_url"),
            "{err}"
        );
        let local = text.replace("https://keys.example", "http://127.0.0.1:9");
        Config::parse(&local, "t").unwrap().validate().unwrap();
    }

    #[test]
    fn redis_cluster_refuses_wait_replicas_naming_the_key() {
        let parse = |text: &str| Config::parse(text, "x").unwrap().validate();
        let cluster = "[storage]\nbackend = \"redis\"\nredis_cluster = true\n";
        assert!(parse(cluster).is_ok());
        let e = parse(&format!("{cluster}redis_wait_replicas = 1\n"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("storage.redis_wait_replicas"), "{e}");
    }

    #[test]
    fn durations_parse() {
        let c = Config::parse("[storage]\nflush_interval = \"250ms\"\n", "x").unwrap();
        assert_eq!(c.storage.flush_interval, Duration::from_millis(250));
    }

    #[test]
    fn secure_accepts_auto_and_bools() {
        let c = Config::parse("[session]\nsecure = true\n", "x").unwrap();
        assert_eq!(c.session.secure, Secure::Always);
        let c = Config::parse("[session]\nsecure = \"auto\"\n", "x").unwrap();
        assert_eq!(c.session.secure, Secure::Auto);
        assert!(err_line("[session]\nsecure = \"yes\"\n").contains("session.secure"));
    }

    #[test]
    fn host_prefix_forces_secure() {
        let mut s = SessionConfig {
            secure: Secure::Never,
            ..SessionConfig::default()
        };
        assert!(!s.cookie_secure(Environment::Development));
        s.cookie_name = "__Host-sid".into();
        assert!(s.cookie_secure(Environment::Development));
    }

    #[test]
    fn environment_overrides_file() {
        let env = |k: &str| match k {
            "SESSIOND_LISTEN" => Some("127.0.0.1:0".to_owned()),
            "SESSIOND_ENV" => Some("production".to_owned()),
            "SESSION_SECRET_OLD" => Some("a, b".to_owned()),
            _ => None,
        };
        let mut c = Config::default();
        c.apply_env(&env).unwrap();
        assert_eq!(c.server.listen.port(), 0);
        assert_eq!(c.server.environment, Environment::Production);
        assert_eq!(c.secrets.old.len(), 2);
    }

    #[test]
    fn bad_environment_variable_is_named() {
        let env = |k: &str| (k == "SESSIOND_ENV").then(|| "staging".to_owned());
        let err = Config::default().apply_env(&env).unwrap_err().to_string();
        assert!(err.contains("SESSIOND_ENV"), "{err}");
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/sessiond.toml")), &no_env);
        assert!(matches!(err, Err(ConfigError::Read { .. })));
    }

    #[test]
    fn validation_names_key() {
        let mut c = Config::default();
        c.session.idle_timeout = Duration::ZERO;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("session.idle_timeout"), "{err}");
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::new(b"supersecretvalue".to_vec());
        assert!(!format!("{s:?}").contains("supersecret"));
    }
}
