//! The results: markdown tables with both servers side by side (or, for the Redis scenario,
//! the hub over Redis beside the in-memory hub), and an SVG chart of latency against the
//! number of clients.

use std::fmt::Write as _;

use crate::scenario::{Outcome, RateSearch};

/// One table row: the metric and each server's value; the ratio is tower-sse / axum.
struct Row {
    metric: String,
    tower: Option<f64>,
    axum: Option<f64>,
    decimals: usize,
    ratio: bool,
}

fn row(metric: &str, tower: Option<f64>, axum: Option<f64>, decimals: usize, ratio: bool) -> Row {
    Row {
        metric: metric.to_owned(),
        tower,
        axum,
        decimals,
        ratio,
    }
}

/// The two outcomes (or searches) a table sets side by side.
struct Sides<'a, T>(&'a T, &'a T);

impl<T> Sides<'_, T> {
    /// A row whose values are `value` of each side.
    fn row(
        &self,
        metric: &str,
        decimals: usize,
        ratio: bool,
        value: impl Fn(&T) -> Option<f64>,
    ) -> Row {
        row(metric, value(self.0), value(self.1), decimals, ratio)
    }
}

/// The rows the fixed-rate and Redis tables open with: who connected, what was delivered and
/// how fast; `received` names the deliveries-received row.
fn delivery_rows(sides: &Sides<'_, Outcome>, received: &str) -> Vec<Row> {
    vec![
        sides.row("clients subscribed", 0, false, |o| n(o.connected)),
        sides.row("messages published", 0, false, |o| n(o.published.count)),
        sides.row("deliveries expected", 0, false, |o| n(o.expected)),
        sides.row(received, 0, false, |o| n(o.delivered)),
        sides.row("messages lost", 0, false, |o| n(o.lost)),
        sides.row("duplicate deliveries", 0, false, |o| n(o.duplicates)),
        sides.row("latency p50 (ms)", 2, true, |o| ms(o.p50_us)),
        sides.row("latency p99 (ms)", 2, true, |o| ms(o.p99_us)),
        sides.row("latency max (ms)", 2, true, |o| ms(o.max_us)),
    ]
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "n/a".to_owned(),
    }
}

fn table(rows: &[Row]) -> String {
    table_with(["tower-sse", "axum", "tower-sse / axum"], rows)
}

/// A table whose two value columns and ratio column have the given headers.
fn table_with(headers: [&str; 3], rows: &[Row]) -> String {
    let mut out = String::new();
    let [left, right, ratio] = headers;
    let _ = writeln!(out, "| metric | {left} | {right} | {ratio} |");
    out.push_str("|---|---:|---:|---:|\n");
    for r in rows {
        let ratio = match (r.ratio, r.tower, r.axum) {
            (true, Some(t), Some(a)) if a != 0.0 => format!("{:.2}", t / a),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            r.metric,
            cell(r.tower, r.decimals),
            cell(r.axum, r.decimals),
            ratio
        );
    }
    out
}

fn ms(us: Option<u64>) -> Option<f64> {
    us.map(|u| u as f64 / 1000.0)
}

fn n(v: u64) -> Option<f64> {
    Some(v as f64)
}

/// "met", "MISSED" or "not measured".
pub fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "not measured",
    }
}

