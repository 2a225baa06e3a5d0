//! The embedded backend's write-ahead log: what makes a commit durable before the state
//! file has it (see [`super::RedbStore`] for how the two work together).
//!
//! # Why
//! A redb commit rewrites every B-tree page on the path to each key it touches: about 30
//! pages across six tables for a journal append (the record, two pending indexes, the
//! journal meta, usage counters, the store revision). On the test VM its `fdatasync` took
//! 0.6 ms at the median and 14 ms at the 99th percentile during Bronze rounds, and the
//! whole commit 1–1.7 ms. An `fdatasync` after overwriting a few KiB of an already
//! written file takes about 0.15 ms.
//!
//! # Segments
//! The log is two files beside the state file, named after it with `-wal.0` and `-wal.1`.
//! Commits append to the current segment. When the store freezes its recent writes for the
//! state file, the log flushes the current segment and moves on to the other, from its
//! start, over older entries. A segment is reused only once the state file durably holds
//! its entries: the store freezes again only after the frozen layer has been written.
//!
//! # Format
//! Entries follow one another from offset 0; integers are big-endian.
//!
//! ```text
//! entry:   u32 n (payload length, >= 8) ‖ u32 CRC-32C(n ‖ payload) ‖ payload
//! payload: u64 revision ‖ write*
//! write:   u8 kind (1 put, 2 delete) ‖ u8 namespace length ‖ namespace ‖ u32 key length ‖ key
//!          ‖ (put only) u32 value length ‖ stored value (u64 version ‖ value, as in the table)
//! ```
//!
//! A write is the key's new stored bytes or its removal; a counter addition is logged as
//! the value it wrote. Replaying an entry is therefore plain overwrites.
//!
//! A segment grows with written zeros in [`GROWTH`] steps (overwriting allocated blocks
//! needs no file-size update in the flush) and never shrinks.
//!
//! # Invariants
//! - In a segment, entries hold consecutive revisions from the first one on. Reading stops
//!   at the first entry that is empty, runs past the file, fails its checksum or does not
//!   hold the previous revision + 1: that is where the last writing stopped. Stale entries
//!   of an earlier round hold older revisions, so they end the read too.
//! - An entry acknowledged as durable was flushed after it and every entry before it in its
//!   segment had been written, and the other segment was flushed before the switch. So a
//!   torn or missing entry can only follow the last acknowledged one.
//! - Replay takes both segments' entries after the state file's revision, in revision
//!   order. If they do not continue that revision without a gap, writes acknowledged as
//!   durable are missing, and the store refuses to open ([`StateError::Corrupt`]) rather
//!   than start without them.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crc32c::crc32c_append;

use super::{Namespace, StateError};

/// The file grows by this much at a time.
pub const GROWTH: u64 = 1 << 20;

const ENTRY_HEADER: usize = 8;
const PUT: u8 = 1;
const DELETE: u8 = 2;

fn io_error(what: &str, path: &Path, err: std::io::Error) -> StateError {
    StateError::Backend {
        backend: "redb",
        message: format!("{what} {}: {err}", path.display()),
        retryable: false,
    }
}

fn corrupt(reason: String) -> StateError {
    StateError::Corrupt {
        namespace: "_wal",
        key: String::new(),
        reason,
    }
}

/// Segment `n` (0 or 1) of the log beside `state_file`.
pub fn path_for(state_file: &Path, n: usize) -> PathBuf {
    let mut name = state_file.as_os_str().to_owned();
    name.push(format!("-wal.{n}"));
    PathBuf::from(name)
}

/// One write of an entry, as replay applies it.
#[derive(Debug, PartialEq, Eq)]
pub enum LoggedWrite<'a> {
    /// Store `stored` (version ‖ value) at `key` of table `table`.
    Put {
        table: &'a str,
        key: &'a [u8],
        stored: &'a [u8],
    },
    /// Remove `key` from table `table`.
    Delete { table: &'a str, key: &'a [u8] },
}

/// An entry being built by a commit: its writes, appended as the transaction makes them.
pub struct EntryBuilder {
    bytes: Vec<u8>,
}

impl EntryBuilder {
    /// An entry for the commit of `revision`.
    pub fn new(revision: u64) -> EntryBuilder {
        let mut bytes = Vec::with_capacity(4096);
        bytes.extend_from_slice(&[0; ENTRY_HEADER]);
        bytes.extend_from_slice(&revision.to_be_bytes());
        EntryBuilder { bytes }
    }

