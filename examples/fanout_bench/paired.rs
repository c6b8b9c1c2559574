//! The paired CPU measurement: both servers run at once, each with its own clients, and they
//! publish in turn, in short windows (tower-sse, axum, then axum, tower-sse, and so on), so
//! both are measured on the same machine at nearly the same time.
//!
//! On a shared machine the CPU a server needs per message moves by ten percent or more from
//! one ten-second run to the next (other tenants, cache and frequency changes). Runs of one
//! server after the other see different machines, and their ratio moves as much. Here each
//! pair of windows is a few seconds long and the order alternates, so slow drifts reach both
//! servers alike. The ratio of the totals over all windows is the figure; the spread of the
//! pairs' ratios shows how much it can be trusted.
//!
//! Only the publishing server does work in a window (the other holds idle connections, with a
//! keep-alive every 15 s), and only its CPU is counted for that window.

use std::fmt::Write as _;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::control::ServerHandle;
use crate::report;
use crate::scenario::{self, ClientPlan, Measure};
use crate::server::{Kind, Publish};

/// One publishing window of one server.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Which server published.
    pub kind: Kind,
    /// Its CPU seconds over the window, user and system (`None` for a server in this
    /// process, whose CPU cannot be told from the clients').
    pub cpu: Option<f64>,
    /// The part of `cpu` in the server process itself.
    pub user: Option<f64>,
    /// Distinct deliveries its clients counted.
    pub delivered: u64,
    /// Deliveries expected: every client of the server gets every message.
    pub expected: u64,
}

/// What [`run`] measured.
#[derive(Clone, Debug)]
pub struct Paired {
    /// Clients on each server.
    pub clients: usize,
    /// Clients of both servers that were subscribed before the first window.
    pub connected: u64,
    /// Messages per second within a window.
    pub rate: u32,
    /// How long each window published.
    pub window: Duration,
    /// The windows in the order run; windows `2k` and `2k + 1` are pair `k`.
    pub windows: Vec<Window>,
    /// Client reconnections over the whole run.
    pub reconnects: u64,
    /// Deliveries of a message a client already had, over the whole run.
    pub duplicates: u64,
}

/// The order of the servers in pair `k`: tower-sse first in even pairs, axum first in odd
/// ones (ABBA), so neither is always the one that runs right after the other.
fn pair_order(k: usize) -> [Kind; 2] {
    if k % 2 == 0 {
        [Kind::Tower, Kind::Axum]
    } else {
        [Kind::Axum, Kind::Tower]
    }
}

/// Connects `plan.clients` clients to each server, then runs `pairs` pairs of windows of
/// `window` at `rate` messages per second; each window waits for its deliveries (bounded)
/// before the next starts.
pub async fn run(
    tower: &mut ServerHandle,
    axum: &mut ServerHandle,
    plan: &ClientPlan,
    rate: u32,
    window: Duration,
    pairs: usize,
) -> io::Result<Paired> {
    let measure = Measure {
        latency: false,
        exact: false,
        publishers: 1,
    };
    let clients = scenario::open(&[tower.addr(), axum.addr()], plan, measure).await;
    let shared = clients.shared.clone();
    let connected = clients.connected;
    // Each server continues its own sequence from window to window.
    let mut seq_base = [0u64; 2];
    let mut windows = Vec::with_capacity(pairs * 2);
    for k in 0..pairs {
        for kind in pair_order(k) {
            let (server, base) = match kind {
                Kind::Tower => (&mut *tower, &mut seq_base[0]),
                Kind::Axum => (&mut *axum, &mut seq_base[1]),
            };
            let before = server.cpu_times();
            let delivered_before = shared.delivered.load(Ordering::Relaxed);
            let publish = Publish {
                seq_base: *base,
                ..Publish::new(rate, window, 1)
            };
            let published = server.publish(publish).await?.count;
            *base += published;
            let expected = published * plan.clients as u64;
            scenario::wait_for_delivery(
                &shared,
                delivered_before + expected,
                Duration::from_secs(2),
                Duration::from_secs(30),
            )
            .await;
            let after = server.cpu_times();
            let spent = before.zip(after);
            windows.push(Window {
                kind,
                cpu: spent.map(|(b, a)| a.total() - b.total()),
                user: spent.map(|(b, a)| a.user - b.user),
                delivered: shared
                    .delivered
                    .load(Ordering::Relaxed)
                    .saturating_sub(delivered_before),
                expected,
            });
        }
    }
    let reconnects = shared.reconnects.load(Ordering::Relaxed);
    let duplicates = shared.duplicates.load(Ordering::Relaxed);
    scenario::close(clients).await;
    Ok(Paired {
        clients: plan.clients,
        connected,
        rate,
        window,
        windows,
        reconnects,
        duplicates,
    })
}