/// The fixed-rate table for one number of clients.
pub fn fixed(tower: &Outcome, axum: &Outcome, rate: u32) -> String {
    let mut out = format!(
        "### Fixed rate: {} clients, one topic, {} msg/s for {:.0} s\n\n",
        tower.clients,
        rate,
        tower.published.elapsed.as_secs_f64()
    );
    let sides = Sides(tower, axum);
    let mut rows = delivery_rows(&sides, "deliveries received");
    rows.extend([
        sides.row("server CPU (s)", 2, true, |o| o.cpu_seconds),
        sides.row(
            "server CPU per delivered message (µs)",
            3,
            true,
            Outcome::cpu_per_message_us,
        ),
        sides.row(
            "server user-space CPU per delivered message (µs)",
            3,
            true,
            Outcome::user_cpu_per_message_us,
        ),
        sides.row(
            "server socket writes per delivered message",
            3,
            true,
            Outcome::writes_per_message,
        ),
        sides.row("client reconnects", 0, false, |o| n(o.reconnects)),
        sides.row("client connect/stream errors", 0, false, |o| n(o.errors)),
        sides.row("client process CPU (s)", 2, false, |o| o.client_cpu_seconds),
        sides.row("other processes' load (cores)", 2, false, |o| {
            o.other_load_cores
        }),
        sides.row("server lagged count", 0, false, |o| n(o.server.lagged)),
    ]);
    out += &table(&rows);
    let cpu = tower
        .cpu_per_message_us()
        .zip(axum.cpu_per_message_us())
        .map(|(t, a)| t <= 0.8 * a);
    let p99 = tower.p99_us.zip(axum.p99_us).map(|(t, a)| t <= a);
    let _ = writeln!(
        out,
        "\nTargets: CPU per delivered message <= 0.8x axum: {}; p99 no worse than axum: {}.\n",
        verdict(cpu),
        verdict(p99)
    );
    out
}

/// One round of a repeated fixed-rate run: (tower-sse, axum) and whether axum ran first.
pub type Round = ((Outcome, Outcome), bool);

/// `tower / axum` of one metric in one round.
fn round_ratio(round: &Round, value: impl Fn(&Outcome) -> Option<f64>) -> Option<f64> {
    let (tower, axum) = &round.0;
    let (t, a) = (value(tower)?, value(axum)?);
    (a > 0.0 && t.is_finite()).then(|| t / a)
}

fn p99_ms(o: &Outcome) -> Option<f64> {
    ms(o.p99_us)
}

/// The median of the values: of an even count, the upper middle one, the less favourable
/// to tower-sse for a tower-sse / axum ratio; `None` when empty.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// The round whose CPU-per-message ratio is the median (of an even count, the upper middle
/// one, as [`median`]); the first round when no round has the figure.
pub fn median_round(rounds: &[Round]) -> usize {
    let mut ratios: Vec<(f64, usize)> = rounds
        .iter()
        .enumerate()
        .filter_map(|(i, r)| round_ratio(r, Outcome::cpu_per_message_us).map(|v| (v, i)))
        .collect();
    ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
    ratios.get(ratios.len() / 2).map_or(0, |&(_, round)| round)
}

/// The round-by-round table of a repeated fixed-rate run, with the median and range of each
/// ratio and how many rounds met the CPU target; `median` marks the round the main table shows.
pub fn rounds(rounds: &[Round], median_index: usize) -> String {
    let mut out = format!(
        "Round by round ({} rounds, the servers' order alternating; the table above is round {}, \
         the median CPU ratio):\n\n",
        rounds.len(),
        median_index + 1
    );
    out.push_str(
        "| round | ran first | CPU / msg tower-sse (µs) | CPU / msg axum (µs) | CPU ratio \
         | user-space ratio | p99 ratio | writes / msg ratio |\n",
    );
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|\n");
    let ratio_cell = |v: Option<f64>| cell(v, 2);
    for (i, round) in rounds.iter().enumerate() {
        let (tower, axum) = &round.0;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            if round.1 { "axum" } else { "tower-sse" },
            cell(tower.cpu_per_message_us(), 3),
            cell(axum.cpu_per_message_us(), 3),
            ratio_cell(round_ratio(round, Outcome::cpu_per_message_us)),
            ratio_cell(round_ratio(round, Outcome::user_cpu_per_message_us)),
            ratio_cell(round_ratio(round, p99_ms)),
            ratio_cell(round_ratio(round, Outcome::writes_per_message)),
        );
    }
    let summary = |value: &dyn Fn(&Outcome) -> Option<f64>| {
        let values: Vec<f64> = rounds
            .iter()
            .filter_map(|r| round_ratio(r, value))
            .collect();
        let low = values.iter().copied().min_by(f64::total_cmp);
        let high = values.iter().copied().max_by(f64::total_cmp);
        match (median(values), low, high) {
            (Some(m), Some(l), Some(h)) => format!("{m:.2} (range {l:.2} to {h:.2})"),
            _ => "n/a".to_owned(),
        }
    };
    let cpu: Vec<f64> = rounds
        .iter()
        .filter_map(|r| round_ratio(r, Outcome::cpu_per_message_us))
        .collect();
    let met = cpu.iter().filter(|&&r| r <= 0.8).count();
    // The median round's CPU ratio is the median CPU ratio (`median_round` picks it so).
    let median_cpu = rounds
        .get(median_index)
        .and_then(|r| round_ratio(r, Outcome::cpu_per_message_us));
    let _ = writeln!(
        out,
        "\nMedian ratios over the rounds: CPU per delivered message {}; user-space CPU {}; \
         p99 latency {}. CPU target <= 0.8x met in {met} of {} rounds; by the median: {}.\n",
        summary(&Outcome::cpu_per_message_us),
        summary(&Outcome::user_cpu_per_message_us),
        summary(&p99_ms),
        cpu.len(),
        verdict(median_cpu.map(|m| m <= 0.8)),
    );
    out
}

