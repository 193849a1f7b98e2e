// End-to-end test of the web console (console/ in the repository, served by a broker at
// /console) in Debian's headless Chromium, driven by playwright-core. tests/console.sh installs
// what it needs and runs it; tests/console.rs starts a real 3-broker cluster and passes:
//
//   CONSOLE_URL          base URL of the broker the browser talks to (https://127.0.0.1:PORT)
//   CONSOLE_CA           the PEM CA that signs the brokers' HTTPS certificates
//   ADMIN_PASSWORD       the password of the superuser `admin`
//   CONSOLE_BROKERS      JSON [{"id":1,"url":"https://...","pid":1234}, ...], to SIGKILL one by pid
//   CONSOLE_SCREENSHOTS  directory for the screenshots (created if missing)
//   CONSOLE_DEADLINE_MS  optional: Unix ms by which this script must be done
//   CONSOLE_BUDGET_MS    optional: longest run of this script, default 180000
//
// Chromium trusts exactly the certificate the broker serves: node fetches it over TLS, verified
// against CONSOLE_CA, and passes the SHA-256 of its SubjectPublicKeyInfo to Chromium with
// --ignore-certificate-errors-spki-list, so the page is a secure context (WebCrypto works)
// without a blanket certificate override. Every step is an assertion that throws on failure.

import { chromium } from 'playwright-core';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

