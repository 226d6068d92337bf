// Membrane security console: a dependency-free front end for the gateway's /console/api.
//
// Everything the API returns is treated as untrusted (tool names, callers and reasons are
// chosen by whoever calls the gateway), so the DOM is only ever built with createElement and
// textContent. The page runs under a CSP without 'unsafe-inline', hence no inline styles or
// handlers anywhere.
'use strict';

const TOKEN_KEY = 'membrane-console-token';
const VIEWS = ['live', 'search', 'timeline', 'chain', 'charts', 'approvals'];
const VERDICTS = ['allow', 'deny', 'ask', 'redact'];
const FILTER_FIELDS = ['identity', 'upstream', 'tool', 'verdict', 'rule', 'txn', 'since', 'until'];
const LIVE_MAX_ROWS = 500;
const RECONNECT_MS = 2000;
const APPROVALS_POLL_MS = 2000;
const CHAIN_POLL_MS = 30000;
const NOTICE_MS = 6000;
// An XML namespace identifier required by createElementNS, not a URL that is ever fetched.
const SVG_NS = 'http://www.w3.org/2000/svg';

// ---------------------------------------------------------------------------------------------
// Small DOM and formatting helpers

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  setProps(node, props);
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function svgEl(tag, props, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setProps(node, props);
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function setProps(node, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
}

// Renders any JSON value as plain text; objects are shown as JSON rather than "[object Object]".
function str(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  try { return JSON.stringify(value); } catch { return String(value); }
}

function list(value) {
  if (Array.isArray(value)) return value.map(str).filter(Boolean);
  return value === null || value === undefined || value === '' ? [] : [str(value)];
}

function formatTime(iso) {
  const text = str(iso);
  return /^\d{4}-\d\d-\d\dT/.test(text) ? text.replace('T', ' ').replace(/Z$/, '') : text;
}

function formatLatency(us) {
  const n = Number(us);
  return us === null || us === undefined || us === '' || !Number.isFinite(n) ? '' : `${(n / 1000).toFixed(2)} ms`;
}

function round2(n) {
  return String(Math.round(Number(n) * 100) / 100);
}

function formatBytes(n) {
  const v = Number(n) || 0;
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 1024) return `${(v / 1024).toFixed(1)} KiB`;
  return `${(v / 1024 / 1024).toFixed(1)} MiB`;
}

function formatSeconds(ms) {
  return `${(ms / 1000).toFixed(3)} s`;
}

function parseTime(iso) {
  const t = Date.parse(str(iso));
  return Number.isFinite(t) ? t : null;
}

function verdictClass(verdict) {
  return VERDICTS.includes(verdict) ? verdict : verdict ? 'other' : 'none';
}

function verdictPill(verdict) {
  const v = str(verdict);
  return el('span', { class: `pill verdict-${verdictClass(v)}`, text: v || '—' });
}

function timelineHash(txn) {
  return `#timeline/${encodeURIComponent(txn)}`;
}

function txnLink(txn) {
  const t = str(txn);
  if (!t) return '';
  return el('a', { class: 'txn-link mono', href: timelineHash(t), title: `Open the timeline of ${t}`, text: t });
}

// Every async entry point goes through this so that nothing ends as an unhandled rejection.
function guard(fn) {
  return (...args) => {
    Promise.resolve().then(() => fn(...args)).catch((err) => console.error('console:', err));
  };
}

// ---------------------------------------------------------------------------------------------
// API access

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Thrown when an answer arrives for a session that has since ended; callers drop it silently.
class StaleError extends Error {}

const session = { token: null, whoami: null, epoch: 0, timers: [] };

async function readError(response) {
  let code = '';
  let description = '';
  try {
    const body = await response.json();
    if (body && typeof body === 'object') {
      code = str(body.error);
      description = str(body.error_description);
    }
  } catch { /* not JSON (e.g. from a proxy): fall back to the status line */ }
  const fallback = `HTTP ${response.status} ${response.statusText || ''}`.trim();
  return new ApiError(response.status, code, description || code || fallback);
}

async function apiFetch(path, init = {}) {
  const epoch = session.epoch;
  if (!session.token) throw new StaleError('signed out');
  const headers = new Headers(init.headers || {});
  headers.set('Authorization', `Bearer ${session.token}`);
  let response;
  try {
    response = await fetch(path, { ...init, headers, cache: 'no-store' });
  } catch (err) {
    if (epoch !== session.epoch) throw new StaleError('signed out');
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network_error', `Cannot reach the gateway (${err && err.message ? err.message : err}).`);
  }
  if (epoch !== session.epoch) throw new StaleError('signed out');
  if (response.status === 401) {
    const err = await readError(response);
    endSession(`Signed out: ${err.message}`);
    throw new StaleError('signed out');
  }
  return response;
}

async function apiJson(path, init) {
  const epoch = session.epoch;
  const response = await apiFetch(path, init);
  if (!response.ok) throw await readError(response);
  let body;
  try { body = await response.json(); } catch {
    throw new ApiError(response.status, 'bad_response', 'The gateway sent an answer that is not valid JSON.');
  }
  if (epoch !== session.epoch) throw new StaleError('signed out');
  if (!body || typeof body !== 'object') throw new ApiError(response.status, 'bad_response', 'Unexpected answer from the gateway.');
  return body;
}

function isQuiet(err) {
  return err instanceof StaleError || (err && err.name === 'AbortError');
}

function showError(view, err) {
  if (isQuiet(err)) return;
  const node = $(`${view}-error`);
  node.textContent = err instanceof Error ? err.message : str(err);
  node.hidden = false;
}

function clearError(view) {
  const node = $(`${view}-error`);
  node.textContent = '';
  node.hidden = true;
}

// ---------------------------------------------------------------------------------------------
// Sign-in and session lifetime

function setLoginError(message) {
  const node = $('login-error');
  node.textContent = message || '';
  node.hidden = !message;
}

let signingIn = false;

