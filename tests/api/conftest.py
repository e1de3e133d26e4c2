"""API fixtures: a token per role (the firm's three members and another firm's owner)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from practice.api.tokens import token_create
from practice.firms.models import User
from tests.conftest import ROLE_EMAILS
from tests.quickbooks.conftest import (  # noqa: F401  (the real sandbox over HTTP, as in tests/quickbooks)
    _sandbox_server,
    connection,
    qbo_app,
    qbo_settings,
    realm_id,
    sandbox,
)


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def tokens(firm, other_firm) -> dict[str, str]:
    return {
        who: token_create(user=User.objects.get(email=email), name=f"{who} script")[1]
        for who, email in ROLE_EMAILS.items()
    }


class Api:
    def __init__(self, secret: str | None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {secret}"} if secret else {}

    def get(self, path: str, **params):
        return self.client.get("/api/v1" + path, params, headers=self.headers)

    def send(self, method: str, path: str, body=None):
        return self.client.generic(
            method,
            "/api/v1" + path,
            data=b"" if body is None else __import__("json").dumps(body),
            content_type="application/json",
            headers=self.headers,
        )


@pytest.fixture
def api_as(tokens):
    def make(who: str) -> Api:
        return Api(None if who == "anonymous" else tokens[who])

    return make
