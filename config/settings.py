"""Settings for the practice app.

Defaults are safe for development (SQLite file, local QBO sandbox, DEBUG off). Everything a
deployment changes comes from the environment; see README "Configuration".
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_number(name: str, default: float, *, cast: type = float, minimum: float = 0) -> float:
    """A numeric variable; a typo stops start-up with a message naming it, never a silent default."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = cast(raw.strip())
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        raise ImproperlyConfigured(f"{name} must be {kind}, got {raw!r}.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {raw!r}.")
    return value


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    return int(env_number(name, default, cast=int, minimum=minimum))


DEBUG = env_bool("DJANGO_DEBUG", False)
# The development default is public on purpose: production must set DJANGO_SECRET_KEY
# (`manage.py check --deploy` with PRODUCTION=1 refuses the default).
DEV_SECRET_KEY = "dev-only-insecure-key-change-me-0123456789abcdefghijklmnopqrstuvwxyz"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", DEV_SECRET_KEY)
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "axes",
    "csp",
    # Serves Swagger UI's files for /api/v1/docs from our own static files: without it django-ninja
    # links a CDN, which the CSP refuses and an offline machine cannot reach.
    "ninja",
    "django_tasks",
    "django_tasks_db",
    "practice.common",
    "practice.firms",
    "practice.clients",
    "practice.billing",
    "practice.quickbooks",
    "practice.api",
    "practice.notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outside SecurityHeadersMiddleware, which adds the per-deployment form-action source.
    "csp.middleware.CSPMiddleware",
    # Static files straight from gunicorn (make demo has no separate web server).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "practice.common.middleware.UserLanguageMiddleware",
    "practice.common.middleware.FirmMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "practice.common.middleware.SecurityHeadersMiddleware",
    # django-axes wants to be last: it turns a lockout raised during authenticate() into the
    # lockout page, for our sign-in and for /admin/login/ alike.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "practice" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "practice.common.context_processors.firm",
                "practice.quickbooks.context_processors.attention",
                "practice.notifications.context_processors.unread",
            ],
        },
    }
]

# SQLite by default; DATABASE_URL (postgres://...) switches to PostgreSQL.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{os.environ.get('SQLITE_PATH', BASE_DIR / 'db.sqlite3')}",
        conn_max_age=env_int("CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; the busy timeout absorbs the
    # short write locks the task queue takes (stack-notes §2). IMMEDIATE takes the write lock
    # when a transaction begins: a deferred one that read first cannot wait for the lock when it
    # later writes (SQLite answers "database is locked" at once, the busy timeout unused), which
    # six people saving invoices at the same moment hit (issue 12).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
# Lets concurrent test runs on one PostgreSQL server keep their own test database.
if os.environ.get("TEST_DB_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DB_NAME"]}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "firms.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (issue 12, Intuit's review): django-axes counts failed sign-ins per account
# and per address, on every form that calls authenticate() with the request (ours and the
# admin's). Its backend must come first so a locked-out attempt never reaches the password check.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
# A lockout ends on its own (a bookkeeper who mistyped can try again later; an attacker gets
# five guesses per quarter hour) and an admin can lift it early (`manage.py axes_reset`).
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
# Either limit locks: one account guessed from many addresses, or many accounts from one.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_USERNAME_CALLABLE = "practice.firms.throttling.login_username"
AXES_CLIENT_IP_CALLABLE = "practice.firms.throttling.client_ip"
AXES_LOCKOUT_CALLABLE = "practice.firms.throttling.locked_out_response"
# Successful sign-ins are not recorded (no table of who signed in from where to protect).
AXES_DISABLE_ACCESS_LOG = True
# How many reverse proxies in front of gunicorn append to X-Forwarded-For (0: none, the
# peer address is the client). Wrong here means every user shares the proxy's address.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("es", _("Spanish"))]
LOCALE_PATHS = [BASE_DIR / "practice" / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "practice" / "static"]
# WhiteNoise also finds files where collectstatic would copy them from, so a fresh checkout
# serves CSS without a collectstatic step.
WHITENOISE_USE_FINDERS = True
# Before collectstatic has run (tests, a fresh checkout) look files up per request instead of
# indexing STATIC_ROOT at start-up, which would warn that the directory is missing.
WHITENOISE_AUTOREFRESH = DEBUG or not STATIC_ROOT.is_dir()

