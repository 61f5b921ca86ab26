//! The gRPC surface: the generated protobuf types and services (`pb`), and conversions between
//! them and the domain types. Only this module and the server's services see `pb`.

pub mod convert;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(not(feature = "tls"))]
#[path = "no_tls.rs"]
pub mod tls;
pub mod wire;

/// Types and services generated from `proto/chronos.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("chronos.v1");
}
