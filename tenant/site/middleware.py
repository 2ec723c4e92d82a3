"""Tenant resolution from the Host header, JSON errors on API paths, and the
dashboard's middleware kept off them."""

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware as _Authentication
from django.contrib.messages.middleware import MessageMiddleware as _Messages
from django.contrib.sessions.middleware import SessionMiddleware as _Sessions
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.common import CommonMiddleware as _Common
from django.middleware.csrf import CsrfViewMiddleware as _Csrf
from django.utils.deprecation import MiddlewareMixin

from tenant.selectors import tenant_for_domain


class TenantDomainMiddleware:
    """Serve a tenant with its own domain at that domain's root, and mark
    requests for an API path (``request.api_path``) for the layers below."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.public_host = urlsplit(settings.PUBLIC_URL).hostname or ""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        host = request.get_host().rsplit(":", 1)[0].lower()
        if host not in (self.public_host, "localhost", "127.0.0.1", "testserver"):
            tenant = tenant_for_domain(host=host)
            if tenant is not None:
                request.tenant = tenant  # type: ignore[attr-defined]
                request.urlconf = "tenant.site.domain_urls"
        request.api_path = answers_json(request)  # type: ignore[attr-defined]
        return self.get_response(request)


class DashboardOnly(MiddlewareMixin):
    """Mixin for a middleware the dashboard needs and API paths do not.

    Issuers, the management API and token endpoints read no cookies, keep no
    session, render no page and are all CSRF-exempt, so sessions, CSRF,
    ``request.user``, messages and slash redirects step aside there: on the
    token endpoint they cost about a tenth of a token's CPU. Subclasses keep
    Django's names, so the admin's checks for them still pass.
    """

    def __call__(self, request: HttpRequest) -> Any:
        if getattr(request, "api_path", False):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(DashboardOnly, _Sessions):
    pass


class CommonMiddleware(DashboardOnly, _Common):
    pass


class CsrfViewMiddleware(DashboardOnly, _Csrf):
    pass


class AuthenticationMiddleware(DashboardOnly, _Authentication):
    pass


class MessageMiddleware(DashboardOnly, _Messages):
    pass


# Paths that answer JSON for every error. The dashboard (/admin/) keeps HTML.
_TOKEN_PATH = re.compile(r"/oauth/token/*$")
_ISSUER_PATH = re.compile(r"^/[-a-zA-Z0-9_]+/")  # the <slug:> of tenant/site/urls.py
_MANAGEMENT_API = "/api/v2"
_DASHBOARD = "/admin/"

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request", "Bad request."),
    403: ("access_denied", "Forbidden."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    413: ("invalid_request", "Request body too large."),
    431: ("invalid_request", "Request header fields too large."),
    500: ("server_error", "Internal server error."),
}
# Headers of the original error that still mean something in the JSON one.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def is_token_path(path: str) -> bool:
    return _TOKEN_PATH.search(path) is not None


def answers_json(request: HttpRequest) -> bool:
    """Whether ``request`` is for an issuer, the management API or a token
    endpoint, whose every answer is JSON. Decided from the path (and the
    tenant-domain urlconf), never from the Host header, which may be invalid."""
    path = request.path_info
    if is_token_path(path) or path == _MANAGEMENT_API or path.startswith(_MANAGEMENT_API + "/"):
        return True
    if _is_dashboard(path):
        return False
    if getattr(request, "urlconf", None) == "tenant.site.domain_urls":
        return True
    return _ISSUER_PATH.match(path) is not None


def _is_dashboard(path: str) -> bool:
    return path.startswith(_DASHBOARD) or path == _DASHBOARD.rstrip("/")


def json_error(status: int, **headers: str) -> JsonResponse:
    """The JSON (RFC 6749 §5.2 shaped) answer for an HTTP error status."""
    fallback = ("server_error", "Internal server error.") if status >= 500 else None
    error, description = _ERRORS.get(status) or fallback or ("invalid_request", "Bad request.")
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name] = value
    return response


def _header_bytes(request: HttpRequest) -> int:
    return sum(len(k) + len(str(v)) for k, v in request.META.items() if k.startswith("HTTP_"))


def _declared_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0  # what Django itself reads from an unparsable Content-Length


class IssuerJsonErrorsMiddleware:
    """Issuers, the management API and token endpoints answer JSON for every
    error, whoever produced it: a view's 404, CSRF's 403, a Host outside
    ALLOWED_HOSTS (400), an oversized body (413) or headers (431), a 500
    (never a debug page). Listed first, so that it sees every other layer's
    answer; token endpoints' answers are never cached."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        token_path = is_token_path(path)
        if not _is_dashboard(path):
            # Before any layer reads the request: answers_json() cannot know a
            # tenant domain yet, so every path outside the dashboard is checked.
            if _header_bytes(request) > settings.TESSERA_MAX_HEADER_BYTES:
                return json_error(431)
            # Token requests are a few short fields; other endpoints (the
            # management API) enforce DATA_UPLOAD_MAX_MEMORY_SIZE themselves.
            if token_path and _declared_length(request) > settings.TESSERA_TOKEN_MAX_BODY_BYTES:
                return json_error(413)
        response = self.get_response(request)
        # TenantDomainMiddleware marked the request, unless it never got that far.
        api_path = getattr(request, "api_path", None)
        if not (answers_json(request) if api_path is None else api_path):
            return response
        if response.status_code >= 400 and not _is_json(response):
            kept = {name: response[name] for name in _KEPT_HEADERS if response.has_header(name)}
            response = json_error(response.status_code, **kept)
        if token_path and response.get("Cache-Control") != "no-store":  # the view's own say it
            response["Cache-Control"] = "no-store"
        return response


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("application/json")