async function signIn(rawToken, fromStorage) {
  const token = str(rawToken).trim().replace(/^Bearer\s+/i, '');
  if (!token) { setLoginError('Paste a bearer token first.'); return; }
  // fetch() rejects header values with control characters; say why instead of a cryptic TypeError.
  if (!/^[\x21-\x7e]+$/.test(token)) { setLoginError('The token contains characters that cannot be sent in a header.'); return; }

  // Enter and the button can both fire; two concurrent sign-ins would start two sets of timers.
  if (signingIn || session.token) return;
  signingIn = true;
  const button = $('login-button');
  button.disabled = true;
  setLoginError('');
  let response;
  try {
    response = await fetch('api/whoami', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
  } catch (err) {
    setLoginError(`Cannot reach the gateway (${err && err.message ? err.message : err}).`);
    return;
  } finally {
    signingIn = false;
    button.disabled = false;
  }
  if (!response.ok) {
    const err = await readError(response);
    if (response.status === 401 || response.status === 403) sessionStorage.removeItem(TOKEN_KEY);
    setLoginError(fromStorage ? `Saved session rejected: ${err.message}` : err.message);
    return;
  }
  let who;
  try { who = await response.json(); } catch { who = null; }
  if (!who || typeof who !== 'object') { setLoginError('Unexpected answer from api/whoami.'); return; }
  sessionStorage.setItem(TOKEN_KEY, token);
  startSession(token, who);
}

function startSession(token, who) {
  session.epoch += 1;
  session.token = token;
  session.whoami = who;
  $('token-input').value = '';
  setLoginError('');

  $('whoami').textContent = str(who.subject) || '(no subject)';
  $('whoami').title = `Scopes: ${list(who.scopes).join(' ') || 'none'}`;
  $('whoami-replica').textContent = who.replica ? `@ ${str(who.replica)}` : '';
  $('approvals-scope-note').hidden = who.can_approve === true;

  $('login').hidden = true;
  $('app').hidden = false;

  route();
  startFeed();
  guard(refreshChain)();
  guard(pollApprovals)();
  session.timers.push(setInterval(guard(refreshChain), CHAIN_POLL_MS));
  session.timers.push(setInterval(guard(pollApprovals), APPROVALS_POLL_MS));
  session.timers.push(setInterval(updateCountdowns, 1000));
}

// Also used when any call answers 401: the token is forgotten and every view is wiped, so the
// next person at this screen sees nothing of the previous session.
function endSession(message) {
  session.epoch += 1;
  session.token = null;
  session.whoami = null;
  sessionStorage.removeItem(TOKEN_KEY);
  for (const timer of session.timers) clearInterval(timer);
  session.timers = [];
  stopFeed();
  resetViews();
  $('app').hidden = true;
  $('login').hidden = false;
  setLoginError(message || '');
  $('token-input').focus();
}

function resetViews() {
  live.paused = false;
  live.held = [];
  live.heldCount = 0;
  clearTable($('live-table'));
  live.rows = 0;
  updatePauseUi();
  setLiveStatus('disconnected', 'off');

  search.gen += 1;
  clearTable($('search-table'));
  $('search-summary').textContent = '';
  $('search-limit').hidden = true;
  $('search-more').hidden = true;

  timeline.gen += 1;
  timeline.loaded = '';
  $('timeline-txn').value = '';
  clearTimeline();

  $('chain-table').tBodies[0].replaceChildren();
  $('chain-checked').textContent = '';
  setBanner('unknown', 'Checking the audit chain…');

  chain.inflight = false;
  charts.gen += 1;
  for (const id of ['chart-verdicts', 'chart-upstreams', 'chart-denied', 'chart-latency']) $(id).replaceChildren();
  $('charts-range').textContent = '';

  approvals.cards.clear();
  approvals.answered.clear();
  approvals.inflight = false;
  $('approvals-list').replaceChildren();
  $('approvals-notice').hidden = true;
  updateApprovalCount();

  for (const view of VIEWS) clearError(view);
}

// ---------------------------------------------------------------------------------------------
// Navigation: the URL hash is the source of truth so views can be linked and Back works.

function parseHash() {
  const raw = location.hash.replace(/^#/, '');
  const slash = raw.indexOf('/');
  const name = slash < 0 ? raw : raw.slice(0, slash);
  let arg = slash < 0 ? '' : raw.slice(slash + 1);
  try { arg = decodeURIComponent(arg); } catch { /* keep the raw text */ }
  return { view: VIEWS.includes(name) ? name : 'live', arg };
}

function route() {
  if (!session.token) return;
  const { view, arg } = parseHash();
  for (const name of VIEWS) {
    const active = name === view;
    $(`view-${name}`).hidden = !active;
    $(`tab-${name}`).setAttribute('aria-selected', String(active));
    $(`tab-${name}`).classList.toggle('active', active);
  }
  if (view === 'timeline' && arg && arg !== timeline.loaded) guard(loadTimeline)(arg);
  if (view === 'chain') guard(refreshChain)();
  if (view === 'charts') guard(loadCharts)();
  if (view === 'approvals') guard(pollApprovals)();
}

function openTimeline(txn) {
  const hash = timelineHash(txn);
  // Same hash means no hashchange event, so reload explicitly.
  if (location.hash === hash) guard(loadTimeline)(txn);
  else location.hash = hash;
}

// ---------------------------------------------------------------------------------------------
// Filters shared by the live feed and search

function isoFromInput(value) {
  const text = str(value).trim();
  // datetime-local gives local-looking wall time; the label says UTC and we send it as such.
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d)/.exec(text);
  return m ? m[1] : text;
}

// Returns [name, value] pairs; see queryString for the encoding.
function filterParams(prefix) {
  const params = [];
  for (const field of FILTER_FIELDS) {
    let value = $(`${prefix}-filter-${field}`).value.trim();
    if (field === 'verdict' && value === 'any') value = '';
    if (field === 'since' || field === 'until') value = isoFromInput(value);
    if (value) params.push([field, value]);
  }
  return params;
}

// Percent-encodes everything (spaces as %20, not URLSearchParams' '+') so the gateway's query
// decoder cannot read a '+' in a value differently from what the user typed.
function queryString(params) {
  return params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
}

// ---------------------------------------------------------------------------------------------
// Record tables

const rowRecords = new WeakMap();

const DETAIL_ORDER = ['seq', 'time', 'type', 'identity', 'txn', 'session', 'client', 'method', 'server', 'tool',
  'virtual_server', 'published_name', 'verdict', 'rules', 'policy_note', 'approval_by', 'approver', 'approval_reason',
  'status',
  'outcome', 'latency_us', 'args_sha256', 'trace_id', 'request_id', 'file', 'line'];

function isCall(record) {
  return record.type === undefined || record.type === null || record.type === '' || record.type === 'call';
}

function recordRow(record) {
  const row = el('tr', {
    class: isCall(record) ? 'record-row' : 'record-row special-row',
    'data-seq': str(record.seq),
    'data-verdict': str(record.verdict),
    tabindex: 0,
  });
  rowRecords.set(row, record);
  const time = el('td', { class: 'mono nowrap', title: str(record.time), text: formatTime(record.time) });
  if (!isCall(record)) {
    // Gap and checkpoint records describe the log itself, not a call; summarise what they carry.
    const extra = Object.keys(record)
      .filter((k) => !['seq', 'time', 'type', 'file', 'line'].includes(k))
      .slice(0, 6)
      .map((k) => `${k}=${str(record[k])}`)
      .join('  ');
    row.append(time, el('td', { colspan: 9 },
      el('span', { class: 'special-type', text: str(record.type) }), ' ', el('span', { class: 'mono muted', text: extra })));
    return row;
  }
  const notes = list(record.policy_note);
  const verdictCell = el('td', { class: 'nowrap' }, verdictPill(record.verdict),
    notes.map((n) => el('span', { class: 'tag', text: n })));
  const status = el('td', { class: 'num mono', text: str(record.status) });
  if (record.outcome && record.outcome !== 'ok') {
    status.append(' ', el('span', { class: 'tag tag-bad', text: str(record.outcome) }));
  }
  row.append(
    time,
    el('td', { class: 'trunc', title: str(record.identity), text: str(record.identity) }),
    el('td', { class: 'trunc', text: str(record.server) }),
    el('td', { class: 'trunc strong', title: str(record.tool), text: str(record.tool) }),
    el('td', { class: 'mono nowrap', text: str(record.method) }),
    verdictCell,
    el('td', { class: 'trunc mono', text: list(record.rules).join(', ') }),
    el('td', { class: 'trunc' }, txnLink(record.txn)),
    el('td', { class: 'num mono nowrap', text: formatLatency(record.latency_us) }),
    status,
  );
  return row;
}

// A trace id, linked to the tracing UI when the gateway names one (console.trace_link). Only a
// well-formed id goes into the link.
function traceNode(traceId) {
  const id = str(traceId);
  const link = session.whoami && typeof session.whoami.trace_link === 'string' ? session.whoami.trace_link : '';
  if (link && /^[0-9a-f]{32}$/.test(id)) {
    return el('a', {
      class: 'trace-id mono', href: link.replace('{trace_id}', id), target: '_blank', rel: 'noopener noreferrer',
      title: 'Open the trace', text: id,
    });
  }
  return el('span', { class: 'trace-id mono', title: 'OpenTelemetry trace id', text: id });
}

function detailRow(record) {
  const keys = [...DETAIL_ORDER.filter((k) => k in record), ...Object.keys(record).filter((k) => !DETAIL_ORDER.includes(k))];
  const dl = el('dl', { class: 'kv' });
  for (const key of keys) {
    const value = key === 'latency_us' && record[key] !== null
      ? `${str(record[key])} µs (${formatLatency(record[key])})`
      : str(record[key]);
    let shown = value;
    if (key === 'txn') shown = txnLink(record[key]);
    else if (key === 'trace_id') shown = traceNode(record[key]);
    dl.append(el('dt', { text: key }), el('dd', { class: 'mono' }, shown));
  }
  return el('tr', { class: 'record-detail' }, el('td', { colspan: 10 }, dl));
}

function toggleDetails(row) {
  const next = row.nextElementSibling;
  if (next && next.classList.contains('record-detail')) {
    next.remove();
    row.classList.remove('expanded');
    return;
  }
  const record = rowRecords.get(row);
  if (!record) return;
  row.after(detailRow(record));
  row.classList.add('expanded');
}

function wireRecordTable(table) {
  table.addEventListener('click', (event) => {
    if (event.target.closest('a, button, input')) return;
    // A drag to copy a digest or id should not also fold the row.
    if (String(window.getSelection() || '')) return;
    const row = event.target.closest('tr.record-row');
    if (row) toggleDetails(row);
  });
  table.addEventListener('keydown', (event) => {
    if ((event.key === 'Enter' || event.key === ' ') && event.target.matches('tr.record-row')) {
      event.preventDefault();
      toggleDetails(event.target);
    }
  });
}

function clearTable(table) {
  table.tBodies[0].replaceChildren();
}

function emptyRow(text) {
  return el('tr', { class: 'empty-row' }, el('td', { colspan: 10, text }));
}

// ---------------------------------------------------------------------------------------------
// Live feed over text/event-stream, read with fetch so the bearer header can be sent
// (EventSource cannot send headers).

const live = { gen: 0, controller: null, retry: null, paused: false, held: [], heldCount: 0, rows: 0 };

function setLiveStatus(text, state) {
  const node = $('live-status');
  node.textContent = text;
  node.className = `conn conn-${state}`;
}

function createSseParser(onEvent) {
  let buffer = '';
  let name = '';
  let data = [];
  const line = (text) => {
    if (text === '') {
      if (data.length) onEvent(name || 'message', data.join('\n'));
      name = '';
      data = [];
      return;
    }
    if (text[0] === ':') return; // keep-alive comment
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
  };
  return (chunk) => {
    buffer += chunk;
    let start = 0;
    for (let i = 0; i < buffer.length; i += 1) {
      const c = buffer[i];
      if (c !== '\n' && c !== '\r') continue;
      if (c === '\r' && i + 1 === buffer.length) break; // may be the first half of a CRLF split across chunks
      line(buffer.slice(start, i));
      if (c === '\r' && buffer[i + 1] === '\n') i += 1;
      start = i + 1;
    }
    buffer = buffer.slice(start);
    // A line this long is not a record; drop it rather than grow without bound.
    if (buffer.length > 8 * 1024 * 1024) buffer = '';
  };
}

function stopFeed() {
  live.gen += 1;
  if (live.controller) live.controller.abort();
  live.controller = null;
  clearTimeout(live.retry);
  live.retry = null;
}

function startFeed() {
  stopFeed();
  const gen = live.gen;
  const query = queryString(filterParams('live'));
  const url = `api/feed${query ? `?${query}` : ''}`;
  guard(connectFeed)(gen, url);
}

async function connectFeed(gen, url) {
  if (gen !== live.gen || !session.token) return;
  const controller = new AbortController();
  live.controller = controller;
  setLiveStatus('connecting…', 'wait');
  try {
    const response = await apiFetch(url, { headers: { Accept: 'text/event-stream' }, signal: controller.signal });
    if (!response.ok) throw await readError(response);
    if (!response.body) throw new ApiError(0, 'unsupported', 'This browser cannot read streamed answers.');
    setLiveStatus('connected', 'on');
    clearError('live');
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const push = createSseParser((event, data) => {
      if (gen !== live.gen || (event !== 'record' && event !== 'message')) return;
      let record;
      try { record = JSON.parse(data); } catch { return; }
      if (record && typeof record === 'object' && !Array.isArray(record)) addLiveRecord(record);
    });
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      push(decoder.decode(value, { stream: true }));
    }
    push(decoder.decode());
  } catch (err) {
    if (isQuiet(err) || gen !== live.gen) return;
    showError('live', err);
  }
  if (gen !== live.gen || !session.token) return;
  setLiveStatus('reconnecting…', 'wait');
  live.retry = setTimeout(() => guard(connectFeed)(gen, url), RECONNECT_MS);
}

