//! The demo on PostgreSQL (`--database postgres://…`, or `DATABASE_URL`):
//! users, orders and the notification outbox in tables, so that any number
//! of instances (behind a load balancer) share them.
//!
//! - Schema: versioned migrations at start-up, under an advisory lock, so
//!   running them twice is harmless and two instances starting at once
//!   take turns.
//! - Orders: the order and its outbox row are written by one statement
//!   (one transaction); the 201 comes after its commit, with an id from the
//!   database's sequence (unique across instances).
//! - Delivery: any instance claims due outbox rows with
//!   `FOR UPDATE SKIP LOCKED`, marking them with a lease (`claimed_until`)
//!   so no other instance sends them meanwhile; a lease that runs out (its
//!   instance died mid-delivery) lets another take the row. So each
//!   notification is delivered at least once, and the restaurant dedups by
//!   its `Idempotency-Key` (the order id).
//! - Live tracking (`GET /api/orders/:id/events`, `GET /ws/orders`): every
//!   change of an order's notification NOTIFYs `order_events` in the
//!   statement that makes it (delivered, refused, retrying: one NOTIFY an
//!   order when all goes well; the claim is not NOTIFYed, a passing state
//!   every instance would hear for every order), and each loop LISTENs and tells its own subscribers,
//!   whichever instance made the change. "saved" and "responded" are not
//!   NOTIFYed: a client learns an order's id from the 201, after both, so
//!   a subscriber always gets them from the tables (no NOTIFY, and its
//!   commit-time lock, on the order's own INSERT). A subscriber
//!   first gets the steps so far from the tables; events that arrive
//!   meanwhile wait for those, so each step comes once and in order. If
//!   the listening connection is lost, subscriptions end (SSE clients
//!   reconnect with `Last-Event-ID`; WebSocket clients are told to
//!   subscribe again): nothing sent meanwhile is silently missed.
//! - The database down: requests that need it get 503 with `Retry-After`
//!   (the pool's timeouts bound the wait); `/health` says `degraded` at
//!   once, from the last query's outcome, without asking the database.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use phaseloop::client::{Client, ClientConfig, ClientRequest};
use phaseloop::pg::{ListenEvent, Listener, PgError, Pool, PoolConfig};
use phaseloop::{Request, Responder, Response};
use phaseloop_core::{Loop, RunMode, TimerId};
use serde_json::{json, Value};

use crate::orders::Watcher;
use crate::outbox::{Attempt, Target};

/// The channel every instance NOTIFYs an order's changes on.
const EVENTS_CHANNEL: &str = "order_events";
/// Live events a subscriber still waiting for its steps so far may hold
/// (an order has a handful in all).
const HELD_MAX: usize = 16;

/// An order's step `n` as NOTIFY's payload (built in SQL from the row).
fn step_json(order: &str, n: u32, step: &str, notification: &str, attempts: &str) -> String {
    format!(
        "json_build_object('order', {order}, 'event', 'step', 'id', {n}, 'step', '{step}', \
         'notification', {notification}, 'attempts', {attempts})::text"
    )
}

/// A passing delivery state as NOTIFY's payload (built in SQL).
fn delivery_json(order: &str, notification: &str, attempts: &str) -> String {
    format!(
        "json_build_object('order', {order}, 'event', 'delivery', \
         'notification', {notification}, 'attempts', {attempts})::text"
    )
}

/// Settling a delivery: each statement NOTIFYs what it changed.
static DELIVERED_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE outbox SET state = 'delivered', delivered_at = now(),
                claimed_until = NULL, last_error = $2
         WHERE order_id = $1 AND claimed_by = $3
         RETURNING (SELECT 1 FROM pg_notify('{EVENTS_CHANNEL}', {}))",
        step_json("order_id", 3, "notified", "'delivered'", "attempts")
    )
});
static FAILED_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE outbox SET state = 'failed', claimed_until = NULL, last_error = $2
         WHERE order_id = $1 AND claimed_by = $3
         RETURNING (SELECT 1 FROM pg_notify('{EVENTS_CHANNEL}', {}))",
        step_json("order_id", 3, "notification failed", "'failed'", "attempts")
    )
});
static RETRY_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE outbox SET claimed_until = NULL, last_error = $2,
                next_attempt_at = now() + least(interval '60 seconds',
                  interval '100 milliseconds' * (2 ^ least(attempts - 1, 20)) * random())
         WHERE order_id = $1 AND claimed_by = $3
         RETURNING (SELECT 1 FROM pg_notify('{EVENTS_CHANNEL}', {}))",
        delivery_json("order_id", "'retrying'", "attempts")
    )
});

