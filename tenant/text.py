"""What every door of Tessera (token endpoint, Management API, commands)
checks and says about text: whether a string is text at all, and a
ValidationError as one line."""

import re

from django.core.exceptions import ValidationError

# What no stored string may hold: NUL (PostgreSQL refuses it) and UTF-16
# surrogates (which only a JSON "\\ud800" escape can produce, since the body
# parsers decode UTF-8 strictly; they cannot be encoded into a response or a
# query).
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")
# ... and, in a one-line value (a token request parameter), any C0 or C1
# control character or DEL.
_NOT_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def is_text(value: str, *, one_line: bool = False) -> bool:
    """Whether ``value`` is text a database stores and a response encodes;
    with ``one_line``, also free of control characters (newlines included)."""
    return (_NOT_LINE if one_line else _NOT_TEXT).search(value) is None


def validation_message(error: ValidationError) -> str:
    """One line from a ValidationError: ``field: message; …``."""
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
            for field, messages in error.message_dict.items()
        )
    return " ".join(error.messages)
