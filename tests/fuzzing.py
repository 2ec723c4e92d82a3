"""Building blocks for property-based fuzzing of Tessera's JSON surfaces.

A surface is a function from the test's world (tenants, clients) to a
Hypothesis strategy of :class:`FuzzRequest`; ``assert_json_contract`` is the
property every answer must have. To fuzz a new surface (``/api/v2``), write
one strategy function and list it in the test's ``SURFACES``.
"""

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from django.test import Client as HttpClient
from hypothesis import strategies as st

from tenant.site.middleware import is_token_path

# What attackers send: NUL and other controls, lone surrogates, a BOM, bytes
# that are not UTF-8 once percent-decoded, separators of each encoding.
HOSTILE_CHARACTERS = [
    "\x00", "\x01", "\n", "\r", "\x1b", "\x7f", "\x85", "\u2028", "\ufeff",
    "\ud800", "\udfff", "\U0001f600", "%", "&", "=", ":", "+", '"', "\\", "/", "?", "#",
]  # fmt: skip


def encoded(text: str) -> bytes:
    """``text`` as UTF-8, lone surrogates included (as a careless client sends them)."""
    return text.encode("utf-8", "surrogatepass")


# Any code point, surrogates included, with hostile ones drawn often, and
# percent-escapes that decode to NUL or to bytes that are not UTF-8.
hostile_text = st.lists(
    st.one_of(
        st.sampled_from(HOSTILE_CHARACTERS),
        st.characters(exclude_categories=[]),
        st.sampled_from(["%00", "%ff", "%ed%a0%80", "%c3"]),
    ),
    max_size=30,
).map("".join)
# Header values as a WSGI server hands them over: the bytes, read as latin-1.
header_text = hostile_text.map(lambda text: encoded(text).decode("latin-1"))
long_text = st.integers(min_value=200, max_value=20_000).map(lambda n: "x" * n)
json_scalars = st.one_of(hostile_text, st.none(), st.booleans(), st.integers(), st.floats())
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
)

METHODS = ["POST"] * 6 + ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "application/json; charset=utf-8",
    "application/json; charset=rot13",
    "application/json; charset=utf-16",
    "application/x-www-form-urlencoded; charset=latin-1",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "text/plain",
    "",
    "application/json\x00",
]


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    path: str
    body: bytes = b""
    content_type: str = "application/json"
    meta: dict[str, str] = field(default_factory=dict)

    def send(self) -> Any:
        http = HttpClient(enforce_csrf_checks=True, raise_request_exception=False)
        meta: dict[str, Any] = dict(self.meta)
        return http.generic(
            self.method, self.path, self.body, content_type=self.content_type, **meta
        )


@st.composite
def bodies(draw: st.DrawFn, params: st.SearchStrategy[dict[str, object]]) -> bytes:
    """A body built from ``params``: JSON, a form (repeats allowed), raw bytes."""
    kind = draw(st.sampled_from(["json", "json", "form", "form", "raw", "json-text", "empty"]))
    if kind == "json":
        return encoded(json.dumps(draw(params)))  # \\ud800 escapes for surrogates
    if kind == "json-text":
        return encoded(json.dumps(draw(json_values), ensure_ascii=False))
    if kind == "form":
        pairs = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in draw(params).items()]
        pairs += draw(st.lists(st.tuples(hostile_text, hostile_text), max_size=2))
        return encoded(
            urlencode(pairs, quote_via=lambda s, *a: quote(s, safe="", errors="surrogatepass"))
        )
    if kind == "raw":
        return draw(st.binary(max_size=300))
    return b""


def basic_header(
    user: st.SearchStrategy[str], password: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    """``Authorization: Basic`` of any credentials, well-formed or not."""
    well_formed = st.builds(
        lambda u, p: (
            "Basic "
            + base64.b64encode(
                encoded(f"{quote(u, errors='surrogatepass')}:{quote(p, errors='surrogatepass')}")
            ).decode()
        ),
        user,
        password,
    )
    raw_bytes = st.binary(max_size=80).map(lambda b: "Basic " + base64.b64encode(b).decode())
    unquoted = st.builds(
        lambda u, p: "Basic " + base64.b64encode(encoded(f"{u}:{p}")).decode(), user, password
    )
    return st.one_of(well_formed, raw_bytes, unquoted, header_text.map(lambda t: "Basic " + t))


def extra_headers() -> st.SearchStrategy[dict[str, str]]:
    """Headers besides Authorization, as WSGI META entries."""
    names = st.sampled_from(
        [
            "HTTP_X_FORWARDED_FOR",
            "HTTP_USER_AGENT",
            "HTTP_ACCEPT",
            "HTTP_ORIGIN",
            "HTTP_COOKIE",
            "HTTP_HOST",
            "CONTENT_LENGTH",
        ]
    )
    return st.dictionaries(
        names, st.one_of(header_text, long_text, st.just("evil.example")), max_size=3
    )


def assert_json_contract(request: FuzzRequest, response: object) -> None:
    """Never a 5xx, never a stack trace; JSON, with ``error`` unless a success."""
    status = response.status_code  # type: ignore[attr-defined]
    content: bytes = response.content  # type: ignore[attr-defined]
    assert status < 500, (request, content[:500])
    assert b"Traceback" not in content and b'File "' not in content, (request, content[:500])
    if status == 204:
        assert content == b""
        return
    assert response["Content-Type"] == "application/json", (request, status, content[:300])  # type: ignore[index]
    if request.method == "HEAD":
        return
    body = json.loads(content.decode("utf-8"))  # strict: the answer itself encodes
    if status == 200:
        # A token, or one of the issuer's documents (JWKS, discovery).
        assert "access_token" in body or not is_token_path(request.path), body
    else:
        assert isinstance(body.get("error"), str) and body["error"], (request, body)
