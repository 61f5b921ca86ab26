//! Users and their roles, in the replicated catalog: `User(name)` → [`User`] (its salted
//! password hash, never the password, and its roles). What each role may do is
//! [`Privilege`]'s to say.

use super::store::Txn;
use crate::encoding::keycode;
use crate::encoding::value as codec;
use crate::sql::error::{Error, Result};
use crate::sql::parser::ast::{Credential, Statement, UserStatement};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The catalog tag of users.
const USER: u8 = 0x07;

fn user_key(name: &str) -> Vec<u8> {
    let mut out = vec![USER];
    keycode::put_str(&mut out, name);
    out
}

/// A role: what a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Everything: users, membership, leadership, and what `ReadWrite` may do.
    Admin,
    /// Queries, writes and schema changes.
    ReadWrite,
    /// Queries only.
    ReadOnly,
}

impl Role {
    /// The role named `name` (admin, readwrite, readonly; any case).
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "readwrite" => Ok(Role::ReadWrite),
            "readonly" => Ok(Role::ReadOnly),
            _ => Err(Error::Invalid(format!(
                "there is no role \"{name}\": the roles are admin, readwrite and readonly"
            ))),
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadWrite => "readwrite",
            Role::ReadOnly => "readonly",
        }
    }

    /// Whether it grants `privilege`.
    pub fn grants(self, privilege: Privilege) -> bool {
        match self {
            Role::Admin => true,
            Role::ReadWrite => privilege != Privilege::Admin,
            Role::ReadOnly => privilege == Privilege::Read,
        }
    }
}

/// What a statement or call needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// Reading data (queries, inspecting tables).
    Read,
    /// Writing data or changing the schema.
    Write,
    /// Managing users, membership and leadership.
    Admin,
}

impl Privilege {
    /// What `statement` needs.
    pub fn of(statement: &Statement) -> Self {
        match statement {
            Statement::Users(_) => Privilege::Admin,
            Statement::Explain(inner) => Privilege::of(inner).min_read(),
            statement if statement.is_read_only() => Privilege::Read,
            _ => Privilege::Write,
        }
    }

    /// EXPLAIN writes nothing: explaining a write needs only reading.
    fn min_read(self) -> Self {
        match self {
            Privilege::Admin => Privilege::Admin,
            _ => Privilege::Read,
        }
    }

    /// Its name, for refusals.
    pub fn name(self) -> &'static str {
        match self {
            Privilege::Read => "read",
            Privilege::Write => "write",
            Privilege::Admin => "admin",
        }
    }
}

/// A user, as the catalog keeps it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The name.
    pub name: String,
    /// The salted password hash (a PHC string).
    pub password_hash: String,
    /// The roles granted.
    pub roles: BTreeSet<Role>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("name", &self.name).field("roles", &self.roles).finish()
    }
}

impl User {
    /// Whether the user's roles grant `privilege`.
    pub fn may(&self, privilege: Privilege) -> bool {
        self.roles.iter().any(|role| role.grants(privilege))
    }
}

/// Whether any user exists, remembered until the users may have changed: a generation and a
/// state (unknown, none, some) in one atomic word. A reader that computes the answer stores it
/// only if no change was announced meanwhile ([`Database::users_changed`] moves to the next
/// generation), so a stale answer is never kept.
#[derive(Debug, Default)]
pub struct UsersCache(std::sync::atomic::AtomicU64);

const UNKNOWN: u64 = 0;
const NO_USERS: u64 = 1;
const SOME_USERS: u64 = 2;

impl crate::sql::Database {
    /// Whether any user exists as of the latest commit (cached between changes).
    pub fn any_user(&self) -> Result<bool> {
        use std::sync::atomic::Ordering;
        let seen = self.users.0.load(Ordering::Acquire);
        match seen & 3 {
            NO_USERS => return Ok(false),
            SOME_USERS => return Ok(true),
            _ => {}
        }
        // The snapshot begins after the generation was read: a change committed before it
        // is seen; one announced after it makes the store below fail.
        let any = Txn::new(self.mvcc().begin_read_only()?).any_user()?;
        let known = (seen & !3) | if any { SOME_USERS } else { NO_USERS };
        let _ = self.users.0.compare_exchange(seen, known, Ordering::AcqRel, Ordering::Acquire);
        Ok(any)
    }

