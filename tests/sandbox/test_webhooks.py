"""Webhook deliveries from a running sandbox to real HTTP receivers on 127.0.0.1.

Delays are shrunk through the config (aggregation window 0.2 s, retry schedule scaled by
time_scale), so nothing here sleeps for more than a fraction of a second at a time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.testing import SandboxServer
from qbo_sandbox.webhooks import WebhookDispatcher, verify

STAMP = "2026-11-28T08:15:30-08:00"


class Receiver:
    """An app's webhook endpoint: records every request and answers from a script of statuses."""

    def __init__(self, statuses=(200,), delay: float = 0.0) -> None:
        self.requests: list[dict] = []
        self.statuses = itertools.chain(statuses, itertools.repeat(statuses[-1]))
        self.delay = delay
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append({"headers": dict(self.headers.items()), "body": body})
                    status = next(receiver.statuses)
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhooks/quickbooks"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver_factory():
    made: list[Receiver] = []

    def make(*statuses, delay: float = 0.0) -> Receiver:
        receiver = Receiver(statuses or (200,), delay=delay)
        made.append(receiver)
        return receiver

    yield make
    for r in made:
        r.close()


@pytest.fixture(scope="module")
def server():
    # Its own server (not the session one): these tests shrink the webhook window and retry
    # schedule, and every write elsewhere would otherwise queue notifications here.
    cfg = SandboxConfig(
        webhook_delay_seconds=0.2,
        webhook_max_retries=3,
        webhook_timeout_seconds=0.5,
        time_scale=0.01,
        throttling_enabled=False,
    )
    with SandboxServer(cfg) as srv:
        yield srv


@pytest.fixture(scope="module")
def sandbox(server):
    """The sandbox object behind the server; tests call its dispatcher from this thread, as the
    control plane or the CLI could."""
    return server.sandbox


_realm_ids = itertools.count(9130356000)


def connected_app(sandbox, receiver, **kwargs):
    app = sandbox.oauth.register_app(webhook_url=receiver.url if receiver else None, **kwargs)
    realm = str(next(_realm_ids))
    sandbox.oauth.issue_tokens(client_id=app.client_id, realm_id=realm)
    return app, realm


def test_api_writes_notify_connected_apps(server, sandbox, receiver_factory):
    """The whole path: an app connected through the control plane, a write through the API."""
    receiver = receiver_factory()
    client_id, _ = server.register_app(webhook_url=receiver.url, verifier_token="verify-me", name="Hooked")
    realm = server.create_realm(name="Webhook Co")
    tokens = server.issue_tokens(realm, client_id=client_id)
    with server.api(realm, tokens["access_token"]) as api:
        resp = api.post("/customer", json={"DisplayName": "Ada Lovelace"})
        assert resp.status_code == 200, resp.text
        customer = resp.json()["Customer"]
    wait_for(lambda: receiver.requests)
    request = receiver.requests[0]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert verify(request["body"], headers["intuit-signature"], "verify-me")
    (event,) = json.loads(request["body"])
    assert event["type"] == "qbo.customer.created.v1"
    assert event["intuitaccountid"] == realm
    assert event["intuitentityid"] == customer["Id"]


def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def deliveries_for(sandbox, app):
    return [d for d in sandbox.webhooks.deliveries if d.client_id == app.client_id]


def expected_signature(body: bytes, token: str) -> str:
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


