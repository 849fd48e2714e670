//! Users and their name and e-mail indexes.

use sled::transaction::ConflictableTransactionError as Tx;
use sled::Transactional;

use super::{codec, decode, tx, Store, StoreError, UserRecord};
use crate::domain::{Email, Role, UserId, Username};

/// What registration hands the store; the hash is made by the auth layer.
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

impl Store {
    /// Adds a user and both indexes at once; a name or e-mail already taken
    /// (ignoring case) is refused, even by a racing registration.
    pub fn create_user(&self, new: NewUser<'_>) -> Result<UserRecord, StoreError> {
        let s = &self.shared;
        let record = UserRecord {
            id: s.db.generate_id()? + 1,
            username: new.username.as_ref().to_owned(),
            email: new.email.as_ref().to_owned(),
            role: new.role,
            password_hash: new.password_hash,
            created_at_ms: new.now_ms,
        };
        let id = record.user_id().to_be_bytes();
        let value = codec::encode(&record);
        let (name_key, email_key) = (new.username.key(), new.email.key());
        tx(
            (&s.users, &s.user_names, &s.user_emails).transaction(|(users, names, emails)| {
                if names.get(name_key.as_bytes())?.is_some() {
                    return Err(Tx::Abort(StoreError::UsernameTaken));
                }
                if emails.get(email_key.as_bytes())?.is_some() {
                    return Err(Tx::Abort(StoreError::EmailTaken));
                }
                users.insert(&id, value.as_slice())?;
                names.insert(name_key.as_bytes(), &id)?;
                emails.insert(email_key.as_bytes(), &id)?;
                Ok(())
            }),
        )?;
        Ok(record)
    }

    /// The user with this id, if any.
    pub fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.shared
            .users
            .get(id.to_be_bytes())?
            .map(|v| decode("users", &v))
            .transpose()
    }

    /// Finds a user by name, ignoring case.
    pub fn user_by_name(&self, name_key: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_by_index(&self.shared.user_names, name_key)
    }

    /// Finds a user by e-mail, ignoring case.
    pub fn user_by_email(&self, email_key: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_by_index(&self.shared.user_emails, email_key)
    }

    fn user_by_index(
        &self,
        index: &sled::Tree,
        key: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        match index
            .get(key.as_bytes())?
            .and_then(|v| UserId::from_be_slice(&v))
        {
            Some(id) => self.user(id),
            None => Ok(None),
        }
    }
}