/// Totals of one server over its windows (CPU `None` if any window has none).
#[derive(Clone, Copy, Debug)]
struct Totals {
    cpu: Option<f64>,
    user: Option<f64>,
    delivered: u64,
    expected: u64,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            cpu: Some(0.0),
            user: Some(0.0),
            delivered: 0,
            expected: 0,
        }
    }
}

impl Totals {
    fn add(&mut self, w: &Window) {
        self.cpu = self.cpu.zip(w.cpu).map(|(a, b)| a + b);
        self.user = self.user.zip(w.user).map(|(a, b)| a + b);
        self.delivered += w.delivered;
        self.expected += w.expected;
    }

    /// CPU microseconds per delivered message.
    fn cpu_us(&self) -> Option<f64> {
        per_message_us(self.cpu, self.delivered)
    }

    /// User-space CPU microseconds per delivered message.
    fn user_us(&self) -> Option<f64> {
        per_message_us(self.user, self.delivered)
    }
}

fn per_message_us(seconds: Option<f64>, delivered: u64) -> Option<f64> {
    let seconds = seconds?;
    (delivered > 0).then(|| seconds * 1e6 / delivered as f64)
}

impl Paired {
    /// (tower-sse, axum) totals over the windows that `pick` keeps.
    fn totals(&self, pick: impl Fn(usize) -> bool) -> (Totals, Totals) {
        let mut sides = (Totals::default(), Totals::default());
        let picked = self.windows.iter().enumerate().filter(|(i, _)| pick(*i));
        for w in picked.map(|(_, w)| w) {
            match w.kind {
                Kind::Tower => sides.0.add(w),
                Kind::Axum => sides.1.add(w),
            }
        }
        sides
    }

    /// tower-sse's CPU per delivered message over axum's, over every window.
    pub fn ratio(&self) -> Option<f64> {
        let (tower, axum) = self.totals(|_| true);
        ratio(tower.cpu_us(), axum.cpu_us())
    }

    /// The same ratio for each pair of windows, in order.
    pub fn pair_ratios(&self) -> Vec<f64> {
        (0..self.windows.len() / 2)
            .filter_map(|k| {
                let (tower, axum) = self.totals(|i| i / 2 == k);
                ratio(tower.cpu_us(), axum.cpu_us())
            })
            .collect()
    }
}

fn ratio(tower: Option<f64>, axum: Option<f64>) -> Option<f64> {
    let (t, a) = (tower?, axum?);
    (a > 0.0).then(|| t / a)
}

/// The value at quantile `q` (0 to 1) of sorted `values`, by the nearest rank.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank.min(sorted.len() - 1)).copied()
}

