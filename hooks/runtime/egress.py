"""Where a hook's ``fetch`` may go, and the request itself, done by the host.

The policy is checked on the address actually connected to: the host name is
resolved here, every address is checked, and the connection goes to a checked
address (TLS still verifies the certificate against the name), so a name that
resolves to a public address for the check and to ``127.0.0.1`` a moment
later gains nothing. Every redirect is a new request, checked again.

By default only ``http``/``https`` on ports 80 and 443 to public unicast
addresses. Never, unless the operator allows it: loopback, private,
link-local (cloud metadata ``169.254.169.254`` included), CGNAT, multicast,
reserved and unspecified addresses, in IPv4, IPv6 and IPv4-mapped forms.
The operator's ``allow`` patterns (``host[:port]``, ``*.domain[:port]`` or a
CIDR ``net[:port]``; port ``*`` for any) let through what is otherwise
refused; ``deny`` patterns refuse what would be allowed; a tenant may list
the only hosts its hooks may call. With a proxy, every request goes through
it and the proxy resolves names: the address checks are then the proxy's.

This module knows nothing of Django: the worker process uses it too.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import ipaddress
import math
import os
import re
import select
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import ada_url

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]
# Entered around each wait of a run's request (the governor lets the run's
# compute gate and slot go there).
Waiting = Callable[[], AbstractContextManager[None]]
# A wait on the run's own request's sockets (fd -> poll events, timeout in
# seconds), made as under ``Waiting``: the ready (fd, events).
SocketWait = Callable[[Mapping[int, int], float], list[tuple[int, int]]]

DEFAULT_PORTS = frozenset({80, 443})
SCHEMES = {"http": 80, "https": 443}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# What a hook may not set: the connection is the host's (Fetch's forbidden
# request headers, less the ones that only concern browsers).
FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "connection",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "proxy-authorization",
        "proxy-connection",
    }
)
_SECRET_KEY = re.compile(
    r"(token|secret|key|password|passwd|pwd|sig|signature|auth|code|cred)", re.I
)
_SECRET_VALUE = re.compile(r"^[A-Za-z0-9_\-+/=.~]{24,}$")
REDACTED = "[redacted]"
USER_AGENT = "Tessera"  # unless the hook sends its own
# RFC 9110: a header name and a method are tokens; no value breaks a line
# (curl sends headers as given: the host checks them, whatever the sandbox did).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BREAKS = re.compile(r"[\r\n\0]")


class EgressRefused(Exception):
    """The policy refuses this request; the message says why (for the hook and the log)."""


class FetchFailed(Exception):
    """The request could not be completed (network, TLS, size, time)."""


@dataclass(frozen=True)
class Pattern:
    """One ``allow``/``deny`` entry: a host name, a ``*.`` suffix or a network, and a port."""

    host: str | None = None
    suffix: str | None = None
    network: IPNetwork | None = None
    port: int | None = None  # None: any port
    text: str = field(default="", compare=False)  # as written

    @classmethod
    def parse(cls, text: str) -> Pattern:
        text = text.strip().lower()
        return dataclasses.replace(cls._parse(text), text=text)

    @classmethod
    def _parse(cls, text: str) -> Pattern:
        if not text:
            raise ValueError("an empty egress pattern")
        port: int | None = None
        target = text
        if text.startswith("["):  # [v6]:port or [v6]
            close = text.find("]")
            if close < 0:
                raise ValueError(f"egress pattern {text!r}: unclosed '['")
            target, rest = text[1:close], text[close + 1 :]
            if rest:
                port = _port(rest.removeprefix(":"), text)
        elif text.count(":") == 1:
            target, port_text = text.split(":")
            port = _port(port_text, text)
        try:
            return cls(network=ipaddress.ip_network(target, strict=False), port=port)
        except ValueError:
            pass
        if target.startswith("*."):
            return cls(suffix=target[1:], port=port)
        if not re.fullmatch(r"[a-z0-9.-]+", target):
            raise ValueError(f"egress pattern {text!r}: not a host, *.domain or network")
        return cls(host=target, port=port)

    def matches(self, host: str, address: Address | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address is not None and _unmapped(address) in self.network
        if self.suffix is not None:
            return host.endswith(self.suffix)
        return host == self.host


def _port(text: str, pattern: str) -> int | None:
    if text == "*":
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"egress pattern {pattern!r}: bad port {text!r}")
    return int(text)


def _unmapped(address: Address) -> Address:
    """An IPv4-mapped IPv6 address as the IPv4 address it names."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def public_unicast(address: Address) -> bool:
    """A global unicast address: not loopback, private, link-local, CGNAT,
    multicast, reserved or unspecified (``is_global`` covers all but
    multicast, in both families)."""
    address = _unmapped(address)
    return address.is_global and not address.is_multicast


