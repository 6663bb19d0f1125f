//! A restaurant's webhook receiver: takes `POST /restaurant/orders` with an
//! `Idempotency-Key` and acts on each key once, counting repeats. The
//! demo embeds one (the default notification target, so the first README
//! command needs nothing else running); `restaurant-sim` serves one with
//! faults on demand.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use phaseloop::App;
use serde_json::{json, Value};

/// What a receiver has taken.
#[derive(Debug, Default)]
pub struct Receiver {
    /// Webhooks received with a key (repeats included).
    pub received: u64,
    /// Keys acted on, each once.
    keys: HashSet<u64>,
    /// Webhooks whose key was seen before: dropped.
    pub duplicates: u64,
}

/// A receiver shared by the loops (or threads) that serve it.
pub type SharedReceiver = Arc<Mutex<Receiver>>;

/// `POST /restaurant/orders` (take a webhook of up to `body_limit` bytes,
/// once per key) and `GET /restaurant/orders` (what was taken), added to
/// `app`.
#[allow(dead_code)] // restaurant-sim serves its own, with faults on demand
pub fn routes<S: 'static>(app: App<S>, receiver: SharedReceiver, body_limit: u64) -> App<S> {
    let (take, show) = (receiver.clone(), receiver);
    app.post_with("/restaurant/orders", move |_, req, res| {
        let taken = take
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(req.header("idempotency-key"), req.body());
        match taken {
            Ok(new) => res.json(200, &json!({ "accepted": true, "duplicate": !new })),
            Err(message) => res.json_error(400, &message),
        }
    })
    .body_limit(body_limit)
    .get_with("/restaurant/orders", move |_, _, res| {
        let summary = show.lock().unwrap_or_else(|e| e.into_inner()).summary();
        res.json(200, &summary)
    })
}

impl Receiver {
    /// Takes a webhook: its key (the order id) from `Idempotency-Key`.
    /// `Ok(true)` if it was new (acted on), `Ok(false)` if a repeat, an
    /// error saying what is wrong with it otherwise.
    pub fn take(&mut self, key: Option<&str>, body: &[u8]) -> Result<bool, String> {
        let key = key
            .and_then(|k| k.trim().parse::<u64>().ok())
            .ok_or("an Idempotency-Key header with the order id is required")?;
        let order: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        if order.get("id").and_then(Value::as_u64) != Some(key) {
            return Err("the body's id is not the Idempotency-Key".into());
        }
        self.received += 1;
        if self.keys.insert(key) {
            Ok(true)
        } else {
            self.duplicates += 1;
            Ok(false)
        }
    }

    /// Keys acted on.
    pub fn unique(&self) -> u64 {
        self.keys.len() as u64
    }

    /// The summary `GET /restaurant/orders` answers.
    pub fn summary(&self) -> Value {
        json!({
            "received": self.received,
            "unique": self.unique(),
            "duplicates": self.duplicates,
        })
    }
}
