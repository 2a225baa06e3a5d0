//! Base URLs (`scheme://authority[/path]`) and prefix matching of absolute URLs against them.
//!
//! Matching rules, shared by link and catalog rewriting:
//! - scheme and authority compare ASCII case-insensitively, and an explicit default port
//!   (`:80` for http, `:443` for https) equals no port;
//! - the path compares exactly, and must end at a boundary of the URL: the next character
//!   is `/`, `?`, `#`, or the end (`/compute` matches `/compute/v2.1`, not `/computer`);
//! - a base's trailing `/` is not significant.
//!
//! Nothing here allocates while matching; nothing panics on any input.

use std::fmt;

/// Why a string is not a usable base URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    /// No `scheme://` prefix.
    #[error("base URL {0:?} is not absolute (expected scheme://host[:port][/path])")]
    NotAbsolute(String),
    /// Empty host.
    #[error("base URL {0:?} has no host")]
    NoHost(String),
    /// A query or fragment, which a base cannot carry.
    #[error("base URL {0:?} must not have a query or fragment")]
    QueryOrFragment(String),
}

impl BaseUrlError {
    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            BaseUrlError::NotAbsolute(_) => "not_absolute",
            BaseUrlError::NoHost(_) => "no_host",
            BaseUrlError::QueryOrFragment(_) => "query_or_fragment",
        }
    }
}

/// A parsed base URL: where a service's API lives, e.g. `http://10.0.0.5:8774` or
/// `http://10.0.0.5/compute`.
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// As given, without trailing `/`.
    text: String,
    /// Lowercase scheme.
    scheme: String,
    /// Lowercase authority, default port removed.
    authority: String,
    /// Lowercase host (no user info, no port), for the byte pre-check.
    host: String,
    /// Path without trailing `/`; empty for the root.
    path: String,
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BaseUrl").field(&self.text).finish()
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl BaseUrl {
    /// Parses `scheme://authority[/path]`; a trailing `/` is dropped.
    pub fn parse(text: &str) -> Result<BaseUrl, BaseUrlError> {
        let parts = split(text).ok_or_else(|| BaseUrlError::NotAbsolute(text.to_owned()))?;
        if parts.rest.contains(['?', '#']) {
            return Err(BaseUrlError::QueryOrFragment(text.to_owned()));
        }
        let path = parts.rest.trim_end_matches('/');
        let trimmed = text
            .get(..text.len() - (parts.rest.len() - path.len()))
            .unwrap_or(text);
        let authority = normalize_authority(parts.scheme, parts.authority);
        let host = host_of(&authority);
        if host.is_empty() {
            return Err(BaseUrlError::NoHost(text.to_owned()));
        }
        Ok(BaseUrl {
            text: trimmed.to_owned(),
            scheme: parts.scheme.to_ascii_lowercase(),
            host: host.to_owned(),
            authority,
            path: path.to_owned(),
        })
    }

    /// The base as configured, without trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The lowercase host, without user info or port.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path, without trailing `/` (empty for a base at the root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// If `url` lies under this base, the part of `url` after it: `""`, or a string that
    /// starts with `/`, `?` or `#`. `http://h/compute` gives `url`
    /// `http://H:80/compute/v2.1?x=1` the suffix `/v2.1?x=1`.
    pub fn suffix_of<'u>(&self, url: &'u str) -> Option<&'u str> {
        let parts = split(url)?;
        if !parts.scheme.eq_ignore_ascii_case(&self.scheme)
            || !strip_default_port(parts.scheme, parts.authority)
                .eq_ignore_ascii_case(&self.authority)
        {
            return None;
        }
        let rest = parts.rest.strip_prefix(self.path.as_str())?;
        match rest.bytes().next() {
            None | Some(b'/' | b'?' | b'#') => Some(rest),
            Some(_) => None,
        }
    }
}

/// An absolute URL cut in three, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UrlParts<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) authority: &'a str,
    /// Path, query and fragment: empty or starting with `/`, `?` or `#`.
    pub(crate) rest: &'a str,
}

/// Splits `scheme://authority rest`; `None` unless the scheme is a valid one
/// (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`).
pub(crate) fn split(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, after) = url.split_once("://")?;
    let mut bytes = scheme.bytes();
    if !bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        || !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    Some(UrlParts {
        scheme,
        authority,
        rest,
    })
}

/// The authority without an explicit default port (or an empty port) for `scheme`.
fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let Some((host, port)) = authority.rsplit_once(':') else {
        return authority;
    };
    // `[::1]` has colons but no port.
    if port.contains(']') || !port.bytes().all(|b| b.is_ascii_digit()) {
        return authority;
    }
    let default = if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    };
    match port.parse::<u16>() {
        _ if port.is_empty() => host,
        Ok(p) if Some(p) == default => host,
        _ => authority,
    }
}

