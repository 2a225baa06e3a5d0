//! The access log: one JSON line per request the gateway answered.
//!
//! On the worst day of the year an operator asks of every call: did it go through the
//! gateway, which site did it reach, what did the tenant hear, and under which request id
//! (the one the services log too). `[gateway] access_log` names a file (or `stdout`); off
//! by default, as in Envoy.
//!
//! ```text
//! request path ─▶ record(): the line is formatted, then try_send on a bounded queue
//!                  (full: the line is dropped and counted, the request never waits)
//!   writer thread ─▶ wakes at the first line after a pause, lets lines gather for 50 ms
//!                    ─▶ buffered write of the batch ─▶ flush
//!   SIGHUP / reopen() ─▶ the file is opened again at the next batch (logrotate)
//! ```
//! A line holds no token or password: the target is the request's path and query (an
//! OpenStack API carries credentials in headers and bodies only), and no header is logged.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use serde::Serialize;

use crate::config::SiteName;
use crate::operation::Service;

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    File(PathBuf),
}

/// Lines waiting for the writer; beyond this, lines are dropped (and counted).
const QUEUE_LINES: usize = 32 * 1024;
/// How often an idle writer looks for a reopen request.
const REOPEN_POLL: Duration = Duration::from_secs(1);
/// How long a busy writer lets lines gather before it writes them. While it sleeps, a
/// request queues its line without waking it: a wake-up per line (a futex call from the
/// request's thread, and a switch to the writer's) cost more than the rest of the line.
const GATHER: Duration = Duration::from_millis(50);

/// The longest target a line keeps (a refused request's may be 64 KiB of anything).
const MAX_TARGET: usize = 4096;
/// The longest method a line keeps.
const MAX_METHOD: usize = 32;

/// One answered request.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Entry<'a> {
    /// When the answer ended (RFC 3339, UTC, milliseconds).
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    /// The id the client got in its answer: the service's own when it gave one.
    pub request_id: &'a str,
    /// The id the gateway sent the service (`X-OpenStack-Request-ID`: the client's own
    /// when it sent a valid one), which the service logs as its `global_request_id`.
    pub global_request_id: &'a str,
    pub client: SocketAddr,
    pub method: &'a str,
    /// The path and query the client asked for, as it sent them.
    pub target: &'a str,
    /// The fronted service (`identity`, `compute`, ...); none when no route matched.
    pub service: Option<&'a str>,
    /// What the call does (`read`, `create`, `update`, `delete`, `action`, `other`).
    pub action: &'a str,
    pub status: u16,
    /// The active site when the request arrived.
    pub site: &'a str,
    /// The tenant's project, for a protected change (reads are not looked up).
    pub project: Option<&'a str>,
    /// The DR tier the policy chose for a protected change it allowed.
    pub tier: Option<&'a str>,
    /// From the request head read to the answer's end: its last byte handed to the
    /// connection, or the answer given up (the client gone, the upstream broken off).
    pub duration_ms: f64,
}

fn rfc3339<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*time))
}

/// What the request path learnt of a request, for its line: a response extension that
/// `stack::finish` adds while the log is on.
#[derive(Debug, Clone)]
pub struct Classified {
    pub service: Service,
    pub action: &'static str,
    /// The id sent upstream (see [`Entry::global_request_id`]).
    pub request_id: http::HeaderValue,
}

/// A request's line as far as its arrival tells: what [`Entry`] needs from the request,
/// kept until the answer comes ([`Arrival::answered`]).
pub struct Arrival {
    log: Arc<AccessLog>,
    method: http::Method,
    target: String,
    site: SiteName,
    started: Instant,
}

impl Arrival {
    pub fn new<B>(log: Arc<AccessLog>, req: &http::Request<B>, site: SiteName) -> Arrival {
        Arrival {
            log,
            method: req.method().clone(),
            target: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned()),
            site,
            started: Instant::now(),
        }
    }

    /// The line of the request answered with `resp`; it is written when dropped, once
    /// the answer's body is done or given up.
    pub fn answered<B>(self, resp: &http::Response<B>, client: SocketAddr) -> PendingLine {
        let classified = resp.extensions().get::<Classified>();
        let tenancy = resp.extensions().get::<Tenancy>();
        let request_id = request_id(resp.headers()).to_owned();
        PendingLine {
            project: tenancy.and_then(|t| t.project.clone()),
            tier: tenancy.and_then(|t| t.tier.clone()),
            global_request_id: classified
                .and_then(|c| c.request_id.to_str().ok())
                .map_or_else(|| request_id.clone(), str::to_owned),
            request_id,
            client,
            service: classified.map(|c| c.service.as_str()),
            action: classified.map_or("other", |c| c.action),
            status: resp.status().as_u16(),
            arrival: self,
        }
    }
}

/// A request's line, waiting for its answer to end (see [`Arrival::answered`]).
pub struct PendingLine {
    arrival: Arrival,
    request_id: String,
    global_request_id: String,
    project: Option<String>,
    tier: Option<String>,
    client: SocketAddr,
    service: Option<&'static str>,
    action: &'static str,
    status: u16,
}

