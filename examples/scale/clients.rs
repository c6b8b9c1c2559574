//! The client side: many idle `EventSource`-like connections, each a small task that sends one
//! `GET`, checks the response head and then only reads, counting keep-alive comments and
//! events. A raw socket and a byte-at-a-time scanner keep each connection to a few hundred
//! bytes of client memory, so the figures are the server's.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit};

/// Longest time one connection may take to open (connect, request, response head).
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest response head read before giving up on it.
const MAX_HEAD: usize = 4096;

/// Counters shared by every connection.
#[derive(Default)]
pub struct Totals {
    /// Connections whose response head said `200` and `text/event-stream`.
    pub opened: AtomicUsize,
    /// Connections that could not be opened.
    pub failed: AtomicUsize,
    /// Opened connections that ended (EOF or error) before the final event.
    pub closed_early: AtomicUsize,
    /// Keep-alive comment lines received, over all connections.
    pub pings: AtomicU64,
    /// Connections that received the final event.
    pub done: AtomicUsize,
    /// Woken on every final event and every early close.
    pub progress: Notify,
    /// Why connections failed or closed, with counts.
    pub reasons: Mutex<BTreeMap<String, usize>>,
}

impl Totals {
    fn note(&self, reason: String) {
        if let Ok(mut reasons) = self.reasons.lock() {
            *reasons.entry(reason).or_default() += 1;
        }
    }
}

/// The source address of connection `index` out of `sources` addresses, round-robin over
/// 127.0.0.2, 127.0.0.3, ... (each loopback address has its own ephemeral ports).
pub fn source_of(index: usize, sources: usize) -> Ipv4Addr {
    let offset = u32::try_from(index % sources.max(1)).unwrap_or(0);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 2)).saturating_add(offset))
}

/// Opens one connection from `source` and reads it until it ends; releases `permit` once the
/// response head is in (or the attempt failed).
pub async fn hold(
    server: SocketAddr,
    source: Ipv4Addr,
    totals: &Totals,
    permit: OwnedSemaphorePermit,
) {
    let opened = tokio::time::timeout(OPEN_TIMEOUT, open(server, source)).await;
    // Counted before the permit goes back: all permits back means all attempts counted.
    let (mut stream, mut scanner, rest) = match opened {
        Ok(Ok(open)) => {
            totals.opened.fetch_add(1, Relaxed);
            drop(permit);
            open
        }
        Ok(Err(err)) => {
            totals.failed.fetch_add(1, Relaxed);
            totals.note(format!("open: {err}"));
            return;
        }
        Err(_) => {
            totals.failed.fetch_add(1, Relaxed);
            totals.note(format!("open: no response head within {OPEN_TIMEOUT:?}"));
            return;
        }
    };

    let mut buf = [0u8; 256];
    let mut pending = rest;
    loop {
        let outcome = scanner.feed(&pending[..]);
        let pings = std::mem::take(&mut scanner.pings);
        if pings > 0 {
            totals.pings.fetch_add(pings, Relaxed);
        }
        match outcome {
            Ok(()) if scanner.events > 0 => {
                totals.done.fetch_add(1, Relaxed);
                totals.progress.notify_one();
                // Stay connected, as a browser would, until the benchmark ends.
                let _ = read_to_close(&mut stream, &mut buf).await;
                return;
            }
            Ok(()) if scanner.ended => {
                early(totals, "the server ended the body".to_owned());
                return;
            }
            Ok(()) => {}
            Err(what) => {
                early(totals, format!("bad response body: {what}"));
                return;
            }
        }
        pending.clear();
        match stream.read(&mut buf).await {
            Ok(0) => {
                early(totals, "closed by the server".to_owned());
                return;
            }
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(err) => {
                early(totals, format!("read: {err}"));
                return;
            }
        }
    }
}

fn early(totals: &Totals, reason: String) {
    totals.closed_early.fetch_add(1, Relaxed);
    totals.note(reason);
    totals.progress.notify_one();
}