def test_cloudevents_delivery_is_signed_and_aggregated(sandbox, receiver_factory):
    receiver = receiver_factory()
    app, realm = connected_app(sandbox, receiver)
    assert app.webhook_format == "cloudevents"
    hooks = sandbox.webhooks
    hooks.entity_changed(realm, "Customer", "58", "Create", STAMP)
    hooks.entity_changed(realm, "Invoice", "130", "Update", STAMP)
    hooks.entity_changed(realm, "Payment", "7", "Delete", STAMP)
    wait_for(lambda: receiver.requests)
    time.sleep(0.3)  # nothing else should follow: the three changes share one window
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    body = request["body"]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert headers["intuit-signature"] == expected_signature(body, app.verifier_token)
    assert verify(body, headers["intuit-signature"], app.verifier_token)
    assert not verify(body + b" ", headers["intuit-signature"], app.verifier_token)
    events = json.loads(body)
    assert isinstance(events, list)
    assert [e["type"] for e in events] == [
        "qbo.customer.created.v1",
        "qbo.invoice.updated.v1",
        "qbo.payment.deleted.v1",
    ]
    first = events[0]
    assert first["specversion"] == "1.0"
    assert first["datacontenttype"] == "application/json"
    assert first["intuitaccountid"] == realm
    assert first["intuitentityid"] == "58"
    assert first["time"] == "2026-11-28T16:15:30.000Z"
    assert first["source"].startswith("intuit.")
    assert first["data"] == {}
    # <uuid>-<Entity>-<entityId>, as in Intuit's newest examples (qbo-api.md §9.4).
    assert [
        re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-(\w+)-(\d+)", e["id"]).groups()[1:]
        for e in events
    ] == [("Customer", "58"), ("Invoice", "130"), ("Payment", "7")]
    assert len({e["id"] for e in events}) == 3
    (delivery,) = wait_for(lambda: [d for d in deliveries_for(sandbox, app) if d.status == "delivered"])
    assert delivery.events == 3
    assert [a.status_code for a in delivery.attempts] == [200]


def test_legacy_format_sends_one_realm_per_post(sandbox, receiver_factory):
    receiver = receiver_factory()
    app, realm_a = connected_app(sandbox, receiver, webhook_format="legacy")
    realm_b = str(next(_realm_ids))
    sandbox.oauth.issue_tokens(client_id=app.client_id, realm_id=realm_b)
    # A wider window than the suite's 0.2 s: on a loaded machine the three calls below must
    # still land in one aggregation window, or the test would measure the scheduler.
    sandbox.config.webhook_delay_seconds = 1.5
    try:
        sandbox.webhooks.entity_changed(realm_a, "Customer", "1", "Create", STAMP)
        sandbox.webhooks.entity_changed(realm_b, "Invoice", "9", "Void", STAMP)
        sandbox.webhooks.entity_changed(realm_a, "Customer", "1", "Update", STAMP)
        wait_for(lambda: len(receiver.requests) == 2)
    finally:
        sandbox.config.webhook_delay_seconds = 0.2
    time.sleep(0.3)
    # Both realms' changes fell in one window, yet each realm gets a POST of its own: Intuit
    # "only uses one [realm] at this time" (qbo-api.md §9.4, correcting §9.1).
    assert len(receiver.requests) == 2
    notes = {}
    for request in receiver.requests:
        body = request["body"]
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers["intuit-signature"] == expected_signature(body, app.verifier_token)
        (note,) = json.loads(body)["eventNotifications"]
        notes[note["realmId"]] = note["dataChangeEvent"]["entities"]
    # lastUpdated in UTC with milliseconds and a Z, as Intuit's recent examples (§9.4).
    assert notes[realm_a] == [
        {"name": "Customer", "id": "1", "operation": "Create", "lastUpdated": "2026-11-28T16:15:30.000Z"},
        {"name": "Customer", "id": "1", "operation": "Update", "lastUpdated": "2026-11-28T16:15:30.000Z"},
    ]
    assert notes[realm_b] == [
        {"name": "Invoice", "id": "9", "operation": "Void", "lastUpdated": "2026-11-28T16:15:30.000Z"}
    ]
    logged = sorted(d.realm_ids for d in deliveries_for(sandbox, app))
    assert logged == sorted([[realm_a], [realm_b]])


def test_changes_after_the_window_make_a_second_notification(sandbox, receiver_factory):
    receiver = receiver_factory()
    _app, realm = connected_app(sandbox, receiver)
    sandbox.webhooks.entity_changed(realm, "Customer", "1", "Create", STAMP)
    wait_for(lambda: len(receiver.requests) == 1)
    sandbox.webhooks.entity_changed(realm, "Customer", "1", "Update", STAMP)
    wait_for(lambda: len(receiver.requests) == 2)
    types = [json.loads(r["body"])[0]["type"] for r in receiver.requests]
    assert types == ["qbo.customer.created.v1", "qbo.customer.updated.v1"]


