"""Connect QuickBooks through the Django test client and the sandbox's real authorize page:
the full flow, state checks, denial, code reuse, setup, disconnect, reconnect, another company,
the banner, the role matrix, and no tokens in responses or logs."""

from __future__ import annotations

import html
import logging
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse

from practice.quickbooks.connection import oauth, tokens
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.models import Connection, ConnectionStatus, SyncLink
from tests.quickbooks.conftest import connect_firm

pytestmark = pytest.mark.django_db

SETTINGS = reverse("quickbooks:settings")
CONNECT = reverse("quickbooks:connect")
CALLBACK = reverse("quickbooks:callback")
SETUP = reverse("quickbooks:setup")
SETUP_CONFIRM = reverse("quickbooks:setup_confirm")
DISCONNECT = reverse("quickbooks:disconnect")
START_OVER = reverse("quickbooks:start_over")
CHECK = reverse("quickbooks:check")

HOSTILE_NAME = 'Books <script>alert("x")</script> & Co'


@pytest.fixture
def named_realm(sandbox) -> str:
    return sandbox.create_realm(seed="sample-us", name=HOSTILE_NAME)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def start(client: Client) -> str:
    """POST Connect; returns the authorize URL the browser is sent to."""
    response = client.post(CONNECT)
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def consent(url: str, *, realm_id: str, decision: str = "approve") -> str:
    """Act as the person on the sandbox's authorize page; returns where it redirects to."""
    with httpx.Client(timeout=10) as browser:
        page = browser.get(url)
        assert page.status_code == 200, page.text[:500]
        fields = {
            name: html.unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)
        }
        assert realm_id in page.text
        fields.update(decision=decision, realm_id=realm_id)
        answer = browser.post(str(page.url.copy_with(query=None)), data=fields)
    assert answer.status_code == 302, answer.text[:500]
    return answer.headers["location"]


def back(client: Client, location: str):
    """Follow the redirect to our callback with the Django test client."""
    parts = urlsplit(location)
    assert parts.netloc == "testserver" and parts.path == CALLBACK
    return client.get(f"{parts.path}?{parts.query}", follow=True)


def full_flow(client: Client, realm_id: str):
    return back(client, consent(start(client), realm_id=realm_id))


# -- the happy path -----------------------------------------------------------------------------


def test_full_connect_flow_then_setup(client_as, firm, named_realm, sandbox, caplog):
    owner = client_as("owner")
    page = owner.get(SETTINGS)
    assert page.status_code == 200
    assert b"Connect to QuickBooks" in page.content

    with caplog.at_level(logging.DEBUG):
        url = start(owner)
        query = parse_qs(urlsplit(url).query)
        assert url.startswith(f"{sandbox.url}/connect/oauth2?")
        assert query["scope"] == ["com.intuit.quickbooks.accounting"]
        assert query["state"][0] == owner.session[oauth.SESSION_KEY]["state"]
        response = back(owner, consent(url, realm_id=named_realm))

    # Lands on the setup form with the company's name and its live account list.
    assert response.redirect_chain[-1][0] == SETUP
    body = response.content.decode()
    assert html.escape(HOSTILE_NAME) in body
    assert "<script>alert" not in body
    assert "Services" in body and "Undeposited Funds" in body

    connection = Connection.objects.get(firm=firm)
    assert connection.realm_id == named_realm
    assert connection.company_name == HOSTILE_NAME
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.environment == "sandbox-local"
    assert connection.connected_by.email == "owner@acme.test"
    access, refresh = (
        tokens.decrypt(connection.access_token_enc),
        tokens.decrypt(connection.refresh_token_enc),
    )
    for secret in (access, refresh):
        assert secret not in body
        assert secret not in caplog.text
    assert oauth.SESSION_KEY not in owner.session  # state is single use

    # Defaults the form proposes (product.md §2).
    form = response.context["form"]
    accounts = {a["Id"]: a["Name"] for a in QBOClient(connection).query_all("Account")}
    assert accounts[form.initial["income_account"]] == "Services"
    assert accounts[form.initial["deposit_account"]] == "Undeposited Funds"
    assert form.initial["account_scope"] == "with_activity"
    assert form.initial["unmatched_customer"] == "create"

    saved = owner.post(
        SETUP,
        {
            "account_scope": "all",
            "sync_start_date": "2026-01-01",
            "unmatched_customer": "ask",
            "income_account": form.initial["income_account"],
            "deposit_account": form.initial["deposit_account"],
            "fees_enabled": "on",
            "fee_account": form.initial["fee_account"],
            "sync_manual_payments": "",
        },
        follow=True,
    )
    # Saving records the choices; nothing goes to QBO until the owner confirms the preview.
    assert saved.redirect_chain[-1][0] == SETUP_CONFIRM
    review = saved.content.decode()
    assert "What the first sync will do" in review
    assert f'hx-get="{reverse("quickbooks:sync_preview")}"' in review
    connection.refresh_from_db()
    assert not connection.is_set_up
    assert (connection.account_scope, connection.unmatched_customer) == ("all", "ask")
    assert str(connection.sync_start_date) == "2026-01-01"
    assert connection.income_account_name == "Services"
    assert connection.fees_enabled and connection.fee_account_id
    assert connection.sync_manual_payments is False
    assert client_as("admin").post(SETUP_CONFIRM).status_code == 403
    started = owner.post(SETUP_CONFIRM, follow=True)
    assert started.redirect_chain[-1][0] == SETTINGS
    connection.refresh_from_db()
    assert connection.is_set_up
    page = started.content.decode()
    assert "Connected" in page and html.escape(HOSTILE_NAME) in page
    for secret in (access, refresh):
        assert secret not in page


