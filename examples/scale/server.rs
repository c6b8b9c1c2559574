//! The server child (`--serve`): every request to any path is an SSE stream of the hub topic
//! `all`, with keep-alive, over HTTP/1.1 (what `EventSource` speaks to a plain-HTTP origin).
//!
//! It prints `listening <addr>` once bound, then obeys one command per line on stdin, each
//! answered with one line on stdout:
//!
//! | command   | answer                                                        |
//! |-----------|---------------------------------------------------------------|
//! | `stats`   | `stats <open connections> <hub subscribers>`                  |
//! | `publish` | `published <hub subscribers>` after publishing `event: done`  |
//!
//! It exits when stdin closes.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tower_sse::hub::Hub;
use tower_sse::{Event, KeepAlive, Sse, SseBody, Subscription};

use crate::options::ServeOptions;

type Body = Either<SseBody<Subscription>, Full<Bytes>>;

/// Counts a connection while it is open.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(count: &Arc<AtomicUsize>) -> Open {
        count.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(count))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn respond(hub: &Hub, keep_alive: &KeepAlive) -> Response<Body> {
    match hub.subscribe(["all"], None) {
        Ok(subscription) => Sse::new(subscription)
            .keep_alive(keep_alive.clone())
            .into_response()
            .map(Either::Left),
        Err(err) => {
            let mut response = Response::new(Either::Right(Full::from(format!("{err}\n"))));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        }
    }
}

/// Runs the server until stdin closes.
pub fn run(options: &ServeOptions) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(options))
}

async fn serve(options: &ServeOptions) -> io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(options.addr)?;
    let listener = socket.listen(options.backlog)?;
    let hub = Hub::builder()
        .max_subscribers(options.max_subscribers)
        .build();
    let keep_alive = KeepAlive::new().interval(options.keep_alive);
    let open = Arc::new(AtomicUsize::new(0));

    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(format!("listening {}\n", listener.local_addr()?).as_bytes())
        .await?;
    stdout.flush().await?;

    let accept = {
        let hub = hub.clone();
        let open = Arc::clone(&open);
        async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors, or a connection reset before accept: go on
                    // after a breath, without spinning.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let hub = hub.clone();
                let keep_alive = keep_alive.clone();
                let guard = Open::new(&open);
                tokio::spawn(async move {
                    let _guard = guard;
                    let service = service_fn(move |_req: Request<Incoming>| {
                        let response = respond(&hub, &keep_alive);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    // A client that goes away is an error here, and nothing to report.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    };
    let accept = tokio::spawn(accept);

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let answer = match line.trim() {
            "stats" => format!(
                "stats {} {}\n",
                open.load(Ordering::Relaxed),
                hub.stats().subscribers
            ),
            "publish" => {
                let done = Event::new()
                    .event("done")
                    .map_err(io::Error::other)?
                    .data("the hold is over");
                hub.publish_now("all", done).map_err(io::Error::other)?;
                format!("published {}\n", hub.stats().subscribers)
            }
            other => format!("unknown {other}\n"),
        };
        stdout.write_all(answer.as_bytes()).await?;
        stdout.flush().await?;
    }
    accept.abort();
    hub.close();
    Ok(())
}
