//! Engine tests that drive one or a few replicas by hand and assert exact actions.
