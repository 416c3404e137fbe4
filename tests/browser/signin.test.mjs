// A person's first visit, in a real browser: open the gateway, click Sign in,
// fill the IdP's login page, place an order, see it listed, open the IdP's
// account page and come back, sign out. It
// runs on a fresh stack (the e2e suite) and on one already used (`make up`).
// Any console error or uncaught exception on any page fails the test.
//
// Run by the end-to-end suite (tests/e2e/browser.rs), which starts the stack
// and passes its URLs; by hand: BATON_GATEWAY_URL=http://localhost:8080 node --test
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const gateway = process.env.BATON_GATEWAY_URL ?? 'http://localhost:8080';
const idp = process.env.BATON_IDP_URL ?? 'http://localhost:9000';

// Debian's Chromium, never a downloaded browser; flags that keep it off the
// network it does not need (background services, updates, sync).
// Playwright gives every launch a fresh, empty profile.
async function launch() {
  return chromium.launch({
    executablePath: process.env.BATON_CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

test('alice signs in, places an order, sees it listed and signs out', { timeout: 90_000 }, async () => {
  const browser = await launch();
  const problems = [];
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    page.on('console', (msg) => {
      if (msg.type() === 'error') {
        const source = msg.location()?.url;
        problems.push(`console error on ${page.url()}: ${msg.text()}${source ? ` (${source})` : ''}`);
      }
    });
    page.on('pageerror', (err) => problems.push(`uncaught exception on ${page.url()}: ${err.message}`));

    // Signed out: the gateway offers to sign in.
    await page.goto(gateway);
    await page.locator('#sign-in').click();

    // The IdP's own login page.
    await page.waitForURL((url) => url.href.startsWith(idp));
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('alice-password');
    await page.getByRole('button', { name: 'Sign in' }).click();

    // Back on the gateway, signed in as alice the customer, with the products.
    await page.waitForURL((url) => url.href.startsWith(gateway));
    await page.locator('#user-name').filter({ hasText: /alice/i }).waitFor();
    assert.match(await page.locator('#user-roles').innerText(), /customer/);
    // The order list has loaded: empty on a fresh stack, alice's earlier orders otherwise.
    await page.locator('#orders p.empty, #orders table.orders').first().waitFor();

    // Two mugs into the cart, place the order.
    await page.getByLabel('Quantity of Baton mug').fill('2');
    const [placed] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/api/orders'),
      page.getByRole('button', { name: 'Place order' }).click(),
    ]);
    assert.equal(placed.status(), 201, 'the order was placed');
    const { order } = await placed.json();

    // The trace shows the relay, and the order is listed.
    await page.locator('#trace-action').filter({ hasText: /Place order.*HTTP 201/ }).waitFor();
    const validated = (await page.locator('#trace .hop.ok .hop-name').allTextContents()).map((h) => h.toLowerCase());
    assert.deepEqual(validated, ['browser', 'gateway', 'order', 'inventory', 'payment'], 'every hop validated');
    // Per-hop tokens (deploy/routes.toml: relay = "exchange"; order: ORDER_RELAY=exchange).
    assert.match(await page.locator('#trace-footer').innerText(), /Every service validated a token of its own for the same user/);
    // Per hop, the validated token's aud and who acted (latest first), as the page draws them.
    const facts = await page.locator('#trace .hop.ok').evaluateAll((hops) =>
      Object.fromEntries(
        hops.map((hop) => {
          const terms = [...hop.querySelectorAll('.hop-facts dt')].map((dt) => dt.textContent);
          const values = [...hop.querySelectorAll('.hop-facts dd')].map((dd) => dd.textContent);
          return [hop.querySelector('.hop-name').textContent.toLowerCase(), Object.fromEntries(terms.map((t, i) => [t, values[i]]))];
        }),
      ),
    );
    assert.deepEqual(
      ['order', 'inventory', 'payment'].map((hop) => [hop, facts[hop]?.aud, facts[hop]?.acted]),
      [
        ['order', 'order', 'gateway'],
        ['inventory', 'inventory', 'order ← gateway'],
        ['payment', 'payment', 'order ← gateway'],
      ],
      'each service shows its own aud and the actors',
    );
    assert.deepEqual([facts.gateway?.['sent aud'], facts.gateway?.acted], ['order', 'gateway'], 'the gateway shows what it sent on');
    // Listed by the end of its id, as the page shows ids.
    const row = page.locator('#orders table.orders tbody tr').filter({ hasText: String(order.id).slice(-8) });
    await row.waitFor();
    assert.match(await row.innerText(), /2 × baton-mug/);

    // The person's own page at the IdP: this browser's session, signed in to the shop.
    await page.getByRole('link', { name: 'Your account' }).click();
    await page.waitForURL((url) => url.href.startsWith(`${idp}/account`));
    const mine = page.locator('li.session').filter({ hasText: 'This browser' });
    await mine.waitFor();
    assert.match(await mine.innerText(), /Applications: .*gateway/);
    await page.goto(gateway);
    await page.locator('#user-name').filter({ hasText: /alice/i }).waitFor();

    // Sign out: through the IdP's end-session endpoint back to a signed-out page.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#sign-in').waitFor();
    assert.ok(page.url().startsWith(gateway), `back on the gateway: ${page.url()}`);
    const session = await page.evaluate(async () => (await fetch('/auth/session')).json());
    assert.equal(session.authenticated, false, 'the session is gone');
  } finally {
    await browser.close();
  }
  assert.deepEqual(problems, [], 'no console errors');
});
