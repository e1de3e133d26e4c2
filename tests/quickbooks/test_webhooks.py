"""The webhook receiver, POST /webhooks/quickbooks/ (issue 16 items 1 and 6).

Through Django's test client: signatures (Intuit's own test vector, valid, wrong, missing) in
the legacy and CloudEvents formats, replays and duplicates, oversized and malformed bodies, wrong
methods, realms nobody has, firm isolation, the one-line log of each refusal. Then `make demo`'s
registration of the webhook with the bundled sandbox, and end to end: a customer updated through
the sandbox's API reaches a live app server as a signed webhook and leaves a ChangeNotice.

`apply_qbo_changes` is never run here (the drift check is another module's); that it was
enqueued is read from django-tasks' database rows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from practice.quickbooks.models import ChangeNotice, Connection, ConnectionStatus
from practice.quickbooks.sync import webhooks
from tests.quickbooks.conftest import connect_firm

URL = "/webhooks/quickbooks/"
TOKEN = "test-verifier-4f1c9a"
APPLY_TASK = "practice.quickbooks.sync.tasks.apply_qbo_changes"
REALM = "9130350001"
OTHER_REALM = "9130350002"

# Intuit's .NET SDK test (intuit/QuickBooks-V3-DotNET-SDK,
# IPPDotNetDevKitCSV3/Code/Intuit.Ipp.WebhooksService.Test/WebhooksServiceTest.cs and its
# AppSettings.json): this body, signed with this verifier token, carries this header.
INTUIT_TOKEN = "00faeec4-08d0-4996-bb37-698ae19f0149"
INTUIT_SIGNATURE = "6q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLWM="
INTUIT_BODY = (
    b'{"eventNotifications":[{"realmId":"1269959970","dataChangeEvent":{"entities":['
    b'{"name":"Vendor","id":"40","operation":"Update","lastUpdated":"2016-10-05T03:09:04.000Z"},'
    b'{"name":"Customer","id":"43","operation":"Create","lastUpdated":"2016-10-05T03:07:04.000Z"}]}}]}'
)


def sign(body: bytes, token: str = TOKEN) -> str:
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


def legacy(realm: str, *entities: dict[str, str]) -> bytes:
    return json.dumps(
        {"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": list(entities)}}]}
    ).encode()


def cloud_event(realm: str, type_: str, entity_id: str, event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
        "type": type_,
        "datacontenttype": "application/json",
        "time": "2026-11-30T21:31:25.179851517Z",
        "intuitentityid": entity_id,
        "intuitaccountid": realm,
        **extra,
    }


def cloudevents(*events: dict[str, Any]) -> bytes:
    return json.dumps(list(events)).encode()


def post(body: bytes, signature: str | None = "sign", *, client: Client | None = None, url: str = URL):
    headers = {}
    if signature == "sign":
        signature = sign(body)
    if signature is not None:
        headers["HTTP_INTUIT_SIGNATURE"] = signature
    return (client or Client()).post(url, data=body, content_type="application/json", **headers)


def notices(connection: Connection) -> list[tuple[str, str, str, str, str]]:
    return list(
        ChangeNotice.objects.filter(connection=connection)
        .order_by("pk")
        .values_list("entity", "entity_id", "operation", "deleted_id", "source")
    )


def enqueued() -> list[int]:
    """Connection ids of the queued apply_qbo_changes tasks, in order."""
    rows = DBTaskResult.objects.filter(task_path=APPLY_TASK).order_by("enqueued_at")
    return [row.args_kwargs["args"][0] for row in rows]


@pytest.fixture(autouse=True)
def verifier(settings):
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = TOKEN
    return settings


def live(
    firm, realm_id: str, status: str = ConnectionStatus.CONNECTED, env: str = "sandbox-local"
) -> Connection:
    """A firm's connection to a company, as `oauth.connection_connect` leaves it (no tokens needed:
    the receiver never calls QuickBooks)."""
    return Connection.objects.create(firm=firm, realm_id=realm_id, status=status, environment=env)


@pytest.fixture
def conn(firm) -> Connection:
    return live(firm, REALM)


@pytest.fixture
def other_conn(other_firm) -> Connection:
    return live(other_firm, OTHER_REALM)


@pytest.fixture
def delivered(django_capture_on_commit_callbacks):
    """post(...) with the on-commit callbacks (the enqueue) run, as after a real request."""

    def deliver(body: bytes, signature: str | None = "sign", **kw: Any):
        with django_capture_on_commit_callbacks(execute=True):
            return post(body, signature, **kw)

    return deliver


CUSTOMER_UPDATE = {
    "name": "Customer",
    "id": "58",
    "operation": "Update",
    "lastUpdated": "2026-11-30T10:00:00.000Z",
}


# -- signatures ---------------------------------------------------------------------------------


def test_intuits_own_test_vector_verifies():
    assert webhooks.signature_valid(INTUIT_BODY, INTUIT_SIGNATURE, INTUIT_TOKEN) is True
    assert webhooks.signature_valid(INTUIT_BODY + b" ", INTUIT_SIGNATURE, INTUIT_TOKEN) is False
    assert webhooks.signature_valid(INTUIT_BODY, INTUIT_SIGNATURE, INTUIT_TOKEN + "x") is False
    assert webhooks.signature_valid(INTUIT_BODY, "not base64 at all!", INTUIT_TOKEN) is False
    assert webhooks.signature_valid(INTUIT_BODY, "", INTUIT_TOKEN) is False


def test_intuits_test_delivery_is_stored(settings, firm, delivered):
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = INTUIT_TOKEN
    conn = live(firm, "1269959970")

    response = delivered(INTUIT_BODY, INTUIT_SIGNATURE)

    assert response.status_code == 200
    assert response.json() == {"events": 2, "skipped": 0, "stored": 2}
    rows = list(ChangeNotice.objects.filter(connection=conn).order_by("pk"))
    assert [(n.entity, n.entity_id, n.operation, n.source) for n in rows] == [
        ("Vendor", "40", "Update", "webhook"),
        ("Customer", "43", "Create", "webhook"),
    ]
    assert [n.changed_at for n in rows] == [
        datetime(2016, 10, 5, 3, 9, 4, tzinfo=UTC),
        datetime(2016, 10, 5, 3, 7, 4, tzinfo=UTC),
    ]
    assert [n.dedupe_key for n in rows] == [
        "Vendor|40|Update|2016-10-05T03:09:04.000Z",
        "Customer|43|Create|2016-10-05T03:07:04.000Z",
    ]
    assert all(n.applied_at is None for n in rows)
    assert enqueued() == [conn.pk]


def test_legacy_delivery_with_a_merge(conn, delivered):
    merge = {
        "name": "Customer",
        "id": "7",
        "deletedId": "27",
        "operation": "Merge",
        "lastUpdated": "2015-10-05T14:42:19-0700",
    }
    response = delivered(legacy(REALM, merge, CUSTOMER_UPDATE))

    assert response.status_code == 200
    assert notices(conn) == [
        ("Customer", "7", "Merge", "27", "webhook"),
        ("Customer", "58", "Update", "", "webhook"),
    ]
    first = ChangeNotice.objects.filter(connection=conn).earliest("pk")
    assert first.changed_at == datetime(2015, 10, 5, 21, 42, 19, tzinfo=UTC)
    assert enqueued() == [conn.pk]


def test_cloudevents_delivery_maps_every_verb(conn, delivered):
    body = cloudevents(
        cloud_event(REALM, "qbo.customer.created.v1", "1", "ev-1"),
        cloud_event(REALM, "qbo.customer.updated.v1", "2", "ev-2"),
        cloud_event(REALM, "qbo.customer.deleted.v1", "3", "ev-3"),
        cloud_event(REALM, "qbo.customer.merged.v1", "4", "ev-4", data={"deletedid": "27"}),
        cloud_event(REALM, "qbo.invoice.voided.v1", "5", "ev-5", data={}),
        cloud_event(REALM, "qbo.creditmemo.emailed.v1", "6", "ev-6"),
    )
    response = delivered(body)

    assert response.status_code == 200
    assert response.json() == {"events": 6, "skipped": 0, "stored": 6}
    assert notices(conn) == [
        ("Customer", "1", "Create", "", "webhook"),
        ("Customer", "2", "Update", "", "webhook"),
        ("Customer", "3", "Delete", "", "webhook"),
        ("Customer", "4", "Merge", "27", "webhook"),
        ("Invoice", "5", "Void", "", "webhook"),
        ("CreditMemo", "6", "Emailed", "", "webhook"),
    ]
    rows = ChangeNotice.objects.filter(connection=conn).order_by("pk")
    assert [n.dedupe_key for n in rows] == ["ev-1", "ev-2", "ev-3", "ev-4", "ev-5", "ev-6"]
    # Nanoseconds in `time` are cut to microseconds, not refused.
    assert rows[0].changed_at == datetime(2026, 11, 30, 21, 31, 25, 179851, tzinfo=UTC)
    assert enqueued() == [conn.pk]


def test_unknown_verbs_are_kept_and_events_without_an_entity_are_skipped(conn, delivered):
    body = cloudevents(
        cloud_event(REALM, "qbo.customer.reactivated.v1", "9", "ev-a"),
        cloud_event(REALM, "com.example.something.v1", "9", "ev-b"),
        {**cloud_event(REALM, "qbo.customer.updated.v1", "9", "ev-c"), "intuitentityid": ""},
        {
            k: v
            for k, v in cloud_event(REALM, "qbo.customer.updated.v1", "9", "ev-d").items()
            if k != "intuitaccountid"
        },
    )
    response = delivered(body)

    assert response.status_code == 200
    assert response.json() == {"events": 1, "skipped": 3, "stored": 1}
    assert notices(conn) == [("Customer", "9", "Reactivated", "", "webhook")]


@pytest.mark.parametrize("fmt", ["legacy", "cloudevents"])
@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "missing_signature"),
        ("", "missing_signature"),
        ("wrong-token", "bad_signature"),
        ("tampered", "bad_signature"),
        ("garbage", "bad_signature"),
    ],
)
def test_a_bad_or_missing_signature_is_refused_and_stores_nothing(
    conn, delivered, caplog, fmt, signature, reason
):
    body = (
        legacy(REALM, CUSTOMER_UPDATE)
        if fmt == "legacy"
        else cloudevents(cloud_event(REALM, "qbo.customer.updated.v1", "58", "ev-1"))
    )
    header = {
        "wrong-token": sign(body, "another-apps-token"),
        "tampered": sign(body.replace(b"58", b"59")),
        "garbage": "%%%not-base64%%%",
    }.get(signature or "", signature)

    with caplog.at_level(logging.INFO):
        response = delivered(body, header)

    assert response.status_code == 403
    assert ChangeNotice.objects.count() == 0
    assert enqueued() == []
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in lines] == [
        f"qbo.webhook.refused status=403 reason={reason} path={URL} content_length={len(body)}"
    ]
    assert lines[0].exc_info is None


# -- replays and duplicates ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["legacy", "cloudevents"])
def test_a_replayed_delivery_is_a_no_op(conn, delivered, fmt):
    body = (
        legacy(REALM, CUSTOMER_UPDATE)
        if fmt == "legacy"
        else cloudevents(cloud_event(REALM, "qbo.customer.updated.v1", "58", "ev-1"))
    )
    first = delivered(body)
    again = delivered(body)

    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["stored"], again.json()["stored"]) == (1, 0)
    assert notices(conn) == [("Customer", "58", "Update", "", "webhook")]
    assert enqueued() == [conn.pk]


def test_duplicate_events_in_one_delivery_make_one_notice(conn, delivered):
    other_time = {**CUSTOMER_UPDATE, "lastUpdated": "2026-11-30T10:05:00.000Z"}
    response = delivered(legacy(REALM, CUSTOMER_UPDATE, CUSTOMER_UPDATE, other_time))
    assert response.json() == {"events": 3, "skipped": 0, "stored": 2}
    assert notices(conn) == [("Customer", "58", "Update", "", "webhook")] * 2

    same_id = cloud_event(REALM, "qbo.invoice.updated.v1", "130", "ev-dup")
    response = delivered(cloudevents(same_id, same_id))
    assert response.json() == {"events": 2, "skipped": 0, "stored": 1}
    assert ChangeNotice.objects.filter(connection=conn, entity="Invoice").count() == 1
    assert enqueued() == [conn.pk]


def test_one_check_is_queued_per_burst_and_a_new_one_once_it_started(conn, other_conn, delivered):
    """Notices arriving while a check waits are read by it; once it runs, the next ones get their own."""
    for n in range(3):
        delivered(cloudevents(cloud_event(REALM, "qbo.customer.updated.v1", "58", f"ev-{n}")))
    assert enqueued() == [conn.pk]

    delivered(cloudevents(cloud_event(OTHER_REALM, "qbo.customer.updated.v1", "58", "ev-other")))
    assert enqueued() == [conn.pk, other_conn.pk]  # the other company's check is its own

    # The worker claims the queued check: it may have read the notices already.
    DBTaskResult.objects.filter(task_path=APPLY_TASK).update(status="RUNNING")
    delivered(cloudevents(cloud_event(REALM, "qbo.customer.updated.v1", "58", "ev-late")))
    assert enqueued() == [conn.pk, other_conn.pk, conn.pk]
    assert ChangeNotice.objects.filter(connection=conn).count() == 4


def test_the_same_change_in_a_later_delivery_with_a_new_event_is_kept(conn, delivered):
    """Only the delivery's identity de-duplicates: a new CloudEvents id is a new notice."""
    delivered(cloudevents(cloud_event(REALM, "qbo.customer.updated.v1", "58", "ev-1")))
    delivered(cloudevents(cloud_event(REALM, "qbo.customer.updated.v1", "58", "ev-2")))
    assert list(ChangeNotice.objects.filter(connection=conn).values_list("dedupe_key", flat=True)) == [
        "ev-1",
        "ev-2",
    ]


