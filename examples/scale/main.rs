//! How many idle SSE connections one server process holds, and what they cost.
//!
//! ```text
//! cargo run --release --example scale -- --quick                       # 2,000 for 5 s
//! cargo run --release --example scale -- --connections 100000 --hold 60
//! ```
//!
//! The benchmark starts the server as a child process (itself, re-run with `--serve`) so that
//! the memory and CPU it reports, from `/proc/<pid>/status` and `/proc/<pid>/stat`, are the
//! server's alone. The server answers every request with a [`tower_sse::hub`] subscription
//! to one shared topic as an SSE stream with keep-alive, over HTTP/1.1 on 127.0.0.1. The
//! benchmark opens the connections from 127.0.0.2, 127.0.0.3, ... (each loopback address has
//! its own ephemeral ports, about 28,000 by default; `--per-source`, 10,000 by default, stays
//! below half of them, where `bind` stays cheap), holds them idle for `--hold` seconds
//! while the server sends keep-alive comments, then publishes one event and counts the
//! connections that receive it. It prints a table: connections opened, held and failed,
//! server RSS before and after and per connection, server CPU during the hold, per
//! keep-alive ping and per connection. Everything runs on loopback and stops by itself.
//!
//! # Preparing the machine
//!
//! Each side needs one file descriptor per connection. The benchmark raises its
//! `RLIMIT_NOFILE` soft limit to what it needs, and the hard limit too when it runs as root
//! (up to `fs.nr_open`); the server child inherits it. Otherwise raise the hard limit first
//! (`ulimit -Hn`, `/etc/security/limits.conf`). Worth checking:
//!
//! ```text
//! sysctl net.ipv4.ip_local_port_range   # ports per source address (--per-source stays below)
//! sysctl fs.nr_open fs.file-max         # ceilings for the open-file limit
//! sysctl net.core.somaxconn             # caps the listen backlog (the server asks for 65535)
//! sysctl net.ipv4.tcp_max_syn_backlog   # half-open connections; --concurrency stays below
//! ```
//!
//! The load is on one machine: the client side shares the cores with the server, so CPU
//! figures are the server's own but wall-clock rates are not a server's alone.

mod bench;
mod clients;
mod options;
mod server;
mod system;

use std::process::ExitCode;

use options::{Mode, USAGE};

fn main() -> ExitCode {
    let mode = match options::parse(std::env::args().skip(1)) {
        Ok(mode) => mode,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    let result = match mode {
        Mode::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Mode::Serve(options) => server::run(&options).map_err(Into::into),
        Mode::Bench(options) => bench::run(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