# Background work: Django's Tasks API through the django-tasks backport (Django 5.2) and the
# database backend; workers run `manage.py db_worker`.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
# A task RUNNING longer than this is taken to belong to a killed worker and is put back.
TASK_REAPER_STALE_SECONDS = env_int("TASK_REAPER_STALE_SECONDS", 900, minimum=1)
# How often `run_worker` runs the reaper, and how many claims a task gets before it is FAILED.
TASK_REAPER_INTERVAL_SECONDS = env_int("TASK_REAPER_INTERVAL_SECONDS", 60, minimum=1)
TASK_REAPER_MAX_ATTEMPTS = env_int("TASK_REAPER_MAX_ATTEMPTS", 5, minimum=1)
# run_worker's heartbeat: a worker silent this long is dead, and its RUNNING task is requeued.
TASK_WORKER_HEARTBEAT_SECONDS = env_number("TASK_WORKER_HEARTBEAT_SECONDS", 10.0, minimum=0.1)
TASK_WORKER_DEAD_AFTER_SECONDS = env_number("TASK_WORKER_DEAD_AFTER_SECONDS", 60.0, minimum=1)

# Sessions and cookies (Intuit security review: Secure, HttpOnly, SameSite).
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (issue 12), through django-csp: no inline script or style at all
# (behaviour in static/app.js, styles in static/css; htmx told not to eval or inject styles),
# so an injected <script> or on*= attribute does not run even if escaping ever failed.
# form-action also allows QuickBooks' sign-in page, added per response by
# practice.common.middleware (the Connect form is redirected there, and Chrome applies
# form-action to that redirect).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
# Browser features the app never uses, off for it and anything embedded (Permissions-Policy).
PERMISSIONS_POLICY = (
    "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), midi=(), payment=(), publickey-credentials-get=(), "
    "screen-wake-lock=(), serial=(), usb=(), xr-spatial-tracking=()"
)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# PRODUCTION=1 turns on the HTTPS-only settings the security review checks.
# practice.common.checks turns the production requirements into `check --deploy` errors.
PRODUCTION = env_bool("PRODUCTION", False)
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- QuickBooks Online -----------------------------------------------------------------------
# sandbox-local: the bundled qbo_sandbox (make demo starts it); sandbox / production: Intuit.
QBO_ENVIRONMENT = os.environ.get("QBO_ENVIRONMENT", "sandbox-local")
QBO_CLIENT_ID = os.environ.get("QBO_CLIENT_ID", "")
QBO_CLIENT_SECRET = os.environ.get("QBO_CLIENT_SECRET", "")
QBO_REDIRECT_URI = os.environ.get(
    "QBO_REDIRECT_URI", "http://127.0.0.1:8000/settings/integrations/quickbooks/callback/"
)
QBO_SANDBOX_URL = os.environ.get("QBO_SANDBOX_URL", "http://127.0.0.1:8765")
# Fernet keys, comma-separated, newest first (MultiFernet: rotate by prepending a new key).
# The development default is derived from SECRET_KEY; production must set QBO_TOKEN_KEYS.
QBO_TOKEN_KEYS = [k.strip() for k in os.environ.get("QBO_TOKEN_KEYS", "").split(",") if k.strip()]
# Calls to QBO: QBO itself gives up on a request after 120 s (qbo-api.md §7), so the read timeout
# stays below that; connect failures should surface fast (connection/http.py).
QBO_HTTP_TIMEOUT_SECONDS = env_number("QBO_HTTP_TIMEOUT_SECONDS", 60.0, minimum=1)
QBO_HTTP_CONNECT_TIMEOUT_SECONDS = env_number("QBO_HTTP_CONNECT_TIMEOUT_SECONDS", 10.0, minimum=1)
# Pacing below QBO's per-company limits of 500 requests/min, 10/s, 40 batches/min and 10 at once
# (qbo-api.md §7; connection/pacing.py). Divide among processes with QBO_PACING_PROCESSES.
QBO_REQUESTS_PER_SECOND = env_number("QBO_REQUESTS_PER_SECOND", 8.0, minimum=0.1)
QBO_REQUESTS_PER_WINDOW = env_number("QBO_REQUESTS_PER_WINDOW", 450.0, minimum=1)
QBO_BATCHES_PER_WINDOW = env_number("QBO_BATCHES_PER_WINDOW", 36.0, minimum=1)
QBO_MAX_CONCURRENT = env_int("QBO_MAX_CONCURRENT", 8, minimum=1)
QBO_PACING_PROCESSES = env_int("QBO_PACING_PROCESSES", 1, minimum=1)
# The sync engine (sync/engine.py, sync/tasks.py): how long a realm's runner may go silent before
# another runner takes the realm over; retries of one record; the worker's sweep (0: off).
QBO_LEASE_SECONDS = env_number("QBO_LEASE_SECONDS", 90.0, minimum=2)
QBO_RETRY_BASE_SECONDS = env_number("QBO_RETRY_BASE_SECONDS", 15.0, minimum=0)
QBO_RETRY_MAX_SECONDS = env_number("QBO_RETRY_MAX_SECONDS", 3600.0, minimum=1)
QBO_MAX_ATTEMPTS = env_int("QBO_MAX_ATTEMPTS", 8, minimum=1)
QBO_SWEEP_INTERVAL_SECONDS = env_number("QBO_SWEEP_INTERVAL_SECONDS", 60.0, minimum=0)
# Webhooks (POST /webhooks/quickbooks/, practice/quickbooks/sync/webhooks.py): the verifier token
# of the Intuit app (developer portal, Webhooks). Unset: under sandbox-local the bundled sandbox's
# development token, otherwise every delivery is refused (503) until it is set.
QBO_WEBHOOK_VERIFIER_TOKEN = os.environ.get("QBO_WEBHOOK_VERIFIER_TOKEN", "")
# Intuit sends at most 100 events, about 1 MB, per delivery (qbo-api.md §9.4); twice that, so a
# real delivery is never refused (Intuit would resend it forever), and bigger bodies are not read.
QBO_WEBHOOK_MAX_BODY_BYTES = env_int("QBO_WEBHOOK_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)
# How often each connection's changes inside QuickBooks are read by CDC (sync/cdc.py; 0: off).
# Checked by the sweep above, so it cannot be shorter than QBO_SWEEP_INTERVAL_SECONDS. Every two
# hours: webhooks are the prompt path and this the safety net, and each sweep is a metered read
# (360 a month, against 8,640 every 5 minutes and a budget of 1,000 per firm-month: docs/drift.md).
QBO_CDC_INTERVAL_SECONDS = env_number("QBO_CDC_INTERVAL_SECONDS", 7200.0, minimum=0)

# E-mail (QuickBooks problem notifications): printed to the console unless configured.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "practice@localhost")

# The reconciliation page (sync/balances.py): QBO's figures of a customer older than this are read
# again in the background when the page is opened.
QBO_RECONCILE_MAX_AGE_SECONDS = env_number("QBO_RECONCILE_MAX_AGE_SECONDS", 3600.0, minimum=0)
# A sync run plans from the records changed since the last run; every this many seconds (and
# after the sync settings change) one walks every record instead, the safety net for changes
# that did not move a record's `updated_at` (engine.plan_since).
QBO_FULL_PLAN_SECONDS = env_number("QBO_FULL_PLAN_SECONDS", 21600.0, minimum=0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "filters": {"one_line_403": {"()": "practice.common.log_filters.OneLineForbidden"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # A 403 is logged as one line, without the PermissionDenied traceback (issue 11).
        "django.request": {"filters": ["one_line_403"]},
        # httpx logs full URLs at INFO; keep it quiet so nothing sensitive leaks into logs.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
