"""Settings for Tessera.

Everything a deployment changes comes from the environment (SPEC §1). With no
environment at all, a checkout runs on SQLite and the local-memory cache, and
the two secrets it needs (Django's SECRET_KEY and the key-encryption key for
secrets at rest) are generated once into ``var/`` so that restarts keep them
(the KEK only for a database that holds no secret yet: ``tenant.crypto``).
"""

import os
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parents[2]
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
# Without it, tenant.crypto generates one into TESSERA_KEK_FILE, and only for
# a database that holds no secret yet.
TESSERA_KEK = os.environ.get("TESSERA_KEK", "")
TESSERA_KEK_FILE = VAR_DIR / "kek"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")

# The issuer of a tenant without its own domain is {PUBLIC_URL}/{slug}/;
# unset, it follows PORT as `make run` does, so manage.py agrees with it.
PUBLIC_URL = (
    os.environ.get("PUBLIC_URL") or f"http://127.0.0.1:{os.environ.get('PORT') or 8000}"
).rstrip("/")
# Scheme of issuers for tenants served on their own domain.
TENANT_DOMAIN_SCHEME = os.environ.get("TENANT_DOMAIN_SCHEME", "https")

INSTALLED_APPS = [
    "tenant.site.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "oauth2_provider",
    "django_ace",
    "tenant",
    "apis",
    "clients",
    "hooks",
    "axes",
    "tenant.site",  # the wiring, above every app
]

MIDDLEWARE = [
    # First, so that every answer on an API path, from any layer below, is JSON.
    "tenant.site.middleware.IssuerJsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "tenant.metrics.TokenMetricsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tenant.config_cache.ConfigGenerationMiddleware",
    "tenant.site.middleware.TenantDomainMiddleware",
    # Django's own, stepping aside on API paths (tenant.site.middleware.DashboardOnly).
    "tenant.site.middleware.SessionMiddleware",
    "tenant.site.middleware.CommonMiddleware",
    "tenant.site.middleware.CsrfViewMiddleware",
    "tenant.site.middleware.AuthenticationMiddleware",
    "tenant.site.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After authentication, as django-axes requires: turns a locked-out login
    # into its page.
    "axes.middleware.AxesMiddleware",
    # Innermost, so a database outage is a 503 before any 500 handler sees it.
    "tenant.dependencies.DependencyErrorsMiddleware",
]

ROOT_URLCONF = "tenant.site.urls"
WSGI_APPLICATION = "tenant.site.wsgi.application"

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

# SQLite as a real embedded database: readers never block the writer (WAL),
# writers queue for the lock (busy timeout, seconds) instead of failing with
# "database is locked", and transactions take the write lock when they begin
# (IMMEDIATE): a DEFERRED one that reads then writes cannot wait for the lock,
# SQLite fails it at once.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }

# "default" holds what may differ per process (rate-limit counters without
# Redis); "shared" what every process must agree on: the configuration
# generation that invalidates memoised lookups, and hook storage copies.
# Without Redis, "shared" is a file cache, shared by the processes of one
# machine (runserver, gunicorn workers, manage.py commands).
REDIS_URL = os.environ.get("REDIS_URL")
# Seconds to connect to or hear from Redis before falling back (sub-second).
TESSERA_REDIS_TIMEOUT = float(os.environ.get("TESSERA_REDIS_TIMEOUT", "0.25"))
if REDIS_URL:
    # Short timeouts and a circuit breaker (tenant.dependencies): a Redis that
    # is down or frozen costs a request a fraction of a second, then nothing.
    _redis_options = {
        "SOCKET_CONNECT_TIMEOUT": TESSERA_REDIS_TIMEOUT,
        "SOCKET_TIMEOUT": TESSERA_REDIS_TIMEOUT,
    }
    CACHES = {
        # Rate limits fall back to per-process counters while Redis is away.
        "default": {
            "BACKEND": "tenant.dependencies.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tessera",
            "OPTIONS": {**_redis_options, "FALLBACK": "local"},
        },
        # Shared copies of database data miss, and are read from the database.
        "shared": {
            "BACKEND": "tenant.dependencies.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tessera",
            "OPTIONS": {**_redis_options, "FALLBACK": "miss"},
        },
    }
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

