//! The failover state machine, pure: which site is active, whether writes are frozen, and
//! which transitions the operator may request next.
//!
//! | from           | transition                   | to                              |
//! |----------------|------------------------------|---------------------------------|
//! | `normal`       | `BeginFailover{Planned}`     | `switching` (writes frozen)     |
//! | `normal`       | `BeginFailover{Forced}`      | `failed_over` at once           |
//! | `switching`    | `CompleteSwitch`             | `failed_over`                   |
//! | `switching`    | `Abort`                      | `normal` (same active site)     |
//! | `failed_over`  | `BeginFailback{Planned}`     | `failing_back` (writes frozen)  |
//! | `failed_over`  | `BeginFailback{Forced}`      | `normal` at once                |
//! | `failing_back` | `CompleteFailback`           | `normal`                        |
//! | `failing_back` | `Abort`                      | `failed_over` (same active site)|
//!
//! Every other pair is refused with a [`TransitionError`].
//!
//! Invariants:
//! - one site is active in every state; while `switching` or `failing_back` the old site
//!   stays active (its journal drains) and writes are frozen;
//! - a switch in progress must complete or be aborted before another begins;
//! - every accepted transition increments `epoch` by one, so a persisted state can be
//!   written with compare-and-swap and a stale writer is detected;
//! - a deserialized state is validated: a switch between a site and itself is refused.
//!
//! The caller supplies the time (`now_ms`, Unix milliseconds): nothing here reads a clock.

use serde::{Deserialize, Serialize};

/// One of the two OpenStack clouds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Site {
    /// The site tenants use in normal operation.
    Primary,
    /// The site the gateway mirrors to and fails over to.
    Recovery,
}

impl Site {
    /// Both sites.
    pub const ALL: [Site; 2] = [Site::Primary, Site::Recovery];

    /// `primary` or `recovery`.
    pub fn as_str(self) -> &'static str {
        match self {
            Site::Primary => "primary",
            Site::Recovery => "recovery",
        }
    }

    /// The other site.
    pub fn other(self) -> Site {
        match self {
            Site::Primary => Site::Recovery,
            Site::Recovery => Site::Primary,
        }
    }
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a switch happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchMode {
    /// Freeze writes, drain the journal, then flip (through `switching`/`failing_back`).
    Planned,
    /// Flip at once (the active site is unreachable); what was not applied is lost.
    Forced,
}

/// The state's name, e.g. for a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Normal operation.
    Normal,
    /// A planned failover is draining; writes are frozen.
    Switching,
    /// The other site is active.
    FailedOver,
    /// A planned failback is resyncing; writes are frozen.
    FailingBack,
}

impl Phase {
    /// `normal`, `switching`, `failed_over` or `failing_back`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Normal => "normal",
            Phase::Switching => "switching",
            Phase::FailedOver => "failed_over",
            Phase::FailingBack => "failing_back",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state proper; serialized with its phase as the `phase` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum FailoverState {
    /// Normal operation on `active`.
    Normal {
        /// The active site.
        active: Site,
    },
    /// A planned failover from `from` (still active, writes frozen) to `to`.
    Switching {
        /// The site still active while the journal drains.
        from: Site,
        /// The site that becomes active.
        to: Site,
    },
    /// Failed over: `active` serves tenants; changes are journaled toward the other site.
    FailedOver {
        /// The active site.
        active: Site,
    },
    /// A planned failback from `from` (still active, writes frozen) to `to`.
    FailingBack {
        /// The site still active while the other one is resynced.
        from: Site,
        /// The site that becomes active again.
        to: Site,
    },
}

impl FailoverState {
    /// The state's name.
    pub fn phase(&self) -> Phase {
        match self {
            FailoverState::Normal { .. } => Phase::Normal,
            FailoverState::Switching { .. } => Phase::Switching,
            FailoverState::FailedOver { .. } => Phase::FailedOver,
            FailoverState::FailingBack { .. } => Phase::FailingBack,
        }
    }

    /// The site that serves requests now.
    pub fn active_site(&self) -> Site {
        match *self {
            FailoverState::Normal { active } | FailoverState::FailedOver { active } => active,
            FailoverState::Switching { from, .. } | FailoverState::FailingBack { from, .. } => from,
        }
    }

    /// The site a switch in progress moves to.
    pub fn target_site(&self) -> Option<Site> {
        match *self {
            FailoverState::Switching { to, .. } | FailoverState::FailingBack { to, .. } => Some(to),
            FailoverState::Normal { .. } | FailoverState::FailedOver { .. } => None,
        }
    }