def parse_patterns(text: str | Iterable[str]) -> tuple[Pattern, ...]:
    """Comma-separated patterns (or a list of them)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(Pattern.parse(item) for item in items if item.strip())


MAX_TENANT_HOSTS = 100
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")


def parse_tenant_hosts(items: Iterable[str]) -> tuple[Pattern, ...]:
    """A tenant's own list of hosts (``host``, ``*.domain``, an address or
    network, each with an optional ``:port`` or ``:*``), as written in the
    dashboard, the CLI or the Management API; ``ValueError`` naming the
    first entry that is not one, and why. Host names are read as URLs'
    hosts are (``0x7f000001`` is ``127.0.0.1``), so an entry means what a
    hook's URL would."""
    patterns: dict[str, Pattern] = {}
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{item!r} is not a host name")
        pattern = _tenant_pattern(item.strip().lower())
        patterns.setdefault(pattern.text, pattern)
    if len(patterns) > MAX_TENANT_HOSTS:
        raise ValueError(f"at most {MAX_TENANT_HOSTS} hosts")
    return tuple(patterns.values())


def _tenant_pattern(text: str) -> Pattern:
    shown = repr(text[:80])
    if not text:
        raise ValueError("an empty host")
    if len(text) > 260:
        raise ValueError(f"{shown}: longer than a host name can be")
    if not text.isascii() or not text.isprintable() or any(c.isspace() for c in text):
        raise ValueError(
            f"{shown}: spaces, control characters or non-ASCII letters "
            "(write an international name in its xn-- form)"
        )
    cidr = re.fullmatch(r"[0-9a-f.:\[\]]+/[0-9]{1,3}(:[0-9*]+)?", text) is not None
    if any(mark in text for mark in ("://", "@", "?", "#", "\\", ",")) or (
        "/" in text and not cidr
    ):
        raise ValueError(f"{shown}: a host, not a URL (no scheme, path, user or comma)")
    if text in ("*", "*.") or text.startswith(("*:", "*.:")):
        raise ValueError(f"{shown}: every host; leave the list empty to allow every host")
    if "*" in text.removesuffix(":*").removeprefix("*."):
        raise ValueError(f"{shown}: only a leading '*.' is allowed")
    pattern = Pattern.parse(text)
    if pattern.network is not None:
        return pattern
    name = pattern.host if pattern.host is not None else (pattern.suffix or "")[1:]
    if pattern.host is not None:
        try:  # as a URL's host: numeric forms are addresses
            canonical = ada_url.parse_url(f"http://{name}/")["hostname"]
        except ValueError:
            raise ValueError(f"{shown}: not a valid host name") from None
        if canonical != name:
            port = "" if pattern.port is None else f":{pattern.port}"
            return Pattern.parse(canonical + port)
    if not _HOST_NAME.fullmatch(name) or len(name) > 253:
        raise ValueError(f"{shown}: not a valid host name")
    return pattern


