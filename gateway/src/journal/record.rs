//! Journal record types and their storage encoding (keys, framed JSON values).

use serde::{Deserialize, Serialize};

use super::JournalError;
use crate::config::SiteName;
use crate::state::{frame, push_component, split_component, Namespace, StateError};

/// Records by sequence number.
pub const RECORDS: Namespace = Namespace::new("journal");
/// Writer bookkeeping: next sequence number, next checkpoint id, pending count per tier.
pub const META: Namespace = Namespace::new("journal_meta");
/// Index of pending records by tenant.
pub const PENDING_BY_TENANT: Namespace = Namespace::new("journal_pending_tenant");
/// Index of pending records by tier.
pub const PENDING_BY_TIER: Namespace = Namespace::new("journal_pending_tier");
/// Checkpoints by id.
pub const CHECKPOINTS: Namespace = Namespace::new("journal_checkpoints");

pub(crate) const NEXT_SEQ: &[u8] = b"next_seq";
pub(crate) const NEXT_CHECKPOINT: &[u8] = b"next_checkpoint";
pub(crate) const PENDING_COUNT_PREFIX: &[u8] = b"pending_count/";

/// The tenant a record belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TenantRef {
    pub project_id: String,
    pub domain_id: String,
}

impl TenantRef {
    /// A tenant.
    pub fn new(project_id: impl Into<String>, domain_id: impl Into<String>) -> TenantRef {
        TenantRef {
            project_id: project_id.into(),
            domain_id: domain_id.into(),
        }
    }
}

/// A secret the mirror needs, encrypted with a key from the gateway's configuration (the
/// crypto module produces and reads the fields). Its `Debug` form never shows the ciphertext.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedSecret {
    /// Which configured key encrypted it.
    pub key_id: String,
    /// JSON pointer into the request body where the clear secret is re-inserted.
    pub pointer: String,
    pub nonce: String,
    pub ciphertext: String,
}

impl std::fmt::Debug for EncryptedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedSecret")
            .field("key_id", &self.key_id)
            .field("pointer", &self.pointer)
            .finish_non_exhaustive()
    }
}

/// The normalised request the recovery site must receive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MirrorRequest {
    pub method: String,
    pub path: String,
    pub body: Option<serde_json::Value>,
    pub secret: Option<EncryptedSecret>,
}

/// Which way a record goes. Records written before reverse replication existed carry no
/// `direction` and read as [`Direction::Forward`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A change made at the primary, applied at the recovery site (the mirror's normal way).
    #[default]
    Forward,
    /// A change made at the recovery site while failed over, applied at the old primary so
    /// that failback can resync it (reverse replication).
    Reverse,
}

impl Direction {
    /// The direction of a change made at `site`.
    pub fn from_source(site: SiteName) -> Direction {
        match site {
            SiteName::Primary => Direction::Forward,
            SiteName::Recovery => Direction::Reverse,
        }
    }

    /// Where the change was made.
    pub fn source(self) -> SiteName {
        match self {
            Direction::Forward => SiteName::Primary,
            Direction::Reverse => SiteName::Recovery,
        }
    }

    /// Where the change is applied.
    pub fn target(self) -> SiteName {
        match self {
            Direction::Forward => SiteName::Recovery,
            Direction::Reverse => SiteName::Primary,
        }
    }

    /// `forward` or `reverse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
        }
    }
}

/// Where a record is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RecordState {
    /// Waiting to be applied at the recovery site.
    Pending,
    /// Applied at `at_ms`; `recovery_id` is the recovery site's ID of the resource, if the
    /// action created one.
    Applied {
        at_ms: u64,
        recovery_id: Option<String>,
    },
    /// Applying failed; `retryable` says whether trying again can help.
    Failed { reason: String, retryable: bool },
}

impl RecordState {
    /// `pending`, `applied` or `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            RecordState::Pending => "pending",
            RecordState::Applied { .. } => "applied",
            RecordState::Failed { .. } => "failed",
        }
    }

    /// Whether the record waits to be applied.
    pub fn is_pending(&self) -> bool {
        matches!(self, RecordState::Pending)
    }
}

