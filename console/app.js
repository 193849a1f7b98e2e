// The Palisade web console. Plain ES2022, no framework, no build step; loaded as a module under
// a Content-Security-Policy that allows scripts, styles and requests from this origin only.
//
// Rules this file keeps:
// - The access token lives only in `session.token`, in this module's memory: never in
//   localStorage, sessionStorage, a cookie or a URL. A reload signs out.
// - Every value that comes from the broker (topic names, record keys and values, headers, user
//   names, audit fields, problem texts) is put into the page with textContent or as an
//   attribute value set by the DOM API, never parsed as HTML.
// - No inline style: elements get classes; forms never submit natively (`submit` is handled and
//   its default prevented).

const GENESIS_HASH = '0'.repeat(64);
const CLUSTER_REFRESH_MS = 2000;
const TAIL_FAILURES_MAX = 4;
const TAIL_ROWS_MAX = 500;
const TAIL_HEALTHY_MS = 5000;
const SET_TIMEOUT_MAX_MS = 2_147_000_000;

const $ = (id) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no element #${id}`);
  return element;
};

/** Creates an element: `options` may set className, text, title, dataset and attrs. */
function el(tag, options = {}, children = []) {
  const element = document.createElement(tag);
  if (options.className) element.className = options.className;
  if (options.text !== undefined && options.text !== null) element.textContent = String(options.text);
  if (options.title) element.title = String(options.title);
  if (options.dataset) {
    for (const [key, value] of Object.entries(options.dataset)) element.dataset[key] = String(value);
  }
  if (options.attrs) {
    for (const [key, value] of Object.entries(options.attrs)) element.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    element.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return element;
}

function td(text, className) {
  return el('td', { text, className });
}

function button(label, onClick, options = {}) {
  const element = el('button', { text: label, className: options.className, dataset: options.dataset });
  element.type = 'button';
  if (options.ariaLabel) element.setAttribute('aria-label', options.ariaLabel);
  element.addEventListener('click', guard(onClick));
  return element;
}

function clear(element) {
  element.replaceChildren();
}

function isoTime(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return '';
  try {
    return new Date(Number(ms)).toISOString();
  } catch {
    return String(ms);
  }
}

function list(values) {
  return Array.isArray(values) && values.length ? values.join(', ') : '—';
}

function formatPattern(pattern) {
  if (pattern === 'any') return 'any';
  if (pattern && typeof pattern === 'object') {
    if ('literal' in pattern) return `literal ${pattern.literal}`;
    if ('prefix' in pattern) return `prefix ${pattern.prefix}*`;
  }
  return JSON.stringify(pattern);
}

function formatDuration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

// ---------------------------------------------------------------------------------------------
// Errors and the alert region

class ApiError extends Error {
  constructor(status, problem) {
    super(`${problem.title}${problem.detail ? `: ${problem.detail}` : ''}`);
    this.status = status;
    this.problem = problem;
  }
}

/** A response that arrived for a session that has ended since; nothing is shown for it. */
class StaleError extends Error {}

/** A problem found in the console itself (bad input), shown like an API problem. */
function localProblem(title, detail) {
  return new ApiError(0, { title, detail });
}

function showProblem(problem) {
  $('alert-title').textContent = problem.title || 'Error';
  $('alert-detail').textContent = problem.detail || '';
  $('alert').hidden = false;
}

function clearProblem() {
  $('alert').hidden = true;
  $('alert-title').textContent = '';
  $('alert-detail').textContent = '';
}

function report(error) {
  if (error instanceof StaleError) return;
  if (error instanceof ApiError) {
    showProblem(error.problem);
  } else {
    console.error(error);
    showProblem({ title: 'The console failed', detail: String(error?.message ?? error) });
  }
}

/** Wraps an event handler: clears the alert first and shows any error it throws. */
function guard(handler) {
  return async (event) => {
    clearProblem();
    try {
      await handler(event);
    } catch (error) {
      report(error);
    }
  };
}

function onSubmit(form, handler) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    guard(handler)(event);
  });
}

// ---------------------------------------------------------------------------------------------
// Session and API

const session = {
  token: null,
  principal: null,
  superuser: false,
  /** Bumped at every sign-in and sign-out, so late answers of an ended session are dropped. */
  epoch: 0,
  expiryTimer: null,
};

function problemFrom(status, statusText, data, text) {
  const body = data && typeof data === 'object' && !Array.isArray(data) ? data : {};
  return {
    status,
    type: typeof body.type === 'string' ? body.type : undefined,
    title: typeof body.title === 'string' && body.title ? body.title : `HTTP ${status} ${statusText || ''}`.trim(),
    detail: typeof body.detail === 'string' ? body.detail : (data ? '' : (text || '').slice(0, 300)),
  };
}

/**
 * Calls the API. `query` entries that are undefined, null or '' are left out. Answers the parsed
 * JSON body (null for 204). A non-2xx answer throws an ApiError carrying the problem; a 401 on
 * an authenticated call also ends the session.
 */
async function api(method, path, { body, query, auth = true } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== '') params.append(key, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const headers = { Accept: 'application/json, application/problem+json' };
  const epoch = session.epoch;
  if (auth) {
    if (!session.token) throw new StaleError('signed out');
    headers.Authorization = `Bearer ${session.token}`;
  }
  const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (auth && epoch !== session.epoch) throw new StaleError('signed out');
    throw new ApiError(0, { title: 'The broker could not be reached', detail: String(error?.message ?? error) });
  }
  const text = await response.text();
  if (auth && epoch !== session.epoch) throw new StaleError('signed out');
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, problemFrom(response.status, response.statusText, data, text));
    if (response.status === 401 && auth) {
      endSession(`Signed out: the broker refused the token (${error.problem.title}${error.problem.detail ? `: ${error.problem.detail}` : ''}). Sign in again.`);
      throw new StaleError('unauthorized');
    }
    throw error;
  }
  return data;
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------------
// Sign in and out

function showSignIn(message) {
  $('app').hidden = true;
  $('session').hidden = true;
  $('signin').hidden = false;
  $('signin-status').textContent = message || '';
  $('signin-username').focus();
}

async function signIn() {
  const username = $('signin-username').value.trim();
  const password = $('signin-password').value;
  if (!username || !password) throw localProblem('Sign-in needs a username and a password', 'Fill in both fields.');
  $('signin-submit').disabled = true;
  try {
    const answer = await api('POST', '/v1/auth/token', { body: { username, password }, auth: false });
    $('signin-password').value = '';
    session.token = answer.access_token;
    session.epoch += 1;
    const lifetimeMs = Number(answer.expires_in) * 1000;
    if (Number.isFinite(lifetimeMs) && lifetimeMs > 0) {
      session.expiryTimer = setTimeout(
        () => endSession('Your token expired. Sign in again.'),
        Math.min(lifetimeMs, SET_TIMEOUT_MAX_MS),
      );
    }
    const me = await api('GET', '/v1/whoami');
    session.principal = me.principal;
    session.superuser = Boolean(me.superuser);
  } finally {
    $('signin-submit').disabled = false;
  }
  $('whoami').textContent = session.principal;
  $('whoami-role').textContent = session.superuser ? 'superuser' : 'user';
  $('signin').hidden = true;
  $('session').hidden = false;
  $('app').hidden = false;
  $('signin-status').textContent = '';
  await showView('topics');
}

