//! SSE fan-out over real sockets on 127.0.0.1: tower-sse's hub against axum's SSE with a
//! `tokio::sync::broadcast` channel, side by side in one run.
//!
//! ```text
//! cargo run --release --example fanout_bench -- [--quick]
//!     [--scenario fixed|paired|saturation|idle|redis|all]
//!     [--clients 1000,10000] [--duration SECS] [--rate 50] [--burst 16] [--capacity 1024]
//!     [--pairs 12] [--window SECS]
//!     [--sources K] [--svg PATH] [--step SECS] [--start-rate N] [--in-process]
//!     [--redis-url URL] [--instances 2] [--redis-clients 100] [--redis-rate 1000]
//!     [--publish-via all|first] [--repeat N]
//! ```
//!
//! Each server runs in a child process (this program with `--serve tower|axum`), a fresh one
//! per measurement, so its CPU time (`/proc/<pid>/stat`) and memory (`VmRSS`) are its own; the
//! clients run here. Scenarios:
//!
//! - **fixed**: for each number in `--clients`, every client follows one topic published at
//!   `--rate` msg/s for `--duration`: delivery latency p50/p99 (publish time is in the data,
//!   read at receipt), server CPU per delivered message, messages lost; with `--repeat N`,
//!   N rounds for each number of clients, the servers' order alternating from round to
//!   round, reported round by round with the median of each ratio (the main table and the
//!   chart show the round whose CPU ratio is the median);
//! - **paired**: the first number of `--clients` on each server, both servers up at once,
//!   publishing at `--rate` in turn, in `--window` second windows (default 2), `--pairs`
//!   pairs (default 12), the order alternating: server CPU per delivered message from the
//!   totals, and each pair's ratio (see `paired.rs` for why);
//! - **saturation**: the first number of `--clients`: the highest fixed rate that every client
//!   keeps up with, with zero loss (a search, `--step` seconds per rate, each step a fresh
//!   server), and for reference a run publishing as fast as the server's scheduler lets it
//!   (`--burst` messages per turn, no backpressure) for `--duration`, with its losses;
//! - **idle**: the largest number of `--clients` connected and idle: server memory per
//!   connection;
//! - **redis** (feature `redis`, Redis at `--redis-url`, default `redis://127.0.0.1:6379`):
//!   `--instances` servers whose hub is the hub over Redis on one fresh random key prefix
//!   (its keys deleted at the end), `--redis-clients` clients on each, `--redis-rate` msg/s
//!   for `--duration` published through the instances in turn (`--publish-via all`, the
//!   default) or through the first only (`--publish-via first`): messages lost, duplicates
//!   and latency p50/p99 from publish to receipt; beside it, in the same run, as many clients
//!   on one in-memory hub at the same rate. `all` includes it when the feature is compiled
//!   in.
//!
//! Results go to standard output as markdown (also `target/fanout/results.md`), with a chart of
//! latency against clients in `target/fanout/latency.svg` (and `--svg PATH`). `--quick` runs a
//! few dozen clients for a second each, as a smoke test. `--in-process` runs the servers in
//! this process instead (no CPU or memory figures then). Everything is bounded in time.

mod client;
mod control;
mod histogram;
mod http;
mod paired;
mod procfs;
#[cfg(feature = "redis")]
mod redis_mode;
mod report;
mod scenario;
mod server;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use control::ServerHandle;
use scenario::{ClientPlan, Outcome};
use server::{Kind, Publish};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The highest rate the saturation search tries, messages per second.
const MAX_RATE: u32 = 1_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Fixed,
    Paired,
    Saturation,
    Idle,
    Redis,
    All,
}

/// Settings of the Redis scenario (used only with the `redis` feature).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
struct RedisOptions {
    url: String,
    instances: usize,
    clients: usize,
    rate: u32,
    publish_via_all: bool,
}

struct Options {
    scenario: Scenario,
    clients: Vec<usize>,
    duration: Duration,
    rate: u32,
    burst: u32,
    capacity: usize,
    sources: usize,
    svg: Option<PathBuf>,
    quick: bool,
    in_process: bool,
    step: Duration,
    start_rate: u32,
    repeat: usize,
    pairs: usize,
    window: Duration,
    redis: RedisOptions,
}