/// A step as the channel carries it (for the steps so far).
fn step_value(order: i64, n: u64, step: &str, notification: &str, attempts: i32) -> Value {
    json!({ "order": order, "event": "step", "id": n, "step": step,
            "notification": notification, "attempts": attempts })
}

/// The step that ends an order's subscriptions: its notification's outcome.
fn is_final(event: &Value) -> bool {
    event["event"] == "step"
        && matches!(
            event["step"].as_str(),
            Some("notified" | "notification failed")
        )
}

/// Sends `event` (as the channel carries it) to follower `f`, unless it is
/// a step it already has; false if the subscriber is gone.
fn send_event(f: &mut Follower, order: i64, event: &Value) -> bool {
    let kind = event["event"].as_str().unwrap_or("delivery");
    let n = event["id"].as_u64();
    if let Some(n) = n {
        if n <= f.last_step {
            return true;
        }
        f.last_step = n;
    }
    let mut fields = event.clone();
    if let Some(m) = fields.as_object_mut() {
        m.remove("order");
        m.remove("event");
        m.remove("id");
    }
    f.watcher
        .tell_json(order as u64, n.map(|n| n as usize), kind, fields)
}

/// A live subscriber of one order, on this loop.
struct Follower {
    watcher: Watcher,
    /// Its steps so far are out: live events go to it as they come.
    ready: bool,
    /// Live events that came before its steps so far did.
    held: Vec<Value>,
    /// The last step number it was sent.
    last_step: u64,
    /// Tells it its order is unknown (the read of its steps found none).
    on_missing: Option<Box<dyn FnOnce(Watcher)>>,
}

/// The advisory lock migrations run under (any constant other code does
/// not use).
const MIGRATION_LOCK: i64 = 7_270_001;

/// The migrations, in order; each runs once, in the same transaction as
/// its row in `schema_migrations`.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL);
     INSERT INTO users (id, name, email)
       SELECT i, n || ' ' || i, lower(n) || i || '@example.com'
       FROM generate_series(1, 100) AS i,
            LATERAL (SELECT (ARRAY['Ada', 'Grace', 'Linus', 'Barbara', 'Ken', 'Margaret',
                                   'Dennis', 'Frances', 'Edsger', 'Radia'])[(i - 1) % 10 + 1] AS n) AS names;
     CREATE TABLE orders (
       id bigserial PRIMARY KEY,
       body jsonb NOT NULL,
       created_at timestamptz NOT NULL DEFAULT now());
     CREATE TABLE outbox (
       order_id bigint PRIMARY KEY REFERENCES orders (id),
       state text NOT NULL DEFAULT 'pending',
       attempts int NOT NULL DEFAULT 0,
       next_attempt_at timestamptz NOT NULL DEFAULT now(),
       claimed_by text,
       claimed_until timestamptz,
       last_error text,
       delivered_at timestamptz);
     CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';",
)];

/// Outbox rows one claim takes at most.
const CLAIM_BATCH: i64 = 32;
/// How long a claimed row is this instance's to deliver.
const LEASE: &str = "30 seconds";
/// How often each loop looks for due rows it was not told about (another
/// instance's, retries come due, leases run out).
const POLL: Duration = Duration::from_millis(250);
/// A delivery attempt's time limit.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the migrations not yet applied; how many it applied. Waits up to
/// `patience` for the database to accept connections.
pub fn migrate(url: &str, patience: Duration) -> Result<usize, String> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match migrate_once(url) {
            Ok(n) => return Ok(n),
            Err(e) if e.is_unavailable() && std::time::Instant::now() < deadline => {
                eprintln!("demo-api: waiting for the database: {e}");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(format!("migrations failed: {e}")),
        }
    }
}

