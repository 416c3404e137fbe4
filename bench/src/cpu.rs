//! Where the machine's CPU went during a loop: the IdP, the PostgreSQL server
//! and this load generator, per successful request. A ratio to a baseline
//! says how far a figure is from its limit; this says what took the rest.

use std::time::Duration;

use crate::Bench;
use crate::procs::{cpu_time, tree_cpu};

/// CPU times at the start of a loop.
pub struct Split {
    idp: u32,
    postgres: Option<u32>,
    start: [Duration; 3],
}

impl Split {
    pub fn start(b: &Bench) -> Split {
        let idp = b.idp.proc.pid();
        let mut split = Split {
            idp,
            postgres: b.postgres,
            start: [Duration::ZERO; 3],
        };
        split.start = split.now();
        split
    }

    fn now(&self) -> [Duration; 3] {
        [
            cpu_time(self.idp),
            self.postgres.map_or(Duration::ZERO, tree_cpu),
            cpu_time(std::process::id()),
        ]
    }

    /// The IdP's CPU time per request since the start.
    pub fn idp_per_request(&self, requests: u64) -> Duration {
        cpu_time(self.idp).saturating_sub(self.start[0]) / requests.max(1) as u32
    }

    /// "CPU per request: IdP 512 µs, PostgreSQL 80 µs, load generator 60 µs".
    pub fn per_request(&self, requests: u64) -> String {
        let now = self.now();
        let each = |i: usize| {
            let d = now[i].saturating_sub(self.start[i]) / requests.max(1) as u32;
            crate::report::us(d)
        };
        match self.postgres {
            Some(_) => format!(
                "CPU per request: IdP {}, PostgreSQL {}, load generator {}",
                each(0),
                each(1),
                each(2)
            ),
            None => format!(
                "CPU per request: IdP {}, load generator {}",
                each(0),
                each(2)
            ),
        }
    }
}

/// The local PostgreSQL server's postmaster, found from a backend's parent
/// (`None` when the server runs elsewhere).
pub async fn postgres_pid(admin_url: &str) -> Option<u32> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await.ok()?;
    let backend = sqlx::query_scalar!(r#"SELECT pg_backend_pid() AS "pid!""#)
        .fetch_one(&mut conn)
        .await
        .ok()?;
    let postmaster = crate::procs::parent(backend as u32);
    let comm = std::fs::read_to_string(format!("/proc/{postmaster}/comm")).ok()?;
    comm.trim().starts_with("postgres").then_some(postmaster)
}
