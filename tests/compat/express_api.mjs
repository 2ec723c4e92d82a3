// An Express API protected as Auth0's express-oauth2-jwt-bearer README shows.
// Prints {"port": N} once listening; the test calls it and then stops it.
import express from 'express';
import { auth } from 'express-oauth2-jwt-bearer';

const { issuerBaseURL, audience } = JSON.parse(process.argv[2]);
const app = express();
app.use(auth({ issuerBaseURL, audience }));
app.get('/api/private', (req, res) => {
  res.json({ sub: req.auth.payload.sub, iss: req.auth.payload.iss, scope: req.auth.payload.scope });
});
const server = app.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