const USAGE: &str = "usage: fanout_bench [--quick] \
[--scenario fixed|paired|saturation|idle|redis|all] \
[--clients N[,N...]] [--duration SECS] [--rate MSG_PER_S] [--burst N] [--capacity EVENTS] \
[--pairs N] [--window SECS] \
[--sources K] [--svg PATH] [--step SECS] [--start-rate MSG_PER_S] [--in-process] \
[--redis-url URL] [--instances N] [--redis-clients N] [--redis-rate MSG_PER_S] \
[--publish-via all|first] [--repeat N]";

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        scenario: Scenario::All,
        clients: vec![1_000, 10_000],
        duration: Duration::from_secs(10),
        rate: 50,
        burst: 16,
        capacity: 1024,
        sources: 1,
        svg: None,
        quick: false,
        in_process: false,
        step: Duration::from_secs(3),
        start_rate: 500,
        repeat: 1,
        pairs: 12,
        window: Duration::from_secs(2),
        redis: RedisOptions {
            url: "redis://127.0.0.1:6379".to_owned(),
            instances: 2,
            clients: 100,
            rate: 1_000,
            publish_via_all: true,
        },
    };
    let mut clients = None;
    let mut redis_clients = None;
    let mut duration = None;
    let mut step = None;
    let mut window = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || iter.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--in-process" => options.in_process = true,
            "--scenario" => {
                options.scenario = match value()?.as_str() {
                    "fixed" => Scenario::Fixed,
                    "paired" => Scenario::Paired,
                    "saturation" => Scenario::Saturation,
                    "idle" => Scenario::Idle,
                    "redis" => Scenario::Redis,
                    "all" => Scenario::All,
                    other => return Err(format!("unknown scenario {other:?}")),
                }
            }
            "--clients" => {
                let list = value()?
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse::<usize>()
                            .map_err(|e| format!("--clients: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if list.is_empty() || list.contains(&0) {
                    return Err("--clients needs positive numbers".into());
                }
                clients = Some(list);
            }
            "--duration" => {
                let secs: f64 = value()?.parse().map_err(|e| format!("--duration: {e}"))?;
                if !(0.1..=600.0).contains(&secs) {
                    return Err("--duration must be between 0.1 and 600 seconds".into());
                }
                duration = Some(Duration::from_secs_f64(secs));
            }
            "--rate" => {
                options.rate = value()?.parse().map_err(|e| format!("--rate: {e}"))?;
                if options.rate == 0 || options.rate > 100_000 {
                    return Err("--rate must be between 1 and 100000".into());
                }
            }
            "--burst" => {
                options.burst = value()?.parse().map_err(|e| format!("--burst: {e}"))?;
                options.burst = options.burst.clamp(1, 10_000);
            }
            "--capacity" => {
                options.capacity = value()?.parse().map_err(|e| format!("--capacity: {e}"))?;
                options.capacity = options.capacity.clamp(1, 1 << 20);
            }
            "--sources" => {
                options.sources = value()?.parse().map_err(|e| format!("--sources: {e}"))?;
                options.sources = options.sources.clamp(1, 250);
            }
            "--svg" => options.svg = Some(PathBuf::from(value()?)),
            "--step" => {
                let secs: f64 = value()?.parse().map_err(|e| format!("--step: {e}"))?;
                if !(0.1..=60.0).contains(&secs) {
                    return Err("--step must be between 0.1 and 60 seconds".into());
                }
                step = Some(Duration::from_secs_f64(secs));
            }
            "--start-rate" => {
                options.start_rate = value()?.parse().map_err(|e| format!("--start-rate: {e}"))?;
                options.start_rate = options.start_rate.clamp(1, 100_000);
            }
            "--pairs" => {
                options.pairs = value()?.parse().map_err(|e| format!("--pairs: {e}"))?;
                if !(1..=100).contains(&options.pairs) {
                    return Err("--pairs must be between 1 and 100".into());
                }
            }
            "--window" => {
                let secs: f64 = value()?.parse().map_err(|e| format!("--window: {e}"))?;
                if !(0.1..=60.0).contains(&secs) {
                    return Err("--window must be between 0.1 and 60 seconds".into());
                }
                window = Some(Duration::from_secs_f64(secs));
            }
            "--repeat" => {
                options.repeat = value()?.parse().map_err(|e| format!("--repeat: {e}"))?;
                if !(1..=25).contains(&options.repeat) {
                    return Err("--repeat must be between 1 and 25".into());
                }
            }
            "--redis-url" => options.redis.url = value()?,
            "--instances" => {
                options.redis.instances =
                    value()?.parse().map_err(|e| format!("--instances: {e}"))?;
                if !(1..=26).contains(&options.redis.instances) {
                    return Err("--instances must be between 1 and 26".into());
                }
            }
            "--redis-clients" => {
                let n: usize = value()?
                    .parse()
                    .map_err(|e| format!("--redis-clients: {e}"))?;
                if n == 0 {
                    return Err("--redis-clients needs a positive number".into());
                }
                redis_clients = Some(n);
            }
            "--redis-rate" => {
                options.redis.rate = value()?.parse().map_err(|e| format!("--redis-rate: {e}"))?;
                if options.redis.rate == 0 || options.redis.rate > 100_000 {
                    return Err("--redis-rate must be between 1 and 100000".into());
                }
            }
            "--publish-via" => {
                options.redis.publish_via_all = match value()?.as_str() {
                    "all" => true,
                    "first" => false,
                    other => return Err(format!("--publish-via: all or first, not {other:?}")),
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if options.quick {
        options.clients = vec![20, 50];
        options.duration = Duration::from_secs(1);
        options.pairs = 2;
        options.window = Duration::from_millis(500);
        options.step = Duration::from_millis(500);
        options.start_rate = 200;
        options.redis.clients = 10;
    }
    if let Some(n) = redis_clients {
        options.redis.clients = n;
    }
    if let Some(step) = step {
        options.step = step;
    }
    if let Some(window) = window {
        options.window = window;
    }
    if let Some(clients) = clients {
        options.clients = clients;
    }
    if let Some(duration) = duration {
        options.duration = duration;
    }
    options.clients.sort_unstable();
    options.clients.dedup();
    Ok(options)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Raises the soft open-file limit to the hard one; returns the limit now in force.
fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

fn plan(options: &Options, clients: usize) -> ClientPlan {
    let sources = if options.sources > 1 {
        (0..options.sources)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8)))
            .collect()
    } else {
        Vec::new()
    };
    ClientPlan {
        clients,
        sources,
        opening: 256,
        connect_timeout: Duration::from_secs(60),
    }
}