# -- bodies, methods, configuration -------------------------------------------------------------


def test_an_oversized_body_is_refused_unread(conn, settings, delivered, caplog):
    settings.QBO_WEBHOOK_MAX_BODY_BYTES = 2048
    padding = {**CUSTOMER_UPDATE, "name": "Customer", "padding": "x" * 3000}
    body = legacy(REALM, padding)
    with caplog.at_level(logging.INFO):
        response = delivered(body)

    assert response.status_code == 413
    assert ChangeNotice.objects.count() == 0
    assert enqueued() == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"qbo.webhook.refused status=413 reason=too_large path={URL} content_length={len(body)}"
    ]
    # Just under the limit goes through.
    settings.QBO_WEBHOOK_MAX_BODY_BYTES = len(body)
    assert delivered(body).status_code == 200


@pytest.mark.parametrize("size", [100, 5000])
def test_a_chunked_body_is_read_up_to_the_limit(conn, settings, size, django_capture_on_commit_callbacks):
    """No Content-Length (Transfer-Encoding: chunked; the server has joined the chunks)."""
    import io

    from django.test import RequestFactory

    from practice.quickbooks.web.webhook_views import quickbooks_webhook

    settings.QBO_WEBHOOK_MAX_BODY_BYTES = 2048
    body = legacy(REALM, {**CUSTOMER_UPDATE, "padding": "x" * size})
    request = RequestFactory().generic(
        "POST", URL, b"", content_type="application/json", HTTP_INTUIT_SIGNATURE=sign(body)
    )
    request.META.pop("CONTENT_LENGTH", None)
    request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
    request.META["wsgi.input"] = stream = io.BytesIO(body)

    with django_capture_on_commit_callbacks(execute=True):
        response = quickbooks_webhook(request)

    if size < 2048:
        assert response.status_code == 200
        assert notices(conn) == [("Customer", "58", "Update", "", "webhook")]
    else:
        assert response.status_code == 413
        assert stream.tell() == 2049  # one byte past the limit, not the whole body
        assert notices(conn) == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe binary",
        b"",
        b'{"something": "else"}',
        b'{"eventNotifications": "not a list"}',
        b"[1, 2, 3]",
        b'[{"id": "no specversion"}]',
        b'"a string"',
    ],
)
def test_a_signed_body_that_is_no_delivery_is_a_400(conn, delivered, caplog, body):
    with caplog.at_level(logging.INFO):
        response = delivered(body)
    assert response.status_code == 400
    assert ChangeNotice.objects.count() == 0
    assert enqueued() == []
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "status=400 reason=malformed" in lines[0].getMessage()
    assert lines[0].exc_info is None


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_other_methods_are_refused(conn, method, caplog):
    with caplog.at_level(logging.INFO):
        response = getattr(Client(), method)(URL)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert ChangeNotice.objects.count() == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"qbo.webhook.refused status=405 reason=method path={URL} content_length=-"
    ]


