//! Panics anywhere in a test process, counted: the gateway and the simulator run in the
//! test's own process, where a panic in one of their tasks ends that task and nothing else.
//! A test calls [`count`] first and checks [`seen`] at the end. The hook is installed once
//! per process, however many tests call [`count`]; the default hook still prints each panic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

static PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

/// Starts counting panics in this process (from the first call on).
pub fn count() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

/// The panics counted so far in this process.
pub fn seen() -> usize {
    PANICS.load(Ordering::SeqCst)
}
