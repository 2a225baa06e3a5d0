//! The HTTP/1 fast lane through the real listener: its answers are the general (hyper)
//! path's answers, requests of both kinds share one keep-alive connection in order, a head
//! that arrives in pieces is still read, `Connection: close` closes, and HTTP/2 clients
//! are still served. `drgw_fast_lane_requests_total{outcome}` on the admin listener's
//! `/metrics` shows which lane served what.
//!
//! (The lane against upstreams that misbehave is in `fast_lane_upstream.rs`.)

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use drgw_tests::sim::client::{SimClient, SimResponse};
use drgw_tests::testbed::TestBed;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any one answer may take before the test fails instead of hanging.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

/// `drgw_fast_lane_requests_total{outcome=...}` from the admin listener's `/metrics`;
/// `None` when the series is absent.
async fn fast_lane_count(bed: &TestBed, outcome: &str) -> Option<u64> {
    let series = format!("drgw_fast_lane_requests_total{{outcome=\"{outcome}\"}}");
    bed.metric(&series).await.map(|v| v as u64)
}

/// Waits until `drgw_fast_lane_requests_total{outcome}` reaches `at_least` (5 s at most)
/// and returns its last value. The lane counts a relayed GET once the answer is written,
/// so the count may trail the answer the client already has by a moment.
async fn fast_lane_count_reaching(bed: &TestBed, outcome: &str, at_least: u64) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = fast_lane_count(bed, outcome).await;
        if n.unwrap_or(0) >= at_least || tokio::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client connection
// ---------------------------------------------------------------------------------------

/// One HTTP/1.1 response read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    /// Names lower-cased, in arrival order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\n{}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A raw TCP connection to a gateway listener, with the bytes read and not yet consumed.
struct RawConn {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    async fn connect(base_url: &str) -> RawConn {
        let sock = TcpStream::connect(base_url.trim_start_matches("http://"))
            .await
            .expect("connect to the gateway");
        sock.set_nodelay(true).expect("nodelay");
        RawConn {
            sock,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).await.expect("write");
        self.sock.flush().await.expect("flush");
    }

    /// Reads more bytes into `buf`; the count (0 at the end of the stream).
    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.sock.read(&mut chunk).await.expect("read");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Consumes one CRLF-terminated line.
    async fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return line;
            }
            assert!(self.fill().await > 0, "connection closed inside a line");
        }
    }

    /// Consumes exactly `n` bytes.
    async fn exactly(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await > 0, "connection closed inside a body");
        }
        self.buf.drain(..n).collect()
    }

    /// Reads the next response (skipping interim 1xx ones) to a request that is not a
    /// HEAD: content-length, chunked or close-delimited body.
    async fn answer(&mut self) -> Answer {
        tokio::time::timeout(ANSWER_TIMEOUT, self.answer_inner())
            .await
            .expect("an answer in time")
    }

    async fn answer_inner(&mut self) -> Answer {
        loop {
            let end = loop {
                if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i;
                }
                assert!(
                    self.fill().await > 0,
                    "connection closed before a response head (got {:?})",
                    String::from_utf8_lossy(&self.buf)
                );
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            self.buf.drain(..end + 4);
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            assert!(
                status_line.starts_with("HTTP/1.1 "),
                "status line: {status_line:?}"
            );
            let status: u16 = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("status line: {status_line:?}"));
            let headers: Vec<(String, String)> = lines
                .map(|l| {
                    let (k, v) = l
                        .split_once(':')
                        .unwrap_or_else(|| panic!("header line {l:?}"));
                    (k.trim().to_ascii_lowercase(), v.trim().to_string())
                })
                .collect();
            let mut answer = Answer {
                status,
                head,
                headers,
                body: Vec::new(),
            };
            if (100..200).contains(&status) {
                continue;
            }
            if status == 204 || status == 304 {
                return answer;
            }
            let chunked = answer
                .header("transfer-encoding")
                .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
            if chunked {
                loop {
                    let size_line = self.line().await;
                    let size = usize::from_str_radix(
                        size_line.split(';').next().unwrap_or_default().trim(),
                        16,
                    )
                    .unwrap_or_else(|_| panic!("chunk size line {size_line:?}"));
                    if size == 0 {
                        // Trailers, through the empty line.
                        while !self.line().await.is_empty() {}
                        break;
                    }
                    let data = self.exactly(size).await;
                    answer.body.extend_from_slice(&data);
                    assert_eq!(self.exactly(2).await, b"\r\n", "chunk terminator");
                }
            } else if let Some(len) = answer.header("content-length") {
                let len: usize = len.parse().expect("content-length");
                answer.body = self.exactly(len).await;
            } else {
                // Delimited by the end of the connection.
                while self.fill().await > 0 {}
                answer.body = std::mem::take(&mut self.buf);
            }
            return answer;
        }
    }

    /// True when the peer closes the connection (a read returns 0, or the connection is
    /// reset) with nothing more sent, within the answer timeout.
    async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(ANSWER_TIMEOUT, self.sock.read(&mut chunk)).await {
            Ok(Ok(0)) => self.buf.is_empty(),
            Ok(Ok(n)) => panic!(
                "more bytes after the last answer: {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
            Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Err(_) => false,
        }
    }
}