def _system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise FetchFailed(f"cannot resolve {host}: {error}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class EgressPolicy:
    """What a run's ``fetch`` may reach, and how much of it."""

    allow: tuple[Pattern, ...] = ()
    deny: tuple[Pattern, ...] = ()
    # The tenant's list: when set, only these hosts (names are matched on the
    # URL, addresses and networks on the address connected to).
    tenant_hosts: tuple[Pattern, ...] | None = None
    ports: frozenset[int] = DEFAULT_PORTS
    proxy: str | None = None
    ca_file: str | None = None  # trusted roots; certifi's by default
    max_requests: int = 20
    max_redirects: int = 5
    max_response_bytes: int = 5_000_000
    # Whose runs these are (the tenant): keep-alive connections are never
    # shared between owners (an upstream may tie state to a connection).
    owner: str = ""
    # Idle connections kept per owner: as many as its runs may wait on their
    # upstreams at once (TESSERA_HOOK_TENANT_WAITING), or each run past it
    # would open a new one.
    kept_connections: int = 24
    resolver: Resolver = field(default=_system_resolver, compare=False)

    @classmethod
    def from_text(
        cls,
        *,
        allow: str | Sequence[str] = "",
        deny: str | Sequence[str] = "",
        tenant_hosts: str | Sequence[str] | None = None,
        **limits: Any,
    ) -> EgressPolicy:
        return cls(
            allow=parse_patterns(allow),
            deny=parse_patterns(deny),
            tenant_hosts=None if tenant_hosts is None else parse_patterns(tenant_hosts),
            **limits,
        )

    def to_meta(self) -> dict[str, Any]:
        """This policy as JSON-able data (it crosses the worker pipe)."""
        return {
            "allow": [p.text for p in self.allow],
            "deny": [p.text for p in self.deny],
            "tenant_hosts": None
            if self.tenant_hosts is None
            else [p.text for p in self.tenant_hosts],
            "ports": sorted(self.ports),
            "proxy": self.proxy,
            "ca_file": self.ca_file,
            "max_requests": self.max_requests,
            "max_redirects": self.max_redirects,
            "max_response_bytes": self.max_response_bytes,
            "owner": self.owner,
            "kept_connections": self.kept_connections,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> EgressPolicy:
        return cls.from_text(**{**meta, "ports": frozenset(meta["ports"])})

    def check_url(self, url: str, base: str | None = None) -> Target:
        """Where ``url`` (relative to ``base``) goes, parsed as WHATWG URL
        parsers do (Ada, as in Node.js and ``URL`` in hooks), or
        ``EgressRefused``."""
        try:
            parts = _parsed_url(url, base)
        except ValueError:
            raise EgressRefused(f"invalid URL: {redact_url(url)}") from None
        scheme = parts["protocol"].removesuffix(":")
        if scheme not in SCHEMES:
            raise EgressRefused(f"scheme {scheme!r} is not allowed (http and https only)")
        host = parts["hostname"].removeprefix("[").removesuffix("]").rstrip(".")
        if not host:
            raise EgressRefused("the URL has no host")
        if parts["username"] or parts["password"]:
            raise EgressRefused("credentials in the URL are not allowed (use a header)")
        port = int(parts["port"] or SCHEMES[scheme])
        if not self._tenant_may_reach(host, port):
            raise EgressRefused(f"{host} is not in this tenant's list of allowed hosts")
        return Target(
            href=parts["href"],
            scheme=scheme,
            host=host,
            port=port,
            netloc=parts["host"],
            path=(parts["pathname"] or "/") + parts["search"],
        )

    def _tenant_may_reach(self, host: str, port: int) -> bool:
        """Whether the tenant's list lets ``host`` through, as far as the URL
        tells: a network entry is checked again on the address connected to
        (through a proxy, which resolves names itself, only names and
        address literals can match)."""
        if self.tenant_hosts is None:
            return True
        try:
            literal: Address | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        for pattern in self.tenant_hosts:
            if pattern.network is None or literal is not None or self.proxy:
                if pattern.matches(host, literal, port):
                    return True
            elif pattern.port is None or pattern.port == port:
                return True  # decided on the address
        return False

    def check_address(self, host: str, address: Address, port: int) -> None:
        """Raise ``EgressRefused`` unless ``host`` at ``address``:``port`` may be reached."""
        if self.tenant_hosts is not None and not any(
            p.matches(host, address, port) for p in self.tenant_hosts
        ):
            raise EgressRefused(f"{host} ({address}) is not in this tenant's list of allowed hosts")
        if any(p.matches(host, address, port) for p in self.deny):
            raise EgressRefused(f"{host} ({address}) port {port} is denied by the operator")
        if any(p.matches(host, address, port) for p in self.allow):
            return
        if not public_unicast(address):
            raise EgressRefused(f"{host} resolves to {address}, which is not a public address")
        if port not in self.ports:
            raise EgressRefused(f"port {port} is not allowed (only {sorted(self.ports)})")

    def connect_address(
        self, host: str, port: int, waiting: Waiting = contextlib.nullcontext
    ) -> str:
        """The checked address to connect to for ``host``: the first that
        passes; ``EgressRefused`` naming the first refusal if none does.
        A name is resolved inside ``waiting()`` (the run computes nothing
        meanwhile)."""
        literal = _address(host)
        if literal is not None:
            candidates = [str(literal)]
        else:
            with waiting():
                candidates = self.resolver(host, port)
        refusal: EgressRefused | None = None
        for text in candidates:
            address = _address(text.split("%")[0])
            if address is None:
                raise FetchFailed(f"cannot resolve {host}: {text!r} is not an address")
            try:
                self.check_address(host, address, port)
            except EgressRefused as error:
                refusal = refusal or error
                continue
            return str(address)
        raise refusal or EgressRefused(f"{host} has no address")


# A hook calls the same few URLs on every run: each is parsed once (Ada's
# parse, and ipaddress's, cost more than the rest of the policy's checks).
URL_CACHE_SIZE = 256
MAX_CACHED_URL = 2048
_T = TypeVar("_T")


def _cached_per_url(parse: Callable[..., _T]) -> Callable[..., _T]:
    """``parse`` remembered for the last ``URL_CACHE_SIZE`` strings it was
    given, up to ``MAX_CACHED_URL`` characters in all (longer ones: parsed
    each time, so a hostile hook cannot fill memory with its URLs)."""
    cached = functools.lru_cache(maxsize=URL_CACHE_SIZE)(parse)

    @functools.wraps(parse)
    def parsed(*texts: str | None) -> _T:
        short = sum(len(text or "") for text in texts) <= MAX_CACHED_URL
        return cached(*texts) if short else parse(*texts)

    return parsed


@_cached_per_url
def _address(text: str) -> Address | None:
    """``text`` as an IP address, or None if it is not one."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@_cached_per_url
def _parsed_url(url: str, base: str | None) -> Mapping[str, Any]:
    """``url`` (relative to ``base``) parsed by Ada; ``ValueError`` if it is not a URL."""
    parts: Mapping[str, Any] = ada_url.parse_url(
        url if base is None else ada_url.join_url(base, url)
    )
    return parts  # shared by the cache's callers: read, never changed


@dataclass(frozen=True)
class Target:
    """A checked URL: what to connect to, and what to ask for."""

    href: str
    scheme: str
    host: str  # without brackets
    port: int
    netloc: str  # the Host header: host, with [brackets] and :port as needed
    path: str  # path and query


@dataclass
class FetchRequest:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes | None = None
    redirect: str = "follow"  # follow | manual | error


@dataclass
class FetchResponse:
    status: int
    status_text: str
    headers: list[tuple[str, str]]
    body: bytes
    url: str
    redirected: bool


@_cached_per_url
def redact_url(url: str) -> str:
    """``url`` for a log: query values whose name or shape says secret are
    replaced, and so is any user:password."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "(invalid URL)"
    cleaned = [
        (key, REDACTED if _SECRET_KEY.search(key) or _SECRET_VALUE.match(value) else value)
        for key, value in query
    ]
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(cleaned, safe="[]"), ""))