/// The saturation table.
pub fn saturation(tower: &Outcome, axum: &Outcome, burst: u32) -> String {
    let mut out = format!(
        "### Unpaced: {} clients, publishing as fast as the server's scheduler lets it \
         ({burst} messages per turn, no backpressure) for {:.0} s\n\n",
        tower.clients,
        tower.published.elapsed.as_secs_f64()
    );
    let published_rate = |o: &Outcome| {
        let s = o.published.elapsed.as_secs_f64();
        (s > 0.0).then(|| o.published.count as f64 / s)
    };
    let loss_pct =
        |o: &Outcome| (o.expected > 0).then(|| o.lost as f64 * 100.0 / o.expected as f64);
    let sides = Sides(tower, axum);
    out += &table(&[
        sides.row("clients subscribed", 0, false, |o| n(o.connected)),
        sides.row("messages published", 0, true, |o| n(o.published.count)),
        sides.row("published msg/s", 0, true, published_rate),
        sides.row("delivered msg/s (all clients)", 0, true, |o| {
            Some(o.delivered_per_second())
        }),
        sides.row("deliveries received", 0, true, |o| n(o.delivered)),
        sides.row("messages lost", 0, false, |o| n(o.lost)),
        sides.row("loss (%)", 3, false, loss_pct),
        sides.row("duplicate deliveries", 0, false, |o| n(o.duplicates)),
        sides.row(
            "server CPU per delivered message (µs)",
            3,
            true,
            Outcome::cpu_per_message_us,
        ),
        sides.row("client reconnects (resume)", 0, false, |o| n(o.reconnects)),
        sides.row("reset markers (gap)", 0, false, |o| n(o.resets)),
        sides.row("client connect/stream errors", 0, false, |o| n(o.errors)),
        sides.row("server CPU (s)", 2, true, |o| o.cpu_seconds),
        sides.row("client process CPU (s)", 2, false, |o| o.client_cpu_seconds),
        sides.row("other processes' load (cores)", 2, false, |o| {
            o.other_load_cores
        }),
        sides.row("server lagged count", 0, false, |o| n(o.server.lagged)),
    ]);
    let met =
        Some(tower.delivered_per_second() >= 3.0 * axum.delivered_per_second() && tower.lost == 0);
    let _ = writeln!(
        out,
        "\nFor reference (no target): >= 3x axum's delivered msg/s with zero loss here: {}.\n",
        verdict(met)
    );
    out
}

