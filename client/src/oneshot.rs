//! A one-value channel from the client's executor to a thread that blocks on it: a mutex
//! and a condition variable, so the waiting thread sleeps in the kernel and wakes when the
//! value is set (a futex wake), with no polling.
//!
//! The sending half is a guard: dropped without sending (the executor stopped, or
//! panicked and unwound), it sends [`Error::Runtime`] so that no caller waits forever.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;

struct Slot<T> {
    value: Mutex<Option<Result<T, Error>>>,
    ready: Condvar,
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, Option<Result<T, Error>>> {
        // A panic while holding this lock leaves the value whole: it is set in one move.
        self.value.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A new channel.
pub(crate) fn channel<T>() -> (Reply<T>, Pending<T>) {
    let slot = Arc::new(Slot {
        value: Mutex::new(None),
        ready: Condvar::new(),
    });
    (
        Reply {
            slot: Some(Arc::clone(&slot)),
        },
        Pending { slot },
    )
}

/// The sending half, used on the client's executor.
pub(crate) struct Reply<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> Reply<T> {
    /// Sends the value and wakes the waiting thread.
    pub fn send(mut self, value: Result<T, Error>) {
        if let Some(slot) = self.slot.take() {
            fill(&slot, value);
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let reason = "the client's executor stopped before answering".to_string();
            fill(&slot, Err(Error::Runtime { reason }));
        }
    }
}

fn fill<T>(slot: &Slot<T>, value: Result<T, Error>) {
    let mut held = slot.lock();
    assert!(held.is_none(), "a reply is sent once");
    *held = Some(value);
    drop(held);
    slot.ready.notify_all();
}

/// An answer that will come from the client's executor: wait for it from any thread.
#[must_use = "an operation's outcome is only known by waiting for it"]
pub struct Pending<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Pending<T> {
    /// Blocks until the answer comes.
    ///
    /// # Errors
    /// The operation's error, or [`Error::Runtime`] if the executor stopped.
    pub fn wait(self) -> Result<T, Error> {
        let mut held = self.slot.lock();
        loop {
            if let Some(value) = held.take() {
                return value;
            }
            held = self
                .slot
                .ready
                .wait(held)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Blocks until the answer comes or `timeout` passes; `Err(self)` gives the handle
    /// back on timeout, to wait again later.
    ///
    /// # Errors
    /// `Err(self)` if the answer did not come in time.
    pub fn wait_timeout(self, timeout: Duration) -> Result<Result<T, Error>, Pending<T>> {
        let deadline = Instant::now() + timeout;
        let mut held = self.slot.lock();
        loop {
            if let Some(value) = held.take() {
                return Ok(value);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                drop(held);
                return Err(self);
            }
            held = self
                .slot
                .ready
                .wait_timeout(held, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Whether the answer has come (waiting would not block).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.slot.lock().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_crosses_threads() {
        let (reply, pending) = channel::<u32>();
        let sender = std::thread::spawn(move || reply.send(Ok(7)));
        assert_eq!(pending.wait(), Ok(7));
        sender.join().expect("sent");
    }

    #[test]
    fn a_dropped_reply_answers_with_an_error() {
        let (reply, pending) = channel::<u32>();
        drop(reply);
        assert!(pending.is_ready());
        assert!(matches!(pending.wait(), Err(Error::Runtime { .. })));
    }

    #[test]
    fn waiting_can_time_out_and_resume() {
        let (reply, pending) = channel::<u32>();
        let pending = pending
            .wait_timeout(Duration::from_millis(1))
            .expect_err("nothing sent yet");
        reply.send(Ok(1));
        assert_eq!(
            pending.wait_timeout(Duration::from_secs(1)).ok(),
            Some(Ok(1))
        );
    }
}