/** Forgets the token and everything shown with it, and goes back to the sign-in screen. */
function endSession(message) {
  session.token = null;
  session.principal = null;
  session.superuser = false;
  session.epoch += 1;
  clearTimeout(session.expiryTimer);
  session.expiryTimer = null;
  stopTail('Stopped: signed out.');
  stopClusterRefresh();
  resetViews();
  showSignIn(message);
}

async function signOut() {
  stopTail('Stopped: signing out.');
  stopClusterRefresh();
  let message = 'Signed out; the token was revoked.';
  let problem = null;
  if (session.token) {
    try {
      await api('POST', '/v1/auth/revoke');
    } catch (error) {
      if (error instanceof StaleError) return;
      problem = error instanceof ApiError ? error.problem : { title: 'Revoking the token failed', detail: String(error) };
      message = 'Signed out here, but the broker did not confirm the revocation: the token may stay valid until it expires.';
    }
  }
  endSession(message);
  if (problem) showProblem(problem);
}

// ---------------------------------------------------------------------------------------------
// Views

const views = {
  topics: () => enterTopics(),
  messages: () => enterMessages(),
  groups: () => loadGroups(),
  users: () => loadUsersAndAcls(),
  audit: () => enterAudit(),
  cluster: () => startClusterRefresh(),
};

let currentView = null;

