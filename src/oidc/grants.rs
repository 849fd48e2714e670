//! Grants: one client's refresh-token family on one sessiond session.
//!
//! Each grant is a store record with the hash of its one current refresh
//! token; a refresh swaps in the next (compare-and-swap), so a token used
//! twice, or two uses racing, ends the family. The grants of a session
//! are listed under the session's hash: when the session ends for any
//! reason, the instance that takes that list ends them and sends each
//! client that asked for one a back-channel logout token. A grant never
//! outlives its session, and a refresh checks the session first, so an
//! ending missed while Redis was away still ends the grant at its next use.

use serde::{Deserialize, Serialize};

use super::flow::CodeBody;
use super::tokens::TokenResponse;
use super::{b64, random, sha256, OidcError, Provider};
use crate::auth::{By, CurrentSession};
use crate::config::{ClientConfig, Consent};
use crate::domain::{Amr, TokenHash, UserId};
use crate::store::{codec, now_ms, AuditKind, SessionRecord, TicketKey, TicketKind, TicketRecord};

/// A grant as stored (`OidcGrant`, by its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct GrantBody {
    pub client_id: String,
    pub user_id: u64,
    /// The sessiond session it hangs off (its token's hash).
    pub session: [u8; 32],
    /// That session's public id: the tokens' `sid`.
    pub sid: String,
    pub scopes: Vec<String>,
    /// When the session signed in (Unix millis): `auth_time`.
    pub auth_time_ms: u64,
    pub amr: Vec<Amr>,
    pub nonce: Option<String>,
    /// SHA-256 of the one refresh token that works now.
    pub refresh_hash: [u8; 32],
    /// SHA-256 of the refresh tokens it replaced (the newest
    /// `KEEP_PREVIOUS`): one of them coming back is a reuse, which ends
    /// the grant; a token that never was one of them changes nothing.
    pub previous: Vec<[u8; 32]>,
    /// Unix millis.
    pub created_ms: u64,
}

impl codec::Record for GrantBody {}

/// The grants of one session (`OidcSession`, by the session's hash).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SessionGrants {
    user_id: u64,
    /// (client id, grant id).
    grants: Vec<(String, [u8; 32])>,
}

impl codec::Record for SessionGrants {}

/// One user's consents (`OidcApps`, by user).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Consents {
    /// (client id, scopes agreed to, Unix millis).
    pub given: Vec<(String, Vec<String>, u64)>,
}

impl codec::Record for Consents {}

/// Replaced refresh tokens remembered per grant.
const KEEP_PREVIOUS: usize = 16;

/// A consent is kept until revoked: the record outlives any session.
const CONSENT_MS: u64 = 10 * 365 * 24 * 60 * 60 * 1000;
/// A session's list outlives the session by this much, so the instance
/// that sees it end still finds it.
const AFTER_SESSION_MS: u64 = 24 * 60 * 60 * 1000;

/// An app with access, for the account page.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    /// `client_id`.
    pub client_id: String,
    /// Its display name.
    pub name: String,
    /// The scopes consented to (empty: none remembered).
    pub scopes: Vec<String>,
    /// When consent was given, RFC 3339; `None` if never asked.
    pub consented_at: Option<String>,
    /// Live grants (one per signed-in session that used the app).
    pub active_grants: usize,
}

impl Provider {
    /// A new grant for the code's session: its first refresh token.
    pub(super) async fn create_grant(
        &self,
        id: [u8; 32],
        code: &CodeBody,
        session: &SessionRecord,
    ) -> Result<(GrantBody, String), OidcError> {
        let secret = random::<32>();
        let now = now_ms();
        let grant = GrantBody {
            client_id: code.client_id.clone(),
            user_id: code.user_id,
            session: code.session,
            sid: TokenHash::from_bytes(code.session).public_id(),
            scopes: code.scopes.clone(),
            auth_time_ms: code.auth_time_ms,
            amr: code.amr.clone(),
            nonce: code.nonce.clone(),
            refresh_hash: sha256(&secret),
            previous: Vec::new(),
            created_ms: now,
        };
        let deadline = self.grant_deadline(now, session);
        let record = TicketRecord {
            deadline_ms: deadline,
            body: codec::encode(&grant),
        };
        // Listed under the session first: a grant the session's ending
        // cannot find must not exist.
        self.list_under_session(&grant, id, session).await?;
        self.auth()
            .store()
            .put_ticket(&TicketKey::Id(TicketKind::OidcGrant, id), &record)
            .await?;
        Ok((grant, refresh_token(&id, &secret)))
    }

