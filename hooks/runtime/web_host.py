"""What web.js asks of the host synchronously: WHATWG URL parsing, by Ada
(``ada-url``, the parser Node.js itself uses), for ``URL`` and
``URLSearchParams``.

Called from JavaScript with strings only, it answers JSON text and never
raises: an exception crossing back into the engine would break the context.
"""

from __future__ import annotations

import json
from typing import Any

import ada_url

PARTS = (
    "href",
    "origin",
    "protocol",
    "username",
    "password",
    "host",
    "hostname",
    "port",
    "pathname",
    "search",
    "hash",
)
SETTABLE = frozenset(PARTS) - {"origin"}


def _parts(url: ada_url.URL) -> str:
    return json.dumps({name: getattr(url, name) for name in PARTS})


def url_host(op: Any, first: Any, second: Any) -> str:
    """``parse(input, base)``, ``set(href, [part, value])``, ``params(query)``
    and ``serialize(pairs JSON)``; ``null`` for what is not valid."""
    try:
        if op == "parse":
            return _parts(ada_url.URL(str(first), None if second is None else str(second)))
        if op == "set":
            part, value = json.loads(str(second))
            url = ada_url.URL(str(first))
            if part in SETTABLE:
                setattr(url, part, str(value))
            return _parts(url)
        if op == "params":
            return json.dumps(list(ada_url.URLSearchParams(str(first)).items()))
        if op == "serialize":
            params = ada_url.URLSearchParams("")
            for name, value in json.loads(str(first)):
                params.append(str(name), str(value))
            return json.dumps(str(params))
    except Exception:  # invalid input: the caller throws TypeError
        return "null"
    return "null"