    fn push_name_and_key(&mut self, kind: u8, table: &str, key: &[u8]) {
        // Namespace names are short code constants and keys are bounded by the callers
        // (length-prefixed u16 components); the casts cannot truncate for anything stored.
        self.bytes.push(kind);
        self.bytes.push(table.len() as u8);
        self.bytes.extend_from_slice(table.as_bytes());
        self.bytes
            .extend_from_slice(&(key.len() as u32).to_be_bytes());
        self.bytes.extend_from_slice(key);
    }

    /// `key` of `table` now holds `stored`.
    pub fn put(&mut self, table: &str, key: &[u8], stored: &[u8]) {
        self.push_name_and_key(PUT, table, key);
        self.bytes
            .extend_from_slice(&(stored.len() as u32).to_be_bytes());
        self.bytes.extend_from_slice(stored);
    }

    /// `key` of `table` was removed.
    pub fn delete(&mut self, table: &str, key: &[u8]) {
        self.push_name_and_key(DELETE, table, key);
    }

    /// The finished entry: header filled in.
    fn seal(mut self) -> Vec<u8> {
        let n = (self.bytes.len() - ENTRY_HEADER) as u32;
        let crc = entry_crc(n, &self.bytes[ENTRY_HEADER..]);
        self.bytes[..4].copy_from_slice(&n.to_be_bytes());
        self.bytes[4..8].copy_from_slice(&crc.to_be_bytes());
        self.bytes
    }
}

/// An entry's checksum: CRC-32C over its payload length (u32 BE) and payload.
fn entry_crc(n: u32, payload: &[u8]) -> u32 {
    crc32c_append(crc32c_append(0, &n.to_be_bytes()), payload)
}

/// A read cursor over a byte slice that fails instead of panicking.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok()
    }
}

/// An entry read back from the log.
#[derive(Debug, PartialEq, Eq)]
pub struct LoggedEntry<'a> {
    pub revision: u64,
    payload: &'a [u8],
}

impl<'a> LoggedEntry<'a> {
    /// The entry's writes, in the order the transaction made them. A checksummed entry that
    /// does not parse is corrupt (written by something else than this module).
    pub fn writes(&self) -> Result<Vec<LoggedWrite<'a>>, StateError> {
        let mut c = Cursor {
            rest: &self.payload[8..],
        };
        let bad = || {
            corrupt(format!(
                "entry of revision {} does not parse",
                self.revision
            ))
        };
        let mut out = Vec::new();
        while !c.rest.is_empty() {
            let kind = c.u8().ok_or_else(bad)?;
            let name_len = usize::from(c.u8().ok_or_else(bad)?);
            // Only a namespace's table: replay writes no other (not the backend's own).
            let table = std::str::from_utf8(c.take(name_len).ok_or_else(bad)?)
                .ok()
                .filter(|t| Namespace::is_valid_name(t))
                .ok_or_else(bad)?;
            let key_len = c.u32().ok_or_else(bad)?;
            let key = c.take(key_len).ok_or_else(bad)?;
            match kind {
                PUT => {
                    let len = c.u32().ok_or_else(bad)?;
                    let stored = c.take(len).ok_or_else(bad)?;
                    out.push(LoggedWrite::Put { table, key, stored });
                }
                DELETE => out.push(LoggedWrite::Delete { table, key }),
                _ => return Err(bad()),
            }
        }
        Ok(out)
    }
}

/// The entries at the start of `log`: consecutive revisions, each whole and checksummed,
/// up to where the last writing stopped (see the module's invariants).
pub fn read_entries(log: &[u8]) -> Vec<LoggedEntry<'_>> {
    let mut entries: Vec<LoggedEntry<'_>> = Vec::new();
    let mut c = Cursor { rest: log };
    while let (Some(n), Some(crc)) = (c.u32(), c.u32()) {
        if n < 8 {
            break;
        }
        let Some(payload) = c.take(n) else { break };
        if entry_crc(u32::try_from(n).unwrap_or(u32::MAX), payload) as usize != crc {
            break;
        }
        let revision = u64::from_be_bytes(payload[..8].try_into().unwrap_or([0; 8]));
        if entries
            .last()
            .is_some_and(|last| last.revision.checked_add(1) != Some(revision))
        {
            break;
        }
        entries.push(LoggedEntry { revision, payload });
    }
    entries
}

