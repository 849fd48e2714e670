//! Who someone is: passwords, the signed cookie, login throttling and the
//! session service (login, lookup, touch, end). Knows no HTTP.

mod audit;
mod cookies;
mod identities;
pub mod idtoken;
mod manage;
pub mod mfa;
mod password;
mod pool;
pub mod recovery;
mod throttle;
mod token;
pub mod verification;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use audit::{summary as user_agent_summary, ActivityPage, By};
pub use cookies::SessionCookies;
pub use manage::{end_sessions_of, log_owner, remove_user, set_role, Stats};
pub use mfa::{MfaCounts, PendingSignIn, Proof, SignIn};
pub use password::{verify_blocking, Passwords};
pub use recovery::{RecoveryCounts, RecoveryProof};
pub use throttle::Throttle;
pub use token::SessionToken;

use crate::config::{AuthConfig, Config, Registration, SessionConfig};
use crate::domain::{
    email_key, name_key, Amr, Email, InvalidField, Password, Role, TokenHash, UserId, Username,
};
use crate::store::{now_ms, AuditKind, AuditRecord, SessionRecord, Store, StoreError, UserRecord};

/// What can go wrong when authenticating.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong name or password: one answer for both.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Too many failures; try again after this long.
    #[error("too many failed attempts")]
    Throttled(Duration),
    /// Registration is closed by configuration.
    #[error("registration is closed")]
    RegistrationClosed,
    /// Name registered already.
    #[error("username is taken")]
    UsernameTaken,
    /// E-mail registered already.
    #[error("email is taken")]
    EmailTaken,
    /// No such user (or session).
    #[error("not found")]
    NotFound,
    /// The change would leave no admin.
    #[error("that would leave no admin")]
    LastAdmin,
    /// An ID token failed a check (one answer for every check).
    #[error("invalid ID token")]
    InvalidToken,
    /// The provider's keys cannot be fetched and none are cached.
    #[error("the ID-token provider is unavailable: {0}")]
    ProviderUnavailable(String),
    /// A valid identity linked to nobody, and auto_register is off.
    #[error("that identity is not linked to a user")]
    NotLinked,
    /// The identity is linked to another user.
    #[error("that identity is linked to another user")]
    IdentityTaken,
    /// Unlinking would leave the user no way to sign in.
    #[error("that is the last way to sign in")]
    LastIdentity,
    /// A second step failed: a wrong code, or a pending sign-in that is
    /// not (or no longer) valid: one answer for every cause.
    #[error("the second step failed")]
    MfaFailed,
    /// Changing factors needs a proof within the last 5 minutes.
    #[error("a fresh proof is required")]
    ReauthRequired,
    /// A code that does not match the secret being enrolled.
    #[error("wrong code")]
    WrongCode,
    /// The user has that factor already.
    #[error("that factor is enrolled already")]
    FactorExists,
    /// A confirmation with no enrolment started (or it expired).
    #[error("no enrolment in progress")]
    NoEnrolment,
    /// A key's registration answer that webauthn-rs refused.
    #[error("the authenticator's answer was refused")]
    KeyRefused,
    /// Recovery codes for a user with no factor to recover.
    #[error("no second factor")]
    NoFactor,
    /// The session must enrol a second factor first (`auth.require_mfa`).
    #[error("a second factor must be enrolled first")]
    EnrolmentRequired,
    /// A password change without the current password, which the user has.
    #[error("the current password is required")]
    CurrentPasswordRequired,
    /// A recovery code or link that is wrong, used, expired or for no
    /// one: one answer for every cause.
    #[error("the recovery code or link is not valid")]
    RecoveryFailed,
    /// `auth.require_verified_email`, and the user's address is not.
    #[error("the e-mail address is not verified")]
    EmailUnverified,
    /// A verification asked for an address verified already.
    #[error("the e-mail address is verified already")]
    AlreadyVerified,
    /// The route would send mail, and `[mail]` is not set up.
    #[error("mail is not configured")]
    MailNotConfigured,
    /// An input field breaks a rule.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Settings that cannot work (missing secret, ...): fatal at start.
    #[error("{0}")]
    Config(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// Anything else; never shown to a client.
    #[error("{0}")]
    Unexpected(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UsernameTaken => AuthError::UsernameTaken,
            StoreError::EmailTaken => AuthError::EmailTaken,
            StoreError::NoSuchUser => AuthError::NotFound,
            StoreError::LastAdmin => AuthError::LastAdmin,
            StoreError::IdentityTaken => AuthError::IdentityTaken,
            StoreError::LastIdentity => AuthError::LastIdentity,
            other => AuthError::Store(other),
        }
    }
}

