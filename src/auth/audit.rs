//! Who asked for a change, and from where: what each security-log entry
//! says besides what happened. Every change the auth layer makes takes a
//! `By`, and hands the store the entries it builds, so the store writes
//! them with the change.

use super::{Auth, AuthError, ClientInfo, CurrentSession};
use crate::domain::{TokenHash, UserId};
use crate::store::{now_ms, Actor, AuditId, AuditKind, AuditQuery, AuditRecord, SessionRecord};

/// Who is acting, from which client and session.
#[derive(Debug, Clone)]
pub struct By {
    actor: Actor,
    ip: Option<String>,
    user_agent: Option<String>,
    /// The acting session's public id, when the actor is its user.
    session: Option<String>,
}

impl By {
    /// A signed-in user acting on their own account through `current`.
    pub fn user(current: &CurrentSession) -> Self {
        Self::session(&current.hash, &current.session)
    }

    /// The user of a stored session acting through it.
    pub fn session(hash: &TokenHash, session: &SessionRecord) -> Self {
        Self {
            actor: Actor::User(session.user_id),
            ip: Some(session.ip.clone()),
            user_agent: summary(&session.user_agent),
            session: Some(hash.public_id()),
        }
    }

    /// An admin acting on someone's account through `current`.
    pub fn admin(current: &CurrentSession) -> Self {
        Self {
            actor: Actor::Admin(Some(current.user.id)),
            ip: Some(current.session.ip.clone()),
            user_agent: summary(&current.session.user_agent),
            session: None,
        }
    }

    /// An operator at the box (the CLI).
    pub fn operator() -> Self {
        Self {
            actor: Actor::Admin(None),
            ip: None,
            user_agent: None,
            session: None,
        }
    }

    /// The server itself (an OIDC grant ended because its token came
    /// back twice).
    pub fn system() -> Self {
        Self {
            actor: Actor::System,
            ip: None,
            user_agent: None,
            session: None,
        }
    }

    /// Someone at `client` acting as `user` without a session yet (a
    /// sign-in, a recovery).
    pub fn client(user: UserId, client: &ClientInfo) -> Self {
        Self {
            actor: Actor::User(user.as_u64()),
            ip: Some(client.ip.to_string()),
            user_agent: client.user_agent.as_deref().and_then(summary),
            session: None,
        }
    }

    /// The entry for `kind` in `user`'s log: the acting session is named
    /// when it is the user's own.
    pub fn entry(&self, kind: AuditKind, user: UserId) -> AuditRecord {
        let mut entry = AuditRecord::new(kind, user, self.actor, now_ms());
        entry.ip.clone_from(&self.ip);
        entry.user_agent.clone_from(&self.user_agent);
        if self.actor == Actor::User(user.as_u64()) {
            entry.session_id.clone_from(&self.session);
        }
        entry
    }
}

/// A short form of a `User-Agent`: the browser (or client) and the system,
/// as a person reads them ("Firefox on Linux"), else its first 64
/// characters.
pub fn summary(user_agent: &str) -> Option<String> {
    let ua = user_agent.trim();
    if ua.is_empty() {
        return None;
    }
    // Order matters: Edge and Opera say Chrome too, Chrome says Safari.
    const BROWSERS: [(&str, &str); 8] = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
        ("python-requests/", "Python requests"),
        ("reqwest", "reqwest"),
    ];
    const SYSTEMS: [(&str, &str); 6] = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ];
    let browser = BROWSERS
        .iter()
        .find(|(k, _)| ua.contains(k))
        .map(|(_, v)| *v);
    let system = SYSTEMS
        .iter()
        .find(|(k, _)| ua.contains(k))
        .map(|(_, v)| *v);
    Some(match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        _ => ua.chars().take(64).collect(),
    })
}

/// Which accounts had a throttled refusal logged lately: one entry per
/// account and guard per throttle window, so a storm of refused guesses
/// (each a cheap 429) neither writes the store each time nor pushes the
/// account's real history past `audit.max_per_user`.
#[derive(Default)]
pub(super) struct ThrottleNotes {
    logged: std::sync::Mutex<std::collections::HashMap<(u64, &'static str), std::time::Instant>>,
}

impl ThrottleNotes {
    /// Whether a throttled refusal of `user` under `guard` is the first
    /// in this window (and so is logged).
    pub(super) fn first(&self, user: UserId, guard: &'static str) -> bool {
        let now = std::time::Instant::now();
        let window = super::throttle::WINDOW;
        let Ok(mut logged) = self.logged.lock() else {
            return true;
        };
        if logged.len() > 10_000 {
            logged.retain(|_, at| now.duration_since(*at) < window);
        }
        match logged.get(&(user.as_u64(), guard)) {
            Some(at) if now.duration_since(*at) < window => false,
            _ => {
                logged.insert((user.as_u64(), guard), now);
                true
            }
        }
    }
}

/// One page of a log: entries newest first, and the cursor of the next.
pub type ActivityPage = (Vec<(AuditId, AuditRecord)>, Option<AuditId>);

impl Auth {
    /// Writes entries that record no other change, then emits them.
    pub(super) async fn record(&self, entries: &[AuditRecord]) -> Result<(), AuthError> {
        self.inner.store.record(entries).await?;
        Ok(())
    }

    /// A page of the log `query` asks for (one user's, or, for an admin,
    /// everyone's), and the cursor of the next page.
    pub async fn activity(&self, mut query: AuditQuery) -> Result<ActivityPage, AuthError> {
        let limit = query.limit;
        query.limit = limit + 1;
        let mut entries = self.inner.store.activity(&query).await?;
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|(id, _)| *id)
        } else {
            None
        };
        Ok((entries, next))
    }
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn a_user_agent_reads_as_browser_on_system() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(summary(firefox).as_deref(), Some("Firefox on Linux"));
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0";
        assert_eq!(summary(edge).as_deref(), Some("Edge on Windows"));
        assert_eq!(summary("curl/8.5.0").as_deref(), Some("curl"));
        assert_eq!(summary("  ").as_deref(), None);
        let odd = "x".repeat(300);
        assert_eq!(summary(&odd).map(|s| s.len()), Some(64));
    }
}
