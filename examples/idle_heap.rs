//! Heap bytes per idle SSE connection, counted exactly: tower-sse's hub against axum's SSE over
//! a `tokio::sync::broadcast` channel, the same two servers as `examples/fanout_bench`.
//!
//! ```text
//! cargo run --release --example idle_heap -- [--connections 10000] [--capacity 1024]
//! ```
//!
//! `fanout_bench`'s idle scenario reads the server process's resident memory, which moves by
//! more than the two servers differ (allocator arenas, page granularity). This program counts
//! the bytes instead: its global allocator is [dhat]'s, and for each server it reads the bytes
//! held on the heap before and after opening the connections. The clients are blocking
//! sockets in a child process (this program with `--clients`), so the difference divided by
//! the number of connections is the server's heap per connection: the response
//! body and the subscription, and what both servers share (hyper's connection buffers and
//! state, tokio's task and socket registration, axum's router).
//!
//! Counting every allocation slows the program down; its CPU figures mean nothing and it
//! prints none. The heap profile of the whole run is written to `target/idle_heap/dhat-heap.json`
//! (viewable with dhat's `dh_view.html`): its peak is the moment the most connections were
//! open, and shows where each byte of a connection goes. Everything runs on 127.0.0.1 and
//! stops by itself.
//!
//! [dhat]: https://docs.rs/dhat

// The fan-out benchmark's servers, shared so that both programs measure the same code.
#[allow(dead_code)]
#[path = "fanout_bench/server.rs"]
mod server;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use server::{Command, Kind};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Connections opened before counting starts, so that one-time growth (the runtime's
/// registration slabs, the hub's first topic, the listener's accept path) is not charged to
/// the connections counted.
const WARM_UP: usize = 200;
/// How long to wait for the server to count every connection as subscribed.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

type Error = Box<dyn std::error::Error + Send + Sync>;

/// One server's figures.
struct Measured {
    connections: usize,
    bytes: i64,
    blocks: i64,
}

impl Measured {
    fn bytes_per_connection(&self) -> f64 {
        self.bytes as f64 / self.connections as f64
    }

    fn blocks_per_connection(&self) -> f64 {
        self.blocks as f64 / self.connections as f64
    }
}

fn main() {
    let mut cli = std::env::args().skip(1);
    if cli.next().as_deref() == Some("--clients") {
        // Child mode: `--clients ADDR N`.
        let addr = cli.next().and_then(|a| a.parse().ok());
        let count = cli.next().and_then(|n| n.parse().ok());
        let (Some(addr), Some(count)) = (addr, count) else {
            eprintln!("--clients needs an address and a count");
            std::process::exit(2);
        };
        if let Err(err) = hold_clients(addr, count) {
            eprintln!("idle_heap clients: {err}");
            std::process::exit(1);
        }
        return;
    }
    let mut connections = 10_000usize;
    let mut capacity = 1024usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let parsed = match arg.as_str() {
            "--connections" => args.next().and_then(|v| v.parse().ok()).map(|n| {
                connections = n;
            }),
            "--capacity" => args.next().and_then(|v| v.parse().ok()).map(|n| {
                capacity = n;
            }),
            _ => None,
        };
        if parsed.is_none() || connections == 0 || capacity == 0 {
            eprintln!("usage: idle_heap [--connections N (>0)] [--capacity N (>0)]");
            std::process::exit(2);
        }
    }
    if let Err(err) = run(connections, capacity) {
        eprintln!("idle_heap: {err}");
        std::process::exit(1);
    }
}

fn run(connections: usize, capacity: usize) -> Result<(), Error> {
    // A descriptor per connection, in this process and in the clients' (which inherits it).
    let wanted = (connections + WARM_UP) as u64 + 256;
    let limit = rlimit::increase_nofile_limit(wanted)?;
    if limit < wanted {
        return Err(format!("the open-file limit is {limit}; {wanted} are needed").into());
    }
    std::fs::create_dir_all("target/idle_heap")?;
    let _profiler = dhat::Profiler::builder()
        .file_name("target/idle_heap/dhat-heap.json")
        .trim_backtraces(Some(12))
        .build();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let mut results = Vec::new();
    for kind in [Kind::Tower, Kind::Axum] {
        let measured = measure(&runtime, kind, capacity, connections)?;
        eprintln!(
            "{:<9} {} connections: {:.1} heap bytes and {:.2} blocks each",
            kind.name(),
            measured.connections,
            measured.bytes_per_connection(),
            measured.blocks_per_connection(),
        );
        results.push((kind, measured));
    }
    print!("{}", table(&results));
    Ok(())
}