def perform(
    request: FetchRequest,
    policy: EgressPolicy,
    deadline: float,
    waiting: Waiting = contextlib.nullcontext,
    wait_sockets: SocketWait | None = None,
) -> FetchResponse:
    """Do ``request`` within ``policy`` by ``deadline`` (``time.monotonic()``),
    following redirects as ``request.redirect`` says. Raises
    ``EgressRefused`` or ``FetchFailed``. Only the waits for the network (and
    for DNS) are made inside ``waiting()`` (or, for the network, by
    ``wait_sockets``): the rest is the run's computing."""
    for name, value in request.headers:
        if not _TOKEN.fullmatch(name) or _BREAKS.search(value):
            raise EgressRefused(f"invalid header {name[:64]!r}")
        if name.lower() in FORBIDDEN_HEADERS or name.lower().startswith("proxy-"):
            raise EgressRefused(f"the {name} header is set by the host, not the hook")
    if not _TOKEN.fullmatch(request.method):
        raise EgressRefused(f"invalid method {request.method[:16]!r}")
    method, body = request.method.upper(), request.body
    headers = list(request.headers)
    target = policy.check_url(request.url)
    first = target
    for hop in range(policy.max_redirects + 1):
        response = _one_request(
            method, target, headers, body, policy, deadline, waiting, wait_sockets
        )
        location = dict(response.headers).get("location")  # names come lowercased
        if response.status not in REDIRECTS or location is None or request.redirect == "manual":
            response.redirected = hop > 0
            return response
        if request.redirect == "error":
            raise FetchFailed(f"redirected to {redact_url(location)} with redirect: 'error'")
        target = policy.check_url(location, base=target.href)
        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
            method, body = "GET", None
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
        if target.netloc != first.netloc:
            headers = [(k, v) for k, v in headers if k.lower() not in ("authorization", "cookie")]
    raise FetchFailed(f"more than {policy.max_redirects} redirects")


