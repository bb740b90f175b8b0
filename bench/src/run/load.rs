//! The clients that make the load, on one glommio executor per load thread.
//!
//! Every client has its own session (a `coracle_client::Client`) on group
//! `client % groups`. Closed loop: each client issues its next operation when the previous
//! one completes. Open loop: each client issues its share of the rate on a fixed schedule,
//! without waiting for earlier operations, and an operation's latency counts from when it
//! was due, not from when it was sent — so a stall shows up in every operation it
//! delayed, instead of hiding behind the clients it kept from sending (coordinated
//! omission).
//!
//! Each thread keeps its own histograms and sends them to the main thread once per
//! interval; nothing is shared between threads on the operation path.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use coracle_client::{Client, ClientOptions};
use coracle_engine::kv::{Get, Put};
use coracle_engine::session::QueryConsistency;
use coracle_engine::state_machine::{encode_command, encode_query};
use hdrhistogram::Histogram;

use crate::report::{latency_histogram, record};

/// Warming up: operations run but are not recorded.
pub const PHASE_WARMUP: u8 = 0;
/// Measuring.
pub const PHASE_MEASURE: u8 = 1;
/// Stop issuing operations.
pub const PHASE_STOP: u8 = 2;

/// Open loop: operations a client lets be in flight before it counts the next ones as
/// failed instead of sending them (the session's own bound is higher).
const OPEN_LOOP_IN_FLIGHT_MAX: usize = 1024;

/// What one thread's clients do.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// The cluster's name.
    pub cluster: String,
    /// Node addresses.
    pub addresses: Vec<String>,
    /// The first client's number on this thread (for its group and its keys).
    pub first_client: u32,
    /// Clients on this thread.
    pub clients: u32,
    /// Groups to spread over.
    pub groups: u32,
    /// Open loop: operations per second per client.
    pub rate_per_client: Option<f64>,
    /// Bytes per value.
    pub payload: usize,
    /// Fraction of reads.
    pub reads: f64,
    /// Their level.
    pub consistency: QueryConsistency,
    /// Which server the clients talk to.
    pub selection: coracle_client::ServerSelection,
    /// Keys to use.
    pub keys: u64,
    /// How often to report.
    pub interval: Duration,
}

/// One thread's report for one interval (or its last, `last == true`).
#[derive(Debug)]
pub struct IntervalReport {
    /// Latencies recorded, µs.
    pub histogram: Histogram<u64>,
    /// Operations that failed.
    pub errors: u64,
    /// The first few error messages, for the summary.
    pub error_samples: Vec<String>,
    /// The thread's final report.
    pub last: bool,
}

/// What a load thread tells the main thread.
#[derive(Debug)]
pub enum LoadMessage {
    /// Every client of the thread has a session (or the reason one could not).
    Ready(Result<(), String>),
    /// An interval's figures.
    Interval(IntervalReport),
}

struct Recorder {
    histogram: Histogram<u64>,
    errors: u64,
    error_samples: Vec<String>,
}

impl Recorder {
    fn take(&mut self, last: bool) -> IntervalReport {
        let histogram = std::mem::replace(&mut self.histogram, latency_histogram());
        IntervalReport {
            histogram,
            errors: std::mem::take(&mut self.errors),
            error_samples: std::mem::take(&mut self.error_samples),
            last,
        }
    }

    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.error_samples.len() < 3 {
            self.error_samples.push(message);
        }
    }
}

/// Runs one load thread's clients until the phase says stop; reports through `to_main`.
pub async fn run_thread(plan: LoadPlan, phase: Arc<AtomicU8>, to_main: Sender<LoadMessage>) {
    let mut clients = Vec::new();
    for offset in 0..plan.clients {
        let number = plan.first_client + offset;
        let mut options = ClientOptions::new(plan.cluster.clone(), plan.addresses.clone());
        options.group = number % plan.groups;
        options.selection = plan.selection;
        match Client::connect(options).await {
            Ok(client) => clients.push((number, Rc::new(client))),
            Err(error) => {
                let _ = to_main.send(LoadMessage::Ready(Err(format!(
                    "client {number} could not open a session on group {}: {error}",
                    number % plan.groups
                ))));
                return;
            }
        }
    }
    let _ = to_main.send(LoadMessage::Ready(Ok(())));
    let recorder = Rc::new(RefCell::new(Recorder {
        histogram: latency_histogram(),
        errors: 0,
        error_samples: Vec::new(),
    }));
    let plan = Rc::new(plan);
    let workers: Vec<_> = clients
        .into_iter()
        .map(|(number, client)| {
            let (plan, phase, recorder) =
                (Rc::clone(&plan), Arc::clone(&phase), Rc::clone(&recorder));
            glommio::spawn_local(async move {
                match plan.rate_per_client {
                    None => closed_loop(number, &client, &plan, &phase, &recorder).await,
                    Some(rate) => open_loop(number, client, rate, &plan, &phase, &recorder).await,
                }
            })
            .detach()
        })
        .collect();
    // The reporter: one interval's histogram at a time, recorded only while measuring.
    let mut next = Instant::now() + plan.interval;
    while phase.load(Ordering::Relaxed) != PHASE_STOP {
        glommio::timer::sleep(next.saturating_duration_since(Instant::now())).await;
        next += plan.interval;
        if phase.load(Ordering::Relaxed) == PHASE_MEASURE {
            let report = recorder.borrow_mut().take(false);
            let _ = to_main.send(LoadMessage::Interval(report));
        } else {
            recorder.borrow_mut().take(false);
        }
    }
    for worker in workers {
        worker.await;
    }
    let report = recorder.borrow_mut().take(true);
    let _ = to_main.send(LoadMessage::Interval(report));
}

