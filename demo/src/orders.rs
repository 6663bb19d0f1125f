//! Orders: validated, saved durably (fsync) before the 201, then the
//! restaurant notified from `set_immediate` by a webhook (`outbox.rs`),
//! whose every outcome is journalled too, so that after a crash every
//! acknowledged order's notification resumes until delivered (or refused
//! for good).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use phaseloop::{Request, Responder};
use phaseloop_core::{Job, Lane, Loop};
use serde_json::{json, Value};

use crate::journal::{AppendError, Journal, Scanned};

/// The one field start-up needs from an order record: read into this, a
/// record costs no `Value` tree of the whole order (start-up replays every
/// record, millions after a load test).
#[derive(serde::Deserialize)]
struct OrderId {
    id: u64,
}

/// A notification record: a delivery (`delivered_ms`), a final failure
/// (`failed_ms`) or a failed attempt (`attempt`).
#[derive(serde::Deserialize)]
struct NotifiedOrder {
    order_id: u64,
    #[serde(default)]
    delivered_ms: Option<u64>,
    #[serde(default)]
    failed_ms: Option<u64>,
    #[serde(default)]
    attempt: Option<u32>,
}

impl NotifiedOrder {
    /// The order's notification is over: delivered, or refused for good.
    fn is_final(&self) -> bool {
        self.delivered_ms.is_some() || self.failed_ms.is_some()
    }

    fn state(&self) -> Delivery {
        if self.failed_ms.is_some() {
            Delivery::Failed
        } else {
            Delivery::Delivered
        }
    }
}

/// Where an order's notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Not sent yet (or waiting for the breaker, or on disk past the
    /// outbox's queue).
    Pending,
    /// An attempt is out.
    Sending,
    /// An attempt failed; the next waits for its backoff.
    Retrying,
    /// The restaurant took it (2xx).
    Delivered,
    /// The restaurant refused it for good (a 4xx).
    Failed,
}

impl Delivery {
    fn name(self) -> &'static str {
        match self {
            Delivery::Pending => "pending",
            Delivery::Sending => "sending",
            Delivery::Retrying => "retrying",
            Delivery::Delivered => "delivered",
            Delivery::Failed => "failed",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, Delivery::Delivered | Delivery::Failed)
    }
}

/// The body limit of `POST /api/orders` (the seed's `express.json({limit: "10kb"})`).
pub const ORDER_BODY_LIMIT: u64 = 10 * 1024;

pub struct Entry {
    /// Which loop's journal holds the order.
    slot: usize,
    offset: u64,
    len: u32,
    /// Its notification's state, and its failed attempts.
    delivery: Delivery,
    attempts: u16,
    /// What happened to the order in this process, in order.
    timeline: Timeline,
}

/// Something that happened to an order in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Saved,
    SavedBeforeRestart,
    SavedByAnotherWorker,
    Responded,
    Notified,
    NotificationFailed,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Saved => "saved",
            Event::SavedBeforeRestart => "saved (before restart)",
            Event::SavedByAnotherWorker => "saved (by another worker)",
            Event::Responded => "responded",
            Event::Notified => "notified",
            Event::NotificationFailed => "notification failed",
        }
    }
}

/// An order's events in order, kept inline: the index holds an entry per
/// order ever saved (millions after a load test), so an entry costs no
/// allocation and ~32 bytes, not a vector of names.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    events: [Event; 4],
    len: u8,
}

impl Timeline {
    fn new(first: Event) -> Timeline {
        Timeline {
            events: [first; 4],
            len: 1,
        }
    }

    /// Adds `event`; an order has each at most once, so four places are
    /// enough (any more are dropped).
    fn push(&mut self, event: Event) {
        if let Some(place) = self.events.get_mut(usize::from(self.len)) {
            *place = event;
            self.len += 1;
        }
    }

    fn names(&self) -> Vec<&'static str> {
        self.events[..usize::from(self.len)]
            .iter()
            .map(|e| e.name())
            .collect()
    }
}

/// Every order this process knows, shared by its loops (each loop writes
/// its own journals, "slots"; any loop can look any order up).
pub type SharedIndex = Arc<Mutex<HashMap<u64, Entry>>>;

/// How the loops serving one data directory share its orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// The loops of one process: one index for all (single loop, `--loops`).
    Loops,
    /// Worker processes (`--workers`): each indexes every journal, and
    /// reads on in the other workers' journals as they grow.
    Processes,
}

/// Another live worker's journals, indexed up to these offsets.
#[derive(Debug, Clone, Copy)]
struct Foreign {
    slot: usize,
    orders_read: u64,
    notes_read: u64,
}

