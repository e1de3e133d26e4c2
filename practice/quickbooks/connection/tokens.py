"""Encryption at rest for OAuth tokens (Fernet, MultiFernet for key rotation).

`settings.QBO_TOKEN_KEYS` lists Fernet keys newest first: encryption always uses the first,
decryption tries each. Rotation = prepend a new key, run `manage.py qbo_rotate_token_keys`
(re-encrypts every stored token with the newest key), then drop the old key.
Without configured keys a development key is derived from SECRET_KEY, so a fresh checkout
works; production must set QBO_TOKEN_KEYS (generate one with `generate_key()`).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

__all__ = ["InvalidToken", "decrypt", "encrypt", "generate_key", "multifernet", "rotate"]

_cache_lock = threading.Lock()
_cache: tuple[tuple[str, ...], MultiFernet] | None = None


def _dev_key() -> bytes:
    # A fixed salt, not this module's path: changing it would make every stored token undecryptable.
    digest = hashlib.sha256(b"practice.quickbooks.tokens:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _configured_keys() -> tuple[str, ...]:
    keys = getattr(settings, "QBO_TOKEN_KEYS", None) or []
    if isinstance(keys, str):
        keys = [k.strip() for k in keys.split(",") if k.strip()]
    return tuple(keys)


def multifernet() -> MultiFernet:
    """The MultiFernet for the current settings (rebuilt when QBO_TOKEN_KEYS changes)."""
    global _cache
    keys = _configured_keys() or (_dev_key().decode(),)
    with _cache_lock:
        if _cache is not None and _cache[0] == keys:
            return _cache[1]
        fernets = [Fernet(k.encode()) for k in keys]
        mf = MultiFernet(fernets)
        _cache = (keys, mf)
        return mf


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return multifernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """Plaintext of a stored token. Raises `InvalidToken` when no configured key opens it."""
    if not ciphertext:
        return ""
    return multifernet().decrypt(ciphertext.encode()).decode()


def rotate(ciphertext: str) -> str:
    """Re-encrypt with the newest key (MultiFernet.rotate); empty stays empty."""
    if not ciphertext:
        return ""
    return multifernet().rotate(ciphertext.encode()).decode()


def generate_key() -> str:
    return Fernet.generate_key().decode()


@register(Tags.security, deploy=True)
def check_token_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """`check --deploy`: real QBO tokens must not be encrypted with the SECRET_KEY-derived key."""
    if getattr(settings, "QBO_ENVIRONMENT", "") != "production" or _configured_keys():
        return []
    return [
        CheckWarning(
            "QBO_TOKEN_KEYS is not set: QuickBooks tokens are encrypted with a key derived from SECRET_KEY.",
            hint="Set QBO_TOKEN_KEYS to Fernet keys (manage.py qbo_rotate_token_keys --generate-key).",
            id="quickbooks.W001",
        )
    ]
