//! Command-line options of the scale benchmark.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// What to run: the benchmark (the default) or the server child it starts.
pub enum Mode {
    /// Start a server child, open connections to it, hold them, report.
    Bench(BenchOptions),
    /// Be the server: listen, print the address, obey commands on stdin.
    Serve(ServeOptions),
    /// Print the usage.
    Help,
}

/// Options of the benchmark.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Connections to open and hold.
    pub connections: usize,
    /// How long to hold them once all are open.
    pub hold: Duration,
    /// The server's keep-alive interval.
    pub keep_alive: Duration,
    /// Connection attempts in flight at once.
    pub concurrency: usize,
    /// Most connections from one loopback source address (127.0.0.2, 127.0.0.3, ...); best
    /// below half the ephemeral port range.
    pub per_source: usize,
    /// Longest time allowed to open all connections.
    pub open_timeout: Duration,
}

/// Options of the server child.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The keep-alive interval of every stream.
    pub keep_alive: Duration,
    /// The hub's subscriber limit.
    pub max_subscribers: usize,
    /// The listen backlog asked for (the kernel caps it at `net.core.somaxconn`).
    pub backlog: u32,
}

/// A command line that could not be read.
#[derive(Debug)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n\n{USAGE}", self.0)
    }
}

impl std::error::Error for UsageError {}

/// The usage text.
pub const USAGE: &str = "\
usage: cargo run --release --example scale -- [options]

  --connections N   idle SSE connections to open and hold   (default 100000)
  --hold SECS       how long to hold them once all are open (default 60)
  --keep-alive SECS server keep-alive interval               (default 15)
  --concurrency N   connection attempts in flight at once    (default 512)
  --per-source N    connections per loopback source address (default 10000)
  --open-timeout S  longest time to open all connections     (default 300)
  --quick           2000 connections, 5 s hold, 1 s keep-alive
  --help            this text";

fn value<T: std::str::FromStr>(
    name: &str,
    args: &mut impl Iterator<Item = String>,
) -> Result<T, UsageError> {
    let raw = args
        .next()
        .ok_or_else(|| UsageError(format!("{name} needs a value")))?;
    raw.parse()
        .map_err(|_| UsageError(format!("{name}: cannot read {raw:?}")))
}

fn seconds(name: &str, args: &mut impl Iterator<Item = String>) -> Result<Duration, UsageError> {
    let secs: f64 = value(name, args)?;
    if !(secs.is_finite() && secs > 0.0 && secs < 86_400.0) {
        return Err(UsageError(format!("{name}: between 0 and 86400 seconds")));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Reads the command line (without the program name).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Mode, UsageError> {
    let mut args = args.into_iter().peekable();
    if args.peek().map(String::as_str) == Some("--serve") {
        args.next();
        return parse_serve(args).map(Mode::Serve);
    }
    let mut options = BenchOptions {
        connections: 100_000,
        hold: Duration::from_secs(60),
        keep_alive: Duration::from_secs(15),
        concurrency: 512,
        per_source: 10_000,
        open_timeout: Duration::from_secs(300),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--connections" => options.connections = value(&arg, &mut args)?,
            "--hold" => options.hold = seconds(&arg, &mut args)?,
            "--keep-alive" => options.keep_alive = seconds(&arg, &mut args)?,
            "--concurrency" => options.concurrency = value(&arg, &mut args)?,
            "--per-source" => options.per_source = value(&arg, &mut args)?,
            "--open-timeout" => options.open_timeout = seconds(&arg, &mut args)?,
            "--quick" => {
                options.connections = 2_000;
                options.hold = Duration::from_secs(5);
                options.keep_alive = Duration::from_secs(1);
            }
            "--help" | "-h" => return Ok(Mode::Help),
            other => return Err(UsageError(format!("unknown option {other:?}"))),
        }
    }
    if options.connections == 0 || options.concurrency == 0 || options.per_source == 0 {
        return Err(UsageError(
            "--connections, --concurrency and --per-source must be at least 1".into(),
        ));
    }
    // 127.0.0.2 ..= 127.0.0.254, then 127.0.1.x ...: the whole 127/8 is loopback.
    if options.connections.div_ceil(options.per_source) > 60_000 {
        return Err(UsageError("too few connections per source address".into()));
    }
    Ok(Mode::Bench(options))
}

fn parse_serve(mut args: impl Iterator<Item = String>) -> Result<ServeOptions, UsageError> {
    let mut options = ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        keep_alive: Duration::from_secs(15),
        max_subscribers: 100_000,
        backlog: 65_535,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => options.addr = value(&arg, &mut args)?,
            "--keep-alive" => options.keep_alive = seconds(&arg, &mut args)?,
            "--max-subscribers" => options.max_subscribers = value(&arg, &mut args)?,
            "--backlog" => options.backlog = value(&arg, &mut args)?,
            other => return Err(UsageError(format!("unknown server option {other:?}"))),
        }
    }
    if !options.addr.ip().is_loopback() {
        return Err(UsageError("the server listens on loopback only".into()));
    }
    Ok(options)
}
