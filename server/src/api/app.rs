//! `App`: routes, middleware, state and error rendering; the thing a
//! server serves.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use phaseloop_core::Loop;

use crate::api::dispatch::Dispatcher;
use crate::api::error::ErrorInfo;
use crate::api::handler::{self, Handler, Middleware};
use crate::api::responder::Responder;
use crate::engine::config::DataRate;
use crate::engine::service::BodyRules;
use crate::http::request::{Method, Request};
use crate::http::response::Response;
use crate::http::IntoResponse;

/// Routes, middleware and the app's state `S`.
///
/// A handler comes in three kinds (see the guide, `docs/GUIDE.md`):
/// returning (`get`), async (`get_async`) and loop-native (`get_with`).
///
/// ```
/// use phaseloop::{App, Error, Json, StatusCode};
/// use std::cell::RefCell;
///
/// #[derive(Default)]
/// struct Names(RefCell<Vec<String>>);
///
/// let app = App::with_state(Names::default())
///     .get("/names", |_req, names| Json(names.0.borrow().clone()))
///     .post("/names", |req, names| {
///         let Json(name): Json<String> = req.extract()?;
///         if name.is_empty() {
///             return Err(Error::unprocessable("a name cannot be empty"));
///         }
///         names.0.borrow_mut().push(name);
///         Ok(StatusCode::CREATED)
///     })
///     .get("/hello/:name", |req, _| format!("Hello, {}!", req.param("name").unwrap_or_default()))
///     .get_async("/later", |_req, _names| async { "done" });
/// # let _ = app;
/// ```
pub struct App<S = ()> {
    pub(crate) core: Dispatcher,
    state: Rc<S>,
    pub(crate) sharing: StateSharing,
    /// Rules every route added from now on starts with.
    defaults: BodyRules,
}

/// How an app's state is meant to be held when several loops serve it
/// (see [`App::with_state`]); a cluster refuses to start on a choice that
/// would split state by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateSharing {
    /// No state.
    Stateless,
    /// One state, for one loop ([`App::with_state`]).
    One,
    /// One per loop, on purpose ([`App::with_state_per_loop`]).
    PerLoop,
    /// One for all loops, at this address ([`App::with_shared_state`]).
    Shared(usize),
}

impl<S> std::fmt::Debug for App<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("routes", &self.core.router.routes.len())
            .field("middleware", &self.core.middleware.len())
            .field("state", &self.sharing)
            .finish()
    }
}

impl Default for App<()> {
    fn default() -> Self {
        Self::new()
    }
}

impl App<()> {
    /// An app without state and without routes (every request gets 404).
    pub fn new() -> App<()> {
        App::from_state(Rc::new(()), StateSharing::Stateless)
    }
}

/// Generates a method's three route adders: returning, async, loop-native.
macro_rules! method_routes {
    ($method:expr, $name:literal, $sync:ident, $async_:ident, $with:ident) => {
        #[doc = concat!("Adds a ", $name, " route answered with what `handler` returns.")]
        pub fn $sync<F, R>(self, pattern: &str, handler: F) -> App<S>
        where
            F: Fn(&mut Request, &S) -> R + 'static,
            R: IntoResponse,
        {
            self.route($method, pattern, handler)
        }

        #[doc = concat!("Adds a ", $name, " route served by an async function.")]
        pub fn $async_<F, Fut, R>(self, pattern: &str, handler: F) -> App<S>
        where
            F: Fn(Request, Rc<S>) -> Fut + 'static,
            Fut: Future<Output = R> + 'static,
            R: IntoResponse,
        {
            self.route_async($method, pattern, handler)
        }

        #[doc = concat!("Adds a ", $name, " route whose handler answers through a [`Responder`], now or later.")]
        pub fn $with<F>(self, pattern: &str, handler: F) -> App<S>
        where
            F: Fn(&Loop, Request, Responder) + 'static,
        {
            self.route_with($method, pattern, handler)
        }
    };
}

