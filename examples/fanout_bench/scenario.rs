//! One measured run: open the clients, publish, wait for delivery, collect the figures.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::client::{self, Shared, Target};
use crate::control::ServerHandle;
use crate::procfs;
use crate::server::{self, Kind, Publish, Published, ServerStats};

/// How clients are opened.
#[derive(Clone, Debug)]
pub struct ClientPlan {
    /// How many.
    pub clients: usize,
    /// Source addresses to spread them over (empty: the system's choice).
    pub sources: Vec<IpAddr>,
    /// Connections being opened at the same time.
    pub opening: usize,
    /// How long to wait for all of them to be subscribed.
    pub connect_timeout: Duration,
}

/// How a run measures and publishes, beyond the [`ClientPlan`].
#[derive(Clone, Copy, Debug)]
pub struct Measure {
    /// Record publish-to-receipt latency.
    pub latency: bool,
    /// Clients track every sequence number, so messages may arrive out of order
    /// ([`Target::exact`](crate::client::Target::exact)).
    pub exact: bool,
    /// How many of the servers publish: the first ones, taking turns in one schedule.
    pub publishers: usize,
}

/// The figures of one run of one server, or of several instances of one hub.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Which server.
    pub kind: Kind,
    /// Server processes (instances) in the run.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub instances: usize,
    /// Clients started, on all instances.
    pub clients: usize,
    /// Clients that got their response (subscribed) before publishing began.
    pub connected: u64,
    /// What the publishers did together (messages added up, the longest time).
    pub published: Published,
    /// Messages published through each instance, in order.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub published_by: Vec<u64>,
    /// Deliveries expected: every client gets every message.
    pub expected: u64,
    /// Distinct deliveries counted by the clients.
    pub delivered: u64,
    /// `expected - delivered`.
    pub lost: u64,
    /// Deliveries of a message the client already had.
    pub duplicates: u64,
    /// Latency percentiles in microseconds (fixed-rate runs).
    pub p50_us: Option<u64>,
    /// 99th percentile.
    pub p99_us: Option<u64>,
    /// Largest latency.
    pub max_us: Option<u64>,
    /// Server CPU seconds from the first publish to the end of delivery (child process only).
    pub cpu_seconds: Option<f64>,
    /// The part of `cpu_seconds` spent in the server process itself (not in the kernel).
    pub user_cpu_seconds: Option<f64>,
    /// Write system calls the server made over the same time (its socket writes).
    pub write_calls: Option<u64>,
    /// CPU seconds of this (the clients') process over the same time.
    pub client_cpu_seconds: Option<f64>,
    /// Cores used by other processes of the machine over the same time (a busy machine makes
    /// every figure worse).
    pub other_load_cores: Option<f64>,
    /// Seconds from the first publish to the last delivery.
    pub delivery_seconds: f64,
    /// Client reconnections during the run.
    pub reconnects: u64,
    /// Failed connects or broken streams.
    pub errors: u64,
    /// `reset` markers received.
    pub resets: u64,
    /// Server counters at the end.
    pub server: ServerStats,
    /// Server memory before the clients connected.
    pub rss_before: Option<u64>,
    /// Server memory with every client connected and idle (idle runs) or at the end.
    pub rss_after: Option<u64>,
}

impl Outcome {
    /// Server CPU microseconds per delivered message.
    pub fn cpu_per_message_us(&self) -> Option<f64> {
        let cpu = self.cpu_seconds?;
        (self.delivered > 0).then(|| cpu * 1e6 / self.delivered as f64)
    }

    /// Server CPU microseconds per delivered message spent in the server process itself.
    pub fn user_cpu_per_message_us(&self) -> Option<f64> {
        let cpu = self.user_cpu_seconds?;
        (self.delivered > 0).then(|| cpu * 1e6 / self.delivered as f64)
    }

    /// Server write system calls per delivered message.
    pub fn writes_per_message(&self) -> Option<f64> {
        let writes = self.write_calls? as f64;
        (self.delivered > 0).then(|| writes / self.delivered as f64)
    }

    /// Delivered messages per second, over the delivery time.
    pub fn delivered_per_second(&self) -> f64 {
        if self.delivery_seconds > 0.0 {
            self.delivered as f64 / self.delivery_seconds
        } else {
            0.0
        }
    }

    /// Server memory per open connection.
    pub fn bytes_per_connection(&self) -> Option<f64> {
        let (before, after) = (self.rss_before?, self.rss_after?);
        (self.connected > 0).then(|| (after as f64 - before as f64) / self.connected as f64)
    }
}

/// A reading of the machine's and this process's CPU time.
struct Load {
    at: Instant,
    machine: Option<f64>,
    own: Option<f64>,
}

/// CPU used between two readings.
struct LoadDelta {
    client_cpu_seconds: Option<f64>,
    other_cores: Option<f64>,
}

