//! Addresses that misbehave on purpose (refusing, never answering) and a
//! raw request that keeps its path exactly as written.

use std::time::Duration;

/// Sends `GET <path>` exactly as written (no URL normalisation) and returns the status.
pub async fn raw_get_status(base: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let head = String::from_utf8_lossy(&answer[..answer.len().min(12)]).to_string();
    head[9..12].parse().unwrap()
}

/// A local port that refuses connections, and the socket that holds it: bound
/// but not listening, so no other server can take the port meanwhile (a port
/// found free and released could be).
pub fn closed_port() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// A local address where a connection attempt is never answered: a listener
/// that never accepts and whose accept queue is full, so the kernel drops each
/// new SYN (as a firewall would) instead of refusing it. Keep the returned
/// sockets alive for as long as the address is used.
pub async fn blackhole() -> (
    (tokio::net::TcpListener, Vec<tokio::net::TcpStream>),
    std::net::SocketAddr,
) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    // Connections complete (queued, never accepted) until the queue is full.
    while let Ok(Ok(stream)) = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    {
        queued.push(stream);
        assert!(queued.len() < 64, "the accept queue never filled up");
    }
    ((listener, queued), addr)
}
