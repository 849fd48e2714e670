//! What the store keeps, and the key layouts its trees sort by.

use serde::{Deserialize, Serialize};

use crate::domain::{Amr, Email, Role, TokenHash, UserId, Username};

/// A registered user as stored in `users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The number behind `UserId`.
    pub id: u64,
    /// As registered (case kept).
    pub username: String,
    /// As registered (case kept).
    pub email: String,
    /// Checked on every request.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    /// Second factors: inside the record, so they live in the user's
    /// Cluster slot, go wherever the user goes (migrate, removal) and change
    /// under the same compare-and-write as every other part of the user.
    pub factors: Factors,
    /// Whether `email` was proved the user's (a mailed code, or an
    /// operator who made the account).
    pub email_verified: bool,
}

/// A user as format version 2 wrote it, before e-mail verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct UserRecordV2 {
    pub id: u64,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub password_hash: String,
    pub created_at_ms: u64,
    pub factors: Factors,
}

impl From<UserRecordV2> for UserRecord {
    fn from(v2: UserRecordV2) -> Self {
        Self {
            id: v2.id,
            username: v2.username,
            email: v2.email,
            role: v2.role,
            password_hash: v2.password_hash,
            created_at_ms: v2.created_at_ms,
            factors: v2.factors,
            // Nobody proved an address before verification existed.
            email_verified: false,
        }
    }
}

/// A user as format version 1 wrote it, before second factors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct UserRecordV1 {
    pub id: u64,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub password_hash: String,
    pub created_at_ms: u64,
}

impl From<UserRecordV1> for UserRecord {
    fn from(v1: UserRecordV1) -> Self {
        UserRecordV2 {
            id: v1.id,
            username: v1.username,
            email: v1.email,
            role: v1.role,
            password_hash: v1.password_hash,
            created_at_ms: v1.created_at_ms,
            factors: Factors::default(),
        }
        .into()
    }
}

/// A user's second factors. Secrets are never here in the clear: the TOTP
/// secret is sealed by the auth layer, recovery codes are only HMACs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Factors {
    /// The authenticator app, if enrolled.
    pub totp: Option<TotpFactor>,
    /// Passkeys and security keys.
    pub keys: Vec<KeyFactor>,
    /// HMAC-SHA-256 of each unused recovery code of the current batch.
    pub recovery: Vec<[u8; 32]>,
    /// When the current batch was made (0: none ever).
    pub recovery_created_at_ms: u64,
}

impl Factors {
    /// Whether the password alone no longer signs this user in.
    pub fn any(&self) -> bool {
        self.totp.is_some() || !self.keys.is_empty()
    }
}

/// An enrolled TOTP authenticator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpFactor {
    /// Public id (`DELETE /api/auth/mfa/{id}`).
    pub id: String,
    /// The 160-bit secret, sealed (AEAD) under a key derived from the
    /// server secret.
    pub sealed_secret: Vec<u8>,
    /// Unix millis.
    pub created_at_ms: u64,
    /// Unix millis; 0 if never used.
    pub last_used_at_ms: u64,
    /// The last 30-second step accepted: a code of that step or an
    /// earlier one is refused, so a code is accepted once.
    pub last_step: u64,
}

/// A registered WebAuthn credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFactor {
    /// Public id.
    pub id: String,
    /// What the user called it.
    pub name: String,
    /// The credential id, for finding it from an assertion.
    pub credential_id: Vec<u8>,
    /// webauthn-rs's credential (public key, counter), as its JSON.
    pub credential: Vec<u8>,
    /// The authenticator's signature counter last accepted: a use that
    /// does not raise it is refused (a cloned key), unless both are 0 (a
    /// synced passkey, which never counts).
    pub counter: u32,
    /// Unix millis.
    pub created_at_ms: u64,
    /// Unix millis; 0 if never used.
    pub last_used_at_ms: u64,
}

impl UserRecord {
    /// The typed id.
    pub fn user_id(&self) -> UserId {
        UserId::from_u64(self.id)
    }

