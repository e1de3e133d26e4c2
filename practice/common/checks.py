"""System checks for a production deployment (`manage.py check --deploy` with PRODUCTION=1).

Django's own deploy checks accept the development SECRET_KEY (it is long and random-looking),
and know nothing of the QBO token keys; a deployment that forgot either must not pass.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register


@register(Tags.security, deploy=True)
def production_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not getattr(settings, "PRODUCTION", False):
        return []
    errors: list[CheckMessage] = []
    if getattr(settings, "DEV_SECRET_KEY", None) == settings.SECRET_KEY:
        errors.append(
            Error(
                "PRODUCTION=1 with the public development SECRET_KEY.",
                hint="Set DJANGO_SECRET_KEY to a long random value.",
                id="practice.E001",
            )
        )
    if settings.DEBUG:
        errors.append(Error("PRODUCTION=1 with DEBUG on.", hint="Set DJANGO_DEBUG=0.", id="practice.E002"))
    keys = getattr(settings, "QBO_TOKEN_KEYS", [])
    if not keys:
        errors.append(
            Error(
                "PRODUCTION=1 without QBO_TOKEN_KEYS: QuickBooks tokens would be encrypted with a key "
                "derived from SECRET_KEY.",
                hint="Set QBO_TOKEN_KEYS to one or more Fernet keys, comma-separated, newest first.",
                id="practice.E003",
            )
        )
    else:
        from cryptography.fernet import Fernet

        for position, key in enumerate(keys, start=1):
            try:
                Fernet(key)
            except (ValueError, TypeError):
                errors.append(
                    Error(
                        f"QBO_TOKEN_KEYS entry {position} is not a valid Fernet key.",
                        hint="Generate one with cryptography.fernet.Fernet.generate_key().",
                        id="practice.E004",
                    )
                )
    return errors