/// One mirrored change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub seq: u64,
    pub time_ms: u64,
    pub tenant: TenantRef,
    pub tier: String,
    /// Forward (primary → recovery) or reverse (recovery → primary).
    #[serde(default)]
    pub direction: Direction,
    pub service: String,
    pub resource_type: String,
    pub action: String,
    /// The resource's ID at the site the change was made: the primary's for forward
    /// records, the recovery site's for reverse ones (the name predates reverse records).
    pub primary_id: Option<String>,
    pub request: MirrorRequest,
    pub state: RecordState,
    /// Apply attempts so far (each `mark_applied` / `mark_failed` counts one).
    pub attempts: u32,
    /// Earlier records that must be applied first.
    pub depends_on: Vec<u64>,
}

/// What a caller appends; the journal assigns `seq` and `time_ms` and starts it `Pending`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewRecord {
    pub tenant: TenantRef,
    pub tier: String,
    #[serde(default)]
    pub direction: Direction,
    pub service: String,
    pub resource_type: String,
    pub action: String,
    pub primary_id: Option<String>,
    pub request: MirrorRequest,
    pub depends_on: Vec<u64>,
}

impl NewRecord {
    pub(crate) fn into_record(self, seq: u64, time_ms: u64) -> JournalRecord {
        JournalRecord {
            seq,
            time_ms,
            tenant: self.tenant,
            tier: self.tier,
            direction: self.direction,
            service: self.service,
            resource_type: self.resource_type,
            action: self.action,
            primary_id: self.primary_id,
            request: self.request,
            state: RecordState::Pending,
            attempts: 0,
            depends_on: self.depends_on,
        }
    }
}

/// A consistent point of one tier's mirror (Silver applies in checkpointed batches): every
/// record of `tier` up to `last_seq` belongs to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub id: u64,
    pub time_ms: u64,
    pub tier: String,
    pub last_seq: u64,
}

pub(crate) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub(crate) fn parse_seq_key(ns: Namespace, key: &[u8]) -> Result<u64, StateError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StateError::corrupt(ns, key, "key is not an 8-byte number"))?;
    Ok(u64::from_be_bytes(bytes))
}

pub(crate) fn tenant_prefix(tenant: &TenantRef) -> Result<Vec<u8>, StateError> {
    let mut k = Vec::with_capacity(4 + tenant.project_id.len() + tenant.domain_id.len() + 8);
    push_component(&mut k, tenant.project_id.as_bytes())?;
    push_component(&mut k, tenant.domain_id.as_bytes())?;
    Ok(k)
}

pub(crate) fn tier_prefix(tier: &str) -> Result<Vec<u8>, StateError> {
    let mut k = Vec::with_capacity(2 + tier.len() + 8);
    push_component(&mut k, tier.as_bytes())?;
    Ok(k)
}

pub(crate) fn index_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Splits a tenant index key into the tenant and the sequence number.
pub(crate) fn parse_tenant_index_key(key: &[u8]) -> Result<(TenantRef, u64), StateError> {
    let bad = || StateError::corrupt(PENDING_BY_TENANT, key, "malformed index key");
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| bad());
    let (project, rest) = split_component(key).ok_or_else(bad)?;
    let (domain, rest) = split_component(rest).ok_or_else(bad)?;
    let seq = parse_seq_key(PENDING_BY_TENANT, rest).map_err(|_| bad())?;
    Ok((TenantRef::new(text(project)?, text(domain)?), seq))
}

pub(crate) fn pending_count_key(tier: &str) -> Vec<u8> {
    let mut k = PENDING_COUNT_PREFIX.to_vec();
    k.extend_from_slice(tier.as_bytes());
    k
}

/// Frames a record for storage at its sequence number.
pub(crate) fn encode_record(record: &JournalRecord) -> Result<Vec<u8>, JournalError> {
    frame::seal_json(RECORDS, &seq_key(record.seq), record).map_err(JournalError::from)
}

