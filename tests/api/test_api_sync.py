"""Account sync actions over the API against a real qbo_sandbox over HTTP."""

from __future__ import annotations

import pytest

from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from tests.quickbooks.sync_support import accounts, link_of, qbo_customers, run, set_up


@pytest.fixture
def conn(connection):
    return set_up(connection)


def test_connection_state(conn, api_as):
    r = api_as("employee").get("/quickbooks/connection")
    assert r.status_code == 200
    out = r.json()
    assert (out["connected"], out["realm_id"], out["setup_completed"]) == (True, conn.realm_id, True)


def test_link_to_a_given_customer_then_unsync(firm, conn, api_as):
    (acct,) = accounts(firm, "Someone New")
    (cust,) = qbo_customers(conn, "Pye's Cakes")
    api = api_as("admin")
    r = api.send("POST", f"/accounts/{acct.pk}/link", {"customer_id": str(cust["Id"])})
    assert r.status_code == 202, r.content
    qb = r.json()["quickbooks"]
    assert (qb["status"], qb["qbo_id"]) == ("synced", str(cust["Id"]))
    link = link_of(conn, acct)
    assert SyncAttempt.objects.filter(link=link, operation="link", actor="admin@acme.test (API)").count() == 1
    history = api.get(qb["history_url"].removeprefix("/api/v1")).json()
    assert [h["operation"] for h in history] == ["link"]
    assert api.get("/accounts", quickbooks_status="synced").json()["total"] == 1
    assert api.get("/accounts", quickbooks_status="not_synced").json()["total"] == 0

    r = api.send("POST", f"/accounts/{acct.pk}/unsync")
    assert r.status_code == 202 and r.json()["quickbooks"]["status"] == "skipped"
    # Unsync never deletes in QBO: the customer is still there.
    assert len(qbo_customers(conn, "Pye's Cakes")) == 1


def test_link_to_a_customer_linked_elsewhere_needs_confirm(firm, conn, api_as):
    (first,) = accounts(firm, "Cool Cars")
    run(conn)
    cid = link_of(conn, first).qbo_id
    (second,) = accounts(firm, "Second Account")
    api = api_as("owner")
    r = api.send("POST", f"/accounts/{second.pk}/link", {"customer_id": cid})
    assert r.status_code == 409
    assert r.json()["errors"][0]["field"] == "customer_id" and "Cool Cars" in r.json()["errors"][0]["message"]
    assert not SyncLink.objects.filter(local_id=second.pk).exclude(qbo_id="").exists()
    r = api.send("POST", f"/accounts/{second.pk}/link", {"customer_id": cid, "confirm": True})
    assert r.status_code == 202 and link_of(conn, second).qbo_id == cid


def test_link_to_a_missing_customer_is_409_and_changes_nothing(firm, conn, api_as):
    (acct,) = accounts(firm, "Someone New")
    r = api_as("owner").send("POST", f"/accounts/{acct.pk}/link", {"customer_id": "999999"})
    assert r.status_code == 409 and "no longer exists" in r.json()["errors"][0]["message"]
    assert not SyncLink.objects.filter(local_id=acct.pk).exclude(qbo_id="").exists()


def test_create_customer_with_edited_name_then_sync(firm, conn, api_as):
    (acct,) = accounts(firm, "Barnett Design LLC")
    run(conn)
    assert link_of(conn, acct).error_kind == "near_match"
    api = api_as("owner")
    bad = api.send("POST", f"/accounts/{acct.pk}/create-customer", {"name": "Barnett: Design"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "name"
    r = api.send("POST", f"/accounts/{acct.pk}/create-customer", {"name": "Barnett Design LLC (new)"})
    assert r.status_code == 202 and r.json()["quickbooks"]["status"] == "syncing"
    run(conn)
    out = api.get(f"/accounts/{acct.pk}").json()["quickbooks"]
    assert out["status"] == "synced" and out["qbo_id"]
    assert [c["DisplayName"] for c in qbo_customers(conn, "Barnett Design LLC (new)")] == [
        "Barnett Design LLC (new)"
    ]


def test_sync_retries_an_unsynced_account(firm, conn, api_as):
    (acct,) = accounts(firm, "Cool Cars")
    api = api_as("owner")
    api.send("POST", f"/accounts/{acct.pk}/unsync")
    assert link_of(conn, acct).status == SyncStatus.SKIPPED
    r = api.send("POST", f"/accounts/{acct.pk}/sync")
    assert r.status_code == 202
    run(conn)
    assert api.get(f"/accounts/{acct.pk}").json()["quickbooks"]["status"] == "synced"
    assert len(qbo_customers(conn, "Cool Cars")) == 1


def test_employee_cannot_sync_and_nothing_changes(firm, conn, api_as):
    (acct,) = accounts(firm, "Cool Cars")
    for path, body in [
        ("sync", None),
        ("unsync", None),
        ("create-customer", {"name": "X"}),
        ("link", {"customer_id": "1"}),
    ]:
        r = api_as("employee").send("POST", f"/accounts/{acct.pk}/{path}", body)
        assert r.status_code == 403
    assert (
        not SyncLink.objects.filter(local_id=acct.pk).exists()
        or link_of(conn, acct).status == SyncStatus.NOT_SYNCED
    )
    assert not SyncAttempt.objects.exists()


def test_first_sync_preview_reads_and_writes_nothing(firm, conn, api_as):
    accounts(firm, "Cool Cars", "Brand New Client LLC", "Pyes Cakes")
    assert api_as("employee").get("/quickbooks/preview").status_code == 403
    r = api_as("owner").get("/quickbooks/preview")
    assert r.status_code == 200, r.content
    out = r.json()
    assert out["link_by_name"] == ["Cool Cars"]
    assert out["create"] == ["Brand New Client LLC"]
    assert [p["account"] for p in out["need_a_person"]] == ["Pyes Cakes"]
    assert not SyncLink.objects.exclude(qbo_id="").exists() and not SyncAttempt.objects.exists()
    assert qbo_customers(conn, "Brand New Client LLC") == []
