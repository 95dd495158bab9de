"""One settings module for every environment, driven by environment variables.

Defaults give a working single machine (SQLite and Celery's filesystem broker under
var/), so clone -> `make demo` just works. Production differs only by values; every
variable is listed in .env.example. A bad value stops start-up with the variable's name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def database_from_env(name: str = "DATABASE_URL") -> dict[str, Any]:
    default = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    raw = os.environ.get(name, "").strip() or default
    try:
        config = dj_database_url.parse(raw, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0))
    except Exception as exc:  # dj_database_url raises several types for a bad URL
        raise ImproperlyConfigured(f"{name}={raw!r} is not a usable database URL: {exc}")
    engine = config.get("ENGINE", "")
    if engine not in ("django.db.backends.sqlite3", "django.db.backends.postgresql"):
        raise ImproperlyConfigured(f"{name}={raw!r}: only sqlite:// and postgres:// URLs are supported")
    if engine == "django.db.backends.sqlite3":
        # Several processes (web, worker, beat) share the file: wait for locks, and
        # take the write lock at BEGIN so a read-then-write never deadlocks.
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        }
        # A file, not memory, so a real Celery worker process in the tests sees the test database.
        config["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME") or str(VAR_DIR / "test-db.sqlite3")}
    elif os.environ.get("TEST_DATABASE_NAME"):
        config["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}
    return config


DEBUG = env_bool("DEBUG", default=True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "dev-insecure-key-only-for-debug"  # noqa: S105 - refused above when DEBUG is off
# Keyed hash for payment tokens; separate from SECRET_KEY so rotating one leaves the other.
TOKEN_HASH_KEY = os.environ.get("TOKEN_HASH_KEY", "") or SECRET_KEY

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "reviewapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "reviewapp.middleware.NoStorePagesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "reviewapp.access.roles_context",
                "reviewapp.views.reviewer.undo_offer",
            ],
        },
    },
]

DATABASES = {"default": database_from_env()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes): lock a username+IP pair after repeated failures.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_float("AXES_COOLOFF_HOURS", 0.25, minimum=0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLED = env_bool("AXES_ENABLED", True)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"  # never served directly: clip bytes go through an authenticated view
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
MAX_FOOTAGE_UPLOAD_MB = env_int("MAX_FOOTAGE_UPLOAD_MB", 512, minimum=1)

# How a production proxy serves clip bytes after our view has checked access:
# "django" streams them itself (with Range support), "nginx" answers X-Accel-Redirect,
# "sendfile" answers X-Sendfile (Apache, lighttpd).
MEDIA_SERVE_MODE = env_choice("MEDIA_SERVE_MODE", "django", ("django", "nginx", "sendfile"))
MEDIA_ACCEL_PREFIX = os.environ.get("MEDIA_ACCEL_PREFIX", "/protected-media/")

# --- Celery (read by config/celery.py with the CELERY_ namespace) ----------------
CELERY_BROKER_URL = (
    os.environ.get("CELERY_BROKER_URL", "").strip() or "filesystem://localhost//"
)  # a host named: kombu warns without one
CELERY_BROKER_DIR = Path(os.environ.get("CELERY_BROKER_DIR", VAR_DIR / "broker"))
if CELERY_BROKER_URL.split("://", 1)[0] not in ("filesystem", "redis", "rediss", "amqp", "pyamqp"):
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL={CELERY_BROKER_URL!r} must be filesystem://, redis://, rediss:// or amqp://"
    )
CELERY_TASK_TIME_LIMITS = {  # seconds, per queue: hard limit; the soft limit is 90% of it
    "tracking": env_int("CELERY_TRACKING_TIME_LIMIT", 3600, minimum=10),
    "media": env_int("CELERY_MEDIA_TIME_LIMIT", 600, minimum=10),
    "settlement": env_int("CELERY_SETTLEMENT_TIME_LIMIT", 120, minimum=10),
    "default": env_int("CELERY_DEFAULT_TIME_LIMIT", 300, minimum=10),
}
# A media task makes the media of at most this many of one footage's flagged carts, then hands the
# rest to a new message at the back of the queue: an hour of footage's hundreds of carts neither
# outlast the task's time limit nor hold the media queue while other footage's carts wait
MEDIA_BATCH_TRANSACTIONS = env_int("MEDIA_BATCH_TRANSACTIONS", 8, minimum=1)
if CELERY_BROKER_URL.startswith("filesystem"):
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
        # kombu's default is a look every second, which a message arriving at an idle worker
        # waits out (a tenth of a second of a look is a directory listing)
        "polling_interval": 0.1,
    }
else:
    # A task not acked within this time is delivered again (its worker died).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", max(CELERY_TASK_TIME_LIMITS.values()) + 60)
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # status lives on our own rows, not in a result backend
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Payment gateway -------------------------------------------------------------
# The built-in gateway records captures in our database. For tests and demos it can
# be told to misbehave: "ok", "fail" (declines), "timeout" (raises a timeout), "slow".
PAYMENT_GATEWAY = os.environ.get("PAYMENT_GATEWAY", "reviewapp.gateway.BuiltinGateway")
PAYMENT_GATEWAY_MODE = env_choice("PAYMENT_GATEWAY_MODE", "ok", ("ok", "fail", "timeout", "slow"))
PAYMENT_GATEWAY_SLOW_SECONDS = env_float("PAYMENT_GATEWAY_SLOW_SECONDS", 2.0, minimum=0)
# A reviewer may take back their own approval for this long after it (a key pressed by mistake):
# a human-approved charge is captured only once this has passed.
DECISION_UNDO_SECONDS = env_float("DECISION_UNDO_SECONDS", 10.0, minimum=0)
# Failed captures and webhooks retry with exponential backoff from this many seconds.
RETRY_BASE_SECONDS = env_float("RETRY_BASE_SECONDS", 2.0, minimum=0.01)

# --- Security (production) -----------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}

for _directory in (
    VAR_DIR,
    MEDIA_ROOT,
    CELERY_BROKER_DIR / "queue",
    CELERY_BROKER_DIR / "processed",
    CELERY_BROKER_DIR / "control",
):
    _directory.mkdir(parents=True, exist_ok=True)