/// How a login names its account.
#[derive(Debug, Clone)]
pub enum LoginName {
    /// By user name, ignoring case.
    Username(String),
    /// By e-mail, ignoring case.
    Email(String),
}

/// What the client told us about itself, kept with the session.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Address used for throttling and shown in session lists.
    pub ip: IpAddr,
    /// `User-Agent`, if sent.
    pub user_agent: Option<String>,
}

/// A request's valid session with its user, read fresh on every request.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    /// Which session.
    pub hash: TokenHash,
    /// Its record after any touch.
    pub session: SessionRecord,
    /// Its user as stored now (role included).
    pub user: UserRecord,
}

/// A new session, with the token only its client will hold.
#[derive(Debug)]
pub struct NewSession {
    /// The bearer secret for the cookie.
    pub token: SessionToken,
    /// As stored.
    pub session: SessionRecord,
    /// Who logged in.
    pub user: UserRecord,
}

/// Login outcomes, for `/metrics`.
#[derive(Debug, Default)]
pub struct LoginCounts {
    /// Logged in.
    pub success: AtomicU64,
    /// Wrong name or password.
    pub failure: AtomicU64,
    /// Refused by throttling.
    pub throttled: AtomicU64,
}

/// The session service: a cheap `Clone` shared by every route.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    cookies: SessionCookies,
    passwords: Passwords,
    idtokens: idtoken::IdTokens,
    throttle: Throttle,
    /// Second-factor guesses, per account (and client IP).
    mfa_throttle: Throttle,
    mfa_counts: MfaCounts,
    factor_keys: mfa::FactorKeys,
    /// The WebAuthn relying party.
    keys: mfa::Keys,
    /// How authenticator apps label this server.
    issuer: String,
    session: SessionConfig,
    auth: AuthConfig,
    logins: LoginCounts,
    /// Where mail waits for the sender task.
    outbox: crate::mail::Outbox,
    /// Whether `[mail]` is set up: without it, recovery by mail is 501.
    mail_enabled: bool,
    /// The page's URL, for links in mail.
    page_url: String,
    /// Recovery requests, per account (and client IP).
    recovery_throttle: Throttle,
    recovery: RecoveryCounts,
    /// Throttled refusals logged lately.
    throttle_notes: audit::ThrottleNotes,
}

/// Which throttle a guess counts against.
#[derive(Debug, Clone, Copy)]
enum Guard {
    /// Passwords: `max_failed_logins_*`.
    Password,
    /// Second-factor codes: `max_failed_mfa_per_account`.
    SecondFactor,
    /// Recovery requests (each counts): `recovery::PER_ACCOUNT`, `PER_IP`.
    Recovery,
}

impl Auth {
    /// Refuses settings that cannot work without touching the disk (a
    /// production server without a usable secret), so a server that will
    /// refuse to start does so before it opens the database.
    pub fn check_config(config: &Config) -> Result<(), AuthError> {
        SessionCookies::check_config(config)
    }