    /// Announces that the users may have changed (a statement on users, or a COMMIT, was
    /// applied): the next [`Database::any_user`] reads the catalog again.
    pub fn users_changed(&self) {
        use std::sync::atomic::Ordering;
        let next = |word: u64| Some(((word >> 2) + 1) << 2 | UNKNOWN);
        let _ = self.users.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, next);
    }
}

impl Txn {
    /// Reads a user.
    pub fn get_user(&self, name: &str) -> Result<Option<User>> {
        self.inner.get(&user_key(name))?.map(|bytes| Ok(codec::decode(&bytes)?)).transpose()
    }

    /// Whether any user exists (if none, the cluster is open, as for local development).
    pub fn any_user(&self) -> Result<bool> {
        Ok(self.inner.scan_prefix(&[USER]).next().transpose()?.is_some())
    }

    fn put_user(&mut self, user: &User) -> Result<()> {
        self.inner.set(&user_key(&user.name), codec::encode(user))?;
        Ok(())
    }

    fn must_get_user(&self, name: &str) -> Result<User> {
        self.get_user(name)?.ok_or_else(|| Error::Invalid(format!("there is no user \"{name}\"")))
    }

    /// Runs a statement on users. Its credential must be a hash by now: the serving node
    /// hashes a password before the statement goes into the log.
    pub fn execute_user_statement(&mut self, statement: &UserStatement) -> Result<String> {
        let hashed = |credential: &Credential| match credential {
            Credential::Hash(hash) => Ok(hash.clone()),
            Credential::Password(_) => {
                Err(Error::Invalid("a password reached the log unhashed; it was not stored".into()))
            }
        };
        match statement {
            UserStatement::Create { name, credential, if_not_exists } => {
                if self.get_user(name)?.is_some() {
                    if *if_not_exists {
                        return Ok(format!("user {name} exists"));
                    }
                    return Err(Error::Invalid(format!("user \"{name}\" exists already")));
                }
                let password_hash = hashed(credential)?;
                self.put_user(&User { name: name.clone(), password_hash, roles: BTreeSet::new() })?;
                Ok(format!("created user {name}"))
            }
            UserStatement::SetPassword { name, credential } => {
                let mut user = self.must_get_user(name)?;
                user.password_hash = hashed(credential)?;
                self.put_user(&user)?;
                Ok(format!("changed the password of {name}"))
            }
            UserStatement::Drop { name, if_exists } => {
                if self.get_user(name)?.is_none() {
                    if *if_exists {
                        return Ok(format!("no user {name}"));
                    }
                    return Err(Error::Invalid(format!("there is no user \"{name}\"")));
                }
                self.inner.delete(&user_key(name))?;
                Ok(format!("dropped user {name}"))
            }
            UserStatement::Grant { role, user } => {
                let role = Role::parse(role)?;
                let mut found = self.must_get_user(user)?;
                found.roles.insert(role);
                self.put_user(&found)?;
                Ok(format!("granted {} to {user}", role.name()))
            }
            UserStatement::Revoke { role, user } => {
                let role = Role::parse(role)?;
                let mut found = self.must_get_user(user)?;
                found.roles.remove(&role);
                self.put_user(&found)?;
                Ok(format!("revoked {} from {user}", role.name()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sql::Database;
    use crate::sql::parser::ast::{Credential, Statement, UserStatement};
    use std::sync::Arc;

    #[test]
    fn whether_users_exist_is_remembered_until_a_change_is_committed() {
        let db = Arc::new(Database::memory());
        let mut session = db.session();
        let create = Statement::Users(UserStatement::Create {
            name: "u".into(),
            credential: Credential::Hash("$argon2id$x".into()),
            if_not_exists: false,
        });
        assert!(!db.any_user().unwrap());
        assert!(!db.any_user().unwrap(), "cached");
        // Inside a transaction the user is not there for others until COMMIT.
        session.execute("BEGIN").unwrap();
        session.execute_statement(&create).unwrap();
        assert!(!db.any_user().unwrap());
        session.execute("COMMIT").unwrap();
        assert!(db.any_user().unwrap());
        let drop = Statement::Users(UserStatement::Drop { name: "u".into(), if_exists: false });
        session.execute_statement(&drop).unwrap();
        assert!(!db.any_user().unwrap());
    }
}
