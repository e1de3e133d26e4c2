"""Clients > Accounts pages through HTTP: roles, firm isolation, paging, search, bad input."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from practice.clients.models import ClientAccount
from practice.clients.services import account_archive, account_create
from practice.firms.models import User

MEMBERS = ["owner", "admin", "employee"]
VALID = {"name": "New Client LLC", "kind": "company", "email": "hi@newclient.test", "phone": "555"}


@pytest.fixture
def account(firm):
    return account_create(firm=firm, name="Alvarez & Sons", email="ana@alvarez.test", city="Austin")


def snapshot(account):
    return ClientAccount.objects.filter(pk=account.pk).values().get()


# --- role matrix ---------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", *MEMBERS, "other"])
def test_list(client_as, account, who):
    response = client_as(who).get(reverse("clients:account_list"))
    if who == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
        return
    assert response.status_code == 200
    assert (b"Alvarez &amp; Sons" in response.content) is (who != "other")


@pytest.mark.parametrize("who", ["anonymous", *MEMBERS, "other"])
def test_detail(client_as, account, who):
    response = client_as(who).get(reverse("clients:account_detail", args=[account.pk]))
    expected = {"anonymous": 302, "other": 404}.get(who, 200)
    assert response.status_code == expected
    if expected == 200:
        assert b"ana@alvarez.test" in response.content


@pytest.mark.parametrize("who", ["anonymous", *MEMBERS, "other"])
def test_create(client_as, firm, other_firm, who):
    c = client_as(who)
    assert c.get(reverse("clients:account_create")).status_code == (302 if who == "anonymous" else 200)
    response = c.post(reverse("clients:account_create"), VALID)
    assert response.status_code == 302
    created = ClientAccount.objects.filter(name=VALID["name"])
    if who == "anonymous":
        assert not created.exists()
        return
    # A member always creates in their own firm, whatever they post.
    (new,) = created
    assert new.firm == (other_firm if who == "other" else firm)
    assert response["Location"] == reverse("clients:account_detail", args=[new.pk])


@pytest.mark.parametrize("who", ["anonymous", *MEMBERS, "other"])
def test_edit(client_as, account, who):
    before = snapshot(account)
    c = client_as(who)
    url = reverse("clients:account_edit", args=[account.pk])
    get_status = {"anonymous": 302, "other": 404}.get(who, 200)
    assert c.get(url).status_code == get_status
    response = c.post(url, {**VALID, "name": "Renamed"})
    if who in MEMBERS:
        assert response.status_code == 302
        account.refresh_from_db()
        assert account.name == "Renamed"
    else:
        assert response.status_code == get_status
        assert snapshot(account) == before


@pytest.mark.parametrize("who", ["anonymous", *MEMBERS, "other"])
def test_archive_and_unarchive(client_as, account, who):
    c = client_as(who)
    expected = {"anonymous": 302, "employee": 403, "other": 404}.get(who, 302)
    response = c.post(reverse("clients:account_archive", args=[account.pk]))
    assert response.status_code == expected
    account.refresh_from_db()
    assert account.archived is (expected == 302 and who != "anonymous")

    account_archive(account=account)
    response = c.post(reverse("clients:account_unarchive", args=[account.pk]))
    assert response.status_code == expected
    account.refresh_from_db()
    assert account.archived is not (expected == 302 and who != "anonymous")


def test_archive_refuses_get(client_as, account):
    assert client_as("owner").get(reverse("clients:account_archive", args=[account.pk])).status_code == 405
    account.refresh_from_db()
    assert account.archived is False


def test_user_without_firm_gets_403(db, account):
    loner = User.objects.create_user("loner@example.test", "pw-loner-123456")
    c = Client()
    c.force_login(loner)
    assert c.get(reverse("clients:account_list")).status_code == 403
    assert c.get(reverse("clients:account_detail", args=[account.pk])).status_code == 403


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 501}, "name"),
        ({"name": "nul\x00byte"}, "name"),
        ({"name": "ok", "email": "nope"}, "email"),
        ({"name": "ok", "kind": "alien"}, "kind"),
        ({"name": "ok", "phone": "9" * 31}, "phone"),
        ({"name": "ok", "country": "\x00"}, "country"),
        # Bidirectional controls make a name read differently from what it is (issue 12).
        ({"name": "Invoice\u202egpj.exe"}, "name"),
        ({"name": "Acme \u2066Ltd\u2069"}, "name"),
        ({"name": "ok", "city": "Spring\u202afield"}, "city"),
    ],
)
def test_bad_input_is_400_naming_the_field(client_as, account, data, field):
    c = client_as("employee")
    before = snapshot(account)
    count = ClientAccount.objects.count()
    for url in (reverse("clients:account_create"), reverse("clients:account_edit", args=[account.pk])):
        response = c.post(url, {"kind": "individual", **data})
        assert response.status_code == 400
        assert f'data-field="{field}"'.encode() in response.content
    assert ClientAccount.objects.count() == count
    assert snapshot(account) == before


# --- list behaviour ------------------------------------------------------------------------


def test_paging_25_per_page_keeps_search(client_as, firm):
    ClientAccount.objects.bulk_create(
        [ClientAccount(firm=firm, name=f"Client {i:02d}") for i in range(30)]
        + [ClientAccount(firm=firm, name="Zed Unrelated")]
    )
    c = client_as("employee")
    page1 = c.get(reverse("clients:account_list"), {"q": "client"})
    assert page1.context["page_obj"].paginator.count == 30
    assert len(page1.context["accounts"]) == 25
    assert b"?q=client&amp;page=2" in page1.content
    page2 = c.get(reverse("clients:account_list"), {"q": "client", "page": 2})
    assert [a.name for a in page2.context["accounts"]] == [f"Client {i}" for i in range(25, 30)]
    # Out-of-range or junk page numbers fall back instead of erroring.
    assert c.get(reverse("clients:account_list"), {"page": "999"}).status_code == 200
    assert c.get(reverse("clients:account_list"), {"page": "x"}).status_code == 200


def test_archived_toggle(client_as, firm, account):
    archived = account_create(firm=firm, name="Old Client")
    account_archive(account=archived)
    c = client_as("employee")
    assert b"Old Client" not in c.get(reverse("clients:account_list")).content
    assert b"Old Client" in c.get(reverse("clients:account_list"), {"archived": "1"}).content


def test_list_query_count_does_not_grow_with_rows(client_as, firm):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    c = client_as("employee")
    c.get(reverse("clients:account_list"))  # warm up the session and caches

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert c.get(reverse("clients:account_list")).status_code == 200
        return len(ctx)

    ClientAccount.objects.bulk_create([ClientAccount(firm=firm, name=f"C{i}") for i in range(2)])
    few = count_queries()
    ClientAccount.objects.bulk_create([ClientAccount(firm=firm, name=f"D{i}") for i in range(40)])
    assert count_queries() == few <= 8


def test_htmx_search_returns_only_the_table(client_as, account):
    response = client_as("employee").get(
        reverse("clients:account_list"), {"q": "alv"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="account-table"
    )
    assert response.status_code == 200
    assert b"<html" not in response.content
    assert b"Alvarez" in response.content


def test_archive_button_only_for_managers(client_as, account):
    url = reverse("clients:account_detail", args=[account.pk])
    archive_url = reverse("clients:account_archive", args=[account.pk]).encode()
    assert archive_url not in client_as("employee").get(url).content
    assert archive_url in client_as("admin").get(url).content


def test_htmx_history_restore_gets_the_whole_page(client_as, account):
    response = client_as("employee").get(
        reverse("clients:account_list"),
        {"q": "alv"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="account-table",
        HTTP_HX_HISTORY_RESTORE_REQUEST="true",
    )
    assert b"<html" in response.content


# --- names QuickBooks would cut ------------------------------------------------------------

LONG_COMPANY = (
    "Northwind Regional Landscaping, Snow Removal and Property Maintenance Cooperative of Greater Springfield"
)


def test_a_company_name_qbo_would_cut_is_shown_before_it_is_cut(client_as, account):
    assert len(LONG_COMPANY) > 100
    c = client_as("employee")
    before = snapshot(account)
    for url in (reverse("clients:account_create"), reverse("clients:account_edit", args=[account.pk])):
        response = c.post(url, {"name": LONG_COMPANY, "kind": "company"})
        assert response.status_code == 400
        body = response.content.decode()
        assert 'data-field="name"' in body
        # The exact 100 characters QuickBooks will keep, so the person can judge them.
        assert f"“{LONG_COMPANY[:100]}”" in body
        assert 'name="accept_company_name_cut"' in body
    assert snapshot(account) == before
    assert not ClientAccount.objects.filter(name=LONG_COMPANY).exists()

    response = c.post(
        reverse("clients:account_create"),
        {"name": LONG_COMPANY, "kind": "company", "accept_company_name_cut": "on"},
    )
    assert response.status_code == 302
    created = ClientAccount.objects.get(name=LONG_COMPANY)
    assert created.kind == "company"
    # Later edits that keep the accepted name do not ask again.
    response = c.post(
        reverse("clients:account_edit", args=[created.pk]),
        {"name": LONG_COMPANY, "kind": "company", "city": "Springfield"},
    )
    assert response.status_code == 302
    created.refresh_from_db()
    assert created.city == "Springfield"


def test_long_names_of_individuals_and_short_company_names_need_no_confirmation(client_as):
    c = client_as("employee")
    assert (
        c.post(reverse("clients:account_create"), {"name": LONG_COMPANY, "kind": "individual"}).status_code
        == 302
    )
    response = c.post(reverse("clients:account_create"), {"name": "x" * 100, "kind": "company"})
    assert response.status_code == 302
    assert 'name="accept_company_name_cut"' not in c.get(reverse("clients:account_create")).content.decode()


def test_per_page_25_50_100(client_as, firm):
    """The accounts list offers 25, 50 or 100 per page (issue 11); junk falls back to 25."""
    ClientAccount.objects.bulk_create([ClientAccount(firm=firm, name=f"Client {i:03d}") for i in range(120)])
    c = client_as("employee")
    url = reverse("clients:account_list")
    first = c.get(url, {"q": "client"})
    html = first.content.decode()
    assert len(first.context["accounts"]) == 25
    assert 'aria-label="Accounts per page"' in html
    assert "?q=client&amp;per_page=50" in html and "?q=client&amp;per_page=100" in html
    for n in (50, 100):
        response = c.get(url, {"q": "client", "per_page": n})
        assert len(response.context["accounts"]) == n
        assert response.context["page_obj"].paginator.num_pages == -(-120 // n)
        assert f"per_page={n}&amp;page=2" in response.content.decode()  # paging keeps the size
    for junk in ("7", "1000", "x", ""):
        assert len(c.get(url, {"per_page": junk}).context["accounts"]) == 25
    # Few accounts: no size choice to make.
    ClientAccount.objects.filter(name__gte="Client 010").delete()
    assert "Accounts per page" not in c.get(url).content.decode()
