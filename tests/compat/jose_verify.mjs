// jose as its README shows: a remote JWKS and jwtVerify. Prints one JSON object.
import * as jose from 'jose';

const { jwksUri, issuer, audience, token } = JSON.parse(process.argv[2]);
const JWKS = jose.createRemoteJWKSet(new URL(jwksUri));
try {
  const { payload, protectedHeader } = await jose.jwtVerify(token, JWKS, { issuer, audience });
  console.log(JSON.stringify({ verified: true, payload, protectedHeader }));
} catch (error) {
  console.log(JSON.stringify({ verified: false, code: error.code, claim: error.claim ?? null }));
}
