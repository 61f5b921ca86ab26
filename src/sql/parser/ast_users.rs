//! The syntax tree of statements on users and their roles (part of `ast.rs`).

use serde::{Deserialize, Serialize};

/// A statement on users and their roles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum UserStatement {
    /// CREATE USER [IF NOT EXISTS] name WITH PASSWORD '...'.
    Create {
        /// The user.
        name: String,
        /// The password, or (in the log) its hash.
        credential: Credential,
        /// IF NOT EXISTS was given.
        if_not_exists: bool,
    },
    /// ALTER USER name WITH PASSWORD '...'.
    SetPassword {
        /// The user.
        name: String,
        /// The new password, or (in the log) its hash.
        credential: Credential,
    },
    /// DROP USER [IF EXISTS] name.
    Drop {
        /// The user.
        name: String,
        /// IF EXISTS was given.
        if_exists: bool,
    },
    /// GRANT role TO user.
    Grant {
        /// The role: admin, readwrite or readonly.
        role: String,
        /// The user.
        user: String,
    },
    /// REVOKE role FROM user.
    Revoke {
        /// The role.
        role: String,
        /// The user.
        user: String,
    },
}

/// A user's credential: the password as written (only until the serving node hashes it,
/// before the statement goes into the log) or its salted hash (a PHC string).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub enum Credential {
    /// The password itself.
    Password(String),
    /// Its hash.
    Hash(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Password(_) => f.write_str("Password(..)"),
            Credential::Hash(_) => f.write_str("Hash(..)"),
        }
    }
}
