//! Response rewriting, so that clients never leave the gateway: the Keystone catalog,
//! version documents, `*_links`/`next` URLs and `Location` headers.
//!
//! The URL logic is pure and lives in `drgw-catalog`; this module adapts it to HTTP
//! bodies: bounded buffering, gzip/deflate decoding, a fast pre-check that skips JSON
//! parsing when no upstream URL occurs in a body, and `Content-Length` after a change.

use std::io::Read;

use bytes::Bytes;
use drgw_catalog::{CatalogTarget, EndpointServices, ServiceKind, UrlMap};
use http::header::{self, HeaderMap};
use http_body::Body;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::body::{BoxError, ProxyBody};
use crate::config::{CatalogMode, Config, SiteName};
use crate::operation::Service;

/// Maps a gateway service to the catalog crate's kind.
pub fn kind(service: Service) -> ServiceKind {
    match service {
        Service::Identity => ServiceKind::Identity,
        Service::Compute => ServiceKind::Compute,
        Service::Network => ServiceKind::Network,
        Service::BlockStorage => ServiceKind::BlockStorage,
        Service::Image => ServiceKind::Image,
    }
}

/// The URL rewriting rules while one site is active.
pub struct Rewriter {
    /// Upstream base URLs of BOTH sites, and their aliases (`[sites.NAME.aliases]`) → the
    /// gateway's public URLs (links in bodies).
    links: UrlMap,
    /// The same, one map per service (in `Service::ALL` order): a service's own links are
    /// rewritten with its own mapping first, which matters when several services share an
    /// upstream base URL.
    per_service: Vec<UrlMap>,
    /// Where catalog entries point (routed: the gateway; direct: the active site).
    catalog: CatalogTarget,
    /// Direct mode: catalog bodies keep the active site's URLs, so only identity links in
    /// them are pointed at the gateway.
    direct: bool,
}

impl Rewriter {
    pub fn new(config: &Config, active: SiteName) -> Rewriter {
        let mut pairs = Vec::new();
        for site in [active, other(active)] {
            for service in Service::ALL {
                if let Some(public) = config.service_listener(service) {
                    for name in config.site(site).names_of(service) {
                        pairs.push((kind(service), name.to_string(), public.public_url.clone()));
                    }
                }
            }
        }
        let links = UrlMap::new(pairs.iter().map(|(k, u, p)| (*k, u.as_str(), p.as_str())));
        let per_service = Service::ALL
            .iter()
            .map(|s| {
                UrlMap::new(
                    pairs
                        .iter()
                        .filter(|(k, _, _)| *k == kind(*s))
                        .map(|(k, u, p)| (*k, u.as_str(), p.as_str())),
                )
            })
            .collect();
        let mut target_bases = Vec::new();
        for service in Service::ALL {
            let public = config
                .service_listener(service)
                .map(|s| s.public_url.clone())
                .unwrap_or_default();
            let base = match (config.catalog_mode, service) {
                (CatalogMode::Routed, _) | (CatalogMode::Direct, Service::Identity) => public,
                (CatalogMode::Direct, _) => config.site(active).endpoint(service).to_string(),
            };
            let known: Vec<String> = SiteName::ALL
                .iter()
                .flat_map(|s| config.site(*s).names_of(service))
                .map(str::to_string)
                .collect();
            target_bases.push((kind(service), base, known));
        }
        let mut catalog = CatalogTarget::new(target_bases);
        // Tenants' clients name the primary's region; the recovery Keystone names its own.
        if let Some(region) = config.site(SiteName::Primary).region.as_deref() {
            let active_region = config.site(active).region.as_deref();
            if active != SiteName::Primary && active_region != Some(region) {
                catalog = catalog.with_region(active_region, region);
            }
        }
        Rewriter {
            links,
            per_service,
            catalog,
            direct: config.catalog_mode == CatalogMode::Direct,
        }
    }

    fn own(&self, service: Service) -> &UrlMap {
        let index = Service::ALL.iter().position(|s| *s == service).unwrap_or(0);
        &self.per_service[index]
    }

