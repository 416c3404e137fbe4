//! Starts the five real binaries of the stack through the shared launcher
//! (`launch`: each on a loopback socket bound here and passed to it, in the
//! contract's start order and variables), each with a fresh, uniquely named
//! database, and stops them (and drops the databases) when the [`Stack`] is
//! dropped.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use launch::contract::{self, Origins, PARTS};
use launch::handoff;
use launch::process::{Process, tail};
use sqlx::Connection;
use url::Url;

/// How long a part may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The confidential client secret `idp seed` gives the gateway by default.
pub const GATEWAY_CLIENT_SECRET: &str = "gateway-dev-secret";

/// One running part.
struct Part {
    name: &'static str,
    process: Process,
    /// Arguments and environment, kept so [`Stack::restart`] starts it the same way.
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// What [`Stack::start_with`] may change: the PostgreSQL server and extra
/// environment for some parts (`(part, variable, value)`; `"*"` for all).
#[derive(Default)]
pub struct Options {
    pub admin_url: Option<String>,
    pub env: Vec<(&'static str, String, String)>,
    /// Runs a second IdP replica (part `idp2`, same database, keys and
    /// issuer) and has every validator subscribe to the revocation stream
    /// through it, while tokens are issued and revoked at the first.
    pub stream_through_second_idp: bool,
}

/// The `cli` client's registered redirect URI (`idp seed`).
pub const CLI_REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";

/// The running stack. Every URL uses `localhost`, as `make up` does, so the
/// IdP and the gateway share a host name (cookie scoping is exercised as a
/// person meets it).
pub struct Stack {
    pub idp: Url,
    pub gateway: Url,
    pub order: Url,
    pub payment: Url,
    pub inventory: Url,
    /// The second IdP replica, with [`Options::stream_through_second_idp`].
    pub idp2: Option<Url>,
    parts: Vec<Part>,
    databases: Vec<String>,
    admin_url: String,
    /// The IdP's database URL and key-encryption key (for [`Stack::idp_cli`]).
    pub idp_database_url: String,
    pub key_encryption_key: String,
    /// The client secrets of order, payment and inventory at the IdP
    /// (per stack, see [`Stack::client_secret`]).
    service_secrets: Vec<(&'static str, String)>,
}

impl Stack {
    /// Starts idp, inventory, payment, order and gateway and waits for every `/readyz`.
    pub async fn start() -> Stack {
        Stack::start_with(Options::default()).await
    }

    /// [`Stack::start`] with [`Options`].
    pub async fn start_with(options: Options) -> Stack {
        let admin_url = options.admin_url.clone().unwrap_or_else(|| {
            std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
        });
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let log_dir = target_dir().join("e2e-logs").join(&id);
        std::fs::create_dir_all(&log_dir).expect("create the log directory");

        let parts: Vec<&'static str> = if options.stream_through_second_idp {
            let mut parts = PARTS.to_vec();
            parts.insert(1, "idp2");
            parts
        } else {
            PARTS.to_vec()
        };
        // Every part's socket, bound now: the URLs name their ports before
        // any part starts, and each part serves on its own socket.
        let mut listeners: Vec<Option<TcpListener>> = parts
            .iter()
            .map(|_| Some(handoff::bind_loopback().expect("bind a loopback socket")))
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| {
                l.as_ref()
                    .and_then(|l| l.local_addr().ok())
                    .expect("bound")
                    .port()
            })
            .collect();
        let index = |name: &str| parts.iter().position(|p| *p == name).expect("known part");
        let port = |name: &str| ports[index(name)];
        let url = |name: &str| {
            Url::parse(&format!("http://localhost:{}/", port(name))).expect("valid url")
        };
        let database = |name: &str| format!("baton_e2e_{id}_{name}");
        let db_url = |name: &str| with_database(&admin_url, &database(name));

