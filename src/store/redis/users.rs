//! Users on Redis: `user:<id>` holds the record, `name:<key>` and
//! `email:<key>` the indexes, `users` (a sorted set by id) the list, and
//! `admin_count` / `next_user_id` the counters. Changes to an existing
//! user compare the record they read before writing (a script), and retry
//! if another instance changed it in between.

use redis::Value;

use super::{
    arg, decode, Answer, IdentityRecord, NewUser, RedisStore, RemovedUser, StoreError, UserRecord,
    RETRIES,
};
use crate::domain::{email_key, hex, name_key, Role, TokenHash, UserId};
use crate::store::codec;
use crate::store::records::identity_key;

impl RedisStore {
    /// Adds a user, both indexes and, for an ID-token sign-in, the
    /// identity, in one script. The id is the counter's value when the
    /// caller read it; a registration on another instance in between makes
    /// the script refuse, and this one reads the counter again.
    pub async fn create_user_linked(
        &self,
        new: NewUser<'_>,
        identity: Option<&IdentityRecord>,
    ) -> Result<UserRecord, StoreError> {
        let (ident_key, ident_value) = match identity {
            Some(i) => (hex(&identity_key(&i.issuer, &i.subject)), codec::encode(i)),
            None => (String::new(), Vec::new()),
        };
        let admin = if new.role == Role::Admin { "1" } else { "0" };
        for _ in 0..RETRIES {
            let next: Option<u64> = self
                .run(redis::cmd("GET").arg(self.key("next_user_id")))
                .await?;
            let record = UserRecord {
                id: next.unwrap_or(1).max(1),
                username: new.username.as_ref().to_owned(),
                email: new.email.as_ref().to_owned(),
                role: new.role,
                password_hash: new.password_hash.clone(),
                created_at_ms: new.now_ms,
            };
            let reply: Vec<Value> = self
                .script(
                    &self.shared.scripts.create_user,
                    &[
                        arg(record.id),
                        arg(new.username.key()),
                        arg(new.email.key()),
                        arg(codec::encode(&record)),
                        arg(admin),
                        arg(&ident_key),
                        arg(&ident_value),
                    ],
                )
                .await?;
            if let Answer::Done(_) = Answer::of(reply)? {
                return Ok(record);
            }
        }
        tracing::warn!("user ids kept being taken under a registration; giving up");
        Err(StoreError::Redis(
            "registering a user: the id kept being taken; try again".into(),
        ))
    }

    /// The user with this id, if any.
    pub async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let raw: Option<Vec<u8>> = self
            .run(redis::cmd("GET").arg(self.key(&format!("user:{}", id.as_u64()))))
            .await?;
        raw.map(|r| decode("user", &r)).transpose()
    }

    /// Finds a user by name, ignoring case.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_by_index(&format!("name:{}", name_key(name)))
            .await
    }

    /// Finds a user by e-mail, ignoring case.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_by_index(&format!("email:{}", email_key(email)))
            .await
    }

    async fn user_by_index(&self, index: &str) -> Result<Option<UserRecord>, StoreError> {
        let raw: Option<Vec<u8>> = self
            .read_script(&self.shared.scripts.find_user, &[arg(index)])
            .await?;
        raw.map(|r| decode("user", &r)).transpose()
    }

    /// Up to `limit` users with ids after `after`, in id order.
    pub async fn list_users(
        &self,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let after = after.map_or(0, |id| id.as_u64());
        let limit = limit.min(i64::MAX as usize) as i64;
        let raw: Vec<Vec<u8>> = self
            .read_script(&self.shared.scripts.list_users, &[arg(after), arg(limit)])
            .await?;
        raw.iter().map(|r| decode("user", r)).collect()
    }

    /// Changes a role; refuses to demote the last admin.
    pub async fn set_role(&self, id: UserId, role: Role) -> Result<UserRecord, StoreError> {
        self.change_user(id, |user| {
            let delta = match (user.role, role) {
                (Role::Admin, Role::User) => -1,
                (Role::User, Role::Admin) => 1,
                _ => 0,
            };
            user.role = role;
            delta
        })
        .await
    }

    /// Replaces a password hash.
    pub async fn set_password_hash(
        &self,
        id: UserId,
        hash: &str,
    ) -> Result<UserRecord, StoreError> {
        self.change_user(id, |user| {
            user.password_hash = hash.to_owned();
            0
        })
        .await
    }

    /// Reads the user, applies `change` (which returns the admin count's
    /// delta) and writes it back if nobody changed it meanwhile.
    async fn change_user(
        &self,
        id: UserId,
        change: impl Fn(&mut UserRecord) -> i64,
    ) -> Result<UserRecord, StoreError> {
        self.with_user(id, "changing a user", |raw, mut user| {
            let delta = change(&mut user);
            let args = [
                arg(id.as_u64()),
                arg(raw),
                arg(codec::encode(&user)),
                arg(delta),
            ];
            async move {
                let reply = self
                    .script(&self.shared.scripts.replace_user, &args)
                    .await?;
                Ok(matches!(Answer::of(reply)?, Answer::Done(_)).then_some(user))
            }
        })
        .await
    }

    /// Removes a user with both indexes, every session and identity, in
    /// one script. Refuses the last admin.
    pub async fn remove_user(&self, id: UserId) -> Result<RemovedUser, StoreError> {
        self.with_user(id, "removing a user", |raw, user| async move {
            let admin = if user.role == Role::Admin { "1" } else { "0" };
            let args = [
                arg(id.as_u64()),
                arg(raw),
                arg(name_key(&user.username)),
                arg(email_key(&user.email)),
                arg(admin),
            ];
            let reply = self.script(&self.shared.scripts.remove_user, &args).await?;
            let Answer::Done(ended) = Answer::of(reply)? else {
                return Ok(None);
            };
            let sessions = ended
                .into_iter()
                .filter_map(|v| redis::from_redis_value::<String>(v).ok())
                .filter_map(|h| TokenHash::from_hex(&h))
                .collect();
            Ok(Some(RemovedUser { user, sessions }))
        })
        .await
    }
}