def _one_request(
    method: str,
    target: Target,
    headers: list[tuple[str, str]],
    body: bytes | None,
    policy: EgressPolicy,
    deadline: float,
    waiting: Waiting,
    wait_sockets: SocketWait | None,
) -> FetchResponse:
    # Imported on the first request: a worker that never fetches starts without it.
    import pycurl

    remaining_ms = int((deadline - time.monotonic()) * 1000)
    if remaining_ms <= 0:
        raise FetchFailed("the run's deadline passed")
    received = _Received(policy.max_response_bytes)
    with _handle(policy) as transfer:
        curl = transfer.curl
        curl.setopt(pycurl.URL, f"{target.scheme}://{target.netloc}{target.path}")
        if not policy.proxy:  # connect to the checked address, whatever DNS says now
            address = policy.connect_address(target.host, target.port, waiting)
            curl.setopt(
                pycurl.CONNECT_TO,
                [f"{_bracketed(target.host)}:{target.port}:{_bracketed(address)}:{target.port}"],
            )
        curl.setopt(pycurl.TIMEOUT_MS, remaining_ms)
        # curl drops "Name:" (no value): "Name;" sends it empty.
        sent = [f"{name}: {value}" if value.strip() else f"{name};" for name, value in headers]
        if not any(name.lower() == "content-type" for name, _ in headers):
            sent.append("Content-Type:")  # none, rather than curl's form type
        curl.setopt(pycurl.HTTPHEADER, [*sent, "Expect:"])
        if method == "HEAD":
            curl.setopt(pycurl.NOBODY, 1)
        elif method != "GET" or body is not None:
            curl.setopt(pycurl.CUSTOMREQUEST, method)
            curl.setopt(pycurl.POSTFIELDS, body or b"")
        curl.setopt(pycurl.HEADERFUNCTION, received.lines.append)
        curl.setopt(pycurl.WRITEFUNCTION, received.write)
        failed = transfer.run(deadline, wait_sockets or _waiting_on(waiting))
        if failed is not None:
            raise FetchFailed(received.failure(*failed, policy.max_response_bytes))
    status, reason, headers = received.head()
    return FetchResponse(
        status=status,
        status_text=reason,
        headers=headers,
        body=b"".join(received.chunks),
        url=target.href,
        redirected=False,
    )


