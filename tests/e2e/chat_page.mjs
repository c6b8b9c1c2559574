// Steps on a page of the chat example (examples/chat) shared by the browser scripts. A page
// handle is `{ name, page, eventUrls, ... }`, as the scripts' `openPage` builds it.
import path from 'node:path';
import { artifacts, check, step } from './lib.mjs';

export const WAIT = { timeout: 20_000 };

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
