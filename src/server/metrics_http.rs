//! Serving the node's metrics over HTTP/1.1: `GET /metrics` answers Prometheus' text format;
//! anything else is 404 (or 405 for another method on `/metrics`). The server ends when the
//! node begins to stop.

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

/// Serves metrics on `listener` until the node stops.
pub fn serve(cx: Arc<Context>, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(%address, "serving metrics at /metrics");
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
            let cx = cx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request| {
                    let cx = cx.clone();
                    async move { Ok::<_, Infallible>(answer(&cx, &request)) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    served = connection => {
                        if let Err(error) = served {
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
