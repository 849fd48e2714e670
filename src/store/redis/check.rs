//! `sessiond check` on Redis: every index agrees with its records,
//! including what a crash between two steps of a change could leave (see
//! `users.rs` and `sessions.rs` for the orders that keep that findable).
//! Walks the prefix with SCAN on every primary, so it is for an operator,
//! never a request path. Each finding carries its repair (`Fix`), which
//! `sessiond check --repair` applies: it finishes what a crash cut short
//! (lists a registered user, writes a missing index entry) or undoes it
//! (drops a user no name leads to, an entry leading nowhere).

use std::collections::{HashMap, HashSet};

use super::keys::{expiry_member, parse_expiry_member};
use super::{
    bounded, decode, CheckReport, IdentityRecord, RedisStore, SessionRecord, StoreError, UserRecord,
};
use crate::domain::{email_key, hex, name_key, Role};
use crate::store::now_ms;
use crate::store::records::identity_key;

/// How to put one finding right.
#[derive(Debug)]
pub(super) enum Fix {
    /// A command that makes it agree.
    Run(redis::Cmd),
    /// A user that no name or e-mail leads to, or unlisted without both:
    /// what a registration or removal cut short leaves; removed whole.
    DropUser(u64),
    /// The admin count, set to the admins there are (after every drop).
    CountAdmins,
    /// An index entry leading to a user who does not have it: deleted if
    /// it still does.
    GiveUp(String, u64),
}

/// What a check found, and how to repair it.
#[derive(Default)]
pub(super) struct Findings {
    pub report: CheckReport,
    pub fixes: Vec<Fix>,
}

impl Findings {
    fn found(&mut self, problem: String, fix: Option<Fix>) {
        self.report.problems.push(problem);
        self.fixes.extend(fix);
    }
}

impl RedisStore {
    /// Reads every key under the prefix and reports each disagreement.
    pub async fn check(&self) -> Result<CheckReport, StoreError> {
        Ok(self.findings().await?.report)
    }

    /// Applies every repair a check finds, then checks again.
    pub async fn repair(&self) -> Result<(usize, CheckReport), StoreError> {
        let found = self.findings().await?;
        let mut fixes = found.fixes;
        // Counts last: dropping users changes them.
        fixes.sort_by_key(|f| matches!(f, Fix::CountAdmins));
        let applied = fixes.len();
        for fix in fixes {
            match fix {
                Fix::Run(cmd) => {
                    let _: redis::Value = self.run(&cmd).await?;
                }
                Fix::DropUser(id) => self.drop_user(id).await?,
                Fix::GiveUp(entry, id) => self.give_up(entry, id).await?,
                Fix::CountAdmins => {
                    let mut admins = 0u64;
                    let mut after = None;
                    loop {
                        let page = self.list_users(after, 1000).await?;
                        let Some(last) = page.last() else { break };
                        after = Some(last.user_id());
                        admins += page.iter().filter(|u| u.role == Role::Admin).count() as u64;
                    }
                    let _: () = self
                        .run(
                            redis::cmd("SET")
                                .arg(self.shared.keys.all("admin_count"))
                                .arg(admins),
                        )
                        .await?;
                }
            }
        }
        Ok((applied, self.check().await?))
    }

