//! coracle-server: the shard-per-core runtime (being written for issue #6).