function addLiveRecord(record) {
  if (live.paused) {
    // Only the newest rows could ever be shown, so hold no more than a table's worth.
    live.held.push(record);
    if (live.held.length > LIVE_MAX_ROWS) live.held.shift();
    live.heldCount += 1;
    updatePauseUi();
    return;
  }
  prependLive([record]);
}

function prependLive(records) {
  const body = $('live-table').tBodies[0];
  const empty = body.querySelector('tr.empty-row');
  if (empty) empty.remove();
  for (const record of records) {
    const row = recordRow(record);
    row.classList.add('fresh');
    body.prepend(row);
    live.rows += 1;
  }
  while (live.rows > LIVE_MAX_ROWS && body.lastElementChild) {
    const last = body.lastElementChild;
    last.remove();
    if (last.classList.contains('record-row')) live.rows -= 1;
  }
}

function updatePauseUi() {
  const button = $('live-pause');
  button.textContent = live.paused ? 'Resume' : 'Pause';
  button.setAttribute('aria-pressed', String(live.paused));
  const held = $('live-held');
  held.hidden = !live.paused;
  held.textContent = `${live.heldCount} new`;
}

function togglePause() {
  live.paused = !live.paused;
  if (!live.paused) {
    prependLive(live.held);
    live.held = [];
    live.heldCount = 0;
  }
  updatePauseUi();
}

