//! A handle on a running server: in a child process (so its CPU time and memory are its own) or
//! in this process (for the smoke test).
//!
//! The child is this same program started with
//! `--serve tower|axum [--capacity N] [--redis URL PREFIX]`. It prints `listening <addr>` (or
//! `error <message>` if its hub cannot start) and then answers one line per command on its
//! standard input:
//!
//! ```text
//! publish <rate> <duration_ms> <burst> <slot> <stride> <start_ns> <seq_base>
//!                                                         ->  published <count> <elapsed_us>
//! stats                                                   ->  stats <lagged> <subscribers>
//! ```
//!
//! (see [`Publish`] for the fields). It exits when its standard input closes.

use std::io;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};

use crate::procfs;
use crate::server::{self, Command, Kind, Publish, Published, RedisTarget, ServerStats};

/// A server under test.
pub enum ServerHandle {
    /// In a child process.
    Child {
        /// The process (boxed: it is much larger than the other variant).
        child: Box<Child>,
        /// Commands go here.
        stdin: ChildStdin,
        /// Replies come from here.
        stdout: Lines<BufReader<ChildStdout>>,
        /// Where it listens.
        addr: SocketAddr,
    },
    /// In this process.
    InProcess {
        /// Commands go here.
        commands: mpsc::Sender<Command>,
        /// Where it listens.
        addr: SocketAddr,
        /// The server task.
        task: tokio::task::JoinHandle<()>,
    },
}

fn protocol_error(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl ServerHandle {
    /// Starts `kind` in a child process (this program with `--serve`), as an instance of a
    /// hub over Redis if `redis` is given.
    pub async fn spawn_child(
        kind: Kind,
        capacity: usize,
        redis: Option<&RedisTarget>,
    ) -> io::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut command = tokio::process::Command::new(exe);
        command
            .arg("--serve")
            .arg(kind.name())
            .arg("--capacity")
            .arg(capacity.to_string());
        if let Some(target) = redis {
            command.arg("--redis").arg(&target.url).arg(&target.prefix);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| protocol_error("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| protocol_error("no stdout"))?;
        let mut stdout = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), stdout.next_line())
            .await
            .map_err(|_| protocol_error("server did not start"))??
            .ok_or_else(|| protocol_error("server exited"))?;
        if let Some(message) = line.strip_prefix("error ") {
            return Err(io::Error::other(message.to_owned()));
        }
        let addr = line
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| protocol_error(format!("unexpected: {line}")))?;
        Ok(ServerHandle::Child {
            child: Box::new(child),
            stdin,
            stdout,
            addr,
        })
    }

    /// Starts `kind` on the current runtime, as an instance of a hub over Redis if `redis` is
    /// given.
    pub async fn in_process(
        kind: Kind,
        capacity: usize,
        redis: Option<&RedisTarget>,
    ) -> io::Result<Self> {
        let backend = server::backend(kind, capacity, redis).await?;
        let listener = server::listen()?;
        let addr = listener.local_addr()?;
        let (commands, rx) = mpsc::channel(4);
        let task = tokio::spawn(server::run(backend, listener, rx));
        Ok(ServerHandle::InProcess {
            commands,
            addr,
            task,
        })
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        match self {
            ServerHandle::Child { addr, .. } | ServerHandle::InProcess { addr, .. } => *addr,
        }
    }

    /// The server's process id (`None` in process).
    pub fn pid(&self) -> Option<u32> {
        match self {
            ServerHandle::Child { child, .. } => child.id(),
            ServerHandle::InProcess { .. } => None,
        }
    }

    /// The server process's CPU seconds so far (`None` in process: it would count the clients).
    pub fn cpu_seconds(&self) -> Option<f64> {
        match self {
            ServerHandle::Child { child, .. } => procfs::cpu_seconds(child.id()?),
            ServerHandle::InProcess { .. } => None,
        }
    }

    /// The server process's user and system CPU seconds so far (`None` in process).
    pub fn cpu_times(&self) -> Option<procfs::CpuTimes> {
        match self {
            ServerHandle::Child { child, .. } => procfs::cpu_times(child.id()?),
            ServerHandle::InProcess { .. } => None,
        }
    }

    /// The server process's write system calls so far (`None` in process).
    pub fn write_calls(&self) -> Option<u64> {
        match self {
            ServerHandle::Child { child, .. } => procfs::write_calls(child.id()?),
            ServerHandle::InProcess { .. } => None,
        }
    }

    /// The server process's resident memory (`None` in process).
    pub fn rss_bytes(&self) -> Option<u64> {
        match self {
            ServerHandle::Child { child, .. } => procfs::rss_bytes(child.id()?),
            ServerHandle::InProcess { .. } => None,
        }
    }

    /// Publishes as `publish` says and waits until the publisher is done.
    pub async fn publish(&mut self, publish: Publish) -> io::Result<Published> {
        match self {
            ServerHandle::Child { stdin, stdout, .. } => {
                let line = format!(
                    "publish {} {} {} {} {} {} {}\n",
                    publish.rate,
                    publish.duration.as_millis(),
                    publish.burst,
                    publish.slot,
                    publish.stride,
                    publish.start_ns,
                    publish.seq_base
                );
                let reply = request(stdin, stdout, &line).await?;
                let mut parts = reply.split(' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("published"), Some(count), Some(micros)) => Ok(Published {
                        count: count.parse().map_err(|_| protocol_error(&reply))?,
                        elapsed: Duration::from_micros(
                            micros.parse().map_err(|_| protocol_error(&reply))?,
                        ),
                    }),
                    _ => Err(protocol_error(reply)),
                }
            }
            ServerHandle::InProcess { commands, .. } => {
                let (tx, rx) = oneshot::channel();
                commands
                    .send(Command::Publish(publish, tx))
                    .await
                    .map_err(|_| protocol_error("server gone"))?;
                rx.await.map_err(|_| protocol_error("server gone"))
            }
        }
    }

    /// The server's counters.
    pub async fn stats(&mut self) -> io::Result<ServerStats> {
        match self {
            ServerHandle::Child { stdin, stdout, .. } => {
                let reply = request(stdin, stdout, "stats\n").await?;
                let mut parts = reply.split(' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("stats"), Some(lagged), Some(subscribers)) => Ok(ServerStats {
                        lagged: lagged.parse().map_err(|_| protocol_error(&reply))?,
                        subscribers: subscribers.parse().map_err(|_| protocol_error(&reply))?,
                    }),
                    _ => Err(protocol_error(reply)),
                }
            }
            ServerHandle::InProcess { commands, .. } => {
                let (tx, rx) = oneshot::channel();
                commands
                    .send(Command::Stats(tx))
                    .await
                    .map_err(|_| protocol_error("server gone"))?;
                rx.await.map_err(|_| protocol_error("server gone"))
            }
        }
    }

    /// Stops the server.
    pub async fn stop(self) {
        match self {
            ServerHandle::Child {
                mut child, stdin, ..
            } => {
                drop(stdin);
                if tokio::time::timeout(Duration::from_secs(5), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            }
            ServerHandle::InProcess {
                commands, mut task, ..
            } => {
                // The server task ends when its command channel closes.
                drop(commands);
                if tokio::time::timeout(Duration::from_secs(5), &mut task)
                    .await
                    .is_err()
                {
                    task.abort();
                }
            }
        }
    }
}