    fn is_consistent(&self) -> bool {
        match *self {
            FailoverState::Switching { from, to } | FailoverState::FailingBack { from, to } => {
                from != to
            }
            FailoverState::Normal { .. } | FailoverState::FailedOver { .. } => true,
        }
    }
}

/// A transition the operator (or the gateway, once a drain ends) requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Transition {
    /// From `normal`: planned → `switching`; forced → `failed_over` at once.
    BeginFailover {
        /// Must be the site that is not active.
        to: Site,
        /// Planned or forced.
        mode: SwitchMode,
    },
    /// From `switching`: the journal drained → `failed_over`.
    CompleteSwitch,
    /// From `failed_over`: planned → `failing_back`; forced → `normal` at once.
    BeginFailback {
        /// Planned or forced.
        mode: SwitchMode,
    },
    /// From `failing_back`: the resync finished → `normal` on the other site.
    CompleteFailback,
    /// From `switching` → `normal`, or from `failing_back` → `failed_over`; the active
    /// site does not change.
    Abort,
}

impl Transition {
    /// A short label: `begin_failover`, `complete_switch`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            Transition::BeginFailover { .. } => "begin_failover",
            Transition::CompleteSwitch => "complete_switch",
            Transition::BeginFailback { .. } => "begin_failback",
            Transition::CompleteFailback => "complete_failback",
            Transition::Abort => "abort",
        }
    }
}

/// Why a transition was refused. All are the requester's errors: the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// A switch is in progress; complete or abort it first.
    #[error("cannot {transition} while {phase}: complete or abort the switch in progress first")]
    InProgress {
        /// The current phase.
        phase: Phase,
        /// The refused transition.
        transition: &'static str,
    },
    /// Failing over while already failed over.
    #[error("already failed over to {active}")]
    AlreadyFailedOver {
        /// The active site.
        active: Site,
    },
    /// Failing over to the site that is already active.
    #[error("{site} is already the active site")]
    SameSite {
        /// The requested site.
        site: Site,
    },
    /// Failing back, completing or aborting when the state does not allow it.
    #[error("cannot {transition} while {phase}")]
    NotApplicable {
        /// The current phase.
        phase: Phase,
        /// The refused transition.
        transition: &'static str,
    },
    /// The epoch cannot grow any further (a corrupt persisted state).
    #[error("failover epoch exhausted")]
    EpochExhausted,
}

impl TransitionError {
    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TransitionError::InProgress { .. } => "in_progress",
            TransitionError::AlreadyFailedOver { .. } => "already_failed_over",
            TransitionError::SameSite { .. } => "same_site",
            TransitionError::NotApplicable { .. } => "not_applicable",
            TransitionError::EpochExhausted => "epoch_exhausted",
        }
    }

    /// Whether the same request can succeed later without the operator doing anything else
    /// (only when a switch in progress may still complete by itself).
    pub fn retry_can_help(&self) -> bool {
        matches!(self, TransitionError::InProgress { .. })
    }
}

/// The persisted failover status: the state, its epoch and when it was entered.
///
/// Serialized flat: `{"phase": "switching", "from": "primary", "to": "recovery",
/// "epoch": 3, "changed_at_ms": 1700000000000}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedStatus")]
pub struct FailoverStatus {
    #[serde(flatten)]
    state: FailoverState,
    epoch: u64,
    changed_at_ms: u64,
}

/// The wire form before validation.
#[derive(Deserialize)]
struct UncheckedStatus {
    #[serde(flatten)]
    state: FailoverState,
    epoch: u64,
    changed_at_ms: u64,
}

impl TryFrom<UncheckedStatus> for FailoverStatus {
    type Error = String;

    fn try_from(raw: UncheckedStatus) -> Result<FailoverStatus, String> {
        if !raw.state.is_consistent() {
            return Err(format!(
                "inconsistent failover state: {} from a site to itself",
                raw.state.phase()
            ));
        }
        Ok(FailoverStatus {
            state: raw.state,
            epoch: raw.epoch,
            changed_at_ms: raw.changed_at_ms,
        })
    }
}

impl Default for FailoverStatus {
    /// Normal operation on the primary site, epoch 0.
    fn default() -> FailoverStatus {
        FailoverStatus::new(Site::Primary)
    }
}

impl FailoverStatus {
    /// Normal operation on `active`, epoch 0: the state before anything was persisted.
    pub fn new(active: Site) -> FailoverStatus {
        FailoverStatus {
            state: FailoverState::Normal { active },
            epoch: 0,
            changed_at_ms: 0,
        }
    }

    /// The state.
    pub fn state(&self) -> FailoverState {
        self.state
    }

    /// The state's name.
    pub fn phase(&self) -> Phase {
        self.state.phase()
    }

