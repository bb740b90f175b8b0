//! A wake-up flag between tasks of one executor: any number of notifiers, one waiter.
//!
//! A notification is not lost when nobody waits yet (the flag stays set), and several
//! notifications before the waiter runs wake it once: a waiter drains whatever queue the
//! signal stands for, so that is all it needs.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Signal {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    /// A signal not set.
    #[must_use]
    pub fn new() -> Signal {
        Signal::default()
    }

    /// Sets the flag and wakes the waiter, if one waits.
    pub fn notify(&self) {
        self.set.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Waits until the flag is set, and clears it.
    pub async fn wait(&self) {
        poll_fn(|context| {
            if self.set.replace(false) {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(context.waker().clone());
            Poll::Pending
        })
        .await;
    }

    /// Whether the flag is set (without clearing it).
    #[must_use]
    pub fn is_set(&self) -> bool {
        self.set.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Context;

    #[test]
    fn a_notification_before_the_wait_is_kept_and_many_wake_once() {
        let signal = Signal::new();
        signal.notify();
        signal.notify();
        let mut context = Context::from_waker(Waker::noop());
        assert!(pin!(signal.wait()).poll(&mut context).is_ready());
        let mut second = pin!(signal.wait());
        assert!(second.as_mut().poll(&mut context).is_pending());
        signal.notify();
        assert!(second.as_mut().poll(&mut context).is_ready());
    }
}
