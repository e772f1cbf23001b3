//! The service's only clock, injectable so that tests control time.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}
