"""The public API: tokens, auth, role matrix, firm isolation, errors, rate limit, filters, writes."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from django.utils import timezone

from practice.api.models import ApiToken
from practice.billing.models import Invoice, InvoiceState, Payment, Service
from practice.billing.services import invoice_create, payment_record, refund_record, service_create
from practice.clients.models import ClientAccount
from practice.clients.services import account_create


@pytest.fixture
def data(firm, other_firm):
    acct = account_create(firm=firm, name="Cool Cars", email="cars@example.test")
    svc = service_create(firm=firm, name="Bookkeeping", rate="150.00")
    inv = invoice_create(
        firm=firm,
        account=acct,
        issue_date="2026-01-05",
        due_date="2026-02-04",
        lines=[{"service": svc.pk, "description": "January", "quantity": "2", "rate": ""}],
    )
    return {"account": acct, "service": svc, "invoice": inv}


# ---------------------------------------------------------------- tokens and auth


def test_token_is_stored_hashed_and_works_until_revoked(firm, tokens, api_as):
    secret = tokens["owner"]
    token = ApiToken.objects.get(user__email="owner@acme.test")
    assert secret not in str(list(ApiToken.objects.values()))
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert api_as("owner").get("/accounts").status_code == 200
    token.revoked_at = timezone.now()
    token.save()
    r = api_as("owner").get("/accounts")
    assert r.status_code == 401
    assert r.json() == {
        "errors": [
            {
                "field": None,
                "code": "unauthenticated",
                "message": "Send a valid API token: Authorization: Bearer <token>.",
            }
        ]
    }
    assert r["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer pat_wrong", "Basic abc", "Bearer " + "x" * 500])
def test_missing_or_wrong_token_is_401(firm, header):
    from django.test import Client

    r = Client().get("/api/v1/accounts", headers={"Authorization": header} if header else {})
    assert r.status_code == 401
    assert r.json()["errors"][0]["code"] == "unauthenticated"


def test_profile_page_creates_token_shown_once_and_revokes(firm, client_as):
    owner = client_as("owner")
    r = owner.post("/settings/api-tokens/", {"name": "Zapier"})
    assert r.status_code == 200 and "no-store" in r["Cache-Control"]
    body = r.content.decode()
    token = ApiToken.objects.get(user__email="owner@acme.test")
    start = body.index('data-testid="new-api-secret"')
    secret = body[body.index('value="', start - 200) + 7 :].split('"')[0]
    assert secret.startswith("pat_") and secret[:10] == token.prefix
    # Shown once: the next page view lists the token by name and prefix, never the secret.
    again = owner.get("/settings/profile/").content.decode()
    assert "Zapier" in again and token.prefix in again and secret not in again
    assert owner.get("/api/v1/accounts", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    # Another member cannot revoke it.
    client_as("admin").post(f"/settings/api-tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is None
    owner.post(f"/settings/api-tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert owner.get("/api/v1/accounts", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_profile_token_name_is_required(firm, client_as):
    r = client_as("employee").post("/settings/api-tokens/", {"name": "  "})
    assert r.status_code == 400
    assert 'data-field="name"' in r.content.decode() and 'aria-invalid="true"' in r.content.decode()
    assert not ApiToken.objects.exists()


def test_profile_token_pages_need_sign_in(firm, client_as):
    r = client_as("anonymous").post("/settings/api-tokens/", {"name": "x"})
    assert r.status_code == 302 and "/login/" in r["Location"]
    assert not ApiToken.objects.exists()


def test_rate_limit_per_token_with_retry_after(firm, tokens, api_as, settings):
    settings.API_RATE_LIMIT = 3
    owner = api_as("owner")
    assert [owner.get("/accounts").status_code for _ in range(3)] == [200, 200, 200]
    r = owner.get("/accounts")
    assert r.status_code == 429
    assert r.json()["errors"][0]["code"] == "rate_limited"
    assert 1 <= int(r["Retry-After"]) <= 60
    # Another token (even of the same firm) has its own budget.
    assert api_as("admin").get("/accounts").status_code == 200


# ---------------------------------------------------------------- role matrix and isolation

READS = [
    "/accounts/{account}",
    "/accounts/{account}/history",
    "/services/{service}",
    "/invoices/{invoice}",
]
LISTS = ["/accounts", "/services", "/invoices", "/payments"]


@pytest.mark.parametrize("who", ["owner", "admin", "employee"])
@pytest.mark.parametrize("path", READS + LISTS)
def test_every_member_reads(data, api_as, who, path):
    r = api_as(who).get(
        path.format(account=data["account"].pk, service=data["service"].pk, invoice=data["invoice"].pk)
    )
    assert r.status_code == 200


@pytest.mark.parametrize("path", READS)
def test_other_firm_gets_404(data, api_as, path):
    r = api_as("other").get(
        path.format(account=data["account"].pk, service=data["service"].pk, invoice=data["invoice"].pk)
    )
    assert r.status_code == 404
    assert r.json() == {"errors": [{"field": None, "code": "not_found", "message": "Not found."}]}


@pytest.mark.parametrize("path", LISTS)
def test_other_firm_lists_show_nothing_of_this_firm(data, api_as, path):
    r = api_as("other").get(path)
    assert r.status_code == 200 and r.json()["items"] == [] and r.json()["total"] == 0


WRITES = [
    # (method, path, body, who may)
    ("POST", "/accounts/{account}/archive", None, {"owner", "admin"}),
    ("POST", "/accounts/{account}/sync", None, {"owner", "admin"}),
    ("POST", "/accounts/{account}/unsync", None, {"owner", "admin"}),
    ("POST", "/accounts/{account}/link", {"customer_id": "1"}, {"owner", "admin"}),
    ("POST", "/accounts/{account}/reactivate", {}, {"owner", "admin"}),
    ("POST", "/accounts/{account}/create-customer", {"name": "X"}, {"owner", "admin"}),
    ("PATCH", "/accounts/{account}", {"phone": "555"}, {"owner", "admin", "employee"}),
    ("PUT", "/services/{service}", {"name": "Payroll", "rate": "10.00"}, {"owner", "admin"}),
    ("POST", "/invoices/{invoice}/issue", None, {"owner", "admin", "employee"}),
    ("POST", "/invoices/{invoice}/void", {"reason": "typo"}, {"owner", "admin"}),
]


def _state(data):
    a = ClientAccount.objects.get(pk=data["account"].pk)
    s = Service.objects.get(pk=data["service"].pk)
    i = Invoice.objects.get(pk=data["invoice"].pk)
    return (a.archived, a.phone, s.name, s.rate, i.state)


@pytest.mark.parametrize(("method", "path", "body", "allowed"), WRITES)
@pytest.mark.parametrize("who", ["employee", "other"])
def test_denied_writes_change_nothing(data, api_as, method, path, body, allowed, who):
    before = _state(data)
    r = api_as(who).send(
        method,
        path.format(account=data["account"].pk, service=data["service"].pk, invoice=data["invoice"].pk),
        body,
    )
    if who == "other":
        assert r.status_code == 404
    elif who in allowed:
        assert r.status_code == 200
        return
    else:
        assert r.status_code == 403
        assert r.json()["errors"][0]["code"] == "forbidden"
    assert _state(data) == before


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_managers_archive_and_void(data, api_as, who):
    api = api_as(who)
    r = api.send("POST", f"/accounts/{data['account'].pk}/archive")
    assert r.status_code == 200 and r.json()["archived"] is True
    assert api.send("POST", f"/invoices/{data['invoice'].pk}/issue").json()["state"] == InvoiceState.ISSUED
    r = api.send("POST", f"/invoices/{data['invoice'].pk}/void", {"reason": "Duplicate"})
    assert r.status_code == 200 and r.json()["state"] == InvoiceState.VOID


def test_sync_actions_without_connection_are_409(data, api_as):
    r = api_as("owner").send("POST", f"/accounts/{data['account'].pk}/sync")
    assert r.status_code == 409
    assert r.json()["errors"] == [
        {"field": None, "code": "conflict", "message": "QuickBooks is not connected."}
    ]


def test_cannot_use_another_firms_account_in_an_invoice(data, other_firm, api_as):
    theirs = account_create(firm=other_firm, name="Theirs")
    body = {
        "account_id": theirs.pk,
        "issue_date": "2026-01-01",
        "due_date": "2026-01-31",
        "lines": [{"service_id": data["service"].pk, "quantity": "1"}],
    }
    r = api_as("owner").send("POST", "/invoices", body)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "account"
    assert Invoice.objects.count() == 1


# ---------------------------------------------------------------- writes and bad payloads


def test_create_account_and_invoice(data, api_as):
    api = api_as("employee")
    r = api.send("POST", "/accounts", {"name": "Pye's Cakes", "kind": "company", "city": "Bayshore"})
    assert r.status_code == 201
    acct = ClientAccount.objects.get(pk=r.json()["id"])
    assert (acct.name, acct.kind, acct.city, acct.firm_id) == (
        "Pye's Cakes",
        "company",
        "Bayshore",
        data["account"].firm_id,
    )
    assert r.json()["quickbooks"]["status"] == "not_synced"
    body = {
        "account_id": acct.pk,
        "issue_date": "2026-03-01",
        "due_date": "2026-03-31",
        "memo": "March",
        "lines": [
            {"service_id": data["service"].pk, "quantity": "1.5"},
            {"service_id": data["service"].pk, "quantity": "1", "rate": "99.99", "description": "Extra"},
        ],
    }
    r = api.send("POST", "/invoices", body)
    assert r.status_code == 201, r.content
    out = r.json()
    assert out["total"] == "324.99" and out["state"] == "draft" and len(out["lines"]) == 2
    assert [line["amount"] for line in out["lines"]] == ["225.00", "99.99"]
    got = api.get(f"/invoices/{out['id']}").json()
    assert got == out


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/accounts", {}, "name"),
        ("/accounts", {"name": 5}, "name"),
        ("/accounts", {"name": ""}, "name"),
        ("/accounts", {"name": "A\x00B"}, "name"),
        ("/accounts", {"name": "Ok", "kind": "robot"}, "kind"),
        ("/accounts", {"name": "Ok", "email": "not-an-email"}, "email"),
        ("/accounts", {"name": "Ok", "surprise": 1}, "surprise"),
        ("/services", {"name": "Tax", "rate": 100}, "rate"),
        ("/services", {"name": "Tax", "rate": "1,00"}, "rate"),
        (
            "/invoices",
            {"account_id": "1", "issue_date": "2026-01-01", "due_date": "2026-01-01", "lines": []},
            "account_id",
        ),
    ],
)
def test_bad_payloads_are_422_naming_the_field(data, api_as, path, body, field):
    before = (ClientAccount.objects.count(), Service.objects.count(), Invoice.objects.count())
    r = api_as("owner").send("POST", path, body)
    assert r.status_code == 422, r.content
    assert field in [e["field"] for e in r.json()["errors"]]
    assert all(set(e) == {"field", "code", "message"} for e in r.json()["errors"])
    assert (ClientAccount.objects.count(), Service.objects.count(), Invoice.objects.count()) == before


def test_unparseable_json_is_400_in_the_error_shape(data, api_as):
    api = api_as("owner")
    r = api.client.post(
        "/api/v1/accounts", data=b"{nope", content_type="application/json", headers=api.headers
    )
    assert r.status_code in (400, 422)
    assert set(r.json()["errors"][0]) == {"field", "code", "message"}


def test_patch_null_is_422(data, api_as):
    r = api_as("owner").send("PATCH", f"/accounts/{data['account'].pk}", {"name": None})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name"
    assert ClientAccount.objects.get(pk=data["account"].pk).name == "Cool Cars"


# ---------------------------------------------------------------- filters and paging


def test_paging_and_updated_since(firm, api_as):
    for i in range(5):
        account_create(firm=firm, name=f"Acct {i}")
    api = api_as("employee")
    first = api.get("/accounts", page_size=2).json()
    assert ([a["name"] for a in first["items"]], first["total"], first["next_page"]) == (
        ["Acct 0", "Acct 1"],
        5,
        2,
    )
    last = api.get("/accounts", page_size=2, page=3).json()
    assert ([a["name"] for a in last["items"]], last["next_page"]) == (["Acct 4"], None)
    ClientAccount.objects.filter(name="Acct 3").update(
        updated_at=timezone.now() + datetime.timedelta(hours=1)
    )
    since = (timezone.now() + datetime.timedelta(minutes=30)).isoformat()
    assert [a["name"] for a in api.get("/accounts", updated_since=since).json()["items"]] == ["Acct 3"]
    assert api.get("/accounts", page_size=0).status_code == 422
    assert api.get("/accounts", quickbooks_status="bogus").json()["errors"][0]["field"] == "quickbooks_status"


def test_payments_with_allocations(data, api_as, firm):
    from practice.billing.services import invoice_issue

    invoice_issue(invoice=data["invoice"])
    pay = payment_record(
        firm=firm,
        account=data["account"],
        date="2026-01-10",
        amount="100.00",
        method="cash",
        allocations=[(data["invoice"].pk, "100.00")],
    )
    r = api_as("employee").get(f"/payments/{pay.pk}")
    assert r.status_code == 200
    out = r.json()
    assert (out["amount"], out["allocations"][0]["invoice_id"], out["allocations"][0]["amount"]) == (
        "100.00",
        data["invoice"].pk,
        "100.00",
    )
    assert Payment.objects.count() == 1
    assert out["refunds"] == []
    other = payment_record(
        firm=firm, account=data["account"], date="2026-01-11", amount="50.00", method="cash"
    )
    refund_record(payment=other, date="2026-01-12", amount="20.00", reason="Overpaid")
    listed = {p["id"]: p for p in api_as("employee").get("/payments").json()["items"]}
    assert [(r["amount"], r["reason"]) for r in listed[other.pk]["refunds"]] == [("20.00", "Overpaid")]


# ---------------------------------------------------------------- the remaining endpoints' matrix


@pytest.mark.parametrize(
    ("path", "body", "allowed"),
    [
        ("/accounts", {"name": "New Client"}, {"owner", "admin", "employee"}),
        ("/services", {"name": "Payroll", "rate": "75.00"}, {"owner", "admin"}),
    ],
)
@pytest.mark.parametrize("who", ["owner", "admin", "employee", "other", "anonymous"])
def test_create_matrix(data, api_as, path, body, allowed, who):
    before = (ClientAccount.objects.count(), Service.objects.count())
    r = api_as(who).send("POST", path, body)
    if who in allowed:
        assert r.status_code == 201
        return
    if who == "other":
        # Allowed for its own firm only: created there, nothing in this firm.
        assert r.status_code in (201, 403)
        assert not ClientAccount.objects.filter(firm=data["account"].firm, name="New Client").exists()
        assert not Service.objects.filter(firm=data["account"].firm, name="Payroll").exists()
        return
    assert r.status_code == (401 if who == "anonymous" else 403)
    assert (ClientAccount.objects.count(), Service.objects.count()) == before


@pytest.mark.parametrize("who", ["owner", "admin", "employee"])
def test_payment_and_connection_reads(data, api_as, firm, who):
    from practice.billing.services import invoice_issue

    invoice_issue(invoice=data["invoice"])
    pay = payment_record(firm=firm, account=data["account"], date="2026-01-10", amount="20.00", method="cash")
    assert api_as(who).get(f"/payments/{pay.pk}").status_code == 200
    assert api_as("other").get(f"/payments/{pay.pk}").status_code == 404
    assert api_as(who).get("/quickbooks/connection").json()["connected"] is False
    assert api_as("anonymous").get(f"/payments/{pay.pk}").status_code == 401


@pytest.mark.parametrize(
    "path", ["/accounts/0", "/accounts/-1", "/invoices/99999999999999999999", "/services/abc"]
)
def test_bad_ids_are_json_422_or_404(data, api_as, path):
    r = api_as("owner").get(path)
    assert r.status_code in (404, 422)
    assert set(r.json()["errors"][0]) == {"field", "code", "message"}


def test_unarchive_by_manager_only(data, api_as):
    from practice.clients.services import account_archive

    account_archive(account=data["account"])
    assert api_as("employee").send("POST", f"/accounts/{data['account'].pk}/unarchive").status_code == 403
    assert ClientAccount.objects.get(pk=data["account"].pk).archived is True
    r = api_as("admin").send("POST", f"/accounts/{data['account'].pk}/unarchive")
    assert r.status_code == 200 and r.json()["archived"] is False


def test_kind_values_match_the_model():
    from typing import get_args

    from practice.api.accounts_api import KindLiteral
    from practice.clients.models import AccountKind

    assert set(get_args(KindLiteral)) == set(AccountKind.values)


@pytest.mark.parametrize("param", ["state", "search"])
def test_nul_in_a_filter_is_422_not_a_database_error(data, api_as, param):
    # PostgreSQL text cannot hold NUL (stack-notes §4); refused before any query on both databases.
    path = "/accounts" if param == "search" else "/invoices"
    r = api_as("owner").get(path, **{param: "a\x00b"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == param


@pytest.mark.parametrize(
    ("since", "status"),
    [("2135-05-19T14:57:09+16:31", 200), ("0001-01-01T00:00:00+05:00", 422), ("2026-01-01T00:00:00", 200)],
)
def test_updated_since_offsets_beyond_postgresql_range(data, api_as, since, status):
    # Found by schemathesis on PostgreSQL: a +16:31 offset was a 500; compared in UTC it is fine.
    r = api_as("owner").get("/accounts", updated_since=since)
    assert r.status_code == status
    if status == 422:
        assert r.json()["errors"][0]["field"] == "updated_since"


def test_invoice_update_and_service_archive(data, api_as):
    body = {
        "account_id": data["account"].pk,
        "issue_date": "2026-01-06",
        "due_date": "2026-02-05",
        "lines": [{"service_id": data["service"].pk, "quantity": "4", "rate": "10.00"}],
    }
    r = api_as("employee").send("PUT", f"/invoices/{data['invoice'].pk}", body)
    assert r.status_code == 200 and r.json()["total"] == "40.00" and len(r.json()["lines"]) == 1
    assert api_as("other").send("PUT", f"/invoices/{data['invoice'].pk}", body).status_code == 404
    api_as("owner").send("POST", f"/invoices/{data['invoice'].pk}/issue")
    r = api_as("owner").send("PUT", f"/invoices/{data['invoice'].pk}", body)
    assert r.status_code == 422 and "draft" in r.json()["errors"][0]["message"]
    assert api_as("employee").send("POST", f"/services/{data['service'].pk}/archive").status_code == 403
    r = api_as("admin").send("POST", f"/services/{data['service'].pk}/archive")
    assert r.status_code == 200 and r.json()["archived"] is True


def test_interactive_docs_load_everything_from_this_server(client):
    """/api/v1/docs must work offline and under the CSP: Swagger UI from our static files, no CDN."""
    import re

    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert sources and all(src.startswith("/static/") for src in sources), sources
    assert "script-src 'self'" in response["Content-Security-Policy"]
