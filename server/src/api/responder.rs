//! `Responder`: the handler's one way to answer, now or later; and
//! `BodyWriter` for a body written piece by piece. Both are the user's face
//! of the engine's handles ([`Answer`], [`Stream`]).

use std::fmt;

use phaseloop_core::Loop;
use serde::Serialize;

use crate::api::dispatch::Dispatcher;
use crate::engine::answer::{Answer, Stream};
use crate::engine::exchange::StreamError;
use crate::http::request::Request;
use crate::http::response::{Body, Response};
use crate::http::{Error, StatusCode};

/// Answers one request. Use it at once or move it into a callback and use it
/// later; it must be used exactly once. Dropping it unused answers 500.
pub struct Responder {
    answer: Answer<Dispatcher>,
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Responder");
        if let Some((conn, seq)) = self.answer.ids() {
            out.field("conn", &conn).field("seq", &seq);
        }
        out.finish()
    }
}

impl From<Answer<Dispatcher>> for Responder {
    #[inline(always)]
    fn from(answer: Answer<Dispatcher>) -> Self {
        Responder { answer }
    }
}

impl Responder {
    /// Registers `hook` to see (and may change) the response before it is
    /// written: how middleware adds headers or logs the status.
    pub fn on_send(&mut self, hook: impl FnOnce(&mut Response) + 'static) {
        self.answer.on_send(hook);
    }

    /// Accepts a WebSocket upgrade of `req`: answers 101 and, once it is
    /// written, calls `on_open` with the [`crate::ws::WebSocket`] (set its
    /// callbacks there). A request that is not a valid handshake gets a
    /// clear refusal instead: 426 with `Upgrade: websocket` for a plain
    /// request, 426 with `Sec-WebSocket-Version: 13` for another version,
    /// 400 for a malformed one.
    pub fn websocket(
        self,
        req: &Request,
        cfg: crate::ws::WsConfig,
        on_open: impl FnOnce(&Loop, crate::ws::WebSocket) + 'static,
    ) {
        match crate::ws::handshake::answer(req) {
            Ok(response) => {
                let hook =
                    Box::new(move |lp: &Loop, up| crate::ws::socket::open(lp, up, cfg, on_open));
                self.answer.upgrade(response, hook);
            }
            Err(refusal) => self.send(refusal),
        }
    }

    /// Sends `response`. If the client has gone, it is dropped quietly.
    /// An [`Error`] turned response gets its body from the app's error
    /// renderer, as text (use [`Responder::send_error`] to let the
    /// request's `Accept` choose).
    #[inline(always)]
    pub fn send(self, response: Response) {
        self.send_rendering(response, false);
    }

    /// Sends what `value` becomes ([`crate::IntoResponse`]), an error's body
    /// rendered for what `req` accepts.
    pub fn reply(self, req: &Request, value: impl crate::IntoResponse) {
        let response = value.into_response();
        let wants_json = response.unrendered && req.accepts_json();
        self.send_rendering(response, wants_json);
    }

    /// Sends `error`, its body made by the app's error renderer for what
    /// `req` accepts (JSON or text).
    pub fn send_error(self, req: &Request, error: Error) {
        let response = self.render_error(req, error);
        self.send(response);
    }

    /// The response `error` becomes for `req`, by the app's renderer.
    pub fn render_error(&self, req: &Request, error: Error) -> Response {
        let response = self.render(error.status(), error.message(), req.accepts_json());
        match error.retry_after_secs() {
            Some(secs) => response.header("retry-after", secs.to_string()),
            None => response,
        }
    }

    /// Sends `response`, rendering an error's body as JSON or text.
    #[inline(always)]
    pub(crate) fn send_rendering(self, mut response: Response, wants_json: bool) {
        if response.unrendered {
            response = self.render_unrendered(response, wants_json);
        }
        self.answer.send(response);
    }

    /// An error response's body, by the app's renderer; its other fields
    /// (a handler's headers) kept.
    #[cold]
    #[inline(never)]
    fn render_unrendered(&self, response: Response, wants_json: bool) -> Response {
        let message = String::from_utf8_lossy(response.body_bytes()).into_owned();
        let mut rendered = self.render(response.status_code(), &message, wants_json);
        for (name, value) in response.headers() {
            rendered.append_header(name.to_string(), value.to_vec());
        }
        rendered
    }

    fn render(&self, status: StatusCode, message: &str, wants_json: bool) -> Response {
        match self.answer.service() {
            Some(app) => app.render(status.as_u16(), message, wants_json),
            None => crate::api::error::render_default(&crate::api::error::ErrorInfo {
                status,
                message,
                wants_json,
            }),
        }
    }

    /// Sends a `text/plain` response.
    #[inline]
    pub fn text(self, status: impl Into<StatusCode>, body: impl Into<Body>) {
        self.send(Response::text(status, body));
    }

    /// Sends an `application/json` response.
    pub fn json<T: Serialize + ?Sized>(self, status: impl Into<StatusCode>, value: &T) {
        self.send(Response::json(status, value));
    }

