"""QuickBooks test fixtures: a real qbo_sandbox over HTTP, one per test session.

- `sandbox`: the running `qbo_sandbox.testing.SandboxServer`; its config is restored and the
  pacing state forgotten after each test, so tests may change `set_config(...)` freely.
- `qbo_app`: the OAuth client registered for the tests, (client_id, client_secret).
- `realm_id`: a fresh company seeded "sample-us" per test.
- `connection`: a connected `Connection` of the `firm` fixture to `realm_id`, with tokens
  issued through the control plane (no browser round trip).
- `qbo_client`: a `QBOClient` for `connection`.

Every test under tests/quickbooks gets Django settings pointed at the sandbox (`qbo_settings`),
with short HTTP timeouts and back-off waits so failures are quick.
"""

from __future__ import annotations

import pytest

from practice.quickbooks.connection import oauth, pacing
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.models import Connection
from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.testing import SandboxServer

TEST_CLIENT_ID = "practice-tests"
TEST_CLIENT_SECRET = "practice-tests-secret"
REDIRECT_URI = "http://testserver/settings/integrations/quickbooks/callback/"


@pytest.fixture(scope="session")
def _sandbox_server():
    with SandboxServer(SandboxConfig()) as server:
        server.register_app(
            redirect_uris=[REDIRECT_URI],
            client_id=TEST_CLIENT_ID,
            client_secret=TEST_CLIENT_SECRET,
            name="Practice (tests)",
        )
        yield server


@pytest.fixture
def sandbox(_sandbox_server):
    initial = _sandbox_server.config.to_dict()
    yield _sandbox_server
    changed = {k: v for k, v in initial.items() if _sandbox_server.config.to_dict().get(k) != v}
    if changed:
        _sandbox_server.set_config(**changed)


@pytest.fixture
def qbo_app(sandbox) -> tuple[str, str]:
    return TEST_CLIENT_ID, TEST_CLIENT_SECRET


@pytest.fixture(autouse=True)
def qbo_settings(settings, request):
    """Point the app at the session sandbox (only when a test uses it, so unit tests stay cheap)."""
    # Password hashing dominates fixture set-up (4 users per test); the tests here are not about it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.QBO_ENVIRONMENT = "sandbox-local"
    settings.QBO_CLIENT_ID = TEST_CLIENT_ID
    settings.QBO_CLIENT_SECRET = TEST_CLIENT_SECRET
    settings.QBO_REDIRECT_URI = REDIRECT_URI
    settings.QBO_HTTP_TIMEOUT_SECONDS = 5.0
    settings.QBO_BACKOFF_SCALE = 0.01
    settings.QBO_TRANSIENT_BACKOFF_SECONDS = 0.05
    if "_sandbox_server" in request.fixturenames or "sandbox" in request.fixturenames:
        settings.QBO_SANDBOX_URL = request.getfixturevalue("_sandbox_server").url
    else:
        # Never reach a sandbox someone runs on the default port (make demo) by accident.
        settings.QBO_SANDBOX_URL = "http://127.0.0.1:9"
    yield settings
    pacing._registry.clear()


@pytest.fixture
def realm_id(sandbox) -> str:
    return sandbox.create_realm(seed="sample-us")


def connect_firm(firm, realm_id: str, sandbox, *, client_id: str = TEST_CLIENT_ID) -> Connection:
    """Connect `firm` to `realm_id` as if the owner had gone through the browser flow."""
    token_set = oauth.TokenSet.from_response(sandbox.issue_tokens(realm_id, client_id=client_id))
    owner = firm.memberships.get(role="owner").user
    connection, needs_confirmation = oauth.connection_connect(
        firm=firm,
        user=owner,
        realm_id=realm_id,
        company_name="Sandbox Company",
        token_set=token_set,
        env=oauth.environment(),
    )
    assert not needs_confirmation
    return connection


@pytest.fixture
def connection(firm, realm_id, sandbox) -> Connection:
    return connect_firm(firm, realm_id, sandbox)


@pytest.fixture
def qbo_client(connection) -> QBOClient:
    return QBOClient(connection)