    /// The public URL for an upstream URL in a response of `service`, if it is one.
    pub fn rewrite_url(&self, service: Service, url: &str) -> Option<String> {
        self.own(service)
            .rewrite_url(url)
            .or_else(|| self.links.rewrite_url(url))
    }

    /// A 401's `WWW-Authenticate: Keystone uri="<Keystone URL>"` (keystonemiddleware's and
    /// Keystone's own) with the gateway's Keystone URL in it, if it names an upstream.
    pub fn rewrite_www_authenticate(&self, value: &str) -> Option<String> {
        let start = value.find("uri=\"")? + 5;
        let end = start + value[start..].find('"')?;
        let new = self.rewrite_url(Service::Identity, &value[start..end])?;
        Some(format!("{}{new}{}", &value[..start], &value[end..]))
    }

    /// A scanner for upstream authorities in a body that arrives in chunks (the chunked
    /// form of the pre-check [`rewrite_body`] makes).
    pub fn scanner(&self) -> drgw_catalog::UpstreamScan<'_> {
        self.links.scanner()
    }

    /// Rewrites every upstream link in a JSON document of `service`; returns the count.
    pub fn rewrite_json_links(&self, service: Service, value: &mut Value) -> usize {
        self.own(service).rewrite_json_links(value) + self.links.rewrite_json_links(value)
    }
}

fn other(site: SiteName) -> SiteName {
    match site {
        SiteName::Primary => SiteName::Recovery,
        SiteName::Recovery => SiteName::Primary,
    }
}

/// What a JSON body needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRewrite {
    /// A token, catalog or endpoint list response: catalog entries, then links.
    Catalog,
    /// Any other JSON response: absolute upstream links.
    Links,
}

/// Result of [`rewrite_body`].
pub enum Rewritten {
    /// Nothing to change: send the original bytes.
    Unchanged,
    /// The new body; `json` is the parsed document (for token capture); `decoded` is true
    /// when a `Content-Encoding` was removed.
    Changed {
        bytes: Bytes,
        json: Value,
        decoded: bool,
    },
}

fn decode(headers: &HeaderMap, raw: &Bytes, limit: u64) -> Option<(Bytes, bool)> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let mut out = Vec::new();
    let read = match encoding {
        None | Some("") | Some("identity") => return Some((raw.clone(), false)),
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => {
            flate2::read::GzDecoder::new(&raw[..])
                .take(limit + 1)
                .read_to_end(&mut out)
        }
        Some(e) if e.eq_ignore_ascii_case("deflate") => flate2::read::ZlibDecoder::new(&raw[..])
            .take(limit + 1)
            .read_to_end(&mut out),
        Some(_) => return None,
    };
    match read {
        Ok(n) if (n as u64) <= limit => Some((Bytes::from(out), true)),
        _ => None,
    }
}

/// Rewrites a buffered JSON body. Bodies that are not valid JSON, use an unknown encoding,
/// or contain nothing to rewrite are left unchanged. An endpoint list's entries are known
/// by URL here; [`read_json`] and [`rewrite_json`] let a caller know them by service.
pub fn rewrite_body(
    headers: &HeaderMap,
    raw: Bytes,
    service: Service,
    what: BodyRewrite,
    rewriter: &Rewriter,
    limit: u64,
) -> Rewritten {
    let Some((plain, decoded)) = decode(headers, &raw, limit) else {
        return Rewritten::Unchanged;
    };
    if what == BodyRewrite::Links && !rewriter.links.contains_upstream(&plain) {
        return Rewritten::Unchanged;
    }
    let Ok(json) = serde_json::from_slice::<Value>(&plain) else {
        return Rewritten::Unchanged;
    };
    rewrite_json(
        json,
        decoded,
        service,
        what,
        rewriter,
        EndpointServices::ByUrl,
    )
}

