// The `eventsource` npm package as a second real client of the chat example: it
// subscribes with a session cookie, receives room and private messages, is cut off by the
// server and reconnects by itself with Last-Event-ID, getting what was posted meanwhile
// exactly once; a stream for someone else's private topic, or with a forged cookie, is
// refused.
//
// Usage: node chat_eventsource.mjs http://127.0.0.1:<port>   (started by tests/chat_e2e.rs;
// the server has a 1 s retry hint and the test-only POST /admin/kick).
import { EventSource } from 'eventsource';
import { Gate, base, check, passed, run, step, until } from './lib.mjs';

const TYPES = ['hello', 'chat', 'private', 'user-joined', 'user-left', 'reset'];
const sources = [];

async function signIn(name) {
  const res = await fetch(`${base}/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  check(res.status === 200, `${name} signs in`);
  const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).find((c) => c.startsWith('chat_session='));
  check(Boolean(cookie), `${name} got a session cookie`);
  return cookie;
}

async function post(cookie, path, body) {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

// An EventSource that sends `cookie`, recording what it sees. `hold()` returns a gate that
// holds the client's later connection attempts until it is opened.
function subscribe(cookie, query) {
  const log = { events: [], opens: 0, errors: [], lastIdsSent: [] };
  let gate = null;
  const es = new EventSource(`${base}/events?${query}`, {
    fetch: async (input, init) => {
      const headers = { ...init.headers, cookie };
      log.lastIdsSent.push(headers['Last-Event-ID'] ?? null);
      if (gate) await gate.pass();
      return fetch(input, { ...init, headers });
    },
  });
  es.addEventListener('open', () => { log.opens += 1; });
  es.addEventListener('error', (event) => {
    log.errors.push({ code: event.code, message: event.message, readyState: es.readyState });
  });
  for (const type of TYPES) {
    es.addEventListener(type, (event) => {
      log.events.push({ type, id: event.lastEventId, data: JSON.parse(event.data) });
    });
  }
  sources.push(es);
  const hold = () => { gate = new Gate(); return gate; };
  return { es, log, hold };
}

const chats = (log) => log.events.filter((e) => e.type === 'chat');

async function main() {
  const carol = await signIn('carol');
  const dave = await signIn('dave');

  step('carol subscribes to #lobby and her private topic');
  const { es, log, hold } = subscribe(carol, 'rooms=lobby');
  await until(() => log.events.some((e) => e.type === 'hello'), 'hello');
  const hello = log.events.find((e) => e.type === 'hello');
  check(hello.data.user === 'carol' && hello.id === '', 'hello names carol and carries no id');
  check(log.lastIdsSent[0] === null, 'the first request has no Last-Event-ID');

  step('room messages arrive with ids');
  for (const text of ['one', 'two']) {
    const res = await post(dave, '/rooms/lobby/messages', { text });
    check(res.status === 201, `dave posts "${text}"`);
  }
  await until(() => chats(log).length === 2, 'two chat events');
  check(chats(log).every((e) => e.id && e.data.from === 'dave'), 'both from dave, with ids');

  step('private messages');
  await post(dave, '/users/carol/messages', { text: 'psst' });
  await until(() => log.events.some((e) => e.type === 'private'), 'a private event');
  const dm = log.events.find((e) => e.type === 'private');
  check(dm.data.from === 'dave' && dm.data.to === 'carol' && dm.data.text === 'psst', 'carol got dave\'s private message');

  step('the server ends the stream; the client reconnects with Last-Event-ID');
  // The client reconnects only once dave has posted: its connection attempts are held
  // until then, however long the posts take.
  const reconnection = hold();
  const lastBefore = log.events.at(-1).id;
  const kick = await fetch(`${base}/admin/kick`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user: 'carol' }),
  });
  check((await kick.json()).streams === 1, 'carol\'s stream was ended by the server');
  await until(() => log.errors.length === 1, 'the client to notice the end');
  check(es.readyState === EventSource.CONNECTING, 'the client is reconnecting, not closed');
  for (const text of ['three', 'four']) {
    const res = await post(dave, '/rooms/lobby/messages', { text });
    check(res.status === 201, `dave posts "${text}" while carol is away`);
  }
  check(log.opens === 1, 'both were posted before the client reconnected');
  await until(() => reconnection.held > 0, 'the client to try to reconnect (held)');
  passed('the client tried to reconnect by itself');
  reconnection.open();
  await until(() => chats(log).length === 4, 'the two messages posted meanwhile');
  check(log.opens === 2, 'the client reconnected once');
  check(log.lastIdsSent[1] === lastBefore, `the reconnect sent Last-Event-ID: ${lastBefore}`);
  const texts = chats(log).map((e) => e.data.text);
  check(JSON.stringify(texts) === JSON.stringify(['one', 'two', 'three', 'four']), `in order, no duplicate: ${texts}`);
  const ids = log.events.map((e) => e.id).filter(Boolean);
  check(new Set(ids).size === ids.length, 'no event id seen twice');
  check(!log.events.some((e) => e.type === 'reset'), 'no reset: the hub still held everything');

  step('live after the reconnect');
  await post(dave, '/rooms/lobby/messages', { text: 'five' });
  await until(() => chats(log).length === 5, 'a live message');

  step('refused streams stop the client (403)');
  const spy = subscribe(dave, 'rooms=lobby&user=carol');
  await until(() => spy.log.errors.length > 0, 'dave\'s refusal');
  check(spy.log.errors[0].code === 403 && spy.es.readyState === EventSource.CLOSED, 'another user\'s private topic: 403, closed');
  const forged = subscribe(carol.replace('carol', 'dave'), 'rooms=lobby');
  await until(() => forged.log.errors.length > 0, 'the forged cookie\'s refusal');
  check(forged.log.errors[0].code === 403 && forged.es.readyState === EventSource.CLOSED, 'a forged cookie: 403, closed');

  step('bad requests get JSON errors');
  const cases = [
    ['{"text":', 400],
    [JSON.stringify({ text: 'x'.repeat(10_000) }), 413],
    [JSON.stringify({ text: '' }), 400],
  ];
  for (const [body, status] of cases) {
    const res = await post(carol, '/rooms/lobby/messages', body);
    const json = await res.json();
    check(res.status === status && typeof json.error === 'string', `${status}: ${json.error}`);
  }
}

await run(main, async () => { for (const es of sources) es.close(); });
