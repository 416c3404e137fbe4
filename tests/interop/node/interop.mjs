// Interoperability check: panva's openid-client (an OpenID Certified
// relying-party library) against a running Baton IdP.
//
// Usage: IDP_URL=http://127.0.0.1:9000 node interop.mjs
// Exits non-zero on the first failed step.

import assert from 'node:assert/strict';
import * as client from 'openid-client';

const issuer = process.env.IDP_URL ?? 'http://localhost:9000';
const gatewaySecret = process.env.GATEWAY_SECRET ?? 'gateway-dev-secret';
const reporterSecret = process.env.REPORTER_SECRET ?? 'reporter-dev-secret';
const redirectUri = process.env.GATEWAY_REDIRECT_URI ?? 'http://localhost:8080/auth/callback';
const postLogoutUri = process.env.GATEWAY_POST_LOGOUT_URI ?? 'http://localhost:8080/';
const cliRedirectUri = process.env.CLI_REDIRECT_URI ?? 'http://127.0.0.1:8976/callback';
// Plain http is only for this local test run.
const insecure = { execute: [client.allowInsecureRequests] };

let passed = 0;
async function step(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   node/openid-client: ${name}`);
  } catch (err) {
    console.error(`FAIL node/openid-client: ${name}\n${err?.stack ?? err}`);
    if (err?.cause) console.error('cause:', err.cause);
    process.exit(1);
  }
}

/** A tiny browser: keeps cookies, never follows redirects. */
function browser() {
  const jar = new Map();
  return async (url, init = {}) => {
    const headers = new Headers(init.headers ?? {});
    if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i);
      const value = pair.slice(i + 1);
      if (value === '' || /max-age=0/i.test(c)) jar.delete(name);
      else jar.set(name, value);
    }
    return res;
  };
}

/** Drives the IdP's login form the way a person would; returns the callback URL. */
async function signIn(get, authorizationUrl, username, password) {
  const page = await get(authorizationUrl);
  assert.equal(page.status, 200, 'the login form is shown');
  const html = await page.text();
  const csrf = html.match(/name="csrf_token" value="([^"]+)"/)?.[1];
  assert.ok(csrf, 'the form carries a CSRF token');
  const res = await get(new URL('/login', issuer), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf_token: csrf, username, password }),
  });
  assert.equal(res.status, 303, 'signed in, redirected back');
  return new URL(res.headers.get('location'));
}

let config;
let tokens;
let refreshed;
const get = browser();

await step('discovery', async () => {
  config = await client.discovery(new URL(issuer), 'gateway', gatewaySecret, client.ClientSecretBasic(gatewaySecret), insecure);
  const meta = config.serverMetadata();
  assert.equal(meta.issuer, issuer);
  assert.ok(meta.supportsPKCE('S256'));
});

await step('authorization code + PKCE, ID token validated', async () => {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email offline_access orders:read',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  const callback = await signIn(get, url, 'alice', 'alice-password');
  tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  assert.equal(claims.iss, issuer);
  assert.equal(claims.aud, 'gateway');
  assert.equal(claims.nonce, nonce);
  assert.equal(claims.name, 'Alice Adams');
  assert.ok(claims.sid && claims.auth_time && claims.at_hash);
  assert.ok(tokens.refresh_token);
});

await step('userinfo', async () => {
  const info = await client.fetchUserInfo(config, tokens.access_token, tokens.claims().sub);
  assert.equal(info.preferred_username, 'alice');
  assert.equal(info.email, 'alice@example.com');
});

await step('refresh (rotation)', async () => {
  refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  assert.ok(refreshed.access_token && refreshed.refresh_token);
  assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
  assert.equal(refreshed.claims().sub, tokens.claims().sub);
});

await step('refresh-token reuse is refused', async () => {
  await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token), (err) => err.error === 'invalid_grant');
});

await step('introspection', async () => {
  // The reuse above revoked the whole family, including the refreshed tokens.
  const dead = await client.tokenIntrospection(config, refreshed.access_token);
  assert.equal(dead.active, false);
  const fresh = await client.refreshTokenGrant(config, await newRefreshToken());
  const live = await client.tokenIntrospection(config, fresh.access_token);
  assert.equal(live.active, true);
  assert.equal(live.client_id, 'gateway');
  refreshed = fresh;
});

async function newRefreshToken() {
  // The SSO session signs the user in again without the form.
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  const res = await get(url);
  assert.equal(res.status, 303, 'SSO: no form the second time');
  const t = await client.authorizationCodeGrant(config, new URL(res.headers.get('location')), {
    pkceCodeVerifier: verifier,
    expectedState: state,
  });
  return t.refresh_token;
}

await step('revocation', async () => {
  await client.tokenRevocation(config, refreshed.refresh_token);
  const after = await client.tokenIntrospection(config, refreshed.refresh_token);
  assert.equal(after.active, false);
  await assert.rejects(client.refreshTokenGrant(config, refreshed.refresh_token), (err) => err.error === 'invalid_grant');
});

await step('public client (cli): code + PKCE, no secret', async () => {
  const cli = await client.discovery(new URL(issuer), 'cli', undefined, client.None(), insecure);
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(cli, {
    redirect_uri: cliRedirectUri,
    scope: 'openid orders:read',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  const res = await get(url);
  assert.equal(res.status, 303, 'the SSO session covers the second client');
  // A public client's tokens are DPoP-bound (RFC 9449): openid-client proves the key.
  const DPoP = client.getDPoPHandle(cli, await client.randomDPoPKeyPair());
  const t = await client.authorizationCodeGrant(
    cli,
    new URL(res.headers.get('location')),
    { pkceCodeVerifier: verifier, expectedState: state },
    undefined,
    { DPoP },
  );
  assert.equal(t.claims().aud, 'cli');
  assert.equal(t.token_type.toLowerCase(), 'dpop');
  const info = await client.fetchUserInfo(cli, t.access_token, t.claims().sub, { DPoP });
  assert.equal(info.sub, t.claims().sub);
});

await step('client credentials', async () => {
  const reporter = await client.discovery(new URL(issuer), 'reporter', reporterSecret, client.ClientSecretPost(reporterSecret), insecure);
  const t = await client.clientCredentialsGrant(reporter, { scope: 'orders:read' });
  assert.equal(t.scope, 'orders:read');
  const intro = await client.tokenIntrospection(reporter, t.access_token);
  assert.equal(intro.active, true);
  assert.equal(intro.sub, 'reporter');
});

await step('RP-initiated logout', async () => {
  const url = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: postLogoutUri,
    state: 'bye',
  });
  const res = await get(url);
  assert.equal(res.status, 303);
  const back = new URL(res.headers.get('location'));
  assert.equal(back.origin + back.pathname, postLogoutUri);
  assert.equal(back.searchParams.get('state'), 'bye');
});

console.log(`${passed} passed, 0 failed`);
