//! The launcher's side of socket handoff: the parent binds `127.0.0.1:0`,
//! so it knows the port before the child starts (an issuer or public URL can
//! name it), and the child serves on that very socket (`LISTEN_FDS=1`, the
//! socket at descriptor 3: systemd's socket activation and the `listenfd`
//! convention; the part's side is `platform::server::listener`). No port is
//! picked, released and bound again, so no other process can take it between.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// The descriptor a passed socket takes in the child (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: libc::c_int = 3;

/// A socket on `127.0.0.1` and a port the system picked, for one part.
pub fn bind_loopback() -> io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", 0))
}

/// A socket on `addr` again: a part restarted at the address it had (its
/// callers know that address already).
pub fn rebind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Starts `command` with `listener` as its descriptor 3 and `LISTEN_FDS=1`.
/// The parent's copy is dropped with `listener` once the child has it, so
/// the port belongs to the child alone (a killed child refuses connections).
pub fn spawn(command: &mut Command, listener: TcpListener) -> io::Result<Child> {
    let fd = listener.as_raw_fd();
    command.env("LISTEN_FDS", "1").env_remove("LISTEN_PID");
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only dup2 and fcntl, which are async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec set: clear it instead.
            let moved = if fd == LISTEN_FDS_START {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, LISTEN_FDS_START)
            };
            if moved == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn();
    drop(listener);
    child
}