pub struct Orders {
    data_dir: PathBuf,
    slot: usize,
    slots: usize,
    orders: Rc<Journal>,
    notes: Rc<Journal>,
    index: SharedIndex,
    /// Process mode: the other workers' journals and how far they are read.
    foreign: RefCell<Vec<Foreign>>,
    /// The next id this slot hands out; ids of slot `s` are `s (mod slots)`,
    /// so loops (and processes, given distinct slots) never collide.
    next_id: Cell<u64>,
    pub notified: Cell<u64>,
    pub replayed: Cell<u64>,
    /// Delivers the notifications.
    outbox: Rc<crate::outbox::Outbox>,
    /// Live subscribers to orders' steps (`GET /api/orders/:id/events`),
    /// by order: on this loop, for orders whose steps happen on it.
    watchers: RefCell<HashMap<u64, Vec<Watcher>>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The slots whose journals are in `data_dir`: `orders.log` and
/// `notifications.log` are slot 0's, `orders-K.log` and
/// `notifications-K.log` slot K's.
fn slots_on_disk(data_dir: &Path) -> Vec<usize> {
    let mut slots: Vec<usize> = std::fs::read_dir(data_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let stem = name.to_str()?.strip_suffix(".log")?;
            let rest = stem
                .strip_prefix("orders")
                .or_else(|| stem.strip_prefix("notifications"))?;
            match rest {
                "" => Some(0),
                _ => rest.strip_prefix('-')?.parse().ok(),
            }
        })
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots
}

/// An order record's (id, offset, line length) in its journal.
type Located = (u64, u64, u32);

/// What reading one slot's order journal found.
struct SlotOrders {
    records: Vec<Located>,
    scanned: Scanned,
}

fn read_orders(path: &Path, from: u64) -> std::io::Result<SlotOrders> {
    let mut records = Vec::new();
    let scanned = crate::journal::scan_from(path, from, |offset, len, payload| {
        if let Ok(OrderId { id }) = serde_json::from_slice::<OrderId>(payload) {
            records.push((id, offset, len));
        }
    })?;
    Ok(SlotOrders { records, scanned })
}

/// The orders whose notification is over, with how, in the notification
/// journal at `path` from `from` on.
fn read_notes(path: &Path, from: u64) -> std::io::Result<(Vec<(u64, Delivery)>, Scanned)> {
    let mut ids = Vec::new();
    let scanned = crate::journal::scan_from(path, from, |_, _, payload| {
        if let Ok(note) = serde_json::from_slice::<NotifiedOrder>(payload) {
            if note.is_final() {
                ids.push((note.order_id, note.state()));
            }
        }
    })?;
    Ok((ids, scanned))
}

/// What one read of a worker's journal found between two offsets.
struct TailPart<T> {
    slot: usize,
    from: u64,
    to: u64,
    found: Vec<T>,
}

/// What one look at the other workers' journals found: records, and the
/// order ids of notifications.
struct Tail {
    orders: Vec<TailPart<Located>>,
    notes: Vec<TailPart<(u64, Delivery)>>,
}

/// Reads what the other workers appended since `foreign` was read. A
/// journal found shorter than what was read (cut back after a failed
/// write, or recovered by a restart) is read again from its start.
fn read_tail(data_dir: &Path, foreign: &[Foreign]) -> Tail {
    let mut tail = Tail {
        orders: Vec::new(),
        notes: Vec::new(),
    };
    for f in foreign {
        let (orders_path, notes_path) = Orders::journal_paths(data_dir, f.slot);
        let start = |path: &Path, read: u64| match std::fs::metadata(path) {
            Ok(m) if m.len() < read => 0,
            _ => read,
        };
        // Notes first: a note seen now is for an order already on disk,
        // so the orders read next include it.
        let from = start(&notes_path, f.notes_read);
        if let Ok((ids, scanned)) = read_notes(&notes_path, from) {
            tail.notes.push(TailPart {
                slot: f.slot,
                from,
                to: scanned.read_end,
                found: ids,
            });
        }
        let from = start(&orders_path, f.orders_read);
        if let Ok(found) = read_orders(&orders_path, from) {
            tail.orders.push(TailPart {
                slot: f.slot,
                from,
                to: found.scanned.read_end,
                found: found.records,
            });
        }
    }
    tail
}

/// What `GET /api/orders/:id` answers for a stored record.
fn order_view(
    id: u64,
    record: &Value,
    delivery: Delivery,
    attempts: u16,
    timeline: &[&str],
) -> Value {
    json!({
        "id": id,
        "order": record.get("order"),
        "created_ms": record.get("created_ms"),
        "notification": delivery.name(),
        // Attempts made: the failed ones, and the one out or that ended it.
        "notification_attempts": attempts
            + u16::from(matches!(delivery, Delivery::Sending | Delivery::Delivered | Delivery::Failed)),
        "timeline": timeline,
    })
}

