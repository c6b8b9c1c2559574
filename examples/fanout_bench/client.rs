//! The load clients: one task and one HTTP/1.1 connection each (a tokio `TcpStream` read by
//! [`crate::http`]), reading the event stream with a minimal parser that only counts `update`
//! events and takes the publish timestamp out of their data.
//!
//! A client reconnects at once when its stream ends or fails while the run is still on,
//! sending `Last-Event-ID` like a browser; a server that resumes from it loses nothing.
//!
//! Each message carries a sequence number. By default a client expects them in increasing
//! order (one publisher): a number not above the last one is a duplicate. With
//! [`Target::exact`] it keeps one bit per number instead, so messages from several
//! publishers may arrive in any order and a duplicate is still told apart.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::histogram::Histogram;
use crate::http;
use crate::server::now_ns;

/// An event stream that grows past this without a blank line is treated as broken.
const MAX_PENDING: usize = 1 << 20;
/// The highest sequence number an exact client tracks (a bit each: 1 MiB per client at most);
/// higher ones are not counted as received.
pub const MAX_EXACT_SEQ: u64 = 1 << 23;

/// Counters shared by every client of one run.
#[derive(Default)]
pub struct Shared {
    /// Clients whose first response arrived (they are subscribed).
    pub ready: AtomicU64,
    /// `update` events received, each counted once per client.
    pub delivered: AtomicU64,
    /// `update` events a client had already received (not counted in `delivered`).
    pub duplicates: AtomicU64,
    /// Wall-clock time of the newest delivery, in nanoseconds since the Unix epoch.
    pub last_delivery_ns: AtomicU64,
    /// Reconnections after a stream ended or failed during the run.
    pub reconnects: AtomicU64,
    /// Failed connection attempts and broken streams.
    pub errors: AtomicU64,
    /// `reset` markers received (a resume the server could not honour).
    pub resets: AtomicU64,
    /// Publish-to-receipt latency, in microseconds.
    pub latency: Histogram,
}

/// What one client saw over the whole run.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientResult {
    /// Distinct `update` events received.
    pub received: u64,
    /// `update` events received again.
    pub duplicates: u64,
    /// The highest sequence number received.
    pub last_seq: u64,
}

/// Where and how clients connect.
#[derive(Clone, Debug)]
pub struct Target {
    /// The server.
    pub addr: SocketAddr,
    /// Source addresses to spread connections over (each gives its own range of ephemeral
    /// ports); empty for the system's choice.
    pub sources: Vec<IpAddr>,
    /// Whether to record latencies.
    pub record_latency: bool,
    /// Whether to track every sequence number (see the module documentation).
    pub exact: bool,
}

/// Starts `count` clients; at most `opening` of them connect at the same time (so the
/// listener's backlog is not flooded). Each returns its result when `stop` is cancelled.
pub fn spawn_clients(
    target: &Target,
    count: usize,
    shared: &Arc<Shared>,
    stop: &CancellationToken,
    opening: usize,
) -> Vec<tokio::task::JoinHandle<ClientResult>> {
    let gate = Arc::new(Semaphore::new(opening.max(1)));
    (0..count)
        .map(|i| {
            let source = if target.sources.is_empty() {
                None
            } else {
                Some(target.sources[i % target.sources.len()])
            };
            let client = Client {
                addr: target.addr,
                source,
                record_latency: target.record_latency,
                exact: target.exact,
                shared: Arc::clone(shared),
                stop: stop.clone(),
                state: ClientResult::default(),
                seen: Vec::new(),
                last_id: Vec::new(),
            };
            tokio::spawn(client.run(Arc::clone(&gate)))
        })
        .collect()
}

struct Client {
    addr: SocketAddr,
    source: Option<IpAddr>,
    record_latency: bool,
    exact: bool,
    shared: Arc<Shared>,
    stop: CancellationToken,
    state: ClientResult,
    /// With `exact`: bit `n` is set when message `n` was received.
    seen: Vec<u64>,
    /// The last `id:` value seen (empty: none), sent back as `Last-Event-ID`.
    last_id: Vec<u8>,
}

