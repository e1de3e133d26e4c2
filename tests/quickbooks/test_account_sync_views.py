"""Account sync views: role matrix for every action, and the flows a person goes through."""

from __future__ import annotations

import pytest
from django.urls import reverse

from practice.quickbooks import actions
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from tests.quickbooks.sync_support import accounts, link_of, qbo_customers, run, set_up

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def conn(connection):
    return set_up(connection)


def customer_id(conn, name: str) -> str:
    (c,) = qbo_customers(conn, name)
    return str(c["Id"])


def snapshot():
    return list(SyncLink.objects.order_by("pk").values()), SyncAttempt.objects.count()


ACTIONS = [
    ("quickbooks:account_link", "post", {"customer_id": "1"}),
    ("quickbooks:account_create_customer", "post", {"name": "Whatever"}),
    ("quickbooks:account_reactivate", "post", {"customer_id": "1"}),
    ("quickbooks:account_unsync", "post", {}),
    ("quickbooks:account_retry", "post", {}),
    ("quickbooks:customer_picker", "get", {"q": "a"}),
]


@pytest.mark.parametrize(("name", "method", "data"), ACTIONS)
@pytest.mark.parametrize(("who", "expected"), [("anonymous", 302), ("employee", 403), ("other", 404)])
def test_role_matrix_denials_change_nothing(firm, conn, client_as, name, method, data, who, expected):
    (acct,) = accounts(firm, "Role Matrix Co")
    actions.account_sync_retry(firm=firm, account=acct)  # a link exists, so changes would show
    before = snapshot()
    c = client_as(who)
    response = getattr(c, method)(reverse(name, args=[acct.pk]), data)
    assert response.status_code == expected
    assert snapshot() == before


# What each action leaves on a fresh account's link: (status, pending op, QBO Id, history op).
MANAGER_EFFECTS = {
    "quickbooks:account_link": (SyncStatus.SYNCED, "", "1", "link"),
    "quickbooks:account_create_customer": (SyncStatus.SYNCING, "create", "", "create"),
    "quickbooks:account_reactivate": (SyncStatus.SYNCING, "reactivate", "", "reactivate"),
    "quickbooks:account_unsync": (SyncStatus.SKIPPED, "", "", "unsync"),
    "quickbooks:account_retry": (SyncStatus.SYNCING, "", "", "sync"),
}


@pytest.mark.parametrize("who", ["owner", "admin"])
@pytest.mark.parametrize(("name", "method", "data"), ACTIONS)
def test_role_matrix_managers_allowed(firm, conn, client_as, name, method, data, who):
    (acct,) = accounts(firm, "Allowed Co")
    data = dict(data)
    if name == "quickbooks:account_reactivate":
        data["customer_id"] = customer_id(conn, "Cool Cars")  # active, but reactivating it is harmless
    response = getattr(client_as(who), method)(reverse(name, args=[acct.pk]), data, **HX)
    assert response.status_code == 200, response.content[:300]
    if name == "quickbooks:customer_picker":
        assert "Amy&#x27;s Bird Sanctuary" in response.content.decode()  # customers containing "a"
        assert not SyncLink.objects.exists() and not SyncAttempt.objects.exists()  # a read only
        return
    status, pending_op, qbo_id, operation = MANAGER_EFFECTS[name]
    link = link_of(conn, acct)
    assert (link.status, link.pending_op, link.qbo_id) == (status, pending_op, qbo_id)
    if name == "quickbooks:account_reactivate":
        assert link.target_qbo_id == data["customer_id"]
    if name == "quickbooks:account_create_customer":
        assert link.desired_name == "Whatever"
    (attempt,) = SyncAttempt.objects.filter(link=link)
    assert (attempt.operation, attempt.actor) == (operation, f"{who}@acme.test")


@pytest.mark.parametrize(("who", "expected"), [("anonymous", 302), ("employee", 403)])
def test_bulk_denied(firm, conn, client_as, who, expected):
    (acct,) = accounts(firm, "Bulk Denied")
    before = snapshot()
    response = client_as(who).post(
        reverse("quickbooks:accounts_bulk"), {"action": "unsync", "ids": [acct.pk]}
    )
    assert response.status_code == expected
    assert snapshot() == before