fn migrate_once(url: &str) -> Result<usize, PgError> {
    let mut cfg = PoolConfig::new(url)?;
    cfg.max = 1;
    // Another instance may hold the lock for its whole migration.
    cfg.statement_timeout = Some(Duration::from_secs(120));
    let lp = Loop::new().map_err(|e| PgError::Connect(e.to_string()))?;
    let out = Rc::new(Cell::new(None));
    let slot = out.clone();
    lp.run_main(move |lp| {
        lp.spawn(async move {
            let pool = Pool::new(cfg);
            let run = async {
                let tx = pool.transaction().await?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                    .await?;
                tx.simple_query(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (
                       version int PRIMARY KEY,
                       applied_at timestamptz NOT NULL DEFAULT now())",
                )
                .await?;
                let done = tx
                    .query("SELECT version FROM schema_migrations", &[])
                    .await?;
                let done: Vec<i32> = done.iter().filter_map(|r| r.get("version").ok()).collect();
                let mut applied = 0;
                for (version, sql) in MIGRATIONS {
                    if done.contains(version) {
                        continue;
                    }
                    tx.simple_query(sql).await?;
                    tx.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)",
                        &[version],
                    )
                    .await?;
                    applied += 1;
                }
                tx.commit().await?;
                Ok::<usize, PgError>(applied)
            };
            slot.set(Some(run.await));
        })
    });
    lp.run(RunMode::Default);
    out.take()
        .unwrap_or_else(|| Err(PgError::Closed("the migration did not finish".into())))
}

/// One loop's view of the database: its pool, its deliverer.
pub struct PgDemo {
    pub pool: Pool,
    client: Client,
    target: Target,
    /// Who claims rows (`pid:loop`), for `outbox.claimed_by`.
    instance: String,
    /// The last statement reached the database.
    db_up: Cell<bool>,
    claiming: Cell<bool>,
    /// A kick came while a claim was out: claim again after it.
    again: Cell<bool>,
    in_flight: Cell<usize>,
    poll: Cell<Option<TimerId>>,
    pub delivered: Cell<u64>,
    pub retries: Cell<u64>,
    pub failed: Cell<u64>,
    /// Live subscribers by order, fed by the listener.
    followers: RefCell<HashMap<i64, Vec<Follower>>>,
    listener: RefCell<Option<Listener>>,
    /// The listener is LISTENing now: without it, a new subscriber would
    /// miss what happens until it is back, so none is taken meanwhile.
    listening: Cell<bool>,
}

/// A 503 with `Retry-After` for an unreachable or busy database, else the
/// error's own status.
fn db_error(e: PgError) -> Response {
    let error = phaseloop::Error::from(e);
    let response = Response::json_error(error.status(), error.message());
    match error.retry_after_secs() {
        Some(secs) => response.header("Retry-After", secs.to_string()),
        None => response,
    }
}

impl PgDemo {
    /// A loop's pool (`max` connections) and deliverer to `target`.
    pub fn new(url: &str, max: usize, target: Target, slot: usize) -> Result<Rc<PgDemo>, String> {
        let mut cfg = PoolConfig::new(url).map_err(|e| e.to_string())?;
        cfg.max = max;
        // Fail fast when the database is gone: a request waits at most
        // this long for a connection before its 503.
        cfg.connect_timeout = Duration::from_secs(1);
        cfg.acquire_timeout = Duration::from_secs(1);
        Ok(Rc::new(PgDemo {
            pool: Pool::new(cfg),
            client: Client::new(target.client_config(ClientConfig {
                max_sockets_per_origin: 16,
                retries: 0,
                ..ClientConfig::default()
            })),
            target,
            instance: format!("{}:{slot}", std::process::id()),
            db_up: Cell::new(true),
            claiming: Cell::new(false),
            again: Cell::new(false),
            in_flight: Cell::new(0),
            poll: Cell::new(None),
            delivered: Cell::new(0),
            retries: Cell::new(0),
            failed: Cell::new(0),
            followers: RefCell::default(),
            listener: RefCell::new(None),
            listening: Cell::new(false),
        }))
    }