def test_without_a_verifier_token_everything_is_refused(conn, settings, delivered, caplog):
    settings.QBO_ENVIRONMENT = "production"
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = ""
    body = legacy(REALM, CUSTOMER_UPDATE)
    for signature in (sign(body, webhooks.LOCAL_VERIFIER_TOKEN), sign(body, ""), None):
        with caplog.at_level(logging.INFO):
            response = delivered(body, signature)
        assert response.status_code == 503
        assert b"QBO_WEBHOOK_VERIFIER_TOKEN is not set" in response.content
    assert ChangeNotice.objects.count() == 0
    assert enqueued() == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3 and all("reason=no_verifier_token" in r.getMessage() for r in errors)


def test_the_local_sandbox_uses_the_development_token_unless_one_is_set(conn, settings, delivered):
    settings.QBO_ENVIRONMENT = "sandbox-local"
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = ""
    body = legacy(REALM, CUSTOMER_UPDATE)
    assert delivered(body, sign(body, webhooks.LOCAL_VERIFIER_TOKEN)).status_code == 200
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = "mine"
    assert delivered(body, sign(body, webhooks.LOCAL_VERIFIER_TOKEN)).status_code == 403
    assert delivered(body, sign(body, "mine")).status_code == 200


def test_no_csrf_token_or_sign_in_needed_and_the_slashless_url_works(conn, delivered):
    strict = Client(enforce_csrf_checks=True)
    assert delivered(legacy(REALM, CUSTOMER_UPDATE), client=strict).status_code == 200
    other = {**CUSTOMER_UPDATE, "id": "59"}
    response = delivered(legacy(REALM, other), client=strict, url="/webhooks/quickbooks")
    assert response.status_code == 200
    assert reverse("quickbooks_webhook") == URL
    assert len(notices(conn)) == 2


