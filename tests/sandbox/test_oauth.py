"""The sandbox's OAuth 2.0 server over real HTTP, driven the way curl or a browser form would.

The clock of the OAuth store is moved with ``advance_clock`` instead of sleeping, so expiry and
the refresh-token grace window are tested in milliseconds.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.oauth import ACCOUNTING_SCOPE, DEV_CLIENT_ID, OAuthStore
from qbo_sandbox.state import Sandbox
from qbo_sandbox.testing import SandboxServer

REDIRECT = "https://app.example.test/quickbooks/callback/"
HOSTILE_NAME = '<script>alert("x")</script> & Sons'


def make_sandbox(**config) -> Sandbox:
    """A sandbox object without a server, for tests of the store alone."""
    return Sandbox(SandboxConfig(**config))


@pytest.fixture(scope="module")
def server():
    # A server of its own: these tests move the OAuth clock by days, which would expire the tokens
    # of tests sharing the session-wide sandbox.
    with SandboxServer(SandboxConfig(throttling_enabled=False)) as srv:
        srv.create_realm(realm_id="9130355001", name="Sandbox Company_US_1")
        srv.create_realm(realm_id="9130355002", name=HOSTILE_NAME)
        yield srv


@pytest.fixture
def store(server) -> OAuthStore:
    return server.sandbox.oauth


@pytest.fixture
def app(store):
    return store.register_app(name="Practice <Test> App", redirect_uris=[REDIRECT])


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def basic(app) -> dict[str, str]:
    raw = f"{app.client_id}:{app.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode(), "Accept": "application/json"}


def authorize_params(app, **overrides) -> dict[str, str]:
    params = {
        "client_id": app.client_id,
        "response_type": "code",
        "scope": ACCOUNTING_SCOPE,
        "redirect_uri": REDIRECT,
        "state": "st-123",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def form_fields(page: str) -> dict[str, str]:
    """The hidden inputs of the consent form, as a browser would submit them."""
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    return {name: html.unescape(value) for name, value in fields}


def consent(
    http, app, decision: str = "approve", realm_id: str = "9130355001", **overrides
) -> httpx.Response:
    page = http.get("/connect/oauth2", params=authorize_params(app, **overrides))
    assert page.status_code == 200, page.text
    data = {**form_fields(page.text), "decision": decision, "realm_id": realm_id}
    return http.post("/connect/oauth2", data=data)


def callback_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(http, app, code: str, redirect_uri: str = REDIRECT) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    return http.post("/oauth2/v1/tokens/bearer", data=data, headers=basic(app))


def refresh(http, app, token: str) -> httpx.Response:
    return http.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers=basic(app),
    )


def connect(http, app) -> dict:
    resp = exchange(http, app, callback_params(consent(http, app))["code"])
    assert resp.status_code == 200, resp.text
    return resp.json()


# -- discovery ---------------------------------------------------------------------------------------

ENDPOINT_KEYS = {
    "issuer": "/op/v1",
    "authorization_endpoint": "/connect/oauth2",
    "token_endpoint": "/oauth2/v1/tokens/bearer",
    "userinfo_endpoint": "/v1/openid_connect/userinfo",
    "revocation_endpoint": "/v2/oauth2/tokens/revoke",
    "jwks_uri": "/op/v1/jwks",
}


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/openid_configuration",
        "/.well-known/openid_configuration/",
        "/.well-known/openid_sandbox_configuration",
        "/.well-known/openid_sandbox_configuration/",
    ],
)
def test_discovery_documents_point_at_this_server(http, server, path):
    resp = http.get(path)
    assert resp.status_code == 200
    doc = resp.json()
    for key, suffix in ENDPOINT_KEYS.items():
        assert doc[key] == server.url + suffix
    assert doc["response_types_supported"] == ["code"]
    assert "client_secret_basic" in doc["token_endpoint_auth_methods_supported"]
    # Every advertised endpoint answers (not 404), so a client that follows the document works.
    assert http.get(doc["jwks_uri"]).status_code == 200
    assert http.post(doc["token_endpoint"]).status_code == 401


def test_discovery_uses_public_base_url_when_configured(http, server):
    server.sandbox.config.public_base_url = "https://qbo.example.test/"
    try:
        doc = http.get("/.well-known/openid_sandbox_configuration").json()
    finally:
        server.sandbox.config.public_base_url = None
    assert doc["token_endpoint"] == "https://qbo.example.test/oauth2/v1/tokens/bearer"


# -- authorize page -----------------------------------------------------------------------------------


def test_authorize_page_lists_companies_escaped(http, app):
    resp = http.get("/connect/oauth2", params=authorize_params(app))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "no-store" in resp.headers["cache-control"]
    assert resp.headers["x-frame-options"] == "DENY"
    page = resp.text
    assert "Sandbox Company_US_1" in page
    assert "<script>" not in page
    assert html.escape(HOSTILE_NAME) in page
    assert "Practice &lt;Test&gt; App" in page
    assert page.count('type="radio" name="realm_id"') == 2
    assert 'value="9130355001"' in page and 'value="9130355002"' in page
    assert ">Connect</button>" in page and ">Cancel</button>" in page
    assert form_fields(page)["form_token"]
    assert "qbo_sandbox_authz" in resp.cookies


def test_full_flow_code_state_realm_then_tokens(http, store, app):
    params = callback_params(consent(http, app, realm_id="9130355002"))
    assert params["state"] == "st-123"
    assert params["realmId"] == "9130355002"
    resp = exchange(http, app, params["code"])
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["intuit_tid"]
    assert "no-store" in resp.headers["cache-control"]
    body = resp.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["x_refresh_token_expires_in"] == 8726400
    assert store.authenticate(body["access_token"], "9130355002") is None
    assert store.authenticate(body["access_token"], "9130355001") == "wrong_realm"
    assert store.authenticate("nonsense", "9130355002") == "invalid"
    assert app in store.apps_for_realm("9130355002")


def test_tokens_from_the_flow_open_the_api_until_expired_or_revoked(http, server, store, app):
    tokens = connect(http, app)

    def company_info(access_token: str) -> httpx.Response:
        with server.api("9130355001", access_token) as api:
            return api.get("/companyinfo/9130355001")

    resp = company_info(tokens["access_token"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["CompanyInfo"]["CompanyName"] == "Sandbox Company_US_1"
    store.advance_clock(store.access_token_ttl + 1)
    assert company_info(tokens["access_token"]).status_code == 401
    fresh = refresh(http, app, tokens["refresh_token"]).json()
    assert company_info(fresh["access_token"]).status_code == 200
    http.post("/v2/oauth2/tokens/revoke", json={"token": fresh["refresh_token"]}, headers=basic(app))
    assert company_info(fresh["access_token"]).status_code == 401


def test_redirect_uri_with_query_keeps_it(http, store):
    uri = REDIRECT + "?tenant=a%26b"
    app = store.register_app(redirect_uris=[uri])
    page = http.get("/connect/oauth2", params=authorize_params(app, redirect_uri=uri))
    resp = http.post(
        "/connect/oauth2", data={**form_fields(page.text), "decision": "approve", "realm_id": "9130355001"}
    )
    query = parse_qs(urlsplit(resp.headers["location"]).query)
    assert query["tenant"] == ["a&b"]
    assert query["state"] == ["st-123"]


def test_hostile_state_round_trips_exactly(http, app):
    state = '"><script>alert(1)</script>&realmId=666 ü'
    page = http.get("/connect/oauth2", params=authorize_params(app, state=state))
    assert "<script>alert(1)" not in page.text
    resp = http.post(
        "/connect/oauth2", data={**form_fields(page.text), "decision": "approve", "realm_id": "9130355001"}
    )
    params = callback_params(resp)
    assert params["state"] == state
    assert params["realmId"] == "9130355001"


def test_denial_redirects_access_denied_with_state(http, store, app):
    params = callback_params(consent(http, app, decision="deny"))
    assert params["error"] == "access_denied"
    assert params["state"] == "st-123"
    assert "code" not in params
    assert app not in store.apps_for_realm("9130355001")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"client_id": "nope"}, "invalid_client"),
        ({"client_id": None}, "invalid_request"),
        ({"redirect_uri": "https://evil.example.test/cb"}, "redirect_uri"),
        ({"redirect_uri": REDIRECT.rstrip("/")}, "redirect_uri"),
        ({"redirect_uri": None}, "redirect_uri"),
    ],
)
def test_untrusted_redirect_gets_an_error_page_not_a_redirect(http, app, overrides, error):
    resp = http.get("/connect/oauth2", params=authorize_params(app, **overrides))
    assert resp.status_code == 400
    assert "location" not in resp.headers
    assert resp.headers["content-type"].startswith("text/html")
    assert error in resp.text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid"}, "invalid_scope"),
        ({"scope": ACCOUNTING_SCOPE + " com.example.unknown"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
        ({"state": None}, "invalid_request"),
    ],
)
def test_other_errors_redirect_to_the_registered_uri(http, app, overrides, error):
    resp = http.get("/connect/oauth2", params=authorize_params(app, **overrides))
    params = callback_params(resp)
    assert params["error"] == error
    assert "code" not in params


def test_post_without_form_token_or_cookie_is_refused(http, server, app):
    page = http.get("/connect/oauth2", params=authorize_params(app))
    fields = {**form_fields(page.text), "decision": "approve", "realm_id": "9130355001"}
    # A cross-site post: same fields, but the browser's cookie is not the one the token was bound to.
    with httpx.Client(base_url=server.url) as stranger:
        resp = stranger.post("/connect/oauth2", data=fields)
    assert resp.status_code == 403
    assert "location" not in resp.headers
    # Tampering with a signed field (here the state) breaks the token too.
    resp = http.post("/connect/oauth2", data={**fields, "state": "other"})
    assert resp.status_code == 403


def test_consent_form_goes_stale(http, store, app):
    page = http.get("/connect/oauth2", params=authorize_params(app))
    store.advance_clock(3601)
    resp = http.post(
        "/connect/oauth2", data={**form_fields(page.text), "decision": "approve", "realm_id": "9130355001"}
    )
    assert resp.status_code == 403


def test_unknown_realm_choice_redisplays_the_page(http, app):
    resp = consent(http, app, realm_id="404")
    assert resp.status_code == 400
    assert "Choose one of the companies" in resp.text


# -- token endpoint -----------------------------------------------------------------------------------


def test_code_is_single_use(http, app):
    code = callback_params(consent(http, app))["code"]
    assert exchange(http, app, code).status_code == 200
    again = exchange(http, app, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_code_expires(http, store, app):
    code = callback_params(consent(http, app))["code"]
    store.advance_clock(store.auth_code_ttl + 1)
    resp = exchange(http, app, code)
    assert resp.json()["error"] == "invalid_grant"


def test_code_needs_the_same_redirect_uri_and_client(http, store, app):
    code = callback_params(consent(http, app))["code"]
    resp = exchange(http, app, code, redirect_uri="https://app.example.test/other")
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"
    other = store.register_app(redirect_uris=[REDIRECT])
    assert exchange(http, other, code).json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_invalid_client_401(http, app):
    code = callback_params(consent(http, app))["code"]
    bad = SimpleNamespace(client_id=app.client_id, client_secret="wrong")
    resp = exchange(http, bad, code)
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    no_auth = http.post("/oauth2/v1/tokens/bearer", data={"grant_type": "authorization_code", "code": code})
    assert no_auth.status_code == 401
    # The failed attempts did not burn the code.
    assert exchange(http, app, code).status_code == 200


def test_client_secret_post_is_accepted(http, app):
    code = callback_params(consent(http, app))["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
    }
    assert http.post("/oauth2/v1/tokens/bearer", data=data).status_code == 200


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "authorization_code", "redirect_uri": REDIRECT}, "invalid_request"),
    ],
)
def test_malformed_token_requests(http, app, data, error):
    resp = http.post("/oauth2/v1/tokens/bearer", data=data, headers=basic(app))
    assert resp.status_code == 400
    assert resp.json()["error"] == error


def test_refresh_rotates_and_old_token_works_within_grace_only(http, store, app):
    first = connect(http, app)
    second = refresh(http, app, first["refresh_token"])
    assert second.status_code == 200
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    # Within the grace window (default 24 h) the superseded token still refreshes.
    store.advance_clock(store.refresh_grace - 60)
    assert refresh(http, app, first["refresh_token"]).status_code == 200
    store.advance_clock(120)
    late = refresh(http, app, first["refresh_token"])
    assert late.status_code == 400
    assert late.json() == {"error": "invalid_grant", "error_description": "Token invalid"}
    assert late.headers["intuit_tid"]


def test_latest_refresh_token_keeps_working_after_grace(http, store, app):
    tokens = connect(http, app)
    for _ in range(3):
        tokens = refresh(http, app, tokens["refresh_token"]).json()
    store.advance_clock(store.refresh_grace + 10)
    assert refresh(http, app, tokens["refresh_token"]).status_code == 200


def test_refresh_token_of_another_client_is_invalid_grant(http, store, app):
    tokens = connect(http, app)
    other = store.register_app(redirect_uris=[REDIRECT])
    assert refresh(http, other, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_hard_expiry_header(http, app):
    tokens = connect(http, app)
    resp = http.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers={**basic(app), "x-include-refresh-token-hard-expires-in": "true"},
    )
    hard = resp.json()["x_refresh_token_hard_expires_in"]
    assert 5 * 365 * 86400 - 60 < hard <= 5 * 365 * 86400


def test_access_token_expires(http, store, app):
    tokens = connect(http, app)
    store.advance_clock(3599)
    assert store.authenticate(tokens["access_token"], "9130355001") is None
    store.advance_clock(2)
    assert store.authenticate(tokens["access_token"], "9130355001") == "expired"
    # The refresh token outlives it, and a refresh brings a working access token back.
    fresh = refresh(http, app, tokens["refresh_token"]).json()
    assert store.authenticate(fresh["access_token"], "9130355001") is None


def test_short_ttls_from_config_really_expire():
    sandbox = make_sandbox(access_token_ttl=1, refresh_token_grace_seconds=0)
    store = sandbox.oauth
    tokens = store.issue_tokens(client_id=DEV_CLIENT_ID, realm_id="9130355001")
    assert tokens["expires_in"] == 1
    assert store.authenticate(tokens["access_token"], "9130355001") is None
    time.sleep(1.05)
    assert store.authenticate(tokens["access_token"], "9130355001") == "expired"
    app = store.dev_app
    store.refresh(app=app, refresh_token=tokens["refresh_token"])
    # Grace 0: the superseded token is dead at once.
    with pytest.raises(Exception, match="invalid_grant"):
        store.refresh(app=app, refresh_token=tokens["refresh_token"])


# -- revoke -------------------------------------------------------------------------------------------


def test_revoke_refresh_token_disconnects(http, store, app):
    tokens = connect(http, app)
    resp = http.post(
        "/v2/oauth2/tokens/revoke",
        content=json.dumps({"token": tokens["refresh_token"]}),
        headers={**basic(app), "Content-Type": "application/json"},
    )
    assert resp.status_code == 200
    assert store.authenticate(tokens["access_token"], "9130355001") == "revoked"
    assert app not in store.apps_for_realm("9130355001")
    again = refresh(http, app, tokens["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_revoke_with_access_token_and_form_body(http, store, app):
    tokens = connect(http, app)
    resp = http.post("/v2/oauth2/tokens/revoke", data={"token": tokens["access_token"]}, headers=basic(app))
    assert resp.status_code == 200
    assert refresh(http, app, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoke_needs_client_auth_and_a_token(http, app):
    tokens = connect(http, app)
    resp = http.post("/v2/oauth2/tokens/revoke", json={"token": tokens["refresh_token"]})
    assert resp.status_code == 401
    assert http.post("/v2/oauth2/tokens/revoke", json={}, headers=basic(app)).status_code == 400
    # Unknown tokens are fine (RFC 7009), so revoking twice is harmless.
    assert (
        http.post("/v2/oauth2/tokens/revoke", json={"token": "unknown"}, headers=basic(app)).status_code
        == 200
    )


def test_revoke_realm_for_one_app_only(store, app):
    other = store.register_app(redirect_uris=[REDIRECT])
    a = store.issue_tokens(client_id=app.client_id, realm_id="9130355001")
    b = store.issue_tokens(client_id=other.client_id, realm_id="9130355001")
    store.revoke_realm("9130355001", app.client_id)
    assert store.authenticate(a["access_token"], "9130355001") == "revoked"
    assert store.authenticate(b["access_token"], "9130355001") is None
    assert other in store.apps_for_realm("9130355001")


# -- userinfo, store API, snapshots -------------------------------------------------------------------


def test_userinfo_needs_openid_scope(http, app):
    plain = connect(http, app)
    resp = http.get(
        "/v1/openid_connect/userinfo", headers={"Authorization": "Bearer " + plain["access_token"]}
    )
    assert resp.status_code == 403
    code = callback_params(consent(http, app, scope=f"{ACCOUNTING_SCOPE} openid email"))["code"]
    tokens = exchange(http, app, code).json()
    resp = http.get(
        "/v1/openid_connect/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
    )
    assert resp.status_code == 200
    assert resp.json()["email"]
    assert http.get("/v1/openid_connect/userinfo").status_code == 401


def test_id_token_with_openid_scope_verifies_against_jwks(http, server, app):
    from joserfc import jwt
    from joserfc.jwk import KeySet

    assert "id_token" not in connect(http, app)
    code = callback_params(consent(http, app, scope=f"{ACCOUNTING_SCOPE} openid"))["code"]
    tokens = exchange(http, app, code).json()
    doc = http.get("/.well-known/openid_configuration").json()
    keys = KeySet.import_key_set(http.get(doc["jwks_uri"]).json())
    claims = jwt.decode(tokens["id_token"], keys).claims
    assert claims["iss"] == doc["issuer"]
    assert claims["aud"] == [app.client_id]
    assert claims["realmid"] == "9130355001"
    assert claims["exp"] > claims["iat"]


def test_register_app_is_idempotent_per_client_id():
    store = make_sandbox().oauth
    first = store.register_app(client_id="abc", client_secret="s1", redirect_uris=["https://a/cb"])
    again = store.register_app(client_id="abc", client_secret="s2", webhook_url="https://a/hook")
    assert again is first
    assert (first.client_secret, first.redirect_uris, first.webhook_url) == (
        "s2",
        ["https://a/cb"],
        "https://a/hook",
    )
    assert store.dev_app.client_id == DEV_CLIENT_ID
    assert store.get_app(DEV_CLIENT_ID) is store.dev_app


def test_dead_tokens_and_grants_are_pruned():
    store = make_sandbox(refresh_token_ttl=100, access_token_ttl=10).oauth
    old = [store.issue_tokens(client_id=DEV_CLIENT_ID, realm_id="1") for _ in range(5)]
    store.revoke_realm("1")
    store.advance_clock(7200)
    fresh = store.issue_tokens(client_id=DEV_CLIENT_ID, realm_id="1")
    assert len(store.grants) == 1
    assert len(store.access_tokens) == len(store.refresh_tokens) == 1
    assert store.authenticate(old[0]["access_token"], "1") == "invalid"
    assert store.authenticate(fresh["access_token"], "1") is None


def test_changes_are_reported_for_snapshots():
    store = make_sandbox().oauth
    calls = []
    store.on_change = lambda: calls.append(1)
    tokens = store.issue_tokens(client_id=DEV_CLIENT_ID, realm_id="1")
    store.refresh(app=store.dev_app, refresh_token=tokens["refresh_token"])
    store.revoke_realm("1")
    assert len(calls) == 3


def test_snapshot_round_trip():
    store = make_sandbox().oauth
    app = store.register_app(client_id="abc", redirect_uris=["https://a/cb"], webhook_format="legacy")
    tokens = store.issue_tokens(client_id="abc", realm_id="42")
    store.refresh(app=app, refresh_token=tokens["refresh_token"])
    jwks = store.jwks()
    snapshot = json.loads(json.dumps(store.to_dict()))
    snapshot["apps"][-1]["from_a_newer_version"] = True  # unknown keys are ignored
    restored = make_sandbox().oauth
    restored.from_dict(snapshot)
    assert restored.get_app("abc").webhook_format == "legacy"
    assert restored.authenticate(tokens["access_token"], "42") is None
    # The superseded refresh token is still inside its grace window after the restore.
    restored.refresh(app=restored.get_app("abc"), refresh_token=tokens["refresh_token"])
    assert [a.client_id for a in restored.apps_for_realm("42")] == ["abc"]
    assert restored.jwks() == jwks


# -- a real browser -------------------------------------------------------------------------------------


@pytest.mark.browser
def test_consent_page_in_chromium(server, store, tmp_path):
    """Cookie, form token, CSP and the cross-origin redirect after the post all work in a browser."""
    import os
    from http.server import BaseHTTPRequestHandler, HTTPServer

    playwright = pytest.importorskip("playwright.sync_api")
    chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not os.path.exists(chromium):
        pytest.skip("no Chromium at " + chromium)

    class Callback(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!doctype html><title>callback</title><p id=ok>callback reached</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    callback = HTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=callback.serve_forever, args=(0.05,), daemon=True).start()
    redirect = f"http://localhost:{callback.server_address[1]}/quickbooks/callback/"
    app = store.register_app(name="Browser App", redirect_uris=[redirect])
    query = httpx.QueryParams(authorize_params(app, redirect_uri=redirect))
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium, args=["--no-sandbox"], env={**os.environ, **env}
            )
            page = browser.new_page()
            page.goto(f"{server.url}/connect/oauth2?{query}")
            page.get_by_label("Sandbox Company_US_1").check()
            page.get_by_role("button", name="Connect").click()
            page.wait_for_selector("#ok")
            landed = page.url
            page.goto(f"{server.url}/connect/oauth2?{query}")
            page.get_by_role("button", name="Cancel").click()
            page.wait_for_selector("#ok")
            cancelled = page.url
            browser.close()
    finally:
        callback.shutdown()
        callback.server_close()
    params = {k: v[0] for k, v in parse_qs(urlsplit(landed).query).items()}
    assert params["realmId"] == "9130355001"
    assert params["state"] == "st-123"
    assert store.codes[params["code"]].redirect_uri == redirect
    assert parse_qs(urlsplit(cancelled).query)["error"] == ["access_denied"]


def test_token_changes_mark_the_snapshot_dirty():
    sandbox = make_sandbox()
    store = sandbox.oauth
    app = store.register_app(redirect_uris=[REDIRECT])
    assert sandbox.dirty
    sandbox.dirty = False
    tokens = store.issue_tokens(client_id=app.client_id, realm_id="1")
    assert sandbox.dirty
    sandbox.dirty = False
    store.refresh(app=app, refresh_token=tokens["refresh_token"])
    assert sandbox.dirty
    sandbox.dirty = False
    store.revoke_token(app=app, token=tokens["access_token"])
    assert sandbox.dirty


def test_refresh_over_http_survives_a_restart(tmp_path):
    """A refresh through the token endpoint reaches the state file by autosave, before any
    shutdown: a sandbox killed after it, then started from the file, accepts the new token."""
    import shutil

    state = tmp_path / "state.json"
    crashed = tmp_path / "crashed.json"
    config = SandboxConfig(throttling_enabled=False, snapshot_interval_seconds=0.05)
    with SandboxServer(config, state_file=str(state)) as first:
        realm = first.create_realm(name="Restarted Co")
        client_id, secret = first.register_app(redirect_uris=[REDIRECT])
        tokens = first.issue_tokens(realm, client_id=client_id)
        deadline = time.monotonic() + 5
        while not (state.exists() and tokens["refresh_token"] in state.read_text()):
            assert time.monotonic() < deadline, "first tokens never reached the state file"
            time.sleep(0.02)
        resp = httpx.post(
            first.url + "/oauth2/v1/tokens/bearer",
            auth=(client_id, secret),
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        assert resp.status_code == 200, resp.text
        refreshed = resp.json()
        deadline = time.monotonic() + 5
        while refreshed["refresh_token"] not in state.read_text():
            assert time.monotonic() < deadline, "the refresh never reached the state file"
            time.sleep(0.02)
        shutil.copy(state, crashed)  # the file as a kill -9 right now would leave it
    with SandboxServer(SandboxConfig(throttling_enabled=False), state_file=str(crashed)) as second:
        resp = httpx.post(
            second.url + "/oauth2/v1/tokens/bearer",
            auth=(client_id, secret),
            data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]},
        )
        assert resp.status_code == 200, resp.text
        with second.api(realm, resp.json()["access_token"]) as api:
            info = api.get(f"/companyinfo/{realm}")
            assert info.status_code == 200, info.text
            assert info.json()["CompanyInfo"]["CompanyName"] == "Restarted Co"


def test_dev_app_accepts_the_practice_apps_default_callback():
    # config/settings.py: QBO_REDIRECT_URI defaults to this, so `make demo` connects with no setup.
    uris = make_sandbox().oauth.dev_app.redirect_uris
    assert "http://127.0.0.1:8000/settings/integrations/quickbooks/callback/" in uris
    assert "http://localhost:8000/settings/integrations/quickbooks/callback/" in uris
