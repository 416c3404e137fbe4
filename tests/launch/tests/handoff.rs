//! The socket handoff end to end: this test binary starts itself again as
//! the child (`HANDOFF_CHILD` says what the child does), through
//! `launch::handoff::spawn`, and the child takes its listener with
//! `platform::server::listener`, as every Baton part does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};

use launch::handoff;

/// What the child does, chosen by the parent.
const CHILD: &str = "HANDOFF_CHILD";

/// Runs `test` of this binary as a child with `CHILD=role` and `env`.
fn child(test: &str, role: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, role)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// In the child: the listener `platform::server::listener` gives for a
/// fallback of an ephemeral port, or its error.
fn take_listener() -> std::io::Result<tokio::net::TcpListener> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _guard = rt.enter();
    rt.block_on(platform::server::listener(SocketAddr::from((
        [127, 0, 0, 1],
        0,
    ))))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_part_serves_on_the_socket_its_launcher_bound() {
    if std::env::var(CHILD).as_deref() == Ok("serve") {
        // The child: answer one connection with the address it serves on.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = platform::server::listener(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .unwrap();
            let (mut stream, _) = listener.accept().await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            tokio::io::AsyncWriteExt::write_all(&mut stream, addr.as_bytes())
                .await
                .unwrap();
        });
        return;
    }
    let socket = handoff::bind_loopback().unwrap();
    let addr = socket.local_addr().unwrap();
    let mut command = child(
        "a_part_serves_on_the_socket_its_launcher_bound",
        "serve",
        &[],
    );
    let running = handoff::spawn(&mut command, socket).unwrap();
    // The parent's copy is closed: only the child can accept on `addr`.
    let mut stream = TcpStream::connect(addr).expect("the child serves on the port bound here");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let out = running.wait_with_output().unwrap();
    assert!(out.status.success(), "the child failed:\n{}", stderr(&out));
    assert_eq!(answer, addr.to_string());
}

#[test]
fn a_socket_meant_for_another_process_is_left_alone() {
    if std::env::var(CHILD).as_deref() == Ok("other-pid") {
        // LISTEN_PID names another process (as under a socket-activated
        // parent): bind the fallback instead.
        // SAFETY: no other thread of this child reads the environment now.
        unsafe { std::env::set_var("LISTEN_PID", "1") };
        let listener = take_listener().unwrap();
        println!("\nbound {}", listener.local_addr().unwrap());
        return;
    }
    let socket = handoff::bind_loopback().unwrap();
    let passed = socket.local_addr().unwrap();
    let mut command = child(
        "a_socket_meant_for_another_process_is_left_alone",
        "other-pid",
        &[],
    );
    let mut spawned = handoff::spawn(&mut command, socket).unwrap();
    let mut stdout = String::new();
    spawned
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let out = spawned.wait_with_output().unwrap();
    assert!(out.status.success(), "the child failed:\n{}", stderr(&out));
    let bound = stdout
        .lines()
        .find_map(|l| l.strip_prefix("bound "))
        .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no address in {stdout:?}"));
    assert_ne!(bound, passed);
}

#[test]
fn a_bad_handoff_is_a_clear_start_up_error() {
    if std::env::var(CHILD).as_deref() == Ok("bad") {
        let error = take_listener().expect_err("a bad handoff is refused");
        eprint!("error: {error}");
        let _ = std::io::stderr().flush();
        std::process::exit(3);
    }
    let test = "a_bad_handoff_is_a_clear_start_up_error";
    let cases = [
        // Two sockets: a part serves on one.
        (
            vec![("LISTEN_FDS", "2")],
            "takes exactly one listening socket",
        ),
        // Descriptor 3 is not a socket (nothing was passed).
        (
            vec![("LISTEN_FDS", "1")],
            "descriptor 3 is not a listening TCP socket",
        ),
    ];
    for (env, expected) in cases {
        let out = child(test, "bad", &env).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{env:?}: expected {expected:?} in {}",
            stderr(&out)
        );
    }
}
