// A person's first visit, in a real browser: open the gateway, click Sign in,
// fill the IdP's login page, place an order, see it listed, open the IdP's
// account page and come back, sign out; and bob stepping up with an
// authenticator app to refund a large order; alice adding a passkey and
// signing in with it alone (the browser's virtual authenticator). It
// runs on a fresh stack (the e2e suite) and on one already used (`make up`).
// Any console error or uncaught exception on any page fails the test.
//
// Run by the end-to-end suite (tests/e2e/browser.rs), which starts the stack
// and passes its URLs; by hand: BATON_GATEWAY_URL=http://localhost:8080 node --test
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
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

// Records every console error and uncaught exception of `page` in `problems`.
function watchProblems(page, problems) {
  page.setDefaultTimeout(15_000);
  page.on('console', (msg) => {
    if (msg.type() === 'error') {
      const source = msg.location()?.url;
      problems.push(`console error on ${page.url()}: ${msg.text()}${source ? ` (${source})` : ''}`);
    }
  });
  page.on('pageerror', (err) => problems.push(`uncaught exception on ${page.url()}: ${err.message}`));
  return page;
}

// From the gateway's signed-out page through the IdP's login form, as `user`
// with the demo password.
async function signIn(page, user) {
  await page.goto(gateway);
  await page.locator('#sign-in').click();
  await page.waitForURL((url) => url.href.startsWith(idp));
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(`${user}-password`);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('alice signs in, places an order, sees it listed and signs out', { timeout: 90_000 }, async () => {
  const browser = await launch();
  const problems = [];
  try {
    const page = watchProblems(await browser.newPage(), problems);

    // Signed out: the gateway offers to sign in, on the IdP's own login page.
    await signIn(page, 'alice');

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

// RFC 6238 code of a base32 `secret`, `steps` time steps from now (the test's
// own authenticator app).
function totp(secret, steps = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + steps));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

test('bob sets up an authenticator app, steps up to refund a large order, and it is refunded once', { timeout: 120_000 }, async (t) => {
  const browser = await launch();
  const problems = [];
  // Chromium logs every 401 as a console error: the one expected 401 is the
  // refund's step-up answer, counted apart.
  let unauthorized = 0;
  const watch = (page) => {
    page.setDefaultTimeout(15_000);
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      if (/status of 401/.test(msg.text())) unauthorized += 1;
      else problems.push(`console error on ${page.url()}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`uncaught exception on ${page.url()}: ${err.message}`));
    return page;
  };
  try {
    // alice orders 9 T-shirts: 225.00, above payment's 200.00 step-up threshold.
    const alice = watch(await (await browser.newContext()).newPage());
    await signIn(alice, 'alice');
    await alice.locator('#user-name').filter({ hasText: /alice/i }).waitFor();
    await alice.getByLabel('Quantity of Baton T-shirt').fill('9');
    const [placed] = await Promise.all([
      alice.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/api/orders'),
      alice.getByRole('button', { name: 'Place order' }).click(),
    ]);
    assert.equal(placed.status(), 201, 'the order was placed');
    const { order } = await placed.json();

    // bob, the admin, signs in with his password and sets up an app at the IdP.
    const bob = watch(await (await browser.newContext()).newPage());
    await signIn(bob, 'bob');
    await bob.waitForURL((url) => url.href.startsWith(gateway) || url.pathname === '/login');
    if (!bob.url().startsWith(gateway)) {
      t.skip('bob already has an authenticator app on this stack (a reused `make up` stack)');
      return;
    }
    await bob.locator('#user-name').filter({ hasText: /bob/i }).waitFor();
    await bob.getByRole('link', { name: 'Your account' }).click();
    await bob.getByRole('link', { name: 'Set up an authenticator app' }).click();
    assert.equal(await bob.locator('.qr svg').count(), 1, 'the QR code is drawn in the page');
    const secret = (await bob.locator('code.secret').innerText()).trim();
    await bob.getByLabel('Code from the app').fill(totp(secret));
    await bob.getByRole('button', { name: 'Turn on' }).click();
    const recovery = (await bob.locator('.recovery-codes code').first().innerText()).trim();

    // The refund asks for a second factor: the page offers the step-up.
    await bob.goto(gateway);
    const row = bob.locator('#orders table.orders tbody tr').filter({ hasText: String(order.id).slice(-8) });
    const [refused] = await Promise.all([
      bob.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/refund')),
      row.getByRole('button', { name: 'Refund' }).click(),
    ]);
    assert.equal(refused.status(), 401);
    await bob.getByRole('link', { name: 'Confirm with your authenticator app' }).click();

    // The IdP asks for the code only (the password stands), then back: the
    // refund is sent again by itself, once.
    await bob.waitForURL((url) => url.href.startsWith(idp));
    assert.equal(await bob.getByLabel('Password').count(), 0, 'no password asked again');
    await bob.getByLabel('Code').fill(totp(secret, 1));
    const [replayed] = await Promise.all([
      bob.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/refund')),
      bob.getByRole('button', { name: 'Continue' }).click(),
    ]);
    assert.equal(replayed.status(), 201, 'refunded after the step-up');
    await bob.locator('#trace-action').filter({ hasText: /after the step-up.*HTTP 201/ }).waitFor();
    await row.filter({ hasText: 'refunded' }).waitFor();
    const charge = await bob.evaluate(async (id) => {
      const { charges } = await (await fetch('/api/payments')).json();
      return charges.find((c) => c.id === id);
    }, order.charge_id);
    assert.equal(charge.refunded_cents, 22_500, 'charged back once');

    // Leave the stack as it was: remove the app with a recovery code.
    await bob.goto(`${idp}/account/authenticator`);
    await bob.getByLabel('Code').fill(recovery);
    await bob.getByRole('button', { name: 'Remove authenticator app' }).click();
    await bob.waitForURL((url) => url.search.includes('done=authenticator-removed'));
  } finally {
    await browser.close();
  }
  assert.deepEqual(problems, [], 'no console errors');
  assert.equal(unauthorized, 1, 'one 401: the step-up answer');
});

test('alice adds a passkey, signs in with it alone, and removes it', { timeout: 90_000 }, async () => {
  const browser = await launch();
  const problems = [];
  try {
    const page = watchProblems(await (await browser.newContext()).newPage(), problems);
    // The browser's own virtual authenticator (DevTools protocol): a
    // platform authenticator that keeps discoverable credentials and
    // verifies its user (as a fingerprint or a PIN would), answering at once.
    const devtools = await page.context().newCDPSession(page);
    await devtools.send('WebAuthn.enable');
    const { authenticatorId } = await devtools.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
        hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
      },
    });

    // Signed in with the password, alice adds a passkey on her IdP account page.
    await signIn(page, 'alice');
    await page.locator('#user-name').filter({ hasText: /alice/i }).waitFor();
    await page.getByRole('link', { name: 'Your account' }).click();
    await page.getByRole('link', { name: /passkey/i }).click();
    await page.getByLabel('A name for it').fill('Test laptop');
    await page.getByLabel('Your password', { exact: true }).fill('alice-password');
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await page.waitForURL((url) => url.search.includes('done=added'));
    await page.locator('li.session').filter({ hasText: 'Test laptop' }).filter({ hasText: 'not used yet' }).waitFor();
    const { credentials } = await devtools.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.filter((c) => c.isResidentCredential).length >= 1, true, 'a discoverable credential');

    // Signed out everywhere, she signs in again with the passkey alone: no
    // username, no password.
    await page.goto(gateway);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#sign-in').waitFor();
    await page.locator('#sign-in').click();
    await page.waitForURL((url) => url.href.startsWith(idp));
    await page.getByRole('button', { name: 'Use a passkey' }).click();
    await page.waitForURL((url) => url.href.startsWith(gateway));
    await page.locator('#user-name').filter({ hasText: /alice/i }).waitFor();

    // Leave the stack as it was: remove the passkey (it takes the password).
    await page.goto(`${idp}/account/passkeys`);
    const row = page.locator('li.session').filter({ hasText: 'Test laptop' }).filter({ hasText: 'last used' });
    await row.waitFor();
    await row.getByLabel('Your password, to remove it').fill('alice-password');
    await row.getByRole('button', { name: 'Remove Test laptop' }).click();
    await page.waitForURL((url) => url.search.includes('done=removed'));
    assert.equal(await page.locator('li.session').filter({ hasText: 'Test laptop' }).count(), 0);
  } finally {
    await browser.close();
  }
  assert.deepEqual(problems, [], 'no console errors');
});
