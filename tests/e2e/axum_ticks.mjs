// Headless Chromium on the axum example (examples/axum.rs): a page opens
// `new EventSource('/ticks?count=3&interval_ms=20&retry_ms=100')`; the server ends each
// stream after three ticks, and the browser must reconnect twice with Last-Event-ID,
// collecting ticks 1..9 in order, each exactly once.
//
// Usage: node axum_ticks.mjs http://127.0.0.1:<port>   (started by tests/axum_example_e2e.rs)
import path from 'node:path';
import { artifacts, base, check, launchChromium, run, step } from './lib.mjs';

let browser;

async function main() {
  browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const tickRequests = [];
  page.on('request', async (request) => {
    const url = new URL(request.url());
    if (url.pathname === '/ticks' && url.searchParams.get('count') === '3') tickRequests.push(request);
  });

  step('GET / serves the page');
  const response = await page.goto(base);
  check(response.status() === 200, 'GET / is 200');
  check((await page.textContent('h1')) === 'Ticks', 'the page is the ticks page');

  step('the page collects nine ticks over three streams');
  const result = await page.evaluate(() => new Promise((resolve) => {
    const ticks = [];
    const opens = [];
    const source = new EventSource('/ticks?count=3&interval_ms=20&retry_ms=100');
    source.addEventListener('open', () => opens.push(ticks.length));
    source.addEventListener('tick', (event) => {
      ticks.push({ lastEventId: event.lastEventId, data: JSON.parse(event.data) });
      if (ticks.length === 9) {
        source.close();
        resolve({ ticks, opens, timedOut: false });
      }
    });
    setTimeout(() => { source.close(); resolve({ ticks, opens, timedOut: true }); }, 20_000);
  }));
  console.log(`  ticks: ${JSON.stringify(result.ticks)}`);
  check(!result.timedOut, 'nine ticks arrived');
  const numbers = result.ticks.map((t) => t.data.n);
  check(JSON.stringify(numbers) === JSON.stringify([1, 2, 3, 4, 5, 6, 7, 8, 9]), `n = 1..9 in order, none twice (${numbers})`);
  for (const [i, tick] of result.ticks.entries()) {
    const expected = i < 3 ? null : i < 6 ? '3' : '6';
    check(tick.data.last_event_id === expected, `tick ${tick.data.n} resumed from ${JSON.stringify(expected)}`);
    check(tick.lastEventId === String(tick.data.n), `tick ${tick.data.n} has lastEventId "${tick.data.n}"`);
  }
  check(JSON.stringify(result.opens) === JSON.stringify([0, 3, 6]), `three connections, opened after 0, 3 and 6 ticks (${result.opens})`);

  step('the reconnects carried the Last-Event-ID header');
  const sent = await Promise.all(tickRequests.map(async (r) => (await r.allHeaders())['last-event-id'] ?? null));
  check(JSON.stringify(sent) === JSON.stringify([null, '3', '6']), `Last-Event-ID per request: ${JSON.stringify(sent)}`);

  await page.screenshot({ path: path.join(artifacts, 'axum-ticks.png') });
  check(errors.length === 0, `no script errors${errors.length ? `: ${errors.join('; ')}` : ''}`);
}

await run(main, async () => { if (browser) await browser.close(); });
