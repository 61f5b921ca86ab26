//! Who may talk to a node. Every node of a cluster holds the cluster secret; from it come
//! the credentials calls carry:
//! - a peer token per node id (HMAC-SHA256 of the secret over the id), sent with every call
//!   of the Raft service, so only nodes of the cluster can step, propose or stream state, and
//!   only as themselves;
//! - the admin token (HMAC-SHA256 of the secret over a fixed label), which calls that change
//!   the cluster (membership, leadership transfer) need. Status, health and SQL stay open.
//!
//! A check answers with the identity a call proved ([`ClusterSecret::peer_of`]: a node id;
//! [`ClusterSecret::is_admin`]). With TLS on, a peer must also present its node certificate
//! (mutual TLS, `tls.rs`), and the certificate must name the node the token proves
//! (`services.rs`).

use crate::grpc::wire::{ADMIN_HEADER, ADMIN_TOKEN_ENV};
use crate::raft::NodeId;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::{Request, Status};

/// The header carrying a peer's id and token: `ID:TOKEN`.
pub const PEER_HEADER: &str = "chronos-peer";
/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The secret every node of a cluster shares. Its bytes are the trimmed contents of the
/// secret file, so any text of enough random bytes will do.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    /// The secret in `text` (surrounding whitespace is ignored); too short is an error.
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        let trimmed = text.trim_ascii();
        if trimmed.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "a cluster secret needs at least {MIN_SECRET_BYTES} bytes (this one has {}); make one with: head -c 32 /dev/urandom | base64",
                trimmed.len()
            ));
        }
        Ok(Self(trimmed.to_vec()))
    }

    /// A new random secret (32 random bytes, as hex text).
    pub fn generate() -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no random source for a secret: {e}"))?;
        Ok(Self(hex(&bytes).into_bytes()))
    }

    /// The secret as stored in a file.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self, label: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(label);
        mac
    }

    fn peer_mac(&self, id: NodeId) -> Hmac<Sha256> {
        let mut mac = self.mac(b"chronos-peer-v1");
        mac.update(&id.to_be_bytes());
        mac
    }

    /// The token node `id` proves itself with.
    pub fn peer_token(&self, id: NodeId) -> String {
        hex(&self.peer_mac(id).finalize().into_bytes())
    }

    /// The token that authorizes calls changing the cluster.
    pub fn admin_token(&self) -> String {
        hex(&self.mac(b"chronos-admin-v1").finalize().into_bytes())
    }

    /// The node a call's metadata proves it comes from, if it carries a valid peer token.
    pub fn peer_of(&self, metadata: &MetadataMap) -> Option<NodeId> {
        let value = metadata.get(PEER_HEADER)?.to_str().ok()?;
        let (id, token) = value.split_once(':')?;
        let id: NodeId = id.parse().ok()?;
        let token = unhex(token)?;
        self.peer_mac(id).verify_slice(&token).is_ok().then_some(id)
    }

    /// Whether a call's metadata carries the admin token (checked in constant time).
    pub fn is_admin(&self, metadata: &MetadataMap) -> bool {
        let token = metadata.get(ADMIN_HEADER).and_then(|v| v.to_str().ok()).and_then(unhex);
        token.is_some_and(|token| self.mac(b"chronos-admin-v1").verify_slice(&token).is_ok())
    }

    /// The interceptor that signs node `id`'s calls to its peers.
    pub fn peer_credentials(&self, id: NodeId) -> PeerCredentials {
        let value = format!("{id}:{}", self.peer_token(id));
        PeerCredentials(value.parse().unwrap_or_else(|_| unreachable!("digits, ':' and hex")))
    }
}

/// A call's peer credentials, added to every request (a tonic interceptor).
#[derive(Clone)]
pub struct PeerCredentials(AsciiMetadataValue);

impl tonic::service::Interceptor for PeerCredentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert(PEER_HEADER, self.0.clone());
        Ok(request)
    }
}

/// Who a call comes from: the operator (admin token), the user its token proves, or anonymous
/// while the cluster has no users (see `replica::access`). A refusal is logged.
pub fn principal<T>(
    cx: &super::context::Context,
    request: &Request<T>,
    call: &str,
) -> Result<crate::replica::access::Principal, Status> {
    let operator = cx.secret.is_admin(request.metadata());
    let token =
        request.metadata().get(crate::grpc::wire::USER_TOKEN_HEADER).and_then(|v| v.to_str().ok());
    let key = cx.session_key.borrow().clone();
    let db = cx.database();
    crate::replica::access::authenticate(
        &db,
        key.as_deref().map(Vec::as_slice),
        token,
        operator,
        now_ms(),
    )
    .map_err(|error| {
        let from = remote(request);
        tracing::warn!(%from, call, "refused: {error}");
        Status::from(error)
    })
}

/// Milliseconds since the Unix epoch (token expiry; 0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where a call came from, for logs (over TLS or plain TCP).
pub fn remote<T>(request: &Request<T>) -> String {
    let tls = request.extensions().get::<super::tls::TlsPeer>().and_then(|p| p.remote);
    match request.remote_addr().or(tls) {
        Some(address) => address.to_string(),
        None => "an unknown address".into(),
    }
}

/// The refusal of a call that needs the admin token.
pub fn admin_required(what: &str) -> Status {
    Status::unauthenticated(format!(
        "{what} changes the cluster and needs the admin token: give chronos --admin-token-file FILE or set {ADMIN_TOKEN_ENV} (each node writes it to DATA_DIR/admin_token)"
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(header: &'static str, value: &str) -> MetadataMap {
        let mut map = MetadataMap::new();
        map.insert(header, value.parse().unwrap());
        map
    }

    #[test]
    fn tokens_prove_who_holds_the_secret_and_nothing_else() {
        let secret = ClusterSecret::parse(b"  a secret of enough bytes\n").unwrap();
        let other = ClusterSecret::generate().unwrap();
        let proof = |s: &ClusterSecret, id: NodeId| format!("{id}:{}", s.peer_token(id));
        assert_eq!(secret.peer_of(&metadata(PEER_HEADER, &proof(&secret, 3))), Some(3));
        // Another cluster's token, a token for another id, or garbage prove nothing.
        assert_eq!(secret.peer_of(&metadata(PEER_HEADER, &proof(&other, 3))), None);
        let borrowed = format!("2:{}", secret.peer_token(3));
        assert_eq!(secret.peer_of(&metadata(PEER_HEADER, &borrowed)), None);
        for junk in ["", "3", "3:", "x:00", "3:zz", "3:0"] {
            assert_eq!(secret.peer_of(&metadata(PEER_HEADER, junk)), None, "{junk:?}");
        }
        assert_eq!(secret.peer_of(&MetadataMap::new()), None);
        assert!(secret.is_admin(&metadata(ADMIN_HEADER, &secret.admin_token())));
        assert!(!secret.is_admin(&metadata(ADMIN_HEADER, &other.admin_token())));
        assert!(!secret.is_admin(&metadata(ADMIN_HEADER, &secret.peer_token(1))));
        assert!(!secret.is_admin(&MetadataMap::new()));
        assert!(ClusterSecret::parse(b"short").is_err());
    }
}
