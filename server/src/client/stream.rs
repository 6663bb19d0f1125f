//! A response taken piece by piece ([`Client::send_streamed`]): its head,
//! then its body as it arrives, then its end (or an error), with
//! backpressure: a consumer that [pauses](StreamControl::pause) stops the
//! reading, and the server's bytes wait in the kernel (TCP's own flow
//! control) until it [resumes](StreamControl::resume).
//!
//! [`Client::send_streamed`]: super::Client::send_streamed

use std::cell::{Cell, RefCell};
use std::rc::Weak;

use phaseloop_core::Loop;

use super::agent::{self, Agent};
use super::{ClientError, ClientResponse};

/// What a streamed response brings, in order: `Head` once, `Data` as it
/// comes, then `End` or `Error` (an error may also come first, instead of
/// the head).
#[derive(Debug)]
pub enum ResponseEvent<'a> {
    /// Status and fields (the body field is empty).
    Head(&'a ClientResponse),
    /// A piece of the body, decoded.
    Data(&'a [u8]),
    /// The body is complete.
    End,
    /// The exchange failed.
    Error(ClientError),
}

/// Steers a streamed response: pause the reading, resume it.
#[derive(Clone, Debug)]
pub struct StreamControl {
    pub(crate) agent: Weak<RefCell<Agent>>,
    /// The connection (slab key, id) it is read from, once it has one.
    pub(crate) conn: std::rc::Rc<Cell<Option<(usize, u64)>>>,
}

impl StreamControl {
    /// Stops reading the response until [`StreamControl::resume`].
    pub fn pause(&self) {
        if let (Some(agent), Some((key, id))) = (self.agent.upgrade(), self.conn.get()) {
            agent::set_paused(&agent, key, id, true);
        }
    }

    /// Reads on (what waited in the kernel first).
    pub fn resume(&self, lp: &Loop) {
        if let (Some(agent), Some((key, id))) = (self.agent.upgrade(), self.conn.get()) {
            if agent::set_paused(&agent, key, id, false) {
                let weak = self.agent.clone();
                lp.set_immediate(move |lp| {
                    if let Some(agent) = weak.upgrade() {
                        agent::read_more(&agent, lp, key, id);
                    }
                });
            }
        }
    }
}

/// A streamed response's consumer.
pub(crate) type Sink = Box<dyn FnMut(&Loop, ResponseEvent<'_>, &StreamControl)>;

/// A streamed response's consumer and what it has been told.
pub(crate) struct StreamState {
    pub sink: Sink,
    pub head_sent: bool,
    pub control: StreamControl,
}

/// Shared between the agent (head and pieces) and the request's final
/// callback (the rest and the end).
pub(crate) type SharedStream = std::rc::Rc<RefCell<StreamState>>;

/// Tells the consumer `event` (never while the agent is borrowed).
pub(crate) fn emit(stream: &SharedStream, lp: &Loop, event: ResponseEvent<'_>) {
    let mut state = stream.borrow_mut();
    let control = state.control.clone();
    if let ResponseEvent::Head(_) = event {
        state.head_sent = true;
    }
    (state.sink)(lp, event, &control);
}
