//! A multi-room chat in the browser, over Server-Sent Events.
//!
//! ```text
//! cargo run --example chat                      # http://127.0.0.1:3000
//! cargo run --example chat -- --addr 0.0.0.0:8080
//! ```
//!
//! Open the address in two browser windows, pick two names and talk. Rooms, presence,
//! private messages, reconnection with `Last-Event-ID` and the hub's `reset` after a server
//! restart are described in `app.rs`. Ctrl-C ends every stream cleanly and exits.

mod app;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;
use tower_sse::CancellationToken;
use tracing_subscriber::EnvFilter;

const USAGE: &str = "\
usage: chat [--addr HOST:PORT] [--max-stream-secs N]

  --addr HOST:PORT       address to listen on (default 127.0.0.1:3000)
  --max-stream-secs N    end every stream after N seconds; browsers resume it
  -h, --help             show this help

Log levels: RUST_LOG (default info).";

/// The command line.
struct Args {
    addr: SocketAddr,
    max_stream_lifetime: Option<Duration>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
        max_stream_lifetime: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--addr" => {
                let text = value("--addr")?;
                parsed.addr = text.parse().map_err(|_| {
                    format!("--addr: {text:?} is not HOST:PORT (such as 127.0.0.1:3000)")
                })?;
            }
            "--max-stream-secs" => {
                let text = value("--max-stream-secs")?;
                let secs: u64 = text
                    .parse()
                    .map_err(|_| format!("--max-stream-secs: {text:?} is not a whole number"))?;
                parsed.max_stream_lifetime = (secs > 0).then(|| Duration::from_secs(secs));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(parsed))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("chat: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("chat: cannot listen on {}: {error}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("shutting down: ending every stream (Ctrl-C again to quit now)");
                shutdown.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        }
    });
    let config = app::Config {
        max_stream_lifetime: args.max_stream_lifetime,
        ..app::Config::default()
    };
    match listener.local_addr() {
        Ok(addr) => tracing::info!("chat on http://{addr}/"),
        Err(error) => tracing::warn!(%error, "cannot read the listening address"),
    }
    match app::serve(listener, config, shutdown).await {
        Ok(()) => {
            tracing::info!("every stream closed; bye");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("chat: {error}");
            ExitCode::FAILURE
        }
    }
}
