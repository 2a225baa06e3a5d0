//! Listeners and connections: binds every configured socket (plain or TLS with ALPN h2 and
//! http/1.1), serves HTTP/1.1 and HTTP/2 with hyper, dispatches each request to its
//! service's route, and drains in-flight requests on shutdown.
//!
//! With several workers ([`crate::worker`]) each listener has one socket per worker (on
//! Linux; `SO_REUSEPORT`), and each worker thread runs its own accept loops on its own
//! runtime. Shutdown stops every worker's accepting, drains the connections of all of them
//! against one grace period, and ends the worker runtimes last, after the gateway's own
//! shutdown (a task a request spawned there may still be finishing).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::admin::{self, AdminState};
use crate::body::{self, ProxyBody};
use crate::config::{Config, TlsFiles};
use crate::failover::FailoverController;
use crate::fastlane;
use crate::gateway::Gateway;
use crate::hyper_conn::{self, Dispatch};
use crate::metrics::Metrics;
use crate::send_timeout::SendTimeout;
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
    /// One socket per worker, worker 0's first, all bound to the same address.
    sockets: Vec<TcpListener>,
    tls: Option<TlsAcceptor>,
    routes: Arc<Vec<Arc<ServiceRoute>>>,
}

/// One worker's socket of a listener (a std socket on its way to the worker's runtime).
struct WorkerListener<S = TcpListener> {
    socket: S,
    tls: Option<TlsAcceptor>,
    routes: Arc<Vec<Arc<ServiceRoute>>>,
}

/// Binds `count` sockets to `addr` (the first one's port for the others, should `addr` ask
/// for any free port), with `SO_REUSEPORT` when there are several.
fn bind_sockets(addr: SocketAddr, count: usize) -> std::io::Result<Vec<TcpListener>> {
    let mut sockets = Vec::with_capacity(count);
    let mut at = addr;
    for _ in 0..count {
        let socket = if at.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        #[cfg(target_os = "linux")]
        if count > 1 {
            socket.set_reuseport(true)?;
        }
        socket.bind(at)?;
        let listener = socket.listen(1024)?;
        at = listener.local_addr()?;
        sockets.push(listener);
    }
    Ok(sockets)
}