def test_retries_on_500_until_acknowledged(sandbox, receiver_factory):
    receiver = receiver_factory(500, 503, 200)
    app, realm = connected_app(sandbox, receiver)
    sandbox.webhooks.entity_changed(realm, "Invoice", "5", "Create", STAMP)
    (delivery,) = wait_for(lambda: [d for d in deliveries_for(sandbox, app) if d.status == "delivered"])
    assert [a.status_code for a in delivery.attempts] == [500, 503, 200]
    # Every retry carries the same body and signature, so a receiver can de-duplicate.
    assert len({r["body"] for r in receiver.requests}) == 1


def test_gives_up_after_max_retries(sandbox, receiver_factory):
    receiver = receiver_factory(500)
    app, realm = connected_app(sandbox, receiver)
    sandbox.webhooks.entity_changed(realm, "Invoice", "5", "Create", STAMP)
    (delivery,) = wait_for(lambda: [d for d in deliveries_for(sandbox, app) if d.status == "failed"])
    assert len(delivery.attempts) == 1 + sandbox.config.webhook_max_retries
    assert len(receiver.requests) == 1 + sandbox.config.webhook_max_retries


def test_unreachable_receiver_is_retried_then_given_up(sandbox):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the delivery: connection refused
    app, realm = connected_app(sandbox, None)
    sandbox.oauth.register_app(client_id=app.client_id, webhook_url=f"http://127.0.0.1:{port}/hook")
    sandbox.webhooks.entity_changed(realm, "Customer", "3", "Create", STAMP)
    (delivery,) = wait_for(lambda: [d for d in deliveries_for(sandbox, app) if d.status == "failed"])
    assert len(delivery.attempts) == 4
    assert all(a.status_code is None and "ConnectError" in a.error for a in delivery.attempts)


def test_slow_receiver_times_out_and_is_retried(sandbox, receiver_factory):
    receiver = receiver_factory(200, delay=0.8)
    sandbox.config.webhook_max_retries = 1
    try:
        app, realm = connected_app(sandbox, receiver)
        sandbox.webhooks.entity_changed(realm, "Customer", "3", "Create", STAMP)
        (delivery,) = wait_for(lambda: [d for d in deliveries_for(sandbox, app) if d.status == "failed"])
    finally:
        sandbox.config.webhook_max_retries = 3
    assert [a.status_code for a in delivery.attempts] == [None, None]
    assert "Timeout" in delivery.attempts[0].error


def test_later_notifications_wait_for_the_earlier_one(sandbox, receiver_factory):
    receiver = receiver_factory(500, 500, 200)
    _app, realm = connected_app(sandbox, receiver)
    sandbox.webhooks.entity_changed(realm, "Customer", "1", "Create", STAMP)
    wait_for(lambda: receiver.requests)
    sandbox.webhooks.entity_changed(realm, "Customer", "2", "Create", STAMP)
    wait_for(lambda: len(receiver.requests) == 4)
    ids = [json.loads(r["body"])[0]["intuitentityid"] for r in receiver.requests]
    assert ids == ["1", "1", "1", "2"]


def test_only_connected_apps_with_a_url_and_matching_entities_hear(sandbox, receiver_factory):
    listening = receiver_factory()
    filtered = receiver_factory()
    revoked = receiver_factory()
    never = receiver_factory()
    _app, realm = connected_app(sandbox, listening)
    only_invoices = sandbox.oauth.register_app(webhook_url=filtered.url, webhook_entities=["Invoice"])
    sandbox.oauth.issue_tokens(client_id=only_invoices.client_id, realm_id=realm)
    gone = sandbox.oauth.register_app(webhook_url=revoked.url)
    sandbox.oauth.issue_tokens(client_id=gone.client_id, realm_id=realm)
    sandbox.oauth.revoke_realm(realm, gone.client_id)
    sandbox.oauth.register_app(webhook_url=never.url)  # registered, never connected
    no_url = sandbox.oauth.register_app()
    sandbox.oauth.issue_tokens(client_id=no_url.client_id, realm_id=realm)

    sandbox.webhooks.entity_changed(realm, "Customer", "1", "Create", STAMP)
    sandbox.webhooks.entity_changed(realm, "Invoice", "2", "Create", STAMP)
    wait_for(lambda: listening.requests and filtered.requests)
    time.sleep(0.3)
    assert len(json.loads(listening.requests[0]["body"])) == 2
    assert [e["intuitentityid"] for e in json.loads(filtered.requests[0]["body"])] == ["2"]
    assert revoked.requests == [] and never.requests == []
    assert deliveries_for(sandbox, no_url) == []