/// A GET's head with a token (`x-auth-token`) and extra header lines.
fn get_head(port: u16, target: &str, token: &str, extra: &[&str]) -> String {
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\naccept: application/json\r\nx-auth-token: {token}\r\n"
    );
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in the URL")
}

// ---------------------------------------------------------------------------------------
// Normalising two test beds' answers for comparison
// ---------------------------------------------------------------------------------------

/// Makes the answers of two test beds comparable: each bed's gateway URLs and simulator
/// URLs (its ports differ from the other bed's) become named placeholders, every ID (the
/// simulators' IDs are random per site: UUIDs, 32-hex Keystone IDs) becomes `<idN>`
/// numbered by first appearance in the one answer (so that two mentions of one ID stay
/// one ID: a pagination link's marker is still the listed item's ID), and every
/// timestamp becomes `<time>`.
struct Normaliser {
    /// (URL, placeholder), longest URL first.
    urls: Vec<(String, String)>,
    ids: HashMap<String, usize>,
}

impl Normaliser {
    fn new(bed: &TestBed) -> Normaliser {
        let mut urls = Vec::new();
        for service in ["identity", "compute", "image", "volume", "network"] {
            urls.push((bed.gateway_url(service), format!("<gateway:{service}>")));
        }
        for (site, handle) in [("primary", &bed.primary), ("recovery", &bed.recovery)] {
            let e = handle.endpoints();
            for (service, url) in [
                ("identity", e.identity),
                ("compute", e.compute),
                ("image", e.image),
                ("volume", e.volume),
                ("network", e.network),
                ("control", e.control),
            ] {
                urls.push((url, format!("<{site}:{service}>")));
            }
        }
        urls.sort_by_key(|(u, _)| std::cmp::Reverse(u.len()));
        Normaliser {
            urls,
            ids: HashMap::new(),
        }
    }

    /// A fresh ID numbering for the next answer.
    fn next_answer(&mut self) {
        self.ids.clear();
    }

    fn text(&mut self, s: &str) -> String {
        let mut s = s.to_string();
        for (url, placeholder) in &self.urls {
            s = s.replace(url.as_str(), placeholder);
        }
        let b = s.as_bytes();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        while i < b.len() {
            if let Some(n) = timestamp_len(&b[i..]) {
                out.push_str("<time>");
                i += n;
                continue;
            }
            if b[i].is_ascii_hexdigit() || b[i] == b'-' {
                let n = b[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_hexdigit() || **c == b'-')
                    .count();
                let run = &s[i..i + n];
                if run.bytes().filter(u8::is_ascii_hexdigit).count() >= 32 {
                    let next = self.ids.len();
                    let k = *self.ids.entry(run.to_string()).or_insert(next);
                    out.push_str(&format!("<id{k}>"));
                } else {
                    out.push_str(run);
                }
                i += n;
                continue;
            }
            let ch = s[i..].chars().next().expect("a char");
            out.push(ch);
            i += ch.len_utf8();
        }
        out
    }