# -- realms and firms ---------------------------------------------------------------------------


def test_a_realm_nobody_has_is_acknowledged_and_ignored(conn, delivered):
    response = delivered(legacy("4620816365000000000", CUSTOMER_UPDATE))
    assert response.status_code == 200
    assert response.json() == {"events": 1, "skipped": 0, "stored": 0}
    assert ChangeNotice.objects.count() == 0
    assert enqueued() == []


def test_a_realm_of_one_firm_never_reaches_another(conn, other_conn, delivered):
    delivered(cloudevents(cloud_event(REALM, "qbo.customer.updated.v1", "58", "ev-1")))
    assert notices(conn) == [("Customer", "58", "Update", "", "webhook")]
    assert notices(other_conn) == []
    assert enqueued() == [conn.pk]

    # One body naming both realms (legacy allows several; CloudEvents carry a realm per event).
    body = cloudevents(
        cloud_event(OTHER_REALM, "qbo.invoice.updated.v1", "130", "ev-2"),
        cloud_event(REALM, "qbo.payment.created.v1", "140", "ev-3"),
    )
    delivered(body)
    assert notices(other_conn) == [("Invoice", "130", "Update", "", "webhook")]
    assert notices(conn)[1:] == [("Payment", "140", "Create", "", "webhook")]
    assert enqueued() == [conn.pk, other_conn.pk]  # this firm's first check still waits


