//! # phaseloop-core
//!
//! A hand-written, libuv-style phased event loop for Rust, reproducing the
//! Node.js model: one [`Loop`] per thread whose tick runs **timers → pending →
//! idle → prepare → poll → check → close**, with the `next_tick` and
//! promise-job microtask queues drained after every callback; Rust futures
//! as promise jobs; a bounded, laned thread [`pool`] for file system, crypto,
//! DNS and compression; [`Worker`] threads with their own loops.
//!
//! ```
//! use std::time::Duration;
//! use phaseloop_core::Loop;
//!
//! let lp = Loop::new().unwrap();
//! lp.run_main(|lp| {
//!     lp.set_timeout(Duration::ZERO, |_| println!("timeout"));
//!     lp.set_immediate(|_| println!("immediate"));
//!     lp.next_tick(|_| println!("next tick"));
//! });
//! ```
//!
//! Start reading at [`Loop`] (its contract) and `Loop::run_once` in
//! `event_loop.rs`: the tick in nine lines.
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod clock;
mod event_loop;
mod guard;
mod handle_slots;
mod hooks;
mod immediates;
pub mod io;
pub mod log;
mod metrics;
mod microtasks;
pub mod oneshot;
pub mod pool;
mod remote;
mod signal;
mod sleep;
mod task;
mod timers;
#[cfg(feature = "tokio")]
pub mod tokio_bridge;
mod worker;

pub use event_loop::{
    Loop, LoopBuilder, RunMode, DEFAULT_DELAY_RESOLUTION, DEFAULT_EVENTS_CAPACITY,
};
pub use guard::{BlockKind, BlockReport, DEFAULT_BLOCK_THRESHOLD};
pub use hooks::{HookId, HookKind};
pub use immediates::ImmediateId;
pub use io::{IoEvent, IoOutcome, IoToken};
pub use metrics::{LoopMetrics, Phase};
pub use pool::{crypto, dns, fs, zlib, Job, Lane, Pool, PoolBuilder, PoolError, PoolStats};
pub use remote::{LoopHandle, PostError, DEFAULT_POST_CAPACITY};
pub use signal::Signal;
pub use sleep::{sleep, Sleep};
pub use task::{yield_now, Task, YieldNow};
pub use timers::{TimerId, MIN_TIMER_DELAY};
pub use worker::{ParentPort, Worker, WorkerEvent};

/// Re-exported so users register sources without naming mio's version.
pub use mio;

/// Re-exported for [`report!`]'s expansion and for handlers' own spans.
pub use tracing;