class _Received:
    """One response as curl hands it over: its head's lines, read once the
    transfer is over (a call into Python for each line cost more than the
    rest of the head), and the body, refused past ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lines: list[bytes] = []  # curl bounds a head's size
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_large = False

    def head(self) -> tuple[int, str, list[tuple[str, str]]]:
        """The last head's status, reason and headers (names lowercased, as
        the sandbox's ``Headers`` keeps them); an interim 1xx head is
        forgotten. ``FetchFailed`` for a line no HTTP client accepts."""
        status, reason = 0, ""
        headers: list[tuple[str, str]] = []
        for line in self.lines:
            text = line.decode("latin-1").rstrip("\r\n")
            if text.startswith("HTTP/"):
                _, _, rest = text.partition(" ")
                code, _, reason = rest.partition(" ")
                status, headers = int(code) if code.isdigit() else 0, []
            elif ":" in text:
                name, _, value = text.partition(":")
                name, value = name.strip(), value.strip()
                if not _TOKEN.fullmatch(name) or "\0" in value:
                    raise FetchFailed(f"the response has an invalid header line: {name[:64]!r}")
                headers.append((name.lower(), value))
        return status, reason, headers

    def write(self, chunk: bytes) -> int | None:
        self.size += len(chunk)
        if self.size > self.limit:
            self.too_large = True
            return 0  # curl stops: a write error
        self.chunks.append(chunk)
        return None

    def failure(self, code: int, message: str, limit: int) -> str:
        import pycurl

        if self.too_large or code == pycurl.E_FILESIZE_EXCEEDED:
            return f"the response is larger than {limit} bytes"
        if code == pycurl.E_OPERATION_TIMEDOUT:
            return "the response did not finish before the run's deadline"
        reason = str(message).split("\n", 1)[0][:300] or f"curl error {code}"
        if code == pycurl.E_PEER_FAILED_VERIFICATION:
            return f"certificate verify failed: {reason}"
        return reason


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Transfer:
    """A curl handle and the multi handle that drives it from the calling
    thread: curl is only ever called here, between waits on its sockets, and
    only those waits are made by the caller's ``SocketWait``.

    With a plain ``perform()``, curl would call back into Python (each header
    line, each chunk) from a thread that let the GIL go, while the run that
    now holds the compute gate computes: each callback would wait out a GIL
    switch interval (5 ms) and interrupt that run. Here the response is read
    once the run holds the gate again, at no one's expense."""

    def __init__(self) -> None:
        import pycurl

        self.curl = pycurl.Curl()
        self.multi = pycurl.CurlMulti()
        self._sockets: dict[int, int] = {}  # fd -> poll events curl waits for
        self._timer_ms = -1  # when curl wants to be called back, -1: no timer
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._watch)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._timer)

    def _watch(self, what: int, fd: int, multi: Any, socketp: Any) -> None:
        import pycurl

        if what == pycurl.POLL_REMOVE:
            self._sockets.pop(fd, None)
        else:
            self._sockets[fd] = _POLL_EVENTS[what]

    def _timer(self, timeout_ms: int) -> None:
        self._timer_ms = timeout_ms

    def run(self, deadline: float, wait_sockets: SocketWait) -> tuple[int, str] | None:
        """The transfer, to its end (curl's own ``TIMEOUT_MS`` ends it by
        the deadline); ``(curl error code, message)`` if it failed."""
        import pycurl

        self.multi.add_handle(self.curl)
        try:
            running = self._act(pycurl.SOCKET_TIMEOUT, 0)
            while running:
                left_ms = max(int((deadline - time.monotonic()) * 1000), 0) + 1
                timeout_ms = left_ms if self._timer_ms < 0 else min(self._timer_ms, left_ms)
                # A body arriving in parts is read on with the gate held.
                ready = poll_sockets(self._sockets, 0) or wait_sockets(
                    dict(self._sockets), timeout_ms / 1000
                )
                if not ready:
                    running = self._act(pycurl.SOCKET_TIMEOUT, 0)
                for fd, events in ready:
                    if events & select.POLLNVAL:  # closed under curl: never poll it again
                        self._sockets.pop(fd, None)
                    else:
                        running = self._act(fd, _curl_events(events))
            _, _, failed = self.multi.info_read()
            return (failed[0][1], failed[0][2]) if failed else None
        finally:
            self.multi.remove_handle(self.curl)

    def _act(self, fd: int, events: int) -> int:
        import pycurl

        while True:
            status, running = self.multi.socket_action(fd, events)
            if status != pycurl.E_CALL_MULTI_PERFORM:
                return int(running)

    def close(self) -> None:
        self.multi.close()
        self.curl.close()


def poll_sockets(sockets: Mapping[int, int], timeout_s: float) -> list[tuple[int, int]]:
    """The ready ``(fd, events)`` of ``sockets`` (fd -> poll events) once
    one is, or none after ``timeout_s``."""
    poller = select.poll()
    for fd, events in sockets.items():
        poller.register(fd, events)
    return poller.poll(max(math.ceil(timeout_s * 1000), 0))


def _waiting_on(waiting: Waiting) -> SocketWait:
    """A ``SocketWait`` that polls inside ``waiting()``."""

    def wait(sockets: Mapping[int, int], timeout_s: float) -> list[tuple[int, int]]:
        with waiting():
            return poll_sockets(sockets, timeout_s)

    return wait


# curl's POLL_IN/OUT/INOUT (1, 2, 3) as poll() events, and back.
_POLL_EVENTS = {1: select.POLLIN, 2: select.POLLOUT, 3: select.POLLIN | select.POLLOUT}


def _curl_events(events: int) -> int:
    import pycurl

    mask = 0
    if events & (select.POLLIN | select.POLLHUP):
        mask |= pycurl.CSELECT_IN
    if events & select.POLLOUT:
        mask |= pycurl.CSELECT_OUT
    if events & select.POLLERR:
        mask |= pycurl.CSELECT_ERR
    return mask


# Keep-alive connections: a hook that calls the same upstream on every token
# pays the TCP (and TLS) handshake once, not each time. A curl handle keeps
# the connections it opened, each to the address that was checked when it
# was opened (a request to another address never reuses it). Handles are
# kept per owner (the tenant: an upstream may tie state to a connection), at
# most the policy's ``kept_connections`` idle ones each, for at most OWNERS
# owners, the least recently seen forgotten first.
OWNERS = 64
_handles: OrderedDict[tuple[Any, ...], list[_Transfer]] = OrderedDict()
_handles_lock = threading.Lock()