impl Drop for PendingLine {
    fn drop(&mut self) {
        let a = &self.arrival;
        a.log.record(&Entry {
            time: SystemTime::now(),
            request_id: &self.request_id,
            global_request_id: &self.global_request_id,
            client: self.client,
            method: a.method.as_str(),
            target: &a.target,
            service: self.service,
            action: self.action,
            status: self.status,
            site: a.site.as_str(),
            project: self.project.as_deref(),
            tier: self.tier.as_deref(),
            duration_ms: millis(a.started.elapsed()),
        });
    }
}

/// The request id an answer carries (every answer of the gateway has one).
fn request_id(headers: &http::HeaderMap) -> &str {
    headers
        .get(&crate::stack::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The longest start of `text` of at most `max` bytes that ends on a character boundary.
pub(crate) fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A duration in milliseconds, to the microsecond.
pub fn millis(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// Who made a protected change, and the tier the policy chose: a response extension the
/// request path adds while the log is on.
#[derive(Debug, Clone)]
pub struct Tenancy {
    pub project: Option<String>,
    pub tier: Option<String>,
}

enum Message {
    Line(String),
    /// Everything queued before it is written and flushed, then the sender hears.
    Flush(mpsc::Sender<()>),
}

/// The access log of a running gateway: a queue to its writer thread.
pub struct AccessLog {
    queue: SyncSender<Message>,
    reopen: Arc<AtomicBool>,
    /// `drgw_access_log_lines_lost_total{reason="queue_full"}`.
    queue_full: IntCounter,
}

/// Why the access log could not start.
#[derive(Debug, thiserror::Error)]
#[error("access log {path}: {source}")]
pub struct OpenError {
    path: String,
    source: io::Error,
}

impl AccessLog {
    /// Opens the target (a file is created if missing, and appended to) and starts the
    /// writer thread; `None` when the log is off.
    pub fn open(
        target: &AccessLogTarget,
        registry: &Registry,
    ) -> Result<Option<AccessLog>, OpenError> {
        let sink = match target {
            AccessLogTarget::Off => return Ok(None),
            AccessLogTarget::Stdout => Sink::Stdout(BufWriter::new(io::stdout())),
            AccessLogTarget::File(path) => Sink::file(path).map_err(|source| OpenError {
                path: path.display().to_string(),
                source,
            })?,
        };
        let lost = IntCounterVec::new(
            Opts::new(
                "drgw_access_log_lines_lost_total",
                "Access log lines not written, by reason (queue_full, write_failed)",
            ),
            &["reason"],
        )
        .expect("static metric definition");
        // (Fails only on a registry that has the metric already: the counter then goes
        // unexported, and nothing else changes.)
        let _ = registry.register(Box::new(lost.clone()));
        let (queue, lines) = mpsc::sync_channel(QUEUE_LINES);
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            sink,
            lines,
            reopen: reopen.clone(),
            write_failed: lost.with_label_values(&["write_failed"]),
            failing: false,
        };
        std::thread::Builder::new()
            .name("drgw-access-log".into())
            .spawn(move || writer.run())
            .map_err(|source| OpenError {
                path: "(writer thread)".into(),
                source,
            })?;
        Ok(Some(AccessLog {
            queue,
            reopen,
            queue_full: lost.with_label_values(&["queue_full"]),
        }))
    }

    /// Queues the entry's line (its target and method cut to a bound); never waits.
    pub fn record(&self, entry: &Entry<'_>) {
        let entry = Entry {
            target: clip(entry.target, MAX_TARGET),
            method: clip(entry.method, MAX_METHOD),
            ..*entry
        };
        let Ok(mut line) = serde_json::to_string(&entry) else {
            return;
        };
        line.push('\n');
        match self.queue.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.queue_full.inc(),
            // The writer is gone (it only ends when the gateway does).
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// The file is opened again before the next line is written (after logrotate moved it).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    /// Waits (up to `within`) until every line queued so far is written and flushed.
    pub async fn flush(&self, within: Duration) {
        let queue = self.queue.clone();
        let waited = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + within;
            let (done, heard) = mpsc::channel();
            let mut flush = Message::Flush(done);
            // Not `send`: a writer stuck on a dead disk must not hold up the stop.
            loop {
                match queue.try_send(flush) {
                    Ok(()) => break,
                    Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                        flush = back;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => return,
                }
            }
            let _ = heard.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        });
        let _ = waited.await;
    }

    /// Reopens the log on every SIGHUP until `stop` turns true.
    pub fn spawn_reopen_on_hangup(
        self: &Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hangup = match signal(SignalKind::hangup()) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP; the access log is not reopened");
                    return;
                }
            };
            loop {
                tokio::select! {
                    _ = stop.wait_for(|stopping| *stopping) => return,
                    got = hangup.recv() => {
                        if got.is_none() {
                            return;
                        }
                        log.reopen();
                    }
                }
            }
        })
    }
}

enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File { path: PathBuf, out: BufWriter<File> },
}

impl Sink {
    fn file(path: &Path) -> io::Result<Sink> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Sink::File {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(64 * 1024, file),
        })
    }

    fn out(&mut self) -> &mut dyn Write {
        match self {
            Sink::Stdout(out) => out,
            Sink::File { out, .. } => out,
        }
    }
}