    /// Trades a refresh token for new tokens and the next refresh token.
    pub(super) async fn refresh(
        &self,
        client: &ClientConfig,
        token: &str,
    ) -> Result<TokenResponse, OidcError> {
        let invalid = || OidcError::InvalidGrant("The refresh token is not valid.".into());
        let (id, secret) = parse_refresh_token(token).ok_or_else(invalid)?;
        let key = TicketKey::Id(TicketKind::OidcGrant, id);
        let store = self.auth().store();
        let presented = sha256(&secret);
        loop {
            let Some(stored) = store.ticket(&key).await? else {
                return Err(invalid());
            };
            let mut grant: GrantBody = decode(&stored)?;
            if grant.client_id != client.id {
                return Err(invalid());
            }
            if !same(&presented, &grant.refresh_hash) {
                if grant.previous.iter().any(|p| same(p, &presented)) {
                    // A replaced token used again: someone else may hold
                    // the family.
                    self.end_grant_reused(&key, &stored, &grant, "refresh_token_reused")
                        .await?;
                }
                return Err(invalid());
            }
            let hash = TokenHash::from_bytes(grant.session);
            let now = now_ms();
            let session = store
                .session(&hash)
                .await?
                .filter(|s| s.deadline_ms() > now);
            let Some(session) = session else {
                store.swap_ticket(&key, Some(&stored), None).await?;
                return Err(OidcError::InvalidGrant(
                    "The sessiond session this token hangs off has ended.".into(),
                ));
            };
            let user = store
                .user(UserId::from_u64(grant.user_id))
                .await?
                .ok_or_else(invalid)?;
            let next = random::<32>();
            grant.previous.push(grant.refresh_hash);
            if grant.previous.len() > KEEP_PREVIOUS {
                grant.previous.remove(0);
            }
            grant.refresh_hash = sha256(&next);
            let record = TicketRecord {
                deadline_ms: stored.deadline_ms.min(session.absolute_expires_at_ms),
                body: codec::encode(&grant),
            };
            if store
                .swap_ticket(&key, Some(&stored), Some(&record))
                .await?
            {
                return self
                    .issue(client, &grant, &id, &user, refresh_token(&id, &next))
                    .await;
            }
            // Changed meanwhile. Still this token: the grant moved to the
            // session of a new sign-in, so try again. Another token: two
            // uses of this one at once, and one of them is not the
            // client's own.
            let Some(now_stored) = store.ticket(&key).await? else {
                return Err(invalid());
            };
            let now_grant: GrantBody = decode(&now_stored)?;
            if same(&now_grant.refresh_hash, &presented) {
                continue;
            }
            self.end_grant_reused(&key, &now_stored, &now_grant, "refresh_token_reused")
                .await?;
            return Err(invalid());
        }
    }

    /// Ends the grant a code made when that code comes back (RFC 6749
    /// 4.1.2): whoever has it now may not be the client.
    pub(super) async fn end_grant_of_reused_code(
        &self,
        grant_id: [u8; 32],
    ) -> Result<(), OidcError> {
        let key = TicketKey::Id(TicketKind::OidcGrant, grant_id);
        if let Some(stored) = self.auth().store().ticket(&key).await? {
            let grant: GrantBody = decode(&stored)?;
            self.end_grant_reused(&key, &stored, &grant, "code_reused")
                .await?;
        }
        Ok(())
    }

    async fn end_grant_reused(
        &self,
        key: &TicketKey,
        stored: &TicketRecord,
        grant: &GrantBody,
        why: &str,
    ) -> Result<(), OidcError> {
        let store = self.auth().store();
        if store.swap_ticket(key, Some(stored), None).await? {
            let user = UserId::from_u64(grant.user_id);
            let entry = By::system()
                .entry(AuditKind::OidcTokensRevoked, user)
                .session(grant.sid.clone())
                .detail(format!("{} ({why})", grant.client_id));
            store.record(&[entry]).await?;
            tracing::warn!(client = %grant.client_id, reason = why, "an OIDC grant was ended");
        }
        Ok(())
    }

