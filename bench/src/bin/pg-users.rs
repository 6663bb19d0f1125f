//! The seed's `GET /api/users/:id` read from PostgreSQL, two ways, for
//! `load-tests/pg/side_by_side.sh`:
//!
//! - default: phaseloop's PostgreSQL client and pool on the loop
//!   (`phaseloop::pg`, `max` 20, as the seed's `pg.Pool`);
//! - `--blocking`: the design it replaces: a blocking driver on the
//!   thread pool (4 threads, each with its own connection), the loop
//!   waiting for a pool job per query. The driver here is a minimal one
//!   (the same `postgres-protocol` messages over a blocking socket, one
//!   prepared statement), so the comparison flatters the blocking side.
//!
//! `pg-users --port 3300 --database postgres://postgres@127.0.0.1:5432/postgres [--blocking]`
//! serves until killed. `--pipeline N` instead measures one connection:
//! N queries awaited one at a time, then N with 64 kept in flight.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Parser;
use phaseloop::pg::{Pool, PoolConfig};
use phaseloop::{App, Error, Json, ServerConfig};
use phaseloop_core::{Job, Lane, Loop, RunMode};
use postgres_protocol::message::{backend, frontend};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 3300)]
    port: u16,
    /// The database (a `users` table of id, name, email).
    #[arg(long)]
    database: String,
    /// Queries on the thread pool through a blocking driver.
    #[arg(long)]
    blocking: bool,
    /// The query (one int4 parameter, the id; columns id, name, email).
    #[arg(long, default_value = BY_ID)]
    sql: String,
    /// The handler is an `async` function (default: a callback, the shape
    /// of the blocking variant's handler).
    #[arg(long = "async")]
    use_async: bool,
    /// Pool size (the seed's 20).
    #[arg(long, default_value_t = 20)]
    max: usize,
    /// Measure pipelining on one connection with this many queries, print
    /// JSON, and exit.
    #[arg(long)]
    pipeline: Option<usize>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct User {
    id: i32,
    name: String,
    email: String,
}

const BY_ID: &str = "SELECT id, name, email FROM users WHERE id = $1";

fn main() {
    let args = Args::parse();
    if let Some(n) = args.pipeline {
        return pipeline(&args.database, n);
    }
    let app = if args.blocking {
        blocking_app(args.database.clone(), args.sql.clone())
    } else {
        let mut cfg = PoolConfig::new(&args.database).expect("a postgres:// URL");
        cfg.max = args.max;
        let pool = Pool::new(cfg);
        let sql: std::rc::Rc<str> = args.sql.clone().into();
        if !args.use_async {
            return serve(args.port, callback_app(pool, sql));
        }
        App::new().get_async("/api/users/:id", move |req, _| {
            let pool = pool.clone();
            let sql = sql.clone();
            let id = req.param_as::<i32>("id");
            async move {
                let id = id.map_err(|_| Error::bad_request("Invalid user ID"))?;
                let row = pool
                    .query_opt(&sql, &[&id])
                    .await?
                    .ok_or_else(|| Error::not_found("User not found"))?;
                Ok::<_, Error>(Json(User {
                    id: row.get("id")?,
                    name: row.get("name")?,
                    email: row.get("email")?,
                }))
            }
        })
    };
    serve(args.port, app);
}

fn serve(port: u16, app: App<()>) {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let lp = Loop::new().unwrap();
    let server = phaseloop::Server::bind(&lp, addr, app, ServerConfig::default()).unwrap();
    let _keep = server;
    lp.run(RunMode::Default);
}

/// The route with `Pool::query_with`: a callback, as the blocking variant.
fn callback_app(pool: Pool, sql: std::rc::Rc<str>) -> App<()> {
    App::new().get_with("/api/users/:id", move |lp, req, res| {
        let Ok(id) = req.param_as::<i32>("id") else {
            return res.json_error(400, "Invalid user ID");
        };
        pool.query_with(lp, &sql, &[&id], move |_, rows| match rows {
            Ok(rows) => match rows.first() {
                Some(row) => match (row.get("id"), row.get("name"), row.get("email")) {
                    (Ok(id), Ok(name), Ok(email)) => res.json(200, &User { id, name, email }),
                    _ => res.json_error(500, "a row that does not fit"),
                },
                None => res.json_error(404, "User not found"),
            },
            Err(e) => {
                let e = Error::from(e);
                res.json_error(e.status(), e.message())
            }
        });
    })
}

// ----- the blocking design ----------------------------------------------

thread_local! {
    static BLOCKING: RefCell<Option<BlockingConn>> = const { RefCell::new(None) };
}

fn blocking_app(url: String, sql: String) -> App<()> {
    App::new().get_with("/api/users/:id", move |lp, req, res| {
        let Ok(id) = req.param_as::<i32>("id") else {
            return res.json_error(400, "Invalid user ID");
        };
        let (url, sql) = (url.clone(), sql.clone());
        Job::new(Lane::Fs, move || {
            BLOCKING.with(|c| {
                let mut c = c.borrow_mut();
                if c.is_none() {
                    *c = Some(BlockingConn::connect(&url, &sql)?);
                }
                let result = c.as_mut().unwrap().user(id);
                if result.is_err() {
                    *c = None;
                }
                result
            })
        })
        .run(lp, move |_, result| match result {
            Ok(Ok(Some(user))) => res.json(200, &user),
            Ok(Ok(None)) => res.json_error(404, "User not found"),
            Ok(Err(e)) => res.json_error(500, &e),
            Err(e) => res.json_error(503, &e.to_string()),
        });
    })
}

