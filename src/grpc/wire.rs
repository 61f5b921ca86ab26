//! What both ends of the gRPC API agree on beyond the protobuf types: message limits, the
//! metadata keys and how to reach a node. Clients and nodes take these from here, so a client
//! never needs the server's code.

use super::pb;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status, metadata::AsciiMetadataValue};

/// The largest gRPC message a node sends or accepts, on every service: room for the largest
/// log entry or row with its framing.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// How long a connection attempt to a node may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// A metadata key a node sets on a failed call, saying whether a write may still be applied
/// (`unknown`) or certainly was not (`not_applied`).
pub const OUTCOME_HEADER: &str = "chronos-outcome";
/// The metadata key carrying the admin token on calls that change the cluster.
pub const ADMIN_HEADER: &str = "chronos-admin-token";
/// The environment variable clients read the admin token from.
pub const ADMIN_TOKEN_ENV: &str = "CHRONOS_ADMIN_TOKEN";
/// The metadata key carrying a logged-in user's token.
pub const USER_TOKEN_HEADER: &str = "chronos-user-token";
/// The environment variable clients read a user's password from.
pub const PASSWORD_ENV: &str = "CHRONOS_PASSWORD";

/// What a client's calls carry to prove who sends them: a user's token, the admin token.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// The logged-in user's token.
    pub user_token: Option<AsciiMetadataValue>,
    /// The cluster's admin token.
    pub admin_token: Option<AsciiMetadataValue>,
}

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.user_token {
            request.metadata_mut().insert(USER_TOKEN_HEADER, token.clone());
        }
        if let Some(token) = &self.admin_token {
            request.metadata_mut().insert(ADMIN_HEADER, token.clone());
        }
        Ok(request)
    }
}

/// A channel whose calls carry a client's credentials.
pub type Authenticated = tonic::service::interceptor::InterceptedService<Channel, Credentials>;

/// The endpoint of a node at `host:port` (`None` if that is not an address).
pub fn endpoint(address: &str) -> Option<Endpoint> {
    let endpoint = Endpoint::from_shared(format!("http://{address}")).ok()?;
    Some(endpoint.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true))
}

/// The endpoint of a node at `host:port`, over TLS if `tls` is given (`None` if that is not
/// an address, or the TLS settings cannot be used).
pub fn endpoint_with(address: &str, tls: Option<&super::tls::ClientTls>) -> Option<Endpoint> {
    let Some(tls) = tls else { return endpoint(address) };
    tls_endpoint(address, tls)
}

#[cfg(feature = "tls")]
fn tls_endpoint(address: &str, tls: &super::tls::ClientTls) -> Option<Endpoint> {
    let endpoint = Endpoint::from_shared(format!("https://{address}")).ok()?;
    let endpoint = endpoint.tls_config(tls.config()).ok()?;
    Some(endpoint.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true))
}

#[cfg(not(feature = "tls"))]
fn tls_endpoint(_address: &str, tls: &super::tls::ClientTls) -> Option<Endpoint> {
    match *tls {}
}

/// An Admin service client on `channel` whose calls carry `credentials`, with the API's
/// message limits.
pub fn admin_client(
    channel: Channel,
    credentials: Credentials,
) -> pb::admin_client::AdminClient<Authenticated> {
    pb::admin_client::AdminClient::with_interceptor(channel, credentials)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// A Sql service client on `channel` whose calls carry `credentials`, with the API's message
/// limits.
pub fn sql_client(
    channel: Channel,
    credentials: Credentials,
) -> pb::sql_client::SqlClient<Authenticated> {
    pb::sql_client::SqlClient::with_interceptor(channel, credentials)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// Adds the admin token to a request.
pub fn with_admin_token<T>(mut request: Request<T>, token: &str) -> Result<Request<T>, Status> {
    let value: AsciiMetadataValue = token
        .trim()
        .parse()
        .map_err(|_| Status::invalid_argument("the admin token is not printable text"))?;
    request.metadata_mut().insert(ADMIN_HEADER, value);
    Ok(request)
}

/// Whether a failed call certainly never reached the node (the connection could not be
/// made), so whatever it carried was not applied.
pub fn never_sent(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if error.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        source = error.source();
    }
    false
}
