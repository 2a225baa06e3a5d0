//! The failover status as the gateway persists it: JSON, validated when read back.

use drgw_catalog::{FailoverStatus, Phase, Site, SwitchMode, Transition};
use serde_json::json;

#[test]
fn round_trips_through_json() {
    let mut status = FailoverStatus::default();
    let steps = [
        Transition::BeginFailover {
            to: Site::Recovery,
            mode: SwitchMode::Planned,
        },
        Transition::CompleteSwitch,
        Transition::BeginFailback {
            mode: SwitchMode::Planned,
        },
        Transition::Abort,
        Transition::BeginFailback {
            mode: SwitchMode::Forced,
        },
    ];
    for (i, step) in steps.into_iter().enumerate() {
        status = status.apply(step, 1_700_000_000_000 + i as u64).unwrap();
        let text = serde_json::to_string(&status).unwrap();
        let back: FailoverStatus = serde_json::from_str(&text).unwrap();
        assert_eq!(back, status, "{text}");
    }
    assert_eq!(status.phase(), Phase::Normal);
    assert_eq!(status.epoch(), 5);
}

#[test]
fn wire_format_is_flat_and_stable() {
    let status = FailoverStatus::default()
        .apply(
            Transition::BeginFailover {
                to: Site::Recovery,
                mode: SwitchMode::Planned,
            },
            42,
        )
        .unwrap();
    assert_eq!(
        serde_json::to_value(status).unwrap(),
        json!({"phase": "switching", "from": "primary", "to": "recovery", "epoch": 1, "changed_at_ms": 42})
    );
    let failed_over: FailoverStatus = serde_json::from_value(
        json!({"phase": "failed_over", "active": "recovery", "epoch": 9, "changed_at_ms": 0}),
    )
    .unwrap();
    assert_eq!(failed_over.active_site(), Site::Recovery);
    assert!(!failed_over.writes_frozen());

    let transition: Transition = serde_json::from_value(
        json!({"action": "begin_failover", "to": "recovery", "mode": "forced"}),
    )
    .unwrap();
    assert_eq!(
        transition,
        Transition::BeginFailover {
            to: Site::Recovery,
            mode: SwitchMode::Forced
        }
    );
}

#[test]
fn corrupt_states_are_refused() {
    let bad = [
        json!({"phase": "switching", "from": "primary", "to": "primary", "epoch": 1, "changed_at_ms": 0}),
        json!({"phase": "failing_back", "from": "recovery", "to": "recovery", "epoch": 1, "changed_at_ms": 0}),
        json!({"phase": "normal", "active": "tertiary", "epoch": 1, "changed_at_ms": 0}),
        json!({"phase": "sideways", "active": "primary", "epoch": 1, "changed_at_ms": 0}),
        json!({"phase": "normal", "active": "primary", "epoch": -1, "changed_at_ms": 0}),
        json!({"phase": "normal", "active": "primary"}),
        json!({"active": "primary", "epoch": 1, "changed_at_ms": 0}),
        json!([]),
        json!(null),
    ];
    for value in bad {
        assert!(
            serde_json::from_value::<FailoverStatus>(value.clone()).is_err(),
            "{value}"
        );
    }
}