@contextlib.contextmanager
def _handle(policy: EgressPolicy) -> Iterator[_Transfer]:
    """An idle curl handle of the policy's owner, set up for one request."""
    import pycurl

    key = (policy.owner, policy.ca_file, policy.proxy)
    with _handles_lock:
        idle = _handles.get(key)
        transfer = idle.pop() if idle else None
    if transfer is None:
        transfer = _Transfer()
    else:
        transfer.curl.reset()
    curl = transfer.curl
    curl.setopt(pycurl.NOSIGNAL, 1)
    curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
    curl.setopt(pycurl.USERAGENT, USER_AGENT)  # not curl's list of library versions
    curl.setopt(pycurl.ACCEPT_ENCODING, "")  # decoded, as fetch does
    curl.setopt(pycurl.PROXY, policy.proxy or "")  # never the environment's
    curl.setopt(pycurl.CAINFO, policy.ca_file or _certifi_roots())
    curl.setopt(pycurl.SSL_VERIFYPEER, 1)
    curl.setopt(pycurl.SSL_VERIFYHOST, 2)
    try:
        yield transfer
    except BaseException:
        transfer.close()  # failed: its connections go with it
        raise
    with _handles_lock:
        idle = _handles.setdefault(key, [])
        _handles.move_to_end(key)
        kept = len(idle) < policy.kept_connections
        if kept:
            idle.append(transfer)
        dropped = [_handles.popitem(last=False)[1] for _ in range(len(_handles) - OWNERS)]
    for handles in dropped:
        for handle in handles:
            handle.close()
    if not kept:  # one too many
        transfer.close()


@functools.cache
def _certifi_roots() -> str:
    import certifi

    return certifi.where()


def close_idle_connections() -> None:
    """Close every kept connection (a test's upstream then sees none linger)."""
    with _handles_lock:
        handles = [handle for idle in _handles.values() for handle in idle]
        _handles.clear()
    for handle in handles:
        handle.close()


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
POOL_THREADS = 64