/// The idle-memory table.
pub fn idle(tower: &Outcome, axum: &Outcome) -> String {
    let mib = |b: Option<u64>| b.map(|b| b as f64 / (1024.0 * 1024.0));
    let mut out = format!(
        "### Idle: {} open connections, nothing published\n\n",
        tower.clients
    );
    let sides = Sides(tower, axum);
    out += &table(&[
        sides.row("connections open", 0, false, |o| n(o.connected)),
        sides.row("server RSS before (MiB)", 1, false, |o| mib(o.rss_before)),
        sides.row("server RSS with connections (MiB)", 1, true, |o| {
            mib(o.rss_after)
        }),
        sides.row(
            "memory per connection (bytes)",
            0,
            true,
            Outcome::bytes_per_connection,
        ),
    ]);
    let met = tower
        .bytes_per_connection()
        .zip(axum.bytes_per_connection())
        .map(|(t, a)| t <= a);
    let _ = writeln!(
        out,
        "\nTarget: memory per connection no more than axum's: {}.\n",
        verdict(met)
    );
    out
}

/// The p99 latency the Redis scenario aims under, in milliseconds.
#[cfg(feature = "redis")]
pub const REDIS_P99_TARGET_MS: f64 = 20.0;

/// The Redis scenario's table: the hub over Redis (all instances) beside the in-memory hub.
#[cfg(feature = "redis")]
pub fn redis(run: &crate::redis_mode::RedisRun, plan: &crate::redis_mode::RedisPlan) -> String {
    let (redis, memory) = (&run.redis, &run.memory);
    let names: Vec<String> = (0..redis.instances)
        .map(|i| char::from(b'A' + (i % 26) as u8).to_string())
        .collect();
    let per_instance = redis.clients / redis.instances.max(1);
    let publishers = redis.published_by.iter().filter(|&&c| c > 0).count();
    let mut out = format!(
        "### Redis: {} instances x {per_instance} clients, one topic, {} msg/s for {} s\n\n",
        redis.instances,
        plan.rate,
        plan.duration.as_secs_f64()
    );
    let via: Vec<String> = names
        .iter()
        .zip(&redis.published_by)
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    let _ = write!(
        out,
        "Instances {} of one hub over Redis Streams ({}, key prefix `{}`), each a server \
         process with its own clients. Messages were published {} ({}). Latency runs from the publish timestamp in the data (taken just before \
         `publish`) to receipt by the client, so it includes the `XADD`, the instance \
         reader's `XREAD` and the fan-out. Every client tracks each sequence number: loss and \
         duplicates are exact. Beside it, in the same run: {} clients on one in-memory hub \
         at the same rate. ",
        names.join(", "),
        plan.url,
        run.prefix,
        if publishers > 1 {
            "through the instances in turn, message 1 through A, 2 through B, and so on"
        } else {
            "through instance A only"
        },
        via.join(", "),
        memory.clients,
    );
    match &run.keys_deleted {
        Ok(keys) => {
            let _ = writeln!(out, "The prefix's keys were deleted at the end ({keys}).\n");
        }
        Err(err) => {
            let _ = writeln!(out, "The prefix's keys could NOT be deleted: {err}.\n");
        }
    }
    let sides = Sides(redis, memory);
    let mut rows = delivery_rows(&sides, "deliveries received (distinct)");
    rows.extend([
        sides.row("server CPU, all instances (s)", 2, true, |o| o.cpu_seconds),
        sides.row(
            "server CPU per delivered message (µs)",
            3,
            true,
            Outcome::cpu_per_message_us,
        ),
        row(
            "Redis server CPU, whole server (s)",
            run.redis_cpu_seconds,
            None,
            2,
            false,
        ),
        sides.row("client reconnects", 0, false, |o| n(o.reconnects)),
        sides.row("client connect/stream errors", 0, false, |o| n(o.errors)),
        sides.row("reset markers", 0, false, |o| n(o.resets)),
        sides.row("server lagged count", 0, false, |o| n(o.server.lagged)),
        sides.row("client process CPU (s)", 2, false, |o| o.client_cpu_seconds),
        sides.row(
            "other processes' load, Redis included (cores)",
            2,
            false,
            |o| o.other_load_cores,
        ),
    ]);
    out += &table_with(
        [
            &format!("Redis hub, {} instances", redis.instances),
            "in-memory hub, 1 instance",
            "Redis / in-memory",
        ],
        &rows,
    );
    let complete = redis.connected == redis.clients as u64 && redis.published.count > 0;
    let lossless = Some(complete && redis.lost == 0);
    let once = Some(complete && redis.duplicates == 0);
    let p99 = ms(redis.p99_us).map(|p| p < REDIS_P99_TARGET_MS);
    let _ = writeln!(
        out,
        "\nTargets over Redis: 0 messages lost: {}; no duplicates: {}; p99 under \
         {REDIS_P99_TARGET_MS:.0} ms: {}.\n",
        verdict(lossless),
        verdict(once),
        verdict(p99)
    );
    out
}

