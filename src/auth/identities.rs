//! Signing in with an ID token, and the identities linked to a user: the
//! token is verified by `idtoken`, `(issuer, sub)` is looked up in the
//! store, and the answer is a session like a password login's.

use std::sync::atomic::Ordering;

use rand_core::{OsRng, RngCore};

use super::idtoken::{IdTokenError, VerifiedToken};
use super::{Auth, AuthError, By, ClientInfo, CurrentSession, SessionToken, SignIn};
use crate::domain::{Email, Role, UserId, Username};
use crate::store::{now_ms, AuditKind, IdentityRecord, NewUser, StoreError, UserRecord};

/// Name candidates tried before a random suffix.
const NUMBERED_NAMES: u32 = 50;

impl From<IdTokenError> for AuthError {
    fn from(e: IdTokenError) -> Self {
        match e {
            IdTokenError::Invalid => AuthError::InvalidToken,
            IdTokenError::Unavailable(why) => AuthError::ProviderUnavailable(why),
        }
    }
}

impl Auth {
    /// Signs in with an ID token: the linked user, or (with
    /// `auto_register`) a new one made from the token's e-mail or name;
    /// else `NotLinked`. A session the client came with is ended as at
    /// [`Auth::login`].
    pub async fn sign_in_with_idtoken(
        &self,
        token: &str,
        client: &ClientInfo,
        previous: Option<&SessionToken>,
        remember: bool,
    ) -> Result<SignIn, AuthError> {
        let verified = self.inner.idtokens.verify(token).await?;
        let user = self.user_for(&verified, client).await?;
        self.end_unless_users(previous, user.user_id()).await?;
        // The provider's proof is not one of RFC 8176's values; a second
        // factor of this server's still applies.
        let signed = self
            .after_first_factor(user, client, remember, Vec::new())
            .await?;
        if matches!(signed, SignIn::Session(_)) {
            self.inner.logins.success.fetch_add(1, Ordering::Relaxed);
        }
        Ok(signed)
    }

    /// The user linked to a verified identity, created if allowed. Two
    /// first sign-ins at once: one creates, the other finds its link.
    async fn user_for(
        &self,
        verified: &VerifiedToken,
        client: &ClientInfo,
    ) -> Result<UserRecord, AuthError> {
        let store = &self.inner.store;
        for _ in 0..3 {
            if let Some(id) = store
                .identity_owner(&verified.issuer, &verified.subject)
                .await?
            {
                if let Some(user) = store.user(id).await? {
                    return Ok(user);
                }
            }
            if !verified.auto_register {
                return Err(AuthError::NotLinked);
            }
            match self.register_from_token(verified, client).await {
                Err(AuthError::IdentityTaken) => continue,
                other => return other,
            }
        }
        Err(AuthError::Unexpected(
            "an identity kept changing owner during sign-in".into(),
        ))
    }

    /// Creates a passwordless user linked to the identity: the name from
    /// the e-mail's local part or the token's name, made valid and unique;
    /// the e-mail from the token (an address already registered is
    /// `EmailTaken`: that person signs in with their password and links
    /// the identity, so no token can take over an account), or, without
    /// one, a placeholder under `.invalid`.
    async fn register_from_token(
        &self,
        v: &VerifiedToken,
        client: &ClientInfo,
    ) -> Result<UserRecord, AuthError> {
        let store = &self.inner.store;
        let base = base_name(v);
        let identity = identity_record(v);
        // The store puts the new id in each.
        let by = By::client(UserId::from_u64(0), client);
        let entries = [
            by.entry(AuditKind::UserCreated, UserId::from_u64(0))
                .detail(format!("{} sign-in", v.provider)),
            by.entry(AuditKind::IdentityLinked, UserId::from_u64(0))
                .detail(v.provider.clone()),
        ];
        for n in 1..=NUMBERED_NAMES + 1 {
            let candidate = match n {
                1 => base.clone(),
                n if n <= NUMBERED_NAMES => format!("{base}{n}"),
                _ => format!("{base}-{:08x}", OsRng.next_u32()),
            };
            let username = Username::parse(&candidate)?;
            let email = match &v.email {
                Some(e) => Email::parse(e).map_err(|_| AuthError::InvalidToken)?,
                None => Email::parse(&format!(
                    "{}@{}.invalid",
                    username.as_ref().to_ascii_lowercase(),
                    domain_label(&v.provider)
                ))?,
            };
            let created = store.create_user_linked(
                NewUser {
                    username: &username,
                    email: &email,
                    role: Role::User,
                    password_hash: String::new(),
                    now_ms: now_ms(),
                },
                Some(&identity),
                &entries,
            );
            match created.await {
                Err(StoreError::UsernameTaken) => continue,
                Err(StoreError::IdentityTaken) => return Err(AuthError::IdentityTaken),
                other => {
                    let user = other?;
                    store.commit_durably().await?;
                    return Ok(user);
                }
            }
        }
        Err(AuthError::UsernameTaken)
    }