/// The markdown section for a paired run.
pub fn report(paired: &Paired) -> String {
    let (tower, axum) = paired.totals(|_| true);
    let pairs = paired.windows.len() / 2;
    let mut out = format!(
        "### CPU per delivered message, paired: {} clients on each server, {} msg/s\n\n\
         Both servers up at once; they publish in turn in {:.1} s windows, {} pairs, the order \
         alternating (tower-sse first in even pairs). Only the publishing server's CPU counts \
         in a window.\n\n",
        paired.clients,
        paired.rate,
        paired.window.as_secs_f64(),
        pairs
    );
    let cell = |v: Option<f64>, digits: usize| v.map_or("n/a".into(), |v| format!("{v:.digits$}"));
    let rows = [
        (
            "server CPU per delivered message (µs)",
            tower.cpu_us(),
            axum.cpu_us(),
            3,
        ),
        (
            "&nbsp;&nbsp;of which in the server process (not the kernel)",
            tower.user_us(),
            axum.user_us(),
            3,
        ),
    ];
    out += "| | tower-sse | axum | ratio |\n|---|---:|---:|---:|\n";
    for (name, t, a, digits) in rows {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} |",
            cell(t, digits),
            cell(a, digits),
            cell(ratio(t, a), 2)
        );
    }
    let _ = writeln!(
        out,
        "| deliveries (received / expected) | {} / {} | {} / {} | |",
        tower.delivered, tower.expected, axum.delivered, axum.expected
    );
    let _ = writeln!(
        out,
        "| messages lost | {} | {} | |",
        tower.expected.saturating_sub(tower.delivered),
        axum.expected.saturating_sub(axum.delivered)
    );
    let _ = writeln!(
        out,
        "\nClients subscribed: {} of {}; reconnects {}; duplicate deliveries {}.\n",
        paired.connected,
        paired.clients * 2,
        paired.reconnects,
        paired.duplicates
    );
    let mut ratios = paired.pair_ratios();
    ratios.sort_by(f64::total_cmp);
    let met = ratios.iter().filter(|&&r| r <= 0.8).count();
    let fmt = |v: Option<f64>| cell(v, 2);
    let _ = writeln!(
        out,
        "Pair by pair: median ratio {} (range {} to {}, middle half {} to {}); at or under \
         0.8 in {met} of {} pairs.\n",
        fmt(quantile(&ratios, 0.5)),
        fmt(ratios.first().copied()),
        fmt(ratios.last().copied()),
        fmt(quantile(&ratios, 0.25)),
        fmt(quantile(&ratios, 0.75)),
        ratios.len()
    );
    let target = paired.ratio().map(|r| r <= 0.8);
    let _ = writeln!(
        out,
        "Target: CPU per delivered message <= 0.8x axum over all windows: {}.\n",
        report::verdict(target)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(kind: Kind, cpu: f64, delivered: u64) -> Window {
        Window {
            kind,
            cpu: Some(cpu),
            user: Some(cpu / 2.0),
            delivered,
            expected: delivered,
        }
    }

    #[test]
    fn pairs_alternate_their_order() {
        assert_eq!(pair_order(0), [Kind::Tower, Kind::Axum]);
        assert_eq!(pair_order(1), [Kind::Axum, Kind::Tower]);
        assert_eq!(pair_order(2), [Kind::Tower, Kind::Axum]);
    }

    #[test]
    fn ratios_come_from_totals_and_from_each_pair() {
        let paired = Paired {
            clients: 10,
            connected: 20,
            rate: 50,
            window: Duration::from_secs(2),
            windows: vec![
                // Pair 0: tower-sse 1 µs, axum 2 µs per message.
                window(Kind::Tower, 1.0, 1_000_000),
                window(Kind::Axum, 2.0, 1_000_000),
                // Pair 1: axum first; tower-sse 3 µs, axum 4 µs.
                window(Kind::Axum, 4.0, 1_000_000),
                window(Kind::Tower, 3.0, 1_000_000),
            ],
            reconnects: 0,
            duplicates: 0,
        };
        assert_eq!(paired.pair_ratios(), vec![0.5, 0.75]);
        // Totals: 4 s over 2 M against 6 s over 2 M.
        let total = paired.ratio().unwrap();
        assert!((total - 4.0 / 6.0).abs() < 1e-12, "{total}");
        let text = report(&paired);
        assert!(text.contains("at or under 0.8 in 2 of 2 pairs"), "{text}");
        assert!(text.contains("over all windows: met"), "{text}");
    }

    #[test]
    fn nothing_delivered_gives_no_ratio() {
        let paired = Paired {
            clients: 1,
            connected: 0,
            rate: 50,
            window: Duration::from_secs(1),
            windows: vec![window(Kind::Tower, 1.0, 0), window(Kind::Axum, 1.0, 0)],
            reconnects: 0,
            duplicates: 0,
        };
        assert_eq!(paired.ratio(), None);
        assert!(paired.pair_ratios().is_empty());
        assert!(report(&paired).contains("not measured"));
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let values = [0.6, 0.7, 0.8, 0.9, 1.0];
        assert_eq!(quantile(&values, 0.5), Some(0.8));
        assert_eq!(quantile(&values, 0.25), Some(0.7));
        assert_eq!(quantile(&values, 0.75), Some(0.9));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