/// An SVG line chart of p50 and p99 latency against the number of clients, both servers.
/// `points` holds, per number of clients, the tower-sse and axum outcomes.
pub fn latency_svg(points: &[(&Outcome, &Outcome)], rate: u32) -> String {
    const W: f64 = 720.0;
    const H: f64 = 440.0;
    const LEFT: f64 = 80.0;
    const RIGHT: f64 = 180.0;
    const TOP: f64 = 50.0;
    const BOTTOM: f64 = 60.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;

    // Each series: label, colour, dashed, (clients, latency ms) points.
    type Pick = fn(&Outcome) -> Option<u64>;
    let series: [(&str, &str, bool, bool, Pick); 4] = [
        ("tower-sse p50", "#1f77b4", false, true, |o| o.p50_us),
        ("tower-sse p99", "#1f77b4", true, true, |o| o.p99_us),
        ("axum p50", "#d62728", false, false, |o| o.p50_us),
        ("axum p99", "#d62728", true, false, |o| o.p99_us),
    ];
    let data: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|(_, _, _, tower, pick)| {
            points
                .iter()
                .filter_map(|(t, a)| {
                    let o = if *tower { *t } else { *a };
                    pick(o).map(|us| (o.clients as f64, (us as f64 / 1000.0).max(0.001)))
                })
                .collect()
        })
        .collect();

    let xs: Vec<f64> = points.iter().map(|(t, _)| t.clients as f64).collect();
    let ys: Vec<f64> = data.iter().flatten().map(|p| p.1).collect();
    let (x_min, x_max) = min_max(&xs).unwrap_or((1.0, 10.0));
    let (y_min, y_max) = min_max(&ys).unwrap_or((0.1, 10.0));
    let (lx_min, lx_max) = if x_min == x_max {
        (x_min.log10() - 0.5, x_max.log10() + 0.5)
    } else {
        let pad = (x_max.log10() - x_min.log10()) * 0.08;
        (x_min.log10() - pad, x_max.log10() + pad)
    };
    let ly_min = y_min.log10().floor();
    let ly_max = (y_max.log10().ceil()).max(ly_min + 1.0);
    let x_of = |x: f64| LEFT + (x.log10() - lx_min) / (lx_max - lx_min) * plot_w;
    let y_of = |y: f64| TOP + plot_h - (y.log10() - ly_min) / (ly_max - ly_min) * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" font-size="15" text-anchor="middle">SSE fan-out delivery latency, one topic at {rate} msg/s (127.0.0.1)</text>"#,
        LEFT + plot_w / 2.0
    );
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="41" font-size="11" fill="#555" text-anchor="middle">publish time to client receipt; server and clients share the machine's cores</text>"##,
        LEFT + plot_w / 2.0
    );
    // Horizontal grid: one line per decade of milliseconds.
    let mut decade = ly_min as i32;
    while f64::from(decade) <= ly_max {
        let v = 10f64.powi(decade);
        let y = y_of(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT + plot_w
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            format_ms(v)
        );
        decade += 1;
    }
    // Vertical ticks at each measured number of clients.
    for &x in &xs {
        let px = x_of(x);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/>"##,
            TOP + plot_h
        );
        let _ = writeln!(
            svg,
            r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + plot_h + 18.0,
            x as u64
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">clients (log scale)</text>"#,
        LEFT + plot_w / 2.0,
        H - 16.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency, ms (log scale)</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    for (i, ((label, colour, dashed, _, _), pts)) in series.iter().zip(&data).enumerate() {
        let dash = if *dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        if pts.len() > 1 {
            let path: Vec<String> = pts
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", x_of(x), y_of(y)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                path.join(" ")
            );
        }
        for &(x, y) in pts {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"><title>{label}: {} at {} clients</title></circle>"#,
                x_of(x),
                y_of(y),
                format_ms(y),
                x as u64
            );
        }
        // Legend.
        let ly = TOP + 10.0 + i as f64 * 22.0;
        let lx = LEFT + plot_w + 16.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>"#,
            lx + 28.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}">{label}</text>"#,
            lx + 34.0,
            ly + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let min = values
        .iter()
        .copied()
        .filter(|v| *v > 0.0)
        .reduce(f64::min)?;
    let max = values.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