/// Runs one scenario against a fresh server of each kind, tower-sse first unless
/// `axum_first`, and stops each server after its run; returns (tower-sse, axum).
async fn both<F>(
    capacity: usize,
    in_process: bool,
    axum_first: bool,
    mut run: F,
) -> Result<(Outcome, Outcome), Error>
where
    F: AsyncFnMut(&mut ServerHandle, Kind) -> std::io::Result<Outcome>,
{
    let order = if axum_first {
        [Kind::Axum, Kind::Tower]
    } else {
        [Kind::Tower, Kind::Axum]
    };
    let mut outcomes = Vec::new();
    for kind in order {
        let mut server = if in_process {
            ServerHandle::in_process(kind, capacity, None).await?
        } else {
            ServerHandle::spawn_child(kind, capacity, None).await?
        };
        if let Some(pid) = server.pid() {
            eprintln!("  {:<9} server pid {pid} on {}", kind.name(), server.addr());
        }
        let outcome = run(&mut server, kind).await;
        server.stop().await;
        let outcome = outcome?;
        eprintln!(
            "  {:<9} {} clients: connected {}, delivered {}/{}, lost {}, p99 {:?} us, cpu {:?} s",
            outcome.kind.name(),
            outcome.clients,
            outcome.connected,
            outcome.delivered,
            outcome.expected,
            outcome.lost,
            outcome.p99_us,
            outcome.cpu_seconds,
        );
        outcomes.push(outcome);
        // Let the closed connections' sockets and the CPU settle before the next server.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut tower = None;
    let mut axum = None;
    for outcome in outcomes {
        match outcome.kind {
            Kind::Tower => tower = Some(outcome),
            Kind::Axum => axum = Some(outcome),
        }
    }
    Ok((
        tower.ok_or("no tower-sse outcome")?,
        axum.ok_or("no axum outcome")?,
    ))
}

async fn run(options: Options) -> Result<(), Error> {
    let fd_limit = raise_fd_limit();
    let largest = options.clients.iter().copied().max().unwrap_or(0);
    eprintln!(
        "fanout_bench: open-file limit {fd_limit}; {} cores; clients {:?}; duration {:?}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        options.clients,
        options.duration
    );
    if (largest as u64) + 64 > fd_limit {
        eprintln!(
            "warning: {largest} clients need more open files than the limit {fd_limit} \
             (check `ulimit -Hn`); connections beyond it will fail and count as lost"
        );
    }

    let mut markdown = String::from("## SSE fan-out: tower-sse vs axum (127.0.0.1)\n\n");
    let _ = std::fmt::Write::write_fmt(
        &mut markdown,
        format_args!(
            "Machine: {} cores, shared by the server and the clients (client load competes \
             with the server). Ring capacity {} events for both.\n\n",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            options.capacity
        ),
    );
    let want = |s: Scenario| options.scenario == s || options.scenario == Scenario::All;

    let mut fixed_points = Vec::new();
    if want(Scenario::Fixed) {
        for &clients in &options.clients {
            eprintln!("fixed rate: {clients} clients, {} msg/s", options.rate);
            let plan = plan(&options, clients);
            let publish = Publish::new(options.rate, options.duration, 1);
            let mut rounds = Vec::new();
            for round in 0..options.repeat {
                if options.repeat > 1 {
                    eprintln!("  round {} of {}", round + 1, options.repeat);
                }
                let axum_first = round % 2 == 1;
                let pair = both(
                    options.capacity,
                    options.in_process,
                    axum_first,
                    async |server, kind| scenario::fanout(server, kind, &plan, publish, true).await,
                )
                .await?;
                rounds.push((pair, axum_first));
            }
            let median = report::median_round(&rounds);
            let (tower, axum) = &rounds[median].0;
            markdown += &report::fixed(tower, axum, options.rate);
            if options.repeat > 1 {
                markdown += &report::rounds(&rounds, median);
            }
            let pair = rounds.swap_remove(median).0;
            fixed_points.push(pair);
        }
        let points: Vec<(&Outcome, &Outcome)> = fixed_points.iter().map(|(t, a)| (t, a)).collect();
        let svg = report::latency_svg(&points, options.rate);
        let dir = target_dir().join("fanout");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("latency.svg"), &svg)?;
        eprintln!("wrote {}", dir.join("latency.svg").display());
        if let Some(path) = &options.svg {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, &svg)?;
            eprintln!("wrote {}", path.display());
        }
    }

    if want(Scenario::Paired) {
        let clients = options.clients[0];
        eprintln!(
            "paired: {clients} clients on each server, {} msg/s, {} pairs of {:?} windows",
            options.rate, options.pairs, options.window
        );
        let plan = plan(&options, clients);
        let start = |kind| async move {
            if options.in_process {
                ServerHandle::in_process(kind, options.capacity, None).await
            } else {
                ServerHandle::spawn_child(kind, options.capacity, None).await
            }
        };
        let mut tower = start(Kind::Tower).await?;
        let mut axum = start(Kind::Axum).await?;
        let run = paired::run(
            &mut tower,
            &mut axum,
            &plan,
            options.rate,
            options.window,
            options.pairs,
        )
        .await;
        tower.stop().await;
        axum.stop().await;
        let run = run?;
        eprintln!(
            "  ratio over all windows {:?}; pair ratios {:?}",
            run.ratio(),
            run.pair_ratios()
        );
        markdown += &paired::report(&run);
    }

    if want(Scenario::Saturation) {
        let clients = options.clients[0];
        eprintln!("saturation: {clients} clients");
        let plan = plan(&options, clients);
        let publish = Publish::new(0, options.duration, options.burst);
        let (tower, axum) = both(
            options.capacity,
            options.in_process,
            false,
            async |server, kind| scenario::fanout(server, kind, &plan, publish, false).await,
        )
        .await?;
        markdown += &report::saturation(&tower, &axum, options.burst);

        eprintln!("saturation: highest zero-loss rate, {clients} clients");
        let mut searches = Vec::new();
        for kind in [Kind::Tower, Kind::Axum] {
            let (capacity, in_process) = (options.capacity, options.in_process);
            let new_server = || async move {
                if in_process {
                    ServerHandle::in_process(kind, capacity, None).await
                } else {
                    ServerHandle::spawn_child(kind, capacity, None).await
                }
            };
            let search = scenario::max_rate(
                new_server,
                kind,
                &plan,
                options.start_rate,
                MAX_RATE,
                options.step,
                3,
            )
            .await?;
            searches.push(search);
        }
        let axum = searches.pop().ok_or("no axum search")?;
        let tower = searches.pop().ok_or("no tower-sse search")?;
        markdown += &report::max_rate(&tower, &axum, clients, options.step.as_secs_f64());
    }

    if want(Scenario::Idle) {
        eprintln!("idle: {largest} clients");
        let plan = plan(&options, largest);
        let settle = if options.quick {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(2)
        };
        let (tower, axum) = both(
            options.capacity,
            options.in_process,
            false,
            async |server, kind| scenario::idle(server, kind, &plan, settle).await,
        )
        .await?;
        markdown += &report::idle(&tower, &axum);
    }

    if want(Scenario::Redis) {
        markdown += &redis_scenario(&options).await?;
    }

    println!("{markdown}");
    let dir = target_dir().join("fanout");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("results.md"), &markdown)?;
    eprintln!("wrote {}", dir.join("results.md").display());
    Ok(())
}

