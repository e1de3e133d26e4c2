"""Role matrix for every billing view: anonymous, employee, admin, owner, member of another firm.

Denied requests must change nothing: the firm's billing data is snapshotted before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from practice.billing import services
from practice.billing.models import (
    BillingHistory,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentAllocation,
    Refund,
    Service,
)

from .conftest import DUE, TODAY

MEMBERS = {"employee", "admin", "owner"}
MANAGERS = {"admin", "owner"}
READ_ONLY_POSTS = {"invoice_preview"}  # POST for the form data, but saves nothing


@pytest.fixture
def objs(firm, account, service, make_invoice):
    open_invoice = make_invoice("300.00")
    paid_invoice = make_invoice("50.00")
    draft = make_invoice("20.00", issued=False)
    payment = services.payment_record(
        firm=firm,
        account=account,
        date=TODAY,
        amount="400",
        method="check",
        allocations=[(paid_invoice, "50")],
    )
    return {
        "service": service,
        "account": account,
        "invoice": open_invoice,
        "draft": draft,
        "payment": payment,
        "allocation": payment.allocations.get(),
    }


def snapshot(firm) -> tuple:
    return (
        list(Service.objects.filter(firm=firm).order_by("pk").values_list("pk", "name", "rate", "archived")),
        list(Invoice.objects.filter(firm=firm).order_by("pk").values_list("pk", "number", "state", "memo")),
        list(InvoiceLine.objects.filter(firm=firm).order_by("pk").values_list("pk", "invoice_id", "amount")),
        list(Payment.objects.filter(firm=firm).order_by("pk").values_list("pk", "state", "amount")),
        list(PaymentAllocation.objects.filter(firm=firm).order_by("pk").values_list("pk", "amount")),
        list(Refund.objects.filter(firm=firm).order_by("pk").values_list("pk", "amount")),
        BillingHistory.objects.filter(firm=firm).count(),
    )


def invoice_data(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "account": o["account"].pk,
        "issue_date": TODAY.isoformat(),
        "due_date": DUE.isoformat(),
        "memo": "changed",
        "lines-0-service": o["service"].pk,
        "lines-0-quantity": "1",
        "lines-0-rate": "10",
    }


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    url: Callable[[dict[str, Any]], str]
    allowed: set[str]
    data: Callable[[dict[str, Any]], dict[str, Any]] = field(default=lambda o: {})
    ok: int = 200
    on_object: bool = True  # the URL names one of this firm's objects (other firm → 404)


CASES = [
    Case("service_list", "get", lambda o: "/billing/services/", MEMBERS, on_object=False),
    Case("service_create_get", "get", lambda o: "/billing/services/new/", MANAGERS, on_object=False),
    Case(
        "service_create",
        "post",
        lambda o: "/billing/services/new/",
        MANAGERS,
        lambda o: {"name": "Brand new", "rate": "1"},
        ok=302,
        on_object=False,
    ),
    Case("service_edit_get", "get", lambda o: f"/billing/services/{o['service'].pk}/edit/", MANAGERS),
    Case(
        "service_edit",
        "post",
        lambda o: f"/billing/services/{o['service'].pk}/edit/",
        MANAGERS,
        lambda o: {"name": "Renamed", "rate": "2"},
        ok=302,
    ),
    Case(
        "service_archive", "post", lambda o: f"/billing/services/{o['service'].pk}/archive/", MANAGERS, ok=302
    ),
    Case("invoice_list", "get", lambda o: "/billing/invoices/", MEMBERS, on_object=False),
    Case("invoice_create_get", "get", lambda o: "/billing/invoices/new/", MEMBERS, on_object=False),
    Case(
        "invoice_create",
        "post",
        lambda o: "/billing/invoices/new/",
        MEMBERS,
        invoice_data,
        ok=302,
        on_object=False,
    ),
    Case(
        "invoice_line_row", "get", lambda o: "/billing/invoices/line-row/?index=5", MEMBERS, on_object=False
    ),
    Case(
        "invoice_preview",
        "post",
        lambda o: "/billing/invoices/preview/",
        MEMBERS,
        invoice_data,
        on_object=False,
    ),
    Case("invoice_detail", "get", lambda o: f"/billing/invoices/{o['invoice'].pk}/", MEMBERS),
    Case("invoice_edit_get", "get", lambda o: f"/billing/invoices/{o['draft'].pk}/edit/", MEMBERS),
    Case(
        "invoice_edit",
        "post",
        lambda o: f"/billing/invoices/{o['draft'].pk}/edit/",
        MEMBERS,
        invoice_data,
        ok=302,
    ),
    Case("invoice_issue", "post", lambda o: f"/billing/invoices/{o['draft'].pk}/issue/", MEMBERS, ok=302),
    Case(
        "invoice_void",
        "post",
        lambda o: f"/billing/invoices/{o['invoice'].pk}/void/",
        MANAGERS,
        lambda o: {"reason": "r"},
        ok=302,
    ),
    Case("payment_list", "get", lambda o: "/billing/payments/", MEMBERS, on_object=False),
    Case("payment_create_get", "get", lambda o: "/billing/payments/new/", MEMBERS, on_object=False),
    Case(
        "payment_create",
        "post",
        lambda o: "/billing/payments/new/",
        MEMBERS,
        lambda o: {"account": o["account"].pk, "date": TODAY.isoformat(), "amount": "5", "method": "cash"},
        ok=302,
        on_object=False,
    ),
    Case(
        "payment_allocation_rows",
        "get",
        lambda o: f"/billing/payments/allocation-rows/?account={o['account'].pk}",
        MEMBERS,
        on_object=False,
    ),
    Case("payment_detail", "get", lambda o: f"/billing/payments/{o['payment'].pk}/", MEMBERS),
    Case(
        "payment_allocate",
        "post",
        lambda o: f"/billing/payments/{o['payment'].pk}/allocate/",
        MEMBERS,
        lambda o: {"invoice": o["invoice"].pk, "amount": "10"},
        ok=302,
    ),
    Case(
        "payment_unallocate",
        "post",
        lambda o: f"/billing/payments/{o['payment'].pk}/allocations/{o['allocation'].pk}/remove/",
        MANAGERS,
        ok=302,
    ),
    Case(
        "payment_refund",
        "post",
        lambda o: f"/billing/payments/{o['payment'].pk}/refund/",
        MANAGERS,
        lambda o: {"date": TODAY.isoformat(), "amount": "10"},
        ok=302,
    ),
    Case(
        "payment_delete",
        "post",
        lambda o: f"/billing/payments/{o['payment'].pk}/delete/",
        MANAGERS,
        lambda o: {"reason": "r"},
        ok=302,
    ),
]


def test_every_billing_url_is_in_the_matrix():
    from practice.billing.urls import urlpatterns

    covered = {c.name.removesuffix("_get") for c in CASES}
    assert {p.name for p in urlpatterns} <= covered


@pytest.mark.parametrize("who", ["anonymous", "employee", "admin", "owner", "other"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_role_matrix(client_as, firm, objs, case: Case, who: str):
    c = client_as(who)
    url = case.url(objs)
    before = snapshot(firm)
    response = getattr(c, case.method)(url, case.data(objs))
    if who == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
        assert snapshot(firm) == before
    elif who == "other":
        if case.on_object:
            assert response.status_code in {403, 404}
            if case.allowed >= {"owner"}:  # their owner passes the role check, then meets a 404
                assert response.status_code == 404
        else:
            # Lists and forms show their own firm; this firm's ids in a POST are not found (400).
            assert response.status_code in {200, 302, 400}
            if case.method == "post" and case.name not in {"service_create", *READ_ONLY_POSTS}:
                assert response.status_code == 400
        assert snapshot(firm) == before
    elif who in case.allowed:
        assert response.status_code == case.ok, response.content.decode()[-2000:]
        if case.method == "post" and case.name not in READ_ONLY_POSTS:
            assert snapshot(firm) != before
        if case.name in READ_ONLY_POSTS:
            assert snapshot(firm) == before
    else:
        assert response.status_code == 403
        assert snapshot(firm) == before


def test_other_firm_cannot_read_this_firms_pages(client_as, objs):
    c = client_as("other")
    for url in (
        f"/billing/invoices/{objs['invoice'].pk}/",
        f"/billing/payments/{objs['payment'].pk}/",
        f"/billing/services/{objs['service'].pk}/edit/",
    ):
        assert c.get(url).status_code == 404
    body = c.get("/billing/invoices/").content.decode()
    assert objs["invoice"].number not in body
