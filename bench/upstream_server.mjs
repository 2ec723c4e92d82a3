// The upstream that the --slow-upstream hooks call (harness/upstream.py):
// /fast answers after 20 ms, /slow after 2 s, /hang never (it holds the
// connection until the client gives up), any other path (/now) at once.
// One node process, on 127.0.0.1.
import http from 'node:http';

const port = Number(process.env.UPSTREAM_PORT);
const delays = { '/fast': 20, '/slow': 2000 };
const body = JSON.stringify({ tier: 'gold' });

http
  .createServer((request, response) => {
    const path = request.url.split('?')[0];
    if (path === '/hang') {
      request.socket.setTimeout(0);
      return; // never answers
    }
    const answer = () => {
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      response.end(body);
    };
    if (path in delays) setTimeout(answer, delays[path]);
    else answer();
  })
  .listen(port, '127.0.0.1', () => console.log(`upstream on ${port}`));
