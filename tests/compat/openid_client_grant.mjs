// openid-client as its README shows: discover the issuer, then the
// client_credentials grant. Prints one JSON object for the pytest row.
import * as client from 'openid-client';

const { issuer, clientId, clientSecret, audience, method } = JSON.parse(process.argv[2]);
const authentication =
  method === 'client_secret_basic'
    ? client.ClientSecretBasic(clientSecret)
    : client.ClientSecretPost(clientSecret);

try {
  // Tessera serves plain http on the loopback in tests; the docs' switch for that.
  const config = await client.discovery(new URL(issuer), clientId, clientSecret, authentication, {
    execute: [client.allowInsecureRequests],
  });
  const metadata = config.serverMetadata();
  const tokens = await client.clientCredentialsGrant(config, { audience });
  console.log(
    JSON.stringify({
      issuer: metadata.issuer,
      token_endpoint: metadata.token_endpoint,
      access_token: tokens.access_token,
      token_type: tokens.token_type,
      expires_in: tokens.expiresIn(),
      scope: tokens.scope ?? null,
    }),
  );
} catch (error) {
  // A 401 with WWW-Authenticate is a WWWAuthenticateChallengeError: the
  // challenges are its cause, the RFC 6749 error is in the response body.
  const body = error.error ? error : await error.response?.json().catch(() => ({}));
  console.log(
    JSON.stringify({
      failed: error.name,
      status: error.status ?? null,
      error: body?.error ?? null,
      challenges: Array.isArray(error.cause) ? error.cause : null,
      message: error.message,
    }),
  );
}
