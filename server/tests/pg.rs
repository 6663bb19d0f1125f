//! The PostgreSQL client and pool against a real PostgreSQL (see
//! `util/pg.rs`: the cluster `.ci/run` started, or one this process starts).

#[path = "util/pg.rs"]
mod pg_server;
#[path = "util/mod.rs"]
mod util;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pg_server::{shared, PgServer, MD5_USER, SCRAM_USER};
use phaseloop::pg::{PgError, PgTimeout, Pool, PoolConfig, Uuid};
use phaseloop::Json;
use phaseloop_core::{Loop, RunMode};

/// Runs `make()`'s future on a fresh loop until the loop has nothing
/// left (idle pool connections do not keep it alive) and returns its
/// output.
fn on_loop<F: Future + 'static>(make: impl FnOnce() -> F + 'static) -> F::Output
where
    F::Output: 'static,
{
    let lp = Loop::new().unwrap();
    let out = Rc::new(RefCell::new(None));
    let slot = out.clone();
    lp.run_main(move |lp| {
        lp.spawn(async move {
            let v = make().await;
            *slot.borrow_mut() = Some(v);
        })
    });
    lp.run(RunMode::Default);
    let v = out.borrow_mut().take();
    v.expect("the future finished before the loop ran dry")
}

/// A table name no other test uses.
fn table(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn pool(url: &str, tune: impl FnOnce(&mut PoolConfig)) -> Pool {
    let mut cfg = PoolConfig::new(url).unwrap();
    tune(&mut cfg);
    Pool::new(cfg)
}

#[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
struct Doc {
    kind: String,
    n: i64,
}

#[test]
fn every_type_round_trips_as_a_parameter_and_a_column() {
    let server = shared();
    let url = server.url.clone();
    on_loop(move || async move {
        let pool = pool(&url, |_| {});
        let when = UNIX_EPOCH + Duration::from_micros(1_765_000_000_123_456);
        let id = Uuid::from_bytes([
            0x1b, 0x4e, 0x28, 0xba, 0x2f, 0xa1, 0x11, 0xd2, 0x88, 0x3f, 0, 0xb0, 0xd0, 0x22, 0x43,
            0x7e,
        ]);
        let doc = serde_json::json!({"kind": "pizza", "n": 3});
        let row = pool
            .query_one(
                "SELECT $1::int2 AS a, $2::int4 AS b, $3::int8 AS c, $4::float4 AS d, $5::float8 AS e, \
                 $6::bool AS f, $7::text AS g, $8::varchar AS h, $9::bytea AS i, $10::uuid AS j, \
                 $11::json AS k, $12::jsonb AS l, $13::timestamptz AS m, $14::numeric AS n, \
                 $15::int4 AS o, $16::text AS p, $17::numeric AS q",
                &[
                    &-12i16,
                    &2_000_000_000i32,
                    &-9_000_000_000_000i64,
                    &1.5f32,
                    &-2.25e100f64,
                    &true,
                    &"héllo \u{1F355}",
                    &String::from("varchar"),
                    &vec![0u8, 255, 10, 13],
                    &id,
                    &doc,
                    &Json(Doc { kind: "sushi".into(), n: 7 }),
                    &when,
                    &"12345678901234567890.0100",
                    &None::<i32>,
                    &Some("x"),
                    &"-0.000012",
                ],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<i16>("a").unwrap(), -12);
        assert_eq!(row.get::<i32>("b").unwrap(), 2_000_000_000);
        assert_eq!(row.get::<i64>("c").unwrap(), -9_000_000_000_000);
        assert_eq!(row.get::<f32>("d").unwrap(), 1.5);
        assert_eq!(row.get::<f64>("e").unwrap(), -2.25e100);
        assert!(row.get::<bool>("f").unwrap());
        assert_eq!(row.get::<String>("g").unwrap(), "héllo \u{1F355}");
        assert_eq!(row.get::<String>("h").unwrap(), "varchar");
        assert_eq!(row.get::<Vec<u8>>("i").unwrap(), vec![0u8, 255, 10, 13]);
        assert_eq!(row.get::<Uuid>("j").unwrap(), id);
        assert_eq!(row.get::<serde_json::Value>("k").unwrap(), doc);
        assert_eq!(
            row.get::<Json<Doc>>("l").unwrap().0,
            Doc {
                kind: "sushi".into(),
                n: 7
            }
        );
        assert_eq!(row.get::<SystemTime>("m").unwrap(), when);
        assert_eq!(row.get::<String>("n").unwrap(), "12345678901234567890.0100");
        assert_eq!(row.get::<String>("q").unwrap(), "-0.000012");
        assert_eq!(row.get::<Option<i32>>("o").unwrap(), None);
        assert_eq!(row.get::<Option<String>>(15).unwrap().as_deref(), Some("x"));
        // A NULL read as a non-Option, a type that does not fit, a missing
        // column: typed errors that name the column.
        let e = row.get::<i32>("o").unwrap_err();
        assert!(
            matches!(&e, PgError::Conversion(m) if m.contains("\"o\"") && m.contains("NULL")),
            "{e}"
        );
        let e = row.get::<i32>("g").unwrap_err();
        assert!(
            matches!(&e, PgError::Conversion(m) if m.contains("text")),
            "{e}"
        );
        assert!(matches!(row.get::<i32>("zz"), Err(PgError::Conversion(_))));
        // Widening reads: int2 as i64, int4 as f64.
        assert_eq!(row.get::<i64>("a").unwrap(), -12);

        // The same values through a table, and a row mapped into a struct.
        let t = table("types");
        pool.execute(
            &format!(
                "CREATE TABLE {t} (id uuid PRIMARY KEY, name text NOT NULL, price numeric(10,2), \
                      at timestamptz, meta jsonb, score float8, tags bytea)"
            ),
            &[],
        )
        .await
        .unwrap();
        let n = pool
            .execute(
                &format!("INSERT INTO {t} VALUES ($1, $2, $3, $4, $5, $6, $7), ($8, $9, NULL, NULL, NULL, NULL, NULL)"),
                &[&id, &"margherita", &"9.50", &when, &doc, &0.5f64, &b"ab".as_slice(),
                  &Uuid::nil(), &"empty"],
            )
            .await
            .unwrap();
        assert_eq!(n, 2);
        #[derive(Debug, serde::Deserialize)]
        struct Item {
            id: String,
            name: String,
            price: Option<String>,
            at: Option<String>,
            meta: Option<serde_json::Value>,
            score: Option<f64>,
            tags: Option<Vec<u8>>,
        }
        let rows = pool
            .query(&format!("SELECT * FROM {t} ORDER BY name DESC"), &[])
            .await
            .unwrap();
        let items: Vec<Item> = rows.iter().map(|r| r.deserialize().unwrap()).collect();
        assert_eq!(items[0].id, "1b4e28ba-2fa1-11d2-883f-00b0d022437e");
        assert_eq!(items[0].name, "margherita");
        assert_eq!(items[0].price.as_deref(), Some("9.50"));
        assert_eq!(items[0].at.as_deref(), Some("2025-12-06T05:46:40.123456Z"));
        assert_eq!(items[0].meta, Some(doc.clone()));
        assert_eq!(items[0].score, Some(0.5));
        assert_eq!(items[0].tags.as_deref(), Some(&b"ab"[..]));
        assert_eq!(items[1].name, "empty");
        assert!(items[1].price.is_none() && items[1].meta.is_none() && items[1].tags.is_none());
    });
}

#[test]
fn pipelined_queries_answer_in_order_and_an_error_fails_only_its_own() {
    let server = shared();
    let url = server.url.clone();
    on_loop(move || async move {
        let pool = pool(&url, |c| c.max = 1);
        let conn = pool.connection().await.unwrap();
        // Queued before any is awaited: they leave in one write and their
        // answers come back in order.
        let mut pending = Vec::new();
        for i in 0..100i64 {
            let sql = if i % 3 == 0 {
                "SELECT $1::int8 * 2 AS v"
            } else {
                "SELECT $1::int8 + 1000 AS v"
            };
            pending.push(conn.query(sql, &[&i]));
        }
        let bad = conn.query("SELECT 1 / ($1::int4 - 5) AS v", &[&5i32]);
        let after_bad = conn.query("SELECT $1::text AS v", &[&"still fine"]);
        for (i, p) in pending.into_iter().enumerate() {
            let i = i as i64;
            let rows = p.await.unwrap();
            let want = if i % 3 == 0 { i * 2 } else { i + 1000 };
            assert_eq!(rows[0].get::<i64>("v").unwrap(), want, "query {i}");
        }
        let e = bad.await.unwrap_err();
        assert_eq!(e.code(), Some("22012"), "{e}");
        assert!(e.db().unwrap().message.contains("division by zero"));
        let rows = after_bad.await.unwrap();
        assert_eq!(rows[0].get::<String>(0).unwrap(), "still fine");
        assert!(conn.backend_pid().is_some());
        drop(conn);

        // A unique violation carries its constraint and detail.
        let t = table("uniq");
        pool.execute(
            &format!("CREATE TABLE {t} (email text CONSTRAINT {t}_email UNIQUE)"),
            &[],
        )
        .await
        .unwrap();
        pool.execute(&format!("INSERT INTO {t} VALUES ($1)"), &[&"a@x"])
            .await
            .unwrap();
        let e = pool
            .execute(&format!("INSERT INTO {t} VALUES ($1)"), &[&"a@x"])
            .await
            .unwrap_err();
        let db = e.db().expect("a server error");
        assert_eq!(db.code, "23505");
        assert_eq!(
            db.constraint.as_deref(),
            Some(format!("{t}_email").as_str())
        );
        assert!(db.detail.as_deref().unwrap_or("").contains("a@x"), "{db:?}");
        assert_eq!(phaseloop::Error::from(e).status().as_u16(), 409);

        // Bad parameters fail before they are sent, naming the parameter;
        // the connection goes on.
        let e = pool
            .query("SELECT $1::int4", &[&5_000_000_000i64])
            .await
            .unwrap_err();
        assert!(
            matches!(&e, PgError::Conversion(m) if m.contains("$1") && m.contains("int4")),
            "{e}"
        );
        let e = pool
            .query("SELECT $1::int4, $2::int4", &[&1i32])
            .await
            .unwrap_err();
        assert!(
            matches!(&e, PgError::Conversion(m) if m.contains("2 parameters")),
            "{e}"
        );
        let e = pool.query("SELEKT 1", &[]).await.unwrap_err();
        assert_eq!(e.code(), Some("42601"));
        let rows = pool.query("SELECT 41 + 1 AS v", &[]).await.unwrap();
        assert_eq!(rows[0].get::<i32>("v").unwrap(), 42);
        let stats = pool.stats();
        assert_eq!(stats.total, 1, "{stats:?}");
        let class = |c: &str| {
            stats
                .errors_by_class
                .iter()
                .find(|(k, _)| k == c)
                .map(|(_, n)| *n)
        };
        assert_eq!(class("22"), Some(1), "{stats:?}");
        assert_eq!(class("23"), Some(1), "{stats:?}");
        assert_eq!(class("42"), Some(1), "{stats:?}");
        assert!(stats.query_time.count >= 100);
        let h = pool.histograms();
        assert_eq!(h.query_us.len(), stats.queries);
        assert_eq!(h.wait_us.len(), stats.acquired);
    });
}

#[test]
fn a_statement_whose_table_changed_is_prepared_afresh() {
    let server = shared();
    let url = server.url.clone();
    on_loop(move || async move {
        let pool = pool(&url, |c| c.max = 1);
        let t = table("altered");
        pool.simple_query(&format!(
            "CREATE TABLE {t} (a int); INSERT INTO {t} VALUES (1)"
        ))
        .await
        .unwrap();
        let select = format!("SELECT * FROM {t}");
        assert_eq!(pool.query(&select, &[]).await.unwrap()[0].len(), 1);
        pool.execute(&format!("ALTER TABLE {t} ADD COLUMN b int DEFAULT 2"), &[])
            .await
            .unwrap();
        // The cached plan's result type changed: that call fails (0A000),
        // the statement leaves the cache, and the next call sees both columns.
        let e = pool.query(&select, &[]).await.unwrap_err();
        assert_eq!(e.code(), Some("0A000"), "{e}");
        let rows = pool.query(&select, &[]).await.unwrap();
        assert_eq!(
            (
                rows[0].get::<i32>("a").unwrap(),
                rows[0].get::<i32>("b").unwrap()
            ),
            (1, 2)
        );
    });
}

#[test]
fn simple_queries_run_scripts_and_return_text_rows() {
    let server = shared();
    let url = server.url.clone();
    on_loop(move || async move {
        let pool = pool(&url, |_| {});
        let t = table("script");
        let rows = pool
            .simple_query(&format!(
                "CREATE TABLE {t} (n int, s text); INSERT INTO {t} VALUES (1, 'one'), (2, NULL); \
                 SELECT n, s FROM {t} ORDER BY n"
            ))
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get::<i32>("n").unwrap(), 1);
        assert_eq!(rows[0].get::<String>("s").unwrap(), "one");
        assert_eq!(rows[1].get::<Option<String>>("s").unwrap(), None);
        let e = pool
            .simple_query("SELECT 1; SELECT nope")
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("42703"));
    });
}

