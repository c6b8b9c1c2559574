// Steps on a page of the chat example (examples/chat) shared by the browser scripts. A page
// handle is `{ name, page, eventUrls, ... }`, as `Pages.open` builds it.
import path from 'node:path';
import { Gate, artifacts, check, launchChromium, passed, step } from './lib.mjs';

export const WAIT = { timeout: 20_000 };

// The browser of one script and the pages it opened: script errors in any of them are
// collected, and when the script fails, each page left open is saved as
// `<prefix>-failure-<name>.png`.
export class Pages {
  browser = null;
  handles = [];
  errors = [];

  constructor(prefix) {
    this.prefix = prefix;
  }

  async launch() {
    this.browser = await launchChromium();
    return this.browser;
  }

  // A page in a context of its own (its own cookies and storage), with `contextOptions`
  // (viewport, ...); console errors matching `ignoredConsole` are not script errors.
  async open(name, contextOptions, ignoredConsole) {
    const context = await this.browser.newContext({
      deviceScaleFactor: 1,
      // The page then skips its drawer animation, so screenshots never catch it half-way.
      reducedMotion: 'reduce',
      ...contextOptions,
    });
    const page = await context.newPage();
    const eventUrls = watchPage(page, name, this.errors, ignoredConsole);
    const handle = { name, page, eventUrls };
    this.handles.push(handle);
    return handle;
  }

  async close(handle) {
    await handle.page.context().close();
    this.handles.splice(this.handles.indexOf(handle), 1);
  }

  checkNoErrors() {
    const errors = this.errors;
    check(errors.length === 0, `no script errors in the pages${errors.length ? `: ${errors.join('; ')}` : ''}`);
  }

  async cleanup() {
    if (process.exitCode) {
      for (const handle of this.handles) {
        try { await shot(handle, `${this.prefix}-failure-${handle.name}.png`); } catch { /* page gone */ }
      }
    }
    if (this.browser) await this.browser.close();
  }
}

// Sets the page's default timeout and records its script errors into `pageErrors` (console
// errors whose text matches `ignoredConsole` excepted). Returns the URLs of the page's
// `/events` requests, newest last, as they are made.
export function watchPage(page, name, pageErrors, ignoredConsole) {
  page.setDefaultTimeout(WAIT.timeout);
  page.on('pageerror', (error) => pageErrors.push(`${name}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !ignoredConsole.test(message.text())) {
      pageErrors.push(`${name} console: ${message.text()}`);
    }
  });
  const eventUrls = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/events') eventUrls.push(request.url());
  });
  return eventUrls;
}

export async function shot(handle, file) {
  const target = path.join(artifacts, file);
  await handle.page.screenshot({ path: target });
  step(`screenshot ${target}`);
}

export async function waitConnected(handle) {
  await handle.page.waitForSelector('#conn[data-state="connected"]', WAIT);
}

// An attribute of the page's connection indicator (`data-state`, `data-opens`, ...).
export function conn(handle, attribute) {
  return handle.page.locator('#conn').getAttribute(attribute);
}

// Opens the chat at `url`, which asks for a name.
export async function openLogin(handle, url) {
  const response = await handle.page.goto(url);
  check(response.status() === 200, `${handle.name}: GET ${url}/ is 200`);
  await handle.page.waitForSelector('#login:not([hidden])', WAIT);
}

// Signing in as `name` from another page (at `url`) is refused: the name is taken.
export async function checkNameTaken(pages, url, name) {
  const intruder = await pages.open('intruder', {}, /Failed to load resource/);
  await intruder.page.goto(url);
  await intruder.page.fill('#login-name', name);
  await intruder.page.click('#login-submit');
  await intruder.page.waitForFunction(() => /taken/.test(document.getElementById('login-error').textContent));
  passed(`signing in as ${name} at ${url} is refused: name taken`);
  await pages.close(intruder);
}

// Holds the page's `/events` requests (new streams and the browser's own reconnections)
// until the returned gate is opened, so the page stays disconnected for as long as a step
// needs, whatever its retry delay. `gate.held` counts the requests held. Once the gate is
// open, the route lets every request through; it stays for the page's life.
export async function holdStreams(handle) {
  const gate = new Gate();
  await handle.page.route(
    (url) => url.pathname === '/events',
    async (route) => {
      await gate.pass();
      await route.continue();
    },
  );
  return gate;
}

// Posts each of `texts` to `path` from the page with fetch, one after the other (its
// cookie goes along); returns the statuses.
export function postFromPage(handle, path, texts) {
  return handle.page.evaluate(async ([to, list]) => {
    const statuses = [];
    for (const text of list) {
      const res = await fetch(to, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text }),
      });
      statuses.push(res.status);
    }
    return statuses;
  }, [path, texts]);
}

// The page shows each of `texts` exactly once, in this order.
export async function checkShownOnceInOrder(handle, texts) {
  for (const text of texts) await waitForMessage(handle, text);
  const shown = await textsOf(handle);
  for (const text of texts) {
    check(shown.filter((t) => t === text).length === 1, `${handle.name} shows "${text}" once`);
  }
  const positions = texts.map((text) => shown.indexOf(text));
  check(positions.every((p, i) => i === 0 || positions[i - 1] < p), 'in order');
}

export async function signIn(handle, name) {
  await handle.page.fill('#login-name', name);
  await handle.page.click('#login-submit');
  await handle.page.waitForSelector('#chat:not([hidden])', WAIT);
  await waitConnected(handle);
  check((await handle.page.textContent('#me-name')) === name, `${handle.name} is signed in as ${name}`);
}

export async function send(handle, text) {
  await handle.page.fill('#text', text);
  await handle.page.press('#text', 'Enter');
  await handle.page.waitForFunction(() => document.getElementById('text').value === '', null, WAIT);
  check(await handle.page.locator('#send-error').isHidden(), `${handle.name} sent "${text}"`);
}

export function textsOf(handle) {
  return handle.page.$$eval('#messages li.msg .text', (nodes) => nodes.map((n) => n.textContent));
}

export async function waitForMessage(handle, text) {
  await handle.page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages li.msg .text')].some((n) => n.textContent === t),
    text,
    WAIT,
  );
}

export async function waitForSystemLine(handle, text) {
  await handle.page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages li.sys')].some((n) => n.textContent === t),
    text,
    WAIT,
  );
}

export async function systemLines(handle) {
  return handle.page.$$eval('#messages li.sys', (nodes) => nodes.map((n) => n.textContent));
}

export async function checkNoDuplicates(handle) {
  const ids = await handle.page.$$eval('#messages li[data-id]', (nodes) => nodes.map((n) => n.dataset.id));
  check(new Set(ids).size === ids.length, `${handle.name} shows no event twice (${ids.length} events)`);
}
