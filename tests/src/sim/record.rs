//! The request record: every request a site received, in order, for tests to assert on.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use super::Service;

/// Request headers kept in the record (lower-case names).
pub const RECORDED_HEADERS: &[&str] = &[
    "content-type",
    "openstack-api-version",
    "x-openstack-nova-api-version",
    "x-auth-token",
    "x-subject-token",
    "x-dr-tier",
    "x-openstack-request-id",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-prefix",
    "forwarded",
    "user-agent",
];

/// One received request.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    /// Position in the site's record, from 1, never reused (not even after a clear).
    pub seq: u64,
    pub service: Service,
    pub method: String,
    pub path: String,
    /// Raw query string, empty if none.
    pub query: String,
    /// The [`RECORDED_HEADERS`] that were present.
    pub headers: Vec<(String, String)>,
    /// The body, if it was JSON.
    pub body: Option<Value>,
    /// The status answered; `None` while in flight, or for a reset connection.
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// A recorded header by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The record of a site; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<RecordTable>>,
}

#[derive(Debug, Default)]
struct RecordTable {
    next_seq: u64,
    entries: Vec<RecordedRequest>,
}

impl Recorder {
    /// Appends a request and returns its sequence number.
    pub fn push(&self, mut entry: RecordedRequest) -> u64 {
        let mut t = self.lock();
        t.next_seq += 1;
        entry.seq = t.next_seq;
        t.entries.push(entry);
        t.next_seq
    }

    /// Sets the answered status of a recorded request.
    pub fn set_status(&self, seq: u64, status: u16) {
        let mut t = self.lock();
        if let Some(e) = t.entries.iter_mut().rev().find(|e| e.seq == seq) {
            e.status = Some(status);
        }
    }

    /// Every recorded request, in the order received.
    pub fn all(&self) -> Vec<RecordedRequest> {
        self.lock().entries.clone()
    }

    /// The recorded requests of one service.
    pub fn of(&self, service: Service) -> Vec<RecordedRequest> {
        self.lock()
            .entries
            .iter()
            .filter(|e| e.service == service)
            .cloned()
            .collect()
    }

    /// Recorded requests matching a method and a path prefix.
    pub fn matching(&self, method: &str, path_prefix: &str) -> Vec<RecordedRequest> {
        self.lock()
            .entries
            .iter()
            .filter(|e| e.method == method && e.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    /// Forgets every recorded request.
    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecordTable> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
