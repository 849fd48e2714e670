//! `sessiond check`: every index agrees exactly with the records.

use std::collections::{HashMap, HashSet};

use super::records::{
    expiry_key, identity_key, ticket_expiry_key, user_session_key, IdentityRecord,
};
use super::users::{ADMIN_COUNT, NEXT_USER_ID};
use super::{decode, CheckReport, SessionRecord, SledStore, StoreError, UserRecord};
use crate::domain::{email_key, name_key, Role, TokenHash, UserId};

impl SledStore {
    /// Reads every tree and reports each disagreement between an index and
    /// its records. Read-only; meant for a stopped server's data dir.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        let s = &self.shared;
        let mut report = CheckReport::default();
        let mut users: HashMap<u64, UserRecord> = HashMap::new();
        for item in s.users.iter() {
            let (key, value) = item?;
            match decode::<UserRecord>("users", &value) {
                Ok(user) if UserId::from_be_slice(&key) == Some(user.user_id()) => {
                    users.insert(user.id, user);
                }
                Ok(user) => report.problems.push(format!(
                    "users: key {} holds user {}",
                    hex_key(&key),
                    user.user_id()
                )),
                Err(e) => report
                    .problems
                    .push(format!("users: key {}: {e}", hex_key(&key))),
            }
        }
        report.users = users.len() as u64;
        for user in users.values() {
            report
                .problems
                .extend(super::super::factors::problems(user));
        }
        check_index(&mut report, "user_names", &s.user_names, &users, |u| {
            name_key(&u.username)
        })?;
        check_index(&mut report, "user_emails", &s.user_emails, &users, |u| {
            email_key(&u.email)
        })?;
        let admins = users.values().filter(|u| u.role == Role::Admin).count() as u64;
        let counted = super::users::read_count(s.meta.get(ADMIN_COUNT)?.as_deref());
        if admins != counted {
            report.problems.push(format!(
                "meta: admin_count is {counted} but {admins} users are admins"
            ));
        }
        let next_id = super::users::read_count(s.meta.get(NEXT_USER_ID)?.as_deref());
        if let Some(highest) = users.keys().max().filter(|h| **h >= next_id) {
            report.problems.push(format!(
                "meta: next_user_id is {next_id} but a user has id {highest}"
            ));
        }

