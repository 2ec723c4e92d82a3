"""Tenant resolution from the Host header, and JSON errors under issuers."""

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

from tenant.selectors import tenant_for_domain

logger = logging.getLogger(__name__)


class TenantDomainMiddleware:
    """Serve a tenant with its own domain at that domain's root."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.public_host = urlsplit(settings.PUBLIC_URL).hostname or ""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        host = request.get_host().rsplit(":", 1)[0].lower()
        if host not in (self.public_host, "localhost", "127.0.0.1", "testserver"):
            tenant = tenant_for_domain(host=host)
            if tenant is not None:
                request.tenant = tenant  # type: ignore[attr-defined]
                request.urlconf = "tenant.domain_urls"
        return self.get_response(request)


class IssuerJsonErrorsMiddleware:
    """Under a tenant's issuer, a 404 or an unexpected error is JSON too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        match = request.resolver_match
        if match is None or "issuer" not in match.namespaces:
            return None
        if isinstance(exception, Http404):
            body = {"error": "not_found", "error_description": "Not found."}
            status = 404
        else:
            logger.exception("Unhandled error under an issuer", exc_info=exception)
            body = {"error": "server_error", "error_description": "Internal server error."}
            status = 500
        response = JsonResponse(body, status=status)
        response["Cache-Control"] = "no-store"
        return response
