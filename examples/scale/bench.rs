//! The benchmark: start the server child, open the connections, hold them, report.

use std::error::Error;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

use crate::clients::{self, Totals};
use crate::options::BenchOptions;
use crate::system::{self, FileLimit, mib};

type BoxError = Box<dyn Error + Send + Sync>;

/// How long the server child may take to answer a command or to start.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long every held connection has to receive the final event after it is published.
const FINAL_TIMEOUT: Duration = Duration::from_secs(60);

/// File descriptors beyond one per connection (runtime, pipes, listener, slack).
const SPARE_FILES: u64 = 256;

/// Runs the benchmark and prints the table.
pub fn run(options: &BenchOptions) -> Result<(), BoxError> {
    let wanted = options.connections as u64 + SPARE_FILES;
    let limit = system::raise_file_limit(wanted)?;
    let asked = options.connections;
    let mut options = options.clone();
    if limit.after.0 < wanted {
        let possible = limit.after.0.saturating_sub(SPARE_FILES).max(1);
        println!(
            "warning: RLIMIT_NOFILE stays at {:?} (soft, hard): {wanted} are needed and raising \
             the hard limit needs root with CAP_SYS_RESOURCE (or `ulimit -Hn`, \
             /etc/security/limits.conf, systemd LimitNOFILE=, up to fs.nr_open); \
             holding {possible} connections instead of {}",
            limit.after, options.connections
        );
        options.connections = usize::try_from(possible).unwrap_or(usize::MAX);
    }
    print_system(&options, &limit);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(bench(&options, asked));
    // Connections still open are simply dropped; the server child is gone by now.
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

fn print_system(options: &BenchOptions, limit: &FileLimit) {
    let sources = options.connections.div_ceil(options.per_source);
    println!("tower-sse scale benchmark");
    println!(
        "  cores {}, net.ipv4.ip_local_port_range {}, net.core.somaxconn {}, \
         net.ipv4.tcp_max_syn_backlog {}, fs.nr_open {}, fs.file-max {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        system::sysctl("net/ipv4/ip_local_port_range"),
        system::sysctl("net/core/somaxconn"),
        system::sysctl("net/ipv4/tcp_max_syn_backlog"),
        system::sysctl("fs/nr_open"),
        system::sysctl("fs/file-max"),
    );
    println!(
        "  RLIMIT_NOFILE (soft, hard) {:?} -> {:?} (inherited by the server child)",
        limit.before, limit.after
    );
    println!(
        "  client source addresses {} ..= {}, round-robin ({} each at most)",
        clients::source_of(0, sources),
        clients::source_of(sources - 1, sources),
        options.connections.div_ceil(sources),
    );
    if let Some(ports) = system::ephemeral_ports() {
        // bind() to port 0 tries the even half of the range first, then scans: past half
        // the range each bind walks thousands of used ports, in the kernel.
        if options.connections.div_ceil(sources) > ports / 2 {
            println!(
                "warning: more than half of the {ports} ephemeral ports of one source address \
                 in use: binding gets slow; lower --per-source"
            );
        }
    }
    println!(
        "  {} connections from {sources} addresses, keep-alive every {:?}, hold {:?}",
        options.connections, options.keep_alive, options.hold
    );
}

/// The server child and its command pipe.
struct Server {
    child: Child,
    pid: String,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Server {
    async fn start(options: &BenchOptions) -> Result<(Server, SocketAddr), BoxError> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("--serve")
            .args([
                "--keep-alive",
                &options.keep_alive.as_secs_f64().to_string(),
            ])
            .args([
                "--max-subscribers",
                &(options.connections + 1024).to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or("the server child exited at once")?
            .to_string();
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout pipe")?).lines();
        let mut server = Server {
            child,
            pid,
            stdin,
            stdout,
        };
        let line = server.line().await?;
        let addr = line
            .strip_prefix("listening ")
            .ok_or_else(|| format!("unexpected first line from the server: {line:?}"))?
            .parse()?;
        Ok((server, addr))
    }

    async fn line(&mut self) -> Result<String, BoxError> {
        match tokio::time::timeout(ANSWER_TIMEOUT, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => Err("the server child exited".into()),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err("the server child did not answer".into()),
        }
    }

    async fn ask(&mut self, command: &str) -> Result<Vec<usize>, BoxError> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await?;
        self.stdin.flush().await?;
        let line = self.line().await?;
        Ok(line
            .split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok())
            .collect())
    }

    /// `(open connections, hub subscribers)`.
    async fn stats(&mut self) -> Result<(usize, usize), BoxError> {
        match self.ask("stats").await?[..] {
            [open, subscribers] => Ok((open, subscribers)),
            _ => Err("unexpected stats line".into()),
        }
    }

    fn rss(&self) -> u64 {
        system::rss_bytes(&self.pid).unwrap_or(0)
    }

    fn cpu(&self) -> Duration {
        system::cpu_time(&self.pid).unwrap_or_default()
    }

    /// Closes the command pipe (the child exits) and waits for it; kills it if it lingers.
    async fn stop(mut self) {
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// What was measured at one instant.
#[derive(Clone, Copy)]
struct Snapshot {
    at: Instant,
    server_rss: u64,
    server_cpu: Duration,
    client_cpu: Duration,
    pings: u64,
}

fn snapshot(server: &Server, totals: &Totals) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        server_rss: server.rss(),
        server_cpu: server.cpu(),
        client_cpu: system::cpu_time("self").unwrap_or_default(),
        pings: totals.pings.load(Relaxed),
    }
}

async fn bench(options: &BenchOptions, asked: usize) -> Result<(), BoxError> {
    let sources = options.connections.div_ceil(options.per_source);
    let (mut server, addr) = Server::start(options).await?;
    println!("  server child pid {} listening on {addr}", server.pid);
    // Let the child finish starting its runtime before the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = snapshot(&server, &Totals::default());

    // Open: at most `concurrency` attempts in flight.
    let totals = Arc::new(Totals::default());
    let gate = Arc::new(Semaphore::new(options.concurrency));
    let opening = async {
        for index in 0..options.connections {
            let permit = Arc::clone(&gate).acquire_owned().await?;
            let totals = Arc::clone(&totals);
            let source = clients::source_of(index, sources);
            tokio::spawn(async move { clients::hold(addr, source, &totals, permit).await });
        }
        // Every permit back: every attempt has opened or failed.
        let all = u32::try_from(options.concurrency)?;
        let _all = gate.acquire_many(all).await?;
        Ok::<_, BoxError>(())
    };
    let open_timed_out = tokio::time::timeout(options.open_timeout, opening)
        .await
        .map_or(true, |result| result.is_err());
    let opened_snapshot = snapshot(&server, &totals);
    let opened = totals.opened.load(Relaxed);
    let failed = totals.failed.load(Relaxed);
    let open_secs = opened_snapshot.at.duration_since(start.at).as_secs_f64();
    println!(
        "  opened {opened}, failed {failed} in {open_secs:.1} s{}",
        if open_timed_out {
            " (stopped at --open-timeout)"
        } else {
            ""
        }
    );

    // Hold, with a progress line every 10 s.
    let hold_start = snapshot(&server, &totals);
    let (open_at_start, subscribers_at_start) = server.stats().await?;
    let deadline = tokio::time::Instant::now() + options.hold;
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_secs(10))).await;
        let (open, subscribers) = server.stats().await?;
        println!(
            "  holding: {:>4.0} s, server connections {open}, subscribers {subscribers}, \
             closed early {}, pings {}",
            hold_start.at.elapsed().as_secs_f64(),
            totals.closed_early.load(Relaxed),
            totals.pings.load(Relaxed),
        );
    }
    let hold_end = snapshot(&server, &totals);
    let (open_at_end, subscribers_at_end) = server.stats().await?;

    // One event to every subscriber: whoever receives it was really still connected.
    let published_to = server.ask("publish").await?.first().copied().unwrap_or(0);
    let expect_done = opened - totals.closed_early.load(Relaxed);
    let final_wait = tokio::time::timeout(FINAL_TIMEOUT, async {
        loop {
            let notified = totals.progress.notified();
            let settled = totals.done.load(Relaxed) + totals.closed_early.load(Relaxed);
            if settled >= opened {
                break;
            }
            notified.await;
        }
    })
    .await;
    let done = totals.done.load(Relaxed);
    let closed_early = totals.closed_early.load(Relaxed);
    let peak = system::peak_rss_bytes(&server.pid).unwrap_or(0);

    let table = Table {
        options,
        asked,
        opened,
        failed,
        open_secs,
        done,
        expect_done,
        final_timed_out: final_wait.is_err(),
        closed_early,
        published_to,
        server_counts: [
            (open_at_start, subscribers_at_start),
            (open_at_end, subscribers_at_end),
        ],
        start,
        opened_snapshot,
        hold_start,
        hold_end,
        peak,
    };
    table.print();
    let reasons = totals
        .reasons
        .lock()
        .map(|reasons| reasons.clone())
        .unwrap_or_default();
    if !reasons.is_empty() {
        println!("\nwhy connections failed or closed early:");
        for (reason, count) in reasons {
            println!("  {count:>7}  {reason}");
        }
    }
    server.stop().await;
    Ok(())
}