    /// Starts the periodic look for due rows (unreferenced: it does not
    /// keep the loop alive).
    pub fn start(self: &Rc<Self>, lp: &Loop) {
        let me = Rc::downgrade(self);
        let id = lp.set_interval(POLL, move |lp| {
            if let Some(me) = me.upgrade() {
                me.kick(lp);
            }
        });
        lp.unref_timer(id);
        self.poll.set(Some(id));
        self.kick(lp);
        let me = Rc::downgrade(self);
        let listener = self.pool.listen(lp, &[EVENTS_CHANNEL], move |_, event| {
            let Some(me) = me.upgrade() else { return };
            match event {
                // Every instance's every change comes here: a loop that
                // follows no order (most, most of the time) does not even
                // parse it.
                ListenEvent::Notification { payload, .. } if !me.followers.borrow().is_empty() => {
                    if let Ok(event) = serde_json::from_str::<Value>(payload) {
                        me.publish(event);
                    }
                }
                ListenEvent::Notification { .. } => {}
                ListenEvent::Lost(_) => {
                    me.listening.set(false);
                    me.end_all_subscriptions();
                }
                ListenEvent::Listening => me.listening.set(true),
            }
        });
        *self.listener.borrow_mut() = Some(listener);
    }

    /// A live event from the channel: to this loop's followers of its
    /// order (held for those whose steps so far are not out yet); a final
    /// step ends their subscriptions.
    fn publish(&self, event: Value) {
        let Some(order) = event["order"].as_i64() else {
            return;
        };
        let last = is_final(&event);
        let mut followers = self.followers.borrow_mut();
        let Some(list) = followers.get_mut(&order) else {
            return;
        };
        list.retain_mut(|f| {
            if !f.ready {
                if f.held.len() < HELD_MAX {
                    f.held.push(event.clone());
                }
                return true;
            }
            send_event(f, order, &event)
        });
        if last {
            for f in followers.remove(&order).unwrap_or_default() {
                if f.ready {
                    f.watcher.finish();
                }
            }
        } else if list.is_empty() {
            followers.remove(&order);
        }
    }

    /// The listening connection was lost: what was sent meanwhile is
    /// unknown, so every subscription ends (SSE clients reconnect with
    /// `Last-Event-ID`, WebSocket clients are told to subscribe again).
    fn end_all_subscriptions(&self) {
        let all = std::mem::take(&mut *self.followers.borrow_mut());
        for (order, list) in all {
            for f in list {
                if let Watcher::Ws(ws) = &f.watcher {
                    let _ = ws.send_text(
                        &json!({ "order": order, "error": "live updates were interrupted: subscribe again" })
                            .to_string(),
                    );
                }
                f.watcher.finish();
            }
        }
    }

    /// A new follower of `order` (its steps so far after `after` first):
    /// registered now, so nothing sent while its steps so far are read is
    /// missed; they are sent when the read comes back, then what it held.
    fn follow(
        self: &Rc<Self>,
        lp: &Loop,
        order: i64,
        watcher: Watcher,
        after: u64,
        on_missing: Box<dyn FnOnce(Watcher)>,
    ) {
        let me = self.clone();
        self.followers
            .borrow_mut()
            .entry(order)
            .or_default()
            .push(Follower {
                watcher,
                ready: false,
                held: Vec::new(),
                last_step: after,
                on_missing: Some(on_missing),
            });
        self.pool.query_with(
            lp,
            "SELECT state, attempts, coalesce(claimed_until > now(), false) AS sending
             FROM outbox WHERE order_id = $1",
            &[&order],
            move |_, rows| {
                me.note(&rows);
                let row = rows.ok().and_then(|r| r.into_iter().next());
                let state = row.as_ref().and_then(|r| {
                    Some((
                        r.get::<String>("state").ok()?,
                        r.get::<i32>("attempts").ok()?,
                        r.get::<bool>("sending").ok()?,
                    ))
                });
                me.steps_so_far(order, state);
            },
        );
    }

