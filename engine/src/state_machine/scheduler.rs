//! Deterministic scheduling for state machines (SPEC §E3–§E4).
//!
//! A state machine must not read a clock or arm a timer: every replica has to reach the
//! same state from the same log. Its time is the log's: each entry carries the leader's
//! timestamp, and the state machine's clock is the highest timestamp applied so far (it
//! never goes back, even when a new leader's clock is behind). Tasks are scheduled against
//! that clock, and run when an entry's timestamp passes their due time — before the entry
//! itself is applied, in due order, each seeing the clock at its own due time. A periodic
//! task is then due again one interval after the timestamp that ran it (Copycat's rule:
//! precision is bounded by how often entries arrive, and keep-alives give the floor).
//!
//! Tasks that a running task schedules for a time already passed run before the next entry,
//! not within the same tick: `tick` hands over the list of due tasks at once.
//!
//! The scheduler holds what to run as an opaque `T` (a closure, or a value the state
//! machine interprets), so that this file stays free of the state-machine API's types.

use std::collections::BTreeMap;

/// Identifies a scheduled task, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(u64);

/// One run of a task that came due.
#[derive(Debug, PartialEq, Eq)]
pub struct DueTask<T> {
    /// The task.
    pub id: TaskId,
    /// Its due time: the state machine's clock while it runs.
    pub due_ms: u64,
    /// What to run (a periodic task's `T` is cloned for each run).
    pub task: T,
}

#[derive(Clone, Debug)]
struct Scheduled<T> {
    id: TaskId,
    interval_ms: Option<u64>,
    task: T,
}

/// The deterministic clock and task queue of one state machine.
#[derive(Clone, Debug)]
pub struct Scheduler<T> {
    clock_ms: u64,
    /// Tasks by (due time, order of scheduling): equal due times run in the order they
    /// were scheduled.
    queue: BTreeMap<(u64, u64), Scheduled<T>>,
    /// Where each task sits in `queue`, to cancel it.
    due_of: BTreeMap<TaskId, (u64, u64)>,
    next_sequence: u64,
}

impl<T> Default for Scheduler<T> {
    fn default() -> Self {
        Scheduler {
            clock_ms: 0,
            queue: BTreeMap::new(),
            due_of: BTreeMap::new(),
            next_sequence: 0,
        }
    }
}

impl<T: Clone> Scheduler<T> {
    /// An empty scheduler at time zero.
    #[must_use]
    pub fn new() -> Scheduler<T> {
        Scheduler::default()
    }

    /// The state machine's time: the highest entry timestamp applied so far (or the due
    /// time of the task running now).
    #[must_use]
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Tasks waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no task waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Runs `task` once, `delay_ms` after the current clock.
    pub fn schedule(&mut self, delay_ms: u64, task: T) -> TaskId {
        self.insert(self.clock_ms.saturating_add(delay_ms), None, task)
    }

    /// Runs `task` `initial_ms` after the current clock, then every `interval_ms` (at least
    /// 1) after the timestamp that ran it.
    pub fn schedule_interval(&mut self, initial_ms: u64, interval_ms: u64, task: T) -> TaskId {
        let due = self.clock_ms.saturating_add(initial_ms);
        self.insert(due, Some(interval_ms.max(1)), task)
    }

    /// True if the task will run again (scheduled and not cancelled).
    #[must_use]
    pub fn contains(&self, id: TaskId) -> bool {
        self.due_of.contains_key(&id)
    }

    /// Forgets a task; false if it already ran (once) or was cancelled.
    pub fn cancel(&mut self, id: TaskId) -> bool {
        match self.due_of.remove(&id) {
            Some(key) => self.queue.remove(&key).is_some(),
            None => false,
        }
    }

