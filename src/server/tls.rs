//! TLS for a node (`--tls-cert`, `--tls-key`, `--tls-ca`): its gRPC server accepts only TLS
//! connections, and its calls to peers go over TLS presenting its own certificate (mutual
//! TLS between peers). Clients may present a certificate; peers must.
//!
//! The node runs the handshakes itself rather than leaving them to tonic, so that each
//! connection carries what its certificate proves (a [`TlsPeer`], read by `auth.rs` where
//! the cluster secret is checked) and each refused handshake (a certificate from another CA,
//! an expired one, plain text) is logged. At most [`MAX_HANDSHAKES`] run at once, each within
//! [`HANDSHAKE_TIMEOUT`]; connections beyond that are closed, and accepting never waits.

use crate::grpc::tls::{ClientTls, common_name, node_common_name, node_of_certificate};
use crate::raft::NodeId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most handshakes in progress at once; a connection beyond them is closed at once (so
/// stalled handshakes cannot keep the node from accepting).
const MAX_HANDSHAKES: usize = 128;

/// A node's TLS settings: what its server presents and accepts, and how it calls its peers.
#[derive(Clone)]
pub struct NodeTls {
    server: Arc<rustls::ServerConfig>,
    /// How this node connects to its peers (the CA, and its own certificate).
    pub peers: ClientTls,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTls(..)")
    }
}

impl NodeTls {
    /// How this node connects to its peers.
    pub fn peers(&self) -> ClientTls {
        self.peers.clone()
    }

    /// Reads node `id`'s certificate, key and the cluster's CA (PEM files); the certificate
    /// must name node `id`.
    pub fn load(id: NodeId, cert: &Path, key: &Path, ca: &Path) -> Result<Self, String> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        Self::from_pem(id, read(cert)?, read(key)?, read(ca)?)
    }

    /// Node `id`'s TLS from PEM bytes.
    pub fn from_pem(id: NodeId, cert: Vec<u8>, key: Vec<u8>, ca: Vec<u8>) -> Result<Self, String> {
        let chain = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the node certificate is not PEM: {e}"))?;
        let leaf = chain.first().ok_or("the node certificate file holds no certificate")?;
        if node_of_certificate(leaf) != Some(id) {
            return Err(format!(
                "the certificate is for {:?}, not this node: node {id}'s is named {:?} (make one with chronos cert node {id})",
                common_name(leaf).unwrap_or_default(),
                node_common_name(id)
            ));
        }
        let private_key = PrivateKeyDer::from_pem_slice(&key)
            .map_err(|e| format!("the node key is not a PEM private key: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        for ca_cert in CertificateDer::pem_slice_iter(&ca) {
            let ca_cert = ca_cert.map_err(|e| format!("the CA certificate is not PEM: {e}"))?;
            roots.add(ca_cert).map_err(|e| format!("the CA certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("the CA file holds no certificate".into());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("the CA certificate: {e}"))?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, private_key)
            .map_err(|e| format!("the node certificate and key: {e}"))?;
        server.alpn_protocols = vec![b"h2".to_vec()];
        let peers = ClientTls::new(ca).with_identity(cert, key);
        Ok(Self { server: Arc::new(server), peers })
    }
}

/// What a TLS connection's client proved with its certificate (none if it presented none).
#[derive(Clone, Debug, Default)]
pub struct TlsPeer {
    /// Where it connected from.
    pub remote: Option<SocketAddr>,
    /// The node its certificate names, for a node certificate.
    pub node: Option<NodeId>,
    /// Its certificate's common name.
    pub name: Option<String>,
}

/// An accepted TLS connection, with what its client proved.
pub struct TlsConnection {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    peer: TlsPeer,
}

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = TlsPeer;

    fn connect_info(&self) -> TlsPeer {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The TLS connections accepted on `listener`, as a stream for the gRPC server. Refused
/// handshakes are logged and skipped.
pub fn incoming(
    listener: TcpListener,
    tls: &NodeTls,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsConnection, std::io::Error>> {
    let (accepted, stream) = tokio::sync::mpsc::channel(16);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let (socket, remote) = tokio::select! {
                result = listener.accept() => match result {
                    Ok(connection) => connection,
                    Err(error) => {
                        tracing::debug!("accept failed: {error}");
                        continue;
                    }
                },
                _ = accepted.closed() => return, // the server stopped
            };
            let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                tracing::warn!(%remote, "refused a connection: {MAX_HANDSHAKES} TLS handshakes are in progress");
                continue;
            };
            if let Err(error) = socket.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {error}");
            }
            let (acceptor, accepted) = (acceptor.clone(), accepted.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket));
                let stream = match handshake.await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::warn!(%remote, "refused a TLS connection: {error}");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(%remote, "refused a TLS connection: no handshake within {HANDSHAKE_TIMEOUT:?}");
                        return;
                    }
                };
                let leaf = stream.get_ref().1.peer_certificates().and_then(|c| c.first());
                let peer = TlsPeer {
                    remote: Some(remote),
                    node: leaf.and_then(|der| node_of_certificate(der)),
                    name: leaf.and_then(|der| common_name(der)),
                };
                let _ = accepted.send(Ok(TlsConnection { stream, peer })).await;
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(stream)
}