    /// Sends `{"error": message}`.
    pub fn json_error(self, status: impl Into<StatusCode>, message: &str) {
        self.send(Response::json_error(status, message));
    }

    /// Lets `transform` take the response the handler sends (not a
    /// stream) and send it, or another, later through the [`Responder`] it
    /// is given: for middleware whose work on the response must leave the
    /// loop (compression on the pool). Transforms run innermost first,
    /// before the `on_send` hooks; a transform that drops its responder
    /// answers 500.
    pub fn on_send_later(&mut self, transform: impl FnOnce(Response, SendOn) + 'static) {
        self.answer.transform(Box::new(move |response, send| {
            transform(response, SendOn { send: Some(send) })
        }));
    }

    /// True while the connection that asked is still open.
    pub fn is_connected(&self) -> bool {
        self.answer.is_connected()
    }

    /// Starts a streamed response: `response`'s status and headers go out
    /// now with `Transfer-Encoding: chunked` (HTTP/1.0 clients get the body
    /// delimited by the connection's end), its body (if any) as the first
    /// piece; the rest follows through the returned [`BodyWriter`].
    pub fn stream(self, response: Response) -> BodyWriter {
        BodyWriter {
            stream: self.answer.stream(response),
        }
    }

    /// Starts a stream of Server-Sent Events (`text/event-stream`), with a
    /// keep-alive comment every [`SSE_KEEP_ALIVE`](crate::sse::SSE_KEEP_ALIVE).
    pub fn sse(self, lp: &Loop) -> crate::sse::SseWriter {
        self.sse_every(lp, crate::sse::SSE_KEEP_ALIVE)
    }

    /// [`Responder::sse`] with a keep-alive comment every `every`.
    pub fn sse_every(self, lp: &Loop, every: std::time::Duration) -> crate::sse::SseWriter {
        let body = self.stream(crate::api::sse::sse_response());
        crate::api::sse::SseWriter::start(lp, body, every)
    }

    /// True while the request still waits for this answer: the client is
    /// connected and no handler timeout answered in its place.
    pub fn is_awaited(&self) -> bool {
        self.answer.is_awaited()
    }

    /// Wakes `waker` once the request stops waiting (see
    /// [`Responder::is_awaited`]).
    pub(crate) fn watch_cancel(&self, waker: &std::task::Waker) {
        self.answer.watch_cancel(waker);
    }

    /// Ends [`Responder::watch_cancel`]'s watch.
    pub(crate) fn forget_cancel(&self) {
        self.answer.forget_cancel();
    }

    /// The serving engine's counters, responses by route, latency and
    /// buffered bytes (`None` when dispatched in process).
    pub(crate) fn server_figures(&self) -> Option<crate::engine::answer::ServerFigures> {
        self.answer.server_figures()
    }

    /// Answers 500 for a handler that panicked.
    pub(crate) fn answer_panic(self) {
        self.answer.answer_panic();
    }
}

/// Sends a response on, once: what [`Responder::on_send_later`]'s
/// transform is given. Dropped unused, it answers 500.
pub struct SendOn {
    send: Option<crate::engine::answer::SendLater>,
}

impl fmt::Debug for SendOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendOn").finish_non_exhaustive()
    }
}

impl SendOn {
    /// Sends `response` on its way (the next transform, the hooks, the
    /// client).
    pub fn send(mut self, response: Response) {
        if let Some(send) = self.send.take() {
            send(response);
        }
    }
}

/// The body of a streamed response, written piece by piece from any callback
/// on the loop. [`BodyWriter::finish`] ends it; dropping it unfinished cuts
/// the body short (the client sees it incomplete) and closes the connection.
pub struct BodyWriter {
    stream: Stream<Dispatcher>,
}

impl fmt::Debug for BodyWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (conn, open) = self.stream.state();
        f.debug_struct("BodyWriter")
            .field("conn", &conn)
            .field("open", &open)
            .finish()
    }
}

impl BodyWriter {
    /// Sends `data` as the next piece. `Err(Congested)` means the client
    /// has not taken the earlier pieces yet (nothing was queued: retry from a
    /// later callback); `Err(Closed)` that it is gone.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StreamError> {
        self.stream.write(data)
    }

    /// True when the next [`BodyWriter::write`] would be refused: check it
    /// before producing the next piece (reading it from disk, say), and wait
    /// with [`BodyWriter::on_drain`] instead.
    pub fn congested(&self) -> bool {
        self.stream.congested()
    }

    /// Runs `callback` when the client has taken most of what is waiting
    /// for it: the way to resume after [`StreamError::Congested`] without
    /// polling. Dropped unrun if the client goes away.
    pub fn on_drain(&self, callback: impl FnOnce(&Loop) + 'static) {
        self.stream.on_drain(callback);
    }

    /// Ends the body.
    pub fn finish(mut self) {
        self.stream.end(false);
    }
}