/// A blocking connection (trust authentication), one prepared statement.
struct BlockingConn {
    socket: TcpStream,
    inbuf: BytesMut,
    out: BytesMut,
}

impl BlockingConn {
    fn connect(url: &str, sql: &str) -> Result<BlockingConn, String> {
        let cfg = phaseloop::pg::ConnectConfig::from_url(url).map_err(|e| e.to_string())?;
        let phaseloop::pg::PgHost::Tcp(host) = &cfg.host else {
            return Err("TCP only".into());
        };
        let socket = TcpStream::connect((host.as_str(), cfg.port)).map_err(|e| e.to_string())?;
        let _ = socket.set_nodelay(true);
        let mut c = BlockingConn {
            socket,
            inbuf: BytesMut::with_capacity(8192),
            out: BytesMut::new(),
        };
        let params = [
            ("user", cfg.user.as_str()),
            ("database", cfg.database.as_str()),
        ];
        frontend::startup_message(params.iter().copied(), &mut c.out).unwrap();
        c.send()?;
        c.until_ready(|_| Ok(()))?;
        frontend::parse("by_id", sql, [23u32], &mut c.out).map_err(|e| e.to_string())?;
        frontend::sync(&mut c.out);
        c.send()?;
        c.until_ready(|_| Ok(()))?;
        Ok(c)
    }

    fn send(&mut self) -> Result<(), String> {
        self.socket
            .write_all(&self.out)
            .map_err(|e| e.to_string())?;
        self.out.clear();
        Ok(())
    }

    fn until_ready(
        &mut self,
        mut each: impl FnMut(backend::Message) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            while let Some(m) =
                backend::Message::parse(&mut self.inbuf).map_err(|e| e.to_string())?
            {
                match m {
                    backend::Message::ReadyForQuery(_) => return Ok(()),
                    backend::Message::ErrorResponse(_) => return Err("server error".into()),
                    m => each(m)?,
                }
            }
            let mut chunk = [0u8; 8192];
            let n = self.socket.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed".into());
            }
            self.inbuf.extend_from_slice(&chunk[..n]);
        }
    }

    fn user(&mut self, id: i32) -> Result<Option<User>, String> {
        frontend::bind(
            "",
            "by_id",
            [1i16],
            [id],
            |v, buf| {
                postgres_protocol::types::int4_to_sql(v, buf);
                Ok(postgres_protocol::IsNull::No)
            },
            [1i16],
            &mut self.out,
        )
        .map_err(|_| "bind")?;
        frontend::execute("", 0, &mut self.out).unwrap();
        frontend::sync(&mut self.out);
        self.send()?;
        let mut user = None;
        self.until_ready(|m| {
            if let backend::Message::DataRow(row) = m {
                use fallible_iterator::FallibleIterator;
                let ranges: Vec<_> = row.ranges().collect().map_err(|e| e.to_string())?;
                let buf = row.buffer();
                let field = |i: usize| ranges[i].clone().map(|r| &buf[r]).unwrap_or(&[]);
                let text = |i| String::from_utf8_lossy(field(i)).into_owned();
                let id =
                    postgres_protocol::types::int4_from_sql(field(0)).map_err(|e| e.to_string())?;
                user = Some(User {
                    id,
                    name: text(1),
                    email: text(2),
                });
            }
            Ok(())
        })?;
        Ok(user)
    }
}

// ----- pipelining on one connection ---------------------------------------

fn pipeline(url: &str, n: usize) {
    let lp = Loop::new().unwrap();
    let url = url.to_owned();
    lp.run_main(move |lp| {
        lp.spawn(async move {
            let mut cfg = PoolConfig::new(&url).unwrap();
            cfg.max = 1;
            let pool = Pool::new(cfg);
            let conn = pool.connection().await.unwrap();
            conn.query(BY_ID, &[&1i32]).await.unwrap(); // prepared once
            let started = Instant::now();
            for i in 0..n {
                let id = (i % 1000) as i32 + 1;
                conn.query(BY_ID, &[&id]).await.unwrap();
            }
            let one_at_a_time = started.elapsed();
            let started = Instant::now();
            let mut in_flight = std::collections::VecDeque::new();
            for i in 0..n {
                let id = (i % 1000) as i32 + 1;
                in_flight.push_back(conn.query(BY_ID, &[&id]));
                if in_flight.len() >= 64 {
                    in_flight.pop_front().unwrap().await.unwrap();
                }
            }
            for q in in_flight {
                q.await.unwrap();
            }
            let pipelined = started.elapsed();
            let qps = |d: Duration| n as f64 / d.as_secs_f64();
            println!(
                "{{\"queries\":{n},\"one_at_a_time_qps\":{:.0},\"pipelined_64_qps\":{:.0},\"ratio\":{:.2}}}",
                qps(one_at_a_time),
                qps(pipelined),
                qps(pipelined) / qps(one_at_a_time)
            );
        });
    });
    lp.run(RunMode::Default);
}
