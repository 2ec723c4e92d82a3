from django.db import models


class TokenEndpointAuthMethod(models.TextChoices):
    """How a client presents its secret (RFC 7591 §2)."""

    CLIENT_SECRET_POST = "client_secret_post", "Post (client_secret in the body)"
    CLIENT_SECRET_BASIC = "client_secret_basic", "Basic (HTTP Basic authentication)"
