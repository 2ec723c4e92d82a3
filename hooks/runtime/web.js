// Tessera hook sandbox: the web platform pieces that go with fetch.
//
// Evaluated in every fresh context right after the prelude (sandbox.js), with
// the prelude's host function, of which it keeps only the `network` bridge: `send(request, settle)` queues a request for
// the host, which performs it under the egress policy (egress.py) and later
// calls `settle(error, response)`; `cancel(id)` forgets one. It installs
// fetch, Headers, Request, Response, AbortController, AbortSignal (with
// timeout and any), DOMException, TextEncoder, TextDecoder, and URL and
// URLSearchParams (parsed by the host, as Node.js does, with Ada). Bodies cross
// to the host as base64 (request) and as text or base64 (response).
(function (global, host) {
  'use strict';

  const network = host.network;
  // The host's WHATWG URL parser (web_host.py); taken off the global object
  // before any hook code runs.
  const urlHost = global.__tessera_url;
  delete global.__tessera_url;

  const TypeErrorCtor = TypeError;
  const RangeErrorCtor = RangeError;
  const PromiseCtor = Promise;
  const Uint8ArrayCtor = Uint8Array;
  const ArrayBufferCtor = ArrayBuffer;
  const StringCtor = String;
  const fromCharCode = String.fromCharCode;
  const isView = ArrayBuffer.isView;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const atob = global.atob;
  const btoa = global.btoa;
  const send = network.send;
  const cancel = network.cancel;
  const setTimer = network.setTimeout;
  const toLowerCase = Function.prototype.call.bind(String.prototype.toLowerCase);
  const toUpperCase = Function.prototype.call.bind(String.prototype.toUpperCase);
  const trim = Function.prototype.call.bind(String.prototype.trim);
  const CHUNK = 0x8000;

  // ---- UTF-8 ---------------------------------------------------------------

  function utf8Encode(text) {
    text = StringCtor(text);
    const out = [];
    for (let i = 0; i < text.length; i++) {
      let code = text.charCodeAt(i);
      if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
        const next = text.charCodeAt(i + 1);
        if (next >= 0xdc00 && next <= 0xdfff) {
          code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
          i++;
        }
      }
      if (code >= 0xd800 && code <= 0xdfff) {
        code = 0xfffd; // a lone surrogate
      }
      if (code < 0x80) {
        out.push(code);
      } else if (code < 0x800) {
        out.push(0xc0 | (code >> 6), 0x80 | (code & 63));
      } else if (code < 0x10000) {
        out.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
      } else {
        out.push(
          0xf0 | (code >> 18),
          0x80 | ((code >> 12) & 63),
          0x80 | ((code >> 6) & 63),
          0x80 | (code & 63),
        );
      }
    }
    return new Uint8ArrayCtor(out);
  }

  function utf8Decode(bytes, fatal) {
    let text = '';
    let units = [];
    const flush = () => {
      text += fromCharCode.apply(null, units);
      units = [];
    };
    const bad = () => {
      if (fatal) {
        throw new TypeErrorCtor('The encoded data was not valid for encoding utf-8');
      }
      units.push(0xfffd);
    };
    let i = 0;
    if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
      i = 3; // a byte order mark
    }
    for (; i < bytes.length; i++) {
      const b = bytes[i];
      let need = 0;
      let code = 0;
      let min = 0;
      if (b < 0x80) {
        units.push(b);
      } else if (b >= 0xc2 && b <= 0xdf) {
        need = 1;
        code = b & 31;
        min = 0x80;
      } else if (b >= 0xe0 && b <= 0xef) {
        need = 2;
        code = b & 15;
        min = 0x800;
      } else if (b >= 0xf0 && b <= 0xf4) {
        need = 3;
        code = b & 7;
        min = 0x10000;
      } else {
        bad();
      }
      if (need) {
        let j = 1;
        for (; j <= need; j++) {
          const c = bytes[i + j];
          if (c === undefined || (c & 0xc0) !== 0x80) {
            break;
          }
          code = (code << 6) | (c & 63);
        }
        if (j <= need || code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
          bad();
          i += j - 1;
        } else {
          i += need;
          if (code >= 0x10000) {
            code -= 0x10000;
            units.push(0xd800 + (code >> 10), 0xdc00 + (code & 1023));
          } else {
            units.push(code);
          }
        }
      }
      if (units.length >= CHUNK) {
        flush();
      }
    }
    flush();
    return text;
  }

  function bytesToBase64(bytes) {
    let binary = '';
    for (let i = 0; i < bytes.length; i += CHUNK) {
      binary += fromCharCode.apply(null, bytes.subarray(i, i + CHUNK));
    }
    return btoa(binary);
  }

  function base64ToBytes(text) {
    const binary = atob(text);
    const bytes = new Uint8ArrayCtor(binary.length);
    for (let i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes;
  }

  class TextEncoder {
    get encoding() {
      return 'utf-8';
    }
    encode(input = '') {
      return utf8Encode(input);
    }
  }

  class TextDecoder {
    #fatal;
    constructor(label = 'utf-8', options = {}) {
      const name = toLowerCase(trim(StringCtor(label)));
      if (name !== 'utf-8' && name !== 'utf8' && name !== 'unicode-1-1-utf-8') {
        throw new RangeErrorCtor('TextDecoder: only utf-8 is supported, not ' + label);
      }
      this.#fatal = Boolean(options && options.fatal);
    }
    get encoding() {
      return 'utf-8';
    }
    get fatal() {
      return this.#fatal;
    }
    decode(input) {
      if (input === undefined) {
        return '';
      }
      return utf8Decode(asBytes(input), this.#fatal);
    }
  }

  function asBytes(input) {
    if (input instanceof ArrayBufferCtor) {
      return new Uint8ArrayCtor(input);
    }
    if (isView(input)) {
      return new Uint8ArrayCtor(input.buffer, input.byteOffset, input.byteLength);
    }
    throw new TypeErrorCtor('The "input" argument must be an ArrayBuffer or an ArrayBufferView');
  }

  // ---- DOMException, AbortSignal, AbortController --------------------------

  // QuickJS has DOMException; a stand-in only if an engine lacks it.
  const DOMException =
    global.DOMException ||
    class DOMException extends Error {
      constructor(message = '', name = 'Error') {
        super(message);
        this.name = StringCtor(name);
      }
    };

  class AbortSignal {
    #aborted = false;
    #reason = undefined;
    #listeners = [];
    onabort = null;
    constructor(key) {
      if (key !== SIGNAL_KEY) {
        throw new TypeErrorCtor('Illegal constructor');
      }
    }
    get aborted() {
      return this.#aborted;
    }
    get reason() {
      return this.#reason;
    }
    throwIfAborted() {
      if (this.#aborted) {
        throw this.#reason;
      }
    }
    addEventListener(type, listener) {
      if (type === 'abort' && typeof listener === 'function') {
        this.#listeners.push(listener);
      }
    }
    removeEventListener(type, listener) {
      if (type === 'abort') {
        this.#listeners = this.#listeners.filter((l) => l !== listener);
      }
    }
    static abort(reason) {
      const signal = new AbortSignal(SIGNAL_KEY);
      signal._abort(reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason);
      return signal;
    }
    static timeout(ms) {
      const signal = new AbortSignal(SIGNAL_KEY);
      setTimer(() => {
        signal._abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
      }, Math.max(1, Number(ms) || 0));
      return signal;
    }
    static any(signals) {
      const signal = new AbortSignal(SIGNAL_KEY);
      for (const each of signals) {
        if (each.aborted) {
          signal._abort(each.reason);
          return signal;
        }
      }
      for (const each of signals) {
        each.addEventListener('abort', () => signal._abort(each.reason));
      }
      return signal;
    }
    _abort(reason) {
      if (this.#aborted) {
        return;
      }
      this.#aborted = true;
      this.#reason = reason;
      const event = { type: 'abort', target: this };
      if (typeof this.onabort === 'function') {
        this.onabort(event);
      }
      for (const listener of this.#listeners) {
        listener.call(this, event);
      }
    }
  }
  const SIGNAL_KEY = {};

  class AbortController {
    #signal = new AbortSignal(SIGNAL_KEY);
    get signal() {
      return this.#signal;
    }
    abort(reason) {
      this.#signal._abort(
        reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason,
      );
    }
  }

  // ---- Headers ---------------------------------------------------------------

  const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

  function headerName(name) {
    name = StringCtor(name);
    if (!HEADER_NAME.test(name)) {
      throw new TypeErrorCtor('Invalid header name: ' + stringify(name));
    }
    return toLowerCase(name);
  }

  function headerValue(value) {
    value = trim(StringCtor(value));
    if (/[\0\r\n]/.test(value)) {
      throw new TypeErrorCtor('Invalid header value');
    }
    return value;
  }

  class Headers {
    #list = []; // [lowercased name, value] in order
    constructor(init) {
      if (init === undefined || init === null) {
        return;
      }
      if (init instanceof Headers) {
        for (const [name, value] of init.#list) {
          this.#list.push([name, value]);
        }
      } else if (typeof init === 'object' && typeof init[Symbol.iterator] === 'function') {
        for (const pair of init) {
          const entry = Array.from(pair);
          if (entry.length !== 2) {
            throw new TypeErrorCtor('Each header pair must have exactly two items');
          }
          this.append(entry[0], entry[1]);
        }
      } else if (typeof init === 'object') {
        for (const name of Object.keys(init)) {
          this.append(name, init[name]);
        }
      } else {
        throw new TypeErrorCtor('Headers: init must be an object, an iterable or Headers');
      }
    }
    append(name, value) {
      this.#list.push([headerName(name), headerValue(value)]);
    }
    set(name, value) {
      const key = headerName(name);
      this.#list = this.#list.filter(([n]) => n !== key);
      this.#list.push([key, headerValue(value)]);
    }
    get(name) {
      const key = headerName(name);
      const values = this.#list.filter(([n]) => n === key).map(([, v]) => v);
      return values.length ? values.join(', ') : null;
    }
    getSetCookie() {
      return this.#list.filter(([n]) => n === 'set-cookie').map(([, v]) => v);
    }
    has(name) {
      const key = headerName(name);
      return this.#list.some(([n]) => n === key);
    }
    delete(name) {
      const key = headerName(name);
      this.#list = this.#list.filter(([n]) => n !== key);
    }
    forEach(callback, thisArg) {
      for (const [name, value] of this.entries()) {
        callback.call(thisArg, value, name, this);
      }
    }
    *entries() {
      const names = [...new Set(this.#list.map(([n]) => n))].sort();
      for (const name of names) {
        if (name === 'set-cookie') {
          for (const value of this.getSetCookie()) {
            yield [name, value];
          }
        } else {
          yield [name, this.get(name)];
        }
      }
    }
    *keys() {
      for (const [name] of this.entries()) {
        yield name;
      }
    }
    *values() {
      for (const [, value] of this.entries()) {
        yield value;
      }
    }
    [Symbol.iterator]() {
      return this.entries();
    }
    _pairs() {
      return this.#list.map(([n, v]) => [n, v]);
    }
    // Pairs the host already lowercased and checked (a response's head).
    static _adopt(pairs) {
      const made = new Headers();
      made.#list = pairs;
      return made;
    }
  }

  // ---- Blob, FormData -----------------------------------------------------------

  function concatBytes(chunks) {
    let size = 0;
    for (const chunk of chunks) {
      size += chunk.length;
    }
    const out = new Uint8ArrayCtor(size);
    let at = 0;
    for (const chunk of chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  class Blob {
    #bytes;
    #type;
    constructor(parts = [], options = {}) {
      const chunks = [];
      for (const part of parts) {
        if (part instanceof Blob) {
          chunks.push(part._bytes());
        } else if (part instanceof ArrayBufferCtor || isView(part)) {
          chunks.push(new Uint8ArrayCtor(asBytes(part)));
        } else {
          chunks.push(utf8Encode(StringCtor(part)));
        }
      }
      this.#bytes = concatBytes(chunks);
      const type = options && options.type !== undefined ? StringCtor(options.type) : '';
      this.#type = /^[\x20-\x7e]*$/.test(type) ? type.toLowerCase() : '';
    }
    get size() {
      return this.#bytes.length;
    }
    get type() {
      return this.#type;
    }
    _bytes() {
      return this.#bytes;
    }
    slice(start = 0, end = this.#bytes.length, type = '') {
      return new Blob([this.#bytes.slice(start, end)], { type });
    }
    text() {
      return PromiseCtor.resolve(utf8Decode(this.#bytes, false));
    }
    arrayBuffer() {
      return PromiseCtor.resolve(this.#bytes.slice().buffer);
    }
    bytes() {
      return PromiseCtor.resolve(this.#bytes.slice());
    }
    get [Symbol.toStringTag]() {
      return 'Blob';
    }
  }

  class File extends Blob {
    #name;
    #lastModified;
    constructor(parts, name, options = {}) {
      super(parts, options);
      this.#name = StringCtor(name);
      this.#lastModified = options && options.lastModified !== undefined ? Number(options.lastModified) : Date.now();
    }
    get name() {
      return this.#name;
    }
    get lastModified() {
      return this.#lastModified;
    }
    get [Symbol.toStringTag]() {
      return 'File';
    }
  }

  class FormData {
    #list = [];
    #entry(name, value, filename) {
      if (value instanceof Blob) {
        const file =
          value instanceof File && filename === undefined
            ? value
            : new File([value], filename !== undefined ? filename : value instanceof File ? value.name : 'blob', {
                type: value.type,
              });
        return [StringCtor(name), file];
      }
      return [StringCtor(name), StringCtor(value)];
    }
    append(name, value, filename) {
      this.#list.push(this.#entry(name, value, filename));
    }
    set(name, value, filename) {
      const entry = this.#entry(name, value, filename);
      const index = this.#list.findIndex(([n]) => n === entry[0]);
      this.#list = this.#list.filter(([n], i) => n !== entry[0] || i === index);
      if (index < 0) {
        this.#list.push(entry);
      } else {
        this.#list[this.#list.findIndex(([n]) => n === entry[0])] = entry;
      }
    }
    get(name) {
      const found = this.#list.find(([n]) => n === StringCtor(name));
      return found ? found[1] : null;
    }
    getAll(name) {
      return this.#list.filter(([n]) => n === StringCtor(name)).map(([, v]) => v);
    }
    has(name) {
      return this.#list.some(([n]) => n === StringCtor(name));
    }
    delete(name) {
      this.#list = this.#list.filter(([n]) => n !== StringCtor(name));
    }
    forEach(callback, thisArg) {
      for (const [name, value] of this.#list) {
        callback.call(thisArg, value, name, this);
      }
    }
    *entries() {
      for (const [name, value] of this.#list) {
        yield [name, value];
      }
    }
    *keys() {
      for (const [name] of this.#list) {
        yield name;
      }
    }
    *values() {
      for (const [, value] of this.#list) {
        yield value;
      }
    }
    [Symbol.iterator]() {
      return this.entries();
    }
    get [Symbol.toStringTag]() {
      return 'FormData';
    }
  }

  // multipart/form-data, as browsers and Node's fetch send a FormData body.
  function multipart(form) {
    const boundary = '----TesseraFormBoundary' + Math.random().toString(16).slice(2) + Date.now().toString(16);
    const escape = (text) => text.replace(/\r\n|\r|\n/g, '\r\n').replace(/"/g, '%22');
    const chunks = [];
    for (const [name, value] of form) {
      let head = '--' + boundary + '\r\nContent-Disposition: form-data; name="' + escape(name) + '"';
      if (value instanceof File) {
        head += '; filename="' + escape(value.name) + '"\r\nContent-Type: ' + (value.type || 'application/octet-stream');
        chunks.push(utf8Encode(head + '\r\n\r\n'), value._bytes(), utf8Encode('\r\n'));
      } else {
        chunks.push(utf8Encode(head + '\r\n\r\n' + value.replace(/\r\n|\r|\n/g, '\r\n') + '\r\n'));
      }
    }
    chunks.push(utf8Encode('--' + boundary + '--\r\n'));
    return { boundary, bytes: concatBytes(chunks) };
  }

  // ---- bodies ----------------------------------------------------------------

  // A body is kept as bytes, or as text when it came as text.
  function extractBody(body, headers) {
    if (body === undefined || body === null) {
      return null;
    }
    if (typeof body === 'string') {
      if (!headers.has('content-type')) {
        headers.set('content-type', 'text/plain;charset=UTF-8');
      }
      return { text: body };
    }
    if (body instanceof ArrayBufferCtor || isView(body)) {
      return { bytes: new Uint8ArrayCtor(asBytes(body)) };
    }
    if (body instanceof Blob) {
      if (!headers.has('content-type') && body.type) {
        headers.set('content-type', body.type);
      }
      return { bytes: body._bytes() };
    }
    if (body instanceof FormData) {
      const encoded = multipart(body);
      headers.set('content-type', 'multipart/form-data; boundary=' + encoded.boundary);
      return { bytes: encoded.bytes };
    }
    if (body instanceof URLSearchParams) {
      if (!headers.has('content-type')) {
        headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
      }
      return { text: StringCtor(body) };
    }
    if (!headers.has('content-type')) {
      headers.set('content-type', 'text/plain;charset=UTF-8');
    }
    return { text: StringCtor(body) };
  }

  function bodyText(body) {
    if (body === null) {
      return '';
    }
    return body.text !== undefined ? body.text : utf8Decode(body.bytes, false);
  }

  function bodyBytes(body) {
    if (body === null) {
      return new Uint8ArrayCtor(0);
    }
    return body.bytes !== undefined ? body.bytes : utf8Encode(body.text);
  }

  class Body {
    #body;
    #used = false;
    _setBody(body) {
      this.#body = body;
    }
    _peekBody() {
      return this.#body;
    }
    get bodyUsed() {
      return this.#used;
    }
    #take() {
      if (this.#used) {
        return PromiseCtor.reject(new TypeErrorCtor('Body has already been consumed.'));
      }
      this.#used = true;
      return PromiseCtor.resolve(this.#body);
    }
    text() {
      return this.#take().then(bodyText);
    }
    json() {
      return this.#take().then((body) => parse(bodyText(body)));
    }
    arrayBuffer() {
      return this.#take().then((body) => {
        const bytes = bodyBytes(body);
        return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      });
    }
    bytes() {
      return this.#take().then((body) => new Uint8ArrayCtor(bodyBytes(body)));
    }
  }

  // ---- Request, Response -------------------------------------------------------

  const METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH'];

  function urlText(input) {
    if (input !== null && typeof input === 'object' && typeof input.href === 'string') {
      return input.href;
    }
    return StringCtor(input);
  }

  class Request extends Body {
    #url;
    #method;
    #headers;
    #signal;
    #redirect;
    constructor(input, init = {}) {
      super();
      init = init || {};
      const base = input instanceof Request ? input : null;
      this.#url = base ? base.url : urlText(input);
      let method = init.method !== undefined ? StringCtor(init.method) : base ? base.method : 'GET';
      if (METHODS.includes(toUpperCase(method))) {
        method = toUpperCase(method);
      }
      if (!HEADER_NAME.test(method) || ['CONNECT', 'TRACE', 'TRACK'].includes(toUpperCase(method))) {
        throw new TypeErrorCtor("'" + method + "' is not a valid HTTP method.");
      }
      this.#method = method;
      this.#headers = new Headers(init.headers !== undefined ? init.headers : base ? base.headers : undefined);
      this.#signal = init.signal !== undefined ? init.signal : base ? base.signal : null;
      this.#redirect = init.redirect !== undefined ? StringCtor(init.redirect) : base ? base.redirect : 'follow';
      if (!['follow', 'manual', 'error'].includes(this.#redirect)) {
        throw new TypeErrorCtor('Invalid redirect mode: ' + this.#redirect);
      }
      const body = init.body !== undefined ? extractBody(init.body, this.#headers) : base ? base._peekBody() : null;
      if (body !== null && (method === 'GET' || method === 'HEAD')) {
        throw new TypeErrorCtor('Request with GET/HEAD method cannot have body.');
      }
      this._setBody(body);
    }
    get url() {
      return this.#url;
    }
    get method() {
      return this.#method;
    }
    get headers() {
      return this.#headers;
    }
    get signal() {
      return this.#signal;
    }
    get redirect() {
      return this.#redirect;
    }
    clone() {
      return new Request(this);
    }
  }

  class Response extends Body {
    #status;
    #statusText;
    #headers;
    #url;
    #redirected;
    #type;
    constructor(body = null, init = {}) {
      super();
      init = init || {};
      const status = init.status !== undefined ? Number(init.status) : 200;
      if (!(status >= 200 && status <= 599) || status !== Math.floor(status)) {
        throw new RangeErrorCtor('init["status"] must be in the range of 200 to 599, inclusive.');
      }
      this.#status = status;
      this.#statusText = init.statusText !== undefined ? StringCtor(init.statusText) : '';
      this.#headers = new Headers(init.headers);
      this.#url = '';
      this.#redirected = false;
      this.#type = 'default';
      this._setBody(extractBody(body, this.#headers));
    }
    static _fromHost(response) {
      const made = new Response(null, { status: 200 });
      made.#status = response.status;
      made.#statusText = response.statusText;
      made.#headers = Headers._adopt(response.headers);
      made.#url = response.url;
      made.#redirected = response.redirected;
      made.#type = 'basic';
      made._setBody(
        response.text !== undefined ? { text: response.text } : { bytes: base64ToBytes(response.body64) },
      );
      return made;
    }
    static json(data, init = {}) {
      const headers = new Headers(init && init.headers);
      if (!headers.has('content-type')) {
        headers.set('content-type', 'application/json');
      }
      return new Response(stringify(data), { ...init, headers });
    }
    static error() {
      const made = new Response(null, { status: 200 });
      made.#status = 0;
      made.#type = 'error';
      return made;
    }
    static redirect(url, status = 302) {
      return new Response(null, { status, headers: { location: urlText(url) } });
    }
    get status() {
      return this.#status;
    }
    get statusText() {
      return this.#statusText;
    }
    get ok() {
      return this.#status >= 200 && this.#status <= 299;
    }
    get headers() {
      return this.#headers;
    }
    get url() {
      return this.#url;
    }
    get redirected() {
      return this.#redirected;
    }
    get type() {
      return this.#type;
    }
    clone() {
      const copy = Response._fromHost({
        status: this.#status,
        statusText: this.#statusText,
        headers: this.#headers._pairs(),
        url: this.#url,
        redirected: this.#redirected,
        body64: bytesToBase64(bodyBytes(this._peekBody())),
      });
      return copy;
    }
  }

  // ---- URL, URLSearchParams ----------------------------------------------------

  const PAIRS = Symbol('pairs');
  const OWNER = Symbol('owner');

  class URLSearchParams {
    constructor(init = '') {
      this[PAIRS] = [];
      this[OWNER] = null;
      if (init instanceof URLSearchParams) {
        this[PAIRS] = init[PAIRS].map(([k, v]) => [k, v]);
      } else if (init !== null && typeof init === 'object' && typeof init[Symbol.iterator] === 'function') {
        for (const pair of init) {
          const entry = Array.from(pair);
          if (entry.length !== 2) {
            throw new TypeErrorCtor('Each query pair must be an iterable [name, value] tuple');
          }
          this[PAIRS].push([StringCtor(entry[0]), StringCtor(entry[1])]);
        }
      } else if (init !== null && typeof init === 'object') {
        for (const key of Object.keys(init)) {
          this[PAIRS].push([key, StringCtor(init[key])]);
        }
      } else {
        this[PAIRS] = parse(urlHost('params', StringCtor(init), null)) || [];
      }
    }
    get size() {
      return this[PAIRS].length;
    }
    append(name, value) {
      this[PAIRS].push([StringCtor(name), StringCtor(value)]);
      this._update();
    }
    delete(name, value) {
      name = StringCtor(name);
      this[PAIRS] = this[PAIRS].filter(
        ([k, v]) => k !== name || (value !== undefined && v !== StringCtor(value)),
      );
      this._update();
    }
    get(name) {
      const found = this[PAIRS].find(([k]) => k === StringCtor(name));
      return found ? found[1] : null;
    }
    getAll(name) {
      return this[PAIRS].filter(([k]) => k === StringCtor(name)).map(([, v]) => v);
    }
    has(name, value) {
      name = StringCtor(name);
      return this[PAIRS].some(([k, v]) => k === name && (value === undefined || v === StringCtor(value)));
    }
    set(name, value) {
      name = StringCtor(name);
      const index = this[PAIRS].findIndex(([k]) => k === name);
      if (index < 0) {
        this[PAIRS].push([name, StringCtor(value)]);
      } else {
        this[PAIRS][index] = [name, StringCtor(value)];
        this[PAIRS] = this[PAIRS].filter(([k], i) => k !== name || i === index);
      }
      this._update();
    }
    sort() {
      this[PAIRS] = this[PAIRS]
        .map((pair, i) => [pair, i])
        .sort((a, b) => (a[0][0] < b[0][0] ? -1 : a[0][0] > b[0][0] ? 1 : a[1] - b[1]))
        .map(([pair]) => pair);
      this._update();
    }
    forEach(callback, thisArg) {
      for (const [k, v] of this[PAIRS]) {
        callback.call(thisArg, v, k, this);
      }
    }
    *entries() {
      for (const [k, v] of this[PAIRS]) {
        yield [k, v];
      }
    }
    *keys() {
      for (const [k] of this[PAIRS]) {
        yield k;
      }
    }
    *values() {
      for (const [, v] of this[PAIRS]) {
        yield v;
      }
    }
    [Symbol.iterator]() {
      return this.entries();
    }
    toString() {
      return this[PAIRS].length ? parse(urlHost('serialize', stringify(this[PAIRS]), null)) : '';
    }
    _update() {
      if (this[OWNER] !== null) {
        this[OWNER]._setSearch(this.toString());
      }
    }
  }

  const URL_PARTS = ['protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname', 'search', 'hash'];

  class URL {
    #parts;
    #params;
    constructor(input, base) {
      const parts = parse(
        urlHost('parse', urlText(input), base === undefined ? null : urlText(base)),
      );
      if (parts === null) {
        throw new TypeErrorCtor('Invalid URL: ' + StringCtor(input));
      }
      this.#parts = parts;
      this.#params = new URLSearchParams(parts.search);
      this.#params[OWNER] = this;
    }
    static canParse(input, base) {
      return parse(urlHost('parse', urlText(input), base === undefined ? null : urlText(base))) !== null;
    }
    get href() {
      return this.#parts.href;
    }
    set href(value) {
      const parts = parse(urlHost('parse', StringCtor(value), null));
      if (parts === null) {
        throw new TypeErrorCtor('Invalid URL: ' + StringCtor(value));
      }
      this.#parts = parts;
      this.#params[PAIRS] = new URLSearchParams(parts.search)[PAIRS];
    }
    get origin() {
      return this.#parts.origin;
    }
    get searchParams() {
      return this.#params;
    }
    toString() {
      return this.#parts.href;
    }
    toJSON() {
      return this.#parts.href;
    }
    _setSearch(search) {
      this.#set('search', search);
    }
    #set(part, value) {
      const parts = parse(urlHost('set', this.#parts.href, stringify([part, StringCtor(value)])));
      if (parts !== null) {
        this.#parts = parts;
      }
      if (part === 'search') {
        this.#params[PAIRS] = new URLSearchParams(this.#parts.search)[PAIRS];
      }
    }
    static _define() {
      for (const part of URL_PARTS) {
        Object.defineProperty(URL.prototype, part, {
          get() {
            return this.#parts[part];
          },
          set(value) {
            this.#set(part, value);
          },
          configurable: true,
        });
      }
    }
  }
  URL._define();

  function fetch(input, init) {
    return new PromiseCtor((resolve, reject) => {
      const request = new Request(input, init);
      const signal = request.signal;
      if (signal && signal.aborted) {
        reject(signal.reason);
        return;
      }
      const body = request._peekBody();
      let id = 0;
      const onAbort = () => {
        cancel(id);
        reject(signal.reason);
      };
      id = send(
        {
          method: request.method,
          url: request.url,
          headers: request.headers._pairs(),
          body64: body === null ? null : bytesToBase64(bodyBytes(body)),
          redirect: request.redirect,
        },
        (error, response) => {
          if (signal) {
            signal.removeEventListener('abort', onAbort);
          }
          if (error) {
            reject(error);
          } else {
            resolve(Response._fromHost(response));
          }
        },
      );
      if (signal) {
        signal.addEventListener('abort', onAbort);
      }
    });
  }

  const globals = {
    fetch,
    Headers,
    Request,
    Response,
    AbortController,
    AbortSignal,
    DOMException,
    TextEncoder,
    TextDecoder,
    URL,
    URLSearchParams,
    Blob,
    File,
    FormData,
  };
  for (const name of Object.keys(globals)) {
    Object.defineProperty(global, name, {
      value: globals[name],
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }
});