const started = Date.now();

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set (see the head of e2e.mjs)`);
  return value;
}

const BASE = required('CONSOLE_URL').replace(/\/+$/, '');
const CA_PEM = fs.readFileSync(required('CONSOLE_CA'));
const ADMIN_PASSWORD = required('ADMIN_PASSWORD');
const BROKERS = JSON.parse(required('CONSOLE_BROKERS'));
const SHOTS = required('CONSOLE_SCREENSHOTS');
const BUDGET_MS = Number(process.env.CONSOLE_BUDGET_MS || 180_000);
const DEADLINE = Math.min(Number(process.env.CONSOLE_DEADLINE_MS || Infinity), started + BUDGET_MS);

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
  + "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage', '--disable-extensions', '--disable-default-apps',
  '--no-default-browser-check', '--disable-domain-reliability', '--disable-breakpad',
  '--disable-client-side-phishing-detection', '--metrics-recording-only', '--password-store=basic',
  '--use-mock-keychain', '--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater',
];
const WAIT_MS = 15_000;
const FAILOVER_WAIT_MS = 60_000;

const suffix = crypto.randomBytes(3).toString('hex');
const TOPIC = `console-e2e-${suffix}`;
const READER = `e2e-reader-${suffix}`;
const READER_PASSWORD = 'reader-password-1';
const GROUP = `console-e2e-group-${suffix}`;

// ---------------------------------------------------------------------------------------------
// Helpers

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

function remaining() {
  return DEADLINE - Date.now();
}

/** Milliseconds to wait for something: `ms`, cut to what is left of the overall deadline. */
function within(ms) {
  const left = remaining();
  if (left <= 0) throw new Failure('the overall deadline passed');
  return Math.max(1, Math.min(ms, left));
}

/** Polls `probe` until it answers a truthy value, every 100 ms, failing after `ms`. */
async function eventually(what, ms, probe) {
  const until = Date.now() + within(ms);
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = undefined;
    } catch (error) {
      if (error instanceof Failure) throw error;
      last = error;
    }
    if (Date.now() >= until) {
      throw new Failure(`${what} did not happen within ${ms} ms${last ? ` (last error: ${last.message})` : ''}`);
    }
    await new Promise((resolve) => { setTimeout(resolve, 100); });
  }
}

/** An HTTPS request from node, trusting CONSOLE_CA only. */
function request(method, url, { token, body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const all = { Accept: 'application/json', ...headers };
    if (token) all.Authorization = `Bearer ${token}`;
    if (payload) {
      all['Content-Type'] = 'application/json';
      all['Content-Length'] = String(payload.length);
    }
    const req = https.request(url, { method, headers: all, ca: CA_PEM, timeout: within(WAIT_MS) }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try {
          json = text ? JSON.parse(text) : null;
        } catch {
          json = null;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

async function api(method, pathAndQuery, options) {
  return request(method, `${BASE}${pathAndQuery}`, options);
}

async function login(username, password) {
  const answer = await api('POST', '/v1/auth/token', { body: { username, password } });
  check(answer.status === 200, `login of ${username} answered ${answer.status}: ${answer.text}`);
  return answer.json.access_token;
}

/** base64 SHA-256 of the SubjectPublicKeyInfo of the certificate `url`'s server presents,
 * after verifying that certificate against CONSOLE_CA. */
function serverSpkiHash(url) {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: target.hostname,
      port: Number(target.port || 443),
      ca: CA_PEM,
      servername: net.isIP(target.hostname) ? undefined : target.hostname,
      ALPNProtocols: ['http/1.1'],
    }, () => {
      try {
        const certificate = socket.getPeerX509Certificate();
        const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
        resolve({ hash: crypto.createHash('sha256').update(spki).digest('base64'), subject: certificate.subject });
      } catch (error) {
        reject(error);
      } finally {
        socket.end();
      }
    });
    socket.setTimeout(within(WAIT_MS), () => socket.destroy(new Error('TLS handshake timed out')));
    socket.on('error', reject);
  });
}

const steps = [];

async function step(name, body) {
  const at = Date.now();
  process.stdout.write(`[${steps.length + 1}] ${name} ... `);
  try {
    const note = await body();
    const seconds = ((Date.now() - at) / 1000).toFixed(1);
    steps.push(name);
    process.stdout.write(`ok (${seconds} s)${note ? `: ${note}` : ''}\n`);
  } catch (error) {
    process.stdout.write('FAILED\n');
    throw error;
  }
}

/** An event-stream request of the console: a partition's messages with a stream ticket. */
function isStreamUrl(url) {
  return url.pathname.endsWith('/messages') && url.searchParams.has('ticket');
}

// ---------------------------------------------------------------------------------------------
// The run

const overall = setTimeout(() => {
  console.error(`console e2e: the overall deadline passed after ${((Date.now() - started) / 1000).toFixed(1)} s, during step ${steps.length + 1}`);
  process.exit(3);
}, Math.max(1, remaining()));

fs.mkdirSync(SHOTS, { recursive: true });
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-console-chromium-'));
let context;

/** securitypolicyviolation events, and Chromium's own console messages about the policy. */
const violations = [];
const policyMessages = [];
const pageErrors = [];
const bearerTokens = new Set();
const requestUrls = [];
const clusterRequests = [];
const ticketRequests = [];

async function main() {
  const admin = await login('admin', ADMIN_PASSWORD);

  await step('the console is served with its security headers and no inline script or style', async () => {
    for (const file of ['/console', '/console/', '/console/app.js', '/console/app.css']) {
      const answer = await api('GET', file, { headers: { Accept: '*/*' } });
      check(answer.status === 200, `GET ${file} answered ${answer.status}`);
      const policy = answer.headers['content-security-policy'];
      check(policy === CSP, `GET ${file}: Content-Security-Policy is ${JSON.stringify(policy)}, expected ${JSON.stringify(CSP)}`);
      check(/frame-ancestors 'none'/.test(policy), `GET ${file}: no frame-ancestors 'none'`);
      check(answer.headers['x-content-type-options'] === 'nosniff', `GET ${file}: no X-Content-Type-Options: nosniff`);
      const type = answer.headers['content-type'] || '';
      const expected = file.endsWith('.js') ? /^text\/javascript/ : file.endsWith('.css') ? /^text\/css/ : /^text\/html/;
      check(expected.test(type), `GET ${file}: Content-Type ${type}`);
      if (!file.includes('.')) {
        const html = answer.text;
        for (const match of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
          check(/\bsrc=/.test(match[1]) && match[2].trim() === '', `an inline script in ${file}: ${match[0].slice(0, 80)}`);
        }
        check(!/<style\b/i.test(html), `a <style> element in ${file}`);
        check(!/\sstyle\s*=/i.test(html), `a style attribute in ${file}`);
        check(!/\son[a-z]+\s*=/i.test(html), `an inline event handler in ${file}`);
      }
    }
    const missing = await api('GET', '/console/other.js', { headers: { Accept: '*/*' } });
    check(missing.status === 404 || missing.status === 401, `GET /console/other.js answered ${missing.status}: the console serves only its three files`);
    return 'CSP as required on /console, /console/, app.js and app.css';
  });

  const spki = await serverSpkiHash(BASE);
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [...CHROMIUM_FLAGS, `--ignore-certificate-errors-spki-list=${spki.hash}`],
    viewport: { width: 1280, height: 800 },
    timeout: within(30_000),
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      console.error(`CSP-VIOLATION ${event.violatedDirective} blocked=${event.blockedURI} at ${event.sourceFile}:${event.lineNumber}`);
    });
  });
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('console', (message) => {
    const text = message.text();
    if (text.includes('CSP-VIOLATION')) violations.push(text);
    else if (/Content Security Policy/i.test(text)) policyMessages.push(text);
  });
  page.on('pageerror', (error) => pageErrors.push(String(error?.stack ?? error)));
  page.on('request', (req) => {
    requestUrls.push(req.url());
    const authorization = req.headers().authorization;
    if (authorization?.startsWith('Bearer ')) bearerTokens.add(authorization.slice('Bearer '.length));
    const pathname = new URL(req.url()).pathname;
    if (pathname === '/v1/cluster') clusterRequests.push(Date.now());
    if (pathname === '/v1/stream-tickets') ticketRequests.push(Date.now());
  });

  const shot = async (name, locator, { fullPage = false } = {}) => {
    if (locator) await locator.scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
  };
  const visible = (selector, ms = WAIT_MS) => page.locator(selector).first().waitFor({ state: 'visible', timeout: within(ms) });
  const text = async (selector) => (await page.locator(selector).first().textContent()) ?? '';
  const nav = async (view) => {
    await page.locator(`#nav-${view}`).click();
    await visible(`#view-${view}`);
    await page.locator(`#view-${view}:is([data-state="ready"], [data-state="error"])`).waitFor({ timeout: within(WAIT_MS) });
  };
  const alertText = async () => `${await text('#alert-title')}: ${await text('#alert-detail')}`;
  const expectNoAlert = async (what) => {
    if (await page.locator('#alert').isVisible()) throw new Failure(`${what}: the console shows a problem: ${await alertText()}`);
  };

  await step('the sign-in screen loads in a secure context (Chromium trusts the broker certificate)', async () => {
    const response = await page.goto(`${BASE}/console`, { waitUntil: 'load', timeout: within(WAIT_MS) });
    check(response && response.status() === 200, `/console answered ${response?.status()}`);
    await visible('#signin-form');
    check(/reload/i.test(await text('#signin-note')), 'the sign-in screen does not say that a reload signs out');
    const secure = await page.evaluate(() => ({ secure: window.isSecureContext, subtle: typeof crypto.subtle?.digest }));
    check(secure.secure && secure.subtle === 'function', `not a secure context: ${JSON.stringify(secure)}`);
    await shot('signin');
    return `certificate ${spki.subject.replace(/\n/g, ', ')} trusted by its SPKI hash`;
  });

  await step('the policy is enforced and a violation would be caught (a planted inline script and style)', async () => {
    const planted = await page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.plantedInlineScriptRan = true;';
      document.body.append(script);
      const probe = document.createElement('span');
      probe.setAttribute('style', 'color: rgb(1, 2, 3)');
      document.body.append(probe);
      const styled = getComputedStyle(probe).color === 'rgb(1, 2, 3)';
      probe.remove();
      script.remove();
      return { ran: window.plantedInlineScriptRan === true, styled };
    });
    check(!planted.ran, 'a planted inline script ran: the CSP is not enforced');
    check(!planted.styled, 'a planted style attribute applied: the CSP is not enforced');
    await eventually('both planted violations reported, as events and as console messages', WAIT_MS,
      async () => violations.length >= 2 && policyMessages.length >= 2);
    const caught = violations.splice(0, violations.length);
    policyMessages.splice(0, policyMessages.length);
    return `caught: ${caught.map((v) => v.split(' ')[1]).join(', ')}`;
  });

  await step('a wrong password shows the problem in the alert region; the right one signs in', async () => {
    await page.fill('#signin-username', 'admin');
    await page.fill('#signin-password', 'not-the-password');
    await page.click('#signin-submit');
    await visible('#alert');
    check((await page.locator('#alert').getAttribute('role')) === 'alert', 'the alert region has no role="alert"');
    const refused = await alertText();
    check((await text('#alert-title')).trim().length > 0, 'the refused sign-in shows no problem title');
    check(await page.locator('#app').isHidden(), 'the app is shown after a refused sign-in');
    await page.fill('#signin-password', ADMIN_PASSWORD);
    await page.click('#signin-submit');
    await visible('#app');
    await visible('#view-topics');
    check((await text('#whoami')) === 'admin', `signed in as ${await text('#whoami')}`);
    await expectNoAlert('after sign-in');
    return `refused: "${refused.trim()}"`;
  });

  await step('the token is kept in memory only; a reload revokes it and means signing in again', async () => {
    const stored = await page.evaluate(() => ({ local: localStorage.length, session: sessionStorage.length, cookie: document.cookie }));
    check(stored.local === 0 && stored.session === 0 && stored.cookie === '', `the page stored something: ${JSON.stringify(stored)}`);
    check((await context.cookies()).length === 0, 'the browser holds cookies');
    check(bearerTokens.size === 1, `expected one bearer token in use, saw ${bearerTokens.size}`);
    const [token] = bearerTokens;
    check(!requestUrls.some((url) => url.includes(token)), 'the token appeared in a URL');
    await page.reload({ waitUntil: 'load' });
    await visible('#signin-form');
    check(await page.locator('#app').isHidden(), 'after a reload the app is still shown');
    // The page revoked its token as it went away.
    await eventually('the token of the reloaded page refused', WAIT_MS, async () => (await api('GET', '/v1/whoami', { token })).status === 401);
    await page.fill('#signin-username', 'admin');
    await page.fill('#signin-password', ADMIN_PASSWORD);
    await page.click('#signin-submit');
    await visible('#view-topics');
  });

  await step('keyboard: every control is labelled, Tab reaches the nav, Enter switches views, focus is visible', async () => {
    const unlabelled = await page.evaluate(() => {
      const missing = [];
      for (const control of document.querySelectorAll('input, select, textarea')) {
        if (!control.labels?.length && !control.getAttribute('aria-label')) missing.push(control.id || control.outerHTML.slice(0, 60));
      }
      for (const b of document.querySelectorAll('button')) {
        if (!b.textContent.trim() && !b.getAttribute('aria-label')) missing.push(b.id || b.outerHTML.slice(0, 60));
      }
      if (!document.querySelector('nav #nav-topics')) missing.push('the views are not switched from a <nav>');
      return missing;
    });
    check(unlabelled.length === 0, `controls without a label: ${unlabelled.join(', ')}`);
    await page.focus('#nav-topics');
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const a = document.activeElement;
      const style = getComputedStyle(a);
      return { id: a.id, outline: style.outlineStyle, width: style.outlineWidth };
    });
    check(focused.id === 'nav-messages', `Tab from the first view moved the focus to ${focused.id}`);
    check(focused.outline !== 'none' && focused.width !== '0px', `the focus is not visible: ${JSON.stringify(focused)}`);
    await page.keyboard.press('Enter');
    await visible('#view-messages');
    check((await page.getAttribute('#nav-messages', 'aria-current')) === 'page', 'the current view is not marked in the nav');
    await page.focus('#nav-topics');
    await page.keyboard.press('Enter');
    await visible('#view-topics');
  });

  await step('creating a topic with a bad name shows the API\'s validation message', async () => {
    await page.fill('#topic-name', 'no spaces allowed');
    await page.click('#topic-create');
    await visible('#alert');
    const problem = await alertText();
    check(/name|character|invalid/i.test(problem), `unexpected problem for a bad topic name: ${problem}`);
    return `"${problem.trim()}"`;
  });

  await step(`create topic ${TOPIC} (3 partitions, replication factor 3) and see it listed with its partitions`, async () => {
    await page.fill('#topic-name', TOPIC);
    await page.fill('#topic-partitions', '3');
    await page.fill('#topic-rf', '3');
    await page.click('#topic-create');
    const row = page.locator(`#topics-table tr[data-topic="${TOPIC}"]`);
    await row.waitFor({ state: 'visible', timeout: within(WAIT_MS) });
    await expectNoAlert('after creating the topic');
    check((await row.locator('td').nth(1).textContent()) === '3', 'the topic row does not show 3 partitions');
    await eventually('every partition of the new topic shows a leader', WAIT_MS, async () => {
      await row.locator('button[data-action="details"]').click();
      await visible('#topic-detail');
      const leaders = await page.locator('#partitions-detail-table tbody tr td:nth-child(2)').allTextContents();
      return leaders.length === 3 && leaders.every((l) => /^\d+$/.test(l));
    });
    // Still listed after a fresh listing from the broker.
    await eventually('the topic in a fresh listing', WAIT_MS, async () => {
      await page.click('#topics-refresh');
      return page.locator(`#topics-table tr[data-topic="${TOPIC}"]`).isVisible();
    });
    await row.locator('button[data-action="details"]').click();
    await visible('#topic-detail');
    await shot('topics', page.locator('#topic-detail'));
  });

  let produced;
  await step('live tail: a record produced through the console\'s form arrives in the tail', async () => {
    await page.locator(`#topics-table tr[data-topic="${TOPIC}"] button[data-action="messages"]`).click();
    await visible('#view-messages');
    check((await page.inputValue('#msg-topic')) === TOPIC, 'the messages view did not open the topic');
    await page.selectOption('#msg-partition', '0');
    // The first event stream is cut before it starts: the console must get a new ticket and
    // open the stream again (a ticket is single-use).
    const ticketsBefore = ticketRequests.length;
    await page.route(isStreamUrl, (route) => route.abort('connectionreset'), { times: 1 });
    await page.click('#tail-start');
    await page.locator('#tail-status[data-state="live"]').waitFor({ timeout: within(WAIT_MS) });
    check(ticketRequests.length - ticketsBefore === 2, `expected a second ticket after the cut stream, saw ${ticketRequests.length - ticketsBefore} ticket request(s)`);
    const value = `hello from the console ${suffix} <b>not html</b>`;
    const key = `key-${suffix}`;
    await page.fill('#produce-value', value);
    await page.fill('#produce-key', key);
    await page.fill('#produce-headers', `source: e2e\ntrace: ${suffix}`);
    await page.fill('#produce-partition', '0');
    await page.click('#produce-submit');
    await page.locator('#produce-result[data-offset]').waitFor({ timeout: within(WAIT_MS) });
    await expectNoAlert('after producing');
    const offset = await page.getAttribute('#produce-result', 'data-offset');
    check((await page.getAttribute('#produce-result', 'data-partition')) === '0', 'the record went to another partition');
    const row = page.locator(`#tail-table tbody tr[data-offset="${offset}"]`);
    await row.waitFor({ state: 'visible', timeout: within(WAIT_MS) });
    const cells = await row.locator('td').allTextContents();
    check(cells[0] === offset, `tail row offset ${cells[0]}, expected ${offset}`);
    check(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(cells[1]), `tail row time is not ISO: ${cells[1]}`);
    check(cells[2] === key, `tail row key ${cells[2]}, expected ${key}`);
    check(cells[3] === value, `tail row value ${JSON.stringify(cells[3])}, expected ${JSON.stringify(value)}`);
    check(cells[4].includes('source: e2e') && cells[4].includes(`trace: ${suffix}`), `tail row headers ${cells[4]}`);
    check(await row.locator('b').count() === 0, 'the record value was inserted as HTML');
    produced = { offset: Number(offset), value, key };
    return `offset ${offset} arrived in the tail`;
  });

  await step('a binary record is shown as base64 marked binary, in the tail and the page', async () => {
    const binary = await api('POST', `/v1/topics/${TOPIC}/messages`, {
      token: admin, body: { records: [{ value_b64: '/wD+AQ==', partition: 0 }] },
    });
    check(binary.status === 200, `producing a binary record answered ${binary.status}: ${binary.text}`);
    const offset = binary.json.offsets[0].offset;
    const row = page.locator(`#tail-table tbody tr[data-offset="${offset}"]`);
    await row.waitFor({ state: 'visible', timeout: within(WAIT_MS) });
    check((await row.locator('.badge.binary').count()) === 1, 'the binary record is not marked binary');
    check((await row.locator('.value-b64').textContent()) === '/wD+AQ==', 'the binary record does not show its base64');
    await page.fill('#msg-offset', '0');
    await page.click('#msg-load');
    const pageRow = page.locator(`#messages-table tbody tr[data-offset="${produced.offset}"]`);
    await pageRow.waitFor({ state: 'visible', timeout: within(WAIT_MS) });
    check((await pageRow.locator('td').nth(3).textContent()) === produced.value, 'the page shows another value');
    await page.locator(`#messages-table tbody tr[data-offset="${offset}"] .badge.binary`).waitFor({ timeout: within(WAIT_MS) });
    await shot('messages', null, { fullPage: true });
    await page.click('#tail-stop');
    await page.locator('#tail-status[data-state="stopped"]').waitFor({ timeout: within(WAIT_MS) });
  });

  await step('a live tail whose stream keeps failing stops after a few attempts and shows the problem', async () => {
    const ticketsBefore = ticketRequests.length;
    await page.route(isStreamUrl, (route) => route.abort('connectionrefused'));
    await page.click('#tail-start');
    await page.locator('#tail-status[data-state="failed"]').waitFor({ timeout: within(WAIT_MS) });
    await page.unroute(isStreamUrl);
    await visible('#alert');
    const attempts = ticketRequests.length - ticketsBefore;
    check(attempts >= 2 && attempts <= 6, `the tail made ${attempts} attempts`);
    check(/Stopped after \d+ failed attempts/.test(await text('#tail-status')), `tail status: ${await text('#tail-status')}`);
    check(await page.locator('#tail-stop').isDisabled(), 'Stop is still enabled after the tail stopped');
    await page.click('#alert-dismiss');
    return `${attempts} attempts, each with a new ticket; "${await text('#tail-status')}"`;
  });

  let member;
  await step('consumer groups: a member, its assignment, committed offset and lag', async () => {
    const joined = await api('POST', `/v1/groups/${GROUP}/members`, {
      token: admin, body: { topics: [TOPIC], session_timeout_ms: 600_000 },
    });
    check(joined.status === 201, `joining ${GROUP} answered ${joined.status}: ${joined.text}`);
    member = joined.json;
    // Partition 0 holds the two records written above: commit past the first.
    const assigned = member.assignments?.find((a) => a.partition === 0) ?? member.assignments?.[0];
    if (assigned) {
      const commit = await api('POST', `/v1/groups/${GROUP}/offsets`, {
        token: admin,
        body: { member_id: member.member_id, generation: member.generation, offsets: [{ topic: assigned.topic, partition: assigned.partition, offset: assigned.partition === 0 ? 1 : 0 }] },
      });
      check(commit.status === 204, `committing an offset answered ${commit.status}: ${commit.text}`);
    }
    await nav('groups');
    await eventually(`group ${GROUP} listed`, WAIT_MS, async () => {
      await page.click('#groups-refresh');
      return page.locator(`#groups-table tr[data-group="${GROUP}"]`).isVisible();
    });
    await page.locator(`#groups-table tr[data-group="${GROUP}"] button[data-action="describe"]`).click();
    await page.locator(`#group-members-table tr[data-member="${member.member_id}"]`).waitFor({ timeout: within(WAIT_MS) });
    const offsets = await page.locator('#group-offsets-table tbody tr').count();
    check(offsets >= 1, 'the group shows no committed offsets or lag');
    await shot('groups', null, { fullPage: true });
    return `member ${member.member_id}, ${offsets} partition row(s)`;
  });

  let aclId;
  await step('users & ACLs: create a user, explain denied, grant read, explain allowed with the rule', async () => {
    await nav('users');
    await page.fill('#user-name', READER);
    await page.fill('#user-password', READER_PASSWORD);
    await page.click('#user-create');
    await page.locator(`#users-table tr[data-user="${READER}"]`).waitFor({ timeout: within(WAIT_MS) }).catch(async () => {
      await eventually(`user ${READER} listed`, WAIT_MS, async () => {
        await page.click('#users-refresh');
        return page.locator(`#users-table tr[data-user="${READER}"]`).isVisible();
      });
    });
    await expectNoAlert('after creating the user');

    const explain = async () => {
      await page.fill('#explain-principal', READER);
      await page.selectOption('#explain-resource-type', 'topic');
      await page.fill('#explain-resource', TOPIC);
      await page.selectOption('#explain-operation', 'read');
      await page.click('#explain-submit');
      await visible('#explain-result');
      await expectNoAlert('explain');
      return {
        allowed: await page.getAttribute('#explain-result', 'data-allowed'),
        decision: await page.getAttribute('#explain-result', 'data-decision'),
      };
    };
    const before = await eventually('the explain view answers for the new user', WAIT_MS, explain);
    check(before.allowed === 'false' && before.decision === 'default_deny', `before the grant: ${JSON.stringify(before)}`);
    check(/DENIED/.test(await text('#explain-verdict')), 'the verdict does not say DENIED');
    check(await page.locator('#explain-verdict.verdict-denied').isVisible(), 'the denied verdict is not marked');

    await page.fill('#acl-principal', READER);
    await page.selectOption('#acl-resource', 'topic');
    await page.selectOption('#acl-pattern-type', 'literal');
    await page.fill('#acl-pattern-value', TOPIC);
    await page.selectOption('#acl-operation', 'read');
    await page.selectOption('#acl-effect', 'allow');
    await page.click('#acl-create');
    await page.locator('#acls-status[data-acl-id]').waitFor({ timeout: within(WAIT_MS) });
    aclId = await page.getAttribute('#acls-status', 'data-acl-id');
    await page.locator(`#acls-table tr[data-acl-id="${aclId}"]`).waitFor({ timeout: within(WAIT_MS) });
    await expectNoAlert('after the grant');

    const after = await eventually('the explain view turns to allowed', WAIT_MS, async () => {
      const answer = await explain();
      return answer.allowed === 'true' ? answer : null;
    });
    check(after.decision === 'allow', `after the grant the decision is ${after.decision}`);
    check(/ALLOWED/.test(await text('#explain-verdict')), 'the verdict does not say ALLOWED');
    const matched = page.locator(`#explain-matched tr[data-acl-id="${aclId}"]`);
    await matched.waitFor({ timeout: within(WAIT_MS) });
    const cells = await matched.locator('td').allTextContents();
    check(cells[1] === READER && cells[4] === 'read' && cells[5] === 'allow' && cells[3].includes(TOPIC),
      `the matched rule shows ${JSON.stringify(cells)}`);
    check((await text('#explain-reason')).length > 0, 'no reason shown');

    // Change the user's password through the console; the new one logs in.
    await page.fill('#password-user', READER);
    await page.fill('#password-new', `${READER_PASSWORD}-changed`);
    await page.click('#password-submit');
    await eventually('the password change confirmed', WAIT_MS, async () => /Changed the password/.test(await text('#users-status')));
    await expectNoAlert('after the password change');
    await eventually('the new password logs in', WAIT_MS, async () => {
      const answer = await api('POST', '/v1/auth/token', { body: { username: READER, password: `${READER_PASSWORD}-changed` } });
      return answer.status === 200;
    });
    await shot('users', null, { fullPage: true });
    return `rule ${aclId}; reason "${await text('#explain-reason')}"`;
  });

  await step('audit: the topic, user and ACL changes are listed, the chain verifies, a tampered page is caught', async () => {
    await nav('audit');
    await page.fill('#audit-limit', '1000');
    await page.fill('#audit-offset', '');
    await page.click('#audit-load');
    const row = (action, needle) => page.locator(`#audit-table tbody tr[data-action="${action}"]`, { hasText: needle });
    await eventually('the topic.create, user.create and acl.create events shown', WAIT_MS, async () => {
      const counts = await Promise.all([row('topic.create', TOPIC).count(), row('user.create', READER).count(), row('acl.create', READER).count()]);
      if (counts.every((n) => n > 0)) return true;
      await page.fill('#audit-offset', '');
      await page.click('#audit-load');
      return false;
    }).catch(async (error) => {
      const actions = await page.locator('#audit-table tbody tr').evaluateAll((rows) => rows.map((r) => `${r.dataset.action} ${r.cells[6]?.textContent}`));
      throw new Failure(`${error.message}; shown: ${actions.slice(-30).join(' | ')}`);
    });
    await page.locator('#audit-chain:not([data-state="checking"])').waitFor({ timeout: within(WAIT_MS) });
    const state = await page.getAttribute('#audit-chain', 'data-state');
    const chain = await text('#audit-chain');
    check(state === 'verified', `the chain is ${state}: ${chain}`);
    const match = /Chain verified for offsets (\d+)\.\.(\d+)/.exec(chain);
    check(match, `the chain status does not name the verified offsets: ${chain}`);
    const rows = await page.locator('#audit-table tbody tr').count();
    check(Number(match[2]) - Number(match[1]) + 1 === rows, `verified ${match[1]}..${match[2]} but ${rows} rows are shown`);
    check(await page.locator('#audit-table tbody tr[data-chain="bad"]').count() === 0, 'a row is marked broken');
    const head = await text('#audit-head');
    check(/Published head: offset \d+, hash [0-9a-f]{64}/.test(head), `the published head is not shown: ${head}`);
    const event = row('topic.create', TOPIC).first();
    const cells = await event.locator('td').allTextContents();
    check(cells[3] === 'admin' && cells[7] === 'allow' && /^\d{4}-/.test(cells[1]), `the topic.create row shows ${JSON.stringify(cells)}`);
    await shot('audit', page.locator('#audit-chain'));

    // A tampered page must be caught: one event's field edited, another event left out.
    let edited;
    let dropped;
    let tamperError = null;
    await page.route((url) => url.pathname === '/v1/audit', async (route) => {
      try {
        // Fetched from node, which trusts the brokers' CA (Playwright's own fetch would not).
        const original = route.request();
        const answer = await request('GET', original.url(), { headers: { Authorization: original.headers().authorization } });
        const body = answer.json;
        edited = body.events[2];
        edited.resource = `${edited.resource}-edited`;
        [dropped] = body.events.splice(5, 1);
        await route.fulfill({ status: answer.status, contentType: 'application/json', body: JSON.stringify(body) });
      } catch (error) {
        tamperError = error;
        await route.abort().catch(() => {});
      }
    }, { times: 1 });
    await page.fill('#audit-offset', '');
    await page.click('#audit-load');
    await page.locator('#audit-chain[data-state="broken"]').waitFor({ timeout: within(WAIT_MS) }).catch((error) => {
      throw new Failure(`the tampered page was not reported broken: ${tamperError ?? error.message}`);
    });
    const broken = await text('#audit-chain');
    check(broken.includes(`offset ${edited.offset}: its stored hash`) && broken.includes('does not match its fields'),
      `the edited event at offset ${edited.offset} is not named: ${broken}`);
    check(broken.includes(`offset ${dropped.offset + 1} follows offset ${dropped.offset - 1}`),
      `the missing event at offset ${dropped.offset} is not named: ${broken}`);
    check((await page.getAttribute(`#audit-table tbody tr[data-offset="${edited.offset}"]`, 'data-chain')) === 'bad',
      'the edited event\'s row is not marked');
    await page.fill('#audit-offset', '');
    await page.click('#audit-load');
    await page.locator('#audit-chain[data-state="verified"]').waitFor({ timeout: within(WAIT_MS) });

    // Filtered: only the hashes can be checked, and the console says so.
    await page.fill('#audit-action', 'topic.create');
    await page.fill('#audit-offset', '0');
    await page.click('#audit-load');
    await page.locator('#audit-chain[data-state="hashes"], #audit-chain[data-state="broken"]').waitFor({ timeout: within(WAIT_MS) });
    check((await page.getAttribute('#audit-chain', 'data-state')) === 'hashes', `filtered: ${await text('#audit-chain')}`);
    check(/links .*cannot be checked/.test(await text('#audit-chain')), `filtered status: ${await text('#audit-chain')}`);
    const filtered = await page.locator('#audit-table tbody tr').evaluateAll((rs) => rs.map((r) => r.dataset.action));
    check(filtered.length > 0 && filtered.every((a) => a === 'topic.create'), `the action filter shows ${filtered}`);
    await page.fill('#audit-action', '');
    return `${chain.split(':')[0]}`;
  });

  let victim;
  await step('cluster: SIGKILL a broker that leads partitions; the view marks it down and its leaders move', async () => {
    await nav('cluster');
    await eventually('every broker up in the cluster view', WAIT_MS, async () => {
      const states = await page.locator('#brokers-table tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.state));
      return states.length === BROKERS.length && states.every((s) => s === 'up');
    });
    const consoleBroker = new URL(BASE).port;
    const candidates = await eventually('a broker (not the console\'s) that leads a partition', WAIT_MS, async () => {
      const rows = await page.locator('#brokers-table tbody tr').evaluateAll((rs) => rs.map((r) => ({ id: Number(r.dataset.brokerId), leaders: Number(r.dataset.leaders) })));
      const eligible = rows.filter((r) => r.leaders > 0 && BROKERS.some((b) => b.id === r.id && new URL(b.url).port !== consoleBroker));
      return eligible.length ? eligible.sort((a, b) => b.leaders - a.leaders) : null;
    });
    const chosen = candidates[0];
    victim = BROKERS.find((b) => b.id === chosen.id);
    const ledBefore = await page.locator(`#cluster-partitions-table tbody tr[data-leader="${victim.id}"]`).count();
    check(ledBefore === chosen.leaders, `the partitions table shows ${ledBefore} partitions led by ${victim.id}, the brokers table ${chosen.leaders}`);
    // Follow a partition of the test topic that the victim leads (if one), across the failover.
    const followed = await page.locator(`#cluster-partitions-table tbody tr[data-leader="${victim.id}"][data-topic="${TOPIC}"]`)
      .first().getAttribute('data-partition').catch(() => null);
    if (followed !== null) {
      await nav('messages');
      await page.selectOption('#msg-topic', TOPIC);
      await page.selectOption('#msg-partition', followed);
      await page.fill('#tail-from', '');
      await page.click('#tail-start');
      await page.locator('#tail-status[data-state="live"]').waitFor({ timeout: within(WAIT_MS) });
      await nav('cluster');
    }
    const ticketsBefore = ticketRequests.length;
    const refreshedAt = await page.getAttribute('#cluster-updated', 'data-at');
    process.kill(victim.pid, 'SIGKILL');
    const killedAt = Date.now();
    await eventually(`broker ${victim.id} marked down with no leaders`, FAILOVER_WAIT_MS, async () => {
      const row = page.locator(`#brokers-table tbody tr[data-broker-id="${victim.id}"]`);
      const state = await row.getAttribute('data-state');
      const leaders = await row.getAttribute('data-leaders');
      return state === 'down' && leaders === '0';
    });
    const row = page.locator(`#brokers-table tbody tr[data-broker-id="${victim.id}"]`);
    check(await row.evaluate((r) => r.classList.contains('broker-down')), 'the down broker\'s row is not marked');
    const stateText = (await row.locator('td.state').textContent()) ?? '';
    check(/\bdown\b/i.test(stateText), `the down broker's state reads ${JSON.stringify(stateText)}`);
    check(await row.locator('td.state-down').count() === 1, 'the down broker\'s state cell is not marked');
    await eventually('the partitions it led have leaders on other brokers', FAILOVER_WAIT_MS, async () => {
      const leaders = await page.locator('#cluster-partitions-table tbody tr').evaluateAll((rs) => rs.map((r) => r.dataset.leader));
      return leaders.length > 0 && !leaders.includes(String(victim.id)) && leaders.every((l) => l !== '');
    });
    check((await page.getAttribute('#cluster-updated', 'data-at')) !== refreshedAt, 'the cluster view never refreshed by itself');
    await expectNoAlert('the cluster view');
    const downAfter = ((Date.now() - killedAt) / 1000).toFixed(1);
    await shot('cluster', page.locator('#brokers-table'));
    let tailNote = 'no partition of the test topic was led by it, so no tail across the failover';
    if (followed !== null) {
      // A record written after the failover reaches the tail, which re-ticketed if its stream broke.
      const value = `after the failover ${suffix}`;
      const written = await eventually(`a produce to partition ${followed} after the failover`, FAILOVER_WAIT_MS, async () => {
        const answer = await api('POST', `/v1/topics/${TOPIC}/messages`, { token: admin, body: { records: [{ value, partition: Number(followed) }] } });
        return answer.status === 200 ? answer.json.offsets[0] : null;
      });
      await nav('messages');
      const row = page.locator(`#tail-table tbody tr[data-offset="${written.offset}"]`);
      await row.waitFor({ state: 'visible', timeout: within(FAILOVER_WAIT_MS) }).catch(async (error) => {
        throw new Failure(`the record at offset ${written.offset} never reached the tail: ${error.message}; tail status: ${await text('#tail-status')}`);
      });
      check((await row.locator('td').nth(3).textContent()) === value, 'the tail shows another value after the failover');
      const reconnects = ticketRequests.length - ticketsBefore;
      tailNote = `the tail of partition ${followed} got offset ${written.offset} after the failover (${reconnects} new ticket(s))`;
      await page.click('#tail-stop');
      await nav('cluster');
    }
    return `broker ${victim.id} (pid ${victim.pid}) led ${ledBefore}; down with 0 leaders ${downAfter} s after the kill; ${tailNote}`;
  });

  let leftClusterAt = Date.now();
  await step('phone width (390x844): nav and topic table reachable without horizontal page overflow', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = [];
    for (const view of ['cluster', 'audit', 'users', 'groups', 'messages', 'topics']) {
      await nav(view);
      if (view === 'audit') leftClusterAt = Date.now();
      const sizes = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
      if (sizes.scroll > sizes.inner) overflow.push(`${view}: ${sizes.scroll} > ${sizes.inner}`);
    }
    check(overflow.length === 0, `the page overflows sideways at phone width: ${overflow.join('; ')}`);
    const buttons = await page.locator('#nav button').evaluateAll((bs) => bs.map((b) => {
      const r = b.getBoundingClientRect();
      return { id: b.id, left: r.left, right: r.right, width: r.width };
    }));
    for (const b of buttons) check(b.width > 0 && b.left >= 0 && b.right <= 390, `nav button ${b.id} is outside the screen: ${JSON.stringify(b)}`);
    const row = page.locator(`#topics-table tr[data-topic="${TOPIC}"]`);
    await row.scrollIntoViewIfNeeded();
    check(await row.isVisible(), 'the topic row is not visible at phone width');
    const wrap = await page.locator('#topics-table').evaluate((t) => {
      const w = t.closest('.table-wrap');
      const r = w.getBoundingClientRect();
      return { right: r.right, scroll: w.scrollWidth, client: w.clientWidth, overflowX: getComputedStyle(w).overflowX };
    });
    check(wrap.right <= 390 && (wrap.overflowX === 'auto' || wrap.overflowX === 'scroll'), `the topic table's container: ${JSON.stringify(wrap)}`);
    // The table's actions can be reached by scrolling its container.
    const deleteButton = row.locator('button[data-action="delete"]');
    await deleteButton.scrollIntoViewIfNeeded();
    check(await deleteButton.isVisible(), 'the topic row\'s buttons cannot be reached');
    await page.evaluate(() => { document.querySelector('#topics-table').closest('.table-wrap').scrollLeft = 0; window.scrollTo(0, 0); });
    await shot('phone');
    await page.setViewportSize({ width: 1280, height: 800 });
    return `table ${wrap.scroll} px wide scrolls inside its ${wrap.client} px container`;
  });

  await step('the delete of a topic asks for confirmation first', async () => {
    await nav('topics');
    const row = page.locator(`#topics-table tr[data-topic="${TOPIC}"]`);
    await row.locator('button[data-action="delete"]').click();
    await visible('#confirm-dialog');
    check((await text('#confirm-text')).includes(TOPIC), 'the confirmation does not name the topic');
    await page.click('#confirm-cancel');
    await page.locator('#confirm-dialog').waitFor({ state: 'hidden', timeout: within(WAIT_MS) });
    check(await row.isVisible(), 'cancelling deleted the topic');
  });

  await step('the cluster view stops refreshing when another view is shown', async () => {
    // Wait for the next refresh that must not come: longer than one refresh period.
    const quiet = 2 * 2000 + 500 - (Date.now() - leftClusterAt);
    if (quiet > 0) {
      const request = await page.waitForRequest((r) => new URL(r.url()).pathname === '/v1/cluster', { timeout: within(quiet) })
        .catch(() => null);
      check(request === null, 'the cluster view kept refreshing after another view was shown');
    }
    const late = clusterRequests.filter((t) => t > leftClusterAt + 300);
    check(late.length === 0, `${late.length} request(s) to /v1/cluster after leaving the view`);
    return `no request to /v1/cluster in the ${Date.now() - leftClusterAt} ms after leaving it`;
  });

  await step('sign out revokes the token: the broker refuses it afterwards', async () => {
    const tokens = [...bearerTokens];
    const token = tokens[tokens.length - 1];
    const before = await api('GET', '/v1/whoami', { token });
    check(before.status === 200, `the console's token was not valid before sign-out: ${before.status}`);
    const revoke = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/auth/revoke', { timeout: within(WAIT_MS) });
    await page.click('#signout');
    const answer = await revoke;
    check(answer.status() === 204, `revoke answered ${answer.status()}`);
    check(answer.request().headers().authorization === `Bearer ${token}`, 'revoke was sent with another token');
    await visible('#signin-form');
    check(await page.locator('#app').isHidden(), 'the app is still shown after sign-out');
    check((await page.locator('#topics-table tbody tr').count()) === 0, 'data is still in the page after sign-out');
    const after = await eventually('the old token refused', WAIT_MS, async () => {
      const r = await api('GET', '/v1/whoami', { token });
      return r.status === 401 ? r : null;
    });
    const signedOutAt = Date.now();
    const clusterAfter = clusterRequests.filter((t) => t > signedOutAt).length;
    check(clusterAfter === 0, 'the cluster view kept refreshing after sign-out');
    return `GET /v1/whoami with the old token: ${after.status}`;
  });

  await step('no Content-Security-Policy violation and no uncaught error in the page', async () => {
    check(violations.length === 0 && policyMessages.length === 0, `CSP violations:\n${[...violations, ...policyMessages].join('\n')}`);
    check(pageErrors.length === 0, `uncaught errors in the page:\n${pageErrors.join('\n')}`);
  });
}

let exitCode = 0;
try {
  await main();
  console.log(`console e2e: ${steps.length} passed, 0 failed in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
} catch (error) {
  exitCode = 1;
  console.error(`console e2e failed after ${((Date.now() - started) / 1000).toFixed(1)} s: ${error instanceof Failure ? error.message : error?.stack ?? error}`);
  if (violations.length || policyMessages.length) console.error(`CSP violations:\n${[...violations, ...policyMessages].join('\n')}`);
  if (pageErrors.length) console.error(`page errors:\n${pageErrors.join('\n')}`);
  if (context) {
    try {
      const page = context.pages()[0];
      const where = path.join(os.tmpdir(), `palisade-console-failure-${suffix}.png`);
      if (page) await page.screenshot({ path: where, timeout: 5000 });
      console.error(`a screenshot of the failure: ${where}`);
    } catch {
      // the browser may be gone
    }
  }
} finally {
  clearTimeout(overall);
  if (context) await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(exitCode);
