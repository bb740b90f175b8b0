//! Runs a future that never waits (a `MemLog`'s) to completion without a runtime.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls `future` until it completes.
///
/// # Panics
/// If the future waits on something: only futures that never return `Pending` without
/// having made progress belong here (storage in memory, the conformance suite over it).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
    panic!("block_on: the future keeps waiting; it needs a real executor");
}