/// A live subscriber to an order's steps: an SSE stream
/// (`GET /api/orders/:id/events`) or a WebSocket (`GET /ws/orders`).
pub enum Watcher {
    Sse(phaseloop::sse::SseWriter),
    Ws(phaseloop::ws::WebSocket),
}

impl Watcher {
    /// Sends step `n` (or, without `n`, a passing delivery state); false
    /// if the subscriber is gone or too slow to take it (it is dropped).
    fn tell(
        &self,
        id: u64,
        n: Option<usize>,
        event: Option<Event>,
        delivery: Delivery,
        attempts: u16,
    ) -> bool {
        match (n, event) {
            (Some(n), Some(event)) => self.tell_json(
                id,
                Some(n),
                "step",
                json!({ "step": event.name(), "notification": delivery.name(), "attempts": attempts }),
            ),
            _ => self.tell_json(
                id,
                None,
                "delivery",
                json!({ "notification": delivery.name(), "attempts": attempts }),
            ),
        }
    }

    /// Sends an event of `kind` ("step", with its number `n`, or
    /// "delivery") about order `id` with `fields`: an SSE event whose data
    /// is `fields`, or a WebSocket message of `fields` with the order, the
    /// kind and the number. False if the subscriber is gone or too slow.
    pub fn tell_json(&self, id: u64, n: Option<usize>, kind: &str, fields: Value) -> bool {
        match self {
            Watcher::Sse(w) => {
                let mut event = phaseloop::sse::SseEvent::data(fields.to_string()).event(kind);
                if let Some(n) = n {
                    event = event.id(n);
                }
                w.send(&event).is_ok()
            }
            Watcher::Ws(ws) => {
                let mut message = json!({ "order": id, "event": kind });
                if let Some(n) = n {
                    message["id"] = json!(n);
                }
                if let (Some(m), Value::Object(f)) = (message.as_object_mut(), fields) {
                    m.extend(f);
                }
                ws.send_text(&message.to_string()).is_ok()
            }
        }
    }

    /// Ends a subscription: an SSE stream finishes (a WebSocket stays
    /// open for its other orders).
    pub fn finish(self) {
        if let Watcher::Sse(w) = self {
            w.finish();
        }
    }
}

/// The order id of a `{"subscribe": ID}` message, or what is wrong with it.
fn parse_subscribe(message: &phaseloop::ws::Message) -> Result<u64, String> {
    let phaseloop::ws::Message::Text(text) = message else {
        return Err("send {\"subscribe\": ORDER_ID} as text".into());
    };
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("subscribe").and_then(Value::as_u64))
        .filter(|id| *id > 0)
        .ok_or_else(|| "send {\"subscribe\": ORDER_ID} with a positive order id".into())
}

/// Orders one WebSocket may follow at once.
const WS_SUBSCRIPTIONS_MAX: usize = 64;

/// `GET /ws/orders`, whichever store the orders are in: a WebSocket on
/// which the client sends `{"subscribe": ID}` for each order it follows
/// (at most [`WS_SUBSCRIPTIONS_MAX`]); `subscribe` sends that order's
/// steps so far and registers it for the rest (JSON text messages, until
/// the notification's outcome), or says why not, which the client gets as
/// `{"error": ...}`.
pub fn ws_subscriptions(
    req: Request,
    res: Responder,
    subscribe: impl Fn(&Loop, &phaseloop::ws::WebSocket, u64) -> Result<(), String> + 'static,
) {
    let cfg = phaseloop::ws::WsConfig {
        max_message: 4 * 1024,
        write_high_water: 256 * 1024,
        ..phaseloop::ws::WsConfig::default()
    };
    res.websocket(&req, cfg, move |_, ws| {
        let following = std::cell::Cell::new(0usize);
        ws.on_message(move |lp, ws, message| {
            let taken = parse_subscribe(&message).and_then(|id| {
                if following.get() >= WS_SUBSCRIPTIONS_MAX {
                    return Err(format!(
                        "at most {WS_SUBSCRIPTIONS_MAX} orders per connection"
                    ));
                }
                subscribe(lp, ws, id)
            });
            match taken {
                Ok(()) => following.set(following.get() + 1),
                Err(error) => {
                    let _ = ws.send_text(&json!({ "error": error }).to_string());
                }
            }
        });
    });
}

/// The `:id` of an order route, or `None` when it is not an order id.
pub fn order_id(req: &Request) -> Option<u64> {
    req.param("id").as_deref().and_then(crate::users::parse_id)
}

