//! The Redis scenario (feature `redis`): several instances of one hub over Redis Streams, each
//! a server on the same random key prefix, with clients on every instance and messages
//! published through the instances in turn (or through the first only); beside it, in the
//! same run, the same number of clients on one in-memory hub at the same rate.
//!
//! Every client tracks each sequence number it receives, so loss and duplicates are exact
//! even when two publishers' messages reach Redis in the other order. The keys of the run's
//! prefix are deleted at the end, also when the run fails.

use std::time::Duration;

use crate::control::ServerHandle;
use crate::scenario::{self, ClientPlan, Measure, Outcome};
use crate::server::now_ns;
use crate::server::{Kind, Publish, RedisTarget};

/// What to run.
#[derive(Clone, Debug)]
pub struct RedisPlan {
    /// The Redis server, `redis://host:port`.
    pub url: String,
    /// Instances of the hub over Redis (server processes, or servers in this process).
    pub instances: usize,
    /// The clients of each instance (`clients` is per instance); the in-memory run has
    /// `instances` times as many on its one server.
    pub clients: ClientPlan,
    /// Messages per second, all publishers together.
    pub rate: u32,
    /// How long to publish.
    pub duration: Duration,
    /// Publish through every instance in turn (`true`) or through the first only.
    pub publish_via_all: bool,
    /// Events each instance's topic ring holds (and the in-memory hub's).
    pub capacity: usize,
    /// Run the servers in this process (no CPU or memory figures then).
    pub in_process: bool,
}

/// The figures of one Redis scenario.
#[derive(Debug)]
pub struct RedisRun {
    /// The hub over Redis, all instances together.
    pub redis: Outcome,
    /// One in-memory hub with as many clients, at the same rate.
    pub memory: Outcome,
    /// The key prefix used.
    pub prefix: String,
    /// CPU seconds of the Redis server (all its work, whoever asked) over the Redis run.
    pub redis_cpu_seconds: Option<f64>,
    /// Keys of the prefix deleted at the end, or why they could not be.
    pub keys_deleted: Result<u64, String>,
}

/// A fresh key prefix: `fanout-bench-` and 16 random hex digits.
pub fn random_prefix() -> String {
    let mut bytes = [0u8; 8];
    let random = match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => now_ns() ^ u64::from(std::process::id()).rotate_left(40),
    };
    format!("fanout-bench-{random:016x}")
}

fn connection(url: &str) -> Result<redis::Connection, String> {
    redis::Client::open(url)
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .map_err(|err| format!("Redis at {url}: {err}"))
}

/// The keys of one prefix, deleted when this is dropped (unless [`Keys::delete`] ran).
pub struct Keys {
    url: String,
    prefix: String,
    deleted: bool,
}

impl Keys {
    /// Guards the keys `<prefix>:*` on the Redis server at `url`.
    pub fn new(url: &str, prefix: &str) -> Keys {
        Keys {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            deleted: false,
        }
    }

    /// Deletes every key `<prefix>:*` (`SCAN` and `DEL`); returns how many there were.
    pub fn delete(&mut self) -> Result<u64, String> {
        let mut connection = connection(&self.url)?;
        let pattern = format!("{}:*", self.prefix);
        let mut cursor = 0u64;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut connection)
                .map_err(|err| format!("SCAN: {err}"))?;
            if !keys.is_empty() {
                deleted += redis::cmd("DEL")
                    .arg(&keys)
                    .query::<u64>(&mut connection)
                    .map_err(|err| format!("DEL: {err}"))?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        self.deleted = true;
        Ok(deleted)
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        if !self.deleted
            && let Err(err) = self.delete()
        {
            eprintln!("could not delete the keys {}:*: {err}", self.prefix);
        }
    }
}