    /// The JSON value with its strings (and keys) normalised; object keys visited in
    /// sorted order, so that the ID numbering does not depend on key order.
    fn json(&mut self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.json(x)).collect()),
            Value::Object(o) => {
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    let nk = self.text(k);
                    let nv = if RANDOM_FIELDS.contains(&k.as_str()) {
                        Value::String("<random>".into())
                    } else {
                        self.json(&o[k.as_str()])
                    };
                    out.insert(nk, nv);
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    /// The body as normalised JSON, or as normalised text when it is not JSON.
    fn body(&mut self, bytes: &[u8]) -> Value {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => self.json(&v),
            Err(_) => Value::String(self.text(&String::from_utf8_lossy(bytes))),
        }
    }
}

/// Fields the simulator fills with a random value of its own (not an ID): a network's
/// VXLAN segment.
const RANDOM_FIELDS: [&str; 1] = ["provider:segmentation_id"];

/// The length of an ISO 8601 timestamp at the start of `b` (`2024-01-02T03:04:05`, with
/// optional fraction and zone), if one starts there.
fn timestamp_len(b: &[u8]) -> Option<usize> {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < SHAPE.len() {
        return None;
    }
    for (c, s) in b.iter().zip(SHAPE) {
        let ok = match s {
            b'd' => c.is_ascii_digit(),
            b'T' => *c == b'T' || *c == b' ',
            other => c == other,
        };
        if !ok {
            return None;
        }
    }
    let mut n = SHAPE.len();
    if b.get(n) == Some(&b'.') {
        n += 1;
        while b.get(n).is_some_and(u8::is_ascii_digit) {
            n += 1;
        }
    }
    match b.get(n) {
        Some(b'Z') => n += 1,
        Some(b'+' | b'-') if b.len() >= n + 6 && b[n + 1..n + 3].iter().all(u8::is_ascii_digit) => {
            n += 6
        }
        _ => {}
    }
    Some(n)
}

/// What of an answer the two paths must agree on, normalised.
#[derive(Debug, PartialEq)]
struct Comparable {
    status: u16,
    /// Header names (lower case) and normalised values; `date` and the request IDs
    /// with their values blanked, hop-by-hop ones left out.
    headers: BTreeMap<String, Vec<String>>,
    body: Value,
}

/// Header names whose values differ between any two answers.
const VALUE_EXEMPT: [&str; 3] = ["date", "x-openstack-request-id", "x-compute-request-id"];
/// Connection-management headers, which depend on the connection, not on the answer.
const HOP_BY_HOP: [&str; 3] = ["connection", "keep-alive", "proxy-connection"];

