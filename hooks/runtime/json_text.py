"""Compact JSON text from one prebuilt encoder, for the token path.

``json.dumps`` and ``JSONEncoder.encode`` build a new C encoder on every
call; for a token's small bodies that is about half of the encoding's cost,
and more in a request, where the build's allocations miss the CPU caches.
An encoder made here is built once. It does no cycle check: callers encode
values built from JSON, which hold no cycles.
"""

import json
from collections.abc import Callable
from typing import Any

Encode = Callable[[Any], str]


def _not_serialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def compact_encoder(*, ascii_only: bool, default: Callable[[Any], Any] | None = None) -> Encode:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only,
    allow_nan=False, default=default)``, as one reusable function."""
    escape = json.encoder.encode_basestring_ascii if ascii_only else json.encoder.encode_basestring
    # CPython's C encoder: markers (None: no cycle check), default, escape,
    # indent, separators, sort_keys, skipkeys, allow_nan.
    encode = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, default or _not_serialisable, escape, None, ":", ",", False, False, False
    )
    return lambda value: "".join(encode(value, 0))