def _shared_pool() -> ThreadPoolExecutor:
    """The process's threads for hook requests (waiting, not computing)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="hook-fetch")
        return _pool


def _forget_pool() -> None:
    global _pool, _handles_lock
    _pool = None  # a forked child has none of its parent's threads
    _handles.clear()  # nor its connections (closed by the parent, not here)
    _handles_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


class Network:
    """One run's fetches: performed on the process's request threads,
    counted against the policy's limit, and logged (``log``: method, URL with
    secrets redacted, status or error, duration, bytes). Without a policy the
    run has no network and every fetch fails. ``idle`` is entered around
    each wait for results (the governor's ``waiting``: the run computes
    nothing meanwhile), ``wait_sockets`` waits on the sockets of a request
    made on the run's own thread (the governor's ``wait_sockets``; else
    a poll inside ``idle``), ``pause`` is entered around the run's sleeps
    until its next timer (``paused``; the governor's ``pausing``)."""

    def __init__(
        self,
        policy: EgressPolicy | None = None,
        idle: Callable[[], AbstractContextManager[None]] | None = None,
        pause: Callable[[], AbstractContextManager[None]] | None = None,
        wait_sockets: SocketWait | None = None,
    ) -> None:
        self.policy = policy
        self._idle = idle or contextlib.nullcontext
        self._wait_sockets = wait_sockets
        self.paused = pause or contextlib.nullcontext
        self.log: list[dict[str, Any]] = []
        self._count = 0
        self._pending: dict[Future[FetchResponse], tuple[int, dict[str, Any], float]] = {}
        self._settled: list[dict[str, Any]] = []
        # Taken from the run, not yet started: (id, log entry, request, deadline).
        self._queued: list[tuple[int, dict[str, Any], FetchRequest, float]] = []

    def start(self, requests: list[dict[str, Any]], deadline: float) -> None:
        """Take the requests the run queued (``{id, method, url, headers, body64, redirect}``)."""
        for raw in requests:
            self._count += 1
            entry = self._log_entry(raw)
            try:
                request = self._request(raw)
            except EgressRefused as refusal:
                entry["error"] = str(refusal)
                self._settled.append({"id": raw["id"], "error": f"fetch failed: {refusal}"})
                continue
            self._queued.append((int(raw["id"]), entry, request, deadline))

    def _log_entry(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A new log entry; past the request limit, one entry counts the rest."""
        limit = self.policy.max_requests if self.policy is not None else 0
        if self._count > limit + 1 and self.log:
            self.log[-1]["refused"] = self.log[-1].get("refused", 1) + 1
            return {}
        entry = {
            "method": str(raw.get("method", "GET"))[:16],
            "url": redact_url(str(raw.get("url", ""))),
        }
        self.log.append(entry)
        return entry

    def _request(self, raw: dict[str, Any]) -> FetchRequest:
        if self.policy is None:
            raise EgressRefused("network access is off for hooks on this server")
        if self._count > self.policy.max_requests:
            raise EgressRefused(f"more than {self.policy.max_requests} requests in one run")
        body64 = raw.get("body64")
        self.policy.check_url(str(raw.get("url", "")))  # refused at once, before a thread
        return FetchRequest(
            method=str(raw.get("method", "GET")),
            url=str(raw["url"]),
            headers=[(str(k), str(v)) for k, v in raw.get("headers") or []],
            body=base64.b64decode(body64) if body64 is not None else None,
            redirect=str(raw.get("redirect", "follow")),
        )

    def waiting(self) -> bool:
        return bool(self._pending or self._settled or self._queued)

    def wait(self, timer_s: float | None, wall_end: float) -> list[dict[str, Any]]:
        """Results to deliver: at once if some are settled, else the first
        requests to finish before the next timer (``timer_s``) or ``wall_end``.

        A run waiting on one request and no timer makes it on its own thread:
        handing it to another thread and back costs more CPU than the request.
        Several at once, or one racing a timer (an ``AbortSignal.timeout``),
        go to the process's request threads."""
        if not self._settled and not self._pending and timer_s is None and len(self._queued) == 1:
            request_id, entry, request, deadline = self._queued.pop()
            future: Future[FetchResponse] = Future()
            started = time.monotonic()
            try:
                future.set_result(
                    perform(request, self.policy, deadline, self._idle, self._wait_sockets)  # type: ignore[arg-type]
                )
            except Exception as error:
                future.set_exception(error)
            self._pending[future] = (request_id, entry, started)
            self._settle(future)
        for request_id, entry, request, deadline in self._queued:
            future = _shared_pool().submit(perform, request, self.policy, deadline)  # type: ignore[arg-type]
            self._pending[future] = (request_id, entry, time.monotonic())
        self._queued.clear()
        if not self._settled:
            timeout = max(wall_end - time.monotonic(), 0)
            if timer_s is not None:
                timeout = min(timeout, timer_s)
            with self._idle():
                done, _ = futures_wait(self._pending, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                self._settle(future)
        settled, self._settled = self._settled, []
        return settled

    def _settle(self, future: Future[FetchResponse]) -> None:
        request_id, entry, started = self._pending.pop(future)
        entry["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        try:
            response = future.result()
        except (EgressRefused, FetchFailed) as error:
            entry["error"] = str(error)
            self._settled.append({"id": request_id, "error": f"fetch failed: {error}"})
            return
        except Exception as error:  # a client bug fails the fetch, not the server
            entry["error"] = f"{type(error).__name__}: {error}"[:300]
            self._settled.append({"id": request_id, "error": "fetch failed"})
            return
        entry.update(status=response.status, bytes=len(response.body))
        body: dict[str, str]
        try:
            body = {"text": response.body.decode("utf-8")}
        except UnicodeDecodeError:
            body = {"body64": base64.b64encode(response.body).decode("ascii")}
        self._settled.append(
            {
                "id": request_id,
                "response": {
                    "status": response.status,
                    "statusText": response.status_text,
                    "headers": response.headers,
                    "url": response.url,
                    "redirected": response.redirected,
                    **body,
                },
            }
        )

    def abandon(self) -> None:
        """The run is over: requests still under way finish on their own
        (bounded by the deadline they were given) and are dropped."""
        for future, (_, entry, _) in self._pending.items():
            future.cancel()
            entry.setdefault("error", "abandoned: the run ended first")
        self._pending.clear()
        self._settled.clear()
        for _, entry, _, _ in self._queued:
            entry.setdefault("error", "abandoned: the run ended first")
        self._queued.clear()