/// The Redis scenario's markdown.
#[cfg(feature = "redis")]
async fn redis_scenario(options: &Options) -> Result<String, Error> {
    let redis = &options.redis;
    eprintln!(
        "redis: {} instances x {} clients, {} msg/s, publishing through {}",
        redis.instances,
        redis.clients,
        redis.rate,
        if redis.publish_via_all {
            "every instance in turn"
        } else {
            "the first instance"
        }
    );
    let plan = redis_mode::RedisPlan {
        url: redis.url.clone(),
        instances: redis.instances,
        clients: plan(options, redis.clients),
        rate: redis.rate,
        duration: options.duration,
        publish_via_all: redis.publish_via_all,
        capacity: options.capacity,
        in_process: options.in_process,
    };
    let run = redis_mode::run(&plan).await?;
    Ok(report::redis(&run, &plan))
}

/// Without the `redis` feature: a note in place of the Redis scenario.
#[cfg(not(feature = "redis"))]
async fn redis_scenario(_options: &Options) -> Result<String, Error> {
    eprintln!("redis: skipped, {NO_REDIS}");
    Ok(format!("### Redis\n\nNot run: {NO_REDIS}.\n\n"))
}

/// Why the Redis scenario cannot run in this build.
#[cfg(not(feature = "redis"))]
const NO_REDIS: &str = "this build has no `redis` feature; run it with \
`cargo run --release --features redis --example fanout_bench -- --scenario redis`";

