"""The Management API's common ground (Auth0 Management API v2 under each
issuer): scope checks, Auth0's error body, pagination and field selection,
and rate-limit headers.

Callers authenticate with tokens from the tenant's own token endpoint for
its built-in API (``{issuer}api/v2/``); the DRF authentication class that
verifies them is named in settings (``clients.authentication``), so this
base knows no client or API model.
"""

import logging
import time
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, JsonResponse
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenant.audit import Actor
from tenant.management_auth import MISSING_AUTHENTICATION, ApiError, ManagementToken, unauthorized
from tenant.models import Tenant
from tenant.resolution import tenant_for_request
from tenant.services import Conflict
from tenant.text import is_text, validation_message

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=Model)

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 50
INVALID_QUERY = "invalid_query_string"
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def not_found(what: str) -> ApiError:
    """Auth0's 404 for a missing (or another tenant's) object."""
    return ApiError(404, f"The {what.replace('_', ' ')} does not exist.", f"inexistent_{what}")


def found(obj: M | None, what: str) -> M:
    """The object a selector found within the request's tenant, or Auth0's
    404 for ``what``."""
    if obj is None:
        raise not_found(what)
    return obj


def conflict(message: str, error_code: str = "conflict") -> ApiError:
    """Auth0's 409, for a refusal a service raised in its own type."""
    return ApiError(409, message, error_code)


def invalid_body(message: str) -> ApiError:
    return ApiError(400, f"Payload validation error: {message}", "invalid_body")


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        return [m for key, value in detail.items() for m in _flatten(value, f"{key}: ")]
    if isinstance(detail, list):
        return [m for item in detail for m in _flatten(item, prefix)]
    return [f"{prefix}{detail}"]


def error_body(status_code: int, message: str, error_code: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "statusCode": status_code,
        "error": REASONS.get(status_code, "Error"),
        "message": message,
    }
    if error_code:
        body["errorCode"] = error_code
    return body


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Every error of a Management API view, in Auth0's shape."""
    if isinstance(exc, ApiError):
        status_code, message, code = exc.status_code, str(exc.detail), exc.error_code
    elif isinstance(exc, Http404):
        status_code, message, code = 404, "Not Found", "inexistent_resource"
    elif isinstance(exc, IntegrityError):
        # A concurrent write won the race for a unique name or pair.
        status_code, message, code = 409, "The resource conflicts with an existing one.", "conflict"
    elif isinstance(exc, Conflict):
        status_code, message = 409, " ".join(exc.messages)
        code = exc.code or "conflict"
    elif isinstance(exc, RequestDataTooBig):
        status_code, message, code = 413, "Request body is too large.", "payload_too_large"
    elif isinstance(exc, DjangoValidationError):
        status_code, message, code = 400, validation_message(exc), "invalid_body"
    elif isinstance(exc, exceptions.ValidationError):
        message = "Payload validation error: " + "; ".join(_flatten(exc.detail))
        status_code, code = 400, "invalid_body"
    elif isinstance(exc, exceptions.ParseError):
        status_code, message, code = 400, "Invalid request payload JSON format", "invalid_body"
    elif isinstance(exc, exceptions.APIException):
        status_code, message = exc.status_code, str(exc.detail)
        code = None
    else:
        logger.exception("Unhandled Management API error", exc_info=exc)
        status_code, message, code = 500, "Internal Server Error", "internal_error"
    return Response(error_body(status_code, message, code), status=status_code)


def check_rate_limit(*, tenant: Tenant, client_id: str) -> dict[str, str]:
    """Count one request in the client's fixed window (shared by all servers);
    returns the X-RateLimit-* headers, or raises 429 with them."""
    limit = settings.TESSERA_MANAGEMENT_RATE_LIMIT
    window = settings.TESSERA_MANAGEMENT_RATE_WINDOW_S
    now = time.time()
    reset = int(now // window * window + window)
    key = f"tessera:mgmt-rate:{tenant.pk}:{client_id}:{reset}"
    cache = caches["shared"]
    cache.add(key, 0, timeout=window + 1)
    try:
        used = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window + 1)
        used = 1
    headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(limit - used, 0)),
        "X-RateLimit-Reset": str(reset),
    }
    if used > limit:
        error = ApiError(429, "Too Many Requests", "too_many_requests")
        error.rate_headers = headers  # type: ignore[attr-defined]
        error.retry_after = max(reset - int(now), 1)  # type: ignore[attr-defined]
        raise error
    return headers


def _check_text(value: Any, where: str) -> None:
    """400 for any string (key or value) in ``value`` that is not valid text."""
    if isinstance(value, str):
        if not is_text(value):
            code = "invalid_body" if where == "Payload" else INVALID_QUERY
            raise ApiError(400, f"{where} validation error: invalid characters.", code)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, where)
            _check_text(item, where)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_text(item, where)


