"""Django settings. Every value that differs between a laptop and production comes from
`feedback_site.env`; see the README's configuration table."""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from feedback_site import env

BASE_DIR = env.BASE_DIR
VAR_DIR = env.VAR_DIR
PRODUCTION = env.PROFILE == "production"

if PRODUCTION:
    SECRET_KEY = env.get("DJANGO_SECRET_KEY")
    if len(SECRET_KEY) < 50:
        raise RuntimeError("DJANGO_SECRET_KEY must be set to a random string of 50+ characters in production")
else:
    # Only ever used on a laptop or in tests; production refuses to start without its own key.
    SECRET_KEY = env.get("DJANGO_SECRET_KEY", "embedded-insecure-key-for-local-use-only-0123456789abcdef")

# Off unless asked for (DJANGO_DEBUG=1), on a laptop too: Django's debug page lists every route
# and setting, and `make run` should show the same friendly error pages as production.
DEBUG = env.get_bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.get_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.get_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "feedback_site.core",
    "feedback_site.projects",
    "feedback_site.registry",
    "feedback_site.annotation",
    "feedback_site.generation",
    "feedback_site.snapshots",
    "feedback_site.training",
    "feedback_site.quality",
    "feedback_site.evaluation",
    "feedback_site.safety",
    "feedback_site.playground",
    "feedback_site.demonstrations",
    "feedback_site.ratings",
    "feedback_site.rankings",
    "feedback_site.conversations",
    "feedback_site.loop",
    "feedback_site.ops",
    "feedback_site.overview",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's own 404/405/500 answers under /api/ become JSON in the API's error shape.
    "feedback_site.core.middleware.ApiErrorJsonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, so it sees a view's exception first: a full or read-only artifact folder is a 503 page.
    "feedback_site.core.middleware.StorageErrorMiddleware",
]

ROOT_URLCONF = "feedback_site.urls"
WSGI_APPLICATION = "feedback_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "feedback_site" / "templates"],
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

_default_sqlite = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        env.get("DATABASE_URL", _default_sqlite),
        conn_max_age=env.get_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions serialise writers up front, which is what the assignment queue
    # needs on SQLite (it has no SELECT ... FOR UPDATE); the timeout lets the web process and the
    # worker wait for each other instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"

# Content-Security-Policy on every response (django-csp). Scripts and styles come only from our
# own static files: no inline <script>, no on...= handlers, no style= attributes or <style>
# blocks (a template that needs a computed width sets data-width and core/site.js applies it
# through the CSSOM, which CSP does not govern). The nh3 sanitiser of model text stays as the
# first defence; this policy is the second, for whatever a sanitiser bug lets through.
# `data:` images are for the admin's and Swagger UI's inline SVG icons; fetches stay same-origin.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
# Production serves collected, hashed files through WhiteNoise; elsewhere WhiteNoise serves
# straight from the apps' static folders, so gunicorn works without a collectstatic step.
STATIC_ROOT = Path(env.get("DJANGO_STATIC_ROOT", str(VAR_DIR / "static"))) if PRODUCTION else None
WHITENOISE_USE_FINDERS = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Artifacts: model weights, snapshots, generation scratch files. A shared volume in production.
ARTIFACTS_DIR = Path(env.get("FEEDBACK_ARTIFACTS_DIR", str(VAR_DIR / "artifacts")))
# The base policy registered as version 0 of every new project.
DEFAULT_POLICY_URI = env.get("FEEDBACK_DEFAULT_POLICY", "builtin:smollm2-135m-instruct")
DEFAULT_POLICY_NAME = env.get("FEEDBACK_DEFAULT_POLICY_NAME", "SmolLM2-135M-Instruct")