    /// False for a user made by an ID-token sign-in who has not set a
    /// password: password login is refused, and the first password is set
    /// without a current one.
    pub fn has_password(&self) -> bool {
        !self.password_hash.is_empty()
    }
}

/// An ID-token identity linked to a user, as stored in `user_identities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    /// The provider's configured name when linked.
    pub provider: String,
    /// The token's `iss`.
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
    /// The token's e-mail when linked, if any.
    pub email: Option<String>,
    /// Unix millis.
    pub linked_at_ms: u64,
}

impl IdentityRecord {
    /// The id the API shows and `DELETE /api/auth/identities/{id}` takes:
    /// derived from (issuer, subject), so it never changes.
    pub fn public_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"sessiond identity\0")
            .chain_update(identity_key(&self.issuer, &self.subject))
            .finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// `identities` key: the issuer's length, the issuer, the subject, so no
/// two (issuer, subject) pairs share a key whatever bytes they hold.
pub fn identity_key(issuer: &str, subject: &str) -> Vec<u8> {
    let len = u32::try_from(issuer.len()).unwrap_or(u32::MAX);
    [
        &len.to_be_bytes()[..],
        issuer.as_bytes(),
        subject.as_bytes(),
    ]
    .concat()
}

/// `user_identities` key: user id ++ identity key, so one user's links
/// are a prefix scan.
pub fn user_identity_key(user: UserId, issuer: &str, subject: &str) -> Vec<u8> {
    [&user.to_be_bytes()[..], &identity_key(issuer, subject)].concat()
}

/// A live session as stored in `sessions`, keyed by the token's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Owner.
    pub user_id: u64,
    /// Login time, Unix milliseconds.
    pub created_at_ms: u64,
    /// Last recorded activity (lazily written).
    pub last_seen_at_ms: u64,
    /// Login time plus the absolute timeout, fixed at login.
    pub absolute_expires_at_ms: u64,
    /// Last activity plus the idle timeout, moved by each touch.
    pub idle_expires_at_ms: u64,
    /// As sent at login, cut to a sane length.
    pub user_agent: String,
    /// Client address at login.
    pub ip: String,
    /// "Remember me": false makes the cookie end with the browser (no
    /// `Max-Age`); the server's timeouts are the same either way.
    pub remember: bool,
    /// How it was authenticated (RFC 8176), in the order proved.
    pub amr: Vec<Amr>,
}

/// A session as format version 2 wrote it, before `amr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SessionRecordV2 {
    pub user_id: u64,
    pub created_at_ms: u64,
    pub last_seen_at_ms: u64,
    pub absolute_expires_at_ms: u64,
    pub idle_expires_at_ms: u64,
    pub user_agent: String,
    pub ip: String,
    pub remember: bool,
}

impl From<SessionRecordV2> for SessionRecord {
    fn from(v2: SessionRecordV2) -> Self {
        Self {
            user_id: v2.user_id,
            created_at_ms: v2.created_at_ms,
            last_seen_at_ms: v2.last_seen_at_ms,
            absolute_expires_at_ms: v2.absolute_expires_at_ms,
            idle_expires_at_ms: v2.idle_expires_at_ms,
            user_agent: v2.user_agent,
            ip: v2.ip,
            remember: v2.remember,
            // Every sign-in before second factors was a password's.
            amr: vec![Amr::Pwd],
        }
    }
}

/// A session as format version 1 wrote it, before `remember`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SessionRecordV1 {
    pub user_id: u64,
    pub created_at_ms: u64,
    pub last_seen_at_ms: u64,
    pub absolute_expires_at_ms: u64,
    pub idle_expires_at_ms: u64,
    pub user_agent: String,
    pub ip: String,
}

impl From<SessionRecordV1> for SessionRecord {
    fn from(v1: SessionRecordV1) -> Self {
        SessionRecordV2 {
            user_id: v1.user_id,
            created_at_ms: v1.created_at_ms,
            last_seen_at_ms: v1.last_seen_at_ms,
            absolute_expires_at_ms: v1.absolute_expires_at_ms,
            idle_expires_at_ms: v1.idle_expires_at_ms,
            user_agent: v1.user_agent,
            ip: v1.ip,
            remember: true,
        }
        .into()
    }
}

