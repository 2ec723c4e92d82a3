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
// Usage: node loadgen.mjs '<json>' (or @file holding it, for long request
// lists) where json has
//   url, headers, body, connections, amount, timeoutSeconds, maxSeconds
// and optionally
//   requests: [{path, body, headers}] on url's host, cycled through (each
//     connection starts at its own offset, so together they go round-robin
//     over the list; the first response of each entry is reported as cold)
//   vary: true, so that every request differs (its own User-Agent and a
//     `bench_request` body parameter, so a hook's context differs)
//   durationSeconds instead of amount: run for that long
//   overallRate: requests per second over all connections, at most
//   stopFile: a path; the run stops (untruncated) once that file exists
// Prints one JSON object (the run's summary) on stdout.
import { existsSync, readFileSync } from 'node:fs';

import autocannon from 'autocannon';

const argument = process.argv[2] ?? '{}';
const options = JSON.parse(
  argument.startsWith('@') ? readFileSync(argument.slice(1), 'utf8') : argument,
);
for (const key of ['url', 'connections']) {
  if (options[key] === undefined) {
    console.error(`loadgen: missing option ${key}`);
    process.exit(2);
  }
}
if (options.body === undefined && !Array.isArray(options.requests)) {
  console.error('loadgen: give body or requests');
  process.exit(2);
}
if (options.amount === undefined && options.durationSeconds === undefined) {
  console.error('loadgen: give amount or durationSeconds');
  process.exit(2);
}

// A response counts only if it carries a bearer token; anything else
// (non-2xx, an error body, a truncated body) is a mismatch, i.e. an error.
// Mismatches are tallied by their OAuth error and description (RFC 6749
// §5.2), at most MAX_ERROR_KINDS kinds, so that the report can say why.
const MAX_ERROR_KINDS = 20;
const errorKinds = {};
function tallyError(kind) {
  if (kind in errorKinds || Object.keys(errorKinds).length < MAX_ERROR_KINDS) {
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
  }
}

function isTokenResponse(body) {
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    tallyError('(not JSON)');
    return false;
  }
  const ok = typeof parsed?.access_token === 'string'
    && parsed.access_token.split('.').length === 3
    && String(parsed.token_type).toLowerCase() === 'bearer';
  if (!ok) tallyError(`${parsed?.error ?? '(no error)'}: ${parsed?.error_description ?? ''}`);
  return ok;
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

// Every request unique: a serial number in the User-Agent and in the body
// (JSON object or form), which Tessera passes to the hook's context.
let serial = 0;
function varied(request) {
  serial += 1;
  const body = String(request.body);
  const marked = body.startsWith('{')
    ? `${body.slice(0, -1)},"bench_request":"${serial}"}`
    : `${body}&bench_request=${serial}`;
  return {
    ...request,
    headers: { ...request.headers, 'user-agent': `tessera-bench/${serial}` },
    body: marked,
  };
}

// The request list: each entry remembers its index, and its response tells
// the 'response' handler (called right after, in the same tick) which it was.
let answeredIndex = -1;
const base = new URL(options.url);
const requestList = (options.requests ?? [{ path: base.pathname, body: options.body }]).map(
  (entry, index) => ({
    method: 'POST',
    path: entry.path,
    headers: { ...(options.headers ?? {}), ...(entry.headers ?? {}) },
    body: entry.body,
    onResponse: () => { answeredIndex = index; },
    ...(options.vary ? { setupRequest: varied } : {}),
  }),
);

// Connection k starts at entry k·n/c of the list, so that c connections
// together walk the list round-robin instead of all starting at entry 0.
let clientsSetUp = 0;
function startAtOwnOffset(client) {
  const iterator = client.requestIterator;
  const offset = Math.floor((clientsSetUp * requestList.length) / options.connections);
  clientsSetUp += 1;
  if (offset === 0 || offset >= iterator.requests.length) return;
  iterator.currentRequestIndex = offset;
  iterator.currentRequest = iterator.requests[offset];
  iterator.rebuildRequest();
}

function percentile(sorted, fraction) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil(fraction * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

const latencies = [];
// Latency of the first response to each entry of the request list.
const firstLatencies = new Map();
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
  requests: requestList,
  connections: options.connections,
  ...(options.amount !== undefined
    ? { amount: options.amount }
    : { duration: options.durationSeconds }),
  ...(options.overallRate ? { overallRate: options.overallRate } : {}),
  timeout: options.timeoutSeconds ?? 10,
  verifyBody: isTokenResponse,
  setupClient: (client) => {
    startAtOwnOffset(client);
    honourConnectionClose(client);
  },
});

instance.on('response', (_client, statusCode, _bytes, responseTime) => {
  latencies.push(responseTime);
  if (answeredIndex >= 0 && !firstLatencies.has(answeredIndex)) {
    firstLatencies.set(answeredIndex, responseTime);
  }
  answeredIndex = -1;
  responses += 1;
  statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1;
  lastResponseAt = performance.now();
});

// Another process ends an open-ended run by creating stopFile.
const stopWatch = options.stopFile
  ? setInterval(() => {
    if (existsSync(options.stopFile)) instance.stop();
  }, 100)
  : null;

// A run never outlives maxSeconds: a server far slower than expected yields
// a partial (and flagged) result instead of a hung benchmark.
let truncated = false;
const guard = setTimeout(() => {
  truncated = true;
  instance.stop();
}, (options.maxSeconds ?? 300) * 1000);

instance.on('done', (result) => {
  clearTimeout(guard);
  if (stopWatch) clearInterval(stopWatch);
  const sorted = Float64Array.from(latencies).sort();
  const cold = Float64Array.from(firstLatencies.values()).sort();
  const mean = sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : null;
  const valid = Math.max(0, responses - result.mismatches);
  const durationSeconds = (lastResponseAt - startedAt) / 1000;
  console.log(JSON.stringify({
    requested: options.amount ?? responses,
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
    coldLatencyMs: {
      count: cold.length,
      p50: percentile(cold, 0.5),
      p99: percentile(cold, 0.99),
      max: cold.length ? cold[cold.length - 1] : null,
    },
    statusCodes,
    errorKinds,
    reconnects,
    truncated,
  }));
});