def test_bulk_from_another_firm_touches_nothing(firm, conn, client_as):
    (acct,) = accounts(firm, "Not Yours")
    before = snapshot()
    client_as("other").post(reverse("quickbooks:accounts_bulk"), {"action": "unsync", "ids": [acct.pk]})
    assert snapshot() == before


def test_panel_and_poll_for_members_only_within_firm(firm, conn, client_as):
    (acct,) = accounts(firm, "Panel Co")
    url = reverse("quickbooks:account_sync_panel", args=[acct.pk])
    assert client_as("employee").get(url).status_code == 200
    assert client_as("other").get(url).status_code == 404
    assert client_as("anonymous").get(url).status_code == 302
    poll = client_as("other").get(reverse("quickbooks:account_status_poll") + f"?ids={acct.pk}")
    assert f"qbo-status-{acct.pk}" not in poll.content.decode()


def test_owner_links_error_account_to_existing_customer(firm, conn, client_as):
    (acct,) = accounts(firm, "Pyes Cakes")
    run(conn)
    assert link_of(conn, acct).status == SyncStatus.ERROR
    owner = client_as("owner")
    picker = owner.get(reverse("quickbooks:customer_picker", args=[acct.pk]), {"q": "Pye"}, **HX)
    body = picker.content.decode()
    assert "Pye&#x27;s Cakes" in body or "Pye's Cakes" in body
    cid = customer_id(conn, "Pye's Cakes")
    response = owner.post(reverse("quickbooks:account_link", args=[acct.pk]), {"customer_id": cid}, **HX)
    assert response.status_code == 200
    link = link_of(conn, acct)
    assert (link.status, link.qbo_id, link.qbo_name) == (SyncStatus.SYNCED, cid, "Pye's Cakes")
    assert SyncAttempt.objects.filter(link=link, operation="link", actor="owner@acme.test").exists()
    assert "Synced" in response.content.decode()


def test_linking_a_customer_linked_elsewhere_asks_to_confirm(firm, conn, client_as):
    (first,) = accounts(firm, "Cool Cars")
    run(conn)
    (second,) = accounts(firm, "Second Account")
    cid = link_of(conn, first).qbo_id
    owner = client_as("owner")
    url = reverse("quickbooks:account_link", args=[second.pk])
    response = owner.post(url, {"customer_id": cid}, **HX)
    assert response.status_code == 200 and "already linked" in response.content.decode()
    assert response["HX-Retarget"] == "#qbo-picker-results"
    assert not SyncLink.objects.filter(local_id=second.pk).exclude(qbo_id="").exists()
    owner.post(url, {"customer_id": cid, "confirm": "1"}, **HX)
    assert link_of(conn, second).qbo_id == cid


def test_create_new_customer_with_edited_name(firm, conn, client_as):
    (acct,) = accounts(firm, "Barnett Design LLC")
    run(conn)
    assert link_of(conn, acct).error_kind == "near_match"
    owner = client_as("owner")
    url = reverse("quickbooks:account_create_customer", args=[acct.pk])
    bad = owner.post(url, {"name": "Barnett: Design"}, **HX)
    assert bad.status_code == 400 and "colon" in bad.content.decode()
    assert link_of(conn, acct).status == SyncStatus.ERROR
    ok = owner.post(url, {"name": "Barnett Design LLC (new)"}, **HX)
    assert ok.status_code == 200 and link_of(conn, acct).status == SyncStatus.SYNCING
    run(conn)
    link = link_of(conn, acct)
    assert link.status == SyncStatus.SYNCED and link.qbo_name == "Barnett Design LLC (new)"
    assert len(qbo_customers(conn, "Barnett Design LLC (new)")) == 1


def test_reactivate_and_link_inactive_match(firm, conn, client_as, sandbox, realm_id):
    sandbox.bulk_insert(realm_id, "Customer", [{"DisplayName": "Harbor Dental Group", "Active": False}])
    (acct,) = accounts(firm, "Harbor Dental Group")
    run(conn)
    link = link_of(conn, acct)
    assert link.error_kind == "inactive_match"
    owner = client_as("owner")
    detail = owner.get(reverse("clients:account_detail", args=[acct.pk])).content.decode()
    assert "Reactivate and link" in detail
    owner.post(reverse("quickbooks:account_reactivate", args=[acct.pk]), {}, **HX)
    run(conn)
    link.refresh_from_db()
    assert link.status == SyncStatus.SYNCED
    (customer,) = qbo_customers(conn, "Harbor Dental Group")
    assert customer["Active"] is True and customer["Id"] == link.qbo_id