def test_flush_now_skips_the_window(sandbox, receiver_factory):
    receiver = receiver_factory()
    app, realm = connected_app(sandbox, receiver)
    sandbox.config.webhook_delay_seconds = 30
    try:
        sandbox.webhooks.entity_changed(realm, "Customer", "1", "Create", STAMP)
        time.sleep(0.1)
        assert receiver.requests == []
        assert sandbox.webhooks.pending_events() == 1
        sandbox.webhooks.flush_now()
        wait_for(lambda: receiver.requests, timeout=2)
    finally:
        sandbox.config.webhook_delay_seconds = 0.2
    wait_for(sandbox.webhooks.idle)
    log = deliveries_for(sandbox, app)[0].to_dict()
    assert json.loads(log["body"])[0]["intuitentityid"] == "1"
    assert log["status"] == "delivered"


def test_retry_schedule_is_intuits_scaled():
    cfg = SandboxConfig(time_scale=0.001)
    hooks = WebhookDispatcher(SimpleNamespace(config=cfg))
    assert [round(hooks.retry_delay(i), 4) for i in range(5)] == [0.0, 0.01, 0.02, 0.03, 0.3]
    assert hooks.retry_delay(50) == pytest.approx(21.6)
    custom = WebhookDispatcher(SimpleNamespace(config=cfg), retry_delays=[0.5])
    assert custom.retry_delay(3) == 0.5


def test_events_before_start_are_kept():
    cfg = SandboxConfig()
    hooks = WebhookDispatcher(SimpleNamespace(config=cfg))
    hooks.entity_changed("1", "Customer", "1", "Create", STAMP)
    assert hooks.pending_events() == 1


# -- control plane: apps with a webhook format, the delivery log, flush ------------------------------


def _connect_through_control_plane(server, receiver, **app_fields):
    client_id, _ = server.register_app(
        webhook_url=receiver.url, verifier_token="control-verifier", **app_fields
    )
    realm = server.create_realm()
    tokens = server.issue_tokens(realm, client_id=client_id)
    return client_id, realm, tokens


@pytest.mark.parametrize("fmt", ["cloudevents", "legacy"])
def test_control_plane_app_format_end_to_end(server, receiver_factory, fmt):
    """An app registered over HTTP with a format and an entity filter gets exactly that."""
    receiver = receiver_factory()
    client_id, realm, tokens = _connect_through_control_plane(
        server, receiver, webhook_format=fmt, webhook_entities=["Customer"]
    )
    with server.api(realm, tokens["access_token"]) as api:
        customer = api.post("/customer", json={"DisplayName": f"Format {fmt}"}).json()["Customer"]
        assert api.post("/vendor", json={"DisplayName": f"Filtered {fmt}"}).status_code == 200
    assert server.flush_webhooks(wait=5)["idle"] is True
    (delivery,) = server.webhook_deliveries(realm_id=realm)
    assert delivery["client_id"] == client_id
    assert delivery["format"] == fmt
    assert delivery["status"] == "delivered"
    assert delivery["realm_ids"] == [realm]
    assert delivery["events"] == 1
    assert [a["status_code"] for a in delivery["attempts"]] == [200]
    (request,) = receiver.requests
    assert request["body"].decode() == delivery["body"]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["intuit-signature"] == delivery["signature"]
    assert verify(request["body"], headers["intuit-signature"], "control-verifier")
    payload = json.loads(request["body"])
    if fmt == "legacy":
        (note,) = payload["eventNotifications"]
        assert note["realmId"] == realm
        (entity,) = note["dataChangeEvent"]["entities"]
        assert (entity["name"], entity["id"], entity["operation"]) == ("Customer", customer["Id"], "Create")
    else:
        (event,) = payload
        assert event["specversion"] == "1.0"
        assert event["type"] == "qbo.customer.created.v1"
        assert (event["intuitaccountid"], event["intuitentityid"]) == (realm, customer["Id"])