fn normalize_authority(scheme: &str, authority: &str) -> String {
    strip_default_port(scheme, authority).to_ascii_lowercase()
}

/// The host of a normalized authority: no `user@`, no `:port`.
fn host_of(authority: &str) -> &str {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        return host_port.find(']').map_or(host_port, |i| &host_port[..=i]);
    }
    host_port.split_once(':').map_or(host_port, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalizes() {
        let b = BaseUrl::parse("HTTP://Cloud.Example.com:80/compute/").unwrap();
        assert_eq!(b.as_str(), "HTTP://Cloud.Example.com:80/compute");
        assert_eq!(b.host(), "cloud.example.com");
        assert_eq!(b.path(), "/compute");
        let b = BaseUrl::parse("https://[::1]:8774").unwrap();
        assert_eq!(b.host(), "[::1]");
        assert_eq!(b.path(), "");
        let b = BaseUrl::parse("https://admin:pw@10.0.0.5:443").unwrap();
        assert_eq!(b.host(), "10.0.0.5");
    }

    #[test]
    fn parse_rejects() {
        let table = [
            ("", "not_absolute"),
            ("10.0.0.5:8774", "not_absolute"),
            ("//10.0.0.5", "not_absolute"),
            ("1http://x", "not_absolute"),
            ("http://", "no_host"),
            ("http:///compute", "no_host"),
            ("http://h:8774?x", "query_or_fragment"),
            ("http://h/p#f", "query_or_fragment"),
        ];
        for (text, kind) in table {
            assert_eq!(BaseUrl::parse(text).unwrap_err().kind(), kind, "{text:?}");
        }
    }

    #[test]
    fn suffix_table() {
        let table = [
            ("http://10.0.0.5:8774", "http://10.0.0.5:8774", Some("")),
            ("http://10.0.0.5:8774", "http://10.0.0.5:8774/", Some("/")),
            (
                "http://10.0.0.5:8774",
                "http://10.0.0.5:8774/v2.1/servers?marker=y",
                Some("/v2.1/servers?marker=y"),
            ),
            (
                "http://10.0.0.5:8774",
                "http://10.0.0.5:8774?x=1",
                Some("?x=1"),
            ),
            (
                "http://10.0.0.5:8774",
                "http://10.0.0.5:8774#top",
                Some("#top"),
            ),
            (
                "http://10.0.0.5:8774",
                "HTTP://10.0.0.5:8774/v2.1",
                Some("/v2.1"),
            ),
            ("http://h.example", "http://H.EXAMPLE/x", Some("/x")),
            ("http://10.0.0.5:8774", "http://10.0.0.5:87740/v2.1", None),
            ("http://10.0.0.5:8774", "http://10.0.0.50:8774/v2.1", None),
            ("http://10.0.0.5:8774", "https://10.0.0.5:8774/v2.1", None),
            (
                "http://10.0.0.5/compute",
                "http://10.0.0.5/compute/v2.1",
                Some("/v2.1"),
            ),
            (
                "http://10.0.0.5/compute",
                "http://10.0.0.5:80/compute",
                Some(""),
            ),
            (
                "http://10.0.0.5:80/compute",
                "http://10.0.0.5/compute/",
                Some("/"),
            ),
            ("https://h:443", "https://h/v3", Some("/v3")),
            ("https://h", "https://h:443/v3", Some("/v3")),
            ("https://h", "https://h:/v3", Some("/v3")),
            ("https://h", "https://h:80/v3", None),
            ("http://10.0.0.5/compute", "http://10.0.0.5/computer", None),
            (
                "http://10.0.0.5/compute",
                "http://10.0.0.5/Compute/v2.1",
                None,
            ),
            ("http://10.0.0.5/compute", "http://10.0.0.5/", None),
            ("http://10.0.0.5/compute", "http://10.0.0.5", None),
            ("http://[::1]:8774", "http://[::1]:8774/v2.1", Some("/v2.1")),
            ("http://[::1]", "http://[::1]:80/v2.1", Some("/v2.1")),
            ("http://10.0.0.5", "10.0.0.5/v2.1", None),
            ("http://10.0.0.5", "", None),
            ("http://10.0.0.5", "http://10.0.0.5@evil.example/", None),
            ("http://10.0.0.5/é", "http://10.0.0.5/é/x", Some("/x")),
        ];
        for (base, url, want) in table {
            let base = BaseUrl::parse(base).unwrap();
            assert_eq!(base.suffix_of(url), want, "{base} vs {url}");
        }
    }
}
