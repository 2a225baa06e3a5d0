//! Hot reload triggers: SIGHUP, and a change of the policy file seen by polling its
//! modification time and length every second (no file-notification crate; a poll also
//! survives editors that replace the file).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::PolicyStage;

/// How often the file is polled.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies a version of the file: modification time and length.
pub type FileStamp = (SystemTime, u64);

/// The file's stamp; `None` when it cannot be read (a missing file is a change too).
pub fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

pub(crate) fn spawn(
    stage: Arc<PolicyStage>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; policy reloads by file change and admin API only");
                None
            }
        };
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let sighup = async {
                match hangup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let sighup = std::future::pending::<Option<()>>();
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
                _ = sighup => {
                    tracing::info!("SIGHUP: reloading the policy");
                    // Errors are logged by reload; the running policy stays.
                    let _ = stage.reload();
                }
                _ = poll.tick() => {
                    if stage.file_changed() {
                        tracing::info!(path = ?stage.path(), "policy file changed: reloading");
                        let _ = stage.reload();
                    }
                }
            }
        }
    })
}
