//! A linearizability checker: Wing & Gong's search with Lowe's memoization, as in Porcupine.
//!
//! A [`History`] of [`Operation`]s (built directly, or from real-time [`Event`]s as a
//! simulator records them) is checked against a sequential [`Model`] by [`check()`], one
//! partition (key) at a time. Operations with unknown outcomes (timed out, crashed) may take
//! effect at any point after their call, or never. Two models are provided: a
//! compare-and-set register ([`CasRegister`]) and a key-value store ([`KvModel`]); and two
//! parsers for the test corpus: Jepsen etcd logs ([`parse_jepsen_log`]) and EDN key-value
//! histories ([`parse_edn_kv`]).

mod bitset;
mod cache;
mod check;
mod edn;
mod edn_kv;
mod entry_list;
mod event;
mod failure;
mod history;
mod jepsen_log;
mod kv;
mod model;
mod operation;
mod options;
mod parse_error;
mod register;
mod report;
mod search;
mod verdict;

pub use check::check;
pub use edn_kv::parse_edn_kv;
pub use event::{Event, EventKind};
pub use failure::Failure;
pub use history::{History, HistoryError};
pub use jepsen_log::parse_jepsen_log;
pub use kv::{KvInput, KvModel, KvOutput};
pub use model::Model;
pub use operation::Operation;
pub use options::CheckOptions;
pub use parse_error::ParseError;
pub use register::{CasRegister, RegisterInput, RegisterOutput};
pub use report::CheckReport;
pub use verdict::Verdict;