/// A buffered body decoded and parsed: the document, and whether a `Content-Encoding` was
/// removed. `None` for an unknown encoding or a body that is not JSON.
pub fn read_json(headers: &HeaderMap, raw: &Bytes, limit: u64) -> Option<(Value, bool)> {
    let (plain, decoded) = decode(headers, raw, limit)?;
    let json = serde_json::from_slice::<Value>(&plain).ok()?;
    Some((json, decoded))
}

/// [`rewrite_body`] for a document already read ([`read_json`]). `services` says how an
/// endpoint list's entries are known as compute, network, ...
pub fn rewrite_json(
    mut json: Value,
    decoded: bool,
    service: Service,
    what: BodyRewrite,
    rewriter: &Rewriter,
    services: EndpointServices<'_>,
) -> Rewritten {
    let mut changed = 0;
    if what == BodyRewrite::Catalog {
        changed +=
            drgw_catalog::rewrite_token_response(&mut json, &rewriter.catalog, services).rewritten;
    }
    changed += if what == BodyRewrite::Catalog && rewriter.direct {
        rewriter
            .own(Service::Identity)
            .rewrite_json_links(&mut json)
    } else {
        rewriter.rewrite_json_links(service, &mut json)
    };
    if changed == 0 {
        return Rewritten::Unchanged;
    }
    match serde_json::to_vec(&json) {
        Ok(bytes) => Rewritten::Changed {
            bytes: Bytes::from(bytes),
            json,
            decoded,
        },
        Err(_) => Rewritten::Unchanged,
    }
}

/// Result of [`buffer_prefix`].
pub enum Buffered {
    /// The whole body, within the limit.
    Complete(Bytes),
    /// Over the limit: a body that replays what was read, then streams the rest.
    Overflow(ProxyBody),
    /// The body broke off.
    Failed(BoxError),
}

/// Reads a body up to `limit` bytes. Beyond the limit, nothing is lost: the returned body
/// yields the buffered prefix followed by the rest of the stream.
pub async fn buffer_prefix<B>(body: B, limit: u64) -> Buffered
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    match read_chunks(body, limit, |_| {}).await {
        Ok(chunks) => Buffered::Complete(concat(chunks)),
        Err(other) => other,
    }
}

/// Result of [`read_scanning`].
pub enum Scanned {
    /// The whole body, in the chunks it arrived in; no upstream authority occurs in it, so
    /// it goes out as it came.
    Clean(Vec<Bytes>),
    /// A body to rewrite (an upstream authority occurs in it), or one over the limit or
    /// broken off, as [`buffer_prefix`] gives it.
    Rewrite(Buffered),
}

/// Reads a plain (not content-encoded) JSON body up to `limit` bytes, scanning each chunk
/// for upstream authorities as it arrives: a body without one, by far the most common, is
/// neither copied into one buffer nor parsed.
pub async fn read_scanning<B>(body: B, limit: u64, rewriter: &Rewriter) -> Scanned
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let mut scan = rewriter.scanner();
    match read_chunks(body, limit, |chunk| {
        scan.feed(chunk);
    })
    .await
    {
        Ok(chunks) if !scan.found() => Scanned::Clean(chunks),
        Ok(chunks) => Scanned::Rewrite(Buffered::Complete(concat(chunks))),
        Err(other) => Scanned::Rewrite(other),
    }
}

fn concat(mut chunks: Vec<Bytes>) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut all = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
    for c in chunks {
        all.extend_from_slice(&c);
    }
    Bytes::from(all)
}

