// Two browser pages on the chat example (examples/chat): sign in, rooms, presence,
// messages both ways, a private message, a stream cut by the server while the other page
// keeps sending, a reload, leaving a room, a server restart, and screenshots at desktop
// and phone sizes.
//
// Usage: node chat_browser.mjs http://127.0.0.1:<port>   (started by tests/chat_e2e.rs,
// which answers `@@restart` by restarting the server on the same port with a new hub and
// a new cookie key). The server runs with a 1 s retry hint, a presence grace period far
// longer than any step and the test-only POST /admin/kick.
import { ask, base, check, passed, run, step, until } from './lib.mjs';
import {
  Pages,
  WAIT,
  checkNameTaken,
  checkNoDuplicates,
  checkShownOnceInOrder,
  conn,
  holdStreams,
  openLogin,
  postFromPage,
  send,
  shot,
  signIn,
  systemLines,
  waitConnected,
  waitForMessage,
  waitForSystemLine,
} from './chat_page.mjs';

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

const pages = new Pages('chat');

async function openPage(name, viewport, mobile) {
  // Refused requests (403 before signing in again) log console errors; scripts must not.
  const handle = await pages.open(name, { viewport, isMobile: mobile, hasTouch: mobile }, /Failed to load resource/);
  handle.mobile = mobile;
  return handle;
}

function connState(handle) {
  return conn(handle, 'data-state');
}

async function connNumber(handle, attribute) {
  return Number(await conn(handle, attribute));
}

async function openDrawer(handle) {
  if (!handle.mobile) return;
  await handle.page.click('#menu');
  await handle.page.waitForFunction(() => document.body.classList.contains('drawer-open'));
}

async function joinRoom(handle, room) {
  await openDrawer(handle);
  await handle.page.fill('#join-name', room);
  await handle.page.press('#join-name', 'Enter');
  await handle.page.waitForSelector(`#room-list button[data-room="${room}"][aria-current="true"]`, WAIT);
  await waitConnected(handle);
  await until(
    () => streamRooms(handle).includes(room),
    `${handle.name}'s stream to carry #${room}`,
  );
}

// The rooms of the page's newest stream request.
function streamRooms(handle) {
  const url = handle.eventUrls.at(-1);
  return url ? (new URL(url).searchParams.get('rooms') || '').split(',') : [];
}

async function openRoom(handle, room) {
  await openDrawer(handle);
  await handle.page.click(`#room-list button[data-room="${room}"]`);
  await handle.page.waitForSelector(`#room-list button[data-room="${room}"][aria-current="true"]`, WAIT);
}

