//! A build without the `tls` cargo feature (the small edge build): no TLS code at all, and
//! every place that would configure TLS says so instead. [`ClientTls`] cannot be made, so the
//! code paths that use one compile to nothing.

use crate::raft::NodeId;
use std::path::Path;

/// Why TLS is refused.
pub const NO_TLS: &str =
    "this build has no TLS (built without the cargo feature `tls`; the default build has it)";

/// Client TLS settings: none can exist in this build.
#[derive(Clone, Debug)]
pub enum ClientTls {}

impl ClientTls {
    /// Refused: this build has no TLS.
    pub fn load(_ca: &Path, _cert: Option<&Path>, _key: Option<&Path>) -> Result<Self, String> {
        Err(NO_TLS.into())
    }
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// Its private key.
    pub key: String,
}

/// Refused: this build has no TLS.
pub fn make_ca() -> Result<Pem, String> {
    Err(NO_TLS.into())
}

/// Refused: this build has no TLS.
pub fn make_node_certificate(_ca: &Pem, _id: NodeId, _hosts: &[String]) -> Result<Pem, String> {
    Err(NO_TLS.into())
}

/// Refused: this build has no TLS.
pub fn make_client_certificate(_ca: &Pem, _name: &str) -> Result<Pem, String> {
    Err(NO_TLS.into())
}