    /// Builds the service; fails on settings that cannot work. In
    /// development without a secret, a store shared by several instances
    /// (Redis) keeps the generated one, so every instance signs alike.
    pub async fn new(config: &Config, store: Store) -> Result<Self, AuthError> {
        let mut shared;
        let mut config = config;
        if config.secrets.current.is_none() {
            if let Some(secret) = store.shared_dev_secret(&cookies::new_dev_secret()).await? {
                shared = config.clone();
                shared.secrets.current = Some(crate::config::Secret::new(secret.into_bytes()));
                config = &shared;
            }
        }
        let cookies = SessionCookies::from_config(config)?;
        let rp = config
            .relying_party(config.server.listen.port())
            .map_err(|e| AuthError::Config(e.to_string()))?;
        let keys = mfa::Keys::new(&rp).map_err(AuthError::Config)?;
        let factor_keys = mfa::FactorKeys::new(
            cookies.derive("sessiond totp seal v1"),
            cookies.derive("sessiond recovery mac v1"),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                cookies,
                factor_keys,
                keys,
                mfa_throttle: Throttle::new(
                    config.auth.max_failed_mfa_per_account,
                    config.auth.max_failed_logins_per_ip,
                ),
                mfa_counts: MfaCounts::default(),
                issuer: "sessiond".into(),
                passwords: Passwords::new(&config.auth)?,
                idtokens: idtoken::IdTokens::new(&config.oidc.providers)
                    .map_err(AuthError::Config)?,
                throttle: Throttle::new(
                    config.auth.max_failed_logins_per_account,
                    config.auth.max_failed_logins_per_ip,
                ),
                session: config.session.clone(),
                auth: config.auth.clone(),
                logins: LoginCounts::default(),
                outbox: crate::mail::Outbox::new(store.clone()),
                mail_enabled: config.mail.enabled(),
                page_url: config.page_url(),
                recovery_throttle: Throttle::new(recovery::PER_ACCOUNT, recovery::PER_IP),
                recovery: RecoveryCounts::default(),
                throttle_notes: audit::ThrottleNotes::default(),
                store,
            }),
        })
    }

    /// The store behind the service, for the layers that read it directly.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The key OIDC signing keys are sealed under at rest, derived from
    /// the server secret like the second factors' (older secrets open
    /// what they sealed).
    pub(crate) fn provider_key_seal(&self) -> mfa::FactorKeys {
        mfa::FactorKeys::new(
            self.inner.cookies.derive("sessiond oidc key seal v1"),
            Vec::new(),
        )
    }

    /// Issues and reads the session cookie.
    pub fn cookies(&self) -> &SessionCookies {
        &self.inner.cookies
    }

    /// Login outcomes so far.
    pub fn login_counts(&self) -> &LoginCounts {
        &self.inner.logins
    }

    /// Where mail waits to be sent (the server's sender task drains it).
    pub fn outbox(&self) -> &crate::mail::Outbox {
        &self.inner.outbox
    }

    /// Recovery outcomes so far.
    pub fn recovery_counts(&self) -> &RecoveryCounts {
        &self.inner.recovery
    }

    /// Applies the password policy to a new password.
    pub fn new_password(&self, raw: String, field: &'static str) -> Result<Password, AuthError> {
        let a = &self.inner.auth;
        Ok(Password::parse(
            raw,
            field,
            a.min_password_length,
            a.max_password_length,
        )?)
    }

    /// Creates an account from the public route; no session is made.
    pub async fn register(
        &self,
        username: Username,
        email: Email,
        password: Password,
        client: &ClientInfo,
    ) -> Result<UserRecord, AuthError> {
        if self.inner.auth.registration == Registration::Closed {
            return Err(AuthError::RegistrationClosed);
        }
        let account = NewAccount {
            username,
            email,
            password,
            role: Role::User,
            verified: false,
            // The store puts the new id in the entry.
            by: By::client(UserId::from_u64(0), client),
        };
        // Boxed, these two: a debug build's request future would otherwise
        // hold both state machines inline (deep enough to overflow a test
        // thread's stack, where the server runs on the test's runtime).
        let user = Box::pin(new_account(
            &self.inner.store,
            &self.inner.passwords,
            account,
        ))
        .await?;
        // The address is proved by a mailed code, where there is mail.
        if self.inner.mail_enabled {
            Box::pin(self.mail_verification(&user)).await?;
        }
        Ok(user)
    }

    /// Creates an account with any role (an admin's, `by`).
    pub async fn create_user(
        &self,
        username: Username,
        email: Email,
        password: Password,
        role: Role,
        by: &By,
    ) -> Result<UserRecord, AuthError> {
        let account = NewAccount {
            username,
            email,
            password,
            role,
            verified: true,
            by: by.clone(),
        };
        new_account(&self.inner.store, &self.inner.passwords, account).await
    }

    /// Checks the password and opens a new session. A session the client
    /// came with that is someone else's is ended first, so a planted
    /// session id is worth nothing; the user's own is ended by the
    /// route once the new one exists, its apps' tokens carried over to it. `remember: false` asks for a cookie that ends with the
    /// browser.
    /// A user with a second factor gets a pending sign-in instead.
    pub async fn login(
        &self,
        name: &LoginName,
        password: &Password,
        client: &ClientInfo,
        previous: Option<&SessionToken>,
        remember: bool,
    ) -> Result<SignIn, AuthError> {
        let store = &self.inner.store;
        let (user, account) = match name {
            LoginName::Username(n) => (
                store.user_by_name(n).await?,
                format!("name:{}", name_key(n)),
            ),
            LoginName::Email(e) => (
                store.user_by_email(e).await?,
                format!("email:{}", email_key(e)),
            ),
        };
        let account = user.as_ref().map_or(account, |u| throttle_key(u.user_id()));
        // A user an ID-token sign-in made has no password: checked against
        // the dummy hash, refused like a wrong one.
        let stored = user
            .as_ref()
            .filter(|u| u.has_password())
            .map(|u| u.password_hash.as_str());
        let known = user.as_ref().map(UserRecord::user_id);
        self.check_password(&account, known, client, password, stored)
            .await?;
        let user = user.ok_or(AuthError::InvalidCredentials)?;
        // Told only after the right password, so it reveals nothing.
        if self.inner.auth.require_verified_email && !user.email_verified {
            let by = By::client(user.user_id(), client);
            let refused = by.entry(AuditKind::LoginFailed, user.user_id());
            self.record(&[refused.detail("email_unverified")]).await?;
            return Err(AuthError::EmailUnverified);
        }
        self.end_unless_users(previous, user.user_id()).await?;
        let signed = self
            .after_first_factor(user, client, remember, vec![Amr::Pwd])
            .await?;
        if matches!(signed, SignIn::Session(_)) {
            self.inner.logins.success.fetch_add(1, Ordering::Relaxed);
        }
        Ok(signed)
    }

    /// Checks a password against a stored hash (or the dummy hash when
    /// there is none) under login throttling, counting the outcome, and
    /// logging a refusal in the log of `user` (when the name is someone's):
    /// the one gate for login and for a password change.
    async fn check_password(
        &self,
        account: &str,
        user: Option<UserId>,
        client: &ClientInfo,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<(), AuthError> {
        let check = self.inner.passwords.verify(password, stored);
        let refused = |kind: AuditKind| user.map(|id| By::client(id, client).entry(kind, id));
        match self.guarded(Guard::Password, account, client, check).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.inner.logins.failure.fetch_add(1, Ordering::Relaxed);
                if let Some(entry) = refused(AuditKind::LoginFailed) {
                    self.record(&[entry.detail("wrong_password")]).await?;
                }
                Err(AuthError::InvalidCredentials)
            }
            Err(e) => {
                if matches!(e, AuthError::Throttled(_)) {
                    self.inner.logins.throttled.fetch_add(1, Ordering::Relaxed);
                    let first =
                        user.is_some_and(|id| self.inner.throttle_notes.first(id, "password"));
                    if let Some(entry) = refused(AuditKind::LoginThrottled).filter(|_| first) {
                        self.record(&[entry.detail("password")]).await?;
                    }
                }
                Err(e)
            }
        }
    }

    /// Runs one guess (`check`: right or wrong) under `guard`'s throttle,
    /// counting a wrong one against the account and the client's address
    /// where every instance sees it: the one gate for passwords and for
    /// second-factor codes.
    async fn guarded(
        &self,
        guard: Guard,
        account: &str,
        client: &ClientInfo,
        check: impl std::future::Future<Output = Result<bool, AuthError>>,
    ) -> Result<bool, AuthError> {
        let inner = &self.inner;
        let (throttle, account, ip, limits) = match guard {
            Guard::Password => (
                &inner.throttle,
                account.to_owned(),
                format!("ip:{}", client.ip),
                [
                    inner.auth.max_failed_logins_per_account,
                    inner.auth.max_failed_logins_per_ip,
                ],
            ),
            Guard::SecondFactor => (
                &inner.mfa_throttle,
                format!("mfa:{account}"),
                format!("mfa-ip:{}", client.ip),
                [
                    inner.auth.max_failed_mfa_per_account,
                    inner.auth.max_failed_logins_per_ip,
                ],
            ),
            Guard::Recovery => (
                &inner.recovery_throttle,
                format!("recovery:{account}"),
                format!("recovery-ip:{}", client.ip),
                [recovery::PER_ACCOUNT, recovery::PER_IP],
            ),
        };
        let account = account.as_str();
        // Other instances' failures count too, where there are any; and an
        // account another instance forgave (a right guess there) is
        // forgiven here as well.
        let subjects = [account, ip.as_str()];
        let read_at = std::time::Instant::now();
        let shared = inner
            .store
            .shared_login_failures(&subjects, throttle::WINDOW)
            .await?;
        if shared.as_ref().is_some_and(|counts| counts[0].0 == 0) {
            // A failure is counted in the store before it is recorded
            // here, so one recorded before this read is in the count.
            throttle.forgive_before(account, read_at);
        }
        let attempt = throttle
            .begin(account, client.ip)
            .await
            .map_err(AuthError::Throttled)?;
        if let Some(wait) = shared
            .as_deref()
            .and_then(|counts| shared_wait(counts, limits))
        {
            return Err(AuthError::Throttled(wait));
        }
        if check.await? {
            attempt.succeeded();
            // Forgiven everywhere, with a write only when there is
            // something to forgive.
            if shared.is_some_and(|counts| counts[0].0 > 0) {
                inner.store.forgive_login_failures(account).await?;
            }
            Ok(true)
        } else {
            // In the store first, then here (see above).
            let counted = inner
                .store
                .count_login_failure(&subjects, throttle::WINDOW)
                .await;
            attempt.failed();
            counted?;
            Ok(false)
        }
    }

    /// Opens a new session for `user` (a sign-in: logged as `login`, after
    /// `before`), answered once durable. A user removed meanwhile gets no
    /// session.
    async fn open_session(
        &self,
        user: UserRecord,
        client: &ClientInfo,
        remember: bool,
        amr: Vec<Amr>,
        before: Vec<AuditRecord>,
    ) -> Result<NewSession, AuthError> {
        let by = By::client(user.user_id(), client);
        let mut how = amr.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(",");
        if how.is_empty() {
            // An ID token's proof is the provider's, not one of RFC 8176's.
            how = "id_token".into();
        }
        self.open_session_logged(user, client, remember, amr, |id| {
            let mut entries = before;
            entries.push(by.entry(AuditKind::Login, id.0).session(id.1).detail(how));
            entries
        })
        .await
    }

    /// Opens a new session, writing with it the entries `log` makes from
    /// the user's id and the session's public id.
    async fn open_session_logged(
        &self,
        user: UserRecord,
        client: &ClientInfo,
        remember: bool,
        amr: Vec<Amr>,
        log: impl FnOnce((UserId, String)) -> Vec<AuditRecord>,
    ) -> Result<NewSession, AuthError> {
        let store = &self.inner.store;
        let session = self.new_record(&user, client, remember, amr);
        let token = SessionToken::generate(session.created_at_ms);
        let entries = log((user.user_id(), token.hash().public_id()));
        match store
            .create_session(&token.hash(), &session, &entries)
            .await
        {
            Err(StoreError::NoSuchUser) => return Err(AuthError::InvalidCredentials),
            other => other?,
        }
        store.commit_durably().await?;
        Ok(NewSession {
            token,
            session,
            user,
        })
    }

    fn new_record(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
        remember: bool,
        amr: Vec<Amr>,
    ) -> SessionRecord {
        let now = now_ms();
        let cfg = &self.inner.session;
        let mut user_agent = client.user_agent.clone().unwrap_or_default();
        if let Some((cut, _)) = user_agent.char_indices().nth(256) {
            user_agent.truncate(cut);
        }
        SessionRecord {
            user_id: user.id,
            created_at_ms: now,
            last_seen_at_ms: now,
            absolute_expires_at_ms: now.saturating_add(millis(cfg.absolute_timeout)),
            idle_expires_at_ms: now.saturating_add(millis(cfg.idle_timeout)),
            user_agent,
            ip: client.ip.to_string(),
            remember,
            amr,
        }
    }

    /// The live session behind a token, with its user, or `None`. Refuses
    /// ended sessions at once, pruned or not; records activity at most once
    /// per `touch_interval`.
    pub async fn authenticate(
        &self,
        token: &SessionToken,
    ) -> Result<Option<CurrentSession>, AuthError> {
        self.refresh(token.hash()).await
    }

    /// `authenticate` for a session already known by its hash: a WebSocket
    /// checks (and touches) its session on every message this way.
    pub async fn refresh(&self, hash: TokenHash) -> Result<Option<CurrentSession>, AuthError> {
        self.lookup(hash, true).await
    }

    /// The live session behind a hash without recording activity: what a
    /// socket's own deadline timer asks (a timer is not activity).
    pub async fn peek(&self, hash: TokenHash) -> Result<Option<CurrentSession>, AuthError> {
        self.lookup(hash, false).await
    }

    async fn lookup(
        &self,
        hash: TokenHash,
        activity: bool,
    ) -> Result<Option<CurrentSession>, AuthError> {
        let inner = &self.inner;
        // One read for both: on Redis, one round trip.
        let Some((mut session, user)) = inner.store.session_with_user(&hash).await? else {
            return Ok(None);
        };
        let now = now_ms();
        if session.deadline_ms() <= now {
            return Ok(None);
        }
        let Some(user) = user else {
            return Ok(None);
        };
        if activity
            && now.saturating_sub(session.last_seen_at_ms) >= millis(inner.session.touch_interval)
        {
            match inner
                .store
                .touch_session(&hash, now, millis(inner.session.idle_timeout))
                .await?
            {
                Some(touched) => session = touched,
                None => return Ok(None),
            }
        }
        Ok(Some(CurrentSession {
            hash,
            session,
            user,
        }))
    }

    /// Ends a session, writing `entries` if it was there; answered once
    /// durable.
    pub async fn end(&self, hash: &TokenHash, entries: &[AuditRecord]) -> Result<bool, AuthError> {
        let ended = self.inner.store.end_session(hash, entries).await?.is_some();
        self.durable_if(ended).await?;
        Ok(ended)
    }

    /// Signs a session out (logout): logged in its user's log.
    pub async fn logout(&self, hash: &TokenHash) -> Result<bool, AuthError> {
        self.end_logged(hash, None).await
    }

    /// Signs a session out for a reason its log entry names (an app's
    /// RP-initiated logout).
    pub async fn logout_because(&self, hash: &TokenHash, why: &str) -> Result<bool, AuthError> {
        self.end_logged(hash, Some(why)).await
    }

    /// Ends the session a client came with to a sign-in, so a planted
    /// session id is worth nothing: logged as its user's `logout`, with
    /// why (the client may have held another user's session).
    pub async fn end_replaced(&self, previous: &SessionToken) -> Result<bool, AuthError> {
        self.end_logged(&previous.hash(), Some("replaced_by_sign_in"))
            .await
    }

    /// At a first factor: ends the session the client came with unless it
    /// is a live one of `user`, who is signing in again (an app's
    /// `prompt=login`). That one lives until the new session exists, so a
    /// second step given up leaves the user signed in as before.
    pub(crate) async fn end_unless_users(
        &self,
        previous: Option<&SessionToken>,
        user: UserId,
    ) -> Result<(), AuthError> {
        let Some(previous) = previous else {
            return Ok(());
        };
        let now = now_ms();
        let own = self
            .inner
            .store
            .session(&previous.hash())
            .await?
            .is_some_and(|s| s.owner() == user && s.deadline_ms() > now);
        if !own {
            self.end_replaced(previous).await?;
        }
        Ok(())
    }

    async fn end_logged(&self, hash: &TokenHash, why: Option<&str>) -> Result<bool, AuthError> {
        let Some(session) = self.inner.store.session(hash).await? else {
            return Ok(false);
        };
        let mut entry = By::session(hash, &session).entry(AuditKind::Logout, session.owner());
        entry.detail = why.map(str::to_owned);
        self.end(hash, &[entry]).await
    }

    /// Seconds a fresh session's cookie should live: until the session's
    /// absolute end, or `None` (a cookie that ends with the browser) when
    /// the login asked not to be remembered.
    pub fn cookie_max_age(&self, session: &SessionRecord) -> Option<u64> {
        session.remember.then(|| {
            session
                .absolute_expires_at_ms
                .saturating_sub(now_ms())
                .div_ceil(1000)
        })
    }
}

