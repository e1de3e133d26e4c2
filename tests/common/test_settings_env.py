"""Every variable of README's configuration table is read by config/settings.py.

The table is parsed from README.md itself, so a row added without wiring (or a variable the
settings stop reading) fails here. Each variable is set to a value unlike its default, the
settings module is loaded afresh, and the setting it feeds must take that value.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_FILE = ROOT / "config" / "settings.py"


def readme_variables() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        names += re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell)
    return names


def load_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> ModuleType:
    """config/settings.py executed under `env` (other README variables unset), as a new module."""
    for name in [*readme_variables(), "TEST_DB_NAME"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("settings_under_test", SETTINGS_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def db(m: ModuleType) -> dict[str, Any]:
    return dict(m.DATABASES["default"])


# variable -> (value to set, extra variables it needs, read the setting, the value expected)
CASES: dict[str, tuple[str, dict[str, str], Any, Any]] = {
    "DATABASE_URL": (
        "postgres://someone@db.example:5433/books",
        {},
        lambda m: (db(m)["ENGINE"], db(m)["HOST"], db(m)["PORT"], db(m)["NAME"]),
        ("django.db.backends.postgresql", "db.example", 5433, "books"),
    ),
    "SQLITE_PATH": ("/tmp/other.sqlite3", {}, lambda m: db(m)["NAME"], "/tmp/other.sqlite3"),
    "CONN_MAX_AGE": ("30", {}, lambda m: db(m)["CONN_MAX_AGE"], 30),
    "DJANGO_SECRET_KEY": ("s3cret-" + "x" * 50, {}, lambda m: m.SECRET_KEY, "s3cret-" + "x" * 50),
    "DJANGO_DEBUG": ("1", {}, lambda m: m.DEBUG, True),
    "DJANGO_ALLOWED_HOSTS": (
        "books.example, api.example",
        {},
        lambda m: m.ALLOWED_HOSTS,
        ["books.example", "api.example"],
    ),
    "DJANGO_CSRF_TRUSTED_ORIGINS": (
        "https://books.example",
        {},
        lambda m: m.CSRF_TRUSTED_ORIGINS,
        ["https://books.example"],
    ),
    "PRODUCTION": (
        "1",
        {},
        lambda m: (
            m.PRODUCTION,
            getattr(m, "SESSION_COOKIE_SECURE", False),
            getattr(m, "SECURE_HSTS_SECONDS", 0),
        ),
        (True, True, 31536000),
    ),
    "SECURE_SSL_REDIRECT": ("0", {"PRODUCTION": "1"}, lambda m: m.SECURE_SSL_REDIRECT, False),
    "SECURE_HSTS_SECONDS": ("3600", {"PRODUCTION": "1"}, lambda m: m.SECURE_HSTS_SECONDS, 3600),
    "LOGIN_FAILURE_LIMIT": ("3", {}, lambda m: m.AXES_FAILURE_LIMIT, 3),
    "LOGIN_LOCKOUT_MINUTES": ("40", {}, lambda m: m.AXES_COOLOFF_TIME.total_seconds(), 2400.0),
    "TRUSTED_PROXY_COUNT": ("1", {}, lambda m: m.TRUSTED_PROXY_COUNT, 1),
    "LOG_LEVEL": ("WARNING", {}, lambda m: m.LOGGING["root"]["level"], "WARNING"),
    "QBO_ENVIRONMENT": ("production", {}, lambda m: m.QBO_ENVIRONMENT, "production"),
    "QBO_CLIENT_ID": ("ABcd123", {}, lambda m: m.QBO_CLIENT_ID, "ABcd123"),
    "QBO_CLIENT_SECRET": ("sec-456", {}, lambda m: m.QBO_CLIENT_SECRET, "sec-456"),
    "QBO_REDIRECT_URI": (
        "https://books.example/cb/",
        {},
        lambda m: m.QBO_REDIRECT_URI,
        "https://books.example/cb/",
    ),
    "QBO_SANDBOX_URL": ("http://127.0.0.1:9999", {}, lambda m: m.QBO_SANDBOX_URL, "http://127.0.0.1:9999"),
    "QBO_TOKEN_KEYS": ("new-key, old-key", {}, lambda m: m.QBO_TOKEN_KEYS, ["new-key", "old-key"]),
    "QBO_HTTP_TIMEOUT_SECONDS": ("25", {}, lambda m: m.QBO_HTTP_TIMEOUT_SECONDS, 25.0),
    "QBO_HTTP_CONNECT_TIMEOUT_SECONDS": ("3.5", {}, lambda m: m.QBO_HTTP_CONNECT_TIMEOUT_SECONDS, 3.5),
    "QBO_REQUESTS_PER_SECOND": ("4", {}, lambda m: m.QBO_REQUESTS_PER_SECOND, 4.0),
    "QBO_REQUESTS_PER_WINDOW": ("200", {}, lambda m: m.QBO_REQUESTS_PER_WINDOW, 200.0),
    "QBO_BATCHES_PER_WINDOW": ("20", {}, lambda m: m.QBO_BATCHES_PER_WINDOW, 20.0),
    "QBO_MAX_CONCURRENT": ("3", {}, lambda m: m.QBO_MAX_CONCURRENT, 3),
    "QBO_PACING_PROCESSES": ("2", {}, lambda m: m.QBO_PACING_PROCESSES, 2),
    "QBO_LEASE_SECONDS": ("45", {}, lambda m: m.QBO_LEASE_SECONDS, 45.0),
    "QBO_RETRY_BASE_SECONDS": ("5", {}, lambda m: m.QBO_RETRY_BASE_SECONDS, 5.0),
    "QBO_RETRY_MAX_SECONDS": ("600", {}, lambda m: m.QBO_RETRY_MAX_SECONDS, 600.0),
    "QBO_MAX_ATTEMPTS": ("3", {}, lambda m: m.QBO_MAX_ATTEMPTS, 3),
    "QBO_SWEEP_INTERVAL_SECONDS": ("0", {}, lambda m: m.QBO_SWEEP_INTERVAL_SECONDS, 0.0),
    "QBO_WEBHOOK_VERIFIER_TOKEN": (
        "verifier-789",
        {},
        lambda m: m.QBO_WEBHOOK_VERIFIER_TOKEN,
        "verifier-789",
    ),
    "QBO_WEBHOOK_MAX_BODY_BYTES": ("65536", {}, lambda m: m.QBO_WEBHOOK_MAX_BODY_BYTES, 65536),
    "QBO_CDC_INTERVAL_SECONDS": ("120", {}, lambda m: m.QBO_CDC_INTERVAL_SECONDS, 120.0),
    "TASK_REAPER_STALE_SECONDS": ("120", {}, lambda m: m.TASK_REAPER_STALE_SECONDS, 120),
    "TASK_REAPER_INTERVAL_SECONDS": ("15", {}, lambda m: m.TASK_REAPER_INTERVAL_SECONDS, 15),
    "TASK_REAPER_MAX_ATTEMPTS": ("2", {}, lambda m: m.TASK_REAPER_MAX_ATTEMPTS, 2),
    "TASK_WORKER_HEARTBEAT_SECONDS": ("2.5", {}, lambda m: m.TASK_WORKER_HEARTBEAT_SECONDS, 2.5),
    "TASK_WORKER_DEAD_AFTER_SECONDS": ("20", {}, lambda m: m.TASK_WORKER_DEAD_AFTER_SECONDS, 20.0),
    "QBO_RECONCILE_MAX_AGE_SECONDS": ("120", {}, lambda m: m.QBO_RECONCILE_MAX_AGE_SECONDS, 120.0),
    "QBO_FULL_PLAN_SECONDS": ("600", {}, lambda m: m.QBO_FULL_PLAN_SECONDS, 600.0),
}


def test_every_readme_variable_has_a_case():
    documented = readme_variables()
    assert len(documented) >= 30, documented  # the table was found and parsed
    assert sorted(set(documented)) == sorted(CASES)


@pytest.mark.parametrize("name", readme_variables())
def test_variable_changes_its_setting(name, monkeypatch):
    value, extra, read, expected = CASES[name]
    default = read(load_settings(monkeypatch, extra))
    assert default != expected, f"{name}: the test value equals the default; pick another"
    assert read(load_settings(monkeypatch, {**extra, name: value})) == expected


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("QBO_MAX_ATTEMPTS", "eight", "QBO_MAX_ATTEMPTS must be a whole number, got 'eight'."),
        ("QBO_HTTP_TIMEOUT_SECONDS", "1m", "QBO_HTTP_TIMEOUT_SECONDS must be a number, got '1m'."),
        ("QBO_LEASE_SECONDS", "0", "QBO_LEASE_SECONDS must be at least 2, got '0'."),
        ("QBO_LEASE_SECONDS", "ninety", "QBO_LEASE_SECONDS must be a number, got 'ninety'."),
        ("CONN_MAX_AGE", "-5", "CONN_MAX_AGE must be at least 0, got '-5'."),
    ],
)
def test_a_bad_number_names_the_variable(name, value, message, monkeypatch):
    with pytest.raises(ImproperlyConfigured) as caught:
        load_settings(monkeypatch, {name: value})
    assert str(caught.value) == message


def test_the_code_follows_the_settings(settings):
    """The settings above are the ones the QBO code reads (not a name nobody looks up)."""
    from practice.quickbooks.connection import http, pacing
    from practice.quickbooks.sync import engine

    settings.QBO_HTTP_TIMEOUT_SECONDS = 25.0
    settings.QBO_HTTP_CONNECT_TIMEOUT_SECONDS = 3.5
    timeout = http.http_timeout()
    assert (timeout.read, timeout.connect) == (25.0, 3.5)

    settings.QBO_REQUESTS_PER_WINDOW = 200
    settings.QBO_REQUESTS_PER_SECOND = 4
    settings.QBO_BATCHES_PER_WINDOW = 20
    settings.QBO_MAX_CONCURRENT = 6
    settings.QBO_PACING_PROCESSES = 2
    limits = pacing.Limits.from_settings()
    assert (limits.requests_per_window, limits.requests_per_second) == (100.0, 2.0)
    assert (limits.batches_per_window, limits.max_concurrent) == (10.0, 3)

    settings.QBO_LEASE_SECONDS = 90
    settings.QBO_MAX_ATTEMPTS = 3
    settings.QBO_RETRY_BASE_SECONDS = 5
    assert (engine.lease_seconds(), engine.max_attempts(), engine.retry_base_seconds()) == (90, 3, 5.0)


def test_a_claimed_lease_lasts_qbo_lease_seconds(settings, firm):
    from django.utils import timezone

    from practice.quickbooks.models import Connection
    from practice.quickbooks.sync import engine

    connection = Connection.objects.create(firm=firm, realm_id="9130000000000001")
    settings.QBO_LEASE_SECONDS = 90
    before = timezone.now()
    assert engine.claim_lease(connection.pk, "runner-a")
    connection.refresh_from_db()
    held_for = (connection.lease_expires_at - before).total_seconds()
    assert 90 <= held_for < 95
    settings.QBO_LEASE_SECONDS = 30
    assert engine.renew_lease(connection.pk, "runner-a")
    connection.refresh_from_db()
    assert 30 <= (connection.lease_expires_at - before).total_seconds() < 35
