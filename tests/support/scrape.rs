//! Reading a node's Prometheus metrics (`--metrics-listen`) in tests.

use prometheus_parse::{Sample, Scrape, Value};
use std::io::{Read as _, Write as _};

/// Fetches `path` from `address` over HTTP/1.1: the status code and the body.
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the metrics port");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send the request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("a status");
    (code, body.to_string())
}

/// Scrapes and parses a node's metrics.
pub fn scrape(address: &str) -> Scrape {
    let (code, body) = http_get(address, "/metrics");
    assert_eq!(code, 200, "{body}");
    Scrape::parse(body.lines().map(|line| Ok(line.to_string()))).expect("Prometheus text format")
}

/// The value of the sample `metric` whose labels include `labels` (0 if there is none, as for
/// a labelled counter not yet incremented).
pub fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let matches = |sample: &&Sample| {
        sample.metric == metric && labels.iter().all(|(k, v)| sample.labels.get(k) == Some(*v))
    };
    match scrape.samples.iter().find(matches).map(|s| &s.value) {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        Some(other) => panic!("{metric} is not a single value: {other:?}"),
        None => 0.0,
    }
}

/// The sum of the samples of `metric` whose `label` is not `except`.
pub fn sum_except(scrape: &Scrape, metric: &str, label: &str, except: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && s.labels.get(label) != Some(except))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}