def test_setup_form_requires_fee_account_when_fees_on(client_as, connection):
    owner = client_as("owner")
    form = owner.get(SETUP).context["form"]
    response = owner.post(
        SETUP,
        {
            "account_scope": "with_activity",
            "unmatched_customer": "create",
            "income_account": form.initial["income_account"],
            "deposit_account": form.initial["deposit_account"],
            "fees_enabled": "on",
            "fee_account": "",
        },
    )
    assert response.status_code == 200
    assert "fee_account" in response.context["form"].errors
    connection.refresh_from_db()
    assert not connection.is_set_up


def test_setup_rejects_accounts_not_in_the_company(client_as, connection):
    owner = client_as("owner")
    form = owner.get(SETUP).context["form"]
    response = owner.post(
        SETUP,
        {
            "account_scope": "with_activity",
            "unmatched_customer": "create",
            "income_account": "99999",
            "deposit_account": form.initial["deposit_account"],
        },
    )
    assert response.status_code == 200
    assert "income_account" in response.context["form"].errors


# -- things going wrong on the way ---------------------------------------------------------------


def test_state_mismatch_changes_nothing(client_as, firm, realm_id):
    owner = client_as("owner")
    location = consent(start(owner), realm_id=realm_id)
    forged = re.sub(r"state=[^&]+", "state=forged", location)
    response = back(owner, forged)
    assert response.redirect_chain[-1][0] == SETTINGS
    assert any("could not verify" in m for m in messages_of(response))
    assert not Connection.objects.filter(firm=firm).exists()


def test_callback_without_a_started_flow_is_refused(client_as, firm, sandbox, realm_id):
    owner = client_as("owner")
    response = owner.get(CALLBACK, {"code": "x", "state": "y", "realmId": realm_id}, follow=True)
    assert response.redirect_chain[-1][0] == SETTINGS
    assert any("could not verify" in m for m in messages_of(response))
    assert not Connection.objects.filter(firm=firm).exists()


def test_state_of_another_user_is_refused(client_as, firm, realm_id):
    """The owner's authorize answer replayed into another session does not connect."""
    owner = client_as("owner")
    location = consent(start(owner), realm_id=realm_id)
    thief = client_as("owner")  # a different session of the same user has no pending state
    response = back(thief, location)
    assert any("could not verify" in m for m in messages_of(response))
    assert not Connection.objects.filter(firm=firm).exists()


def test_other_authorize_errors_come_back_with_a_message(client_as, firm, sandbox):
    owner = client_as("owner")
    state = parse_qs(urlsplit(start(owner)).query)["state"][0]
    response = owner.get(CALLBACK, {"error": "invalid_scope\nforged log line", "state": state}, follow=True)
    assert response.redirect_chain[-1][0] == SETTINGS
    assert any("did not allow the connection" in m for m in messages_of(response))
    assert not Connection.objects.filter(firm=firm).exists()