#[test]
fn the_callback_api_and_the_unix_socket_and_tcp_both_work() {
    let server = shared();
    for url in [server.url.clone(), server.tcp_url.clone()] {
        let lp = Loop::new().unwrap();
        let got = Rc::new(RefCell::new(None));
        let slot = got.clone();
        let pool = pool(&url, |_| {});
        lp.run_main(|lp| {
            pool.query_with(
                lp,
                "SELECT $1::text || '!' AS v",
                &[&"hi"],
                move |_, rows| {
                    *slot.borrow_mut() = Some(rows.unwrap()[0].get::<String>("v").unwrap());
                },
            )
        });
        lp.run(RunMode::Default);
        assert_eq!(got.borrow().as_deref(), Some("hi!"), "{url}");
    }
}

#[test]
fn scram_md5_and_a_wrong_password() {
    let server = shared();
    let roles = server.psql(&format!(
        "SELECT count(*) FROM pg_roles WHERE rolname IN ('{}', '{}')",
        SCRAM_USER.0, MD5_USER.0
    ));
    assert_eq!(
        roles, "2",
        "the server lacks the test roles: start it with load-tests/pg/cluster.sh"
    );
    for (user, password) in [SCRAM_USER, MD5_USER] {
        let url = server.url_for(user, password);
        let got = on_loop(move || async move {
            let pool = pool(&url, |_| {});
            let row = pool
                .query_one("SELECT current_user::text AS u", &[])
                .await?;
            row.get::<String>("u")
        });
        assert_eq!(got.unwrap(), user);
    }
    let stored = server.psql(&format!(
        "SELECT left(rolpassword, 6) FROM pg_authid WHERE rolname IN ('{}', '{}') ORDER BY rolname",
        MD5_USER.0, SCRAM_USER.0
    ));
    let kinds: Vec<&str> = stored.lines().collect();
    assert!(
        kinds.len() == 2 && kinds[0].starts_with("md5") && kinds[1] == "SCRAM-",
        "{stored}"
    );
    let url = server.url_for(SCRAM_USER.0, "wrong");
    let e = on_loop(
        move || async move { pool(&url, |_| {}).query("SELECT 1", &[]).await.unwrap_err() },
    );
    assert!(matches!(&e, PgError::Auth(m) if m.contains("28P01")), "{e}");
}