impl<S: 'static> App<S> {
    fn from_state(state: Rc<S>, sharing: StateSharing) -> App<S> {
        App {
            core: Dispatcher::default(),
            state,
            sharing,
            defaults: BodyRules::default(),
        }
    }

    /// An app whose handlers get `&state` (async ones an `Rc` of it).
    ///
    /// This state lives on the loop that serves the app. Several loops
    /// (a [`crate::Cluster`]) would each build their own, so a cluster
    /// refuses to start an app made so: choose
    /// [`App::with_state_per_loop`] or [`App::with_shared_state`].
    pub fn with_state(state: S) -> App<S> {
        App::from_state(Rc::new(state), StateSharing::One)
    }

    /// An app with one state per loop, made by `factory` (caches, say):
    /// on several loops each has its own, on purpose.
    pub fn with_state_per_loop(factory: impl FnOnce() -> S) -> App<S> {
        App::from_state(Rc::new(factory()), StateSharing::PerLoop)
    }

    /// The state handlers get, shared with whatever else holds it.
    pub fn state(&self) -> Rc<S> {
        self.state.clone()
    }

    /// An empty app with the same state, to [`App::nest`] as a group.
    pub fn group(&self) -> App<S> {
        App::from_state(self.state.clone(), self.sharing)
    }

    method_routes!(Method::Get, "GET (and HEAD)", get, get_async, get_with);
    method_routes!(Method::Post, "POST", post, post_async, post_with);
    method_routes!(Method::Put, "PUT", put, put_async, put_with);
    method_routes!(Method::Patch, "PATCH", patch, patch_async, patch_with);
    method_routes!(Method::Delete, "DELETE", delete, delete_async, delete_with);

    /// Adds a route for `method` and `pattern` (`/users/:id`, `/files/*`)
    /// answered with what `handler` returns.
    pub fn route<F, R>(self, method: Method, pattern: &str, handler: F) -> App<S>
    where
        F: Fn(&mut Request, &S) -> R + 'static,
        R: IntoResponse,
    {
        let handler = handler::returning(self.state.clone(), handler);
        self.route_handler(method, pattern, handler)
    }

    /// Adds a route served by an async function.
    pub fn route_async<F, Fut, R>(self, method: Method, pattern: &str, handler: F) -> App<S>
    where
        F: Fn(Request, Rc<S>) -> Fut + 'static,
        Fut: Future<Output = R> + 'static,
        R: IntoResponse,
    {
        let handler = handler::async_handler(self.state.clone(), handler);
        self.route_handler(method, pattern, handler)
    }

    /// Adds a route whose handler answers through a [`Responder`].
    pub fn route_with<F>(self, method: Method, pattern: &str, handler: F) -> App<S>
    where
        F: Fn(&Loop, Request, Responder) + 'static,
    {
        self.route_handler(method, pattern, handler)
    }

    /// Adds a route served by any [`Handler`] (a type of your own).
    pub fn route_handler(mut self, method: Method, pattern: &str, handler: impl Handler) -> App<S> {
        self.core.router.add(method, pattern, Rc::new(handler));
        self.set_last_route(self.defaults);
        self
    }

    /// Sets the body limit of the route added just before (413 beyond),
    /// overriding the server's: `.post("/upload", upload).body_limit(1 << 30)`.
    pub fn body_limit(self, limit: u64) -> App<S> {
        self.on_last_route(|body| body.limit = Some(limit))
    }

    /// Sets the body limit of every route added to this app (or group)
    /// from now on.
    pub fn default_body_limit(mut self, limit: u64) -> App<S> {
        self.defaults.limit = Some(limit);
        self
    }

    /// Sets the slowest the route added just before may receive its body
    /// (408 below it), overriding the server's
    /// ([`crate::ServerConfig::min_body_rate`]); `None`: no minimum, for
    /// an upload route whose clients may be slow.
    pub fn min_body_rate(self, rate: Option<DataRate>) -> App<S> {
        self.on_last_route(|body| body.min_rate = Some(rate))
    }

    /// Sets how long a whole request to the route added just before may
    /// take to arrive once its head has (408 after), overriding the
    /// server's ([`crate::ServerConfig::request_timeout`]).
    pub fn request_timeout(self, timeout: Duration) -> App<S> {
        self.on_last_route(|body| body.request_timeout = Some(timeout))
    }

    /// Sets a body rule of the most recently added route.
    fn on_last_route(mut self, set: impl FnOnce(&mut BodyRules)) -> App<S> {
        if let Some(route) = self.core.router.routes.last_mut() {
            set(&mut route.body);
        }
        self
    }

    fn set_last_route(&mut self, rules: BodyRules) {
        if let Some(route) = self.core.router.routes.last_mut() {
            route.body = rules;
        }
    }

    /// Adds a middleware; the first added runs first. It sees every
    /// request, the server's own refusals (400, 408, 413, 431, …) included.
    pub fn wrap(mut self, middleware: impl Middleware) -> App<S> {
        self.core.middleware.push(Rc::new(middleware));
        self
    }

    /// [`App::wrap`] for a closure, whose argument types are then
    /// inferred: `.wrap_fn(|lp, req, res, next| next.run(lp, req, res))`.
    pub fn wrap_fn<F>(self, middleware: F) -> App<S>
    where
        F: Fn(&Loop, Request, Responder, crate::api::handler::Next) + 'static,
    {
        self.wrap(middleware)
    }

    /// Mounts the live loop dashboard at `prefix` (`/_loop`): the page at
    /// `prefix` and `prefix/`, its JSON feed at `prefix/stats.json`, both
    /// open only to whom `access` allows (403 otherwise). Off unless
    /// mounted; it costs a request nothing when nobody watches.
    pub fn dashboard(self, prefix: &str, access: crate::api::dashboard::DashboardAccess) -> App<S> {
        use crate::api::dashboard::{admit, feed, page};
        let prefix = prefix.trim_end_matches('/');
        let access = Rc::new(access);
        let (a, b, c) = (access.clone(), access.clone(), access);
        self.get_with(prefix, move |_, req, res| {
            if let Some(res) = admit(&a, &req, res) {
                res.send(page());
            }
        })
        .get_with(&format!("{prefix}/"), move |_, req, res| {
            if let Some(res) = admit(&b, &req, res) {
                res.send(page());
            }
        })
        .get_with(&format!("{prefix}/stats.json"), move |lp, req, res| {
            if let Some(res) = admit(&c, &req, res) {
                let json = feed(lp, &res);
                res.send(json);
            }
        })
    }

    /// Answers requests no route matches (instead of 404).
    pub fn fallback<F, R>(mut self, handler: F) -> App<S>
    where
        F: Fn(&mut Request, &S) -> R + 'static,
        R: IntoResponse,
    {
        self.core.fallback = Some(Rc::new(handler::returning(self.state.clone(), handler)));
        self
    }

    /// Replaces the error renderer: what makes the body of every error
    /// response, the server's (400, 404, 405, 408, 413, 414, 431, 500,
    /// 503) and the handlers' [`crate::Error`]s.
    pub fn on_error(mut self, render: impl Fn(&ErrorInfo<'_>) -> Response + 'static) -> App<S> {
        self.core.renderer = Rc::new(render);
        self
    }

    /// Adds `group`'s routes under `prefix` (`/api` + `/todos`), each
    /// behind the group's own middleware (after this app's) and with the
    /// body rules it had in the group. Build the group with
    /// [`App::group`] to share this app's state. A group's fallback and
    /// error renderer are not used: the app's are.
    pub fn nest<S2: 'static>(mut self, prefix: &str, group: App<S2>) -> App<S> {
        let prefix = prefix.trim_end_matches('/');
        assert!(
            prefix.is_empty() || prefix.starts_with('/'),
            "nest prefix {prefix:?} must start with '/'"
        );
        let chain: Rc<[Rc<dyn Middleware>]> = group.core.middleware.clone().into();
        for route in group.core.router.routes {
            let path = route.pattern.split_once(' ').map_or("/", |(_, path)| path);
            let full = match path {
                "/" if !prefix.is_empty() => prefix.to_string(),
                _ => format!("{prefix}{path}"),
            };
            let handler: Rc<dyn Handler> = if chain.is_empty() {
                route.handler
            } else {
                Rc::new(handler::behind(chain.clone(), route.handler))
            };
            self.core.router.add(route.method, &full, handler);
            self.set_last_route(route.body);
        }
        self
    }
}

impl<T: Send + Sync + 'static> App<Arc<T>> {
    /// An app whose state is one `Arc<T>` shared by every loop: create it
    /// once, outside a cluster's app factory, and clone it in. A cluster
    /// whose loops hold different `Arc`s refuses to start.
    pub fn with_shared_state(state: Arc<T>) -> App<Arc<T>> {
        let at = Arc::as_ptr(&state) as usize;
        App::from_state(Rc::new(state), StateSharing::Shared(at))
    }
}

impl<S> App<S> {
    /// The app as the engine serves it.
    pub(crate) fn into_dispatcher(self) -> Dispatcher {
        let mut core = self.core;
        core.finish();
        core
    }
}
