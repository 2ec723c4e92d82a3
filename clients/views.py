"""``POST {issuer}oauth/token``: the token endpoint (SPEC §3)."""

import logging
from collections.abc import Iterable
from typing import Any, cast

from django.http import Http404, QueryDict
from django.http.request import split_domain_port
from oauthlib.oauth2.rfc6749 import errors
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder as DRFJSONEncoder
from rest_framework.views import APIView

from clients.params import encodable
from clients.parsers import StrictFormParser, StrictJSONParser
from clients.tokens import RetryLaterError, first_language, issue_token, uses_basic_auth
from hooks.runtime.json_text import compact_encoder
from tenant.dependencies import DATABASE_UNAVAILABLE
from tenant.resolution import tenant_for_request

logger = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class AlwaysJson(DefaultContentNegotiation):
    """The token endpoint answers JSON whatever ``Accept`` says (RFC 6749
    §5.1): DRF would refuse an unmatched ``Accept`` with a NotAcceptable."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class TokenJSONRenderer(JSONRenderer):
    """DRF's JSON renderer with DRF's defaults, which Tessera keeps (compact,
    UTF-8, NaN refused, DRF's encoder for other types), from one encoder
    built at import: DRF's ``json.dumps`` builds one per response. The
    negotiation above never passes an ``indent``."""

    _encode = staticmethod(compact_encoder(ascii_only=False, default=DRFJSONEncoder().default))

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        if data is None:
            return b""
        text = self._encode(data)
        # As DRF does: these two are valid JSON but not valid JavaScript.
        return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def request_params(request: Request) -> dict[str, str]:
    """The body's parameters as strings; each may appear once (RFC 6749 §3.2).
    A JSON ``null`` is an absent parameter, as at Auth0 (its SDKs send
    ``"organization": null``)."""
    data = request.data
    if isinstance(data, QueryDict):
        repeated = [key for key in data if len(data.getlist(key)) > 1]
        if repeated:
            raise errors.InvalidRequestError(f"Parameter repeated: {repeated[0]}")
        return cast(dict[str, str], data.dict())
    if not isinstance(data, dict):
        raise errors.InvalidRequestError("The request body must be an object.")
    data = {key: value for key, value in data.items() if value is not None}
    if any(not isinstance(value, str) for value in data.values()):
        raise errors.InvalidRequestError("Every parameter must be a string.")
    return cast(dict[str, str], data)


def oauth_error_response(exc: errors.OAuth2Error, **headers: str) -> Response:
    body = {"error": exc.error, "error_description": encodable(exc.description)}
    return Response(body, status=exc.status_code, headers={**NO_STORE, **headers})


def _break_cycles(response: Any) -> None:  # a rendered DRF Response
    """Once the response is rendered, untie DRF's view, request and response.

    They point at each other (``view.request``, the request's
    ``parser_context``, ``view.response``, the response's
    ``renderer_context``), so without this every token request left about
    44 objects for the garbage collector: a collection every 20 requests,
    6-8 µs per token, and now and then a full pass of over 10 ms with every
    request waiting. Untied, they are freed as the response is sent.
    """
    view = response.renderer_context["view"]
    view.request.parser_context = None
    view.request = view.response = None
    response.renderer_context = None


class TokenView(APIView):
    """Client Credentials grant. Errors are always RFC 6749 §5.2 JSON."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    parser_classes = [StrictJSONParser, StrictFormParser]
    renderer_classes = [TokenJSONRenderer]
    content_negotiation_class = AlwaysJson

    def post(self, request: Request, tenant_slug: str | None = None) -> Response:
        # Bodies over TESSERA_TOKEN_MAX_BODY_BYTES never get here: the
        # middleware answers 413 from the Content-Length.
        meta = request.META
        outcome = issue_token(
            tenant=tenant_for_request(request, tenant_slug),
            params=request_params(request),
            authorization=meta.get("HTTP_AUTHORIZATION"),
            ip=meta.get("REMOTE_ADDR", ""),
            user_agent=meta.get("HTTP_USER_AGENT", ""),
            hostname=split_domain_port(request.get_host())[0],
            language=first_language(meta.get("HTTP_ACCEPT_LANGUAGE", "")),
        )
        if isinstance(outcome, errors.OAuth2Error):
            return self.error_response(outcome)
        body: dict[str, Any] = {
            "access_token": outcome.access_token,
            "token_type": "Bearer",
            "expires_in": outcome.expires_in,
        }
        if outcome.scope:
            body["scope"] = " ".join(outcome.scope)
        return Response(body, headers=NO_STORE)

    def error_response(self, error: errors.OAuth2Error) -> Response:
        """The RFC 6749 §5.2 answer to ``error``, with the headers its kind needs."""
        if isinstance(error, errors.InvalidClientError):
            if uses_basic_auth(self.request.META.get("HTTP_AUTHORIZATION")):
                return oauth_error_response(error, **{"WWW-Authenticate": 'Basic realm="oauth"'})
        elif isinstance(error, RetryLaterError):
            return oauth_error_response(error, **{"Retry-After": str(error.retry_after)})
        return oauth_error_response(error)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response):
            response.add_post_render_callback(_break_cycles)
        return response

    def options(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        """CORS-style probes learn the methods, and nothing else (no DRF metadata)."""
        return Response(status=204, headers={"Allow": "POST, OPTIONS", **NO_STORE})

    def handle_exception(self, exc: Exception) -> Response:
        """What the request raised before the service could answer (the
        tenant, the body), and what nothing else answers."""
        if isinstance(exc, errors.OAuth2Error):  # request_params
            return self.error_response(exc)
        if isinstance(exc, exceptions.UnsupportedMediaType):
            return oauth_error_response(
                errors.InvalidRequestError(
                    "Unsupported content type: use application/json or "
                    "application/x-www-form-urlencoded."
                )
            )
        if isinstance(exc, exceptions.MethodNotAllowed):
            error = errors.InvalidRequestError(
                f"Method {self.request.method} not allowed.", status_code=405
            )
            return oauth_error_response(error, Allow="POST, OPTIONS")
        if isinstance(exc, exceptions.ParseError):
            # The strict parsers' details are fixed texts (a repeated name is
            # quoted only when printable).
            return oauth_error_response(errors.InvalidRequestError(str(exc.detail)))
        if isinstance(exc, Http404):
            raise exc  # IssuerJsonErrorsMiddleware renders the JSON 404
        if isinstance(exc, DATABASE_UNAVAILABLE):
            raise exc  # DependencyErrorsMiddleware answers 503 with Retry-After
        logger.exception("Token request failed")
        return oauth_error_response(errors.ServerError("Internal server error.", status_code=500))