    /// The site that serves requests now.
    pub fn active_site(&self) -> Site {
        self.state.active_site()
    }

    /// The site that mirrored changes go to: the one that is not active.
    pub fn standby_site(&self) -> Site {
        self.active_site().other()
    }

    /// The site a switch in progress moves to.
    pub fn target_site(&self) -> Option<Site> {
        self.state.target_site()
    }

    /// Whether writes must be refused (503 + Retry-After): a planned switch is in progress.
    pub fn writes_frozen(&self) -> bool {
        matches!(
            self.state,
            FailoverState::Switching { .. } | FailoverState::FailingBack { .. }
        )
    }

    /// Incremented by every accepted transition.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// When the current state was entered (Unix milliseconds, as given to
    /// [`FailoverStatus::apply`]; 0 for the initial state).
    pub fn changed_at_ms(&self) -> u64 {
        self.changed_at_ms
    }

    /// The status after `transition` at time `now_ms`, or why it is refused. `self` is not
    /// changed: persist the result (compare-and-swap on the old epoch), then use it.
    pub fn apply(
        &self,
        transition: Transition,
        now_ms: u64,
    ) -> Result<FailoverStatus, TransitionError> {
        use FailoverState as S;
        let phase = self.phase();
        let in_progress = TransitionError::InProgress {
            phase,
            transition: transition.as_str(),
        };
        let not_applicable = TransitionError::NotApplicable {
            phase,
            transition: transition.as_str(),
        };
        let state = match (self.state, transition) {
            (S::Normal { active }, Transition::BeginFailover { to, .. }) if to == active => {
                return Err(TransitionError::SameSite { site: to });
            }
            (S::Normal { active }, Transition::BeginFailover { to, mode }) => match mode {
                SwitchMode::Planned => S::Switching { from: active, to },
                SwitchMode::Forced => S::FailedOver { active: to },
            },
            (S::FailedOver { active }, Transition::BeginFailover { .. }) => {
                return Err(TransitionError::AlreadyFailedOver { active });
            }
            (S::Switching { to, .. }, Transition::CompleteSwitch) => S::FailedOver { active: to },
            (S::Switching { from, .. }, Transition::Abort) => S::Normal { active: from },
            (S::FailedOver { active }, Transition::BeginFailback { mode }) => match mode {
                SwitchMode::Planned => S::FailingBack {
                    from: active,
                    to: active.other(),
                },
                SwitchMode::Forced => S::Normal {
                    active: active.other(),
                },
            },
            (S::FailingBack { to, .. }, Transition::CompleteFailback) => S::Normal { active: to },
            (S::FailingBack { from, .. }, Transition::Abort) => S::FailedOver { active: from },
            (
                S::Switching { .. } | S::FailingBack { .. },
                Transition::BeginFailover { .. } | Transition::BeginFailback { .. },
            ) => return Err(in_progress),
            (
                S::Normal { .. }
                | S::Switching { .. }
                | S::FailedOver { .. }
                | S::FailingBack { .. },
                _,
            ) => return Err(not_applicable),
        };
        let epoch = self
            .epoch
            .checked_add(1)
            .ok_or(TransitionError::EpochExhausted)?;
        Ok(FailoverStatus {
            state,
            epoch,
            changed_at_ms: now_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use FailoverState as S;
    use Site::{Primary as P, Recovery as R};
    use SwitchMode::{Forced, Planned};

    fn at(state: FailoverState) -> FailoverStatus {
        FailoverStatus {
            state,
            epoch: 7,
            changed_at_ms: 1,
        }
    }

    const FAILOVER_P: Transition = Transition::BeginFailover {
        to: R,
        mode: Planned,
    };
    const FAILOVER_F: Transition = Transition::BeginFailover {
        to: R,
        mode: Forced,
    };
    const FAILBACK_P: Transition = Transition::BeginFailback { mode: Planned };
    const FAILBACK_F: Transition = Transition::BeginFailback { mode: Forced };

    #[test]
    fn every_transition_from_every_state() {
        let states = [
            S::Normal { active: P },
            S::Switching { from: P, to: R },
            S::FailedOver { active: R },
            S::FailingBack { from: R, to: P },
        ];
        let transitions = [
            FAILOVER_P,
            FAILOVER_F,
            Transition::BeginFailover {
                to: P,
                mode: Planned,
            },
            Transition::CompleteSwitch,
            FAILBACK_P,
            FAILBACK_F,
            Transition::CompleteFailback,
            Transition::Abort,
        ];
        // Rows: states; columns: transitions. Ok(state) or Err(kind).
        let ok = Ok::<FailoverState, &str>;
        let expected: [[Result<FailoverState, &str>; 8]; 4] = [
            // normal(primary)
            [
                ok(S::Switching { from: P, to: R }),
                ok(S::FailedOver { active: R }),
                Err("same_site"),
                Err("not_applicable"),
                Err("not_applicable"),
                Err("not_applicable"),
                Err("not_applicable"),
                Err("not_applicable"),
            ],
            // switching(primary → recovery)
            [
                Err("in_progress"),
                Err("in_progress"),
                Err("in_progress"),
                ok(S::FailedOver { active: R }),
                Err("in_progress"),
                Err("in_progress"),
                Err("not_applicable"),
                ok(S::Normal { active: P }),
            ],
            // failed_over(recovery)
            [
                Err("already_failed_over"),
                Err("already_failed_over"),
                Err("already_failed_over"),
                Err("not_applicable"),
                ok(S::FailingBack { from: R, to: P }),
                ok(S::Normal { active: P }),
                Err("not_applicable"),
                Err("not_applicable"),
            ],
            // failing_back(recovery → primary)
            [
                Err("in_progress"),
                Err("in_progress"),
                Err("in_progress"),
                Err("not_applicable"),
                Err("in_progress"),
                Err("in_progress"),
                ok(S::Normal { active: P }),
                ok(S::FailedOver { active: R }),
            ],
        ];
        for (state, row) in states.into_iter().zip(expected) {
            for (transition, want) in transitions.into_iter().zip(row) {
                let before = at(state);
                let got = before.apply(transition, 99);
                match (got, want) {
                    (Ok(after), Ok(want)) => {
                        assert_eq!(after.state(), want, "{state:?} + {transition:?}");
                        assert_eq!(after.epoch(), 8);
                        assert_eq!(after.changed_at_ms(), 99);
                    }
                    (Err(err), Err(kind)) => {
                        assert_eq!(err.kind(), kind, "{state:?} + {transition:?}: {err}")
                    }
                    (got, want) => panic!("{state:?} + {transition:?}: got {got:?}, want {want:?}"),
                }
                assert_eq!(before, at(state), "apply must not change self");
            }
        }
    }

    #[test]
    fn derived_facts() {
        let table = [
            (S::Normal { active: P }, P, None, false, "normal"),
            (
                S::Switching { from: P, to: R },
                P,
                Some(R),
                true,
                "switching",
            ),
            (S::FailedOver { active: R }, R, None, false, "failed_over"),
            (
                S::FailingBack { from: R, to: P },
                R,
                Some(P),
                true,
                "failing_back",
            ),
        ];
        for (state, active, target, frozen, phase) in table {
            let s = at(state);
            assert_eq!(s.active_site(), active);
            assert_eq!(s.standby_site(), active.other());
            assert_eq!(s.target_site(), target);
            assert_eq!(s.writes_frozen(), frozen);
            assert_eq!(s.phase().as_str(), phase);
        }
    }

    #[test]
    fn a_full_cycle_counts_epochs() {
        let mut s = FailoverStatus::default();
        assert_eq!((s.active_site(), s.epoch()), (P, 0));
        for (i, t) in [
            FAILOVER_P,
            Transition::CompleteSwitch,
            FAILBACK_P,
            Transition::CompleteFailback,
        ]
        .into_iter()
        .enumerate()
        {
            s = s.apply(t, 10 * i as u64).unwrap();
        }
        assert_eq!(s.state(), S::Normal { active: P });
        assert_eq!(s.epoch(), 4);
        assert_eq!(s.changed_at_ms(), 30);
    }

    #[test]
    fn starting_on_recovery_fails_over_to_primary() {
        let s = FailoverStatus::new(R);
        let t = Transition::BeginFailover {
            to: P,
            mode: Forced,
        };
        assert_eq!(s.apply(t, 0).unwrap().active_site(), P);
        assert_eq!(s.apply(FAILOVER_P, 0).unwrap_err().kind(), "same_site");
    }

    #[test]
    fn epoch_cannot_wrap() {
        let s = FailoverStatus {
            epoch: u64::MAX,
            ..FailoverStatus::default()
        };
        assert_eq!(
            s.apply(FAILOVER_F, 0).unwrap_err().kind(),
            "epoch_exhausted"
        );
    }

    #[test]
    fn errors_explain_themselves() {
        let err = at(S::Switching { from: P, to: R })
            .apply(FAILBACK_P, 0)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot begin_failback while switching: complete or abort the switch in progress first"
        );
        assert!(err.retry_can_help());
        let err = FailoverStatus::default()
            .apply(Transition::Abort, 0)
            .unwrap_err();
        assert_eq!(err.to_string(), "cannot abort while normal");
        assert!(!err.retry_can_help());
    }
}