# Uploads: refused above this size before parsing (the parser has its own per-record limits).
IMPORT_MAX_BYTES = env.get_int("FEEDBACK_IMPORT_MAX_BYTES", 50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

ASSIGNMENT_LEASE_SECONDS = env.get_int("FEEDBACK_LEASE_SECONDS", 600)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's TokenAuthentication, answered with one SQL statement (see core/auth.py).
        "feedback_site.core.auth.LeanTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "feedback_site.core.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Feedback loop API",
    "DESCRIPTION": "Projects, imports, generation, annotation queue and preference snapshots.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Generation and training runs share one set of status values, model versions another; both
    # fields are called "status". Naming them keeps the schema stable (and `check` quiet).
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "feedback_site.generation.models.RunStatus",
        "VersionStatusEnum": "feedback_site.registry.models.VersionStatus",
    },
}

# Celery: the laptop default is kombu's filesystem transport, which needs no server.
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = env.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {"visibility_timeout": env.get_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
)
CELERY_BROKER_DIR = _broker_dir
# App-wide limits; a task's spec (workers/task_names.py) may set tighter ones.
CELERY_TASK_SOFT_TIME_LIMIT = env.get_int("CELERY_SOFT_TIME_LIMIT", 6 * 3600)
CELERY_TASK_TIME_LIMIT = env.get_int("CELERY_TIME_LIMIT", 6 * 3600 + 300)
# A training run whose worker sent no heartbeat for this long is requeued (training.requeue_stale).
HEARTBEAT_STALE_SECONDS = env.get_int("FEEDBACK_HEARTBEAT_STALE_SECONDS", 90)
# Seconds between two looks at an active round (tests set it lower), and for a round waiting for
# people (human annotation, a promotion decision).
LOOP_TICK_SECONDS = env.get_float("LOOP_TICK_SECONDS", 10.0)
LOOP_SLOW_TICK_SECONDS = env.get_float("LOOP_SLOW_TICK_SECONDS", 60.0)
# Playground worker: torch threads (empty: torch's default), versions kept loaded, tokens per flush.
PLAYGROUND_TORCH_THREADS = env.get_int("PLAYGROUND_TORCH_THREADS", 0)
PLAYGROUND_MAX_MODELS = env.get_int("PLAYGROUND_MAX_MODELS", 2)
PLAYGROUND_FLUSH_TOKENS = max(1, env.get_int("PLAYGROUND_FLUSH_TOKENS", 4))

# Django's cache holds login-throttle counts (core/throttle.py). Production shares one Redis
# between every gunicorn worker (the broker's, unless FEEDBACK_CACHE_URL names another);
# elsewhere each process keeps its own in memory.
_cache_url = env.get("FEEDBACK_CACHE_URL", CELERY_BROKER_URL if PRODUCTION and CELERY_BROKER_URL.startswith("redis") else "")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": _cache_url,
        "KEY_PREFIX": "feedback",
        # A down Redis must not hang logins: the throttle fails open after this long.
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
    if _cache_url.startswith(("redis://", "rediss://"))
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
# Login throttling: this many failed logins per username and address within the window (seconds)
# and further attempts are refused until the window passes.
LOGIN_THROTTLE_FAILURES = env.get_int("FEEDBACK_LOGIN_THROTTLE_FAILURES", 5)
LOGIN_THROTTLE_WINDOW = env.get_int("FEEDBACK_LOGIN_THROTTLE_WINDOW", 15 * 60)

# LOG_FORMAT=json (the production default) writes one JSON object per line with the Celery task
# id and the training/generation run id of each line (feedback_site/core/logs.py).
LOG_FORMAT = env.get("LOG_FORMAT", "json" if PRODUCTION else "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "feedback_site.core.logs.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "feedback_site.core.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.get_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.get_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
    SECURE_REFERRER_POLICY = "same-origin"
    SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    CSRF_COOKIE_SAMESITE = "Lax"
    # The annotator page reads the CSRF cookie from JavaScript to send X-CSRFToken, so the CSRF
    # cookie stays readable (Django's default); the session cookie is HttpOnly.
    CSRF_COOKIE_HTTPONLY = False
    SESSION_COOKIE_AGE = env.get_int("DJANGO_SESSION_COOKIE_AGE", 12 * 3600)
