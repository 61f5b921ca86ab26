//! Signed sessions. A client carries its session (the open transaction) between requests, so
//! any node can continue it; what comes back from a client is therefore checked before it is
//! trusted. Each session a node hands out carries a proof, an HMAC-SHA256 over everything that
//! decides what the session sees and may do (read-only or not, version, in-flight set, index)
//! and over the id of the client it was issued to and the user it is served as, keyed by the
//! cluster's session key: a session works only for that client and that user.
//!
//! The key is replicated state: the first leader proposes a random key
//! ([`super::Command::SetSessionKey`]) and every replica applies the same one, so a session
//! signed by one node verifies on any other. A session without a valid proof is refused, so a
//! client can neither forge a read-only snapshot's in-flight set (and read uncommitted writes)
//! nor take over a read-write transaction it never opened.

use crate::replica::Transaction;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The length of a session key in bytes.
pub const KEY_BYTES: usize = 32;

/// Domain separation for the signed bytes (a new layout gets a new tag).
const TAG: &[u8] = b"chronos-session-v3";

/// Whom a session was issued to: the client's id and the user's name ("" for none).
pub type Holder<'a> = (u64, &'a str);

fn mac(key: &[u8], txn: &Transaction, (client, user): Holder<'_>) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(TAG);
    mac.update(&client.to_be_bytes());
    mac.update(&(user.len() as u64).to_be_bytes());
    mac.update(user.as_bytes());
    match txn {
        Transaction::ReadWrite { version, index } => {
            mac.update(&[0]);
            mac.update(&version.to_be_bytes());
            mac.update(&index.to_be_bytes());
        }
        Transaction::ReadOnly { state, index } => {
            mac.update(&[1]);
            mac.update(&state.version.to_be_bytes());
            mac.update(&index.to_be_bytes());
            mac.update(&(state.active.len() as u64).to_be_bytes());
            for version in &state.active {
                mac.update(&version.to_be_bytes());
            }
        }
    }
    mac
}

/// The proof for a session handed to `holder`.
pub fn sign(key: &[u8], txn: &Transaction, holder: Holder<'_>) -> Vec<u8> {
    mac(key, txn, holder).finalize().into_bytes().to_vec()
}

/// Whether `proof` was made by [`sign`] with `key` for exactly this session and this holder
/// (constant time).
pub fn verify(key: &[u8], txn: &Transaction, holder: Holder<'_>, proof: &[u8]) -> bool {
    mac(key, txn, holder).verify_slice(proof).is_ok()
}

/// A random number from the system's source (edge ids and incarnations).
pub fn random_u64() -> Result<u64, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random source: {e}"))?;
    Ok(u64::from_be_bytes(bytes))
}

/// A new random session key.
pub fn new_key() -> Result<Vec<u8>, String> {
    let mut key = vec![0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| format!("no random source for the session key: {e}"))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mvcc::TransactionState;

    #[test]
    fn a_proof_covers_every_field_and_only_its_key_makes_it() {
        let key = new_key().unwrap();
        let read_only = |active: &[u64], index| Transaction::ReadOnly {
            state: TransactionState {
                version: 9,
                read_only: true,
                active: active.iter().copied().collect(),
            },
            index,
        };
        let session = read_only(&[3, 5], 40);
        let proof = sign(&key, &session, (7, ""));
        assert!(verify(&key, &session, (7, ""), &proof));
        // A forged in-flight set, index or kind is refused.
        assert!(!verify(&key, &read_only(&[], 40), (7, ""), &proof));
        assert!(!verify(&key, &read_only(&[3, 5], 41), (7, ""), &proof));
        assert!(!verify(&key, &Transaction::ReadWrite { version: 9, index: 40 }, (7, ""), &proof));
        // So is a proof made with another key, or none at all.
        assert!(!verify(&new_key().unwrap(), &session, (7, ""), &proof));
        assert!(!verify(&key, &session, (7, ""), &[]));
        // And the session works only for the client it was issued to.
        assert!(!verify(&key, &session, (8, ""), &proof));
        // And only for the user it was served as.
        assert!(!verify(&key, &session, (7, "alice"), &proof));
        let rw = Transaction::ReadWrite { version: 4, index: 7 };
        let other = Transaction::ReadWrite { version: 5, index: 7 };
        assert!(!verify(&key, &other, (7, ""), &sign(&key, &rw, (7, ""))));
    }
}
