use super::*;
use crate::test_support::run;
use coracle_engine::Prng;

fn scratch(name: &str) -> PathBuf {
    crate::test_support::scratch("snapshot-store", name)
}

fn data(seed: u64, size: usize) -> Vec<u8> {
    let mut prng = Prng::new(seed);
    (0..size)
        .map(|_| prng.next_u64().to_le_bytes()[0])
        .collect()
}

/// The names of the files in `directory`, sorted.
fn files(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .expect("list")
        .map(|item| {
            item.expect("an entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .collect();
    names.sort();
    names
}

fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = usize::try_from(offset).expect("small");
    bytes[at] ^= 1 << bit;
    std::fs::write(path, bytes).expect("write");
}

async fn open(directory: &Path, retain_stale: bool) -> (SnapshotStore, SnapshotOpenReport) {
    let mut options = SnapshotStoreOptions::new(directory);
    options.retain_stale = retain_stale;
    SnapshotStore::open(options).await.expect("open")
}

/// Writes `bytes` as the snapshot at `index` in chunks of the given sizes, in turn.
async fn write_snapshot(
    store: &SnapshotStore,
    index: u64,
    bytes: &[u8],
    chunk_sizes: &[usize],
) -> SnapshotDescriptor {
    let mut writer = store
        .create(LogIndex(index), Term(2), 1_000 + index)
        .await
        .expect("create");
    let mut offset = 0;
    for &size in chunk_sizes.iter().cycle() {
        if offset == bytes.len() {
            break;
        }
        let end = (offset + size).min(bytes.len());
        writer.write(&bytes[offset..end]).await.expect("write");
        offset = end;
    }
    assert_eq!(writer.data_size_bytes(), bytes.len() as u64);
    writer.complete().await.expect("complete")
}

async fn read_all(store: &SnapshotStore, descriptor: &SnapshotDescriptor) -> Vec<u8> {
    let reader = store.reader(descriptor).await.expect("reader");
    let mut bytes = Vec::new();
    loop {
        let chunk = reader
            .read_chunk(bytes.len() as u64, INSTALL_CHUNK_SIZE_BYTES)
            .await
            .expect("read");
        if chunk.is_empty() {
            break;
        }
        assert!(chunk.len() <= INSTALL_CHUNK_SIZE_BYTES);
        bytes.extend_from_slice(&chunk);
    }
    reader.close().await.expect("close");
    bytes
}

fn expect_corruption(result: Result<impl std::fmt::Debug, SnapshotError>) -> (PathBuf, u64) {
    match result {
        Err(SnapshotError::Storage(StorageError::Corruption { path, offset, .. })) => {
            (path, offset)
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn snapshots_written_in_chunks_read_back_in_chunks() {
    let directory = scratch("round-trip");
    let scope = directory.clone();
    run(move || async move {
        let (store, report) = open(&scope, false).await;
        assert_eq!(report, SnapshotOpenReport::default());
        assert_eq!(store.current(), None);
        let bytes = data(1, 200_003);
        let descriptor = write_snapshot(&store, 7, &bytes, &[1, 4095, 70_000, 32_768, 7]).await;
        assert_eq!(
            descriptor,
            SnapshotDescriptor {
                index: LogIndex(7),
                term: Term(2),
                timestamp_ms: 1_007,
                data_size_bytes: 200_003,
                data_checksum: crc32c::crc32c(&bytes),
            }
        );
        assert_eq!(store.current(), Some(descriptor));
        assert_eq!(read_all(&store, &descriptor).await, bytes);
        assert_eq!(
            files(&scope),
            vec!["0000000000000007-0000000000000002.snapshot"]
        );

        let reader = store.reader(&descriptor).await.expect("reader");
        assert_eq!(reader.descriptor(), descriptor);
        let chunk = reader.read_chunk(12_345, 1_000).await.expect("read");
        assert_eq!(&chunk[..], &bytes[12_345..13_345]);
        let tail = reader.read_chunk(199_990, 1_000).await.expect("read");
        assert_eq!(&tail[..], &bytes[199_990..]);
        assert!(reader
            .read_chunk(200_003, 10)
            .await
            .expect("read")
            .is_empty());
        assert!(matches!(
            reader.read_chunk(200_004, 10).await,
            Err(SnapshotError::ChunkOutOfRange {
                offset: 200_004,
                data_size_bytes: 200_003
            })
        ));
        reader.close().await.expect("close");

        drop(store);
        let (store, report) = open(&scope, false).await;
        assert_eq!(report.snapshots_count, 1);
        assert_eq!(store.current(), Some(descriptor));
        assert_eq!(read_all(&store, &descriptor).await, bytes);
    });
    std::fs::remove_dir_all(&directory).expect("clean up");
}

/// Sizes at the edges of the writer's buffering: nothing, one byte, whole I/O sizes.
#[test]
fn empty_and_block_sized_snapshots_round_trip() {
    let directory = scratch("sizes");
    let scope = directory.clone();
    run(move || async move {
        let (store, _) = open(&scope, true).await;
        let sizes = [0, 1, 4_096, IO_SIZE_BYTES, 2 * IO_SIZE_BYTES + 1];
        for (position, size) in sizes.into_iter().enumerate() {
            let bytes = data(position as u64, size);
            let index = position as u64 + 1;
            let descriptor = write_snapshot(&store, index, &bytes, &[IO_SIZE_BYTES]).await;
            assert_eq!(descriptor.data_size_bytes, size as u64);
            assert_eq!(read_all(&store, &descriptor).await, bytes);
            let path = store.path(&descriptor);
            let file_size = std::fs::metadata(&path).expect("stat").len();
            assert_eq!(file_size, DATA_OFFSET + round_up(size as u64));
        }
    });
    std::fs::remove_dir_all(&directory).expect("clean up");
}

#[test]
fn completing_a_snapshot_removes_the_older_ones() {
    let directory = scratch("older");
    let scope = directory.clone();
    run(move || async move {
        let (store, _) = open(&scope, false).await;
        let first = write_snapshot(&store, 10, &data(10, 50_000), &[32_768]).await;
        let reader = store.reader(&first).await.expect("reader");
        let second = write_snapshot(&store, 20, &data(20, 60_000), &[32_768]).await;
        assert_eq!(store.snapshots(), vec![second]);
        assert_eq!(
            files(&scope),
            vec!["0000000000000014-0000000000000002.snapshot"]
        );
        // A reader opened before keeps its (now unlinked) file: a transfer in progress ends.
        let chunk = reader.read_chunk(0, 100).await.expect("read");
        assert_eq!(&chunk[..], &data(10, 50_000)[..100]);
        reader.close().await.expect("close");
        let third = write_snapshot(&store, 30, &data(30, 10), &[3]).await;
        assert_eq!(store.snapshots(), vec![third]);
        assert_eq!(
            files(&scope),
            vec!["000000000000001e-0000000000000002.snapshot"]
        );
        assert!(store.reader(&second).await.is_err(), "removed");
    });
    std::fs::remove_dir_all(&directory).expect("clean up");
}

#[test]
fn retain_stale_keeps_older_snapshots_until_a_store_without_it_opens() {
    let directory = scratch("retain");
    let scope = directory.clone();
    run(move || async move {
        let (store, _) = open(&scope, true).await;
        let mut written = Vec::new();
        for index in [3, 6, 9] {
            let bytes = data(index, 5_000 * index as usize);
            written.push(write_snapshot(&store, index, &bytes, &[4_000]).await);
        }
        assert_eq!(store.snapshots(), written);
        assert_eq!(store.current(), Some(written[2]));
        assert_eq!(files(&scope).len(), 3);
        for descriptor in &written {
            let size = usize::try_from(descriptor.data_size_bytes).expect("small");
            let index = descriptor.index.0;
            assert_eq!(read_all(&store, descriptor).await, data(index, size));
        }
        drop(store);

        let (store, report) = open(&scope, true).await;
        assert_eq!(report.snapshots_count, 3);
        assert_eq!(store.snapshots(), written);
        drop(store);

        let (store, report) = open(&scope, false).await;
        assert_eq!(report.stale_snapshots_removed, 2);
        assert_eq!(report.snapshots_count, 1);
        assert_eq!(store.snapshots(), vec![written[2]]);
        assert_eq!(files(&scope).len(), 1);
    });
    std::fs::remove_dir_all(&directory).expect("clean up");
}

#[test]
fn an_abandoned_writer_leaves_nothing_visible_after_reopen() {
    let directory = scratch("abandoned");
    let scope = directory.clone();
    run(move || async move {
        let (store, _) = open(&scope, false).await;
        let kept = write_snapshot(&store, 5, &data(5, 9_000), &[9_000]).await;
        let mut writer = store.create(LogIndex(9), Term(3), 0).await.expect("create");
        writer.write(&data(9, 100_000)).await.expect("write");
        drop(writer); // As a crash before `complete` would leave it.
        assert_eq!(store.current(), Some(kept));
        assert!(files(&scope).contains(&"0000000000000009-0000000000000003.snapshot.tmp".into()));

        // The slot is free again; `abort` removes the file at once.
        let writer = store.create(LogIndex(9), Term(3), 0).await.expect("create");
        writer.abort().await.expect("abort");
        assert_eq!(
            files(&scope),
            vec!["0000000000000005-0000000000000002.snapshot"]
        );

        let mut writer = store
            .install(LogIndex(12), Term(3), 0)
            .await
            .expect("install");
        writer
            .write_at_offset(0, &data(12, 40_000))
            .await
            .expect("write");
        drop(writer);
        drop(store);
        let (store, report) = open(&scope, false).await;
        assert_eq!(report.temporary_files_removed, 1);
        assert_eq!(report.snapshots_count, 1);
        assert_eq!(store.current(), Some(kept));
        assert_eq!(
            files(&scope),
            vec!["0000000000000005-0000000000000002.snapshot"]
        );
    });
    std::fs::remove_dir_all(&directory).expect("clean up");
}

#[test]
fn a_flipped_bit_in_the_data_is_refused_with_file_and_offset() {
    let directory = scratch("data-flip");
    let scope = directory.clone();
    run(move || async move {
        let (store, _) = open(&scope, false).await;
        let bytes = data(4, 100_000);
        let descriptor = write_snapshot(&store, 4, &bytes, &[32_768]).await;
        let path = store.path(&descriptor);
        for (at, bit) in [(0, 0), (4_095, 7), (50_000, 3), (99_999, 5)] {
            flip_bit(&path, DATA_OFFSET + at, bit);
            let (reported, offset) = expect_corruption(store.reader(&descriptor).await);
            assert_eq!(reported, path);
            assert_eq!(offset, DATA_OFFSET, "one checksum covers the data");
            flip_bit(&path, DATA_OFFSET + at, bit);
            assert_eq!(read_all(&store, &descriptor).await, bytes);
        }
    });
    std::fs::remove_dir_all(&directory).expect("clean up");
}

#[test]
fn a_flipped_bit_in_the_descriptor_is_refused_with_file_and_offset() {
    let directory = scratch("descriptor-flip");
    let scope = directory.clone();
    run(move || async move {
        let (store, _) = open(&scope, false).await;
        let descriptor = write_snapshot(&store, 8, &data(8, 3_000), &[1_000]).await;
        let path = store.path(&descriptor);
        drop(store);
        for bit in 0..DESCRIPTOR_SIZE_BYTES * 8 {
            let offset = bit as u64 / 8;
            let shift = u8::try_from(bit % 8).expect("small");
            flip_bit(&path, offset, shift);
            let options = SnapshotStoreOptions::new(&scope);
            let (reported, at) = expect_corruption(SnapshotStore::open(options).await);
            assert_eq!(reported, path, "bit {bit}");
            assert!(at < DESCRIPTOR_SIZE_BYTES as u64, "bit {bit}: offset {at}");
            flip_bit(&path, offset, shift);
        }
        // Damage after the store opened is caught when a reader opens.
        let (store, _) = open(&scope, false).await;
        flip_bit(&path, 40, 0); // data size
        let (reported, _) = expect_corruption(store.reader(&descriptor).await);
        assert_eq!(reported, path);
    });
    std::fs::remove_dir_all(&directory).expect("clean up");
}

#[test]
fn a_cut_short_or_foreign_snapshot_file_is_refused_on_open() {
    let directory = scratch("cut");
    let scope = directory.clone();
    run(move || async move {
        let (store, _) = open(&scope, false).await;
        let descriptor = write_snapshot(&store, 2, &data(2, 10_000), &[10_000]).await;
        let path = store.path(&descriptor);
        drop(store);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_len(DATA_OFFSET + 100).expect("truncate");
        drop(file);
        let (reported, offset) =
            expect_corruption(SnapshotStore::open(SnapshotStoreOptions::new(&scope)).await);
        assert_eq!((reported, offset), (path.clone(), DATA_OFFSET + 100));
        std::fs::remove_file(&path).expect("remove");

        let foreign = scope.join("latest.snapshot");
        std::fs::write(&foreign, b"not ours").expect("write");
        let (reported, offset) =
            expect_corruption(SnapshotStore::open(SnapshotStoreOptions::new(&scope)).await);
        assert_eq!((reported, offset), (foreign, 0));
    });
    std::fs::remove_dir_all(&directory).expect("clean up");
}

#[test]
fn install_chunks_must_arrive_in_order() {
    let directory = scratch("install");
    let scope = directory.clone();
    run(move || async move {
        let (store, _) = open(&scope, false).await;
        let bytes = data(20, 5 * INSTALL_CHUNK_SIZE_BYTES + 123);
        let mut writer = store
            .install(LogIndex(20), Term(4), 77)
            .await
            .expect("install");
        let chunk = INSTALL_CHUNK_SIZE_BYTES;
        writer
            .write_at_offset(0, &bytes[..chunk])
            .await
            .expect("first chunk");
        let gap = writer.write_at_offset(2 * chunk as u64, &bytes[2 * chunk..3 * chunk]);
        match gap.await {
            Err(SnapshotError::UnexpectedOffset {
                expected_offset,
                offset,
            }) => assert_eq!((expected_offset, offset), (chunk as u64, 2 * chunk as u64)),
            other => panic!("a gap: {other:?}"),
        }
        let overlap = writer.write_at_offset(0, &bytes[..chunk]).await;
        assert!(
            matches!(
                &overlap,
                Err(SnapshotError::UnexpectedOffset { expected_offset, offset: 0 })
                    if *expected_offset == chunk as u64
            ),
            "an overlap: {overlap:?}"
        );
        assert!(overlap
            .expect_err("refused")
            .to_string()
            .contains("overlap"));
        // Refused chunks wrote nothing: the writer goes on from where it was.
        let mut offset = chunk;
        while offset < bytes.len() {
            let end = (offset + chunk).min(bytes.len());
            writer
                .write_at_offset(offset as u64, &bytes[offset..end])
                .await
                .expect("next chunk");
            offset = end;
        }
        let descriptor = writer.complete().await.expect("complete");
        assert_eq!(descriptor.index, LogIndex(20));
        assert_eq!(descriptor.term, Term(4));
        assert_eq!(descriptor.timestamp_ms, 77);
        assert_eq!(read_all(&store, &descriptor).await, bytes);
    });
    std::fs::remove_dir_all(&directory).expect("clean up");
}

#[test]
fn stale_and_duplicate_writers_are_refused() {
    let directory = scratch("stale");
    let scope = directory.clone();
    run(move || async move {
        let (store, _) = open(&scope, false).await;
        write_snapshot(&store, 10, &data(10, 100), &[100]).await;
        for index in [5, 10] {
            assert!(matches!(
                store.create(LogIndex(index), Term(9), 0).await,
                Err(SnapshotError::NotNewer {
                    current_index: LogIndex(10),
                    ..
                })
            ));
        }
        let mut slow = store
            .create(LogIndex(20), Term(2), 0)
            .await
            .expect("create");
        assert!(matches!(
            store.create(LogIndex(20), Term(2), 0).await,
            Err(SnapshotError::AlreadyWriting { .. })
        ));
        slow.write(&data(1, 10_000)).await.expect("write");
        let newer = write_snapshot(&store, 30, &data(30, 100), &[100]).await;
        // The slower writer finishes after a newer snapshot: refused, and its file removed.
        assert!(matches!(
            slow.complete().await,
            Err(SnapshotError::NotNewer {
                index: LogIndex(20),
                current_index: LogIndex(30)
            })
        ));
        assert_eq!(store.current(), Some(newer));
        assert_eq!(
            files(&scope),
            vec!["000000000000001e-0000000000000002.snapshot"]
        );
    });
    std::fs::remove_dir_all(&directory).expect("clean up");
}

#[test]
fn descriptors_decode_only_when_whole_and_complete() {
    let descriptor = SnapshotDescriptor {
        index: LogIndex(123),
        term: Term(4),
        timestamp_ms: 1_700_000_000_000,
        data_size_bytes: 1 << 33,
        data_checksum: 0xDEAD_BEEF,
    };
    let good = encode_descriptor(&descriptor);
    assert_eq!(decode_descriptor(&good), Ok(descriptor));
    for bit in 0..DESCRIPTOR_SIZE_BYTES * 8 {
        let mut bad = good;
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(decode_descriptor(&bad).is_err(), "bit {bit}");
    }
    for cut in 0..DESCRIPTOR_SIZE_BYTES {
        assert!(decode_descriptor(&good[..cut]).is_err(), "cut at {cut}");
    }
    // Behind a valid checksum: an incomplete snapshot, unknown flags, reserved bytes.
    let reseal = |mut bytes: [u8; DESCRIPTOR_SIZE_BYTES]| {
        let checksum = crc32c::crc32c(&bytes[..60]);
        bytes[60..].copy_from_slice(&checksum.to_le_bytes());
        bytes
    };
    for (at, value, offset) in [
        (12, 0, 12),
        (12, 3, 12),
        (8, 2, 8),
        (55, 1, 52),
        (16, 0, 16),
    ] {
        let mut bad = good;
        bad[at] = value;
        if at == 16 {
            bad[16..24].fill(0);
        }
        assert_eq!(
            decode_descriptor(&reseal(bad)).map_err(|error| error.0),
            Err(offset),
            "byte {at} = {value}"
        );
    }
    let mut prng = Prng::new(5);
    for _ in 0..20_000 {
        let length = usize::try_from(prng.range(0, 80)).expect("small");
        let mut bytes: Vec<u8> = (0..length)
            .map(|_| prng.next_u64().to_le_bytes()[0])
            .collect();
        if bytes.len() == DESCRIPTOR_SIZE_BYTES && prng.chance(1, 2) {
            bytes[..8].copy_from_slice(&MAGIC);
            let checksum = crc32c::crc32c(&bytes[..60]);
            bytes[60..].copy_from_slice(&checksum.to_le_bytes());
        }
        let _ = decode_descriptor(&bytes);
    }
}

#[test]
fn file_names_parse_only_in_the_form_written() {
    let directory = Path::new("/d");
    let path = snapshot_path(directory, LogIndex(0xAB), Term(u64::MAX));
    assert_eq!(
        path,
        Path::new("/d/00000000000000ab-ffffffffffffffff.snapshot")
    );
    assert_eq!(
        parse_stem("00000000000000ab-ffffffffffffffff"),
        Some((LogIndex(0xAB), Term(u64::MAX)))
    );
    for stem in [
        "00000000000000AB-0000000000000001",
        "ab-1",
        "00000000000000ab",
        "00000000000000ab-00000000000000001",
        "0000000000000000-0000000000000001",
        "+000000000000000a-0000000000000001",
        "00000000000000ab-000000000000000g",
    ] {
        assert_eq!(parse_stem(stem), None, "{stem}");
    }
}