impl Load {
    fn now() -> Load {
        Load {
            at: Instant::now(),
            machine: procfs::machine_busy_seconds(),
            own: procfs::cpu_seconds(std::process::id()),
        }
    }

    /// What was used since `start`; `server_cpu` is the server's share (if it is a child).
    fn since(&self, start: &Load, server_cpu: Option<f64>) -> LoadDelta {
        let wall = self.at.duration_since(start.at).as_secs_f64();
        let own = self.own.zip(start.own).map(|(b, a)| b - a);
        let machine = self.machine.zip(start.machine).map(|(b, a)| b - a);
        let other = match (machine, own, server_cpu) {
            (Some(m), Some(o), Some(s)) if wall > 0.0 => Some(((m - o - s) / wall).max(0.0)),
            _ => None,
        };
        LoadDelta {
            client_cpu_seconds: own,
            other_cores: other,
        }
    }
}

/// Clients opened by [`open`].
pub struct Clients {
    /// Their shared counters.
    pub shared: Arc<Shared>,
    stop: CancellationToken,
    handles: Vec<tokio::task::JoinHandle<client::ClientResult>>,
    /// How many were subscribed when [`open`] returned.
    pub connected: u64,
}

/// Opens `plan.clients` clients on each of `addrs` and waits (bounded) until they are all
/// subscribed.
pub async fn open(addrs: &[SocketAddr], plan: &ClientPlan, measure: Measure) -> Clients {
    let shared = Arc::new(Shared::default());
    let stop = CancellationToken::new();
    let mut handles = Vec::new();
    for &addr in addrs {
        let target = Target {
            addr,
            sources: plan.sources.clone(),
            record_latency: measure.latency,
            exact: measure.exact,
        };
        handles.extend(client::spawn_clients(
            &target,
            plan.clients,
            &shared,
            &stop,
            plan.opening,
        ));
    }
    let total = plan.clients * addrs.len();
    let deadline = Instant::now() + plan.connect_timeout;
    while (shared.ready.load(Ordering::Relaxed) as usize) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = shared.ready.load(Ordering::Relaxed);
    Clients {
        shared,
        stop,
        handles,
        connected,
    }
}

/// Stops the clients and adds up what they received.
pub async fn close(clients: Clients) -> u64 {
    clients.stop.cancel();
    let mut received = 0;
    for handle in clients.handles {
        if let Ok(Ok(result)) = tokio::time::timeout(Duration::from_secs(10), handle).await {
            received += result.received;
        }
    }
    received
}

