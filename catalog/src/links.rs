//! Rewriting absolute upstream URLs (links, `next`, `Location`, version documents) to the
//! gateway's public URLs, so that a client never leaves the gateway by accident.

use serde_json::Value;

use crate::base_url::{BaseUrl, BaseUrlError};
use crate::service::ServiceKind;

/// One upstream base and the public base that replaces it.
#[derive(Debug, Clone)]
struct Mapping {
    kind: ServiceKind,
    upstream: BaseUrl,
    public: BaseUrl,
}

/// Upstream base URL → public base URL, for every service and site the gateway fronts.
///
/// Built from `(kind, upstream_base, public_base)` triples; list the upstreams of every
/// site, so that a link to the standby site is rewritten too.
#[derive(Debug, Clone, Default)]
pub struct UrlMap {
    /// Longest upstream path first, so that the first match is the longest prefix.
    mappings: Vec<Mapping>,
    /// Distinct upstream authorities (`host[:port]`, as URLs spell them), for
    /// [`UrlMap::contains_upstream`].
    hosts: Vec<HostNeedle>,
    /// Length of the longest authority: a chunked scan keeps one byte less of each chunk.
    longest_host: usize,
}

/// One upstream authority, prepared for a fast search: the longest run of it without ASCII
/// letters (for `10.0.0.5:8774` the whole authority, for `nova.example:8774` the `:8774`)
/// needs no case folding, so a SIMD substring search (`memmem`) finds candidates, and only
/// those are compared in full. An authority with no such run of [`MIN_ANCHOR`] bytes falls
/// back to a scan for its first byte in either case.
#[derive(Debug, Clone)]
struct HostNeedle {
    /// The lowercase authority.
    authority: Vec<u8>,
    /// Where the anchor starts in `authority`.
    anchor_at: usize,
    /// Finds the anchor; `None` when it is shorter than [`MIN_ANCHOR`].
    anchor: Option<memchr::memmem::Finder<'static>>,
}

/// The shortest letter-free run worth a substring search (shorter runs, such as a lone `.`,
/// would match everywhere).
const MIN_ANCHOR: usize = 3;

impl HostNeedle {
    fn new(authority: Vec<u8>) -> HostNeedle {
        // The longest run of bytes that ASCII case folding leaves alone.
        let (mut best_at, mut best_len, mut run_at) = (0, 0, 0);
        for (i, b) in authority.iter().enumerate() {
            if b.is_ascii_alphabetic() {
                run_at = i + 1;
            } else if i + 1 - run_at > best_len {
                best_at = run_at;
                best_len = i + 1 - run_at;
            }
        }
        let anchor = (best_len >= MIN_ANCHOR).then(|| {
            memchr::memmem::Finder::new(&authority[best_at..best_at + best_len]).into_owned()
        });
        HostNeedle {
            authority,
            anchor_at: best_at,
            anchor,
        }
    }

    /// Whether the authority occurs in `haystack`, ASCII case-insensitively.
    fn occurs_in(&self, haystack: &[u8]) -> bool {
        let Some(anchor) = &self.anchor else {
            return contains_ignore_ascii_case(haystack, &self.authority);
        };
        let len = self.authority.len();
        anchor.find_iter(haystack).any(|hit| {
            hit >= self.anchor_at && {
                let start = hit - self.anchor_at;
                start + len <= haystack.len()
                    && haystack[start..start + len].eq_ignore_ascii_case(&self.authority)
            }
        })
    }
}

