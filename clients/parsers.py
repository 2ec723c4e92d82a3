"""Token request body parsers: strict UTF-8, and each parameter at most once.

DRF's parsers decode forms with replacement characters, follow any charset a
caller names (including codecs that fail with a ``TypeError``) and let JSON's
last duplicate key win. A token request is a handful of short UTF-8 fields
(RFC 6749 §B, RFC 8259 §8.1), so both parsers here decode UTF-8 strictly and
refuse a repeated parameter in either encoding (RFC 6749 §3.2).
"""

import json
from typing import IO, Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.http import QueryDict
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from clients.params import describable

MALFORMED = "Malformed request body."


def _read_utf8(stream: IO[bytes] | None) -> str:
    raw = stream.read() if stream is not None else b""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(MALFORMED) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ParseError(f"Parameter repeated: {describable(key)}")
        seen[key] = value
    return seen


# Built once: json.loads(text, object_pairs_hook=...) builds a decoder per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


class StrictJSONParser(BaseParser):
    """``application/json``, UTF-8 only, duplicate keys refused at any depth."""

    media_type = "application/json"

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        text = _read_utf8(stream)
        try:
            return _DECODER.decode(text)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            raise ParseError(MALFORMED) from None


class StrictFormParser(BaseParser):
    """``application/x-www-form-urlencoded``, UTF-8 only (percent-escapes too).

    Returns a ``QueryDict`` so that the view can refuse repeated parameters."""

    media_type = "application/x-www-form-urlencoded"

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Any = None
    ) -> QueryDict:
        text = _read_utf8(stream)
        try:
            pairs = parse_qsl(
                text,
                keep_blank_values=True,
                encoding="utf-8",
                errors="strict",
                max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
            )
        except ValueError:  # UnicodeDecodeError of a %-escape, or too many fields
            raise ParseError(MALFORMED) from None
        data = QueryDict(mutable=True)
        for key, value in pairs:
            data.appendlist(key, value)
        return data
