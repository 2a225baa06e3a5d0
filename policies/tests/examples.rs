//! The example policy files parse, and the sandbox one decides as the sandbox expects.

use drgw_policies::{format_errors, Facts, MirrorMode, OnFailure, Policy, Tenant, Verdict};
use std::time::Duration;

fn load(text: &str) -> Policy {
    Policy::from_toml_str(text).unwrap_or_else(|errs| panic!("{}", format_errors(&errs)))
}

fn tenant(name: &str) -> Tenant<'_> {
    Tenant {
        project_id: "p-id",
        project_name: name,
        domain_id: "default",
        domain_name: "Default",
        project_tags: &[],
    }
}

#[test]
fn sandbox_parses_and_decides() {
    let policy = load(include_str!("../examples/sandbox.toml"));
    assert_eq!(
        policy.tier("silver").unwrap().mode,
        MirrorMode::Periodic {
            interval: Duration::from_secs(5)
        }
    );

    let demo = policy.decide(&Facts::new(tenant("demo"), "compute:create_server"));
    assert!(demo.is_allowed());
    assert_eq!(demo.tier.name, "silver");

    let mut facts = Facts::new(tenant("demo"), "compute:create_server");
    facts.requested_tier = Some("bronze");
    assert_eq!(policy.decide(&facts).tier.name, "bronze");
    facts.requested_tier = Some("gold");
    let denied = policy.decide(&facts);
    assert_eq!(
        denied.deny_reason(),
        Some("project demo may use tiers bronze, silver; gold was requested")
    );

    let admin = policy.decide(&Facts::new(tenant("admin"), "compute:create_server"));
    assert_eq!(admin.verdict, Verdict::Allow);
    assert_eq!(admin.tier.name, "gold");
    assert_eq!(admin.mirror, MirrorMode::Sync);
    assert_eq!(admin.on_failure, OnFailure::Reject);
    assert!(admin.tier.restore_on_failover);

    let other = policy.decide(&Facts::new(tenant("alt_demo"), "network:create_network"));
    assert_eq!(other.tier.name, "bronze");
    assert_eq!(other.rule.index, None);
}

#[test]
fn full_example_parses() {
    let policy = load(include_str!("../examples/full.toml"));
    assert_eq!(policy.tiers().len(), 4);
    assert_eq!(policy.rule_count(), 4);
    let gold = policy.tier("gold").unwrap();
    assert_eq!(
        gold.volume_type_for("standard"),
        Some("standard-replicated")
    );
    assert!(!policy.tier("silver").unwrap().restore_on_failover);
}

/// Every prefix of the full example either parses or yields errors; nothing panics, and
/// every policy that parses decides.
#[test]
fn truncated_files_never_panic() {
    let text = include_str!("../examples/full.toml");
    let tags = vec!["dr-freeze".to_owned()];
    let tenant = Tenant {
        project_id: "4c3b5e1e0d8a4f7f9e3a2b1c0d9e8f7a",
        project_name: "demo",
        domain_id: "default",
        domain_name: "Default",
        project_tags: &tags,
    };
    for (end, _) in text.char_indices().step_by(7) {
        match Policy::from_toml_str(&text[..end]) {
            Ok(policy) => {
                for requested in [None, Some("gold"), Some("x")] {
                    let facts = Facts {
                        requested_tier: requested,
                        failed_over: true,
                        ..Facts::new(tenant, "compute:delete_server")
                    };
                    let _ = policy.decide(&facts);
                    let _ = policy.explain(&facts);
                }
            }
            Err(errors) => assert!(!errors.is_empty()),
        }
    }
}
