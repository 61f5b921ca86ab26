//! A build without the `tls` cargo feature: a node serves plain TCP only, and `--tls-*` is
//! refused with the reason.

use crate::grpc::tls::{ClientTls, NO_TLS};
use crate::raft::NodeId;
use std::net::SocketAddr;
use std::path::Path;

/// A node's TLS settings: none can exist in this build.
#[derive(Clone, Debug)]
pub enum NodeTls {}

impl NodeTls {
    /// Refused: this build has no TLS.
    pub fn load(_id: NodeId, _cert: &Path, _key: &Path, _ca: &Path) -> Result<Self, String> {
        Err(NO_TLS.into())
    }

    /// How this node connects to its peers.
    pub fn peers(&self) -> ClientTls {
        match *self {}
    }
}

/// What a TLS connection's certificate proved: never set in this build.
#[derive(Clone, Debug, Default)]
pub struct TlsPeer {
    /// The remote address.
    pub remote: Option<SocketAddr>,
    /// The node the certificate names.
    pub node: Option<NodeId>,
}
