//! Serving: binding the listener, one server on a loop, a cluster of loops,
//! a supervisor of worker processes.

pub(crate) mod cluster;
pub(crate) mod listener;
#[cfg(feature = "prometheus")]
pub mod metrics;
pub(crate) mod server;
pub mod supervisor;
pub mod testing;