def test_denial_comes_back_with_a_message(client_as, firm, realm_id):
    owner = client_as("owner")
    response = back(owner, consent(start(owner), realm_id=realm_id, decision="deny"))
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == SETTINGS
    assert any("cancelled" in m for m in messages_of(response))
    assert not Connection.objects.filter(firm=firm).exists()


def test_code_reuse_is_refused(client_as, firm, realm_id):
    owner = client_as("owner")
    location = consent(start(owner), realm_id=realm_id)
    back(owner, location)
    connection = Connection.objects.get(firm=firm)
    version = connection.token_version
    # A new flow puts a fresh state in the session; replay the old code with it.
    new_state = parse_qs(urlsplit(start(owner)).query)["state"][0]
    replay = re.sub(r"state=[^&]+", f"state={new_state}", location)
    response = back(owner, replay)
    assert any("expired or was already used" in m for m in messages_of(response))
    connection.refresh_from_db()
    assert connection.token_version == version


def test_sign_in_service_down_gives_a_message(client_as, firm, settings):
    settings.QBO_SANDBOX_URL = "http://127.0.0.1:9"
    from practice.quickbooks.connection import oauth as oauth_module

    oauth_module._discovery_cache.clear()
    owner = client_as("owner")
    response = owner.post(CONNECT, follow=True)
    assert response.status_code == 200
    assert any("cannot be reached" in m for m in messages_of(response))


def test_wrong_client_secret_gives_a_message(client_as, firm, realm_id, settings):
    owner = client_as("owner")
    location = consent(start(owner), realm_id=realm_id)
    settings.QBO_CLIENT_SECRET = "not-the-secret"
    response = back(owner, location)
    assert response.status_code == 200
    assert any("refused this app's credentials" in m for m in messages_of(response))
    assert not Connection.objects.filter(firm=firm).exists()


def test_unknown_environment_is_not_a_500(client_as, firm, settings):
    settings.QBO_ENVIRONMENT = "staging"
    owner = client_as("owner")
    assert owner.get(SETTINGS).status_code == 200
    response = owner.post(CONNECT, follow=True)
    assert response.status_code == 200
    assert any("not set up" in m for m in messages_of(response))


def test_company_info_failure_connects_nothing(client_as, firm, realm_id, sandbox, settings):
    # CompanyInfo is how the callback proves the token belongs to `realmId` (issue 12): without
    # it the company is not accepted (it used to connect, unverified, without a name).
    settings.QBO_TRANSIENT_RETRIES = 0
    owner = client_as("owner")
    location = consent(start(owner), realm_id=realm_id)
    sandbox.inject_fault(realm_id, "500", entity="CompanyInfo")
    response = back(owner, location)
    assert response.status_code == 200
    assert any("could not be reached to confirm the company" in m for m in messages_of(response))
    assert not Connection.objects.filter(firm=firm, status=ConnectionStatus.CONNECTED).exists()


def _with_realm(location: str, realm_id: str) -> str:
    """The callback URL Intuit redirected to, with `realmId` edited (as anyone can)."""
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["realmId"] = realm_id
    return parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())).geturl()


def _tokens_work(sandbox, connection: Connection) -> bool:
    connection.refresh_from_db()
    access = tokens.decrypt(connection.access_token_enc)
    refresh = tokens.decrypt(connection.refresh_token_enc)
    read = sandbox.api(connection.realm_id, access).get(f"/companyinfo/{connection.realm_id}")
    refreshed = httpx.post(
        f"{sandbox.url}/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        auth=("practice-tests", "practice-tests-secret"),
    )
    return read.status_code == 200 and refreshed.status_code == 200


