//! Small files replaced atomically: write `<name>.tmp`, fsync it, rename it over `<name>`,
//! fsync the directory. A crash leaves the old contents or the new ones, never a mix; a
//! leftover `<name>.tmp` (a crash before the rename) is ignored by [`load`] and overwritten
//! by the next [`replace`].
//!
//! The callers (hard state, configuration) own their formats and checksums: this module
//! only moves bytes. It uses `std::fs`, not glommio: the files are a few hundred bytes,
//! written rarely, and the rename and directory sync are synchronous calls either way.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{std_io, StorageError};

/// What a temporary file's name ends with.
pub const TEMPORARY_SUFFIX: &str = ".tmp";

/// The temporary file that [`replace`] writes before renaming it to `name`.
#[must_use]
pub fn temporary_name(name: &str) -> String {
    format!("{name}{TEMPORARY_SUFFIX}")
}

fn assert_plain_name(name: &str) {
    assert!(!name.is_empty(), "a file name");
    assert!(
        !name.contains('/') && name != "." && name != "..",
        "a name inside the directory, not a path: {name}"
    );
    assert!(
        !name.ends_with(TEMPORARY_SUFFIX),
        "the temporary name is this module's"
    );
}

/// Makes `bytes` the contents of `directory/name`, atomically and durably.
///
/// # Errors
/// Any I/O error. The old contents are then still the stored ones — or the new ones, if
/// only the directory sync failed: callers must treat an error as fatal, not retry as if
/// nothing had happened.
pub fn replace(directory: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    assert_plain_name(name);
    let temporary = directory.join(temporary_name(name));
    let path = directory.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .map_err(std_io("create", &temporary))?;
    file.write_all(bytes).map_err(std_io("write", &temporary))?;
    file.sync_all().map_err(std_io("sync", &temporary))?;
    drop(file);
    std::fs::rename(&temporary, &path).map_err(std_io("rename", &path))?;
    sync_directory(directory)
}

/// The contents of `directory/name`, or `None` if there is no such file. At most
/// `size_bytes_max + 1` bytes are read, whatever the file's size, so that a damaged or
/// foreign file cannot make the caller allocate more: a result longer than `size_bytes_max`
/// means the file is too large for its format.
///
/// # Errors
/// I/O errors other than the file's absence.
pub fn load(
    directory: &Path,
    name: &str,
    size_bytes_max: u64,
) -> Result<Option<Vec<u8>>, StorageError> {
    assert_plain_name(name);
    assert!(size_bytes_max < u64::MAX, "room for the one extra byte");
    let path = directory.join(name);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(std_io("open", &path)(error)),
    };
    let mut bytes = Vec::new();
    file.take(size_bytes_max + 1)
        .read_to_end(&mut bytes)
        .map_err(std_io("read", &path))?;
    assert!(bytes.len() as u64 <= size_bytes_max + 1);
    Ok(Some(bytes))
}

/// Makes the directory's entries (new names, renames, removals) durable.
///
/// # Errors
/// The directory could not be opened or synced.
pub fn sync_directory(directory: &Path) -> Result<(), StorageError> {
    File::open(directory)
        .and_then(|directory| directory.sync_all())
        .map_err(std_io("sync directory", directory))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let directory =
            std::env::temp_dir().join(format!("coracle-atomic-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&directory);
        std::fs::create_dir_all(&directory).expect("scratch directory");
        directory
    }

    #[test]
    fn a_missing_file_is_none_and_replacements_round_trip() {
        let directory = scratch("round-trip");
        assert_eq!(load(&directory, "state", 64).expect("load"), None);
        for contents in [&b"first"[..], b"", b"a longer second version"] {
            replace(&directory, "state", contents).expect("replace");
            assert_eq!(
                load(&directory, "state", 64).expect("load").as_deref(),
                Some(contents)
            );
        }
        assert!(
            !directory.join(temporary_name("state")).exists(),
            "the temporary file was renamed"
        );
        std::fs::remove_dir_all(&directory).expect("clean up");
    }

    #[test]
    fn a_leftover_temporary_file_is_ignored_then_overwritten() {
        let directory = scratch("leftover");
        replace(&directory, "state", b"old").expect("replace");
        // A crash between the write and the rename leaves this behind.
        std::fs::write(directory.join(temporary_name("state")), b"half-wri").expect("write");
        assert_eq!(
            load(&directory, "state", 64).expect("load").as_deref(),
            Some(&b"old"[..])
        );
        replace(&directory, "state", b"new").expect("replace");
        assert_eq!(
            load(&directory, "state", 64).expect("load").as_deref(),
            Some(&b"new"[..])
        );
        assert!(!directory.join(temporary_name("state")).exists());
        std::fs::remove_dir_all(&directory).expect("clean up");
    }

    #[test]
    fn load_reads_at_most_one_byte_past_the_bound() {
        let directory = scratch("bound");
        std::fs::write(directory.join("big"), vec![7u8; 1 << 20]).expect("write");
        let bytes = load(&directory, "big", 29).expect("load").expect("present");
        assert_eq!(bytes.len(), 30);
        std::fs::remove_dir_all(&directory).expect("clean up");
    }

    #[test]
    #[should_panic(expected = "not a path")]
    fn a_path_is_not_a_name() {
        let _ = load(Path::new("/tmp"), "a/b", 8);
    }
}
