//! Where the database is and how the pool behaves: a connection string
//! (`postgres://user:password@host:port/database`) and the pool's limits,
//! with the defaults of the seed's `pg.Pool`.

use std::path::PathBuf;
use std::time::Duration;

use super::PgError;
use crate::http::request::percent_decode;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgHost {
    /// A host name or IP address, over TCP.
    Tcp(String),
    /// A directory holding the server's Unix socket (`.s.PGSQL.<port>`).
    Unix(PathBuf),
}

/// How to reach and log into one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectConfig {
    /// Where the server is.
    pub host: PgHost,
    /// Its port (also the Unix socket's number).
    pub port: u16,
    /// The role to log in as.
    pub user: String,
    /// Its password (SCRAM-SHA-256, md5 or cleartext, as the server asks).
    pub password: Option<String>,
    /// The database.
    pub database: String,
    /// Shown in `pg_stat_activity.application_name`.
    pub application_name: String,
}

impl ConnectConfig {
    /// Reads `postgres://[user[:password]@][host][:port][/database][?host=/socket/dir&application_name=x]`
    /// (also `postgresql://`). A `host` starting with `/`, in the
    /// authority (percent-encoded) or as the `host` parameter, is a Unix
    /// socket directory. Defaults: localhost, 5432, user `postgres`, the
    /// database named as the user.
    pub fn from_url(url: &str) -> Result<ConnectConfig, PgError> {
        let bad = |m: &str| PgError::Config(format!("{m} in the connection string"));
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| bad("no postgres:// scheme"))?;
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (rest, None),
        };
        let (authority, database) = match main.split_once('/') {
            Some((a, d)) => (a, d),
            None => (main, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let decode = |s: &str| percent_decode(s, false).into_owned();
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((name, pw)) => (decode(name), Some(decode(pw))),
                None => (decode(u), None),
            },
            None => (String::new(), None),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("an unclosed [ ]"))?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (decode(h), Some(p)),
                None => (decode(hostport), None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("a bad port"))?,
            None => 5432,
        };
        let mut cfg = ConnectConfig {
            host: PgHost::Tcp(if host.is_empty() {
                "localhost".into()
            } else {
                host
            }),
            port,
            user,
            password,
            database: decode(database),
            application_name: "phaseloop".into(),
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v);
            match k {
                "host" => cfg.host = PgHost::Tcp(v),
                "port" => cfg.port = v.parse().map_err(|_| bad("a bad port"))?,
                "user" => cfg.user = v,
                "password" => cfg.password = Some(v),
                "dbname" => cfg.database = v,
                "application_name" => cfg.application_name = v,
                // TLS to PostgreSQL is not built in: refuse a demand for it
                // rather than send a password in the clear unasked.
                "sslmode" if !matches!(v.as_str(), "disable" | "allow" | "prefer") => {
                    return Err(bad("sslmode other than disable/allow/prefer (no TLS yet)"));
                }
                _ => {}
            }
        }
        if let PgHost::Tcp(h) = &cfg.host {
            if h.starts_with('/') {
                cfg.host = PgHost::Unix(PathBuf::from(h));
            }
        }
        if cfg.user.is_empty() {
            cfg.user = "postgres".into();
        }
        if cfg.database.is_empty() {
            cfg.database = cfg.user.clone();
        }
        Ok(cfg)
    }
}

/// The pool's limits and timeouts (the seed's
/// `new Pool({ max: 20, idleTimeoutMillis: 30000, connectionTimeoutMillis: 2000 })`).
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The database to reach.
    pub connect: ConnectConfig,
    /// Connections open at most, connecting ones included (per loop: a
    /// cluster of N loops opens up to N × `max`).
    pub max: usize,
    /// An idle connection is closed after this long unused.
    pub idle_timeout: Duration,
    /// Longest a connect and its authentication may take.
    pub connect_timeout: Duration,
    /// Longest a caller waits for a free connection before
    /// [`PgError::PoolTimeout`].
    pub acquire_timeout: Duration,
    /// Callers that may wait for a connection at once; past it a caller
    /// gets [`PgError::PoolFull`] at once.
    pub max_waiting: usize,
    /// A statement running longer is cancelled on the server (and its
    /// caller gets [`PgError::Timeout`]); `None`: no limit.
    pub statement_timeout: Option<Duration>,
    /// Prepared statements kept per connection (least recently used
    /// closed first).
    pub statement_cache: usize,
}

impl PoolConfig {
    /// The seed's defaults for the database at `url`.
    pub fn new(url: &str) -> Result<PoolConfig, PgError> {
        Ok(PoolConfig::from_connect(ConnectConfig::from_url(url)?))
    }

    /// The seed's defaults for `connect`.
    pub fn from_connect(connect: ConnectConfig) -> PoolConfig {
        PoolConfig {
            connect,
            max: 20,
            idle_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            acquire_timeout: Duration::from_secs(2),
            max_waiting: 1024,
            statement_timeout: Some(Duration::from_secs(30)),
            statement_cache: 256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_read_as_libpq_reads_them() {
        let c = ConnectConfig::from_url("postgres://app:p%40ss@db.local:6543/shop").unwrap();
        assert_eq!(c.host, PgHost::Tcp("db.local".into()));
        assert_eq!(
            (c.port, c.user.as_str(), c.database.as_str()),
            (6543, "app", "shop")
        );
        assert_eq!(c.password.as_deref(), Some("p@ss"));
        let c = ConnectConfig::from_url("postgresql://u@%2Ftmp%2Fpg:5433/d").unwrap();
        assert_eq!(c.host, PgHost::Unix("/tmp/pg".into()));
        let c = ConnectConfig::from_url("postgres:///d?host=/run/pg&port=7&user=x").unwrap();
        assert_eq!(
            (c.host, c.port, c.user.as_str()),
            (PgHost::Unix("/run/pg".into()), 7, "x")
        );
        let c = ConnectConfig::from_url("postgres://[::1]:5/").unwrap();
        assert_eq!(
            (c.host, c.port, c.database.as_str()),
            (PgHost::Tcp("::1".into()), 5, "postgres")
        );
        assert!(ConnectConfig::from_url("mysql://x").is_err());
        assert!(ConnectConfig::from_url("postgres://h:port/").is_err());
        assert!(ConnectConfig::from_url("postgres://h/d?sslmode=require").is_err());
    }
}
