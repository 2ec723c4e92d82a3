"""Who calls the Management API, and Auth0's error for it.

Kept apart from ``tenant.management_api`` because DRF imports the
authentication class (``clients.authentication``), and so this, while
``rest_framework.views`` itself is being imported.
"""

from dataclasses import dataclass

from rest_framework import exceptions

from tenant.audit import Actor

MISSING_AUTHENTICATION = "Missing authentication"


class ApiError(exceptions.APIException):
    """An error answered with Auth0's body ``{statusCode, error, message, errorCode}``."""

    def __init__(self, status_code: int, message: str, error_code: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code


@dataclass(frozen=True)
class ManagementToken:
    """A verified management token: who calls, and what they may do. Made by
    the authentication class named in ``REST_FRAMEWORK``'s
    ``DEFAULT_AUTHENTICATION_CLASSES`` (``clients.authentication``)."""

    client_id: str
    client_name: str
    scopes: frozenset[str]

    @property
    def actor(self) -> Actor:
        return Actor.for_client(client_id=self.client_id, name=self.client_name)


def unauthorized(message: str) -> ApiError:
    """Auth0's 401 for a missing or invalid management token."""
    return ApiError(401, message, "invalid_token" if message != MISSING_AUTHENTICATION else "")
