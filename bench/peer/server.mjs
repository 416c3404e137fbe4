// The peer for `make bench`: panva's oidc-provider on 127.0.0.1, issuing
// RFC 9068 JWT access tokens (resource indicators, accessTokenFormat 'jwt')
// signed RS256 to a client_credentials client — the same job as Baton's
// POST /token in the bench. One worker per CPU (node:cluster), as Baton uses
// every core; the RSA key is generated once and shared by the workers.
//
//   PORT=9400 WORKERS=2 node server.mjs     (prints "peer ready <url>" per worker)
//
// Under the bench the socket is passed (LISTEN_FDS=1, descriptor 3: the
// bench's launcher binds it, PORT names its port for the issuer); the
// cluster's primary serves on it and hands connections to the workers.
//
// Client: bench / bench-secret (client_secret_basic), resource urn:baton:bench.
import cluster from 'node:cluster';
import { generateKeyPairSync } from 'node:crypto';
import { availableParallelism } from 'node:os';

const port = Number(process.env.PORT ?? 9400);
const workers = Number(process.env.WORKERS ?? availableParallelism());

if (cluster.isPrimary && workers > 1) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = JSON.stringify({ ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'peer-rs256' });
  for (let i = 0; i < workers; i += 1) cluster.fork({ PEER_JWK: jwk });
  cluster.on('exit', (w, code) => { console.error(`peer worker ${w.process.pid} exited (${code})`); process.exit(1); });
} else {
  const { default: Provider } = await import('oidc-provider');
  const jwk = process.env.PEER_JWK
    ? JSON.parse(process.env.PEER_JWK)
    : { ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'peer-rs256' };
  const issuer = `http://127.0.0.1:${port}`;
  const resource = 'urn:baton:bench';
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'bench',
      client_secret: 'bench-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [jwk] },
    scopes: ['orders:read'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'orders:read',
          audience: resource,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  });
  const ready = () => console.log(`peer ready ${issuer}`);
  if (process.env.LISTEN_FDS === '1') provider.listen({ fd: 3 }, ready);
  else provider.listen(port, '127.0.0.1', ready);
}
