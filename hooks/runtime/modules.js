// Tessera hook sandbox: CommonJS `require`, evaluated after web.js.
//
// `require(name)` loads, in order: Node's everyday built-ins (with or without
// the `node:` prefix): `crypto` done by the host, `buffer`, `util`, `events`,
// `assert`, `path`, `url`, `querystring`, `string_decoder` from pinned npm
// packages, and webtask's `request` over fetch; then the hook's own npm
// dependencies. Module files come from the host (`__tessera_module`, taken
// off the global object before hook code runs), which reads only the
// packages pinned for this hook version, from the store: there is no
// filesystem here. Modules run once per context and are cached, as in Node.
// `fs`, `child_process`, `net`, `process.env` and the like stay absent, with
// an error that names the module.
(function (global, host) {
  'use strict';

  const moduleHost = global.__tessera_module;
  const cryptoHost = global.__tessera_crypto;
  delete global.__tessera_module;
  delete global.__tessera_crypto;
  const indirectEval = global.eval;
  const parse = JSON.parse;
  const stringify = JSON.stringify;
  const ErrorCtor = Error;

  const BUILTIN_PACKAGES = {
    buffer: 'buffer',
    util: 'util',
    events: 'events',
    assert: 'assert',
    path: 'path-browserify',
    url: 'url',
    querystring: 'querystring-es3',
    string_decoder: 'string_decoder',
    stream: 'stream-browserify',
    zlib: 'browserify-zlib',
  };
  const ABSENT = [
    'fs', 'child_process', 'net', 'tls', 'dgram', 'dns', 'http', 'https', 'http2', 'os',
    'cluster', 'worker_threads', 'vm', 'v8', 'process', 'module', 'inspector', 'repl', 'tty',
    'readline', 'perf_hooks', 'async_hooks',
  ];

  const cache = new Map(); // resolved path -> module
  // What packages see as `process` (hook code sees none): nothing of the
  // host, an empty environment.
  const moduleProcess = Object.freeze({
    env: Object.freeze({}),
    argv: Object.freeze([]),
    platform: 'linux',
    version: 'v22.0.0',
    versions: Object.freeze({ node: '22.0.0' }),
    browser: false,
    nextTick: (fn, ...args) => queueMicrotask(() => fn(...args)),
    emitWarning: () => {},
    cwd: () => '/',
  });
  const builtins = new Map(); // name -> exports

  function notFound(id) {
    const error = new ErrorCtor("Cannot find module '" + id + "'");
    error.code = 'MODULE_NOT_FOUND';
    return error;
  }

  function kind(path) {
    return moduleHost('kind', path);
  }

  function join(base, rel) {
    const parts = base ? base.split('/') : [];
    for (const part of rel.split('/')) {
      if (part === '' || part === '.') {
        continue;
      }
      if (part === '..') {
        parts.pop();
      } else {
        parts.push(part);
      }
    }
    return parts.join('/');
  }

  function dirname(path) {
    const index = path.lastIndexOf('/');
    return index < 0 ? '' : path.slice(0, index);
  }

  function readJson(path) {
    const text = moduleHost('read', path);
    return text === null ? null : parse(text);
  }

  function asFile(path) {
    for (const suffix of ['', '.js', '.json', '.cjs']) {
      if (kind(path + suffix) === 'file') {
        return path + suffix;
      }
    }
    return null;
  }

  // Conditional exports are matched as Node does, in the order the package
  // lists them, with the conditions `require`, `node` and `default`; and
  // `browser` when it leads to a `.cjs` file: hooks have fetch but no
  // sockets, so a package's browser build in CommonJS (axios's) is the one
  // that runs here. A `browser` build in another file is usually an ES module.
  const CONDITIONS = ['require', 'node', 'default'];

  function exportTarget(value) {
    if (typeof value === 'string') {
      return value;
    }
    if (Array.isArray(value)) {
      for (const item of value) {
        const found = exportTarget(item);
        if (found) {
          return found;
        }
      }
      return null;
    }
    if (value && typeof value === 'object') {
      for (const condition of Object.keys(value)) {
        if (CONDITIONS.includes(condition)) {
          const found = exportTarget(value[condition]);
          if (found) {
            return found;
          }
        } else if (condition === 'browser') {
          const found = exportTarget(value[condition]);
          if (found && found.endsWith('.cjs')) {
            return found;
          }
        }
      }
    }
    return null;
  }

  function asDirectory(path, subpath) {
    const manifest = kind(path + '/package.json') === 'file' ? readJson(path + '/package.json') : null;
    if (manifest && manifest.exports !== undefined) {
      const exportsField = manifest.exports;
      const key = subpath ? './' + subpath : '.';
      let entry = null;
      if (typeof exportsField === 'string' || Array.isArray(exportsField)) {
        entry = key === '.' ? exportTarget(exportsField) : null;
      } else if (exportsField && typeof exportsField === 'object') {
        const keys = Object.keys(exportsField);
        if (keys.length && keys[0][0] !== '.') {
          entry = key === '.' ? exportTarget(exportsField) : null; // conditions only
        } else if (key in exportsField) {
          entry = exportTarget(exportsField[key]);
        }
      }
      if (entry) {
        const file = asFile(join(path, entry));
        if (file) {
          return file;
        }
      }
      if (!subpath) {
        return null;
      }
    }
    if (subpath) {
      return asFile(join(path, subpath)) || asIndex(join(path, subpath));
    }
    if (manifest && typeof manifest.main === 'string') {
      const main = join(path, manifest.main);
      const file = asFile(main) || asIndex(main);
      if (file) {
        return file;
      }
    }
    return asIndex(path);
  }

  function asIndex(path) {
    for (const index of ['/index.js', '/index.json', '/index.cjs']) {
      if (kind(path + index) === 'file') {
        return path + index;
      }
    }
    return null;
  }

  function resolve(id, fromDir) {
    if (id.startsWith('./') || id.startsWith('../') || id === '.' || id === '..' || id.startsWith('/')) {
      const path = id.startsWith('/') ? join('', id) : join(fromDir, id);
      return asFile(path) || (kind(path) === 'dir' ? asDirectory(path, '') : null);
    }
    const scoped = id.startsWith('@');
    const pieces = id.split('/');
    const name = scoped ? pieces.slice(0, 2).join('/') : pieces[0];
    const subpath = pieces.slice(scoped ? 2 : 1).join('/');
    const root = fromDir.startsWith('builtin:') ? 'builtin:' : '';
    let directory = fromDir;
    for (;;) {
      const candidate = (directory === root ? root : directory + '/') + 'node_modules/' + name;
      if (kind(candidate) === 'dir') {
        const found = asDirectory(candidate, subpath);
        if (found) {
          return found;
        }
      }
      if (directory === root) {
        return null;
      }
      const index = directory.lastIndexOf('/node_modules/');
      directory = index < 0 ? root : directory.slice(0, index);
      if (directory === root + 'node_modules') {
        directory = root;
      }
    }
  }

  function load(path) {
    const cached = cache.get(path);
    if (cached !== undefined) {
      return cached.exports;
    }
    const source = moduleHost('read', path);
    if (source === null) {
      throw notFound(path);
    }
    const module = { exports: {}, id: path, filename: path, loaded: false, children: [] };
    cache.set(path, module);
    try {
      if (path.endsWith('.json')) {
        module.exports = parse(source);
      } else {
        const wrapper = indirectEval(
          '(function (exports, require, module, __filename, __dirname, process) {' + source + '\n})',
        );
        wrapper.call(
          module.exports,
          module.exports,
          makeRequire(dirname(path)),
          module,
          path,
          dirname(path),
          moduleProcess,
        );
      }
    } catch (error) {
      cache.delete(path);
      throw error;
    }
    module.loaded = true;
    return module.exports;
  }

  function builtin(name) {
    if (builtins.has(name)) {
      return builtins.get(name);
    }
    let exported;
    if (name === 'crypto') {
      exported = makeCrypto();
    } else if (name === 'request') {
      exported = makeRequest();
    } else {
      if (name !== 'util' && name !== 'buffer') {
        // The `inherits` package requires util, and util requires inherits:
        // with util loaded first that cycle ends as in Node (whose util is
        // native); entered from elsewhere, util.inherits would stay empty.
        builtin('util');
      }
      const file = resolve(BUILTIN_PACKAGES[name], 'builtin:');
      if (file === null) {
        throw new ErrorCtor(
          "The built-in module '" + name + "' is not installed on this server " +
            '(python -m hooks.runtime.npm install-builtins)',
        );
      }
      exported = load(file);
      if (name === 'url') {
        exported = { ...exported, URL: global.URL, URLSearchParams: global.URLSearchParams };
      }
    }
    builtins.set(name, exported);
    return exported;
  }

  function absentError(id) {
    return new ErrorCtor(
      "The module '" + id + "' is not available in hooks (no filesystem, processes or raw sockets)",
    );
  }

  const absentModules = new Map();
  function absentModule(id) {
    if (!absentModules.has(id)) {
      absentModules.set(
        id,
        new Proxy(Object.freeze({}), {
          get(target, property) {
            if (typeof property === 'symbol' || property === '__esModule' || property === 'then') {
              return undefined;
            }
            throw absentError(id);
          },
        }),
      );
    }
    return absentModules.get(id);
  }

  function makeRequire(fromDir) {
    function require(id) {
      if (typeof id !== 'string' || id === '') {
        throw new TypeError('The "id" argument must be a non-empty string');
      }
      const bare = id.startsWith('node:') ? id.slice(5) : id;
      if (bare === 'crypto' || bare in BUILTIN_PACKAGES || (bare === 'request' && !id.startsWith('node:'))) {
        if (bare !== 'request' || resolve('request', fromDir) === null) {
          return builtin(bare);
        }
      }
      if (ABSENT.includes(bare.split('/')[0]) || id.startsWith('node:')) {
        if (fromDir.includes('node_modules')) {
          // A package may load such a module for a feature the hook never
          // uses (jose's remote key sets load http): it loads, and touching
          // it fails naming the module, as bundlers do for browser builds.
          return absentModule(id);
        }
        throw absentError(id);
      }
      const file = resolve(id, fromDir);
      if (file === null) {
        throw notFound(id);
      }
      return load(file);
    }
    require.resolve = (id) => {
      const file = resolve(id, fromDir);
      if (file === null) {
        throw notFound(id);
      }
      return file;
    };
    require.cache = {};
    return require;
  }

  // ---- crypto, done by the host ------------------------------------------------

  function makeCrypto() {
    const { Buffer } = builtin('buffer');
    const secretBytes = new WeakMap(); // KeyObject -> its bytes
    const toBytes = (data, encoding) => {
      if (secretBytes.has(data)) {
        return secretBytes.get(data);
      }
      return Buffer.isBuffer(data) || data instanceof Uint8Array
        ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
        : Buffer.from(String(data), encoding || 'utf8');
    };
    // Secret keys only: HMAC is what hooks sign with (jsonwebtoken's HS*
    // algorithms go through createSecretKey). Asymmetric keys are refused
    // with an error that says so.
    class KeyObject {
      constructor() {
        throw new TypeError('Illegal constructor');
      }
      get type() {
        return 'secret';
      }
      get symmetricKeySize() {
        return secretBytes.get(this).length;
      }
      export(options) {
        const bytes = Buffer.from(secretBytes.get(this));
        if (options && options.format === 'jwk') {
          return { kty: 'oct', k: bytes.toString('base64url') };
        }
        return bytes;
      }
      equals(other) {
        return secretBytes.has(other) && secretBytes.get(this).equals(secretBytes.get(other));
      }
    }
    const createSecretKey = (key, encoding) => {
      const bytes = Buffer.from(toBytes(typeof key === 'string' ? key : key, encoding));
      const object = Object.create(KeyObject.prototype);
      secretBytes.set(object, bytes);
      return object;
    };
    // What packages reach for but hooks do not have: a function (packages
    // promisify some at load) whose call says so.
    const unsupported = (name) =>
      function () {
        throw new ErrorCtor(
          'crypto.' + name + ' is not supported in hooks (asymmetric keys, ciphers and key ' +
            'derivation are not available): sign and verify with HMAC (HS256)',
        );
      };
    const call = (op, args) => {
      const answer = parse(cryptoHost(op, stringify(args)));
      if (answer.error) {
        throw new (answer.type === 'TypeError' ? TypeError : ErrorCtor)(answer.error);
      }
      return answer.value;
    };
    const output = (b64, encoding) => {
      const bytes = Buffer.from(b64, 'base64');
      return encoding ? bytes.toString(encoding) : bytes;
    };
    class Hash {
      #algorithm;
      #key;
      #chunks = [];
      #done = false;
      constructor(algorithm, key) {
        this.#algorithm = String(algorithm);
        this.#key = key === undefined ? null : toBytes(key).toString('base64');
        call('check', { algorithm: this.#algorithm });
      }
      update(data, encoding) {
        if (this.#done) {
          throw new ErrorCtor('Digest already called');
        }
        this.#chunks.push(toBytes(data, encoding).toString('base64'));
        return this;
      }
      digest(encoding) {
        if (this.#done) {
          throw new ErrorCtor('Digest already called');
        }
        this.#done = true;
        const b64 = call(this.#key === null ? 'hash' : 'hmac', {
          algorithm: this.#algorithm,
          key: this.#key,
          chunks: this.#chunks,
        });
        return output(b64, encoding);
      }
    }
    return {
      createHash: (algorithm) => new Hash(algorithm),
      createHmac: (algorithm, key) => new Hash(algorithm, key),
      randomBytes(size, callback) {
        const bytes = output(call('random', { size: Number(size) }));
        if (typeof callback === 'function') {
          setTimeout(() => callback(null, bytes), 1);
          return undefined;
        }
        return bytes;
      },
      randomFillSync(buffer, offset, size) {
        const view = new Uint8Array(buffer.buffer || buffer, buffer.byteOffset || 0, buffer.byteLength);
        const start = offset === undefined ? 0 : Number(offset);
        const count = size === undefined ? view.length - start : Number(size);
        view.set(output(call('random', { size: count })), start);
        return buffer;
      },
      randomUUID: () => call('uuid', {}),
      timingSafeEqual(a, b) {
        if (a.byteLength !== b.byteLength) {
          throw new RangeError('Input buffers must have the same byte length');
        }
        return call('equal', { a: toBytes(a).toString('base64'), b: toBytes(b).toString('base64') });
      },
      getHashes: () => call('hashes', {}),
      KeyObject,
      createSecretKey,
      getCiphers: () => [],
      constants: Object.freeze({}),
      createPrivateKey: unsupported('createPrivateKey'),
      createPublicKey: unsupported('createPublicKey'),
      createSign: unsupported('createSign'),
      createVerify: unsupported('createVerify'),
      sign: unsupported('sign'),
      verify: unsupported('verify'),
      generateKeyPair: unsupported('generateKeyPair'),
      generateKeyPairSync: unsupported('generateKeyPairSync'),
      pbkdf2: unsupported('pbkdf2'),
      pbkdf2Sync: unsupported('pbkdf2Sync'),
      createCipheriv: unsupported('createCipheriv'),
      createDecipheriv: unsupported('createDecipheriv'),
      publicEncrypt: unsupported('publicEncrypt'),
      privateDecrypt: unsupported('privateDecrypt'),
      diffieHellman: unsupported('diffieHellman'),
      webcrypto: undefined,
    };
  }

  // ---- request: webtask's module, over fetch -----------------------------------

  function makeRequest() {
    const { Buffer } = builtin('buffer');
    const qs = builtin('querystring');
    function request(uri, options, callback) {
      if (typeof uri === 'object' && uri !== null) {
        callback = options;
        options = uri;
      } else if (typeof options === 'function') {
        callback = options;
        options = { uri };
      } else {
        options = { ...(options || {}), uri };
      }
      options = { ...options };
      const done = typeof callback === 'function' ? callback : () => {};
      let url = options.uri || options.url;
      if (url && typeof url === 'object' && url.href) {
        url = url.href;
      }
      if (options.baseUrl) {
        url = String(options.baseUrl).replace(/\/$/, '') + '/' + String(url).replace(/^\//, '');
      }
      if (options.qs) {
        const query = qs.stringify(options.qs);
        if (query) {
          url += (String(url).includes('?') ? '&' : '?') + query;
        }
      }
      const headers = new Headers(options.headers || {});
      let body = options.body;
      if (options.form !== undefined) {
        body = typeof options.form === 'string' ? options.form : qs.stringify(options.form);
        headers.set('content-type', 'application/x-www-form-urlencoded');
      } else if (options.json !== undefined && options.json !== false) {
        if (options.json !== true) {
          body = options.json;
        }
        if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
          body = stringify(body);
          if (!headers.has('content-type')) {
            headers.set('content-type', 'application/json');
          }
        }
        if (!headers.has('accept')) {
          headers.set('accept', 'application/json');
        }
      }
      if (options.auth) {
        const user = options.auth.user || options.auth.username || '';
        const pass = options.auth.pass || options.auth.password || '';
        if (options.auth.bearer) {
          headers.set('authorization', 'Bearer ' + options.auth.bearer);
        } else {
          headers.set('authorization', 'Basic ' + Buffer.from(user + ':' + pass).toString('base64'));
        }
      }
      const init = {
        method: String(options.method || 'GET').toUpperCase(),
        headers,
        redirect: options.followRedirect === false ? 'manual' : 'follow',
      };
      if (body !== undefined && body !== null) {
        init.body = Buffer.isBuffer(body) ? new Uint8Array(body) : body;
      }
      if (options.timeout) {
        init.signal = AbortSignal.timeout(Number(options.timeout));
      }
      fetch(url, init).then(
        async (response) => {
          const bytes = Buffer.from(await response.arrayBuffer());
          let responseBody = options.encoding === null ? bytes : bytes.toString(options.encoding || 'utf8');
          if (options.json && typeof responseBody === 'string') {
            try {
              responseBody = parse(responseBody);
            } catch (e) {
              // request leaves a body that is not JSON as text
            }
          }
          const headersObject = {};
          response.headers.forEach((value, name) => {
            headersObject[name] = value;
          });
          const incoming = {
            statusCode: response.status,
            statusMessage: response.statusText,
            headers: headersObject,
            body: responseBody,
            request: { uri: { href: response.url }, method: init.method },
          };
          done(null, incoming, responseBody);
        },
        (error) => {
          const failure = new ErrorCtor(error && error.message ? error.message : String(error));
          failure.code = error && error.name === 'TimeoutError' ? 'ETIMEDOUT' : 'ECONNREFUSED';
          done(failure);
        },
      );
      return undefined;
    }
    const verb = (method) => (uri, options, callback) => {
      if (typeof uri === 'object' && uri !== null) {
        return request({ ...uri, method }, options);
      }
      if (typeof options === 'function') {
        return request({ uri, method }, options);
      }
      return request({ ...(options || {}), uri, method }, callback);
    };
    request.get = verb('GET');
    request.post = verb('POST');
    request.put = verb('PUT');
    request.patch = verb('PATCH');
    request.del = verb('DELETE');
    request.delete = verb('DELETE');
    request.head = verb('HEAD');
    request.defaults = (defaults) => {
      const bound = (uri, options, callback) => {
        if (typeof uri === 'object' && uri !== null) {
          return request({ ...defaults, ...uri }, options);
        }
        if (typeof options === 'function') {
          return request({ ...defaults, uri }, options);
        }
        return request({ ...defaults, ...(options || {}), uri }, callback);
      };
      return bound;
    };
    return request;
  }

  const require = makeRequire('');
  Object.defineProperty(global, 'require', {
    value: require,
    writable: true,
    configurable: true,
    enumerable: false,
  });
  // Buffer is a global in Node, and scripts use it without requiring it.
  let bufferClass;
  Object.defineProperty(global, 'Buffer', {
    get() {
      if (bufferClass === undefined) {
        bufferClass = builtin('buffer').Buffer;
      }
      return bufferClass;
    },
    set(value) {
      bufferClass = value;
    },
    configurable: true,
    enumerable: false,
  });
  void host;
});