/// Step `n` of an order (its `n`th timeline event) as an event: id `n`.
fn step_event(
    n: usize,
    event: Event,
    delivery: Delivery,
    attempts: u16,
) -> phaseloop::sse::SseEvent {
    let data =
        json!({ "step": event.name(), "notification": delivery.name(), "attempts": attempts });
    phaseloop::sse::SseEvent::data(data.to_string())
        .event("step")
        .id(n)
}

/// Checks an order body; the error names the field.
pub fn validate(body: &Value) -> Result<(), String> {
    let obj = body.as_object().ok_or("the order must be a JSON object")?;
    match obj.get("restaurant_id").and_then(Value::as_u64) {
        Some(id) if id > 0 => {}
        _ => return Err("invalid field restaurant_id: a positive integer is required".into()),
    }
    match obj.get("customer").and_then(Value::as_str) {
        Some(c) if !c.trim().is_empty() && c.chars().count() <= 100 => {}
        _ => {
            return Err(
                "invalid field customer: a non-empty string of at most 100 characters is required"
                    .into(),
            )
        }
    }
    let items = match obj.get("items").and_then(Value::as_array) {
        Some(items) if !items.is_empty() && items.len() <= 50 => items,
        _ => return Err("invalid field items: an array of 1 to 50 items is required".into()),
    };
    for (i, item) in items.iter().enumerate() {
        match item.get("name").and_then(Value::as_str) {
            Some(n) if !n.trim().is_empty() && n.chars().count() <= 100 => {}
            _ => {
                return Err(format!(
                    "invalid field items[{i}].name: a non-empty string is required"
                ))
            }
        }
        match item.get("qty").and_then(Value::as_u64) {
            Some(q) if (1..=100).contains(&q) => {}
            _ => {
                return Err(format!(
                    "invalid field items[{i}].qty: an integer from 1 to 100 is required"
                ))
            }
        }
    }
    Ok(())
}

impl Orders {
    /// The journal files of `slot` (slot 0 keeps the single-loop names).
    pub fn journal_paths(data_dir: &Path, slot: usize) -> (PathBuf, PathBuf) {
        if slot == 0 {
            (
                data_dir.join("orders.log"),
                data_dir.join("notifications.log"),
            )
        } else {
            (
                data_dir.join(format!("orders-{slot}.log")),
                data_dir.join(format!("notifications-{slot}.log")),
            )
        }
    }