    /// A refresh token's grant, if it is live and its session too: for
    /// introspection and revocation.
    pub(super) async fn grant_of(
        &self,
        token: &str,
    ) -> Result<Option<(TicketKey, TicketRecord, GrantBody)>, OidcError> {
        let Some((id, secret)) = parse_refresh_token(token) else {
            return Ok(None);
        };
        let key = TicketKey::Id(TicketKind::OidcGrant, id);
        let store = self.auth().store();
        let Some(stored) = store.ticket(&key).await? else {
            return Ok(None);
        };
        let grant: GrantBody = decode(&stored)?;
        let current = same(&sha256(&secret), &grant.refresh_hash);
        let live = current && self.session_lives(&grant).await?;
        Ok(live.then_some((key, stored, grant)))
    }

    /// Whether the grant an access token names (its `gid`) and its
    /// session still live: an access token ends with them, not only at
    /// its `exp`.
    pub(super) async fn grant_lives(&self, gid: &str) -> Result<bool, OidcError> {
        use base64::Engine;
        let Some(id) = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(gid)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        else {
            return Ok(false);
        };
        let key = TicketKey::Id(TicketKind::OidcGrant, id);
        match self.auth().store().ticket(&key).await? {
            None => Ok(false),
            Some(stored) => self.session_lives(&decode(&stored)?).await,
        }
    }

    async fn session_lives(&self, grant: &GrantBody) -> Result<bool, OidcError> {
        let hash = TokenHash::from_bytes(grant.session);
        let now = now_ms();
        Ok(self
            .auth()
            .store()
            .session(&hash)
            .await?
            .is_some_and(|s| s.deadline_ms() > now && s.user_id == grant.user_id))
    }

    /// Ends a grant by its refresh token (RFC 7009), if it is `client`'s.
    pub(super) async fn revoke_refresh_token(
        &self,
        client: &ClientConfig,
        token: &str,
    ) -> Result<(), OidcError> {
        if let Some((key, stored, grant)) = self.grant_of(token).await? {
            if grant.client_id == client.id {
                self.auth()
                    .store()
                    .swap_ticket(&key, Some(&stored), None)
                    .await?;
            }
        }
        Ok(())
    }

    /// What a session's ending ends: its grants, and a logout token to
    /// each client with a back-channel URI, under the `sid` it knows. Of
    /// several instances seeing the same ending, the one that takes the
    /// session's list does this.
    pub async fn session_ended(&self, hash: &TokenHash) -> Result<(), OidcError> {
        let store = self.auth().store();
        let key = TicketKey::Id(TicketKind::OidcSession, *hash.as_bytes());
        let Some(list) = store.take_ticket(&key).await? else {
            return Ok(());
        };
        let list: SessionGrants = decode(&list)?;
        let user = UserId::from_u64(list.user_id);
        let mut told: Vec<(String, String)> = Vec::new();
        for (client_id, grant_id) in &list.grants {
            let key = TicketKey::Id(TicketKind::OidcGrant, *grant_id);
            // Told under the sid each grant was made with. A grant carried
            // to the session that replaced this one is not ended; one that
            // ended already was told then, or is past telling (its sid is
            // gone with it).
            let sid = loop {
                let Some(stored) = store.ticket(&key).await? else {
                    break None;
                };
                let grant: GrantBody = decode(&stored)?;
                if grant.session != *hash.as_bytes() {
                    break None;
                }
                if store.swap_ticket(&key, Some(&stored), None).await? {
                    break Some(grant.sid);
                }
            };
            let Some(sid) = sid else { continue };
            let pair = (client_id.clone(), sid);
            if told.contains(&pair) {
                continue;
            }
            if let Some(client) = self.client(client_id) {
                self.send_backchannel_logout(client, user, &pair.1).await;
            }
            told.push(pair);
        }
        Ok(())
    }