    /// Links the identity in a verified token to the signed-in user.
    pub async fn link_identity(
        &self,
        current: &CurrentSession,
        token: &str,
    ) -> Result<IdentityRecord, AuthError> {
        let verified = self.inner.idtokens.verify(token).await?;
        let record = identity_record(&verified);
        let id = current.user.user_id();
        let entries = [By::user(current)
            .entry(AuditKind::IdentityLinked, id)
            .detail(verified.provider.clone())];
        let linked_before = self
            .inner
            .store
            .identity_owner(&record.issuer, &record.subject)
            .await?;
        if linked_before.is_some_and(|owner| owner != id) {
            // Refused before the store is asked: on Redis the link's script
            // runs before the index is claimed, and its entry would stay.
            return Err(AuthError::IdentityTaken);
        }
        self.inner
            .store
            .link_identity(id, &record, &entries)
            .await?;
        self.inner.store.commit_durably().await?;
        Ok(record)
    }

    /// A user's linked identities.
    pub async fn identities_of(&self, user: UserId) -> Result<Vec<IdentityRecord>, AuthError> {
        Ok(self.inner.store.identities_of(user).await?)
    }

    /// Unlinks one of the caller's identities; `NotFound` if they have no
    /// such identity, `LastIdentity` if it is their only way to sign in.
    pub async fn unlink_identity(
        &self,
        current: &CurrentSession,
        public_id: &str,
    ) -> Result<(), AuthError> {
        let id = current.user.user_id();
        let entry = By::user(current).entry(AuditKind::IdentityUnlinked, id);
        let entries = [entry.detail(public_id.to_owned())];
        match self
            .inner
            .store
            .unlink_identity(id, public_id, &entries)
            .await?
        {
            Some(_) => {
                self.inner.store.commit_durably().await?;
                Ok(())
            }
            None => Err(AuthError::NotFound),
        }
    }
}

fn identity_record(v: &VerifiedToken) -> IdentityRecord {
    IdentityRecord {
        provider: v.provider.clone(),
        issuer: v.issuer.clone(),
        subject: v.subject.clone(),
        email: v.email.clone(),
        linked_at_ms: now_ms(),
    }
}

/// A valid user name from the token: the e-mail's local part, else the
/// name, else "user"; characters outside `[A-Za-z0-9_.-]` dropped (spaces
/// become dots), cut to leave room for a suffix, padded to three.
fn base_name(v: &VerifiedToken) -> String {
    let source = v
        .email
        .as_deref()
        .and_then(|e| e.split('@').next())
        .filter(|l| !l.is_empty())
        .or(v.name.as_deref())
        .unwrap_or("user");
    let mut name: String = source
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => Some(c),
            c if c.is_whitespace() => Some('.'),
            _ => None,
        })
        .take(20)
        .collect();
    if name.len() < 3 {
        name.push_str("user");
    }
    name
}

/// A provider name as a DNS label, for placeholder addresses.
fn domain_label(provider: &str) -> String {
    let label: String = provider
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect::<String>()
        .to_ascii_lowercase();
    if label.is_empty() {
        "idtoken".into()
    } else {
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(email: Option<&str>, name: Option<&str>) -> VerifiedToken {
        VerifiedToken {
            provider: "firebase".into(),
            issuer: "https://securetoken.google.com/p".into(),
            subject: "abc".into(),
            email: email.map(str::to_owned),
            name: name.map(str::to_owned),
            auto_register: true,
        }
    }

    #[test]
    fn names_come_from_the_email_then_the_name_and_are_valid() {
        assert_eq!(
            base_name(&token(Some("ann.lee@example.com"), None)),
            "ann.lee"
        );
        assert_eq!(base_name(&token(None, Some("Ann Lee"))), "Ann.Lee");
        assert_eq!(base_name(&token(Some("a+b@example.com"), None)), "abuser");
        assert_eq!(base_name(&token(None, Some("李"))), "user");
        assert_eq!(base_name(&token(None, None)), "user");
        let long = base_name(&token(Some(&format!("{}@x.y", "z".repeat(60))), None));
        assert!(
            Username::parse(&format!("{long}-0123abcd")).is_ok(),
            "{long}"
        );
        assert_eq!(domain_label("Fire base!"), "firebase");
    }
}
