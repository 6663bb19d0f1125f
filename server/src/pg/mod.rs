//! A PostgreSQL client on the loop (feature `postgres`): the
//! frontend/backend protocol v3 over nonblocking TCP or Unix sockets,
//! driven in the poll phase as Node's `pg` drives its sockets; no thread
//! does the waiting, so twenty connections carry twenty queries at once
//! (a blocking driver on the four-thread pool would carry four).
//!
//! - authentication: SCRAM-SHA-256 (its key derivation on the pool's
//!   crypto lane), md5, cleartext and trust;
//! - the extended protocol, each statement prepared once per connection
//!   and cached; statements pipelined (several sent before the first
//!   answer); each its own Sync group, so an error fails only its own;
//! - simple queries for scripts and migrations;
//! - the types of [`types`], NULL as `Option`, a row into a struct by
//!   column name ([`Row::deserialize`]);
//! - transactions on one checked-out connection, rolled back if dropped
//!   uncommitted;
//! - statement timeouts that cancel on the server (CancelRequest);
//! - [`Pool`], the seed's `pg.Pool`: `max` 20, idle timeout 30 s,
//!   connect timeout 2 s, a bounded wait queue, broken connections
//!   replaced, figures in [`PoolStats`].
//!
//! ```no_run
//! use phaseloop::pg::Pool;
//! use phaseloop::{App, Error, Json};
//!
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct User { id: i64, name: String, email: String }
//!
//! let app = App::new().get_async("/users/:id", |req, _| {
//!     // One pool per loop: a thread-local here (a cluster's loops each
//!     // make their own).
//!     thread_local! {
//!         static POOL: Pool = Pool::connect("postgres://app:secret@127.0.0.1/shop").unwrap();
//!     }
//!     let pool = POOL.with(Pool::clone);
//!     let id: Result<i64, Error> = req.param_as("id");
//!     async move {
//!         let id = id?;
//!         let row = pool
//!             .query_opt("SELECT id, name, email FROM users WHERE id = $1", &[&id])
//!             .await?
//!             .ok_or_else(|| Error::not_found("no such user"))?;
//!         Ok::<_, Error>(Json(row.deserialize::<User>()?))
//!     }
//! });
//! # let _ = app;
//! ```
//!
//! Layering: beside `client/`, on the loop and `http/` (for the
//! [`crate::Error`] a handler returns), never on the server's engine.

mod cancel;
mod config;
mod connection;
mod error;
mod listen;
mod pool;
mod row;
mod socket;
pub mod types;

pub use config::{ConnectConfig, PgHost, PoolConfig};
pub use error::{DbError, PgError, PgTimeout};
pub use listen::{ListenEvent, Listener};
pub use pool::{Pool, PoolHistograms, PoolStats, PooledConn, TimeSummary, Transaction};
pub use row::{Column, ColumnIndex, Row};
pub use types::{oid, FromSql, ToSql, Uuid, Value};
