//! What the engine needs from whatever serves requests: the narrow
//! interface through which it routes, limits and dispatches them without
//! knowing the app, its routes or its handlers.

use std::rc::Rc;

use phaseloop_core::Loop;

use crate::engine::answer::Answer;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::http::Error;

/// Where a request goes. Small and `Copy`: it travels with every request
/// from the parser to its dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// A route (by index); its parameters are in the request.
    Route { index: u32 },
    /// The path exists for other methods only: 405.
    MethodNotAllowed,
    /// No route has this path: 404.
    NotFound,
}

impl Target {
    /// The route's index for per-route counters; `u32::MAX` when none.
    #[inline]
    pub fn route_index(self) -> u32 {
        match self {
            Target::Route { index } => index,
            _ => u32::MAX,
        }
    }
}

/// A route's own rules for receiving a request body; `None` leaves the
/// server's setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyRules {
    /// The largest body (413 beyond).
    pub limit: Option<u64>,
    /// The slowest it may arrive (`Some(None)`: no minimum for this route).
    pub min_rate: Option<Option<crate::engine::config::DataRate>>,
    /// Longest the whole request may take.
    pub request_timeout: Option<std::time::Duration>,
}

/// The engine's view of an app. The engine is generic over it, so each call
/// is a direct (inlinable) one: the layering costs nothing per request.
pub(crate) trait Service: Sized + 'static {
    /// Resolves a parsed request's route, leaving its parameters in it.
    fn destination(&self, req: &mut Request) -> Target;
    /// What the route a request with a body went to sets for receiving
    /// it (each `None`: the server's).
    fn body_rules(&self, target: Target) -> BodyRules;
    /// The route's name for logs, guard reports and counters.
    fn label(&self, target: Target) -> Option<Rc<str>>;
    /// How many routes there are (counters are kept per route).
    fn route_count(&self) -> usize;
    /// Runs the request's handler, which answers through `answer`. Returns
    /// false if the handler panicked (it has then been answered 500).
    fn dispatch(&self, lp: &Loop, target: Target, req: Request, answer: Answer<Self>) -> bool;
    /// Answers a request the engine refuses (`error`) through `answer`,
    /// by way of the app's middleware: `req` is the refused request, or a
    /// stand-in with what is known of it when its head could not be
    /// parsed. Returns false if the middleware panicked.
    fn refuse(&self, lp: &Loop, req: Request, error: Error, answer: Answer<Self>) -> bool;
    /// The response for an error the engine answers itself, without a
    /// request to hand (a handler that panicked or timed out).
    fn error_response(&self, status: u16, message: &str) -> Response;
}
