//! Serving the node's metrics over HTTP/1.1: `GET /metrics` answers Prometheus' text format;
//! anything else is 404 (or 405 for another method on `/metrics`). At most
//! [`MAX_CONNECTIONS`] at once, each for at most [`CONNECTION_TIMEOUT`]. The server ends when
//! the node begins to stop.

use super::context::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// How long a scraper may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may stay open in all (a scraper that stops reading is cut off).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The most connections served at once; more are closed.
const MAX_CONNECTIONS: usize = 16;

/// Serves metrics on `listener` until the node stops.
pub fn serve(cx: Arc<Context>, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(%address, "serving metrics at /metrics");
        let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = cx.until_stopping() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::debug!("metrics: accept failed: {error}");
                    continue;
                }
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                tracing::debug!("metrics: {MAX_CONNECTIONS} connections open; one refused");
                continue;
            };
            let cx = cx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let service = hyper::service::service_fn(|request| {
                    let cx = cx.clone();
                    async move { Ok::<_, Infallible>(answer(&cx, &request)) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    served = tokio::time::timeout(CONNECTION_TIMEOUT, connection) => {
                        if let Ok(Err(error)) = served {
                            tracing::debug!("metrics: connection ended: {error}");
                        }
                    }
                    _ = cx.until_stopping() => {}
                }
            });
        }
    })
}

/// The response to one request.
fn answer(cx: &Context, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
        }
        response
    };
    let text = "text/plain; charset=utf-8";
    if request.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, text, "not found: metrics are at /metrics\n".into());
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, text, "use GET\n".into());
    }
    match cx.metrics.render(cx) {
        Ok(body) => reply(StatusCode::OK, prometheus::TEXT_FORMAT, body),
        Err(error) => reply(StatusCode::INTERNAL_SERVER_ERROR, text, format!("{error}\n")),
    }
}