    /// Removes a user found half made or half removed, as a removal
    /// would (`remove_as_read`).
    async fn drop_user(&self, id: u64) -> Result<(), StoreError> {
        let id = crate::domain::UserId::from_u64(id);
        let dropped = self
            .with_user(id, "repairing a user", |raw, user| async move {
                self.remove_as_read(&user, raw, &[]).await
            })
            .await;
        match dropped {
            Ok(_) | Err(StoreError::NoSuchUser) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every disagreement under the prefix, with its repair.
    pub(super) async fn findings(&self) -> Result<Findings, StoreError> {
        let keys = &self.shared.keys;
        let mut found = Findings::default();
        let mut users: HashMap<u64, UserRecord> = HashMap::new();
        for key in self.scan("user:{*}").await? {
            let raw: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(&key)).await?;
            let Some(raw) = raw else { continue };
            match decode::<UserRecord>("user", &raw) {
                Ok(u) if key == keys.user(u.id) => {
                    users.insert(u.id, u);
                }
                Ok(u) => found.found(format!("{key} holds user {}", u.id), None),
                Err(e) => found.found(format!("{key}: {e}"), None),
            }
        }
        found.report.users = users.len() as u64;
        for user in users.values() {
            for problem in crate::store::factors::problems(user) {
                found.found(problem, None);
            }
        }
        let names = self
            .check_index(&mut found, "name:", &users, |u| {
                keys.name(&name_key(&u.username))
            })
            .await?;
        let emails = self
            .check_index(&mut found, "email:", &users, |u| {
                keys.email(&email_key(&u.email))
            })
            .await?;
        // A user no name or e-mail leads to is what a crash left of a
        // registration or a removal: repaired by removing it.
        let whole = |id: &u64| names.contains(id) && emails.contains(id);
        for id in users.keys().filter(|id| !whole(id)) {
            found.fixes.push(Fix::DropUser(*id));
        }
        let listed: Vec<u64> = self
            .run(redis::cmd("ZRANGE").arg(keys.all("users")).arg(0).arg(-1))
            .await?;
        let listed: HashSet<u64> = listed.into_iter().collect();
        for id in users.keys().filter(|id| !listed.contains(id)) {
            let fix = whole(id).then(|| {
                Fix::Run(
                    redis::cmd("ZADD")
                        .arg(keys.all("users"))
                        .arg(id)
                        .arg(id)
                        .clone(),
                )
            });
            found.found(format!("users: user {id} is not listed"), fix);
        }
        for id in listed.iter().filter(|id| !users.contains_key(id)) {
            let fix = redis::cmd("ZREM").arg(keys.all("users")).arg(id).clone();
            found.found(
                format!("users: lists {id}, which has no record"),
                Some(Fix::Run(fix)),
            );
        }
        let admins = users.values().filter(|u| u.role == Role::Admin).count() as u64;
        let counted: Option<u64> = self
            .run(redis::cmd("GET").arg(keys.all("admin_count")))
            .await?;
        if admins != counted.unwrap_or(0) {
            found.found(
                format!(
                    "admin_count is {} but {admins} users are admins",
                    counted.unwrap_or(0)
                ),
                Some(Fix::CountAdmins),
            );
        }
        let last: Option<u64> = self
            .run(redis::cmd("GET").arg(keys.all("next_user_id")))
            .await?;
        if let Some(highest) = users.keys().max().filter(|h| **h > last.unwrap_or(0)) {
            let fix = redis::cmd("SET")
                .arg(keys.all("next_user_id"))
                .arg(highest)
                .clone();
            found.found(
                format!(
                    "next_user_id has given out {} ids but user {highest} exists",
                    last.unwrap_or(0)
                ),
                Some(Fix::Run(fix)),
            );
        }
        self.check_sessions(&mut found, &users).await?;
        self.check_identities(&mut found, &users).await?;
        self.check_outbox(&mut found).await?;
        Ok(found)
    }

    /// Every queued mail decodes and is due at some time; every due entry
    /// has its mail (a crash cannot split them: one script writes both).
    async fn check_outbox(&self, found: &mut Findings) -> Result<(), StoreError> {
        let [due, mails, _] = self.outbox_keys();
        let stored: Vec<(u64, Vec<u8>)> = self.run(redis::cmd("HGETALL").arg(&mails)).await?;
        let scheduled: Vec<u64> = self
            .run(redis::cmd("ZRANGE").arg(&due).arg(0).arg(-1))
            .await?;
        let scheduled: HashSet<u64> = scheduled.into_iter().collect();
        let mut queued = HashSet::new();
        for (id, raw) in stored {
            queued.insert(id);
            match decode::<crate::store::MailRecord>("outbox", &raw) {
                Ok(mail) if !scheduled.contains(&id) => {
                    let fix = redis::cmd("ZADD")
                        .arg(&due)
                        .arg(mail.next_attempt_ms)
                        .arg(id)
                        .clone();
                    found.found(
                        format!("outbox: mail {id} is never due"),
                        Some(Fix::Run(fix)),
                    );
                }
                Ok(_) => {}
                Err(e) => found.found(format!("outbox: mail {id}: {e}"), None),
            }
        }
        for id in scheduled.difference(&queued) {
            let fix = redis::cmd("ZREM").arg(&due).arg(id).clone();
            found.found(
                format!("outbox: {id} is due but has no mail"),
                Some(Fix::Run(fix)),
            );
        }
        Ok(())
    }

    /// Every entry of an index leads to a user who has it, and every user
    /// has one. Answers the users that have one.
    async fn check_index(
        &self,
        found: &mut Findings,
        kind: &str,
        users: &HashMap<u64, UserRecord>,
        entry_of: impl Fn(&UserRecord) -> String,
    ) -> Result<HashSet<u64>, StoreError> {
        let mut seen = HashSet::new();
        for key in self.scan(&format!("{kind}*")).await? {
            let id: Option<u64> = self.run(redis::cmd("GET").arg(&key)).await?;
            let Some(id) = id else { continue };
            match users.get(&id) {
                Some(u) if key == entry_of(u) => {
                    seen.insert(id);
                }
                _ => found.found(
                    format!("{key} points at {id}, which does not have it"),
                    Some(Fix::GiveUp(key.clone(), id)),
                ),
            }
        }
        for id in users.keys().filter(|id| !seen.contains(id)) {
            found.found(format!("{kind} user {id} has no index entry"), None);
        }
        Ok(seen)
    }

    async fn check_sessions(
        &self,
        found: &mut Findings,
        users: &HashMap<u64, UserRecord>,
    ) -> Result<(), StoreError> {
        let keys = &self.shared.keys;
        let expiry: Vec<(String, f64)> = self
            .run(
                redis::cmd("ZRANGE")
                    .arg(keys.all("expiry"))
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES"),
            )
            .await?;
        let expiry: HashMap<String, u64> = expiry.into_iter().map(|(m, s)| (m, s as u64)).collect();
        let mut stored = HashSet::new();
        for key in self.scan("user:{*}:session:*").await? {
            let Some((uid, hash)) = session_key_parts(&key) else {
                found.found(format!("{key}: not a session key"), None);
                continue;
            };
            let raw: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(&key)).await?;
            let Some(raw) = raw else { continue };
            let session: SessionRecord = match decode("session", &raw) {
                Ok(s) => s,
                Err(e) => {
                    found.found(format!("{key}: {e}"), None);
                    continue;
                }
            };
            found.report.sessions += 1;
            let member = expiry_member(uid, &hash);
            stored.insert(member.clone());
            let deadline = session.deadline_ms();
            if session.user_id != uid {
                found.found(
                    format!("{key} holds a session of user {}", session.user_id),
                    None,
                );
            }
            if !users.contains_key(&uid) {
                let fix = redis::cmd("DEL").arg(&key).clone();
                found.found(
                    format!("{key}: its user {uid} is gone"),
                    Some(Fix::Run(fix)),
                );
                continue;
            }
            if expiry.get(&member) != Some(&deadline) {
                let fix = redis::cmd("ZADD")
                    .arg(keys.all("expiry"))
                    .arg(deadline)
                    .arg(&member)
                    .clone();
                found.found(
                    format!("expiry: no entry at the deadline of {key}"),
                    Some(Fix::Run(fix)),
                );
            }
            let index = keys.user_sessions(uid);
            let score: Option<f64> = self
                .run(redis::cmd("ZSCORE").arg(&index).arg(&hash))
                .await?;
            if score.map(|s| s as u64) != Some(deadline) {
                let fix = redis::cmd("ZADD")
                    .arg(&index)
                    .arg(deadline)
                    .arg(&hash)
                    .clone();
                found.found(
                    format!("{index}: no entry at the deadline of {key}"),
                    Some(Fix::Run(fix)),
                );
            }
            let Some(token) = crate::domain::TokenHash::from_hex(&hash).map(|h| keys.token(&h))
            else {
                found.found(format!("{key}: not a session key"), None);
                continue;
            };
            let owner: Option<u64> = self.run(redis::cmd("GET").arg(&token)).await?;
            if owner != Some(uid) {
                let fix = redis::cmd("SET")
                    .arg(&token)
                    .arg(uid)
                    .arg("PXAT")
                    .arg(super::sessions::expire_at(session.absolute_expires_at_ms))
                    .clone();
                found.found(
                    format!("{key}: no token entry leads to it"),
                    Some(Fix::Run(fix)),
                );
            }
        }
        let now = now_ms();
        for (member, deadline) in &expiry {
            if !stored.contains(member) && *deadline > now {
                let fix = redis::cmd("ZREM")
                    .arg(keys.all("expiry"))
                    .arg(member)
                    .clone();
                found.found(
                    format!("expiry: {member} has no session"),
                    Some(Fix::Run(fix)),
                );
            }
        }
        for key in self.scan("user:{*}:sessions").await? {
            let Some(uid) = tag_of(&key) else { continue };
            let hashes: Vec<String> = self
                .run(redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1))
                .await?;
            for hash in hashes {
                let member = expiry_member(uid, &hash);
                if !expiry.contains_key(&member) && !stored.contains(&member) {
                    let fix = redis::cmd("ZREM").arg(&key).arg(&hash).clone();
                    found.found(format!("{key}: {hash} has no session"), Some(Fix::Run(fix)));
                }
            }
        }
        for member in expiry.keys() {
            if parse_expiry_member(member).is_none() {
                let fix = redis::cmd("ZREM")
                    .arg(keys.all("expiry"))
                    .arg(member)
                    .clone();
                found.found(
                    format!("expiry: {member} is not <user id>:<hash>"),
                    Some(Fix::Run(fix)),
                );
            }
        }
        Ok(())
    }

    async fn check_identities(
        &self,
        found: &mut Findings,
        users: &HashMap<u64, UserRecord>,
    ) -> Result<(), StoreError> {
        let keys = &self.shared.keys;
        for key in self.scan("ident:*").await? {
            let id: Option<u64> = self.run(redis::cmd("GET").arg(&key)).await?;
            let Some(id) = id else { continue };
            let ident = key.rsplit(':').next().unwrap_or_default().to_owned();
            let linked: bool = self
                .run(
                    redis::cmd("HEXISTS")
                        .arg(keys.user_identities(id))
                        .arg(&ident),
                )
                .await?;
            if !linked || !users.contains_key(&id) {
                found.found(
                    format!("{key} points at user {id}, who does not list it"),
                    Some(Fix::GiveUp(key.clone(), id)),
                );
            }
        }
        for key in self.scan("user:{*}:identities").await? {
            let Some(id) = tag_of(&key) else { continue };
            let all: HashMap<String, Vec<u8>> = self.run(redis::cmd("HGETALL").arg(&key)).await?;
            for (ident, raw) in all {
                let entry = keys.ident(&ident);
                let owner: Option<u64> = self.run(redis::cmd("GET").arg(&entry)).await?;
                let record: Result<IdentityRecord, _> = decode("identity", &raw);
                let matches = record
                    .map(|r| hex(&identity_key(&r.issuer, &r.subject)) == ident)
                    .unwrap_or(false);
                if owner != Some(id) || !matches || !users.contains_key(&id) {
                    // Listed but not linked back: what a link or unlink cut
                    // short; unlisted (signing in with it never worked).
                    let fix = redis::cmd("HDEL").arg(&key).arg(&ident).clone();
                    found.found(
                        format!("{key}: {ident} is not linked back to user {id}"),
                        Some(Fix::Run(fix)),
                    );
                }
            }
        }
        Ok(())
    }

    /// Every key `<prefix><pattern>` on every primary, sorted. `pattern`
    /// is a SCAN glob after the (escaped) prefix.
    pub(super) async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{}{pattern}", glob_escape(self.shared.keys.prefix()));
        let timeout = self.shared.timeout;
        let conn = &self.shared.conn;
        let nodes = bounded(timeout, conn.on_every_primary(&redis::cmd("PING"))).await?;
        let mut keys = Vec::new();
        for (node, _) in nodes {
            let mut cursor = 0u64;
            loop {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000);
                let reply = bounded(timeout, conn.on_node(&node, &cmd)).await?;
                let (next, batch): (u64, Vec<String>) =
                    redis::from_redis_value(reply).map_err(|e| StoreError::Redis(e.to_string()))?;
                keys.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

/// The user id in a key's `{<id>}` tag.
pub(super) fn tag_of(key: &str) -> Option<u64> {
    let open = key.rfind("user:{")? + "user:{".len();
    let close = open + key[open..].find('}')?;
    key[open..close].parse().ok()
}

/// The user id and hash of `…user:{<id>}:session:<hash>`.
fn session_key_parts(key: &str) -> Option<(u64, String)> {
    let uid = tag_of(key)?;
    let hash = key.rsplit_once(":session:")?.1;
    Some((uid, hash.to_owned()))
}

/// Escapes a prefix for a SCAN pattern.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