        let mut stack = Stack {
            idp: url("idp"),
            gateway: url("gateway"),
            order: url("order"),
            payment: url("payment"),
            inventory: url("inventory"),
            idp2: options.stream_through_second_idp.then(|| url("idp2")),
            parts: Vec::new(),
            databases: PARTS.iter().map(|p| database(p)).collect(),
            admin_url: admin_url.clone(),
            idp_database_url: String::new(),
            key_encryption_key: String::new(),
            service_secrets: Vec::new(),
        };
        let issuer = stack.idp.as_str().trim_end_matches('/').to_owned();
        // Fresh secrets per stack, as a real deployment has (never the dev defaults).
        let key_encryption_key = random_key();
        stack.idp_database_url = db_url("idp");
        stack.key_encryption_key = key_encryption_key.clone();
        let session_key = random_key();
        // Each service's own client (the revocation stream), with a secret as
        // `openssl rand -base64 32` makes them: `+`, `/` and `=` must survive
        // HTTP Basic (RFC 6749 §2.3.1 form-encodes them first).
        let service_secrets: Vec<(&'static str, String)> = ["order", "payment", "inventory"]
            .iter()
            .map(|name| (*name, format!("+/=%{}", random_key())))
            .collect();
        let service_secret = |name: &str| {
            service_secrets
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, secret)| secret.clone())
        };
        let base = |u: &Url| u.as_str().trim_end_matches('/').to_owned();
        let origins = Origins {
            idp: issuer,
            inventory: base(&stack.inventory),
            payment: base(&stack.payment),
            order: base(&stack.order),
            gateway: base(&stack.gateway),
        };

        // The demo realm, with the gateway client's redirect URI on this stack's port.
        let seed_log = log_dir.join("idp-seed.log");
        let status = Command::new(binary("idp"))
            .arg("seed")
            .current_dir(workspace_dir())
            .envs(contract::seed_env(
                &origins,
                &db_url("idp"),
                &key_encryption_key,
                GATEWAY_CLIENT_SECRET,
            ))
            .env("IDP_SEED_CLI_REDIRECT_URI", CLI_REDIRECT_URI)
            .envs(service_secrets.iter().map(|(name, secret)| {
                (
                    format!("IDP_SEED_{}_SECRET", name.to_ascii_uppercase()),
                    secret,
                )
            }))
            .stdout(log_file(&seed_log))
            .stderr(log_file(&seed_log))
            .status()
            .expect("run `idp seed`");
        assert!(status.success(), "`idp seed` failed:\n{}", tail(&seed_log));

        for name in parts.clone() {
            // Metrics on an ephemeral port the part logs (see `scrape`).
            let mut env = contract::env(program(name), &origins, &db_url(program(name)));
            env.push(("RUST_LOG".into(), "info".into()));
            let mut set = |k: &str, v: String| env.push((k.to_owned(), v));
            if let (Some(idp2), false) = (&stack.idp2, program(name) == "idp") {
                set(
                    "GUARD_REVOCATION_STREAM_URL",
                    format!("{}/revocations/stream", base(idp2)),
                );
            }
            if let Some(secret) = service_secret(program(name)) {
                set("GUARD_CLIENT_SECRET", secret);
            }
            match program(name) {
                "idp" => set("IDP_KEY_ENCRYPTION_KEY", key_encryption_key.clone()),
                "gateway" => {
                    set("GATEWAY_CLIENT_SECRET", GATEWAY_CLIENT_SECRET.into());
                    set("GATEWAY_SESSION_KEY", session_key.clone());
                    set(
                        "GATEWAY_ROUTES",
                        workspace_dir()
                            .join("deploy/routes.toml")
                            .display()
                            .to_string(),
                    );
                }
                _ => {}
            }
            for (part, key, value) in &options.env {
                if *part == name || *part == "*" {
                    set(key, value.clone());
                }
            }
            let args = if program(name) == "idp" {
                vec!["serve".to_owned()]
            } else {
                Vec::new()
            };
            let log = log_dir.join(format!("{name}.log"));
            let listener = listeners[index(name)].take().expect("one socket per part");
            let process = start_part(name, &args, &env, listener, &log);
            stack.parts.push(Part {
                name,
                process,
                args,
                env,
            });
        }
        stack.service_secrets = service_secrets;
        stack.wait_ready().await;
        stack
    }

    /// The client secret of `service` (order, payment or inventory) at the IdP.
    pub fn client_secret(&self, service: &str) -> &str {
        self.service_secrets
            .iter()
            .find(|(name, _)| *name == service)
            .map(|(_, secret)| secret.as_str())
            .unwrap_or_else(|| panic!("no client secret for {service}"))
    }