def test_legacy_delivery_with_two_realms(conn, other_conn, delivered):
    body = json.dumps(
        {
            "eventNotifications": [
                {"realmId": REALM, "dataChangeEvent": {"entities": [CUSTOMER_UPDATE]}},
                {"realmId": OTHER_REALM, "dataChangeEvent": {"entities": [{**CUSTOMER_UPDATE, "id": "3"}]}},
            ]
        }
    ).encode()
    assert delivered(body).json() == {"events": 2, "skipped": 0, "stored": 2}
    assert notices(conn) == [("Customer", "58", "Update", "", "webhook")]
    assert notices(other_conn) == [("Customer", "3", "Update", "", "webhook")]


def test_disconnected_companies_get_nothing_and_a_reconnect_waits(conn, other_firm, delivered):
    Connection.objects.filter(pk=conn.pk).update(status=ConnectionStatus.DISCONNECTED)
    # The company, disconnected by this firm, is now the other firm's, waiting for a reconnect.
    waiting = live(other_firm, REALM, ConnectionStatus.NEEDS_RECONNECT)

    response = delivered(legacy(REALM, CUSTOMER_UPDATE))

    assert response.json()["stored"] == 1
    assert notices(conn) == []
    # Kept for when it can read QuickBooks again; no check is queued that could not read it.
    assert notices(waiting) == [("Customer", "58", "Update", "", "webhook")]
    assert enqueued() == []


