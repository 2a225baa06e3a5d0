//! The pooled keep-alive HTTP/1.1 client that talks to one site's services.
//!
//! One client per site (each site may have its own CA bundle). The gateway builds every
//! upstream URI itself from the configured base URL of the target service, so it never
//! connects anywhere a request names.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::body::{self, ProxyBody};
use crate::config::{SiteConfig, UpstreamConfig};
use http_body::Body as _;

/// Why an upstream call failed, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect to upstream: {0}")]
    Connect(String),
    #[error("upstream connection failed: {0}")]
    Reset(String),
}

impl UpstreamError {
    /// Metric label of the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Reset(_) => "reset",
        }
    }

    /// The status the gateway answers with: 504 for a timeout, 502 otherwise.
    pub fn status(&self) -> http::StatusCode {
        match self {
            UpstreamError::Timeout(_) => http::StatusCode::GATEWAY_TIMEOUT,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }
}

/// Error building a client (bad CA bundle).
#[derive(Debug, thiserror::Error)]
#[error("site {site}: {reason}")]
pub struct ClientBuildError {
    pub site: String,
    pub reason: String,
}

/// A pooled client for one site.
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, ProxyBody>,
    request_timeout: Duration,
}

impl UpstreamClient {
    pub fn new(
        site: &SiteConfig,
        cfg: &UpstreamConfig,
    ) -> Result<UpstreamClient, ClientBuildError> {
        let fail = |reason: String| ClientBuildError {
            site: site.name.to_string(),
            reason,
        };
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(e.to_string()))?;
        let tls = match &site.ca_bundle {
            Some(path) => {
                let pem =
                    std::fs::read(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let cert = cert.map_err(|e| fail(format!("{}: {e}", path.display())))?;
                    roots
                        .add(cert)
                        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_native_certs_or_empty() {
                    let _ = roots.add(cert);
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .build(connector);
        Ok(UpstreamClient {
            client,
            request_timeout: cfg.request_timeout,
        })
    }

    /// Sends a request and waits for the response headers. The request timeout runs from
    /// the moment the request body has been sent: a long upload (image data) is bounded by
    /// its own progress, not by the timeout.
    pub async fn send(&self, req: Request<ProxyBody>) -> Result<Response<Incoming>, UpstreamError> {
        let (req, body_sent) = if req.body().is_end_stream() {
            (req, None)
        } else {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let req = req.map(|inner| {
                body::stream(SignalOnEnd {
                    inner,
                    done: Some(tx),
                })
            });
            (req, Some(rx))
        };
        let response = self.client.request(req);
        tokio::pin!(response);
        let deadline = async {
            if let Some(rx) = body_sent {
                // Err means the body was dropped: the request is over either way.
                let _ = rx.await;
            }
            tokio::time::sleep(self.request_timeout).await;
        };
        let result = tokio::select! {
            r = &mut response => r,
            _ = deadline => return Err(UpstreamError::Timeout(self.request_timeout)),
        };
        match result {
            Ok(resp) => Ok(resp),
            Err(e) if e.is_connect() => Err(UpstreamError::Connect(error_chain(&e))),
            Err(e) => Err(UpstreamError::Reset(error_chain(&e))),
        }
    }

    /// Sends a small request with a fixed body and reads the whole response (for the
    /// gateway's own calls: token validation, probes).
    pub async fn send_full(
        &self,
        req: Request<ProxyBody>,
        limit: u64,
    ) -> Result<(http::response::Parts, Bytes), UpstreamError> {
        let resp = self.send(req).await?;
        let (parts, body) = resp.into_parts();
        let bytes =
            tokio::time::timeout(self.request_timeout, crate::body::read_limited(body, limit))
                .await
                .map_err(|_| UpstreamError::Timeout(self.request_timeout))?
                .map_err(|e| UpstreamError::Reset(e.to_string()))?;
        Ok((parts, bytes))
    }
}

/// A request body that reports when it has been sent completely (or dropped).
struct SignalOnEnd {
    inner: ProxyBody,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl http_body::Body for SignalOnEnd {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(None) | std::task::Poll::Ready(Some(Err(_))) = &polled {
            if let Some(tx) = self.done.take() {
                let _ = tx.send(());
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn rustls_native_certs_or_empty() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    // hyper-rustls' `rustls-native-certs` feature brings the loader in.
    let result = rustls_native_certs::load_native_certs();
    result.certs
}

/// The error and its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}
