//! Users: an embedded file-backed store (one JSON file per user, read
//! through the thread pool), or PostgreSQL's `users` table (`--database`),
//! behind a TTL cache on the loop.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use phaseloop::{Request, Responder, Response};
use phaseloop_core::{fs, Loop};

/// Sample users written on first run.
const SAMPLE_USERS: u64 = 100;
/// Most users the cache holds; past it, expired entries go first, then the
/// oldest.
const CACHE_CAPACITY: usize = 10_000;

type CachedUser = (Rc<[u8]>, Duration);

pub struct Users {
    dir: PathBuf,
    ttl: Duration,
    /// id -> (user JSON, expiry in loop time).
    cache: RefCell<HashMap<u64, CachedUser>>,
    /// Requests waiting for a store read already under way (one read per id).
    waiting: RefCell<HashMap<u64, Vec<Responder>>>,
    /// The store is PostgreSQL's `users` table (`--database`), not files.
    pg: Option<Rc<crate::pg_store::PgDemo>>,
    pub hits: std::cell::Cell<u64>,
    pub misses: std::cell::Cell<u64>,
    pub store_reads: std::cell::Cell<u64>,
}

const NAMES: [&str; 10] = [
    "Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger", "Radia",
];

/// Creates `data/users/<id>.json` for the sample users if the store is new.
/// The store is written in a scratch directory and renamed into place, so a
/// start cut short (a crash, a full disk) leaves no half store that a later
/// start would take as whole.
pub fn init_store(data_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = data_dir.join("users");
    if !dir.exists() {
        let scratch = data_dir.join(format!("users.new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)?;
        for id in 1..=SAMPLE_USERS {
            let name = NAMES[(id as usize - 1) % NAMES.len()];
            let user = serde_json::json!({
                "id": id,
                "name": format!("{name} {id}"),
                "email": format!("{}{id}@example.com", name.to_lowercase()),
            });
            std::fs::write(scratch.join(format!("{id}.json")), user.to_string())?;
        }
        match std::fs::rename(&scratch, &dir) {
            Ok(()) => {}
            // Another process (a worker) put its store in place first.
            Err(_) if dir.is_dir() => {
                let _ = std::fs::remove_dir_all(&scratch);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(dir)
}

/// Node's `parseInt(id)` check, made strict: digits only, 1..=u64::MAX.
pub fn parse_id(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<u64>().ok().filter(|id| *id > 0)
}

impl Users {
    pub fn new(dir: PathBuf, ttl: Duration, pg: Option<Rc<crate::pg_store::PgDemo>>) -> Users {
        Users {
            dir,
            ttl,
            pg,
            cache: RefCell::new(HashMap::new()),
            waiting: RefCell::new(HashMap::new()),
            hits: Default::default(),
            misses: Default::default(),
            store_reads: Default::default(),
        }
    }

    fn cached(&self, lp: &Loop, id: u64) -> Option<Rc<[u8]>> {
        let mut cache = self.cache.borrow_mut();
        match cache.get(&id) {
            Some((json, expires)) if *expires > lp.now() => Some(json.clone()),
            Some(_) => {
                cache.remove(&id);
                None
            }
            None => None,
        }
    }

    fn insert(&self, lp: &Loop, id: u64, json: Rc<[u8]>) {
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_CAPACITY {
            let now = lp.now();
            cache.retain(|_, (_, exp)| *exp > now);
            if cache.len() >= CACHE_CAPACITY {
                if let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, (_, exp))| *exp)
                    .map(|(k, _)| *k)
                {
                    cache.remove(&oldest);
                }
            }
        }
        cache.insert(id, (json, lp.now() + self.ttl));
    }

    /// `GET /api/users/:id`.
    pub fn get(self: &Rc<Self>, lp: &Loop, req: Request, res: Responder) {
        // 1. Quick validation (sync, cheap).
        let Some(id) = req.param("id").as_deref().and_then(parse_id) else {
            return res.json_error(400, "Invalid user ID");
        };
        // 2. Cache.
        if let Some(json) = self.cached(lp, id) {
            self.hits.set(self.hits.get() + 1);
            return res.send(json_bytes(200, &json));
        }
        self.misses.set(self.misses.get() + 1);
        // 3. The store, through the pool; concurrent misses share one read.
        if let Some(waiters) = self.waiting.borrow_mut().get_mut(&id) {
            waiters.push(res);
            return;
        }
        self.waiting.borrow_mut().insert(id, vec![res]);
        self.store_reads.set(self.store_reads.get() + 1);
        let users = self.clone();
        let finish = move |lp: &Loop, found: Result<Option<Vec<u8>>, Response>| {
            let waiters = users.waiting.borrow_mut().remove(&id).unwrap_or_default();
            let response = match found {
                Ok(Some(bytes)) => {
                    let json: Rc<[u8]> = bytes.into();
                    users.insert(lp, id, json.clone());
                    json_bytes(200, &json)
                }
                Ok(None) => Response::json_error(404, "User not found"),
                Err(response) => response,
            };
            for waiter in waiters {
                waiter.send(response.clone());
            }
        };
        if let Some(pg) = &self.pg {
            return pg.read_user(lp, id, finish);
        }
        fs::read_file(self.dir.join(format!("{id}.json"))).run(lp, move |lp, result| {
            let found = match result {
                Ok(Ok(bytes)) => Ok(Some(bytes)),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Ok(Err(e)) => Err(Response::json_error(500, &format!("user store: {e}"))),
                Err(e) => Err(crate::pool_error(e)),
            };
            finish(lp, found)
        });
    }
}

fn json_bytes(status: u16, json: &[u8]) -> Response {
    Response::new(status)
        .header("Content-Type", "application/json")
        .body(json.to_vec())
}
