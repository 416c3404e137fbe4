//! The real processes under test: started from release binaries through the
//! shared launcher (`launch`: on loopback sockets bound here and passed to
//! them), each with its own fresh database, stopped (and their
//! databases dropped) on drop. Also reads their resident memory.
//! Dropping a run's databases is DDL on names known only at run time, so that
//! one statement stays `sqlx::query`; the others are compile-checked.

use std::net::TcpListener;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use launch::process::Process;

/// A running process, started on a socket bound here and passed to it
/// (`launch`), stopped gracefully on drop.
pub struct Proc(Process);

impl Proc {
    /// Starts `cmd` serving on `listener` (stdout/stderr to `<log_dir>/<name>.log`).
    pub fn spawn(
        name: &str,
        cmd: Command,
        listener: TcpListener,
        log_dir: &Path,
    ) -> anyhow::Result<Proc> {
        let log = log_dir.join(format!("{name}.log"));
        Ok(Proc(Process::start(name, cmd, listener, &log)?))
    }

    /// Resident memory of the process and its children (node's workers), bytes.
    pub fn rss(&self) -> u64 {
        tree_rss(self.pid())
    }

    /// Waits until `GET <path>` answers 200.
    pub async fn wait_ready(&mut self, path: &str, timeout: Duration) -> anyhow::Result<()> {
        self.0
            .wait_ready(path, timeout)
            .await
            .map_err(anyhow::Error::msg)
    }
}

impl Deref for Proc {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.0
    }
}

impl DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first (graceful shutdown, node's cluster stops its workers), then SIGKILL.
        self.0.terminate(Duration::from_secs(5));
    }
}

/// A loopback socket on a port the system picks, for a process to serve on.
pub fn listener() -> anyhow::Result<TcpListener> {
    launch::handoff::bind_loopback().context("bind a loopback socket")
}

/// `VmRSS` of `pid` plus that of its descendants, in bytes (0 if gone).
pub fn tree_rss(pid: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    own + children(pid).into_iter().map(tree_rss).sum::<u64>()
}

/// The children of `pid` (none if gone).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// Field `i` of `/proc/<pid>/stat`, counted after the command name (which
/// may contain spaces, in parentheses): 0 is the state, 1 the parent's pid.
fn stat_field(pid: u32, i: usize) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .nth(i)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) used so far by `pid`.
pub fn cpu_time(pid: u32) -> Duration {
    // utime and stime are fields 14 and 15 of stat; 11 and 12 after the ")".
    let hz = 100; // USER_HZ on Linux
    Duration::from_millis((stat_field(pid, 11) + stat_field(pid, 12)) * 1000 / hz)
}

/// The parent of `pid` (0 if gone).
pub fn parent(pid: u32) -> u32 {
    stat_field(pid, 1) as u32
}

/// CPU time used so far by `pid` and its living descendants (a PostgreSQL
/// server: the postmaster, its backends, WAL writer and checkpointer).
pub fn tree_cpu(pid: u32) -> Duration {
    cpu_time(pid) + children(pid).into_iter().map(tree_cpu).sum::<Duration>()
}

/// Databases created for one run, dropped at the end.
#[derive(Clone)]
pub struct Databases {
    admin_url: String,
    pub prefix: String,
}

impl Databases {
    pub fn new(admin_url: &str) -> Databases {
        let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        Databases {
            admin_url: admin_url.to_owned(),
            prefix: format!("baton_bench_{id}"),
        }
    }

    /// The URL of this run's database for `part` (created by the part at start-up).
    pub fn url(&self, part: &str) -> anyhow::Result<String> {
        let mut url = url::Url::parse(&self.admin_url).context("DATABASE_URL is a URL")?;
        url.set_path(&format!("{}_{part}", self.prefix));
        Ok(url.to_string())
    }

    /// Drops every database of this run.
    pub async fn drop_all(&self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await?;
        let pattern = format!("{}\\_%", self.prefix);
        let names = sqlx::query_scalar!(
            r#"SELECT datname AS "datname: String" FROM pg_database WHERE datname LIKE $1"#,
            pattern,
        )
        .fetch_all(&mut conn)
        .await?;
        for db in names {
            sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{db}" WITH (FORCE)"#))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }
}
