//! Listeners of a site: accept loops, site down/up, per-request fault injection, recording and
//! dispatch to the service handlers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::http::{
    cinder_error, glance_error, keystone_error, neutron_error, nova_error, parse_query,
    percent_decode, request_id, Reply, SimBody, SimRequest,
};
use super::record::{RecordedRequest, RECORDED_HEADERS};
use super::{
    block_storage, compute, control, identity, image, network, Endpoints, FaultKind, Faults,
    Recorder, Service, SiteConfig, SiteCtx, SiteHandle, World, CONTROL_PORT_OFFSET,
};

/// Largest buffered (non-image-data) request body.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The listener tasks of a site.
#[derive(Debug)]
pub(crate) struct Runtime {
    addrs: Vec<(Service, SocketAddr)>,
    accept_tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
    control_task: Mutex<Option<JoinHandle<()>>>,
    /// Bumped to close every open service connection.
    kill: watch::Sender<u64>,
    /// Bumped to close control connections too (shutdown).
    kill_control: watch::Sender<u64>,
    down: AtomicBool,
}

pub(crate) async fn start(config: SiteConfig) -> anyhow::Result<SiteHandle> {
    let base = config.base_port.filter(|p| *p != 0);
    let port = |offset: u16| base.map(|b| b.saturating_add(offset)).unwrap_or(0);
    let mut listeners = Vec::new();
    for service in Service::ALL {
        let addr = SocketAddr::from(([127, 0, 0, 1], port(service.port_offset())));
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {service:?} listener on {addr}"))?;
        listeners.push((service, l.local_addr()?, l));
    }
    let control_addr = SocketAddr::from(([127, 0, 0, 1], port(CONTROL_PORT_OFFSET)));
    let control_listener = TcpListener::bind(control_addr)
        .await
        .with_context(|| format!("binding control listener on {control_addr}"))?;
    let url = |a: SocketAddr| format!("http://{a}");
    let find = |s: Service| {
        listeners
            .iter()
            .find(|(svc, _, _)| *svc == s)
            .map(|(_, a, _)| url(*a))
            .unwrap_or_default()
    };
    let urls = Endpoints {
        identity: find(Service::Identity),
        compute: find(Service::Compute),
        image: find(Service::Image),
        volume: find(Service::BlockStorage),
        network: find(Service::Network),
        control: url(control_listener.local_addr()?),
    };
    let data_dir_guard = tempfile::Builder::new()
        .prefix(&format!("drgw-sim-{}-", config.name))
        .tempdir()
        .context("creating the image data directory")?;
    let data_dir = data_dir_guard.path().to_path_buf();
    let identity = identity::Identity::bootstrap(&config, &urls);
    let world = World {
        identity,
        compute: compute::Compute::bootstrap(),
        image: image::Images::default(),
        volume: block_storage::BlockStorage::bootstrap(),
        network: network::Network::default(),
    };
    let ctx = Arc::new(SiteCtx {
        config,
        urls,
        world: Mutex::new(world),
        faults: Faults::default(),
        recorder: Recorder::default(),
        data_dir,
        _data_dir_guard: data_dir_guard,
    });
    let (kill, _) = watch::channel(0u64);
    let (kill_control, _) = watch::channel(0u64);
    let runtime = Arc::new(Runtime {
        addrs: listeners.iter().map(|(s, a, _)| (*s, *a)).collect(),
        accept_tasks: tokio::sync::Mutex::new(Vec::new()),
        control_task: Mutex::new(None),
        kill,
        kill_control,
        down: AtomicBool::new(false),
    });
    {
        let mut tasks = runtime.accept_tasks.lock().await;
        for (service, _, l) in listeners {
            tasks.push(spawn_service(l, service, ctx.clone(), &runtime.kill));
        }
    }
    let handle = SiteHandle {
        ctx,
        runtime: runtime.clone(),
    };
    let task = spawn_control(control_listener, handle.clone(), &runtime.kill_control);
    *runtime
        .control_task
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(task);
    Ok(handle)
}

impl Runtime {
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    pub(crate) async fn set_down(&self, _down: bool) {
        let mut tasks = self.accept_tasks.lock().await;
        for t in tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        self.kill.send_modify(|g| *g += 1);
        self.down.store(true, Ordering::SeqCst);
        // Down means every connection closed, not about to close: each connection task holds
        // a receiver until it ends (the accept tasks' are gone with them, above).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while self.kill.receiver_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    pub(crate) async fn set_up(&self, ctx: &Arc<SiteCtx>) -> anyhow::Result<()> {
        let mut tasks = self.accept_tasks.lock().await;
        if !tasks.is_empty() {
            return Ok(());
        }
        for (service, addr) in &self.addrs {
            let l = bind_retry(*addr).await?;
            tasks.push(spawn_service(l, *service, ctx.clone(), &self.kill));
        }
        self.down.store(false, Ordering::SeqCst);
        Ok(())
    }

    pub(crate) async fn shutdown(&self) {
        self.set_down(true).await;
        let task = self
            .control_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
        self.kill_control.send_modify(|g| *g += 1);
    }
}

async fn bind_retry(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(anyhow::anyhow!("rebinding {addr}: {last:?}"))
}

fn spawn_service(
    listener: TcpListener,
    service: Service,
    ctx: Arc<SiteCtx>,
    kill: &watch::Sender<u64>,
) -> JoinHandle<()> {
    let kill = kill.subscribe();
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(?service, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            };
            let ctx = ctx.clone();
            let mut kill = kill.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| dispatch(ctx.clone(), service, req));
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                // The kill first: a request that arrives with it is not served.
                tokio::select! {
                    biased;
                    _ = kill.changed() => {}
                    _ = conn => {}
                }
            });
        }
    })
}