def test_control_plane_updates_an_apps_webhook_settings(server):
    client_id, _ = server.register_app(webhook_url="http://127.0.0.1:9/hook")
    app = server.sandbox.oauth.get_app(client_id)
    assert (app.webhook_format, app.webhook_entities) == ("cloudevents", None)
    server.register_app(client_id=client_id, webhook_format="legacy", webhook_entities=["Invoice", "Invoice"])
    assert (app.webhook_format, app.webhook_entities) == ("legacy", ["Invoice"])
    # Left out: kept as they are.
    server.register_app(client_id=client_id, name="Renamed")
    assert (app.webhook_format, app.webhook_entities, app.name) == ("legacy", ["Invoice"], "Renamed")


@pytest.mark.parametrize(
    ("body", "field", "mentions"),
    [
        ({"webhook_format": "xml"}, "webhook_format", "'xml'"),
        ({"webhook_format": 1}, "webhook_format", "cloudevents, legacy"),
        ({"webhook_entities": "Customer"}, "webhook_entities", "list"),
        ({"webhook_entities": ["Customer", 7]}, "webhook_entities", "list"),
        ({"webhook_entities": ["Customer", "invoice"]}, "webhook_entities", "'invoice'"),
    ],
)
def test_control_plane_rejects_bad_webhook_settings(server, body, field, mentions):
    before = len(server.sandbox.oauth.apps)
    resp = server.client.post("/_sandbox/apps", json={"webhook_url": "http://127.0.0.1:9/h", **body})
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == field
    assert field in resp.json()["error"] and mentions in resp.json()["error"]
    assert len(server.sandbox.oauth.apps) == before


def test_delivery_log_filters_by_realm_and_app(server, receiver_factory):
    receiver = receiver_factory()
    client_id, realm_a, tokens_a = _connect_through_control_plane(server, receiver)
    realm_b = server.create_realm()
    tokens_b = server.issue_tokens(realm_b, client_id=client_id)
    for realm, tokens in ((realm_a, tokens_a), (realm_b, tokens_b)):
        with server.api(realm, tokens["access_token"]) as api:
            assert api.post("/customer", json={"DisplayName": f"Log {realm}"}).status_code == 200
        # One realm at a time, so each notification covers one realm.
        assert server.flush_webhooks(wait=5)["idle"] is True
    (in_a,) = server.webhook_deliveries(realm_id=realm_a)
    (in_b,) = server.webhook_deliveries(realm_id=realm_b)
    assert (in_a["realm_ids"], in_b["realm_ids"]) == ([realm_a], [realm_b])
    mine = server.webhook_deliveries(client_id=client_id)
    assert [d["delivery_id"] for d in mine] == [in_a["delivery_id"], in_b["delivery_id"]]
    everything = server.webhook_deliveries()
    assert {in_a["delivery_id"], in_b["delivery_id"]} <= {d["delivery_id"] for d in everything}
    assert len(everything) == len(server.sandbox.webhooks.deliveries)
    assert server.webhook_deliveries(realm_id="1") == []
    assert server.webhook_deliveries(realm_id=realm_a, client_id="someone-else") == []
    raw = server.client.get("/_sandbox/webhooks/deliveries", params={"realm": realm_a})
    assert raw.status_code == 200 and isinstance(raw.json(), list)


def test_flush_endpoint_sends_without_waiting_for_the_window(server, receiver_factory):
    receiver = receiver_factory()
    _client_id, realm, tokens = _connect_through_control_plane(server, receiver)
    server.set_config(webhook_delay_seconds=30)
    try:
        with server.api(realm, tokens["access_token"]) as api:
            assert api.post("/customer", json={"DisplayName": "Flushed"}).status_code == 200
        time.sleep(0.1)
        assert receiver.requests == []
        assert server.webhook_deliveries(realm_id=realm) == []
        answer = server.flush_webhooks(wait=5)
    finally:
        server.set_config(webhook_delay_seconds=0.2)
    assert answer == {"flushed_events": 1, "idle": True}
    assert len(receiver.requests) == 1
    (delivery,) = server.webhook_deliveries(realm_id=realm)
    assert delivery["status"] == "delivered"
    # Nothing buffered: a flush is a no-op.
    assert server.flush_webhooks() == {"flushed_events": 0, "idle": True}
    bad = server.client.post("/_sandbox/webhooks/flush", json={"wait": "soon"})
    assert bad.status_code == 400 and bad.json()["field"] == "wait"