/// One of the log's two files.
struct Segment {
    file: File,
    path: PathBuf,
    /// Where the next entry goes.
    position: u64,
    /// The file's length: zeros or stale entries from `position` on.
    len: u64,
}

impl Segment {
    fn open(path: PathBuf) -> Result<(Segment, Vec<u8>), StateError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error("cannot open the write-ahead log", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| io_error("cannot stat the write-ahead log", &path, e))?
            .len();
        let mut contents = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut contents, 0)
            .map_err(|e| io_error("cannot read the write-ahead log", &path, e))?;
        let segment = Segment {
            file,
            path,
            position: 0,
            len,
        };
        Ok((segment, contents))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let end = self.position + bytes.len() as u64;
        if end > self.len {
            // Grow with written zeros so that later entries overwrite allocated blocks.
            let new_len = end.div_ceil(GROWTH) * GROWTH;
            let zeros = vec![0u8; usize::try_from(new_len - self.len).unwrap_or(0)];
            self.file
                .write_all_at(&zeros, self.len)
                .map_err(|e| io_error("cannot grow the write-ahead log", &self.path, e))?;
            self.len = new_len;
        }
        self.file
            .write_all_at(bytes, self.position)
            .map_err(|e| io_error("cannot write the write-ahead log", &self.path, e))?;
        self.position = end;
        Ok(())
    }

    fn flush(&self) -> Result<(), StateError> {
        self.file
            .sync_data()
            .map_err(|e| io_error("cannot flush the write-ahead log", &self.path, e))
    }
}

/// The open log: two segment files, written in turn.
pub struct Wal {
    segments: [Segment; 2],
    /// The segment entries go to.
    current: usize,
    last_flush: Instant,
    /// Set when a write or flush failed: whether the entry reached the disk is unknown, so
    /// the store accepts no more commits until it is reopened (and replays what is there).
    failed: Option<String>,
}

impl Wal {
    /// Opens (creating them if needed) the log's segments beside `state_file` and reads
    /// their entries. Writing starts at the start of segment 0: the caller must first make
    /// every entry read durable in the state file.
    pub fn open(state_file: &Path) -> Result<(Wal, [Vec<u8>; 2]), StateError> {
        let (zero, zero_bytes) = Segment::open(path_for(state_file, 0))?;
        let (one, one_bytes) = Segment::open(path_for(state_file, 1))?;
        let wal = Wal {
            segments: [zero, one],
            current: 0,
            last_flush: Instant::now(),
            failed: None,
        };
        Ok((wal, [zero_bytes, one_bytes]))
    }

    /// Refuses work after a failed write or flush.
    pub fn check_usable(&self) -> Result<(), StateError> {
        match &self.failed {
            None => Ok(()),
            Some(reason) => Err(StateError::Backend {
                backend: "redb",
                message: format!("the write-ahead log failed earlier ({reason}); reopen the store"),
                retryable: false,
            }),
        }
    }

    /// Whether a relaxed commit made now must flush (see `RELAXED_FLUSH_AFTER`).
    pub fn last_flush_older_than(&self, age: Duration) -> bool {
        self.last_flush.elapsed() >= age
    }

