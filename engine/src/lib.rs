//! coracle-engine
