"""Billing pages through the Django test client: flows, bad input, query counts."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from practice.billing import selectors, services
from practice.billing.models import Invoice, InvoiceState, Payment, PaymentState, Refund, Service

from .conftest import DUE, TODAY

D = Decimal


def field_error(response, field: str) -> bool:
    """The page shows an error next to `field` (the field partial tags it with data-field)."""
    return f'data-field="{field}"' in response.content.decode()


# --- pages render ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "billing:service_list",
        "billing:invoice_list",
        "billing:invoice_create",
        "billing:payment_list",
        "billing:payment_create",
    ],
)
def test_pages_render_for_members(client_as, name, invoice):
    from django.urls import reverse

    response = client_as("employee").get(reverse(name))
    assert response.status_code == 200
    assert b"<html" in response.content


def test_detail_pages_render(client_as, firm, account, invoice, draft):
    payment = services.payment_record(
        firm=firm, account=account, date=TODAY, amount="350", method="card", allocations=[(invoice, "300")]
    )
    services.refund_record(payment=payment, date=TODAY, amount="10", reason="Goodwill")
    c = client_as("owner")
    page = c.get(f"/billing/invoices/{invoice.pk}/").content.decode()
    assert invoice.number in page and "300.00" in page
    page = c.get(f"/billing/payments/{payment.pk}/").content.decode()
    assert "Goodwill" in page and "40.00" in page  # unapplied 350 − 300 − 10
    assert c.get(f"/billing/invoices/{draft.pk}/edit/").status_code == 200


# --- services ----------------------------------------------------------------------------------


def test_service_create_edit_archive_flow(client_as, firm):
    c = client_as("admin")
    r = c.post("/billing/services/new/", {"name": "Payroll", "rate": "95.00", "description": "Runs"})
    assert r.status_code == 302
    service = Service.objects.get(firm=firm, name="Payroll")
    r = c.post(f"/billing/services/{service.pk}/edit/", {"name": "Payroll plus", "rate": "99.5"})
    assert r.status_code == 302
    service.refresh_from_db()
    assert (service.name, service.rate) == ("Payroll plus", D("99.50"))
    c.post(f"/billing/services/{service.pk}/archive/")
    service.refresh_from_db()
    assert service.archived
    assert "<strong>Payroll plus</strong>" not in c.get("/billing/services/").content.decode()
    assert "<strong>Payroll plus</strong>" in c.get("/billing/services/?archived=1").content.decode()
    c.post(f"/billing/services/{service.pk}/archive/", {"restore": "1"})
    service.refresh_from_db()
    assert not service.archived


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "", "rate": "1"}, "name"),
        ({"name": "Bookkeeping", "rate": "1"}, "name"),
        ({"name": "X", "rate": "-1"}, "rate"),
        ({"name": "X", "rate": "abc"}, "rate"),
        ({"name": "X", "rate": "1", "income_account_name": "a" * 101}, "income_account_name"),
        ({"name": "Tax \u202eprep", "rate": "1"}, "name"),  # a bidi override (issue 12)
    ],
)
def test_service_bad_input(client_as, service, data, field):
    before = Service.objects.count()
    r = client_as("owner").post("/billing/services/new/", data)
    assert r.status_code == 400
    assert field_error(r, field)
    assert Service.objects.count() == before
    r = client_as("owner").post(f"/billing/services/{service.pk}/edit/", {**data, "name": data["name"] or ""})
    if field == "name" and data["name"] == "Bookkeeping":
        assert r.status_code == 302  # its own name is fine
    else:
        assert r.status_code == 400 and field_error(r, field)


# --- invoices ----------------------------------------------------------------------------------


def invoice_post(account_, service, **extra):
    data = {
        "account": account_.pk,
        "number": "",
        "issue_date": TODAY.isoformat(),
        "due_date": DUE.isoformat(),
        "memo": "Thank you",
        "lines-0-service": service.pk,
        "lines-0-description": "October",
        "lines-0-quantity": "2",
        "lines-0-rate": "100.00",
        # a blank row, as the form offers, is ignored
        "lines-1-service": "",
        "lines-1-description": "",
        "lines-1-quantity": "",
        "lines-1-rate": "",
        # a row added in the browser gets a large index
        "lines-1732800000000-service": service.pk,
        "lines-1732800000000-quantity": "1.5",
        "lines-1732800000000-rate": "",
    }
    data.update(extra)
    return data


def test_invoice_create_issue_flow(client_as, firm, account, service):
    c = client_as("employee")
    r = c.post("/billing/invoices/new/", invoice_post(account, service))
    assert r.status_code == 302, r.content.decode()[:2000]
    invoice = Invoice.objects.get(firm=firm)
    assert invoice.number == "INV-0001"
    assert invoice.state == InvoiceState.DRAFT
    assert [line.amount for line in invoice.lines.all()] == [D("200.00"), D("150.00")]
    assert invoice.total == D("350.00")
    r = c.post(
        f"/billing/invoices/{invoice.pk}/edit/", invoice_post(account, service, **{"lines-0-quantity": "3"})
    )
    assert r.status_code == 302
    invoice.refresh_from_db()
    assert invoice.total == D("450.00")
    assert c.post(f"/billing/invoices/{invoice.pk}/issue/").status_code == 302
    invoice.refresh_from_db()
    assert invoice.state == InvoiceState.ISSUED
    # issued invoices are not editable any more
    r = c.post(
        f"/billing/invoices/{invoice.pk}/edit/", invoice_post(account, service, **{"lines-0-quantity": "9"})
    )
    assert r.status_code == 302
    assert selectors.invoice_get(firm=firm, pk=invoice.pk).total == D("450.00")


def test_invoice_list_search_filter_and_paging(client_as, firm, make_invoice, account2):
    for _ in range(27):
        make_invoice("10.00")
    make_invoice("99.00", acct=account2)
    make_invoice("5.00", issued=False)
    c = client_as("employee")
    page1 = c.get("/billing/invoices/").content.decode()
    assert "Page 1 of 2" in page1
    assert "INV-0029" in page1  # newest first
    only_drafts = c.get("/billing/invoices/?state=draft").content.decode()
    assert "INV-0029" in only_drafts and "INV-0001" not in only_drafts
    found = c.get("/billing/invoices/?q=Red+Rock").content.decode()
    assert "INV-0028" in found and "INV-0027" not in found
    assert c.get("/billing/invoices/?page=99").status_code == 200


def test_invoice_list_query_count_does_not_grow(client_as, make_invoice, django_assert_max_num_queries):
    c = client_as("employee")
    make_invoice()
    with django_assert_max_num_queries(12) as small:
        c.get("/billing/invoices/")
    for _ in range(20):
        make_invoice()
    with django_assert_max_num_queries(len(small.captured_queries)):
        c.get("/billing/invoices/")


def test_payment_list_query_count_does_not_grow(
    client_as, firm, account, make_invoice, django_assert_max_num_queries
):
    c = client_as("employee")

    def add():
        inv = make_invoice("10.00")
        services.payment_record(
            firm=firm, account=account, date=TODAY, amount="20", method="cash", allocations=[(inv, "10")]
        )

    add()
    with django_assert_max_num_queries(12) as small:
        c.get("/billing/payments/")
    for _ in range(10):
        add()
    with django_assert_max_num_queries(len(small.captured_queries)):
        c.get("/billing/payments/")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"account": ""}, "account"),
        ({"issue_date": "not a date"}, "issue_date"),
        ({"due_date": "2026-10-01"}, "due_date"),  # before the issue date
        ({"number": "X" * 22}, "number"),
        ({"lines-0-rate": "1.234"}, "lines-0-rate"),
        ({"lines-0-quantity": "abc"}, "lines-0-quantity"),
        ({"lines-0-service": ""}, "lines-0-service"),
        ({"memo": "Thanks \u2067for\u2069 the work"}, "memo"),  # bidi isolates (issue 12)
        ({"lines-0-description": "Oct\u202dober"}, "lines-0-description"),
    ],
)
def test_invoice_bad_input(client_as, firm, account, service, draft, extra, field):
    before = list(Invoice.objects.values_list("pk", "number", "memo"))
    c = client_as("employee")
    r = c.post("/billing/invoices/new/", invoice_post(account, service, **extra))
    assert r.status_code == 400
    assert field_error(r, field), field
    r = c.post(f"/billing/invoices/{draft.pk}/edit/", invoice_post(account, service, **extra))
    assert r.status_code == 400
    assert field_error(r, field), field
    assert list(Invoice.objects.values_list("pk", "number", "memo")) == before


def test_invoice_number_clash_is_reported_on_the_field(client_as, account, service, invoice):
    r = client_as("employee").post(
        "/billing/invoices/new/", invoice_post(account, service, number=invoice.number)
    )
    assert r.status_code == 400 and field_error(r, "number")


def test_issue_empty_draft_shows_error(client_as, firm, account):
    empty = services.invoice_create(firm=firm, account=account, issue_date=TODAY, due_date=DUE)
    r = client_as("employee").post(f"/billing/invoices/{empty.pk}/issue/")
    assert r.status_code == 400
    assert "at least one line" in r.content.decode()


def test_void_with_payment_applied_is_refused_then_allowed(client_as, firm, account, invoice):
    payment = services.payment_record(
        firm=firm, account=account, date=TODAY, amount="300", method="check", allocations=[(invoice, "300")]
    )
    c = client_as("admin")
    r = c.post(f"/billing/invoices/{invoice.pk}/void/", {"reason": "Duplicate"})
    assert r.status_code == 400
    assert "Unapply" in r.content.decode()
    allocation = payment.allocations.get()
    assert c.post(f"/billing/payments/{payment.pk}/allocations/{allocation.pk}/remove/").status_code == 302
    assert c.post(f"/billing/invoices/{invoice.pk}/void/", {"reason": "Duplicate"}).status_code == 302
    invoice.refresh_from_db()
    assert invoice.state == InvoiceState.VOID and invoice.void_reason == "Duplicate"


def test_void_reason_too_long(client_as, invoice):
    r = client_as("owner").post(f"/billing/invoices/{invoice.pk}/void/", {"reason": "x" * 501})
    assert r.status_code == 400 and field_error(r, "reason")
    invoice.refresh_from_db()
    assert invoice.state == InvoiceState.ISSUED


def test_line_row_partial(client_as, service):
    r = client_as("employee").get("/billing/invoices/line-row/?index=1732800000123", HTTP_HX_REQUEST="true")
    body = r.content.decode()
    assert r.status_code == 200
    assert 'name="lines-1732800000123-service"' in body and "Bookkeeping" in body
    assert "<html" not in body


# --- payments ----------------------------------------------------------------------------------


def payment_post(account_, **extra):
    data = {
        "account": account_.pk,
        "date": TODAY.isoformat(),
        "amount": "400.00",
        "method": "check",
        "reference": "CHK-1001",
        "processing_fee": "0",
        "sync_to_quickbooks": "",
    }
    data.update(extra)
    return data


def test_record_payment_with_allocations(client_as, firm, account, invoice, make_invoice):
    second = make_invoice("50.00")
    r = client_as("employee").post(
        "/billing/payments/new/",
        payment_post(
            account,
            **{
                f"allocation-{invoice.pk}": "300.00",
                f"allocation-{second.pk}": "",
                "sync_to_quickbooks": "no",
            },
        ),
    )
    assert r.status_code == 302
    payment = selectors.payment_get(firm=firm, pk=Payment.objects.get().pk)
    assert payment.created_manually is True and payment.sync_to_quickbooks is False
    assert (payment.allocated, payment.unapplied) == (D("300.00"), D("100.00"))
    assert selectors.invoice_get(firm=firm, pk=invoice.pk).balance == D("0.00")


def test_payment_form_prefills_from_invoice(client_as, account, invoice):
    body = (
        client_as("employee")
        .get(f"/billing/payments/new/?account={account.pk}&invoice={invoice.pk}")
        .content.decode()
    )
    assert f'name="allocation-{invoice.pk}"' in body
    assert re.search(rf'name="allocation-{invoice.pk}" value="300.00"', body)


def test_allocation_rows_partial(client_as, account, invoice, draft, other_account):
    c = client_as("employee")
    body = c.get(
        f"/billing/payments/allocation-rows/?account={account.pk}", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert f'name="allocation-{invoice.pk}"' in body
    assert f'name="allocation-{draft.pk}"' not in body  # drafts cannot be paid
    body = c.get(f"/billing/payments/allocation-rows/?account={other_account.pk}").content.decode()
    assert 'name="allocation-' not in body  # another firm's account shows nothing


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"account": ""}, "account"),
        ({"amount": ""}, "amount"),
        ({"amount": "-3"}, "amount"),
        ({"method": "bitcoin"}, "method"),
        ({"date": "yesterday"}, "date"),
        ({"processing_fee": "500"}, "processing_fee"),
        ({"reference": "r" * 101}, "reference"),
        ({"allocation-INVOICE": "300.01"}, "allocation-INVOICE"),  # more than the balance
        ({"allocation-INVOICE": "abc"}, "allocation-INVOICE"),
        # Past Decimal's 28-digit context: quantize() raised InvalidOperation, a 500 (issue 12).
        ({"allocation-INVOICE": "1e30"}, "allocation-INVOICE"),
        ({"allocation-INVOICE": "9" * 40}, "allocation-INVOICE"),
        ({"amount": "1e30"}, "amount"),
        ({"processing_fee": "-1e30"}, "processing_fee"),
        ({"amount": "10", "allocation-INVOICE": "20"}, "allocations"),  # more than the payment
    ],
)
def test_payment_bad_input(client_as, account, invoice, extra, field):
    extra = {k.replace("INVOICE", str(invoice.pk)): v for k, v in extra.items()}
    field = field.replace("INVOICE", str(invoice.pk))
    r = client_as("employee").post("/billing/payments/new/", payment_post(account, **extra))
    assert r.status_code == 400
    assert field_error(r, field), r.content.decode()[-3000:]
    assert not Payment.objects.exists()


def test_allocate_refund_delete_flow(client_as, firm, account, invoice):
    payment = services.payment_record(firm=firm, account=account, date=TODAY, amount="500", method="ach")
    c = client_as("owner")
    r = c.post(f"/billing/payments/{payment.pk}/allocate/", {"invoice": invoice.pk, "amount": "300"})
    assert r.status_code == 302
    r = c.post(
        f"/billing/payments/{payment.pk}/refund/",
        {"date": TODAY.isoformat(), "amount": "150", "reason": "Over"},
    )
    assert r.status_code == 302
    payment = selectors.payment_get(firm=firm, pk=payment.pk)
    assert (payment.allocated, payment.refunded, payment.unapplied) == (D("300.00"), D("150.00"), D("50.00"))
    r = c.post(f"/billing/payments/{payment.pk}/delete/", {"reason": "Entered twice"})
    assert r.status_code == 302
    payment.refresh_from_db()
    assert payment.state == PaymentState.DELETED
    listing = c.get("/billing/payments/?state=deleted").content.decode()
    assert "Deleted" in listing


@pytest.mark.parametrize(
    ("url", "data", "field"),
    [
        ("allocate", {"invoice": "", "amount": "1"}, "invoice"),
        ("allocate", {"invoice": "INVOICE", "amount": "300.01"}, "invoice"),
        ("allocate", {"invoice": "INVOICE", "amount": "0"}, "amount"),
        ("refund", {"date": "", "amount": "1"}, "date"),
        ("refund", {"date": "2026-11-01", "amount": "100.01"}, "amount"),
        ("refund", {"date": "2026-11-01", "amount": "1", "reason": "x" * 501}, "reason"),
        ("delete", {"reason": "x" * 501}, "reason"),
    ],
)
def test_payment_action_bad_input(client_as, firm, account, invoice, url, data, field):
    payment = services.payment_record(firm=firm, account=account, date=TODAY, amount="100", method="cash")
    data = {k: (str(invoice.pk) if v == "INVOICE" else v) for k, v in data.items()}
    r = client_as("owner").post(f"/billing/payments/{payment.pk}/{url}/", data)
    assert r.status_code == 400
    assert field_error(r, field), r.content.decode()[-3000:]
    payment.refresh_from_db()
    assert payment.state == PaymentState.RECORDED
    assert not payment.allocations.exists() and not Refund.objects.exists()


def test_admin_changelists_open_read_only(client, invoice, firm, account):
    from practice.firms.models import User

    services.payment_record(
        firm=firm, account=account, date=TODAY, amount="10", method="cash", allocations=[(invoice, "10")]
    )
    User.objects.create_superuser("root@example.test", "pw-123456789")
    client.force_login(User.objects.get(email="root@example.test"))
    for model in ("service", "invoice", "payment", "paymentallocation", "refund", "billinghistory"):
        assert client.get(f"/admin/billing/{model}/").status_code == 200, model
    assert client.get(f"/admin/billing/invoice/{invoice.pk}/change/").status_code == 200
    assert client.get("/admin/billing/invoice/add/").status_code == 403


def test_payment_allocation_to_foreign_invoice_shows_an_error(
    client_as, firm, other_firm, account, other_account
):
    other_service = services.service_create(firm=other_firm, name="S", rate="1")
    foreign = services.invoice_issue(
        invoice=services.invoice_create(
            firm=other_firm,
            account=other_account,
            issue_date=TODAY,
            due_date=DUE,
            lines=[{"service": other_service, "quantity": "1", "rate": "100"}],
        )
    )
    r = client_as("employee").post(
        "/billing/payments/new/", payment_post(account, **{f"allocation-{foreign.pk}": "10"})
    )
    assert r.status_code == 400
    assert "Choose an invoice." in r.content.decode()
    assert not Payment.objects.exists()


def test_invoice_preview_shows_line_amounts_and_total(client_as, account, service):
    data = invoice_post(account, service, **{"lines-0-quantity": "1.5", "lines-0-rate": "33.33"})
    r = client_as("employee").post("/billing/invoices/preview/", data, HTTP_HX_REQUEST="true")
    body = r.content.decode()
    assert r.status_code == 200
    # 1.5 × 33.33 = 49.995 → 50.00; the added row: 1.5 × the service rate 100 = 150.00
    assert body.startswith("200.00")
    assert '<span id="amount-lines-0" hx-swap-oob="true">50.00</span>' in body
    assert '<span id="amount-lines-1732800000000" hx-swap-oob="true">150.00</span>' in body
    assert '<span id="amount-lines-1" hx-swap-oob="true">—</span>' in body
    assert not Invoice.objects.exists()