def test_a_connection_of_another_environment_gets_nothing(firm, other_firm, settings, delivered):
    """The same realm id in another environment (the local sandbox's made-up ids) is another company."""
    settings.QBO_ENVIRONMENT = "production"
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = TOKEN
    local = live(firm, REALM, env="sandbox-local")
    production = live(other_firm, REALM, env="production")

    delivered(legacy(REALM, CUSTOMER_UPDATE))

    assert notices(local) == []
    assert notices(production) == [("Customer", "58", "Update", "", "webhook")]
    assert enqueued() == [production.pk]


# -- make demo ----------------------------------------------------------------------------------


def test_make_demo_registers_the_webhook_with_the_sandbox(sandbox, settings):
    """prepare() points the app's sandbox registration at the receiver, with the token it checks,
    and updates an older registration (the sandbox keeps apps in its snapshot) in place."""
    from practice.quickbooks.connection import oauth
    from practice.quickbooks.demo import local_sandbox

    settings.QBO_CLIENT_ID = "practice-webhook-demo"
    settings.QBO_CLIENT_SECRET = "practice-webhook-demo-secret"
    settings.QBO_REDIRECT_URI = "http://127.0.0.1:8123/settings/integrations/quickbooks/callback/"
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = ""
    # A registration from before webhooks were wired: no URL, another token, legacy format.
    sandbox.register_app(
        redirect_uris=["http://127.0.0.1:8000/old/"],
        client_id="practice-webhook-demo",
        client_secret="practice-webhook-demo-secret",
        verifier_token="old-token",
        webhook_format="legacy",
    )

    assert local_sandbox.register_app(sandbox.url) == "practice-webhook-demo"
    assert local_sandbox.register_app(sandbox.url) == "practice-webhook-demo"

    app = sandbox.sandbox.oauth.get_app("practice-webhook-demo")
    assert app is not None
    assert app.webhook_url == "http://127.0.0.1:8123/webhooks/quickbooks/"
    assert app.verifier_token == webhooks.LOCAL_VERIFIER_TOKEN == webhooks.verifier_token()
    assert app.webhook_format == "cloudevents"
    assert app.redirect_uris == [oauth.environment("sandbox-local").redirect_uri]
    apps = [a for a in sandbox.sandbox.oauth.apps.values() if a.client_id == "practice-webhook-demo"]
    assert len(apps) == 1
    # Leave the session sandbox as other tests expect it: no webhook for this app.
    sandbox.register_app(client_id="practice-webhook-demo", webhook_url="")