@pytest.mark.parametrize("signed_in_to", ["current", "other"])
def test_an_edited_realm_id_changes_nothing_and_revokes_nothing(
    client_as, connection, sandbox, realm_id, signed_in_to
):
    """Sign in to one company, come back claiming another: refused before anything is stored.

    It used to park the token as a pending "other company" (start over), and "Keep the current
    company" then revoked it, which ended the live connection's access while saying it kept it."""
    link = _link(connection)
    other_realm = sandbox.create_realm(seed="sample-us", name="Someone Else's Books")
    consented, claimed = (realm_id, other_realm) if signed_in_to == "current" else (other_realm, realm_id)
    owner = client_as("owner")
    location = consent(start(owner), realm_id=consented)
    response = back(owner, _with_realm(location, claimed))
    assert response.redirect_chain[-1][0] == SETTINGS
    assert any("did not match the company that was signed in to" in m for m in messages_of(response))
    connection.refresh_from_db()
    assert connection.realm_id == realm_id and connection.status == ConnectionStatus.CONNECTED
    assert not connection.has_pending_company
    assert SyncLink.objects.filter(pk=link.pk).exists()
    assert _tokens_work(sandbox, connection)
    assert QBOClient(connection).company_info()["CompanyName"] != "Someone Else's Books"


# -- one QuickBooks company, one firm (issue 12) ------------------------------------------------


def test_a_company_connected_to_another_firm_is_refused(
    client_as, firm, other_firm, connection, sandbox, realm_id
):
    other_owner = client_as("other")
    response = full_flow(other_owner, realm_id)
    assert response.redirect_chain[-1][0] == SETTINGS
    (message,) = [m for m in messages_of(response) if "already connected to another firm" in m]
    assert "The owner of the other firm must disconnect it there first. Nothing was changed." in message
    assert "Acme Accounting" not in message  # the other firm is another customer: not named
    assert not Connection.objects.filter(firm=other_firm, status=ConnectionStatus.CONNECTED).exists()
    # The first firm's connection is untouched and its tokens still work at QuickBooks.
    assert _tokens_work(sandbox, connection)

    # Once the first firm disconnects, the other firm may connect the company.
    client_as("owner").post(DISCONNECT)
    full_flow(other_owner, realm_id)
    assert Connection.objects.get(firm=other_firm).realm_id == realm_id
    assert Connection.objects.get(firm=other_firm).status == ConnectionStatus.CONNECTED


def test_start_over_into_a_company_another_firm_holds_is_refused(
    client_as, firm, other_firm, connection, sandbox, realm_id
):
    link = _link(connection)
    taken = sandbox.create_realm(seed="sample-us", name="Taken Books")
    connect_firm(other_firm, taken, sandbox)
    response = full_flow(client_as("owner"), taken)
    assert response.redirect_chain[-1][0] == SETTINGS
    assert any("already connected to another firm" in m for m in messages_of(response))
    connection.refresh_from_db()
    assert connection.realm_id == realm_id and not connection.has_pending_company
    assert SyncLink.objects.filter(pk=link.pk).exists()
    assert _tokens_work(sandbox, Connection.objects.get(firm=other_firm))


def test_the_database_holds_one_live_connection_per_company(firm, other_firm, connection, realm_id):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Connection.objects.create(
            firm=other_firm, realm_id=realm_id, environment=connection.environment, status="connected"
        )
    # A disconnected connection keeps its company id without holding the company.
    Connection.objects.create(
        firm=other_firm, realm_id=realm_id, environment=connection.environment, status="disconnected"
    )


def test_setup_when_qbo_is_down_gives_a_message(client_as, connection, sandbox, realm_id, settings):
    settings.QBO_TRANSIENT_RETRIES = 0
    sandbox.inject_fault(realm_id, "503", operation="query")
    response = client_as("admin").get(SETUP, follow=True)
    assert response.redirect_chain[-1][0] == SETTINGS
    assert any("could not read the accounts" in m for m in messages_of(response))


# -- disconnect, reconnect, another company ------------------------------------------------------


def _link(connection: Connection, local_id: int = 1) -> SyncLink:
    return SyncLink.objects.create(
        firm=connection.firm, connection=connection, kind="account", local_id=local_id
    )


def test_disconnect_revokes_and_keeps_links(client_as, connection, sandbox, realm_id):
    link = _link(connection)
    access, refresh = (
        tokens.decrypt(connection.access_token_enc),
        tokens.decrypt(connection.refresh_token_enc),
    )
    response = client_as("owner").post(DISCONNECT, follow=True)
    assert any("disconnected" in m for m in messages_of(response))
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.DISCONNECTED
    assert connection.access_token_enc == "" and connection.refresh_token_enc == ""
    assert SyncLink.objects.filter(pk=link.pk).exists()
    # Revoked at the sandbox: the old tokens are dead there too.
    api = sandbox.api(realm_id, access)
    assert api.get("/account/1").status_code == 401
    refreshed = httpx.post(
        f"{sandbox.url}/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        auth=("practice-tests", "practice-tests-secret"),
    )
    assert refreshed.json()["error"] == "invalid_grant"


