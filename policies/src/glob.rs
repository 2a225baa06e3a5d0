//! Precompiled globs over operation names (`compute:delete_*`, `*:create_server`, `*`).
//!
//! Operation names have the form `<service>:<action>_<resource>` (`network:delete_port`).
//! A glob uses `*` for any run of characters and `?` for one; everything else is literal.
//! Matching never allocates.

use std::fmt;

/// Services whose operations the gateway names (`volume` is Cinder, as in `volume:create_volume`).
pub const SERVICES: [&str; 5] = ["identity", "compute", "network", "volume", "image"];

/// A compiled operation-name glob.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    /// Literal pieces between `*`s; `?` inside a piece matches any one byte.
    pieces: Vec<String>,
    anchored_start: bool,
    anchored_end: bool,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Glob {
    /// Compiles an operation glob, checking it can match a real operation name.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("empty operation pattern".to_owned());
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "_:*?-".contains(*c)))
        {
            return Err(format!(
                "{pattern:?}: character {c:?} cannot appear in an operation name \
                 (use lower-case <service>:<action>_<resource>, `*` and `?`)"
            ));
        }
        if pattern != "*" {
            let Some((service, rest)) = pattern.split_once(':') else {
                return Err(format!(
                    "{pattern:?}: expected <service>:<action>_<resource>, e.g. \"compute:delete_*\""
                ));
            };
            if rest.contains(':') {
                return Err(format!("{pattern:?}: more than one ':'"));
            }
            if rest.is_empty() {
                return Err(format!(
                    "{pattern:?}: nothing after ':' (use \"{service}:*\")"
                ));
            }
            if !service.contains(['*', '?']) && !SERVICES.contains(&service) {
                return Err(format!(
                    "{pattern:?}: unknown service {service:?} (one of {})",
                    SERVICES.join(", ")
                ));
            }
        }
        let pieces: Vec<String> = pattern
            .split('*')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Glob {
            source: pattern.to_owned(),
            pieces,
            anchored_start: !pattern.starts_with('*'),
            anchored_end: !pattern.ends_with('*'),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.as_bytes();
        let n = self.pieces.len();
        if n == 0 {
            // Only `*`s: matches anything.
            return !self.anchored_start || name.is_empty();
        }
        let mut pos = 0;
        for (i, piece) in self.pieces.iter().enumerate() {
            let piece = piece.as_bytes();
            let first = i == 0;
            let last = i == n - 1;
            if first && self.anchored_start {
                if !piece_at(name, 0, piece) {
                    return false;
                }
                pos = piece.len();
                if last && self.anchored_end {
                    return pos == name.len();
                }
                continue;
            }
            if last && self.anchored_end {
                // The last piece must sit at the very end, after `pos`.
                return name.len() >= pos + piece.len()
                    && piece_at(name, name.len() - piece.len(), piece);
            }
            match find_piece(name, pos, piece) {
                Some(at) => pos = at + piece.len(),
                None => return false,
            }
        }
        // Unanchored end: anything may follow.
        true
    }
}

fn piece_at(name: &[u8], at: usize, piece: &[u8]) -> bool {
    name.len() >= at + piece.len()
        && name[at..at + piece.len()]
            .iter()
            .zip(piece)
            .all(|(c, p)| *p == b'?' || c == p)
}

fn find_piece(name: &[u8], from: usize, piece: &[u8]) -> Option<usize> {
    (from..=name.len().checked_sub(piece.len())?).find(|&at| piece_at(name, at, piece))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "compute:delete_server", true),
            ("compute:delete_*", "compute:delete_server", true),
            ("compute:delete_*", "compute:delete_server_tag", true),
            ("compute:delete_*", "compute:create_server", false),
            ("compute:delete_*", "network:delete_port", false),
            ("*:delete_*", "network:delete_port", true),
            ("*:create_server", "compute:create_server", true),
            ("*:create_server", "compute:create_server_group", false),
            ("compute:create_server", "compute:create_server", true),
            ("compute:create_server", "compute:create_serve", false),
            ("compute:*_server", "compute:update_server", true),
            ("compute:*_server", "compute:update_server_tag", false),
            ("volume:*_volume*", "volume:update_volume_metadata", true),
            ("network:?elete_port", "network:delete_port", true),
            ("*:*", "image:read_image", true),
            ("image:*a*a*", "image:update_image_data", true),
            ("image:*a*a*", "image:read_x", false),
            ("compute:delete_*_*_tag", "compute:delete_server_tag", false),
            ("compute:delete_*_tag", "compute:delete_server_tag", true),
            ("compute:*delete*", "compute:delete", true),
        ];
        for (pattern, name, want) in cases {
            let glob = Glob::new(pattern).unwrap();
            assert_eq!(glob.matches(name), *want, "{pattern} ~ {name}");
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        for pattern in [
            "",
            "compute",
            "Compute:delete_*",
            "compute:delete server",
            "nova:delete_*",
            "compute:",
            "a:b:c",
            "compute:[abc]",
        ] {
            assert!(Glob::new(pattern).is_err(), "{pattern:?}");
        }
    }
}
