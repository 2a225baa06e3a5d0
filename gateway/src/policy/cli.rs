//! `drgw policy check FILE` and `drgw policy explain`, as library functions returning the
//! exit code and the text to print (the binary only wires them into clap).

use std::path::Path;

use drgw_policies::{format_duration, format_errors, Facts, Policy, Tenant};

use super::load_policy;
use crate::config::Config;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the policy (or the configuration naming it) is invalid or unreadable.
pub const EXIT_INVALID: i32 = 1;
/// Exit code: `explain` refused the call it was asked about.
pub const EXIT_DENIED: i32 = 3;
/// Exit code: bad arguments.
pub const EXIT_USAGE: i32 = 2;

/// `drgw policy check FILE`: validates a policy file and lists every error with its key,
/// or summarises the tiers and rules.
pub fn check_file(path: &Path) -> (i32, String) {
    match load_policy(Some(path)) {
        Ok(policy) => (EXIT_OK, summary(path, &policy)),
        Err(errors) => (
            EXIT_INVALID,
            format!(
                "{}: {} error(s)\n{}",
                path.display(),
                errors.len(),
                format_errors(&errors)
            ),
        ),
    }
}

fn summary(path: &Path, policy: &Policy) -> String {
    let mut out = format!("{}: ok\n", path.display());
    for tier in policy.tiers() {
        out.push_str(&format!(
            "  tier {:<8} {:<9} rpo {}\n",
            tier.name,
            tier.mode.as_str(),
            tier.rpo.map_or_else(|| "-".to_owned(), format_duration)
        ));
    }
    let names: Vec<&str> = policy.rule_names().collect();
    out.push_str(&format!(
        "  {} rule(s){}{}\n",
        names.len(),
        if names.is_empty() { "" } else { ": " },
        names.join(", ")
    ));
    out
}

/// The policy named by `path`: a `drgw.toml` (its `gateway.policy_file`, or the built-in
/// policy when it names none), else the path is read as a policy file itself.
fn policy_from(path: &Path) -> Result<(Policy, String), String> {
    match Config::load(path) {
        Ok(config) => match config.policy_file.as_deref() {
            Some(file) => load_policy(Some(file))
                .map(|p| (p, file.display().to_string()))
                .map_err(|e| format!("{}: invalid policy\n{}", file.display(), format_errors(&e))),
            None => Ok((Policy::default(), "built-in policy".to_owned())),
        },
        Err(config_errors) => match load_policy(Some(path)) {
            Ok(p) => Ok((p, path.display().to_string())),
            Err(_) => Err(format!(
                "{}: neither a valid drgw.toml nor a valid policy file\n{config_errors}",
                path.display()
            )),
        },
    }
}

/// `drgw policy explain --config drgw.toml --project P --operation compute:create_server
/// [--tier T]`: prints the matching rule and the decision.
///
/// `project` is a name or an id (both are tried: it is matched as either), optionally
/// prefixed by a domain, `Domain/project`; without one the domain is devstack's
/// `default` (name `Default`). Project tags are not known offline, so rules matching on
/// a tag do not match here.
pub fn explain(config: &Path, project: &str, operation: &str, tier: Option<&str>) -> (i32, String) {
    let (policy, source) = match policy_from(config) {
        Ok(p) => p,
        Err(text) => return (EXIT_INVALID, text),
    };
    if !operation.contains(':') {
        return (
            EXIT_USAGE,
            format!("operation {operation:?}: expected <service>:<action>_<resource>, e.g. compute:create_server\n"),
        );
    }
    let (domain_id, domain_name, project) = match project.split_once('/') {
        Some((domain, project)) => (domain, domain, project),
        None => ("default", "Default", project),
    };
    let tenant = Tenant {
        project_id: project,
        project_name: project,
        domain_id,
        domain_name,
        project_tags: &[],
    };
    let facts = Facts {
        requested_tier: tier,
        ..Facts::new(tenant, operation)
    };
    let decision = policy.decide(&facts);
    let text = format!("policy:    {source}\n{}", policy.explain(&facts));
    let code = if decision.is_allowed() {
        EXIT_OK
    } else {
        EXIT_DENIED
    };
    (code, text)
}