def test_unsync_then_sync_again(firm, conn, client_as):
    (acct,) = accounts(firm, "Cool Cars")
    run(conn)
    qbo_id = link_of(conn, acct).qbo_id
    owner = client_as("owner")
    owner.post(reverse("quickbooks:account_unsync", args=[acct.pk]), **HX)
    link = link_of(conn, acct)
    assert link.status == SyncStatus.SKIPPED and link.qbo_id == qbo_id
    run(conn)
    assert link_of(conn, acct).status == SyncStatus.SKIPPED
    assert len(qbo_customers(conn, "Cool Cars")) == 1  # nothing deleted in QBO
    owner.post(reverse("quickbooks:account_retry", args=[acct.pk]), **HX)
    assert link_of(conn, acct).status == SyncStatus.SYNCED
    assert link_of(conn, acct).qbo_id == qbo_id


def test_unsync_never_synced_account_and_sync_it_later(firm, conn, client_as):
    (acct,) = accounts(firm, "Later Client")
    owner = client_as("owner")
    owner.post(reverse("quickbooks:account_unsync", args=[acct.pk]), **HX)
    run(conn)
    assert link_of(conn, acct).status == SyncStatus.SKIPPED
    assert qbo_customers(conn, "Later Client") == []
    owner.post(reverse("quickbooks:account_retry", args=[acct.pk]), **HX)
    run(conn)
    assert link_of(conn, acct).status == SyncStatus.SYNCED


def test_bulk_actions(firm, conn, client_as):
    a, b, c = accounts(firm, "Bulk A", "Bulk B", "Pyes Cakes")
    owner = client_as("owner")
    url = reverse("quickbooks:accounts_bulk")
    owner.post(url, {"action": "unsync", "ids": [a.pk, b.pk]})
    assert {link_of(conn, x).status for x in (a, b)} == {SyncStatus.SKIPPED}
    owner.post(url, {"action": "sync", "ids": [a.pk]})
    run(conn)
    assert link_of(conn, a).status == SyncStatus.SYNCED
    assert link_of(conn, b).status == SyncStatus.SKIPPED
    assert link_of(conn, c).status == SyncStatus.ERROR
    owner.post(url, {"action": "retry_errors"})
    assert link_of(conn, c).status == SyncStatus.SYNCING


def test_history_on_the_account_page(firm, conn, client_as):
    (acct,) = accounts(firm, "Books by Bessie")
    run(conn)
    page = client_as("employee").get(reverse("clients:account_detail", args=[acct.pk])).content.decode()
    assert "Sync history" in page and "vendor" in page
    assert "qbo-menu" not in page  # employees see statuses, not actions
    owner_page = client_as("owner").get(reverse("clients:account_detail", args=[acct.pk])).content.decode()
    assert "qbo-menu" in owner_page and "Sync account with QuickBooks" in owner_page


def test_create_form_suggests_a_free_name_after_a_vendor_clash(firm, conn, client_as):
    (acct,) = accounts(firm, "Books by Bessie")
    run(conn)
    page = client_as("owner").get(reverse("clients:account_detail", args=[acct.pk])).content.decode()
    assert 'value="Books by Bessie (client)"' in page


def test_sync_preview_partial(firm, conn, client_as):
    """Managers only; the request asks a worker for the preview (tests/quickbooks/test_sync_preview.py)."""
    accounts(firm, "Amy's Bird Sanctuary", "Preview Brand New", "Pyes Cakes")
    url = reverse("quickbooks:sync_preview")
    assert client_as("employee").get(url).status_code == 403
    assert client_as("anonymous").get(url).status_code == 302
    body = client_as("owner").get(url).content.decode()
    assert "Reading your QuickBooks company" in body and "?task=" in body
    assert not SyncLink.objects.exists()
