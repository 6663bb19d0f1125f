//! `App`: routes plus middleware, the thing a server serves.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use phaseloop_core::Loop;

use crate::api::handler::{async_handler, Handler, Middleware, Next};
use crate::api::responder::Responder;
use crate::api::router::{Route, Router};
use crate::engine::answer::Answer;
use crate::engine::config::DataRate;
use crate::engine::service::Target;
use crate::engine::service::{BodyRules, Service};
use crate::http::request::{Method, Request};
use crate::http::response::Response;

/// Routes and middleware.
///
/// ```
/// use phaseloop::{App, Response};
///
/// let app = App::new()
///     .get("/hello/:name", |_lp, req, res| {
///         let name = req.param("name").unwrap_or("world").to_string();
///         res.text(200, format!("Hello, {name}!"));
///     })
///     .get_async("/later", |_req| async { Response::text(200, "done") });
/// # let _ = app;
/// ```
pub struct App {
    pub(crate) router: Router,
    middleware: Vec<Rc<dyn Middleware>>,
    chain: Option<Rc<[Rc<dyn Middleware>]>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("routes", &self.router.routes.len())
            .field("middleware", &self.middleware.len())
            .finish()
    }
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    /// An app with no routes (every request gets 404).
    pub fn new() -> App {
        App {
            router: Router::default(),
            middleware: Vec::new(),
            chain: None,
        }
    }

    /// Adds a route for `method` and `pattern` (`/users/:id`, `/files/*`).
    pub fn route<F>(self, method: Method, pattern: &str, handler: F) -> App
    where
        F: Fn(&Loop, Request, Responder) + 'static,
    {
        self.route_handler(method, pattern, handler)
    }

    /// Adds a route served by any [`Handler`] (a type of your own).
    pub fn route_handler(mut self, method: Method, pattern: &str, handler: impl Handler) -> App {
        self.router.add(method, pattern, Rc::new(handler));
        self
    }

    /// Adds a GET route (HEAD requests use it too, without the body).
    pub fn get<F>(self, pattern: &str, handler: F) -> App
    where
        F: Fn(&Loop, Request, Responder) + 'static,
    {
        self.route(Method::Get, pattern, handler)
    }

    /// Adds a POST route.
    pub fn post<F>(self, pattern: &str, handler: F) -> App
    where
        F: Fn(&Loop, Request, Responder) + 'static,
    {
        self.route(Method::Post, pattern, handler)
    }

    /// Adds a PUT route.
    pub fn put<F>(self, pattern: &str, handler: F) -> App
    where
        F: Fn(&Loop, Request, Responder) + 'static,
    {
        self.route(Method::Put, pattern, handler)
    }

    /// Adds a DELETE route.
    pub fn delete<F>(self, pattern: &str, handler: F) -> App
    where
        F: Fn(&Loop, Request, Responder) + 'static,
    {
        self.route(Method::Delete, pattern, handler)
    }

    /// Adds a GET route served by an async function.
    pub fn get_async<F, Fut>(self, pattern: &str, f: F) -> App
    where
        F: Fn(Request) -> Fut + 'static,
        Fut: Future<Output = Response> + 'static,
    {
        self.route_handler(Method::Get, pattern, async_handler(f))
    }

    /// Adds a POST route served by an async function.
    pub fn post_async<F, Fut>(self, pattern: &str, f: F) -> App
    where
        F: Fn(Request) -> Fut + 'static,
        Fut: Future<Output = Response> + 'static,
    {
        self.route_handler(Method::Post, pattern, async_handler(f))
    }

    /// Sets the body limit of the most recently added route (413 beyond),
    /// overriding the server's.
    pub fn body_limit(self, limit: u64) -> App {
        self.on_last_route(|body| body.limit = Some(limit))
    }

    /// Sets the slowest the most recently added route's request bodies may
    /// arrive (408 below it), overriding the server's
    /// ([`crate::ServerConfig::min_body_rate`]); `None`: no minimum, for
    /// an upload route whose clients may be slow.
    pub fn min_body_rate(self, rate: Option<DataRate>) -> App {
        self.on_last_route(|body| body.min_rate = Some(rate))
    }

    /// Sets how long a whole request to the most recently added route may
    /// take to arrive once its head has (408 after), overriding the
    /// server's ([`crate::ServerConfig::request_timeout`]).
    pub fn request_timeout(self, timeout: Duration) -> App {
        self.on_last_route(|body| body.request_timeout = Some(timeout))
    }

    /// Sets a body rule of the most recently added route.
    fn on_last_route(mut self, set: impl FnOnce(&mut BodyRules)) -> App {
        if let Some(route) = self.router.routes.last_mut() {
            set(&mut route.body);
        }
        self
    }

    /// Adds a middleware; the first added runs first.
    pub fn wrap(mut self, middleware: impl Middleware) -> App {
        self.middleware.push(Rc::new(middleware));
        self.chain = None;
        self
    }

    pub(crate) fn finish(&mut self) {
        self.chain = Some(self.middleware.clone().into());
    }

    /// Resolves a request's route, leaving its parameters in the request.
    #[inline(always)] // into the connection's parse, through Service
    pub(crate) fn destination(&self, req: &mut Request) -> Target {
        let (method, token, path, params) = req.routing_parts();
        self.router.resolve(method, token, path, params)
    }

    /// The body rules of the route a request went to (looked up only for
    /// a request with a body).
    pub(crate) fn route_body_rules(&self, target: Target) -> BodyRules {
        match target {
            Target::Route { index } => self.router.routes[index as usize].body,
            Target::NotFound | Target::MethodNotAllowed => BodyRules::default(),
        }
    }

    /// The route pattern a request went to, for logs and guard reports.
    pub(crate) fn label(&self, target: Target) -> Option<Rc<str>> {
        match target {
            Target::Route { index } => Some(self.router.routes[index as usize].pattern.clone()),
            _ => None,
        }
    }

    /// Runs the middleware chain and the handler. Returns false if the
    /// handler panicked (it has then been answered with 500). Inline up to
    /// the common case, a route and no middleware.
    #[inline]
    pub(crate) fn dispatch(
        &self,
        lp: &Loop,
        target: Target,
        mut req: Request,
        res: Responder,
    ) -> bool {
        let no_middleware = self.chain.as_deref().is_some_and(<[_]>::is_empty);
        match target {
            Target::Route { index } if no_middleware => {
                // No `Next` to build and carry.
                let handler = &*self.enter_route(index, &mut req).handler;
                // The closure holds one pointer: `catch_unwind` moves it
                // through memory twice, and one holding the handler, the
                // loop, the request and the responder was copied with
                // 16-byte loads of fields just stored one by one (a
                // store-forwarding stall on every request).
                let call = &mut (handler, lp, Some((req, res)));
                catch_unwind(AssertUnwindSafe(move || {
                    let (handler, lp, args) = call;
                    if let Some((req, res)) = args.take() {
                        handler.call(lp, req, res);
                    }
                }))
                .is_ok()
            }
            _ => self.dispatch_through_chain(lp, target, req, res),
        }
    }

    /// The route at `index`, recorded in `req` as the one it matched.
    fn enter_route(&self, index: u32, req: &mut Request) -> &Route {
        let route = &self.router.routes[index as usize];
        req.set_route(Some(&route.pattern));
        route
    }

    /// [`App::dispatch`] with middleware, or for a 404 or 405.
    #[inline(never)]
    fn dispatch_through_chain(
        &self,
        lp: &Loop,
        target: Target,
        mut req: Request,
        res: Responder,
    ) -> bool {
        let endpoint: Rc<dyn Handler> = match target {
            Target::Route { index } => self.enter_route(index, &mut req).handler.clone(),
            // RFC 9110 §9.3.7: `OPTIONS *` asks about the server itself.
            Target::NotFound if req.method() == Method::Options && req.target() == "*" => {
                req.set_route(None);
                let allow = self.router.all_methods();
                Rc::new(move |_: &Loop, _req: Request, res: Responder| {
                    res.send(Response::new(200).header("Allow", allow.clone()));
                })
            }
            // RFC 9110 §15.6.2: a method no resource here knows is 501.
            Target::NotFound | Target::MethodNotAllowed
                if !self.router.knows_method(req.method()) =>
            {
                req.set_route(None);
                Rc::new(|_: &Loop, req: Request, res: Responder| {
                    res.send(Response::text(
                        501,
                        format!("Not Implemented: no route answers {}\n", req.method_str()),
                    ));
                })
            }
            Target::NotFound => {
                req.set_route(None);
                Rc::new(|_: &Loop, req: Request, res: Responder| {
                    res.send(Response::text(404, format!("Not Found: {}\n", req.path())));
                })
            }
            Target::MethodNotAllowed => {
                req.set_route(None);
                let allow = self.router.allow(req.routing_parts().2);
                Rc::new(move |_: &Loop, req: Request, res: Responder| {
                    res.send(
                        Response::text(
                            405,
                            format!("Method Not Allowed: {} {}\n", req.method_str(), req.path()),
                        )
                        .header("Allow", allow.clone()),
                    );
                })
            }
        };
        let next = Next {
            chain: self
                .chain
                .clone()
                .unwrap_or_else(|| self.middleware.clone().into()),
            index: 0,
            endpoint,
        };
        catch_unwind(AssertUnwindSafe(|| next.run(lp, req, res))).is_ok()
    }
}

/// The engine sees an app only as a [`Service`]: each method here is a
/// direct call the compiler inlines, as the engine is generic over it.
impl Service for App {
    #[inline(always)]
    fn destination(&self, req: &mut Request) -> Target {
        App::destination(self, req)
    }

    fn body_rules(&self, target: Target) -> BodyRules {
        self.route_body_rules(target)
    }

    fn label(&self, target: Target) -> Option<Rc<str>> {
        App::label(self, target)
    }

    fn route_count(&self) -> usize {
        self.router.routes.len()
    }

    #[inline(always)]
    fn dispatch(&self, lp: &Loop, target: Target, req: Request, answer: Answer<Self>) -> bool {
        App::dispatch(self, lp, target, req, Responder::from(answer))
    }
}
