//! Orders: validated, saved durably (fsync) before the 201, then the
//! restaurant notified from `set_immediate` — durably too, and replayed after
//! a crash so that every acknowledged order gets exactly one notification.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use phaseloop::{Request, Responder};
use phaseloop_core::Loop;
use serde_json::{json, Value};

use crate::journal::Journal;

/// The one field start-up needs from an order record: read into this, a
/// record costs no `Value` tree of the whole order (start-up replays every
/// record, millions after a load test).
#[derive(serde::Deserialize)]
struct OrderId {
    id: u64,
}

/// The one field start-up needs from a notification record.
#[derive(serde::Deserialize)]
struct NotifiedOrder {
    order_id: u64,
}

/// The body limit of `POST /api/orders` (the seed's `express.json({limit: "10kb"})`).
pub const ORDER_BODY_LIMIT: u64 = 10 * 1024;

pub struct Entry {
    /// Which loop's journal holds the order.
    slot: usize,
    offset: u64,
    len: u32,
    notified: bool,
    /// A notification append is under way: never start a second one.
    notifying: bool,
    /// What happened to the order in this process, in order.
    timeline: Timeline,
}

/// Something that happened to an order in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Saved,
    SavedBeforeRestart,
    Responded,
    Notified,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Saved => "saved",
            Event::SavedBeforeRestart => "saved (before restart)",
            Event::Responded => "responded",
            Event::Notified => "notified",
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

/// Every order of this process, shared by its loops (each loop writes its
/// own journals, "slots"; any loop can look any order up).
pub type SharedIndex = Arc<Mutex<HashMap<u64, Entry>>>;