#[test]
fn a_full_pool_is_a_typed_error_in_time_and_a_queue_past_its_bound_is_refused() {
    let server = shared();
    let url = server.url.clone();
    on_loop(move || async move {
        let pool = pool(&url, |c| {
            c.max = 2;
            c.acquire_timeout = Duration::from_millis(200);
            c.max_waiting = 1;
        });
        let a = pool.connection().await.unwrap();
        let b = pool.connection().await.unwrap();
        let started = Instant::now();
        let waiting = pool.connection();
        // The queue holds one: the next caller is refused at once.
        let refused = pool.connection().await.unwrap_err();
        assert_eq!(refused, PgError::PoolFull);
        assert!(refused.is_unavailable());
        let e = waiting.await.unwrap_err();
        let waited = started.elapsed();
        assert_eq!(e, PgError::PoolTimeout(Duration::from_millis(200)));
        assert!(waited >= Duration::from_millis(190), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        let http = phaseloop::Error::from(e);
        assert_eq!(http.status().as_u16(), 503);
        let stats = pool.stats();
        assert_eq!((stats.total, stats.in_use, stats.waiting), (2, 2, 0));
        assert_eq!((stats.acquire_timeouts, stats.refused), (1, 1));
        // A returned connection goes to the next caller.
        let next = pool.connection();
        drop(a);
        let c = next.await.unwrap();
        assert_eq!(c.query("SELECT 1", &[]).await.unwrap().len(), 1);
        drop((b, c));
        assert_eq!(pool.stats().idle, 2);
    });
}

#[test]
fn transactions_commit_roll_back_and_a_dropped_one_rolls_back() {
    let server = shared();
    let url = server.url.clone();
    let t = table("tx");
    let t2 = t.clone();
    on_loop(move || async move {
        let t = t2;
        let pool = pool(&url, |c| c.max = 1);
        pool.execute(&format!("CREATE TABLE {t} (n int)"), &[])
            .await
            .unwrap();
        let tx = pool.transaction().await.unwrap();
        tx.execute(&format!("INSERT INTO {t} VALUES (1)"), &[])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let tx = pool.transaction().await.unwrap();
        tx.execute(&format!("INSERT INTO {t} VALUES (2)"), &[])
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        let tx = pool.transaction().await.unwrap();
        tx.execute(&format!("INSERT INTO {t} VALUES (3)"), &[])
            .await
            .unwrap();
        drop(tx); // no commit: rolled back before the connection is reused
                  // A connection handed back inside a transaction it began itself is
                  // rolled back too.
        let conn = pool.connection().await.unwrap();
        conn.simple_query(&format!("BEGIN; INSERT INTO {t} VALUES (4)"))
            .await
            .unwrap();
        drop(conn);
        // A failed transaction's COMMIT is an error, not a success.
        let tx = pool.transaction().await.unwrap();
        let _ = tx.execute("SELECT 1/0", &[]).await.unwrap_err();
        let e = tx.commit().await.unwrap_err();
        assert_eq!(e.code(), Some("25P02"), "{e}");
        let rows = pool
            .query(&format!("SELECT n FROM {t} ORDER BY n"), &[])
            .await
            .unwrap();
        let ns: Vec<i32> = rows.iter().map(|r| r.get("n").unwrap()).collect();
        assert_eq!(ns, vec![1]);
        assert_eq!(
            pool.stats().connects,
            1,
            "the one connection served throughout"
        );
    });
    let open = server.psql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND query LIKE '%{t}%'"
    ));
    assert_eq!(open, "0");
}

