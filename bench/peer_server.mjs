// The peer Tessera is measured against: node oidc-provider doing the same job
// as Tessera's token endpoint — client credentials grant, an RS256 JWT access
// token for one API (a resource server, RFC 8707), and the seed hook's extra
// claim and `extra` scope.
//
// Configuration comes from the environment (set by bench/harness/peer.py):
//   PEER_PORT, PEER_CLIENT_ID, PEER_CLIENT_SECRET, PEER_AUDIENCE
//   PEER_HOOK_FILE (optional): run this hook (bench/seed_hook.js) for every
//     token the way Logto runs custom JWT scripts: `vm.runInNewContext`, a
//     fresh V8 context per token, and the claims it returns go into the
//     token. Without it the claim is a constant (`extraTokenClaims` below).
// It listens on 127.0.0.1 only and prints one line "ready <issuer>" when it
// accepts connections.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { runInNewContext } from 'node:vm';

import Provider, { errors } from 'oidc-provider';

const port = Number.parseInt(process.env.PEER_PORT ?? '', 10);
const clientId = process.env.PEER_CLIENT_ID;
const clientSecret = process.env.PEER_CLIENT_SECRET;
const audience = process.env.PEER_AUDIENCE;
if (!Number.isInteger(port) || !clientId || !clientSecret || !audience) {
  console.error('PEER_PORT, PEER_CLIENT_ID, PEER_CLIENT_SECRET and PEER_AUDIENCE are required');
  process.exit(2);
}

const issuer = `http://127.0.0.1:${port}`;
const hookScript = process.env.PEER_HOOK_FILE
  ? readFileSync(process.env.PEER_HOOK_FILE, 'utf8')
  : undefined;

// A fresh RSA-2048 signing key per run, like Tessera's per-tenant key.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: 'bench-rs256',
  alg: 'RS256',
  use: 'sig',
};

// The API's scopes plus `extra`, which the seed hook adds in Tessera; here the
// client asks for it (oidc-provider grants only requested scopes).
const resourceServer = {
  audience,
  scope: 'read:data write:data extra',
  accessTokenFormat: 'jwt',
  accessTokenTTL: 86400, // Tessera's (and Auth0's) default expires_in
  jwt: { sign: { alg: 'RS256' } },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      // Credentials in the request body, as the Tessera requests send them.
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resourceIndicator) => {
        if (resourceIndicator !== audience) {
          throw new errors.InvalidTarget();
        }
        return resourceServer;
      },
    },
  },
  // The seed hook's claim (`https://foo.com/claim`), added to every token for the API.
  extraTokenClaims: (ctx, token) => {
    if (token.resourceServer?.audience !== audience) {
      return undefined;
    }
    return hookScript ? runHook(ctx, token) : { 'https://foo.com/claim': 'bar' };
  },
});

// The seed hook (an Auth0 credentials-exchange hook: `module.exports =
// function (client, scope, audience, context, cb)`) in a new context per
// token, as Logto's core runs a custom JWT script: `runInNewContext(script)`
// yields the function, which is then called with the token's data.
function runHook(ctx, token) {
  const sandbox = { module: { exports: {} } };
  const hook = runInNewContext(`${hookScript}\n;module.exports`, sandbox);
  const client = { id: clientId, name: 'bench-client', tenant: 'bench', metadata: {} };
  const scope = String(token.scope ?? '').split(' ').filter(Boolean);
  const context = {
    ip: ctx.ip,
    userAgent: ctx.get('user-agent'),
    body: { ...ctx.oidc.params },
  };
  return new Promise((resolve, reject) => {
    hook(client, scope, audience, context, (error, accessToken) => {
      if (error) {
        reject(error);
        return;
      }
      // `scope` is the token's own (the client asks for `extra`): the rest are claims.
      const { scope: _scope, ...claims } = accessToken ?? {};
      resolve(claims);
    });
  });
}

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
