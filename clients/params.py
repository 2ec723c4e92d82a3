"""Token request parameters checked as text before anything else reads them.

Whatever a caller sends, what reaches a lookup, a hook or an error message is
bounded Unicode text without control characters or lone UTF-16 surrogates: a
surrogate cannot be encoded into a response or a query, and PostgreSQL refuses
NUL in a string. Lengths are bounded by the longest value Tessera stores, so an
over-long ``client_id`` is ``invalid_client`` without a database lookup.
"""

from collections.abc import Mapping

from oauthlib.oauth2.rfc6749 import errors

from apis.models import Api, ApiScope
from clients.models import Client
from tenant.text import is_text

MAX_NAME_LENGTH = 64
MAX_CLIENT_ID_LENGTH = Client._meta.get_field("client_id").max_length or 255
# Tessera's secrets are 128 characters; the stored field bounds any imported one.
MAX_CLIENT_SECRET_LENGTH = Client._meta.get_field("client_secret").max_length or 255
MAX_AUDIENCE_LENGTH = Api._meta.get_field("identifier").max_length or 600
MAX_SCOPE_VALUE_LENGTH = ApiScope._meta.get_field("value").max_length or 280


def describable(name: str) -> str:
    """``name`` when it is safe and short enough to quote in an error, else a
    neutral stand-in (an error description must itself encode)."""
    if len(name) <= MAX_NAME_LENGTH and is_text(name, one_line=True):
        return name
    return "(unprintable)"


def encodable(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates) replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")


def check_param_text(params: Mapping[str, str]) -> None:
    """Refuse parameters that are not clean, bounded text (RFC 6749 §5.2)."""
    for name, value in params.items():
        if len(name) > MAX_NAME_LENGTH or not is_text(name, one_line=True):
            raise errors.InvalidRequestError("A parameter name is not valid text.")
        if not is_text(value, one_line=True):
            raise errors.InvalidRequestError(
                f"Parameter {name} contains a control character or invalid Unicode."
            )
    client_id = params.get("client_id", "")
    secret = params.get("client_secret", "")
    if len(client_id) > MAX_CLIENT_ID_LENGTH or len(secret) > MAX_CLIENT_SECRET_LENGTH:
        # No client has such an id or secret: the answer of a failed lookup, without one.
        raise errors.InvalidClientError("Client authentication failed.")
    if len(params.get("audience", "")) > MAX_AUDIENCE_LENGTH:
        raise errors.InvalidRequestError(
            f"Parameter audience is longer than any API identifier ({MAX_AUDIENCE_LENGTH})."
        )
    if any(len(scope) > MAX_SCOPE_VALUE_LENGTH for scope in params.get("scope", "").split()):
        raise errors.InvalidRequestError(
            f"Parameter scope names a scope longer than any scope ({MAX_SCOPE_VALUE_LENGTH})."
        )
