// Shared helpers of the real-client scripts: launching Chromium, checks, and talking to
// the Rust test that started the server (lines starting with `@@` on stdout, answers on
// stdin).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const base = process.argv[2];
if (!base || !/^http:\/\/127\.0\.0\.1:\d+$/.test(base)) {
  console.error(`usage: node ${path.basename(process.argv[1])} http://127.0.0.1:<port>`);
  process.exit(2);
}

export const artifacts = process.env.E2E_ARTIFACTS || path.resolve('e2e-artifacts');
mkdirSync(artifacts, { recursive: true });

export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

// The flags this suite runs Chromium with; Playwright gives every launch a fresh,
// temporary user data directory of its own.
export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: chromiumArgs,
    timeout: 60_000,
  });
}

export function step(message) {
  console.log(`- ${message}`);
}

// Logs a check made by the wait just before it, which throws when it is not met.
export function passed(message) {
  console.log(`  ok: ${message}`);
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
  console.log(`  ok: ${message}`);
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Waits until `probe()` returns a truthy value, polling; throws after `timeout` ms.
export async function until(probe, what, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

// Holds whoever awaits `pass()` until `open()` is called; `held` counts those that waited.
// A test holds a client's reconnection with it for as long as a step needs, instead of
// racing the client's retry delay.
export class Gate {
  #open;
  #opened = new Promise((resolve) => { this.#open = resolve; });
  isOpen = false;
  held = 0;

  async pass() {
    if (this.isOpen) return;
    this.held += 1;
    await this.#opened;
  }

  open() {
    this.isOpen = true;
    this.#open();
  }
}

let stdinLines;

// Asks the Rust test to do something and waits for its one-line answer.
export async function ask(request) {
  stdinLines ??= createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  console.log(`@@${request}`);
  const { value, done } = await stdinLines.next();
  if (done) throw new Error(`no answer to ${request}: stdin closed`);
  return value;
}

// Runs `main`, reports the outcome, and sets the exit status.
export async function run(main, cleanup) {
  try {
    await main();
    console.log('PASS');
  } catch (error) {
    console.log(`FAIL: ${error && error.stack ? error.stack : error}`);
    process.exitCode = 1;
  } finally {
    if (cleanup) {
      try { await cleanup(); } catch (error) { console.log(`cleanup: ${error}`); }
    }
  }
  // Playwright or an EventSource may keep handles open: end explicitly.
  process.exit(process.exitCode ?? 0);
}
