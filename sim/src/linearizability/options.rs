//! Settings for a check.

/// How hard a check may try.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// The most search steps (entries visited) to spend on any one partition before giving
    /// up on it with [`super::Verdict::Unknown`]; `None` for no limit. The search is
    /// exponential in the worst case, so a simulator should set one.
    pub max_steps_per_partition: Option<u64>,
}

impl CheckOptions {
    /// Options with no step limit.
    pub fn unbounded() -> Self {
        CheckOptions {
            max_steps_per_partition: None,
        }
    }

    /// Options limiting every partition to `max_steps` search steps.
    pub fn with_max_steps(max_steps: u64) -> Self {
        CheckOptions {
            max_steps_per_partition: Some(max_steps),
        }
    }
}
