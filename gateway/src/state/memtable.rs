//! The embedded backend's table of recent writes: what commits wrote since the state file
//! last received them, layered over the state file for every read.
//!
//! Two layers: `active` takes each commit's writes; `frozen`, when present, is the previous
//! active layer, being written to the state file by the flusher. A read looks in `active`,
//! then `frozen`, then the state file; the first that holds the key decides, and a removal
//! ([`Slot`] `None`) hides the older layers' value.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

/// A key's stored bytes (`version ‖ value`, as in the state file), or `None`: removed.
pub type Slot = Option<Vec<u8>>;

/// Writes of a run of consecutive commits, the newest per key.
#[derive(Debug, Default)]
pub struct Layer {
    tables: BTreeMap<&'static str, BTreeMap<Vec<u8>, Slot>>,
    /// Key and value bytes held (an estimate of the memory used).
    bytes: usize,
    /// The revision of the last commit in the layer (0: none).
    pub revision: u64,
    /// When the first commit in the layer was made.
    pub since: Option<Instant>,
}

impl Layer {
    /// Records `slot` at `key` of `table`, written by the commit of `revision`.
    pub fn insert(&mut self, table: &'static str, key: Vec<u8>, slot: Slot, revision: u64) {
        self.bytes += key.len() + slot.as_ref().map_or(0, Vec::len);
        self.tables.entry(table).or_default().insert(key, slot);
        self.revision = revision;
        self.since.get_or_insert_with(Instant::now);
    }

    /// The slot of `key`, if this layer wrote it.
    pub fn get(&self, table: &str, key: &[u8]) -> Option<&Slot> {
        self.tables.get(table)?.get(key)
    }

    /// The keys with `prefix` from `from` on (inclusive), in key order.
    pub fn range<'a>(
        &'a self,
        table: &str,
        prefix: &'a [u8],
        from: &'a [u8],
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Slot)> + 'a {
        self.tables
            .get(table)
            .into_iter()
            .flat_map(move |t| t.range::<[u8], _>((Bound::Included(from), Bound::Unbounded)))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Every table's writes, for the flush to the state file.
    pub fn tables(&self) -> impl Iterator<Item = (&'static str, &BTreeMap<Vec<u8>, Slot>)> {
        self.tables.iter().map(|(t, m)| (*t, m))
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// No writes.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

/// The two layers.
#[derive(Debug, Default)]
pub struct Memtable {
    pub active: Layer,
    pub frozen: Option<Arc<Layer>>,
}

impl Memtable {
    /// The newest slot of `key` held in memory (`None`: the state file decides).
    pub fn get(&self, table: &str, key: &[u8]) -> Option<Slot> {
        self.active
            .get(table, key)
            .or_else(|| self.frozen.as_ref().and_then(|f| f.get(table, key)))
            .cloned()
    }

    /// The keys with `prefix` from `from` on, newest slot per key, in key order, up to
    /// `limit` present ones (the removals among them are included and not counted): a scan
    /// of at most `limit` results needs no key of memory past those.
    pub fn range(
        &self,
        table: &str,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Vec<(Vec<u8>, Slot)> {
        let mut out = Vec::new();
        let mut present = 0;
        let mut active = self.active.range(table, prefix, from).peekable();
        let mut frozen = self
            .frozen
            .as_deref()
            .into_iter()
            .flat_map(|f| f.range(table, prefix, from))
            .peekable();
        while present < limit {
            let next = match (active.peek(), frozen.peek()) {
                (None, None) => break,
                (Some(_), None) => active.next(),
                (None, Some(_)) => frozen.next(),
                (Some((a, _)), Some((f, _))) => match a.cmp(f) {
                    std::cmp::Ordering::Less => active.next(),
                    std::cmp::Ordering::Greater => frozen.next(),
                    std::cmp::Ordering::Equal => {
                        frozen.next();
                        active.next()
                    }
                },
            };
            let Some((key, slot)) = next else { break };
            if slot.is_some() {
                present += 1;
            }
            out.push((key.clone(), slot.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_active_layer_hides_the_frozen_one_and_removals_hide_values() {
        let mut frozen = Layer::default();
        frozen.insert("t", b"a1".to_vec(), Some(b"old".to_vec()), 1);
        frozen.insert("t", b"a2".to_vec(), Some(b"kept".to_vec()), 2);
        frozen.insert("t", b"a3".to_vec(), Some(b"gone".to_vec()), 2);
        let mut m = Memtable {
            frozen: Some(Arc::new(frozen)),
            ..Memtable::default()
        };
        m.active
            .insert("t", b"a1".to_vec(), Some(b"new".to_vec()), 3);
        m.active.insert("t", b"a3".to_vec(), None, 3);
        m.active
            .insert("t", b"b1".to_vec(), Some(b"other".to_vec()), 3);
        assert_eq!(m.get("t", b"a1"), Some(Some(b"new".to_vec())));
        assert_eq!(m.get("t", b"a3"), Some(None));
        assert_eq!(m.get("t", b"zz"), None);
        assert_eq!(m.get("u", b"a1"), None);
        let keys = |v: Vec<(Vec<u8>, Slot)>| {
            v.into_iter()
                .map(|(k, s)| (String::from_utf8(k).unwrap(), s.is_some()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(m.range("t", b"a", b"a", 10)),
            [
                ("a1".into(), true),
                ("a2".into(), true),
                ("a3".into(), false)
            ]
        );
        // The limit counts present keys only; the removal past the first is still listed.
        assert_eq!(keys(m.range("t", b"a", b"a2", 1)), [("a2".into(), true)]);
        assert_eq!(
            keys(m.range("t", b"", b"a3", 1)),
            [("a3".into(), false), ("b1".into(), true)]
        );
    }
}
