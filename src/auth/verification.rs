//! Verified e-mail addresses: a code mailed at registration (and on
//! request) proves the address is the user's. A new address is the same:
//! it takes effect only once its code comes back, and the old one is told.
//! The latest code asked for is the one that works. With
//! `auth.require_verified_email`, a password sign-in of an unverified user
//! is refused, saying so; they can ask for a new code without signing in.

use std::time::Duration;

use super::recovery::{six_digits, Mailing};
use super::{throttle_key, AuthError, ClientInfo, CurrentSession, Guard};
use crate::domain::{email_key, Email, Password};
use crate::mail::Letter;
use crate::store::{now_ms, Actor, AuditKind, AuditRecord, TicketKey, TicketKind, UserRecord};

/// How long a verification code works.
pub const CODE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

impl super::Auth {
    /// Mails `user` a code for their current address (replacing any
    /// earlier one), answered once the mail is queued durably.
    pub(super) async fn mail_verification(&self, user: &UserRecord) -> Result<(), AuthError> {
        self.mail_code_to(user, &user.email).await
    }

    /// Mails `user` a code that proves `address` (theirs, or the one they
    /// are moving to), replacing any earlier code.
    async fn mail_code_to(&self, user: &UserRecord, address: &str) -> Result<(), AuthError> {
        let id = user.user_id();
        let code = six_digits();
        let mac = self.inner.factor_keys.verify_code_macs(id, &code)[0];
        let key = TicketKey::User(TicketKind::EmailVerify, id);
        // The address goes with it: a code for an address the user no
        // longer has verifies nothing.
        self.put_mailed_code(&key, mac, address, CODE_TTL).await?;
        let letter = Letter::verification_code(&user.username, &code, &self.inner.page_url);
        self.inner.outbox.queue(address, &letter).await?;
        self.inner.store.commit_durably().await?;
        Ok(())
    }

    /// A new code for the signed-in user; `AlreadyVerified` if there is
    /// nothing to verify. Counts against the same throttle as recovery.
    pub async fn resend_verification(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        self.mail_enabled()?;
        if user.email_verified {
            return Err(AuthError::AlreadyVerified);
        }
        let work = async {
            self.mail_verification(user).await?;
            Ok(false)
        };
        self.guarded(Guard::Recovery, &throttle_key(user.user_id()), client, work)
            .await?;
        Ok(())
    }

    /// A new code for whoever `login` names, without a session (an
    /// unverified user refused at sign-in): answered as a recovery request
    /// is, the same for every input and no sooner than its floor.
    pub async fn resend_verification_to(
        &self,
        login: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        self.mail_to_login(login, client, Mailing::Verification)
            .await
    }

    /// Starts moving the signed-in user to `email`: their password proves
    /// it is them (a user without one needs a fresh proof, as for factor
    /// changes), and a code goes to the new address; nothing changes until
    /// it comes back. Throttled as resends.
    pub async fn request_email_change(
        &self,
        current: &CurrentSession,
        password: Option<&Password>,
        email: &Email,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        self.mail_enabled()?;
        let user = &current.user;
        let id = user.user_id();
        if user.has_password() {
            let password = password.ok_or(AuthError::CurrentPasswordRequired)?;
            let stored = Some(user.password_hash.as_str());
            self.check_password(&throttle_key(id), Some(id), client, password, stored)
                .await?;
        } else {
            self.require_fresh(current).await?;
        }
        if email.as_ref() == user.email && user.email_verified {
            return Err(AuthError::AlreadyVerified);
        }
        let holder = self.inner.store.user_by_email(email.as_ref()).await?;
        if holder.is_some_and(|h| h.id != user.id) {
            return Err(AuthError::EmailTaken);
        }
        let work = async {
            self.mail_code_to(user, email.as_ref()).await?;
            Ok(false)
        };
        self.guarded(Guard::Recovery, &throttle_key(id), client, work)
            .await?;
        Ok(())
    }

    /// `verify_email` for the user `login` names (no session: a user
    /// refused sign-in until verified); no such user is a wrong code.
    pub async fn verify_email_of(&self, login: &str, code: &str) -> Result<UserRecord, AuthError> {
        self.mail_enabled()?;
        let user = self
            .find_login(login)
            .await?
            .ok_or(AuthError::RecoveryFailed)?;
        self.verify_email(&user, code).await
    }

    /// Marks the address verified if `code` is the one mailed to it, or,
    /// if it went to a new address, moves the user there and tells the old
    /// one. A wrong code uses up one of its tries.
    pub async fn verify_email(
        &self,
        before: &UserRecord,
        code: &str,
    ) -> Result<UserRecord, AuthError> {
        self.mail_enabled()?;
        let store = &self.inner.store;
        let id = before.user_id();
        let key = TicketKey::User(TicketKind::EmailVerify, id);
        let macs = |typed: &str| self.inner.factor_keys.verify_code_macs(id, typed);
        let body = self.take_mailed_code(&key, macs, code).await?;
        let moves = email_key(&before.email) != email_key(&body.email);
        let changed = moves.then(|| {
            AuditRecord::new(
                AuditKind::EmailChanged,
                id,
                Actor::User(id.as_u64()),
                now_ms(),
            )
            .detail(format!("{} -> {}", before.email, body.email))
        });
        let entries: Vec<AuditRecord> = changed.into_iter().collect();
        // The store refuses if the address changed since `before` was read.
        let user = store
            .verify_email(id, &before.email, &body.email, &entries)
            .await?
            .ok_or(AuthError::RecoveryFailed)?;
        if moves {
            let page = &self.inner.page_url;
            let notice = Letter::email_changed(&user.username, &user.email, page);
            self.inner.outbox.queue(&before.email, &notice).await?;
        }
        store.commit_durably().await?;
        Ok(user)
    }
}