#[test]
fn a_statement_past_its_timeout_is_cancelled_on_the_server() {
    let server = shared();
    let url = server.url.clone();
    let marker = table("slow");
    let m = marker.clone();
    let (e, then) = on_loop(move || async move {
        let pool = pool(&url, |c| {
            c.max = 1;
            c.statement_timeout = Some(Duration::from_millis(300));
        });
        let e = pool
            .query(&format!("SELECT pg_sleep(60), '{m}'"), &[])
            .await
            .unwrap_err();
        // The same connection serves the next statement.
        let then = pool.query("SELECT 7 AS v", &[]).await.unwrap()[0].get::<i32>("v");
        assert_eq!(pool.stats().connects, 1);
        (e, then)
    });
    assert_eq!(
        e,
        PgError::Timeout(PgTimeout::Statement, Duration::from_millis(300))
    );
    assert_eq!(e.code(), Some("57014"));
    assert_eq!(then.unwrap(), 7);
    let running = server.psql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(60), ''{marker}''%' AND pid <> pg_backend_pid()"
    ));
    assert_eq!(running, "0", "the statement still runs on the server");
}

#[test]
fn a_terminated_backend_fails_its_query_and_the_pool_heals() {
    let server = shared();
    let url = server.url.clone();
    let marker = table("victim");
    let psql_server: &'static PgServer = server;
    let m = marker.clone();
    on_loop(move || async move {
        let pool = pool(&url, |c| c.max = 2);
        let conn = pool.connection().await.unwrap();
        let pid = conn.backend_pid().unwrap();
        let sleeping = conn.query(&format!("SELECT pg_sleep(30), '{m}'"), &[]);
        // Terminate it from outside (psql, a thread: the loop goes on).
        let killer = std::thread::spawn(move || {
            for _ in 0..200 {
                let active = psql_server.psql(&format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND state = 'active'"
                ));
                if active == "1" {
                    return psql_server.psql(&format!("SELECT pg_terminate_backend({pid})"));
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            "never active".into()
        });
        let e = sleeping.await.unwrap_err();
        assert_eq!(killer.join().unwrap(), "t");
        assert_eq!(e.code(), Some("57P01"), "{e}");
        assert!(e.is_unavailable());
        // The next statement on the broken connection fails at once, typed.
        let e2 = conn.query("SELECT 1", &[]).await.unwrap_err();
        assert!(matches!(e2, PgError::Db(_) | PgError::Closed(_)), "{e2}");
        drop(conn);
        let stats = pool.stats();
        assert_eq!((stats.total, stats.broken), (0, 1), "{stats:?}");
        // The pool heals: a new connection, a new backend.
        let conn = pool.connection().await.unwrap();
        assert_ne!(conn.backend_pid(), Some(pid));
        assert_eq!(conn.query("SELECT 1", &[]).await.unwrap().len(), 1);
    });
}

#[test]
fn an_idle_connection_closed_by_the_server_is_replaced() {
    let server = shared();
    let url = server.url.clone();
    let psql_server: &'static PgServer = server;
    on_loop(move || async move {
        let pool = pool(&url, |c| c.max = 1);
        let pid = {
            let conn = pool.connection().await.unwrap();
            conn.backend_pid().unwrap()
        };
        assert_eq!(pool.stats().idle, 1);
        let killed = std::thread::spawn(move || {
            psql_server.psql(&format!("SELECT pg_terminate_backend({pid})"))
        })
        .join()
        .unwrap();
        assert_eq!(killed, "t");
        // The loop hears the close while the connection idles.
        for _ in 0..500 {
            if pool.stats().idle == 0 {
                break;
            }
            phaseloop_core::sleep(Duration::from_millis(10)).await;
        }
        let stats = pool.stats();
        assert_eq!(
            (stats.idle, stats.total, stats.broken),
            (0, 0, 1),
            "{stats:?}"
        );
        let rows = pool
            .query("SELECT pg_backend_pid() AS p", &[])
            .await
            .unwrap();
        assert_ne!(rows[0].get::<i32>("p").unwrap(), pid);
    });
}

#[test]
fn idle_connections_close_after_the_idle_timeout() {
    let server = shared();
    let url = server.url.clone();
    on_loop(move || async move {
        let pool = pool(&url, |c| c.idle_timeout = Duration::from_millis(200));
        let (a, b) = (
            pool.connection().await.unwrap(),
            pool.connection().await.unwrap(),
        );
        drop((a, b));
        assert_eq!(pool.stats().idle, 2);
        phaseloop_core::sleep(Duration::from_millis(600)).await;
        let stats = pool.stats();
        assert_eq!((stats.idle, stats.total), (0, 0), "{stats:?}");
    });
}

#[test]
fn the_statement_cache_evicts_and_stays_correct() {
    let server = shared();
    let url = server.url.clone();
    on_loop(move || async move {
        let pool = pool(&url, |c| {
            c.max = 1;
            c.statement_cache = 3;
        });
        let conn = pool.connection().await.unwrap();
        let mut pending = Vec::new();
        for round in 0..3 {
            for k in 0..8i64 {
                let sql = format!("SELECT $1::int8 + {k} AS v");
                pending.push((round * 100 + k + k, conn.query(&sql, &[&(round * 100 + k)])));
            }
        }
        for (want, p) in pending {
            assert_eq!(p.await.unwrap()[0].get::<i64>("v").unwrap(), want);
        }
        let prepared = conn
            .query("SELECT count(*) AS n FROM pg_prepared_statements", &[])
            .await
            .unwrap()[0]
            .get::<i64>("n")
            .unwrap();
        assert!(prepared <= 3, "{prepared} statements kept");
    });
}

#[test]
fn a_restart_of_postgresql_under_load_fails_queries_then_they_succeed_again() {
    let server = PgServer::start();
    let url = server.tcp_url.clone();
    let phase = std::sync::Arc::new(AtomicUsize::new(0)); // 0 load, 1 stopped, 2 restarted, 3 end
    let log = std::sync::Arc::new(std::sync::Mutex::new(
        Vec::<(usize, Result<(), String>)>::new(),
    ));
    let (p2, l2) = (phase.clone(), log.clone());
    let runner = std::thread::spawn(move || {
        on_loop(move || async move {
            let pool = pool(&url, |c| {
                c.max = 4;
                c.connect_timeout = Duration::from_millis(500);
                c.acquire_timeout = Duration::from_millis(500);
            });
            while p2.load(Ordering::SeqCst) < 3 {
                // Four at a time, as a loaded service would.
                let qs: Vec<_> = (0..4).map(|_| pool.query("SELECT 1 AS one", &[])).collect();
                for q in qs {
                    let r = q.await.map(|_| ()).map_err(|e| {
                        assert!(e.is_unavailable(), "not a typed outage: {e:?}");
                        e.to_string()
                    });
                    l2.lock().unwrap().push((p2.load(Ordering::SeqCst), r));
                }
                phaseloop_core::sleep(Duration::from_millis(5)).await;
            }
        })
    });
    let count = |phase: usize, ok: bool| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|(p, r)| *p == phase && r.is_ok() == ok)
            .count()
    };
    let wait_for = |what: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !what() {
            if start.elapsed() > Duration::from_secs(60) {
                let log = log.lock().unwrap();
                panic!(
                    "timed out; the last outcomes: {:?}",
                    &log[log.len().saturating_sub(10)..]
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for(&|| count(0, true) >= 40);
    // The phase moves before the server does: an outcome is logged under
    // the phase current when it arrived.
    phase.store(1, Ordering::SeqCst);
    server.stop();
    wait_for(&|| count(1, false) >= 8);
    phase.store(2, Ordering::SeqCst);
    server.start_again();
    wait_for(&|| count(2, true) >= 40);
    phase.store(3, Ordering::SeqCst);
    runner.join().unwrap();
    assert_eq!(count(0, false), 0, "no failure before the stop");
    let log = log.lock().unwrap();
    // After the restart, once a query succeeded, all later ones did.
    let after: Vec<bool> = log
        .iter()
        .filter(|(p, _)| *p == 2)
        .map(|(_, r)| r.is_ok())
        .collect();
    let first_ok = after.iter().position(|ok| *ok).unwrap();
    assert!(after[first_ok..].iter().all(|ok| *ok), "{after:?}");
}

thread_local! {
    /// The HTTP test's pool: one connection, a short wait.
    static ONE: Pool = pool(&shared().url, |c| {
        c.max = 1;
        c.acquire_timeout = Duration::from_millis(100);
    });
}

fn database_app() -> phaseloop::App<()> {
    phaseloop::App::new()
        .get_async("/slow", |_req, _| async {
            let pool = ONE.with(Pool::clone);
            pool.query("SELECT pg_sleep(1.5)", &[]).await?;
            Ok::<_, phaseloop::Error>("slept")
        })
        .get_async("/users/:id", |req, _| {
            let pool = ONE.with(Pool::clone);
            let id = req.param_as::<i64>("id");
            async move {
                let row = pool.query_one("SELECT $1::int8 AS id", &[&id?]).await?;
                Ok::<_, phaseloop::Error>(Json(serde_json::json!({ "id": row.get::<i64>("id")? })))
            }
        })
}

#[test]
fn a_handler_answers_503_with_retry_after_when_the_pool_is_busy() {
    let _ = shared();
    let server = util::TestServer::start(database_app);
    let mut fine = server.connect();
    fine.send(b"GET /users/7 HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = fine.response();
    assert_eq!(util::status_of(&r), "HTTP/1.1 200 OK", "{r}");
    assert_eq!(util::body_of(&r), "{\"id\":7}");
    // One connection, held by /slow for 1.5 s: /users waits 100 ms, then 503.
    let mut slow = server.connect();
    slow.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));
    fine.send(b"GET /users/8 HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n");
    let r = fine.response();
    assert_eq!(
        util::status_of(&r),
        "HTTP/1.1 503 Service Unavailable",
        "{r}"
    );
    assert!(
        r.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"),
        "{r}"
    );
    assert_eq!(
        util::body_of(&r),
        "{\"error\":\"the database is unavailable: all its connections are busy\"}"
    );
    let r = slow.response();
    assert_eq!(util::status_of(&r), "HTTP/1.1 200 OK", "{r}");
    // Free again: answered.
    fine.send(b"GET /users/9 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(util::body_of(&fine.response()), "{\"id\":9}");
}

/// A scripted "PostgreSQL" on a socket: it accepts one connection, lets
/// the client in (trust), then answers the first query with `reply`.
fn scripted_server(reply: &'static [u8]) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf); // the start-up message
        let mut hello = Vec::new();
        hello.extend_from_slice(b"R\0\0\0\x08\0\0\0\0"); // AuthenticationOk
        hello.extend_from_slice(b"K\0\0\0\x0c\0\0\0\x07\0\0\0\x09"); // BackendKeyData
        hello.extend_from_slice(b"Z\0\0\0\x05I"); // ReadyForQuery
        s.write_all(&hello).unwrap();
        let _ = s.read(&mut buf); // the first query (Parse, Describe, Sync)
        let _ = s.write_all(reply);
        std::thread::sleep(Duration::from_millis(300));
    });
    format!("postgres://x@127.0.0.1:{port}/x")
}