    /// Sends the steps so far to `order`'s followers still waiting for
    /// them, then what they held; ends them if the order's notification is
    /// over (or the order is unknown).
    fn steps_so_far(&self, order: i64, state: Option<(String, i32, bool)>) {
        let mut followers = self.followers.borrow_mut();
        let Some(list) = followers.get_mut(&order) else {
            return;
        };
        let waiting: Vec<Follower> = {
            let (waiting, ready): (Vec<_>, Vec<_>) = list.drain(..).partition(|f| !f.ready);
            *list = ready;
            waiting
        };
        let Some((state, attempts, sending)) = state else {
            drop(followers);
            for mut f in waiting {
                match f.on_missing.take() {
                    Some(tell) => tell(f.watcher),
                    None => f.watcher.finish(),
                }
            }
            return;
        };
        let notification = match (state.as_str(), sending) {
            ("delivered", _) => "delivered",
            ("failed", _) => "failed",
            (_, true) => "sending",
            _ if attempts > 0 => "retrying",
            _ => "pending",
        };
        let mut steps = vec![
            step_value(order, 1, "saved", notification, attempts),
            step_value(order, 2, "responded", notification, attempts),
        ];
        match state.as_str() {
            "delivered" => steps.push(step_value(order, 3, "notified", notification, attempts)),
            "failed" => steps.push(step_value(
                order,
                3,
                "notification failed",
                notification,
                attempts,
            )),
            _ => {}
        }
        let over = steps.iter().any(is_final);
        for mut f in waiting {
            let mut alive = true;
            for event in steps.iter().chain(std::mem::take(&mut f.held).iter()) {
                if alive {
                    alive = send_event(&mut f, order, event);
                }
            }
            let ended = f.held.iter().any(is_final);
            if over || ended || !alive {
                if alive {
                    f.watcher.finish();
                }
                continue;
            }
            f.ready = true;
            list.push(f);
        }
        if list.is_empty() {
            followers.remove(&order);
        }
    }

    /// `GET /api/orders/:id/events` in PostgreSQL mode: as in file mode
    /// (steps after `Last-Event-ID`, then each new one, the stream ending
    /// with the notification's outcome), from any instance's changes.
    pub fn events(self: &Rc<Self>, lp: &Loop, req: Request, res: Responder) {
        let Some(id) = crate::orders::order_id(&req).and_then(|id| i64::try_from(id).ok()) else {
            return res.json_error(400, "Invalid order ID");
        };
        let after: u64 = req
            .last_event_id()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if !self.listening.get() {
            return res.send(
                Response::json_error(503, "live updates are not available right now")
                    .header("Retry-After", "1"),
            );
        }
        // Whether the order exists is known only after a read; the stream
        // starts at once and an unknown order ends it with an error event.
        let w = res.sse(lp);
        self.follow(
            lp,
            id,
            Watcher::Sse(w),
            after,
            Box::new(move |watcher| {
                watcher.tell_json(
                    id as u64,
                    None,
                    "error",
                    json!({ "error": "Order not found" }),
                );
                watcher.finish();
            }),
        );
    }

    /// `GET /ws/orders` in PostgreSQL mode ([`crate::orders::ws_subscriptions`]).
    pub fn ws_orders(self: &Rc<Self>, req: Request, res: Responder) {
        let me = Rc::downgrade(self);
        crate::orders::ws_subscriptions(req, res, move |lp, ws, id| {
            let Some(me) = me.upgrade() else {
                return Ok(());
            };
            if !me.listening.get() {
                return Err(format!(
                    "live updates are not available right now: subscribe to {id} again in a second"
                ));
            }
            let order = i64::try_from(id).map_err(|_| format!("order {id} not found"))?;
            me.follow(
                lp,
                order,
                Watcher::Ws(ws.clone()),
                0,
                Box::new(move |watcher| {
                    if let Watcher::Ws(ws) = watcher {
                        let e = format!("order {id} not found");
                        let _ = ws.send_text(&json!({ "error": e }).to_string());
                    }
                }),
            );
            Ok(())
        });
    }

    fn note<T>(&self, result: &Result<T, PgError>) {
        match result {
            Ok(_) => self.db_up.set(true),
            Err(e) if e.is_unavailable() => self.db_up.set(false),
            Err(_) => self.db_up.set(true),
        }
    }