impl Client {
    async fn run(mut self, gate: Arc<Semaphore>) -> ClientResult {
        let mut first = true;
        let mut permit = gate.acquire_owned().await.ok();
        let stop = self.stop.clone();
        while !stop.is_cancelled() {
            let outcome = tokio::select! {
                outcome = self.connect_and_read(&mut first, &mut permit) => outcome,
                () = stop.cancelled() => break,
            };
            if stop.is_cancelled() {
                break;
            }
            match outcome {
                Ok(()) => {
                    self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    self.shared.errors.fetch_add(1, Ordering::Relaxed);
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(20)) => {}
                        () = stop.cancelled() => break,
                    }
                }
            }
        }
        self.state
    }

    /// One connection: request, then read the stream until it ends.
    async fn connect_and_read(
        &mut self,
        first: &mut bool,
        permit: &mut Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let socket = TcpSocket::new_v4()?;
        if let Some(source) = self.source {
            socket.bind(SocketAddr::new(source, 0))?;
        }
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let host = self.addr.to_string();
        let mut headers: Vec<(&str, &[u8])> =
            vec![("host", host.as_bytes()), ("accept", b"text/event-stream")];
        let last_id = self.last_id.clone();
        if !last_id.is_empty() {
            headers.push(("last-event-id", &last_id));
        }
        let response = http::get(stream, "/events", &headers).await?;
        if !(200..300).contains(&response.status) {
            return Err(format!("status {}", response.status).into());
        }
        if std::mem::take(first) {
            self.shared.ready.fetch_add(1, Ordering::Relaxed);
        }
        // Connected: let the next client open its connection.
        drop(permit.take());

        // An incomplete event carried over from the previous read.
        let mut pending: Vec<u8> = Vec::new();
        response
            .read_body(|data| {
                if pending.is_empty() {
                    // The common case: parse the bytes where they are, keep only the
                    // incomplete tail.
                    let consumed = self.parse(data);
                    pending.extend_from_slice(&data[consumed..]);
                } else {
                    pending.extend_from_slice(data);
                    let consumed = self.parse(&pending);
                    pending.drain(..consumed);
                }
                if pending.len() > MAX_PENDING {
                    return Err(std::io::Error::other("event larger than 1 MiB"));
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Handles every complete event in `buf`; returns how many bytes were consumed. The
    /// shared counters are updated once per call, not per event, to keep the clients cheap.
    fn parse(&mut self, buf: &[u8]) -> usize {
        let now = now_ns();
        let before = self.state.received;
        let mut consumed = 0;
        while let Some(end) = memchr::memmem::find(&buf[consumed..], b"\n\n") {
            let block = &buf[consumed..consumed + end + 1];
            consumed += end + 2;
            self.event(block, now);
        }
        let new = self.state.received - before;
        if new > 0 {
            self.shared.delivered.fetch_add(new, Ordering::Relaxed);
            self.shared
                .last_delivery_ns
                .fetch_max(now, Ordering::Relaxed);
        }
        consumed
    }

    /// One event block (its lines, each ending with LF).
    fn event(&mut self, block: &[u8], now: u64) {
        let mut kind: &[u8] = b"message";
        let mut data: &[u8] = b"";
        for line in block.split(|&b| b == b'\n') {
            if let Some(v) = line.strip_prefix(b"event: ") {
                kind = v;
            } else if let Some(v) = line.strip_prefix(b"data: ") {
                data = v;
            } else if let Some(v) = line.strip_prefix(b"id: ") {
                self.last_id.clear();
                self.last_id.extend_from_slice(v);
            }
        }
        match kind {
            b"update" => {
                let (Some(seq), Some(ts)) = (number(data, b"\"seq\":"), number(data, b"\"ts\":"))
                else {
                    return;
                };
                if !self.first_receipt(seq) {
                    return;
                }
                self.state.received += 1;
                if self.record_latency {
                    self.shared.latency.record(now.saturating_sub(ts) / 1_000);
                }
            }
            b"reset" => {
                self.shared.resets.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

impl Client {
    /// Whether message `seq` is new to this client; counts it as a duplicate if not.
    fn first_receipt(&mut self, seq: u64) -> bool {
        let new = if self.exact {
            if seq > MAX_EXACT_SEQ {
                return false;
            }
            let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
            if self.seen.len() <= word {
                self.seen.resize(word + 1, 0);
            }
            let new = self.seen[word] & bit == 0;
            self.seen[word] |= bit;
            new
        } else {
            seq > self.state.last_seq
        };
        if new {
            self.state.last_seq = self.state.last_seq.max(seq);
        } else {
            self.state.duplicates += 1;
            self.shared.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        new
    }
}

/// The decimal number after `key` in `json`.
fn number(json: &[u8], key: &[u8]) -> Option<u64> {
    let start = memchr::memmem::find(json, key)? + key.len();
    json[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(None, |acc: Option<u64>, &b| {
            Some(
                acc.unwrap_or(0)
                    .saturating_mul(10)
                    .saturating_add(u64::from(b - b'0')),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(exact: bool) -> Client {
        Client {
            addr: SocketAddr::from(([127, 0, 0, 1], 9)),
            source: None,
            record_latency: false,
            exact,
            shared: Arc::new(Shared::default()),
            stop: CancellationToken::new(),
            state: ClientResult::default(),
            seen: Vec::new(),
            last_id: Vec::new(),
        }
    }

    fn update(seq: u64) -> Vec<u8> {
        format!("event: update\ndata: {{\"seq\":{seq},\"ts\":1}}\nid: {seq}\n\n").into_bytes()
    }

    #[test]
    fn exact_clients_take_any_order_and_count_duplicates() {
        let mut client = client(true);
        let stream: Vec<u8> = [2, 1, 3, 2, 200, 1].into_iter().flat_map(update).collect();
        assert_eq!(client.parse(&stream), stream.len());
        assert_eq!(client.state.received, 4);
        assert_eq!(client.state.duplicates, 2);
        assert_eq!(client.state.last_seq, 200);
        assert_eq!(client.shared.delivered.load(Ordering::Relaxed), 4);
        assert_eq!(client.shared.duplicates.load(Ordering::Relaxed), 2);
        // Beyond the tracked range: not counted at all.
        let far = update(MAX_EXACT_SEQ + 1);
        client.parse(&far);
        assert_eq!(client.state.received, 4);
    }

    #[test]
    fn ordered_clients_count_anything_not_newer_as_a_duplicate() {
        let mut client = client(false);
        let stream: Vec<u8> = [1, 2, 2, 5, 4].into_iter().flat_map(update).collect();
        client.parse(&stream);
        assert_eq!(client.state.received, 3);
        assert_eq!(client.state.duplicates, 2);
        assert_eq!(client.last_id, b"4");
    }

    #[test]
    fn finds_numbers() {
        let json = br#"{"seq":42,"ts":1700000000123456789,"pad":"x"}"#;
        assert_eq!(number(json, b"\"seq\":"), Some(42));
        assert_eq!(number(json, b"\"ts\":"), Some(1_700_000_000_123_456_789));
        assert_eq!(number(json, b"\"nope\":"), None);
    }
}
