//! Cooperative interruption: the long loops of the core check one process-wide flag between
//! items (particles, pairs, tiles), so that a caller watching for Ctrl-C (the Python
//! bindings) can stop a call within one item's time instead of waiting for all of it.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Ask every running core loop to stop at its next check.
pub fn request() {
    REQUESTED.store(true, Ordering::Relaxed);
}

/// Forget an earlier request (before a new call starts).
pub fn clear() {
    REQUESTED.store(false, Ordering::Relaxed);
}

/// `Err("interrupted")` once a stop was requested.
pub fn check() -> Result<()> {
    if REQUESTED.load(Ordering::Relaxed) {
        Err(Error("interrupted".into()))
    } else {
        Ok(())
    }
}
