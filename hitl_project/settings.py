"""Settings for the HITL review gates service.

Everything that differs between a laptop and production is read from the
environment (see the README's configuration table). Without any variables the
project runs on an embedded SQLite database with Celery tasks executed eagerly.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from hitl_project.security import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from exc


def env_list(name: str, default: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if DEBUG:
        SECRET_KEY = "insecure-development-key-only-used-with-debug-on"
    elif os.environ.get("HITL_MANAGEMENT_COMMAND") == "1":
        # One-off management commands (migrate, import_policy, …) sign nothing that
        # outlives them, so a throwaway key lets them run without the server's secret.
        SECRET_KEY = secrets.token_urlsafe(50)
    else:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off.")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "axes",
    "reviews",
    "policies",
    "metrics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "hitl_project.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: it turns a lockout into its response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "hitl_project.urls"
WSGI_APPLICATION = "hitl_project.wsgi.application"

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
                "hitl_project.security.csp",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------


def parse_database(url: str) -> dict:
    database = dj_database_url.parse(url)
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # Writers take the lock when their transaction starts, so two claims never
        # both read a free item and then both write it; WAL lets readers go on.
        database["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    else:
        database["CONN_MAX_AGE"] = env_int("DJANGO_CONN_MAX_AGE", 60)
        database["CONN_HEALTH_CHECKS"] = True
        if database["ENGINE"] == "django.db.backends.postgresql":
            # No JIT compilation: the metrics queries over a million decisions cost enough
            # to trigger it, and compiling them took longer than it saved; nothing else
            # the service runs is costly enough to use it. Server-side cursors (exports,
            # chain checks, backtests) always read their whole result, so they are planned
            # for all of it rather than for the first tenth of the rows.
            options = database.setdefault("OPTIONS", {})
            tuned = "-c jit=off -c cursor_tuple_fraction=1"
            options["options"] = f"{options.get('options', '')} {tuned}".strip()
    return database


DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": parse_database(DATABASE_URL)}
# An optional read replica for the metrics and audit reads (hitl_project.replica says which
# and why no others). Never migrated; under tests it is the test database itself (MIRROR).
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "").strip()
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = {**parse_database(DATABASE_REPLICA_URL), "TEST": {"MIRROR": "default"}}
    DATABASE_ROUTERS = ["hitl_project.replica.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery -----------------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "").strip()

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "hitl",
            # It only holds rate-limit counters: a Redis that hangs must not hold a request long.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Acknowledged when a task starts: a worker that dies mid-task loses the message, and
# the outbox sweep sends it again once the delivery's lease has run out. (Late acks
# would add nothing to that, and Celery 5.7 stops a worker that tries to acknowledge
# over a broker connection lost meanwhile.)
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
# visibility_timeout: above the longest task, so Redis never hands a running task to
# a second worker. Short socket timeouts and few publish retries: with the broker
# down, a request that commits a decision must not hang; the outbox sweep sends later.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 3600
CELERY_TIMEZONE = "UTC"
# Workers keep the LOGGING below (one line per record) instead of Celery's own handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Reconnects when Redis goes away with tasks in flight, instead of exiting (hitl_project/worker.py).
CELERY_WORKER_CONSUMER = "hitl_project.worker:ReconnectingConsumer"

# --- Auth, i18n, static ---------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Without collectstatic (make run, tests) files are served from the apps' folders.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns on every start when it is missing

LOGIN_URL = "admin:login"

# Brute force on the admin login: after 5 failures for one username from one
# address, that pair is locked out for 15 minutes (django-axes).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("HITL_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("HITL_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# The lockout answer: the admin's page with the cool-off in words, axes' 429 status.
AXES_LOCKOUT_CALLABLE = "hitl_project.views.login_lockout"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

# HTTPS deployments (behind a proxy that terminates TLS and sets X-Forwarded-Proto;
# it must overwrite, never pass on, a client's own header). Off by default so that
# `make run` keeps serving plain http://127.0.0.1:8000.
if env_bool("DJANGO_SECURE", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Load balancers probe over plain http.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # A year by default; start lower (DJANGO_HSTS_SECONDS=3600) on a first rollout,
    # since browsers remember the value and refuse http for that long.
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # Preloading commits the whole registered domain and its subdomains, in every
    # browser, for months: the domain owner's decision, not one service's. It is opt-in
    # (DJANGO_HSTS_PRELOAD), and check --deploy's W021 that only reminds of it is silenced.
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Content-Security-Policy (hitl_project.security): only this site's own files.
# CSP.NONCE in style-src allows an inline <style nonce="{{ csp_nonce }}"> on the page
# that prints it; other pages get plain 'self'. Scripts never run inline.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# --- REST framework ---------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "reviews.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["reviews.api.parsers.BoundedJSONParser"],
    "DEFAULT_THROTTLE_CLASSES": [
        "reviews.api.throttles.IntegrationRateThrottle",
        "reviews.api.throttles.StaffRateThrottle",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "hitl_project.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "HITL review gates API",
    "DESCRIPTION": (
        "Integrations submit model outputs and agent actions to the gate and follow them "
        "through human review. Authenticate with `Authorization: Api-Key <key>`; reviewers and "
        "compliance staff with a session or `Authorization: Token <key>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge from validator.swagger.io: it would send the schema URL to another origin.
    "SWAGGER_UI_SETTINGS": {"validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    # Items and incidents both have a `status`; each choice set gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "ItemStatusEnum": "reviews.models.ItemStatus",
        "IncidentStatusEnum": "reviews.models.Incident.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "hitl_project.api.strict_request_bodies",
    ],
}

# --- Product settings (SPEC section 9) ---------------------------------------------

HITL_WEBHOOK_ALLOW_PRIVATE = env_bool("HITL_WEBHOOK_ALLOW_PRIVATE", DEBUG)
HITL_CLAIM_MINUTES = env_int("HITL_CLAIM_MINUTES", 15)
HITL_MAX_SUBMISSION_BYTES = env_int("HITL_MAX_SUBMISSION_BYTES", 1024 * 1024)
# DRF rate strings ("<count>/<second|minute|hour|day>"), counted per integration or per user.
HITL_INTEGRATION_RATE = os.environ.get("HITL_INTEGRATION_RATE", "6000/minute")
HITL_STAFF_RATE = os.environ.get("HITL_STAFF_RATE", "600/minute")
DATA_UPLOAD_MAX_MEMORY_SIZE = max(HITL_MAX_SUBMISSION_BYTES, 2_621_440)

# How often each process checks whether gate rules changed (seconds): a rule edit
# applies everywhere within this time; in between, the gate costs no query.
HITL_RULES_REFRESH_SECONDS = float(os.environ.get("HITL_RULES_REFRESH_SECONDS", "1"))

# Delivery of callbacks and actions (reviews.delivery.worker).
HITL_DELIVERY_MAX_ATTEMPTS = env_int("HITL_DELIVERY_MAX_ATTEMPTS", 8)
HITL_DELIVERY_BACKOFF_SECONDS = env_int("HITL_DELIVERY_BACKOFF_SECONDS", 10)
HITL_DELIVERY_BACKOFF_MAX_SECONDS = env_int("HITL_DELIVERY_BACKOFF_MAX_SECONDS", 3600)
HITL_DELIVERY_TIMEOUT_SECONDS = env_int("HITL_DELIVERY_TIMEOUT_SECONDS", 10)
# Longer than the timeout: a worker owns an attempt this long before the sweep may hand it on.
HITL_DELIVERY_LEASE_SECONDS = env_int("HITL_DELIVERY_LEASE_SECONDS", 60)
HITL_OUTBOX_REDISPATCH_SECONDS = env_int("HITL_OUTBOX_REDISPATCH_SECONDS", 30)
# After a Redis error each process leaves it alone this long (seconds), longer than a socket
# timeout: rate limits count per process meanwhile (reviews.api.throttles), and consequences of
# decisions wait for the outbox sweep (reviews.delivery.outbox).
HITL_CACHE_RETRY_SECONDS = env_int("HITL_CACHE_RETRY_SECONDS", 30)
HITL_BROKER_RETRY_SECONDS = env_int("HITL_BROKER_RETRY_SECONDS", 30)
HITL_METRICS_TOKEN = os.environ.get("HITL_METRICS_TOKEN", "").strip()  # GET /metrics bearer token; unset: 404
# Minutes between the backlog snapshots beat takes for the dashboard's trend (metrics.take_snapshots;
# hitl_project/celery.py reads the same variable), and the step of `backfill_snapshots`.
HITL_SNAPSHOT_MINUTES = env_int("HITL_SNAPSHOT_MINUTES", 15)
# The origin people reach this service at (https://hitl.example.com), for links in what is
# sent without a request to build them from: the `review_url` in webhook bodies. Unset,
# those links are paths (/admin/reviews/reviewitem/<id>/review/); API answers always
# carry absolute links, built from the request.
HITL_PUBLIC_URL = os.environ.get("HITL_PUBLIC_URL", "").strip().rstrip("/")
if HITL_PUBLIC_URL and not HITL_PUBLIC_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"HITL_PUBLIC_URL must start with http:// or https://, not {HITL_PUBLIC_URL!r}"
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # One record, one line: free text (a justification, say) cannot start a forged line.
    "formatters": {
        "plain": {
            "class": "hitl_project.logging.SingleLineFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    # No handler of its own: Django's default one (debug only) writes messages raw, and twice.
    "loggers": {"django": {"handlers": [], "level": "INFO"}, "django.db.backends": {"level": "INFO"}},
}
# Feedback export files: written by the worker, downloaded through the web process
# (both must see this folder: a shared volume when they run on different machines).
HITL_EXPORTS_DIR = Path(os.environ.get("HITL_EXPORTS_DIR") or BASE_DIR / "exports")
