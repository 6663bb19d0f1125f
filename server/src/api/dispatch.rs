//! `Dispatcher`: an app as the engine serves it. Its routes, middleware,
//! fallback and error renderer, with the state already inside each
//! handler: not generic, so the engine (and every `Responder`) has one type
//! whatever the app's state is.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use phaseloop_core::Loop;

use crate::api::error::{ErrorInfo, ErrorRenderer};
use crate::api::handler::{Handler, Middleware, Next};
use crate::api::responder::Responder;
use crate::api::router::{Route, Router};
use crate::engine::answer::Answer;
use crate::engine::service::{BodyRules, Service, Target};
use crate::http::request::{Method, Request};
use crate::http::response::Response;
use crate::http::Error;

/// Routes, middleware, the fallback and the error renderer.
pub(crate) struct Dispatcher {
    pub(crate) router: Router,
    pub(crate) middleware: Vec<Rc<dyn Middleware>>,
    chain: Option<Rc<[Rc<dyn Middleware>]>>,
    /// Answers requests no route matches (404 by default).
    pub(crate) fallback: Option<Rc<dyn Handler>>,
    /// Makes the body of every error response.
    pub(crate) renderer: ErrorRenderer,
}

impl Default for Dispatcher {
    fn default() -> Self {
        Dispatcher {
            router: Router::default(),
            middleware: Vec::new(),
            chain: None,
            fallback: None,
            renderer: Rc::new(crate::api::error::render_default),
        }
    }
}

impl Dispatcher {
    /// Fixes the middleware chain before serving.
    pub(crate) fn finish(&mut self) {
        self.chain = Some(self.middleware.clone().into());
    }

    /// The error response `error` becomes for a client that does (or does
    /// not) accept JSON, made by the app's renderer.
    pub(crate) fn render(&self, status: u16, message: &str, wants_json: bool) -> Response {
        let info = ErrorInfo {
            status: status.into(),
            message,
            wants_json,
        };
        let rendered = catch_unwind(AssertUnwindSafe(|| (self.renderer)(&info)));
        rendered.unwrap_or_else(|_| {
            phaseloop_core::report!(error, {}, "phaseloop: the error renderer panicked");
            crate::api::error::render_default(&info)
        })
    }

    /// Resolves a request's route, leaving its parameters in the request.
    #[inline(always)] // into the connection's parse, through Service
    pub(crate) fn destination(&self, req: &mut Request) -> Target {
        let (method, token, path, params) = req.routing_parts();
        self.router.resolve(method, token, path, params)
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

    /// [`Dispatcher::dispatch`] with middleware, or for a 404 or 405.
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
                    let message = format!("no route answers {}", req.method_str());
                    res.send_error(&req, Error::new(501, message));
                })
            }
            Target::NotFound => {
                req.set_route(None);
                match &self.fallback {
                    Some(fallback) => fallback.clone(),
                    None => Rc::new(|_: &Loop, req: Request, res: Responder| {
                        let message = format!("no route for {}", req.path());
                        res.send_error(&req, Error::not_found(message));
                    }),
                }
            }
            Target::MethodNotAllowed => {
                req.set_route(None);
                let allow = self.router.allow(req.routing_parts().2);
                Rc::new(move |_: &Loop, req: Request, res: Responder| {
                    let message = format!("{} is not allowed on {}", req.method_str(), req.path());
                    let mut response = res.render_error(&req, Error::new(405, message));
                    response.set_header("Allow", allow.clone());
                    res.send(response);
                })
            }
        };
        self.run_chain(lp, endpoint, req, res)
    }

    /// Runs the middleware chain ending at `endpoint`. False if it panicked.
    fn run_chain(
        &self,
        lp: &Loop,
        endpoint: Rc<dyn Handler>,
        req: Request,
        res: Responder,
    ) -> bool {
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
impl Service for Dispatcher {
    #[inline(always)]
    fn destination(&self, req: &mut Request) -> Target {
        Dispatcher::destination(self, req)
    }

    fn body_rules(&self, target: Target) -> BodyRules {
        match target {
            Target::Route { index } => self.router.routes[index as usize].body,
            Target::NotFound | Target::MethodNotAllowed => BodyRules::default(),
        }
    }

    fn label(&self, target: Target) -> Option<Rc<str>> {
        match target {
            Target::Route { index } => Some(self.router.routes[index as usize].pattern.clone()),
            _ => None,
        }
    }

    fn route_count(&self) -> usize {
        self.router.routes.len()
    }

    #[inline(always)]
    fn dispatch(&self, lp: &Loop, target: Target, req: Request, answer: Answer<Self>) -> bool {
        Dispatcher::dispatch(self, lp, target, req, Responder::from(answer))
    }

    fn refuse(&self, lp: &Loop, req: Request, error: Error, answer: Answer<Self>) -> bool {
        let endpoint: Rc<dyn Handler> = Rc::new(move |_: &Loop, req: Request, res: Responder| {
            res.send_error(&req, error.clone());
        });
        self.run_chain(lp, endpoint, req, Responder::from(answer))
    }

    fn error_response(&self, status: u16, message: &str) -> Response {
        self.render(status, message, false)
    }
}