// ---------------------------------------------------------------------------------------------
// Search

const search = { gen: 0, query: '', next: null, shown: 0, scanned: 0, bytes: 0, ms: 0, limited: false, note: '' };

async function runSearch(more) {
  if (more && !search.next) return;
  const gen = ++search.gen;
  clearError('search');
  if (!more) {
    const params = [...filterParams('search'), ['limit', '50']];
    Object.assign(search, { query: queryString(params), next: null, shown: 0, scanned: 0, bytes: 0, ms: 0, limited: false, note: '' });
    clearTable($('search-table'));
    $('search-limit').hidden = true;
    $('search-summary').textContent = 'Searching…';
  }
  const query = more ? `${search.query}&${queryString([['cursor', search.next]])}` : search.query;
  $('search-button').disabled = true;
  $('search-more').disabled = true;
  let data;
  try {
    data = await apiJson(`api/records?${query}`);
  } catch (err) {
    if (gen !== search.gen) return;
    showError('search', err);
    if (!more) $('search-summary').textContent = '';
    return;
  } finally {
    if (gen === search.gen) {
      $('search-button').disabled = false;
      $('search-more').disabled = false;
    }
  }
  if (gen !== search.gen) return;

  const records = Array.isArray(data.records) ? data.records.filter((r) => r && typeof r === 'object') : [];
  const body = $('search-table').tBodies[0];
  for (const record of records) body.append(recordRow(record));
  search.shown += records.length;
  search.scanned += Number(data.scanned_records) || 0;
  search.bytes += Number(data.scanned_bytes) || 0;
  search.ms += Number(data.elapsed_ms) || 0;
  search.next = typeof data.next === 'string' && data.next ? data.next : null;
  if (data.limited === true) {
    search.limited = true;
    search.note = str(data.limit_note) || 'The search stopped early; narrow the filters to see everything.';
  }
  if (search.shown === 0) body.append(emptyRow('No records match these filters.'));

  const summary = $('search-summary');
  summary.textContent = `${search.shown} records shown · scanned ${search.scanned} records in ${round2(search.ms)} ms`;
  summary.title = `${formatBytes(search.bytes)} read`;
  $('search-limit').textContent = search.note;
  $('search-limit').hidden = !search.limited;
  $('search-more').hidden = !search.next;
}

// ---------------------------------------------------------------------------------------------
// Transaction timeline

const timeline = { gen: 0, loaded: '' };

function clearTimeline() {
  $('timeline-summary').replaceChildren();
  $('timeline-chart').replaceChildren();
  $('timeline-list').replaceChildren();
}

async function loadTimeline(txn) {
  const gen = ++timeline.gen;
  timeline.loaded = txn;
  $('timeline-txn').value = txn;
  clearError('timeline');
  clearTimeline();
  $('timeline-summary').append(el('p', { class: 'muted', text: 'Loading…' }));
  let data;
  try {
    data = await apiJson(`api/transactions/${encodeURIComponent(txn)}`);
  } catch (err) {
    if (gen !== timeline.gen) return;
    clearTimeline();
    showError('timeline', err);
    return;
  }
  if (gen !== timeline.gen) return;
  clearTimeline();
  const records = (Array.isArray(data.records) ? data.records : []).filter((r) => r && typeof r === 'object');
  renderTimelineSummary(data, records);
  renderSwimlane(records);
  renderTimelineList(records);
}

function renderTimelineSummary(data, records) {
  const first = parseTime(data.first);
  const last = parseTime(data.last);
  const span = first !== null && last !== null ? ` (${formatSeconds(last - first)})` : '';
  const calls = records.filter(isCall).length;
  const dl = el('dl', { class: 'kv kv-inline' },
    el('dt', { text: 'Transaction' }), el('dd', { class: 'mono', text: str(data.txn) }),
    el('dt', { text: 'Calls' }), el('dd', { text: String(calls) }),
    el('dt', { text: 'Callers' }), el('dd', { text: list(data.callers).join(', ') || '—' }),
    el('dt', { text: 'Sessions' }), el('dd', { class: 'mono', text: list(data.sessions).join(', ') || '—' }),
    el('dt', { text: 'Span' }), el('dd', { class: 'mono', text: `${formatTime(data.first)} → ${formatTime(data.last)}${span}` }),
    el('dt', { text: 'Audit files' }), el('dd', { class: 'mono', text: list(data.files).join(', ') || '—' }));
  $('timeline-summary').append(dl);
}

function renderTimelineList(records) {
  const origin = records.map((r) => parseTime(r.time)).find((t) => t !== null) ?? null;
  const items = records.map((record) => {
    const t = parseTime(record.time);
    const offset = origin !== null && t !== null ? `+${formatSeconds(t - origin)}` : '';
    const item = el('li', { class: isCall(record) ? 'timeline-item' : 'timeline-item special', 'data-verdict': str(record.verdict) });
    const head = el('div', { class: 'timeline-head' },
      el('span', { class: 'mono', title: str(record.time), text: formatTime(record.time) }),
      el('span', { class: 'offset mono', text: offset }));
    if (!isCall(record)) {
      head.append(el('span', { class: 'special-type', text: str(record.type) }));
      item.append(head, el('p', { class: 'mono muted', text: str(record) }));
      return item;
    }
    head.append(verdictPill(record.verdict),
      el('span', { class: 'strong', text: `${str(record.server) || '?'} / ${str(record.tool) || '?'}` }),
      el('span', { class: 'mono muted', text: str(record.method) }));
    const digest = str(record.args_sha256);
    // Same fields in the same place on every item so a column of items can be scanned.
    const fields = [
      ['Caller', str(record.identity)],
      ['Rule', list(record.rules).join(', ')],
      ['Policy note', list(record.policy_note).join(', ')],
      ['Latency', formatLatency(record.latency_us)],
      ['Status', [str(record.status), str(record.outcome)].filter(Boolean).join(' · ')],
      ['Session', str(record.session) && el('span', { class: 'mono', text: str(record.session) })],
      ['Arguments', digest && el('span', { class: 'mono', title: digest, text: `${digest.slice(0, 16)}…` })],
      ['Trace', record.trace_id && traceNode(record.trace_id)],
    ];
    if (record.approver) {
      fields.push(['Approver', `${str(record.approver)}${record.approval_reason ? ` — ${str(record.approval_reason)}` : ''}`]);
    }
    const dl = el('dl', { class: 'kv kv-inline' });
    for (const [label, value] of fields) dl.append(el('dt', { text: label }), el('dd', {}, value || '—'));
    item.append(head, dl);
    return item;
  });
  $('timeline-list').append(...items);
}

