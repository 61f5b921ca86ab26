//! Counting gRPC requests by method and status code: a tower layer around the node's gRPC
//! server. The code is the one the handler answered with (a streaming call that fails later
//! counts as `OK`, as it began). Unknown methods count as `unknown`, so the label's values
//! stay the node's own methods.

use super::metrics::Metrics;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codegen::http;

/// Wraps a service so each request is counted.
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    /// Where the counts go.
    pub metrics: Arc<Metrics>,
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner, metrics: self.metrics.clone() }
    }
}

/// A service whose requests are counted (see [`GrpcMetricsLayer`]).
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_string();
        let metrics = self.metrics.clone();
        let answered = self.inner.call(request);
        Box::pin(async move {
            let response = answered.await;
            if let Ok(response) = &response {
                // A handler's error goes in the headers (a trailers-only response); success has
                // no status there.
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32);
                let method = match code {
                    tonic::Code::Unimplemented => "unknown",
                    _ if known_method(&path) => path.as_str(),
                    _ => "unknown",
                };
                let code = format!("{code:?}");
                metrics.grpc_requests.with_label_values(&[method, &code]).inc();
            }
            response
        })
    }
}

/// Whether `path` names one of the node's services' methods (`/package.Service/Method`).
fn known_method(path: &str) -> bool {
    const SERVICES: [&str; 4] =
        ["/chronos.v1.Sql/", "/chronos.v1.Admin/", "/chronos.v1.Raft/", "/grpc.health.v1.Health/"];
    SERVICES.iter().any(|service| {
        path.strip_prefix(service).is_some_and(|method| {
            !method.is_empty()
                && method.len() <= 40
                && method.chars().all(|c| c.is_ascii_alphanumeric())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::known_method;

    #[test]
    fn only_the_nodes_own_method_paths_are_labels() {
        assert!(known_method("/chronos.v1.Sql/Run"));
        assert!(known_method("/chronos.v1.Admin/ClusterStatus"));
        assert!(!known_method("/chronos.v1.Sql/"));
        assert!(!known_method("/other.Service/Run"));
        assert!(!known_method("/chronos.v1.Sql/Run/../x"));
    }
}