fn spawn_control(
    listener: TcpListener,
    handle: SiteHandle,
    kill: &watch::Sender<u64>,
) -> JoinHandle<()> {
    let kill = kill.subscribe();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            };
            let handle = handle.clone();
            let mut kill = kill.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let handle = handle.clone();
                    async move { Ok::<_, std::io::Error>(control::handle(handle, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    _ = conn => {}
                    _ = kill.changed() => {}
                }
            });
        }
    })
}

/// Splits a path into decoded, non-empty segments.
pub(crate) fn split_path(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect()
}

/// The native error of a service, for injected faults and transport-level errors.
pub(crate) fn native_error(
    service: Service,
    headers: &http::HeaderMap,
    code: u16,
    message: &str,
) -> Reply {
    match service {
        Service::Identity => keystone_error(code, message),
        Service::Compute => nova_error(code, message),
        Service::BlockStorage => cinder_error(code, message),
        Service::Network => {
            let kind = match code {
                400 => "BadRequest",
                404 => "NotFound",
                409 => "Conflict",
                503 => "ServiceUnavailable",
                _ => "HTTPError",
            };
            neutron_error(code, kind, message)
        }
        Service::Image => glance_error(headers, code, message),
    }
}

async fn dispatch(
    ctx: Arc<SiteCtx>,
    service: Service,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let segments = split_path(&path);
    let streaming = service == Service::Image && image::is_data_route(&parts.method, &segments);
    let mut buffered = Bytes::new();
    let mut body = Some(body);
    if !streaming {
        if let Some(b) = body.take() {
            match Limited::new(b, MAX_BODY).collect().await {
                Ok(c) => buffered = c.to_bytes(),
                Err(e) => {
                    let msg = format!("Request body could not be read: {e}");
                    return Ok(native_error(service, &parts.headers, 413, &msg).into_response());
                }
            }
        }
    }
    let headers: Vec<(String, String)> = RECORDED_HEADERS
        .iter()
        .filter_map(|h| {
            parts
                .headers
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .map(|v| (h.to_string(), v.to_string()))
        })
        .collect();
    let json_body = if buffered.is_empty() {
        None
    } else {
        serde_json::from_slice(&buffered).ok()
    };
    let seq = ctx.recorder.push(RecordedRequest {
        seq: 0,
        service,
        method: parts.method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        headers,
        body: json_body,
        status: None,
    });

    let outcome = ctx.faults.take(service);
    if !outcome.delay.is_zero() {
        tokio::time::sleep(outcome.delay).await;
    }
    let mut response = match outcome.action {
        Some(FaultKind::Reset) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected connection reset",
            ))
        }
        Some(FaultKind::Status(code)) => {
            native_error(service, &parts.headers, code, "Injected fault.").into_response()
        }
        Some(FaultKind::LatencyMs(_) | FaultKind::LoseAnswer | FaultKind::Gzip) | None => {
            let gzip = outcome.action == Some(FaultKind::Gzip) && accepts_gzip(&parts.headers);
            let sim_req = SimRequest {
                method: parts.method.clone(),
                segments,
                path,
                query: parse_query(&raw_query),
                headers: parts.headers.clone(),
                body: buffered,
            };
            match body {
                Some(incoming) => image::handle_data(&ctx, sim_req, incoming).await,
                None if gzip => gzipped(route(&ctx, service, &sim_req)).into_response(),
                None => route(&ctx, service, &sim_req).into_response(),
            }
        }
    };
    if outcome.action == Some(FaultKind::LoseAnswer) {
        ctx.recorder.set_status(seq, response.status().as_u16());
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected loss of the answer",
        ));
    }
    if !response.headers().contains_key("x-openstack-request-id") {
        if let Ok(v) = HeaderValue::from_str(&request_id()) {
            response.headers_mut().insert("x-openstack-request-id", v);
        }
    }
    ctx.recorder.set_status(seq, response.status().as_u16());
    Ok(response)
}

/// Whether a request's `Accept-Encoding` names gzip.
fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| coding.split(';').next().unwrap_or("").trim() == "gzip")
}

/// A JSON reply gzipped, with `Content-Encoding: gzip` (other replies as they are).
fn gzipped(reply: Reply) -> Reply {
    let is_json = reply.headers.iter().any(|(name, value)| {
        *name == "content-type" && value.as_bytes().starts_with(b"application/json")
    });
    if !is_json || reply.body.is_empty() {
        return reply;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let compressed =
        std::io::Write::write_all(&mut encoder, &reply.body).and_then(|()| encoder.finish());
    match compressed {
        Ok(bytes) => Reply {
            body: bytes.into(),
            ..reply
        }
        .with_header("content-encoding", "gzip")
        .with_header("vary", "Accept-Encoding"),
        Err(_) => reply,
    }
}

fn route(ctx: &SiteCtx, service: Service, req: &SimRequest) -> Reply {
    let mut world = ctx.world();
    match service {
        Service::Identity => identity::handle(ctx, &mut world, req),
        Service::Compute => compute::handle(ctx, &mut world, req),
        Service::Image => image::handle(ctx, &mut world, req),
        Service::BlockStorage => block_storage::handle(ctx, &mut world, req),
        Service::Network => network::handle(ctx, &mut world, req),
    }
}
