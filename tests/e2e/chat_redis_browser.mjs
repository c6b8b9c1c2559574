// Two instances of the chat example (examples/chat) on one Redis, in headless Chromium:
// alice's page is served by A, bob's by B; they chat across the instances. Then A stops:
// alice's page fails over to B (the origins come from GET /config), resumes with its last
// event id, gets what bob sent meanwhile exactly once, and sends again. Nobody is told
// alice left.
//
// Usage: node chat_redis_browser.mjs http://127.0.0.1:<A> http://127.0.0.1:<B>   (started
// by tests/chat_redis_e2e.rs, which answers `@@stop-a` by stopping A gracefully and
// `@@swept <room> <user>` once only one instance holds the user's presence in the room).
// The instances send a 2 s retry hint and keep presence for a grace period far longer than
// the failover takes.
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
  textsOf,
  waitConnected,
  waitForMessage,
  waitForSystemLine,
} from './chat_page.mjs';

const baseA = base;
const baseB = process.argv[3];
if (!baseB || !/^http:\/\/127\.0\.0\.1:\d+$/.test(baseB)) {
  console.error('usage: node chat_redis_browser.mjs http://127.0.0.1:<A> http://127.0.0.1:<B>');
  process.exit(2);
}

const DESKTOP = { width: 1280, height: 800 };

const pages = new Pages('chat-redis');

function openPage(name) {
  // A stopped instance makes the browser log refused connections; scripts must not err.
  return pages.open(name, { viewport: DESKTOP }, /Failed to load resource|net::ERR_/);
}

function lastEventIdOf(handle) {
  return handle.page.evaluate(() => JSON.parse(sessionStorage.getItem('chat.lastEventId') || '""'));
}

async function main() {
  const browser = await pages.launch();
  step(`Chromium ${browser.version()}; instance A ${baseA}, instance B ${baseB}`);
  const alice = await openPage('alice');
  const bob = await openPage('bob');

  step('alice opens A, bob opens B; both sign in');
  await openLogin(alice, baseA);
  await openLogin(bob, baseB);
  await signIn(alice, 'alice');
  await signIn(bob, 'bob');
  check((await conn(alice, 'data-origin')) === baseA, 'alice\'s stream is on A');
  check((await conn(bob, 'data-origin')) === baseB, 'bob\'s stream is on B');

  step('a name held on A cannot be taken on B');
  await checkNameTaken(pages, baseB, 'alice');

  step('presence crosses instances');
  await alice.page.waitForSelector('#people button[data-user="bob"]', WAIT);
  await waitForSystemLine(alice, 'bob joined #lobby');
  await bob.page.waitForSelector('#people button[data-user="alice"]', WAIT);
  passed('alice (on A) sees bob (on B), and bob sees alice');

  step('messages both ways across instances');
  await send(alice, 'Hello from A');
  await waitForMessage(bob, 'Hello from A');
  await send(bob, 'Hi alice, this is B — ¡hola!');
  await waitForMessage(alice, 'Hi alice, this is B — ¡hola!');
  await shot(alice, 'chat-redis-alice-on-a.png');
  await shot(bob, 'chat-redis-bob-on-b.png');

  step('instance A stops');
  // Alice's page moves to B only once bob has sent: its new stream requests are held until
  // then, however long the posts take.
  const reconnection = await holdStreams(alice);
  const opensBefore = Number(await conn(alice, 'data-opens'));
  const answer = await ask('stop-a');
  check(answer === 'stopped', `A stopped (${answer})`);
  await until(async () => (await conn(alice, 'data-state')) !== 'connected', 'alice\'s page to notice');
  const lastId = await lastEventIdOf(alice);
  check(typeof lastId === 'string' && lastId !== '', `alice's page kept its last id (${lastId})`);

  step('bob sends while alice is away');
  const away = ['while A was down 1', 'while A was down 2'];
  const statuses = await postFromPage(bob, '/rooms/lobby/messages', away);
  check(statuses.every((s) => s === 201), `bob posted two messages on B (${statuses})`);
  check(
    Number(await conn(alice, 'data-opens')) === opensBefore,
    'both were sent before alice\'s page opened a new stream',
  );
  await until(() => reconnection.held > 0, 'alice\'s page to try to reconnect (held)');
  passed('alice\'s page tried to reconnect by itself');
  reconnection.open();

  step('alice\'s page fails over to B and resumes with its last id');
  await until(async () => (await conn(alice, 'data-origin')) === baseB, 'alice\'s page to move to B', 30_000);
  await waitConnected(alice);
  check(Number(await conn(alice, 'data-failovers')) >= 1, 'the page counted a failover');
  const resumed = alice.eventUrls.filter((url) => url.startsWith(`${baseB}/`));
  check(resumed.length >= 1, `the page opened its stream on B (${resumed[0]})`);
  const resumedFrom = new URL(resumed[0]).searchParams.get('lastEventId');
  check(resumedFrom === lastId, `with lastEventId=${resumedFrom}, the last id it saw on A`);
  await checkShownOnceInOrder(alice, away);
  const texts = await textsOf(alice);
  check(texts.filter((t) => t === 'Hello from A').length === 1, 'what came before is still shown once');
  await checkNoDuplicates(alice);
  check((await conn(alice, 'data-resets')) === '0', 'resumed without a reset');

  step('alice sends again, now through B');
  await send(alice, 'Back, through B');
  await waitForMessage(bob, 'Back, through B');
  await send(bob, 'Welcome back');
  await waitForMessage(alice, 'Welcome back');
  await checkNoDuplicates(alice);
  await checkNoDuplicates(bob);

  step('nobody was told alice left');
  check((await ask('swept lobby alice')) === 'swept', 'A\'s presence of alice ran out and was swept');
  await send(bob, 'after the sweep');
  await waitForMessage(alice, 'after the sweep');
  check(!(await systemLines(bob)).includes('alice left #lobby'), 'bob never saw alice leave');
  await bob.page.waitForSelector('#people button[data-user="alice"]', WAIT);
  passed('bob still lists alice');
  await shot(alice, 'chat-redis-alice-failed-over.png');
  await shot(bob, 'chat-redis-bob-after-failover.png');

  pages.checkNoErrors();
}

await run(main, () => pages.cleanup());