/// Starts a server of `kind`, opens the warm-up connections, then counts the heap it holds for
/// `connections` more.
fn measure(
    runtime: &Runtime,
    kind: Kind,
    capacity: usize,
    connections: usize,
) -> Result<Measured, Error> {
    let (commands, received) = mpsc::channel(4);
    let addr = runtime.block_on(async {
        let backend = server::backend(kind, capacity, None).await?;
        let listener = server::listen()?;
        let addr = listener.local_addr()?;
        tokio::spawn(server::run(backend, listener, received));
        io::Result::Ok(addr)
    })?;
    let warm_up = Clients::spawn(addr, WARM_UP)?;
    settle(runtime, &commands, WARM_UP)?;

    let before = dhat::HeapStats::get();
    let counted = Clients::spawn(addr, connections)?;
    settle(runtime, &commands, WARM_UP + connections)?;
    let after = dhat::HeapStats::get();

    counted.close()?;
    warm_up.close()?;
    // Closing the command channel stops the server.
    drop(commands);
    Ok(Measured {
        connections,
        bytes: after.curr_bytes as i64 - before.curr_bytes as i64,
        blocks: after.curr_blocks as i64 - before.curr_blocks as i64,
    })
}

/// A child process (this program with `--clients ADDR N`) holding `N` idle connections: the
/// clients' descriptors and memory are not this process's, so that both fit in one
/// open-file limit and nothing of theirs is counted.
struct Clients {
    child: Child,
}

impl Clients {
    /// Starts the child and waits until every connection has its response head.
    fn spawn(addr: SocketAddr, count: usize) -> io::Result<Clients> {
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(["--clients", &addr.to_string(), &count.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.as_mut() {
            BufReader::new(stdout).read_line(&mut line)?;
        }
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "the clients did not connect ({count})"
            )));
        }
        Ok(Clients { child })
    }

    /// Closes every connection: the child exits when its standard input closes.
    fn close(mut self) -> io::Result<()> {
        drop(self.child.stdin.take());
        self.child.wait()?;
        Ok(())
    }
}

/// Child mode: opens `count` connections, says `ready`, and holds them until standard input
/// closes.
fn hold_clients(addr: SocketAddr, count: usize) -> io::Result<()> {
    let mut open = Vec::with_capacity(count);
    connect(addr, count, &mut open)?;
    println!("ready");
    io::stdout().flush()?;
    let mut rest = Vec::new();
    io::stdin().read_to_end(&mut rest)?;
    Ok(())
}

/// Opens `count` connections, each with an SSE request whose response head has arrived.
fn connect(addr: SocketAddr, count: usize, open: &mut Vec<TcpStream>) -> io::Result<()> {
    const REQUEST: &[u8] =
        b"GET /events HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n";
    for _ in 0..count {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(REQUEST)?;
        // Read up to the end of the response head; the body's first bytes may come with it.
        let mut head = [0u8; 1024];
        let mut len = 0;
        while !head[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            if len == head.len() {
                return Err(io::Error::other("response head over 1 KiB"));
            }
            match stream.read(&mut head[len..])? {
                0 => return Err(io::Error::other("connection closed before the response")),
                n => len += n,
            }
        }
        if !head.starts_with(b"HTTP/1.1 200") {
            return Err(io::Error::other("the server did not answer 200"));
        }
        open.push(stream);
    }
    Ok(())
}

/// Waits until the server counts `expected` subscribers, then a little longer for every
/// connection's task to go idle.
fn settle(
    runtime: &Runtime,
    commands: &mpsc::Sender<Command>,
    expected: usize,
) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        let subscribers = runtime.block_on(async {
            let (reply, stats) = oneshot::channel();
            commands.send(Command::Stats(reply)).await.ok()?;
            stats.await.ok()
        });
        match subscribers {
            Some(stats) if stats.subscribers as usize >= expected => break,
            Some(_) if started.elapsed() < SETTLE_LIMIT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                return Err(
                    format!("fewer than {expected} subscribers after {SETTLE_LIMIT:?}").into(),
                );
            }
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    Ok(())
}

/// The results as a markdown table.
fn table(results: &[(Kind, Measured)]) -> String {
    let find = |kind| results.iter().find(|(k, _)| *k == kind).map(|(_, m)| m);
    let (Some(tower), Some(axum)) = (find(Kind::Tower), find(Kind::Axum)) else {
        return String::new();
    };
    let ratio = tower.bytes_per_connection() / axum.bytes_per_connection();
    let difference = tower.bytes_per_connection() - axum.bytes_per_connection();
    format!(
        "\n| {} idle connections | tower-sse | axum | tower-sse / axum |\n\
         |---|---:|---:|---:|\n\
         | heap bytes per connection | {:.1} | {:.1} | {ratio:.4} ({difference:+.1} B) |\n\
         | heap blocks per connection | {:.2} | {:.2} | |\n\n\
         Target: idle memory per connection no more than axum's: {}.\n",
        tower.connections,
        tower.bytes_per_connection(),
        axum.bytes_per_connection(),
        tower.blocks_per_connection(),
        axum.blocks_per_connection(),
        if difference <= 0.0 { "met" } else { "MISSED" },
    )
}