# -- end to end ---------------------------------------------------------------------------------


E2E_CLIENT_ID = "practice-webhook-e2e"


@pytest.mark.parametrize("fmt", ["cloudevents", "legacy"])
def test_a_customer_updated_in_the_sandbox_arrives_as_a_notice(live_server, sandbox, firm, realm_id, fmt):
    """The real sandbox signs and POSTs its notification to a live app server over HTTP."""
    sandbox.register_app(
        redirect_uris=["http://testserver/settings/integrations/quickbooks/callback/"],
        client_id=E2E_CLIENT_ID,
        client_secret="practice-webhook-e2e-secret",
        webhook_url=f"{live_server.url}{URL}",
        verifier_token=TOKEN,
        webhook_format=fmt,
        name="Practice (webhook tests)",
    )
    try:
        connection = connect_firm(firm, realm_id, sandbox, client_id=E2E_CLIENT_ID)
        tokens = sandbox.issue_tokens(realm_id, client_id=E2E_CLIENT_ID)
        with sandbox.api(realm_id, tokens["access_token"]) as api:
            customer = api.get("/customer/1").json()["Customer"]
            resp = api.post(
                "/customer",
                json={
                    "Id": "1",
                    "SyncToken": customer["SyncToken"],
                    "sparse": True,
                    "Notes": "Changed in QBO",
                },
            )
            assert resp.status_code == 200, resp.text
            updated = resp.json()["Customer"]

        api_calls = len(sandbox.requests(realm_id))
        assert api_calls >= 2  # the log does record API calls (the read and the update above)
        # Wait for this app's delivery only: the session's sandbox may hold other tests' deliveries
        # to receivers long gone, which Intuit (and so the sandbox) retries without end.
        sandbox.flush_webhooks()
        deadline = time.monotonic() + 30
        sent = sandbox.webhook_deliveries(realm_id=realm_id, client_id=E2E_CLIENT_ID)
        while not (sent and sent[0]["status"] == "delivered") and time.monotonic() < deadline:
            time.sleep(0.1)
            sent = sandbox.webhook_deliveries(realm_id=realm_id, client_id=E2E_CLIENT_ID)
        # The receiver answered without reading anything from QuickBooks (the check does later).
        assert len(sandbox.requests(realm_id)) == api_calls
        assert [d["status"] for d in sent] == ["delivered"]
        assert [a["status_code"] for a in sent[0]["attempts"]] == [200]

        rows = list(ChangeNotice.objects.filter(connection=connection))
        assert [(n.entity, n.entity_id, n.operation, n.source) for n in rows] == [
            ("Customer", "1", "Update", "webhook")
        ]
        payload = json.loads(sent[0]["body"])
        if fmt == "cloudevents":
            assert rows[0].dedupe_key == payload[0]["id"]
        else:
            entity = payload["eventNotifications"][0]["dataChangeEvent"]["entities"][0]
            assert rows[0].dedupe_key == f"Customer|1|Update|{entity['lastUpdated']}"
        stamp = datetime.fromisoformat(updated["MetaData"]["LastUpdatedTime"])
        assert rows[0].changed_at is not None and abs((rows[0].changed_at - stamp).total_seconds()) < 1
        assert enqueued() == [connection.pk]

        # Intuit resends what it thinks was not acknowledged: the same body again is a no-op.
        again = httpx.post(
            f"{live_server.url}{URL}",
            content=sent[0]["body"].encode(),
            headers={"intuit-signature": sent[0]["signature"], "Content-Type": "application/json"},
        )
        assert again.status_code == 200 and again.json()["stored"] == 0
        assert ChangeNotice.objects.filter(connection=connection).count() == 1
        assert enqueued() == [connection.pk]
    finally:
        sandbox.register_app(client_id=E2E_CLIENT_ID, webhook_url="")