    /// Opens slot `slot`'s journals (of `slots`), cutting torn tails, and
    /// indexes the orders of the data directory: this slot's; with
    /// [`Sharing::Processes`] every other worker's too; and from slot 0,
    /// those of journals no slot owns any more (the data directory was
    /// served by more loops or workers before). Returns the orders whose
    /// notification is on no notification journal, for this slot to send:
    /// its own, and slot 0 the unowned journals' ones.
    pub fn open(
        data_dir: &Path,
        slot: usize,
        slots: usize,
        index: SharedIndex,
        sharing: Sharing,
        outbox: Rc<crate::outbox::Outbox>,
    ) -> std::io::Result<(Rc<Orders>, Vec<u64>)> {
        let slots = slots.max(1);
        let (orders_path, notes_path) = Self::journal_paths(data_dir, slot);
        let on_disk = slots_on_disk(data_dir);
        let others: Vec<usize> = on_disk
            .iter()
            .copied()
            .chain(match sharing {
                Sharing::Processes => 0..slots,
                Sharing::Loops => 0..0,
            })
            .filter(|&k| k != slot)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();

        // Notified orders: a notification may be on any slot's journal (an
        // unowned journal's orders are notified by slot 0).
        let mut notified: HashMap<u64, Delivery> = HashMap::new();
        let mut attempts: HashMap<u64, u16> = HashMap::new();
        let notes = Journal::open(notes_path, |_, _, payload| {
            if let Ok(note) = serde_json::from_slice::<NotifiedOrder>(payload) {
                if note.is_final() {
                    notified.insert(note.order_id, note.state());
                } else if let Some(n) = note.attempt {
                    let n = u16::try_from(n).unwrap_or(u16::MAX);
                    let a = attempts.entry(note.order_id).or_default();
                    *a = (*a).max(n);
                }
            }
        })?;
        let mut notes_read = HashMap::new();
        for &k in &others {
            let (ids, scanned) = read_notes(&Self::journal_paths(data_dir, k).1, 0)?;
            notified.extend(ids);
            notes_read.insert(k, scanned.read_end);
        }

        let mut unnotified = Vec::new();
        let mut max_id = 0;
        let entry = |slot: usize,
                     offset: u64,
                     len: u32,
                     delivery: Option<Delivery>,
                     tries: u16,
                     saved: Event| Entry {
            slot,
            offset,
            len,
            delivery: delivery.unwrap_or(if tries > 0 {
                Delivery::Retrying
            } else {
                Delivery::Pending
            }),
            attempts: tries,
            timeline: Timeline::new(saved),
        };
        let orders = {
            let mut index = index.lock().unwrap_or_else(|e| e.into_inner());
            Journal::open(orders_path, |offset, len, payload| {
                let Ok(OrderId { id }) = serde_json::from_slice::<OrderId>(payload) else {
                    return;
                };
                max_id = max_id.max(id);
                let delivery = notified.get(&id).copied();
                if delivery.is_none() {
                    unnotified.push(id);
                }
                let tries = attempts.get(&id).copied().unwrap_or(0);
                index.insert(
                    id,
                    entry(
                        slot,
                        offset,
                        len,
                        delivery,
                        tries,
                        Event::SavedBeforeRestart,
                    ),
                );
            })?
        };
        let mut foreign = Vec::new();
        for &k in &others {
            let found = read_orders(&Self::journal_paths(data_dir, k).0, 0)?;
            let unowned = k >= slots;
            let index_them = sharing == Sharing::Processes || (unowned && slot == 0);
            let saved = if unowned {
                Event::SavedBeforeRestart
            } else {
                Event::SavedByAnotherWorker
            };
            let mut index = index.lock().unwrap_or_else(|e| e.into_inner());
            for &(id, offset, len) in &found.records {
                max_id = max_id.max(id);
                if !index_them {
                    continue;
                }
                let delivery = notified.get(&id).copied();
                if unowned && slot == 0 && delivery.is_none() {
                    unnotified.push(id);
                }
                index
                    .entry(id)
                    .or_insert_with(|| entry(k, offset, len, delivery, 0, saved));
            }
            if sharing == Sharing::Processes && !unowned {
                foreign.push(Foreign {
                    slot: k,
                    orders_read: found.scanned.read_end,
                    notes_read: notes_read.get(&k).copied().unwrap_or(0),
                });
            }
        }
        // The first id above everything on disk that belongs to this slot.
        let slots_u = slots as u64;
        let mut first = (max_id / slots_u + 1) * slots_u + slot as u64;
        if first <= max_id {
            first += slots_u;
        }
        if first == 0 {
            first = slots_u;
        }
        Ok((
            Rc::new(Orders {
                data_dir: data_dir.to_path_buf(),
                slot,
                slots,
                orders,
                notes,
                index,
                foreign: RefCell::new(foreign),
                next_id: Cell::new(first),
                notified: Cell::new(0),
                replayed: Cell::new(0),
                outbox,
                watchers: RefCell::new(HashMap::new()),
            }),
            unnotified,
        ))
    }

