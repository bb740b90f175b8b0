//! What the crate's glommio tests share.

use std::path::PathBuf;

use glommio::{LocalExecutorBuilder, Placement};

/// Locked memory is 8 MiB here and glommio registers io_memory three times per executor.
pub const TEST_IO_MEMORY_BYTES: usize = 512 * 1024;

/// Runs `future` on a fresh glommio executor with test-sized io_memory, and waits.
pub fn run<F: std::future::Future<Output = ()>>(future: impl FnOnce() -> F + Send + 'static) {
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(TEST_IO_MEMORY_BYTES)
        .spawn(move || async move { future().await })
        .expect("an executor");
    handle.join().expect("the test ran");
}

/// A fresh (absent) scratch directory for test `name` of `area`, unique to this process.
pub fn scratch(area: &str, name: &str) -> PathBuf {
    let directory =
        std::env::temp_dir().join(format!("coracle-{area}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    directory
}