    /// Ends the grants of every listed session that no longer lives, and
    /// tells their clients: for endings no event reported (this process
    /// was down, or Redis dropped its events for a while). Run at start
    /// and when the store's events flow again; its cost follows the
    /// provider's records, not every session.
    pub async fn sweep_ended_sessions(&self) -> Result<usize, OidcError> {
        let store = self.auth().store();
        let now = now_ms();
        let mut swept = 0;
        for (key, _) in store.lasting_tickets().await? {
            let TicketKey::Id(TicketKind::OidcSession, hash) = key else {
                continue;
            };
            let hash = TokenHash::from_bytes(hash);
            let lives = store
                .session(&hash)
                .await?
                .is_some_and(|s| s.deadline_ms() > now);
            if !lives {
                match self.session_ended(&hash).await {
                    Ok(()) => swept += 1,
                    Err(e) => {
                        tracing::warn!(error = %e, "a session's OIDC grants could not be ended")
                    }
                }
            }
        }
        Ok(swept)
    }

    /// Moves the grants of a session the user signs in again over (an
    /// app's `prompt=login` or `max_age`) to the session that replaces
    /// it, before it ends: the other apps keep their tokens and the `sid`
    /// they know it by, and their next ID tokens say when the user last
    /// signed in. Only from a live session of the same user.
    pub async fn carry_grants(
        &self,
        from: &TokenHash,
        to: &TokenHash,
        session: &SessionRecord,
    ) -> Result<(), OidcError> {
        let store = self.auth().store();
        let now = now_ms();
        let live_and_theirs = store
            .session(from)
            .await?
            .is_some_and(|s| s.user_id == session.user_id && s.deadline_ms() > now);
        if !live_and_theirs {
            return Ok(());
        }
        let from_key = TicketKey::Id(TicketKind::OidcSession, *from.as_bytes());
        loop {
            let Some(old) = store.ticket(&from_key).await? else {
                return Ok(());
            };
            let mut list: SessionGrants = decode(&old)?;
            if list.user_id != session.user_id {
                return Ok(());
            }
            let mut moving = Vec::with_capacity(list.grants.len());
            for (client, id) in &list.grants {
                let key = TicketKey::Id(TicketKind::OidcGrant, *id);
                if let Some(stored) = store.ticket(&key).await? {
                    if decode::<GrantBody>(&stored)?.session == *from.as_bytes() {
                        moving.push((client.clone(), *id));
                    }
                }
            }
            // Listed under the new session before they point at it, as at
            // a grant's making; the old session's ending passes over a
            // grant that no longer points at it.
            self.list_under(*to.as_bytes(), list.user_id, &moving, session)
                .await?;
            for (_, id) in &moving {
                self.point_grant(*id, from, to, session).await?;
            }
            // The old list keeps what did not move (a grant being made
            // right now is listed before it is written).
            list.grants.retain(|entry| !moving.contains(entry));
            let rest = (!list.grants.is_empty()).then(|| TicketRecord {
                deadline_ms: old.deadline_ms,
                body: codec::encode(&list),
            });
            if store
                .swap_ticket(&from_key, Some(&old), rest.as_ref())
                .await?
            {
                return Ok(());
            }
        }
    }

    async fn point_grant(
        &self,
        id: [u8; 32],
        from: &TokenHash,
        to: &TokenHash,
        session: &SessionRecord,
    ) -> Result<(), OidcError> {
        let store = self.auth().store();
        let key = TicketKey::Id(TicketKind::OidcGrant, id);
        loop {
            let Some(stored) = store.ticket(&key).await? else {
                return Ok(());
            };
            let mut grant: GrantBody = decode(&stored)?;
            if grant.session != *from.as_bytes() {
                return Ok(());
            }
            grant.session = *to.as_bytes();
            grant.auth_time_ms = session.created_at_ms;
            grant.amr.clone_from(&session.amr);
            // A family lives `refresh_token_ttl` from its making, moved or
            // not, and never past its session.
            let record = TicketRecord {
                deadline_ms: self.grant_deadline(grant.created_ms, session),
                body: codec::encode(&grant),
            };
            if store
                .swap_ticket(&key, Some(&stored), Some(&record))
                .await?
            {
                return Ok(());
            }
        }
    }

