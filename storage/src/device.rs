//! Start-up work on a data device before the log opens files there with direct I/O.

use std::io::Write;
use std::path::Path;

use glommio::io::DmaFile;

use crate::error::{glommio_io, std_io, StorageError};

/// Name of the probe file, removed again once the probe is done.
const PROBE_FILE_NAME: &str = ".coracle-device-probe";
const PROBE_SIZE_BYTES: usize = 4096;

/// Makes glommio's first direct-I/O open on the device of `directory` a non-empty file.
///
/// glommio probes each device for polled I/O by reading from the first `DmaFile` opened on
/// it; if that file is new and empty the read touches nothing, the probe wrongly succeeds,
/// and every later read on the device fails with EOPNOTSUPP (glommio #605, #670) on this
/// project's virtio disks. glommio keeps the verdict per thread, so every executor that
/// opens log files must call this first.
///
/// # Errors
/// The probe file could not be written, opened or read.
pub async fn warm_up_device(directory: &Path) -> Result<(), StorageError> {
    let path = directory.join(PROBE_FILE_NAME);
    {
        let mut file = std::fs::File::create(&path).map_err(std_io("create", &path))?;
        file.write_all(&[0xA5; PROBE_SIZE_BYTES])
            .map_err(std_io("write", &path))?;
        file.sync_all().map_err(std_io("sync", &path))?;
    }
    let file = DmaFile::open(&path)
        .await
        .map_err(glommio_io("open", &path))?;
    let read = file
        .read_at_aligned(0, PROBE_SIZE_BYTES)
        .await
        .map_err(glommio_io("read", &path))?;
    assert_eq!(
        read.len(),
        PROBE_SIZE_BYTES,
        "the probe file is exactly one block"
    );
    file.close().await.map_err(glommio_io("close", &path))?;
    std::fs::remove_file(&path).map_err(std_io("remove", &path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::io::OpenOptions;
    use glommio::{LocalExecutorBuilder, Placement};

    /// Locked memory is 8 MiB here and glommio registers io_memory three times per executor.
    const TEST_IO_MEMORY_BYTES: usize = 512 * 1024;

    /// The regression test for glommio #605/#670: after the warm-up, a new, empty file opened
    /// first with direct I/O can be written, synced and read back.
    #[test]
    fn a_new_empty_file_reads_back_after_the_warm_up() {
        let directory = std::env::temp_dir().join(format!("coracle-device-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("a scratch directory");
        let probe_directory = directory.clone();
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name("device-test")
            .io_memory(TEST_IO_MEMORY_BYTES)
            .spawn(move || async move {
                warm_up_device(&probe_directory).await.expect("warm-up");
                let path = probe_directory.join("new-empty-segment");
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .dma_open(&path)
                    .await
                    .expect("open a new empty file");
                let mut buffer = file.alloc_dma_buffer(4096);
                buffer.as_bytes_mut().fill(b'c');
                file.write_at(buffer, 0).await.expect("write");
                file.fdatasync().await.expect("fdatasync");
                let read = file
                    .read_at_aligned(0, 4096)
                    .await
                    .expect("read after the warm-up");
                assert!(read.iter().all(|&byte| byte == b'c'));
                file.close().await.expect("close");
                assert!(
                    !probe_directory.join(PROBE_FILE_NAME).exists(),
                    "the probe is removed"
                );
            })
            .expect("an executor");
        handle.join().expect("the executor finishes");
        std::fs::remove_dir_all(&directory).expect("clean up");
    }
}
