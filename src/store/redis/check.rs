//! `sessiond check` on Redis: every index agrees with its records. Walks
//! the prefix with SCAN, so it is for an operator, never a request path.

use std::collections::{HashMap, HashSet};

use super::{
    decode, CheckReport, IdentityRecord, RedisStore, SessionRecord, StoreError, UserRecord,
};
use crate::domain::{email_key, hex, name_key, Role};
use crate::store::now_ms;
use crate::store::records::identity_key;

impl RedisStore {
    /// Reads every key under the prefix and reports each disagreement.
    pub async fn check(&self) -> Result<CheckReport, StoreError> {
        let mut report = CheckReport::default();
        let mut users: HashMap<u64, UserRecord> = HashMap::new();
        for key in self.scan("user:").await? {
            let raw: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(&key)).await?;
            let Some(raw) = raw else { continue };
            match decode::<UserRecord>("user", &raw) {
                Ok(u) if key.ends_with(&format!("user:{}", u.id)) => {
                    users.insert(u.id, u);
                }
                Ok(u) => report.problems.push(format!("{key} holds user {}", u.id)),
                Err(e) => report.problems.push(format!("{key}: {e}")),
            }
        }
        report.users = users.len() as u64;
        let listed: Vec<u64> = self
            .run(redis::cmd("ZRANGE").arg(self.key("users")).arg(0).arg(-1))
            .await?;
        let listed: HashSet<u64> = listed.into_iter().collect();
        for id in users.keys().filter(|id| !listed.contains(id)) {
            report
                .problems
                .push(format!("users: user {id} is not listed"));
        }
        for id in listed.iter().filter(|id| !users.contains_key(id)) {
            report
                .problems
                .push(format!("users: lists {id}, which has no record"));
        }
        self.check_index(&mut report, "name:", &users, |u| name_key(&u.username))
            .await?;
        self.check_index(&mut report, "email:", &users, |u| email_key(&u.email))
            .await?;
        let admins = users.values().filter(|u| u.role == Role::Admin).count() as u64;
        let counted: Option<u64> = self
            .run(redis::cmd("GET").arg(self.key("admin_count")))
            .await?;
        if admins != counted.unwrap_or(0) {
            report.problems.push(format!(
                "admin_count is {} but {admins} users are admins",
                counted.unwrap_or(0)
            ));
        }
        let next: Option<u64> = self
            .run(redis::cmd("GET").arg(self.key("next_user_id")))
            .await?;
        if let Some(highest) = users.keys().max().filter(|h| **h >= next.unwrap_or(1)) {
            report.problems.push(format!(
                "next_user_id is {} but user {highest} exists",
                next.unwrap_or(1)
            ));
        }
        self.check_sessions(&mut report, &users).await?;
        self.check_identities(&mut report, &users).await?;
        Ok(report)
    }

    async fn check_index(
        &self,
        report: &mut CheckReport,
        kind: &str,
        users: &HashMap<u64, UserRecord>,
        key_of: impl Fn(&UserRecord) -> String,
    ) -> Result<(), StoreError> {
        let mut seen = HashSet::new();
        for key in self.scan(kind).await? {
            let id: Option<u64> = self.run(redis::cmd("GET").arg(&key)).await?;
            let Some(id) = id else { continue };
            match users.get(&id) {
                Some(u) if key == self.key(&format!("{kind}{}", key_of(u))) => {
                    seen.insert(id);
                }
                _ => report
                    .problems
                    .push(format!("{key} points at {id}, which does not have it")),
            }
        }
        for id in users.keys().filter(|id| !seen.contains(id)) {
            report
                .problems
                .push(format!("{kind} user {id} has no index entry"));
        }
        Ok(())
    }

    async fn check_sessions(
        &self,
        report: &mut CheckReport,
        users: &HashMap<u64, UserRecord>,
    ) -> Result<(), StoreError> {
        let expiry: Vec<(String, f64)> = self
            .run(
                redis::cmd("ZRANGE")
                    .arg(self.key("expiry"))
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES"),
            )
            .await?;
        let expiry: HashMap<String, u64> = expiry.into_iter().map(|(m, s)| (m, s as u64)).collect();
        let mut stored = HashSet::new();
        for key in self.scan("sess:").await? {
            let hash = key.rsplit(':').next().unwrap_or_default().to_owned();
            let raw: Option<Vec<u8>> = self.run(redis::cmd("HGET").arg(&key).arg("r")).await?;
            let Some(raw) = raw else { continue };
            let session: SessionRecord = match decode("session", &raw) {
                Ok(s) => s,
                Err(e) => {
                    report.problems.push(format!("{key}: {e}"));
                    continue;
                }
            };
            report.sessions += 1;
            let member = format!("{}:{hash}", session.user_id);
            stored.insert(member.clone());
            if !users.contains_key(&session.user_id) {
                report
                    .problems
                    .push(format!("{key}: its user {} is gone", session.user_id));
            }
            if expiry.get(&member) != Some(&session.deadline_ms()) {
                report
                    .problems
                    .push(format!("expiry: no entry at the deadline of {key}"));
            }
            let score: Option<f64> = self
                .run(
                    redis::cmd("ZSCORE")
                        .arg(self.key(&format!("user_sessions:{}", session.user_id)))
                        .arg(&hash),
                )
                .await?;
            if score.map(|s| s as u64) != Some(session.deadline_ms()) {
                report
                    .problems
                    .push(format!("user_sessions: no entry at the deadline of {key}"));
            }
        }
        let now = now_ms();
        for (member, deadline) in &expiry {
            if !stored.contains(member) && *deadline > now {
                report
                    .problems
                    .push(format!("expiry: {member} has no session"));
            }
        }
        for key in self.scan("user_sessions:").await? {
            let uid = key.rsplit(':').next().unwrap_or_default().to_owned();
            let hashes: Vec<String> = self
                .run(redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1))
                .await?;
            for hash in hashes {
                if !expiry.contains_key(&format!("{uid}:{hash}")) {
                    report
                        .problems
                        .push(format!("{key}: {hash} has no expiry entry"));
                }
            }
        }
        Ok(())
    }

    async fn check_identities(
        &self,
        report: &mut CheckReport,
        users: &HashMap<u64, UserRecord>,
    ) -> Result<(), StoreError> {
        for key in self.scan("ident:").await? {
            let id: Option<u64> = self.run(redis::cmd("GET").arg(&key)).await?;
            let Some(id) = id else { continue };
            let ident = key.rsplit(':').next().unwrap_or_default().to_owned();
            let linked: bool = self
                .run(
                    redis::cmd("HEXISTS")
                        .arg(self.key(&format!("user_idents:{id}")))
                        .arg(&ident),
                )
                .await?;
            if !linked || !users.contains_key(&id) {
                report
                    .problems
                    .push(format!("{key} points at user {id}, who does not list it"));
            }
        }
        for key in self.scan("user_idents:").await? {
            let id: u64 = key
                .rsplit(':')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let all: HashMap<String, Vec<u8>> = self.run(redis::cmd("HGETALL").arg(&key)).await?;
            for (ident, raw) in all {
                let owner: Option<u64> = self
                    .run(redis::cmd("GET").arg(self.key(&format!("ident:{ident}"))))
                    .await?;
                let record: Result<IdentityRecord, _> = decode("identity", &raw);
                let matches = record
                    .map(|r| hex(&identity_key(&r.issuer, &r.subject)) == ident)
                    .unwrap_or(false);
                if owner != Some(id) || !matches || !users.contains_key(&id) {
                    report
                        .problems
                        .push(format!("{key}: {ident} is not linked back to user {id}"));
                }
            }
        }
        Ok(())
    }

    /// Every key `<prefix><kind>...`, in no order.
    async fn scan(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        let pattern = format!(
            "{}{}*",
            super::glob_escape(&self.shared.prefix),
            super::glob_escape(kind)
        );
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .run(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}
