//! One part running as a child process: started on a passed socket
//! ([`handoff`](crate::handoff)), its output appended to a log file, waited
//! for until a readiness path answers 200, stopped by signal.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::handoff;

/// A running part.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    /// The address of the socket it serves on.
    pub addr: SocketAddr,
    child: Child,
    pub log: PathBuf,
}

impl Process {
    /// Starts `command` on `listener`, its stdout and stderr appended to `log`.
    pub fn start(
        name: &str,
        mut command: Command,
        listener: TcpListener,
        log: &Path,
    ) -> io::Result<Process> {
        let addr = listener.local_addr()?;
        let file = File::options().create(true).append(true).open(log)?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = handoff::spawn(&mut command, listener)
            .map_err(|e| io::Error::new(e.kind(), format!("start {name}: {e}")))?;
        Ok(Process {
            name: name.to_owned(),
            addr,
            child,
            log: log.to_owned(),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `GET <path>` answers 200; the error says why not (the
    /// process exited, or the last answer) with the end of its log.
    pub async fn wait_ready(&mut self, path: &str, timeout: Duration) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| e.to_string())?;
        let url = format!("{}{path}", self.url());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "{} exited during start-up ({status}):\n{}",
                    self.name,
                    self.tail()
                ));
            }
            let last = match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} not ready after {timeout:?} (last answer: {last}):\n{}",
                    self.name,
                    self.tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last 40 lines of the log.
    pub fn tail(&self) -> String {
        tail(&self.log)
    }

    /// Stops it at once (SIGKILL: an outage, not a goodbye).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a graceful shutdown), then SIGKILL after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        let _ = Command::new("kill").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

/// The last 40 lines of the log at `path`.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