impl UrlMap {
    /// Builds the map, leaving out triples whose upstream or public base does not parse
    /// (use [`UrlMap::try_new`] to be told about them).
    pub fn new<'a>(pairs: impl IntoIterator<Item = (ServiceKind, &'a str, &'a str)>) -> UrlMap {
        let mappings = pairs
            .into_iter()
            .filter_map(|(kind, upstream, public)| {
                Some(Mapping {
                    kind,
                    upstream: BaseUrl::parse(upstream).ok()?,
                    public: BaseUrl::parse(public).ok()?,
                })
            })
            .collect();
        UrlMap::from_mappings(mappings)
    }

    /// Builds the map; fails on the first base that does not parse.
    pub fn try_new<'a>(
        pairs: impl IntoIterator<Item = (ServiceKind, &'a str, &'a str)>,
    ) -> Result<UrlMap, BaseUrlError> {
        let mut mappings = Vec::new();
        for (kind, upstream, public) in pairs {
            mappings.push(Mapping {
                kind,
                upstream: BaseUrl::parse(upstream)?,
                public: BaseUrl::parse(public)?,
            });
        }
        Ok(UrlMap::from_mappings(mappings))
    }

    fn from_mappings(mut mappings: Vec<Mapping>) -> UrlMap {
        // Stable: among equally long prefixes the first configured wins.
        mappings.sort_by_key(|m| std::cmp::Reverse(m.upstream.path().len()));
        let mut hosts: Vec<HostNeedle> = Vec::new();
        for m in &mappings {
            let authority = authority_of(m.upstream.as_str());
            if !hosts.iter().any(|h| h.authority == authority) {
                hosts.push(HostNeedle::new(authority));
            }
        }
        let longest_host = hosts.iter().map(|h| h.authority.len()).max().unwrap_or(0);
        UrlMap {
            mappings,
            hosts,
            longest_host,
        }
    }

    /// True when the map has no mapping.
    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    /// The service whose upstream base `url` lies under (longest prefix), if any.
    pub fn kind_of(&self, url: &str) -> Option<ServiceKind> {
        self.find(url).map(|(m, _)| m.kind)
    }

    /// The public URL for `url` if it lies under an upstream base: the public base followed
    /// by the rest of `url` (path, query, fragment). The longest matching prefix wins.
    pub fn rewrite_url(&self, url: &str) -> Option<String> {
        let (mapping, suffix) = self.find(url)?;
        Some(format!("{}{}", mapping.public.as_str(), suffix))
    }

    fn find<'u>(&self, url: &'u str) -> Option<(&Mapping, &'u str)> {
        self.mappings
            .iter()
            .find_map(|m| m.upstream.suffix_of(url).map(|suffix| (m, suffix)))
    }

    /// Rewrites, anywhere in `value`, every string that [`UrlMap::rewrite_url`] matches;
    /// returns how many strings changed. Object keys are left alone. Walks with an explicit
    /// stack, so the depth of the document does not matter.
    pub fn rewrite_json_links(&self, value: &mut Value) -> usize {
        if self.mappings.is_empty() {
            return 0;
        }
        let mut changed = 0;
        let mut stack = vec![value];
        while let Some(value) = stack.pop() {
            match value {
                Value::String(s) => {
                    if let Some(new) = self.rewrite_url(s) {
                        if new != *s {
                            *s = new;
                            changed += 1;
                        }
                    }
                }
                Value::Array(items) => stack.extend(items.iter_mut()),
                Value::Object(map) => stack.extend(map.values_mut()),
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
        changed
    }

    /// A cheap pre-check on a raw body: false only if no upstream URL can occur in it, so
    /// that the caller may skip parsing. Looks for any upstream authority (`host[:port]`),
    /// ASCII case-insensitively; an authority has no `/`, so this also finds URLs written
    /// with JSON's `\/` escape. (A host spelt with `\u` escapes is not found; no real
    /// service writes one.) Runs at memchr speed: the body of every JSON response passes
    /// here.
    pub fn contains_upstream(&self, bytes: &[u8]) -> bool {
        self.hosts.iter().any(|host| host.occurs_in(bytes))
    }

    /// [`UrlMap::contains_upstream`] for a body that arrives in chunks: feed each chunk to
    /// the returned scanner as it comes.
    pub fn scanner(&self) -> UpstreamScan<'_> {
        UpstreamScan {
            map: self,
            tail: Vec::new(),
            found: false,
        }
    }
}

/// The chunked form of [`UrlMap::contains_upstream`]: after the chunks of a body have been
/// fed in order, [`UpstreamScan::found`] is what `contains_upstream` says of their
/// concatenation. An authority split across chunks is found too: the scanner keeps the last
/// `longest authority - 1` bytes and checks them joined with the start of the next chunk.
#[derive(Debug)]
pub struct UpstreamScan<'m> {
    map: &'m UrlMap,
    /// The last bytes seen (at most `longest_host - 1`).
    tail: Vec<u8>,
    found: bool,
}