    /// `/health`'s database part, from the last outcome (no query).
    pub fn health(&self) -> Value {
        let stats = self.pool.stats();
        json!({
            "database": if self.db_up.get() { "up" } else { "down" },
            "pool": { "total": stats.total, "idle": stats.idle, "in_use": stats.in_use,
                      "waiting": stats.waiting },
            "errors_by_sqlstate_class": stats.errors_by_class.iter()
                .map(|(class, n)| (class.clone(), json!(n)))
                .collect::<serde_json::Map<String, Value>>(),
        })
    }

    /// The database was reachable at the last statement.
    pub fn is_up(&self) -> bool {
        self.db_up.get()
    }

    /// `GET /api/users/:id`'s store read: the user's JSON, or `None`.
    pub fn read_user(
        self: &Rc<Self>,
        lp: &Loop,
        id: u64,
        done: impl FnOnce(&Loop, Result<Option<Vec<u8>>, Response>) + 'static,
    ) {
        let Ok(id) = i64::try_from(id) else {
            lp.set_immediate(move |lp| done(lp, Ok(None)));
            return;
        };
        let me = self.clone();
        self.pool.query_with(
            lp,
            "SELECT id, name, email FROM users WHERE id = $1",
            &[&id],
            move |lp, rows| {
                me.note(&rows);
                let result = match rows {
                    Ok(rows) => match rows.first().map(|r| r.to_json()) {
                        None => Ok(None),
                        Some(Ok(map)) => Ok(Some(Value::Object(map).to_string().into_bytes())),
                        Some(Err(e)) => Err(Response::json_error(500, &e.to_string())),
                    },
                    Err(e) => Err(db_error(e)),
                };
                done(lp, result)
            },
        );
    }

    /// `POST /api/orders`: the order and its outbox row in one statement
    /// (one transaction); 201 after the commit; the delivery kicked from
    /// `set_immediate`, as the seed schedules its notification.
    pub fn create(self: &Rc<Self>, lp: &Loop, req: Request, res: Responder) {
        let body: Value = match crate::json_body(&req) {
            Ok(v) => v,
            Err(bad) => return res.send(bad),
        };
        if let Err(message) = crate::orders::validate(&body) {
            return res.json_error(400, &message);
        }
        let me = self.clone();
        self.pool.query_with(
            lp,
            "WITH o AS (INSERT INTO orders (body) VALUES ($1) RETURNING id)
             INSERT INTO outbox (order_id) SELECT id FROM o RETURNING order_id",
            &[&body],
            move |lp, rows| {
                me.note(&rows);
                let id = rows.and_then(|rows| match rows.first() {
                    Some(row) => row.get::<i64>("order_id"),
                    None => Err(PgError::Protocol("no id returned".into())),
                });
                match id {
                    Ok(id) => {
                        res.json(
                            201,
                            &json!({ "id": id, "status": "accepted", "notification": "scheduled" }),
                        );
                        let me = me.clone();
                        lp.set_immediate(move |lp| me.kick(lp));
                    }
                    Err(e) => res.send(db_error(e)),
                }
            },
        );
    }

    /// `GET /api/orders/:id`.
    pub fn get(self: &Rc<Self>, lp: &Loop, req: Request, res: Responder) {
        let Some(id) = crate::orders::order_id(&req).and_then(|id| i64::try_from(id).ok()) else {
            return res.json_error(400, "Invalid order ID");
        };
        let me = self.clone();
        self.pool.query_with(
            lp,
            "SELECT o.id, o.body, (extract(epoch FROM o.created_at) * 1000)::int8 AS created_ms,
                    x.state, x.attempts, x.last_error
             FROM orders o JOIN outbox x ON x.order_id = o.id WHERE o.id = $1",
            &[&id],
            move |_, rows| {
                me.note(&rows);
                match rows {
                    Ok(rows) => match rows.first() {
                        None => res.json_error(404, "Order not found"),
                        Some(row) => {
                            let view = (|| {
                                Ok::<_, PgError>(json!({
                                    "id": row.get::<i64>("id")?,
                                    "order": row.get::<Value>("body")?,
                                    "created_ms": row.get::<i64>("created_ms")?,
                                    "notification": row.get::<String>("state")?,
                                    "notification_attempts": row.get::<i32>("attempts")?,
                                    "last_error": row.get::<Option<String>>("last_error")?,
                                }))
                            })();
                            match view {
                                Ok(v) => res.json(200, &v),
                                Err(e) => res.json_error(500, &e.to_string()),
                            }
                        }
                    },
                    Err(e) => res.send(db_error(e)),
                }
            },
        );
    }