fn comparable(norm: &mut Normaliser, what: &str, resp: &SimResponse) -> Comparable {
    norm.next_answer();
    // Every answer carries its body's exact length: the lane writes content-length, and
    // so does the general path for the buffered bodies of these calls.
    let length = resp
        .header("content-length")
        .unwrap_or_else(|| panic!("{what}: no content-length: {:?}", resp.headers));
    assert_eq!(
        length.parse::<usize>().ok(),
        Some(resp.bytes.len()),
        "{what}: content-length is not the body's length"
    );
    let body = norm.body(&resp.bytes);
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &resp.headers {
        let name = name.as_str().to_ascii_lowercase();
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        let value = if VALUE_EXEMPT.contains(&name.as_str()) || name == "content-length" {
            // content-length: checked above against the body, whose length may differ
            // between the beds only by their own JSON spacing.
            "<varies>".to_string()
        } else {
            norm.text(&String::from_utf8_lossy(value.as_bytes()))
        };
        headers.entry(name).or_default().push(value);
    }
    Comparable {
        status: resp.status.as_u16(),
        headers,
        body,
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// One GET of the comparison: the service, the path (`{project}` is the demo project's
/// ID at that bed), and whether it carries the token.
struct Probe {
    service: &'static str,
    path: &'static str,
    token: bool,
    /// The status both answers must have.
    status: u16,
}

const fn probe(service: &'static str, path: &'static str, token: bool, status: u16) -> Probe {
    Probe {
        service,
        path,
        token,
        status,
    }
}

const PROBES: &[Probe] = &[
    // Version documents: upstream URLs in the body, rewritten to the gateway's.
    probe("identity", "/", false, 300),
    probe("identity", "/v3", false, 200),
    probe("compute", "/", false, 200),
    probe("compute", "/v2.1", false, 200),
    probe("network", "/", false, 200),
    probe("network", "/v2.0", true, 200),
    probe("volume", "/", false, 300),
    probe("volume", "/v3", false, 200),
    probe("image", "/", false, 300),
    // Lists.
    probe("compute", "/v2.1/flavors", true, 200),
    probe("compute", "/v2.1/flavors/detail", true, 200),
    probe("network", "/v2.0/networks", true, 200),
    probe("volume", "/v3/{project}/types", true, 200),
    probe("image", "/v2/images", true, 200),
    // A page of one with a `networks_links` next link: an upstream URL, rewritten.
    probe("network", "/v2.0/networks?limit=1", true, 200),
    // Query strings.
    probe(
        "compute",
        "/v2.1/flavors/detail?minRam=1024&minDisk=30",
        true,
        200,
    ),
    probe(
        "network",
        "/v2.0/networks?name=fl-net-b&fields=name&fields=id",
        true,
        200,
    ),
    // A missing resource, in each service's own error format.
    probe("compute", "/v2.1/flavors/no-such-flavor", true, 404),
    probe(
        "network",
        "/v2.0/networks/00000000-0000-4000-8000-000000000000",
        true,
        404,
    ),
    // No token: the upstream's 401 (with its `WWW-Authenticate`).
    probe("compute", "/v2.1/flavors", false, 401),
    probe("network", "/v2.0/networks", false, 401),
];

/// Logs `demo` in, creates the two networks the lists show, and sends every probe; the
/// answers in probe order.
async fn probe_all(bed: &TestBed) -> Vec<SimResponse> {
    let (client, token) = bed.login("demo", "demo", "demo").await.expect("demo login");
    let project = token["token"]["project"]["id"]
        .as_str()
        .expect("a project-scoped token")
        .to_string();
    for name in ["fl-net-a", "fl-net-b"] {
        let created = client
            .post(
                &format!("{}/v2.0/networks", bed.gateway_url("network")),
                &json!({"network": {"name": name}}),
            )
            .await
            .expect("network create");
        assert_eq!(created.status, 201, "{name}: {}", created.json);
    }
    let anonymous = SimClient::new();
    let mut answers = Vec::new();
    for p in PROBES {
        let url = format!(
            "{}{}",
            bed.gateway_url(p.service),
            p.path.replace("{project}", &project)
        );
        let c = if p.token { &client } else { &anonymous };
        answers.push(c.get(&url).await.expect("an answer"));
    }
    answers
}

/// A test bed and the demo tenant's token.
async fn demo_bed() -> (TestBed, String) {
    let bed = TestBed::start().await.expect("test bed");
    let (client, _) = bed.login("demo", "demo", "demo").await.expect("demo login");
    let token = client.token.clone().expect("a token");
    (bed, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_lane_answers_as_the_general_path_does() {
    let (lane, general) = tokio::join!(
        TestBed::start(),
        TestBed::start_with_gateway_settings("http1_fast_lane = false\n")
    );
    let lane = lane.expect("test bed with the fast lane");
    let general = general.expect("test bed without the fast lane");

    let (by_lane, by_general) = tokio::join!(probe_all(&lane), probe_all(&general));

    // The two beds' simulators have random IDs and their own ports, so the bodies are
    // compared after normalising (see `Normaliser`); every probe's answer is otherwise
    // deterministic: the bootstrap flavors and volume types, the two networks created
    // above, fixed version documents. The lane's answers carry no upstream URL at all.
    let mut lane_norm = Normaliser::new(&lane);
    let mut general_norm = Normaliser::new(&general);
    for ((p, a), b) in PROBES.iter().zip(&by_lane).zip(&by_general) {
        let what = format!(
            "GET {} {}{}",
            p.service,
            p.path,
            if p.token { "" } else { " (no token)" }
        );
        let a = comparable(&mut lane_norm, &what, a);
        let b = comparable(&mut general_norm, &what, b);
        assert_eq!(a.status, p.status, "{what}: {a:#?}");
        assert_eq!(
            a, b,
            "{what}: fast lane (left) and general path (right) differ"
        );
        // Bodies, `Location` and a 401's `WWW-Authenticate` name the gateway only.
        let text = format!(
            "{:?} {:?} {}",
            a.headers.get("location"),
            a.headers.get("www-authenticate"),
            a.body
        );
        assert!(
            !text.contains("<primary:") && !text.contains("<recovery:"),
            "{what}: an upstream URL reached the client: {text}"
        );
        if p.status == 401 {
            let challenge = a.headers.get("www-authenticate");
            assert!(
                challenge.is_some_and(|v| v.iter().any(|v| v.contains("<gateway:identity>"))),
                "{what}: the 401 does not send the client to the gateway's Keystone: {challenge:?}"
            );
        }
        assert!(
            a.headers.contains_key("x-openstack-request-id"),
            "{what}: no request id: {:?}",
            a.headers
        );
    }
    // The pagination link names the gateway, and its marker is the listed network.
    let page = &by_lane[PROBES
        .iter()
        .position(|p| p.path == "/v2.0/networks?limit=1")
        .expect("the paged probe")];
    let next = page.json["networks_links"][0]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("no next link: {}", page.json));
    let listed = page.json["networks"][0]["id"].as_str().expect("an id");
    assert!(
        next.starts_with(&format!("{}/v2.0/networks?", lane.gateway_url("network"))),
        "{next}"
    );
    assert!(next.contains(&format!("marker={listed}")), "{next}");

    // Every probe is a plain GET: the lane relayed each one itself; without the lane
    // nothing was.
    let relayed = fast_lane_count_reaching(&lane, "relayed", PROBES.len() as u64).await;
    assert!(
        relayed.is_some_and(|n| n >= PROBES.len() as u64),
        "relayed {relayed:?}, sent {} plain GETs",
        PROBES.len()
    );
    let relayed_without = fast_lane_count(&general, "relayed").await;
    assert!(
        relayed_without.unwrap_or(0) == 0,
        "relayed {relayed_without:?} with http1_fast_lane = false"
    );

    lane.stop().await;
    general.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_on_one_connection_are_answered_in_order() {
    let (bed, token) = demo_bed().await;
    let network = bed.gateway_url("network");
    let port = port_of(&network);
    let relayed_before = fast_lane_count(&bed, "relayed").await.unwrap_or(0);
    let general_before = fast_lane_count(&bed, "general").await.unwrap_or(0);

    // GET, POST, GET in one write.
    let list = "/v2.0/networks?name=fl-pipelined";
    let body = r#"{"network": {"name": "fl-pipelined"}}"#;
    let mut bytes = get_head(port, list, &token, &[]);
    bytes.push_str(&format!(
        "POST /v2.0/networks HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\naccept: application/json\r\n\
         x-auth-token: {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    bytes.push_str(&get_head(port, list, &token, &[]));
    let mut conn = RawConn::connect(&network).await;
    conn.send(bytes.as_bytes()).await;

    let before = conn.answer().await;
    assert_eq!(before.status, 200, "{}", before.head);
    assert_eq!(before.json(), json!({"networks": []}));

    let created = conn.answer().await;
    assert_eq!(created.status, 201, "{}", created.head);
    let created = created.json();
    assert_eq!(created["network"]["name"], "fl-pipelined", "{created}");
    let id = created["network"]["id"]
        .as_str()
        .expect("an id")
        .to_string();

    let after = conn.answer().await;
    assert_eq!(after.status, 200, "{}", after.head);
    let after = after.json();
    let ids: Vec<&str> = after["networks"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()], "{after}");

    // The connection is still open for one more.
    conn.send(get_head(port, &format!("/v2.0/networks/{id}"), &token, &[]).as_bytes())
        .await;
    let shown = conn.answer().await;
    assert_eq!(shown.status, 200, "{}", shown.head);
    assert_eq!(shown.json()["network"]["id"], id.as_str());
    assert_eq!(
        shown.header("content-length"),
        Some(shown.body.len().to_string().as_str())
    );

    // Three GETs relayed by the lane, the POST served by the general path.
    let relayed = fast_lane_count_reaching(&bed, "relayed", relayed_before + 3)
        .await
        .unwrap_or(0);
    let general = fast_lane_count_reaching(&bed, "general", general_before + 1)
        .await
        .unwrap_or(0);
    assert!(
        relayed >= relayed_before + 3,
        "relayed {relayed_before} -> {relayed}"
    );
    assert!(
        general > general_before,
        "general {general_before} -> {general}"
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_split_into_pieces_is_still_read() {
    let (bed, token) = demo_bed().await;
    let compute = bed.gateway_url("compute");
    let port = port_of(&compute);
    let relayed_before = fast_lane_count(&bed, "relayed").await.unwrap_or(0);
    let mut conn = RawConn::connect(&compute).await;

    // Twice on one connection: the second head starts right after the first answer.
    // The cuts fall inside the method, the target, the CRLF after the request line, a
    // header name, and between the two CRLFs that end the head.
    for _ in 0..2 {
        let head = get_head(port, "/v2.1/flavors?minRam=1024", &token, &[]);
        let bytes = head.as_bytes();
        let line_end = head.find('\r').expect("a request line");
        let header_name = head.find("accept").expect("an accept header") + 3;
        let end = bytes.len();
        let cuts = [2, 10, line_end + 1, header_name, end - 3, end - 1, end];
        let mut from = 0;
        for to in cuts {
            conn.send(&bytes[from..to]).await;
            from = to;
            if to < bytes.len() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let answer = conn.answer().await;
        assert_eq!(answer.status, 200, "{}", answer.head);
        let names: Vec<String> = answer.json()["flavors"]
            .as_array()
            .expect("flavors")
            .iter()
            .filter_map(|f| f["name"].as_str().map(str::to_string))
            .collect();
        assert_eq!(names, ["m1.small", "m1.medium"]);
    }
    // The lane itself put the pieces together (it did not give the connection up).
    let relayed = fast_lane_count_reaching(&bed, "relayed", relayed_before + 2).await;
    assert!(
        relayed.unwrap_or(0) >= relayed_before + 2,
        "relayed {relayed_before} -> {relayed:?}"
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_asking_to_close_gets_its_answer_and_the_connection_closes() {
    let (bed, token) = demo_bed().await;
    let network = bed.gateway_url("network");
    let port = port_of(&network);
    let mut conn = RawConn::connect(&network).await;

    // A relayed GET first, so that the connection is on the lane when the close comes.
    conn.send(get_head(port, "/v2.0/networks", &token, &[]).as_bytes())
        .await;
    let first = conn.answer().await;
    assert_eq!(first.status, 200, "{}", first.head);
    assert_eq!(first.json(), json!({"networks": []}));

    conn.send(get_head(port, "/v2.0/networks", &token, &["Connection: close"]).as_bytes())
        .await;
    let last = conn.answer().await;
    assert_eq!(last.status, 200, "{}", last.head);
    assert_eq!(last.json(), json!({"networks": []}));
    assert!(conn.closed().await, "the connection stayed open");
    // That request took the connection off the lane for good (hyper closed it).
    let lanes = &bed.gateway.gateway.metrics.proxy.fast_lane;
    assert_eq!(lanes.handed_over.get(), 1);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_prior_knowledge_client_is_still_served() {
    let (bed, token) = demo_bed().await;
    let h2: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let network = bed.gateway_url("network");

    // Two requests on the one HTTP/2 connection: a read, and a create.
    let get = http::Request::get(format!("{network}/v2.0/networks"))
        .header("x-auth-token", &token)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(ANSWER_TIMEOUT, h2.request(get))
        .await
        .expect("an answer in time")
        .expect("the gateway speaks HTTP/2 with prior knowledge");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let body: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body, json!({"networks": []}));

    let post = http::Request::post(format!("{network}/v2.0/networks"))
        .header("x-auth-token", &token)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"network": {"name": "fl-h2"}}"#,
        )))
        .unwrap();
    let resp = tokio::time::timeout(ANSWER_TIMEOUT, h2.request(post))
        .await
        .expect("an answer in time")
        .expect("an answer");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 201);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let body: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body["network"]["name"], "fl-h2", "{body}");
    bed.stop().await;
}
