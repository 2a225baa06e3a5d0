//! Cost of one policy decision with 1,000 tenant rules: matching the last rule (by project
//! tag and by project id), matching none (the `[default]` path) and a deny.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use drgw_policies::{Facts, Policy, ResourceKind, Resources, Tenant};

const RULES: usize = 1000;

fn policy_text() -> String {
    let mut text = String::from(
        r#"
[tiers.gold]
mode = "sync"
[tiers.gold.volume_types]
standard = "standard-replicated"
[tiers.silver]
mode = "periodic"
interval = "60s"
[tiers.bronze]
mode = "async"
max_lag = "5m"
[tiers.none]
mode = "off"

[default]
default_tier = "bronze"
[[default.deny]]
operation = "compute:create_server"
tier = "none"
[[default.deny]]
operation = "*:delete_*"
tier = "gold"
[default.quotas.gold]
vcpus = 64
ram_mb = 131072
servers = 32
"#,
    );
    // Rules 0..RULES-1 match on a mix of keys; none of them matches the benchmark tenants.
    for i in 0..RULES - 1 {
        let matcher = match i % 4 {
            0 => format!("project_id = \"id-{i}\""),
            1 => format!("project_name = \"name-{i}\""),
            2 => format!("project_tag = \"tag-{i}\""),
            _ => format!("domain = \"domain-{i}\", project_tag = \"env-prod\""),
        };
        text.push_str(&format!(
            "[[rules]]\nname = \"r{i}\"\nmatch = {{ {matcher} }}\ndefault_tier = \"silver\"\n"
        ));
    }
    // The last rule, found by tag.
    text.push_str(
        "[[rules]]\nname = \"last\"\nmatch = { project_tag = \"dr-gold\", domain = \"default\" }\n\
         default_tier = \"gold\"\n[rules.quotas.gold]\nvcpus = 16\nservers = 8\n",
    );
    text
}

fn bench(c: &mut Criterion) {
    let policy = Policy::from_toml_str(&policy_text()).expect("benchmark policy is valid");
    assert_eq!(policy.rule_count(), RULES);

    let tags: Vec<String> = ["env-prod", "team-payments", "cost-center-42", "dr-gold"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let tagged = Tenant {
        project_id: "9f1c2b7e4d3a4c5b8e6f7a8b9c0d1e2f",
        project_name: "payments-prod",
        domain_id: "default",
        domain_name: "Default",
        project_tags: &tags,
    };
    let usage = Resources {
        vcpus: 8,
        ram_mb: 16384,
        ..Resources::ZERO
    }
    .with_count(ResourceKind::Server, 4);
    let lookup = move |_tier: &str| usage;
    let demand = Resources {
        vcpus: 4,
        ram_mb: 8192,
        ..Resources::ZERO
    }
    .with_count(ResourceKind::Server, 1);
    let create = Facts {
        requested_tier: Some("gold"),
        demand,
        usage: &lookup,
        volume_type: Some("standard"),
        ..Facts::new(tagged, "compute:create_server")
    };
    let d = policy.decide(&create);
    assert!(d.is_allowed() && d.rule.name == "last" && d.tier.name == "gold");

    c.bench_function("decide/last_rule_by_tag", |b| {
        b.iter(|| black_box(policy.decide(black_box(&create))))
    });

    let by_id = Tenant {
        project_id: "id-996",
        project_tags: &[],
        ..tagged
    };
    let update = Facts {
        resource_tier: Some("silver"),
        ..Facts::new(by_id, "compute:update_server")
    };
    assert_eq!(policy.decide(&update).rule.name, "r996");
    c.bench_function("decide/rule_by_id", |b| {
        b.iter(|| black_box(policy.decide(black_box(&update))))
    });

    let nobody_tags: Vec<String> = vec!["env-prod".into(), "team-x".into()];
    let nobody = Tenant {
        project_id: "unknown",
        project_name: "unknown",
        domain_id: "d-unknown",
        domain_name: "Unknown",
        project_tags: &nobody_tags,
    };
    let fallback = Facts {
        demand,
        usage: &lookup,
        ..Facts::new(nobody, "compute:create_server")
    };
    assert_eq!(policy.decide(&fallback).rule.name, "default");
    c.bench_function("decide/no_match_default", |b| {
        b.iter(|| black_box(policy.decide(black_box(&fallback))))
    });

    let denied = Facts {
        requested_tier: Some("none"),
        ..fallback
    };
    assert!(!policy.decide(&denied).is_allowed());
    c.bench_function("decide/deny_with_reason", |b| {
        b.iter(|| black_box(policy.decide(black_box(&denied))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
