//! Who is asking, and what they may do: users log in once with their password and get a
//! token; every request then carries the token (or the cluster's admin token) and is served
//! as a [`Principal`].
//!
//! - Passwords are hashed with Argon2id and a random salt on the node that serves the
//!   statement, before it goes into the log: the log and the catalog hold only the hash, and
//!   every replica stores the same one.
//! - A token is `user.expiry.mac`: an HMAC-SHA256, keyed by the cluster's session key (the
//!   same on every node), over the user, the expiry and a digest of the user's password hash.
//!   Any node verifies it; changing the password or dropping the user voids it at once.
//! - While the cluster has no users, requests without a token are served as before (local
//!   development); once the first user exists, every request needs a token or the admin token.

use super::consensus::Error;
use crate::sql::Database;
use crate::sql::engine::{Privilege, User};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// How long a login lasts, in milliseconds.
pub const TOKEN_LIFETIME_MS: u64 = 24 * 60 * 60 * 1000;

/// Domain separation for tokens.
const TOKEN_TAG: &[u8] = b"chronos-user-token-v1";
/// The longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Password checks (Argon2, about 19 MiB and tens of milliseconds each) run at most this many
/// at once per node; more logins wait their turn.
pub const MAX_CONCURRENT_HASHES: usize = 2;

/// The node's turns at hashing (shared by logins and password statements).
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(MAX_CONCURRENT_HASHES));

/// Waits for a turn to hash a password (see [`MAX_CONCURRENT_HASHES`]).
pub async fn hashing_turn() -> Result<tokio::sync::SemaphorePermit<'static>, Error> {
    HASHING.acquire().await.map_err(|_| Error::Unavailable("the node is stopping".into()))
}

/// Who a request is served as.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Principal {
    /// Nobody in particular: the cluster has no users yet, so everything is allowed.
    #[default]
    Anonymous,
    /// The holder of the cluster's admin token: everything is allowed.
    Operator,
    /// A logged-in user, with its roles as the catalog held them.
    User(User),
}

impl Principal {
    /// Whether it may do what needs `privilege`.
    pub fn may(&self, privilege: Privilege) -> bool {
        match self {
            Principal::Anonymous | Principal::Operator => true,
            Principal::User(user) => user.may(privilege),
        }
    }

    /// Its name, as sessions are bound to it ("" for anonymous).
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous => "",
            Principal::Operator => "@operator",
            Principal::User(user) => &user.name,
        }
    }

    /// Who runs the statements it sends through the log.
    pub fn caller(&self) -> super::Caller {
        match self {
            Principal::Anonymous => super::Caller::Anonymous,
            Principal::Operator => super::Caller::Operator,
            Principal::User(user) => super::Caller::User(user.name.clone()),
        }
    }

    /// The refusal of something that needs `privilege`, for `what`.
    pub fn refusal(&self, privilege: Privilege, what: &str) -> String {
        let roles: Vec<&str> = match self {
            Principal::User(user) => user.roles.iter().map(|r| r.name()).collect(),
            _ => Vec::new(),
        };
        let held = if roles.is_empty() { "no role".to_string() } else { roles.join(", ") };
        format!(
            "user {} may not {what}: it needs the {} privilege, and the user has {held}",
            self.name(),
            privilege.name()
        )
    }
}

/// What a caller may do as a log entry is applied, from the users applied before it: the same
/// on every replica. Decided once per entry, so a script that makes the first users and grants
/// their roles runs whole.
pub fn rights_at_apply(db: &Arc<Database>, caller: &super::Caller) -> Result<Principal, Error> {
    match caller {
        super::Caller::Operator => Ok(Principal::Operator),
        super::Caller::Anonymous => match any_user(db)? {
            false => Ok(Principal::Anonymous),
            true => Err(Error::Unauthenticated(
                "this cluster has users: log in (chronos --user NAME)".into(),
            )),
        },
        super::Caller::User(name) => match load_user(db, name)? {
            Some(user) => Ok(Principal::User(user)),
            None => Err(Error::Unauthenticated(format!("user \"{name}\" no longer exists"))),
        },
    }
}

/// Hashes a password with Argon2id and a random salt (CPU-heavy: run it off the async
/// threads).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no random source for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches `hash` (CPU-heavy).
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

fn token_mac(key: &[u8], user: &str, expiry_ms: u64, password_hash: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(TOKEN_TAG);
    mac.update(&(user.len() as u64).to_be_bytes());
    mac.update(user.as_bytes());
    mac.update(&expiry_ms.to_be_bytes());
    mac.update(&Sha256::digest(password_hash.as_bytes()));
    mac
}

/// A token for `user`, valid until `expiry_ms` (milliseconds since the Unix epoch).
pub fn issue_token(key: &[u8], user: &User, expiry_ms: u64) -> String {
    let mac = token_mac(key, &user.name, expiry_ms, &user.password_hash).finalize().into_bytes();
    format!("{}.{expiry_ms}.{}", hex(user.name.as_bytes()), hex(&mac))
}

