// Two gateway and two order replicas under load (run by deploy/test/run.sh
// against deploy/compose.yaml, gateway and order scaled to two):
//  * a session created through gateway 1 (http://localhost:8080) is used
//    through gateway 2 (its container address): sessions live in PostgreSQL;
//  * both gateways relay a steady stream of order listings and placements
//    (within the per-address rate limit) while order replica 2 and then
//    gateway replica 2 are stopped; every request to a live gateway must
//    succeed and every placed order must be listed afterwards;
//  * access tokens live 32 s (run.sh), so refreshes are due nearly every
//    second through both gateways at once: one refresh at a time across both
//    (a second one with the same refresh token would end the session).
// Env: BATON_GATEWAY2_URL, BATON_STOP_ORDER, BATON_STOP_GATEWAY (container names).
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';

const require = createRequire(new URL('../../tests/browser/package.json', import.meta.url));
const { chromium } = require('playwright-core');
const run = promisify(execFile);

const gw1 = 'http://localhost:8080';
const gw2 = process.env.BATON_GATEWAY2_URL;
const REQUESTS = 240; // 12 a second for 20 s: under the 20/s per-address limit of one gateway

async function signIn() {
  const browser = await chromium.launch({
    executablePath: process.env.BATON_CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(gw1);
    await page.locator('#sign-in').click();
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('alice-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#user-name').filter({ hasText: /alice/i }).waitFor();
    const cookies = await page.context().cookies(gw1);
    return cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  } finally {
    await browser.close();
  }
}

const cookie = await signIn();
const session = await (await fetch(`${gw2}/auth/session`, { headers: { cookie } })).json();
assert.equal(session.authenticated, true, 'gateway 2 knows the session gateway 1 created');
console.log('a session created through gateway 1 is used through gateway 2');

let gw2Stopped = false;
const placed = [];
const failures = [];
async function one(i) {
  const base = i % 2 === 0 || gw2Stopped ? gw1 : gw2;
  const write = i % 4 === 1;
  const headers = { cookie, origin: gw1, accept: 'application/json' };
  let init = { headers };
  if (write) {
    headers['content-type'] = 'application/json';
    headers['x-csrf-token'] = session.csrf_token;
    headers['idempotency-key'] = `replicas-${i}-${Date.now()}`;
    init = { method: 'POST', headers, body: JSON.stringify({ lines: [{ sku: 'baton-mug', quantity: 1 }] }) };
  }
  try {
    const response = await fetch(`${base}/api/orders`, init);
    const body = await response.json().catch(() => null);
    if (response.status !== (write ? 201 : 200)) failures.push(`${i} ${base}: ${response.status} ${JSON.stringify(body)}`);
    else if (write) placed.push(body.order.id);
  } catch (error) {
    failures.push(`${i} ${base}: ${error.cause?.code ?? error.message}`);
  }
}

const inflight = [];
for (let i = 0; i < REQUESTS; i++) {
  inflight.push(one(i));
  if (i === REQUESTS / 3) run('podman', ['stop', process.env.BATON_STOP_ORDER]).then(() => console.log('order replica 2 stopped'));
  if (i === (2 * REQUESTS) / 3) {
    gw2Stopped = true; // a load balancer takes it out first, as a Service does on termination
    run('podman', ['stop', process.env.BATON_STOP_GATEWAY]).then(() => console.log('gateway replica 2 stopped'));
  }
  await new Promise((resolve) => setTimeout(resolve, 1000 / 12));
}
await Promise.all(inflight);
assert.deepEqual(failures, [], 'every request to a live gateway succeeded');

const listed = await (await fetch(`${gw1}/api/orders?limit=200`, { headers: { cookie, accept: 'application/json' } })).json();
const ids = new Set((listed.orders ?? listed).map((o) => o.id));
const missing = placed.filter((id) => !ids.has(id));
assert.deepEqual(missing, [], 'every placed order is listed');
console.log(`${REQUESTS} requests, ${placed.length} orders placed and listed, none failed`);