    /// The shared order index (a loop that panicked holding it left it
    /// whole: every change to it is one assignment or insert).
    fn index(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn count(&self) -> usize {
        self.index().len()
    }

    pub fn journal_pending(&self) -> usize {
        self.orders.pending() + self.notes.pending()
    }

    /// Batches of this slot's journals that were not saved.
    pub fn journal_failures(&self) -> u64 {
        self.orders.failures.get() + self.notes.failures.get()
    }

    /// This slot's journals that refuse appends until repaired.
    pub fn journals_damaged(&self) -> u64 {
        u64::from(self.orders.damaged.get()) + u64::from(self.notes.damaged.get())
    }

    /// `POST /api/orders`.
    pub fn create(self: &Rc<Self>, lp: &Loop, req: Request, res: Responder) {
        let body: Value = match crate::json_body(&req) {
            Ok(v) => v,
            Err(bad) => return res.send(bad),
        };
        if let Err(message) = validate(&body) {
            return res.json_error(400, &message);
        }
        let id = self.next_id.get();
        self.next_id.set(id + self.slots as u64);
        // The notification intent is part of the order's own record: the
        // record on disk is the promise that a notification will follow.
        let record = json!({ "id": id, "created_ms": now_ms(), "order": body, "notify": true });
        let payload = record.to_string().into_bytes();
        let orders = self.clone();
        self.orders
            .append(lp, &payload, move |lp, result| match result {
                Ok((offset, len)) => {
                    orders.index().insert(
                        id,
                        Entry {
                            slot: orders.slot,
                            offset,
                            len,
                            delivery: Delivery::Pending,
                            attempts: 0,
                            timeline: Timeline::new(Event::Saved),
                        },
                    );
                    res.json(
                        201,
                        &json!({ "id": id, "status": "accepted", "notification": "scheduled" }),
                    );
                    orders.mark(id, Event::Responded);
                    // The seed's pattern: answer now, notify right after.
                    let orders2 = orders.clone();
                    lp.set_immediate(move |lp| orders2.notify(lp, id));
                }
                Err(AppendError::Busy(_)) => res.send(crate::busy("server busy, retry")),
                // Nothing more is appended until the journal is repaired:
                // the order can be placed again later.
                Err(e @ AppendError::Damaged(_)) => {
                    res.send(crate::busy(&format!("orders are not accepted now: {e}")))
                }
                Err(e) => res.json_error(500, &format!("order not saved: {e}")),
            });
    }

    fn mark(&self, id: u64, event: Event) {
        let step = {
            let mut index = self.index();
            index.get_mut(&id).map(|e| {
                e.timeline.push(event);
                (usize::from(e.timeline.len), e.delivery, e.attempts)
            })
        };
        if let Some((n, delivery, attempts)) = step {
            self.publish_step(id, n, event, delivery, attempts);
        }
    }

    /// Tells order `id`'s subscribers its `n`th step; a final one (the
    /// notification delivered or refused) ends their streams.
    fn publish_step(&self, id: u64, n: usize, event: Event, delivery: Delivery, attempts: u16) {
        let mut watchers = self.watchers.borrow_mut();
        let Some(list) = watchers.get_mut(&id) else {
            return;
        };
        // A subscriber gone (or too slow to take a few lines) is dropped.
        list.retain(|w| w.tell(id, Some(n), Some(event), delivery, attempts));
        if matches!(event, Event::Notified | Event::NotificationFailed) || list.is_empty() {
            watchers.remove(&id);
        }
    }

    /// Tells order `id`'s subscribers where its notification is (no id:
    /// a passing state, not a step a reconnecting client resumes after).
    fn publish_delivery(&self, id: u64, delivery: Delivery, attempts: u16) {
        let mut watchers = self.watchers.borrow_mut();
        if let Some(list) = watchers.get_mut(&id) {
            list.retain(|w| w.tell(id, None, None, delivery, attempts));
        }
    }

    /// `GET /api/orders/:id/events`: the order's steps so far (after the
    /// client's `Last-Event-ID`), then each new one as it happens, as
    /// Server-Sent Events; the stream ends with the notification's outcome.
    pub fn events(self: &Rc<Self>, lp: &Loop, req: Request, res: Responder) {
        let Some(id) = order_id(&req) else {
            return res.json_error(400, "Invalid order ID");
        };
        let found = self
            .index()
            .get(&id)
            .map(|e| (e.timeline, e.delivery, e.attempts));
        let Some((timeline, delivery, attempts)) = found else {
            return res.json_error(404, "Order not found");
        };
        let after: usize = req
            .last_event_id()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let w = res.sse(lp);
        let steps = &timeline.events[..usize::from(timeline.len)];
        for (i, &event) in steps.iter().enumerate().skip(after) {
            if w.send(&step_event(i + 1, event, delivery, attempts))
                .is_err()
            {
                return;
            }
        }
        // Ended once the outcome is a step (the delivery state turns final
        // a journal write before its step is recorded).
        if steps
            .iter()
            .any(|e| matches!(e, Event::Notified | Event::NotificationFailed))
        {
            return w.finish();
        }
        self.watchers
            .borrow_mut()
            .entry(id)
            .or_default()
            .push(Watcher::Sse(w));
    }

    /// `GET /ws/orders` ([`ws_subscriptions`]) on this loop's orders.
    pub fn ws_orders(self: &Rc<Self>, req: Request, res: Responder) {
        let orders = Rc::downgrade(self);
        ws_subscriptions(req, res, move |_, ws, id| match orders.upgrade() {
            Some(orders) => orders.ws_subscribe(ws, id),
            None => Ok(()),
        });
    }

    /// One subscription of a WebSocket to order `id`: its steps so far
    /// now, the rest as they come.
    fn ws_subscribe(&self, ws: &phaseloop::ws::WebSocket, id: u64) -> Result<(), String> {
        let found = self
            .index()
            .get(&id)
            .map(|e| (e.timeline, e.delivery, e.attempts));
        let Some((timeline, delivery, attempts)) = found else {
            return Err(format!("order {id} not found"));
        };
        let watcher = Watcher::Ws(ws.clone());
        let steps = &timeline.events[..usize::from(timeline.len)];
        for (i, &event) in steps.iter().enumerate() {
            if !watcher.tell(id, Some(i + 1), Some(event), delivery, attempts) {
                return Ok(());
            }
        }
        let over = steps
            .iter()
            .any(|e| matches!(e, Event::Notified | Event::NotificationFailed));
        if !over {
            self.watchers
                .borrow_mut()
                .entry(id)
                .or_default()
                .push(watcher);
        }
        Ok(())
    }

    /// Hands order `id`'s notification to the outbox.
    pub fn notify(self: &Rc<Self>, lp: &Loop, id: u64) {
        self.outbox.enqueue(lp, id);
    }

    /// The outbox takes order `id` to send: false if its notification is
    /// over, under way, or the order unknown here.
    pub fn begin_delivery(&self, id: u64) -> bool {
        let mut index = self.index();
        match index.get_mut(&id) {
            Some(e) if matches!(e.delivery, Delivery::Pending | Delivery::Retrying) => {
                e.delivery = Delivery::Sending;
                let attempts = e.attempts;
                drop(index);
                self.publish_delivery(id, Delivery::Sending, attempts);
                true
            }
            _ => false,
        }
    }

    /// Order `id`'s webhook body: the order record without its outbox flag.
    pub fn read_order(
        &self,
        lp: &Loop,
        id: u64,
        done: impl FnOnce(&Loop, Result<Vec<u8>, String>) + 'static,
    ) {
        let found = self.index().get(&id).map(|e| (e.slot, e.offset, e.len));
        let Some((slot, offset, len)) = found else {
            return done(lp, Err("order not found".into()));
        };
        let path = Self::journal_paths(&self.data_dir, slot).0;
        crate::journal::read_record(lp, path, offset, len, move |lp, result| {
            let body = result.map_err(|e| e.to_string()).map(|payload| {
                let record: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
                json!({
                    "id": id,
                    "created_ms": record.get("created_ms"),
                    "order": record.get("order"),
                })
                .to_string()
                .into_bytes()
            });
            done(lp, body)
        });
    }

    /// Order `id`'s failed attempts so far.
    fn attempts(&self, id: u64) -> u16 {
        let index = self.index();
        index.get(&id).map_or(0, |e| e.attempts)
    }

    fn set_delivery(&self, id: u64, delivery: Delivery) {
        if let Some(e) = self.index().get_mut(&id) {
            e.delivery = delivery;
        }
    }

    /// Order `id`'s attempt failed (`error`): journalled, counted; returns
    /// the attempts so far.
    pub fn attempt_failed(&self, lp: &Loop, id: u64, error: &str) -> u32 {
        let attempts = {
            let mut index = self.index();
            match index.get_mut(&id) {
                Some(e) => {
                    e.delivery = Delivery::Retrying;
                    e.attempts = e.attempts.saturating_add(1);
                    e.attempts
                }
                None => 1,
            }
        };
        self.publish_delivery(id, Delivery::Retrying, attempts);
        let note =
            json!({ "order_id": id, "attempt": attempts, "error": error, "at_ms": now_ms() });
        // Informative: a lost attempt record only undercounts attempts.
        self.notes
            .append(lp, note.to_string().as_bytes(), |_, _| {});
        u32::from(attempts)
    }

    /// Order `id`'s notification was delivered: journalled (then it is
    /// never sent again, even after a restart).
    pub fn delivered(self: &Rc<Self>, lp: &Loop, id: u64) {
        let attempts = self.attempts(id);
        let note = json!({ "order_id": id, "delivered_ms": now_ms(), "attempts": attempts + 1 });
        self.note_final(
            lp,
            id,
            note.to_string(),
            Event::Notified,
            Delivery::Delivered,
        );
    }

    /// Order `id`'s notification was refused for good (`error`).
    pub fn delivery_failed(self: &Rc<Self>, lp: &Loop, id: u64, error: &str) {
        let attempts = self.attempts(id);
        let note = json!({
            "order_id": id, "failed_ms": now_ms(), "attempts": attempts + 1, "error": error
        });
        self.note_final(
            lp,
            id,
            note.to_string(),
            Event::NotificationFailed,
            Delivery::Failed,
        );
    }

    /// Appends a final note, again until it is saved: until then a restart
    /// would send the notification again, which the receiver's key absorbs.
    /// Once saved, the order's state becomes `outcome` and `event` its
    /// step: nothing says "delivered" before it is on disk.
    fn note_final(
        self: &Rc<Self>,
        lp: &Loop,
        id: u64,
        note: String,
        event: Event,
        outcome: Delivery,
    ) {
        let orders = self.clone();
        let bytes = note.clone().into_bytes();
        self.notes
            .append(lp, &bytes, move |lp, result| match result {
                Ok(_) => {
                    orders.set_delivery(id, outcome);
                    orders.mark(id, event);
                    if event == Event::Notified {
                        orders.notified.set(orders.notified.get() + 1);
                    }
                }
                Err(e) => {
                    phaseloop_core::report!(
                    warn,
                    {},
                    "demo-api: the notification record of order {id} was not saved ({e}); retrying"
                );
                    let o = orders.clone();
                    lp.set_timeout(std::time::Duration::from_millis(100), move |lp| {
                        o.note_final(lp, id, note, event, outcome)
                    });
                }
            });
    }

    /// Up to `limit` of this slot's orders whose notification waits (left
    /// on disk by a full outbox queue).
    pub fn pending_ids(&self, limit: usize) -> Vec<u64> {
        let index = self.index();
        index
            .iter()
            .filter(|(_, e)| e.slot == self.slot && e.delivery == Delivery::Pending)
            .map(|(&id, _)| id)
            .take(limit)
            .collect()
    }

    /// Re-sends the notifications a crash left undelivered.
    pub fn replay(self: &Rc<Self>, lp: &Loop, ids: Vec<u64>) {
        for id in ids {
            self.replayed.set(self.replayed.get() + 1);
            let orders = self.clone();
            lp.set_immediate(move |lp| orders.notify(lp, id));
        }
    }

    /// `GET /api/orders/:id`.
    pub fn get(self: &Rc<Self>, lp: &Loop, req: Request, res: Responder) {
        let Some(id) = order_id(&req) else {
            return res.json_error(400, "Invalid order ID");
        };
        self.lookup(lp, id, res, false);
    }

    /// Answers from the index if it has `id`; else, in process mode with
    /// other workers, reads on in their journals once and looks again (as
    /// for another worker's order whose notification was not yet seen:
    /// its state is read fresh). `fresh`: that read was just done.
    fn lookup(self: &Rc<Self>, lp: &Loop, id: u64, res: Responder, fresh: bool) {
        let found = self
            .index()
            .get(&id)
            .map(|e| (e.slot, e.offset, e.len, e.delivery, e.attempts, e.timeline));
        let Some((slot, offset, len, delivery, attempts, timeline)) = found else {
            if fresh || self.foreign.borrow().is_empty() {
                return res.json_error(404, "Order not found");
            }
            return self.read_on(lp, id, res);
        };
        if !delivery.is_final() && !fresh && self.foreign.borrow().iter().any(|f| f.slot == slot) {
            return self.read_on(lp, id, res);
        }
        let path = Self::journal_paths(&self.data_dir, slot).0;
        let orders = self.clone();
        crate::journal::read_record(lp, path, offset, len, move |_, result| match result {
            Ok(payload) => {
                let record: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
                if record.get("id").and_then(Value::as_u64) != Some(id) {
                    // Another worker's record that was undone (or its
                    // journal rewritten by a restart) since it was read.
                    orders.index().remove(&id);
                    return res.json_error(404, "Order not found");
                }
                res.json(
                    200,
                    &order_view(id, &record, delivery, attempts, &timeline.names()),
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                res.send(crate::busy("server busy, retry"))
            }
            Err(e) => res.json_error(500, &format!("order store: {e}")),
        });
    }

    /// Process mode: indexes what the other workers appended since their
    /// journals were last read (each byte is read once per process, not
    /// once per look-up), then answers for `id`.
    fn read_on(self: &Rc<Self>, lp: &Loop, id: u64, res: Responder) {
        let foreign = self.foreign.borrow().clone();
        let data_dir = self.data_dir.clone();
        let orders = self.clone();
        Job::new(Lane::Fs, move || read_tail(&data_dir, &foreign)).run(lp, move |lp, result| {
            match result {
                Ok(tail) => {
                    orders.merge(tail);
                    orders.lookup(lp, id, res, true);
                }
                Err(e) => res.send(crate::pool_error(e)),
            }
        });
    }

    /// Adds another worker's newly read records and notifications to the
    /// index. A read that started where the last one ended moves the mark
    /// on; one that raced with another only adds what it found.
    fn merge(&self, tail: Tail) {
        let mut foreign = self.foreign.borrow_mut();
        let mut index = self.index();
        for TailPart {
            slot,
            from,
            to,
            found: records,
        } in tail.orders
        {
            let Some(f) = foreign.iter_mut().find(|f| f.slot == slot) else {
                continue;
            };
            let restarted = from == 0 && f.orders_read > 0;
            for (id, offset, len) in records {
                let entry = Entry {
                    slot,
                    offset,
                    len,
                    delivery: Delivery::Pending,
                    attempts: 0,
                    timeline: Timeline::new(Event::SavedByAnotherWorker),
                };
                if restarted {
                    index.insert(id, entry);
                } else {
                    index.entry(id).or_insert(entry);
                }
            }
            if from == f.orders_read || restarted {
                f.orders_read = to;
            }
        }
        for TailPart {
            slot,
            from,
            to,
            found: ids,
        } in tail.notes
        {
            let Some(f) = foreign.iter_mut().find(|f| f.slot == slot) else {
                continue;
            };
            for (id, delivery) in ids {
                if let Some(e) = index.get_mut(&id) {
                    e.delivery = delivery;
                }
            }
            if from == f.notes_read || (from == 0 && f.notes_read > 0) {
                f.notes_read = to;
            }
        }
    }
}
