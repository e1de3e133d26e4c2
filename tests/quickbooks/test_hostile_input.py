"""Bad and hostile input on the QuickBooks pages (issue 12, items 4, 5 and 8): a clear answer
naming the field, never a 500, and nothing typed into a search changes what QuickBooks is asked."""

from __future__ import annotations

import pytest
from django.urls import reverse

from practice.quickbooks.connection.client import like_contains
from practice.quickbooks.models import SyncLink
from tests.common.csp_watch import assert_locked_down
from tests.quickbooks.sync_support import accounts, run, set_up

HX = {"HTTP_HX_REQUEST": "true"}
HUGE_ID = "9" * 30  # past a 64-bit integer: SQLite raised OverflowError, a 500


@pytest.fixture
def conn(connection):
    return set_up(connection)


def test_status_poll_with_a_30_digit_id_is_not_a_500(firm, conn, client_as):
    (acct,) = accounts(firm, "Poll Co")
    url = reverse("quickbooks:account_status_poll")
    response = client_as("employee").get(url, {"ids": f"{HUGE_ID},{2**63},\u00b2,{acct.pk}"})
    assert response.status_code == 200
    body = response.content.decode()
    assert f"qbo-status-{acct.pk}" in body  # the real id still answers
    assert HUGE_ID not in body


@pytest.mark.parametrize("action", ["sync", "unsync"])
def test_bulk_action_with_a_30_digit_id_is_not_a_500(firm, conn, client_as, action):
    accounts(firm, "Bulk Co")
    run(conn)
    before = list(SyncLink.objects.order_by("pk").values("pk", "status", "qbo_id"))
    response = client_as("owner").post(
        reverse("quickbooks:accounts_bulk"), {"action": action, "ids": [HUGE_ID, str(2**63), "\u00b2"]}
    )
    assert response.status_code == 302
    assert list(SyncLink.objects.order_by("pk").values("pk", "status", "qbo_id")) == before


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("Cool\x00Cars", "control character"),
        ("Invoice\u202egpj.exe", "text-direction"),
        ("Acme \u2066Ltd\u2069", "text-direction"),
    ],
)
def test_create_customer_refuses_nul_and_bidi_naming_the_field(firm, conn, client_as, sandbox, name, words):
    (acct,) = accounts(firm, "Cool Cars Two")
    before = list(SyncLink.objects.order_by("pk").values())
    response = client_as("owner").post(
        reverse("quickbooks:account_create_customer", args=[acct.pk]), {"name": name}, **HX
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert 'data-field="name"' in body and words in body
    assert list(SyncLink.objects.order_by("pk").values()) == before


def test_create_customer_dialog_shows_a_company_name_qbo_would_cut(firm, conn, client_as):
    long_name = (
        "Northwind Regional Landscaping, Snow Removal and Property Maintenance Cooperative"
        " of Greater Springfield"
    )
    (acct,) = accounts(firm, long_name, kind="company")  # not synced yet: the dialog offers "create"
    panel = client_as("owner").get(reverse("quickbooks:account_sync_panel", args=[acct.pk])).content.decode()
    assert f"“{long_name[:100]}”" in panel
    assert "data-company-name-cut" in panel
    (short,) = accounts(firm, "Short Co", kind="company")
    panel = client_as("owner").get(reverse("quickbooks:account_sync_panel", args=[short.pk])).content.decode()
    assert "data-company-name-cut" not in panel


@pytest.mark.parametrize(
    ("typed", "pattern"),
    [
        ("100%", "'%100\\%%'"),
        ("C%C%C%C%CX", "'%C\\%C\\%C\\%C\\%CX%'"),
        ("a_b", "'%a\\_b%'"),
        ("O'Brien", "'%O\\'Brien%'"),
        ("back\\slash", "'%back\\\\slash%'"),
    ],
)
def test_like_patterns_escape_what_was_typed(typed, pattern):
    assert like_contains(typed) == pattern


def test_picker_search_with_a_percent_sign_finds_the_name(firm, conn, client_as, sandbox, realm_id):
    sandbox.bulk_insert(realm_id, "Customer", [{"DisplayName": "100% Pure Juice"}])
    (acct,) = accounts(firm, "Search Co")
    response = client_as("owner").get(
        reverse("quickbooks:customer_picker", args=[acct.pk]), {"q": "100%"}, **HX
    )
    assert response.status_code == 200
    assert "100% Pure Juice" in response.content.decode()


def test_quickbooks_pages_and_partials_have_nothing_inline_for_the_csp(firm, conn, client_as):
    (acct,) = accounts(firm, "Panel Co")
    run(conn)
    owner = client_as("owner")
    pages = {
        "settings": owner.get(reverse("quickbooks:settings")),
        "setup": owner.get(reverse("quickbooks:setup")),
        "account list with QuickBooks column": owner.get(reverse("clients:account_list")),
        "account detail with panel": owner.get(reverse("clients:account_detail", args=[acct.pk])),
        "panel partial": owner.get(reverse("quickbooks:account_sync_panel", args=[acct.pk]), **HX),
        "picker partial": owner.get(reverse("quickbooks:customer_picker", args=[acct.pk]), {"q": "a"}, **HX),
        "status poll": owner.get(reverse("quickbooks:account_status_poll"), {"ids": str(acct.pk)}),
    }
    for label, response in pages.items():
        assert response.status_code == 200, (label, response.status_code)
        assert_locked_down(response, label)
    assert 'data-action="select-all"' in pages["account list with QuickBooks column"].content.decode()


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "javascript:alert(1)",
    ],
)
def test_bulk_action_next_never_leaves_the_site(firm, conn, client_as, target):
    (acct,) = accounts(firm, "Redirect Co")
    response = client_as("owner").post(
        reverse("quickbooks:accounts_bulk"), {"action": "unsync", "ids": [acct.pk], "next": target}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("clients:account_list")


def test_bulk_action_next_on_the_site_is_followed(firm, conn, client_as):
    (acct,) = accounts(firm, "Redirect Co")
    target = reverse("clients:account_list") + "?page=2"
    response = client_as("owner").post(
        reverse("quickbooks:accounts_bulk"), {"action": "unsync", "ids": [acct.pk], "next": target}
    )
    assert response["Location"] == target