class ManagementView(APIView):
    """A Management API endpoint of the request's tenant.

    ``scopes`` maps each HTTP method to the scope it needs. ``self.tenant``
    and ``self.token`` are set before the handler runs.
    """

    # Authentication: the project's DEFAULT_AUTHENTICATION_CLASSES (DRF).

    permission_classes: list[Any] = []
    scopes: dict[str, str] = {}
    tenant: Tenant
    token: ManagementToken
    _rate_headers: dict[str, str]

    def get_exception_handler(self) -> Any:
        return exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self._rate_headers = {}
        self.tenant = tenant_for_request(request, kwargs.get("tenant_slug"))
        super().initial(request, *args, **kwargs)  # authenticates
        if not isinstance(request.auth, ManagementToken):
            raise unauthorized(MISSING_AUTHENTICATION)
        self.token = request.auth
        self._rate_headers = check_rate_limit(tenant=self.tenant, client_id=self.token.client_id)
        _check_text(kwargs, "Path")
        _check_text(dict(request.query_params), "Query")
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            _check_text(request.data, "Payload")
        needed = self.scopes.get(request.method or "")
        if needed is None:
            raise ApiError(405, "Method Not Allowed", "")
        if needed not in self.token.scopes:
            raise ApiError(
                403, f"Insufficient scope; expected any of: {needed}.", "insufficient_scope"
            )

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        headers = getattr(exc, "rate_headers", None)
        if headers:
            self._rate_headers = headers
            response["Retry-After"] = str(getattr(exc, "retry_after", 1))
        return response

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        for name, value in getattr(self, "_rate_headers", {}).items():
            response[name] = value
        response["Cache-Control"] = "no-store"
        return response

    @property
    def actor(self) -> Actor:
        return self.token.actor


# --- query parameters -------------------------------------------------------


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ApiError(400, f"Query validation error: invalid boolean {value!r}.", INVALID_QUERY)


def _int(value: str | None, name: str, default: int, maximum: int | None = None) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or len(value) > 9:
        raise ApiError(
            400,
            f"Query validation error: {name} must be a non-negative integer.",
            INVALID_QUERY,
        )
    number = int(value)
    if maximum is not None and number > maximum:
        raise ApiError(
            400,
            f"Query validation error: {name} must be at most {maximum}.",
            INVALID_QUERY,
        )
    return number


def query_bool(request: Request, name: str, default: bool) -> bool:
    return _bool(request.query_params.get(name), default)


def select_fields(request: Request, item: dict[str, Any]) -> dict[str, Any]:
    """Auth0's ``fields`` + ``include_fields``: keep (or drop) the named fields."""
    fields = [f for f in (request.query_params.get("fields") or "").split(",") if f]
    if not fields:
        return item
    if query_bool(request, "include_fields", True):
        return {k: v for k, v in item.items() if k in fields}
    return {k: v for k, v in item.items() if k not in fields}


def page_query(request: Request) -> tuple[int, int]:
    """The ``page`` (from 0) and ``per_page`` (at most 100) a list asks for."""
    page = _int(request.query_params.get("page"), "page", 0)
    per_page = _int(
        request.query_params.get("per_page"), "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE
    )
    return page, per_page


def paginated(request: Request, key: str, items: QuerySet[Any], render: Any) -> Response:
    """A list page: a bare array, or with ``include_totals`` Auth0's
    ``{start, limit, length, total, <key>}``."""
    page, per_page = page_query(request)
    total = items.count()
    start = page * per_page
    rows = [select_fields(request, render(item)) for item in items[start : start + per_page]]
    if query_bool(request, "include_totals", False):
        return Response(
            {"start": start, "limit": per_page, "length": len(rows), "total": total, key: rows}
        )
    return Response(rows)


def checkpoint_paginated(
    request: Request, key: str, items: QuerySet[Any], render: Any, id_field: str
) -> Response | None:
    """Auth0's checkpoint pagination, when the request asks for it (``from``
    or ``take``): ``{<key>: [...], next}``, ``next`` the ``from`` of the
    following page, absent on the last one. ``items`` must be in a stable
    order of ``pk``. None when the request asks for page pagination."""
    if "from" not in request.query_params and "take" not in request.query_params:
        return None
    take = _int(request.query_params.get("take"), "take", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    start = request.query_params.get("from") or ""
    if start:
        first = items.filter(**{id_field: start}).values_list("pk", flat=True).first()
        if first is None:
            raise ApiError(400, "Query validation error: from is not a valid id.", INVALID_QUERY)
        items = items.filter(pk__gte=first)
    rows = list(items[: take + 1])
    body: dict[str, Any] = {key: [select_fields(request, render(row)) for row in rows[:take]]}
    if len(rows) > take:
        body["next"] = getattr(rows[take], id_field)
    return Response(body)


def created(body: dict[str, Any]) -> Response:
    return Response(body, status=status.HTTP_201_CREATED)


def validated(
    serializer_class: type[serializers.Serializer], data: Any, *, immutable: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The request body checked by ``serializer_class``; 400 invalid_body
    otherwise, also when it tries to change an ``immutable`` field."""
    if not isinstance(data, dict):
        raise invalid_body("Expected type object but found another type.")
    for name in immutable:
        if name in data:
            raise invalid_body(f"Additional properties not allowed: {name}")
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def api_not_found(request: HttpRequest, **kwargs: Any) -> JsonResponse:
    """Any other path under ``api/v2/``: Auth0's 404 body, never HTML."""
    response = JsonResponse(error_body(404, "Not Found", "inexistent_resource"), status=404)
    response["Cache-Control"] = "no-store"
    return response


# OpenAPI descriptions of the query parameters every list and read takes.
FIELD_PARAMETERS = [
    OpenApiParameter("fields", str, description="Comma-separated fields to include or exclude."),
    OpenApiParameter("include_fields", bool, description="Include (true) or exclude the fields."),
]
LIST_PARAMETERS = [
    OpenApiParameter("page", int, description="Page index, from 0."),
    OpenApiParameter("per_page", int, description=f"Items per page, at most {MAX_PER_PAGE}."),
    OpenApiParameter(
        "include_totals", bool, description="Return {start, limit, length, total, items}."
    ),
    *FIELD_PARAMETERS,
]
CHECKPOINT_PARAMETERS = [
    OpenApiParameter("from", str, description="Checkpoint pagination: the `next` of a page."),
    OpenApiParameter("take", int, description=f"Checkpoint pagination: at most {MAX_PER_PAGE}."),
]
