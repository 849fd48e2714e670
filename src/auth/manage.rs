//! Seeing and ending sessions, changing passwords and roles, removing
//! users: what express-session leaves every application to write.

use super::{Auth, AuthError, By, ClientInfo, CurrentSession, NewSession};
use crate::domain::{Password, Role, TokenHash, UserId};
use crate::store::{now_ms, AuditKind, AuditRecord, RemovedUser, SessionRecord, UserRecord};

/// Counts for `/api/admin/stats`.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Users stored.
    pub users: u64,
    /// Sessions stored and not yet pruned.
    pub sessions: u64,
}

impl Auth {
    /// A user's live sessions, oldest first.
    pub async fn live_sessions_of(
        &self,
        user: UserId,
    ) -> Result<Vec<(TokenHash, SessionRecord)>, AuthError> {
        let now = now_ms();
        let mut sessions: Vec<_> = self
            .inner
            .store
            .sessions_of(user)
            .await?
            .into_iter()
            .filter(|(_, s)| s.deadline_ms() > now)
            .collect();
        sessions.sort_by_key(|(_, s)| s.created_at_ms);
        Ok(sessions)
    }

    /// Ends one of the caller's live sessions by its public id; `None` if
    /// no live session of theirs has that id (whoever else's it may be).
    pub async fn end_own_session(
        &self,
        current: &CurrentSession,
        public_id: &str,
    ) -> Result<Option<TokenHash>, AuthError> {
        let found = self
            .live_sessions_of(current.user.user_id())
            .await?
            .into_iter()
            .find(|(hash, _)| hash.public_id() == public_id);
        let Some((hash, _)) = found else {
            return Ok(None);
        };
        let id = current.user.user_id();
        let kind = if hash == current.hash {
            AuditKind::Logout
        } else {
            AuditKind::SessionRevoked
        };
        let entry = By::user(current)
            .entry(kind, id)
            .session(public_id.to_owned());
        Ok(self.end(&hash, &[entry]).await?.then_some(hash))
    }

    /// Ends every session of the caller's but the current one.
    pub async fn end_other_sessions(&self, current: &CurrentSession) -> Result<u64, AuthError> {
        let id = current.user.user_id();
        let entry = By::user(current)
            .entry(AuditKind::SessionsRevoked, id)
            .detail("other_sessions");
        self.end_sessions_logged(id, Some(&current.hash), entry)
            .await
    }

    /// Ends every session of `id` but `except`, writing `entry` if any
    /// ended; answers how many did, once durable.
    pub(super) async fn end_sessions_logged(
        &self,
        id: UserId,
        except: Option<&TokenHash>,
        entry: AuditRecord,
    ) -> Result<u64, AuthError> {
        let entries = [entry];
        let ended = self
            .inner
            .store
            .end_sessions_of(id, except, &entries)
            .await?;
        self.durable_if(!ended.is_empty()).await?;
        Ok(ended.len() as u64)
    }

    /// Checks the current password (counting toward login throttling),
    /// stores the new one, ends every session of the user and opens a fresh
    /// one for the caller. A user without a password (made by an ID-token
    /// sign-in) sets a first one with no current password.
    pub async fn change_password(
        &self,
        current: &CurrentSession,
        old: Option<&Password>,
        new: &Password,
        client: &ClientInfo,
    ) -> Result<NewSession, AuthError> {
        let id = current.user.user_id();
        if current.user.has_password() {
            let old = old.ok_or(AuthError::CurrentPasswordRequired)?;
            let account = super::throttle_key(id);
            let stored = Some(current.user.password_hash.as_str());
            self.check_password(&account, Some(id), client, old, stored)
                .await?;
        }
        let hash = self.inner.passwords.hash(new).await?;
        let by = By::user(current);
        let changed = [by.entry(AuditKind::PasswordChanged, id)];
        let user = self
            .inner
            .store
            .set_password_hash(id, &hash, &changed)
            .await?;
        let revoked = by
            .entry(AuditKind::SessionsRevoked, id)
            .detail("password_changed");
        self.end_sessions_logged(id, None, revoked).await?;
        // The same person, the same proofs: the new session keeps them;
        // not a sign-in, so not logged as one.
        self.open_session_logged(
            user,
            client,
            current.session.remember,
            current.session.amr.clone(),
            |_| Vec::new(),
        )
        .await
    }