pub struct Orders {
    data_dir: PathBuf,
    slot: usize,
    slots: usize,
    orders: Rc<Journal>,
    notes: Rc<Journal>,
    index: SharedIndex,
    /// The next id this slot hands out; ids of slot `s` are `s (mod slots)`,
    /// so loops (and processes, given distinct slots) never collide.
    next_id: Cell<u64>,
    pub notified: Cell<u64>,
    pub replayed: Cell<u64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What `GET /api/orders/:id` answers for a stored record.
fn order_view(id: u64, record: &Value, notified: bool, timeline: &[&str]) -> Value {
    json!({
        "id": id,
        "order": record.get("order"),
        "created_ms": record.get("created_ms"),
        "notification": if notified { "delivered" } else { "pending" },
        "timeline": timeline,
    })
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

    /// The highest order id in the order journals of `data_dir` other
    /// than `own` (whose ids the caller has just read).
    fn max_id_on_disk(data_dir: &Path, own: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(data_dir) else {
            return 0;
        };
        let mut max = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("orders") && name.ends_with(".log")) || entry.path() == own {
                continue;
            }
            // Valid records only: an id in a torn tail was never given out.
            let _ = crate::journal::scan(&entry.path(), |_, _, payload| {
                if let Ok(order) = serde_json::from_slice::<OrderId>(payload) {
                    max = max.max(order.id);
                }
            });
        }
        max
    }

    /// Opens slot `slot`'s journals (of `slots`), cutting torn tails, and
    /// adds its orders to the shared index. Returns the orders whose
    /// notification is not on record, to be notified again.
    pub fn open(
        data_dir: &Path,
        slot: usize,
        slots: usize,
        index: SharedIndex,
    ) -> std::io::Result<(Rc<Orders>, Vec<u64>)> {
        let (orders_path, notes_path) = Self::journal_paths(data_dir, slot);
        let mut notified = HashSet::new();
        let notes = Journal::open(notes_path, |_, _, payload| {
            if let Ok(note) = serde_json::from_slice::<NotifiedOrder>(payload) {
                notified.insert(note.order_id);
            }
        })?;
        let mut unnotified = Vec::new();
        let mut own_max = 0;
        let orders = {
            let mut index = index.lock().unwrap_or_else(|e| e.into_inner());
            Journal::open(orders_path.clone(), |offset, len, payload| {
                let Ok(OrderId { id }) = serde_json::from_slice::<OrderId>(payload) else {
                    return;
                };
                own_max = own_max.max(id);
                let was_notified = notified.contains(&id);
                if !was_notified {
                    unnotified.push(id);
                }
                index.insert(
                    id,
                    Entry {
                        slot,
                        offset,
                        len,
                        notified: was_notified,
                        notifying: false,
                        timeline: Timeline::new(Event::SavedBeforeRestart),
                    },
                );
            })?
        };
        // The first id above everything on disk that belongs to this slot.
        let max = own_max.max(Self::max_id_on_disk(data_dir, &orders_path));
        let slots = slots.max(1) as u64;
        let mut first = (max / slots + 1) * slots + slot as u64;
        if first <= max {
            first += slots;
        }
        if first == 0 {
            first = slots;
        }
        Ok((
            Rc::new(Orders {
                data_dir: data_dir.to_path_buf(),
                slot,
                slots: slots as usize,
                orders,
                notes,
                index,
                next_id: Cell::new(first),
                notified: Cell::new(0),
                replayed: Cell::new(0),
            }),
            unnotified,
        ))
    }

    pub fn count(&self) -> usize {
        self.index.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn journal_pending(&self) -> usize {
        self.orders.pending() + self.notes.pending()
    }

    /// `POST /api/orders`.
    pub fn create(self: &Rc<Self>, lp: &Loop, req: Request, res: Responder) {
        let body: Value = match req.json() {
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
                    orders
                        .index
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(
                            id,
                            Entry {
                                slot: orders.slot,
                                offset,
                                len,
                                notified: false,
                                notifying: false,
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
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    res.send(crate::busy("server busy, retry"))
                }
                Err(e) => res.json_error(500, &format!("order not saved: {e}")),
            });
    }

    fn mark(&self, id: u64, event: Event) {
        if let Some(e) = self
            .index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&id)
        {
            e.timeline.push(event);
        }
    }

    /// Delivers (records) the restaurant notification of order `id`, once.
    pub fn notify(self: &Rc<Self>, lp: &Loop, id: u64) {
        {
            let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
            let Some(entry) = index.get_mut(&id) else {
                return;
            };
            if entry.notified || entry.notifying {
                return;
            }
            entry.notifying = true;
        }
        let note = json!({ "order_id": id, "delivered_ms": now_ms() }).to_string();
        let orders = self.clone();
        self.notes.append(lp, note.as_bytes(), move |lp, result| {
            let ok = result.is_ok();
            if let Some(e) = orders
                .index
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&id)
            {
                e.notifying = false;
                e.notified = ok;
            }
            match result {
                Ok(_) => {
                    orders.mark(id, Event::Notified);
                    orders.notified.set(orders.notified.get() + 1);
                }
                Err(e) => {
                    eprintln!("demo-api: notification of order {id} failed ({e}); retrying");
                    let o = orders.clone();
                    lp.set_timeout(std::time::Duration::from_millis(100), move |lp| {
                        o.notify(lp, id)
                    });
                }
            }
        });
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
        let Some(id) = req.param("id").and_then(crate::users::parse_id) else {
            return res.json_error(400, "Invalid order ID");
        };
        let found = self
            .index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|e| (e.slot, e.offset, e.len, e.notified, e.timeline));
        let Some((slot, offset, len, notified, timeline)) = found else {
            // Another worker process's order (process mode): look it up in
            // that worker's journals, through the pool.
            let owner = (id % self.slots as u64) as usize;
            if owner == self.slot {
                return res.json_error(404, "Order not found");
            }
            let (orders_path, notes_path) = Self::journal_paths(&self.data_dir, owner);
            let job = phaseloop_core::Job::new(phaseloop_core::Lane::Fs, move || {
                // The first record whose `key` is the id. Only lines
                // holding `"key":id` are checked and parsed: a journal can
                // hold millions of records (parsing one is ~4 µs).
                let find = |path: &Path, key: &str| -> Option<Value> {
                    let needle = format!("\"{key}\":{id}").into_bytes();
                    let is_it = |payload: &[u8]| {
                        payload.windows(needle.len()).any(|w| w == needle)
                            && serde_json::from_slice::<Value>(payload)
                                .is_ok_and(|v| v.get(key).and_then(Value::as_u64) == Some(id))
                    };
                    let payload = crate::journal::find(path, is_it).ok().flatten()?;
                    serde_json::from_slice(&payload).ok()
                };
                let record = find(&orders_path, "id");
                let notified = record.is_some() && find(&notes_path, "order_id").is_some();
                (record, notified)
            });
            job.run(lp, move |_, result| match result {
                Ok((Some(record), notified)) => res.json(
                    200,
                    &order_view(id, &record, notified, &["saved (by another worker)"]),
                ),
                Ok((None, _)) => res.json_error(404, "Order not found"),
                Err(e) => res.send(crate::pool_error(e)),
            });
            return;
        };
        let path = Self::journal_paths(&self.data_dir, slot).0;
        crate::journal::read_record(lp, path, offset, len, move |_, result| match result {
            Ok(payload) => {
                let record: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
                res.json(200, &order_view(id, &record, notified, &timeline.names()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                res.send(crate::busy("server busy, retry"))
            }
            Err(e) => res.json_error(500, &format!("order store: {e}")),
        });
    }
}