async function main() {
  const browser = await pages.launch();
  step(`Chromium ${browser.version()}`);
  const alice = await openPage('alice', DESKTOP, false);
  const bob = await openPage('bob', PHONE, true);

  step('the page loads and asks for a name');
  for (const handle of [alice, bob]) await openLogin(handle, base);
  await shot(alice, 'chat-login-desktop.png');
  await shot(bob, 'chat-login-phone.png');

  step('a bad name is refused with the server\'s message');
  await alice.page.fill('#login-name', 'no spaces');
  await alice.page.click('#login-submit');
  await alice.page.waitForFunction(() => document.getElementById('login-error').textContent !== '');
  check(await alice.page.isVisible('#login'), 'alice is still on the sign-in form');

  step('both sign in; both are in #lobby');
  await signIn(alice, 'alice');
  await signIn(bob, 'bob');
  await alice.page.waitForSelector('#people button[data-user="bob"]', WAIT);
  await waitForSystemLine(alice, 'bob joined #lobby');
  passed('alice sees bob join #lobby');

  step('a second page cannot take a name in use');
  await checkNameTaken(pages, base, 'bob');

  step('both join #rust; presence reaches the other page');
  await joinRoom(alice, 'rust');
  await joinRoom(bob, 'rust');
  await waitForSystemLine(alice, 'bob joined #rust');
  await alice.page.waitForSelector('#people button[data-user="bob"]', WAIT);
  await alice.page.waitForFunction(() => /2 online/.test(document.getElementById('subtitle').textContent));
  passed('alice sees bob in #rust, 2 online');

  step('messages both ways');
  await send(alice, 'Hello from alice');
  await waitForMessage(bob, 'Hello from alice');
  await send(bob, 'Hi alice, bob here — ¡hola, café!');
  await waitForMessage(alice, 'Hi alice, bob here — ¡hola, café!');
  await send(alice, '<b>markup</b> stays text & "quotes" too');
  await waitForMessage(bob, '<b>markup</b> stays text & "quotes" too');
  check((await bob.page.$$('#messages b')).length === 0, 'message text is never parsed as HTML');

  step('a private message');
  await alice.page.click('#people button[data-user="bob"]');
  await alice.page.waitForFunction(() => document.getElementById('title').textContent === '@bob');
  await send(alice, 'psst, just for you');
  await waitForMessage(alice, 'psst, just for you');
  await bob.page.waitForSelector('#dm-list button[data-user="alice"] .badge', { state: 'attached', ...WAIT });
  await openDrawer(bob);
  await bob.page.click('#dm-list button[data-user="alice"]');
  await waitForMessage(bob, 'psst, just for you');
  passed('bob got the private message');
  await shot(bob, 'chat-private-phone.png');
  await openRoom(alice, 'rust');
  await openRoom(bob, 'rust');

  step('the server cuts bob\'s stream while alice keeps sending');
  // Bob's page reconnects only once alice has sent: its new stream requests are held
  // until then, however long the posts take.
  const reconnection = await holdStreams(bob);
  const opensBefore = await connNumber(bob, 'data-opens');
  const kick = await fetch(`${base}/admin/kick`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user: 'bob' }),
  });
  check(kick.ok && (await kick.json()).streams === 1, 'the server ended bob\'s one stream');
  await until(async () => (await connState(bob)) === 'reconnecting', 'bob\'s page to notice the cut');
  const away = ['while you were away 1', 'while you were away 2', 'while you were away 3'];
  // Posted from alice's page with fetch, one after the other.
  const statuses = await postFromPage(alice, '/rooms/rust/messages', away);
  check(statuses.every((s) => s === 201), `alice posted three messages (${statuses})`);
  check(
    (await connState(bob)) === 'reconnecting' && (await connNumber(bob, 'data-opens')) === opensBefore,
    'all three were sent while bob was disconnected',
  );
  await until(() => reconnection.held > 0, 'bob\'s page to try to reconnect (held)');
  passed('bob\'s page tried to reconnect by itself');
  reconnection.open();
  await until(async () => (await connNumber(bob, 'data-opens')) > opensBefore, 'bob\'s page to reconnect');
  await waitConnected(bob);
  await checkShownOnceInOrder(bob, away);
  await checkNoDuplicates(bob);
  check(
    !(await systemLines(alice)).includes('bob left #rust'),
    'alice never saw bob leave: the reconnect was within the presence grace period',
  );
  check(
    bob.eventUrls.length >= 1 && (await bob.page.evaluate(() => document.getElementById('conn').dataset.resets)) === '0',
    'bob resumed without a reset',
  );

  step('a reload resumes from the id the page kept');
  const urlsBefore = bob.eventUrls.length;
  await bob.page.reload();
  await waitConnected(bob);
  const reloadUrl = bob.eventUrls.slice(urlsBefore)[0] || '';
  check(/[?&]lastEventId=[^&]+/.test(reloadUrl), `the reloaded page passes lastEventId (${reloadUrl.replace(base, '')})`);
  await bob.page.waitForSelector('#room-list button[data-room="rust"][aria-current="true"]', WAIT);
  await send(alice, 'after your reload');
  await waitForMessage(bob, 'after your reload');
  for (const text of [...away, 'Hello from alice']) await waitForMessage(bob, text);
  await checkNoDuplicates(bob);
  check((await bob.page.evaluate(() => document.getElementById('conn').dataset.resets)) === '0', 'no reset after the reload');

  step('screenshots of the chat');
  await shot(alice, 'chat-desktop.png');
  await shot(bob, 'chat-phone.png');
  await openDrawer(bob);
  await shot(bob, 'chat-phone-drawer.png');
  await bob.page.click('#scrim', { position: { x: 370, y: 400 } });

  step('bob leaves #rust; alice is told at once');
  await bob.page.click('#leave');
  await bob.page.waitForSelector('#room-list button[data-room="rust"]', { state: 'detached', ...WAIT });
  await waitForSystemLine(alice, 'bob left #rust');
  await alice.page.waitForSelector('#people button[data-user="bob"]', { state: 'detached', ...WAIT });
  passed('bob left #rust and alice\'s list no longer has him');

  step('the server restarts (new hub, new cookie key): both pages show the reset and carry on');
  await openRoom(alice, 'lobby');
  const answer = await ask('restart');
  check(answer === 'restarted', `the server restarted (${answer})`);
  for (const handle of [alice, bob]) {
    await until(async () => (await connNumber(handle, 'data-resets')) >= 1, `${handle.name}'s page to get the reset`, 30_000);
    await waitConnected(handle);
    check(await handle.page.isVisible('#banner'), `${handle.name}'s page shows the restart`);
  }
  await alice.page.waitForSelector('#people button[data-user="bob"]', WAIT);
  await send(alice, 'still here after the restart');
  await waitForMessage(bob, 'still here after the restart');
  await send(bob, 'me too');
  await waitForMessage(alice, 'me too');
  await checkNoDuplicates(alice);
  await checkNoDuplicates(bob);
  await shot(alice, 'chat-restarted-desktop.png');
  await shot(bob, 'chat-restarted-phone.png');

  pages.checkNoErrors();
}

await run(main, () => pages.cleanup());