    /// Advances to an entry's `timestamp_ms` (never backwards) and returns, in due order,
    /// every task due strictly before it; the caller runs them before applying the entry.
    /// While the caller runs a returned task it should call [`Scheduler::run_at`] with its
    /// due time, so that the task sees the clock at that time and schedules relative to it.
    pub fn tick(&mut self, timestamp_ms: u64) -> Vec<DueTask<T>> {
        let now = timestamp_ms.max(self.clock_ms);
        let mut due = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            let (due_ms, _) = *entry.key();
            if due_ms >= now {
                break;
            }
            let scheduled = entry.remove();
            self.due_of.remove(&scheduled.id);
            due.push(DueTask {
                id: scheduled.id,
                due_ms,
                task: scheduled.task.clone(),
            });
            if let Some(interval_ms) = scheduled.interval_ms {
                // Copycat: a periodic task is next due one interval after the timestamp
                // that ran it, so one late entry does not replay every missed period.
                let next = now.saturating_add(interval_ms);
                self.reinsert(scheduled, next);
            }
        }
        self.clock_ms = now;
        due
    }

    /// Sets the clock to a due task's time while it runs; [`Scheduler::tick`] has already
    /// moved past it, and the clock returns to the entry's timestamp with
    /// [`Scheduler::finish_tasks`].
    pub fn run_at(&mut self, due_ms: u64) {
        self.clock_ms = due_ms;
    }

    /// Back to the entry's time after the due tasks ran.
    pub fn finish_tasks(&mut self, timestamp_ms: u64) {
        self.clock_ms = self.clock_ms.max(timestamp_ms);
    }

    fn insert(&mut self, due_ms: u64, interval_ms: Option<u64>, task: T) -> TaskId {
        let id = TaskId(self.next_sequence);
        let scheduled = Scheduled {
            id,
            interval_ms,
            task,
        };
        self.reinsert(scheduled, due_ms);
        id
    }

    fn reinsert(&mut self, scheduled: Scheduled<T>, due_ms: u64) {
        let key = (due_ms, self.next_sequence);
        self.next_sequence += 1;
        self.due_of.insert(scheduled.id, key);
        let replaced = self.queue.insert(key, scheduled);
        assert!(replaced.is_none(), "sequence numbers are unique");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(due: &[DueTask<&'static str>]) -> Vec<(&'static str, u64)> {
        due.iter().map(|task| (task.task, task.due_ms)).collect()
    }

    #[test]
    fn tasks_run_before_the_entry_that_passes_them_in_due_order() {
        let mut scheduler = Scheduler::new();
        scheduler.tick(1_000);
        scheduler.schedule(300, "c");
        scheduler.schedule(100, "a");
        scheduler.schedule(200, "b");
        assert!(
            scheduler.tick(1_100).is_empty(),
            "due at 1100 is not before 1100"
        );
        let due = scheduler.tick(1_250);
        assert_eq!(names(&due), vec![("a", 1_100), ("b", 1_200)]);
        assert_eq!(scheduler.clock_ms(), 1_250);
        assert_eq!(names(&scheduler.tick(5_000)), vec![("c", 1_300)]);
        assert!(scheduler.is_empty());
    }

    #[test]
    fn equal_due_times_run_in_scheduling_order() {
        let mut scheduler = Scheduler::new();
        for name in ["x", "y", "z"] {
            scheduler.schedule(10, name);
        }
        assert_eq!(
            names(&scheduler.tick(11)),
            vec![("x", 10), ("y", 10), ("z", 10)]
        );
    }

    #[test]
    fn the_clock_never_goes_back_when_a_new_leader_lags() {
        let mut scheduler = Scheduler::new();
        scheduler.tick(2_000);
        scheduler.schedule(100, "late");
        assert!(scheduler.tick(1_500).is_empty());
        assert_eq!(scheduler.clock_ms(), 2_000);
        assert_eq!(names(&scheduler.tick(2_101)), vec![("late", 2_100)]);
    }

    #[test]
    fn a_periodic_task_is_next_due_one_interval_after_the_entry_that_ran_it() {
        let mut scheduler = Scheduler::new();
        let id = scheduler.schedule_interval(100, 50, "tick");
        assert_eq!(names(&scheduler.tick(120)), vec![("tick", 100)]);
        // Next due at 120 + 50; a long silence does not replay the missed periods.
        assert!(scheduler.tick(170).is_empty());
        assert_eq!(names(&scheduler.tick(1_000)), vec![("tick", 170)]);
        assert_eq!(names(&scheduler.tick(1_051)), vec![("tick", 1_050)]);
        assert!(scheduler.cancel(id));
        assert!(scheduler.tick(10_000).is_empty());
        assert!(!scheduler.cancel(id));
    }

    #[test]
    fn a_running_task_sees_its_own_due_time_and_schedules_from_it() {
        let mut scheduler = Scheduler::new();
        scheduler.schedule(100, "first");
        for task in scheduler.tick(500) {
            scheduler.run_at(task.due_ms);
            assert_eq!(scheduler.clock_ms(), 100);
            scheduler.schedule(50, "follow-up");
        }
        scheduler.finish_tasks(500);
        assert_eq!(scheduler.clock_ms(), 500);
        // Due at 150, already before the entry at 500: it runs before the next entry.
        assert_eq!(names(&scheduler.tick(501)), vec![("follow-up", 150)]);
    }

    #[test]
    fn replicas_fed_the_same_entries_run_the_same_tasks() {
        let run = || {
            let mut scheduler = Scheduler::new();
            let mut ran = Vec::new();
            let mut prng = crate::Prng::new(7);
            for step in 0..2_000u64 {
                let timestamp = step * 10 + prng.range(0, 25);
                for task in scheduler.tick(timestamp) {
                    scheduler.run_at(task.due_ms);
                    ran.push((task.id, task.due_ms));
                    if prng.chance(1, 3) {
                        scheduler.schedule(prng.range(0, 100), task.task);
                    }
                }
                scheduler.finish_tasks(timestamp);
                if prng.chance(1, 4) {
                    scheduler.schedule(prng.range(0, 200), step);
                }
                if prng.chance(1, 50) {
                    scheduler.schedule_interval(prng.range(0, 100), prng.range(1, 300), step);
                }
            }
            ran
        };
        let first = run();
        assert!(first.len() > 500, "{} tasks ran", first.len());
        assert_eq!(first, run());
    }
}