/// Checks and decodes a stored record; any failure is [`JournalError::Corrupt`].
pub(crate) fn decode_record(seq: u64, value: &[u8]) -> Result<JournalRecord, JournalError> {
    let record: JournalRecord =
        frame::open_json(RECORDS, &seq_key(seq), value).map_err(|e| JournalError::Corrupt {
            seq,
            reason: corrupt_reason(e),
        })?;
    if record.seq != seq {
        return Err(JournalError::Corrupt {
            seq,
            reason: format!("record carries seq {} under key {seq}", record.seq),
        });
    }
    Ok(record)
}

fn corrupt_reason(e: StateError) -> String {
    match e {
        StateError::Corrupt { reason, .. } => reason,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(seq: u64) -> JournalRecord {
        NewRecord {
            tenant: TenantRef::new("p1", "default"),
            tier: "gold".into(),
            direction: Direction::Forward,
            service: "network".into(),
            resource_type: "network".into(),
            action: "create".into(),
            primary_id: Some("n1".into()),
            request: MirrorRequest {
                method: "POST".into(),
                path: "/v2.0/networks".into(),
                body: Some(serde_json::json!({"network": {"name": "a"}})),
                secret: None,
            },
            depends_on: vec![],
        }
        .into_record(seq, 1_700_000_000_000)
    }

    #[test]
    fn record_round_trip_and_checks() {
        let r = sample(7);
        let v = encode_record(&r).unwrap();
        assert_eq!(v[0], frame::FRAME_VERSION);
        assert_eq!(decode_record(7, &v).unwrap(), r);
        // Stored under the wrong seq: the checksum (which covers the key) fails.
        assert!(matches!(
            decode_record(8, &v),
            Err(JournalError::Corrupt { seq: 8, .. })
        ));
        let mut flipped = v.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x01;
        assert!(matches!(
            decode_record(7, &flipped),
            Err(JournalError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_record(7, &v[..4]),
            Err(JournalError::Corrupt { .. })
        ));
    }

    #[test]
    fn records_without_direction_read_as_forward() {
        // A record as written before reverse replication: no `direction` key.
        let mut old = serde_json::to_value(sample(3)).unwrap();
        old.as_object_mut().unwrap().remove("direction");
        let v = frame::seal_json(RECORDS, &seq_key(3), &old).unwrap();
        let r = decode_record(3, &v).unwrap();
        assert_eq!(r.direction, Direction::Forward);
        assert_eq!(r, sample(3));
        // New records always carry it.
        let mut rev = sample(4);
        rev.direction = Direction::Reverse;
        let json = serde_json::to_value(&rev).unwrap();
        assert_eq!(json["direction"], "reverse");
        assert_eq!(
            decode_record(4, &encode_record(&rev).unwrap()).unwrap(),
            rev
        );
        assert_eq!(
            Direction::from_source(SiteName::Recovery),
            Direction::Reverse
        );
        assert_eq!(Direction::Reverse.target(), SiteName::Primary);
        assert_eq!(Direction::Forward.source(), SiteName::Primary);
    }

    #[test]
    fn state_encoding_is_tagged() {
        let s = serde_json::to_value(RecordState::Failed {
            reason: "409".into(),
            retryable: false,
        })
        .unwrap();
        assert_eq!(
            s,
            serde_json::json!({"state": "failed", "reason": "409", "retryable": false})
        );
    }

    #[test]
    fn tenant_index_keys_round_trip() {
        let t = TenantRef::new("proj", "dom");
        let k = index_key(&tenant_prefix(&t).unwrap(), 42);
        assert_eq!(parse_tenant_index_key(&k).unwrap(), (t, 42));
        assert!(parse_tenant_index_key(&k[..k.len() - 1]).is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let s = EncryptedSecret {
            key_id: "k1".into(),
            pointer: "/user/password".into(),
            nonce: "n".into(),
            ciphertext: "SECRETBYTES".into(),
        };
        assert!(!format!("{s:?}").contains("SECRETBYTES"));
    }
}