/// Sends one command line and reads one reply line (bounded in time).
async fn request(
    stdin: &mut ChildStdin,
    stdout: &mut Lines<BufReader<ChildStdout>>,
    line: &str,
) -> io::Result<String> {
    stdin.write_all(line.as_bytes()).await?;
    stdin.flush().await?;
    tokio::time::timeout(Duration::from_secs(120), stdout.next_line())
        .await
        .map_err(|_| protocol_error("no reply from server"))??
        .ok_or_else(|| protocol_error("server exited"))
}

/// The child side: serve `kind` (an instance of a hub over Redis if `redis` is given), print
/// the address, answer commands from standard input.
pub fn serve_child(kind: Kind, capacity: usize, redis: Option<RedisTarget>) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let backend = match server::backend(kind, capacity, redis.as_ref()).await {
            Ok(backend) => backend,
            Err(err) => {
                // One line: the parent reports it.
                println!("error {}", err.to_string().replace('\n', " "));
                return Err(err);
            }
        };
        let listener = server::listen()?;
        println!("listening {}", listener.local_addr()?);
        let (commands, rx) = mpsc::channel(4);
        let server = tokio::spawn(server::run(backend, listener, rx));
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            let mut parts = line.split_whitespace();
            let reply = match parts.next() {
                Some("publish") => {
                    let numbers: Option<Vec<u64>> = parts.map(|p| p.parse().ok()).collect();
                    let Some(&[rate, millis, burst, slot, stride, start_ns, seq_base]) =
                        numbers.as_deref()
                    else {
                        println!("error bad publish command");
                        continue;
                    };
                    let small = |n: u64| n.min(u64::from(u32::MAX)) as u32;
                    let publish = Publish {
                        rate: small(rate),
                        duration: Duration::from_millis(millis),
                        burst: small(burst),
                        slot: small(slot),
                        stride: small(stride).max(1),
                        start_ns,
                        seq_base,
                    };
                    let (tx, rx) = oneshot::channel();
                    if commands.send(Command::Publish(publish, tx)).await.is_err() {
                        break;
                    }
                    match rx.await {
                        Ok(p) => format!("published {} {}", p.count, p.elapsed.as_micros()),
                        Err(_) => break,
                    }
                }
                Some("stats") => {
                    let (tx, rx) = oneshot::channel();
                    if commands.send(Command::Stats(tx)).await.is_err() {
                        break;
                    }
                    match rx.await {
                        Ok(s) => format!("stats {} {}", s.lagged, s.subscribers),
                        Err(_) => break,
                    }
                }
                _ => format!("error unknown command {line:?}"),
            };
            println!("{reply}");
        }
        drop(commands);
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        Ok(())
    })
}