/// Sockets per listener: one per worker where `SO_REUSEPORT` spreads connections over
/// them (Linux), else one (served by worker 0 alone).
fn sockets_per_listener(workers: usize) -> usize {
    if cfg!(target_os = "linux") {
        workers
    } else {
        1
    }
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
        let sockets = sockets_per_listener(crate::worker::resolve(config.workers));
        for (index, l) in config.listeners.iter().enumerate() {
            let sockets = bind_sockets(l.listen, sockets).map_err(|source| ServeError::Bind {
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
                sockets,
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
            .filter_map(|l| l.sockets.first()?.local_addr().ok())
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
    /// configured grace period) for in-flight requests to finish. The calling task's
    /// runtime is worker 0; the other workers get a thread each.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        // Every connection holds a sender (and so does every accept loop until it ends);
        // the drain waits for the last to go.
        let (drain, mut drained) = mpsc::channel::<()>(1);
        // Worker runtimes end when this turns true (or is dropped).
        let (workers_done, workers_done_rx) = watch::channel(false);
        let mut by_worker: Vec<Vec<WorkerListener>> = Vec::new();
        for l in self.listeners {
            for (w, socket) in l.sockets.into_iter().enumerate() {
                if by_worker.len() <= w {
                    by_worker.resize_with(w + 1, Vec::new);
                }
                by_worker[w].push(WorkerListener {
                    socket,
                    tls: l.tls.clone(),
                    routes: l.routes.clone(),
                });
            }
        }
        let mut threads = Vec::new();
        let mut accepting = Vec::new();
        let others = by_worker.split_off(by_worker.len().min(1));
        for (w, listeners) in (1..).zip(others) {
            let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
            let worker = Worker {
                index: w,
                gw: self.gateway.clone(),
                fo: self.failover.clone(),
                stop: stop_rx.clone(),
                drain: drain.clone(),
                accepting_ended: ended_tx,
                done: workers_done_rx.clone(),
            };
            match worker.spawn(listeners) {
                Ok(thread) => {
                    threads.push(thread);
                    accepting.push(ended_rx);
                }
                // Its sockets closed with it: the others get its connections.
                Err(e) => tracing::error!(worker = w, error = %e, "cannot start a worker thread"),
            }
        }
        let mut tasks = Vec::new();
        for l in by_worker.into_iter().flatten() {
            tasks.push(tokio::spawn(accept_loop(
                l,
                self.gateway.clone(),
                self.failover.clone(),
                stop_rx.clone(),
                drain.clone(),
                0,
            )));
        }
        drop(drain);
        tasks.push(tokio::spawn(admin::serve(
            self.admin,
            self.admin_state.clone(),
            stop_rx.clone(),
        )));
        let watchers = self.gateway.policy.spawn_watchers(stop_rx.clone());
        let log_reopener = self
            .gateway
            .access_log
            .as_ref()
            .map(|log| log.spawn_reopen_on_hangup(stop_rx.clone()));
        shutdown.await;
        tracing::info!("shutting down: no new connections, draining in-flight requests");
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        for ended in accepting {
            let _ = ended.await;
        }
        let grace = self.gateway.config.shutdown_grace;
        // Each connection was told by `stop_rx`: an idle one closes, a busy one finishes
        // its requests first.
        if tokio::time::timeout(grace, drained.recv()).await.is_err() {
            tracing::warn!(
                ?grace,
                "in-flight requests still running after the grace period; closing"
            );
        }
        let _ = watchers.await;
        if let Some(reopener) = log_reopener {
            let _ = reopener.await;
        }
        self.gateway.shutdown().await;
        let _ = workers_done.send(true);
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        let _ = joined.await;
    }
}

/// What a worker thread needs to serve its sockets.
struct Worker {
    index: usize,
    gw: Arc<Gateway>,
    fo: Arc<FailoverController>,
    stop: watch::Receiver<bool>,
    drain: mpsc::Sender<()>,
    /// Sent (dropped) once the worker's accept loops have ended.
    accepting_ended: tokio::sync::oneshot::Sender<()>,
    /// The worker's runtime ends when this turns true or its sender goes.
    done: watch::Receiver<bool>,
}

impl Worker {
    /// Starts the worker's thread and runtime, serving `listeners` (this worker's sockets).
    fn spawn(self, listeners: Vec<WorkerListener>) -> std::io::Result<std::thread::JoinHandle<()>> {
        // The sockets leave this runtime's event loop for the worker's.
        let listeners = listeners
            .into_iter()
            .map(|l| {
                Ok(WorkerListener {
                    socket: l.socket.into_std()?,
                    tls: l.tls,
                    routes: l.routes,
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        std::thread::Builder::new()
            .name(format!("drgw-worker-{}", self.index))
            .spawn(move || self.run(listeners))
    }

    fn run(self, listeners: Vec<WorkerListener<std::net::TcpListener>>) {
        crate::worker::set_index(self.index);
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(worker = self.index, error = %e, "cannot start a worker runtime");
                return;
            }
        };
        let Worker {
            index,
            gw,
            fo,
            stop,
            drain,
            accepting_ended,
            mut done,
        } = self;
        runtime.block_on(async move {
            gw.mirror.watch_runtime(tokio::runtime::Handle::current());
            let mut tasks = Vec::new();
            for WorkerListener {
                socket,
                tls,
                routes,
            } in listeners
            {
                match TcpListener::from_std(socket) {
                    Ok(socket) => tasks.push(tokio::spawn(accept_loop(
                        WorkerListener {
                            socket,
                            tls,
                            routes,
                        },
                        gw.clone(),
                        fo.clone(),
                        stop.clone(),
                        drain.clone(),
                        index,
                    ))),
                    Err(e) => tracing::error!(worker = index, error = %e, "cannot serve a socket"),
                }
            }
            drop(drain);
            for t in tasks {
                let _ = t.await;
            }
            drop(accepting_ended);
            // The worker's connections (and tasks its requests spawned) go on on this
            // runtime until the gateway has shut down.
            let _ = done.wait_for(|d| *d).await;
        });
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

/// The answer to one request of the general path, boxed once: [`stack::handle`]'s future
/// is several KiB, and each async layer around it would hold (and move) it again.
pub(crate) type Answer =
    Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

/// Routes one request of the general path to its service's [`stack::handle`].
pub(crate) fn dispatch(
    gw: Arc<Gateway>,
    fo: Arc<FailoverController>,
    routes: &[Arc<ServiceRoute>],
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Answer {
    match pick_route(routes, req.uri().path()) {
        Some(route) => Box::pin(stack::handle(gw, fo, route, conn, req).map(Ok)),
        None => {
            let mut resp = Response::new(body::full(
                r#"{"error": {"code": 404, "title": "Not Found", "message": "No OpenStack service is served under this path."}}"#,
            ));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Box::pin(std::future::ready(Ok(resp)))
        }
    }
}

async fn accept_loop(
    l: WorkerListener,
    gw: Arc<Gateway>,
    fo: Arc<FailoverController>,
    mut stop: watch::Receiver<bool>,
    drain: mpsc::Sender<()>,
    worker: usize,
) {
    let connections = gw
        .metrics
        .proxy
        .connections
        .with_label_values(&[&worker.to_string()]);
    let builder = {
        let mut b = auto::Builder::new(TokioExecutor::new());
        // A request head beyond the limit gets 431 from hyper too (the fast lane answers
        // it in the service's format): HTTP/1 when hyper's read buffer fills before the
        // head ends, HTTP/2 when the header list is larger.
        b.http1()
            .keep_alive(true)
            .max_buf_size(stack::MAX_REQUEST_HEAD)
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(gw.config.client_header_timeout);
        b.http2()
            .max_header_list_size(stack::MAX_REQUEST_HEAD as u32)
            .timer(hyper_util::rt::TokioTimer::new());
        Arc::new(b)
    };
    loop {
        let (stream, peer) = tokio::select! {
            accepted = l.socket.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        connections.inc();
        let _ = stream.set_nodelay(true);
        let stream = SendTimeout::new(stream, gw.config.client_send_timeout);
        let gw = gw.clone();
        let fo = fo.clone();
        let routes = l.routes.clone();
        let builder = builder.clone();
        let tls = l.tls.clone();
        let fast_lane = gw.config.http1_fast_lane;
        let handshake_timeout = gw.config.client_header_timeout;
        let stop = stop.clone();
        let drain = drain.clone();
        tokio::spawn(async move {
            // Held until the connection ends: the shutdown's drain waits for it.
            let _drain = drain;
            let conn = ConnInfo::new(peer, tls.is_some());
            let lane = fastlane::Lane {
                gw: gw.clone(),
                fo: fo.clone(),
                routes: routes.clone(),
                conn: conn.clone(),
                auto: builder.clone(),
                stop: stop.clone(),
            };
            let svc = Dispatch {
                gw,
                fo,
                routes,
                conn,
                open: None,
            };
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream))
                        .await
                        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
                    {
                        // HTTP/1.1 over TLS takes the fast lane too; h2 goes to hyper.
                        Ok(tls_stream)
                            if fast_lane
                                && tls_stream.get_ref().1.alpn_protocol() != Some(b"h2") =>
                        {
                            fastlane::serve(tls_stream, lane).await
                        }
                        Ok(tls_stream) => hyper_conn::serve(&builder, tls_stream, svc, stop).await,
                        Err(e) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                    }
                }
                None if fast_lane => fastlane::serve(stream, lane).await,
                None => hyper_conn::serve(&builder, stream, svc, stop).await,
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