/// Reads the data chunks of a body (trailers are dropped), showing each to `seen`; beyond
/// `limit` bytes gives up with [`Buffered::Overflow`], which loses nothing.
async fn read_chunks<B>(
    mut body: B,
    limit: u64,
    mut seen: impl FnMut(&[u8]),
) -> Result<Vec<Bytes>, Buffered>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total: u64 = 0;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => return Err(Buffered::Failed(e.into())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len() as u64;
                    seen(&data);
                    chunks.push(data);
                    if total > limit {
                        let prefix = futures_util::stream::iter(
                            chunks
                                .into_iter()
                                .map(|c| Ok::<_, BoxError>(http_body::Frame::data(c))),
                        );
                        let rest = http_body_util::BodyStream::new(body.map_err(Into::into));
                        let stream = futures_util::StreamExt::chain(prefix, rest);
                        return Err(Buffered::Overflow(crate::body::stream(
                            http_body_util::StreamBody::new(stream),
                        )));
                    }
                }
            }
        }
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn chunked(
        parts: &[&'static [u8]],
    ) -> StreamBody<impl futures_util::Stream<Item = Result<http_body::Frame<Bytes>, BoxError>>>
    {
        let frames: Vec<Result<http_body::Frame<Bytes>, BoxError>> = parts
            .iter()
            .map(|p| Ok(http_body::Frame::data(Bytes::from_static(p))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn buffers_small_bodies() {
        match buffer_prefix(chunked(&[b"ab", b"cd"]), 10).await {
            Buffered::Complete(b) => assert_eq!(&b[..], b"abcd"),
            _ => panic!("expected complete"),
        }
    }

    #[tokio::test]
    async fn overflow_replays_everything() {
        match buffer_prefix(chunked(&[b"abc", b"def", b"ghi"]), 4).await {
            Buffered::Overflow(body) => {
                let all = body.collect().await.unwrap().to_bytes();
                assert_eq!(&all[..], b"abcdefghi");
            }
            _ => panic!("expected overflow"),
        }
    }

    fn rewriter() -> Rewriter {
        let text = r#"
[gateway]
state_dir = "/tmp/drgw-rewrite-test"
[sites.primary]
identity = "http://10.0.0.1:5000"
compute = "http://10.0.0.1:8774"
network = "http://10.0.0.1:9696"
volumev3 = "http://10.0.0.1:8776"
image = "http://10.0.0.1:9292"
[sites.recovery]
identity = "http://10.9.0.1:5000"
compute = "http://10.9.0.1:8774"
network = "http://10.9.0.1:9696"
volumev3 = "http://10.9.0.1:8776"
image = "http://10.9.0.1:9292"
[listeners.shared]
listen = "127.0.0.1:8080"
public_url = "http://gw:8080"
"#;
        let config = Config::parse(text, std::path::Path::new("/")).expect("valid");
        Rewriter::new(&config, SiteName::Primary)
    }

    #[tokio::test]
    async fn clean_bodies_pass_in_their_chunks_and_dirty_ones_are_buffered() {
        let rw = rewriter();
        match read_scanning(chunked(&[b"{\"a\": ", b"\"10.0.0.1:80\"}"]), 100, &rw).await {
            Scanned::Clean(chunks) => assert_eq!(chunks.len(), 2),
            _ => panic!("expected clean"),
        }
        // The recovery site's authority, split between two chunks.
        match read_scanning(
            chunked(&[b"{\"href\": \"http://10.9.0", b".1:8774/v2.1\"}"]),
            100,
            &rw,
        )
        .await
        {
            Scanned::Rewrite(Buffered::Complete(b)) => {
                assert_eq!(&b[..], b"{\"href\": \"http://10.9.0.1:8774/v2.1\"}")
            }
            _ => panic!("expected a body to rewrite"),
        }
        match read_scanning(chunked(&[b"abc", b"def"]), 4, &rw).await {
            Scanned::Rewrite(Buffered::Overflow(body)) => {
                assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"abcdef")
            }
            _ => panic!("expected overflow"),
        }
    }

    #[test]
    fn gzip_bodies_are_decoded() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"{\"a\": 1}").unwrap();
        let gz = Bytes::from(enc.finish().unwrap());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
        let (plain, decoded) = decode(&headers, &gz, 100).unwrap();
        assert!(decoded);
        assert_eq!(&plain[..], b"{\"a\": 1}");
        assert!(decode(&headers, &gz, 3).is_none(), "over the limit");
        headers.insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("br"),
        );
        assert!(decode(&headers, &gz, 100).is_none(), "unknown encoding");
    }
}
