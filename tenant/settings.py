"""Settings for Tessera.

Everything a deployment changes comes from the environment (SPEC §1). With no
environment at all, a checkout runs on SQLite and the local-memory cache, and
the two secrets it needs (Django's SECRET_KEY and the key-encryption key for
secrets at rest) are generated once into ``var/`` so that restarts keep them.
"""

import os
import secrets
from collections.abc import Callable
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TESSERA_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def local_secret(name: str, generate: Callable[[], str]) -> str:
    """Read a generated secret from var/, creating it (mode 0600) on first use."""
    path = VAR_DIR / name
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    value = generate()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


DEBUG = env_bool("DEBUG")
SECRET_KEY = os.environ.get("SECRET_KEY") or local_secret(
    "secret_key", lambda: secrets.token_urlsafe(50)
)
# Fernet keys, comma-separated: the first encrypts, all decrypt (key rotation).
TESSERA_KEK = os.environ.get("TESSERA_KEK") or local_secret(
    "kek", lambda: Fernet.generate_key().decode()
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")

# The issuer of a tenant without its own domain is {PUBLIC_URL}/{slug}/.
PUBLIC_URL = os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
# Scheme of issuers for tenants served on their own domain.
TENANT_DOMAIN_SCHEME = os.environ.get("TENANT_DOMAIN_SCHEME", "https")

INSTALLED_APPS = [
    "tenant.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "oauth2_provider",
    "django_ace",
    "tenant",
    "apis",
    "clients",
    "hooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tenant.config_cache.ConfigGenerationMiddleware",
    "tenant.middleware.TenantDomainMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tenant.middleware.IssuerJsonErrorsMiddleware",
]

ROOT_URLCONF = "tenant.urls"
WSGI_APPLICATION = "tenant.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# "default" holds what may differ per process (rate-limit counters without
# Redis); "shared" what every process must agree on: the configuration
# generation that invalidates memoised lookups, and hook storage copies.
# Without Redis, "shared" is a file cache, shared by the processes of one
# machine (runserver, gunicorn workers, manage.py commands).
REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL:
    _redis = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "tessera",
    }
    CACHES = {"default": _redis, "shared": _redis}
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        },
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# People's passwords keep Django's slow default; client secrets are 256+ random
# bits and use a fast salted SHA-256 (listed last so it is never the default).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "clients.hashers.ClientSecretHasher",
]

OAUTH2_PROVIDER_APPLICATION_MODEL = "clients.Client"
OAUTH2_PROVIDER = {"CLIENT_SECRET_HASHER": "tessera_client_secret_sha256"}

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "UNAUTHENTICATED_USER": None,
}

# Token requests per client per period ("100/s", "6000/m"); empty turns it off.
TESSERA_TOKEN_RATE_LIMIT = os.environ.get("TESSERA_TOKEN_RATE_LIMIT", "100/s")
# Token request bodies are a handful of short fields.
TESSERA_TOKEN_MAX_BODY_BYTES = 16_384

# Hooks (SPEC §4). Per-tenant time and memory limits live on the Tenant.
TESSERA_HOOK_MAX_SCRIPT_BYTES = 100_000
# Namespaced claims may not use these hosts (nor their subdomains); the
# deployment's PUBLIC_URL host and each tenant's own domain are added.
TESSERA_RESERVED_CLAIM_DOMAINS = env_list(
    "TESSERA_RESERVED_CLAIM_DOMAINS", "auth0.com,webtask.io,webtask.run"
)
# Token requests log hook runs from a background thread; tests write at once.
TESSERA_HOOK_RUN_LOG_ASYNC = env_bool("TESSERA_HOOK_RUN_LOG_ASYNC", True)
TESSERA_HOOK_RUN_RETENTION_DAYS = int(os.environ.get("TESSERA_HOOK_RUN_RETENTION_DAYS", "7"))

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

LOGIN_URL = "admin:login"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PUBLIC_URL.startswith("https://")
SESSION_COOKIE_HTTPONLY = True
if env_bool("BEHIND_TLS_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    # oauthlib and DOT log client ids and request reprs at DEBUG; keep them quiet.
    "loggers": {
        "oauthlib": {"level": "WARNING"},
        "oauth2_provider": {"level": "WARNING"},
    },
}