def test_reconnect_same_company_keeps_setup_and_links(client_as, connection, realm_id):
    link = _link(connection)
    Connection.objects.filter(pk=connection.pk).update(
        status=ConnectionStatus.NEEDS_RECONNECT, income_account_id="1", income_account_name="Services"
    )
    Connection.objects.filter(pk=connection.pk).update(setup_completed_at="2026-01-01T00:00:00Z")
    owner = client_as("owner")
    assert b"Reconnect" in owner.get(SETTINGS).content
    response = full_flow(owner, realm_id)
    assert response.redirect_chain[-1][0] == SETTINGS
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.income_account_name == "Services" and connection.is_set_up
    assert SyncLink.objects.filter(pk=link.pk).exists()


def test_another_company_asks_to_start_over(client_as, connection, sandbox, realm_id):
    link = _link(connection)
    other_realm = sandbox.create_realm(seed="sample-us", name="The Other Books")
    owner = client_as("owner")

    response = full_flow(owner, other_realm)
    assert response.redirect_chain[-1][0] == START_OVER
    assert b"The Other Books" in response.content
    connection.refresh_from_db()
    assert connection.realm_id == realm_id and connection.has_pending_company

    # Cancel: nothing changes, the other company's new tokens are given back.
    response = owner.post(START_OVER, {"action": "cancel"}, follow=True)
    connection.refresh_from_db()
    assert connection.realm_id == realm_id and not connection.has_pending_company
    assert SyncLink.objects.filter(pk=link.pk).exists()

    # Confirm: links cleared, new company connected, setup to be done again.
    full_flow(owner, other_realm)
    response = owner.post(START_OVER, {"action": "confirm"}, follow=True)
    assert response.redirect_chain[-1][0] == SETUP
    connection.refresh_from_db()
    assert connection.realm_id == other_realm
    assert connection.company_name == "The Other Books"
    assert not connection.is_set_up
    assert not SyncLink.objects.filter(connection=connection).exists()
    assert QBOClient(connection).company_info()["CompanyName"] == "The Other Books"


def test_another_company_without_links_just_switches(client_as, connection, sandbox):
    other_realm = sandbox.create_realm(seed="sample-us", name="Fresh Books")
    full_flow(client_as("owner"), other_realm)
    connection.refresh_from_db()
    assert connection.realm_id == other_realm and connection.company_name == "Fresh Books"


def test_check_notices_a_disconnect_made_in_quickbooks(client_as, connection, sandbox, realm_id):
    admin = client_as("admin")
    response = admin.post(CHECK, follow=True)
    assert any("works" in m for m in messages_of(response))
    httpx.post(f"{sandbox.url}/_sandbox/realms/{realm_id}/revoke", json={}).raise_for_status()
    response = admin.post(CHECK, follow=True)
    assert any("needs to reconnect" in m for m in messages_of(response))
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.NEEDS_RECONNECT
    assert b"qbo-reconnect-banner" in response.content


# -- banner --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "shown"), [("owner", True), ("admin", True), ("employee", False)])
def test_reconnect_banner(client_as, connection, who, shown):
    clients_page = reverse("clients:account_list")
    assert b"qbo-reconnect-banner" not in client_as(who).get(clients_page).content
    Connection.objects.filter(pk=connection.pk).update(status=ConnectionStatus.NEEDS_RECONNECT)
    assert (b"qbo-reconnect-banner" in client_as(who).get(clients_page).content) is shown


def test_banner_costs_at_most_one_query(firm, rf, django_assert_num_queries):
    # The context processor asks once per request (connection state and any record in Error).
    template = "quickbooks/partials/banner.html"
    request = rf.get("/")
    request.firm = firm
    request.membership = firm.memberships.get(role="owner")
    with django_assert_num_queries(1):
        render_to_string(template, {"current_firm": firm, "is_owner": True}, request=request)
        render_to_string(template, {"current_firm": firm, "is_owner": True}, request=request)


# -- role matrix ---------------------------------------------------------------------------------