async fn read_to_close(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<()> {
    while stream.read(buf).await? > 0 {}
    Ok(())
}

/// Connects, sends the request and reads the response head; returns the body bytes read
/// with it.
async fn open(server: SocketAddr, source: Ipv4Addr) -> io::Result<(TcpStream, Scanner, Vec<u8>)> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let mut stream = socket.connect(server).await?;
    let request = format!(
        "GET /events HTTP/1.1\r\nHost: {server}\r\nAccept: text/event-stream\r\n\
         Cache-Control: no-cache\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;

    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    let end = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the response head",
            ));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::other("response head too long"));
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
    let status = text.lines().next().unwrap_or_default().to_owned();
    if !status.starts_with("http/1.1 200") {
        return Err(io::Error::other(format!("status line {status:?}")));
    }
    if !text.contains("\r\ncontent-type: text/event-stream") {
        return Err(io::Error::other("not text/event-stream"));
    }
    if !text.contains("\r\ntransfer-encoding: chunked") {
        return Err(io::Error::other("not chunked"));
    }
    Ok((stream, Scanner::default(), head[end..].to_vec()))
}

/// Where the chunked-body parser is.
#[derive(Clone, Copy, Debug, Default)]
enum Chunk {
    /// Reading the hex size.
    #[default]
    Size,
    /// Skipping a chunk extension up to the line end.
    Extension,
    /// Expecting the LF after the size line's CR.
    SizeLf,
    /// Inside a chunk's data, with this many bytes left.
    Data(usize),
    /// Expecting the CR after a chunk's data.
    DataCr,
    /// Expecting the LF after a chunk's data.
    DataLf,
    /// After the last chunk.
    End,
}

/// A byte-at-a-time reader of an HTTP/1.1 chunked body carrying SSE: counts comment lines
/// (keep-alive pings) and blank lines (event ends).
#[derive(Debug, Default)]
pub struct Scanner {
    chunk: Chunk,
    size: usize,
    mid_line: bool,
    /// Comment lines seen since the caller last took them.
    pub pings: u64,
    /// Events ended (blank lines).
    pub events: u64,
    /// Whether the last chunk was seen.
    pub ended: bool,
}

impl Scanner {
    /// Reads `bytes`, the next part of the body.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), &'static str> {
        let mut at = 0;
        while at < bytes.len() {
            if let Chunk::Data(left) = self.chunk {
                let take = left.min(bytes.len() - at);
                for &byte in &bytes[at..at + take] {
                    self.sse_byte(byte);
                }
                at += take;
                self.chunk = if take == left {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left - take)
                };
                continue;
            }
            let byte = bytes[at];
            at += 1;
            match self.chunk {
                Chunk::Size => match byte {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (byte as char).to_digit(16).unwrap_or(0) as usize;
                        self.size = self
                            .size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(digit))
                            .ok_or("chunk size overflow")?;
                    }
                    b';' => self.chunk = Chunk::Extension,
                    b'\r' => self.chunk = Chunk::SizeLf,
                    _ => return Err("bad chunk size"),
                },
                Chunk::Extension => {
                    if byte == b'\r' {
                        self.chunk = Chunk::SizeLf;
                    }
                }
                Chunk::SizeLf => {
                    if byte != b'\n' {
                        return Err("bad chunk size line");
                    }
                    let size = std::mem::take(&mut self.size);
                    if size == 0 {
                        self.chunk = Chunk::End;
                        self.ended = true;
                        return Ok(());
                    }
                    self.chunk = Chunk::Data(size);
                }
                Chunk::DataCr => {
                    if byte != b'\r' {
                        return Err("missing CR after chunk data");
                    }
                    self.chunk = Chunk::DataLf;
                }
                Chunk::DataLf => {
                    if byte != b'\n' {
                        return Err("missing LF after chunk data");
                    }
                    self.chunk = Chunk::Size;
                }
                Chunk::End => return Err("bytes after the last chunk"),
                // Taken whole before the match.
                Chunk::Data(_) => {}
            }
        }
        Ok(())
    }

    fn sse_byte(&mut self, byte: u8) {
        if !self.mid_line {
            match byte {
                b':' => self.pings += 1,
                b'\n' => self.events += 1,
                _ => {}
            }
        }
        self.mid_line = byte != b'\n';
    }
}
