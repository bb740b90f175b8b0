//! Datadriven scenario transcripts (being written).
