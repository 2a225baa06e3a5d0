//! Health probing and (optional) automatic failover.
//!
//! A background task probes every service of both sites every `interval`
//! ([`crate::admin::probe_site`] sets `drgw_site_up{site,service}`) and refreshes the
//! failover gauges. Automatic failover is off by default; when enabled, the primary must
//! fail `consecutive_failures` probes in a row of **every** service, while the gateway is in
//! `normal` on the primary, before a forced failover to the recovery site. It never fails
//! back by itself, and after it fired it re-arms only once the gateway is back in `normal`
//! on the primary (an operator's failback) and the primary answered as many probes in a
//! row: it never flaps.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{FailoverController, Phase, Site};
use crate::config::SiteName;

/// Who an automatic failover's report says asked for it.
pub const AUTOMATIC_FAILOVER: &str = "drgw (automatic: the primary stopped answering)";

/// Automatic failover settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoFailoverConfig {
    /// Off by default.
    #[serde(default)]
    pub enabled: bool,
    /// Consecutive probes in which every primary service must fail.
    #[serde(default = "default_failures")]
    pub consecutive_failures: u32,
}

fn default_failures() -> u32 {
    3
}

impl Default for AutoFailoverConfig {
    fn default() -> Self {
        AutoFailoverConfig {
            enabled: false,
            consecutive_failures: default_failures(),
        }
    }
}

/// Prober settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Time between probe rounds.
    #[serde(default = "default_interval", with = "humantime_serde_compat")]
    pub interval: Duration,
    #[serde(default)]
    pub auto_failover: AutoFailoverConfig,
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: default_interval(),
            auto_failover: AutoFailoverConfig::default(),
        }
    }
}

/// `"10s"`-style durations (humantime).
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// Decides when to fail over automatically; pure (fed one probe round at a time).
#[derive(Debug, Clone)]
pub struct AutoFailoverDetector {
    config: AutoFailoverConfig,
    /// Rounds in a row in which every primary service failed.
    down_streak: u32,
    /// Rounds in a row in which every primary service answered.
    up_streak: u32,
    /// Fired and not re-armed yet.
    fired: bool,
}

impl AutoFailoverDetector {
    /// A detector with `config`.
    pub fn new(config: AutoFailoverConfig) -> AutoFailoverDetector {
        AutoFailoverDetector {
            config,
            down_streak: 0,
            up_streak: 0,
            fired: false,
        }
    }

    /// Feeds one probe round of the primary (`up` per service) and the current state;
    /// returns true when a forced failover to the recovery site must start now.
    pub fn observe(&mut self, primary: &[bool], phase: Phase, active: Site) -> bool {
        let all_down = !primary.is_empty() && primary.iter().all(|up| !up);
        let all_up = !primary.is_empty() && primary.iter().all(|up| *up);
        self.down_streak = if all_down {
            self.down_streak.saturating_add(1)
        } else {
            0
        };
        self.up_streak = if all_up {
            self.up_streak.saturating_add(1)
        } else {
            0
        };
        let threshold = self.config.consecutive_failures.max(1);
        let normal_on_primary = phase == Phase::Normal && active == Site::Primary;
        if self.fired && normal_on_primary && self.up_streak >= threshold {
            self.fired = false;
        }
        if !self.config.enabled || self.fired || !normal_on_primary {
            return false;
        }
        if self.down_streak >= threshold {
            self.fired = true;
            return true;
        }
        false
    }
}

impl FailoverController {
    /// One probe round: both sites, gauges refreshed; returns the primary's result per
    /// service.
    pub async fn probe_once(&self) -> Vec<bool> {
        let (primary, _recovery) = tokio::join!(
            crate::admin::probe_site(self.gateway(), SiteName::Primary),
            crate::admin::probe_site(self.gateway(), SiteName::Recovery),
        );
        self.publish_metrics();
        primary.into_iter().map(|(_, up)| up).collect()
    }

    /// Starts the prober; it stops when `stop` turns true (or its sender is dropped).
    pub fn spawn_health(
        self: &Arc<Self>,
        config: HealthConfig,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut detector = AutoFailoverDetector::new(config.auto_failover);
            loop {
                let primary = this.probe_once().await;
                let s = this.failover_status();
                if detector.observe(&primary, s.phase(), s.active_site()) {
                    tracing::error!(
                        probes = config.auto_failover.consecutive_failures,
                        "primary unreachable on every service: automatic forced failover"
                    );
                    match this.forced(Site::Recovery, AUTOMATIC_FAILOVER).await {
                        Ok(r) => tracing::warn!(report = %r.id, "automatic failover done"),
                        Err(e) => tracing::error!(error = %e, "automatic failover failed"),
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(config.interval) => {}
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            return;
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOWN: [bool; 5] = [false; 5];
    const UP: [bool; 5] = [true; 5];

    #[test]
    fn off_by_default() {
        let mut d = AutoFailoverDetector::new(AutoFailoverConfig::default());
        for _ in 0..10 {
            assert!(!d.observe(&DOWN, Phase::Normal, Site::Primary));
        }
    }

    #[test]
    fn needs_every_service_down_n_times_in_a_row_and_never_flaps() {
        let mut d = AutoFailoverDetector::new(AutoFailoverConfig {
            enabled: true,
            consecutive_failures: 3,
        });
        let partly = [false, false, true, false, false];
        assert!(!d.observe(&DOWN, Phase::Normal, Site::Primary));
        assert!(!d.observe(&DOWN, Phase::Normal, Site::Primary));
        assert!(!d.observe(&partly, Phase::Normal, Site::Primary));
        assert!(!d.observe(&DOWN, Phase::Normal, Site::Primary));
        assert!(!d.observe(&DOWN, Phase::Normal, Site::Primary));
        assert!(d.observe(&DOWN, Phase::Normal, Site::Primary));
        // Failed over: never again, whatever the probes say.
        for probes in [UP, DOWN, UP, DOWN] {
            assert!(!d.observe(&probes, Phase::FailedOver, Site::Recovery));
        }
        // The operator failed back, but the primary is not proven healthy yet.
        assert!(!d.observe(&DOWN, Phase::Normal, Site::Primary));
        assert!(!d.observe(&DOWN, Phase::Normal, Site::Primary));
        assert!(!d.observe(&DOWN, Phase::Normal, Site::Primary));
        // Re-armed after 3 healthy rounds on the primary.
        for _ in 0..3 {
            assert!(!d.observe(&UP, Phase::Normal, Site::Primary));
        }
        assert!(!d.observe(&DOWN, Phase::Normal, Site::Primary));
        assert!(!d.observe(&DOWN, Phase::Normal, Site::Primary));
        assert!(d.observe(&DOWN, Phase::Normal, Site::Primary));
    }

    #[test]
    fn never_during_a_planned_switch() {
        let mut d = AutoFailoverDetector::new(AutoFailoverConfig {
            enabled: true,
            consecutive_failures: 1,
        });
        assert!(!d.observe(&DOWN, Phase::Switching, Site::Primary));
        assert!(!d.observe(&[], Phase::Normal, Site::Primary));
        assert!(d.observe(&DOWN, Phase::Normal, Site::Primary));
    }

    #[test]
    fn config_parses_with_defaults() {
        let c: HealthConfig =
            toml::from_str("interval = \"2s\"\n[auto_failover]\nenabled = true\n").expect("parses");
        assert_eq!(c.interval, Duration::from_secs(2));
        assert!(c.auto_failover.enabled);
        assert_eq!(c.auto_failover.consecutive_failures, 3);
        assert!(!HealthConfig::default().auto_failover.enabled);
    }
}
