//! The shard's clock: the only place the runtime reads time, handed to the pure core as
//! [`Time`] with every input.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use coracle_engine::Time;

/// Monotonic milliseconds since the clock was made, and the wall clock.
#[derive(Clone, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    #[must_use]
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// The time now. The monotonic part starts at 1 so that zero never means "now".
    #[must_use]
    pub fn now(&self) -> Time {
        let monotonic_ms = 1 + u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        Time {
            monotonic_ms,
            wall_ms,
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