impl SessionRecord {
    /// When this session ends unless touched: the key of its expiry entry.
    pub fn deadline_ms(&self) -> u64 {
        self.absolute_expires_at_ms.min(self.idle_expires_at_ms)
    }

    /// The typed owner id.
    pub fn owner(&self) -> UserId {
        UserId::from_u64(self.user_id)
    }
}

/// `session_expiry` key: deadline (big-endian millis) ++ token hash, so a
/// range scan from the start visits exactly the sessions that have ended.
pub fn expiry_key(deadline_ms: u64, hash: &TokenHash) -> Vec<u8> {
    [&deadline_ms.to_be_bytes()[..], hash.as_bytes()].concat()
}

/// `user_sessions` key: user id ++ token hash, so one user's sessions are a
/// prefix scan that costs what that user has.
pub fn user_session_key(user: UserId, hash: &TokenHash) -> Vec<u8> {
    [&user.to_be_bytes()[..], hash.as_bytes()].concat()
}

/// A chat message as stored in `messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Grows with every message in the database.
    pub id: u64,
    /// The room it was sent to.
    pub room: String,
    /// The sender's id, from the session.
    pub from_id: u64,
    /// The sender's name when sent.
    pub from_name: String,
    /// The text.
    pub text: String,
    /// Unix millis.
    pub sent_at_ms: u64,
}

/// `messages` key: room ++ 0 ++ big-endian id, so one room's messages are
/// one contiguous run in send order (room names never contain a zero byte).
pub fn message_key(room: &str, id: u64) -> Vec<u8> {
    [room.as_bytes(), &[0], &id.to_be_bytes()].concat()
}

/// What registration hands the store; the hash is made by the auth layer
/// (empty for a user an ID-token sign-in creates, who has no password).
pub struct NewUser<'a> {
    /// Parsed name.
    pub username: &'a Username,
    /// Parsed address.
    pub email: &'a Email,
    /// Role at creation.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Unix millis.
    pub now_ms: u64,
}

/// A user removed with everything that was theirs.
#[derive(Debug)]
pub struct RemovedUser {
    /// The record as it was.
    pub user: UserRecord,
    /// The sessions ended with it.
    pub sessions: Vec<TokenHash>,
}

/// What a ceremony between two requests keeps server-side (the pending
/// sign-in between the password and the second step, an enrolment's
/// unconfirmed secret, a WebAuthn challenge, a fresh proof): single use,
/// short-lived, never in a cookie. The OIDC provider keeps its grants,
/// consents and keys the same way, with longer deadlines, changing them
/// by compare-and-swap (`Store::swap_ticket`). The store refuses it once its deadline
/// has passed and the pruner reclaims it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRecord {
    /// Unix millis after which it is gone.
    pub deadline_ms: u64,
    /// The auth layer's own encoding of what it keeps.
    pub body: Vec<u8>,
}

/// Which ceremony a ticket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKind {
    /// Between a right password and the second step.
    Pending,
    /// A TOTP secret shown but not yet confirmed by a code.
    TotpEnrol,
    /// A WebAuthn registration's challenge.
    KeyRegister,
    /// A WebAuthn second step's challenge.
    KeyStep,
    /// A passwordless (discoverable) sign-in's challenge.
    Passkey,
    /// A proof (password or factor) given by a session: changes to factors
    /// need one within the last 5 minutes.
    Reauth,
    /// A mailed recovery code (its HMAC) and the tries it has left: one
    /// per user, a newer request replaces it.
    Recovery,
    /// An operator's single-use "set a new password" link, found by its
    /// secret.
    ResetLink,
    /// A mailed e-mail verification code (its HMAC), the address it was
    /// sent to and the tries it has left: one per user.
    EmailVerify,
    /// An OIDC authorization request waiting for its user to sign in or
    /// consent, found by an id the page carries.
    OidcRequest,
    /// An OIDC authorization code (by its hash): 60 s, single use.
    OidcCode,
    /// A code exchanged already (by its hash), and the grant it made: a
    /// second exchange ends that grant.
    OidcCodeUsed,
    /// A grant: one client's refresh-token family on one session, by id.
    OidcGrant,
    /// The grants hanging off one session (by the session's hash): what
    /// ends, and whom a back-channel logout tells, when it ends.
    OidcSession,
    /// One user's consents and grants, for "apps with access".
    OidcApps,
    /// The provider's signing keys, shared by every instance.
    OidcKeys,
}

