//! TLS as clients and nodes agree on it: how a client (or a node calling its peers) trusts a
//! cluster's CA and presents a certificate, how certificates name nodes and clients, and the
//! certificates `chronos cert` makes for a test cluster.
//!
//! A node's certificate has the common name `chronos-node-<id>` and the node's host names and
//! addresses as subject alternative names; it serves both as the node's server certificate
//! and as the client certificate it presents to its peers, which identify it by that name
//! (mutual TLS). A client certificate's common name is `chronos-client-<name>`.

use crate::raft::NodeId;
use std::path::Path;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The prefix of a node certificate's common name.
const NODE_PREFIX: &str = "chronos-node-";
/// The prefix of a client certificate's common name.
const CLIENT_PREFIX: &str = "chronos-client-";

/// The common name of node `id`'s certificate.
pub fn node_common_name(id: NodeId) -> String {
    format!("{NODE_PREFIX}{id}")
}

/// What a certificate (DER) names: the node id of a node certificate.
pub fn node_of_certificate(der: &[u8]) -> Option<NodeId> {
    common_name(der)?.strip_prefix(NODE_PREFIX)?.parse().ok()
}

/// A certificate's common name (DER), if it has one.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = certificate.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(name)
}

/// How a client reaches a cluster over TLS: the CA it trusts, and the certificate it presents
/// if the cluster asks for one (nodes present theirs to their peers).
#[derive(Clone, Debug)]
pub struct ClientTls {
    ca_pem: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Trusts the CA in `ca_pem`; presents no certificate.
    pub fn new(ca_pem: Vec<u8>) -> Self {
        Self { ca_pem, identity: None }
    }

    /// Presents the certificate and key in `cert_pem` and `key_pem` too.
    pub fn with_identity(mut self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        self.identity = Some((cert_pem, key_pem));
        self
    }

    /// Reads the CA file and, if given, a certificate and its key (both or neither).
    pub fn load(ca: &Path, cert: Option<&Path>, key: Option<&Path>) -> Result<Self, String> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path)
                .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
        };
        let tls = Self::new(read(ca, "CA certificate")?);
        match (cert, key) {
            (Some(cert), Some(key)) => {
                Ok(tls.with_identity(read(cert, "certificate")?, read(key, "certificate's key")?))
            }
            (None, None) => Ok(tls),
            _ => Err("a client certificate needs both --cert and --key".into()),
        }
    }

    /// The tonic configuration for a connection.
    pub fn config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem));
        match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
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

/// Makes a new CA for a cluster (a self-signed certificate that signs node and client
/// certificates).
pub fn make_ca() -> Result<Pem, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.distinguished_name.push(DnType::CommonName, "Chronos cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
}

/// Makes node `id`'s certificate, signed by `ca`, valid for `hosts` (names and addresses the
/// node is reached at).
pub fn make_node_certificate(ca: &Pem, id: NodeId, hosts: &[String]) -> Result<Pem, String> {
    make_leaf(ca, &node_common_name(id), hosts)
}

/// Makes a client certificate named `name`, signed by `ca`.
pub fn make_client_certificate(ca: &Pem, name: &str) -> Result<Pem, String> {
    make_leaf(ca, &format!("{CLIENT_PREFIX}{name}"), &[])
}

fn make_leaf(ca: &Pem, common_name: &str, hosts: &[String]) -> Result<Pem, String> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
    let ca_key = KeyPair::from_pem(&ca.key).map_err(|e| format!("the CA key: {e}"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)
        .map_err(|e| format!("the CA certificate: {e}"))?;
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(|e| e.to_string())?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
    Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_certificates_name_their_node() {
        let ca = make_ca().unwrap();
        let node =
            make_node_certificate(&ca, 7, &["127.0.0.1".into(), "localhost".into()]).unwrap();
        let client = make_client_certificate(&ca, "alice").unwrap();
        let der = |pem: &str| {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
        };
        assert_eq!(node_of_certificate(&der(&node.cert)), Some(7));
        assert_eq!(node_of_certificate(&der(&client.cert)), None);
        assert_eq!(common_name(&der(&client.cert)).as_deref(), Some("chronos-client-alice"));
        assert_eq!(node_of_certificate(b"not a certificate"), None);
    }
}