// A swimlane: one row per call, x is time from the first record, bar width is the latency.
function renderSwimlane(records) {
  const calls = records
    .filter(isCall)
    .map((r) => ({ r, t: parseTime(r.time), d: Math.max(0, Number(r.latency_us) || 0) / 1000 }))
    .filter((c) => c.t !== null)
    .slice(0, 200);
  if (calls.length === 0) return;
  const t0 = Math.min(...calls.map((c) => c.t));
  const span = Math.max(1, ...calls.map((c) => c.t - t0 + c.d));
  const W = 960; const rowH = 16; const left = 170; const top = 6; const right = 16;
  const H = top + calls.length * rowH + 24;
  const plotW = W - left - right;
  const x = (ms) => left + (ms / span) * plotW;
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', class: 'swimlane-svg' },
    svgEl('title', { text: `Calls of this transaction over ${formatSeconds(span)}` }));
  for (let i = 0; i <= 4; i += 1) {
    const ms = (span * i) / 4;
    svg.append(svgEl('line', { class: 'grid', x1: x(ms), x2: x(ms), y1: top, y2: H - 20 }),
      svgEl('text', { class: 'tick', x: x(ms), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', text: `+${formatSeconds(ms)}` }));
  }
  calls.forEach((c, i) => {
    const y = top + i * rowH;
    const label = str(c.r.tool) || str(c.r.method) || '?';
    svg.append(
      svgEl('text', { class: 'label', x: left - 6, y: y + 12, 'text-anchor': 'end', text: label.length > 24 ? `${label.slice(0, 23)}…` : label }),
      svgEl('rect', { class: `bar verdict-${verdictClass(str(c.r.verdict))}`, x: x(c.t - t0), y: y + 2, width: Math.max(3, (c.d / span) * plotW), height: rowH - 4, rx: 2 },
        svgEl('title', { text: `${label} · ${str(c.r.verdict) || 'no verdict'} · ${formatLatency(c.r.latency_us) || 'no latency'}` })));
  });
  $('timeline-chart').append(svg);
}

// ---------------------------------------------------------------------------------------------
// Audit chain

const chain = { inflight: false };

function setBanner(state, text, link) {
  const banner = $('chain-banner');
  banner.className = `chain-banner ${state}`;
  banner.replaceChildren(el('span', { text }));
  if (link) banner.append(' ', el('a', { href: '#chain', text: 'Details' }));
}

// `fresh`: verify the whole chain again, not only what was added since the last check.
async function refreshChain(fresh = false) {
  if (chain.inflight) return;
  chain.inflight = true;
  let data;
  try {
    data = await apiJson(fresh === true ? 'api/chain?fresh=1' : 'api/chain');
  } catch (err) {
    if (isQuiet(err)) return;
    showError('chain', err);
    setBanner('unknown', `Audit chain status unknown: ${err.message}`, true);
    return;
  } finally {
    chain.inflight = false;
  }
  clearError('chain');
  const chains = (Array.isArray(data.chains) ? data.chains : []).filter((c) => c && typeof c === 'object');
  renderChainTable(chains);
  $('chain-checked').textContent = data.checked_at ? `Checked at ${formatTime(data.checked_at)} UTC` : '';

  const records = chains.reduce((n, c) => n + (Number(c.records) || 0), 0);
  const checkpoints = chains.reduce((n, c) => n + (Number(c.checkpoints) || 0), 0);
  const broken = chains.filter((c) => c.ok !== true);
  if (data.ok === true && broken.length === 0) {
    setBanner('ok', `Audit chain verified (${records} records, ${checkpoints} checkpoints)`, false);
    return;
  }
  const first = broken[0];
  let where = 'unknown location';
  let problem = 'verification failed';
  if (first) {
    where = first.file ? `${str(first.file)} line ${str(first.line) || '?'}` : str(first.name) || where;
    problem = str(first.problem) || problem;
  }
  const more = broken.length > 1 ? ` (and ${broken.length - 1} more broken chain${broken.length > 2 ? 's' : ''})` : '';
  setBanner('broken', `Audit chain BROKEN: ${where}: ${problem}${more}`, true);
}

function yesNo(value) {
  return value === true ? 'yes' : value === false ? 'no' : '—';
}

function renderChainTable(chains) {
  const rows = chains.map((c) => {
    const ok = c.ok === true;
    const status = ok
      ? el('span', { class: 'pill verdict-allow', text: 'verified' })
      : el('span', {}, el('span', { class: 'pill verdict-deny', text: 'broken' }),
        ` at ${str(c.file) || '?'}:${str(c.line) || '?'} — ${str(c.problem) || 'unknown problem'}`);
    return el('tr', { class: 'chain-row', 'data-ok': String(ok) },
      el('td', { class: 'mono strong', text: str(c.name) }),
      el('td', { class: 'mono' }, list(c.files).map((f) => el('div', { text: f }))),
      el('td', { class: 'num mono', text: str(c.records) }),
      el('td', { text: `${str(c.checkpoints) || '0'} (${c.signed === true ? 'signed' : 'unsigned'})` }),
      el('td', {}, status),
      el('td', { text: yesNo(c.ends_closed) }),
      el('td', { class: c.incomplete_tail === true ? 'warn-text' : '', text: yesNo(c.incomplete_tail) }),
      el('td', { class: 'num mono', text: str(c.interrupted_writes) }));
  });
  const body = $('chain-table').tBodies[0];
  body.replaceChildren(...rows);
  if (rows.length === 0) body.append(el('tr', { class: 'empty-row' }, el('td', { colspan: 8, text: 'No audit chains are configured.' })));
}

// ---------------------------------------------------------------------------------------------
// Charts, drawn as plain SVG

const charts = { gen: 0 };
const CHART = { W: 640, H: 240, left: 48, right: 14, top: 12, bottom: 30 };
const MAX_BARS = 120;

// Rounds up to 1, 2 or 5 times a power of ten so axis labels stay readable.
function niceStep(raw, integer) {
  if (!(raw > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const m = raw / power;
  const step = (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * power;
  return integer ? Math.max(1, Math.round(step)) : step;
}

function axis(max, integer) {
  const step = niceStep(max / 4, integer);
  const top = Math.max(step, Math.ceil(max / step) * step);
  const ticks = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
  return { top, ticks };
}

function chartSvg(title, height) {
  return svgEl('svg', { viewBox: `0 0 ${CHART.W} ${height}`, width: '100%', role: 'img', class: 'chart-svg' },
    svgEl('title', { text: title }));
}

function drawYAxis(svg, height, scale, format) {
  const bottom = height - CHART.bottom;
  for (const v of scale.ticks) {
    const y = bottom - (v / scale.top) * (bottom - CHART.top);
    svg.append(svgEl('line', { class: v === 0 ? 'axis' : 'grid', x1: CHART.left, x2: CHART.W - CHART.right, y1: y, y2: y }),
      svgEl('text', { class: 'tick', x: CHART.left - 6, y: y + 4, 'text-anchor': 'end', text: format(v) }));
  }
}

function drawBucketLabels(svg, buckets, height) {
  const plotW = CHART.W - CHART.left - CHART.right;
  const every = Math.max(1, Math.ceil(buckets.length / 8));
  buckets.forEach((b, i) => {
    if (i % every !== 0) return;
    const text = /T\d\d:\d\d/.test(b) ? b.slice(b.indexOf('T') + 1, b.indexOf('T') + 6) : b;
    svg.append(svgEl('text', { class: 'tick', x: CHART.left + ((i + 0.5) * plotW) / buckets.length, y: height - 10, 'text-anchor': 'middle', text }));
  });
}

function legend(entries) {
  return el('ul', { class: 'legend' }, entries.map(([cls, label]) =>
    el('li', {}, el('span', { class: `swatch ${cls}` }), label)));
}

function emptyChart(target, text) {
  target.replaceChildren(el('p', { class: 'chart-empty', text }));
}

function truncate(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

async function loadCharts() {
  const gen = ++charts.gen;
  const minutes = $('charts-window').value;
  clearError('charts');
  $('charts-refresh').disabled = true;
  let data;
  try {
    data = await apiJson(`api/stats?minutes=${encodeURIComponent(minutes)}`);
  } catch (err) {
    if (gen === charts.gen) showError('charts', err);
    return;
  } finally {
    if (gen === charts.gen) $('charts-refresh').disabled = false;
  }
  if (gen !== charts.gen) return;
  const raw = (Array.isArray(data.buckets) ? data.buckets : []).map(str);
  // Hundreds of sub-pixel bars are unreadable: merge neighbouring minutes into wider bars.
  const group = Math.max(1, Math.ceil(raw.length / MAX_BARS));
  const buckets = raw.filter((_, i) => i % group === 0);
  const series = (obj) => Object.entries(obj && typeof obj === 'object' ? obj : {}).map(([name, counts]) => {
    const merged = buckets.map(() => 0);
    raw.forEach((_, i) => { merged[Math.floor(i / group)] += Math.max(0, Number(Array.isArray(counts) ? counts[i] : 0) || 0); });
    return [name, merged];
  });
  const byVerdict = series(data.by_verdict);
  const byUpstream = series(data.by_upstream);
  const total = byVerdict.reduce((n, [, counts]) => n + counts.reduce((a, b) => a + b, 0), 0);
  const barText = group === 1 ? 'one bar per minute' : `one bar per ${group} minutes`;
  $('charts-range').textContent = `${formatTime(data.from)} → ${formatTime(data.to)} · ${total} calls · ${barText}`;

  const noCalls = 'There were no calls in this window.';
  if (total === 0 || buckets.length === 0) {
    for (const id of ['chart-verdicts', 'chart-upstreams']) emptyChart($(id), noCalls);
  } else {
    drawVerdicts(byVerdict, buckets);
    drawUpstreams(byUpstream, buckets);
  }
  drawDenied(Array.isArray(data.top_denied_rules) ? data.top_denied_rules : [], total === 0 ? noCalls : 'There were no denied calls in this window.');
  drawLatency(Array.isArray(data.latency) ? data.latency : [], noCalls);
}

function drawVerdicts(byVerdict, buckets) {
  // Fixed stacking order so colours keep their position between refreshes.
  const order = [...VERDICTS, 'none'];
  const named = new Map(byVerdict);
  const stacks = [...order.filter((v) => named.has(v)), ...[...named.keys()].filter((v) => !order.includes(v))];
  const sums = buckets.map((_, i) => stacks.reduce((n, v) => n + named.get(v)[i], 0));
  const scale = axis(Math.max(...sums), true);
  const H = CHART.H;
  const svg = chartSvg('Calls over time, stacked by verdict', H);
  drawYAxis(svg, H, scale, String);
  const plotW = CHART.W - CHART.left - CHART.right;
  const plotH = H - CHART.top - CHART.bottom;
  const bw = plotW / buckets.length;
  buckets.forEach((bucket, i) => {
    if (sums[i] === 0) return;
    const group = svgEl('g', {}, svgEl('title', { text: `${bucket}: ${stacks.filter((v) => named.get(v)[i]).map((v) => `${v} ${named.get(v)[i]}`).join(', ')}` }));
    let y = H - CHART.bottom;
    for (const v of stacks) {
      const count = named.get(v)[i];
      if (!count) continue;
      const h = (count / scale.top) * plotH;
      y -= h;
      group.append(svgEl('rect', { class: `bar verdict-${VERDICTS.includes(v) ? v : 'none'}`, x: CHART.left + i * bw + (bw > 4 ? 0.5 : 0), y, width: Math.max(0.5, bw - (bw > 4 ? 1 : 0)), height: h }));
    }
    svg.append(group);
  });
  drawBucketLabels(svg, buckets, H);
  const totals = (v) => named.get(v).reduce((a, b) => a + b, 0);
  $('chart-verdicts').replaceChildren(svg,
    legend(stacks.map((v) => [`verdict-${VERDICTS.includes(v) ? v : 'none'}`, `${v} (${totals(v)})`])));
}

function drawUpstreams(byUpstream, buckets) {
  if (byUpstream.length === 0) { emptyChart($('chart-upstreams'), 'No upstream breakdown for this window.'); return; }
  const max = Math.max(...byUpstream.map(([, counts]) => Math.max(...counts)));
  const scale = axis(max, true);
  const H = CHART.H;
  const svg = chartSvg('Calls over time for each upstream', H);
  drawYAxis(svg, H, scale, String);
  const plotW = CHART.W - CHART.left - CHART.right;
  const plotH = H - CHART.top - CHART.bottom;
  const x = (i) => CHART.left + ((i + 0.5) * plotW) / buckets.length;
  const y = (v) => H - CHART.bottom - (v / scale.top) * plotH;
  byUpstream.forEach(([name, counts], s) => {
    const cls = `series-${s % 8}`;
    const g = svgEl('g', { class: cls }, svgEl('title', { text: `${name}: ${counts.reduce((a, b) => a + b, 0)} calls` }));
    if (counts.length === 1) g.append(svgEl('circle', { class: 'dot', cx: x(0), cy: y(counts[0]), r: 3 }));
    else g.append(svgEl('polyline', { class: 'line', points: counts.map((c, i) => `${x(i).toFixed(1)},${y(c).toFixed(1)}`).join(' ') }));
    svg.append(g);
  });
  drawBucketLabels(svg, buckets, H);
  $('chart-upstreams').replaceChildren(svg,
    legend(byUpstream.map(([name, counts], s) => [`series-${s % 8}`, `${name} (${counts.reduce((a, b) => a + b, 0)})`])));
}

function drawDenied(rules, emptyText) {
  const rows = rules.filter((r) => r && typeof r === 'object' && Number(r.count) > 0).slice(0, 12);
  if (rows.length === 0) { emptyChart($('chart-denied'), emptyText); return; }
  const rowH = 24; const labelW = 200; const top = 6;
  const H = top + rows.length * rowH + 8;
  const max = Math.max(...rows.map((r) => Number(r.count)));
  const barMax = CHART.W - labelW - 60;
  const svg = chartSvg('Rules that denied the most calls', H);
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const name = str(r.rule) || '(no rule)';
    const w = Math.max(2, (Number(r.count) / max) * barMax);
    svg.append(svgEl('g', {},
      svgEl('title', { text: `${name}: ${Number(r.count)} denied calls` }),
      svgEl('text', { class: 'label mono-text', x: labelW - 8, y: y + 16, 'text-anchor': 'end', text: truncate(name, 24) }),
      svgEl('rect', { class: 'bar verdict-deny', x: labelW, y: y + 4, width: w, height: rowH - 8, rx: 2 }),
      svgEl('text', { class: 'value', x: labelW + w + 6, y: y + 16, text: String(Number(r.count)) })));
  });
  $('chart-denied').replaceChildren(svg);
}

function drawLatency(entries, emptyText) {
  const rows = entries.filter((e) => e && typeof e === 'object').slice(0, 10)
    .map((e) => ({ name: str(e.upstream) || '?', calls: Number(e.calls) || 0, p50: (Number(e.p50_us) || 0) / 1000, p99: (Number(e.p99_us) || 0) / 1000 }));
  if (rows.length === 0) { emptyChart($('chart-latency'), emptyText); return; }
  const H = CHART.H + 14;
  const scale = axis(Math.max(...rows.map((r) => Math.max(r.p50, r.p99))) || 1, false);
  const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  const tick = (v) => `${v === 0 || v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2)} ms`;
  const svg = chartSvg('p50 and p99 latency in milliseconds for each upstream', H);
  const bottomPad = CHART.bottom + 14;
  const plotH = H - CHART.top - bottomPad;
  const plotW = CHART.W - CHART.left - CHART.right;
  for (const v of scale.ticks) {
    const y = H - bottomPad - (v / scale.top) * plotH;
    svg.append(svgEl('line', { class: v === 0 ? 'axis' : 'grid', x1: CHART.left, x2: CHART.W - CHART.right, y1: y, y2: y }),
      svgEl('text', { class: 'tick', x: CHART.left - 6, y: y + 4, 'text-anchor': 'end', text: tick(v) }));
  }
  const groupW = plotW / rows.length;
  const barW = Math.min(48, groupW / 3);
  rows.forEach((r, i) => {
    const cx = CHART.left + (i + 0.5) * groupW;
    const g = svgEl('g', {}, svgEl('title', { text: `${r.name}: ${r.calls} calls, p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms` }));
    [['p50', r.p50, cx - barW - 2], ['p99', r.p99, cx + 2]].forEach(([kind, v, x]) => {
      const h = (v / scale.top) * plotH;
      const y = H - bottomPad - h;
      g.append(svgEl('rect', { class: `bar lat-${kind}`, x, y, width: barW, height: Math.max(h, 0.5) }),
        svgEl('text', { class: 'value', x: x + barW / 2, y: y - 4, 'text-anchor': 'middle', text: fmt(v) }));
    });
    g.append(svgEl('text', { class: 'label', x: cx, y: H - bottomPad + 16, 'text-anchor': 'middle', text: truncate(r.name, Math.max(6, Math.floor(groupW / 7))) }),
      svgEl('text', { class: 'tick', x: cx, y: H - bottomPad + 30, 'text-anchor': 'middle', text: `${r.calls} calls` }));
    svg.append(g);
  });
  $('chart-latency').replaceChildren(svg, legend([['lat-p50', 'p50'], ['lat-p99', 'p99']]));
}

// ---------------------------------------------------------------------------------------------
// Approvals. Cards are kept across polls (diffed by id) so a reason being typed is not wiped.

const approvals = { inflight: false, cards: new Map(), answered: new Set(), noticeTimer: null };

async function pollApprovals() {
  if (approvals.inflight || !session.token) return;
  approvals.inflight = true;
  let data;
  try {
    data = await apiJson('api/approvals');
  } catch (err) {
    showError('approvals', err);
    return;
  } finally {
    approvals.inflight = false;
  }
  clearError('approvals');
  renderApprovals((Array.isArray(data.approvals) ? data.approvals : [])
    .filter((a) => a && typeof a === 'object' && typeof a.id === 'string' && a.id));
}

function renderApprovals(items) {
  const ids = new Set(items.map((a) => a.id));
  for (const id of approvals.answered) if (!ids.has(id)) approvals.answered.delete(id);
  for (const [id, entry] of approvals.cards) {
    if (!ids.has(id) && !entry.busy) {
      entry.card.remove();
      approvals.cards.delete(id);
    }
  }
  const container = $('approvals-list');
  let previous = null;
  for (const item of items) {
    if (approvals.answered.has(item.id)) continue;
    let entry = approvals.cards.get(item.id);
    if (!entry) {
      entry = { item, busy: false, card: null };
      entry.card = approvalCard(entry);
      approvals.cards.set(item.id, entry);
    }
    // Only move cards that are out of place: moving a node would blur a reason being typed.
    const wanted = previous ? previous.nextSibling : container.firstChild;
    if (wanted !== entry.card) container.insertBefore(entry.card, wanted);
    previous = entry.card;
  }
  updateApprovalCount();
  updateCountdowns();
}

function approvalCard(entry) {
  const a = entry.item;
  const canApprove = Boolean(session.whoami && session.whoami.can_approve === true);
  const args = a.arguments === undefined ? '(no arguments)' : JSON.stringify(a.arguments, null, 2);
  const reason = el('input', { type: 'text', class: 'approval-reason', placeholder: 'Reason (recorded in the audit trail)', maxlength: 500, 'aria-label': 'Reason' });
  const approve = el('button', { type: 'button', class: 'approve-button', text: 'Approve' });
  const refuse = el('button', { type: 'button', class: 'refuse-button', text: 'Refuse' });
  approve.disabled = !canApprove;
  refuse.disabled = !canApprove;
  if (!canApprove) {
    approve.title = 'Your token lacks the membrane:approve scope';
    refuse.title = approve.title;
  }
  approve.addEventListener('click', guard(() => decide(entry, 'approve')));
  refuse.addEventListener('click', guard(() => decide(entry, 'refuse')));
  reason.addEventListener('input', () => setCardMessage(entry, ''));

  const card = el('article', { class: 'approval', 'data-id': a.id },
    el('header', { class: 'approval-head' },
      el('span', { class: 'approval-tool', text: str(a.tool) || '(unnamed)' }),
      el('span', { class: 'mono muted', text: str(a.method) }),
      el('span', { class: 'muted', text: 'on' }),
      el('span', { class: 'strong', text: str(a.upstream) }),
      el('span', { class: 'approval-countdown' })),
    el('p', { class: 'approval-rule' },
      'Rule ', el('code', { text: str(a.rule) || '?' }),
      a.rule_message ? el('span', { class: 'rule-message', text: ` — ${str(a.rule_message)}` }) : ''),
    el('dl', { class: 'kv kv-inline' },
      el('dt', { text: 'Caller' }), el('dd', { class: 'strong', text: str(a.caller) || '— (no auth on the gateway)' }),
      el('dt', { text: 'Client' }), el('dd', { class: 'mono', text: str(a.client) }),
      el('dt', { text: 'Transaction' }), el('dd', {}, txnLink(a.txn) || '—'),
      el('dt', { text: 'Session' }), el('dd', { class: 'mono', text: str(a.session) || '—' }),
      el('dt', { text: 'Waiting since' }), el('dd', { class: 'mono', text: formatTime(a.created) }),
      el('dt', { text: 'Replica' }), el('dd', { class: 'mono', text: str(a.replica) || '—' })),
    el('pre', { class: 'approval-arguments', text: args }),
    el('div', { class: 'approval-actions' }, reason, approve, refuse, el('span', { class: 'approval-message', role: 'alert' })));
  return card;
}

function setCardMessage(entry, message, bad = true) {
  const node = entry.card.querySelector('.approval-message');
  node.textContent = message;
  node.classList.toggle('bad', bad);
}

function setCardBusy(entry, busy) {
  entry.busy = busy;
  const allowed = !busy && session.whoami && session.whoami.can_approve === true;
  for (const b of entry.card.querySelectorAll('button')) b.disabled = !allowed;
  entry.card.classList.toggle('busy', busy);
}

function removeCard(entry) {
  approvals.answered.add(entry.item.id);
  approvals.cards.delete(entry.item.id);
  entry.card.remove();
  updateApprovalCount();
}

async function decide(entry, decision) {
  if (entry.busy || !session.whoami || session.whoami.can_approve !== true) return;
  const input = entry.card.querySelector('.approval-reason');
  const reason = input.value.trim();
  if (decision === 'refuse' && !reason) {
    setCardMessage(entry, 'Give a reason to refuse: it is recorded in the audit trail and may be shown to the caller.');
    input.focus();
    return;
  }
  const what = `${str(entry.item.tool) || 'call'} for ${str(entry.item.caller) || 'unknown caller'}`;
  setCardMessage(entry, decision === 'approve' ? 'Approving…' : 'Refusing…', false);
  setCardBusy(entry, true);
  let response;
  try {
    response = await apiFetch(`api/approvals/${encodeURIComponent(entry.item.id)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ decision, reason }),
    });
  } catch (err) {
    if (isQuiet(err)) return;
    setCardBusy(entry, false);
    setCardMessage(entry, err.message);
    return;
  }
  if (response.ok) {
    removeCard(entry);
    showNotice(`${decision === 'approve' ? 'Approved' : 'Refused'} ${what}`);
  } else if (response.status === 404) {
    removeCard(entry);
    showNotice(`The call to ${what} was already answered or has expired.`);
  } else {
    const err = await readError(response);
    setCardBusy(entry, false);
    setCardMessage(entry, err.message);
    showError('approvals', err);
  }
}

function showNotice(text) {
  const node = $('approvals-notice');
  node.textContent = text;
  node.hidden = false;
  clearTimeout(approvals.noticeTimer);
  approvals.noticeTimer = setTimeout(() => { node.hidden = true; }, NOTICE_MS);
}

function updateApprovalCount() {
  const n = approvals.cards.size;
  const badge = $('approvals-count');
  badge.textContent = String(n);
  badge.classList.toggle('waiting', n > 0);
  $('approvals-empty').hidden = n > 0;
}

function updateCountdowns() {
  const now = Date.now();
  for (const entry of approvals.cards.values()) {
    const node = entry.card.querySelector('.approval-countdown');
    const expires = parseTime(entry.item.expires);
    if (expires === null) { node.textContent = ''; continue; }
    const left = Math.round((expires - now) / 1000);
    node.title = `Expires at ${formatTime(entry.item.expires)} UTC`;
    node.textContent = left <= 0 ? 'expired' : `expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
    node.classList.toggle('urgent', left <= 15);
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function onEnter(container, action) {
  container.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && event.target.matches('input, select')) {
      event.preventDefault();
      action();
    }
  });
}

function init() {
  $('login-button').addEventListener('click', guard(() => signIn($('token-input').value, false)));
  $('token-input').addEventListener('keydown', (event) => {
    if (event.key === 'Enter') guard(() => signIn($('token-input').value, false))();
  });
  $('logout-button').addEventListener('click', () => endSession(''));

  for (const view of VIEWS) {
    $(`tab-${view}`).addEventListener('click', () => {
      location.hash = view === 'timeline' && timeline.loaded ? timelineHash(timeline.loaded) : `#${view}`;
    });
  }
  window.addEventListener('hashchange', () => route());

  wireRecordTable($('live-table'));
  wireRecordTable($('search-table'));

  const applyLive = () => {
    clearTable($('live-table'));
    live.rows = 0;
    live.held = [];
    live.heldCount = 0;
    updatePauseUi();
    clearError('live');
    startFeed();
  };
  $('live-apply').addEventListener('click', applyLive);
  onEnter(document.querySelector('.filters[data-prefix="live"]'), applyLive);
  $('live-pause').addEventListener('click', togglePause);
  $('live-clear').addEventListener('click', () => { clearTable($('live-table')); live.rows = 0; });

  const doSearch = guard(() => runSearch(false));
  $('search-button').addEventListener('click', doSearch);
  onEnter(document.querySelector('.filters[data-prefix="search"]'), doSearch);
  $('search-more').addEventListener('click', guard(() => runSearch(true)));

  const openFromInput = () => {
    const txn = $('timeline-txn').value.trim();
    if (!txn) { showError('timeline', new Error('Enter a transaction id.')); return; }
    openTimeline(txn);
  };
  $('timeline-open').addEventListener('click', openFromInput);
  onEnter($('timeline-txn').parentElement, openFromInput);

  $('chain-refresh').addEventListener('click', guard(() => refreshChain(true)));
  $('charts-refresh').addEventListener('click', guard(loadCharts));
  $('charts-window').addEventListener('change', guard(loadCharts));

  updatePauseUi();
  updateApprovalCount();

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) guard(() => signIn(saved, true))();
  else $('token-input').focus();
}

window.addEventListener('unhandledrejection', (event) => {
  if (isQuiet(event.reason)) event.preventDefault();
});

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