struct Writer {
    sink: Sink,
    lines: mpsc::Receiver<Message>,
    reopen: Arc<AtomicBool>,
    write_failed: IntCounter,
    /// A write failed and no later flush has succeeded (warned once per such spell).
    failing: bool,
}

impl Writer {
    fn run(mut self) {
        loop {
            let first = match self.lines.recv_timeout(REOPEN_POLL) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if first.is_some() {
                std::thread::sleep(GATHER);
            }
            if self.reopen.swap(false, Ordering::AcqRel) {
                self.reopen_file();
            }
            let mut batch = 0u64;
            let mut wrote = Ok(());
            let mut acks = Vec::new();
            let queued = std::iter::from_fn(|| self.lines.try_recv().ok());
            for message in first.into_iter().chain(queued) {
                match message {
                    Message::Line(line) => {
                        batch += 1;
                        if wrote.is_ok() {
                            wrote = self.sink.out().write_all(line.as_bytes());
                        }
                    }
                    Message::Flush(ack) => acks.push(ack),
                }
            }
            if batch > 0 || !acks.is_empty() {
                self.flush(batch, wrote);
            }
            for ack in acks {
                let _ = ack.send(());
            }
        }
        self.flush(0, Ok(()));
    }

    /// Flushes a batch of `batch` lines whose writes gave `wrote`.
    fn flush(&mut self, batch: u64, wrote: io::Result<()>) {
        match wrote.and_then(|()| self.sink.out().flush()) {
            Ok(()) => self.failing = false,
            Err(e) => {
                self.write_failed.inc_by(batch);
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::warn!(error = %e, "cannot write the access log; lines are lost until it works again");
                }
                // Start the next batch clean rather than retry a broken buffer forever.
                if let Sink::File { path, .. } = &self.sink {
                    let path = path.clone();
                    if let Ok(fresh) = Sink::file(&path) {
                        self.sink = fresh;
                    }
                }
            }
        }
    }

    fn reopen_file(&mut self) {
        let Sink::File { path, out } = &mut self.sink else {
            return;
        };
        let _ = out.flush();
        match Sink::file(path) {
            Ok(fresh) => self.sink = fresh,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot reopen the access log; writing on to the old file")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(request_id: &'a str, target: &'a str) -> Entry<'a> {
        Entry {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_790_000_000_123),
            request_id,
            global_request_id: request_id,
            client: "127.0.0.1:40000".parse().unwrap(),
            method: "GET",
            target,
            service: Some("compute"),
            action: "read",
            status: 200,
            site: "primary",
            project: None,
            tier: None,
            duration_ms: 1.5,
        }
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    #[tokio::test]
    async fn lines_are_json_and_flushed_and_the_file_is_reopened_after_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(&AccessLogTarget::File(path.clone()), &Registry::new())
            .unwrap()
            .unwrap();
        // A target with what JSON must escape stays one line.
        log.record(&entry("req-1", "/v2.1/servers?name=\"a\nb\""));
        log.flush(Duration::from_secs(5)).await;
        let first = lines(&path);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["request_id"], "req-1");
        assert_eq!(first[0]["target"], "/v2.1/servers?name=\"a\nb\"");
        assert_eq!(first[0]["time"], "2026-09-21T14:13:20.123Z");
        assert_eq!(first[0]["status"], 200);

        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen();
        log.record(&entry("req-2", "/v2.1/flavors"));
        log.flush(Duration::from_secs(5)).await;
        let ids = |p: &Path| -> Vec<String> {
            lines(p)
                .iter()
                .map(|l| l["request_id"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(ids(&rotated), ["req-1"]);
        assert_eq!(ids(&path), ["req-2"]);
    }

    #[test]
    fn long_targets_are_cut_on_a_character_boundary() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc");
        // 'é' is two bytes: a cut inside it keeps the character out.
        assert_eq!(clip("aé", 2), "a");
        assert_eq!(clip(&"x".repeat(70_000), MAX_TARGET).len(), MAX_TARGET);
    }

    #[test]
    fn a_line_the_writer_cannot_take_is_dropped_and_counted_not_waited_for() {
        let (queue, _held) = mpsc::sync_channel(1);
        let lost = IntCounter::new("lost", "lost").unwrap();
        let log = AccessLog {
            queue,
            reopen: Arc::new(AtomicBool::new(false)),
            queue_full: lost.clone(),
        };
        log.record(&entry("req-1", "/"));
        log.record(&entry("req-2", "/"));
        log.record(&entry("req-3", "/"));
        assert_eq!(lost.get(), 2);
    }

    #[test]
    fn off_starts_nothing() {
        assert!(AccessLog::open(&AccessLogTarget::Off, &Registry::new())
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_an_error_naming_it() {
        let err = AccessLog::open(
            &AccessLogTarget::File("/nonexistent-dir/access.log".into()),
            &Registry::new(),
        )
        .err()
        .expect("an error");
        assert!(
            err.to_string().contains("/nonexistent-dir/access.log"),
            "{err}"
        );
    }
}