def test_cli_app_create_passes_webhook_settings(server, receiver_factory, capsys):
    from qbo_sandbox import cli

    receiver = receiver_factory()
    args = ["app", "create", "--webhook-url", receiver.url, "--verifier-token", "cli-verifier"]
    args += ["--webhook-format", "legacy", "--webhook-entities", "Customer,Invoice"]
    args += ["--webhook-entities", "Vendor", "--url", server.url]
    cli.main(args)
    created = json.loads(capsys.readouterr().out)
    assert created["webhook_format"] == "legacy"
    assert created["webhook_entities"] == ["Customer", "Invoice", "Vendor"]
    realm = server.create_realm()
    tokens = server.issue_tokens(realm, client_id=created["client_id"])
    with server.api(realm, tokens["access_token"]) as api:
        assert api.post("/vendor", json={"DisplayName": "CLI Vendor"}).status_code == 200
    assert server.flush_webhooks(wait=5)["idle"] is True
    (request,) = receiver.requests
    assert verify(request["body"], request["headers"]["intuit-signature"], "cli-verifier")
    (note,) = json.loads(request["body"])["eventNotifications"]
    assert note["dataChangeEvent"]["entities"][0]["name"] == "Vendor"

    with pytest.raises(SystemExit) as bad_format:
        cli.main(["app", "create", "--webhook-format", "xml", "--url", server.url])
    assert bad_format.value.code == 2
    assert "--webhook-format" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad_entity:
        cli.main(["app", "create", "--webhook-entities", "customer", "--url", server.url])
    assert "webhook_entities" in str(bad_entity.value) and "400" in str(bad_entity.value)


# -- issue 16: merges, Intuit's whole retry schedule, CloudEvents data ---------------------------------


@pytest.mark.parametrize("fmt", ["cloudevents", "legacy"])
def test_merge_notifies_survivor_with_the_deleted_id(server, receiver_factory, fmt):
    """A merge made on the control plane reaches the app as Intuit sends it (qbo-api.md §9.4)."""
    receiver = receiver_factory()
    _client_id, realm, tokens = _connect_through_control_plane(server, receiver, webhook_format=fmt)
    with server.api(realm, tokens["access_token"]) as api:
        loser = api.post("/customer", json={"DisplayName": f"Merged away {fmt}"}).json()["Customer"]
        keep = api.post("/customer", json={"DisplayName": f"Kept {fmt}"}).json()["Customer"]
        line = {
            "Amount": 10,
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
        }
        invoice = api.post("/invoice", json={"CustomerRef": {"value": loser["Id"]}, "Line": [line]}).json()[
            "Invoice"
        ]
    assert server.flush_webhooks(wait=5)["idle"] is True
    before = len(receiver.requests)
    result = server.merge(realm, "Customer", loser["Id"], keep["Id"])
    assert server.flush_webhooks(wait=5)["idle"] is True
    (request,) = receiver.requests[before:]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert verify(request["body"], headers["intuit-signature"], "control-verifier")
    stamp = result["survivor"]["MetaData"]["LastUpdatedTime"]
    payload = json.loads(request["body"])
    if fmt == "legacy":
        (note,) = payload["eventNotifications"]
        assert note["realmId"] == realm
        merged, moved = note["dataChangeEvent"]["entities"]
        assert merged == {
            "name": "Customer",
            "id": keep["Id"],
            "deletedId": loser["Id"],
            "operation": "Merge",
            "lastUpdated": _utc_ms(stamp),
        }
        assert list(merged) == ["name", "id", "deletedId", "operation", "lastUpdated"]
        assert (moved["name"], moved["id"], moved["operation"]) == ("Invoice", invoice["Id"], "Update")
        assert "deletedId" not in moved
    else:
        merged, moved = payload
        assert merged["type"] == "qbo.customer.merged.v1"
        assert (merged["intuitentityid"], merged["intuitaccountid"]) == (keep["Id"], realm)
        assert merged["data"] == {"deletedid": loser["Id"]}
        assert merged["id"].endswith(f"-Customer-{keep['Id']}")
        assert merged["time"] == _utc_ms(stamp)
        assert (moved["type"], moved["intuitentityid"], moved["data"]) == (
            "qbo.invoice.updated.v1",
            invoice["Id"],
            {},
        )


