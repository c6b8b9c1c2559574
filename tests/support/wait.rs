//! Bounds on how long a test waits for something that must happen: they turn a hang into a
//! failure that names the step. Only guards: no test asserts a duration.

use std::future::Future;
use std::time::Duration;

/// How long a test waits for one step before failing instead of hanging.
pub const GUARD: Duration = Duration::from_secs(120);

/// How often [`wait_until`] checks its condition.
const POLL: Duration = Duration::from_millis(10);

/// `future`'s output, or a test failure naming `what` if nothing came within [`GUARD`].
pub async fn guarded<F: Future>(what: &str, future: F) -> F::Output {
    guarded_for(GUARD, what, future).await
}

/// [`guarded`] with another limit.
pub async fn guarded_for<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: nothing after {limit:?}"),
    }
}

/// [`guarded`], for a step whose test says well enough what it waits for.
pub async fn within<F: Future>(future: F) -> F::Output {
    guarded("a step of the test", future).await
}

/// Waits until `done` holds, checking it every few milliseconds; a test failure naming
/// `what` if it does not within [`GUARD`].
pub async fn wait_until(what: &str, done: impl FnMut() -> bool) {
    wait_until_for(GUARD, what, done).await;
}

/// [`wait_until`] with another limit.
pub async fn wait_until_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    guarded_for(limit, what, async {
        while !done() {
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
}
