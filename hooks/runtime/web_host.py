"""What web.js and modules.js ask of the host synchronously: WHATWG URL
parsing, by Ada (``ada-url``, the parser Node.js itself uses), for ``URL``
and ``URLSearchParams``; hashing and randomness for ``crypto``; and module
files for ``require``.

Called from JavaScript with strings only, it answers JSON text and never
raises: an exception crossing back into the engine would break the context.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
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


# ---- crypto, for modules.js ------------------------------------------------------

_HASHES = {
    "md5": "md5",
    "sha1": "sha1",
    "sha224": "sha224",
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
    "sha512-256": "sha512_256",
    "sha3-256": "sha3_256",
    "sha3-384": "sha3_384",
    "sha3-512": "sha3_512",
    "ripemd160": "ripemd160",
}
MAX_RANDOM_BYTES = 65_536


def _hash_name(name: Any) -> str:
    key = str(name).lower().removeprefix("rsa-")
    if key not in _HASHES:
        raise TypeError(f"Invalid digest: {name}")
    return _HASHES[key]


def crypto_host(op: Any, args_json: Any) -> str:
    """Node's ``crypto`` for hooks: hashes, HMACs, random bytes and UUIDs,
    and a constant-time comparison. Bytes cross as base64."""
    try:
        args = json.loads(str(args_json))
        if op == "check":
            value: Any = bool(_hash_name(args["algorithm"]))
        elif op in ("hash", "hmac"):
            name = _hash_name(args["algorithm"])
            data = b"".join(base64.b64decode(chunk) for chunk in args["chunks"])
            if op == "hash":
                digest = hashlib.new(name, data).digest()
            else:
                digest = hmac.new(base64.b64decode(args["key"]), data, name).digest()
            value = base64.b64encode(digest).decode()
        elif op == "random":
            size = int(args["size"])
            if not 0 <= size <= MAX_RANDOM_BYTES:
                raise RangeError(f"size must be between 0 and {MAX_RANDOM_BYTES}")
            value = base64.b64encode(secrets.token_bytes(size)).decode()
        elif op == "uuid":
            value = str(uuid.uuid4())
        elif op == "equal":
            value = hmac.compare_digest(base64.b64decode(args["a"]), base64.b64decode(args["b"]))
        elif op == "hashes":
            value = sorted(_HASHES)
        else:
            raise TypeError(f"unknown crypto operation {op}")
        return json.dumps({"value": value})
    except TypeError as error:
        return json.dumps({"error": str(error), "type": "TypeError"})
    except Exception as error:  # anything else is the hook's bad input
        return json.dumps({"error": str(error)[:300] or type(error).__name__})


class RangeError(ValueError):
    pass


def module_host(tree_for: Any) -> Any:
    """``__tessera_module(op, path)`` over ``tree_for(path)``: the tree that
    holds ``path`` (``builtin:``-prefixed paths are the built-in packages')."""

    def call(op: Any, path: Any) -> Any:
        try:
            text = str(path)
            tree, inner = tree_for(text)
            if tree is None:
                return "" if op == "kind" else None
            if op == "kind":
                return tree.kind(inner)
            if op == "read":
                return tree.read(inner)
        except Exception:  # a path that cannot be read is a missing module
            return "" if op == "kind" else None
        return None

    return call
