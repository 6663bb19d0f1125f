//! Server-Sent Events (the WHATWG HTML standard's `text/event-stream`):
//! [`Responder::sse`](crate::Responder::sse) starts the stream and gives an
//! [`SseWriter`] that sends [`SseEvent`]s (`event`, `data`, `id`, `retry`
//! fields) and, on a timer, keep-alive comments so that proxies and
//! clients do not take a quiet stream for a dead one. Backpressure is the
//! streamed body's: a writer whose client has not taken what was sent is
//! told so ([`StreamError::Congested`]) and can wait with
//! [`SseWriter::on_drain`]. A reconnecting client's `Last-Event-ID` is
//! [`Request::last_event_id`](crate::Request::last_event_id).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use phaseloop_core::{Loop, TimerId};

use crate::api::responder::BodyWriter;
use crate::http::response::Response;
use crate::StreamError;

/// How often a quiet stream gets a keep-alive comment, by default.
pub const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One event: its data and, optionally, its type, id and the retry time
/// it asks a reconnecting client to wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    event: Option<String>,
    id: Option<String>,
    retry_ms: Option<u64>,
    data: String,
}

/// Takes line breaks out of a field that must be one line.
fn one_line(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '\0'))
        .collect()
}

impl SseEvent {
    /// An event carrying `data` (line breaks become several `data:` lines,
    /// which the client joins back).
    pub fn data(data: impl Into<String>) -> SseEvent {
        SseEvent {
            data: data.into(),
            ..SseEvent::default()
        }
    }

    /// Its type (`event:`; the client's `addEventListener` name).
    pub fn event(mut self, name: &str) -> SseEvent {
        self.event = Some(one_line(name));
        self
    }

    /// Its id (`id:`): a reconnecting client sends the last one back as
    /// `Last-Event-ID`.
    pub fn id(mut self, id: impl ToString) -> SseEvent {
        self.id = Some(one_line(&id.to_string()));
        self
    }

    /// The reconnection delay it asks for (`retry:`), milliseconds.
    pub fn retry(mut self, ms: u64) -> SseEvent {
        self.retry_ms = Some(ms);
        self
    }

    /// The event as it goes on the wire, its blank line included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 32);
        if let Some(event) = &self.event {
            out.extend_from_slice(format!("event: {event}\n").as_bytes());
        }
        if let Some(id) = &self.id {
            out.extend_from_slice(format!("id: {id}\n").as_bytes());
        }
        if let Some(ms) = self.retry_ms {
            out.extend_from_slice(format!("retry: {ms}\n").as_bytes());
        }
        // Every line of the data (CRLF, LF and CR all end one).
        let data = self.data.replace("\r\n", "\n").replace('\r', "\n");
        for line in data.split('\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out
    }
}

/// The writer of an event stream. Dropping it (or [`SseWriter::finish`])
/// ends the stream; its keep-alive timer stops with it.
#[derive(Debug)]
pub struct SseWriter {
    body: Rc<RefCell<Option<BodyWriter>>>,
    keep_alive: Option<TimerId>,
}

/// The response that starts an event stream.
pub(crate) fn sse_response() -> Response {
    Response::new(200)
        .header("Content-Type", "text/event-stream")
        .header("Cache-Control", "no-cache")
        // nginx buffers a proxied response unless told not to.
        .header("X-Accel-Buffering", "no")
}

impl SseWriter {
    /// Wraps `body`, with a keep-alive comment every `every` while it is
    /// open (unreferenced: it never keeps the loop alive).
    pub(crate) fn start(lp: &Loop, body: BodyWriter, every: Duration) -> SseWriter {
        let body = Rc::new(RefCell::new(Some(body)));
        let weak = Rc::downgrade(&body);
        let timer = lp.set_interval(every, move |_| {
            if let Some(body) = weak.upgrade() {
                if let Some(writer) = body.borrow_mut().as_mut() {
                    // A congested stream skips its comment: it is not quiet.
                    let _ = writer.write(b": keep-alive\n\n");
                }
            }
        });
        lp.unref_timer(timer);
        SseWriter {
            body,
            keep_alive: Some(timer),
        }
    }

    /// Sends `event`. `Err(Congested)`: the client has not taken what was
    /// sent before (nothing was queued: send it later, after
    /// [`SseWriter::on_drain`]); `Err(Closed)`: the client is gone.
    pub fn send(&self, event: &SseEvent) -> Result<(), StreamError> {
        match self.body.borrow_mut().as_mut() {
            Some(writer) => writer.write(&event.encode()),
            None => Err(StreamError::Closed),
        }
    }

    /// Sends a comment line (ignored by clients).
    pub fn comment(&self, text: &str) -> Result<(), StreamError> {
        let line = format!(": {}\n\n", one_line(text));
        match self.body.borrow_mut().as_mut() {
            Some(writer) => writer.write(line.as_bytes()),
            None => Err(StreamError::Closed),
        }
    }

    /// True when the next event would be refused as congested.
    pub fn congested(&self) -> bool {
        self.body
            .borrow()
            .as_ref()
            .is_none_or(BodyWriter::congested)
    }

    /// Runs `callback` once the client has taken most of what waits.
    pub fn on_drain(&self, callback: impl FnOnce(&Loop) + 'static) {
        if let Some(writer) = self.body.borrow().as_ref() {
            writer.on_drain(callback);
        }
    }

    /// Ends the stream.
    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if let Some(t) = self.keep_alive.take() {
            Loop::with_current(|lp| lp.clear_timer(t));
        }
        if let Some(writer) = self.body.borrow_mut().take() {
            writer.finish();
        }
    }
}

impl Drop for SseWriter {
    fn drop(&mut self) {
        self.end();
    }
}