# Dashboard login throttling (django-axes): after AXES_FAILURE_LIMIT wrong
# passwords, a username is locked out from that address for AXES_COOLOFF_TIME.
# Unlock early: python manage.py axes_reset_username NAME (README, "The dashboard").
AUTHENTICATION_BACKENDS = [
    "tenant.site.login_throttle.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("TESSERA_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("TESSERA_LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "tenant.site.login_throttle.login_locked_out"
# The address is REMOTE_ADDR: behind a proxy every login comes from the
# proxy's address, and the lockout is then per username.

OAUTH2_PROVIDER_APPLICATION_MODEL = "clients.Client"
OAUTH2_PROVIDER = {"CLIENT_SECRET_HASHER": "tessera_client_secret_sha256"}

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "UNAUTHENTICATED_USER": None,
    # The Management API's callers (tenant.management_api.ManagementView);
    # the token endpoint and the public OpenAPI views authenticate nobody.
    "DEFAULT_AUTHENTICATION_CLASSES": ["clients.authentication.ManagementTokenAuthentication"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# Token requests per client per period ("100/s", "6000/m"); empty turns it off.
TESSERA_TOKEN_RATE_LIMIT = os.environ.get("TESSERA_TOKEN_RATE_LIMIT", "100/s")
# Token request bodies are a handful of short fields.
TESSERA_TOKEN_MAX_BODY_BYTES = 16_384
# Request headers on API paths, in total (names and values): beyond it, 431.
TESSERA_MAX_HEADER_BYTES = 16_384

# Hooks (SPEC §4). Per-tenant time and memory limits live on the Tenant.
TESSERA_HOOK_MAX_SCRIPT_BYTES = 100_000
# "inprocess" (default): hooks run in QuickJS on the server's own threads.
# "process": the same engine in worker processes that hold no server secrets,
# for operators hosting tenants they do not trust (README, "Hook isolation").
TESSERA_HOOK_ISOLATION = os.environ.get("TESSERA_HOOK_ISOLATION", "inprocess")
if TESSERA_HOOK_ISOLATION not in ("inprocess", "process"):
    raise ValueError("TESSERA_HOOK_ISOLATION must be 'inprocess' or 'process'")
# Where hooks' fetch may go (hooks/runtime/egress.py): public http/https on
# ports 80 and 443 by default; TESSERA_EGRESS_ALLOW lets through what would be
# refused ("127.0.0.1:*" for development and tests), TESSERA_EGRESS_DENY
# refuses what would be allowed: comma-separated host[:port], *.domain[:port]
# or CIDR[:port]. TESSERA_EGRESS_PROXY sends every hook request through an
# HTTP(S) proxy; TESSERA_EGRESS_CA_FILE replaces the trusted roots (a PEM file).
TESSERA_HOOK_NETWORK = env_bool("TESSERA_HOOK_NETWORK", True)
TESSERA_EGRESS_ALLOW = os.environ.get("TESSERA_EGRESS_ALLOW", "")
TESSERA_EGRESS_DENY = os.environ.get("TESSERA_EGRESS_DENY", "")
TESSERA_EGRESS_PROXY = os.environ.get("TESSERA_EGRESS_PROXY", "") or None
TESSERA_EGRESS_CA_FILE = os.environ.get("TESSERA_EGRESS_CA_FILE", "") or None
TESSERA_HOOK_MAX_FETCHES = int(os.environ.get("TESSERA_HOOK_MAX_FETCHES", "20"))
TESSERA_HOOK_MAX_RESPONSE_BYTES = int(os.environ.get("TESSERA_HOOK_MAX_RESPONSE_BYTES", "5000000"))
# npm dependencies of hooks and Actions (hooks/dependencies.py), resolved when
# a hook is saved or an Action built: from this registry, at most this many
# declared per hook or Action (Auth0's 10) and this many in all, unpacking to at
# most this many bytes per hook or Action version, the whole within this many
# seconds. Packages are unpacked once into TESSERA_NPM_STORE (default var/npm).
TESSERA_NPM_REGISTRY = os.environ.get("TESSERA_NPM_REGISTRY", "https://registry.npmjs.org")
TESSERA_NPM_MAX_DIRECT_DEPENDENCIES = int(
    os.environ.get("TESSERA_NPM_MAX_DIRECT_DEPENDENCIES", "10")
)
TESSERA_NPM_MAX_PACKAGES = int(os.environ.get("TESSERA_NPM_MAX_PACKAGES", "200"))
TESSERA_NPM_MAX_UNPACKED_BYTES = int(os.environ.get("TESSERA_NPM_MAX_UNPACKED_BYTES", "30000000"))
TESSERA_NPM_RESOLVE_TIMEOUT_SECONDS = float(
    os.environ.get("TESSERA_NPM_RESOLVE_TIMEOUT_SECONDS", "60")
)
# Worker processes per server process, with TESSERA_HOOK_ISOLATION=process.
TESSERA_HOOK_WORKERS = int(os.environ.get("TESSERA_HOOK_WORKERS", "2"))
# Idle warm hook contexts kept per server process (or hook worker), shared by
# its threads, least recently used dropped first; each is a few hundred kB.
# TESSERA_HOOK_CONTEXTS_PER_THREAD is its former name (when contexts were
# kept per thread), still read.
TESSERA_HOOK_WARM_CONTEXTS = int(
    os.environ.get("TESSERA_HOOK_WARM_CONTEXTS")
    or os.environ.get("TESSERA_HOOK_CONTEXTS_PER_THREAD")
    or "256"
)
# Fairness, per server process: concurrent hook runs one tenant may have (a
# run over it waits this many ms for a slot, then is refused), concurrent test
# runs (the dashboard's Run), and the breaker that fails a hook fast for a
# cool-down after that many timeouts or memory failures in a row (at once for
# a run that burns its whole CPU budget).
TESSERA_HOOK_TENANT_CONCURRENCY = int(os.environ.get("TESSERA_HOOK_TENANT_CONCURRENCY", "1"))
TESSERA_HOOK_TENANT_QUEUE_MS = float(os.environ.get("TESSERA_HOOK_TENANT_QUEUE_MS", "100"))
# Runs of one tenant that may queue for its slot at once; more are refused.
TESSERA_HOOK_TENANT_QUEUED = int(os.environ.get("TESSERA_HOOK_TENANT_QUEUED", "4"))
# Runs of one tenant that may wait on their upstreams (fetch) at once per
# server process without holding one of its TESSERA_HOOK_TENANT_CONCURRENCY
# slots (inprocess isolation; the server's threads must outnumber it).
TESSERA_HOOK_TENANT_WAITING = int(os.environ.get("TESSERA_HOOK_TENANT_WAITING", "24"))
# Each server worker pinned to a CPU of its own (tenant/site/affinity.py): on
# a host whose CPUs are the server's own, not where other servers share them.
TESSERA_PIN_WORKERS = env_bool("TESSERA_PIN_WORKERS")
TESSERA_HOOK_TEST_RUNS_PER_PROCESS = int(os.environ.get("TESSERA_HOOK_TEST_RUNS_PER_PROCESS", "2"))
TESSERA_HOOK_BREAKER_FAILURES = int(os.environ.get("TESSERA_HOOK_BREAKER_FAILURES", "3"))
TESSERA_HOOK_BREAKER_COOLDOWN_SECONDS = float(
    os.environ.get("TESSERA_HOOK_BREAKER_COOLDOWN_SECONDS", "30")
)
# Namespaced claims may not use these hosts (nor their subdomains); the
# deployment's PUBLIC_URL host and each tenant's own domain are added.
TESSERA_RESERVED_CLAIM_DOMAINS = env_list(
    "TESSERA_RESERVED_CLAIM_DOMAINS", "auth0.com,webtask.io,webtask.run"
)
# Token requests log hook runs from a background thread; tests write at once.
TESSERA_HOOK_RUN_LOG_ASYNC = env_bool("TESSERA_HOOK_RUN_LOG_ASYNC", True)
TESSERA_HOOK_RUN_RETENTION_DAYS = int(os.environ.get("TESSERA_HOOK_RUN_RETENTION_DAYS", "7"))
# Token requests and hook runs are counted per process and added to the
# activity tables this often (seconds); 0: only when tenant.activity.flush() is
# called (tests). A process killed outright loses at most one interval.
TESSERA_ACTIVITY_FLUSH_SECONDS = float(os.environ.get("TESSERA_ACTIVITY_FLUSH_SECONDS", "10"))
TESSERA_ACTIVITY_RETENTION_DAYS = int(os.environ.get("TESSERA_ACTIVITY_RETENTION_DAYS", "2"))
# Concurrent dashboard test runs (the Run button) per user and server process;
# beyond it Run answers "busy" (the process-wide cap is the governor's above).
TESSERA_TEST_RUNS_PER_USER = int(os.environ.get("TESSERA_TEST_RUNS_PER_USER", "2"))
# What a change would do, before it goes live (hooks.dry_run): the hook
# arguments of token requests are kept, without secrets, one per client, audience and
# requested scope, the latest this many per tenant, each at most this many
# bytes (a bigger one is not kept), as long as run records; off with
# TESSERA_RECORD_HOOK_INPUTS=0. A dry run replays them within this many seconds.
TESSERA_RECORD_HOOK_INPUTS = env_bool("TESSERA_RECORD_HOOK_INPUTS", True)
TESSERA_RECORDED_INPUTS_PER_TENANT = int(
    os.environ.get("TESSERA_RECORDED_INPUTS_PER_TENANT", "100")
)
TESSERA_RECORDED_INPUT_MAX_BYTES = int(os.environ.get("TESSERA_RECORDED_INPUT_MAX_BYTES", "16384"))
TESSERA_DRY_RUN_SECONDS = float(os.environ.get("TESSERA_DRY_RUN_SECONDS", "15"))

# --- Running as a fleet (README, "Operating a fleet") ---------------------------
# No server serves configuration older than this many seconds after a change
# commits, whatever happens to Redis (tenant.config_cache).
TESSERA_CONFIG_MAX_STALENESS = float(os.environ.get("TESSERA_CONFIG_MAX_STALENESS", "1"))
# While the database does not answer, serve the configuration held for this
# long (tokens keep flowing through a database restart), then answer 503.
TESSERA_CONFIG_OUTAGE_GRACE = float(os.environ.get("TESSERA_CONFIG_OUTAGE_GRACE", "120"))
# A thread per process re-reads the generation; the unit tests read it inline.
TESSERA_CONFIG_WATCH = env_bool("TESSERA_CONFIG_WATCH", True)
# Bearer token for /metrics and /readyz; without it only loopback clients get them.
TESSERA_METRICS_TOKEN = os.environ.get("TESSERA_METRICS_TOKEN", "")
# Hook-run records held per process while the database is away (≈ 1-2 minutes
# of a busy worker); beyond it they are dropped, counted and logged.
TESSERA_HOOK_RUN_LOG_BUFFER = int(os.environ.get("TESSERA_HOOK_RUN_LOG_BUFFER", "100000"))
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that accepts but never answers must not hang a request for
    # psycopg's default connect timeout (minutes): fail fast and answer 503.
    _pg_options = DATABASES["default"].setdefault("OPTIONS", {})
    _pg_options.setdefault(
        "connect_timeout", int(os.environ.get("TESSERA_DB_CONNECT_TIMEOUT", "3"))
    )
    _pg_options.setdefault(
        "options",
        f"-c statement_timeout={int(os.environ.get('TESSERA_DB_STATEMENT_TIMEOUT_MS', '10000'))}",
    )
    # A process's threads share a few connections (psycopg's pool, through
    # Django), each held only while a request or a background round uses it:
    # with a connection kept per thread, the README's threads per worker
    # (then 32) took 32 connections per core, and idle threads kept them
    # while others were refused. A connection that fails to open is tried again by the
    # next request that needs one, not on a back-off that outlasts an outage.
    # While connections cannot be opened, a request fails fast instead
    # (tenant.site.postgresql). While they can, a request that finds them
    # all in use waits its turn, up to 30 s: writers queued on one row hold
    # connections for as long as the queue ahead of them takes.
    DATABASES["default"]["ENGINE"] = "tenant.site.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them instead
    _pg_options.setdefault(
        "pool",
        {
            "min_size": 1,
            "max_size": int(os.environ.get("TESSERA_DB_POOL_SIZE", "8")),
            "timeout": 30.0,
            "reconnect_timeout": float(_pg_options["connect_timeout"]),
            "name": "tessera",
        },
    )
# ------------------------------------------------------------------------------

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
        # A connection the pool cannot open fails the request that needed it,
        # which says so; the pool's own line for each attempt is noise.
        "psycopg.pool": {"level": "ERROR"},
    },
}

# Management API rate limit: requests per window per client, shared by all
# servers through the "shared" cache; answered with X-RateLimit-* headers.
TESSERA_MANAGEMENT_RATE_LIMIT = int(os.environ.get("TESSERA_MANAGEMENT_RATE_LIMIT", "600"))
TESSERA_MANAGEMENT_RATE_WINDOW_S = int(os.environ.get("TESSERA_MANAGEMENT_RATE_WINDOW_S", "60"))

# The Management API's OpenAPI document ({issuer}api/v2/openapi.json) and its
# Swagger UI page ({issuer}api/v2/docs), assets from drf-spectacular-sidecar.
SPECTACULAR_SETTINGS = {
    "TITLE": "Tessera Management API",
    "DESCRIPTION": "Auth0 Management API v2, for hooks, resource servers, clients and "
    "client grants. Authenticate with a token of the tenant's own token endpoint for "
    "the audience {issuer}api/v2/.",
    "VERSION": "2",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
    },
    "SECURITY": [{"bearerAuth": []}],
}