    /// Claims due outbox rows (unless a claim is out) and sends them.
    pub fn kick(self: &Rc<Self>, lp: &Loop) {
        if self.claiming.get() {
            self.again.set(true);
            return;
        }
        // Bounded work: at most two batches out at once per loop.
        if self.in_flight.get() >= 2 * CLAIM_BATCH as usize {
            return;
        }
        self.claiming.set(true);
        let me = self.clone();
        let sql = format!(
            "UPDATE outbox SET claimed_by = $1, claimed_until = now() + interval '{LEASE}',
                    attempts = attempts + 1
             WHERE order_id IN (
               SELECT order_id FROM outbox
               WHERE state = 'pending' AND next_attempt_at <= now()
                 AND (claimed_until IS NULL OR claimed_until < now())
               ORDER BY order_id LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING order_id, attempts,
               (SELECT jsonb_build_object('id', o.id, 'order', o.body,
                  'created_ms', (extract(epoch FROM o.created_at) * 1000)::int8)
                FROM orders o WHERE o.id = order_id) AS record",
        );
        self.pool.query_with(
            lp,
            &sql,
            &[&self.instance, &CLAIM_BATCH],
            move |lp, rows| {
                me.note(&rows);
                me.claiming.set(false);
                let rows = rows.unwrap_or_default();
                let full = rows.len() as i64 == CLAIM_BATCH;
                for row in rows {
                    if let (Ok(id), Ok(record)) =
                        (row.get::<i64>("order_id"), row.get::<Value>("record"))
                    {
                        me.send(lp, id, record);
                    }
                }
                if full || me.again.replace(false) {
                    me.kick(lp);
                }
            },
        );
    }

    fn send(self: &Rc<Self>, lp: &Loop, id: i64, record: Value) {
        let url = match &self.target {
            Target::Fixed(url, _) => Some(url.clone()),
            Target::ThisServer(resolve) => resolve(),
        };
        let Some(base) = url else {
            return self.settle(lp, id, Err("the server is not listening yet".into()));
        };
        let url = format!("{}/orders", base.trim_end_matches('/'));
        let req = ClientRequest::post(&url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", id.to_string())
            .body(record.to_string().into_bytes())
            .timeout(DELIVERY_TIMEOUT);
        self.in_flight.set(self.in_flight.get() + 1);
        let me = self.clone();
        self.client.send(lp, req, move |lp, result| {
            me.in_flight.set(me.in_flight.get() - 1);
            me.settle(lp, id, result.map(|r| r.status).map_err(|e| e.to_string()));
        });
    }

    /// Records an attempt's outcome: delivered, refused for good (a 4xx
    /// other than 408/429), or due again after a backoff doubling from
    /// 100 ms to 60 s. A failure to record it leaves the lease to run
    /// out: the row is sent again (the restaurant dedups).
    fn settle(self: &Rc<Self>, lp: &Loop, id: i64, outcome: Result<u16, String>) {
        let (sql, error): (&str, Option<String>) = match crate::outbox::classify(outcome) {
            Attempt::Delivered => {
                self.delivered.set(self.delivered.get() + 1);
                (DELIVERED_SQL.as_str(), None)
            }
            Attempt::Refused(why) => {
                self.failed.set(self.failed.get() + 1);
                (FAILED_SQL.as_str(), Some(why))
            }
            Attempt::Retry(why) => {
                self.retries.set(self.retries.get() + 1);
                (RETRY_SQL.as_str(), Some(why))
            }
        };
        let me = self.clone();
        self.pool
            .query_with(lp, sql, &[&id, &error, &self.instance], move |lp, r| {
                me.note(&r);
                me.kick(lp);
            });
    }

    /// Delivery figures for `/metrics`: delivered, retried, failed.
    pub fn figures(&self) -> (u64, u64, u64) {
        (self.delivered.get(), self.retries.get(), self.failed.get())
    }
}
