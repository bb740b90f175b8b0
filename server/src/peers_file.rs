//! The node's address book on disk: `peers.toml` in the data directory, holding every
//! node this node knows and where it listens. Nodes added or removed at run time
//! (`coracle admin join` / `leave`) are written here, and a restart reads it back: once
//! the file exists it overrides the members given in the configuration (as a stored
//! configuration overrides bootstrap addresses in Copycat), so a restart after a join does
//! not forget the new node. The file is replaced atomically (write, fsync, rename, fsync
//! the directory).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;

const FILE_NAME: &str = "peers.toml";

/// Writes the address book.
///
/// # Errors
/// The file could not be written; the message names it.
pub fn save(data_dir: &Path, peers: &BTreeMap<u64, SocketAddr>) -> Result<(), String> {
    let path = data_dir.join(FILE_NAME);
    let temporary = data_dir.join(format!("{FILE_NAME}.tmp"));
    let mut text = String::from("# Written by coracle: the nodes this node knows.\n[peers]\n");
    for (node, address) in peers {
        text.push_str(&format!("\"{node}\" = \"{address}\"\n"));
    }
    let context =
        |what: &str, error: std::io::Error| format!("{what} {}: {error}", temporary.display());
    std::fs::create_dir_all(data_dir).map_err(|error| context("create directory for", error))?;
    let mut file = std::fs::File::create(&temporary).map_err(|error| context("create", error))?;
    file.write_all(text.as_bytes())
        .map_err(|error| context("write", error))?;
    file.sync_all().map_err(|error| context("sync", error))?;
    std::fs::rename(&temporary, &path)
        .map_err(|error| format!("rename to {}: {error}", path.display()))?;
    std::fs::File::open(data_dir)
        .and_then(|directory| directory.sync_all())
        .map_err(|error| format!("sync {}: {error}", data_dir.display()))
}

/// Reads the address book, if one was written.
///
/// # Errors
/// The file exists but cannot be read or parsed; the message names it.
pub fn load(data_dir: &Path) -> Result<Option<BTreeMap<u64, SocketAddr>>, String> {
    let path = data_dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        peers: BTreeMap<String, String>,
    }
    let file: File =
        toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
    crate::config_file::parse_members(&file.peers)
        .map(Some)
        .map_err(|error| format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_book_survives_a_restart_and_damage_is_named() {
        let directory = std::env::temp_dir().join(format!("coracle-peers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&directory);
        assert_eq!(load(&directory), Ok(None));
        let peers: BTreeMap<u64, SocketAddr> = [
            (1, SocketAddr::from(([127, 0, 0, 1], 7000))),
            (4, SocketAddr::from(([10, 0, 0, 4], 7030))),
        ]
        .into_iter()
        .collect();
        save(&directory, &peers).expect("saved");
        assert_eq!(load(&directory), Ok(Some(peers)));
        std::fs::write(directory.join(FILE_NAME), "[peers]\n\"x\" = \"nowhere\"\n").expect("write");
        let error = load(&directory).expect_err("a bad id");
        assert!(error.contains("peers.toml"), "{error}");
        let _ = std::fs::remove_dir_all(&directory);
    }
}
