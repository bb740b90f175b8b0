//! coracle-client: the client library (being written for issue #6).
