//! The API handlers are written against: the app and its router, handlers
//! and middleware, and the responder. It stands on the engine (it answers
//! through the engine's handle); the engine never names anything here.

pub(crate) mod app;
pub(crate) mod compression;
pub(crate) mod dashboard;
pub(crate) mod dispatch;
pub(crate) mod error;
pub(crate) mod handler;
pub mod middleware;
mod path_table;
pub(crate) mod redirect;
pub(crate) mod responder;
pub(crate) mod router;
pub(crate) mod serve_dir;
pub(crate) mod sse;