    fn failing<T>(&mut self, result: Result<T, StateError>) -> Result<T, StateError> {
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    /// Appends `entry`, flushing the segment (with everything before it) if `flush`.
    pub fn append(&mut self, entry: EntryBuilder, flush: bool) -> Result<(), StateError> {
        self.check_usable()?;
        let bytes = entry.seal();
        let segment = &mut self.segments[self.current];
        let mut result = segment.write(&bytes);
        if result.is_ok() && flush {
            result = segment.flush();
        }
        self.failing(result)?;
        if flush {
            self.last_flush = Instant::now();
        }
        Ok(())
    }

    /// Flushes the current segment (relaxed entries at its end reach the disk).
    pub fn flush(&mut self) -> Result<(), StateError> {
        self.check_usable()?;
        let result = self.segments[self.current].flush();
        self.failing(result)?;
        self.last_flush = Instant::now();
        Ok(())
    }

    /// Moves on to the other segment, from its start. The caller guarantees that the other
    /// segment's entries are durable in the state file. The current one is flushed first,
    /// so every entry before the switch is on disk before any after it.
    pub fn switch(&mut self) -> Result<(), StateError> {
        self.flush()?;
        self.current = 1 - self.current;
        self.segments[self.current].position = 0;
        Ok(())
    }

    /// Where the next entry goes (tests).
    #[cfg(test)]
    pub fn position_for_tests(&self) -> (usize, u64) {
        (self.current, self.segments[self.current].position)
    }
}

/// The entries of both segments after `revision`, in revision order; refused if they do not
/// continue it without a gap (acknowledged writes would be missing).
pub fn entries_after<'a>(
    segments: &'a [Vec<u8>; 2],
    revision: u64,
) -> Result<Vec<LoggedEntry<'a>>, StateError> {
    let mut entries: Vec<LoggedEntry<'a>> = segments
        .iter()
        .flat_map(|bytes| read_entries(bytes))
        .filter(|e| e.revision > revision)
        .collect();
    entries.sort_by_key(|e| e.revision);
    let mut expected = revision;
    for e in &entries {
        expected = expected.saturating_add(1);
        if e.revision != expected {
            return Err(corrupt(format!(
                "the state file is at revision {revision} but its write-ahead log holds \
                 revision {} without {expected}: acknowledged writes are missing",
                e.revision
            )));
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(revision: u64, key: &[u8]) -> Vec<u8> {
        let mut e = EntryBuilder::new(revision);
        e.put("journal", key, b"\0\0\0\0\0\0\0\x05value");
        e.delete("journal_meta", b"gone");
        e.seal()
    }

    #[test]
    fn entries_round_trip_with_their_writes() {
        let mut log = entry(7, b"a");
        log.extend(entry(8, b"b"));
        log.extend([0; 64]);
        let entries = read_entries(&log);
        assert_eq!(
            entries.iter().map(|e| e.revision).collect::<Vec<_>>(),
            [7, 8]
        );
        assert_eq!(
            entries[1].writes().unwrap(),
            [
                LoggedWrite::Put {
                    table: "journal",
                    key: b"b",
                    stored: b"\0\0\0\0\0\0\0\x05value"
                },
                LoggedWrite::Delete {
                    table: "journal_meta",
                    key: b"gone"
                },
            ]
        );
    }

    #[test]
    fn reading_stops_at_a_torn_entry_at_any_byte() {
        let first = entry(1, b"a");
        let second = entry(2, b"b");
        for cut in 0..second.len() {
            let mut log = first.clone();
            log.extend_from_slice(&second[..cut]);
            assert_eq!(read_entries(&log).len(), 1, "cut at {cut}");
            // A torn write leaves the old bytes after it: zeros here.
            log.extend(std::iter::repeat_n(0, second.len() - cut));
            assert_eq!(read_entries(&log).len(), 1, "cut at {cut} over zeros");
        }
    }

    #[test]
    fn a_flipped_bit_ends_the_log_there() {
        let mut log = entry(1, b"a");
        let second_at = log.len();
        log.extend(entry(2, b"b"));
        log.extend(entry(3, b"c"));
        for byte in second_at..second_at + entry(2, b"b").len() {
            let mut bad = log.clone();
            bad[byte] ^= 0x10;
            assert_eq!(read_entries(&bad).len(), 1, "flip at {byte}");
        }
    }

    #[test]
    fn stale_entries_of_an_earlier_round_are_not_read() {
        // Round one wrote revisions 1..=3; back on this segment, round two wrote 4 over the
        // first entry. Entries 2 and 3 are still in the file behind it.
        let mut log = entry(1, b"a");
        log.extend(entry(2, b"b"));
        log.extend(entry(3, b"c"));
        let four = entry(4, b"a");
        log[..four.len()].copy_from_slice(&four);
        let entries = read_entries(&log);
        assert_eq!(entries.iter().map(|e| e.revision).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn an_entry_that_does_not_parse_is_corrupt_not_a_panic() {
        let mut e = EntryBuilder::new(1);
        e.bytes.extend_from_slice(&[PUT, 200, b'x']);
        let log = e.seal();
        let entries = read_entries(&log);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].writes().unwrap_err().kind(), "corrupt");
        let mut e = EntryBuilder::new(1);
        e.put("_drgw_meta", b"k", b"v");
        let log = e.seal();
        assert_eq!(
            read_entries(&log)[0].writes().unwrap_err().kind(),
            "corrupt"
        );
    }
}