/// The user a token names and its expiry, before it is checked.
fn token_parts(token: &str) -> Option<(String, u64, Vec<u8>)> {
    let mut parts = token.trim().split('.');
    let user = String::from_utf8(unhex(parts.next()?)?).ok()?;
    let expiry = parts.next()?.parse().ok()?;
    let mac = unhex(parts.next()?)?;
    parts.next().is_none().then_some((user, expiry, mac))
}

/// Who a request is: the operator if it carries the admin token, the user its token proves
/// (checked against the catalog now), or anonymous while the cluster has no users. `key` is
/// the cluster's session key (none yet: only anonymous and operator requests are served).
pub fn authenticate(
    db: &Arc<Database>,
    key: Option<&[u8]>,
    token: Option<&str>,
    operator: bool,
    now_ms: u64,
) -> Result<Principal, Error> {
    if operator {
        return Ok(Principal::Operator);
    }
    let Some(token) = token else {
        return match any_user(db)? {
            false => Ok(Principal::Anonymous),
            true => Err(Error::Unauthenticated(
                "this cluster has users: log in (chronos --user NAME, with the password from a prompt or CHRONOS_PASSWORD)".into(),
            )),
        };
    };
    let refused =
        |why: &str| Error::Unauthenticated(format!("the login token {why}: log in again"));
    let (name, expiry, mac) = token_parts(token).ok_or_else(|| refused("is malformed"))?;
    if expiry <= now_ms {
        return Err(refused("has expired"));
    }
    let key = key.ok_or_else(|| Error::Unavailable("the cluster has no session key yet".into()))?;
    let user =
        load_user(db, &name)?.ok_or_else(|| refused("names a user that no longer exists"))?;
    match token_mac(key, &name, expiry, &user.password_hash).verify_slice(&mac) {
        Ok(()) => Ok(Principal::User(user)),
        Err(_) => Err(refused("is not valid (forged, or the password changed)")),
    }
}

/// Checks a user's password and issues a token. Wrong names and wrong passwords get the same
/// answer.
pub fn login(
    db: &Arc<Database>,
    key: &[u8],
    name: &str,
    password: &str,
    now_ms: u64,
) -> Result<String, Error> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::Unauthenticated(format!("wrong user name or password for \"{name}\"")));
    }
    let user = load_user(db, name)?;
    let hash = user.as_ref().map_or(DUMMY_HASH, |u| u.password_hash.as_str());
    // The hash is checked even for an unknown user, so timing tells nothing.
    let matches = verify_password(password, hash);
    match (user, matches) {
        (Some(user), true) => Ok(issue_token(key, &user, now_ms + TOKEN_LIFETIME_MS)),
        _ => Err(Error::Unauthenticated(format!("wrong user name or password for \"{name}\""))),
    }
}

/// A valid Argon2id hash of no one's password, checked for unknown users.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ZhT9o2lf4Em0fYkjfTyHHDgQWvTeD6Ed7OWfAj2HbKc";

fn read_txn(db: &Arc<Database>) -> Result<crate::sql::engine::Txn, Error> {
    let txn = db.mvcc().begin_read_only().map_err(|e| Error::Io(e.to_string()))?;
    Ok(crate::sql::engine::Txn::new(txn))
}

fn load_user(db: &Arc<Database>, name: &str) -> Result<Option<User>, Error> {
    read_txn(db)?.get_user(name).map_err(|e| Error::Io(e.to_string()))
}

/// Whether the cluster has any user (as this node has applied the log).
pub fn any_user(db: &Arc<Database>) -> Result<bool, Error> {
    db.any_user().map_err(|e| Error::Io(e.to_string()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::engine::Role;

    #[test]
    fn passwords_hash_with_a_salt_and_verify() {
        let one = hash_password("secret").unwrap();
        let two = hash_password("secret").unwrap();
        assert_ne!(one, two, "salted");
        assert!(!one.contains("secret"));
        assert!(verify_password("secret", &one));
        assert!(!verify_password("Secret", &one));
        assert!(!verify_password("secret", "not a hash"));
        assert!(!verify_password("", DUMMY_HASH));
    }

    #[test]
    fn tokens_name_their_user_and_fail_when_altered() {
        let user = User {
            name: "alice".into(),
            password_hash: "hash".into(),
            roles: [Role::ReadOnly].into(),
        };
        let key = [7u8; 32];
        let token = issue_token(&key, &user, 1_000);
        let (name, expiry, mac) = token_parts(&token).unwrap();
        assert_eq!((name.as_str(), expiry), ("alice", 1_000));
        assert!(token_mac(&key, "alice", 1_000, "hash").verify_slice(&mac).is_ok());
        // Another password hash, user, expiry or key does not verify.
        assert!(token_mac(&key, "alice", 1_000, "other").verify_slice(&mac).is_err());
        assert!(token_mac(&key, "bob", 1_000, "hash").verify_slice(&mac).is_err());
        assert!(token_mac(&key, "alice", 2_000, "hash").verify_slice(&mac).is_err());
        assert!(token_mac(&[8u8; 32], "alice", 1_000, "hash").verify_slice(&mac).is_err());
        for junk in ["", "a.b", "zz.1.00", "616c696365.x.00", "616c696365.1.00.00"] {
            assert!(token_parts(junk).is_none(), "{junk:?}");
        }
    }
}