/// Child mode: `--serve tower|axum [--capacity N] [--redis URL PREFIX]`.
fn serve(args: &[String]) -> ! {
    let kind = args.first().and_then(|k| Kind::parse(k));
    let Some(kind) = kind else {
        eprintln!("--serve needs tower or axum");
        std::process::exit(2);
    };
    let mut capacity = 1024;
    let mut redis = None;
    let mut rest = args[1..].iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--capacity" => {
                capacity = rest.next().and_then(|c| c.parse().ok()).unwrap_or(1024);
            }
            "--redis" => match (rest.next(), rest.next()) {
                (Some(url), Some(prefix)) => {
                    redis = Some(server::RedisTarget {
                        url: url.clone(),
                        prefix: prefix.clone(),
                    });
                }
                _ => {
                    eprintln!("--redis needs a URL and a key prefix");
                    std::process::exit(2);
                }
            },
            other => {
                eprintln!("--serve: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    raise_fd_limit();
    if let Err(err) = control::serve_child(kind, capacity, redis) {
        eprintln!("server: {err}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();

    if args.first().map(String::as_str) == Some("--serve") {
        serve(&args[1..]);
    }

    let options = match parse_options(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    #[cfg(not(feature = "redis"))]
    if options.scenario == Scenario::Redis {
        eprintln!("fanout_bench: the redis scenario cannot run: {NO_REDIS}");
        std::process::exit(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("runtime: {err}");
            std::process::exit(1);
        }
    };
    if let Err(err) = runtime.block_on(run(options)) {
        eprintln!("fanout_bench: {err}");
        std::process::exit(1);
    }
}