/// The next operation of client `number`: its bytes and whether it is a read.
struct Operations {
    state: u64,
    value: Bytes,
}

impl Operations {
    fn new(number: u32, payload: usize) -> Operations {
        let state =
            0x9E37_79B9_7F4A_7C15u64 ^ u64::from(number).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let value: Vec<u8> = (0..payload).map(|i| b'a' + (i % 26) as u8).collect();
        Operations {
            state: state.max(1),
            value: Bytes::from(value),
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: cheap, and each client's stream is its own.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn submit(&mut self, client: &Client, plan: &LoadPlan) -> coracle_client::Operation {
        let key = Bytes::from(format!("key-{:08}", self.next_random() % plan.keys));
        let read = plan.reads > 0.0 && (self.next_random() % 1_000_000) as f64 / 1e6 < plan.reads;
        if read {
            client.query(encode_query(&Get { key }), plan.consistency)
        } else {
            client.command(encode_command(&Put {
                key,
                value: self.value.clone(),
            }))
        }
    }
}

async fn closed_loop(
    number: u32,
    client: &Client,
    plan: &LoadPlan,
    phase: &AtomicU8,
    recorder: &RefCell<Recorder>,
) {
    let mut operations = Operations::new(number, plan.payload);
    while phase.load(Ordering::Relaxed) != PHASE_STOP {
        let start = Instant::now();
        let outcome = operations.submit(client, plan).await;
        if phase.load(Ordering::Relaxed) != PHASE_MEASURE {
            continue;
        }
        match outcome {
            Ok(_) => record(&mut recorder.borrow_mut().histogram, start.elapsed()),
            Err(error) => recorder.borrow_mut().error(error.to_string()),
        }
    }
}

async fn open_loop(
    number: u32,
    client: Rc<Client>,
    rate: f64,
    plan: &LoadPlan,
    phase: &Arc<AtomicU8>,
    recorder: &Rc<RefCell<Recorder>>,
) {
    let mut operations = Operations::new(number, plan.payload);
    let period = Duration::from_secs_f64(1.0 / rate);
    // Spread the clients' schedules over one period so that they do not fire together.
    let mut due = Instant::now() + period.mul_f64(f64::from(number % 997) / 997.0);
    let in_flight = Rc::new(std::cell::Cell::new(0usize));
    while phase.load(Ordering::Relaxed) != PHASE_STOP {
        let wait = due.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            glommio::timer::sleep(wait).await;
        }
        let scheduled = due;
        due += period;
        if in_flight.get() >= OPEN_LOOP_IN_FLIGHT_MAX {
            if phase.load(Ordering::Relaxed) == PHASE_MEASURE {
                recorder
                    .borrow_mut()
                    .error(format!("client {number}: {OPEN_LOOP_IN_FLIGHT_MAX} operations in flight; the rate is above what the cluster serves"));
            }
            continue;
        }
        let operation = operations.submit(&client, plan);
        in_flight.set(in_flight.get() + 1);
        let (phase, recorder, in_flight) = (
            Arc::clone(phase),
            Rc::clone(recorder),
            Rc::clone(&in_flight),
        );
        glommio::spawn_local(async move {
            let outcome = operation.await;
            in_flight.set(in_flight.get() - 1);
            if phase.load(Ordering::Relaxed) != PHASE_MEASURE {
                return;
            }
            match outcome {
                // From when it was due: the schedule, not the send, is the start.
                Ok(_) => record(&mut recorder.borrow_mut().histogram, scheduled.elapsed()),
                Err(error) => recorder.borrow_mut().error(error.to_string()),
            }
        })
        .detach();
    }
    // Let what is in flight finish (or fail) before the client goes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while in_flight.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    drop(client);
}
