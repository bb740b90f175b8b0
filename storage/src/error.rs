//! What can go wrong in storage. Operating errors are values; corruption names its file
//! and offset.

use std::path::{Path, PathBuf};

use coracle_engine::LogIndex;

/// A storage operation that did not succeed.
#[derive(Debug)]
pub enum StorageError {
    /// The operating system refused an operation on a file.
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Stored bytes are damaged (not a torn tail): never skipped, never repaired silently.
    Corruption {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damage in the file.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// An earlier write or sync failed: the log stopped, and nothing written since the last
    /// successful sync may be assumed durable (fail-stop, never retried).
    Stopped,
    /// Entries handed to `append` do not follow the log (a hole, or before the first entry).
    NotContiguous {
        /// The index the log expected at most.
        expected_at_most: LogIndex,
        /// The index it got.
        got: LogIndex,
    },
    /// A request the log refuses as asked (for example compacting the segment that takes
    /// appends); nothing was changed.
    Refused {
        /// Why.
        reason: String,
    },
    /// A read asked for entries the log does not hold (compacted, or never written).
    OutOfRange {
        /// The first index asked for that is missing.
        index: LogIndex,
    },
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::Io {
                operation,
                path,
                source,
            } => {
                write!(f, "{operation} {}: {source}", path.display())
            }
            StorageError::Corruption {
                path,
                offset,
                reason,
            } => {
                write!(
                    f,
                    "corruption in {} at offset {offset}: {reason}",
                    path.display()
                )
            }
            StorageError::Stopped => write!(f, "the log stopped after an I/O error"),
            StorageError::NotContiguous {
                expected_at_most,
                got,
            } => {
                write!(
                    f,
                    "append of index {got} leaves a hole (next is at most {expected_at_most})"
                )
            }
            StorageError::OutOfRange { index } => write!(f, "entry {index} is not in the log"),
            StorageError::Refused { reason } => write!(f, "refused: {reason}"),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Maps a std I/O error on `path` to a storage error naming the operation.
pub fn std_io(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = PathBuf::from(path);
    move |source| StorageError::Io {
        operation,
        path,
        source,
    }
}

/// Maps a glommio error on `path` to a storage error naming the operation.
pub fn glommio_io(
    operation: &'static str,
    path: &Path,
) -> impl FnOnce(glommio::GlommioError<()>) -> StorageError {
    let path = PathBuf::from(path);
    move |error| StorageError::Io {
        operation,
        path,
        source: error.into(),
    }
}

/// A direct write that put down fewer bytes than asked is an I/O error (a full disk), never
/// a partial success.
///
/// # Errors
/// `Io` with `WriteZero` when `written != length`.
pub fn check_written(path: &Path, written: usize, length: usize) -> Result<(), StorageError> {
    if written == length {
        return Ok(());
    }
    Err(StorageError::Io {
        operation: "write",
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write: {written} of {length} bytes"),
        ),
    })
}
