// Tessera hook sandbox prelude, for QuickJS.
//
// Evaluated once in every fresh context (one context per tenant's hook
// version), before the hook's own code. It installs what a hook may see
// (console, timers, the OAuth error classes) and evaluates to the host's one
// entry point, `host(op, text)`, which is never stored anywhere hook code can
// reach: only the Python side holds it.
//
//   host('load', script)  compile and run the CommonJS module body: what it
//                         exports ('hook' or 'action'), or an outcome
//                         envelope describing the failure
//   host('run', payload)  start one invocation; its envelope, or a pending
//                         mark 'p<ms>' (ms until the next timer, -1 for none)
//   host('poll', '')      the envelope or the pending mark again, after the
//                         host ran the pending jobs
//   host('fire', '')      run the timers that are due, then as 'poll'
//   host('console', '')   the console output of the current run (after an
//                         interrupted run, whose envelope never came)
//   host('outbox', '')    the fetch requests queued since the last call (JSON
//                         list); the host performs them (egress.py)
//   host('deliver', json) settle finished fetches ([{id, response|error}]),
//                         then as 'poll'
//
// An envelope is <meta JSON> "\n" <value JSON>; a quiet success (no console
// output, no storage or cache writes) has an empty meta. Everything the
// prelude relies on is captured before user code runs, so a hook that
// rewrites built-ins can only spoil its own result. Limits are fixed when the
// context is created.
(function (global, limits) {
  'use strict';

  const uncurry = (fn) => Function.prototype.call.bind(fn);
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const StringCtor = String;
  const ErrorCtor = Error;
  const TypeErrorCtor = TypeError;
  const RangeErrorCtor = RangeError;
  const PromiseCtor = Promise;
  const MapCtor = Map;
  const objectCreate = Object.create;
  const objectFreeze = Object.freeze;
  const defineProperty = Object.defineProperty;
  const hasOwn = uncurry(Object.prototype.hasOwnProperty);
  const reflectApply = Reflect.apply;
  const isArray = Array.isArray;
  const parseIntFn = parseInt;
  const parseFloatFn = parseFloat;
  const objectKeys = Object.keys;
  const dateNow = Date.now;
  const captureStackTrace = Error.captureStackTrace;
  const indirectEval = global.eval;
  const charCodeAt = uncurry(String.prototype.charCodeAt);
  const stringSlice = uncurry(String.prototype.slice);
  const stringReplace = uncurry(String.prototype.replace);
  const stringIncludes = uncurry(String.prototype.includes);
  const regexpExec = uncurry(RegExp.prototype.exec);
  const arrayPush = uncurry(Array.prototype.push);
  const arrayJoin = uncurry(Array.prototype.join);
  const arraySort = uncurry(Array.prototype.sort);
  const promiseThen = uncurry(PromiseCtor.prototype.then);
  const resolved = PromiseCtor.resolve();
  const mapGet = uncurry(MapCtor.prototype.get);
  const mapSet = uncurry(MapCtor.prototype.set);
  const mapHas = uncurry(MapCtor.prototype.has);
  const mapDelete = uncurry(MapCtor.prototype.delete);
  const mapClear = uncurry(MapCtor.prototype.clear);
  const mapForEach = uncurry(MapCtor.prototype.forEach);

  // The module wrapper shares line 1 with the script, so line numbers match
  // the user's file; only columns on line 1 move, by MODULE_PREFIX.length.
  const MODULE_PREFIX = '(function (exports, module) {';
  const MODULE_SUFFIX = '\n})';
  // QuickJS names every evaluated source <input>; frames of the prelude's own
  // functions are cut from errors it creates (captureStackTrace).
  const STACK_LOCATION = /<input>:(\d+):(\d+)/;
  const FORMAT_DIRECTIVE = /%[sdifjoOc%]/g;
  const ACTION_HANDLER = 'onExecuteCredentialsExchange';
  const MAX_NAME = 200;
  const MAX_MESSAGE = 4000;
  const MAX_DELAY = 2147483647;

  let moduleRecord = { exports: {} };
  let scriptLines = 0;
  let lastLineLength = 0;

  // One run at a time. `generation` invalidates callbacks, timers and storage
  // handles of earlier runs; `done` makes everything after the first outcome
  // a no-op.
  let generation = 0;
  let done = true;
  let outcome = null;
  let storageWrite = null;
  let actionCacheWrites = null;
  const timers = new MapCtor();
  let nextTimerId = 1;
  // fetch requests: queued for the host, then settled when it delivers.
  const fetches = new MapCtor();
  let outbox = [];
  let nextFetchId = 1;
  let logParts = [];
  let logLength = 0;
  let logTruncated = false;

  function cap(text, max) {
    return text.length > max ? stringSlice(text, 0, max) + '…' : text;
  }

  // text's UTF-8 length as far as a comparison with limit needs it: the
  // character count when every character would fit or none could, a count
  // that stops past the limit, and with limit Infinity the exact length.
  function utf8Length(text, limit) {
    const n = text.length;
    if (limit !== Infinity && (n * 3 <= limit || n > limit)) {
      return n;
    }
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const c = charCodeAt(text, i);
      if (c < 0x80) {
        bytes += 1;
      } else if (c < 0x800) {
        bytes += 2;
      } else if (c >= 0xd800 && c <= 0xdbff) {
        bytes += 4;
        i++;
      } else {
        bytes += 3;
      }
      if (bytes > limit) {
        return bytes;
      }
    }
    return bytes;
  }

  // An error the prelude raises on a hook's behalf points at the hook's line.
  function hostError(Ctor, message, caller) {
    const error = new Ctor(message);
    captureStackTrace(error, caller);
    return error;
  }

  // ---- console -----------------------------------------------------------

  function inspect(value) {
    try {
      switch (typeof value) {
        case 'string':
          return value;
        case 'undefined':
          return 'undefined';
        case 'function':
          return '[Function: ' + (value.name || '(anonymous)') + ']';
        case 'bigint':
          return StringCtor(value) + 'n';
        case 'symbol':
          return StringCtor(value);
        case 'object': {
          if (value === null) {
            return 'null';
          }
          if (value instanceof ErrorCtor) {
            const stack = value.stack;
            const head = StringCtor(value);
            return typeof stack === 'string' ? head + '\n' + stack : head;
          }
          const json = stringify(value);
          return json === undefined ? StringCtor(value) : json;
        }
        default:
          return StringCtor(value);
      }
    } catch (e) {
      return '[unprintable]';
    }
  }

  function format(args) {
    const parts = [];
    let rest = 0;
    if (typeof args[0] === 'string' && stringIncludes(args[0], '%')) {
      rest = 1;
      arrayPush(
        parts,
        stringReplace(args[0], FORMAT_DIRECTIVE, (directive) => {
          if (directive === '%%') {
            return '%';
          }
          if (rest >= args.length) {
            return directive;
          }
          const arg = args[rest++];
          switch (directive) {
            case '%d':
            case '%i':
              return typeof arg === 'bigint' ? StringCtor(arg) + 'n' : StringCtor(parseIntFn(arg, 10));
            case '%f':
              return StringCtor(parseFloatFn(arg));
            case '%c':
              return '';
            case '%s':
              return typeof arg === 'string' ? arg : inspect(arg);
            default:
              return inspect(arg);
          }
        }),
      );
    }
    for (let i = rest; i < args.length; i++) {
      arrayPush(parts, inspect(args[i]));
    }
    return arrayJoin(parts, ' ');
  }

  function writeLog(text) {
    if (logTruncated) {
      return;
    }
    const room = limits.log - logLength;
    if (text.length > room) {
      text = stringSlice(text, 0, room > 0 ? room : 0);
      logTruncated = true;
    }
    arrayPush(logParts, text);
    logLength += text.length;
  }

  function resetLog() {
    logParts = [];
    logLength = 0;
    logTruncated = false;
  }

  const log = function (...args) {
    writeLog(format(args) + '\n');
  };
  const console = objectFreeze({
    log,
    info: log,
    warn: log,
    error: log,
    debug: log,
    trace: log,
    dir: (value) => writeLog(inspect(value) + '\n'),
  });

  // ---- outcome -------------------------------------------------------------

  function locate(info, stack) {
    if (typeof stack !== 'string') {
      return;
    }
    const match = regexpExec(STACK_LOCATION, stack);
    if (match === null) {
      return;
    }
    let line = +match[1];
    let column = +match[2];
    if (line === 1) {
      column -= MODULE_PREFIX.length;
    }
    if (line > scriptLines) {
      // e.g. an unclosed brace, reported at the wrapper's end
      line = scriptLines;
      column = lastLineLength + 1;
    }
    info.line = line;
    info.column = column > 1 ? column : 1;
  }

  function describeError(error, located) {
    const info = objectCreate(null);
    info.name = 'Error';
    info.message = '';
    info.line = null;
    info.column = null;
    try {
      if (error !== null && (typeof error === 'object' || typeof error === 'function')) {
        const name = error.name;
        const message = error.message;
        if (typeof name === 'string' && name !== '') {
          info.name = cap(name, MAX_NAME);
        }
        info.message = cap(message === undefined ? inspect(error) : StringCtor(message), MAX_MESSAGE);
        if (located) {
          locate(info, error.stack);
        }
      } else {
        info.message = cap(StringCtor(error), MAX_MESSAGE);
        // QuickJS throws a bare null when it cannot even allocate its
        // out-of-memory error, as a hook's `throw null` does: the host tells
        // the two apart by the heap (engine.py, heap_reserve).
        info.bare = error === null;
      }
    } catch (e) {
      info.message = info.message || 'the hook failed with an error that could not be read';
    }
    return info;
  }

  function resultError(name, message) {
    const info = objectCreate(null);
    info.name = name;
    info.message = message;
    info.line = null;
    info.column = null;
    info.kind = 'result';
    return info;
  }

  // Thrown by the replacer below; never seen by the hook.
  const TOO_LARGE = objectCreate(null);

  function tooLarge() {
    return resultError('RangeError', 'hook result is larger than ' + limits.result + ' bytes');
  }

  function encodeValue(value, meta) {
    // Strings are counted as JSON.stringify meets them, so a result with a
    // 50 MB claim is refused before anything copies it.
    let left = limits.result;
    const bounded = function (key, item) {
      left -= key.length;
      if (typeof item === 'string') {
        left -= item.length;
      }
      if (left < 0) {
        throw TOO_LARGE;
      }
      return item;
    };
    let json;
    try {
      json = stringify(value, bounded);
    } catch (e) {
      if (e === TOO_LARGE) {
        meta.error = tooLarge();
        return null;
      }
      const reason = describeError(e, false).message;
      meta.error =
        reason === 'out of memory'
          ? tooLarge()
          : resultError('TypeError', 'hook result is not JSON-serialisable: ' + reason);
      return null;
    }
    if (json === undefined) {
      return 'null';
    }
    if (utf8Length(json, limits.result) > limits.result) {
      meta.error = tooLarge();
      return null;
    }
    return json;
  }

  function consoleText() {
    return arrayJoin(logParts, '');
  }

  // Joined, not concatenated: a long concatenation is a rope string, which
  // the engine's wrapper cannot hand to Python.
  function envelope(meta, json) {
    const text = consoleText();
    if (meta.ok && text === '' && !logTruncated && !meta.storage && !meta.cache) {
      return arrayJoin(['', json], '\n');
    }
    meta.console = text;
    meta.truncated = logTruncated;
    return arrayJoin([stringify(meta), json], '\n');
  }

  function finish(error, value, located, failing) {
    if (done) {
      return;
    }
    done = true;
    mapClear(timers);
    const meta = objectCreate(null);
    let json = 'null';
    if (error || (error === null && failing)) {
      meta.error = describeError(error, located);
    } else {
      const encoded = encodeValue(value, meta);
      if (encoded !== null) {
        json = encoded;
      }
    }
    meta.ok = meta.error === undefined;
    if (storageWrite !== null) {
      meta.storage = storageWrite;
    }
    if (actionCacheWrites !== null && objectKeys(actionCacheWrites).length) {
      meta.cache = actionCacheWrites;
    }
    outcome = envelope(meta, json);
  }

  function fail(error) {
    finish(
      error || error === null ? error : new ErrorCtor('the hook failed with ' + StringCtor(error)),
      undefined,
      true,
      true,
    );
  }

  function callUser(fn, thisArg, args, runGeneration) {
    if (runGeneration !== generation || done) {
      return;
    }
    try {
      reflectApply(fn, thisArg, args);
    } catch (e) {
      fail(e);
    }
  }

  // ---- fetch: the host performs requests; web.js builds fetch() on this ----

  // Queue `request` ({method, url, headers, body64, redirect}); `settle(error,
  // response)` runs when the host delivers, unless the run ended or the
  // request was cancelled first. Returns the id to cancel with.
  function sendFetch(request, settle) {
    const id = nextFetchId++;
    const entry = objectCreate(null);
    entry.settle = settle;
    entry.generation = generation;
    mapSet(fetches, id, entry);
    request.id = id;
    arrayPush(outbox, request);
    return id;
  }

  function cancelFetch(id) {
    mapDelete(fetches, id);
  }

  function deliver(text) {
    const results = parse(text);
    for (let i = 0; i < results.length; i++) {
      const result = results[i];
      const entry = mapGet(fetches, result.id);
      if (entry === undefined) {
        continue; // aborted meanwhile
      }
      mapDelete(fetches, result.id);
      if (result.error !== undefined) {
        callUser(entry.settle, undefined, [new TypeErrorCtor(result.error), null], entry.generation);
      } else {
        callUser(entry.settle, undefined, [null, result.response], entry.generation);
      }
    }
  }

  // ---- timers: the host sleeps until the next one is due, then fires it ------

  function startTimer(fn, delay, args, repeat, caller) {
    if (typeof fn !== 'function') {
      throw hostError(TypeErrorCtor, 'The "callback" argument must be of type function', caller);
    }
    const id = nextTimerId++;
    if (done) {
      return id;
    }
    let ms = +delay;
    // Node's rule: below 1 ms or above 2**31-1 ms means 1 ms.
    if (!(ms >= 1 && ms <= MAX_DELAY)) {
      ms = 1;
    }
    const timer = objectCreate(null);
    timer.fn = fn;
    timer.args = args;
    timer.ms = ms;
    timer.repeat = repeat;
    timer.due = dateNow() + ms;
    timer.generation = generation;
    mapSet(timers, id, timer);
    return id;
  }

  function stopTimer(id) {
    mapDelete(timers, id);
  }

  function fireDue() {
    const now = dateNow();
    const due = [];
    mapForEach(timers, (timer, id) => {
      if (timer.due <= now) {
        arrayPush(due, id);
      }
    });
    arraySort(due, (a, b) => mapGet(timers, a).due - mapGet(timers, b).due || a - b);
    for (let i = 0; i < due.length && !done; i++) {
      const id = due[i];
      if (!mapHas(timers, id)) {
        continue; // cleared by an earlier timer
      }
      const timer = mapGet(timers, id);
      if (timer.repeat) {
        timer.due = now + timer.ms;
      } else {
        mapDelete(timers, id);
      }
      callUser(timer.fn, undefined, timer.args, timer.generation);
    }
  }

  function pendingMark() {
    let next = -1;
    mapForEach(timers, (timer) => {
      if (next < 0 || timer.due < next) {
        next = timer.due;
      }
    });
    if (next < 0) {
      return 'p-1';
    }
    const wait = next - dateNow();
    return 'p' + (wait > 0 ? wait : 0);
  }

  // ---- storage ---------------------------------------------------------------

  function makeStorage(snapshot, runGeneration) {
    let current = snapshot === null ? undefined : stringify(snapshot.data);
    const later = (fn, args) => {
      promiseThen(resolved, () => callUser(fn, undefined, args, runGeneration));
    };
    const storage = {
      get(cb) {
        const data = current === undefined ? undefined : parse(current);
        if (typeof cb !== 'function') {
          return PromiseCtor.resolve(data);
        }
        later(cb, [null, data]);
        return undefined;
      },
      set(data, options, cb) {
        if (typeof options === 'function') {
          cb = options;
          options = undefined;
        }
        let error = null;
        let text;
        try {
          text = stringify(data);
          if (text === undefined) {
            error = hostError(TypeErrorCtor, 'storage data must be JSON-serialisable', storage.set);
          } else if (utf8Length(text, limits.storage) > limits.storage) {
            error = hostError(
              RangeErrorCtor,
              'storage data is larger than ' + limits.storage + ' bytes',
              storage.set,
            );
          }
        } catch (e) {
          error = e;
        }
        if (error === null && runGeneration === generation && !done) {
          current = text;
          const write = objectCreate(null);
          write.json = text;
          write.force = !!(options !== null && typeof options === 'object' && options.force);
          storageWrite = write;
        }
        if (typeof cb !== 'function') {
          return error === null ? PromiseCtor.resolve() : PromiseCtor.reject(error);
        }
        later(cb, [error]);
        return undefined;
      },
    };
    return objectFreeze(storage);
  }

  // ---- host entry points -------------------------------------------------

  // What the module exports: a function is a Hook, an object with
  // onExecuteCredentialsExchange an Auth0 Action.
  function moduleKind() {
    const exported = moduleRecord.exports;
    if (typeof exported === 'function') {
      return 'hook';
    }
    if (exported !== null && typeof exported === 'object' && typeof exported[ACTION_HANDLER] === 'function') {
      return 'action';
    }
    throw new TypeErrorCtor(
      'module.exports must be a function (a Hook) or export ' +
        ACTION_HANDLER +
        ' (an Action), not ' +
        (exported === null ? 'null' : typeof exported),
    );
  }

  // ---- Auth0 Actions: the event and the api object ----------------------------

  const CACHE_MAX_VALUE = 4096;
  const CACHE_MAX_ENTRIES = 20;
  const CACHE_MAX_TOTAL = 8192;
  const CACHE_DEFAULT_TTL = 15 * 60 * 1000;
  const CACHE_MAX_TTL = 24 * 60 * 60 * 1000;
  const DENY_ERRORS = { invalid_scope: 'InvalidScopeError', invalid_request: 'InvalidRequestError', server_error: 'ServerError' };

  function object(value) {
    return value !== null && typeof value === 'object' && !isArray(value) ? value : {};
  }

  // A token request's Hook arguments, as Auth0's credentials-exchange event.
  function actionEvent(payload) {
    const values = object(payload.payload);
    const client = object(values.client);
    const context = object(values.context);
    const body = object(context.body);
    const request = object(payload.request);
    // In a flow, what the earlier steps left in the token (else: the granted scopes).
    const token = object(payload.accessToken);
    const scope = isArray(token.scope) ? token.scope : isArray(values.scope) ? values.scope : [];
    const requested = typeof body.scope === 'string' ? body.scope.split(' ').filter((s) => s !== '') : [];
    return {
      client: { client_id: client.id, name: client.name, metadata: object(client.metadata) },
      resource_server: { identifier: values.audience },
      tenant: { id: client.tenant },
      request: {
        body: body,
        ip: context.ip,
        hostname: request.hostname,
        method: request.method || 'POST',
        user_agent: context.userAgent,
        language: request.language,
        geoip: object(request.geoip),
      },
      secrets: payload.secrets,
      transaction: { requested_scopes: requested },
      accessToken: { scope: scope.slice(), customClaims: object(token.customClaims) },
    };
  }

  function utf8Bytes(text) {
    return utf8Length(text, Infinity);
  }

  function makeCache(snapshot, writes, runGeneration) {
    const entries = new MapCtor();
    const keys = objectKeys(object(snapshot));
    for (let i = 0; i < keys.length; i++) {
      const entry = object(snapshot[keys[i]]);
      if (typeof entry.value === 'string' && entry.expires_at > dateNow()) {
        mapSet(entries, keys[i], { value: entry.value, expires_at: entry.expires_at });
      }
    }
    const failure = (code) => ({ type: 'error', code: code });
    const live = () => runGeneration === generation && !done;
    return objectFreeze({
      get(key) {
        const entry = mapGet(entries, StringCtor(key));
        return entry === undefined || entry.expires_at <= dateNow()
          ? undefined
          : { value: entry.value, expires_at: entry.expires_at };
      },
      set(key, value, options) {
        key = StringCtor(key);
        if (typeof value !== 'string') {
          return failure('INVALID_VALUE');
        }
        if (utf8Bytes(value) > CACHE_MAX_VALUE) {
          return failure('VALUE_TOO_LARGE');
        }
        options = object(options);
        const now = dateNow();
        let expires = now + CACHE_DEFAULT_TTL;
        if (options.expires_at !== undefined) {
          expires = +options.expires_at;
        } else if (options.ttl !== undefined) {
          expires = now + +options.ttl;
        }
        if (!(expires > now) || expires > now + CACHE_MAX_TTL) {
          return failure('INVALID_EXPIRY');
        }
        let total = utf8Bytes(value);
        let count = 1;
        mapForEach(entries, (entry, other) => {
          if (other !== key) {
            count++;
            total += utf8Bytes(entry.value);
          }
        });
        if (count > CACHE_MAX_ENTRIES) {
          return failure('TOO_MANY_ENTRIES');
        }
        if (total > CACHE_MAX_TOTAL) {
          return failure('CACHE_FULL');
        }
        if (live()) {
          mapSet(entries, key, { value: value, expires_at: expires });
          writes[key] = { value: value, expires_at: expires };
        }
        return { type: 'success' };
      },
      delete(key) {
        key = StringCtor(key);
        if (live()) {
          mapDelete(entries, key);
          writes[key] = null;
        }
        return { type: 'success' };
      },
    });
  }

  function runAction(handler, payload, runGeneration) {
    let event;
    if (payload.event !== undefined && payload.event !== null) {
      // A test run's event: the secrets are the hook's own, as in a token request.
      event = object(payload.event);
      event.secrets = payload.secrets;
    } else {
      event = actionEvent(payload);
    }
    const grantedScope = isArray(object(event.accessToken).scope) ? event.accessToken.scope.slice() : [];
    const claims = {};
    const cacheWrites = {};
    let denial = null;
    const live = () => runGeneration === generation && !done;
    const api = {};
    api.access = objectFreeze({
      deny(code, reason) {
        if (live() && denial === null) {
          denial = { code: code, reason: reason };
        }
        return api;
      },
    });
    api.accessToken = objectFreeze({
      setCustomClaim(name, value) {
        if (live()) {
          claims[StringCtor(name)] = value;
        }
        return api;
      },
    });
    api.cache = makeCache(payload.cache, cacheWrites, runGeneration);
    objectFreeze(api);
    const complete = () => {
      if (!live()) {
        return;
      }
      actionCacheWrites = cacheWrites;
      if (denial !== null) {
        const name = hasOwn(DENY_ERRORS, denial.code) ? DENY_ERRORS[denial.code] : null;
        if (name === null) {
          fail(hostError(TypeErrorCtor, "api.access.deny: code must be 'invalid_scope', 'invalid_request' or 'server_error'", api.access.deny));
          return;
        }
        const error = new ErrorCtor(denial.reason === undefined ? 'Access denied.' : StringCtor(denial.reason));
        error.name = name;
        finish(error, undefined, false);
        return;
      }
      finish(null, { scope: grantedScope, claims: claims }, true);
    };
    const returned = reflectApply(handler, moduleRecord.exports, [event, api]);
    if (returned instanceof PromiseCtor) {
      promiseThen(returned, complete, (error) => {
        if (live()) {
          fail(error);
        }
      });
    } else {
      complete();
    }
  }

  function run(payloadText) {
    generation++;
    done = false;
    outcome = null;
    storageWrite = null;
    mapClear(timers);
    mapClear(fetches);
    outbox = [];
    resetLog();
    actionCacheWrites = null;
    const runGeneration = generation;
    let fn;
    const args = [];
    try {
      const payload = parse(payloadText);
      if (moduleKind() === 'action') {
        try {
          runAction(moduleRecord.exports[ACTION_HANDLER], payload, runGeneration);
        } catch (e) {
          fail(e);
        }
        return;
      }
      fn = moduleRecord.exports;
      const values = payload.payload;
      const names = payload.names;
      for (let i = 0; i < names.length; i++) {
        const name = names[i];
        let value = hasOwn(values, name) ? values[name] : undefined;
        if (name === 'context') {
          value = value !== null && typeof value === 'object' && !isArray(value) ? value : {};
          value.webtask = {
            secrets: payload.secrets,
            storage: makeStorage(payload.storage, runGeneration),
          };
        }
        arrayPush(args, value);
      }
    } catch (e) {
      finish(e, undefined, false);
      return;
    }
    const declaresCallback = fn.length > args.length;
    arrayPush(args, function cb(error, value) {
      if (runGeneration === generation) {
        finish(error, value, true);
      }
    });
    let returned;
    try {
      returned = reflectApply(fn, undefined, args);
    } catch (e) {
      fail(e);
      return;
    }
    if (!done && returned instanceof PromiseCtor) {
      promiseThen(
        returned,
        (value) => {
          // An async hook that declares cb and resolves to undefined is still
          // expected to call cb.
          if (runGeneration === generation && (value !== undefined || !declaresCallback)) {
            finish(null, value, true);
          }
        },
        (error) => {
          if (runGeneration === generation) {
            fail(error);
          }
        },
      );
    }
  }

  function load(scriptJson) {
    const script = parse(scriptJson);
    moduleRecord = { exports: {} };
    resetLog();
    let lineStart = 0;
    scriptLines = 1;
    for (let i = 0; i < script.length; i++) {
      if (charCodeAt(script, i) === 10) {
        scriptLines++;
        lineStart = i + 1;
      }
    }
    lastLineLength = script.length - lineStart;
    const meta = objectCreate(null);
    meta.ok = false;
    let factory;
    try {
      factory = indirectEval(MODULE_PREFIX + script + MODULE_SUFFIX);
    } catch (e) {
      meta.error = describeError(e, true);
      meta.error.kind = 'syntax';
      return envelope(meta, 'null');
    }
    try {
      reflectApply(factory, moduleRecord.exports, [moduleRecord.exports, moduleRecord]);
      return moduleKind();
    } catch (e) {
      meta.error = describeError(e, true);
      return envelope(meta, 'null');
    }
  }

  function host(op, text) {
    switch (op) {
      case 'run':
        run(text);
        break;
      case 'fire':
        fireDue();
        break;
      case 'poll':
        break;
      case 'load':
        return load(text);
      case 'console':
        return stringify([consoleText(), logTruncated]);
      case 'outbox': {
        const queued = outbox;
        outbox = [];
        return stringify(queued);
      }
      case 'deliver':
        deliver(text);
        break;
      default:
        throw new TypeErrorCtor('unknown host operation');
    }
    return outcome !== null ? outcome : pendingMark();
  }

  // ---- what the hook sees ----------------------------------------------------

  class InvalidScopeError extends ErrorCtor {
    constructor(message) {
      super(message);
      this.name = 'InvalidScopeError';
      captureStackTrace(this, new.target);
    }
  }
  class InvalidRequestError extends ErrorCtor {
    constructor(message) {
      super(message);
      this.name = 'InvalidRequestError';
      captureStackTrace(this, new.target);
    }
  }
  class ServerError extends ErrorCtor {
    constructor(message) {
      super(message);
      this.name = 'ServerError';
      captureStackTrace(this, new.target);
    }
  }

  function setTimeout(fn, delay, ...args) {
    return startTimer(fn, delay, args, false, setTimeout);
  }
  function setInterval(fn, delay, ...args) {
    return startTimer(fn, delay, args, true, setInterval);
  }
  function setImmediate(fn, ...args) {
    return startTimer(fn, 1, args, false, setImmediate);
  }

  const globals = {
    global,
    console,
    InvalidScopeError,
    InvalidRequestError,
    ServerError,
    setTimeout,
    setInterval,
    setImmediate,
    clearTimeout: stopTimer,
    clearInterval: stopTimer,
    clearImmediate: stopTimer,
  };
  const names = objectKeys(globals);
  for (let i = 0; i < names.length; i++) {
    defineProperty(global, names[i], {
      value: globals[names[i]],
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }
  // For web.js (fetch), which the host evaluates next; unreachable from hooks.
  host.network = objectFreeze({ send: sendFetch, cancel: cancelFetch, setTimeout });
  return host;
});
