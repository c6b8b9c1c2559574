//! A multi-room chat in the browser, over Server-Sent Events.
//!
//! ```text
//! cargo run --example chat                      # http://127.0.0.1:3000
//! cargo run --example chat -- --addr 0.0.0.0:8080
//!
//! # Two instances forming one chat through Redis; each page fails over to the other.
//! cargo run --features redis --example chat -- --addr 127.0.0.1:3000 \
//!     --redis redis://127.0.0.1:6379 --peer http://127.0.0.1:3000 --peer http://127.0.0.1:3001
//! cargo run --features redis --example chat -- --addr 127.0.0.1:3001 \
//!     --redis redis://127.0.0.1:6379 --peer http://127.0.0.1:3000 --peer http://127.0.0.1:3001
//! ```
//!
//! Open the address in two browser windows, pick two names and talk. Rooms, presence,
//! private messages, reconnection with `Last-Event-ID`, the hub's `reset` after a server
//! restart, and several instances with failover are described in `app.rs`. Ctrl-C ends
//! every stream cleanly and exits. Exit status: 0 after a clean shutdown, 1 when the server
//! cannot start (address in use, Redis unreachable), 2 for a bad command line.

mod app;

use std::process::ExitCode;

use tokio::net::TcpListener;
use tower_sse::CancellationToken;
use tracing_subscriber::EnvFilter;

use app::cli::{self, Args, Command, USAGE};

/// Where the chat keeps its state, as asked.
fn backend(args: &Args) -> Result<app::Backend, String> {
    match &args.redis_url {
        None => Ok(app::Backend::Memory),
        #[cfg(feature = "redis")]
        Some(url) => Ok(app::Backend::Redis {
            url: url.clone(),
            key_prefix: args.key_prefix.clone(),
        }),
        #[cfg(not(feature = "redis"))]
        Some(_) => Err("Redis (--redis or REDIS_URL) needs the `redis` feature: \
             cargo run --features redis --example chat -- ..."
            .to_owned()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = match cli::parse(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("chat: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let backend = match backend(&args) {
        Ok(backend) => backend,
        Err(message) => {
            eprintln!("chat: {message}");
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
    let config = app::Config {
        max_stream_lifetime: args.max_stream_lifetime,
        secret: args.secret,
        peers: args.peers.clone(),
        ..app::Config::default()
    };
    let chat = match app::start(config, backend, shutdown.clone()).await {
        Ok(chat) => chat,
        Err(error) => {
            eprintln!("chat: {error}");
            return ExitCode::FAILURE;
        }
    };
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
    match &args.redis_url {
        Some(url) => tracing::info!(
            redis = %app::without_password(url),
            key_prefix = %args.key_prefix,
            "sharing the chat through Redis"
        ),
        None => tracing::info!("a single instance, in memory"),
    }
    if !args.peers.is_empty() {
        tracing::info!(peers = ?args.peers, "pages may fail over to these origins");
    }
    match listener.local_addr() {
        Ok(addr) => tracing::info!("chat on http://{addr}/"),
        Err(error) => tracing::warn!(%error, "cannot read the listening address"),
    }
    match app::serve_chat(listener, chat).await {
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