/// Creates an account with any role for an operator (the CLI, an
/// embedding), answered once durable; its address counts as verified, the
/// operator vouching for it. Needs no cookie keys, so the offline CLI can
/// use it in any environment.
pub async fn create_account(
    store: &Store,
    passwords: &Passwords,
    username: Username,
    email: Email,
    password: Password,
    role: Role,
) -> Result<UserRecord, AuthError> {
    let account = NewAccount {
        username,
        email,
        password,
        role,
        verified: true,
        by: By::operator(),
    };
    new_account(store, passwords, account).await
}

/// What an account is made from.
struct NewAccount {
    username: Username,
    email: Email,
    password: Password,
    role: Role,
    /// Whether the address counts as proved.
    verified: bool,
    /// Who makes it.
    by: By,
}

async fn new_account(
    store: &Store,
    passwords: &Passwords,
    new: NewAccount,
) -> Result<UserRecord, AuthError> {
    let password_hash = passwords.hash(&new.password).await?;
    let created = new
        .by
        .entry(AuditKind::UserCreated, UserId::from_u64(0))
        .detail(new.role.as_str());
    let mut user = store
        .create_user(
            crate::store::NewUser {
                username: &new.username,
                email: &new.email,
                role: new.role,
                password_hash,
                now_ms: now_ms(),
            },
            std::slice::from_ref(&created),
        )
        .await?;
    if new.verified {
        // Boxed: on Redis this is a read-compare-write loop whose state
        // would otherwise sit inline in every caller's future.
        let email = &user.email;
        let verified = Box::pin(store.verify_email(user.user_id(), email, email, &[])).await?;
        user = verified.unwrap_or(user);
    }
    store.commit_durably().await?;
    Ok(user)
}