struct Table<'a> {
    options: &'a BenchOptions,
    asked: usize,
    opened: usize,
    failed: usize,
    open_secs: f64,
    done: usize,
    expect_done: usize,
    final_timed_out: bool,
    closed_early: usize,
    published_to: usize,
    server_counts: [(usize, usize); 2],
    start: Snapshot,
    opened_snapshot: Snapshot,
    hold_start: Snapshot,
    hold_end: Snapshot,
    peak: u64,
}

impl Table<'_> {
    fn print(&self) {
        let row = |name: &str, value: String| println!("| {name:<52} | {value:>36} |");
        let held = self.done;
        let per_conn = |bytes: u64| {
            if held == 0 {
                "-".to_owned()
            } else {
                format!("{:.2} KiB", bytes as f64 / 1024.0 / held as f64)
            }
        };
        let hold_secs = self
            .hold_end
            .at
            .duration_since(self.hold_start.at)
            .as_secs_f64();
        let server_hold_cpu = (self.hold_end.server_cpu - self.hold_start.server_cpu).as_secs_f64();
        let client_hold_cpu = (self.hold_end.client_cpu - self.hold_start.client_cpu).as_secs_f64();
        let pings = self.hold_end.pings - self.hold_start.pings;
        let rss_growth = self
            .hold_end
            .server_rss
            .saturating_sub(self.start.server_rss);

        println!();
        println!("| {:<52} | {:>36} |", "measure", "value");
        println!("|{:-<54}|{:->38}|", "", "");
        row("connections asked for", self.asked.to_string());
        row(
            "connections attempted (within RLIMIT_NOFILE)",
            self.options.connections.to_string(),
        );
        row("opened (200, text/event-stream)", self.opened.to_string());
        row("failed to open", self.failed.to_string());
        row(
            "time to open / rate",
            format!(
                "{:.1} s / {:.0} per s",
                self.open_secs,
                self.opened as f64 / self.open_secs.max(1e-9)
            ),
        );
        row(
            "server connections / subscribers, hold start",
            format!("{} / {}", self.server_counts[0].0, self.server_counts[0].1),
        );
        row(
            "server connections / subscribers, hold end",
            format!("{} / {}", self.server_counts[1].0, self.server_counts[1].1),
        );
        row(
            "closed early (before the final event)",
            self.closed_early.to_string(),
        );
        row(
            "held: got the final event after the hold",
            format!(
                "{held} of {}{}",
                self.expect_done,
                if self.final_timed_out {
                    " (timed out)"
                } else {
                    ""
                }
            ),
        );
        row(
            "final event published to subscribers",
            self.published_to.to_string(),
        );
        row(
            "server RSS before connections",
            format!("{:.1} MiB", mib(self.start.server_rss)),
        );
        row(
            "server RSS all open",
            format!("{:.1} MiB", mib(self.opened_snapshot.server_rss)),
        );
        row(
            "server RSS end of hold",
            format!("{:.1} MiB", mib(self.hold_end.server_rss)),
        );
        row(
            "server peak RSS (VmHWM)",
            format!("{:.1} MiB", mib(self.peak)),
        );
        row("server RSS per held connection", per_conn(rss_growth));
        row(
            "server CPU while opening",
            format!(
                "{:.2} s",
                (self.opened_snapshot.server_cpu - self.start.server_cpu).as_secs_f64()
            ),
        );
        row(
            "server CPU during the hold",
            format!(
                "{server_hold_cpu:.2} s in {hold_secs:.1} s ({:.1} % of a core)",
                100.0 * server_hold_cpu / hold_secs.max(1e-9)
            ),
        );
        row(
            "keep-alive pings received during the hold",
            format!(
                "{pings} ({:.2} per connection)",
                pings as f64 / (held.max(1)) as f64
            ),
        );
        row(
            "server CPU per keep-alive ping",
            if pings == 0 {
                "-".to_owned()
            } else {
                format!("{:.2} us", server_hold_cpu * 1e6 / pings as f64)
            },
        );
        row(
            "server CPU per connection per minute of hold",
            if held == 0 {
                "-".to_owned()
            } else {
                format!(
                    "{:.2} us",
                    server_hold_cpu * 1e6 / held as f64 * 60.0 / hold_secs.max(1e-9)
                )
            },
        );
        row(
            "client CPU during the hold (this process)",
            format!("{client_hold_cpu:.2} s"),
        );
    }
}
