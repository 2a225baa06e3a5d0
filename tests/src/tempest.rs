//! tempest, the OpenStack conformance suite, run at an identity URL (a site's, or the
//! gateway's in front of it) from the test bed's own venv (`tests/realstack/install.sh`
//! builds `$REALSTACK_HOME/tempest-venv`).
//!
//! The workspace is made by hand (`tempest init` would also register it in
//! `~/.tempest/workspace.yaml`): `etc/tempest.conf` and `.stestr.conf` under `work`.
//! Keystone is always declared available, and of the others only those a run names: the
//! sites have no compute or volume backends, so those services' tempest tests would fail
//! by design; Neutron's API tests need none.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, ensure, Context};

use crate::realsite::{realstack_home, Credentials};

/// The tempest venv's directory.
pub fn venv_dir() -> PathBuf {
    realstack_home().join("tempest-venv")
}

/// What a run counted, from tempest's `Totals`.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub passed: u32,
    pub skipped: u32,
    pub failed: u32,
    /// The failed tests' names.
    pub failures: Vec<String>,
    /// What tempest printed of the failures (their tracebacks), cut to 20 000 characters.
    pub failure_output: String,
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tempest: {} passed, {} skipped, {} failed",
            self.passed, self.skipped, self.failed
        )?;
        for name in &self.failures {
            write!(f, "\n      failed: {name}")?;
        }
        if !self.failure_output.is_empty() {
            write!(f, "\n{}", self.failure_output)?;
        }
        Ok(())
    }
}

/// Runs the tests matching `regex` and not `exclude` (`concurrency` at a time) with `admin` at
/// `auth_url` (Keystone's `/v3`), in `work` (created), with the services in `available`
/// (tempest's names: `neutron`) declared available besides Keystone, and `extra_config`
/// (more `tempest.conf` sections) at the end of its configuration; the totals. An error
/// when tempest could not run at all or printed no totals.
#[allow(clippy::too_many_arguments)]
pub fn run(
    work: &Path,
    auth_url: &str,
    admin: &Credentials,
    region: &str,
    (regex, exclude): (&str, &str),
    available: &[&str],
    extra_config: &str,
    concurrency: u32,
) -> anyhow::Result<Totals> {
    let venv = venv_dir();
    let tempest = venv.join("bin/tempest");
    ensure!(
        tempest.exists(),
        "no tempest at {} (tests/realstack/install.sh builds it)",
        tempest.display()
    );
    std::fs::create_dir_all(work.join("etc"))?;
    std::fs::create_dir_all(work.join("locks"))?;
    let found = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import os, tempest; print(os.path.dirname(tempest.__file__))",
        ])
        .output()
        .context("find tempest's package")?;
    ensure!(found.status.success(), "tempest's package not found");
    let package = String::from_utf8_lossy(&found.stdout).trim().to_string();
    std::fs::write(
        work.join(".stestr.conf"),
        format!(
            "[DEFAULT]\ntest_path={package}/test_discover\ntop_dir={package}\ngroup_regex=([^\\.]*\\.)*\n"
        ),
    )?;
    let w = work.display();
    let service = |name: &str| available.contains(&name);
    std::fs::write(
        work.join("etc/tempest.conf"),
        format!(
            "[DEFAULT]
log_file = {w}/tempest.log
[oslo_concurrency]
lock_path = {w}/locks
[auth]
admin_username = {user}
admin_password = {password}
admin_project_name = {project}
admin_domain_name = Default
use_dynamic_credentials = true
create_isolated_networks = false
[identity]
uri_v3 = {auth_url}
auth_version = v3
region = {region}
[identity-feature-enabled]
security_compliance = false
project_tags = true
application_credentials = true
access_rules = true
[network]
project_networks_reachable = false
[service_available]
nova = {nova}
glance = {glance}
cinder = {cinder}
neutron = {neutron}
swift = false
{extra_config}",
            user = admin.username,
            password = admin.password,
            project = admin.project_name,
            nova = service("nova"),
            glance = service("glance"),
            cinder = service("cinder"),
            neutron = service("neutron"),
        ),
    )?;
    let out = Command::new(&tempest)
        .args(["run", "--regex", regex, "--exclude-regex", exclude])
        .args(["--concurrency", &concurrency.to_string()])
        .current_dir(work)
        // tempest finds its configuration in the workspace, not in the caller's.
        .env_remove("TEMPEST_CONFIG_DIR")
        .env_remove("TEMPEST_CONFIG")
        .output()
        .context("run tempest")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut totals = totals(&text).ok_or_else(|| {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        anyhow!(
            "tempest printed no totals (exit {}): {}\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if totals.failed > 0 {
        // stestr prints each failure's captured output and traceback before the totals.
        let from = text.find("Captured traceback").unwrap_or(0);
        let shown: String = text[from..].chars().take(20_000).collect();
        totals.failure_output = shown;
    }
    Ok(totals)
}

/// The totals and the failed tests' names in tempest's output.
fn totals(text: &str) -> Option<Totals> {
    let mut t = Totals::default();
    let mut seen = false;
    for line in text.lines() {
        let line = line.trim();
        let count = |prefix: &str| {
            line.strip_prefix(prefix)
                .and_then(|n| n.trim().parse::<u32>().ok())
        };
        if let Some(n) = count("- Passed:") {
            t.passed = n;
            seen = true;
        } else if let Some(n) = count("- Skipped:") {
            t.skipped = n;
        } else if let Some(n) = count("- Failed:") {
            t.failed = n;
        } else if let Some(rest) = line.strip_prefix("{").and_then(|l| l.split_once("} ")) {
            // `{0} tempest.api.identity....test_x [0.5s] ... FAILED`
            if line.ends_with("FAILED") {
                let name = rest.1.split(' ').next().unwrap_or_default();
                t.failures.push(name.to_string());
            }
        }
    }
    seen.then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_failures_are_read_from_tempest_output() {
        let out = "{0} tempest.api.identity.admin.v3.test_a.T.test_one [0.4s] ... ok\n\
                   {1} tempest.api.identity.admin.v3.test_b.T.test_two [1.2s] ... FAILED\n\
                   \n======\nTotals\n======\nRan: 3 tests in 9.1 sec.\n \
                   - Passed: 1\n - Skipped: 1\n - Expected Fail: 0\n - Unexpected Success: 0\n - Failed: 1\n";
        let t = totals(out).expect("totals");
        assert_eq!((t.passed, t.skipped, t.failed), (1, 1, 1));
        assert_eq!(
            t.failures,
            ["tempest.api.identity.admin.v3.test_b.T.test_two"]
        );
        assert!(totals("no summary here").is_none());
    }
}