impl TicketKind {
    /// The kinds that outlive a ceremony (the OIDC provider's keys,
    /// consents and grants): backups, restores and `migrate` carry them.
    pub const LASTING: [TicketKind; 4] = [
        TicketKind::OidcKeys,
        TicketKind::OidcApps,
        TicketKind::OidcGrant,
        TicketKind::OidcSession,
    ];

    /// A short stable name, in store keys.
    pub fn name(self) -> &'static str {
        match self {
            TicketKind::Pending => "pending",
            TicketKind::TotpEnrol => "totp-enrol",
            TicketKind::KeyRegister => "key-register",
            TicketKind::KeyStep => "key-step",
            TicketKind::Passkey => "passkey",
            TicketKind::Reauth => "reauth",
            TicketKind::Recovery => "recovery",
            TicketKind::ResetLink => "reset-link",
            TicketKind::EmailVerify => "email-verify",
            TicketKind::OidcRequest => "oidc-request",
            TicketKind::OidcCode => "oidc-code",
            TicketKind::OidcCodeUsed => "oidc-code-used",
            TicketKind::OidcGrant => "oidc-grant",
            TicketKind::OidcSession => "oidc-session",
            TicketKind::OidcApps => "oidc-apps",
            TicketKind::OidcKeys => "oidc-keys",
        }
    }
}

/// Where a ticket is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKey {
    /// One of its kind per user, in the user's Cluster slot: a newer one
    /// replaces it (a fresh password step voids the pending one before).
    User(TicketKind, UserId),
    /// Found by 32 bytes only its holder knows (or a session's hash).
    Id(TicketKind, [u8; 32]),
}

impl TicketKey {
    /// The sled key: kind, a zero, then the user id or the id.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            TicketKey::User(kind, user) => {
                [kind.name().as_bytes(), &[0], &user.to_be_bytes()].concat()
            }
            TicketKey::Id(kind, id) => [kind.name().as_bytes(), &[0], &id[..]].concat(),
        }
    }
}

impl TicketKey {
    /// Reads back what `bytes` wrote, for the lasting kinds (`None` for
    /// any other).
    pub fn lasting_from_bytes(bytes: &[u8]) -> Option<TicketKey> {
        let zero = bytes.iter().position(|b| *b == 0)?;
        let (name, rest) = (&bytes[..zero], &bytes[zero + 1..]);
        let kind = TicketKind::LASTING
            .into_iter()
            .find(|k| k.name().as_bytes() == name)?;
        match rest.len() {
            8 if kind == TicketKind::OidcApps => {
                Some(TicketKey::User(kind, UserId::from_be_slice(rest)?))
            }
            32 if kind != TicketKind::OidcApps => Some(TicketKey::Id(kind, rest.try_into().ok()?)),
            _ => None,
        }
    }
}

/// `ticket_expiry` key: deadline (big-endian millis) ++ ticket key.
pub fn ticket_expiry_key(deadline_ms: u64, key: &[u8]) -> Vec<u8> {
    [&deadline_ms.to_be_bytes()[..], key].concat()
}

/// A mail waiting in the outbox (`outbox`, by id): written before the
/// request that wants it is answered, removed once the SMTP server took
/// it, so a crash or an SMTP server that is down loses no mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailRecord {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
    /// Unix millis when queued.
    pub queued_at_ms: u64,
    /// Sends tried so far.
    pub attempts: u32,
    /// Unix millis before which no instance tries it (again): a claimed
    /// mail is pushed past the send's longest time, so of two instances
    /// one sends it, and one that dies mid-send leaves it to the next try.
    pub next_attempt_ms: u64,
}