/// CPU seconds the Redis server has used so far (`INFO cpu`: `used_cpu_sys + used_cpu_user`).
pub fn redis_cpu_seconds(url: &str) -> Option<f64> {
    let mut connection = connection(url).ok()?;
    let info: String = redis::cmd("INFO").arg("cpu").query(&mut connection).ok()?;
    let field = |name: &str| -> Option<f64> {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(field("used_cpu_sys")? + field("used_cpu_user")?)
}

async fn start(plan: &RedisPlan, redis: Option<&RedisTarget>) -> std::io::Result<ServerHandle> {
    let server = if plan.in_process {
        ServerHandle::in_process(Kind::Tower, plan.capacity, redis).await?
    } else {
        ServerHandle::spawn_child(Kind::Tower, plan.capacity, redis).await?
    };
    if let Some(pid) = server.pid() {
        let what = if redis.is_some() {
            "Redis hub"
        } else {
            "in-memory hub"
        };
        eprintln!("  {what:<13} server pid {pid} on {}", server.addr());
    }
    Ok(server)
}

fn summary(name: &str, outcome: &Outcome) {
    eprintln!(
        "  {name:<13} {} clients: connected {}, published {:?}, delivered {}/{}, lost {}, \
         duplicates {}, p50 {:?} us, p99 {:?} us",
        outcome.clients,
        outcome.connected,
        outcome.published_by,
        outcome.delivered,
        outcome.expected,
        outcome.lost,
        outcome.duplicates,
        outcome.p50_us,
        outcome.p99_us,
    );
}

/// The hub over Redis: `plan.instances` servers on `target`, clients on each.
async fn run_redis(plan: &RedisPlan, target: &RedisTarget) -> std::io::Result<Outcome> {
    let mut servers = Vec::with_capacity(plan.instances);
    for _ in 0..plan.instances.max(1) {
        servers.push(start(plan, Some(target)).await?);
    }
    let measure = Measure {
        latency: true,
        exact: true,
        publishers: if plan.publish_via_all {
            servers.len()
        } else {
            1
        },
    };
    let publish = Publish::new(plan.rate, plan.duration, 1);
    let outcome =
        scenario::fanout_many(&mut servers, Kind::Tower, &plan.clients, publish, measure).await;
    for server in servers {
        server.stop().await;
    }
    outcome
}

/// One in-memory hub with every client of the Redis run.
async fn run_memory(plan: &RedisPlan) -> std::io::Result<Outcome> {
    let mut server = start(plan, None).await?;
    let clients = ClientPlan {
        clients: plan.clients.clients * plan.instances.max(1),
        ..plan.clients.clone()
    };
    let measure = Measure {
        latency: true,
        exact: true,
        publishers: 1,
    };
    let publish = Publish::new(plan.rate, plan.duration, 1);
    let outcome = scenario::fanout_many(
        std::slice::from_mut(&mut server),
        Kind::Tower,
        &clients,
        publish,
        measure,
    )
    .await;
    server.stop().await;
    outcome
}

/// Runs the hub over Redis on a fresh prefix (its keys deleted at the end), then the
/// in-memory hub with as many clients.
pub async fn run(plan: &RedisPlan) -> std::io::Result<RedisRun> {
    let prefix = random_prefix();
    let mut keys = Keys::new(&plan.url, &prefix);
    let target = RedisTarget {
        url: plan.url.clone(),
        prefix: prefix.clone(),
    };
    let cpu_before = redis_cpu_seconds(&plan.url);
    let redis = run_redis(plan, &target).await?;
    let cpu_after = redis_cpu_seconds(&plan.url);
    summary("Redis hub", &redis);
    let keys_deleted = keys.delete();
    // Let the closed connections' sockets and the CPU settle before the next server.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let memory = run_memory(plan).await?;
    summary("in-memory hub", &memory);
    Ok(RedisRun {
        redis,
        memory,
        prefix,
        redis_cpu_seconds: cpu_before.zip(cpu_after).map(|(a, b)| b - a),
        keys_deleted,
    })
}