/// Waits until every expected delivery arrived, or nothing arrived for `quiet`, or `limit`
/// passed.
pub async fn wait_for_delivery(shared: &Shared, expected: u64, quiet: Duration, limit: Duration) {
    let start = Instant::now();
    let mut last = shared.delivered.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    loop {
        let now = shared.delivered.load(Ordering::Relaxed);
        if now >= expected || start.elapsed() > limit || last_change.elapsed() > quiet {
            return;
        }
        if now != last {
            last = now;
            last_change = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every client follows one topic; the server publishes as `publish` says; every client
/// should receive every message.
pub async fn fanout(
    server: &mut ServerHandle,
    kind: Kind,
    plan: &ClientPlan,
    publish: Publish,
    record_latency: bool,
) -> io::Result<Outcome> {
    let measure = Measure {
        latency: record_latency,
        exact: false,
        publishers: 1,
    };
    fanout_many(std::slice::from_mut(server), kind, plan, publish, measure).await
}

/// How far ahead of the first publish the publishers of several servers are told when to
/// start, so that they all have the command by then.
const SCHEDULE_LEAD: Duration = Duration::from_millis(200);

/// [`fanout`] over several servers, instances of one hub: `plan.clients` clients on each, every
/// client follows the topic on its own server; the first `measure.publishers` servers publish
/// in turn in one schedule of `publish.rate` messages per second (message 1 through the first,
/// 2 through the second, ...). Every client should receive every message, once.
pub async fn fanout_many(
    servers: &mut [ServerHandle],
    kind: Kind,
    plan: &ClientPlan,
    publish: Publish,
    measure: Measure,
) -> io::Result<Outcome> {
    if servers.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no server"));
    }
    let publishers = measure.publishers.clamp(1, servers.len());
    let addrs: Vec<SocketAddr> = servers.iter().map(ServerHandle::addr).collect();
    let rss_before = sum(servers.iter().map(ServerHandle::rss_bytes));
    let clients = open(&addrs, plan, measure).await;

    let cpu_start = sum(servers.iter().map(ServerHandle::cpu_seconds));
    let user_start = sum(servers.iter().map(|s| s.cpu_times().map(|t| t.user)));
    let writes_start = sum(servers.iter().map(ServerHandle::write_calls));
    let load_start = Load::now();
    let start_ns = if publishers > 1 {
        server::now_ns() + SCHEDULE_LEAD.as_nanos() as u64
    } else {
        server::now_ns()
    };
    let replies = futures::future::join_all(servers.iter_mut().take(publishers).enumerate().map(
        |(slot, server)| {
            server.publish(Publish {
                slot: slot as u32,
                stride: publishers as u32,
                start_ns: if publishers > 1 { start_ns } else { 0 },
                ..publish
            })
        },
    ))
    .await;
    let mut published = Published::default();
    let mut published_by = vec![0; servers.len()];
    for (i, reply) in replies.into_iter().enumerate() {
        let reply = reply?;
        published.count += reply.count;
        published.elapsed = published.elapsed.max(reply.elapsed);
        published_by[i] = reply.count;
    }
    let total_clients = (plan.clients * servers.len()) as u64;
    let expected = published.count * total_clients;
    wait_for_delivery(
        &clients.shared,
        expected,
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
    .await;
    let cpu_end = sum(servers.iter().map(ServerHandle::cpu_seconds));
    let server_cpu = cpu_start.zip(cpu_end).map(|(a, b)| b - a);
    let user_end = sum(servers.iter().map(|s| s.cpu_times().map(|t| t.user)));
    let writes_end = sum(servers.iter().map(ServerHandle::write_calls));
    let load = Load::now().since(&load_start, server_cpu);
    let mut stats = ServerStats::default();
    for server in servers.iter_mut() {
        let one = server.stats().await?;
        stats.lagged += one.lagged;
        stats.subscribers += one.subscribers;
    }
    let rss_after = sum(servers.iter().map(ServerHandle::rss_bytes));

    let shared = Arc::clone(&clients.shared);
    let connected = clients.connected;
    let delivered = close(clients).await;
    let last_ns = shared.last_delivery_ns.load(Ordering::Relaxed);
    Ok(Outcome {
        kind,
        instances: servers.len(),
        clients: total_clients as usize,
        connected,
        published,
        published_by,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        duplicates: shared.duplicates.load(Ordering::Relaxed),
        p50_us: shared.latency.quantile(0.50),
        p99_us: shared.latency.quantile(0.99),
        max_us: (shared.latency.count() > 0).then(|| shared.latency.max()),
        cpu_seconds: server_cpu,
        user_cpu_seconds: user_start.zip(user_end).map(|(a, b)| b - a),
        write_calls: writes_start
            .zip(writes_end)
            .map(|(a, b)| b.saturating_sub(a)),
        client_cpu_seconds: load.client_cpu_seconds,
        other_load_cores: load.other_cores,
        delivery_seconds: last_ns.saturating_sub(start_ns) as f64 / 1e9,
        reconnects: shared.reconnects.load(Ordering::Relaxed),
        errors: shared.errors.load(Ordering::Relaxed),
        resets: shared.resets.load(Ordering::Relaxed),
        server: stats,
        rss_before,
        rss_after,
    })
}

/// The sum of the values, if every one is known.
fn sum<T: std::iter::Sum<T>>(values: impl Iterator<Item = Option<T>>) -> Option<T> {
    values.sum()
}

/// Every client connects and stays idle; the server's memory is read before and after.
pub async fn idle(
    server: &mut ServerHandle,
    kind: Kind,
    plan: &ClientPlan,
    settle: Duration,
) -> io::Result<Outcome> {
    let rss_before = server.rss_bytes();
    let measure = Measure {
        latency: false,
        exact: false,
        publishers: 1,
    };
    let clients = open(&[server.addr()], plan, measure).await;
    tokio::time::sleep(settle).await;
    let rss_after = server.rss_bytes();
    let stats = server.stats().await?;
    let shared = Arc::clone(&clients.shared);
    let connected = clients.connected;
    close(clients).await;
    Ok(Outcome {
        kind,
        instances: 1,
        clients: plan.clients,
        connected,
        published: Published::default(),
        published_by: vec![0],
        expected: 0,
        delivered: 0,
        lost: 0,
        duplicates: shared.duplicates.load(Ordering::Relaxed),
        p50_us: None,
        p99_us: None,
        max_us: None,
        cpu_seconds: None,
        user_cpu_seconds: None,
        write_calls: None,
        client_cpu_seconds: None,
        other_load_cores: None,
        delivery_seconds: 0.0,
        reconnects: shared.reconnects.load(Ordering::Relaxed),
        errors: shared.errors.load(Ordering::Relaxed),
        resets: shared.resets.load(Ordering::Relaxed),
        server: stats,
        rss_before,
        rss_after,
    })
}

/// One step of the search for the highest rate every client keeps up with.
#[derive(Clone, Debug)]
pub struct RateStep {
    /// Offered rate, messages per second.
    pub rate: u32,
    /// How long the publisher was asked to publish.
    pub planned: Duration,
    /// The run at that rate.
    pub outcome: Outcome,
    /// Whether the rate was sustained: every client connected and got every message once, the
    /// publisher kept its pace, and delivery finished within a second of the last publish.
    pub sustained: bool,
}

/// The result of [`max_rate`].
#[derive(Clone, Debug, Default)]
pub struct RateSearch {
    /// Every step, in the order run.
    pub steps: Vec<RateStep>,
}

impl RateSearch {
    /// The highest sustained step.
    pub fn best(&self) -> Option<&RateStep> {
        self.steps
            .iter()
            .filter(|s| s.sustained)
            .max_by_key(|s| s.rate)
    }

    /// The lowest rate that was not sustained.
    pub fn first_failure(&self) -> Option<&RateStep> {
        self.steps
            .iter()
            .filter(|s| !s.sustained)
            .min_by_key(|s| s.rate)
    }
}

impl RateStep {
    /// Why the step was not sustained (empty when it was).
    pub fn failure(&self) -> String {
        failure(&self.outcome, self.planned, self.rate).join(", ")
    }
}

/// The reasons a run at a fixed rate was not sustained (see [`RateStep::sustained`]); empty
/// when it was. `planned` is how long the publisher was asked to publish.
fn failure(outcome: &Outcome, planned: Duration, rate: u32) -> Vec<String> {
    let publish_seconds = outcome.published.elapsed.as_secs_f64();
    let drain = outcome.delivery_seconds - publish_seconds;
    let mut reasons = Vec::new();
    if outcome.connected < outcome.clients as u64 {
        reasons.push(format!(
            "{} clients not connected",
            outcome.clients as u64 - outcome.connected
        ));
    }
    if outcome.lost > 0 {
        reasons.push(format!("lost {}", outcome.lost));
    }
    if outcome.duplicates > 0 {
        reasons.push(format!("{} duplicates", outcome.duplicates));
    }
    if outcome.resets > 0 {
        reasons.push(format!("{} resets", outcome.resets));
    }
    if publish_seconds > planned.as_secs_f64() * 1.1 + 0.05 {
        reasons.push(format!(
            "publisher behind ({:.0} msg/s of {rate})",
            outcome.published.count as f64 / publish_seconds
        ));
    }
    if drain > 1.0 {
        reasons.push(format!(
            "delivery ended {drain:.2} s after the last publish"
        ));
    }
    reasons
}

/// Searches the highest publish rate that every client keeps up with, with zero loss: the rate
/// doubles from `start` until a step fails, then the interval is halved `refine` times. Each
/// step is a fresh server (from `new_server`) and fresh clients, publishing for `step`.
pub async fn max_rate<F, Fut>(
    mut new_server: F,
    kind: Kind,
    plan: &ClientPlan,
    start: u32,
    limit: u32,
    step: Duration,
    refine: u32,
) -> io::Result<RateSearch>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = io::Result<ServerHandle>>,
{
    let mut search = RateSearch::default();
    let mut run = async |rate: u32, search: &mut RateSearch| -> io::Result<bool> {
        let publish = Publish::new(rate, step, 1);
        let mut server = new_server().await?;
        let outcome = fanout(&mut server, kind, plan, publish, true).await;
        server.stop().await;
        let outcome = outcome?;
        let reasons = failure(&outcome, publish.duration, rate);
        let ok = reasons.is_empty();
        eprintln!(
            "    {:<9} {rate:>7} msg/s: {}",
            kind.name(),
            if ok {
                "sustained".to_owned()
            } else {
                format!("not sustained: {}", reasons.join(", "))
            }
        );
        search.steps.push(RateStep {
            rate,
            planned: step,
            outcome,
            sustained: ok,
        });
        Ok(ok)
    };

    let mut rate = start.max(1);
    let (mut low, mut high) = (None::<u32>, None::<u32>);
    loop {
        if run(rate, &mut search).await? {
            low = Some(rate);
            if rate >= limit {
                break;
            }
            rate = rate.saturating_mul(2).min(limit);
        } else {
            high = Some(rate);
            break;
        }
    }
    // Even the start failed: go down instead.
    while low.is_none() {
        let Some(h) = high else { break };
        if h <= 1 {
            break;
        }
        let next = h / 2;
        if run(next, &mut search).await? {
            low = Some(next);
        } else {
            high = Some(next);
        }
    }
    for _ in 0..refine {
        let (Some(l), Some(h)) = (low, high) else {
            break;
        };
        let mid = l + (h - l) / 2;
        if mid <= l || mid >= h {
            break;
        }
        if run(mid, &mut search).await? {
            low = Some(mid);
        } else {
            high = Some(mid);
        }
    }
    Ok(search)
}
