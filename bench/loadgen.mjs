// Bounded load generator used for every server in the benchmark, so Tessera
// and the peer are driven by exactly the same client.
//
// Why autocannon (pinned in package.json) rather than Debian's wrk:
// - `amount` gives a fixed number of requests per run; wrk only runs for a
//   duration (stopping it after N responses needs a Lua hack per thread);
// - it is pinned in package-lock.json next to oidc-provider and installed by
//   `npm ci`, so every machine (dev, CI) runs the same version without apt;
// - its `verifyBody` hook lets every response body be checked, not only the
//   status line, and the per-response event gives exact latencies;
// - it is what the peer figures in shared/FACTS.md were measured with.
// Its cost: it is JavaScript on one core of the same 2-core machine, so it
// takes CPU from the server under test. It takes the same share from both
// servers, which is why the report leans on the Tessera/peer ratio.
//
// Usage: node loadgen.mjs '<json>' where json has
//   url, headers, body, connections, amount, timeoutSeconds, maxSeconds
// Prints one JSON object (the run's summary) on stdout.
import autocannon from 'autocannon';

const options = JSON.parse(process.argv[2] ?? '{}');
for (const key of ['url', 'body', 'connections', 'amount']) {
  if (options[key] === undefined) {
    console.error(`loadgen: missing option ${key}`);
    process.exit(2);
  }
}

// A response counts only if it carries a bearer token; anything else
// (non-2xx, an error body, a truncated body) is a mismatch, i.e. an error.
function isTokenResponse(body) {
  try {
    const parsed = JSON.parse(body);
    return typeof parsed.access_token === 'string'
      && parsed.access_token.split('.').length === 3
      && String(parsed.token_type).toLowerCase() === 'bearer';
  } catch {
    return false;
  }
}

// autocannon 8 writes the next request on a connection as soon as a response
// ends, even when the server said `Connection: close` (gunicorn's sync
// workers always do). That request is lost, stays at the head of the
// client's queue, and every later latency is measured from its start: wrong
// by orders of magnitude. A real client opens a new connection instead, so
// this does: when a response was not keep-alive, the next request goes out
// on a fresh connection (its latency then includes the TCP handshake, as a
// real client's would). Relies on autocannon 8.0.0 internals (pinned).
let reconnects = 0;
function honourConnectionClose(client) {
  let serverWillClose = false;
  client.on('headers', (info) => {
    serverWillClose = !info.shouldKeepAlive;
  });
  const doRequest = client._doRequest.bind(client);
  client._doRequest = () => {
    if (serverWillClose && !client.destroyed) {
      serverWillClose = false;
      reconnects += 1;
      client._destroyConnection();
      client._connect(); // sends the next request on the new connection
      return;
    }
    doRequest();
  };
}

function percentile(sorted, fraction) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil(fraction * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

const latencies = new Float64Array(options.amount + options.connections * 2);
let responses = 0;
const statusCodes = {};
// autocannon's own `duration` is counted in whole ticks of its 1 s sampler;
// the run's wall time is measured here instead: first request to last response.
const startedAt = performance.now();
let lastResponseAt = startedAt;

const instance = autocannon({
  url: options.url,
  method: 'POST',
  headers: options.headers ?? {},
  body: options.body,
  connections: options.connections,
  amount: options.amount,
  timeout: options.timeoutSeconds ?? 10,
  verifyBody: isTokenResponse,
  setupClient: honourConnectionClose,
});

instance.on('response', (_client, statusCode, _bytes, responseTime) => {
  if (responses < latencies.length) latencies[responses] = responseTime;
  responses += 1;
  statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1;
  lastResponseAt = performance.now();
});

// A run never outlives maxSeconds: a server far slower than expected yields
// a partial (and flagged) result instead of a hung benchmark.
let truncated = false;
const guard = setTimeout(() => {
  truncated = true;
  instance.stop();
}, (options.maxSeconds ?? 300) * 1000);

instance.on('done', (result) => {
  clearTimeout(guard);
  const sorted = latencies.slice(0, Math.min(responses, latencies.length)).sort();
  const mean = sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : null;
  const valid = Math.max(0, responses - result.mismatches);
  const durationSeconds = (lastResponseAt - startedAt) / 1000;
  console.log(JSON.stringify({
    requested: options.amount,
    responses,
    valid,
    mismatches: result.mismatches,
    non2xx: result.non2xx,
    connectionErrors: result.errors - result.timeouts,
    timeouts: result.timeouts,
    durationSeconds,
    tokensPerSecond: durationSeconds > 0 ? valid / durationSeconds : 0,
    latencyMs: {
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      mean,
      max: sorted.length ? sorted[sorted.length - 1] : null,
    },
    statusCodes,
    reconnects,
    truncated,
  }));
});