def _state(firm) -> tuple:
    c = Connection.objects.filter(firm=firm).first()
    return (c.status, c.token_version, c.realm_id, c.account_scope) if c else None


@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [
        ("get", SETTINGS, {"owner", "admin"}),
        ("get", SETUP, {"owner", "admin"}),
        ("post", SETUP, {"owner", "admin"}),
        ("get", SETUP_CONFIRM, {"owner", "admin"}),
        ("post", SETUP_CONFIRM, {"owner"}),
        ("post", CONNECT, {"owner"}),
        ("get", CALLBACK, {"owner"}),
        ("post", DISCONNECT, {"owner"}),
        ("post", CHECK, {"owner", "admin"}),
        ("get", START_OVER, {"owner"}),
        ("post", START_OVER, {"owner"}),
    ],
)
@pytest.mark.parametrize("who", ["anonymous", "employee", "admin", "owner", "other"])
def test_role_matrix(client_as, firm, connection, method, url, allowed, who):
    before = _state(firm)
    response = getattr(client_as(who), method)(url, {"action": "confirm", "account_scope": "all"})
    if who == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    elif who == "other":
        # Another firm's owner acts on their own (unconnected) firm; this firm is untouched and
        # its company never shows up.
        assert response.status_code in (200, 302)
        assert b"Sandbox Company" not in response.content
    elif who in allowed:
        assert response.status_code in (200, 302)
    else:
        assert response.status_code == 403
    if who != "owner" and not (who == "admin" and url == SETUP and method == "post"):
        assert _state(firm) == before


def test_admin_can_change_setup(client_as, connection):
    admin = client_as("admin")
    form = admin.get(SETUP).context["form"]
    response = admin.post(
        SETUP,
        {
            "account_scope": "all",
            "unmatched_customer": "create",
            "income_account": form.initial["income_account"],
            "deposit_account": form.initial["deposit_account"],
        },
    )
    assert response.status_code == 302 and response["Location"] == SETUP_CONFIRM
    connection.refresh_from_db()
    assert connection.account_scope == "all" and not connection.is_set_up
    review = admin.get(SETUP_CONFIRM).content.decode()
    assert "owner starts the first sync" in review and 'type="submit">Start syncing' not in review


def test_connect_needs_post_and_csrf(client_as, firm):
    owner = client_as("owner")
    assert owner.get(CONNECT).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(firm.memberships.get(role="owner").user)
    assert strict.post(CONNECT).status_code == 403
    assert strict.post(DISCONNECT).status_code == 403


def test_two_firms_same_sandbox(client_as, firm, other_firm, sandbox, realm_id):
    """Each firm's connection is its own; the other firm's page shows nothing of this one."""
    connect_firm(firm, realm_id, sandbox)
    page = client_as("other").get(SETTINGS).content
    assert realm_id.encode() not in page
    assert b"Connect to QuickBooks" in page


# -- make demo's preparation of the bundled sandbox ----------------------------------------------


def test_local_sandbox_prepare_is_idempotent(client_as, firm, sandbox, settings):
    """Default dev credentials, registered by prepare(); the demo company exists once; the
    owner can then connect it through the normal flow."""
    from practice.quickbooks.demo import local_sandbox

    settings.QBO_CLIENT_ID = ""
    settings.QBO_CLIENT_SECRET = ""
    realm = local_sandbox.prepare(sandbox.url)
    assert local_sandbox.prepare(sandbox.url) == realm
    realms = httpx.get(f"{sandbox.url}/_sandbox/realms").json()["realms"]
    assert [r["company_name"] for r in realms].count(local_sandbox.DEMO_COMPANY_NAME) == 1

    owner = client_as("owner")
    url = start(owner)
    assert "client_id=practice-local-dev" in url
    response = back(owner, consent(url, realm_id=realm))
    assert response.redirect_chain[-1][0] == SETUP
    assert local_sandbox.DEMO_COMPANY_NAME in response.content.decode()


def test_settings_page_warns_when_the_environment_changed(client_as, connection, settings):
    settings.QBO_ENVIRONMENT = "production"
    settings.QBO_CLIENT_ID, settings.QBO_CLIENT_SECRET = "prod-id", "prod-secret"
    page = client_as("owner").get(SETTINGS).content.decode()
    assert 'now uses "production"' in page
    assert "Reconnect" in page