#[test]
fn a_server_sending_garbage_gets_typed_errors_not_panics() {
    let cases: [(&'static [u8], &str); 3] = [
        // A length of 2 GiB: refused before anything is buffered.
        (b"D\x7f\xff\xff\xff", "bytes (more than"),
        // A message type the protocol does not have.
        (b"!\0\0\0\x04", "malformed"),
        // A row that says it has a value and holds none.
        (b"D\0\0\0\x06\0\x01Z\0\0\0\x05I", "a malformed row"),
    ];
    for (reply, want) in cases {
        let url = scripted_server(reply);
        let e =
            on_loop(
                move || async move { pool(&url, |_| {}).query("SELECT 1", &[]).await.unwrap_err() },
            );
        assert!(
            matches!(&e, PgError::Protocol(m) if m.contains(want)),
            "{reply:?}: {e:?}"
        );
    }
    // The server closing mid-answer: the connection's error, typed.
    let url = scripted_server(b"1\0\0\0\x04");
    let e = on_loop(
        move || async move { pool(&url, |_| {}).query("SELECT 1", &[]).await.unwrap_err() },
    );
    assert!(matches!(e, PgError::Closed(_)), "{e:?}");
}

/// LISTEN/NOTIFY: a listener gets each notification of its channels (and
/// none of others), in order; terminated by the server, it says so,
/// reconnects, LISTENs again and gets what is sent after.
#[test]
fn a_listener_gets_notifications_and_listens_again_after_its_connection_is_lost() {
    use phaseloop::pg::ListenEvent;
    let server = shared();
    let url = server.url.clone();
    on_loop(move || async move {
        let pool = pool(&url, |_| {});
        let channel = table("events");
        let seen: Rc<RefCell<Vec<String>>> = Rc::default();
        let log = seen.clone();
        let listener = Loop::with_current(|lp| {
            pool.listen(lp, &[channel.as_str(), "quiet \"one\""], move |_, event| {
                log.borrow_mut().push(match event {
                    ListenEvent::Listening => "listening".to_string(),
                    ListenEvent::Notification { channel, payload } => {
                        format!("{channel}: {payload}")
                    }
                    ListenEvent::Lost(e) => format!("lost {}", e.code().unwrap_or("-")),
                });
            })
        })
        .unwrap();
        // Waits until the log has `n` lines (bounded), then returns them.
        let wait_for = |n: usize| {
            let seen = seen.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(20);
                while seen.borrow().len() < n {
                    assert!(Instant::now() < deadline, "{:?}", seen.borrow());
                    phaseloop_core::sleep(Duration::from_millis(10)).await;
                }
                seen.borrow().clone()
            }
        };
        assert_eq!(wait_for(1).await, ["listening"]);
        for i in 0..3 {
            pool.execute(&format!("NOTIFY {channel}, 'step {i}'"), &[])
                .await
                .unwrap();
        }
        pool.execute("NOTIFY elsewhere, 'not ours'", &[])
            .await
            .unwrap();
        pool.execute("SELECT pg_notify('quiet \"one\"', '')", &[])
            .await
            .unwrap();
        let got = wait_for(5).await;
        assert_eq!(
            got[1..5],
            [
                format!("{channel}: step 0"),
                format!("{channel}: step 1"),
                format!("{channel}: step 2"),
                "quiet \"one\": ".to_string(),
            ]
        );
        // The server ends its connection: lost (57P01), then listening
        // again, and a notification sent after arrives.
        let pid = listener.backend_pid().expect("connected");
        pool.execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        let got = wait_for(7).await;
        assert_eq!(got[5..7], ["lost 57P01", "listening"], "{got:?}");
        assert_ne!(listener.backend_pid(), Some(pid));
        pool.execute(&format!("NOTIFY {channel}, 'after'"), &[])
            .await
            .unwrap();
        let got = wait_for(8).await;
        assert_eq!(got[7], format!("{channel}: after"));
        Loop::with_current(|lp| listener.close(lp));
        // Closed: nothing more, and the loop can end.
        pool.execute(&format!("NOTIFY {channel}, 'closed'"), &[])
            .await
            .unwrap();
        phaseloop_core::sleep(Duration::from_millis(100)).await;
        assert_eq!(seen.borrow().len(), 8);
    });
}