    /// The live session of `user` that apps know as `sid`: the one whose
    /// public id it is, or the one that carries grants made under it.
    pub(super) async fn session_known_as(
        &self,
        user: UserId,
        sid: &str,
    ) -> Result<Option<TokenHash>, OidcError> {
        let store = self.auth().store();
        let live = self.auth().live_sessions_of(user).await?;
        if let Some((hash, _)) = live.iter().find(|(h, _)| h.public_id() == sid) {
            return Ok(Some(*hash));
        }
        for (hash, _) in live {
            let key = TicketKey::Id(TicketKind::OidcSession, *hash.as_bytes());
            let Some(list) = store.ticket(&key).await? else {
                continue;
            };
            let list: SessionGrants = decode(&list)?;
            for (_, id) in list.grants {
                let key = TicketKey::Id(TicketKind::OidcGrant, id);
                if let Some(stored) = store.ticket(&key).await? {
                    let grant: GrantBody = decode(&stored)?;
                    if grant.sid == sid && grant.session == *hash.as_bytes() {
                        return Ok(Some(hash));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Whether `user` has consented to `client` for at least `scopes`.
    pub(super) async fn has_consent(
        &self,
        client: &ClientConfig,
        user: UserId,
        scopes: &[String],
    ) -> Result<bool, OidcError> {
        if client.consent == Consent::Implicit {
            return Ok(true);
        }
        if client.consent == Consent::Always {
            return Ok(false);
        }
        let consents = self
            .consents(user)
            .await?
            .map(|(_, c)| c)
            .unwrap_or_default();
        Ok(consents
            .given
            .iter()
            .any(|(c, agreed, _)| *c == client.id && scopes.iter().all(|s| agreed.contains(s))))
    }

    /// Remembers a consent (for `consent = "once"`) and logs it.
    pub(super) async fn remember_consent(
        &self,
        client: &ClientConfig,
        current: &CurrentSession,
        scopes: &[String],
    ) -> Result<(), OidcError> {
        let user = current.user.user_id();
        let store = self.auth().store();
        if client.consent == Consent::Once {
            loop {
                let old = self.consents(user).await?;
                let mut consents = old.as_ref().map(|(_, c)| c.clone()).unwrap_or_default();
                consents.given.retain(|(c, _, _)| *c != client.id);
                consents
                    .given
                    .push((client.id.clone(), scopes.to_vec(), now_ms()));
                let new = consent_record(&consents);
                let key = TicketKey::User(TicketKind::OidcApps, user);
                if store
                    .swap_ticket(&key, old.as_ref().map(|(t, _)| t), Some(&new))
                    .await?
                {
                    break;
                }
            }
        }
        let entry = By::user(current)
            .entry(AuditKind::OidcConsent, user)
            .detail(format!("{} ({})", client.id, scopes.join(" ")));
        store.record(&[entry]).await?;
        Ok(())
    }

    /// The apps with access to the user: consents, and clients with live
    /// grants.
    pub async fn apps(&self, user: UserId) -> Result<Vec<AppView>, OidcError> {
        let consents = self
            .consents(user)
            .await?
            .map(|(_, c)| c)
            .unwrap_or_default();
        let mut apps: Vec<AppView> = Vec::new();
        let view = |id: &str| AppView {
            client_id: id.to_owned(),
            name: self.client(id).map_or(id, |c| c.display_name()).to_owned(),
            scopes: Vec::new(),
            consented_at: None,
            active_grants: 0,
        };
        for (client, scopes, at) in &consents.given {
            let mut app = view(client);
            app.scopes.clone_from(scopes);
            app.consented_at = Some(crate::domain::rfc3339(*at));
            apps.push(app);
        }
        for (client, _) in self.live_grants_of(user).await? {
            match apps.iter_mut().find(|a| a.client_id == client) {
                Some(app) => app.active_grants += 1,
                None => {
                    let mut app = view(&client);
                    app.active_grants = 1;
                    apps.push(app);
                }
            }
        }
        Ok(apps)
    }

    /// Withdraws an app's access: the consent is forgotten and its grants
    /// end (each with a back-channel logout where the client has one).
    /// `false` if the app had neither.
    pub async fn revoke_app(
        &self,
        current: &CurrentSession,
        client_id: &str,
    ) -> Result<bool, OidcError> {
        let user = current.user.user_id();
        let store = self.auth().store();
        let mut had = false;
        loop {
            let Some((old, mut consents)) = self.consents(user).await? else {
                break;
            };
            let before = consents.given.len();
            consents.given.retain(|(c, _, _)| c != client_id);
            if consents.given.len() == before {
                break;
            }
            let key = TicketKey::User(TicketKind::OidcApps, user);
            if store
                .swap_ticket(&key, Some(&old), Some(&consent_record(&consents)))
                .await?
            {
                had = true;
                break;
            }
        }
        let mut ended = 0;
        for (client, grant_id) in self.live_grants_of(user).await? {
            if client != client_id {
                continue;
            }
            let key = TicketKey::Id(TicketKind::OidcGrant, grant_id);
            if let Some(taken) = store.take_ticket(&key).await? {
                ended += 1;
                let grant: GrantBody = decode(&taken)?;
                if let Some(c) = self.client(client_id) {
                    self.send_backchannel_logout(c, user, &grant.sid).await;
                }
            }
        }
        if had || ended > 0 {
            let entry = By::user(current)
                .entry(AuditKind::OidcTokensRevoked, user)
                .detail(client_id.to_owned());
            store.record(&[entry]).await?;
            store.commit_durably().await?;
        }
        Ok(had || ended > 0)
    }

    /// (client, grant id) of every live grant of `user`'s sessions.
    async fn live_grants_of(&self, user: UserId) -> Result<Vec<(String, [u8; 32])>, OidcError> {
        let store = self.auth().store();
        let mut out = Vec::new();
        for (hash, _) in self.auth().live_sessions_of(user).await? {
            let key = TicketKey::Id(TicketKind::OidcSession, *hash.as_bytes());
            let Some(list) = store.ticket(&key).await? else {
                continue;
            };
            let list: SessionGrants = decode(&list)?;
            for (client, id) in list.grants {
                if store
                    .ticket(&TicketKey::Id(TicketKind::OidcGrant, id))
                    .await?
                    .is_some()
                {
                    out.push((client, id));
                }
            }
        }
        Ok(out)
    }

    async fn consents(&self, user: UserId) -> Result<Option<(TicketRecord, Consents)>, OidcError> {
        let key = TicketKey::User(TicketKind::OidcApps, user);
        match self.auth().store().ticket(&key).await? {
            None => Ok(None),
            Some(t) => {
                let c = decode(&t)?;
                Ok(Some((t, c)))
            }
        }
    }

    async fn list_under_session(
        &self,
        grant: &GrantBody,
        id: [u8; 32],
        session: &SessionRecord,
    ) -> Result<(), OidcError> {
        let entry = [(grant.client_id.clone(), id)];
        self.list_under(grant.session, grant.user_id, &entry, session)
            .await
    }

    /// Adds `entries` (client id, grant id) to the list of the session
    /// whose hash is `hash`.
    async fn list_under(
        &self,
        hash: [u8; 32],
        user_id: u64,
        entries: &[(String, [u8; 32])],
        session: &SessionRecord,
    ) -> Result<(), OidcError> {
        let store = self.auth().store();
        let key = TicketKey::Id(TicketKind::OidcSession, hash);
        loop {
            let old = store.ticket(&key).await?;
            let mut list: SessionGrants = match &old {
                Some(t) => decode(t)?,
                None => SessionGrants {
                    user_id,
                    grants: Vec::new(),
                },
            };
            // Grants ended since (revoked, reused) leave the list, so it
            // holds what the session has now, not all it ever had.
            let mut kept = Vec::with_capacity(list.grants.len() + entries.len());
            for (client, grant_id) in list.grants {
                let key = TicketKey::Id(TicketKind::OidcGrant, grant_id);
                if store.ticket(&key).await?.is_some() {
                    kept.push((client, grant_id));
                }
            }
            list.grants = kept;
            for entry in entries {
                if !list.grants.contains(entry) {
                    list.grants.push(entry.clone());
                }
            }
            let new = TicketRecord {
                deadline_ms: session
                    .absolute_expires_at_ms
                    .saturating_add(AFTER_SESSION_MS),
                body: codec::encode(&list),
            };
            if store.swap_ticket(&key, old.as_ref(), Some(&new)).await? {
                return Ok(());
            }
        }
    }

    fn grant_deadline(&self, now: u64, session: &SessionRecord) -> u64 {
        now.saturating_add(crate::auth::millis(self.config.refresh_token_ttl))
            .min(session.absolute_expires_at_ms)
    }
}

/// What `sessiond check` says of the provider's records: each grant of a
/// live session must be listed under that session, or its ending would
/// not end the grant (nor tell the client), and every record must read.
pub async fn check_grants(store: &crate::store::Store) -> Result<Vec<String>, OidcError> {
    let tickets = store.lasting_tickets().await?;
    let mut problems = Vec::new();
    let listed: std::collections::HashMap<[u8; 32], SessionGrants> = tickets
        .iter()
        .filter_map(|(key, record)| match key {
            TicketKey::Id(TicketKind::OidcSession, hash) => {
                match codec::decode::<SessionGrants>(&record.body) {
                    Ok(list) => Some((*hash, list)),
                    Err(e) => {
                        problems.push(format!(
                            "oidc session list {}: {e}",
                            TokenHash::from_bytes(*hash).public_id()
                        ));
                        None
                    }
                }
            }
            _ => None,
        })
        .collect();
    let now = now_ms();
    for (key, record) in &tickets {
        let TicketKey::Id(TicketKind::OidcGrant, id) = key else {
            continue;
        };
        let grant: GrantBody = match codec::decode(&record.body) {
            Ok(g) => g,
            Err(e) => {
                problems.push(format!("oidc grant {}: {e}", b64(&id[..8])));
                continue;
            }
        };
        let session = store.session(&TokenHash::from_bytes(grant.session)).await?;
        if session.is_none_or(|s| s.deadline_ms() <= now) {
            continue;
        }
        let found = listed
            .get(&grant.session)
            .is_some_and(|l| l.grants.iter().any(|(_, g)| g == id));
        if !found {
            problems.push(format!(
                "oidc grant {} of client {:?} is not listed under its session {}: its session's end would not end it",
                b64(&id[..8]),
                grant.client_id,
                grant.sid
            ));
        }
    }
    Ok(problems)
}

/// Ends every grant and forgets every consent of `client_id`: what
/// `sessiond oidc client remove` does before the operator deletes the
/// client's block from the config file. Each user who had either gets an
/// `oidc_tokens_revoked` entry by the operator. Answers (grants, consents).
pub async fn remove_client(
    store: &crate::store::Store,
    client_id: &str,
) -> Result<(usize, usize), OidcError> {
    let (mut grants, mut consents, mut users) = (0, 0, std::collections::BTreeSet::new());
    for (key, record) in store.lasting_tickets().await? {
        match key {
            TicketKey::Id(TicketKind::OidcGrant, _) => {
                let grant: GrantBody = decode(&record)?;
                if grant.client_id == client_id
                    && store.swap_ticket(&key, Some(&record), None).await?
                {
                    grants += 1;
                    users.insert(grant.user_id);
                }
            }
            TicketKey::User(TicketKind::OidcApps, user) => {
                let mut given: Consents = decode(&record)?;
                let before = given.given.len();
                given.given.retain(|(c, _, _)| c != client_id);
                if given.given.len() != before
                    && store
                        .swap_ticket(&key, Some(&record), Some(&consent_record(&given)))
                        .await?
                {
                    consents += 1;
                    users.insert(user.as_u64());
                }
            }
            _ => {}
        }
    }
    let entries: Vec<_> = users
        .into_iter()
        .map(|u| {
            By::operator()
                .entry(AuditKind::OidcTokensRevoked, UserId::from_u64(u))
                .detail(format!("{client_id} (client removed)"))
        })
        .collect();
    store.record(&entries).await?;
    store.commit_durably().await?;
    Ok((grants, consents))
}

fn consent_record(consents: &Consents) -> TicketRecord {
    TicketRecord {
        deadline_ms: now_ms().saturating_add(CONSENT_MS),
        body: codec::encode(consents),
    }
}

/// Compares two hashes in constant time.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    subtle::ConstantTimeEq::ct_eq(&a[..], &b[..]).into()
}

/// `grant id . secret`, each unpadded base64url.
fn refresh_token(id: &[u8; 32], secret: &[u8; 32]) -> String {
    format!("{}.{}", b64(id), b64(secret))
}

fn parse_refresh_token(token: &str) -> Option<([u8; 32], [u8; 32])> {
    use base64::Engine;
    let (id, secret) = token.split_once('.')?;
    let decode = |s: &str| -> Option<[u8; 32]> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?
            .try_into()
            .ok()
    };
    Some((decode(id)?, decode(secret)?))
}

pub(super) fn decode<T: codec::Record>(t: &TicketRecord) -> Result<T, OidcError> {
    codec::decode(&t.body)
        .map_err(|e| OidcError::Unexpected(format!("a stored OIDC record is damaged: {e}")))
}