        let mut expected_expiry = HashSet::new();
        let mut expected_by_user = HashSet::new();
        for item in s.sessions.iter() {
            let (key, value) = item?;
            let Some(hash) = TokenHash::from_slice(&key) else {
                report
                    .problems
                    .push(format!("sessions: key {} is not a hash", hex_key(&key)));
                continue;
            };
            let session: SessionRecord = match decode("sessions", &value) {
                Ok(session) => session,
                Err(e) => {
                    report.problems.push(format!("sessions: {hash:?}: {e}"));
                    continue;
                }
            };
            report.sessions += 1;
            if !users.contains_key(&session.user_id) {
                report.problems.push(format!(
                    "sessions: {hash:?} belongs to missing user {}",
                    session.owner()
                ));
            }
            expected_expiry.insert(expiry_key(session.deadline_ms(), &hash));
            expected_by_user.insert(user_session_key(session.owner(), &hash));
        }
        check_set(
            &mut report,
            "session_expiry",
            &s.session_expiry,
            &expected_expiry,
        )?;
        check_set(
            &mut report,
            "user_sessions",
            &s.user_sessions,
            &expected_by_user,
        )?;
        self.check_identities(&mut report, &users)?;
        // Tickets (mailed codes, links, ceremonies): each decodes and has
        // its one expiry entry, or the pruner would never reach it.
        let mut expected_tickets = HashSet::new();
        for item in s.tickets.iter() {
            let (key, value) = item?;
            match decode::<crate::store::TicketRecord>("tickets", &value) {
                Ok(t) => {
                    expected_tickets.insert(ticket_expiry_key(t.deadline_ms, &key));
                }
                Err(e) => report
                    .problems
                    .push(format!("tickets: key {}: {e}", hex_key(&key))),
            }
        }
        check_set(
            &mut report,
            "ticket_expiry",
            &s.ticket_expiry,
            &expected_tickets,
        )?;
        for item in s.outbox.iter() {
            let (key, value) = item?;
            if let Err(e) = decode::<crate::store::MailRecord>("outbox", &value) {
                report
                    .problems
                    .push(format!("outbox: key {}: {e}", hex_key(&key)));
            }
        }
        Ok(report)
    }

    /// Every link is in both identity trees, for a user that exists.
    fn check_identities(
        &self,
        report: &mut CheckReport,
        users: &HashMap<u64, UserRecord>,
    ) -> Result<(), StoreError> {
        let s = &self.shared;
        let mut expected = HashSet::new();
        for item in s.user_identities.iter() {
            let (key, value) = item?;
            let owner = key.get(..8).and_then(UserId::from_be_slice);
            let Some(owner) = owner.filter(|o| users.contains_key(&o.as_u64())) else {
                report.problems.push(format!(
                    "user_identities: entry {} belongs to no user",
                    hex_key(&key)
                ));
                continue;
            };
            match decode::<IdentityRecord>("user_identities", &value) {
                Ok(i) if key[8..] == identity_key(&i.issuer, &i.subject)[..] => {
                    expected.insert((key[8..].to_vec(), owner));
                }
                Ok(_) => report.problems.push(format!(
                    "user_identities: entry {} holds another identity",
                    hex_key(&key)
                )),
                Err(e) => report
                    .problems
                    .push(format!("user_identities: entry {}: {e}", hex_key(&key))),
            }
        }
        let mut found = HashSet::new();
        for item in s.identities.iter() {
            let (key, value) = item?;
            let owner = UserId::from_be_slice(&value);
            match owner {
                Some(owner) if expected.contains(&(key.to_vec(), owner)) => {
                    found.insert((key.to_vec(), owner));
                }
                _ => report.problems.push(format!(
                    "identities: entry {} has no matching link",
                    hex_key(&key)
                )),
            }
        }
        for (key, owner) in expected.difference(&found) {
            report.problems.push(format!(
                "identities: missing entry {} for user {owner}",
                hex_key(key)
            ));
        }
        Ok(())
    }
}

/// A name or e-mail index must hold exactly one entry per user, pointing
/// back at that user.
fn check_index(
    report: &mut CheckReport,
    tree: &str,
    index: &sled::Tree,
    users: &HashMap<u64, UserRecord>,
    key_of: impl Fn(&UserRecord) -> String,
) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for item in index.iter() {
        let (key, value) = item?;
        let text = String::from_utf8_lossy(&key).into_owned();
        match UserId::from_be_slice(&value).and_then(|id| users.get(&id.as_u64())) {
            Some(user) if key_of(user) == text => {
                seen.insert(user.id);
            }
            Some(user) => report.problems.push(format!(
                "{tree}: {text:?} points at user {} whose key is {:?}",
                user.user_id(),
                key_of(user)
            )),
            None => report
                .problems
                .push(format!("{tree}: {text:?} points at no user")),
        }
    }
    for user in users.values().filter(|u| !seen.contains(&u.id)) {
        report.problems.push(format!(
            "{tree}: no entry for user {} ({:?})",
            user.user_id(),
            key_of(user)
        ));
    }
    Ok(())
}

/// An index of bare keys must equal the set its records imply.
fn check_set(
    report: &mut CheckReport,
    tree: &str,
    index: &sled::Tree,
    expected: &HashSet<Vec<u8>>,
) -> Result<(), StoreError> {
    let mut found = HashSet::new();
    for key in index.iter().keys() {
        let key = key?.to_vec();
        if !expected.contains(&key) {
            report.problems.push(format!(
                "{tree}: entry {} has no matching record",
                hex_key(&key)
            ));
        }
        found.insert(key);
    }
    for key in expected.difference(&found) {
        report
            .problems
            .push(format!("{tree}: missing entry {}", hex_key(key)));
    }
    Ok(())
}

fn hex_key(key: &[u8]) -> String {
    crate::domain::hex(key)
}
