"""Create, revoke and check personal API tokens."""

from __future__ import annotations

import hashlib
import secrets

from django.core.exceptions import ValidationError
from django.utils import timezone

from practice.api.models import ApiToken
from practice.firms.models import User

TOKEN_PREFIX = "pat_"
MAX_ACTIVE_TOKENS = 20


def _hash(secret: str) -> str:
    # The secret has 256 bits of randomness, so a fast unsalted hash is enough (no dictionary to
    # attack); a slow password hash would only make every API call slower.
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """The new token and its secret. The secret is returned once and never stored."""
    name = (name or "").replace("\x00", "").strip()
    if not name:
        raise ValidationError({"name": "Give the token a name, such as the tool that will use it."})
    if len(name) > 100:
        raise ValidationError({"name": "Use at most 100 characters."})
    if ApiToken.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_ACTIVE_TOKENS:
        raise ValidationError({"name": f"You already have {MAX_ACTIVE_TOKENS} tokens; revoke one first."})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=secret[:10], token_hash=_hash(secret))
    return token, secret


def token_revoke(*, user: User, token_id: int) -> bool:
    """Revoke one of the user's own tokens; False when it is not theirs or already revoked."""
    return bool(
        ApiToken.objects.filter(user=user, pk=token_id, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )


def token_check(secret: str) -> ApiToken | None:
    """The live token for this secret, with its user, or None."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = (
        ApiToken.objects.select_related("user", "user__membership__firm")
        .filter(token_hash=_hash(secret), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    # Write last-use at most once a minute: one UPDATE per API call would serialize a busy script.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def user_tokens(*, user: User) -> list[ApiToken]:
    return list(ApiToken.objects.filter(user=user, revoked_at__isnull=True))