fn format_ms(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0} ms")
    } else {
        format!("{} ms", (v * 1000.0).round() / 1000.0)
    }
}

/// The highest zero-loss rate of each server.
pub fn max_rate(tower: &RateSearch, axum: &RateSearch, clients: usize, step: f64) -> String {
    let mut out = format!(
        "### Saturation: highest rate {clients} clients keep up with, zero loss\n\n\
         Each step is a fresh server and fresh clients publishing at a fixed rate for {step:.1} s; \
         a rate is sustained when every client receives every message and delivery ends \
         within 1 s of the last publish. The rate doubles until a step fails, then the \
         interval is halved.\n\n"
    );
    let best_rate = |s: &RateSearch| s.best().map(|b| f64::from(b.rate));
    let best =
        |s: &RateSearch, f: fn(&Outcome) -> Option<f64>| s.best().and_then(|b| f(&b.outcome));
    let fail_rate = |s: &RateSearch| s.first_failure().map(|f| f64::from(f.rate));
    let fail_loss = |s: &RateSearch| s.first_failure().map(|f| f.outcome.lost as f64);
    let sides = Sides(tower, axum);
    out += &table(&[
        sides.row("highest sustained rate (msg/s)", 0, true, best_rate),
        sides.row("delivered msg/s at that rate (all clients)", 0, true, |s| {
            best(s, |o| {
                Some(o.delivered as f64 / o.published.elapsed.as_secs_f64().max(1e-9))
            })
        }),
        sides.row("messages lost at that rate", 0, false, |s| {
            best(s, |o| Some(o.lost as f64))
        }),
        sides.row("latency p50 at that rate (ms)", 2, true, |s| {
            best(s, |o| ms(o.p50_us))
        }),
        sides.row("latency p99 at that rate (ms)", 2, true, |s| {
            best(s, |o| ms(o.p99_us))
        }),
        sides.row(
            "server CPU per delivered message at that rate (µs)",
            3,
            true,
            |s| best(s, Outcome::cpu_per_message_us),
        ),
        sides.row("other processes' load (cores)", 2, false, |s| {
            best(s, |o| o.other_load_cores)
        }),
        sides.row("first rate not sustained (msg/s)", 0, false, fail_rate),
        sides.row("messages lost at that rate", 0, false, fail_loss),
    ]);
    for (name, search) in [("tower-sse", tower), ("axum", axum)] {
        let steps: Vec<String> = search
            .steps
            .iter()
            .map(|s| {
                if s.sustained {
                    format!("{} ok", s.rate)
                } else {
                    format!("{} failed ({})", s.rate, s.failure())
                }
            })
            .collect();
        let _ = writeln!(out, "\n{name} steps: {}", steps.join(", "));
    }
    let ratio = tower
        .best()
        .zip(axum.best())
        .map(|(t, a)| f64::from(t.rate) >= 3.0 * f64::from(a.rate));
    let _ = writeln!(
        out,
        "\nTarget: >= 3x axum's delivered msg/s at saturation with zero loss: {}.\n",
        verdict(ratio)
    );
    out
}
