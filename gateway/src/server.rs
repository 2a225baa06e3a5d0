//! Listeners and connections: binds every configured socket (plain or TLS with ALPN h2 and
//! http/1.1), serves HTTP/1.1 and HTTP/2 with hyper, dispatches each request to its
//! service's route, and drains in-flight requests on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::admin::{self, AdminState};
use crate::body::{self, ProxyBody};
use crate::config::{Config, TlsFiles};
use crate::failover::FailoverController;
use crate::fastlane;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::stack::{self, ConnInfo, ServiceRoute};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr} ({name}): {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS for listener {name}: {reason}")]
    Tls { name: String, reason: String },
    #[error(transparent)]
    Start(#[from] crate::gateway::StartError),
    #[error("failover state: {0}")]
    Failover(String),
    #[error("admin token file: {0}")]
    AdminToken(std::io::Error),
}

struct BoundListener {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    routes: Arc<Vec<Arc<ServiceRoute>>>,
}

/// A gateway whose sockets are bound, ready to serve.
pub struct BoundGateway {
    gateway: Arc<Gateway>,
    failover: Arc<FailoverController>,
    listeners: Vec<BoundListener>,
    admin: TcpListener,
    admin_state: Arc<AdminState>,
}

impl BoundGateway {
    /// Binds every listener of `config` and the admin listener.
    pub async fn bind(config: Config) -> Result<BoundGateway, ServeError> {
        let metrics = Metrics::new();
        let admin_token =
            admin::ensure_token_file(&config.admin.token_file).map_err(ServeError::AdminToken)?;
        let gateway = Arc::new(Gateway::start(config.clone(), metrics).await?);
        let mut listeners = Vec::new();
        for (index, l) in config.listeners.iter().enumerate() {
            let listener =
                TcpListener::bind(l.listen)
                    .await
                    .map_err(|source| ServeError::Bind {
                        name: l.name.clone(),
                        addr: l.listen,
                        source,
                    })?;
            let tls = match &l.tls {
                Some(files) => Some(tls_acceptor(files).map_err(|reason| ServeError::Tls {
                    name: l.name.clone(),
                    reason,
                })?),
                None => None,
            };
            let mut routes: Vec<Arc<ServiceRoute>> = config
                .services
                .iter()
                .filter(|s| s.listener == index)
                .map(|s| {
                    Arc::new(ServiceRoute {
                        service: s.service,
                        prefix: s.prefix.clone(),
                    })
                })
                .collect();
            // Longest prefix first, so that a dedicated route ("") comes last.
            routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
            listeners.push(BoundListener {
                listener,
                tls,
                routes: Arc::new(routes),
            });
        }
        let admin = TcpListener::bind(config.admin.listen)
            .await
            .map_err(|source| ServeError::Bind {
                name: "admin".into(),
                addr: config.admin.listen,
                source,
            })?;
        let failover = Arc::new(FailoverController::new(gateway.clone()));
        failover
            .load()
            .await
            .map_err(|e| ServeError::Failover(e.to_string()))?;
        let admin_state = Arc::new(AdminState::new(
            gateway.clone(),
            failover.clone(),
            admin_token,
        ));
        Ok(BoundGateway {
            failover,
            gateway,
            listeners,
            admin,
            admin_state,
        })
    }

    /// The bound address of each listener, in configuration order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.listener.local_addr().ok())
            .collect()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.local_addr().ok()
    }

    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.clone()
    }

    pub fn failover(&self) -> Arc<FailoverController> {
        self.failover.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting and waits (up to the
    /// configured grace period) for in-flight requests to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        // Accept loops hold the shutdown handle only to hand a watcher to each connection;
        // they end before the drain starts, so the handle is ours again by then.
        let graceful = Arc::new(GracefulShutdown::new());
        // Fast-lane connections hold a sender each; the drain waits for the last to go.
        let (drain, mut drained) = mpsc::channel::<()>(1);
        let mut tasks = Vec::new();
        for l in self.listeners {
            tasks.push(tokio::spawn(accept_loop(
                l,
                self.gateway.clone(),
                self.failover.clone(),
                stop_rx.clone(),
                graceful.clone(),
                drain.clone(),
            )));
        }
        drop(drain);
        tasks.push(tokio::spawn(admin::serve(
            self.admin,
            self.admin_state.clone(),
            stop_rx.clone(),
        )));
        let watchers = self.gateway.policy.spawn_watchers(stop_rx.clone());
        shutdown.await;
        tracing::info!("shutting down: no new connections, draining in-flight requests");
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        let grace = self.gateway.config.shutdown_grace;
        match Arc::try_unwrap(graceful) {
            Ok(graceful) => {
                let all_done = async {
                    graceful.shutdown().await;
                    let _ = drained.recv().await;
                };
                if tokio::time::timeout(grace, all_done).await.is_err() {
                    tracing::warn!(
                        ?grace,
                        "in-flight requests still running after the grace period; closing"
                    );
                }
            }
            Err(_) => tracing::warn!("accept loop still running; not draining"),
        }
        let _ = watchers.await;
        self.gateway.shutdown().await;
    }
}

fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let cert_pem =
        std::fs::read(&files.cert).map_err(|e| format!("{}: {e}", files.cert.display()))?;
    let key_pem = std::fs::read(&files.key).map_err(|e| format!("{}: {e}", files.key.display()))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", files.cert.display()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("{}: {e}", files.key.display()))?
        .ok_or_else(|| format!("{}: no private key found", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

pub(crate) fn pick_route(routes: &[Arc<ServiceRoute>], path: &str) -> Option<Arc<ServiceRoute>> {
    routes
        .iter()
        .find(|r| {
            r.prefix.is_empty()
                || path
                    .strip_prefix(r.prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .cloned()
}

pub(crate) async fn dispatch(
    gw: Arc<Gateway>,
    fo: Arc<FailoverController>,
    routes: Arc<Vec<Arc<ServiceRoute>>>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    match pick_route(&routes, req.uri().path()) {
        Some(route) => Ok(stack::handle(gw, fo, route, conn, req).await),
        None => {
            let mut resp = Response::new(body::full(
                r#"{"error": {"code": 404, "title": "Not Found", "message": "No OpenStack service is served under this path."}}"#,
            ));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok(resp)
        }
    }
}

async fn accept_loop(
    l: BoundListener,
    gw: Arc<Gateway>,
    fo: Arc<FailoverController>,
    mut stop: watch::Receiver<bool>,
    graceful: Arc<GracefulShutdown>,
    drain: mpsc::Sender<()>,
) {
    let builder = {
        let mut b = auto::Builder::new(TokioExecutor::new());
        b.http1()
            .keep_alive(true)
            .timer(hyper_util::rt::TokioTimer::new());
        b.http2().timer(hyper_util::rt::TokioTimer::new());
        Arc::new(b)
    };
    loop {
        let (stream, peer) = tokio::select! {
            accepted = l.listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let gw = gw.clone();
        let fo = fo.clone();
        let routes = l.routes.clone();
        let builder = builder.clone();
        let tls = l.tls.clone();
        let watcher = graceful.watcher();
        let fast_lane = gw.config.http1_fast_lane;
        let lane_stop = stop.clone();
        let drain = drain.clone();
        tokio::spawn(async move {
            let conn_info = ConnInfo::new(peer, tls.is_some());
            let (lane_gw, lane_fo, lane_routes, lane_conn, lane_auto) = (
                gw.clone(),
                fo.clone(),
                routes.clone(),
                conn_info.clone(),
                builder.clone(),
            );
            let lane = move |watcher| fastlane::Lane {
                gw: lane_gw,
                fo: lane_fo,
                routes: lane_routes,
                conn: lane_conn,
                auto: lane_auto,
                watcher,
                stop: lane_stop,
                drain,
            };
            let svc = hyper::service::service_fn(move |req| {
                dispatch(
                    gw.clone(),
                    fo.clone(),
                    routes.clone(),
                    conn_info.clone(),
                    req,
                )
            });
            match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    // HTTP/1.1 over TLS takes the fast lane too; h2 goes to hyper.
                    Ok(tls_stream)
                        if fast_lane && tls_stream.get_ref().1.alpn_protocol() != Some(b"h2") =>
                    {
                        fastlane::serve(tls_stream, lane(watcher)).await
                    }
                    Ok(tls_stream) => {
                        let conn = builder
                            .serve_connection(TokioIo::new(tls_stream), svc)
                            .into_owned();
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                },
                None if fast_lane => fastlane::serve(stream, lane(watcher)).await,
                None => {
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), svc)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::Service;

    #[test]
    fn routes_match_whole_path_segments() {
        let routes: Vec<Arc<ServiceRoute>> = vec![
            Arc::new(ServiceRoute {
                service: Service::Compute,
                prefix: "/compute".into(),
            }),
            Arc::new(ServiceRoute {
                service: Service::Identity,
                prefix: "/identity".into(),
            }),
        ];
        assert_eq!(
            pick_route(&routes, "/compute/v2.1/servers")
                .unwrap()
                .service,
            Service::Compute
        );
        assert_eq!(
            pick_route(&routes, "/compute").unwrap().service,
            Service::Compute
        );
        assert!(pick_route(&routes, "/computer/v2.1").is_none());
        assert!(pick_route(&routes, "/").is_none());
        let dedicated = vec![Arc::new(ServiceRoute {
            service: Service::Image,
            prefix: String::new(),
        })];
        assert_eq!(
            pick_route(&dedicated, "/v2/images").unwrap().service,
            Service::Image
        );
    }
}
