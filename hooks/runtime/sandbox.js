// Tessera hook sandbox prelude.
//
// Evaluated once in every fresh V8 context (one context per hook version),
// before the hook's own code. It installs what a hook may see (console,
// timers, the OAuth error classes) and `__tessera_host`, the few entry points
// the worker process calls by name:
//
//   init(logChars)   allocate the console buffer: a SharedArrayBuffer that
//                    Python reads directly, so console output survives even a
//                    run that never gives the isolate back
//   connect(fn)      the function to call when an asynchronous run finishes
//   load(factory)    run the CommonJS module body; '' or an error envelope
//   run(payload)     start one invocation of module.exports
//   collect()        'p' while the run is pending, else its envelope:
//                    <meta JSON> "\n" <value JSON>
//
// Everything the host relies on is captured here, before user code runs, so a
// hook that rewrites built-ins can only spoil its own result.
(function (global) {
  'use strict';

  const uncurry = (fn) => Function.prototype.call.bind(fn);
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const StringCtor = String;
  const ErrorCtor = Error;
  const TypeErrorCtor = TypeError;
  const RangeErrorCtor = RangeError;
  const PromiseCtor = Promise;
  const SharedArrayBufferCtor = SharedArrayBuffer;
  const Int32ArrayCtor = Int32Array;
  const Uint16ArrayCtor = Uint16Array;
  const objectCreate = Object.create;
  const objectFreeze = Object.freeze;
  const defineProperty = Object.defineProperty;
  const hasOwn = uncurry(Object.prototype.hasOwnProperty);
  const reflectApply = Reflect.apply;
  const isArray = Array.isArray;
  const parseIntFn = parseInt;
  const parseFloatFn = parseFloat;
  const objectKeys = Object.keys;
  const atomicsStore = Atomics.store;
  const atomicsLoad = Atomics.load;
  const charCodeAt = uncurry(String.prototype.charCodeAt);
  const stringSlice = uncurry(String.prototype.slice);
  const stringReplace = uncurry(String.prototype.replace);
  const stringIncludes = uncurry(String.prototype.includes);
  const regexpExec = uncurry(RegExp.prototype.exec);
  const arrayPush = uncurry(Array.prototype.push);
  const arrayJoin = uncurry(Array.prototype.join);
  const promiseThen = uncurry(PromiseCtor.prototype.then);
  const resolved = PromiseCtor.resolve();
  const setAdd = uncurry(Set.prototype.add);
  const setHas = uncurry(Set.prototype.has);
  const setDelete = uncurry(Set.prototype.delete);
  const setClear = uncurry(Set.prototype.clear);
  // mini-racer's own timers (Atomics.waitAsync based); they reject a 0 ms delay.
  const rawSetTimeout = global.setTimeout;

  const STACK_LOCATION = /hook\.js:(\d+):(\d+)/;
  const FORMAT_DIRECTIVE = /%[sdifjoOc%]/g;
  const MAX_NAME = 200;
  const MAX_MESSAGE = 4000;
  const MAX_DELAY = 2147483647;

  let notify = null;
  let logHead = null;
  let logChars = null;
  let logCapacity = 0;
  let moduleRecord = { exports: {} };
  let freshlyLoaded = false;

  // One run at a time. `generation` invalidates callbacks, timers and storage
  // handles of earlier runs; `done` makes everything after the first outcome
  // a no-op.
  let generation = 0;
  let done = true;
  let waiting = false;
  let outcome = null;
  let limits = { result: 0, storage: 0 };
  let storageWrite = null;
  const activeTimers = new Set();
  let nextTimerId = 1;

  function cap(text, max) {
    return text.length > max ? stringSlice(text, 0, max) + '…' : text;
  }

  function utf8Length(text, limit) {
    const n = text.length;
    if (n * 3 <= limit || n > limit) {
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
        case 'object': {
          if (value === null) {
            return 'null';
          }
          if (value instanceof ErrorCtor) {
            const stack = value.stack;
            return typeof stack === 'string' ? stack : StringCtor(value);
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
    if (logHead === null || atomicsLoad(logHead, 1) !== 0) {
      return;
    }
    const used = atomicsLoad(logHead, 0);
    const room = logCapacity - used;
    const n = text.length <= room ? text.length : room;
    for (let i = 0; i < n; i++) {
      logChars[used + i] = charCodeAt(text, i);
    }
    atomicsStore(logHead, 0, used + n);
    if (n < text.length) {
      atomicsStore(logHead, 1, 1);
    }
  }

  function resetLog() {
    if (logHead !== null) {
      atomicsStore(logHead, 0, 0);
      atomicsStore(logHead, 1, 0);
    }
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
        const stack = located ? error.stack : undefined;
        if (typeof stack === 'string') {
          const match = regexpExec(STACK_LOCATION, stack);
          if (match !== null) {
            info.line = +match[1];
            info.column = +match[2];
          }
        }
      } else {
        info.message = cap(StringCtor(error), MAX_MESSAGE);
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

  function encodeValue(value, meta) {
    // A long string is refused before JSON.stringify copies it.
    if (typeof value === 'string' && value.length > limits.result) {
      meta.error = resultError('RangeError', 'hook result is larger than ' + limits.result + ' bytes');
      return null;
    }
    let json;
    try {
      json = stringify(value);
    } catch (e) {
      const reason = describeError(e, false).message;
      meta.error = resultError('TypeError', 'hook result is not JSON-serialisable: ' + reason);
      return null;
    }
    if (json === undefined) {
      return 'null';
    }
    if (utf8Length(json, limits.result) > limits.result) {
      meta.error = resultError('RangeError', 'hook result is larger than ' + limits.result + ' bytes');
      return null;
    }
    return json;
  }

  function finish(error, value, located) {
    if (done) {
      return;
    }
    done = true;
    setClear(activeTimers);
    const meta = objectCreate(null);
    let json = 'null';
    if (error) {
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
    outcome = stringify(meta) + '\n' + json;
    if (waiting) {
      waiting = false;
      notify();
    }
  }

  function fail(error) {
    finish(error || new ErrorCtor('the hook failed with ' + StringCtor(error)), undefined, true);
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

  // ---- timers ----------------------------------------------------------------

  function startTimer(fn, delay, args, repeat) {
    if (typeof fn !== 'function') {
      throw new TypeErrorCtor('The "callback" argument must be of type function');
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
    const runGeneration = generation;
    const fire = () => {
      if (runGeneration !== generation || done || !setHas(activeTimers, id)) {
        return;
      }
      if (repeat) {
        rawSetTimeout(fire, ms);
      } else {
        setDelete(activeTimers, id);
      }
      callUser(fn, undefined, args, runGeneration);
    };
    setAdd(activeTimers, id);
    rawSetTimeout(fire, ms);
    return id;
  }

  function stopTimer(id) {
    setDelete(activeTimers, id);
  }

  // ---- storage ---------------------------------------------------------------

  function makeStorage(snapshot, runGeneration) {
    let current = snapshot === null ? undefined : stringify(snapshot.data);
    const later = (fn, args) => {
      promiseThen(resolved, () => callUser(fn, undefined, args, runGeneration));
    };
    return objectFreeze({
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
            error = new TypeErrorCtor('storage data must be JSON-serialisable');
          } else if (utf8Length(text, limits.storage) > limits.storage) {
            error = new RangeErrorCtor('storage data is larger than ' + limits.storage + ' bytes');
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
    });
  }

  // ---- host entry points -------------------------------------------------

  function currentHook() {
    const fn = moduleRecord.exports;
    if (typeof fn !== 'function') {
      throw new TypeErrorCtor('module.exports must be a function, not ' + typeof fn);
    }
    return fn;
  }

  function run(payloadText) {
    generation++;
    done = false;
    waiting = false;
    outcome = null;
    storageWrite = null;
    setClear(activeTimers);
    if (freshlyLoaded) {
      freshlyLoaded = false;
    } else {
      resetLog();
    }
    const runGeneration = generation;
    let fn;
    const args = [];
    try {
      const payload = parse(payloadText);
      limits = payload.limits;
      fn = currentHook();
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

  function collect() {
    if (outcome !== null) {
      return outcome;
    }
    waiting = true;
    return 'p';
  }

  function load(factory) {
    moduleRecord = { exports: {} };
    freshlyLoaded = true;
    resetLog();
    try {
      reflectApply(factory, moduleRecord.exports, [moduleRecord.exports, moduleRecord]);
      currentHook();
    } catch (e) {
      const meta = objectCreate(null);
      meta.ok = false;
      meta.error = describeError(e, true);
      return stringify(meta);
    }
    return '';
  }

  function init(chars) {
    const buffer = new SharedArrayBufferCtor(8 + 2 * chars);
    logHead = new Int32ArrayCtor(buffer, 0, 2);
    logChars = new Uint16ArrayCtor(buffer, 8, chars);
    logCapacity = chars;
    return buffer;
  }

  function connect(fn) {
    notify = fn;
  }

  // ---- what the hook sees ----------------------------------------------------

  class InvalidScopeError extends ErrorCtor {
    constructor(message) {
      super(message);
      this.name = 'InvalidScopeError';
    }
  }
  class InvalidRequestError extends ErrorCtor {
    constructor(message) {
      super(message);
      this.name = 'InvalidRequestError';
    }
  }
  class ServerError extends ErrorCtor {
    constructor(message) {
      super(message);
      this.name = 'ServerError';
    }
  }

  const globals = {
    global,
    console,
    InvalidScopeError,
    InvalidRequestError,
    ServerError,
    setTimeout: (fn, delay, ...args) => startTimer(fn, delay, args, false),
    setInterval: (fn, delay, ...args) => startTimer(fn, delay, args, true),
    setImmediate: (fn, ...args) => startTimer(fn, 1, args, false),
    clearTimeout: stopTimer,
    clearInterval: stopTimer,
    clearImmediate: stopTimer,
  };
  // Plain assignment: mini-racer declares setTimeout with `var`, which makes
  // the property non-configurable.
  const names = objectKeys(globals);
  for (let i = 0; i < names.length; i++) {
    global[names[i]] = globals[names[i]];
  }
  defineProperty(global, '__tessera_host', {
    value: objectFreeze({ init, connect, load, run, collect }),
    writable: false,
    configurable: false,
    enumerable: false,
  });
})(globalThis);
