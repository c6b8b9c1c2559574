//! What the real-client tests share: finding Node, the packages in `tests/e2e` and Chromium,
//! and running one of the Node scripts against a server of the test.
//!
//! A script gets the server's base URL as its argument (or several, for several servers)
//! and these variables:
//! `CHROMIUM_PATH` (the browser to drive) and `E2E_ARTIFACTS` (where screenshots go). It
//! prints what it does; a line starting with `@@` is a request to the test (such as
//! `@@restart`), answered with one line on the script's standard input. The script's exit
//! status is the verdict.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How to get what these tests need.
const HOW_TO_INSTALL: &str = "these tests need Node.js, Chromium and the packages of tests/e2e: \
     run `bash .ci/run`, or `apt-get install -y chromium nodejs npm` and \
     `npm ci --prefix tests/e2e`";

/// The longest a script may run before the test gives up on it.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

/// `tests/e2e` of this crate.
pub fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("e2e")
}

/// Where screenshots go: `target/e2e-artifacts`.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("e2e-artifacts")
}

/// The Chromium to drive: `$CHROMIUM_PATH`, else `/usr/bin/chromium`.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// [`chromium_path`], panicking with the way to install it when it is missing.
pub fn require_chromium() -> PathBuf {
    let path = chromium_path();
    assert!(
        path.is_file(),
        "Chromium not found at {}; {HOW_TO_INSTALL}",
        path.display()
    );
    path
}

/// Panics with the way to install them when Node or a package of `tests/e2e` is missing.
pub fn require_node_packages(packages: &[&str]) {
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|out| out.status.success()),
        "`node --version` failed ({node:?}); {HOW_TO_INSTALL}"
    );
    for package in packages {
        let manifest = e2e_dir()
            .join("node_modules")
            .join(package)
            .join("package.json");
        assert!(
            manifest.is_file(),
            "the npm package {package} is not installed in tests/e2e/node_modules; {HOW_TO_INSTALL}"
        );
    }
}

/// A running Node script.
pub struct NodeScript {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
}

impl NodeScript {
    /// Starts `node tests/e2e/<script> <base_url>`.
    pub fn spawn(script: &str, base_url: &str) -> NodeScript {
        Self::spawn_with(script, &[base_url])
    }

    /// Starts `node tests/e2e/<script> <args>...` (such as the base URLs of several servers).
    pub fn spawn_with(script: &str, args: &[&str]) -> NodeScript {
        let artifacts = artifacts_dir();
        std::fs::create_dir_all(&artifacts)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", artifacts.display()));
        let mut command = Command::new("node");
        command
            .arg(script)
            .args(args)
            .current_dir(e2e_dir())
            .env("E2E_ARTIFACTS", &artifacts)
            .env("CHROMIUM_PATH", chromium_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node {script}: {e}; {HOW_TO_INSTALL}"));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            tokio::spawn(async move {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text).await;
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&text);
            });
        }
        NodeScript {
            name: script.to_owned(),
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Prints the script's lines until it asks for something (`@@<request>`, returned
    /// without the `@@`) or ends (`None`).
    pub async fn next_request(&mut self) -> Option<String> {
        loop {
            match self.stdout.next_line().await {
                Ok(Some(line)) => {
                    println!("[{}] {line}", self.name);
                    if let Some(request) = line.strip_prefix("@@") {
                        return Some(request.trim().to_owned());
                    }
                }
                Ok(None) => return None,
                Err(error) => {
                    println!("[{}] cannot read its output: {error}", self.name);
                    return None;
                }
            }
        }
    }

    /// Answers the script's last request with one line.
    pub async fn reply(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the script's stdin is open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to the script's stdin");
        stdin.flush().await.expect("flush the script's stdin");
    }

    /// Answers each of the script's requests with the line `answer` gives for it until the
    /// script ends; fails the test if that takes longer than [`SCRIPT_TIMEOUT`]. Then waits
    /// for the script to exit, as [`NodeScript::finish`].
    pub async fn serve(mut self, mut answer: impl AsyncFnMut(&str) -> String) -> ExitStatus {
        let outcome = tokio::time::timeout(SCRIPT_TIMEOUT, async {
            while let Some(request) = self.next_request().await {
                let line = answer(&request).await;
                self.reply(&line).await;
            }
        })
        .await;
        assert!(
            outcome.is_ok(),
            "{} did not finish in {SCRIPT_TIMEOUT:?}",
            self.name
        );
        self.finish().await
    }

    /// Waits for the script to exit; prints its standard error.
    pub async fn finish(mut self) -> ExitStatus {
        drop(self.stdin.take());
        // Whatever it still prints.
        while self.next_request().await.is_some() {}
        let status = self.child.wait().await.expect("wait for node");
        // Give the stderr reader a moment to finish after the pipe closed.
        for _ in 0..50 {
            if Arc::strong_count(&self.stderr) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stderr = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        if !stderr.trim().is_empty() {
            println!("[{} stderr]\n{}", self.name, stderr.trim_end());
        }
        status
    }
}

/// Runs `script` against `base_url` with no requests expected; panics unless it succeeds.
pub async fn run_script(script: &str, base_url: &str) {
    let status = NodeScript::spawn(script, base_url)
        .serve(async |request| {
            panic!("{script} asked for {request:?}, which this test does not handle")
        })
        .await;
    assert!(status.success(), "{script} failed: {status}");
}
