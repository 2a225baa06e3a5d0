//! The journal's own metrics: how long its group commits take, by durability, and how many
//! commands share one. A durable commit waits for the disk's flush, so its duration is the
//! disk's health as the journal sees it (the figure etcd operators watch as WAL fsync
//! duration): a slow or shared disk shows there first, and every Gold and Bronze create
//! waits for one.

use prometheus::{Histogram, HistogramOpts, HistogramVec, Registry};

/// Registered on the gateway's registry; the writer keeps a copy.
#[derive(Clone, Debug)]
pub struct JournalMetrics {
    /// `drgw_journal_commit_duration_seconds{durability}`: one group's commit, `durable`
    /// (flushed before it is answered) or `relaxed` (transitions to applied only, flushed
    /// with a later commit).
    commit_duration: HistogramVec,
    /// `drgw_journal_group_commands`: the commands one group commit answers.
    group_commands: Histogram,
}

impl JournalMetrics {
    pub fn new(registry: &Registry) -> Result<JournalMetrics, prometheus::Error> {
        let m = JournalMetrics {
            commit_duration: HistogramVec::new(
                HistogramOpts::new(
                    "drgw_journal_commit_duration_seconds",
                    "Time of one journal group commit, by durability (durable: flushed to disk)",
                )
                .buckets(vec![
                    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 1.0,
                ]),
                &["durability"],
            )?,
            group_commands: Histogram::with_opts(
                HistogramOpts::new(
                    "drgw_journal_group_commands",
                    "Commands (appends, transitions, checkpoints) answered by one group commit",
                )
                .buckets(vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                ]),
            )?,
        };
        registry.register(Box::new(m.commit_duration.clone()))?;
        registry.register(Box::new(m.group_commands.clone()))?;
        Ok(m)
    }

    pub(crate) fn observe_commit(&self, relaxed: bool, seconds: f64) {
        let durability = if relaxed { "relaxed" } else { "durable" };
        self.commit_duration
            .with_label_values(&[durability])
            .observe(seconds);
    }

    pub(crate) fn observe_group(&self, commands: usize) {
        self.group_commands.observe(commands as f64);
    }

    /// (count, sum of seconds) of the commits of one durability.
    pub fn commits(&self, durability: &str) -> (u64, f64) {
        let h = self.commit_duration.with_label_values(&[durability]);
        (h.get_sample_count(), h.get_sample_sum())
    }

    /// (groups, sum of their commands).
    pub fn groups(&self) -> (u64, f64) {
        (
            self.group_commands.get_sample_count(),
            self.group_commands.get_sample_sum(),
        )
    }
}