impl UpstreamScan<'_> {
    /// Scans the next chunk; returns [`UpstreamScan::found`]. Once something is found, later
    /// chunks are not looked at.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        let keep = self.map.longest_host.saturating_sub(1);
        if self.found || self.map.hosts.is_empty() || chunk.is_empty() {
            return self.found;
        }
        if !self.tail.is_empty() {
            // Every occurrence that starts in the tail and ends in this chunk lies within
            // the tail plus the chunk's first `keep` bytes.
            let tail_len = self.tail.len();
            self.tail.extend_from_slice(&chunk[..chunk.len().min(keep)]);
            self.found = self.map.contains_upstream(&self.tail);
            self.tail.truncate(tail_len);
        }
        self.found = self.found || self.map.contains_upstream(chunk);
        if chunk.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
        self.found
    }

    /// Whether an upstream authority occurred in the chunks fed so far.
    pub fn found(&self) -> bool {
        self.found
    }
}

/// The lowercase authority (`host[:port]`) of an absolute base URL.
fn authority_of(url: &str) -> Vec<u8> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Drop user info, as URLs in bodies never carry it.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    authority.to_ascii_lowercase().into_bytes()
}

/// Whether `haystack` contains `needle` (given in lowercase), ASCII case-insensitively.
/// Candidate positions come from a SIMD scan for the first byte in either case.
fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    if needle.len() > haystack.len() {
        return false;
    }
    let last_start = haystack.len() - needle.len();
    let matches_at =
        |i: usize| i <= last_start && haystack[i..i + needle.len()].eq_ignore_ascii_case(needle);
    let upper = first.to_ascii_uppercase();
    if upper == first {
        memchr::memchr_iter(first, haystack).any(matches_at)
    } else {
        memchr::memchr2_iter(first, upper, haystack).any(matches_at)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pre_check_needs_the_authority_not_just_the_host() {
        let m = UrlMap::new([(
            ServiceKind::Compute,
            "http://127.0.0.1:18080",
            "http://gw:8774",
        )]);
        assert!(!m.contains_upstream(br#"{"href": "http://127.0.0.1/v2.1/flavors/1"}"#));
        assert!(m.contains_upstream(br#"{"href": "http://127.0.0.1:18080/v2.1/flavors/1"}"#));
        assert!(m.contains_upstream(br#"{"href": "http:\/\/127.0.0.1:18080\/v2.1"}"#));
        let named = UrlMap::new([(
            ServiceKind::Compute,
            "http://Nova.Example:8774",
            "http://gw:8774",
        )]);
        assert!(named.contains_upstream(b"see HTTP://NOVA.EXAMPLE:8774/v2.1"));
        assert!(!named.contains_upstream(b"nova.example:8775"));
    }

    fn map() -> UrlMap {
        UrlMap::new([
            (
                ServiceKind::Compute,
                "http://10.0.0.5:8774",
                "https://cloud.example.com:8774",
            ),
            (
                ServiceKind::Compute,
                "http://10.1.0.5:8774/",
                "https://cloud.example.com:8774/",
            ),
            (ServiceKind::Identity, "http://10.0.0.6", "http://gw:8080/"),
            (
                ServiceKind::Image,
                "http://10.0.0.6/image",
                "http://gw:8080/image",
            ),
            (
                ServiceKind::Network,
                "http://10.0.0.6/image/nested",
                "http://gw:8080/nested",
            ),
            (ServiceKind::Network, "not a url", "http://gw:9696"),
        ])
    }

    #[test]
    fn rewrite_url_table() {
        let m = map();
        let table = [
            (
                "http://10.0.0.5:8774/v2.1/servers/x?marker=y",
                Some("https://cloud.example.com:8774/v2.1/servers/x?marker=y"),
            ),
            (
                "http://10.1.0.5:8774/v2.1/",
                Some("https://cloud.example.com:8774/v2.1/"),
            ),
            (
                "http://10.0.0.5:8774",
                Some("https://cloud.example.com:8774"),
            ),
            ("http://10.0.0.5:87741/v2.1", None),
            (
                "http://10.0.0.6/v3/projects",
                Some("http://gw:8080/v3/projects"),
            ),
            ("http://10.0.0.6:80/v3", Some("http://gw:8080/v3")),
            // Longest prefix: /image before the root, /image/nested before /image.
            (
                "http://10.0.0.6/image/v2/images?limit=1",
                Some("http://gw:8080/image/v2/images?limit=1"),
            ),
            (
                "http://10.0.0.6/image/nested/x",
                Some("http://gw:8080/nested/x"),
            ),
            // Not at a boundary: falls back to the root base.
            ("http://10.0.0.6/imagery", Some("http://gw:8080/imagery")),
            ("/v2/schemas/image", None),
            ("https://10.0.0.6/v3", None),
            ("ACTIVE", None),
        ];
        for (url, want) in table {
            assert_eq!(m.rewrite_url(url).as_deref(), want, "{url}");
        }
        assert_eq!(
            m.kind_of("http://10.0.0.6/image/v2"),
            Some(ServiceKind::Image)
        );
        assert_eq!(m.kind_of("http://10.0.0.7/"), None);
    }

    #[test]
    fn try_new_reports_bad_base() {
        let err =
            UrlMap::try_new([(ServiceKind::Compute, "10.0.0.5:8774", "http://gw")]).unwrap_err();
        assert_eq!(err.kind(), "not_absolute");
        assert!(UrlMap::try_new([(ServiceKind::Compute, "http://a", "http://gw")]).is_ok());
    }

    #[test]
    fn json_links_everywhere() {
        let m = map();
        let mut doc = json!({
            "server": {
                "id": "x",
                "links": [
                    {"rel": "self", "href": "http://10.0.0.5:8774/v2.1/servers/x"},
                    {"rel": "bookmark", "href": "http://10.0.0.5:8774/servers/x"}
                ],
                "name": "http://10.0.0.5:8774 is kept only when it is the whole string?"
            },
            "servers_links": [{"rel": "next", "href": "http://10.1.0.5:8774/v2.1/servers?marker=x"}],
            "next": "/v2/images?marker=y",
            "first": "http://10.0.0.6/image/v2/images",
            "http://10.0.0.5:8774/key": 1
        });
        assert_eq!(m.rewrite_json_links(&mut doc), 4);
        assert_eq!(
            doc["server"]["links"][0]["href"],
            "https://cloud.example.com:8774/v2.1/servers/x"
        );
        assert_eq!(
            doc["servers_links"][0]["href"],
            "https://cloud.example.com:8774/v2.1/servers?marker=x"
        );
        assert_eq!(doc["first"], "http://gw:8080/image/v2/images");
        assert_eq!(doc["next"], "/v2/images?marker=y");
        // Text that merely mentions an upstream does not start with a URL at a boundary.
        assert_eq!(
            doc["server"]["name"],
            "http://10.0.0.5:8774 is kept only when it is the whole string?"
        );
        assert!(doc.get("http://10.0.0.5:8774/key").is_some());
        // Idempotent.
        assert_eq!(m.rewrite_json_links(&mut doc), 0);
    }

    #[test]
    fn deep_documents_do_not_overflow() {
        let m = map();
        let mut doc = Value::String("http://10.0.0.5:8774/v2.1".into());
        for _ in 0..100_000 {
            doc = Value::Array(vec![doc]);
        }
        assert_eq!(m.rewrite_json_links(&mut doc), 1);
        // Drop iteratively too: serde_json's recursive drop would overflow the stack.
        let mut stack = vec![doc];
        while let Some(v) = stack.pop() {
            if let Value::Array(items) = v {
                stack.extend(items);
            }
        }
    }

    #[test]
    fn pre_check() {
        let m = map();
        assert!(m.contains_upstream(br#"{"href": "http://10.0.0.5:8774/v2.1"}"#));
        assert!(m.contains_upstream(br#"{"href": "http:\/\/10.0.0.6\/v3"}"#));
        assert!(m.contains_upstream(b"HTTP://10.1.0.5:8774"));
        assert!(!m.contains_upstream(br#"{"href": "https://cloud.example.com:8774/v2.1"}"#));
        assert!(!m.contains_upstream(b""));
        assert!(!m.contains_upstream(b"10.0.0"));
        assert!(!UrlMap::default().contains_upstream(b"http://10.0.0.5:8774"));
        let upper = UrlMap::new([(ServiceKind::Compute, "http://Nova.Local:8774", "http://gw")]);
        assert!(upper.contains_upstream(b"\"http://nova.LOCAL:8774/v2.1\""));
    }

    #[test]
    fn anchors_are_letter_free_runs() {
        let ip = HostNeedle::new(b"10.0.0.5:8774".to_vec());
        assert_eq!((ip.anchor_at, ip.anchor.is_some()), (0, true));
        let named = HostNeedle::new(b"nova.example:8774".to_vec());
        assert_eq!(named.anchor_at, 12, "the port");
        assert!(named.occurs_in(b"x NOVA.Example:8774/v2.1"));
        assert!(!named.occurs_in(b"x nova.exampl:8774 :8774 a.example:8774"));
        let bare = HostNeedle::new(b"keystone".to_vec());
        assert!(bare.anchor.is_none());
        assert!(bare.occurs_in(b"http://KeyStone/v3"));
        // An anchor hit too close to the start to hold the whole authority.
        assert!(!named.occurs_in(b":8774"));
    }

    /// Feeds `body` to a scanner in pieces cut at `cuts`.
    fn scan_in_pieces(m: &UrlMap, body: &[u8], cuts: &[usize]) -> bool {
        let mut scan = m.scanner();
        let mut at = 0;
        for &cut in cuts.iter().chain([&body.len()]) {
            let cut = cut.clamp(at, body.len());
            scan.feed(&body[at..cut]);
            at = cut;
        }
        scan.found()
    }

    #[test]
    fn scanner_finds_an_authority_split_across_chunks() {
        let m = map();
        let body = br#"{"href": "http://10.0.0.5:8774/v2.1"}"#;
        let start = body.windows(4).position(|w| w == b"10.0").unwrap();
        // Every single cut, and one byte per chunk.
        for cut in 0..=body.len() {
            assert!(scan_in_pieces(&m, body, &[cut]), "cut at {cut}");
        }
        let every_byte: Vec<usize> = (1..body.len()).collect();
        assert!(scan_in_pieces(&m, body, &every_byte));
        // Cut inside the authority: "10.0.0" | ".5:8774".
        let mut scan = m.scanner();
        assert!(!scan.feed(&body[..start + 6]));
        assert!(scan.feed(&body[start + 6..]));
        // No authority, however it is cut.
        let clean = br#"{"href": "http://10.0.0.7:8774/v2.1", "x": "10.0.0.5:877"}"#;
        for cut in 0..=clean.len() {
            assert!(!scan_in_pieces(&m, clean, &[cut]), "cut at {cut}");
        }
        assert!(!scan_in_pieces(&UrlMap::default(), body, &[3]));
    }

    proptest::proptest! {
        /// Chunked scanning agrees with scanning the whole body, wherever it is cut.
        #[test]
        fn scanner_agrees_with_whole_body(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::string::string_regex("[a-z0-9.:/\\\" ]{0,12}").unwrap(),
                    proptest::sample::select(vec![
                        "10.0.0.5:8774".to_string(),
                        "10.0.0.6".to_string(),
                        "NOVA.example:8774".to_string(),
                        "nova.example:877".to_string(),
                        "10.1.0.".to_string(),
                        "5:8774".to_string(),
                    ]),
                ],
                0..12,
            ),
            cuts in proptest::collection::vec(0usize..120, 0..8),
        ) {
            let m = UrlMap::new([
                (ServiceKind::Compute, "http://10.1.0.5:8774", "http://gw:1"),
                (ServiceKind::Image, "http://nova.example:8774/image", "http://gw:2"),
                (ServiceKind::Identity, "http://10.0.0.6:5000", "http://gw:3"),
            ]);
            let body = pieces.concat();
            let mut cuts = cuts;
            cuts.sort_unstable();
            proptest::prop_assert_eq!(
                scan_in_pieces(&m, body.as_bytes(), &cuts),
                m.contains_upstream(body.as_bytes())
            );
        }
    }

    #[test]
    fn contains_ignore_case() {
        assert!(contains_ignore_ascii_case(b"abcDEF", b"cde"));
        assert!(!contains_ignore_ascii_case(b"ab", b"abc"));
        assert!(contains_ignore_ascii_case(b"", b""));
    }
}