    /// Clears login throttling for a user's account (an admin's unlock);
    /// `NotFound` if there is no such user.
    pub async fn unlock(&self, id: UserId) -> Result<(), AuthError> {
        self.user(id).await?;
        let account = super::throttle_key(id);
        self.inner.throttle.forgive(&account);
        self.inner.store.forgive_login_failures(&account).await?;
        let second = format!("mfa:{account}");
        self.inner.mfa_throttle.forgive(&second);
        self.inner.store.forgive_login_failures(&second).await?;
        Ok(())
    }

    /// A page of users in id order, and the cursor of the next page.
    pub async fn list_users(
        &self,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<(Vec<UserRecord>, Option<UserId>), AuthError> {
        let mut users = self.inner.store.list_users(after, limit + 1).await?;
        let next = if users.len() > limit {
            users.truncate(limit);
            users.last().map(UserRecord::user_id)
        } else {
            None
        };
        Ok((users, next))
    }

    /// The user with this id.
    pub async fn user(&self, id: UserId) -> Result<UserRecord, AuthError> {
        self.inner.store.user(id).await?.ok_or(AuthError::NotFound)
    }

    /// Changes a role (`by` an admin); it holds from that user's next
    /// request, since every request reads the user afresh. The last admin
    /// cannot be demoted.
    pub async fn set_role(&self, id: UserId, role: Role, by: &By) -> Result<UserRecord, AuthError> {
        set_role(&self.inner.store, id, role, by).await
    }

    /// Removes a user (`by` an admin) with their sessions and indexes. The
    /// last admin cannot be removed.
    pub async fn remove_user(&self, id: UserId, by: &By) -> Result<UserRecord, AuthError> {
        Ok(remove_user(&self.inner.store, id, by).await?.user)
    }

    /// Ends every session of a user (`by` an admin); `NotFound` if there
    /// is no such user.
    pub async fn end_sessions_of(&self, id: UserId, by: &By) -> Result<u64, AuthError> {
        self.user(id).await?;
        Ok(end_sessions_of(&self.inner.store, id, by).await? as u64)
    }

    /// Users and sessions stored.
    pub async fn stats(&self) -> Result<Stats, AuthError> {
        Ok(Stats {
            users: self.inner.store.user_count().await?,
            sessions: self.inner.store.session_count().await?,
        })
    }

    pub(super) async fn durable_if(&self, changed: bool) -> Result<(), AuthError> {
        if changed {
            self.inner.store.commit_durably().await?;
        }
        Ok(())
    }
}

/// Changes a role, logging the move if there was one; answered once
/// durable. For the service and the offline CLI alike.
pub async fn set_role(
    store: &crate::store::Store,
    id: UserId,
    role: Role,
    by: &By,
) -> Result<UserRecord, AuthError> {
    // The store writes the entry only if the role changed, and there are
    // two roles: a change to one is from the other.
    let moved = match role {
        Role::Admin => "user -> admin",
        Role::User => "admin -> user",
    };
    let entries = [by.entry(AuditKind::RoleChanged, id).detail(moved)];
    let user = store.set_role(id, role, &entries).await?;
    store.commit_durably().await?;
    Ok(user)
}

/// Removes a user, logging who did; answered once durable. For the
/// service and the offline CLI alike.
pub async fn remove_user(
    store: &crate::store::Store,
    id: UserId,
    by: &By,
) -> Result<RemovedUser, AuthError> {
    let entries = [by.entry(AuditKind::UserRemoved, id)];
    let removed = store.remove_user(id, &entries).await?;
    // The apps they allowed: nobody is left to have allowed them (their
    // grants ended with their sessions).
    let consents = crate::store::TicketKey::User(crate::store::TicketKind::OidcApps, id);
    store.take_ticket(&consents).await?;
    store.commit_durably().await?;
    Ok(removed)
}

/// Ends every session of a user, logging who did (an admin, or the
/// operator); answered once durable. For the service and the offline CLI
/// alike.
pub async fn end_sessions_of(
    store: &crate::store::Store,
    id: UserId,
    by: &By,
) -> Result<usize, AuthError> {
    let entries = [by.entry(AuditKind::SessionsRevoked, id).detail("admin")];
    let ended = store.end_sessions_of(id, None, &entries).await?;
    if !ended.is_empty() {
        store.commit_durably().await?;
    }
    Ok(ended.len())
}

/// The user whose log `raw` names: a name, else an id (a removed user's
/// log outlives them; a name that looks like an id is the name's).
/// `None` if neither names one.
pub async fn log_owner(
    store: &crate::store::Store,
    raw: &str,
) -> Result<Option<UserId>, AuthError> {
    Ok(match store.user_by_name(raw).await? {
        Some(user) => Some(user.user_id()),
        None => UserId::parse(raw),
    })
}