/// Sets a user's password offline and ends every session they have:
/// someone who may know the old one is signed out everywhere. Returns the
/// user and how many sessions ended.
pub async fn set_password(
    store: &Store,
    passwords: &Passwords,
    id: UserId,
    password: &Password,
) -> Result<(UserRecord, usize), AuthError> {
    let hash = passwords.hash(password).await?;
    let by = By::operator();
    let changed = [by.entry(AuditKind::PasswordChanged, id)];
    let user = store.set_password_hash(id, &hash, &changed).await?;
    let revoked = [by
        .entry(AuditKind::SessionsRevoked, id)
        .detail("password_changed")];
    let ended = store.end_sessions_of(id, None, &revoked).await?.len();
    store.commit_durably().await?;
    Ok((user, ended))
}

/// How long to wait before another guess, by the failures every
/// instance counted (account, then address: count and oldest time) and
/// their limits; `None` if one may go ahead.
fn shared_wait(counts: &[(u32, u64)], limits: [u32; 2]) -> Option<Duration> {
    let now = now_ms();
    let window = throttle::WINDOW.as_millis() as u64;
    let wait = counts
        .iter()
        .zip(limits)
        .filter(|((failures, _), limit)| failures >= limit)
        .map(|((_, oldest), _)| (oldest + window).saturating_sub(now))
        .max()?;
    Some(Duration::from_millis(wait).max(Duration::from_secs(1)))
}

/// What a known account's login failures count against, whichever name
/// or e-mail it was reached by.
fn throttle_key(id: UserId) -> String {
    format!("id:{id}")
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