def _utc_ms(stamp: str) -> str:
    from datetime import UTC, datetime

    return datetime.fromisoformat(stamp).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_cloudevents_data_can_be_absent(server, sandbox, receiver_factory):
    receiver = receiver_factory()
    app, realm = connected_app(sandbox, receiver)
    server.set_config(webhook_cloudevents_data="absent")
    try:
        sandbox.webhooks.entity_changed(realm, "Customer", "8", "Update", STAMP)
        sandbox.webhooks.entity_changed(realm, "Customer", "8", "Merge", STAMP, deleted_id="9")
        (delivery,) = wait_for(lambda: [d for d in deliveries_for(sandbox, app) if d.status == "delivered"])
    finally:
        server.set_config(webhook_cloudevents_data="empty")
    updated, merged = json.loads(receiver.requests[0]["body"])
    # Intuit's examples have `data` absent next to datacontenttype; a merge still names the loser.
    assert "data" not in updated and updated["datacontenttype"] == "application/json"
    assert merged["data"] == {"deletedid": "9"}
    assert delivery.events == 2


def test_config_webhook_knobs(server):
    assert SandboxConfig().webhook_max_retries is None  # Intuit's default: no limit
    assert server.set_config(webhook_max_retries=None)["webhook_max_retries"] is None
    assert server.set_config(webhook_max_retries=2)["webhook_max_retries"] == 2
    for key, value in (
        ("webhook_max_retries", "often"),
        ("webhook_max_retries", -1),
        ("webhook_cloudevents_data", "null"),
    ):
        resp = server.client.post("/_sandbox/config", json={key: value})
        assert resp.status_code == 400 and resp.json()["field"] == key, resp.text
    assert server.set_config(webhook_max_retries=3)["webhook_max_retries"] == 3


def test_retries_go_on_past_three_on_intuits_schedule(server, sandbox, receiver_factory):
    """Intuit keeps retrying (0 s, 10 s, 20 s, 30 s, 5 min, 20 min, 2 h, 4 h, 6 h, then every 6 h);
    at time_scale 1e-4 the eight failures below take about 2.3 s."""
    receiver = receiver_factory(*([500] * 8), 200)
    server.set_config(webhook_max_retries=None, time_scale=0.0001)
    try:
        app, realm = connected_app(sandbox, receiver)
        sandbox.webhooks.entity_changed(realm, "Invoice", "5", "Create", STAMP)
        # While waiting for the ninth attempt (1.44 s here, 4 h at Intuit's pace) the log says when.
        waiting = wait_for(
            lambda: [
                d
                for d in server.webhook_deliveries(client_id=app.client_id)
                if len(d["attempts"]) == 8 and d["next_attempt_at"]
            ]
        )
        assert waiting[0]["status"] == "pending"
        assert waiting[0]["next_attempt_at"] > time.time()
        (delivery,) = wait_for(
            lambda: [d for d in deliveries_for(sandbox, app) if d.status == "delivered"], timeout=10
        )
    finally:
        server.set_config(webhook_max_retries=3, time_scale=0.01)
    assert [a.status_code for a in delivery.attempts] == [500] * 8 + [200]
    gaps = [b.at - a.at for a, b in itertools.pairwise(delivery.attempts)]
    # Each wait is at least the scheduled one (minus the previous attempt's own duration).
    for gap, want, attempt in zip(
        gaps, [0, 10, 20, 30, 300, 1200, 7200, 14400], delivery.attempts[1:], strict=True
    ):
        assert gap >= want * 0.0001 - 0.01, (gap, want, attempt)
    assert gaps[-1] >= 1.4
    assert delivery.next_attempt_at is None


def test_retry_schedule_repeats_six_hours_forever():
    cfg = SandboxConfig()
    hooks = WebhookDispatcher(SimpleNamespace(config=cfg))
    assert hooks.max_retries() is None
    assert [hooks.retry_delay(i) for i in range(9)] == [0, 10, 20, 30, 300, 1200, 7200, 14400, 21600]
    assert {hooks.retry_delay(i) for i in range(9, 200)} == {21600}
