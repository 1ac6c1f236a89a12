//! A chaos run for shardgate (`make chaos`): two real shardgate proxies in
//! front of three shards (a real `redis-server` master and replica each)
//! and three real `redis-sentinel`s, a mixed load through both proxies
//! whose every reply is checked, random faults (processes killed, frozen
//! and restarted; a Sentinel and a proxy restarted; backend links delayed,
//! stalled and reset through [`test_support::Relay`]), and a checker that
//! compares what clients were told with what the servers hold at the end.
//! See `docs/chaos.md` for the fault model and how to read the table.
//!
//! Why a crate of its own with a binary, rather than an integration test of
//! `shardgate-bin`: a run lasts minutes to hours, prints a table and exits
//! non-zero on a violation, so it is a program that `make chaos` runs with
//! options (`--minutes`, `--seed`); it is built on the same harness as the
//! tests (`test-support`, `sandbox`: real processes on free loopback ports
//! in temp dirs, killed on drop) and drives the real `shardgate` binary
//! (found next to its own executable, or `--shardgate PATH`). Keeping it
//! out of `shardgate-bin` leaves that crate to the binary and its tests,
//! and keeps a chaos run out of `cargo test`; `make test` runs a short,
//! seeded one after the tests.
//!
//! # Layout
//! - [`clock`]: one clock for every record (ms since the run started).
//! - [`journal`]: what clients were told and what the faults did; the
//!   checker reads only this.
//! - [`cluster`]: the topology: servers behind relays, Sentinels, proxies;
//!   "healed" as a checkable condition.
//! - [`workload`]: the client kinds, each checking every reply it gets.
//! - [`faults`]: the fault kinds and the scheduler that applies them one at
//!   a time and waits for recovery and healing with deadlines.
//! - [`monitor`]: background watchers: Sentinel `+switch-master`, proxy
//!   liveness, RSS.
//! - [`check`]: the verdicts, pure functions of the journal.
//! - [`report`]: the table.
//! - [`pubsub_failover`]: `--check-pubsub-failover`, a focused check of a
//!   finding, kept out of `make test`.
//! - [`run`]: one run from start to verdict.

pub mod check;
pub mod clock;
pub mod cluster;
pub mod faults;
pub mod journal;
pub mod monitor;
pub mod pubsub_failover;
pub mod report;
pub mod run;
pub mod workload;

pub use run::{run, Options};