    /// What `part` serves on its metrics listener (`GET /metrics`, Prometheus
    /// text): at the address the part bound and logged (`metrics listening`,
    /// the last one when it was restarted).
    pub async fn scrape(&self, part: &str) -> String {
        let log = &self
            .parts
            .iter()
            .find(|p| p.name == part)
            .unwrap_or_else(|| panic!("no part {part}"))
            .process
            .log;
        let text = strip_ansi(&std::fs::read_to_string(log).expect("the part's log"));
        let addr = text
            .lines()
            .rev()
            .find(|l| l.contains("metrics listening"))
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{part} logged no metrics address:\n{}", tail(log)));
        let response = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap_or_else(|e| panic!("scrape {part}: {e}"));
        assert!(
            response.status().is_success(),
            "scrape {part}: {}",
            response.status()
        );
        response.text().await.expect("the metrics page")
    }

    /// Stops one part (SIGKILL: an outage, not a goodbye).
    pub fn stop(&mut self, name: &str) {
        self.part(name).process.kill();
    }

    /// Starts a stopped part again, the same way at the same address (bound
    /// again here and passed to it), and waits for its `/readyz`.
    pub async fn restart(&mut self, name: &str) {
        self.stop(name);
        let part = self.part(name);
        let listener = handoff::rebind(part.process.addr)
            .unwrap_or_else(|e| panic!("bind {} again: {e}", part.process.addr));
        part.process = start_part(
            part.name,
            &part.args,
            &part.env,
            listener,
            &part.process.log,
        );
        self.wait_part_ready(name).await;
    }

    fn part(&mut self, name: &str) -> &mut Part {
        self.parts
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no part {name}"))
    }

    /// Runs the IdP's admin CLI with the IdP's environment (its database,
    /// key-encryption key and options; `stdin` is its standard input, e.g. a
    /// new password); panics unless it succeeds.
    pub fn idp_cli(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let idp = self
            .parts
            .iter()
            .find(|p| p.name == "idp")
            .expect("the idp part");
        let mut child = Command::new(binary("idp"))
            .args(args)
            .current_dir(workspace_dir())
            .envs(idp.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the idp CLI");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("idp CLI output");
        assert!(
            out.status.success(),
            "idp {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn wait_ready(&mut self) {
        let names: Vec<&'static str> = self.parts.iter().map(|p| p.name).collect();
        for name in names {
            self.wait_part_ready(name).await;
        }
    }

    async fn wait_part_ready(&mut self, name: &str) {
        let part = self.part(name);
        if let Err(why) = part.process.wait_ready("/readyz", READY_TIMEOUT).await {
            panic!("{why}");
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for part in &mut self.parts {
            part.process.kill();
        }
        // TEST_LOG=1: the children's logs, to the test's captured output.
        if guard::testing::log::enabled() {
            for part in &self.parts {
                let log = std::fs::read_to_string(&part.process.log).unwrap_or_default();
                println!(
                    "----- {} ({}) -----\n{}",
                    part.name,
                    part.process.log.display(),
                    strip_ansi(&log)
                );
            }
        }
        // Drop is synchronous and may run inside the test's runtime: drop the
        // databases from a thread with a runtime of its own.
        let admin_url = self.admin_url.clone();
        let databases = std::mem::take(&mut self.databases);
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                for db in databases {
                    sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{db}" WITH (FORCE)"#))
                        .execute(&mut conn)
                        .await?;
                }
                Ok::<_, sqlx::Error>(())
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop the test databases: {e}");
        }
    }
}

/// The binary behind a part: `idp2` is a second replica of `idp`.
fn program(part: &str) -> &str {
    if part == "idp2" { "idp" } else { part }
}

/// Starts part `name` on `listener` (its socket, passed as descriptor 3).
fn start_part(
    name: &str,
    args: &[String],
    env: &[(String, String)],
    listener: TcpListener,
    log: &Path,
) -> Process {
    let mut command = Command::new(binary(program(name)));
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(workspace_dir());
    Process::start(name, command, listener, log).unwrap_or_else(|e| panic!("{e}"))
}

/// `postgres://u@h:p/x?q` with the database `db` instead of `x`.
fn with_database(admin_url: &str, db: &str) -> String {
    let mut url = Url::parse(admin_url).expect("DATABASE_URL is a URL");
    url.set_path(db);
    url.to_string()
}

/// The repository root: the processes run there, as under `make up`.
fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target"))
}

/// 32 random bytes, base64: a key-encryption or session key.
fn random_key() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The debug binary of a part; `make test` builds them before the tests run.
pub(crate) fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("BATON_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (make test does)",
        path.display()
    );
    path
}

fn log_file(path: &Path) -> File {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .expect("open a log file")
}

/// `text` without terminal colour codes (`ESC [ … m`), which the logs carry.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the end of the sequence.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