async function showView(name) {
  if (!(name in views)) return;
  if (currentView === 'cluster' && name !== 'cluster') stopClusterRefresh();
  currentView = name;
  for (const section of document.querySelectorAll('section.view')) {
    section.hidden = section.dataset.view !== name;
  }
  for (const link of document.querySelectorAll('#nav .nav-link')) {
    if (link.dataset.view === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const section = $(`view-${name}`);
  section.dataset.state = 'loading';
  try {
    await views[name]();
    section.dataset.state = 'ready';
  } catch (error) {
    section.dataset.state = 'error';
    throw error;
  }
}

function resetViews() {
  currentView = null;
  for (const section of document.querySelectorAll('section.view')) section.hidden = true;
  for (const body of document.querySelectorAll('#app tbody')) clear(body);
  for (const id of ['topic-detail', 'group-detail', 'explain-result']) $(id).hidden = true;
  for (const id of ['topic-create-status', 'msg-status', 'produce-result', 'users-status', 'acls-status',
    'audit-head', 'audit-chain', 'audit-status', 'cluster-updated']) {
    $(id).textContent = '';
  }
  for (const id of ['cluster-answered', 'cluster-controller-leader', 'cluster-controller-term',
    'cluster-voters', 'cluster-learners', 'cluster-moves']) {
    $(id).textContent = '';
  }
  clear($('msg-topic'));
  clear($('msg-partition'));
  topics = [];
  browse = null;
  audit.history = [];
  audit.page = null;
  $('whoami').textContent = '';
}

// ---------------------------------------------------------------------------------------------
// Topics

let topics = [];

function humanAge(ms) {
  const units = [['d', 86_400_000], ['h', 3_600_000], ['min', 60_000], ['s', 1000]];
  for (const [unit, size] of units) if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  return `${ms} ms`;
}

function humanBytes(bytes) {
  const units = [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]];
  for (const [unit, size] of units) if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`;
  return `${bytes} bytes`;
}

function retentionText(topic) {
  const parts = [];
  if (topic.retention_ms !== null && topic.retention_ms !== undefined) parts.push(humanAge(Number(topic.retention_ms)));
  if (topic.retention_bytes !== null && topic.retention_bytes !== undefined) parts.push(humanBytes(Number(topic.retention_bytes)));
  return parts.length ? parts.join(', ') : 'unlimited';
}

async function loadTopics(created) {
  const data = await api('GET', '/v1/topics');
  topics = Array.isArray(data?.topics) ? data.topics : [];
  if (created && !topics.some((t) => t.name === created.name)) topics.push(created);
  topics.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  renderTopics();
  fillTopicSelect();
}

function renderTopics() {
  const body = $('topics-table').tBodies[0];
  clear(body);
  for (const topic of topics) {
    const partitions = Array.isArray(topic.partitions) ? topic.partitions.length : 0;
    const actions = el('td', { className: 'actions-cell' }, [
      button('Details', () => showTopicDetail(topic.name), { ariaLabel: `Details of topic ${topic.name}`, dataset: { action: 'details' } }),
      button('Messages', () => openMessages(topic.name), { ariaLabel: `Messages of topic ${topic.name}`, dataset: { action: 'messages' } }),
      button('Delete', () => deleteTopic(topic.name), { className: 'danger', ariaLabel: `Delete topic ${topic.name}`, dataset: { action: 'delete' } }),
    ]);
    body.append(el('tr', { dataset: { topic: topic.name }, attrs: { 'data-testid': 'topic-row' } }, [
      el('td', {}, [el('code', { text: topic.name })]),
      td(partitions, 'num'),
      td(topic.replication_factor, 'num'),
      td(retentionText(topic)),
      actions,
    ]));
  }
  $('topics-empty').hidden = topics.length > 0;
}

/** Lists the topics, and refreshes the partitions shown (leaders move) if a topic is open. */
async function enterTopics() {
  await loadTopics();
  const open = $('topic-detail').hidden ? null : $('topic-detail-name').textContent;
  if (open && topics.some((t) => t.name === open)) await showTopicDetail(open);
  else $('topic-detail').hidden = true;
}

async function showTopicDetail(name) {
  const topic = await api('GET', `/v1/topics/${enc(name)}`);
  $('topic-detail-name').textContent = topic.name;
  $('topic-detail-summary').textContent = `Replication factor ${topic.replication_factor}; retention ${retentionText(topic)}.`;
  const body = $('partitions-detail-table').tBodies[0];
  clear(body);
  for (const p of topic.partitions || []) {
    const leader = p.leader === null || p.leader === undefined ? 'electing' : p.leader;
    const inSync = new Set(p.in_sync || []);
    const lagging = (p.replicas || []).filter((r) => !inSync.has(r));
    body.append(el('tr', { dataset: { partition: p.partition } }, [
      td(p.partition, 'num'),
      td(leader, p.leader === null || p.leader === undefined ? 'warn' : 'num'),
      td(list(p.replicas)),
      td(list(p.in_sync) + (lagging.length ? ` (not in sync: ${lagging.join(', ')})` : ''), lagging.length ? 'warn' : ''),
      td(p.high_watermark, 'num'),
      td(p.log_start_offset, 'num'),
      td(Math.max(0, Number(p.high_watermark) - Number(p.log_start_offset)), 'num'),
    ]));
  }
  $('topic-detail').hidden = false;
}

function optionalInteger(id) {
  const input = $(id);
  const text = input.value.trim();
  if (text === '') {
    if (input.validity && input.validity.badInput) {
      throw localProblem('Not a number', `${input.labels?.[0]?.textContent ?? id} must be a whole number.`);
    }
    return undefined;
  }
  const value = Number(text);
  if (!Number.isSafeInteger(value)) {
    throw localProblem('Not a whole number', `${input.labels?.[0]?.textContent ?? id}: ${text}`);
  }
  return value;
}

async function createTopic() {
  const body = { name: $('topic-name').value.trim() };
  const fields = [['partitions', 'topic-partitions'], ['replication_factor', 'topic-rf'],
    ['retention_ms', 'topic-retention-ms'], ['retention_bytes', 'topic-retention-bytes']];
  for (const [key, id] of fields) {
    const value = optionalInteger(id);
    if (value !== undefined) body[key] = value;
  }
  const status = $('topic-create-status');
  status.textContent = '';
  const created = await api('POST', '/v1/topics', { body });
  status.textContent = `Created topic ${created.name} with ${created.partitions?.length ?? '?'} partitions, replication factor ${created.replication_factor}.`;
  $('topic-name').value = '';
  await loadTopics(created);
}

async function deleteTopic(name) {
  const confirmed = await confirmAction(`Delete topic ${name} and every record in it? This cannot be undone.`, 'Delete topic');
  if (!confirmed) return;
  await api('DELETE', `/v1/topics/${enc(name)}`);
  $('topic-create-status').textContent = `Deleted topic ${name}.`;
  if ($('topic-detail-name').textContent === name) $('topic-detail').hidden = true;
  await loadTopics();
  topics = topics.filter((t) => t.name !== name);
  renderTopics();
  fillTopicSelect();
}

// ---------------------------------------------------------------------------------------------
// Confirmation dialog

let confirmResolve = null;

function confirmAction(text, okLabel) {
  const dialog = $('confirm-dialog');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel || 'Delete';
  if (confirmResolve) confirmResolve(false);
  return new Promise((resolve) => {
    confirmResolve = resolve;
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

function settleConfirm(answer) {
  const dialog = $('confirm-dialog');
  if (dialog.open) dialog.close();
  const resolve = confirmResolve;
  confirmResolve = null;
  if (resolve) resolve(answer);
}

// ---------------------------------------------------------------------------------------------
// Messages: browse, produce

/** The page shown: { topic, partition, offset, max, next, logStart, highWatermark, history }. */
let browse = null;

function fillTopicSelect() {
  const select = $('msg-topic');
  const previous = select.value;
  clear(select);
  for (const topic of topics) {
    select.append(el('option', { text: topic.name, attrs: { value: topic.name } }));
  }
  if (topics.some((t) => t.name === previous)) select.value = previous;
  fillPartitionSelect();
}

function fillPartitionSelect() {
  const select = $('msg-partition');
  const previous = select.value;
  clear(select);
  const topic = topics.find((t) => t.name === $('msg-topic').value);
  const count = topic && Array.isArray(topic.partitions) ? topic.partitions.length : 0;
  for (let p = 0; p < count; p += 1) select.append(el('option', { text: p, attrs: { value: p } }));
  if (previous !== '' && Number(previous) < count) select.value = previous;
}

async function enterMessages() {
  if (!topics.length) await loadTopics();
}

async function openMessages(name) {
  await showView('messages');
  $('msg-topic').value = name;
  fillPartitionSelect();
  const topic = topics.find((t) => t.name === name);
  const start = topic?.partitions?.find((p) => p.partition === 0)?.log_start_offset ?? 0;
  $('msg-offset').value = String(start);
  await readPage(start, []);
}

function selectedPartition() {
  const topic = $('msg-topic').value;
  if (!topic) throw localProblem('No topic chosen', 'Create a topic first, or pick one.');
  const partition = Number($('msg-partition').value);
  if (!Number.isInteger(partition) || partition < 0) throw localProblem('No partition chosen', 'Pick a partition.');
  return { topic, partition };
}

function recordCells(record) {
  const key = record.key === null || record.key === undefined
    ? td('(none)', 'muted')
    : el('td', { className: 'wrap' }, [el('code', { text: record.key })]);
  let value;
  if (record.value !== null && record.value !== undefined) {
    value = el('td', { className: 'wrap value' }, [el('span', { className: 'value-text', text: record.value })]);
  } else if (record.value_b64 !== null && record.value_b64 !== undefined) {
    value = el('td', { className: 'wrap value' }, [
      el('span', { className: 'badge binary', text: 'binary, base64' }), ' ',
      el('code', { className: 'value-b64', text: record.value_b64 }),
    ]);
  } else {
    value = td('(null)', 'muted');
  }
  const headerList = el('ul', { className: 'headers' });
  const headers = record.headers && typeof record.headers === 'object' ? Object.entries(record.headers) : [];
  for (const [name, text] of headers) {
    headerList.append(el('li', {}, [el('code', { text: name }), ': ', el('span', { text })]));
  }
  return [
    td(record.offset, 'num'),
    td(isoTime(record.timestamp_ms)),
    key,
    value,
    headers.length ? el('td', { className: 'wrap' }, [headerList]) : td('—', 'muted'),
  ];
}

function recordRow(record) {
  return el('tr', { dataset: { offset: record.offset } }, recordCells(record));
}

async function readPage(offset, history) {
  const { topic, partition } = selectedPartition();
  const max = optionalInteger('msg-max') ?? 20;
  const data = await api('GET', `/v1/topics/${enc(topic)}/partitions/${partition}/messages`, {
    query: { offset, max_messages: max },
  });
  browse = {
    topic, partition, offset, max, history,
    next: data.next_offset, logStart: data.log_start_offset, highWatermark: data.high_watermark,
  };
  $('msg-offset').value = String(offset);
  const body = $('messages-table').tBodies[0];
  clear(body);
  for (const record of data.records || []) body.append(recordRow(record));
  const count = (data.records || []).length;
  const range = count ? `offsets ${data.records[0].offset}..${data.records[count - 1].offset}` : 'no records';
  $('msg-status').textContent = `${topic} partition ${partition}: ${range} (log start ${data.log_start_offset}, high watermark ${data.high_watermark}).`;
  $('msg-prev').disabled = offset <= data.log_start_offset;
  $('msg-next').disabled = data.next_offset >= data.high_watermark && count === 0;
}

async function readFromForm() {
  const offset = optionalInteger('msg-offset') ?? 0;
  await readPage(offset, []);
}

async function nextPage() {
  if (!browse) return readFromForm();
  const history = [...browse.history, browse.offset];
  await readPage(browse.next, history);
}

async function previousPage() {
  if (!browse) return readFromForm();
  const history = [...browse.history];
  let offset = history.pop();
  if (offset === undefined) offset = Math.max(browse.logStart, browse.offset - browse.max);
  await readPage(offset, history);
}

function parseHeaders(text) {
  const headers = {};
  let count = 0;
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw localProblem('A header line needs "name: value"', `Line ${index + 1}: ${line}`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
    count += 1;
  }
  return count ? headers : undefined;
}

async function produce() {
  const topic = $('msg-topic').value;
  if (!topic) throw localProblem('No topic chosen', 'Pick the topic to write to above.');
  const record = {};
  const value = $('produce-value').value;
  if ($('produce-binary').checked) record.value_b64 = value.trim();
  else record.value = value;
  const key = $('produce-key').value;
  if (key !== '') record.key = key;
  const headers = parseHeaders($('produce-headers').value);
  if (headers) record.headers = headers;
  const partition = optionalInteger('produce-partition');
  if (partition !== undefined) record.partition = partition;
  const result = $('produce-result');
  result.textContent = '';
  delete result.dataset.offset;
  delete result.dataset.partition;
  const answer = await api('POST', `/v1/topics/${enc(topic)}/messages`, { body: { records: [record] } });
  const position = answer?.offsets?.[0];
  if (position) {
    result.textContent = `Written to ${topic} partition ${position.partition} at offset ${position.offset}.`;
    result.dataset.partition = String(position.partition);
    result.dataset.offset = String(position.offset);
  } else {
    result.textContent = `Written to ${topic}.`;
  }
}

// ---------------------------------------------------------------------------------------------
// Live tail over an event stream, authorized by single-use stream tickets

const tail = {
  /** Bumped at every start and stop, so callbacks of an old stream do nothing. */
  generation: 0,
  source: null,
  topic: null,
  partition: null,
  nextOffset: 0,
  failures: 0,
  openedAt: 0,
  gotRecord: false,
  lastProblem: null,
  retryTimer: null,
};

function setTailStatus(state, text) {
  const status = $('tail-status');
  status.dataset.state = state;
  status.textContent = text;
  const running = state === 'live' || state === 'connecting' || state === 'reconnecting';
  $('tail-stop').disabled = !running;
  $('tail-start').disabled = running;
}

function closeTailSource() {
  if (tail.source) {
    tail.source.close();
    tail.source = null;
  }
  clearTimeout(tail.retryTimer);
  tail.retryTimer = null;
}

function stopTail(message) {
  const wasRunning = tail.source !== null || tail.retryTimer !== null;
  tail.generation += 1;
  closeTailSource();
  if (wasRunning || message) setTailStatus('stopped', message || 'Stopped.');
}

async function startTail() {
  const { topic, partition } = selectedPartition();
  stopTail('Starting…');
  const generation = tail.generation;
  let offset = optionalInteger('tail-from');
  if (offset === undefined) {
    const description = await api('GET', `/v1/topics/${enc(topic)}`);
    const found = (description.partitions || []).find((p) => p.partition === partition);
    if (!found) throw localProblem('No such partition', `${topic} has no partition ${partition}.`);
    offset = found.high_watermark;
  }
  if (generation !== tail.generation) return;
  Object.assign(tail, { topic, partition, nextOffset: offset, failures: 0, lastProblem: null });
  clear($('tail-table').tBodies[0]);
  $('tail-table').dataset.topic = topic;
  $('tail-table').dataset.partition = String(partition);
  await openTailStream(generation);
}

async function openTailStream(generation) {
  if (generation !== tail.generation) return;
  setTailStatus(tail.failures ? 'reconnecting' : 'connecting',
    `${tail.failures ? 'Reconnecting' : 'Connecting'} to ${tail.topic} partition ${tail.partition} from offset ${tail.nextOffset}…`);
  let ticket;
  try {
    ticket = await api('POST', '/v1/stream-tickets', { body: { topic: tail.topic, partition: tail.partition } });
  } catch (error) {
    if (error instanceof StaleError || generation !== tail.generation) return;
    tail.lastProblem = error instanceof ApiError ? error.problem : { title: 'No stream ticket', detail: String(error) };
    tailFailed(generation);
    return;
  }
  if (generation !== tail.generation) return;
  const url = `/v1/topics/${enc(tail.topic)}/partitions/${enc(String(tail.partition))}/messages`
    + `?offset=${enc(String(tail.nextOffset))}&ticket=${enc(ticket.ticket)}`;
  const source = new EventSource(url);
  tail.source = source;
  tail.gotRecord = false;
  tail.openedAt = 0;
  source.addEventListener('open', () => {
    if (generation !== tail.generation) return;
    tail.openedAt = Date.now();
    setTailStatus('live', `Live: ${tail.topic} partition ${tail.partition}, waiting for records from offset ${tail.nextOffset}.`);
  });
  source.addEventListener('record', (event) => {
    if (generation !== tail.generation) return;
    let record;
    try {
      record = JSON.parse(event.data);
    } catch {
      return;
    }
    const offset = Number.isInteger(record.offset) ? record.offset : Number(event.lastEventId);
    tail.nextOffset = offset + 1;
    tail.gotRecord = true;
    tail.failures = 0;
    const body = $('tail-table').tBodies[0];
    body.append(recordRow(record));
    while (body.rows.length > TAIL_ROWS_MAX) body.deleteRow(0);
    setTailStatus('live', `Live: ${tail.topic} partition ${tail.partition}; last record at offset ${offset}.`);
  });
  source.addEventListener('error', (event) => {
    if (generation !== tail.generation) return;
    // A server-sent `error` event carries a problem; a plain Event is the connection failing.
    if (event instanceof MessageEvent && typeof event.data === 'string' && event.data) {
      try {
        tail.lastProblem = problemFrom(0, '', JSON.parse(event.data), event.data);
      } catch {
        tail.lastProblem = { title: 'The stream ended', detail: event.data.slice(0, 300) };
      }
    }
    // Never let EventSource reconnect by itself: its ticket is spent. Get a new one instead.
    source.close();
    if (tail.source === source) tail.source = null;
    const healthy = tail.gotRecord || (tail.openedAt && Date.now() - tail.openedAt >= TAIL_HEALTHY_MS);
    tail.failures = healthy ? 1 : tail.failures + 1;
    tailFailed(generation);
  }, { once: false });
}

/**
 * Why the stream cannot be opened: EventSource hides a refused answer's body, so ask once more
 * with fetch (and a new ticket) and read the problem. Answers null when the stream opens now.
 */
async function diagnoseTail() {
  const ticket = await api('POST', '/v1/stream-tickets', { body: { topic: tail.topic, partition: tail.partition } });
  const url = `/v1/topics/${enc(tail.topic)}/partitions/${enc(String(tail.partition))}/messages`
    + `?offset=${enc(String(tail.nextOffset))}&ticket=${enc(ticket.ticket)}`;
  const abort = new AbortController();
  try {
    const response = await fetch(url, {
      headers: { Accept: 'text/event-stream' }, signal: abort.signal, cache: 'no-store', credentials: 'omit',
    });
    if (response.ok) return null;
    const text = await response.text();
    let data = null;
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
    return problemFrom(response.status, response.statusText, data, text);
  } catch (error) {
    return { title: 'The event stream could not be reached', detail: String(error?.message ?? error) };
  } finally {
    abort.abort();
  }
}

function tailFailed(generation) {
  if (tail.failures === 0) tail.failures = 1;
  const problem = tail.lastProblem;
  if (tail.failures >= TAIL_FAILURES_MAX) {
    tail.generation += 1;
    closeTailSource();
    const attempts = tail.failures;
    const final = tail.generation;
    const finish = (found) => {
      if (final !== tail.generation) return;
      const shown = found || { title: 'The live tail stopped', detail: `${attempts} attempts in a row to open the event stream failed.` };
      setTailStatus('failed', `Stopped after ${attempts} failed attempts in a row: ${shown.title}${shown.detail ? `: ${shown.detail}` : ''}`);
      showProblem(shown);
    };
    if (problem) {
      finish(problem);
      return;
    }
    setTailStatus('reconnecting', `${attempts} attempts failed; asking the broker why…`);
    const epoch = session.epoch;
    diagnoseTail()
      .catch((error) => (error instanceof ApiError ? error.problem : null))
      .then((found) => {
        if (epoch === session.epoch) finish(found);
      });
    return;
  }
  const delay = 300 * 2 ** (tail.failures - 1);
  const why = problem ? ` (${problem.title}${problem.detail ? `: ${problem.detail}` : ''})` : '';
  setTailStatus('reconnecting', `Stream interrupted${why}; reconnecting from offset ${tail.nextOffset}…`);
  tail.retryTimer = setTimeout(() => {
    tail.retryTimer = null;
    openTailStream(generation).catch(report);
  }, delay);
}

// ---------------------------------------------------------------------------------------------
// Consumer groups

async function loadGroups() {
  const data = await api('GET', '/v1/groups');
  const groups = Array.isArray(data?.groups) ? data.groups : [];
  const body = $('groups-table').tBodies[0];
  clear(body);
  for (const group of groups) {
    body.append(el('tr', { dataset: { group: group.group } }, [
      el('td', {}, [el('code', { text: group.group })]),
      td(group.generation, 'num'),
      td(group.members, 'num'),
      el('td', { className: 'actions-cell' }, [
        button('Describe', () => describeGroup(group.group), { ariaLabel: `Describe group ${group.group}`, dataset: { action: 'describe' } }),
      ]),
    ]));
  }
  $('groups-empty').hidden = groups.length > 0;
}

async function describeGroup(name) {
  const group = await api('GET', `/v1/groups/${enc(name)}`);
  $('group-detail-name').textContent = group.group;
  $('group-detail-summary').textContent = `Generation ${group.generation}; ${group.members.length} member(s).`;
  const members = $('group-members-table').tBodies[0];
  clear(members);
  for (const member of group.members || []) {
    const assignments = (member.assignments || []).map((a) => `${a.topic}/${a.partition}`);
    members.append(el('tr', { dataset: { member: member.member_id } }, [
      el('td', {}, [el('code', { text: member.member_id })]),
      td(member.principal),
      td(list(member.topics)),
      td(list(assignments)),
      td(formatDuration(member.session_timeout_ms)),
      td(member.last_heartbeat_ms_ago === null || member.last_heartbeat_ms_ago === undefined
        ? '—' : `${formatDuration(member.last_heartbeat_ms_ago)} ago`),
    ]));
  }
  const offsets = $('group-offsets-table').tBodies[0];
  clear(offsets);
  for (const o of group.offsets || []) {
    offsets.append(el('tr', { dataset: { topic: o.topic, partition: o.partition } }, [
      el('td', {}, [el('code', { text: o.topic })]),
      td(o.partition, 'num'),
      td(o.committed_offset === null || o.committed_offset === undefined ? 'none' : o.committed_offset, 'num'),
      td(o.high_watermark, 'num'),
      td(o.log_start_offset, 'num'),
      td(o.lag, o.lag > 0 ? 'num warn' : 'num'),
    ]));
  }
  $('group-detail').hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Users and ACLs

async function loadUsersAndAcls() {
  const [users, acls] = await Promise.allSettled([loadUsers(), loadAcls()]);
  for (const result of [users, acls]) if (result.status === 'rejected') throw result.reason;
}

async function loadUsers() {
  const data = await api('GET', '/v1/users');
  const users = Array.isArray(data?.users) ? data.users : [];
  users.sort((a, b) => (a.username < b.username ? -1 : a.username > b.username ? 1 : 0));
  const body = $('users-table').tBodies[0];
  clear(body);
  for (const user of users) {
    body.append(el('tr', { dataset: { user: user.username } }, [
      el('td', {}, [el('code', { text: user.username })]),
      td(user.superuser ? 'yes' : 'no'),
      td(isoTime(user.created_ms)),
      el('td', { className: 'actions-cell' }, [
        button('Password', () => {
          $('password-user').value = user.username;
          $('password-new').focus();
        }, { ariaLabel: `Change the password of ${user.username}`, dataset: { action: 'password' } }),
        button('Delete', () => deleteUser(user.username), { className: 'danger', ariaLabel: `Delete user ${user.username}`, dataset: { action: 'delete' } }),
      ]),
    ]));
  }
}

async function loadAcls(added) {
  const data = await api('GET', '/v1/acls');
  const rules = Array.isArray(data?.acls) ? data.acls : [];
  if (added && !rules.some((r) => r.id === added.id)) rules.push(added);
  rules.sort((a, b) => a.id - b.id);
  const body = $('acls-table').tBodies[0];
  clear(body);
  for (const rule of rules) {
    const cells = aclCells(rule);
    cells.push(el('td', { className: 'actions-cell' }, [
      button('Revoke', () => revokeAcl(rule), { className: 'danger', ariaLabel: `Revoke rule ${rule.id}`, dataset: { action: 'revoke' } }),
    ]));
    body.append(el('tr', { dataset: { aclId: rule.id } }, cells));
  }
  $('acls-empty').hidden = rules.length > 0;
}

function aclCells(rule) {
  return [
    td(rule.id, 'num'),
    el('td', {}, [el('code', { text: rule.principal })]),
    td(rule.resource),
    el('td', {}, [el('code', { text: formatPattern(rule.pattern) })]),
    td(rule.operation),
    td(rule.effect, rule.effect === 'deny' ? 'effect-deny' : 'effect-allow'),
  ];
}

async function createUser() {
  const body = {
    username: $('user-name').value.trim(),
    password: $('user-password').value,
    superuser: $('user-superuser').checked,
  };
  const created = await api('POST', '/v1/users', { body });
  $('user-password').value = '';
  $('user-name').value = '';
  $('user-superuser').checked = false;
  $('users-status').textContent = `Created user ${created.username}${created.superuser ? ' (superuser)' : ''}.`;
  await loadUsers();
}

async function deleteUser(name) {
  const confirmed = await confirmAction(`Delete user ${name}? Their tokens stop working.`, 'Delete user');
  if (!confirmed) return;
  await api('DELETE', `/v1/users/${enc(name)}`);
  $('users-status').textContent = `Deleted user ${name}.`;
  await loadUsers();
}

async function setPassword() {
  const user = $('password-user').value.trim();
  if (!user) throw localProblem('No user named', 'Type the user whose password to change.');
  await api('PUT', `/v1/users/${enc(user)}/password`, { body: { password: $('password-new').value } });
  $('password-new').value = '';
  $('users-status').textContent = `Changed the password of ${user}.`;
}

function patternFromForm() {
  const kind = $('acl-pattern-type').value;
  const value = $('acl-pattern-value').value.trim();
  if (kind === 'any') return 'any';
  return kind === 'prefix' ? { prefix: value } : { literal: value };
}

async function createAcl() {
  const body = {
    principal: $('acl-principal').value.trim(),
    resource: $('acl-resource').value,
    pattern: patternFromForm(),
    operation: $('acl-operation').value,
    effect: $('acl-effect').value,
  };
  const rule = await api('POST', '/v1/acls', { body });
  const status = $('acls-status');
  status.textContent = `Added rule ${rule.id}: ${rule.effect} ${rule.principal} ${rule.operation} on ${rule.resource} ${formatPattern(rule.pattern)}.`;
  status.dataset.aclId = String(rule.id);
  await loadAcls(rule);
}

async function revokeAcl(rule) {
  const confirmed = await confirmAction(
    `Revoke rule ${rule.id} (${rule.effect} ${rule.principal} ${rule.operation} on ${rule.resource} ${formatPattern(rule.pattern)})?`,
    'Revoke rule');
  if (!confirmed) return;
  await api('DELETE', `/v1/acls/${enc(String(rule.id))}`);
  $('acls-status').textContent = `Revoked rule ${rule.id}.`;
  await loadAcls();
}

const DECISION_TEXT = {
  superuser: 'superuser: passes every check, no rule consulted',
  allow: 'allow: an allow rule matched and no deny rule did',
  deny: 'deny: a deny rule matched, and deny wins over any allow',
  default_deny: 'default deny: no rule matched, and what is not allowed is denied',
};

async function explain() {
  const query = {
    principal: $('explain-principal').value.trim(),
    resource_type: $('explain-resource-type').value,
    resource: $('explain-resource').value.trim(),
    operation: $('explain-operation').value,
  };
  const answer = await api('GET', '/v1/acls/explain', { query });
  const result = $('explain-result');
  const verdict = $('explain-verdict');
  verdict.textContent = answer.allowed
    ? `ALLOWED: ${answer.principal} may ${answer.operation} ${answer.resource_type} ${answer.resource}`
    : `DENIED: ${answer.principal} may not ${answer.operation} ${answer.resource_type} ${answer.resource}`;
  verdict.className = `verdict ${answer.allowed ? 'verdict-allowed' : 'verdict-denied'}`;
  result.dataset.allowed = String(Boolean(answer.allowed));
  result.dataset.decision = String(answer.decision);
  $('explain-decision').textContent = DECISION_TEXT[answer.decision] ?? String(answer.decision);
  $('explain-reason').textContent = answer.reason ?? '';
  const body = $('explain-matched').tBodies[0];
  clear(body);
  const matched = Array.isArray(answer.matched) ? answer.matched : [];
  // The deciding rules: the lowest-id deny when denied by a rule, else the allows.
  const denies = matched.filter((r) => r.effect === 'deny').map((r) => r.id);
  const decidingDeny = denies.length ? Math.min(...denies) : null;
  for (const rule of matched) {
    const deciding = answer.decision === 'deny' ? rule.id === decidingDeny
      : answer.decision === 'allow' ? rule.effect === 'allow' : false;
    body.append(el('tr', { dataset: { aclId: rule.id }, className: deciding ? 'deciding' : '' }, aclCells(rule)));
  }
  $('explain-matched-empty').hidden = matched.length > 0;
  result.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Audit: pages, filters, and the hash chain checked with WebCrypto

const audit = {
  /** Offsets of the pages before the one shown, for "Previous page". */
  history: [],
  /** { offset, limit, filtered, next, logStart, highWatermark }. */
  page: null,
  head: null,
};

const DECISION_CODES = { allow: 1, deny: 2, success: 3, failure: 4 };
const textEncoder = new TextEncoder();

class HashInput {
  constructor() {
    this.parts = [];
    this.length = 0;
  }

  bytes(array) {
    this.parts.push(array);
    this.length += array.length;
  }

  u64(value) {
    const array = new Uint8Array(8);
    new DataView(array.buffer).setBigUint64(0, BigInt(value));
    this.bytes(array);
  }

  u16(value) {
    const array = new Uint8Array(2);
    new DataView(array.buffer).setUint16(0, value);
    this.bytes(array);
  }

  byte(value) {
    this.bytes(Uint8Array.of(value));
  }

  string(text) {
    const utf8 = textEncoder.encode(text);
    this.u64(utf8.length);
    this.bytes(utf8);
  }

  optional(text) {
    if (text === null || text === undefined) {
      this.byte(0);
    } else {
      this.byte(1);
      this.string(text);
    }
  }

  concat() {
    const all = new Uint8Array(this.length);
    let at = 0;
    for (const part of this.parts) {
      all.set(part, at);
      at += part.length;
    }
    return all;
  }
}

/** The hash an event must carry: src/audit/event.rs `event_hash`, byte for byte. */
async function auditEventHash(event) {
  const code = DECISION_CODES[event.decision];
  if (code === undefined) throw new Error(`unknown decision ${JSON.stringify(event.decision)}`);
  if (!Number.isSafeInteger(event.time_ms) || !Number.isSafeInteger(event.broker)
    || !Number.isInteger(event.status) || event.status < 0 || event.status > 0xffff) {
    throw new Error('time_ms, broker or status is not an integer in range');
  }
  const input = new HashInput();
  input.bytes(textEncoder.encode('palisade-audit-v1'));
  input.string(event.prev_hash);
  input.u64(event.time_ms);
  input.u64(event.broker);
  input.string(event.request_id);
  input.optional(event.principal);
  input.string(event.source);
  input.string(event.action);
  input.string(event.resource);
  input.byte(code);
  input.u16(event.status);
  input.optional(event.detail);
  const digest = await crypto.subtle.digest('SHA-256', input.concat());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Checks the events shown: each hash recomputed, and for each pair of consecutive offsets the
 * link (prev_hash = the previous event's hash); the first event of the log against the genesis
 * hash; the newest against the published head. On a page without filters offsets must follow
 * each other; with filters a gap only means skipped events, and no link is checked across it. Answers { ok, linksChecked, gaps, problems,
 * results } where results[i] is { hashOk, linkOk (true, false or null when not checkable) }.
 */
async function verifyChain(events, head, filtered) {
  const problems = [];
  const results = [];
  let gaps = 0;
  let links = 0;
  for (let i = 0; i < events.length; i += 1) {
    const event = events[i];
    let computed;
    let hashOk;
    try {
      computed = await auditEventHash(event);
      hashOk = computed === event.hash;
    } catch (error) {
      hashOk = false;
      computed = `(cannot compute: ${error.message})`;
    }
    if (!hashOk) {
      problems.push(`event at offset ${event.offset}: its stored hash ${event.hash} does not match its fields (recomputed ${computed})`);
    }
    let linkOk = null;
    const previous = events[i - 1];
    if (previous && Number.isInteger(event.offset) && event.offset === previous.offset + 1) {
      linkOk = event.prev_hash === previous.hash;
      links += 1;
      if (!linkOk) {
        problems.push(`event at offset ${event.offset}: its prev_hash ${event.prev_hash} is not the hash of offset ${previous.offset} (${previous.hash}): an event was removed, inserted or moved`);
      }
    } else if (previous && !filtered) {
      // Without filters a page holds every event of its range: a gap means events are missing.
      linkOk = false;
      problems.push(`event at offset ${event.offset} follows offset ${previous.offset} on a page without filters: the events between them are missing`);
    } else if (previous) {
      gaps += 1;
    } else if (event.offset === 0) {
      linkOk = event.prev_hash === GENESIS_HASH;
      if (!linkOk) problems.push(`event at offset 0: its prev_hash ${event.prev_hash} is not the genesis hash (64 zeros)`);
    }
    results.push({ hashOk, linkOk });
  }
  let headMatch = null;
  const last = events[events.length - 1];
  if (head && last && head.offset === last.offset) {
    headMatch = head.hash === last.hash;
    if (!headMatch) problems.push(`event at offset ${last.offset}: its hash ${last.hash} differs from the published head ${head.hash}`);
  }
  return { ok: problems.length === 0, links, gaps, problems, results, headMatch };
}

function auditFiltersFromForm() {
  const toMs = (id) => {
    const value = $(id).value;
    if (!value) return undefined;
    const ms = new Date(value).getTime();
    if (!Number.isFinite(ms)) throw localProblem('Not a time', `${$(id).labels?.[0]?.textContent}: ${value}`);
    return ms;
  };
  return {
    principal: $('audit-principal').value.trim() || undefined,
    action: $('audit-action').value.trim() || undefined,
    decision: $('audit-decision').value || undefined,
    since_ms: toMs('audit-since'),
    until_ms: toMs('audit-until'),
  };
}

async function loadAuditHead() {
  const head = await api('GET', '/v1/audit/head');
  audit.head = head;
  const at = head.offset === null || head.offset === undefined ? 'the log is empty'
    : `offset ${head.offset}, hash ${head.hash}${head.time_ms ? `, recorded ${isoTime(head.time_ms)}` : ''}`;
  const headText = $('audit-head');
  headText.textContent = `Published head: ${at} (high watermark ${head.high_watermark}, log start ${head.log_start_offset ?? 0}).`;
  headText.dataset.offset = head.offset ?? '';
  headText.dataset.hash = head.hash ?? '';
  return head;
}

async function enterAudit() {
  await readAudit(undefined, []);
}

async function readAudit(offset, history) {
  const limit = optionalInteger('audit-limit') ?? 200;
  const filters = auditFiltersFromForm();
  const filtered = Object.values(filters).some((v) => v !== undefined);
  const head = await loadAuditHead();
  let from = offset;
  if (from === undefined) from = optionalInteger('audit-offset');
  if (from === undefined) from = Math.max(head.log_start_offset ?? 0, head.high_watermark - limit);
  const page = await api('GET', '/v1/audit', { query: { offset: from, limit, ...filters } });
  const events = Array.isArray(page?.events) ? page.events : [];
  audit.page = { offset: from, limit, filtered, next: page.next_offset, logStart: page.log_start_offset ?? 0, highWatermark: page.high_watermark };
  audit.history = history;
  $('audit-offset').value = String(from);
  $('audit-prev').disabled = from <= audit.page.logStart;
  $('audit-next').disabled = page.next_offset >= page.high_watermark;
  $('audit-status').textContent = `Examined offsets ${from}..${Math.max(from, page.next_offset - 1)} of ${audit.page.logStart}..${Math.max(0, page.high_watermark - 1)}: ${events.length} event(s) shown${filtered ? ' (filtered)' : ''}.`;

  const body = $('audit-table').tBodies[0];
  clear(body);
  const rows = events.map((event) => {
    const row = el('tr', { dataset: { offset: event.offset, action: event.action, decision: event.decision } }, [
      td(event.offset, 'num'),
      td(isoTime(event.time_ms)),
      td(event.broker, 'num'),
      event.principal === null || event.principal === undefined ? td('(none)', 'muted') : el('td', {}, [el('code', { text: event.principal })]),
      td(event.source),
      el('td', {}, [el('code', { text: event.action })]),
      el('td', { className: 'wrap' }, [el('code', { text: event.resource })]),
      td(event.decision, `decision-${event.decision === 'deny' || event.decision === 'failure' ? 'bad' : 'good'}`),
      td(event.status, 'num'),
      event.detail === null || event.detail === undefined ? td('—', 'muted') : el('td', { className: 'wrap detail', text: event.detail }),
      el('td', { className: 'hash', title: event.hash }, [el('code', { text: `${String(event.hash).slice(0, 12)}…` })]),
    ]);
    body.append(row);
    return row;
  });
  await showChain(events, rows, head, filtered);
}

async function showChain(events, rows, head, filtered) {
  const chain = $('audit-chain');
  if (!events.length) {
    chain.dataset.state = 'none';
    chain.textContent = 'No events on this page to verify.';
    return;
  }
  if (!globalThis.crypto?.subtle) {
    chain.dataset.state = 'broken';
    chain.textContent = 'Cannot verify: WebCrypto is unavailable (the page is not a secure context).';
    return;
  }
  chain.dataset.state = 'checking';
  chain.textContent = 'Verifying the hash chain…';
  const epoch = session.epoch;
  const verdict = await verifyChain(events, head, filtered);
  if (epoch !== session.epoch) return;
  verdict.results.forEach((result, i) => {
    const row = rows[i];
    if (!result.hashOk) row.classList.add('chain-bad');
    if (result.linkOk === false) row.classList.add('link-bad');
    row.dataset.chain = !result.hashOk || result.linkOk === false ? 'bad' : 'ok';
  });
  const first = events[0].offset;
  const last = events[events.length - 1].offset;
  chain.dataset.first = String(first);
  chain.dataset.last = String(last);
  if (!verdict.ok) {
    chain.dataset.state = 'broken';
    chain.textContent = `Chain broken: ${verdict.problems.join('; ')}.`;
    return;
  }
  const headText = verdict.headMatch ? ' The newest event matches the published head.' : '';
  if (verdict.gaps > 0 || filtered) {
    chain.dataset.state = 'hashes';
    chain.textContent = `Hashes recomputed for ${events.length} event(s) at offsets ${first}..${last}; `
      + `${verdict.gaps} gap(s) between them where the filters skipped events, so the links across gaps `
      + `cannot be checked (${verdict.links} link(s) between consecutive offsets checked).${headText}`;
    return;
  }
  chain.dataset.state = 'verified';
  chain.textContent = `Chain verified for offsets ${first}..${last}: ${events.length} hash(es) recomputed and `
    + `${verdict.links} link(s) checked.${headText}`;
}

async function auditNext() {
  if (!audit.page) return readAudit(undefined, []);
  await readAudit(audit.page.next, [...audit.history, audit.page.offset]);
}

async function auditPrevious() {
  if (!audit.page) return readAudit(undefined, []);
  const history = [...audit.history];
  let offset = history.pop();
  if (offset === undefined) offset = Math.max(audit.page.logStart, audit.page.offset - audit.page.limit);
  await readAudit(offset, history);
}

// ---------------------------------------------------------------------------------------------
// Cluster, refreshed every 2 s while shown

const cluster = { timer: null, generation: 0 };

function startClusterRefresh() {
  stopClusterRefresh();
  const generation = cluster.generation;
  const tick = async () => {
    if (generation !== cluster.generation) return;
    try {
      await loadCluster(generation);
    } catch (error) {
      if (generation === cluster.generation) {
        report(error);
        $('cluster-updated').textContent = `Refresh failed at ${new Date().toLocaleTimeString()}; retrying.`;
      }
    }
    if (generation === cluster.generation && session.token) {
      cluster.timer = setTimeout(tick, CLUSTER_REFRESH_MS);
    }
  };
  return tick();
}

function stopClusterRefresh() {
  cluster.generation += 1;
  clearTimeout(cluster.timer);
  cluster.timer = null;
}

async function loadCluster(generation) {
  const view = await api('GET', '/v1/cluster');
  if (generation !== cluster.generation) return;
  const controller = view.controller || {};
  const partitions = Array.isArray(view.partitions) ? view.partitions : [];
  const brokers = Array.isArray(view.brokers) ? [...view.brokers] : [];
  brokers.sort((a, b) => a.id - b.id);
  $('cluster-answered').textContent = String(view.broker ?? '');
  $('cluster-controller-leader').textContent = controller.leader === null || controller.leader === undefined
    ? 'none (election running)' : `broker ${controller.leader}`;
  $('cluster-controller-term').textContent = controller.term ?? '—';
  $('cluster-voters').textContent = list(controller.voters);
  $('cluster-learners').textContent = list(controller.learners);
  $('cluster-moves').textContent = String(view.moves_in_flight ?? 0);

  const body = $('brokers-table').tBodies[0];
  clear(body);
  for (const broker of brokers) {
    const replicas = partitions.filter((p) => (p.replicas || []).includes(broker.id)).length;
    const leaders = partitions.filter((p) => p.leader === broker.id).length;
    const state = broker.state || 'unknown';
    const up = state === 'up';
    let role = broker.controller || 'none';
    if (controller.leader === broker.id) role = `${role} (leader)`;
    const stateClass = up ? 'state-up' : state === 'down' ? 'state-down' : 'state-other';
    const stateCell = el('td', { className: `state ${stateClass}` }, [
      el('span', { className: 'state-mark', attrs: { 'aria-hidden': 'true' }, text: up ? '●' : '▲' }), ' ',
      el('span', { className: 'state-text', text: up ? state : state.toUpperCase() }),
    ]);
    body.append(el('tr', {
      className: up ? 'broker-up' : state === 'down' ? 'broker-not-up broker-down' : 'broker-not-up',
      dataset: { brokerId: broker.id, state, leaders, replicas },
    }, [
      td(broker.id, 'num'),
      stateCell,
      td(role),
      el('td', { className: 'num', dataset: { field: 'replicas' }, text: replicas }),
      el('td', { className: 'num', dataset: { field: 'leaders' }, text: leaders }),
      td(broker.silence_ms === null || broker.silence_ms === undefined ? '—' : formatDuration(broker.silence_ms)),
      el('td', {}, [el('code', { text: broker.http || '—' })]),
      el('td', {}, [el('code', { text: broker.peer || '—' })]),
      td(broker.rack ?? '—'),
    ]));
  }

  const rows = $('cluster-partitions-table').tBodies[0];
  clear(rows);
  const sorted = [...partitions].sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
  for (const p of sorted) {
    const lag = p.lag && typeof p.lag === 'object' ? Object.entries(p.lag).map(([id, n]) => `${id}: ${n}`) : [];
    const noLeader = p.leader === null || p.leader === undefined;
    rows.append(el('tr', { dataset: { topic: p.topic, partition: p.partition, leader: noLeader ? '' : p.leader } }, [
      el('td', {}, [el('code', { text: p.topic })]),
      td(p.partition, 'num'),
      td(noLeader ? 'none' : p.leader, noLeader ? 'warn' : 'num'),
      td(p.term ?? '—', 'num'),
      td(list(p.replicas)),
      td(list(p.voters)),
      td(list(p.learners)),
      td(p.commit ?? '—', 'num'),
      td(lag.length ? lag.join(', ') : '—'),
    ]));
  }
  const updated = $('cluster-updated');
  updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${CLUSTER_REFRESH_MS / 1000} s.`;
  updated.dataset.at = String(Date.now());
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  onSubmit($('signin-form'), signIn);
  $('signout').addEventListener('click', guard(signOut));
  $('alert-dismiss').addEventListener('click', clearProblem);
  for (const link of document.querySelectorAll('#nav .nav-link')) {
    link.addEventListener('click', guard(() => showView(link.dataset.view)));
  }

  $('topics-refresh').addEventListener('click', guard(() => loadTopics()));
  onSubmit($('topic-create-form'), createTopic);

  $('msg-topic').addEventListener('change', () => fillPartitionSelect());
  onSubmit($('browse-form'), readFromForm);
  $('msg-next').addEventListener('click', guard(nextPage));
  $('msg-prev').addEventListener('click', guard(previousPage));
  onSubmit($('produce-form'), produce);
  onSubmit($('tail-form'), startTail);
  $('tail-stop').addEventListener('click', () => stopTail('Stopped.'));

  $('groups-refresh').addEventListener('click', guard(loadGroups));

  $('users-refresh').addEventListener('click', guard(loadUsersAndAcls));
  onSubmit($('user-create-form'), createUser);
  onSubmit($('password-form'), setPassword);
  onSubmit($('acl-form'), createAcl);
  $('acl-pattern-type').addEventListener('change', () => {
    $('acl-pattern-value').disabled = $('acl-pattern-type').value === 'any';
  });
  onSubmit($('explain-form'), explain);

  onSubmit($('audit-form'), () => readAudit(optionalInteger('audit-offset'), []));
  $('audit-next').addEventListener('click', guard(auditNext));
  $('audit-prev').addEventListener('click', guard(auditPrevious));

  $('confirm-ok').addEventListener('click', () => settleConfirm(true));
  $('confirm-cancel').addEventListener('click', () => settleConfirm(false));
  $('confirm-dialog').addEventListener('cancel', (event) => {
    event.preventDefault();
    settleConfirm(false);
  });
  $('confirm-form').addEventListener('submit', (event) => event.preventDefault());

  // Leaving the page (a reload, closing the tab) ends the session: revoke the token on the way
  // out, so no valid token outlives the page that held it.
  window.addEventListener('pagehide', () => {
    if (!session.token) return;
    const token = session.token;
    session.token = null;
    fetch('/v1/auth/revoke', {
      method: 'POST', headers: { Authorization: `Bearer ${token}` }, keepalive: true, credentials: 'omit', cache: 'no-store',
    }).catch(() => {});
  });

  showSignIn('');
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', wire);
else wire();
