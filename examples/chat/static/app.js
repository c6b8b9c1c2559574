// tower-sse chat: the page. Plain JavaScript, no build step.
//
// One EventSource per tab carries the tab's rooms and the user's private messages. The page
// keeps its rooms, its name, its private conversations and the last event id in
// sessionStorage, so a reload resumes where it was (`lastEventId=` on the stream URL).
//
// Several instances: GET /config lists the chat's origins. The page starts on its own; when
// its stream fails and stays down (a reconnection attempt fails too, or the browser gives
// up) or a request cannot reach the server, it moves the stream and its requests to the
// next origin, resuming with `lastEventId=` (a new EventSource cannot set headers). The
// cookie is sent cross-origin (same site: same host, another port), with CORS.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  const KEYS = {
    name: 'chat.name',
    rooms: 'chat.rooms',
    active: 'chat.active',
    last: 'chat.lastEventId',
    dms: 'chat.dms',
  };
  const NAME_RE = /^[A-Za-z0-9_-]{1,24}$/;
  const ROOM_RE = /^[a-z0-9_-]{1,32}$/;
  const ORIGIN_RE = /^https?:\/\/[^/?#\s]+$/;
  const ALL_DOWN_RETRY_MS = 3000;
  const MAX_ITEMS = 500;
  const MAX_SAVED_DMS = 100;
  const GROUP_MS = 5 * 60 * 1000;

  const store = {
    get(key, fallback) {
      try {
        const value = sessionStorage.getItem(key);
        return value === null ? fallback : JSON.parse(value);
      } catch {
        return fallback;
      }
    },
    set(key, value) {
      try {
        sessionStorage.setItem(key, JSON.stringify(value));
      } catch {
        // Storage full or disabled: the page still works, it just forgets on reload.
      }
    },
    clear() {
      for (const key of Object.values(KEYS)) {
        try { sessionStorage.removeItem(key); } catch { /* ignore */ }
      }
    },
  };

  const state = {
    me: null,
    rooms: [],
    convs: new Map(),
    active: null,
    lastEventId: '',
    es: null,
    opens: 0,
    resets: 0,
    retryTimer: null,
    bannerTimer: null,
    failovers: 0,
  };

  // The chat's origins, this page's first; requests and the stream go to the current one.
  const net = {
    origins: [location.origin],
    index: 0,
    // Origins tried in a row without a stream opening: after a full round, wait a moment.
    misses: 0,
  };

  function origin() {
    return net.origins[net.index];
  }

  async function loadOrigins() {
    try {
      const res = await fetch('/config', { headers: { accept: 'application/json' } });
      const data = await res.json();
      if (data && Array.isArray(data.origins)) {
        const others = data.origins.filter((o) => typeof o === 'string' && ORIGIN_RE.test(o) && o !== location.origin);
        net.origins = [location.origin, ...new Set(others)];
      }
    } catch {
      // No list: this origin only.
    }
    $('conn').dataset.origin = origin();
  }

  // Moves the stream and the requests to the next origin; false when there is only one.
  function failover() {
    if (net.origins.length < 2) return false;
    net.index = (net.index + 1) % net.origins.length;
    net.misses += 1;
    state.failovers += 1;
    const conn = $('conn');
    conn.dataset.origin = origin();
    conn.dataset.failovers = String(state.failovers);
    if (!state.me) return true;
    if (net.misses >= net.origins.length) {
      // Every origin failed in a row: try again in a moment rather than spin.
      net.misses = 0;
      if (state.es) state.es.close();
      state.es = null;
      setConn('offline');
      clearTimeout(state.retryTimer);
      state.retryTimer = setTimeout(openStream, ALL_DOWN_RETRY_MS);
    } else {
      openStream();
    }
    return true;
  }

  // ---------------------------------------------------------------- HTTP

  async function api(base, method, path, body) {
    const init = { method, headers: { accept: 'application/json' }, credentials: 'include' };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(`${base}${path}`, init);
    let data = null;
    try { data = await res.json(); } catch { /* no body */ }
    const error = (data && typeof data.error === 'string') ? data.error : `${res.status} ${res.statusText}`;
    return { ok: res.ok, status: res.status, data, error };
  }

  // A request to the current origin; if it cannot reach the server, the page moves to the
  // next origin and tries once more there. (A request that reached the server before the
  // connection broke may then be done twice.)
  async function apiOnce(method, path, body) {
    const at = origin();
    try {
      return await api(at, method, path, body);
    } catch {
      if (origin() === at) failover();
      if (origin() !== at) {
        try {
          return await api(origin(), method, path, body);
        } catch { /* down too */ }
      }
      return { ok: false, status: 0, data: null, error: 'the server cannot be reached' };
    }
  }

  // A request refused with 403 signs in again with the kept name (the server may have
  // restarted with a new key) and is tried once more.
  async function authed(method, path, body) {
    let res = await apiOnce(method, path, body);
    if (res.status === 403 && await signInAgain()) res = await apiOnce(method, path, body);
    return res;
  }

  async function signInAgain() {
    const name = state.me || store.get(KEYS.name, null);
    if (!name) return false;
    const res = await apiOnce('POST', '/session', { name });
    if (res.ok) return true;
    if (res.status === 409) showLogin(`“${name}” was taken while you were away. Pick another name.`);
    return false;
  }

  // ---------------------------------------------------------------- the stream

  function openStream() {
    clearTimeout(state.retryTimer);
    if (state.es) state.es.close();
    const params = new URLSearchParams();
    params.set('rooms', state.rooms.join(','));
    if (state.lastEventId) params.set('lastEventId', state.lastEventId);
    const es = new EventSource(`${origin()}/events?${params}`, { withCredentials: true });
    state.es = es;
    setConn(state.opens ? 'reconnecting' : 'connecting');

    // Errors since the stream last opened. The browser reconnects by itself after an error;
    // when that fails too (or a new stream fails at once), this origin counts as down.
    let opened = false;
    let errors = 0;
    es.addEventListener('open', () => {
      if (state.es !== es) return;
      opened = true;
      errors = 0;
      net.misses = 0;
      state.opens += 1;
      setConn('connected');
    });
    es.addEventListener('error', () => {
      if (state.es !== es) return;
      errors += 1;
      if (es.readyState === EventSource.CLOSED) {
        setConn('offline');
        recover();
      } else if (errors >= (opened ? 2 : 1) && failover()) {
        // Moved to the next origin with the last id.
      } else {
        setConn('reconnecting');
      }
    });
    for (const [type, handler] of Object.entries(handlers)) {
      es.addEventListener(type, (event) => {
        if (state.es !== es) return;
        if (event.lastEventId) {
          state.lastEventId = event.lastEventId;
          store.set(KEYS.last, state.lastEventId);
        }
        let data;
        try { data = JSON.parse(event.data); } catch { return; }
        if (data && typeof data === 'object') handler(data, event.lastEventId);
      });
    }
  }

  // The browser gave up (the server answered something other than an event stream):
  // sign in again if the session is gone, otherwise try again in a moment.
  async function recover() {
    const at = origin();
    const res = await apiOnce('GET', '/session');
    if (!state.me) return;
    // The server could not be reached: the page moved to another origin and reopened there.
    if (origin() !== at) return;
    if (res.status === 403) {
      if (await signInAgain()) openStream();
      else if (state.me) showLogin('Your session ended. Sign in again.');
      return;
    }
    state.retryTimer = setTimeout(openStream, 3000);
  }

  const handlers = {
    hello(data) {
      if (!state.lastEventId && typeof data.position === 'string' && data.position) {
        state.lastEventId = data.position;
        store.set(KEYS.last, state.lastEventId);
      }
      if (!Array.isArray(data.rooms)) return;
      for (const r of data.rooms) {
        const conv = state.convs.get(`room:${r.room}`);
        if (!conv) continue;
        conv.online = new Set(r.online);
        if (!conv.loaded) loadRoom(conv);
      }
      render();
    },
    chat(data, id) {
      const conv = state.convs.get(`room:${data.room}`);
      if (!conv) return;
      addItem(conv, { id, kind: 'msg', from: data.from, text: data.text, at: data.at });
    },
    private(data, id) {
      const other = data.from === state.me ? data.to : data.from;
      if (!NAME_RE.test(other || '')) return;
      const conv = dmConv(other);
      addItem(conv, { id, kind: 'msg', from: data.from, text: data.text, at: data.at, private: true });
      saveDms();
    },
    'user-joined'(data, id) {
      const conv = state.convs.get(`room:${data.room}`);
      if (!conv) return;
      conv.online.add(data.user);
      const who = data.user === state.me ? 'You' : data.user;
      addItem(conv, { id, kind: 'sys', text: `${who} joined #${data.room}` });
    },
    'user-left'(data, id) {
      const conv = state.convs.get(`room:${data.room}`);
      if (!conv) return;
      conv.online.delete(data.user);
      const who = data.user === state.me ? 'You' : data.user;
      addItem(conv, { id, kind: 'sys', text: `${who} left #${data.room}` });
    },
    // The hub could not resume after our last id (the server restarted, or we were away
    // longer than it keeps events): forget what the rooms showed and load them again.
    reset(data, id) {
      state.resets += 1;
      $('conn').dataset.resets = String(state.resets);
      for (const conv of state.convs.values()) {
        if (conv.kind !== 'room') continue;
        conv.items = [];
        conv.ids = new Set();
        conv.loaded = false;
        addItem(conv, { id, kind: 'sys', cls: 'reset', text: 'Reconnected to a restarted server' });
        loadRoom(conv);
      }
      showBanner('The server restarted: rooms were reloaded. Messages from before may be gone.');
      render();
    },
  };

  async function loadRoom(conv) {
    conv.loaded = true;
    const res = await authed('GET', `/rooms/${encodeURIComponent(conv.name)}`);
    if (!res.ok || !res.data || !Array.isArray(res.data.messages)) {
      conv.loaded = false;
      return;
    }
    mergeHistory(conv, res.data.messages);
  }

  // History first, in server order; then what the stream already brought that the history
  // does not hold. Ids drop duplicates.
  function mergeHistory(conv, messages) {
    const history = [];
    const ids = new Set();
    for (const m of messages) {
      if (!m || typeof m.id !== 'string' || ids.has(m.id)) continue;
      ids.add(m.id);
      history.push({ id: m.id, kind: 'msg', from: m.from, text: m.text, at: m.at });
    }
    const rest = conv.items.filter((item) => !item.id || !ids.has(item.id));
    conv.items = history.concat(rest).slice(-MAX_ITEMS);
    conv.ids = new Set(conv.items.map((item) => item.id).filter(Boolean));
    if (conv.key === state.active) renderMessages(true);
  }

  // ---------------------------------------------------------------- conversations

  function roomConv(room) {
    const key = `room:${room}`;
    let conv = state.convs.get(key);
    if (!conv) {
      conv = { key, kind: 'room', name: room, items: [], ids: new Set(), unread: 0, online: new Set(), loaded: false };
      state.convs.set(key, conv);
    }
    return conv;
  }

  function dmConv(name) {
    const key = `dm:${name}`;
    let conv = state.convs.get(key);
    if (!conv) {
      conv = { key, kind: 'dm', name, items: [], ids: new Set(), unread: 0, online: new Set(), loaded: true };
      state.convs.set(key, conv);
    }
    return conv;
  }

  function addItem(conv, item) {
    if (item.id) {
      if (conv.ids.has(item.id)) return;
      conv.ids.add(item.id);
    }
    conv.items.push(item);
    if (conv.items.length > MAX_ITEMS) {
      const dropped = conv.items.shift();
      if (dropped.id) conv.ids.delete(dropped.id);
    }
    if (conv.key === state.active) {
      renderMessages(false);
    } else if (item.kind === 'msg') {
      conv.unread += 1;
    }
    renderSidebar();
    renderHeader();
  }

  function saveDms() {
    const saved = {};
    for (const conv of state.convs.values()) {
      if (conv.kind === 'dm') saved[conv.name] = conv.items.slice(-MAX_SAVED_DMS);
    }
    store.set(KEYS.dms, saved);
  }

  function saveRooms() {
    store.set(KEYS.rooms, state.rooms);
  }

  function activate(key) {
    const conv = state.convs.get(key);
    state.active = conv ? key : null;
    if (conv) conv.unread = 0;
    store.set(KEYS.active, state.active);
    document.body.classList.remove('drawer-open');
    $('send-error').hidden = true;
    render();
  }

  async function joinRoom(room) {
    const error = $('join-error');
    error.textContent = '';
    if (!ROOM_RE.test(room)) {
      error.textContent = 'Room names are 1–32 lowercase letters, digits, underscores or hyphens.';
      return;
    }
    if (state.rooms.includes(room)) {
      activate(`room:${room}`);
      return;
    }
    const res = await authed('POST', `/rooms/${encodeURIComponent(room)}/join`);
    if (!res.ok) {
      error.textContent = res.error;
      return;
    }
    state.rooms.push(room);
    saveRooms();
    const conv = roomConv(room);
    conv.online = new Set(Array.isArray(res.data.online) ? res.data.online : []);
    mergeHistory(conv, Array.isArray(res.data.messages) ? res.data.messages : []);
    // Without a last id the new stream cannot replay what was posted meanwhile: load the
    // room again once it is subscribed.
    conv.loaded = Boolean(state.lastEventId);
    activate(conv.key);
    openStream();
  }

  async function leaveRoom(room) {
    await authed('POST', `/rooms/${encodeURIComponent(room)}/leave`);
    state.rooms = state.rooms.filter((r) => r !== room);
    saveRooms();
    state.convs.delete(`room:${room}`);
    const next = state.rooms.length ? `room:${state.rooms[0]}` : firstDmKey();
    activate(next);
    openStream();
  }

  function firstDmKey() {
    for (const conv of state.convs.values()) if (conv.kind === 'dm') return conv.key;
    return null;
  }

  async function send(text) {
    const conv = state.convs.get(state.active);
    if (!conv || !text.trim()) return;
    const path = conv.kind === 'room'
      ? `/rooms/${encodeURIComponent(conv.name)}/messages`
      : `/users/${encodeURIComponent(conv.name)}/messages`;
    const button = $('send');
    button.disabled = true;
    const res = await authed('POST', path, { text });
    button.disabled = false;
    const error = $('send-error');
    if (res.ok) {
      $('text').value = '';
      error.hidden = true;
    } else {
      error.textContent = res.error;
      error.hidden = false;
    }
  }

  // ---------------------------------------------------------------- rendering

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function hue(name) {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
    return h;
  }

  function avatar(name) {
    const node = el('span', 'avatar', name.slice(0, 1));
    node.style.background = `hsl(${hue(name)} 55% 52%)`;
    return node;
  }

  function timeOf(at) {
    if (typeof at !== 'number') return '';
    return new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function setConn(status) {
    const conn = $('conn');
    conn.dataset.state = status;
    conn.dataset.opens = String(state.opens);
    conn.dataset.origin = origin();
    conn.title = `Stream status (${origin()})`;
    const text = { connected: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', offline: 'offline' };
    $('conn-text').textContent = text[status] || status;
  }

  function showBanner(text) {
    $('banner-text').textContent = text;
    $('banner').hidden = false;
    clearTimeout(state.bannerTimer);
    state.bannerTimer = setTimeout(() => { $('banner').hidden = true; }, 15000);
  }

  function render() {
    renderSidebar();
    renderHeader();
    renderMessages(true);
  }

  function renderSidebar() {
    const roomList = $('room-list');
    roomList.replaceChildren(...state.rooms.map((room) => {
      const conv = state.convs.get(`room:${room}`);
      const button = el('button');
      button.type = 'button';
      button.dataset.room = room;
      if (conv.key === state.active) button.setAttribute('aria-current', 'true');
      button.append(el('span', 'hash', '#'), el('span', 'name', room));
      if (conv.unread) button.append(el('span', 'badge', String(conv.unread)));
      else if (conv.online.size) button.append(el('span', 'online', String(conv.online.size)));
      button.addEventListener('click', () => activate(conv.key));
      const li = el('li');
      li.append(button);
      return li;
    }));

    const dms = [...state.convs.values()].filter((c) => c.kind === 'dm');
    $('dm-list').replaceChildren(...dms.map((conv) => {
      const button = el('button');
      button.type = 'button';
      button.dataset.user = conv.name;
      if (conv.key === state.active) button.setAttribute('aria-current', 'true');
      button.append(el('span', 'hash', '@'), el('span', 'name', conv.name));
      if (conv.unread) button.append(el('span', 'badge', String(conv.unread)));
      button.addEventListener('click', () => activate(conv.key));
      const li = el('li');
      li.append(button);
      return li;
    }));
    $('dm-empty').hidden = dms.length > 0;

    const active = state.convs.get(state.active);
    const section = $('people-section');
    section.hidden = !active || active.kind !== 'room';
    if (active && active.kind === 'room') {
      const names = [...active.online].sort((a, b) => (a === state.me ? -1 : b === state.me ? 1 : a.localeCompare(b)));
      $('people-room').textContent = `#${active.name}`;
      $('people-count').textContent = String(names.length);
      $('people').replaceChildren(...names.map((name) => {
        const button = el('button');
        button.type = 'button';
        button.dataset.user = name;
        button.append(avatar(name), el('span', 'name', name));
        if (name === state.me) {
          button.disabled = true;
          button.append(el('span', 'you', 'you'));
        } else {
          button.title = `Message ${name} privately`;
          button.append(el('span', 'dm-hint', 'message'));
          button.addEventListener('click', () => activate(dmConv(name).key));
        }
        const li = el('li');
        li.append(button);
        return li;
      }));
    }

    const unread = [...state.convs.values()].some((c) => c.unread > 0);
    $('menu-badge').hidden = !unread;
    $('me-name').textContent = state.me || '';
    $('me-avatar').replaceWith(Object.assign(avatar(state.me || '?'), { id: 'me-avatar' }));
  }

  function renderHeader() {
    const conv = state.convs.get(state.active);
    const subtitle = $('subtitle');
    subtitle.replaceChildren();
    $('leave').hidden = !conv || conv.kind !== 'room';
    $('composer').hidden = !conv;
    if (!conv) {
      $('title').textContent = 'No room';
      return;
    }
    if (conv.kind === 'room') {
      $('title').textContent = `#${conv.name}`;
      subtitle.append(el('span', 'dot-ok'), `${conv.online.size} online`);
      $('text').placeholder = `Message #${conv.name}`;
    } else {
      $('title').textContent = `@${conv.name}`;
      subtitle.append('private conversation');
      $('text').placeholder = `Message ${conv.name} privately`;
    }
  }

  function renderMessages(full) {
    const list = $('messages');
    const conv = state.convs.get(state.active);
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    const items = conv ? conv.items : [];
    if (full || list.childElementCount > items.length || list.childElementCount < items.length - 1) {
      list.replaceChildren(...items.map((item, i) => itemNode(item, items[i - 1])));
    } else if (list.childElementCount === items.length - 1) {
      list.append(itemNode(items[items.length - 1], items[items.length - 2]));
    }
    const hasMessages = items.some((item) => item.kind === 'msg');
    $('empty').hidden = hasMessages || !conv;
    list.hidden = !hasMessages && !items.length;
    $('empty-text').textContent = conv && conv.kind === 'dm'
      ? `This is the start of your conversation with ${conv.name}.`
      : 'No messages yet. Say hello!';
    if (!conv) {
      $('empty').hidden = false;
      $('empty-text').textContent = 'Join a room from the menu to start chatting.';
    }
    if (full || atBottom) list.scrollTop = list.scrollHeight;
  }

  function itemNode(item, previous) {
    if (item.kind === 'sys') {
      const li = el('li', `sys${item.cls ? ` ${item.cls}` : ''}`, item.text);
      if (item.id) li.dataset.id = item.id;
      return li;
    }
    const from = String(item.from || '?');
    const li = el('li', 'msg');
    if (item.id) li.dataset.id = item.id;
    li.dataset.from = from;
    if (from === state.me) li.classList.add('mine');
    if (item.private) li.classList.add('private');
    const continued = previous && previous.kind === 'msg' && previous.from === from
      && typeof item.at === 'number' && typeof previous.at === 'number' && item.at - previous.at < GROUP_MS;
    if (continued) li.classList.add('cont');
    const body = el('div', 'body');
    const meta = el('div', 'meta');
    meta.append(el('span', 'from', from), el('time', 'time', timeOf(item.at)));
    body.append(meta, el('div', 'text', String(item.text ?? '')));
    li.append(avatar(from), body);
    return li;
  }

  // ---------------------------------------------------------------- sign in and out

  function showLogin(message) {
    if (state.es) state.es.close();
    state.es = null;
    clearTimeout(state.retryTimer);
    state.me = null;
    state.convs = new Map();
    state.rooms = [];
    state.active = null;
    $('chat').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    $('login-name').focus();
  }

  function startChat(name) {
    state.me = name;
    store.set(KEYS.name, name);
    state.lastEventId = store.get(KEYS.last, '') || '';
    const rooms = store.get(KEYS.rooms, null);
    state.rooms = Array.isArray(rooms) ? rooms.filter((r) => ROOM_RE.test(r)) : ['lobby'];
    state.convs = new Map();
    for (const room of state.rooms) roomConv(room);
    const dms = store.get(KEYS.dms, {});
    if (dms && typeof dms === 'object') {
      for (const [other, items] of Object.entries(dms)) {
        if (!NAME_RE.test(other) || !Array.isArray(items)) continue;
        const conv = dmConv(other);
        for (const item of items) {
          if (item && item.id && !conv.ids.has(item.id)) {
            conv.ids.add(item.id);
            conv.items.push(item);
          }
        }
      }
    }
    const active = store.get(KEYS.active, null);
    state.active = state.convs.has(active) ? active : (state.rooms.length ? `room:${state.rooms[0]}` : firstDmKey());
    $('login').hidden = true;
    $('chat').hidden = false;
    render();
    openStream();
  }

  async function boot() {
    await loadOrigins();
    const res = await apiOnce('GET', '/session');
    if (res.ok && res.data && typeof res.data.name === 'string') {
      if (res.data.name !== store.get(KEYS.name, res.data.name)) store.clear();
      startChat(res.data.name);
      return;
    }
    // A name kept from before (the server restarted with a new key): sign in again.
    const name = store.get(KEYS.name, null);
    if (res.status === 403 && typeof name === 'string' && NAME_RE.test(name)) {
      const again = await apiOnce('POST', '/session', { name });
      if (again.ok) {
        startChat(name);
        return;
      }
    }
    showLogin(res.status === 0 ? 'The server cannot be reached. Reload to try again.' : '');
  }

  // ---------------------------------------------------------------- wiring

  $('login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = $('login-name').value.trim();
    const error = $('login-error');
    if (!NAME_RE.test(name)) {
      error.textContent = 'Use 1–24 letters, digits, underscores or hyphens.';
      return;
    }
    $('login-submit').disabled = true;
    const res = await apiOnce('POST', '/session', { name });
    $('login-submit').disabled = false;
    if (!res.ok) {
      error.textContent = res.error;
      return;
    }
    if (store.get(KEYS.name, name) !== name) store.clear();
    startChat(res.data.name);
  });

  $('join-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('join-name');
    const room = input.value.trim().toLowerCase().replace(/^#/, '');
    input.value = '';
    joinRoom(room);
  });

  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    send($('text').value);
  });

  $('leave').addEventListener('click', () => {
    const conv = state.convs.get(state.active);
    if (conv && conv.kind === 'room') leaveRoom(conv.name);
  });

  $('logout').addEventListener('click', async () => {
    await apiOnce('DELETE', '/session');
    store.clear();
    state.lastEventId = '';
    showLogin('');
  });

  $('menu').addEventListener('click', () => document.body.classList.toggle('drawer-open'));
  $('scrim').addEventListener('click', () => document.body.classList.remove('drawer-open'));
  $('banner-close').addEventListener('click', () => { $('banner').hidden = true; });

  boot();
})();
